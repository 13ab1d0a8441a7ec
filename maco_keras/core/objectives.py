"""Objectives without Xplique: units of tapped layer outputs, composed with `+` and `*`.

An `Objective` is a list of sub-objectives, each a layer (a `taps.Tap`), a kind of score
and one mask per unit; `a + b` concatenates the lists and `2.0 * a` scales its weights.
Like Xplique's, a composition of sub-objectives of n1, n2, ... units is the n1 x n2 x ...
units of their product, named "a & b".

Scores are in the units' own values, so a composition weighs what it says:
- "mean": `sum(output * mask) / count(mask)` per crop: a logit or neuron is itself, a
  channel its mean over positions (or patch tokens); `channel + 0.5 * logit` is half a
  logit for each unit of channel mean. (Xplique's own `Objective` divides a channel by the
  channel count; maco-keras keeps that on TensorFlow when an Xplique `Objective` is given.)
- "direction": Lucid's dot product times the cosine to a power (at least 0.1), per crop.
- "pooled": minus the mean squared difference between the layer's output averaged over
  positions (or tokens) and the mask, a reference's (feature accentuation's "keep close").
- "distribution": minus the mean squared difference between each channel's activations,
  sorted over positions, and the mask, the reference's sorted ones (VITAL's feature
  distribution term; 0 at a match).
- "gram": Lucid's diversity, minus the mean cosine similarity of a crop's Gram matrix (its
  "style") to those of the step's crops of other copies (the mask: the unit's copy, one-hot).
  It couples the units of a batch: they are then one computation (`group_scores`).
A unit's score at a step is the mean over its K crops of the weighted sum of its terms.
"""

import dataclasses
import itertools
from typing import Sequence, Tuple

import numpy as np
from keras import ops


@dataclasses.dataclass(frozen=True)
class Term:
    """One sub-objective: `tap`'s output scored as `kind` against one mask per unit.

    Attributes:
        tap: what reaches the layer (a `taps.Tap`: `.path`, `.shape`, `.layer`, `.model`).
        kind: "mean", "direction", "pooled", "distribution" or "gram".
        masks: float32 array (n, *tap.shape), one per unit ("gram": (n, copies), each unit's copy, one-hot).
        names: n names.
        multiplier: the term's weight.
        cossim_pow: the cosine's power, for "direction".
    """

    tap: object
    kind: str
    masks: np.ndarray
    names: Tuple[str, ...]
    multiplier: float = 1.0
    cossim_pow: float = 2.0


class Objective:
    """A sum of weighted sub-objectives on one model's layers, each over its own units.

    Build one with `maco_keras.objectives` (`channel`, `neuron`, `logit`, `direction`) on a
    JAX or PyTorch backend; compose with `+`, `-` and `*`.

    Example:
        >>> obj = objectives.channel(model, "block_6_expand_relu", 7) + 0.5 * objectives.logit(model, 309)
        >>> images, transparency = maco_keras.maco(obj)
    """

    def __init__(self, model, terms: Sequence[Term]):
        self.model = model
        self.terms = tuple(terms)

    def __add__(self, other):
        if not isinstance(other, Objective):
            raise TypeError(f"expected a maco_keras objective to add, received: {type(other).__name__}")
        if other.model is not self.model:
            raise ValueError("expected objectives of one model, received: objectives of two different models")
        return Objective(self.model, self.terms + other.terms)

    def __sub__(self, other):
        return self + (-1.0) * other

    def __mul__(self, factor):
        if isinstance(factor, bool) or not isinstance(factor, (int, float, np.floating, np.integer)):
            raise TypeError(f"expected a number to weigh an objective, received: {factor!r}")
        return Objective(self.model, [dataclasses.replace(term, multiplier=term.multiplier * float(factor))
                                      for term in self.terms])

    __rmul__ = __mul__

    def __neg__(self):
        return (-1.0) * self

    @property
    def names(self):
        return [" & ".join(parts) for parts in itertools.product(*(term.names for term in self.terms))]

    def compile(self):
        """The objective as the loop takes it: a `CompiledObjective` of every unit of the product."""
        combos = list(itertools.product(*(range(len(term.names)) for term in self.terms)))
        masks = [np.stack([term.masks[combo[index]] for combo in combos]).astype(np.float32)
                 for index, term in enumerate(self.terms)]
        paths = []
        for term in self.terms:
            if term.tap.path not in paths:
                paths.append(term.tap.path)
        taps = [next(term.tap for term in self.terms if term.tap.path == path) for path in paths]
        structure = tuple((paths.index(term.tap.path), term.kind, float(term.cossim_pow)) for term in self.terms)
        divisors = np.stack([np.maximum(np.count_nonzero(mask.reshape(len(mask), -1), axis=1), 1).astype(np.float32)
                             for mask in masks], axis=1)
        return CompiledObjective(self.model, taps, structure, masks, divisors,
                                 np.array([term.multiplier for term in self.terms], np.float32), self.names)


