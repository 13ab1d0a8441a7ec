"""Speed: maco_keras.maco vs Xplique's maco vs the model's forward+backward floor.

For N = 1 and N = 8 logits of MobileNetV2 at the same settings (image size, steps, crops
per objective), prints seconds per image for:
- floor: the model's forward + backward (gradient w.r.t. the input) on the same number of
  crops per step (K * N), times the steps, divided by N: no optimizer, no FFT, no crops;
- maco_keras, first call (includes tracing) and a second call with other units (the
  compiled loop is reused: this is the steady state of a notebook or a batch job);
- xplique.features_visualizations.maco, called once per objective (it takes one).

Run:  python benchmarks/speed.py [--steps 24] [--crops 32] [--image-size 512] [--sizes 1 8]
Seconds per image scale linearly with --steps; tracing is a one-off cost per call for
Xplique and per configuration for maco_keras.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from xplique.features_visualizations import Objective  # noqa: E402
from xplique.features_visualizations import maco as xplique_maco  # noqa: E402

import maco_keras  # noqa: E402
from common import Timer, markdown_table, shared_dir  # noqa: E402

# Fixed, spread-out ImageNet classes: goldfish, kite, tree frog, ... (no tuning involved).
UNITS = [1, 21, 31, 95, 207, 309, 417, 980, 555, 812, 948, 130, 340, 543, 701, 864]


def floor_seconds(model, batch, steps, repeats=3):
    """Forward + backward on `batch` model-sized inputs, times `steps`."""
    height, width, channels = model.input_shape[1:]

    @tf.function
    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            score = tf.reduce_sum(model(inputs)[:, 1])
        return tape.gradient(score, inputs)

    inputs = tf.random.uniform((batch, height, width, channels), -1, 1)
    forward_backward(inputs).numpy()  # trace and warm up
    with Timer() as timer:
        for _ in range(repeats):
            forward_backward(inputs).numpy()
    return timer.seconds / repeats * steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--model", default="mobilenet_v2_1.0_224.keras")
    args = parser.parse_args()

    model = keras.models.load_model(shared_dir() / "models" / args.model)
    settings = dict(steps=args.steps, crops=args.crops, image_size=args.image_size)
    print(f"model {args.model}, {settings}, TF {tf.__version__}, CPU threads {os.cpu_count()}", flush=True)
    rows = []
    for size in args.sizes:
        first, second = UNITS[:size], UNITS[size:2 * size] if 2 * size <= len(UNITS) else UNITS[:size]
        floor = floor_seconds(model, args.crops * size, args.steps) / size
        maco_keras.clear_cache()
        with Timer() as cold:
            maco_keras.maco(model, units=first, verbose=False, seed=0, **settings)
        with Timer() as warm:
            maco_keras.maco(model, units=second, verbose=False, seed=1, **settings)
        with Timer() as xplique:
            for unit in first:
                xplique_maco(Objective.neuron(model, -1, unit), nb_steps=args.steps, nb_crops=args.crops,
                             custom_shape=(args.image_size, args.image_size), values_range=(-1, 1))
        per_image = [floor, cold.seconds / size, warm.seconds / size, xplique.seconds / size]
        rows.append([size] + [f"{value:.2f}" for value in per_image] + [
            f"{per_image[2] / floor:.3f}", f"{per_image[1] / floor:.3f}", f"{per_image[3] / per_image[2]:.2f}"])
        print(f"N={size} done", flush=True)
    print()
    print(markdown_table(
        ["N", "floor s/img", "maco_keras 1st call s/img", "maco_keras reused s/img", "xplique.maco s/img",
         "reused / floor", "1st call / floor", "xplique / reused"], rows))


if __name__ == "__main__":
    main()
