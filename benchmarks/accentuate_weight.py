"""How strongly `applications.accentuate` keeps the photo: the unit's logit and the distance kept, per weight.

The README's example: the shared daisy photo accentuated towards "bee" (309) on the shared
MobileNetV2, its pooled activations at `block_6_expand_relu` kept near the photo's. For each
weight it prints the result's bee and daisy logits, its top-1 class, its pixel RMS distance to
the photo and the mean squared distance of its pooled activations to the photo's (what the
regularizer penalizes). To compare with an earlier version, run it with that version first on
`PYTHONPATH` (e.g. a `git worktree` of it).

Run:    python benchmarks/accentuate_weight.py --weights 1 1000       # about 2 min per weight on 2 cores
"""

import argparse
import time

import keras
import numpy as np
from PIL import Image

import maco_keras
from common import markdown_table, shared_dir
from maco_keras import applications

BEE, DAISY = 309, 985


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0])
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if min(args.weights) < 0 or args.steps < 1 or args.crops < 1:
        parser.error(f"expected weights >= 0, steps and crops >= 1, received: --weights {args.weights} "
                     f"--steps {args.steps} --crops {args.crops}")
    print(f"maco_keras from {maco_keras.__file__}")
    model = keras.models.load_model(shared_dir() / "models" / "mobilenet_v2_1.0_224.keras")
    photo = Image.open(shared_dir() / "imagenet-samples" / "n11939491_daisy.JPEG").convert("RGB").resize((224, 224))
    photo = np.asarray(photo, np.float32) / 127.5 - 1
    features = keras.Model(model.inputs, model.get_layer("block_6_expand_relu").output)

    def pooled(image):
        return keras.ops.convert_to_numpy(features(image[None])).mean(axis=(1, 2))[0]

    def describe(image):
        logits = keras.ops.convert_to_numpy(model(image[None]))[0]
        return [f"{logits[BEE]:.2f}", f"{logits[DAISY]:.2f}", int(logits.argmax()),
                f"{np.sqrt(np.mean((image - photo) ** 2)):.3f}", f"{np.mean((pooled(image) - pooled(photo)) ** 2):.4f}"]

    rows = [["the photo", *describe(photo), "-"]]
    for weight in args.weights:
        start = time.perf_counter()
        images, _ = applications.accentuate(model, BEE, photo, "block_6_expand_relu", weight=weight, steps=args.steps,
                                            crops=args.crops, seed=args.seed, verbose=False)
        rows.append([f"weight {weight:g}", *describe(images[0]), f"{time.perf_counter() - start:.0f}"])
    print(markdown_table(["", "bee logit", "daisy logit", "top-1", "pixel RMS to the photo",
                          "pooled activations' distance", "s"], rows))


if __name__ == "__main__":
    main()
