"""Feature inversion at several depths of the shared MobileNetV2 (`applications.invert`).

Inverts one shared ImageNet sample at spatial layers of increasing depth, with the
aligned view, prints each inversion's pixel correlation with the photo (channels
centred) and writes the photo and the inversions side by side.

Run:  python benchmarks/inversion_depth.py [--steps 96] [--crops 4] [--out benchmarks/figures/inversion_depth.png]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from common import shared_dir  # noqa: E402
from maco_keras import applications  # noqa: E402

LAYERS = ("block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu")


def structure(a, b):
    a, b = a - a.mean((0, 1)), b - b.mean((0, 1))
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument("--crops", type=int, default=4)
    parser.add_argument("--image", default="n01443537_goldfish.JPEG")
    parser.add_argument("--out", default="benchmarks/figures/inversion_depth.png")
    args = parser.parse_args()
    model = keras.models.load_model(shared_dir() / "models" / "mobilenet_v2_1.0_224.keras")
    photo = Image.open(shared_dir() / "imagenet-samples" / args.image).convert("RGB").resize((224, 224))
    photo = np.asarray(photo, np.float32) / 127.5 - 1
    panels = [photo]
    print("| layer | pixel correlation with the photo | seconds |\n|---|---|---|")
    for layer in LAYERS:
        start = time.perf_counter()
        images, _ = applications.invert(model, layer, photo[None], steps=args.steps, crops=args.crops, seed=0,
                                        verbose=False)
        view = images[0, 4:228, 4:228]  # the reference's view (jitter 4)
        panels.append(view)
        print(f"| {layer} | {structure(view, photo):.3f} | {time.perf_counter() - start:.0f} |", flush=True)
    Image.fromarray(((np.concatenate(panels, 1) + 1) * 127.5).clip(0, 255).astype(np.uint8)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
