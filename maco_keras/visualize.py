"""`visualize`: optimize any image parameterization for any objective.

This is the one entry point to the shared loop; `maco`, `fourier` and `pixel` only
choose the parameterization and their defaults.
"""

import collections

import keras
import numpy as np

from . import augmentation as augmentation_lib
from . import objective as objective_lib
from . import optimization
from . import validation


def check_common(steps, crops, seed):
    """Validates the counts every method shares; returns (steps, crops, seed)."""
    return validation.positive_int("steps", steps), validation.positive_int("crops", crops), validation.seed(seed)


def crop_scale_schedule(crop_scale, steps):
    """The per-step crop scales, each in (0, 1]."""
    crop_scales = optimization.schedule("crop_scale", crop_scale, steps)
    if np.any(crop_scales <= 0) or np.any(crop_scales > 1):
        raise ValueError("`crop_scale` must be in (0, 1] (a fraction of the image's side or area) at every step.")
    return crop_scales


def check_image_size(compiled, image_size, name="image_size"):
    """Raises unless the images are at least as large as the model input."""
    model_height, model_width, _ = compiled.input_shape
    if image_size[0] < model_height or image_size[1] < model_width:
        raise ValueError(
            f"`{name}` {tuple(image_size)} is smaller than the model input {(model_height, model_width)}: "
            "crops are resized *up* to the model input, so the image must be at least that large."
        )


def compile_for(objective, units, input_shape, image_size, name="image_size"):
    """Compiles the objective and checks the image is at least the model input."""
    compiled = objective_lib.compile_objective(objective, units=units, input_shape=input_shape)
    check_image_size(compiled, image_size, name)
    return compiled


def visualize(parameterization, compiled, steps, crops, seed, crop_scale=0.25, uniform_noise=0.0,
              gaussian_noise=0.0, augmentation=None, optimizer=None, jit_compile=False, verbose=True,
              strategy=None, crop_chunk=None):
    """Optimizes `parameterization` for a compiled objective with the shared loop.

    Args:
        parameterization: an `ImageParameterization` with N == compiled.num_objectives.
        compiled: a `CompiledObjective` (see `objective.compile_objective`).
        steps, crops, seed: validated ints.
        crop_scale: mean crop side as a fraction of the image side: number, callable
            `step -> number` or sequence of `steps` numbers.
        uniform_noise: amplitude a of U(-a, a) noise, in model input units (same forms).
        gaussian_noise: standard deviation of N(0, s) noise, in model input units (same forms).
        augmentation: `Augmentation` (default: the paper's).
        optimizer: Keras optimizer used as a configuration (default NAdam, lr 1.0).
        jit_compile: XLA.
        verbose: progress bar.
        strategy: a `tf.distribute.Strategy` whose replicas share each step's crops (the
            parameterization must be built under its scope); None: the current strategy.
        crop_chunk: crops per image processed at once (default: all of a replica's).

    Returns:
        A `Visualization`.
    """
    if parameterization.num_images != compiled.num_objectives:
        raise ValueError(
            f"The parameterization holds {parameterization.num_images} images but the objective has "
            f"{compiled.num_objectives} objectives."
        )
    if parameterization.channels != compiled.input_shape[-1]:
        raise ValueError(
            f"The images have {parameterization.channels} channels but the model expects {compiled.input_shape[-1]}."
        )
    augmentation = augmentation or augmentation_lib.Augmentation()
    optimizer = optimizer if optimizer is not None else optimization.default_optimizer()
    crop_scales = crop_scale_schedule(crop_scale, steps)
    uniform = optimization.schedule("uniform_noise", uniform_noise, steps)
    gaussian = optimization.schedule("gaussian_noise", gaussian_noise, steps)
    loop = optimization.get_loop(parameterization, compiled, crops, augmentation, optimizer, jit_compile, strategy,
                                 crop_chunk)
    return loop.run(steps, seed, compiled.masks, compiled.multipliers, crop_scales, uniform, gaussian, verbose)


class ParameterizationCache:
    """Reuses one parameterization per configuration, so its compiled loop is reused too."""

    def __init__(self, max_size=8):
        self._entries = collections.OrderedDict()
        self._max_size = max_size

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


def run_method(objective, units, input_shape, *, make_images, cache, steps, image_size, crops, crop_scale, noise,
               values_range, seed, augmentation, optimizer, jit_compile, verbose, return_visualization,
               prepare=None, image_key=(), strategy=None, crop_chunk=None, batch_size=None):
    """What `maco`, `fourier` and `pixel` share: validate, compile, reuse, run, return.

    Args:
        make_images: `(num_images, image_size, channels, values_range, seed) -> ImageParameterization`.
        cache: the method's `ParameterizationCache`.
        prepare: optional `(compiled, image_size) -> callable(images)`, run after the
            validation to check method-specific arguments and load per-call state into a
            (possibly reused) parameterization.
        image_key: the method's own settings that change its parameterization (part of
            the reuse key).
        noise: amplitude of U(-a, a) as a fraction of the `values_range` span.
        strategy, crop_chunk: see `visualize`.
        batch_size: objectives optimized together (default: all N); memory grows with it.
        The other arguments are `maco`'s.
    """
    steps, crops, seed = check_common(steps, crops, seed)
    size = validation.image_size("image_size", image_size)
    low, high = validation.values_range(values_range)
    # Noise is given as a fraction of the input range: in model units it scales with the span.
    uniform = optimization.schedule("noise", noise, steps) * (high - low)
    crop_scale = crop_scale_schedule(crop_scale, steps)
    if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(f"`optimizer` must be a keras.optimizers.Optimizer, got {type(optimizer).__name__}.")
    resolved = optimization.resolve_strategy(strategy)
    optimization.split_crops(crops, resolved, crop_chunk)
    if batch_size is not None:
        batch_size = validation.positive_int("batch_size", batch_size)
    compiled = compile_for(objective, units, input_shape, size)
    channels = compiled.input_shape[-1]
    load = prepare(compiled, size) if prepare is not None else None
    batches = [compiled] if batch_size is None else compiled.batches(batch_size)
    visualizations = []
    for batch in batches:
        def build(batch=batch):
            with resolved.scope():
                return make_images(batch.num_objectives, size, channels, (low, high), seed)

        key = (batch.num_objectives, size, channels, (low, high), tuple(image_key), id(strategy))
        images = cache.get(key, build)
        if load is not None:
            load(images)
        visualizations.append(visualize(
            images, batch, steps, crops, seed, crop_scale=crop_scale, uniform_noise=uniform,
            augmentation=augmentation, optimizer=optimizer, jit_compile=jit_compile, verbose=verbose,
            strategy=strategy, crop_chunk=crop_chunk))
    visualization = optimization.Visualization.concatenate(visualizations)
    if return_visualization:
        return visualization
    return visualization.images, visualization.transparency
