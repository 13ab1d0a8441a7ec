"""Memory and throughput of large runs: peak RSS against units, batch and crop chunk; units per hour.

Each configuration runs in its own process (peak RSS is per process) on the shared
MobileNetV2 and reports that process's peak resident memory (`ru_maxrss`).

1. Units: `maco-keras visualize` of 8 vs 64 logits at small settings (256 px, 4 crops,
   2 steps), in batches of 8 (`--batch 8`, the default) and, for contrast, all at once
   (`--batch 64`). The command writes each batch's files and keeps nothing of it, so with
   batches peak memory does not grow with the number of units. (`maco(..., batch_size=8)`
   bounds the optimization's memory the same way, but it returns every image, whose
   arrays do grow with the units.)
2. Crop chunk: 8 logits at the paper's 512 px and 32 crops, 2 steps, with `crop_chunk`
   32 (all at once) down to 1. Memory falls with the chunk, the images stay the same
   (gradients summed in a fixed order).
3. Units per hour at the default settings (256 steps, 32 crops, 512 px, batch 8): a
   batch of 8 is timed over `--rate-steps` steps after its trace, and the rate
   extrapolated to 256 steps.
4. Crop chunk per backend (`--backends`, default none): one logit through a `Visualizer`
   (the backend-neutral core) at 512 px and 32 crops, two calls of 1 step, `crop_chunk`
   all, 8 and 2, each in a process with KERAS_BACKEND set: its peak RSS over the loaded
   model's, and the second call's seconds (the first compiles; a call is its start, one
   step and the picture).

Run:  python benchmarks/memory.py [--skip units chunks rate] [--rate-steps 8] [--backends tensorflow jax torch]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
UNITS = list(range(1, 1000, 15))  # 67 spread-out classes; the first N are used


def child(config):
    """Runs one configuration in this process; prints a JSON line with peak RSS and timings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, HERE)
    import keras

    import maco_keras
    from common import shared_dir

    model = keras.models.load_model(shared_dir() / "models" / "mobilenet_v2_1.0_224.keras")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if config.get("visualizer"):
        return visualizer_child(model, config, baseline)
    settings = dict(units=UNITS[:config["units"]], image_size=config["image_size"], crops=config["crops"], seed=0,
                    values_range=(-1, 1), verbose=False, batch_size=config.get("batch_size"),
                    crop_chunk=config.get("crop_chunk"), **maco_keras.presets.schedules("paper"))
    start = time.perf_counter()
    maco_keras.maco(model, steps=config.get("trace_steps", config["steps"]), **settings)
    first = time.perf_counter() - start
    timed = None
    if config.get("timed_steps"):
        start = time.perf_counter()
        maco_keras.maco(model, steps=config["timed_steps"], **settings)
        timed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_gb": peak / 2**20, "model_loaded_gb": baseline / 2**20, "first_s": first,
                      "timed_s": timed}))


def visualizer_child(model, config, baseline):
    """A `Visualizer` of one logit, `config["crop_chunk"]` crops at a time: peak RSS, and one step's seconds after
    a first (compiling) step."""
    import keras

    import maco_keras

    settings = maco_keras.MacoConfig(steps=1, image_size=config["image_size"], crops=config["crops"], seed=0)
    visualizer = maco_keras.Visualizer(model, settings, crop_chunk=config["crop_chunk"], verbose=False)
    start = time.perf_counter()
    visualizer(units=[1])
    first = time.perf_counter() - start
    start = time.perf_counter()
    visualizer(units=[309])
    timed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_gb": peak / 2**20, "model_loaded_gb": baseline / 2**20, "first_s": first,
                      "timed_s": timed, "backend": keras.backend.backend()}))


