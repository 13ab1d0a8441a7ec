"""Objectives for the paper's applications beyond logits and channels (Section 5).

Both return Xplique `Objective`s, so they compose (`+`, `*`) with any other objective
and go to `maco`, `fourier` or `pixel` unchanged.
"""

import numpy as np
import tensorflow as tf
from xplique.commons import find_layer
from xplique.features_visualizations import Objective

from . import metrics


def feature_inversion(model, layer, reference_images, cossim_pow=2.0):
    """Match the activations that reference images produce at `layer` (one objective each).

    The images MACO then generates keep what `layer` retains of each reference and drop
    what earlier layers discarded (the paper's Figure 6a).

    Args:
        model: Keras model.
        layer: name or index of the layer whose activations are matched.
        reference_images: array (N, H, W, C) in the model's input range (resized to its input).
        cossim_pow: Xplique's `dot_cossim` exponent: higher weighs the direction more.

    Returns:
        An `Objective` with N objectives.
    """
    reference_images = np.asarray(reference_images, np.float32)
    if reference_images.ndim != 4:
        raise ValueError(f"`reference_images` must have shape (N, H, W, C), got {reference_images.shape}.")
    extractor = metrics.feature_model(model, find_layer(model, layer).name, pool=False)
    activations = metrics.model_outputs(extractor, reference_images).astype(np.float32)
    return Objective.direction(model, layer, [tf.constant(a) for a in activations], cossim_pow=cossim_pow,
                               names=[f"Inversion#{layer}_{i}" for i in range(len(activations))])


def concept_visualization(model, layer, concepts, cossim_pow=2.0):
    """Visualize concept directions, e.g. CRAFT's `concept_bank_w`, at `layer` (one objective each).

    Args:
        model: Keras model.
        layer: name or index of the layer the concepts live in (CRAFT's latent layer).
        concepts: array (n_concepts, channels).
        cossim_pow: see `feature_inversion`.

    Returns:
        An `Objective` with n_concepts objectives; for a spatial layer, each direction is
        sought at every position.

    Example:
        >>> craft = xplique.concepts.CraftTf(g, h, number_of_concepts=10)
        >>> craft.fit(images, class_id=1)
        >>> objective = concept_visualization(model, "block_13_expand_relu",
        ...                                   craft.factorization.concept_bank_w)
    """
    concepts = np.asarray(concepts, np.float32)
    output_shape = find_layer(model, layer).output.shape
    if concepts.ndim != 2 or concepts.shape[1] != output_shape[-1]:
        raise ValueError(
            f"`concepts` must have shape (n_concepts, {output_shape[-1]}) for layer {layer!r}, got {concepts.shape}.")
    vectors = [tf.reshape(c, (1,) * (len(output_shape) - 2) + (-1,)) for c in concepts]
    return Objective.direction(model, layer, vectors, cossim_pow=cossim_pow,
                               names=[f"Concept#{layer}_{i}" for i in range(len(concepts))])
