"""Objectives on any layer of any Keras model, as Xplique `Objective`s.

Xplique's `Objective.channel(model, "block_13_expand_relu", 5)` finds only the model's
own top-level layers. These do the same for a layer anywhere: inside a nested model
(`"mobilenetv2_1.00_160/block_13_expand_relu"`), inside a subclassed layer
(`"vit_encoder/transformer_block_2"`), or by a bare name when it is unique (see
`taps.find`). They return Xplique `Objective`s, so they compose with Xplique's own and
with each other (`channel(...) + 0.5 * logit(...)`), and go to `maco`, `visualize`,
`fourier` and `pixel` unchanged.

What a unit is depends on the layer's output:
- `(batch, units)`: a neuron is one unit (`neuron`, `logit`);
- `(batch, height, width, channels)`: a channel is its spatial mean (`channel`), a
  neuron one channel at one position (default the centre);
- `(batch, tokens, dims)`, a transformer's tokens: a channel is one dimension's mean
  over the *patch* tokens, the class and register tokens left out (`prefix_tokens`);
  a neuron is one dimension at one token (the class token, 0, or a patch position).

Scores are reported in the unit's own value (a channel as its mean, a neuron as itself),
as for Xplique's objectives (`CompiledObjective.scores`).
"""

import math

import keras
from keras import ops
import numpy as np

from . import taps
from .core import objectives as core_objectives

SPATIAL_RANK, TOKEN_RANK, VECTOR_RANK = 4, 3, 2


def layer_mean(output, mask):
    """`mean(output * mask)` over each example's whole layer output: Xplique's neuron and channel loss.

    The score reads as the unit's own value once scaled by the layer's size over the
    mask's non-zero count (`CompiledObjective.scores` does it).
    """
    import tensorflow as tf  # only Xplique objectives, on TensorFlow, use it

    return tf.reduce_mean(output * mask, axis=list(range(1, output.shape.rank)))


layer_mean.reports_layer_mean = True
# This module's losses compose in the units' own values (see `CompiledObjective.scores`); Xplique's keep Xplique's.
layer_mean.composes_in_own_values = True


def _objective(model, found, masks, func, multiplier, names, kind="mean", cossim_pow=2.0):
    """One sub-objective: an Xplique `Objective` on TensorFlow (it composes with Xplique's own), a
    `core.objectives.Objective` on JAX and PyTorch (scored in the units' own values)."""
    if keras.backend.backend() == "tensorflow":
        from xplique.features_visualizations import Objective

        return Objective(model, [found], [masks], [func], [float(multiplier)], [names])
    return core_objectives.Objective(model, [core_objectives.Term(found, kind, np.asarray(masks, np.float32),
                                                                  tuple(names), float(multiplier), cossim_pow)])


def gram_diversity(output, copies):
    """Lucid's diversity at each crop: minus the mean cosine similarity of its Gram matrix to the other copies'
    crops' (`core.objectives.gram_similarities`; `copies`: each crop's copy, one-hot)."""
    return ops.negative(core_objectives.gram_similarities(output, copies))


def as_core(objective):
    """`objective` as a `core.objectives.Objective`: itself, or an Xplique `Objective` made by this module's
    `channel`, `neuron`, `logit`, `direction`, `feature_distribution` (and `applications`' objectives built on
    them, `diversity` included) and their compositions, which the backend-neutral runners score in the units'
    own values; anything else is a TypeError naming what it got."""
    if isinstance(objective, core_objectives.Objective):
        return objective
    terms = []
    parts = zip(getattr(objective, "layers", ()), getattr(objective, "masks", ()), getattr(objective, "funcs", ()),
                getattr(objective, "multipliers", ()), getattr(objective, "names", ()))
    for found, masks, func, multiplier, names in parts:
        kind = ("mean" if func is layer_mean else "direction" if hasattr(func, "cossim_pow")
                else "distribution" if func is sorted_distance else "gram" if func is gram_diversity else None)
        if not isinstance(found, taps.Tap) or kind is None:
            raise TypeError(f"expected an objective of maco_keras.objectives (channel, neuron, logit, direction, "
                            f"feature_distribution, applications.diversity), "
                            f"received: a sub-objective {getattr(func, '__name__', func)!r} on {found!r}")
        terms.append(core_objectives.Term(found, kind, np.asarray(masks, np.float32), tuple(names), float(multiplier),
                                          float(getattr(func, "cossim_pow", 2.0))))
    if not terms:
        raise TypeError(f"expected a maco_keras objective, received: {type(objective).__name__}")
    return core_objectives.Objective(objective.model, terms)


