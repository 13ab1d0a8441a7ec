"""maco_keras: MACO feature visualization for Keras and Xplique.

Quick start:
    >>> import maco_keras
    >>> images, transparency = maco_keras.maco(model, units=[1, 309])

The package loads lazily: `import maco_keras` is instant and TensorFlow is imported on
first use, so the command line can set TensorFlow's log level before it loads. On Keras's
JAX and PyTorch backends (`KERAS_BACKEND=jax` or `torch`) `maco`, `Visualizer`,
`MacoConfig` and `objectives` never import TensorFlow or Xplique. Every
name below and every submodule (`maco_keras.applications`, `.baselines`, ...) is available
as an attribute, those of the run folders (`maco_keras.runs`: `.results`, `.atlas`,
`.cli`, ...) and of evaluation (`maco_keras.evaluation`: `.metrics`, `.plots`) also by
their short names (`maco_keras.plots` is `maco_keras.evaluation.plots`).

Folders: `core` (backend-neutral), `backends` (one module per Keras backend), the
TensorFlow engine at the top (`engine`, `optimization`, `parameterization`, ...), `runs`
(run folders, the command line and the atlas) and `evaluation`.
"""

import importlib

__version__ = "0.4.1"

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
# Every submodule as an attribute; those of the run folders and of evaluation also by their short names.
_SUBMODULES = {
    **{name: name for name in (
        "applications", "backends", "core", "augmentation", "baselines", "color", "engine", "evaluation", "models",
        "objective", "objectives", "optimization", "parameterization", "presets", "runs", "seeding", "spectrum",
        "taps", "validation", "visualizer", "xplique_compat")},
    **{name: f"runs.{name}" for name in ("storage", "results", "examples", "atlas", "cli")},
    **{name: f"evaluation.{name}" for name in ("metrics", "plots")},
}

__all__ = sorted([*_EXPORTS, "Objective", *_SUBMODULES])


def __getattr__(name):
    if name == "Objective":
        from xplique.features_visualizations import Objective

        return Objective
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{_SUBMODULES[name]}", __name__)
    raise AttributeError(f"module 'maco_keras' has no attribute {name!r}")


def __dir__():
    return __all__
