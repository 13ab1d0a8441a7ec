"""Turns what the user wants to maximize into a batched, compiled-loop-friendly form.

Three inputs are accepted:
- an Xplique `Objective`, any composition (`obj_a + 0.5 * obj_b`): its N combined
  objectives are optimized together, one image each;
- a Keras model plus `units`: shortcut for `objectives.logit(model, units)` (its output
  units, maximized in their own values as on every backend);
- a plain callable `images -> scores` with the model's `input_shape`.

The result, `CompiledObjective`, separates what defines the traced computation (the
feature model, the loss functions, the mask shapes: its `key`) from the values that
change between calls (masks, multipliers), which the loop takes as tensor arguments.
That is what lets two objectives on different units of one model share one trace.
"""

import dataclasses
import itertools
import weakref
from typing import Callable, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf
from xplique.features_visualizations import Objective

from . import models as models_lib
from . import taps
from . import validation


@dataclasses.dataclass
class CompiledObjective:
    """An objective ready for the optimization loop.

    Attributes:
        model: callable mapping model inputs (B, h, w, C) to a list of outputs, one per
            sub-objective.
        funcs: one `func(outputs, masks) -> scores` per sub-objective (Xplique's
            convention: masks have the batch size of the outputs).
        masks: one float32 array (N, ...) per sub-objective: row i is objective i's mask.
        multipliers: float32 array (num_sub_objectives,).
        names: N names.
        input_shape: (h, w, C) of the model input.
        key: hashable identity of the traced computation.
    """

    model: Callable
    funcs: Sequence[Callable]
    masks: Sequence[np.ndarray]
    multipliers: np.ndarray
    names: Sequence[str]
    input_shape: Tuple[int, int, int]
    key: tuple

    @property
    def num_objectives(self):
        return len(self.names)

    def batches(self, batch_size):
        """The objectives in consecutive groups of at most `batch_size`, each a `CompiledObjective`.

        Groups of one size share a trace; a smaller last group traces once more.
        """
        groups = []
        for start in range(0, self.num_objectives, batch_size):
            stop = min(start + batch_size, self.num_objectives)
            masks = [mask[start:stop] for mask in self.masks]
            key = self.key[:-1] + (stop - start,) if self.key and self.key[0] == "xplique" else self.key + (start, stop)
            groups.append(dataclasses.replace(self, masks=masks, names=list(self.names[start:stop]), key=key))
        return groups

    def scores(self, outputs, masks, multipliers, num_crops, total_crops=None):
        """Per-objective scores of some crops of a step: what is maximized, and the same in the units' own values.

        Xplique's `neuron` and `channel` objectives average `output * mask` over the whole
        layer output: a logit shows as the logit divided by the number of outputs. The
        second result undoes that average (times the mask's size over its non-zero count),
        so a logit reads as the logit and a channel as its spatial mean. The loss of
        Xplique's own objectives keeps Xplique's scale (their pictures are Xplique's);
        `maco_keras.objectives` are maximized in the units' own values, as the core does on
        every backend (`core.objectives.unit_score`), so `maco` draws the same picture on each.

        Each crop counts `multiplier / total_crops`, a weight that does not depend on how
        the step's crops are split: a crop's gradient is then the same bits whether it is
        scored alone, in a chunk or with all the step's crops.

        Args:
            outputs: list of model outputs for num_crops * N crops in crop-major order.
            masks: list of mask tensors (N, ...), multipliers: tensor (num_sub,).
            num_crops: the crops per objective in `outputs`.
            total_crops: K, the step's crops per objective (default `num_crops`): with all
                K the results are means over the step's crops, with a part of them that
                part's share of the means.

        Returns:
            (loss, values): float32 tensors (N,), each the sum over sub-objectives of
            multiplier * the sum over these crops of score / K: the loss with Xplique's
            objectives at Xplique's scale and `maco_keras.objectives` in their own values,
            the values all in their own values.
        """
        total_crops = num_crops if total_crops is None else total_crops
        num_objectives = self.num_objectives
        parts, scales, own = [], [], []
        for index, (func, output) in enumerate(zip(self.funcs, outputs)):
            # Crop k*N+i belongs to objective i: tiling the N masks K times lines them up.
            mask = tf.cast(tf.tile(masks[index], [num_crops] + [1] * (masks[index].shape.rank - 1)), output.dtype)
            if _is_layer_mean(func):
                # Masks select, they do not multiply: NaN * 0 would make another unit's NaN this one's.
                output = tf.where(mask != 0, output, tf.zeros_like(output))
            score = tf.cast(func(output, mask), tf.float32)
            if score.shape.rank == 0:
                # A reducer that already averages over the batch (Xplique's `layer`): these crops' share.
                part = tf.fill((num_objectives,), multipliers[index] * score * (num_crops / total_crops))
            else:
                weight = multipliers[index] / total_crops
                part = tf.reduce_sum(weight * tf.reshape(score, (num_crops, num_objectives, -1)), axis=(0, 2))
            parts.append(part)
            scales.append(self._unit_scale(func, masks[index]))
            own.append(getattr(func, "composes_in_own_values", False))
        values = tf.add_n([part * scale for part, scale in zip(parts, scales)])
        # `maco_keras.objectives` are maximized in the units' own values: `channel + 0.5 * logit` weighs the
        # channel's mean against half the logit, and the gradient is the core's on every backend. Xplique's own
        # objectives keep Xplique's weighting.
        total = tf.add_n([part * scale if is_own else part for part, scale, is_own in zip(parts, scales, own)])
        return total, values

    @staticmethod
    def _unit_scale(func, mask):
        """(N,) factors from Xplique's layer-wide mean to the unit's own value (1 for other losses)."""
        if not _is_layer_mean(func):
            return tf.ones((mask.shape[0],), tf.float32)
        flat = tf.reshape(mask, (mask.shape[0], -1))
        selected = tf.math.count_nonzero(flat, axis=1, dtype=tf.float32)
        return float(flat.shape[1]) / tf.maximum(selected, 1.0)


