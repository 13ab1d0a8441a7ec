"""Which phases NAdam's epsilon holds back: the size of MACO's phase gradients, by frequency band.

NAdam moves a weight by about `lr * g / (|g| + epsilon)` in its first steps: a phase whose
gradient is well below epsilon barely moves. The paper's implementation (Xplique's `maco`)
maximizes a logit divided by its 1000 classes with Keras's epsilon of 1e-7, so a phase is
held back there when its gradient *of the logit itself* is below 1000 x 1e-7 = 1e-4. Since
format 3 every backend maximizes the logit itself with 1e-7, and those phases move at the
full rate (`frontier.py`'s "MACO, fast preset, NAdam epsilon 1e-4" holds them back again).
This prints, for a few logits of a shared classifier at the first step (the fast preset's
first crops: 32 of half the picture's area, noise 0.1, contrast 0.7, 512 px), the share of
the phases in each band of the frequency radius (1: the band's edge), their median
|gradient| and the share below 1e-4 and below 1e-5.

Run:    python benchmarks/phase_gradients.py [--model mobilenet_v2_1.0_224.keras] [--units 7 455]   # ~1 min
"""

import argparse

import keras
import numpy as np
import tensorflow as tf

from common import markdown_table, shared_dir
from maco_keras.core import crops as crops_lib
from maco_keras.core import draws, magnitude, render
from maco_keras.presets import PRESETS

XPLIQUE_HOLD = 1000 * 1e-7  # Keras's NAdam epsilon at Xplique's scale of a logit (divided by 1000 classes)
BANDS = [(0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 2.0)]


def gradients(model, unit, config, seed=0):
    """|d logit / d phase| (C, H, W // 2 + 1) at the first step of `unit`'s run, as every backend draws it."""
    size, channels = config.image_size, 3
    key = draws.unit_key(f"Logit#{unit}")
    start = draws.uniform(draws.stream_key(seed, key, draws.INITIAL_STEP, draws.PHASE),
                          (channels, *render.spectrum_shape(size)))
    phase = tf.Variable(render.initial_phase(start))
    spectrum = tf.constant(magnitude.imagenet_magnitude(size, channels), tf.float32)
    scale = config.schedules()["crop_scale"][0]
    with tf.GradientTape() as tape:
        image = render.render(phase, spectrum, size, config.contrast, config.values_range)
        boxes = crops_lib.boxes(seed, key, 0, config.crops, scale, config)
        noisy = image + crops_lib.noise(seed, key, 0, tuple(image.shape), config.schedules()["noise"][0])
        score = tf.reduce_mean(model(crops_lib.cut(noisy, boxes, tuple(model.input_shape[1:3])))[:, unit])
    return np.abs(tape.gradient(score, phase).numpy())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2_1.0_224.keras", help="a model in ../shared/models")
    parser.add_argument("--units", type=int, nargs="+", default=[7, 455])
    args = parser.parse_args()
    model = keras.models.load_model(shared_dir() / "models" / args.model)
    config = PRESETS["fast"]
    radius = np.asarray(render.frequency_radius(config.image_size))
    threshold = XPLIQUE_HOLD
    rows = []
    for unit in args.units:
        grads = gradients(model, unit, config)
        radii = np.broadcast_to(radius, grads.shape)
        rows.append([f"logit {unit}", "all", "1.00", f"{np.median(grads):.1e}", f"{np.mean(grads < threshold):.3f}",
                     f"{np.mean(grads < threshold / 10):.3f}"])
        for low, high in BANDS:
            band = (radii >= low) & (radii < high)
            rows.append(["", f"[{low}, {min(high, radii.max()):.2g}]", f"{band.mean():.3f}", f"{np.median(grads[band]):.1e}",
                         f"{np.mean(grads[band] < threshold):.3f}", f"{np.mean(grads[band] < threshold / 10):.3f}"])
    print(f"{args.model}, fast preset, first step, seed 0")
    print(markdown_table(["unit", "radius", "share of phases", "median abs. gradient", "below 1e-4",
                          "below 1e-5"], rows))


if __name__ == "__main__":
    main()
