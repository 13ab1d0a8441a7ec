"""Speed: maco_keras.maco vs Xplique's maco vs the model's forward+backward floor.

For N = 1 and N = 8 logits of MobileNetV2 at the same settings (image size, steps, crops
per objective), prints seconds per image for:
- floor: the model's forward + backward (gradient w.r.t. the input) on the same number of
  crops per step (K * N), times the steps, divided by N: no optimizer, FFT or crops;
- maco_keras, first call (includes tracing), and later calls (the compiled loop is
  reused: the steady state of a notebook or a batch job);
- xplique.features_visualizations.maco, called once per objective (it takes one), which
  traces its step again at every call.
Wall-clock timings on a shared 2-core machine drift by 10-25% between minutes, so the
three are measured interleaved, `--repeats` times, and the medians reported, both in wall
seconds and in CPU seconds (all threads of the process: it ignores what other tenants
take and is the steadier of the two). The repeats alternate which of the floor and maco
is timed first, so that a drift over the run weighs on both alike; each repeat's own ratio
(maco / floor, CPU) is printed too, with the median and quartiles of those ratios and a
distribution-free 95% confidence interval of their median (order statistics; 6 repeats
or more): the interval, not one repeat, says on which side of a line the loop is.

`--interleave step` (the default) goes further: the floor's steps are run *inside* each
maco call, one after each of maco's steps (the loop pauses after every step for its
progress bar when it runs at most 50 steps; the bar is replaced by one floor step), and
maco's time is the call's time less the floor steps'. Drift then weighs on both within
about a second, not within a call of 20-70 s: on a VM whose speed wandered by 10% from
one call to the next, call-level pairs gave per-repeat ratios from 0.96 to 1.17. maco's
share counts everything its call does (compiling the objective, the reset, the final
images) and its pauses too, which only an interleaved run has (one host round trip per
step), so it can only be overstated. `--interleave call` times whole calls as above.

maco runs with the schedules of `--preset`: fast (default: maco's defaults, `PRESETS["fast"]`)
or paper (the paper's constant settings); its steps and crops are `--steps` and `--crops`.
`--no-xplique` leaves Xplique out (half the time, more repeats).

Run:  python benchmarks/speed.py [--steps 32] [--crops 32] [--image-size 512] [--sizes 1 8] [--repeats 2]
                                 [--preset fast|paper] [--interleave step|call] [--no-xplique]
"""

import argparse
import os
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from xplique.features_visualizations import Objective  # noqa: E402
from xplique.features_visualizations import maco as xplique_maco  # noqa: E402

import maco_keras  # noqa: E402
from common import Timer, floor_steps, markdown_table, median_interval, shared_dir  # noqa: E402

# Fixed, spread-out ImageNet classes (no tuning involved).
UNITS = [1, 21, 31, 95, 207, 309, 417, 980, 555, 812, 948, 130, 340, 543, 701, 864]


def make_floor(model, batch, steps):
    """Returns a function timing `steps` forward + backward passes on `batch` model-sized
    inputs, run back to back like the optimization's steps: (wall, CPU) seconds."""
    run = floor_steps(model, batch, steps)
    run()  # trace and warm up

    def measure():
        with Timer() as timer:
            run()
        return timer.seconds, timer.cpu_seconds

    return measure


