"""Does the frontier's scoring reward low contrast by itself? Real photos at reduced contrast.

`PRESETS["fast"]` renders its images at `contrast=0.7`, which lowers their pixel standard
deviation, and it scores better plausibility, FID and KID than at 1.0. This script asks how
much of that the metrics would give any image for being flatter: it takes held-out photos
(classes 3 mod 4), scales each one's deviation from its own mean by a factor, and scores
them exactly as `frontier.py` does (plausibility: 1-NN distance to the reference photos,
classes 1 mod 4, in MobileNetV1-0.5 `conv_pw_11_relu` features; FID / KID in its pooled
`conv_pw_13_relu` features of the 299/512 centre crops).

Run:    python benchmarks/contrast_check.py            # about a minute on 2 cores
"""

import argparse

import keras

import frontier
from common import load_natural, markdown_table, shared_dir

FACTORS = (1.0, 0.85, 0.7, 0.5, 0.3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=60, help="held-out photos scored (default 60)")
    args = parser.parse_args()
    if args.photos < 2:
        parser.error(f"expected positive --photos (at least 2), received: {args.photos}")
    shared = shared_dir()
    judge = keras.models.load_model(shared / "models" / frontier.JUDGES["MobileNetV1-0.5"])
    natural, labels = load_natural(shared, 512, frontier.VALUES_RANGE)
    realism = frontier.Realism(judge, natural[labels % 4 == 1])  # the frontier's reference photos and metrics
    photos = natural[labels % 4 == 3][:args.photos]
    mean = photos.mean(axis=(1, 2, 3), keepdims=True)
    rows = []
    for factor in FACTORS:
        images = mean + factor * (photos - mean)
        scores = realism(images)
        rows.append([f"x{factor:g}", f"{images.std(axis=(1, 2, 3)).mean():.3f}", f"{scores['plausibility']:.3f}",
                     f"{scores['fid']:.0f}", f"{scores['kid']:.2f}"])
    print(f"{len(photos)} held-out photos, values in {frontier.VALUES_RANGE}:")
    print(markdown_table(["contrast", "pixel std", "plausibility ↓", "FID ↓", "KID ↓"], rows))


if __name__ == "__main__":
    main()