def layer_tap(model, layer, parameter="layer"):
    """The `taps.Tap` of `layer` (name, path or index), its output checked to be one of the supported kinds."""
    found = taps.tap(model, layer, parameter)
    if found.rank not in (VECTOR_RANK, TOKEN_RANK, SPATIAL_RANK):
        raise ValueError(f"expected a layer with (batch, units), (batch, tokens, dims) or (batch, h, w, channels) "
                         f"outputs, received: {parameter}={found.path} with output shape {(None,) + found.shape}")
    return found


def count_prefix_tokens(num_tokens, given=None, parameter="prefix_tokens"):
    """How many leading tokens are not patches (class and register tokens).

    Default: what is left over from the largest square grid of patches (197 tokens: a
    14x14 grid and a class token; 261: 16x16 and a class and 4 register tokens; 196: none).
    """
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or not 0 <= given < num_tokens:
            raise ValueError(f"expected {parameter} in [0, {num_tokens}), received: {parameter}={given!r}")
        return int(given)
    side = math.isqrt(num_tokens)
    return num_tokens - side * side


def _unit_list(units, size, parameter):
    values = [units] if np.ndim(units) == 0 else list(np.asarray(units).ravel())
    if not values:
        raise ValueError(f"expected at least one unit, received: {parameter}={units!r}")
    for unit in values:
        if isinstance(unit, (bool, np.bool_)) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < size:
            raise ValueError(f"expected {parameter} in [0, {size}), received: {parameter}={units!r}")
    return [int(unit) for unit in values]


def _names(names, default, count, parameter="names"):
    if names is None:
        return default
    names = [names] if isinstance(names, str) else list(names)
    if len(names) != count:
        raise ValueError(f"expected {count} names, received: {parameter}={names!r}")
    return names


def token_index(token, found, parameter="token", cls=None):
    """`token` as an index into `found`'s tokens; None (or `cls=True`) is the class token, 0, if the layer has one."""
    num_tokens = found.shape[0]
    if token is None or cls:
        if count_prefix_tokens(num_tokens) == 0:
            raise ValueError(f"expected a token index for a neuron of {found.path} (its {num_tokens} tokens have "
                             f"no class token), received: {parameter}={'cls' if cls else None}")
        return 0
    if isinstance(token, bool) or not isinstance(token, (int, np.integer)) or not -num_tokens <= token < num_tokens:
        raise ValueError(f"expected {parameter} in [0, {num_tokens}) for {found.path}, received: {parameter}={token!r}")
    return int(token) % num_tokens


def channel(model, layer, channels, *, multiplier=1.0, names=None, prefix_tokens=None):
    """Maximize channels of `layer`: at a spatial layer its mean over positions, at a token layer over patch tokens.

    Args:
        model: Keras model.
        layer: name, path (`"base/block_13_expand_relu"`) or index of the layer.
        channels: an int or a list of ints, one objective each.
        multiplier: the objective's weight in a composition (default 1.0).
        names: one name per channel (default `"Channel#<path>_<c>"`).
        prefix_tokens: at a token layer, how many leading tokens are class or register
            tokens, left out of the mean (default: see `count_prefix_tokens`).

    Returns:
        An Xplique `Objective` with one objective per channel.

    Example:
        >>> maco_keras.maco(channel(model, "vit_encoder/transformer_block_2", [0, 1]) + 0.5 * logit(model, 1))
    """
    found = layer_tap(model, layer)
    if found.rank == VECTOR_RANK:
        raise ValueError(f"expected a spatial or token layer for channels, received: layer={found.path} with output "
                         f"shape {(None,) + found.shape} (use neuron)")
    channels = _unit_list(channels, found.shape[-1], "channels")
    masks = np.zeros((len(channels),) + found.shape, np.float32)
    first = count_prefix_tokens(found.shape[0], prefix_tokens) if found.rank == TOKEN_RANK else 0
    for index, unit in enumerate(channels):
        masks[index, first:, ..., unit] = 1.0
    names = _names(names, [f"Channel#{found.name}_{unit}" for unit in channels], len(channels))
    return _objective(model, found, masks, layer_mean, multiplier, names)