@dataclasses.dataclass
class CompiledObjective:
    """What a compiled loop takes: static structure and per-unit arrays.

    Attributes:
        model: the model.
        taps: the distinct layers whose outputs are scored, in output order.
        structure: per term, (output index, kind, cossim_pow): the traced computation.
        masks: per term, float32 array (N, *shape): unit i's mask.
        divisors: float32 array (N, terms): the non-zero count of each mask.
        multipliers: float32 array (terms,).
        names: N names.
    """

    model: object
    taps: list
    structure: tuple
    masks: list
    divisors: np.ndarray
    multipliers: np.ndarray
    names: list

    @property
    def num_units(self):
        return len(self.names)

    @property
    def coupled(self):
        """Whether a term couples the units of a batch (diversity): they are then optimized as one computation."""
        return any(kind in COUPLING_KINDS for _, kind, _ in self.structure)

    @property
    def scales(self):
        """float32 array (N, terms, 2): each unit's (divisor, multiplier) per term, what a compiled step takes
        as an argument (other units or weights of one structure reuse its trace)."""
        multipliers = np.broadcast_to(self.multipliers, self.divisors.shape)
        return np.stack([self.divisors, multipliers], axis=-1).astype(np.float32)

    def unit(self, start, stop):
        """Units start .. stop - 1, as their own `CompiledObjective` (the same structure)."""
        return dataclasses.replace(self, masks=[mask[start:stop] for mask in self.masks],
                                   divisors=self.divisors[start:stop], names=list(self.names[start:stop]))


# Kinds whose value at a crop depends on the other units' crops.
COUPLING_KINDS = ("gram",)


def gram_similarities(output, copies):
    """(B,) per crop: the mean cosine similarity of its Gram matrix to those of the crops of other copies.

    Args:
        output: tensor (B, ..., channels), a layer's output at B crops.
        copies: tensor (B, copies), row b one-hot on the copy crop b belongs to.
    """
    features = ops.cast(output, "float32")
    features = ops.reshape(features, (features.shape[0], -1, features.shape[-1]))
    gram = ops.divide(ops.einsum("bpc,bpd->bcd", features, features), np.float32(features.shape[1]))
    gram = ops.reshape(gram, (gram.shape[0], -1))
    # `tf.math.l2_normalize`'s arithmetic: x / sqrt(max(sum(x^2), 1e-12)).
    gram = ops.multiply(gram, ops.rsqrt(ops.maximum(ops.sum(ops.square(gram), axis=1, keepdims=True),
                                                    np.float32(1e-12))))
    # A crop whose Gram matrix is not finite (its unit failed) counts as unlike every other: its NaN stays its
    # own (below) instead of reaching every crop through the product.
    finite = ops.all(ops.isfinite(gram), axis=1)
    gram = ops.where(ops.expand_dims(finite, 1), gram, 0.0)
    similarity = ops.matmul(gram, ops.transpose(gram))
    copies = ops.cast(copies, "float32")
    other = ops.subtract(1.0, ops.matmul(copies, ops.transpose(copies)))  # 1 where the crops are of other copies
    mean = ops.divide(ops.sum(ops.where(ops.greater(other, 0.5), similarity, 0.0), axis=1),
                      ops.maximum(ops.sum(other, axis=1), 1.0))
    return ops.where(finite, mean, np.float32(np.nan))


