"""`visualize`: optimize any image parameterization for any objective, the one entry point.

`maco` (`presets`), `fourier` and `pixel` (`baselines`) are presets on top of it: they
choose a parameterization, an augmentation and an optimizer, and reuse the
parameterization between calls so that its compiled loop is reused too.
"""

from typing import Callable, Optional, Sequence, Tuple, Union

import keras
import tensorflow as tf

from . import augmentation as augmentation_lib
from . import objective as objective_lib
from . import optimization
from . import parameterization as parameterization_lib
from . import validation


def check_image_size(compiled, image_size, name="image_size"):
    """Raises unless the images are at least as large as the model input."""
    model_height, model_width, _ = compiled.input_shape
    if image_size[0] < model_height or image_size[1] < model_width:
        raise ValueError(
            f"`{name}` {tuple(image_size)} is smaller than the model input {(model_height, model_width)}: "
            "crops are resized *up* to the model input, so the image must be at least that large."
        )


def compile_for(objective, units, input_shape, image_size, name="image_size", redirect_relu=False):
    """Compiles the objective and checks the image is at least the model input."""
    compiled = objective_lib.compile_objective(objective, units=units, input_shape=input_shape,
                                               redirect_relu=redirect_relu)
    check_image_size(compiled, image_size, name)
    return compiled


def run(parameterization, compiled, settings):
    """Optimizes `parameterization` for a compiled objective with the shared loop.

    Args:
        parameterization: an `ImageParameterization` with N == compiled.num_objectives.
        compiled: a `CompiledObjective` (see `objective.compile_objective`).
        settings: `optimization.LoopSettings`.

    Returns:
        A `Visualization`.
    """
    if parameterization.num_images != compiled.num_objectives:
        raise ValueError(
            f"expected a parameterization of {compiled.num_objectives} images, one per objective, received: "
            f"parameterization.num_images={parameterization.num_images}")
    if parameterization.channels != compiled.input_shape[-1]:
        raise ValueError(
            f"expected images of {compiled.input_shape[-1]} channels (the model's), received: "
            f"parameterization.channels={parameterization.channels}")
    loop = optimization.get_loop(parameterization, compiled, settings)
    return loop.run(settings, compiled.masks, compiled.multipliers)


def visualize(
    objective,
    parameterization: parameterization_lib.ImageParameterization,
    *,
    units: Optional[Union[int, Sequence[int]]] = None,
    input_shape: Optional[Tuple[int, int, int]] = None,
    augmentation: Optional[augmentation_lib.Augmentation] = None,
    optimizer: Optional[keras.optimizers.Optimizer] = None,
    steps: int = 256,
    crops: int = 32,
    crop_scale: Union[float, Callable[[int], float], Sequence[float]] = 0.25,
    noise: Union[float, Callable[[int], float], Sequence[float]] = 0.1,
    seed: Optional[int] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    crop_chunk: Optional[int] = None,
    relu_redirect_steps: int = 0,
    jit_compile: bool = False,
    verbose: bool = True,
    return_visualization: bool = False,
    snapshot_steps: Sequence[int] = (),
    learning_rate=None,
    coarse_to_fine: float = 0.0,
):
    """Optimizes the images of any parameterization for an objective, with any augmentation.

    The parameterization holds one image per objective and defines how the images are
    made from trainable weights (MACO's `MacoImage`, `FourierImage`, `PixelImage`, or
    your own `ImageParameterization` subclass). Each step draws `crops` crops of every
    image (see `Augmentation`), scores them and takes one optimizer step; the whole run
    is one compiled loop, traced once per configuration and reused.

    Args:
        objective: an Xplique `Objective` (any composition), a Keras model with `units`,
            or a callable `images -> scores` with `input_shape`.
        parameterization: an `ImageParameterization` of N images (N = the objective's
            number of objectives), at least as large as the model input, with the
            model's channels and input range (`values_range`). Built under
            `strategy.scope()` when a strategy is given. Its `reset(seed)` starts each run.
        units, input_shape: see `maco`.
        augmentation: an `Augmentation` (default: MACO's, crops of N(0.25, 0.1) of the area).
        optimizer: a Keras optimizer, used as a configuration (default: NAdam, lr 1.0).
        steps: optimization steps (default 256).
        crops: crops per image per step (default 32).
        crop_scale: mean crop size as a fraction of the image (default 0.25); a number, a
            callable `step -> number` or one number per step.
        noise: amplitude of the U(-a, a) noise as a fraction of the parameterization's
            `values_range` span (default 0.1); same forms.
        seed: int; the same seed gives the same images (default None: random).
        learning_rate: the optimizer's learning rate at each step (same forms as
            `crop_scale`, e.g. `Ramp(1.0, 0.1, "cosine")`); default None: the optimizer's own.
        coarse_to_fine: fraction of the steps over which the updated frequencies widen
            from the lowest to all (default 0: all from the start); needs a
            parameterization of frequencies (`MacoImage`). See `maco`.
        strategy, crop_chunk, relu_redirect_steps, jit_compile, verbose,
            return_visualization, snapshot_steps: see `maco`.

    Returns:
        (images, transparency), float32 arrays (N, H, W, C), or the `Visualization`.

    Example:
        >>> class MyImages(maco_keras.ImageParameterization): ...   # build, call, reset
        >>> images = MyImages(num_images=2, image_size=512, values_range=(-1, 1))
        >>> images, transparency = maco_keras.visualize(model, images, units=[1, 309], steps=128)
    """
    if not isinstance(parameterization, parameterization_lib.ImageParameterization):
        raise TypeError(f"expected a maco_keras.ImageParameterization, received: "
                        f"parameterization={type(parameterization).__name__}")
    low, high = parameterization.values_range
    # Noise is given as a fraction of the input range: in model units it scales with the span.
    uniform = optimization.schedule("noise", noise, validation.positive_int("steps", steps)) * (high - low)
    settings = optimization.LoopSettings.make(
        steps=steps, crops=crops, seed=seed, crop_scale=crop_scale, uniform_noise=uniform, augmentation=augmentation,
        optimizer=optimizer, jit_compile=jit_compile, verbose=verbose, strategy=strategy, crop_chunk=crop_chunk,
        relu_redirect_steps=relu_redirect_steps, snapshot_steps=snapshot_steps, learning_rate=learning_rate,
        coarse_to_fine=coarse_to_fine)
    if settings.frequency_cutoffs is not None:
        optimization.frequency_radii(parameterization)  # its error, before the objective is compiled
    compiled = compile_for(objective, units, input_shape, parameterization.image_size,
                           redirect_relu=relu_redirect_steps > 0)
    visualization = run(parameterization, compiled, settings)
    if return_visualization:
        return visualization
    return visualization.images, visualization.transparency


