"""maco_keras beside Horama (the MACO authors' PyTorch library) on the same Keras-on-PyTorch model: speed and quality.

Both draw one picture per class of the shared MobileNetV2 (the subject, run on Keras's
PyTorch backend, where a Keras model is a `torch.nn.Module`), with the same steps, crops,
picture size, learning rate, magnitude (Xplique's ImageNet file, which Horama would
otherwise download) and values range; each keeps its own other choices (Horama: its crop
boxes of 20-25% of the side around the centre, cut at twice the input and resized
bicubically, Gaussian plus uniform noise of 0.05, a standardized phase; maco_keras: its
"fast" preset). The pictures are then shown whole, resized, to the shared networks that
were not the subject (MobileNetV1-0.5 and EfficientNet-Lite0), which give top-1, top-5 and
the target's rank; and to the subject itself. Classes are fixed and spread out, chosen
before any run.

Run:  python benchmarks/horama_compare.py [--classes 6] [--steps 64] [--crops 32] [--image-size 512] [--out DIR]
(needs the [torch,compare] extras: torch, horama, torchvision). Pictures are kept in --out (resumable).
"""

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CLASSES = [1, 309, 417, 980, 21, 95, 207, 555, 130, 340, 543, 701]  # fixed, spread out, no tuning
JUDGES = {"mobilenet_v1_0.5_160": "MobileNetV1-0.5", "efficientnet_lite0_224": "EfficientNet-Lite0",
          "mobilenet_v2_1.0_224": "MobileNetV2 (subject)"}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "horama"))
    args = parser.parse_args(argv)
    if not 1 <= args.classes <= len(CLASSES):
        parser.error(f"expected --classes in [1, {len(CLASSES)}], received: {args.classes}")
    for name in ("steps", "crops", "image_size"):
        if getattr(args, name) < 1:
            parser.error(f"expected --{name.replace('_', '-')} >= 1, received: {getattr(args, name)}")
    return args


def shared():
    path = pathlib.Path(os.environ.get("MACO_SHARED", REPO.parent / "shared"))
    if not (path / "models").is_dir():
        sys.exit(f"shared data not found at {path}: set MACO_SHARED")
    return path


def horama_picture(model, unit, args, magnitude_path):
    import horama
    import torch

    torch.manual_seed(unit)  # Horama draws from torch's global generator
    work = tempfile.mkdtemp()
    shutil.copy(magnitude_path, pathlib.Path(work) / "spectrum_decorrelated.npy")
    here = os.getcwd()
    os.chdir(work)
    try:
        objective = lambda crops: model(crops.permute(0, 2, 3, 1), training=False)[:, unit].mean()  # noqa: E731
        image, _ = horama.maco(objective, total_steps=args.steps, image_size=args.image_size,
                               model_input_size=model.input_shape[1], crops_per_iteration=args.crops,
                               values_range=(-1.0, 1.0), device="cpu", learning_rate=1.0)
    finally:
        os.chdir(here)
    return image.detach().permute(1, 2, 0).numpy()


def judge(models_dir, pictures):
    """{judge: (top-1, top-5, median rank of the target)} for {class: picture in [-1, 1]}."""
    import keras

    results = {}
    classes = sorted(pictures)
    for name, label in JUDGES.items():
        model = keras.models.load_model(models_dir / f"{name}.keras")
        size = model.input_shape[1:3]
        batch = keras.ops.image.resize(np.stack([pictures[c] for c in classes]), size, antialias=True)
        logits = keras.ops.convert_to_numpy(model(batch, training=False))
        ranks = np.array([int((logits[i] > logits[i, c]).sum()) for i, c in enumerate(classes)])
        results[label] = (float(np.mean(ranks == 0)), float(np.mean(ranks < 5)), float(np.median(ranks)))
    return results


def main(argv=None):
    args = parse(argv)
    import keras

    import maco_keras
    from maco_keras.core import magnitude as magnitude_lib

    models_dir = shared() / "models"
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = keras.models.load_model(models_dir / "mobilenet_v2_1.0_224.keras")
    classes = CLASSES[:args.classes]
    config = maco_keras.CONFIGS["fast"].replace(steps=args.steps, crops=args.crops, image_size=args.image_size, seed=0)
    visualizer = maco_keras.Visualizer(model, config, verbose=False)
    methods = {"maco_keras (torch backend, fast preset)": lambda unit: visualizer(units=[unit]).images[0],
               "Horama 0.3 maco": lambda unit: horama_picture(model, unit, args, magnitude_lib.imagenet_spectrum_path())}
    seconds, pictures = {}, {}
    for name, draw in methods.items():
        pictures[name], times = {}, []
        for unit in classes:
            path = out / f"{'horama' if 'Horama' in name else 'maco_keras'}_{unit}_{args.steps}_{args.crops}_" \
                         f"{args.image_size}.npz"
            if path.exists():
                saved = np.load(path)
                pictures[name][unit], spent = saved["image"], float(saved["seconds"])
            else:
                start = time.perf_counter()
                pictures[name][unit] = np.asarray(draw(unit), np.float32)
                spent = time.perf_counter() - start
                np.savez(str(path) + ".tmp.npz", image=pictures[name][unit], seconds=spent)
                os.replace(str(path) + ".tmp.npz", path)
            times.append(spent)
            print(f"{name}: class {unit} in {spent:.0f} s", flush=True)
        seconds[name] = float(np.median(times))
    print(f"\nMobileNetV2 on Keras's PyTorch backend, {len(classes)} classes {classes}, {args.steps} steps, "
          f"{args.crops} crops, {args.image_size} px, this CPU. Seconds per picture (median); the pictures shown "
          "whole to each network: top-1 / top-5 of the target class, and its median rank (0 is first):\n")
    header = "| method | s / picture | " + " | ".join(JUDGES.values()) + " |"
    print(header)
    print("|" + "---|" * (2 + len(JUDGES)))
    for name in methods:
        scores = judge(models_dir, pictures[name])
        cells = " | ".join(f"{top1:.2f} / {top5:.2f}, rank {rank:.0f}" for top1, top5, rank in scores.values())
        print(f"| {name} | {seconds[name]:.0f} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