def term_values(output, mask, divisor, kind, cossim_pow):
    """(K,) one term's value at each of a unit's K crops.

    Args:
        output: tensor (K, *shape), the layer's output at the crops.
        mask: tensor (*shape), the unit's mask.
        divisor: scalar, the mask's non-zero count.
    """
    output = ops.cast(output, "float32")
    if kind == "distribution":
        # Sorted over positions, a channel's activations are its distribution's quantiles.
        channels = output.shape[-1]
        flat = ops.sort(ops.reshape(output, (output.shape[0], -1, channels)), axis=1)
        return ops.negative(ops.mean(ops.square(ops.subtract(flat, ops.reshape(mask, (1, -1, channels)))),
                                     axis=(1, 2)))
    if kind == "pooled":
        pooled = ops.mean(output, axis=tuple(range(1, len(output.shape) - 1))) if len(output.shape) > 2 else output
        return ops.negative(ops.mean(ops.square(ops.subtract(pooled, mask)), axis=-1))
    axes = tuple(range(1, len(output.shape)))
    # The mask selects, it does not multiply: a NaN elsewhere in the layer (another unit's) stays out.
    dot = ops.sum(ops.where(ops.not_equal(mask, 0.0), ops.multiply(output, mask), 0.0), axis=axes)
    if kind == "mean":
        return ops.divide(dot, divisor)
    # The floor inside the root keeps its gradient finite at an all-zero output (a dead layer).
    norms = ops.multiply(ops.sqrt(ops.maximum(ops.sum(ops.square(output), axis=axes), 1e-24)),
                         ops.sqrt(ops.sum(ops.square(mask))))
    cosine = ops.maximum(ops.divide(dot, ops.maximum(norms, 1e-12)), 0.1)
    return ops.multiply(dot, ops.power(cosine, cossim_pow))


def unit_score(outputs, structure, masks, scales, num_crops=None):
    """One unit's score at a step: the weighted sum of its terms, each its mean over the crops.

    Args:
        outputs: list of tensors (B, *shape), one per tap.
        structure: `CompiledObjective.structure`.
        masks: per term, the unit's mask (*shape); scales: (terms, 2), each term's (divisor, multiplier).
        num_crops: None (the B crops are all of the step's), or K: the B crops are a chunk of
            the step's K, and each term is its sum over them divided by K (its share of the mean).

    Returns:
        float32 scalar tensor.
    """
    total = 0.0
    for index, (output_index, kind, cossim_pow) in enumerate(structure):
        values = term_values(outputs[output_index], masks[index], scales[index, 0], kind, cossim_pow)
        mean = ops.mean(values) if num_crops is None else ops.divide(ops.sum(values), np.float32(num_crops))
        total = ops.add(total, ops.multiply(scales[index, 1], mean))
    return total


def group_scores(outputs, structure, masks, scales, num_crops):
    """Every unit's score at a step when a term couples them: the units' crops are one batch.

    Args:
        outputs: list of tensors (N * K, *shape), one per tap, unit i's crops at i * K .. i * K + K - 1.
        structure: `CompiledObjective.structure`.
        masks: per term, (N, *shape); scales: (N, terms, 2), each unit's (divisor, multiplier) per term.
        num_crops: K.

    Returns:
        float32 tensor (N,).
    """
    num_units = scales.shape[0]
    totals = []
    for index, (output_index, kind, cossim_pow) in enumerate(structure):
        output = outputs[output_index]
        if kind in COUPLING_KINDS:
            copies = ops.repeat(ops.cast(masks[index], "float32"), num_crops, axis=0)
            per_unit = ops.mean(ops.reshape(ops.negative(gram_similarities(output, copies)), (num_units, num_crops)),
                                axis=1)
        else:
            per_unit = ops.stack([ops.mean(term_values(output[unit * num_crops:(unit + 1) * num_crops],
                                                       masks[index][unit], scales[unit, index, 0], kind, cossim_pow))
                                  for unit in range(num_units)])
        totals.append(ops.multiply(scales[:, index, 1], per_unit))
    total = totals[0]
    for part in totals[1:]:
        total = ops.add(total, part)
    return total
