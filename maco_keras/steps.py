"""One optimization step, on every replica of a `tf.distribute` strategy.

A step renders the N images, draws its crops and noise (each image's from its own seed;
every replica draws the same ones), and gives each replica an equal slice of the K crops
per image. A replica takes its slice's gradient at the images (`chunks.CropChunks`,
`crop_chunk` crops at a time), the replicas' image gradients and scores are summed, and
the image gradient is pulled back through the parameterization once. The optimizer,
whose state mirrors the weights, sums the replicas' weight gradients and applies them.

Without a strategy (the default one) there is one replica, which takes all the crops.
"""

import tensorflow as tf

from . import augmentation as augmentation_lib
from . import chunks as chunks_lib
from . import models
from . import seeding
from . import validation

models.REDIRECT  # noqa: B018 (the ReLU redirect's switch is made here, on import, never inside a trace)


def resolve_strategy(strategy):
    """`strategy` or, for None, the current one (the default, single-device one unless in a scope)."""
    if strategy is None:
        return tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            f"expected a tf.distribute.Strategy or None, received: strategy={strategy!r} ({type(strategy).__name__})")
    return strategy


def is_tpu(strategy):
    """Whether `strategy` runs on TPU cores (which compile the replicated step with XLA)."""
    return isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))


def split_crops(num_crops, strategy, crop_chunk):
    """Validates how a step's K crops are shared; returns (crops per replica, crops per chunk).

    Each replica takes K / R consecutive crop indices and processes them `crop_chunk` at a
    time (default: all at once), so both must divide evenly: shapes stay static.
    """
    replicas = strategy.num_replicas_in_sync
    if num_crops % replicas:
        raise ValueError(
            f"expected `crops` divisible by the {replicas} replicas of `strategy` (each replica takes an equal "
            f"share of a step's crops), received: crops={num_crops}")
    per_replica = num_crops // replicas
    if crop_chunk is None:
        return per_replica, per_replica
    crop_chunk = validation.positive_int("crop_chunk", crop_chunk)
    if per_replica % crop_chunk:
        raise ValueError(
            f"expected `crop_chunk` to divide the {per_replica} crops per image each replica processes per step, "
            f"received: crop_chunk={crop_chunk}")
    return per_replica, crop_chunk


def coarse_to_fine_gradients(gradients, radii, cutoff):
    """The gradients with those of frequencies whose radius is above `cutoff` set to 0.

    Those frequencies' optimizer moments then stay 0 and they keep their phase until the
    cutoff reaches them.

    Args:
        gradients: the gradients of the trainable weights.
        radii: per weight, its frequencies' radii as a float32 tensor broadcastable to it,
            or None (not frequencies: its gradient is kept whole).
        cutoff: scalar float32 tensor, this step's cutoff.
    """
    return [g if radius is None else g * tf.cast(radius <= cutoff, g.dtype) for g, radius in zip(gradients, radii)]


