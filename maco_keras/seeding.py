"""Stateless seeding shared by every stage: one counter-based generator, keys derived from (seed, unit, ...).

Every random draw of a run is keyed by the run's seed and by the unit it is for, never by
the batch the unit is in: image i's initial weights by (seed, -1, unit i), the crops and
noise of its step s by (seed, s, unit i). A unit is named by its objective's name (e.g.
"Neuron#predictions_309"; a composition "A & B" by its parts), turned into a 31-bit key
by `unit_key` (nested models' paths left out). Nothing depends on global or per-device generator state, or on which other
units share a batch, so the same (unit, settings, seed) gives the same image alone, in
any batch and in any shard.
"""

import numpy as np
import tensorflow as tf

from .core.draws import unit_identity, unit_key, unit_keys  # noqa: F401 (one key per unit on every backend)

# One counter-based generator everywhere, rather than TF's per-device "auto_select".
# XLA implements the stateless ops its own way (measured: other draws for the same seed),
# so a seed fixes the images per device and compile mode, not across them.
RNG = "philox"

# What run folders record as `draws`: the random draws are keyed per unit. Folders of
# earlier versions, keyed per batch ("per batch"), are not resumed with these draws.
DRAWS = "per unit"


def initial_seed(seed):
    """The stateless seed of the initial weights: (seed, -1), apart from the steps' (seed, step >= 0)."""
    return tf.stack([tf.cast(seed, tf.int32), -1])


def step_seed(seed, step):
    """The stateless seed of step `step`'s augmentations."""
    return tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)])


def unit_seeds(seed, keys):
    """int32 tensor (N, 2): `seed` (2,) folded with each unit's key, one stateless seed per unit.

    The same as `tf.random.experimental.stateless_fold_in(seed, key)` for each key: a draw
    keyed by `seed`, paired with the key.

    Args:
        seed: int32 tensor (2,), e.g. `step_seed(seed, step)`.
        keys: int32 tensor or array (N,), from `unit_keys`.
    """
    keys = tf.convert_to_tensor(keys, tf.int32)
    first = tf.random.stateless_uniform((), seed, minval=None, maxval=None, dtype=tf.int32, alg=RNG)
    return tf.stack([tf.fill(tf.shape(keys), first), keys], axis=1)


def per_unit(draw, seeds):
    """Stacks `draw(seed)` over the rows of `seeds` (N, 2), N static: each unit's draw, made alone.

    Unrolled rather than a `tf.map_fn`: N is small, and a while loop in the step's graph
    measured slower (the loop ran 3% slower against its floor at N = 4).
    """
    return tf.stack([draw(seeds[index]) for index in range(seeds.shape[0])])


def split(seeds, count):
    """(N, count, 2): each row of `seeds` (N, 2) split into `count` independent seeds."""
    return per_unit(lambda seed: tf.random.experimental.stateless_split(seed, count, alg=RNG), seeds)
