"""Helpers shared by the benchmark scripts: where ../shared is, and timing."""

import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_dir():
    """../shared beside the checkout, or $MACO_SHARED; exits with a message if absent."""
    path = pathlib.Path(os.environ.get("MACO_SHARED", REPO.parent / "shared"))
    if not (path / "models").is_dir():
        sys.exit(f"shared data not found at {path}: set MACO_SHARED to the folder holding models/ and imagenet-samples/")
    return path


class Timer:
    """`with Timer() as t: ...` then `t.seconds` (wall clock) and `t.cpu_seconds`.

    `cpu_seconds` is the CPU time of all the process's threads: on a shared machine it
    does not count what other tenants take, so it is the steadier measure of work.
    """

    def __enter__(self):
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


def median_interval(values, confidence=0.95):
    """A distribution-free confidence interval for the median of `values`: the pair of
    order statistics (x_(j), x_(n+1-j)) with the largest j whose coverage,
    1 - 2 P(Binomial(n, 1/2) <= j - 1), is at least `confidence`. Assumes only that the
    values are independent draws of one distribution (repeats of one measurement).

    Returns:
        (low, high), or None when there are too few values for that confidence (n < 6 at 95%).
    """
    import math

    ordered = sorted(values)
    count = len(ordered)
    below = 0.0  # P(Binomial(n, 1/2) <= j - 1)
    best = None
    for j in range(1, count // 2 + 1):
        below += math.comb(count, j - 1) / 2 ** count
        if 1 - 2 * below < confidence:
            break
        best = j
    return None if best is None else (ordered[best - 1], ordered[count - best])


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def floor_steps(model, batch, steps):
    """A function that runs `steps` forward + backward passes of `model` on `batch`
    model-sized inputs, back to back like the optimization's steps: the floor that the
    loop is compared with. Its first call also traces."""
    import tensorflow as tf

    height, width, channels = model.input_shape[1:]

    @tf.function
    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            score = tf.reduce_sum(model(inputs)[:, 1])
        return tape.gradient(score, inputs)

    inputs = tf.random.uniform((batch, height, width, channels), -1, 1)

    def run():
        for _ in range(steps):
            result = forward_backward(inputs)
        result.numpy()

    return run



def load_natural(shared, size, values_range=(-1.0, 1.0)):
    """The 500 sample images (one per odd class), centre square resized to `size`, in
    `values_range`; and their classes."""
    import tensorflow as tf

    files = sorted((shared / "imagenet-samples").glob("*.JPEG"))
    low, high = values_range
    images = []
    for path in files:
        image = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3)
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        image = tf.image.resize(image[top:top + side, left:left + side], (size, size), antialias=True)
        images.append(image.numpy() / 255.0 * (high - low) + low)
    import numpy as np

    return np.stack(images).astype(np.float32), np.arange(len(files)) * 2 + 1


def frontier_section(subject, tag=""):
    """The name of the section of RESULTS.md that `frontier.py --tag tag` writes for `subject`."""
    from maco_keras.evaluation.plots import file_name  # here, so that importing this module stays light

    return f"frontier-{subject}" + (f"-{file_name(tag)}".replace("_", "-") if tag else "")


def read_section(path, name):
    """The text of the section `name` of a Markdown file (see `write_section`), or None."""
    text = pathlib.Path(path).read_text() if pathlib.Path(path).exists() else ""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if start not in text or end not in text:
        return None
    return text[text.index(start) + len(start):text.index(end)].strip("\n")


def write_section(path, name, text):
    """Replaces the section `name` of a Markdown file (between `<!-- name -->` and
    `<!-- /name -->`), or appends it; written to a temporary file, then renamed."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else ""
    if start in old and end in old:
        new = old[:old.index(start)] + block + old[old.index(end) + len(end):].lstrip("\n")
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(new)
    os.replace(temporary, path)