class Step:
    """One step's gradients and update, for one parameterization and one objective structure.

    Args:
        parameterization: an `ImageParameterization`, built under `strategy.scope()` when
            a strategy is given.
        objective: a `CompiledObjective` whose N matches the parameterization's.
        num_crops: K, crops per image per step.
        augmentation: an `Augmentation`.
        optimizer: a Keras optimizer, used as a configuration: a copy is built under the
            strategy's scope.
        strategy: a `tf.distribute.Strategy` or None (the current one).
        crop_chunk: crops per image a replica runs through the model at once (default: all).
        jit_compile: the step runs under XLA: crops are cut with gathers.
        relu_redirect_steps: for how many first steps redirected ReLUs pass gradients.
        learning_rate_schedule: the learning rate is set before each update.
        radii: per weight, its frequencies' radii (coarse to fine), or None (off).
    """

    def __init__(self, parameterization, objective, num_crops, augmentation, optimizer, strategy=None,
                 crop_chunk=None, jit_compile=False, relu_redirect_steps=0, learning_rate_schedule=False,
                 radii=None):
        self.parameterization = parameterization
        self.num_crops = num_crops
        self.augmentation = augmentation
        self.strategy = resolve_strategy(strategy)
        self.variables = list(parameterization.trainable_variables)
        if strategy is not None and not all(self.strategy.extended.variable_created_in_scope(
                getattr(variable, "value", variable)) for variable in self.variables):
            raise ValueError("the parameterization's weights must be created under `strategy.scope()`")
        with self.strategy.scope():
            # The optimizer must be made in the scope: its variables mirror the weights.
            self.optimizer = type(optimizer).from_config(optimizer.get_config())
            self.optimizer.build(self.variables)
        # Snapshot of the freshly built state (zeros, NAdam's u_product = 1, ...), restored
        # before each run so that a run does not depend on the previous one.
        self._optimizer_initial_state = [variable.numpy() for variable in self.optimizer.variables]
        self.crops_per_replica, crop_chunk = split_crops(num_crops, self.strategy, crop_chunk)
        # A TPU strategy compiles the replicated step with XLA itself; XLA has no
        # CropAndResize kernel, so crops are cut with gathers there too.
        gather = bool(jit_compile) or is_tpu(self.strategy)
        model_dtype = getattr(objective.model, "compute_dtype", None) or "float32"
        self.chunks = chunks_lib.CropChunks(objective, augmentation, num_crops, self.crops_per_replica, crop_chunk,
                                            gather, model_dtype)
        self.relu_redirect_steps = int(relu_redirect_steps)
        self.learning_rate_schedule = bool(learning_rate_schedule)
        self.radii = None if radii is None else [None if r is None else tf.constant(r, tf.float32) for r in radii]

    def reset(self):
        """Restores the optimizer's freshly built state."""
        for variable, value in zip(self.optimizer.variables, self._optimizer_initial_state):
            variable.assign(value)

    def first(self, value):
        """The first replica's value of a per-replica value (equal on every replica where used)."""
        return self.strategy.experimental_local_results(value)[0]

    def _replica_gradients(self, step, seed, keys, masks, multipliers, scale, uniform, gaussian):
        replica = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            images = self.parameterization()
        rows = seeding.unit_draws(seed, step, keys)
        noisy, boxes, noise_keys = augmentation_lib.draw(rows, images, self.num_crops, self.augmentation, scale,
                                                         uniform, gaussian)
        first = tf.cast(replica.replica_id_in_sync_group, tf.int32) * self.crops_per_replica
        scores, image_gradient = self.chunks(noisy, boxes, noise_keys, first, masks, multipliers, uniform, gaussian)
        # Linear in the image gradient: the replicas' weight gradients add up to the full one.
        gradients = tape.gradient(images, self.variables, output_gradients=image_gradient)
        non_finite = tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(g), tf.float32)) for g in gradients])
        if self.strategy.num_replicas_in_sync > 1:
            image_gradient, scores, non_finite = replica.all_reduce(
                tf.distribute.ReduceOp.SUM, [image_gradient, scores, non_finite])
        non_finite += tf.reduce_sum(tf.cast(~tf.math.is_finite(image_gradient), tf.float32))
        non_finite += tf.reduce_sum(tf.cast(~tf.math.is_finite(scores), tf.float32))
        return scores, image_gradient, gradients, non_finite

    def gradients(self, step, seed, keys, masks, multipliers, scale, uniform, gaussian):
        """The step's gradients at the current images, on every replica (call in a cross-replica context).

        Args:
            step, seed: scalar int32 tensors.
            keys: int32 tensor (N,), the units' keys (`seeding.unit_keys`).
            masks, multipliers: the objective's values.
            scale, uniform, gaussian: this step's crop scale and noise.

        Returns:
            per-replica (scores (N,), image gradient (N, H, W, C), this replica's weight
            gradients, count of non-finite values); scores and image gradient are summed
            over the replicas, so every replica holds the full ones.
        """
        if self.relu_redirect_steps:
            models.REDIRECT.assign(step < self.relu_redirect_steps)
        return self.strategy.run(self._replica_gradients,
                                 args=(step, seed, keys, masks, multipliers, scale, uniform, gaussian))

    def _replica_apply(self, step, scores, image_gradient, gradients, learning_rate, cutoff, record):
        if self.radii is not None:
            gradients = coarse_to_fine_gradients(gradients, self.radii, cutoff)
        if self.learning_rate_schedule:
            self.optimizer.learning_rate = learning_rate
        # Gradient *ascent*: the objective is maximized. The optimizer sums the replicas' gradients.
        self.optimizer.apply_gradients(zip([-g for g in gradients], self.variables))
        record(step, scores, image_gradient)

    def apply(self, step, scores, image_gradient, gradients, learning_rate, cutoff, record):
        """Updates the weights from the replicas' `gradients` (see `gradients`), then calls `record(step, scores,
        image_gradient)` on every replica (to write variables that are equal on every replica)."""
        self.strategy.run(lambda *args: self._replica_apply(*args, record=record),
                          args=(step, scores, image_gradient, gradients, learning_rate, cutoff))
