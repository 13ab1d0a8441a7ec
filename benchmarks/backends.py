"""Every Keras backend's speed against its own floor, with Horama (the MACO authors' PyTorch library) beside.

For each backend (one subprocess each, KERAS_BACKEND set) and each unit count N, on a
shared model (`../shared/models`, or `--models-dir`), with K crops of a `--image-size`
picture per unit:
- floor: the model's own forward + backward (the input's gradient) on one picture's K
  crops, the backend's best way (`tf.function`, `jax.jit`, eager PyTorch): what a step
  runs once per picture, on every backend;
- maco_keras: a `Visualizer` run of `--steps` steps, its first call (compile included) and
  a second, steady one; the table gives seconds per picture and step, and the steady step
  over the floor. On TensorFlow also `maco`, the established engine.
- Horama 0.3 (`--horama`, PyTorch): `horama.maco` on the same Keras-on-PyTorch model (a
  `torch.nn.Module` on that backend), the same steps, crops, picture size and magnitude
  (Xplique's file, which Horama would otherwise download), one unit at a time as it runs.

Run:  python benchmarks/backends.py [--backends tensorflow jax torch] [--units 1 4] [--steps 8]
      [--model mobilenet_v2_1.0_224] [--horama] [--allow-cpu] [--vit]
On a machine without a GPU it refuses unless `--allow-cpu` (for CPU tables and to check the script).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
UNITS = [1, 309, 417, 980, 21, 95, 207, 555, 1, 309, 417, 980, 21, 95, 207, 555]


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"],
                        choices=["tensorflow", "jax", "torch"])
    parser.add_argument("--units", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--model", default="mobilenet_v2_1.0_224")
    parser.add_argument("--models-dir", default=None, help="default: ../shared/models or $MACO_SHARED/models")
    parser.add_argument("--horama", action="store_true", help="add Horama 0.3's maco on the PyTorch backend")
    parser.add_argument("--vit", action="store_true", help="add a config-built ViT-B/16 block channel (keras_hub)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one backend, print JSON rows
    args = parser.parse_args(argv)
    for name in ("steps", "crops", "image_size"):
        if getattr(args, name) < 1:
            parser.error(f"expected --{name.replace('_', '-')} >= 1, received: {getattr(args, name)}")
    if any(count < 1 or count > len(UNITS) for count in args.units):
        parser.error(f"expected --units counts in [1, {len(UNITS)}], received: {args.units}")
    return args


def models_dir(args):
    if args.models_dir:
        return pathlib.Path(args.models_dir)
    return pathlib.Path(os.environ.get("MACO_SHARED", REPO.parent / "shared")) / "models"


CPU_SECONDS = []  # the process's CPU seconds (all threads) of each `timed` call, beside its wall seconds


def timed(function):
    """(wall seconds, result); the call's CPU seconds go to CPU_SECONDS (steadier on a shared VM)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = function()
    CPU_SECONDS.append(time.process_time() - cpu_start)
    return time.perf_counter() - start, result


def floor_function(model, backend, crops):
    """`() -> None` running the model's forward + backward on `crops` once, compiled the backend's way."""
    import keras

    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        step = jax.jit(jax.grad(lambda x: model.stateless_call(trainable, non_trainable, x, training=False)[0].sum()))
        return lambda: step(crops).block_until_ready()
    if backend == "torch":
        import torch

        tensor = keras.ops.convert_to_tensor(crops)

        def step():
            inputs = tensor.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(model(inputs, training=False).sum(), [inputs])
            if gradient.is_cuda:
                torch.cuda.synchronize()
        return step
    import tensorflow as tf

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(model(x, training=False))
        return tape.gradient(total, x)

    tensor = tf.constant(crops)
    return lambda: step(tensor).numpy()


def device_name(backend):
    if backend == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def horama_rows(args, model, floor_per_unit, magnitude_path):
    # floor_per_unit: (wall, CPU) seconds of the floor
    """Horama's `maco` on the Keras-on-PyTorch model, one unit at a time (it draws one picture per call)."""
    import shutil
    import tempfile

    import torch
    import horama

    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = model.input_shape[1]
    work = tempfile.mkdtemp()
    # Horama reads `spectrum_decorrelated.npy` from the working folder, or downloads it: give it Xplique's.
    shutil.copy(magnitude_path, pathlib.Path(work) / "spectrum_decorrelated.npy")
    here = os.getcwd()
    os.chdir(work)
    rows = []
    try:
        for count in args.units:
            def run():
                for unit in UNITS[:count]:
                    objective = lambda crops, unit=unit: model(crops.permute(0, 2, 3, 1), training=False)[:, unit].mean()
                    horama.maco(objective, total_steps=args.steps, image_size=args.image_size, model_input_size=size,
                                crops_per_iteration=args.crops, values_range=(-1.0, 1.0), device=device)
                if device == "cuda":
                    torch.cuda.synchronize()
            first, _ = timed(run)
            steady, _ = timed(run)
            per_step = steady / args.steps / count
            rows.append({"method": "Horama 0.3 maco", "backend": "torch", "units": count, "first": first,
                         "per_picture_step": per_step, "floor": floor_per_unit[0],
                         "ratio": per_step / floor_per_unit[0],
                         "cpu_ratio": CPU_SECONDS[-1] / args.steps / count / floor_per_unit[1]})
    finally:
        os.chdir(here)
    return rows