# Xplique's neuron and channel losses: `reduce_mean(output * mask)` over the whole layer output (and
# `objectives.layer_mean`, the same loss, marked `reports_layer_mean`).
_LAYER_MEAN_REDUCERS = ("Objective.neuron.<locals>.optim_func", "Objective.channel.<locals>.optim_func")


def _is_layer_mean(func):
    return getattr(func, "__qualname__", "") in _LAYER_MEAN_REDUCERS or getattr(func, "reports_layer_mean", False)


class Identity:
    """A key part that is one object (equal only to itself), holding it so that it stays that object."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Identity) and other.value is self.value

    def __hash__(self):
        return object.__hash__(self.value)


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape, value.dtype.str, value.tobytes())
    try:
        hash(value)
        return value
    except TypeError:
        return Identity(value)


def function_key(func):
    """Identifies a loss function by its code and captured values, not its identity.

    Xplique builds a new closure per objective; closures with the same code and the same
    captured values compute the same thing and can share a trace.
    """
    code = getattr(func, "__code__", None)
    if code is None:
        return Identity(func)
    cells = tuple(_hashable(cell.cell_contents) for cell in (func.__closure__ or ()))
    return (code, cells)


# Feature models built from a user's model, reused across calls: building a Keras model
# and tracing through a new one each call is what makes Xplique's `maco` retrace.
_FEATURE_MODELS = weakref.WeakKeyDictionary()


def clear_feature_models():
    """Forgets the feature models built from users' models."""
    _FEATURE_MODELS.clear()
    _REDIRECTED_MODELS.clear()
    taps.clear_caches()


_REDIRECTED_MODELS = weakref.WeakKeyDictionary()


def _feature_model(model, outputs, redirect_relu=False):
    """A callable images -> [outputs]: a Keras model cut at the layers' symbolic outputs, or, when an
    objective holds `taps.Tap`s (layers by path, inside nested models or subclassed layers), the model
    with those layers' outputs captured during its forward pass."""
    per_model = _FEATURE_MODELS.setdefault(model, {})
    key = (tuple(Identity(output) for output in outputs), redirect_relu)
    if key in per_model:
        return per_model[key]
    if any(isinstance(output, taps.Tap) for output in outputs):
        found = [output if isinstance(output, taps.Tap) else taps.tap_of_output(model, output) for output in outputs]
        if any(tap.model is not model for tap in found):
            raise ValueError("expected every part of a composed objective to be on the objective's model, received: "
                             f"layers of {sorted({tap.model.name for tap in found if tap.model is not model})} "
                             f"with model={model.name}")
        if redirect_relu:
            if model not in _REDIRECTED_MODELS:
                _REDIRECTED_MODELS[model] = models_lib.with_redirected_relu(model)
            model = _REDIRECTED_MODELS[model]
            found = [taps.tap(model, tap.path) for tap in found]
        per_model[key] = taps.FeatureCapture(model, found)
    else:
        if redirect_relu:
            # The same layers' outputs, in a copy of the model whose ReLUs can redirect gradients.
            if model not in _REDIRECTED_MODELS:
                _REDIRECTED_MODELS[model] = models_lib.with_redirected_relu(model)
            copy = _REDIRECTED_MODELS[model]
            outputs = [copy.get_layer(output._keras_history.operation.name).output for output in outputs]
            model = copy
        per_model[key] = keras.Model(model.inputs, list(outputs))
    return per_model[key]


