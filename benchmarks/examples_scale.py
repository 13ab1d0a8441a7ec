"""Dataset examples at scale: peak memory and throughput against the number of images.

Generates a folder of N images (smooth random pictures of varied sizes and aspect ratios,
JPEG, in 100 class subfolders, plus 3 unreadable files), then runs
`examples.dataset_examples` over it in a fresh process per N (so that each peak RSS is its
own) and prints one row per N: images read, files skipped, seconds, images per second,
peak RSS. The running top-k keeps memory bounded: peak RSS should not grow with N.

    .venv/bin/python benchmarks/examples_scale.py --images 1000 10000
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

from common import REPO, shared_dir

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import keras
from maco_keras import examples
model = keras.models.load_model({model!r}, compile=False)
started = time.perf_counter()
found = examples.dataset_examples(model, {layer!r}, "channel", {folder!r}, (-1.0, 1.0),
                                  range(model.get_layer({layer!r}).output.shape[-1]), top=6, verbose=False)
seconds = time.perf_counter() - started
print(json.dumps({{"read": found.images, "skipped": len(found.skipped), "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def generate(folder, count, seed=0):
    """`count` images in 100 class subfolders, and 3 unreadable files."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        height, width = rng.integers(120, 360, size=2)
        # Smooth colour blobs: a small random picture, upsampled.
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((int(width), int(height)), Image.BICUBIC)
        target = folder / f"n{index % 100:08d}"
        target.mkdir(parents=True, exist_ok=True)
        image.save(target / f"image_{index:06d}.jpg", quality=85)
    for index in range(3):
        (folder / f"n{index:08d}" / f"corrupt_{index}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--layer", default="block_13_expand_relu", help="a channel layer of MobileNetV2 (576 units)")
    args = parser.parse_args(argv)
    if any(count < 1 for count in args.images):
        parser.error(f"expected --images >= 1, received: --images={args.images}")
    model = shared_dir() / "models" / "mobilenet_v2_1.0_224.keras"
    rows = []
    for count in args.images:
        with tempfile.TemporaryDirectory() as temporary:
            folder = pathlib.Path(temporary) / "images"
            generate(folder, count)
            script = CHILD.format(repo=str(REPO), model=str(model), layer=args.layer, folder=str(folder))
            result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                    env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
            if result.returncode:
                sys.exit(result.stderr[-2000:])
            report = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append((count, report))
    print(f"MobileNetV2 {args.layer}, every channel, top 6, 224x224 inputs, batch 32")
    print("| images | read | skipped | seconds | images/s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for count, report in rows:
        print(f"| {count} | {report['read']} | {report['skipped']} | {report['seconds']:.1f} | "
              f"{report['read'] / report['seconds']:.1f} | {report['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
