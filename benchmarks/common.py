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

