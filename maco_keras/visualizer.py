"""`Visualizer`: one model, one `MacoConfig` and the active backend's compiled run, held by the caller.

The whole pipeline, on any Keras backend:

    config  = MacoConfig(steps=64, seed=0)                 # validated once
    viz     = Visualizer(model, config)                     # owns the compiled runs
    result  = viz(units=[1, 309])                           # or viz(objective=channel(...) + 0.5 * logit(...))
    result.images, result.transparency, result.scores       # (N, H, W, C), (N, H, W, C), (steps, N)

`maco(...)` is the one-call form. On TensorFlow it runs the established engine
(`presets.maco`: `tf.distribute`, Xplique objectives, the C++ crop-gradient kernel); on
JAX and PyTorch, a `Visualizer`.
"""

import dataclasses
import math

import keras
import numpy as np

from . import backends
from . import objectives as objectives_lib
from . import taps
from . import validation
from .core import draws
from .core import magnitude as magnitude_lib
from .core import render
from .core import tone
from .core.config import CONFIGS, MacoConfig, configure
from .core.outcome import NonFiniteError, Visualization
from .core.plan import Plan

# A verbose run pauses for its progress bar at most this many times.
PROGRESS_UPDATES = 50


class Visualizer:
    """Feature visualization of one model's units with one configuration, on the active Keras backend.

    Compiled state (one runner per objective structure) belongs to this object: calls with
    other units of the same structure reuse it, and dropping the object frees it.

    Args:
        model: a Keras model with a known input shape (batch, h, w, C).
        config: a `MacoConfig` (default `CONFIGS["fast"]`, `maco`'s defaults).
        magnitude: None (the ImageNet magnitude), an array (C, H, W // 2 + 1) or one per
            unit (N, C, H, W // 2 + 1).
        devices: JAX: the devices that share each unit's crops (default all of them).
        crop_chunk: None (a unit's crops through the model at once), or how many of a
            unit's crops each device runs through the model at once: a divisor of the crops
            per device. It bounds a step's memory, at the cost of smaller batches. A step's
            score and gradients change by float rounding only, but over the steps NAdam
            can part the pictures (README, *Large runs*). Not with a diversity term.
        batch_size: units optimized together (default all); a unit's picture does not
            depend on its batch (except with diversity, whose term compares a batch's
            pictures: it needs them all in one batch).
        verbose: show a progress bar.

    Example:
        >>> viz = Visualizer(model, MacoConfig(seed=0))
        >>> result = viz(units=[1, 309])
        >>> result.images.shape
        (2, 512, 512, 3)
    """

    def __init__(self, model, config=None, *, magnitude=None, devices=None, batch_size=None, crop_chunk=None,
                 verbose=True):
        if not isinstance(model, keras.Model):
            raise TypeError(f"expected a keras.Model, received: model={type(model).__name__}")
        config = CONFIGS["fast"] if config is None else config
        if not isinstance(config, MacoConfig):
            raise TypeError(f"expected a maco_keras.MacoConfig, received: config={type(config).__name__}")
        self.model = model
        self.config = config
        self.backend = backends.current()
        self.input_shape = taps.image_input_shape(model, "model")
        height, width = config.image_size
        if height < self.input_shape[0] or width < self.input_shape[1]:
            raise ValueError(f"expected image_size at least the model input {self.input_shape[:2]}, "
                             f"received: image_size={config.image_size}")
        tone.resolve_pixel_statistics(config.pixel_statistics, self.input_shape[2])  # one per model input channel
        self.magnitude = None if magnitude is None else np.asarray(magnitude, np.float32)
        self.devices = devices
        self.batch_size = None if batch_size is None else validation.positive_int("batch_size", batch_size)
        self.verbose = validation.flag("verbose", verbose)
        runner_class = backends.runner_class()  # the active backend is one we run on, checked before any work
        self.sharing = sharing = runner_class.sharing(devices)  # how many devices share each unit's crops
        if config.crops % sharing:
            raise ValueError(f"expected crops divisible by the {sharing} devices that share them, received: "
                             f"crops={config.crops}")
        self.crop_chunk = self._plan_chunk = None
        if crop_chunk is not None:
            crop_chunk = validation.positive_int("crop_chunk", crop_chunk)
            if (config.crops // sharing) % crop_chunk:
                raise ValueError(f"expected crop_chunk to divide the {config.crops // sharing} crops per unit each "
                                 f"device processes per step, received: crop_chunk={crop_chunk}")
            self.crop_chunk = crop_chunk
            if crop_chunk * sharing < config.crops:  # else every crop at once: no chunks
                self._plan_chunk = crop_chunk * sharing  # the Plan's chunk: every device's crops of it together
        self._runners = {}

    @property
    def chunked(self):
        """Whether a unit's crops go through the model in chunks (a `crop_chunk` below the crops per device)."""
        return self._plan_chunk is not None

    def objective(self, objective=None, units=None):
        """The `CompiledObjective` of `objective`, or of the model output's `units` (its logits)."""
        if objective is None:
            if units is None:
                raise ValueError("expected an objective or units (the model output's), received: neither")
            objective = objectives_lib.logit(self.model, units)
        elif units is not None:
            raise ValueError(f"expected units only without an objective, received: units={units!r}")
        objective = objectives_lib.as_core(objective)
        if objective.model is not self.model:
            raise ValueError("expected an objective on the Visualizer's model, received: one on another model")
        return objective.compile()

    def magnitudes(self, num_units):
        """float32 array (N, C, H, W // 2 + 1): each unit's fixed magnitude."""
        channels = self.input_shape[-1]
        expected = (channels, *render.spectrum_shape(self.config.image_size))
        if self.magnitude is None:
            if channels not in (1, 3):
                raise ValueError(f"expected a magnitude for {channels}-channel images (the ImageNet one has 3 or 1), "
                                 "received: magnitude=None")
            magnitude = magnitude_lib.imagenet_magnitude(self.config.image_size, channels)
        else:
            magnitude = self.magnitude
        if magnitude.shape == expected:
            return np.broadcast_to(magnitude, (num_units, *expected)).copy()
        if magnitude.shape == (num_units, *expected):
            return magnitude
        raise ValueError(f"expected a magnitude of shape {expected} or {(num_units, *expected)}, "
                         f"received: magnitude.shape={magnitude.shape}")

    def runner(self, compiled):
        """The compiled runner of `compiled`'s structure, built on first use."""
        key = (compiled.structure, tuple(tap.path for tap in compiled.taps),
               tuple(tuple(mask.shape[1:]) for mask in compiled.masks))
        if key not in self._runners:
            plan = Plan(self.config, compiled, self.input_shape, getattr(self.model, "compute_dtype", "float32"),
                        self._plan_chunk)
            self._runners[key] = backends.runner_class()(plan, compiled, self.devices)
        return self._runners[key]

    def __call__(self, objective=None, units=None, *, start_phases=None):
        """Optimizes one picture per unit. Returns a `Visualization`; raises `NonFiniteError` (with every
        finite unit's picture in `partial`) when a unit's score or gradient stops being finite.

        Args:
            objective: a `maco_keras.objectives` objective on the model, or None with `units`.
            units: the model output's units (its logits), without an objective.
            start_phases: None (each unit's phase drawn from the seed), or float32 array
                (N, C, H, W // 2 + 1) of angles to start from, e.g. `core.render.image_spectrum`'s
                phase of real images (feature accentuation); with `phase_as="complex"` they
                are turned into complex numbers here.
        """
        compiled = self.objective(objective, units)
        magnitudes = self.magnitudes(compiled.num_units)
        if start_phases is not None:
            start_phases = np.asarray(start_phases, np.float32)
            finite = bool(np.all(np.isfinite(start_phases)))
            if start_phases.shape != magnitudes.shape or not finite:
                raise ValueError(f"expected finite start_phases of shape {magnitudes.shape}, one per unit, received: "
                                 f"start_phases.shape={start_phases.shape}" + ("" if finite else " with non-finite values"))
        size = compiled.num_units if self.batch_size is None else self.batch_size
        if compiled.coupled and self._plan_chunk is not None:
            raise ValueError("expected crop_chunk=None with a diversity term (it compares every crop of a step), "
                             f"received: crop_chunk={self.crop_chunk}")
        if compiled.coupled and size < compiled.num_units:
            raise ValueError(f"expected batch_size of at least the objective's {compiled.num_units} units (a "
                             f"diversity term compares the pictures of a batch), received: batch_size={size}")
        results, failures = [], []
        for start in range(0, compiled.num_units, size):
            stop = min(start + size, compiled.num_units)
            result, failed = self._run(compiled.unit(start, stop), magnitudes[start:stop],
                                       None if start_phases is None else start_phases[start:stop])
            results.append(result)
            failures.extend((int(step), name) for step, name in zip(failed, result.names) if step >= 0)
        result = Visualization.concatenate(results)
        if failures:
            raise NonFiniteError(min(step for step, _ in failures), result,
                                 [f"{name} (step {step})" for step, name in failures],
                                 unit_steps={name: step for step, name in failures})
        return result

    def _run(self, compiled, magnitudes, start_phases=None):
        config = self.config
        runner = self.runner(compiled)
        keys = draws.unit_keys(compiled.names)
        schedules = config.schedules()
        state = runner.start(config.seed, keys, config.steps)
        if start_phases is not None:
            # The optimizer's state starts at zero whatever the phase: only the phases are replaced.
            place = getattr(runner, "place", keras.ops.convert_to_tensor)  # JAX: on the runner's devices
            state = (place(runner.plan.as_phase(start_phases)),) + tuple(state[1:])
        chunk = max(1, math.ceil(config.steps / PROGRESS_UPDATES)) if self.verbose else config.steps
        stops = list(range(chunk, config.steps, chunk)) + [config.steps]
        progress = keras.utils.Progbar(config.steps, stateful_metrics=["mean_unit_value"]) if self.verbose else None
        for start, stop in zip([0] + stops[:-1], stops):
            state = runner.advance(state, start, stop, config.seed, keys, magnitudes, compiled.masks,
                                   compiled.scales, schedules)
            if progress is not None:
                history = keras.ops.convert_to_numpy(state[3])
                progress.update(stop, values=[("mean_unit_value", float(np.mean(history[stop - 1])))])
        phases, _, transparency, history, failed = state
        images = runner.pictures(phases, magnitudes)
        return Visualization(images=images, transparency=keras.ops.convert_to_numpy(transparency) / config.steps,
                             scores=keras.ops.convert_to_numpy(history), names=list(compiled.names)), \
            keras.ops.convert_to_numpy(failed)


_RUN_ARGUMENTS = ("magnitude", "verbose", "return_visualization", "batch_size", "devices", "crop_chunk")


def maco(objective, units=None, *, config=None, **settings):
    """MACO feature visualization on the active Keras backend: one picture per unit.

    Args:
        objective: a Keras model (with `units`: its output units, e.g. logits) or an
            objective (`maco_keras.objectives`; on TensorFlow also an Xplique `Objective`).
        units: int or list of the model output's units.
        config: a `MacoConfig` (default: the "fast" preset); `settings` override its fields
            (`steps`, `image_size`, `crops`, `crop_scale`, `noise`, `learning_rate`,
            `contrast`, `coarse_to_fine`, `values_range`, `seed`, ...). `seed` defaults to a
            random one, as on TensorFlow.
        **settings: the configuration's fields, and `magnitude`, `verbose`,
            `return_visualization`, `batch_size`, `crop_chunk`, `devices` (JAX). On TensorFlow every
            argument of `presets.maco` (`strategy`, `jit_compile`, Xplique objectives...).

    Returns:
        (images, transparency): float32 arrays (N, H, W, C), or the `Visualization` with
        `return_visualization=True`.

    Example:
        >>> images, transparency = maco(model, units=[1, 309], seed=0)
    """
    if backends.current() == "tensorflow":
        from . import presets

        if "devices" in settings:
            raise ValueError("expected devices only on JAX (TensorFlow shares crops through strategy=), "
                             f"received: devices={settings['devices']!r}")
        return presets.maco(objective, units, config=config, **settings)
    return neutral_maco(objective, units, config=config, **settings)


def neutral_maco(objective, units=None, *, config=None, **settings):
    """`maco` through a `Visualizer`, on any backend (what `maco` runs on JAX and PyTorch); see `maco`."""
    fields = {field.name for field in dataclasses.fields(MacoConfig)}
    unknown = sorted(set(settings) - fields - set(_RUN_ARGUMENTS))
    if unknown:
        raise ValueError(f"expected settings of the {backends.current()} backend ({', '.join(sorted(fields))}, "
                         f"{', '.join(_RUN_ARGUMENTS)}), received: {', '.join(unknown)} (TensorFlow only)")
    run = {name: settings.pop(name) for name in _RUN_ARGUMENTS if name in settings}
    return_visualization = validation.flag("return_visualization", run.get("return_visualization", False))
    config = configure(config, settings)
    model = objective if isinstance(objective, keras.Model) else getattr(objective, "model", None)
    if model is None:
        raise TypeError(f"expected a keras.Model or a maco_keras objective, received: objective={type(objective).__name__}")
    visualizer = Visualizer(model, config, magnitude=run.get("magnitude"), devices=run.get("devices"),
                            batch_size=run.get("batch_size"), crop_chunk=run.get("crop_chunk"),
                            verbose=run.get("verbose", True))
    if isinstance(objective, keras.Model):
        result = visualizer(units=units)
    else:
        result = visualizer(objective, units)
    if return_visualization:
        return result
    return result.images, result.transparency
