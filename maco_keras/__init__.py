"""maco_keras: MACO feature visualization for Keras and Xplique.

Quick start:
    >>> import maco_keras
    >>> images, transparency = maco_keras.maco(model, units=[1, 309])

The package loads lazily: `import maco_keras` is instant and TensorFlow is imported on
first use, so the command line can set TensorFlow's log level before it loads. On Keras's
JAX and PyTorch backends (`KERAS_BACKEND=jax` or `torch`) `maco`, `Visualizer`,
`MacoConfig` and `objectives` never import TensorFlow or Xplique. Every
name below and every submodule (`maco_keras.plots`, `.metrics`, `.applications`,
`.baselines`, ...) is available as an attribute.
"""

import importlib

__version__ = "0.3.0"

_EXPORTS = {
    "Augmentation": "augmentation",
    "ImageParameterization": "parameterization",
    "MacoImage": "parameterization",
    "FourierImage": "parameterization",
    "PixelImage": "parameterization",
    "LoopSettings": "optimization",
    "RunOptions": "optimization",
    "PRESETS": "presets",
    "Ramp": "core.config",
    "MacoConfig": "core.config",
    "CONFIGS": "core.config",
    "NonFiniteError": "core.outcome",
    "Visualization": "core.outcome",
    "Visualizer": "visualizer",
    "clear_cache": "optimization",
    "compute_magnitude": "spectrum",
    "imagenet_magnitude": "spectrum",
    "load_magnitude": "spectrum",
    "resize_magnitude": "spectrum",
    "save_magnitude": "spectrum",
    "maco": "visualizer",
    "visualize": "engine",
}
_SUBMODULES = (
    "applications", "atlas", "backends", "core", "augmentation", "baselines", "cli", "color", "engine", "examples", "metrics", "models", "objective",
    "objectives", "optimization", "parameterization", "plots", "presets", "results", "seeding", "spectrum", "taps",
    "validation", "visualizer", "xplique_compat",
)

__all__ = sorted([*_EXPORTS, "Objective", *_SUBMODULES])


def __getattr__(name):
    if name == "Objective":
        from xplique.features_visualizations import Objective

        return Objective
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'maco_keras' has no attribute {name!r}")


def __dir__():
    return __all__
