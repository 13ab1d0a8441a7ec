"""Stateless seeding of TensorFlow's engine: the core's counter-based generator, keyed by (seed, unit, step).

Every random draw of a run is keyed by the run's seed and by the unit it is for, never by
the batch the unit is in: image i's initial weights by (seed, unit i, step -1), the crops
and noise of its step s by (seed, unit i, s), each use by a stream of its own
(`core.draws`). A unit is named by its objective's name (e.g. "Neuron#predictions_309"; a
composition "A & B" by its parts), turned into a 31-bit key by `unit_key` (nested models'
paths left out). Nothing depends on global or per-device generator state, on which other
units share a batch, or on the backend: the same (unit, settings, seed) gives the same
draws alone, in any batch, in any shard, and under JAX and PyTorch's `Visualizer` too.
"""

import tensorflow as tf

from .core import draws
from .core.draws import unit_identity, unit_key, unit_keys  # noqa: F401 (one key per unit on every backend)

# What run folders record as `draws`: the core's counter-based generator, the same on every backend.
# Folders of earlier versions drew with TensorFlow's Philox, keyed per unit ("per unit", format 2)
# or per batch ("per batch", format 1); they are read, not resumed with these draws.
DRAWS = draws.DRAWS


def unit_draws(seed, step, keys):
    """int32 tensor (N, 3): each unit's (seed, key, step), what its draws at `step` are keyed by.

    Args:
        seed: the run's seed (int or int32 scalar tensor).
        step: the step (int or int32 scalar tensor); `draws.INITIAL_STEP` for the initial weights.
        keys: int32 tensor or array (N,), from `unit_keys`.
    """
    keys = tf.convert_to_tensor(keys, tf.int32)
    shape = tf.shape(keys)
    return tf.stack([tf.fill(shape, tf.cast(seed, tf.int32)), keys, tf.fill(shape, tf.cast(step, tf.int32))],
                    axis=1)


def stream_keys(rows, stream):
    """int32 tensor (N,): the key of stream `stream` (`draws.NOISE`, ...) of each row (seed, key, step) of `rows`."""
    return draws.stream_key(rows[:, 0], rows[:, 1], rows[:, 2], stream)


def stream_key(row, stream):
    """int32 scalar: the key of stream `stream` of one unit's row (seed, key, step)."""
    return draws.stream_key(row[0], row[1], row[2], stream)


def per_unit(draw, rows):
    """Stacks `draw(row)` over the rows of `rows` (N, ...), N static: each unit's draw, made alone.

    Unrolled rather than a `tf.map_fn`: N is small, and a while loop in the step's graph
    measured slower (the loop ran 3% slower against its floor at N = 4).
    """
    return tf.stack([draw(rows[index]) for index in range(rows.shape[0])])
