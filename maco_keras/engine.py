"""`visualize`: optimize any image parameterization for any objective, the one entry point.

`maco` (`presets`), `fourier` and `pixel` (`baselines`) are presets on top of it: they
choose a parameterization, an augmentation and an optimizer, and reuse the
parameterization between calls so that its compiled loop is reused too.
"""

from typing import Optional, Sequence, Union

import keras

from . import augmentation as augmentation_lib
from . import objective as objective_lib
from . import optimization
from . import parameterization as parameterization_lib
from .core.config import CONFIGS, MacoConfig


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


VISUALIZE_DEFAULTS = CONFIGS["paper"]
"""`visualize`'s configuration when none is given: the paper's steps, crops and schedules."""


def visualize(
    objective,
    parameterization: parameterization_lib.ImageParameterization,
    *,
    units: Optional[Union[int, Sequence[int]]] = None,
    config: Optional[MacoConfig] = None,
    augmentation: Optional[augmentation_lib.Augmentation] = None,
    optimizer: Optional[keras.optimizers.Optimizer] = None,
    **settings,
):
    """Optimizes the images of any parameterization for an objective, with any augmentation.

    The parameterization holds one image per objective and defines how the images are
    made from trainable weights (MACO's `MacoImage`, `FourierImage`, `PixelImage`, or
    your own `ImageParameterization` subclass). Each step draws `crops` crops of every
    image (see `Augmentation`), scores them and takes one optimizer step; the whole run
    is one compiled loop, traced once per configuration and kept by the parameterization.

    Args:
        objective: an Xplique `Objective` (any composition), a Keras model with `units`,
            or a callable `images -> scores` with `input_shape`.
        parameterization: an `ImageParameterization` of N images (N = the objective's
            number of objectives), at least as large as the model input, with the
            model's channels and input range (`values_range`). Built under
            `strategy.scope()` when a strategy is given. Its `reset(seed)` starts each run.
        units: see `maco`.
        config: a `MacoConfig` (default `VISUALIZE_DEFAULTS`, the paper's 256 steps, 32
            crops of 0.25 of the area, noise 0.1, learning rate 1.0, with a random seed).
            Its `image_size` and `values_range` are the parameterization's.
        augmentation: an `Augmentation` (default: MACO's, from the configuration).
        optimizer: a Keras optimizer, used as a configuration (default: NAdam). Given
            without a `learning_rate` setting, it keeps its own rate.
        **settings: fields of `MacoConfig` overriding `config`'s (`steps`, `crops`,
            `crop_scale`, `noise`, `learning_rate`, `coarse_to_fine`, `seed`, ...), and
            `RunOptions` (`strategy`, `crop_chunk`, `jit_compile`, `verbose`,
            `snapshot_steps`, `return_visualization`, `input_shape`).

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
    config, options = optimization.split_settings(config, settings, VISUALIZE_DEFAULTS)
    if options.batch_size is not None:
        raise ValueError(f"expected batch_size only with maco, fourier or pixel (a parameterization holds its own "
                         f"N images), received: batch_size={options.batch_size}")
    own = {"image_size": tuple(parameterization.image_size), "values_range": tuple(parameterization.values_range)}
    for name, value in own.items():
        if name in settings and tuple(getattr(config, name)) != value:
            raise ValueError(f"expected the parameterization's {name} {value}, received: {name}={settings[name]!r}")
    # Noise is a fraction of the input range: in model units it scales with the parameterization's span.
    config = config.replace(**own)
    loop_settings = optimization.LoopSettings.of(
        config, options, augmentation=augmentation, optimizer=optimizer,
        optimizer_rate=optimization.keeps_own_rate(optimizer, settings))
    if loop_settings.frequency_cutoffs is not None:
        optimization.frequency_radii(parameterization)  # its error, before the objective is compiled
    compiled = compile_for(objective, units, options.input_shape, parameterization.image_size,
                           redirect_relu=config.relu_redirect_steps > 0)
    visualization = run(parameterization, compiled, loop_settings)
    if options.return_visualization:
        return visualization
    return visualization.images, visualization.transparency


def run_method(objective, units, settings, *, make_images, cache, prepare=None, image_key=()):
    """What the presets (`maco`, `fourier`, `pixel`) share: compile, reuse a parameterization, run each batch.

    Args:
        settings: the run's `optimization.LoopSettings` (validated: nothing is compiled before).
        make_images: `(num_images, image_size, channels, values_range, seed) -> ImageParameterization`.
        cache: the preset's `optimization.ParameterizationCache`.
        prepare: optional `(compiled, image_size) -> callable(images, start, stop)`, run
            after the validation to check preset-specific arguments; the callable loads
            per-call state into a (possibly reused) parameterization of objectives
            start to stop.
        image_key: the preset's own settings that change its parameterization (part of
            the reuse key).
    """
    config, options = settings.config, settings.options
    size, values_range = config.image_size, config.values_range
    compiled = compile_for(objective, units, options.input_shape, size, redirect_relu=config.relu_redirect_steps > 0)
    channels = compiled.input_shape[-1]
    load = prepare(compiled, size) if prepare is not None else None
    scope = optimization.resolve_strategy(options.strategy).scope
    batches = [compiled] if options.batch_size is None else compiled.batches(options.batch_size)
    visualizations, start = [], 0
    for batch in batches:
        def build(batch=batch):
            with scope():
                return make_images(batch.num_objectives, size, channels, values_range, config.seed)

        images = cache.get((batch.num_objectives, size, channels, values_range, tuple(image_key), options.strategy),
                           build)
        if load is not None:
            load(images, start, start + batch.num_objectives)
        start += batch.num_objectives
        visualizations.append(run(images, batch, settings))
    visualization = optimization.Visualization.concatenate(visualizations)
    if options.return_visualization:
        return visualization
    return visualization.images, visualization.transparency