def interleaved_call(floor_step, steps, call):
    """Runs `call()`, a verbose `maco` call of at most `PROGRESS_UPDATES` steps, with one floor step after
    each of its steps, in place of its progress bar's updates.

    Returns:
        ((wall, CPU) seconds of the call less the floor steps, (wall, CPU) of the floor steps).
    """
    spent = {"wall": 0.0, "CPU": 0.0, "pauses": 0}

    class FloorAtEachPause:
        def __init__(self, *args, **kwargs):
            pass

        def update(self, *args, **kwargs):
            with Timer() as timer:
                floor_step()
            spent["wall"] += timer.seconds
            spent["CPU"] += timer.cpu_seconds
            spent["pauses"] += 1

    with mock.patch.object(keras.utils, "Progbar", FloorAtEachPause), Timer() as whole:
        call()
    if spent["pauses"] != steps:
        raise RuntimeError(f"expected the loop to pause after each of its {steps} steps, it paused "
                           f"{spent['pauses']} times")
    return (whole.seconds - spent["wall"], whole.cpu_seconds - spent["CPU"]), (spent["wall"], spent["CPU"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="mobilenet_v2_1.0_224.keras")
    parser.add_argument("--preset", choices=("fast", "paper"), default="fast")
    parser.add_argument("--interleave", choices=("step", "call"), default="step",
                        help="alternate the floor and maco step by step (default) or call by call")
    parser.add_argument("--no-xplique", action="store_true", help="do not time Xplique's maco")
    args = parser.parse_args()
    for name in ("steps", "crops", "image_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"expected a positive --{name.replace('_', '-')}, received: {getattr(args, name)}")
    if min(args.sizes) < 1:
        parser.error(f"expected positive --sizes, received: {args.sizes}")
    updates = maco_keras.optimization.PROGRESS_UPDATES
    if args.interleave == "step" and args.steps > updates:
        parser.error(f"expected --steps <= {updates} with --interleave step (the loop pauses after every step "
                     f"only up to {updates}), received: {args.steps}")

    model = keras.models.load_model(shared_dir() / "models" / args.model)
    settings = dict(steps=args.steps, crops=args.crops, image_size=args.image_size)
    schedules = maco_keras.presets.schedules(args.preset)
    print(f"model {args.model}, {settings}, preset {args.preset}, repeats {args.repeats}, "
          f"interleave {args.interleave}, TF {tf.__version__}, "
          f"CPU threads {os.cpu_count()}", flush=True)
    rows = {"CPU": [], "wall": []}
    for size in args.sizes:
        units = UNITS[:size]
        if args.interleave == "step":
            floor_step = floor_steps(model, args.crops * size, 1)
            floor_step()  # traced and warm before the first interleaved call
        else:
            time_floor = make_floor(model, args.crops * size, args.steps)

        def call(seed, verbose=False):
            maco_keras.maco(model, units=units, verbose=verbose, seed=seed, **settings, **schedules)

        maco_keras.clear_cache()
        with Timer() as cold:
            call(0)
        measured = {"floor": [], "warm": [], "xplique": []}
        for repeat in range(args.repeats):
            if args.interleave == "step":
                warm, (wall, cpu) = interleaved_call(floor_step, args.steps, lambda: call(repeat + 1, verbose=True))
            else:
                if repeat % 2 == 0:
                    wall, cpu = time_floor()
                with Timer() as timer:
                    call(repeat + 1)
                warm = (timer.seconds, timer.cpu_seconds)
                if repeat % 2 == 1:
                    wall, cpu = time_floor()
            measured["floor"].append((wall / size, cpu / size))
            measured["warm"].append((warm[0] / size, warm[1] / size))
            with Timer() as xplique:
                for unit in units if not args.no_xplique else []:
                    xplique_maco(Objective.neuron(model, -1, unit), nb_steps=args.steps, nb_crops=args.crops,
                                 custom_shape=(args.image_size, args.image_size), values_range=(-1, 1))
            measured["xplique"].append((xplique.seconds / size, xplique.cpu_seconds / size))
            print(f"N={size} repeat {repeat} (wall / CPU s per image): "
                  + ", ".join(f"{k} {v[-1][0]:.2f} / {v[-1][1]:.2f}" for k, v in measured.items()), flush=True)
        ratios = [warm[1] / floor[1] for warm, floor in zip(measured["warm"], measured["floor"])]
        low, middle, high = np.percentile(ratios, [25, 50, 75])
        interval = median_interval(ratios)
        interval = "n/a (fewer than 6 repeats)" if interval is None else f"{interval[0]:.3f} to {interval[1]:.3f}"
        print(f"N={size} per-repeat maco / floor (CPU): {', '.join(f'{r:.3f}' for r in ratios)}; "
              f"median {middle:.3f}, quartiles {low:.3f} to {high:.3f}, 95% interval of the median {interval}",
              flush=True)
        for index, kind in enumerate(("wall", "CPU")):
            floor, warm, xplique = (float(np.median([m[index] for m in measured[k]]))
                                    for k in ("floor", "warm", "xplique"))
            xplique = float("nan") if args.no_xplique else xplique
            first = (cold.seconds, cold.cpu_seconds)[index] / size
            rows[kind].append([size, f"{floor:.2f}", f"{first:.2f}", f"{warm:.2f}", f"{xplique:.2f}",
                               f"{warm / floor:.3f}", f"{first / floor:.3f}", f"{xplique / warm:.2f}",
                               f"{xplique / first:.2f}"])
    for kind in ("CPU", "wall"):
        print(f"\n{kind} seconds per image (medians of {args.repeats} interleaved repeats):\n")
        print(markdown_table(
            ["N", "floor", "maco_keras 1st call", "maco_keras reused", "xplique.maco", "reused / floor",
             "1st call / floor", "xplique / reused", "xplique / 1st call"], rows[kind]))


if __name__ == "__main__":
    main()
