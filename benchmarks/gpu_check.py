"""GPU check: maco_keras on the GPUs TensorFlow sees, against the model's own floor and Xplique.

On the shared MobileNetV2 (`../shared` or $MACO_SHARED), N logits, 512 px, 32 crops,
it measures, each as a first call (with its trace or XLA compilation) and a second,
steady call:
- floor: the model's forward + backward on the same crops, step after step;
- maco_keras: plain, `jit_compile=True` (XLA), and a `mixed_bfloat16` copy of the model;
- Xplique's `maco` (one call per objective);
- maco_keras with `tf.distribute.MirroredStrategy` over every visible GPU (the model
  loaded under its scope).
It prints one table: seconds per image and steady time over the floor. A row that fails
prints its error and the others go on. Run through `benchmarks/gpu_check.sh` (at most 8
minutes); `--allow-cpu` runs it without a GPU, for checking the script itself.

Run:  bash benchmarks/gpu_check.sh [--units 4] [--steps 64] [--crops 32] [--image-size 512]
"""

import argparse
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import maco_keras  # noqa: E402
from common import floor_steps, markdown_table, shared_dir  # noqa: E402

UNITS = [1, 309, 417, 980, 21, 95, 207, 555]  # fixed, spread-out ImageNet classes


def seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def bfloat16_copy(model):
    """The model with every layer in the `mixed_bfloat16` policy, same weights."""
    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (to check the script)")
    args = parser.parse_args()

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.allow_cpu:
        sys.exit("gpu_check: TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') is empty)")
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    print(f"devices: {', '.join(names) or 'CPU only'}; TF {tf.__version__}, Keras {keras.__version__}; "
          f"N={args.units} logits, {args.steps} steps, {args.crops} crops, {args.image_size}px", flush=True)
    path = shared_dir() / "models" / "mobilenet_v2_1.0_224.keras"
    model = keras.models.load_model(path)
    units = UNITS[:args.units]
    settings = dict(units=units, steps=args.steps, crops=args.crops, image_size=args.image_size, seed=0,
                    values_range=(-1, 1), verbose=False, **maco_keras.presets.schedules("paper"))
    rows = []
    floor = None

    def measure(name, first, steady=None):
        nonlocal floor
        try:
            cold = seconds(first) / len(units)
            warm = seconds(steady or first) / len(units)
        except Exception as error:  # one failing configuration must not hide the others
            message = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
            print(f"{name}: FAILED: {message}", flush=True)
            traceback.print_exc(limit=2)
            rows.append([name, "failed", "failed", message])
            return
        if floor is None:
            floor = warm
        rows.append([name, f"{cold:.3f}", f"{warm:.3f}", f"{warm / floor:.2f}"])
        print(f"{name}: first {cold:.3f} s/image, steady {warm:.3f} s/image", flush=True)

    measure("floor: model fwd+bwd", floor_steps(model, args.crops * len(units), args.steps))
    measure("maco_keras", lambda: maco_keras.maco(model, **settings))
    measure("maco_keras, jit_compile=True", lambda: maco_keras.maco(model, jit_compile=True, **settings))
    half = bfloat16_copy(model)
    measure("maco_keras, mixed_bfloat16", lambda: maco_keras.maco(half, **settings))
    measure("maco_keras, mixed_bfloat16 + XLA", lambda: maco_keras.maco(half, jit_compile=True, **settings))

    from xplique.features_visualizations import Objective
    from xplique.features_visualizations import maco as xplique_maco

    def xplique_run():
        for unit in units:
            xplique_maco(Objective.neuron(model, -1, unit), nb_steps=args.steps, nb_crops=args.crops,
                         custom_shape=(args.image_size, args.image_size), values_range=(-1, 1))

    measure("xplique.maco", xplique_run)

    strategy = tf.distribute.MirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    if args.crops % replicas:
        rows.append([f"MirroredStrategy ({replicas} replicas)", "skipped", "skipped",
                     f"--crops {args.crops} not divisible by {replicas}"])
    else:
        with strategy.scope():
            mirrored_model = keras.models.load_model(path)
        measure(f"maco_keras, MirroredStrategy ({replicas} replicas)",
                lambda: maco_keras.maco(mirrored_model, strategy=strategy, **settings))
        measure(f"maco_keras, MirroredStrategy ({replicas}) + XLA",
                lambda: maco_keras.maco(mirrored_model, strategy=strategy, jit_compile=True, **settings))

    print(f"\n{', '.join(names) or 'CPU only'}: seconds per image, N={len(units)} logits of MobileNetV2, "
          f"{args.steps} steps, {args.crops} crops, {args.image_size}px\n")
    print(markdown_table(["configuration", "first call (traces)", "steady", "steady / floor"], rows))
    print(f"\n(a 256-step run costs about {256 / args.steps:.0f}x the steady column)")


if __name__ == "__main__":
    main()
