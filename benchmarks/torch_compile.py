"""Does `torch.compile` pay on Keras's PyTorch backend? The model's forward + backward on 32 crops, eager and compiled.

Run:  python benchmarks/torch_compile.py [--model mobilenet_v1_0.25_128] [--repeats 5]
Prints eager seconds per pass, the compiled function's first call (its compilation) and
its steady seconds per pass.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mobilenet_v1_0.25_128")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"expected --repeats >= 1, received: {args.repeats}")
    import keras
    import torch

    shared = pathlib.Path(os.environ.get("MACO_SHARED", REPO.parent / "shared"))
    model = keras.models.load_model(shared / "models" / f"{args.model}.keras")
    size = model.input_shape[1]
    crops = torch.tensor(np.random.default_rng(0).uniform(-1, 1, (32, size, size, 3)).astype(np.float32))

    def step(forward):
        inputs = crops.detach().requires_grad_(True)
        torch.autograd.grad(forward(inputs).sum(), [inputs])

    def per_pass(forward):
        start = time.perf_counter()
        for _ in range(args.repeats):
            step(forward)
        return (time.perf_counter() - start) / args.repeats

    eager = lambda inputs: model(inputs, training=False)  # noqa: E731
    step(eager)
    eager_seconds = per_pass(eager)
    compiled = torch.compile(eager)
    start = time.perf_counter()
    step(compiled)
    first = time.perf_counter() - start
    compiled_seconds = per_pass(compiled)
    print(f"{args.model}, 32 crops, forward + backward: eager {eager_seconds:.3f} s; torch.compile: first call "
          f"{first:.1f} s, then {compiled_seconds:.3f} s per pass ({compiled_seconds / eager_seconds:.2f}x eager)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
