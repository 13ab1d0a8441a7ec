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
