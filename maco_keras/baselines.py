"""The paper's baselines on the shared engine: `fourier` (Olah et al. 2017) and `pixel` (CBR).

Both follow Xplique's `optimize`, which the paper used for them: Adam(0.05), the
standard transformations (pad, jitters, random rescale, flip; see `STANDARD_TRANSFORMS`)
and a per-image min-max stretch after the sigmoid. They run on the same compiled loop,
crops and noise code as `maco`, with the same call shape and return values.
"""

from typing import Optional, Sequence, Union

import keras

from . import augmentation as augmentation_lib
from . import parameterization as parameterization_lib
from . import engine
from . import optimization
from .core.config import MacoConfig

# Xplique's `generate_standard_transformations` as boxes: pad 4u, jitters 2u, 2u, 4u, 4u,
# 4u, rescale in [0.92, 0.96], jitters u, u, left-right flip, with u = 1/16 of the side.
# Its random blur (sigma 1-1.1 px at the image's resolution) is left out: after the
# ~2x downsampling to the model input it is below a pixel.
STANDARD_TRANSFORMS = augmentation_lib.Augmentation(crop_center="jitter", flip=True, noise_on="crops")
# "- augmentations" ablation: the whole image, resized to the model input.
NO_TRANSFORMS = augmentation_lib.Augmentation(crop_scale_std=0.0, crop_center=0.0, noise_on="crops")

_FOURIER = optimization.ParameterizationCache()
_PIXEL = optimization.ParameterizationCache()


def _augmentation(transforms):
    if transforms == "standard":
        return STANDARD_TRANSFORMS, 0.5
    if transforms == "none":
        return NO_TRANSFORMS, 1.0
    if isinstance(transforms, augmentation_lib.Augmentation):
        return transforms, 0.5
    raise ValueError(f"`transforms` must be 'standard', 'none' or an Augmentation, got {transforms!r}.")


BASELINE = MacoConfig(steps=256, crop_scale=0.5, noise=0.0, learning_rate=0.05, coarse_to_fine=0.0, contrast=1.0)
"""The baselines' configuration (Xplique's `optimize`): 256 steps, 32 crops, Adam's rate 0.05, no noise.
Their crop scale is the transforms' (0.5 of the side for "standard", the whole image for "none")."""


# MACO's own settings: a baseline's images are no phase at a fixed magnitude, and its crops are `transforms`'.
MACO_ONLY = ("crop_scale", "crop_scale_std", "crop_scale_of", "contrast", "coarse_to_fine", "antialias", "phase_as",
             "pixel_statistics")


def _run(objective, units, config, settings, *, transforms, optimizer, make_images, cache, image_key):
    augmentation, scale = _augmentation(transforms)
    given = [name for name in MACO_ONLY if name in settings]
    if given:
        raise ValueError(f"expected settings a baseline uses (its crops come from `transforms`), received: "
                         f"{', '.join(f'{name}={settings[name]!r}' for name in given)} (MACO's only)")
    config, options = optimization.split_settings(config, settings, BASELINE)
    if config.coarse_to_fine:
        raise ValueError(f"expected coarse_to_fine=0 for a baseline (its images are not a phase of frequencies), "
                         f"received: coarse_to_fine={config.coarse_to_fine} from config (use baselines.BASELINE)")
    loop_settings = optimization.LoopSettings.of(
        config.replace(crop_scale=scale), options, augmentation=augmentation,
        optimizer=keras.optimizers.Adam() if optimizer is None else optimizer,
        optimizer_rate=optimization.keeps_own_rate(optimizer, settings))
    return engine.run_method(objective, units, loop_settings, make_images=make_images, cache=cache,
                             image_key=image_key)


def fourier(objective, units: Optional[Union[int, Sequence[int]]] = None, *, config: Optional[MacoConfig] = None,
            transforms: Union[str, augmentation_lib.Augmentation] = "standard", decay_power: float = 0.85,
            std: float = 0.01, optimizer: Optional[keras.optimizers.Optimizer] = None, **settings):
    """Olah et al.'s Fourier feature visualization (the paper's "Fourier" baseline).

    Args:
        config: a `MacoConfig` (default `BASELINE`: 256 steps, 32 crops, Adam at 0.05, no
            noise, a random seed); its `coarse_to_fine` must be 0, and its other MACO-only
            fields (`MACO_ONLY`: crops, contrast, phase...) are not used. A MACO preset's
            learning rate (1.0) is Adam's too: start from `BASELINE`.
        transforms: "standard" (Lucid/Xplique's transformations), "none" (the whole image
            resized: the "- augmentations" ablation) or an `Augmentation`.
        decay_power, std: see `FourierImage`.
        optimizer: a Keras optimizer instead of Adam; it keeps its own rate unless
            `learning_rate` is given.
        **settings: fields of `MacoConfig` (`steps`, `image_size`, `crops`, `noise` as a
            fraction of the `values_range` span, `learning_rate`, `values_range`, `seed`,
            `relu_redirect_steps`) and `RunOptions`, as for `maco`; the return value is `maco`'s.
    """
    def make_images(num_images, size, channels, values_range, seed):
        return parameterization_lib.FourierImage(num_images, size, channels, values_range, seed,
                                                 decay_power=decay_power, std=std)

    return _run(objective, units, config, settings, transforms=transforms, optimizer=optimizer,
                make_images=make_images, cache=_FOURIER, image_key=(decay_power, std))


def pixel(objective, units: Optional[Union[int, Sequence[int]]] = None, *, config: Optional[MacoConfig] = None,
          transforms: Union[str, augmentation_lib.Augmentation] = "standard", std: float = 0.01,
          optimizer: Optional[keras.optimizers.Optimizer] = None, **settings):
    """Pixel-space feature visualization with the standard transformations (the paper's "CBR").

    Args: as `fourier`, without `decay_power`.
    """
    def make_images(num_images, size, channels, values_range, seed):
        return parameterization_lib.PixelImage(num_images, size, channels, values_range, seed, std=std)

    return _run(objective, units, config, settings, transforms=transforms, optimizer=optimizer,
                make_images=make_images, cache=_PIXEL, image_key=(std,))
