"""The paper's baselines on the shared engine: `fourier` (Olah et al. 2017) and `pixel` (CBR).

Both follow Xplique's `optimize`, which the paper used for them: Adam(0.05), the
standard transformations (pad, jitters, random rescale, flip; see `STANDARD_TRANSFORMS`)
and a per-image min-max stretch after the sigmoid. They run on the same compiled loop,
crops and noise code as `maco`, with the same call shape and return values.
"""

from typing import Optional, Sequence, Tuple, Union

import keras
import tensorflow as tf

from . import augmentation as augmentation_lib
from . import parameterization as parameterization_lib
from . import engine
from . import optimization

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


def fourier(objective, units: Optional[Union[int, Sequence[int]]] = None, *, steps: int = 256,
            image_size: Union[int, Tuple[int, int]] = 512, crops: int = 32,
            transforms: Union[str, augmentation_lib.Augmentation] = "standard", noise: float = 0.0,
            learning_rate: float = 0.05, optimizer: Optional[keras.optimizers.Optimizer] = None,
            values_range: Tuple[float, float] = (-1.0, 1.0), decay_power: float = 0.85, std: float = 0.01,
            seed: Optional[int] = None, jit_compile: bool = False, verbose: bool = True,
            input_shape: Optional[Tuple[int, int, int]] = None, return_visualization: bool = False,
            strategy: Optional[tf.distribute.Strategy] = None, crop_chunk: Optional[int] = None,
            batch_size: Optional[int] = None, relu_redirect_steps: int = 0,
            snapshot_steps: Sequence[int] = ()):
    """Olah et al.'s Fourier feature visualization (the paper's "Fourier" baseline).

    Args:
        transforms: "standard" (Lucid/Xplique's transformations), "none" (the whole image
            resized: the "- augmentations" ablation) or an `Augmentation`.
        noise: U(-a, a) noise amplitude as a fraction of the `values_range` span (default 0).
        learning_rate: Adam learning rate (Xplique's 0.05); ignored if `optimizer` is given.
        decay_power, std: see `FourierImage`.
        The other arguments (`strategy`, `crop_chunk`, `batch_size`, `relu_redirect_steps`,
        `snapshot_steps` included) and the return value are `maco`'s.
    """
    augmentation, scale = _augmentation(transforms)

    def make_images(num_images, size, channels, values_range, seed):
        return parameterization_lib.FourierImage(num_images, size, channels, values_range, seed,
                                                 decay_power=decay_power, std=std)

    return engine.run_method(
        objective, units, input_shape, make_images=make_images, cache=_FOURIER, image_key=(decay_power, std),
        steps=steps, image_size=image_size, crops=crops, crop_scale=scale, noise=noise,
        values_range=values_range, seed=seed, augmentation=augmentation,
        optimizer=optimizer if optimizer is not None else keras.optimizers.Adam(learning_rate),
        jit_compile=jit_compile, verbose=verbose, return_visualization=return_visualization,
        strategy=strategy, crop_chunk=crop_chunk, batch_size=batch_size,
        relu_redirect_steps=relu_redirect_steps, snapshot_steps=snapshot_steps)


def pixel(objective, units: Optional[Union[int, Sequence[int]]] = None, *, steps: int = 256,
          image_size: Union[int, Tuple[int, int]] = 512, crops: int = 32,
          transforms: Union[str, augmentation_lib.Augmentation] = "standard", noise: float = 0.0,
          learning_rate: float = 0.05, optimizer: Optional[keras.optimizers.Optimizer] = None,
          values_range: Tuple[float, float] = (-1.0, 1.0), std: float = 0.01, seed: Optional[int] = None,
          jit_compile: bool = False, verbose: bool = True, input_shape: Optional[Tuple[int, int, int]] = None,
          return_visualization: bool = False, strategy: Optional[tf.distribute.Strategy] = None,
          crop_chunk: Optional[int] = None, batch_size: Optional[int] = None, relu_redirect_steps: int = 0,
          snapshot_steps: Sequence[int] = ()):
    """Pixel-space feature visualization with the standard transformations (the paper's "CBR").

    Args: as `fourier`, without `decay_power`.
    """
    augmentation, scale = _augmentation(transforms)

    def make_images(num_images, size, channels, values_range, seed):
        return parameterization_lib.PixelImage(num_images, size, channels, values_range, seed, std=std)

    return engine.run_method(
        objective, units, input_shape, make_images=make_images, cache=_PIXEL, image_key=(std,),
        steps=steps, image_size=image_size, crops=crops, crop_scale=scale, noise=noise,
        values_range=values_range, seed=seed, augmentation=augmentation,
        optimizer=optimizer if optimizer is not None else keras.optimizers.Adam(learning_rate),
        jit_compile=jit_compile, verbose=verbose, return_visualization=return_visualization,
        strategy=strategy, crop_chunk=crop_chunk, batch_size=batch_size,
        relu_redirect_steps=relu_redirect_steps, snapshot_steps=snapshot_steps)
