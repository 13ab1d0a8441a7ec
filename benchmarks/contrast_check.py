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

from common import load_natural, markdown_table, shared_dir
from maco_keras import metrics

FACTORS = (1.0, 0.85, 0.7, 0.5, 0.3)
VALUES_RANGE = (-1.0, 1.0)  # as in frontier.py


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=60, help="held-out photos scored (default 60)")
    args = parser.parse_args()
    if args.photos < 2:
        parser.error(f"expected positive --photos (at least 2), received: {args.photos}")
    shared = shared_dir()
    judge = keras.models.load_model(shared / "models" / "mobilenet_v1_0.5_160.keras")
    plausibility_model = metrics.feature_model(judge, "conv_pw_11_relu")
    fid_model = metrics.feature_model(judge, "conv_pw_13_relu")
    natural, labels = load_natural(shared, 512, VALUES_RANGE)
    reference = natural[labels % 4 == 1]
    reference_plausibility = metrics.model_outputs(plausibility_model, reference)
    reference_fid = metrics.model_outputs(fid_model, reference)  # as frontier.Scorer: whole reference photos
    photos = natural[labels % 4 == 3][:args.photos]
    rows = []
    for factor in FACTORS:
        mean = photos.mean(axis=(1, 2, 3), keepdims=True)
        images = mean + factor * (photos - mean)
        plausibility = metrics.plausibility(metrics.model_outputs(plausibility_model, images), reference_plausibility)
        crops = metrics.model_outputs(fid_model, metrics.center_crop(images, 299 / 512))
        rows.append([f"x{factor:g}", f"{images.std(axis=(1, 2, 3)).mean():.3f}", f"{plausibility.mean():.3f}",
                     f"{metrics.frechet_distance(crops, reference_fid):.0f}",
                     f"{metrics.kernel_distance(crops, reference_fid):.2f}"])
    print(f"{len(photos)} held-out photos, values in {VALUES_RANGE}:")
    print(markdown_table(["contrast", "pixel std", "plausibility ↓", "FID ↓", "KID ↓"], rows))


if __name__ == "__main__":
    main()
