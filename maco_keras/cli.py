"""`maco-keras`: visualize logits (or channels) of a saved Keras model from the shell.

    maco-keras MODEL.keras --units 1 309 --out out/ [--layer NAME --channels 3 7]

Objectives are optimized in batches of `--batch` (all units of a batch together, one
compiled loop for every batch); each finished image is written at once as
`<out>/<name>.png` plus `<out>/<name>.npz` (image, transparency), and objectives whose
files exist are skipped, so an interrupted run resumes where it stopped.
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="maco-keras", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a saved Keras model (.keras)")
    parser.add_argument("--units", type=int, nargs="*", default=[], help="output units (logits) to visualize")
    parser.add_argument("--layer", help="layer name for --channels")
    parser.add_argument("--channels", type=int, nargs="*", default=[], help="channels of --layer to visualize")
    parser.add_argument("--out", default="maco_out", help="output folder")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--values-range", type=float, nargs=2, default=(-1.0, 1.0))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8, help="objectives optimized together")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.units and not args.channels:
        parser.error("give --units and/or --layer NAME --channels ...")
    if args.channels and not args.layer:
        parser.error("--channels needs --layer")
    if args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    return args


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np

    import maco_keras
    from maco_keras import plots

    model = keras.models.load_model(args.model)
    out = pathlib.Path(args.out)
    jobs = [("logit", unit) for unit in args.units] + [("channel", channel) for channel in args.channels]
    names = {job: plots.file_name(f"{job[0]}_{args.layer or 'output'}_{job[1]}" if job[0] == "channel"
                                  else f"logit_{job[1]}") for job in jobs}
    todo = [job for job in jobs if not (out / f"{names[job]}.npz").exists()]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} already in {out}; {len(todo)} to go", flush=True)
    for kind in ("logit", "channel"):
        pending = [job for job in todo if job[0] == kind]
        for start in range(0, len(pending), args.batch):
            batch = pending[start:start + args.batch]
            ids = [job[1] for job in batch]
            objective = (maco_keras.Objective.neuron(model, -1, ids) if kind == "logit"
                         else maco_keras.Objective.channel(model, args.layer, ids))
            images, transparency = maco_keras.maco(
                objective, steps=args.steps, image_size=args.image_size, crops=args.crops,
                values_range=tuple(args.values_range), seed=args.seed, verbose=not args.quiet)
            batch_names = [names[job] for job in batch]
            plots.save_images(out, images, batch_names, args.values_range)
            for image, alpha, name in zip(images, transparency, batch_names):
                np.savez_compressed(out / f"{name}.npz", image=image, transparency=alpha)
            print(f"saved {', '.join(batch_names)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
