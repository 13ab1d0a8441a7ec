"""maco_keras: MACO feature visualization for Keras and Xplique.

Quick start:
    >>> import maco_keras
    >>> images, transparency = maco_keras.maco(model, units=[1, 309])
"""

from xplique.features_visualizations import Objective

from .augmentation import Augmentation
from .maco import maco
from .optimization import NonFiniteError, Visualization, clear_cache
from .parameterization import ImageParameterization, MacoImage
from .spectrum import (
    compute_magnitude,
    imagenet_magnitude,
    load_magnitude,
    resize_magnitude,
    save_magnitude,
)

__version__ = "0.1.0"

__all__ = [
    "Augmentation",
    "ImageParameterization",
    "MacoImage",
    "NonFiniteError",
    "Objective",
    "Visualization",
    "clear_cache",
    "compute_magnitude",
    "imagenet_magnitude",
    "load_magnitude",
    "maco",
    "resize_magnitude",
    "save_magnitude",
]
