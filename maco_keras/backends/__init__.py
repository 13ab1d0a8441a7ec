"""One module per Keras backend, each compiling the core's per-unit step its own way.

- `tensorflow`: a `tf.function` per chunk of steps, a `tf.while_loop` over them, `tf.GradientTape`.
- `jax`: the whole chunk of steps in one `jax.jit` (`fori_loop` over steps, `lax.map` over
  units, the model through `stateless_call`); several devices share each unit's crops
  through `jax.sharding`.
- `torch`: autograd on one device; a step is Python (eager PyTorch has no compiled loop).

With a coupling term (diversity) each runner computes the batch's units as one (`group_step`):
their crops through the model together, the gradient of the sum of their scores. With
`crop_chunk` (the plan's) each runner takes a unit's crops a chunk at a time in its own
loop (`tf.while_loop`, `fori_loop`, Python), adding up each chunk's share of the score
and its gradient at the picture.

Every runner has the same three calls, which `maco_keras.visualizer.Visualizer` drives:
`start(seed, keys) -> state`, `advance(state, start, stop, ...) -> state` and
`pictures(phases, magnitudes) -> images`, plus `trace_count` (tests pin one trace per
configuration). `runner_class()` picks the active backend's.
"""

import importlib

# Keras is imported in the functions only: the command line reads BACKENDS before it picks Keras's backend.
BACKENDS = ("tensorflow", "jax", "torch")


def current():
    """The active Keras backend's name ("tensorflow", "jax" or "torch")."""
    import keras

    return keras.backend.backend()


def runner_class(backend=None):
    """The `Runner` class of `backend` (default: the active one)."""
    backend = current() if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"expected a Keras backend among {BACKENDS}, received: backend={backend!r}")
    if backend != current():
        raise ValueError(f"expected the active Keras backend ({current()!r}; set KERAS_BACKEND before Python starts), "
                         f"received: backend={backend!r}")
    return importlib.import_module(f".{backend}", __name__).Runner
