"""Fingerprints of TensorFlow's pictures: 15 calls, each a SHA-256 of its images and transparency.

A refactor that should not change TensorFlow's pictures is checked by running this on both
trees and comparing the two outputs, line for line:

    .venv/bin/python benchmarks/tf_bits.py > after.json
    git worktree add /tmp/base BASE_COMMIT
    PYTHONPATH=/tmp/base .venv/bin/python benchmarks/tf_bits.py > before.json   # from this checkout
    diff before.json after.json && echo identical

The calls cover the engine's paths on the shared MobileNetV1-0.25 (4 steps, 4 crops, 160 px,
seed 0): logits, a batch of one, the paper's preset, an Xplique composition, a given Adam,
a number and a callable schedule, anti-aliased crops with complex phases and ImageNet pixel
statistics, `fourier`, `pixel`, `visualize` with a `MacoImage`, `applications.invert` and
`accentuate`, the ReLU redirect, a snapshot, and VITAL's feature distribution term.
The API used is the one both trees share (keyword settings, `presets.schedules`).

Run:  python benchmarks/tf_bits.py   (~1 min on 2 cores)
"""

import hashlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from xplique.features_visualizations import Objective  # noqa: E402

import maco_keras  # noqa: E402
from maco_keras import applications, baselines, objectives  # noqa: E402
from common import shared_dir  # noqa: E402


def fingerprint(result):
    images, transparency = result[:2] if isinstance(result, tuple) else (result.images, result.transparency)
    return hashlib.sha256(np.asarray(images).tobytes() + np.asarray(transparency).tobytes()).hexdigest()[:16]


def main():
    model = keras.models.load_model(shared_dir() / "models" / "mobilenet_v1_0.25_128.keras")
    common = dict(steps=4, crops=4, image_size=160, seed=0, verbose=False)
    paper = maco_keras.presets.schedules("paper")
    relus = [layer.name for layer in model.layers if "relu" in layer.name]
    layer, deeper = relus[5], relus[9]
    rng = np.random.default_rng(0)
    references = rng.uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    photos = np.random.default_rng(1).uniform(-1, 1, (3, 140, 140, 3)).astype(np.float32)
    calls = {
        "logits": lambda: maco_keras.maco(model, units=[1, 309], **common),
        "paper": lambda: maco_keras.maco(model, units=[1, 309], **common, **paper),
        "batch1": lambda: maco_keras.maco(model, units=[1, 309], batch_size=1, **common),
        "composition": lambda: maco_keras.maco(
            Objective.channel(model, layer, [3, 7]) + 0.5 * Objective.neuron(model, -1, [1]), **common),
        "adam": lambda: maco_keras.maco(model, units=[5], optimizer=keras.optimizers.Adam(0.05), **common),
        "lr_number": lambda: maco_keras.maco(model, units=[5], learning_rate=0.5,
                                             crop_scale=lambda step: 0.3 + 0.01 * step, **common),
        "antialias_complex": lambda: maco_keras.maco(model, units=[5], antialias=True, phase_as="complex",
                                                     pixel_statistics="imagenet", **common),
        "fourier": lambda: baselines.fourier(model, units=[1, 2], **common),
        "pixel": lambda: baselines.pixel(model, units=[1], transforms="none", **common),
        "visualize": lambda: maco_keras.visualize(model, maco_keras.MacoImage(1, 160, values_range=(-1, 1)),
                                                  units=[7], steps=4, crops=4, seed=1, verbose=False),
        "invert": lambda: applications.invert(model, layer, references, steps=3, crops=2, seed=0, verbose=False),
        "accentuate": lambda: applications.accentuate(model, 3, references[0], layer, steps=3, crops=2, seed=0,
                                                      verbose=False),
        "redirect": lambda: maco_keras.maco(Objective.channel(model, layer, [2]), relu_redirect_steps=2, **common),
        "snapshot": lambda: maco_keras.maco(model, units=[1], snapshot_steps=[2], return_visualization=True,
                                            **common).snapshots[2],
        "distribution": lambda: maco_keras.maco(
            objectives.logit(model, [1]) + 0.5 * objectives.feature_distribution(model, [layer, deeper], photos),
            **common),
    }
    print(json.dumps({name: fingerprint(call()) for name, call in calls.items()}, indent=1))


if __name__ == "__main__":
    main()
