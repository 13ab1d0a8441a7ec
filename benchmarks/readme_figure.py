"""The README's overview figure, made with the project on the shared MobileNetV2.

Two logits, two internal channels (one with the ReLU redirect), an inversion, an
accentuation and a CRAFT concept, each drawn with its transparency as alpha, at reduced
settings (`--steps`, default 64; 16 crops).

Run:  python benchmarks/readme_figure.py [--steps 64] [--out benchmarks/figures/overview.png]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

matplotlib.use("Agg")

from common import shared_dir  # noqa: E402
import maco_keras  # noqa: E402
from maco_keras import Objective, applications, plots  # noqa: E402

VALUES_RANGE = (-1, 1)


def photo(name):
    image = Image.open(shared_dir() / "imagenet-samples" / name).convert("RGB").resize((224, 224))
    return np.asarray(image, np.float32) / 127.5 - 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--out", default="benchmarks/figures/overview.png")
    args = parser.parse_args()
    start = time.perf_counter()
    model = keras.models.load_model(shared_dir() / "models" / "mobilenet_v2_1.0_224.keras")
    labels = maco_keras.atlas.imagenet_labels()
    # The paper's settings at --steps (the figure predates the fast defaults).
    common = dict(steps=args.steps, crops=args.crops, values_range=VALUES_RANGE, seed=0, verbose=False,
                  **maco_keras.presets.schedules("paper"))
    panels = []  # (image, transparency, title)

    images, transparency = maco_keras.maco(model, units=[1, 309], **common)
    panels += [(images[i], transparency[i], f"logit: {labels[u]}") for i, u in enumerate([1, 309])]
    images, transparency = maco_keras.maco(Objective.channel(model, "block_6_expand_relu", [7]), **common)
    panels.append((images[0], transparency[0], "channel block_6 #7"))
    images, transparency = maco_keras.maco(Objective.channel(model, "block_13_expand_relu", [5]),
                                           relu_redirect_steps=16, **common)
    panels.append((images[0], transparency[0], "channel block_13 #5"))

    goldfish = photo("n01443537_goldfish.JPEG")
    images, transparency = applications.invert(model, "block_6_expand_relu", goldfish[None], steps=args.steps,
                                               crops=4, seed=0, verbose=False)
    panels.append((images[0, 4:228, 4:228], transparency[0, 4:228, 4:228], "inversion, block_6"))
    daisy = photo("n11939491_daisy.JPEG")
    images, transparency = applications.accentuate(model, 309, daisy, "block_6_expand_relu", steps=args.steps,
                                                   crops=args.crops, seed=0, verbose=False)
    panels.append((images[0], transparency[0], "daisy accentuated: bee"))

    from xplique.concepts import CraftTf

    paths = sorted((shared_dir() / "imagenet-samples").glob("*.JPEG"))
    dogs = np.stack([photo(path.name) for index, path in enumerate(paths) if 151 <= 2 * index + 1 <= 268])
    g = keras.Model(model.inputs, model.get_layer("out_relu").output)
    h = keras.Sequential([keras.Input(g.output.shape[1:]), model.get_layer("global_average_pooling2d"),
                          model.get_layer("predictions")])
    craft = CraftTf(g, h, number_of_concepts=4, patch_size=80, batch_size=32)
    _, crops_u, concepts = craft.fit(dogs, class_id=207)
    strongest = int(np.argmax(crops_u.sum(0)))
    images, transparency = maco_keras.maco(applications.concept_visualization(model, "out_relu",
                                                                              concepts[strongest:strongest + 1]),
                                           **common)
    panels.append((images[0], transparency[0], f"CRAFT concept (dogs, #{strongest})"))

    # Each panel at the same display size, then Xplique's transparency rendering.
    def resize(array, size=224):
        return keras.ops.convert_to_numpy(keras.ops.image.resize(array[None], (size, size)))[0]

    figure = plots.plot_visualizations(np.stack([resize(p[0]) for p in panels]),
                                       np.stack([resize(p[1]) for p in panels]), names=[p[2] for p in panels],
                                       values_range=VALUES_RANGE, cols=4, img_size=2.6)
    figure.savefig(args.out, dpi=80)
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
