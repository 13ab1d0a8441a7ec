"""The compiled optimization loop shared by MACO and the baselines.

One `OptimizationLoop` exists per (parameterization, objective structure, crops,
augmentation, optimizer configuration, XLA flag), and the parameterization holds it
(`loops_of`): compiled state goes with the object the caller holds. Its `tf.function` runs a whole chunk
of steps in a `tf.while_loop`; everything that may change between calls (seed, units'
keys, masks, multipliers, per-step schedules) is a tensor argument with a fixed
signature, so the loop is traced once and reused by every later call with the same
shapes. Python runs once per chunk (to update the progress bar), never per step.

The pieces, each on its own: `RunOptions` (how a run is carried out: strategy, chunks,
XLA, progress), `LoopSettings` (a `MacoConfig`, the options, the augmentation and optimizer,
and their per-step arrays), `steps.Step`
(one step on every replica of a strategy), `chunks.CropChunks` (a replica's crops,
`crop_chunk` at a time) and `OptimizationLoop` here (the run: state, compiled loop,
progress, snapshots).
"""

import collections
import dataclasses
import json
import logging
import math
import weakref
from typing import Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from . import augmentation as augmentation_lib
from . import objective as objective_lib
from . import parameterization as parameterization_lib
from . import seeding
from . import steps as steps_lib
from . import validation
from .core.config import MacoConfig, Ramp, coarse_to_fine_cutoffs, configure, schedule, snapshot_list  # noqa: F401
from .core.outcome import NonFiniteError, Visualization  # noqa: F401


class _SeparateLoopsAreNotRetracing(logging.Filter):
    """Drops TF's "frequent retracing" warning for `OptimizationLoop._steps` only.

    TF counts traces per code object, so the loops of different configurations (each
    traced once, see `trace_count`) add up to a misleading warning.
    """

    def filter(self, record):
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "OptimizationLoop._steps" in message)


