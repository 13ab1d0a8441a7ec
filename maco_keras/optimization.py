"""The compiled optimization loop shared by MACO and the baselines.

One `OptimizationLoop` exists per (parameterization, objective structure, crops,
augmentation, optimizer configuration, XLA flag). Its `tf.function` runs a whole chunk
of steps in a `tf.while_loop`; everything that may change between calls (seed, masks,
multipliers, per-step schedules) is a tensor argument with a fixed signature, so the
loop is traced once and reused by every later call with the same shapes. Python runs
once per chunk (to update the progress bar), never per step.
"""

import collections
import dataclasses
import json
import logging
import math
import weakref
from typing import List, Optional

import keras
import numpy as np
import tensorflow as tf

from . import augmentation as augmentation_lib
from . import validation


class _SeparateLoopsAreNotRetracing(logging.Filter):
    """Drops TF's "frequent retracing" warning for `OptimizationLoop._steps` only.

    TF counts traces per code object, so the loops of different configurations (each
    traced once, see `trace_count`) add up to a misleading warning.
    """

    def filter(self, record):
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "OptimizationLoop._steps" in message)


tf.get_logger().addFilter(_SeparateLoopsAreNotRetracing())


@dataclasses.dataclass
class Visualization:
    """What an optimization returns.

    Attributes:
        images: float32 array (N, H, W, C) in the model's `values_range`.
        transparency: float32 array (N, H, W, C), mean |dL/dx| over the steps: where the
            model looked (the paper's "transparency for free").
        scores: float32 array (steps, N), each objective's score (mean over crops) per step.
        names: the N objective names.
    """

    images: np.ndarray
    transparency: np.ndarray
    scores: np.ndarray
    names: List[str]


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; `partial` holds the last finite state."""

    def __init__(self, step, partial):
        super().__init__(
            f"Non-finite loss or gradient at step {step}: the optimization stopped there. "
            "The images of the last finite step are in this error's `partial` attribute."
        )
        self.step = step
        self.partial = partial


def default_optimizer(learning_rate=1.0):
    """NAdam with the paper's learning rate."""
    return keras.optimizers.Nadam(learning_rate=learning_rate)


def optimizer_key(optimizer):
    """Hashable description of an optimizer's configuration (its auto-numbered name aside)."""
    config = {key: value for key, value in optimizer.get_config().items() if key != "name"}
    return type(optimizer).__name__, json.dumps(config, sort_keys=True, default=str)


