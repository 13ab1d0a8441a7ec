"""A drop-in replacement for `xplique.features_visualizations.maco`.

Same signature, defaults and return shapes; existing code switches with one import:

    # from xplique.features_visualizations import maco
    from maco_keras.xplique_compat import maco

It reproduces Xplique's augmentation recipe (crop side ~ N(box_size, 0.05) with box_size
decaying linearly from 50% to 5% by default, centres ~ N(0.5, 0.15), Gaussian noise of
std `noise_intensity` plus uniform noise of amplitude `noise_intensity / 2` on the crops)
but runs on maco_keras's engine: traced once, reused across calls, deterministic crops.

Differences, all deliberate:
- the parameterization is the paper's (no re-standardization of the phase at each step);
- `maco_dataset` is measured in the decorrelated colour space the parameterization uses
  (`compute_magnitude`), with its pixels taken in `values_range`;
- grayscale works without `maco_dataset` (ImageNet luminance magnitude);
- an objective with N > 1 combinations returns N images (Xplique refuses them).
"""

import numbers

import numpy as np
import tensorflow as tf
from xplique.features_visualizations import Objective

from . import augmentation as augmentation_lib
from . import objective as objective_lib
from . import optimization
from . import parameterization as parameterization_lib
from . import spectrum
from . import validation
from . import engine
from .core.config import CONFIGS, configure

_IMAGES = optimization.ParameterizationCache()

# Xplique's fixed recipe.
_AUGMENTATION = augmentation_lib.Augmentation(
    crop_scale_std=0.05, crop_scale_range=(0.05, 1.0), crop_center=0.15, noise_on="crops")


def _schedule(name, value, default):
    if value is None:
        return default
    if callable(value):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"`{name}` must be a float, a function of the step or None, got {type(value).__name__}.")


def maco(objective, optimizer=None, maco_dataset=None, nb_steps=256, noise_intensity=0.08, box_size=None,
         nb_crops=32, values_range=(-1, 1), custom_shape=(512, 512)):
    """Optimises an objective with MACO; see `xplique.features_visualizations.maco`.

    Args:
        objective: an Xplique `Objective`.
        optimizer: Keras optimizer, default Nadam(lr=1.0).
        maco_dataset: `tf.data.Dataset` of images (in `values_range`) to measure the
            magnitude on; default the ImageNet magnitude.
        nb_steps: number of iterations.
        noise_intensity: float or `step -> float`; None: log-decay from 1 to 1e-4.
        box_size: float or `step -> float`, mean crop side; None: linear 0.5 -> 0.05.
        nb_crops: crops per step; 0 feeds the whole image resized.
        values_range: input range of the model.
        custom_shape: (height, width) of the image; None: the model input size.

    Returns:
        (image, transparency): a NumPy array (H, W, C) and a tensor (H, W, C), the sum of
        |dL/dx| over the steps; (N, H, W, C) each for an objective with N combinations.
    """
    if not isinstance(objective, Objective):
        raise TypeError(f"`objective` must be an xplique Objective, got {type(objective).__name__}.")
    steps = validation.positive_int("nb_steps", nb_steps)
    if isinstance(nb_crops, bool) or not isinstance(nb_crops, (numbers.Integral, np.integer)) or nb_crops < 0:
        raise ValueError(f"`nb_crops` must be an int >= 0, got {nb_crops!r}.")
    if not isinstance(values_range, (tuple, list)) or len(values_range) != 2:
        raise TypeError(f"`values_range` must be a (low, high) pair, got {values_range!r}.")
    low, high = validation.values_range((min(values_range), max(values_range)))
    noise = _schedule("noise_intensity", noise_intensity, np.logspace(0, -4, steps).astype(np.float32))
    box = _schedule("box_size", box_size, np.linspace(0.5, 0.05, steps).astype(np.float32))
    if maco_dataset is not None and not isinstance(maco_dataset, tf.data.Dataset):
        raise TypeError(f"`maco_dataset` must be a tf.data.Dataset or None, got {type(maco_dataset).__name__}.")

    compiled = objective_lib.compile_objective(objective)
    model_height, model_width, channels = compiled.input_shape
    size = validation.image_size("custom_shape", custom_shape) if custom_shape else (model_height, model_width)
    engine.check_image_size(compiled, size, name="custom_shape")

    magnitude = None
    if maco_dataset is not None:
        magnitude = spectrum.compute_magnitude(maco_dataset, image_size=size, values_range=(low, high))
    magnitude = spectrum.resolve_magnitude(magnitude, size, channels, name="maco_dataset's magnitude"
                                           if maco_dataset is not None else "maco_dataset")

    num_crops, augmentation = nb_crops, _AUGMENTATION
    if nb_crops == 0:
        # The whole image, resized: one crop covering exactly [0, 1]^2.
        num_crops = 1
        augmentation = augmentation_lib.Augmentation(crop_scale_std=0.0, crop_center=0.0, noise_on="crops")
        box = 1.0

    gaussian = optimization.schedule("noise_intensity", noise, steps)

    seed = validation.seed(None)
    images = _IMAGES.get((compiled.num_objectives, size, channels, (low, high)), lambda: parameterization_lib.MacoImage(
        compiled.num_objectives, size, channels, magnitude=magnitude, values_range=(low, high), seed=seed))
    images.magnitude.assign(magnitude)
    config = configure(CONFIGS["paper"], dict(steps=steps, crops=num_crops, image_size=size, seed=seed,
                                              crop_scale=box, values_range=(low, high)))
    # Xplique's noise, in model units: uniform of half its Gaussian deviation.
    settings = optimization.LoopSettings.of(
        config, optimization.RunOptions(verbose=False), augmentation=augmentation, uniform_noise=0.5 * gaussian,
        gaussian_noise=gaussian,
        optimizer=optimizer if optimizer is not None else optimization.default_optimizer(1.0), optimizer_rate=True)
    visualization = engine.run(images, compiled, settings)
    transparency = tf.convert_to_tensor(visualization.transparency * steps)
    if compiled.num_objectives == 1:
        return visualization.images[0], transparency[0]
    return visualization.images, transparency