def _from_xplique(objective, redirect_relu=False):
    if len(objective.multipliers) == 0:
        raise ValueError("`objective` has no sub-objectives.")
    # Same combination order as Objective.compile(): the cartesian product of masks.
    combinations = list(itertools.product(*[list(range(len(masks))) for masks in objective.masks]))
    if len(combinations) == 0:
        raise ValueError("`objective` has no objectives to optimize (an empty list of units or channels).")
    masks = [
        np.stack([np.asarray(objective.masks[sub][combo[sub]], np.float32) for combo in combinations])
        for sub in range(len(objective.masks))
    ]
    names = [" & ".join(str(objective.names[sub][combo[sub]]) for sub in range(len(combo))) for combo in combinations]
    input_shape = taps.image_input_shape(objective.model)
    model = _feature_model(objective.model, objective.layers, redirect_relu)
    funcs = list(objective.funcs)
    key = ("xplique", Identity(model), tuple(function_key(f) for f in funcs), tuple(m.shape[1:] for m in masks), len(names))
    return CompiledObjective(model, funcs, masks, np.asarray(objective.multipliers, np.float32), names, input_shape, key)


def _units(units, name="units"):
    if units is None:
        raise ValueError(f"`{name}` is required with a Keras model: the output units to maximize.")
    values = [units] if np.ndim(units) == 0 else list(np.asarray(units).ravel())
    if len(values) == 0:
        raise ValueError(f"`{name}` is empty: there is no objective to optimize.")
    for unit in values:
        if isinstance(unit, (bool, np.bool_)) or not isinstance(unit, (int, np.integer)) or unit < 0:
            raise TypeError(f"`{name}` must be non-negative ints, got {unit!r} in {units!r}.")
    return [int(unit) for unit in values]


def _select(scores, selection):
    """Each crop's score for its own objective: (B, N) scores times one-hot rows."""
    return tf.reduce_sum(scores * selection, axis=-1)


def compile_objective(objective, units=None, input_shape=None, redirect_relu=False):
    """Normalizes an objective. See the module docstring for what is accepted.

    Args:
        objective: Xplique `Objective`, `keras.Model` or callable.
        units: output units (int or list) for a Keras model or a callable returning (B, U).
        input_shape: (h, w, C) of the model, required for a plain callable.
        redirect_relu: compute the objective on a copy of the model whose ReLUs can
            redirect gradients (`models.with_redirected_relu`); not for a callable.

    Returns:
        A `CompiledObjective`.
    """
    if isinstance(objective, CompiledObjective):
        return objective
    if isinstance(objective, Objective):
        if units is not None:
            raise ValueError("`units` is only used with a Keras model or a callable; the Objective defines its units.")
        return _from_xplique(objective, redirect_relu)
    if isinstance(objective, keras.Model):
        unit_list = _units(units)
        taps.image_input_shape(objective)
        num_outputs = objective.output_shape[-1]
        if num_outputs is not None and max(unit_list) >= num_outputs:
            raise ValueError(f"expected `units` in 0-{num_outputs - 1} (the model has {num_outputs} outputs), "
                             f"received: units={units!r}")
        # The model's own output units in their own values: the core's logit objective, on every backend.
        from . import objectives as objectives_lib

        return compile_objective(objectives_lib.logit(objective, unit_list), redirect_relu=redirect_relu)
    if callable(objective):
        if redirect_relu:
            raise ValueError("expected a Keras model or an Xplique Objective for a ReLU redirect (a callable's "
                             "ReLUs cannot be reached), received: relu_redirect_steps > 0 with a callable")
        if input_shape is None or len(tuple(input_shape)) != 3:
            raise ValueError(
                f"`input_shape` must be the model input (height, width, channels) for a callable objective, got {input_shape}."
            )
        shape = tuple(validation.positive_int("input_shape", dim) for dim in input_shape)
        unit_list = None if units is None else _units(units)

        def model(images):
            scores = objective(images)
            if unit_list is None:
                return [tf.reshape(scores, (-1, 1))]
            return [tf.gather(scores, unit_list, axis=-1)]

        num_objectives = 1 if unit_list is None else len(unit_list)
        names = ["callable"] if unit_list is None else [f"callable#{unit}" for unit in unit_list]
        key = ("callable", Identity(objective), tuple(unit_list or ()))
        masks = [np.eye(num_objectives, dtype=np.float32)]
        return CompiledObjective(model, [_select], masks, np.ones((1,), np.float32), names, shape, key)
    raise TypeError(
        "`objective` must be an xplique Objective, a keras.Model (with `units`) or a callable "
        f"images -> scores (with `input_shape`), got {type(objective).__name__}."
    )
