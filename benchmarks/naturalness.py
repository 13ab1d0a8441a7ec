"""Where the naturalness gap is: the frontier's Deep-KNN of pictures and photos, after changes
that cost no optimization.

Deep-KNN (`frontier.py`'s naturalness column) is the 1-NN distance of normalized pooled
`conv_pw_13_relu` features of MobileNetV1-0.5 to the reference photos. If the pictures' gap to
the photos came from their contrast, their fine texture, the scale they are drawn at or how
strongly they show their class, one of these would close part of it on the saved pictures:
- contrast: each picture's pixels spread `--gains` times around its mean (clipped);
- fine texture: a Gaussian blur of `--blurs` pixels (sigma, at 512 px);
- scale: the central `--crops` of the picture, resized back (what one crop of the loop sees);
- class strength: the rank correlation, over pictures, of Deep-KNN with the subject's target logit.
The photos go through the same changes, as a control. It runs no optimization: it reads the
runs `frontier.py` saved under `--out` (the same `--classes`, `--class-set` and seeds).

Run:    python benchmarks/frontier.py --subjects mobilenet_v2 --methods "MACO, fast preset" --classes 12 \\
            --class-set 2 --seeds 0 1 2 --out /tmp/frontier          # the saved runs (about 11 min each)
        python benchmarks/naturalness.py --subjects mobilenet_v2 --seeds 0 1 2 --out /tmp/frontier   # minutes
"""

import argparse
import pathlib
import sys
import types

import keras
import numpy as np
from scipy import ndimage, stats

import frontier
from common import load_natural, markdown_table, shared_dir
from maco_keras import metrics


def changes(gains, blurs, crops):
    """[(column, images -> images)]: the unchanged pictures first."""
    def gain(factor):
        def apply(images):
            mean = images.mean(axis=(1, 2), keepdims=True)
            return np.clip(mean + factor * (images - mean), *frontier.VALUES_RANGE)
        return apply

    def blur(sigma):
        return lambda images: ndimage.gaussian_filter(images, (0, sigma, sigma, 0))

    def crop(fraction):
        return lambda images: np.asarray(metrics.center_crop(images, fraction), np.float32)

    return ([("as drawn", lambda images: images)] + [(f"contrast x{g:g}", gain(g)) for g in gains]
            + [(f"blur {b:g} px", blur(b)) for b in blurs] + [(f"centre {c:g}", crop(c)) for c in crops])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", nargs="+", default=list(frontier.SUBJECTS), choices=list(frontier.SUBJECTS))
    parser.add_argument("--methods", nargs="+", default=["MACO, fast preset"], choices=list(frontier.METHODS))
    parser.add_argument("--steps", type=int, default=64, help="the budget whose saved pictures are read")
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--class-set", type=int, default=2, choices=(0, 1, 2))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gains", type=float, nargs="+", default=[1.5, 2.0])
    parser.add_argument("--blurs", type=float, nargs="+", default=[1.5, 3.0])
    parser.add_argument("--crops", type=float, nargs="+", default=[0.5, 0.35])
    parser.add_argument("--out", type=pathlib.Path, required=True, help="where frontier.py saved its runs")
    args = parser.parse_args(argv)
    for name in ("steps", "classes", "gains", "blurs"):
        values = np.atleast_1d(getattr(args, name))
        if np.any(values <= 0):
            parser.error(f"expected positive --{name}, received: {' '.join(f'{v:g}' for v in values)}")
    if any(not 0 < value < 1 for value in args.crops):
        parser.error(f"expected --crops in (0, 1), received: {' '.join(f'{v:g}' for v in args.crops)}")
    shared = shared_dir()

    classes = frontier.pick_classes(args.classes, args.class_set)
    natural, labels = load_natural(shared, 512, frontier.VALUES_RANGE)
    photos = natural[[int(np.flatnonzero(labels == c)[0]) for c in classes]]
    judge = keras.models.load_model(shared / "models" / frontier.JUDGES["MobileNetV1-0.5"])
    deep_knn = frontier.Realism(judge, natural[labels % 4 == 1]).deep_knn  # the frontier's own column

    # make_pictures reads saved runs only: the arguments it looks at.
    saved = types.SimpleNamespace(out=args.out, saved_only=True, budgets=[args.steps],
                                  schedule_budgets=[args.steps], baseline_budgets=[args.steps],
                                  xplique_budgets=[args.steps])
    columns = changes(args.gains, args.blurs, args.crops)
    for subject in args.subjects:
        model = keras.models.load_model(shared / "models" / frontier.SUBJECTS[subject][1])
        rows = {"real photos": [photos]}
        for name in args.methods:
            runs = [frontier.make_pictures(saved, subject, model, name, classes, seed) for seed in args.seeds]
            found = [pictures[args.steps][0] for pictures in runs if args.steps in pictures]
            if not found:
                parser.exit(2, f"{parser.prog}: error: expected saved runs of {name!r} at {args.steps} steps "
                               f"under --out, received: none in {args.out}\n")
            rows[f"{name} ({len(found)} seeds)"] = found
        body = []
        for name, sets in rows.items():
            cells = [f"{np.mean([deep_knn(change(images)).mean() for images in sets]):.3f}" for _, change in columns]
            distances = np.concatenate([deep_knn(images) for images in sets])
            logits = np.concatenate([metrics.model_outputs(model, images)[np.arange(len(classes)), classes]
                                     for images in sets])
            rho = stats.spearmanr(distances, logits).statistic
            body.append([name] + cells + [f"{rho:.2f}"])
        print(f"## {frontier.SUBJECTS[subject][0]}: Deep-KNN (lower is more natural), {args.classes} classes of "
              f"set {args.class_set}, {args.steps} steps\n")
        print(markdown_table(["pictures"] + [column for column, _ in columns] + ["rank correlation with the logit"],
                             body) + "\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