tf.get_logger().addFilter(_SeparateLoopsAreNotRetracing())


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How TensorFlow's engine carries a run out, beside the `MacoConfig` that says what it computes.

    None of these changes a unit's picture (XLA aside, which may change its last bits).
    Validated when made; every entry point (`maco`, `fourier`, `pixel`, `visualize`) takes
    them as keyword arguments beside the configuration's fields (`split_settings`).

    Attributes:
        strategy: a `tf.distribute.Strategy` sharing each step's crops (default None: one device).
        crop_chunk: crops per image a replica processes at once (default None: all).
        batch_size: objectives optimized together (default None: all).
        jit_compile: compile the loop with XLA.
        verbose: show a progress bar.
        snapshot_steps: steps after which the images and transparency are also kept.
        return_visualization: return the `Visualization` instead of (images, transparency).
        input_shape: (h, w, C) of the model, for a callable objective.
    """

    strategy: Optional[tf.distribute.Strategy] = None
    crop_chunk: Optional[int] = None
    batch_size: Optional[int] = None
    jit_compile: bool = False
    verbose: bool = True
    snapshot_steps: Tuple[int, ...] = ()
    return_visualization: bool = False
    input_shape: Optional[Tuple[int, ...]] = None

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        steps_lib.resolve_strategy(self.strategy)
        for name in ("crop_chunk", "batch_size"):
            if getattr(self, name) is not None:
                set_(name, validation.positive_int(name, getattr(self, name)))
        for name in ("jit_compile", "verbose", "return_visualization"):
            set_(name, validation.flag(name, getattr(self, name)))
        try:
            set_("snapshot_steps", tuple(self.snapshot_steps))
        except TypeError:
            raise ValueError(f"expected `snapshot_steps` to be a sequence of ints, received: "
                             f"snapshot_steps={self.snapshot_steps!r}") from None
        if self.input_shape is not None:
            try:
                set_("input_shape", tuple(self.input_shape))
            except TypeError:
                raise ValueError(f"expected input_shape (height, width, channels), received: "
                                 f"input_shape={self.input_shape!r}") from None


CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(MacoConfig))
OPTION_FIELDS = tuple(field.name for field in dataclasses.fields(RunOptions))


def split_settings(config, settings, default=None):
    """A run's keyword arguments as (`MacoConfig`, `RunOptions`): `config` (or `default`, else the "fast"
    preset, with a random seed) with the fields among `settings`, and the options; anything else is an
    error naming it."""
    unknown = sorted(set(settings) - set(CONFIG_FIELDS) - set(OPTION_FIELDS))
    if unknown:
        raise TypeError(f"expected settings of MacoConfig ({', '.join(CONFIG_FIELDS)}) or RunOptions "
                        f"({', '.join(OPTION_FIELDS)}), received: {', '.join(unknown)}")
    options = RunOptions(**{name: settings[name] for name in OPTION_FIELDS if name in settings})
    return configure(config, {name: settings[name] for name in CONFIG_FIELDS if name in settings}, default), options


def keeps_own_rate(optimizer, settings):
    """The learning-rate rule of every entry point: a given optimizer keeps its own rate unless the call's
    `settings` give a `learning_rate` (None counts as not given)."""
    return optimizer is not None and settings.get("learning_rate") is None


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """What one compiled run takes besides the images and the objective: a `MacoConfig`, the `RunOptions`,
    the augmentation and optimizer, and the per-step arrays they give.

    Build it with `LoopSettings.of(config, options, ...)`.

    Attributes:
        config: the `MacoConfig` (steps, crops, seed, schedules...).
        options: the `RunOptions` (strategy, crop_chunk, jit_compile, verbose, snapshots).
        augmentation: the static part of the augmentations.
        optimizer: a Keras optimizer, used as a configuration (each loop builds its own copy).
        crop_scales, uniform_noise, gaussian_noise: float32 arrays (steps,): the mean crop
            scale, the U(-a, a) amplitude and the N(0, s) deviation (model input units).
        learning_rates: float32 array (steps,) set as the optimizer's learning rate before
            each step, or None: the optimizer's own.
        frequency_cutoffs: float32 array (steps,), or None: at each step only the weights
            of frequencies whose radius (`spectrum.frequency_radius`) is at most the cutoff
            are updated (coarse to fine); None updates all.
        snapshot_steps: sorted steps in [1, steps] after which the images and transparency
            are kept (`Visualization.snapshots`); the loop pauses there, it is not retraced.
    """

    config: MacoConfig
    options: RunOptions
    augmentation: augmentation_lib.Augmentation
    optimizer: keras.optimizers.Optimizer
    crop_scales: np.ndarray
    uniform_noise: np.ndarray
    gaussian_noise: np.ndarray
    learning_rates: Optional[np.ndarray]
    frequency_cutoffs: Optional[np.ndarray]
    snapshot_steps: Tuple[int, ...]

    @classmethod
    def of(cls, config: MacoConfig, options: Optional[RunOptions] = None, *,
           augmentation: Optional[augmentation_lib.Augmentation] = None,
           optimizer: Optional[keras.optimizers.Optimizer] = None, optimizer_rate: bool = False,
           uniform_noise=None, gaussian_noise=None) -> "LoopSettings":
        """Checks what the configuration does not (the augmentation, the optimizer, the crops' split) and builds
        the per-step arrays.

        Args:
            config: a `MacoConfig`.
            options: `RunOptions` (default: all defaults).
            augmentation: default: MACO's, from the configuration (`crop_scale_std`,
                `crop_scale_of`, `antialias`).
            optimizer: default NAdam; its rate is set to the configuration's learning rate at
                every step, unless `optimizer_rate`: then the optimizer keeps its own.
            uniform_noise, gaussian_noise: None (the configuration's noise; no Gaussian noise),
                or schedules in model units: Xplique's recipe (`xplique_compat`), U(-a, a) and
                N(0, s) noise given as such.
        """
        if not isinstance(config, MacoConfig):
            raise TypeError(f"expected a maco_keras.MacoConfig, received: config={type(config).__name__}")
        options = RunOptions() if options is None else options
        if augmentation is None:
            augmentation = augmentation_lib.Augmentation(
                crop_scale_std=config.crop_scale_std, crop_scale_of=config.crop_scale_of, antialias=config.antialias)
        if not isinstance(augmentation, augmentation_lib.Augmentation):
            raise TypeError(f"expected a maco_keras.Augmentation, received: augmentation={augmentation!r}")
        if optimizer is None:
            optimizer, optimizer_rate = default_optimizer(), False
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(f"expected a keras.optimizers.Optimizer, received: optimizer={type(optimizer).__name__}")
        schedules = config.schedules()
        learning_rates = None
        if not optimizer_rate:
            if isinstance(getattr(optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule):
                raise ValueError("expected an optimizer with a constant learning rate when `learning_rate` is given, "
                                 f"received: optimizer learning_rate={optimizer._learning_rate!r}")
            learning_rates = schedules["learning_rate"]
        steps_lib.split_crops(config.crops, steps_lib.resolve_strategy(options.strategy), options.crop_chunk)
        gaussian = np.zeros((config.steps,), np.float32) if gaussian_noise is None else \
            schedule("gaussian_noise", gaussian_noise, config.steps)
        uniform = schedules["noise"] if uniform_noise is None else schedule("uniform_noise", uniform_noise, config.steps)
        return cls(config, options, augmentation, optimizer, schedules["crop_scale"], uniform, gaussian,
                   learning_rates, coarse_to_fine_cutoffs(config.coarse_to_fine, config.steps),
                   snapshot_list(options.snapshot_steps, config.steps))

    steps = property(lambda self: self.config.steps)
    crops = property(lambda self: self.config.crops)
    seed = property(lambda self: self.config.seed)
    relu_redirect_steps = property(lambda self: self.config.relu_redirect_steps)
    strategy = property(lambda self: self.options.strategy)
    crop_chunk = property(lambda self: self.options.crop_chunk)
    jit_compile = property(lambda self: self.options.jit_compile)
    verbose = property(lambda self: self.options.verbose)


def frequency_radii(parameterization):
    """The parameterization's `frequency_radius()`, which coarse to fine needs, or an error naming it."""
    radii = parameterization.frequency_radius()
    if radii is None:
        raise ValueError(f"expected a parameterization of frequencies (e.g. MacoImage) with coarse_to_fine > 0, "
                         f"received: parameterization={type(parameterization).__name__}")
    return radii


def default_optimizer(learning_rate=1.0):
    """NAdam with the paper's learning rate."""
    return keras.optimizers.Nadam(learning_rate=learning_rate)


def optimizer_key(optimizer):
    """Hashable description of an optimizer's configuration (its auto-numbered name aside)."""
    config = {key: value for key, value in optimizer.get_config().items() if key != "name"}
    return type(optimizer).__name__, json.dumps(config, sort_keys=True, default=str)


# A verbose run pauses for its progress bar at most this many times: after every step up
# to this many steps, then every ceil(steps / PROGRESS_UPDATES) steps.
PROGRESS_UPDATES = 50


class OptimizationLoop:
    """A traced-once optimization loop over one parameterization and one objective structure.

    The loop holds a `steps.Step` (one step's gradients and update, on every replica) and
    the run's state: the transparency's running sum and the scores of every step. Its
    `tf.function` runs a chunk of steps in a `tf.while_loop`, stopping at the first
    non-finite loss or gradient; everything that changes between calls (seed, units' keys,
    masks, multipliers, per-step schedules) is a tensor argument with a fixed signature, so
    it is traced once and reused by later calls with the same shapes.

    Args:
        parameterization: an `ImageParameterization` (its trainable weights are optimized),
            built under `strategy.scope()` when a strategy is given.
        objective: a `CompiledObjective` whose N matches the parameterization's.
        num_crops: K, crops per image per step.
        augmentation: an `Augmentation` (the static part of the augmentations).
        optimizer: a Keras optimizer, used as a configuration: the loop builds its own copy
            under the strategy's scope.
        jit_compile: compile the loop with XLA (faster on GPU; slower on CPU).
        strategy: a `tf.distribute.Strategy` (default: the current one).
        crop_chunk: crops per image processed at once by a replica (default: all).
        relu_redirect_steps, learning_rate_schedule, coarse_to_fine: see `LoopSettings`.
    """

    def __init__(self, parameterization, objective, num_crops, augmentation, optimizer, jit_compile=False,
                 strategy=None, crop_chunk=None, relu_redirect_steps=0, learning_rate_schedule=False,
                 coarse_to_fine=False):
        self.parameterization = parameterization
        self.strategy = steps_lib.resolve_strategy(strategy)
        self.step = steps_lib.Step(
            parameterization, objective, num_crops, augmentation, optimizer, strategy, crop_chunk,
            jit_compile=jit_compile, relu_redirect_steps=relu_redirect_steps,
            learning_rate_schedule=learning_rate_schedule,
            radii=frequency_radii(parameterization) if coarse_to_fine else None)
        self.objective = objective
        self.jit_compile = bool(jit_compile) and not steps_lib.is_tpu(self.strategy)
        num_images = parameterization.num_images
        height, width = parameterization.image_size
        only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        with self.strategy.scope():
            # Written once per step with values that are equal on every replica.
            self.transparency_sum = tf.Variable(
                tf.zeros((num_images, height, width, parameterization.channels)), trainable=False,
                aggregation=only_first)
            self.history = tf.Variable(
                tf.zeros((0, num_images)), shape=tf.TensorShape([None, num_images]), trainable=False,
                aggregation=only_first)
        self.trace_count = 0
        step_specs = [
            tf.TensorSpec((), tf.int32),  # seed
            tf.TensorSpec((num_images,), tf.int32),  # the units' keys
            [tf.TensorSpec(mask.shape, tf.float32) for mask in objective.masks],
            tf.TensorSpec((len(objective.masks),), tf.float32),  # multipliers
        ]
        # Per step: crop scale, uniform and gaussian noise, learning rate, frequency cutoff.
        schedule_specs = [tf.TensorSpec((None,), tf.float32)] * 5
        self._run_steps = tf.function(
            self._steps, input_signature=[tf.TensorSpec((), tf.int32)] * 2 + step_specs + schedule_specs,
            jit_compile=self.jit_compile)
        self._step_gradients = tf.function(
            self._gradients_of_step, input_signature=[tf.TensorSpec((), tf.int32)] + step_specs
            + [tf.TensorSpec((), tf.float32)] * 3)

    @property
    def objective(self):
        return self.step.chunks.objective

    @objective.setter
    def objective(self, objective):
        # Same structure (a cached loop's); carries a call's names.
        self.step.chunks.objective = objective

    def _record(self, step, scores, image_gradient):
        self.transparency_sum.assign_add(tf.abs(image_gradient))
        self.history.assign(tf.tensor_scatter_nd_update(self.history, [[step]], [scores]))

    def _steps(self, start, stop, seed, keys, masks, multipliers, scales, uniforms, gaussians, learning_rates, cutoffs):
        self.trace_count += 1  # Python side effect: runs only while tracing.

        def body(step, failed):
            scores, image_gradient, gradients, non_finite = self.step.gradients(
                step, seed, keys, masks, multipliers, scales[step], uniforms[step], gaussians[step])

            def apply():
                self.step.apply(step, scores, image_gradient, gradients, learning_rates[step], cutoffs[step],
                                self._record)
                return tf.constant(-1)

            failed = tf.cond(self.step.first(non_finite) == 0, apply, lambda: step)
            return step + 1, failed

        _, failed = tf.while_loop(
            lambda step, failed: (step < stop) & (failed < 0), body, [start, tf.constant(-1)])
        return failed

    def _gradients_of_step(self, step, seed, keys, masks, multipliers, scale, uniform, gaussian):
        scores, image_gradient, gradients, _ = self.step.gradients(
            step, seed, keys, masks, multipliers, scale, uniform, gaussian)
        gradients = [self.strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in gradients]
        return self.step.first(scores), self.step.first(image_gradient), gradients

    def step_gradients(self, step, seed, masks, multipliers, crop_scale, uniform_noise, gaussian_noise=0.0,
                       unit_keys=None):
        """The scores and gradients of one step at the current images, without updating them.

        Args:
            unit_keys: int32 array (N,), default `seeding.unit_keys` of the objective's names.

        Returns:
            (scores (N,), image gradient (N, H, W, C), phase gradients summed over replicas):
            numpy arrays, the gradients of the sum of the N objectives' scores.
        """
        keys = seeding.unit_keys(self.objective.names) if unit_keys is None else unit_keys
        masks = [tf.constant(mask, tf.float32) for mask in masks]
        scores, image_gradient, gradients = self._step_gradients(
            tf.constant(step), tf.constant(seed), tf.constant(keys, tf.int32), masks,
            tf.constant(multipliers, tf.float32), tf.constant(crop_scale, tf.float32),
            tf.constant(uniform_noise, tf.float32), tf.constant(gaussian_noise, tf.float32))
        return scores.numpy(), image_gradient.numpy(), [g.numpy() for g in gradients]

    def _current(self, steps_done):
        steps_done = max(steps_done, 1)
        return Visualization(
            images=self.parameterization().numpy(),
            transparency=(self.transparency_sum.numpy() / steps_done),
            scores=self.history.numpy()[:steps_done],
            names=list(self.objective.names),
        )

    def run(self, settings, masks, multipliers, unit_keys=None):
        """Runs `settings.steps` steps from a fresh state and returns a `Visualization`.

        Args:
            settings: the `LoopSettings` (steps, seed, schedules, verbosity).
            masks, multipliers: the objective's values (see `CompiledObjective`).
            unit_keys: int32 array (N,) keying each image's random draws (default:
                `seeding.unit_keys` of the objective's names).
        """
        steps, seed, verbose = settings.steps, settings.seed, settings.verbose
        keys = seeding.unit_keys(self.objective.names) if unit_keys is None else np.asarray(unit_keys, np.int32)
        parameterization_lib.reset(self.parameterization, seed, keys)
        self.step.reset()
        self.transparency_sum.assign(tf.zeros_like(self.transparency_sum))
        self.history.assign(tf.zeros((steps, self.parameterization.num_images)))
        masks = [tf.constant(mask, tf.float32) for mask in masks]
        multipliers = tf.constant(multipliers, tf.float32)
        ones = np.ones((steps,), np.float32)  # in place of the schedules a loop does not use
        schedules = [tf.constant(values, tf.float32) for values in (
            settings.crop_scales, settings.uniform_noise, settings.gaussian_noise,
            ones if settings.learning_rates is None else settings.learning_rates,
            ones if settings.frequency_cutoffs is None else settings.frequency_cutoffs)]
        progress = keras.utils.Progbar(steps, stateful_metrics=["mean_unit_value"]) if verbose else None
        chunk = max(1, math.ceil(steps / PROGRESS_UPDATES)) if verbose else steps
        # The loop pauses (Python runs) at the progress updates and the snapshots only.
        stops = sorted(set(range(chunk, steps, chunk)) | set(settings.snapshot_steps) | {steps})
        snapshots = {}
        for start, stop in zip([0] + stops[:-1], stops):
            failed = int(self._run_steps(tf.constant(start), tf.constant(stop), tf.constant(seed),
                                         tf.constant(keys), masks, multipliers, *schedules))
            if failed >= 0:
                raise NonFiniteError(failed, self._current(failed))
            if stop in settings.snapshot_steps:
                current = self._current(stop)
                snapshots[stop] = (current.images, current.transparency)
            if progress is not None:
                progress.update(stop, values=[("mean_unit_value", float(np.mean(self.history.numpy()[stop - 1])))])
        result = self._current(steps)
        result.snapshots = snapshots
        return result


# Where the strategy helpers were before `steps` held them.
resolve_strategy, split_crops, is_tpu = steps_lib.resolve_strategy, steps_lib.split_crops, steps_lib.is_tpu

_MAX_LOOPS = 8


def loops_of(parameterization):
    """The compiled loops built for `parameterization`, most recently used last: they belong to it (and go
    with it), one per objective structure and loop configuration."""
    # Kept outside Keras's attribute tracking: the loops hold variables that are not the layer's weights.
    return parameterization.__dict__.setdefault("_maco_keras_loops", collections.OrderedDict())


def get_loop(parameterization, objective, settings):
    """The `OptimizationLoop` of this parameterization for this objective structure and settings.

    Built on first use and kept by the parameterization; `settings.optimizer` is used as a
    configuration (the loop builds a fresh copy), so the same optimizer object may be
    passed to many calls.
    """
    key = (objective.key, settings.crops, settings.augmentation, optimizer_key(settings.optimizer),
           settings.jit_compile, settings.strategy, settings.crop_chunk, settings.relu_redirect_steps,
           settings.learning_rates is not None, settings.frequency_cutoffs is not None)
    loops = loops_of(parameterization)
    loop = loops.get(key)
    if loop is not None:
        loops.move_to_end(key)
        loop.objective = objective  # same structure; carries this call's names
        return loop
    loop = OptimizationLoop(parameterization, objective, settings.crops, settings.augmentation, settings.optimizer,
                            settings.jit_compile, settings.strategy, settings.crop_chunk, settings.relu_redirect_steps,
                            settings.learning_rates is not None, settings.frequency_cutoffs is not None)
    loops[key] = loop
    while len(loops) > _MAX_LOOPS:
        loops.popitem(last=False)
    return loop


class ParameterizationCache:
    """Reuses one parameterization per configuration, so its compiled loop is reused too.

    Every instance registers itself: `clear_cache()` empties them all.
    """

    def __init__(self, max_size=8):
        self._entries = collections.OrderedDict()
        self._max_size = max_size
        _PARAMETERIZATION_CACHES.add(self)

    def get(self, key, factory):
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = factory()
        self._entries[key] = value
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)
        return value

    def clear(self):
        self._entries.clear()

    def values(self):
        return list(self._entries.values())


_PARAMETERIZATION_CACHES = weakref.WeakSet()


def clear_cache():
    """Forgets what the one-call functions keep between calls: their parameterizations (and with them their
    compiled loops) and feature models. A parameterization of your own keeps its loops until it goes."""
    for cache in list(_PARAMETERIZATION_CACHES):
        cache.clear()
    objective_lib.clear_feature_models()


def cached_loops():
    """The compiled loops of the parameterizations the one-call functions keep (`maco`, `fourier`, `pixel`)."""
    return [loop for cache in list(_PARAMETERIZATION_CACHES) for parameterization in cache.values()
            for loop in loops_of(parameterization).values()]
