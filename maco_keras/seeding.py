"""Stateless seeding shared by every stage: one counter-based generator, keys derived from (seed, ...).

Every random draw of a run is keyed by the run's seed: the initial weights by
(seed, -1), the augmentations of step s by (seed, s). Nothing depends on global or
per-device generator state, so the same seed gives the same images on every call.
"""

import tensorflow as tf

# One counter-based generator everywhere, rather than TF's per-device "auto_select".
# XLA implements the stateless ops its own way (measured: other draws for the same seed),
# so a seed fixes the images per device and compile mode, not across them.
RNG = "philox"


def initial_seed(seed):
    """The stateless seed of the initial weights: (seed, -1), apart from the steps' (seed, step >= 0)."""
    return tf.stack([tf.cast(seed, tf.int32), -1])


def step_seed(seed, step):
    """The stateless seed of step `step`'s augmentations."""
    return tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)])