def neuron(model, layer, neurons, *, token=None, position=None, multiplier=1.0, names=None):
    """Maximize single units of `layer`: a unit of a (batch, units) layer, or one channel at one place.

    Args:
        model: Keras model.
        layer: name, path or index of the layer (None: the model's output).
        neurons: an int or a list of ints (units, or channels / dimensions), one objective each.
        token: at a token layer, the token (default 0, the class token; an error when
            the layer has none, see `count_prefix_tokens`).
        position: at a spatial layer, (row, column) (default the centre).
        multiplier, names: see `channel`.

    Returns:
        An Xplique `Objective` with one objective per neuron.

    Example:
        >>> neuron(vit, "vit_encoder/transformer_block_4", [3], token=0)   # dimension 3 of the class token
    """
    found = layer_tap(model, layer)
    neurons = _unit_list(neurons, found.shape[-1], "neurons")
    masks = np.zeros((len(neurons),) + found.shape, np.float32)
    if found.rank == TOKEN_RANK:
        where = (token_index(token, found),)
        suffix = f"@token{where[0]}"
    elif found.rank == SPATIAL_RANK:
        where = tuple(side // 2 for side in found.shape[:2]) if position is None else tuple(position)
        if len(where) != 2 or not all(isinstance(i, (int, np.integer)) and 0 <= i < side
                                      for i, side in zip(where, found.shape[:2])):
            raise ValueError(f"expected position (row, column) within {found.shape[:2]}, received: position={position!r}")
        suffix = f"@{where[0]},{where[1]}"
    else:
        where, suffix = (), ""
    if token is not None and found.rank != TOKEN_RANK:
        raise ValueError(f"expected token only at a token layer, received: token={token!r} for {found.path}")
    for index, unit in enumerate(neurons):
        masks[(index,) + where + (Ellipsis, unit)] = 1.0
    names = _names(names, [f"Neuron#{found.name}_{unit}{suffix}" for unit in neurons], len(neurons))
    return _objective(model, found, masks, layer_mean, multiplier, names)


def logit(model, units, *, multiplier=1.0, names=None):
    """Maximize units of the model's own output (its logits), whatever layer or op computes it.

    Example:
        >>> maco_keras.maco(logit(model, [1, 309]))
    """
    return neuron(model, None, units, multiplier=multiplier, names=names)


def _dot_cossim(cossim_pow):
    def dot_cossim(output, direction):
        """Xplique's direction loss (`losses.dot_cossim`): the cosine to a power times the dot product,
        which Xplique sums over the batch; kept as is, so that a direction gives Xplique's results."""
        from xplique.features_visualizations import losses

        return losses.dot_cossim(output, direction, cossim_pow)

    dot_cossim.cossim_pow = cossim_pow
    dot_cossim.composes_in_own_values = True
    return dot_cossim


def direction(model, layer, vectors, *, cossim_pow=2.0, token=None, prefix_tokens=None, multiplier=1.0, names=None):
    """Maximize directions in `layer`'s activation space: the dot product times the cosine to a power (Lucid's, as Xplique has it).

    Each vector is either one over the layer's last axis (channels, dims), sought at every
    position of a spatial layer, at every patch token of a token layer (or only at `token`),
    or a whole activation of the layer's shape (feature inversion's reference).

    Args:
        model: Keras model.
        layer: name, path or index of the layer.
        vectors: array (n, channels) or (n, *layer shape), one objective each (e.g. CAVs
            or CRAFT's `concept_bank_w`).
        cossim_pow: the cosine's power: higher weighs the direction more (default 2.0).
        token: at a token layer, only this token (default: every patch token).
        prefix_tokens: see `channel`.
        multiplier, names: see `channel`.

    Returns:
        An Xplique `Objective` with one objective per vector.
    """
    found = layer_tap(model, layer)
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim >= 1 and vectors.shape[1:] == found.shape:
        masks = vectors
    elif vectors.ndim == 2 and vectors.shape[1] == found.shape[-1]:
        masks = np.zeros((len(vectors),) + found.shape, np.float32)
        if found.rank == TOKEN_RANK:
            if token is None:
                first = count_prefix_tokens(found.shape[0], prefix_tokens)
                masks[:, first:] = vectors[:, None, :]
            else:
                masks[:, token_index(token, found)] = vectors
        else:
            masks[:] = vectors.reshape((len(vectors),) + (1,) * (found.rank - 2) + (-1,))
    else:
        raise ValueError(f"expected vectors of shape (n, {found.shape[-1]}) or (n, {', '.join(map(str, found.shape))}) "
                         f"for {found.path}, received: vectors.shape={vectors.shape}")
    if not len(masks):
        raise ValueError(f"expected at least one vector, received: vectors.shape={vectors.shape}")
    names = _names(names, [f"Direction#{found.name}_{index}" for index in range(len(masks))], len(masks))
    return _objective(model, found, masks, _dot_cossim(float(cossim_pow)), multiplier, names, "direction",
                      float(cossim_pow))


def layer_outputs(model, layer, images, batch_size=32):
    """`layer`'s outputs (a name, path or index; see `taps.find`) for images, resized to the model input.

    Through `taps.output_function`: compiled once per (model, layer) on TensorFlow, a
    forward pass with the layer captured on the other backends.

    Returns:
        float32 array (N, *layer output shape).
    """
    found = layer_tap(model, layer)
    height, width = model.input_shape[1:3]
    images = np.asarray(images, np.float32)
    forward = taps.output_function(found)
    outputs = [keras.ops.convert_to_numpy(forward(keras.ops.image.resize(images[start:start + batch_size],
                                                                           (height, width))))
               for start in range(0, len(images), batch_size)]
    return np.concatenate(outputs).astype(np.float32)


def inversion(model, layer, reference_images, *, cossim_pow=2.0):
    """Match the activations that reference images produce at `layer`: feature inversion, one objective each.

    The images MACO then generates keep what `layer` retains of each reference and drop
    what earlier layers discarded (the paper's Figure 6a).

    Args:
        model: Keras model.
        layer: name, path (inside nested models and subclassed layers) or index of the layer.
        reference_images: array (N, H, W, C) in the model's input range (resized to its input).
        cossim_pow: the cosine's power in `direction` (higher weighs the direction more).

    Returns:
        An objective with N objectives (`direction` towards each reference's whole activation).

    Example:
        >>> images, _ = maco_keras.maco(inversion(model, "block_6_expand_relu", goldfish_photo[None]))
    """
    reference_images = np.asarray(reference_images, np.float32)
    if reference_images.ndim != 4:
        raise ValueError(f"expected reference_images of shape (N, H, W, C), received: "
                         f"reference_images.shape={reference_images.shape}")
    activations = layer_outputs(model, layer, reference_images)
    return direction(model, layer, activations, cossim_pow=cossim_pow,
                     names=[f"Inversion#{layer}_{i}" for i in range(len(activations))])


def sorted_distance(output, reference):
    """Minus the mean squared difference between each channel's activations, sorted over positions, and
    `reference`, the same shape, already sorted (`feature_distribution`'s loss): (B,) scores, 0 at a match."""
    import tensorflow as tf

    flat = tf.reshape(tf.cast(output, tf.float32), (tf.shape(output)[0], -1, output.shape[-1]))
    target = tf.reshape(tf.cast(reference, tf.float32), tf.shape(flat))
    return -tf.reduce_mean(tf.square(tf.sort(flat, axis=1) - target), axis=(1, 2))


sorted_distance.composes_in_own_values = True


def feature_distribution(model, layers, reference_images, *, multiplier=1.0, name="Distribution", batch_size=32):
    """Keep each channel's activations distributed as on reference images: VITAL's feature distribution term.

    Görgün et al. (ICCV 2025) match, at a few layers, the sorted activations of each channel
    of the picture to those of reference images. Sorted values are the distribution's
    quantiles, so their squared difference is the (1D, squared) Wasserstein distance between
    the two distributions, whatever the positions. The reference quantiles are the mean over
    the reference images of theirs (the distributions' Wasserstein barycentre). Each layer is
    divided by its reference's mean per-channel variance, so that layers weigh alike. The
    score is at most 0 (a match).

    This is a prior from data: the pictures are pulled towards the references' statistics,
    not only towards what the unit responds to. Compose it with a unit's objective, and
    check with `metrics.path_similarity` that the picture is still the model's.

    Args:
        model: Keras model.
        layers: names, paths or indices of spatial or token layers.
        reference_images: array (R, h, w, C) in the model's input range, e.g. the unit's
            top dataset examples (resized to the model input when of another size).
        multiplier: the term's weight in a composition (default 1.0).
        name: the objective's name stem (default "Distribution"; each layer adds its own).
        batch_size: reference images per forward pass.

    Returns:
        An objective with one objective (one sub-objective per layer; an Xplique `Objective`
        on TensorFlow): composed with N units by `+`, it applies to each of them. It runs on
        every backend.

    Example:
        >>> obj = logit(model, 1) + 0.01 * feature_distribution(model, ["block_3_expand_relu"], goldfish_photos)
    """
    found = [layer_tap(model, layer, "layers") for layer in ([layers] if isinstance(layers, (str, int)) else layers)]
    if not found:
        raise ValueError(f"expected at least one layer, received: layers={layers!r}")
    for tap in found:
        if tap.rank == VECTOR_RANK:
            raise ValueError(f"expected spatial or token layers (a distribution over positions), received: "
                             f"layers containing {tap.path} with output shape {(None,) + tap.shape}")
    images = np.asarray(reference_images, np.float32)
    height, width, channels = taps.image_input_shape(model, "feature_distribution")
    if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] != channels:
        raise ValueError(f"expected reference_images (R, height, width, {channels}) with R >= 1, received: "
                         f"reference_images.shape={images.shape}")
    if images.shape[1:3] != (height, width):
        # On TensorFlow, `tf.image.resize(..., antialias=True)`, bit for bit.
        images = keras.ops.convert_to_numpy(keras.ops.image.resize(images, (height, width), antialias=True))
    # One pass of the references through the model gives every layer's outputs.
    capture = taps.FeatureCapture(model, found)
    batches = [[keras.ops.convert_to_numpy(output).astype(np.float32)
                for output in capture(keras.ops.convert_to_tensor(images[start:start + batch_size]))]
               for start in range(0, len(images), batch_size)]
    total = None
    for index, tap in enumerate(found):
        outputs = np.concatenate([batch[index] for batch in batches])
        flat = outputs.reshape(len(outputs), -1, outputs.shape[-1])
        quantiles = np.sort(flat, axis=1).mean(axis=0)
        variance = float(flat.var(axis=(0, 1)).mean()) + 1e-8
        term = _objective(model, tap, quantiles.reshape((1,) + tap.shape), sorted_distance,
                          float(multiplier) / len(found) / variance, [f"{name}#{tap.name}"], kind="distribution")
        total = term if total is None else total + term
    return total