def one_backend(args):
    """Runs in a subprocess with KERAS_BACKEND set; prints one JSON line of rows."""
    import keras

    import maco_keras
    from maco_keras.core import magnitude as magnitude_lib

    backend = keras.backend.backend()
    model = keras.models.load_model(models_dir(args) / f"{args.model}.keras")
    size = model.input_shape[1]
    rows = []
    # The floor: one picture's K crops through the model and back, which every backend's step runs once per
    # picture (a unit's crops are a batch of their own, so that its bits do not depend on the others).
    crops = np.random.default_rng(0).uniform(-1, 1, (args.crops, size, size, 3)).astype(np.float32)
    floor = floor_function(model, backend, crops)
    floor()  # compile
    reps = max(3, min(6, args.steps))
    seconds, _ = timed(lambda: [floor() for _ in range(reps)])
    floor_seconds, floor_cpu = seconds / reps, CPU_SECONDS[-1] / reps
    config = maco_keras.MacoConfig(steps=args.steps, image_size=args.image_size, crops=args.crops, seed=0)
    visualizer = maco_keras.Visualizer(model, config, verbose=False)
    for count in args.units:
        first, _ = timed(lambda: visualizer(units=UNITS[:count]))
        steady, _ = timed(lambda: visualizer(units=UNITS[:count]))
        per_step = steady / args.steps / count
        cpu_ratio = CPU_SECONDS[-1] / args.steps / count / floor_cpu
        rows.append({"method": "maco_keras Visualizer", "backend": backend, "units": count, "first": first,
                     "per_picture_step": per_step, "floor": floor_seconds, "ratio": per_step / floor_seconds,
                     "cpu_ratio": cpu_ratio, "device": device_name(backend)})
        if backend == "tensorflow":
            # TensorFlow's `maco`: the established engine (all N x K crops in one batch, the C++ crop gradient).
            run = lambda: maco_keras.maco(model, units=UNITS[:count], steps=args.steps, crops=args.crops,  # noqa
                                          image_size=args.image_size, seed=0, verbose=False)
            first, _ = timed(run)
            steady, _ = timed(run)
            per_step = steady / args.steps / count
            rows.append({"method": "maco_keras maco (TensorFlow engine)", "backend": backend, "units": count,
                         "first": first, "per_picture_step": per_step, "floor": floor_seconds,
                         "ratio": per_step / floor_seconds, "device": device_name(backend),
                         "cpu_ratio": CPU_SECONDS[-1] / args.steps / count / floor_cpu})
    if args.horama and backend == "torch":
        rows.extend(horama_rows(args, model, (floor_seconds, floor_cpu), magnitude_lib.imagenet_spectrum_path()))
    if args.vit:
        rows.extend(vit_rows(args, backend))
    print("ROWS " + json.dumps(rows), flush=True)


def vit_rows(args, backend):
    """A channel of block 6 of a config-built ViT-B/16 (random weights: speed only)."""
    import keras
    import keras_hub

    import maco_keras
    from maco_keras import objectives

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(image_shape=(224, 224, 3), patch_size=16, num_layers=12, num_heads=12,
                                            hidden_dim=768, mlp_dim=3072, name="vi_t_backbone")
    model = keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=1000, preprocessor=None, name="vit")
    config = maco_keras.MacoConfig(steps=args.steps, image_size=args.image_size, crops=args.crops, seed=0)
    visualizer = maco_keras.Visualizer(model, config, verbose=False)
    objective = objectives.channel(model, "vit_encoder/transformer_block_6", [7])
    first, _ = timed(lambda: visualizer(objective))
    steady, _ = timed(lambda: visualizer(objective))
    rng = np.random.default_rng(0)
    steady_cpu = CPU_SECONDS[-1]
    floor = floor_function(model, backend, rng.uniform(-1, 1, (args.crops, 224, 224, 3)).astype(np.float32))
    floor()
    seconds, _ = timed(lambda: [floor() for _ in range(3)])
    per_step = steady / args.steps
    return [{"method": "maco_keras, ViT-B/16 block channel", "backend": backend, "units": 1, "first": first,
             "per_picture_step": per_step, "floor": seconds / 3, "ratio": per_step / (seconds / 3),
             "cpu_ratio": steady_cpu / args.steps / (CPU_SECONDS[-1] / 3), "device": device_name(backend)}]


def has_gpu():
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    except OSError:
        return False


def main(argv=None):
    args = parse(argv)
    if args.one:
        one_backend(args)
        return 0
    if not args.allow_cpu and not has_gpu():
        print("no GPU found (nvidia-smi): run on a GPU machine, or pass --allow-cpu", file=sys.stderr)
        return 2
    rows = []
    for backend in args.backends:
        command = [sys.executable, __file__, "--one", backend] + [a for a in (argv or sys.argv[1:])]
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
        if done.returncode or not lines:
            print(f"{backend}: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        rows.extend(json.loads(lines[0][5:]))
    print(f"\n{args.model}, {args.steps} steps, {args.crops} crops, {args.image_size} px; seconds per picture and step "
          f"(steady second call), and over the backend's own forward+backward floor on the same crops:\n")
    print("| method | backend | device | units | first call (s) | s / picture / step | floor (s) | ratio | "
          "ratio, CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {row['backend']} | {row.get('device', '')} | {row['units']} | {row['first']:.1f} | "
              f"{row['per_picture_step']:.3f} | {row['floor']:.3f} | {row['ratio']:.2f} | {row['cpu_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
