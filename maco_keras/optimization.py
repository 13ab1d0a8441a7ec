"""The compiled optimization loop shared by MACO and the baselines.

One `OptimizationLoop` exists per (parameterization, objective structure, crops,
augmentation, optimizer configuration, XLA flag). Its `tf.function` runs a whole chunk
of steps in a `tf.while_loop`; everything that may change between calls (seed, units'
keys, masks, multipliers, per-step schedules) is a tensor argument with a fixed
signature, so the loop is traced once and reused by every later call with the same
shapes. Python runs once per chunk (to update the progress bar), never per step.

The pieces, each on its own: `LoopSettings` (what a run asks for, validated), `steps.Step`
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
from .core.config import Ramp, coarse_to_fine_cutoffs, schedule, snapshot_list  # noqa: F401
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
class LoopSettings:
    """Everything a run needs besides the images and the objective, validated, in one frozen object.

    Build it with `LoopSettings.make(...)`, which validates each field and turns the
    schedules into per-step arrays.

    Attributes:
        steps: optimization steps.
        crops: K, crops per image per step.
        seed: int; the initial weights and every augmentation derive from it.
        crop_scales, uniform_noise, gaussian_noise: float32 arrays (steps,): the mean crop
            scale, the U(-a, a) amplitude and the N(0, s) deviation (model input units).
        augmentation: the static part of the augmentations.
        optimizer: a Keras optimizer, used as a configuration (each loop builds its own copy).
        jit_compile: XLA.
        verbose: progress bar.
        strategy: a `tf.distribute.Strategy` or None (the current one).
        crop_chunk: crops per image processed at once by a replica, or None (all).
        relu_redirect_steps: for how many first steps redirected ReLUs pass gradients
            through dead units (the objective must be compiled with `redirect_relu`).
        snapshot_steps: sorted steps in [1, steps] after which the images and transparency
            are kept (`Visualization.snapshots`); the loop pauses there, it is not retraced.
        learning_rates: float32 array (steps,) set as the optimizer's learning rate before
            each step, or None: the optimizer's own.
        frequency_cutoffs: float32 array (steps,), or None: at each step only the weights
            of frequencies whose radius (`spectrum.frequency_radius`) is at most the cutoff
            are updated (coarse to fine); None updates all.
    """

    steps: int
    crops: int
    seed: int
    crop_scales: np.ndarray
    uniform_noise: np.ndarray
    gaussian_noise: np.ndarray
    augmentation: augmentation_lib.Augmentation
    optimizer: keras.optimizers.Optimizer
    jit_compile: bool = False
    verbose: bool = True
    strategy: Optional[tf.distribute.Strategy] = None
    crop_chunk: Optional[int] = None
    relu_redirect_steps: int = 0
    snapshot_steps: Tuple[int, ...] = ()
    learning_rates: Optional[np.ndarray] = None
    frequency_cutoffs: Optional[np.ndarray] = None

    @classmethod
    def make(cls, *, steps: int = 256, crops: int = 32, seed: Optional[int] = None, crop_scale=0.25,
             uniform_noise=0.0, gaussian_noise=0.0, augmentation: Optional[augmentation_lib.Augmentation] = None,
             optimizer: Optional[keras.optimizers.Optimizer] = None, jit_compile: bool = False,
             verbose: bool = True, strategy: Optional[tf.distribute.Strategy] = None,
             crop_chunk: Optional[int] = None, relu_redirect_steps: int = 0,
             snapshot_steps=(), learning_rate=None, coarse_to_fine: float = 0.0) -> "LoopSettings":
        """Validates the arguments (each error names its parameter) and builds the settings.

        `crop_scale`, `uniform_noise`, `gaussian_noise` and `learning_rate` are numbers,
        `Ramp`s, callables `step -> number` or sequences of `steps` numbers.
        `learning_rate` None keeps the optimizer's own. `coarse_to_fine` in [0, 1]: the
        fraction of the steps over which the frequency cutoff opens (0: off).
        """
        steps = validation.positive_int("steps", steps)
        crops = validation.positive_int("crops", crops)
        seed = validation.seed(seed)
        crop_scales = schedule("crop_scale", crop_scale, steps)
        if np.any(crop_scales <= 0) or np.any(crop_scales > 1):
            raise ValueError("`crop_scale` must be in (0, 1] (a fraction of the image's side or area) at every step.")
        if augmentation is None:
            augmentation = augmentation_lib.Augmentation(crop_scale_of="area")
        if not isinstance(augmentation, augmentation_lib.Augmentation):
            raise TypeError(f"expected a maco_keras.Augmentation, received: augmentation={augmentation!r}")
        if optimizer is None:
            optimizer = default_optimizer()
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(f"`optimizer` must be a keras.optimizers.Optimizer, got {type(optimizer).__name__}.")
        learning_rates = None
        if learning_rate is not None:
            if isinstance(getattr(optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule):
                raise ValueError("expected an optimizer with a constant learning rate when `learning_rate` is given, "
                                 f"received: optimizer learning_rate={optimizer._learning_rate!r}")
            learning_rates = schedule("learning_rate", learning_rate, steps)
        frequency_cutoffs = coarse_to_fine_cutoffs(coarse_to_fine, steps)
        steps_lib.split_crops(crops, steps_lib.resolve_strategy(strategy), crop_chunk)
        if isinstance(relu_redirect_steps, bool) or not isinstance(relu_redirect_steps, int) or relu_redirect_steps < 0:
            raise ValueError(f"expected an int >= 0, received: relu_redirect_steps={relu_redirect_steps!r}")
        return cls(steps, crops, seed, crop_scales, schedule("uniform_noise", uniform_noise, steps),
                   schedule("gaussian_noise", gaussian_noise, steps), augmentation, optimizer, bool(jit_compile),
                   bool(verbose), strategy, crop_chunk, relu_redirect_steps, snapshot_list(snapshot_steps, steps),
                   learning_rates, frequency_cutoffs)


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

_LOOPS = collections.OrderedDict()
_MAX_LOOPS = 8


def get_loop(parameterization, objective, settings):
    """The cached `OptimizationLoop` for this parameterization, objective structure and settings.

    Built on first use; `settings.optimizer` is used as a configuration (the loop builds
    a fresh copy), so the same optimizer object may be passed to many calls.
    """
    strategy_key = None if settings.strategy is None else id(settings.strategy)
    key = (id(parameterization), objective.key, settings.crops, settings.augmentation,
           optimizer_key(settings.optimizer), settings.jit_compile, strategy_key, settings.crop_chunk,
           settings.relu_redirect_steps, settings.learning_rates is not None, settings.frequency_cutoffs is not None)
    entry = _LOOPS.get(key)
    if entry is not None and entry[0]() is parameterization:
        _LOOPS.move_to_end(key)
        loop = entry[1]
        loop.objective = objective  # same structure; carries this call's names
        return loop
    loop = OptimizationLoop(parameterization, objective, settings.crops, settings.augmentation, settings.optimizer,
                            settings.jit_compile, settings.strategy, settings.crop_chunk, settings.relu_redirect_steps,
                            settings.learning_rates is not None, settings.frequency_cutoffs is not None)
    _LOOPS[key] = (weakref.ref(parameterization), loop)
    while len(_LOOPS) > _MAX_LOOPS:
        _LOOPS.popitem(last=False)
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


_PARAMETERIZATION_CACHES = weakref.WeakSet()


def clear_cache():
    """Forgets every cache: compiled loops, reused parameterizations and feature models."""
    _LOOPS.clear()
    for cache in list(_PARAMETERIZATION_CACHES):
        cache.clear()
    objective_lib.clear_feature_models()


def cached_loops():
    """The compiled loops currently cached, most recently used last."""
    return [entry[1] for entry in _LOOPS.values()]