def unit_values(output, kind, token=None):
    """Every unit's own value for a batch of a layer's outputs, as the objectives define it.

    Args:
        output: array (batch, ...) of one layer's outputs.
        kind: "channel" (mean over positions, or over patch tokens), "neuron" or "logit".
        token: for a neuron of a token layer, its token.

    Returns:
        array (batch, units).
    """
    output = np.asarray(output, np.float32)
    if output.ndim == VECTOR_RANK:
        return output
    if output.ndim == TOKEN_RANK:
        if kind == "channel":
            return output[:, count_prefix_tokens(output.shape[1]):].mean(axis=1)
        return output[:, 0 if token is None else token]
    if kind == "channel":
        return output.mean(axis=(1, 2))
    return output[:, output.shape[1] // 2, output.shape[2] // 2]


def unit_objective(model, layer, kind, units, token=None):
    """The objective of a run folder's units (`kind`: "logit", "channel" or "neuron")."""
    if kind == "channel":
        return channel(model, layer, units)
    return neuron(model, layer, units, token=token)


__all__ = ["channel", "direction", "inversion", "layer_outputs", "feature_distribution", "sorted_distance", "layer_mean", "layer_tap", "logit", "neuron", "count_prefix_tokens", "token_index", "unit_objective", "unit_values"]