def run_method(objective, units, input_shape, *, make_images, cache, steps, image_size, crops, crop_scale, noise,
               values_range, seed, augmentation, optimizer, jit_compile, verbose, return_visualization,
               prepare=None, image_key=(), strategy=None, crop_chunk=None, batch_size=None, relu_redirect_steps=0,
               snapshot_steps=(), learning_rate=None, coarse_to_fine=0.0):
    """What the presets (`maco`, `fourier`, `pixel`) share: validate, compile, reuse a parameterization, `visualize`.

    Args:
        make_images: `(num_images, image_size, channels, values_range, seed) -> ImageParameterization`.
        cache: the preset's `optimization.ParameterizationCache`.
        prepare: optional `(compiled, image_size) -> callable(images, start, stop)`, run
            after the validation to check preset-specific arguments; the callable loads
            per-call state into a (possibly reused) parameterization of objectives
            start to stop.
        image_key: the preset's own settings that change its parameterization (part of
            the reuse key).
        batch_size: objectives optimized together (default: all N); memory grows with it.
        The other arguments are `maco`'s.
    """
    seed = validation.seed(seed)
    size = validation.image_size("image_size", image_size)
    low, high = validation.values_range(values_range)
    # Everything the loop takes is validated here, before the objective is compiled.
    optimization.LoopSettings.make(
        steps=steps, crops=crops, seed=seed, crop_scale=crop_scale, uniform_noise=optimization.schedule(
            "noise", noise, validation.positive_int("steps", steps)), augmentation=augmentation, optimizer=optimizer,
        strategy=strategy, crop_chunk=crop_chunk, relu_redirect_steps=relu_redirect_steps,
        snapshot_steps=snapshot_steps, learning_rate=learning_rate, coarse_to_fine=coarse_to_fine)
    if batch_size is not None:
        batch_size = validation.positive_int("batch_size", batch_size)
    compiled = compile_for(objective, units, input_shape, size, redirect_relu=relu_redirect_steps > 0)
    channels = compiled.input_shape[-1]
    load = prepare(compiled, size) if prepare is not None else None
    scope = optimization.resolve_strategy(strategy).scope
    visualizations, start = [], 0
    for batch in ([compiled] if batch_size is None else compiled.batches(batch_size)):
        def build(batch=batch):
            with scope():
                return make_images(batch.num_objectives, size, channels, (low, high), seed)

        images = cache.get((batch.num_objectives, size, channels, (low, high), tuple(image_key), id(strategy)), build)
        if load is not None:
            load(images, start, start + batch.num_objectives)
        start += batch.num_objectives
        visualizations.append(visualize(
            batch, images, augmentation=augmentation, optimizer=optimizer, steps=steps, crops=crops,
            crop_scale=crop_scale, noise=noise, seed=seed, strategy=strategy, crop_chunk=crop_chunk,
            relu_redirect_steps=relu_redirect_steps, jit_compile=jit_compile, verbose=verbose,
            return_visualization=True, snapshot_steps=snapshot_steps, learning_rate=learning_rate,
            coarse_to_fine=coarse_to_fine))
    visualization = optimization.Visualization.concatenate(visualizations)
    if return_visualization:
        return visualization
    return visualization.images, visualization.transparency