def run(config, backend=None):
    env = {**os.environ, **({"KERAS_BACKEND": backend} if backend else {})}
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], capture_output=True, text=True,
                            env=env)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1][:120]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_command(units, batch):
    """`maco-keras visualize` in a child process; its own peak RSS (from wait4) and wall seconds."""
    sys.path.insert(0, HERE)
    from common import shared_dir

    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "maco_keras", "visualize",
                   str(shared_dir() / "models" / "mobilenet_v2_1.0_224.keras"), "--out", out,
                   "--units", ",".join(map(str, UNITS[:units])), "--batch", str(batch), "--steps", "2",
                   "--crops", "4", "--image-size", "256", "--preset", "paper", "--quiet"]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env={**os.environ, "PYTHONPATH": os.path.dirname(HERE)})
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if status != 0:
            return {"error": (process.stderr.read().decode().strip().splitlines() or ["?"])[-1][:120]}
        return {"peak_gb": usage.ru_maxrss / 2**20, "first_s": seconds}


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--skip", nargs="*", default=[], choices=("units", "chunks", "rate"))
    parser.add_argument("--rate-steps", type=int, default=8)
    parser.add_argument("--backends", nargs="*", default=[], choices=("tensorflow", "jax", "torch"),
                        help="crop_chunk through a Visualizer on these backends (part 4)")
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))
    print(f"MobileNetV2 of ../shared, CPU threads {os.cpu_count()}", flush=True)

    if "units" not in args.skip:
        rows = []
        for units, batch in ((8, 8), (64, 8), (64, 64)):
            result = run_command(units, batch)
            print(units, batch, result, flush=True)
            rows.append([units, batch, f"{result.get('peak_gb', float('nan')):.2f}",
                         f"{result.get('first_s', float('nan')):.0f}"])
        print("\nPeak RSS of `maco-keras visualize` against the number of units (256 px, 4 crops, 2 steps):\n")
        print(table(["units", "--batch", "peak RSS (GB)", "wall seconds"], rows), flush=True)

    if "chunks" not in args.skip:
        rows = []
        for chunk in (32, 16, 8, 4, 2, 1):
            result = run({"units": 8, "batch_size": 8, "image_size": 512, "crops": 32, "steps": 2,
                          "crop_chunk": chunk})
            print(chunk, result, flush=True)
            rows.append([chunk, 8 * chunk, f"{result.get('peak_gb', float('nan')):.2f}",
                         f"{result.get('first_s', float('nan')):.0f}"])
        print("\nPeak RSS against crop_chunk (8 logits at once, 512 px, 32 crops, 2 steps):\n")
        print(table(["crop_chunk", "crops per forward pass", "peak RSS (GB)", "seconds"], rows), flush=True)

    if "rate" not in args.skip:
        rows = []
        for chunk in (None, 4):
            result = run({"units": 8, "batch_size": 8, "image_size": 512, "crops": 32, "steps": 1, "trace_steps": 1,
                          "timed_steps": args.rate_steps, "crop_chunk": chunk})
            print(chunk, result, flush=True)
            if "timed_s" not in result:
                rows.append([chunk or "all (32)", "failed", "", "", ""])
                continue
            per_step = result["timed_s"] / args.rate_steps
            per_unit = per_step * 256 / 8
            rows.append([chunk or "all (32)", f"{per_step:.2f}", f"{per_unit:.0f}", f"{3600 / per_unit:.1f}",
                         f"{result['peak_gb']:.2f}"])
        print(f"\nUnits per hour at the default settings (256 steps, 32 crops, 512 px, batch 8), from {args.rate_steps} "
              "timed steps after the trace, extrapolated to 256 steps:\n")
        print(table(["crop_chunk", "s per step (8 units)", "s per unit", "units per hour", "peak RSS (GB)"], rows))

    if args.backends:
        rows = []
        for backend in args.backends:
            for chunk in (None, 8, 2):
                result = run({"visualizer": True, "image_size": 512, "crops": 32, "crop_chunk": chunk}, backend)
                print(backend, chunk, result, flush=True)
                if "timed_s" not in result:
                    rows.append([backend, chunk or "all (32)", "failed: " + result.get("error", "?"), "", ""])
                    continue
                rows.append([backend, chunk or "all (32)", f"{result['peak_gb'] - result['model_loaded_gb']:.2f}",
                             f"{result['peak_gb']:.2f}", f"{result['timed_s']:.1f}"])
        print("\nA Visualizer's crop_chunk per backend (one logit, 512 px, 32 crops; peak RSS over the loaded model's, "
              "and a 1-step call after a first, compiling one):\n")
        print(table(["backend", "crop_chunk", "peak RSS over the model (GB)", "peak RSS (GB)", "s per 1-step call"],
                    rows))


if __name__ == "__main__":
    main()