class OptimizationLoop:
    """A traced-once optimization loop over one parameterization and one objective structure.

    Args:
        parameterization: an `ImageParameterization` (its trainable weights are optimized).
        objective: a `CompiledObjective` whose N matches the parameterization's.
        num_crops: K, crops per image per step.
        augmentation: an `Augmentation` (the static part of the augmentations).
        optimizer: a fresh, unbuilt Keras optimizer.
        jit_compile: compile the loop with XLA (faster on GPU/TPU; slower on CPU).
    """

    def __init__(self, parameterization, objective, num_crops, augmentation, optimizer, jit_compile=False):
        self.parameterization = parameterization
        self.objective = objective
        self.num_crops = num_crops
        self.augmentation = augmentation
        self.optimizer = optimizer
        self.jit_compile = bool(jit_compile)
        self.variables = list(parameterization.trainable_variables)
        optimizer.build(self.variables)
        # Snapshot of the freshly built state (zeros, NAdam's u_product = 1, ...), restored
        # before each run so that a run does not depend on the previous one.
        self._optimizer_initial_state = [variable.numpy() for variable in optimizer.variables]
        num_images = parameterization.num_images
        height, width = parameterization.image_size
        self.transparency_sum = tf.Variable(
            tf.zeros((num_images, height, width, parameterization.channels)), trainable=False)
        self.history = tf.Variable(
            tf.zeros((0, num_images)), shape=tf.TensorShape([None, num_images]), trainable=False)
        self.model_dtype = getattr(objective.model, "compute_dtype", None) or "float32"
        self.trace_count = 0
        mask_specs = [tf.TensorSpec(mask.shape, tf.float32) for mask in objective.masks]
        signature = [
            tf.TensorSpec((), tf.int32),  # start
            tf.TensorSpec((), tf.int32),  # stop
            tf.TensorSpec((), tf.int32),  # seed
            mask_specs,
            tf.TensorSpec((len(objective.masks),), tf.float32),  # multipliers
            tf.TensorSpec((None,), tf.float32),  # crop scale per step
            tf.TensorSpec((None,), tf.float32),  # uniform noise amplitude per step
            tf.TensorSpec((None,), tf.float32),  # gaussian noise std per step
        ]
        self._run_steps = tf.function(self._steps, input_signature=signature, jit_compile=jit_compile)

    def _gradients(self, step, seed, masks, multipliers, scale, uniform, gaussian):
        with tf.GradientTape() as tape:
            images = self.parameterization()
            crops = augmentation_lib.augment(
                tf.stack([seed, step]), images, self.num_crops, self.objective.input_shape[:2],
                self.augmentation, scale, uniform, gaussian, gather=self.jit_compile)
            outputs = self.objective.model(tf.cast(crops, self.model_dtype))
            if not isinstance(outputs, (list, tuple)):
                outputs = [outputs]
            scores = self.objective.scores(list(outputs), masks, multipliers, self.num_crops)
            total = tf.reduce_sum(scores)
        # One backward pass gives both: the phase gradient and, for free, the image gradient.
        gradients = tape.gradient(total, [images] + self.variables)
        return scores, total, gradients[0], gradients[1:]

    def _steps(self, start, stop, seed, masks, multipliers, scales, uniforms, gaussians):
        self.trace_count += 1  # Python side effect: runs only while tracing.

        def body(step, failed):
            scores, total, image_gradient, gradients = self._gradients(
                step, seed, masks, multipliers, scales[step], uniforms[step], gaussians[step])
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients + [total]])

            def apply():
                # Gradient *ascent*: the objective is maximized.
                self.optimizer.apply_gradients(zip([-g for g in gradients], self.variables))
                self.transparency_sum.assign_add(tf.abs(image_gradient))
                self.history.scatter_nd_update([[step]], [scores])
                return tf.constant(-1)

            failed = tf.cond(finite, apply, lambda: step)
            return step + 1, failed

        _, failed = tf.while_loop(
            lambda step, failed: (step < stop) & (failed < 0), body, [start, tf.constant(-1)])
        return failed

    def _current(self, steps_done):
        steps_done = max(steps_done, 1)
        return Visualization(
            images=self.parameterization().numpy(),
            transparency=(self.transparency_sum / steps_done).numpy(),
            scores=self.history.numpy()[:steps_done],
            names=list(self.objective.names),
        )

    def run(self, steps, seed, masks, multipliers, crop_scales, uniform_noise, gaussian_noise, verbose=True):
        """Runs `steps` steps from a fresh state and returns a `Visualization`.

        Args:
            steps: number of steps.
            seed: int; the initial weights and every augmentation derive from it.
            masks, multipliers: the objective's values (see `CompiledObjective`).
            crop_scales, uniform_noise, gaussian_noise: float32 arrays (steps,).
            verbose: show a Keras progress bar.
        """
        self.parameterization.reset(seed)
        for variable, value in zip(self.optimizer.variables, self._optimizer_initial_state):
            variable.assign(value)
        self.transparency_sum.assign(tf.zeros_like(self.transparency_sum))
        self.history.assign(tf.zeros((steps, self.parameterization.num_images)))
        masks = [tf.constant(mask, tf.float32) for mask in masks]
        multipliers = tf.constant(multipliers, tf.float32)
        schedules = [tf.constant(values, tf.float32) for values in (crop_scales, uniform_noise, gaussian_noise)]
        progress = keras.utils.Progbar(steps, stateful_metrics=["score"]) if verbose else None
        chunk = max(1, math.ceil(steps / 50)) if verbose else steps
        for start in range(0, steps, chunk):
            stop = min(steps, start + chunk)
            failed = int(self._run_steps(tf.constant(start), tf.constant(stop), tf.constant(seed),
                                         masks, multipliers, *schedules))
            if failed >= 0:
                raise NonFiniteError(failed, self._current(failed))
            if progress is not None:
                progress.update(stop, values=[("score", float(np.mean(self.history[stop - 1])))])
        return self._current(steps)


_LOOPS = collections.OrderedDict()
_MAX_LOOPS = 8


def get_loop(parameterization, objective, num_crops, augmentation, optimizer, jit_compile):
    """The cached `OptimizationLoop` for this configuration, built on first use.

    `optimizer` is used as a configuration: a fresh copy is built for the loop, so the
    same optimizer object may be passed to many calls.
    """
    key = (id(parameterization), objective.key, num_crops, augmentation, optimizer_key(optimizer), bool(jit_compile))
    entry = _LOOPS.get(key)
    if entry is not None and entry[0]() is parameterization:
        _LOOPS.move_to_end(key)
        loop = entry[1]
        loop.objective = objective  # same structure; carries this call's names
        return loop
    loop = OptimizationLoop(parameterization, objective, num_crops, augmentation,
                            type(optimizer).from_config(optimizer.get_config()), jit_compile)
    _LOOPS[key] = (weakref.ref(parameterization), loop)
    while len(_LOOPS) > _MAX_LOOPS:
        _LOOPS.popitem(last=False)
    return loop


def clear_cache():
    """Forgets every compiled loop (and the models and images they hold)."""
    _LOOPS.clear()


def schedule(name, value, steps):
    """A per-step schedule from a number, a callable `step -> number` or a sequence.

    Callables are evaluated once per step here, before the loop, so the loop itself
    runs no Python.

    Returns:
        float32 array (steps,).
    """
    if callable(value):
        values = np.array([value(step) for step in range(steps)], np.float32)
    elif np.ndim(value) == 0:
        values = np.full((steps,), validation.non_negative_float(name, value), np.float32)
    else:
        values = np.asarray(value, np.float32)
        if values.shape != (steps,):
            raise ValueError(f"`{name}` as a sequence must have one value per step ({steps}), got shape {values.shape}.")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"`{name}` must be finite and >= 0 at every step.")
    return values


def cached_loops():
    """The compiled loops currently cached, most recently used last."""
    return [entry[1] for entry in _LOOPS.values()]
