"""Objectives beyond logits and channels: the paper's applications (Section 5) and peers' objectives.

On TensorFlow they return Xplique `Objective`s, so they compose (`+`, `*`) with any other
objective and go to `maco`, `visualize`, `fourier` or `pixel` unchanged. On JAX and
PyTorch they return `maco_keras.objectives` ones, and `invert` and `accentuate` run
through a `Visualizer` (the backend-neutral core). `diversity`'s term couples the pictures
of a batch, so every backend optimizes such a batch as one computation.
"""

import keras
import numpy as np

from . import objectives
from . import taps
from .core import objectives as core_objectives
from .core import render
from .core.config import CONFIGS


def _tensorflow():
    return keras.backend.backend() == "tensorflow"


def feature_inversion(model, layer, reference_images, cossim_pow=2.0):
    """Match the activations that reference images produce at `layer` (one objective each): `objectives.inversion`,
    on every backend.

    Returns:
        An objective with N objectives (an Xplique `Objective` on TensorFlow).
    """
    return objectives.inversion(model, layer, reference_images, cossim_pow=cossim_pow)


layer_outputs = objectives.layer_outputs


def concept_visualization(model, layer, concepts, cossim_pow=2.0):
    """Visualize concept directions, e.g. CRAFT's `concept_bank_w`, at `layer` (one objective each).

    Args:
        model: Keras model.
        layer: name or index of the layer the concepts live in (CRAFT's latent layer).
        concepts: array (n_concepts, channels).
        cossim_pow: see `feature_inversion`.

    Returns:
        An `Objective` with n_concepts objectives; for a spatial layer, each direction is
        sought at every position, for a token layer at every patch token.

    Example:
        >>> craft = xplique.concepts.CraftTf(g, h, number_of_concepts=10)
        >>> craft.fit(images, class_id=1)
        >>> objective = concept_visualization(model, "block_13_expand_relu",
        ...                                   craft.factorization.concept_bank_w)
    """
    concepts = np.asarray(concepts, np.float32)
    dims = objectives.layer_tap(model, layer).shape[-1]
    if concepts.ndim != 2 or concepts.shape[1] != dims:
        raise ValueError(f"expected concepts of shape (n_concepts, {dims}) for layer {layer!r}, "
                         f"received: concepts.shape={concepts.shape}")
    return objectives.direction(model, layer, concepts, cossim_pow=cossim_pow,
                                names=[f"Concept#{layer}_{i}" for i in range(len(concepts))])


# Per crop, the mean cosine similarity of its Gram matrix to those of the crops of other copies (every backend).
gram_similarity = core_objectives.gram_similarities


def diversity(model, layer, copies, weight=1.0):
    """Several different images for one objective: penalize the similarity of their styles at `layer`.

    Lucid's diversity term: the Gram matrices of `layer`'s activations (its "style") of
    the images are compared by cosine similarity, and their mean similarity to the other
    copies is subtracted, times `weight`. Composed with a unit, it gives `copies` images
    that all raise the unit in different ways. The similarity is taken between the crops
    of a step of one batch: keep the copies in one batch (`batch_size`; the `Visualizer`
    refuses a smaller one). On TensorFlow's `maco` it is taken within a chunk of crops
    (`crop_chunk`) and within a replica (`strategy=`).

    Args:
        model: Keras model.
        layer: name or index of the layer whose Gram matrices are compared (a middle
            layer: style without content).
        copies: K, the number of different images.
        weight: strength of the penalty (its multiplier in the composition).

    Returns:
        An objective with K objectives, one per copy (an Xplique `Objective` on
        TensorFlow, a `maco_keras.objectives` one on JAX and PyTorch); `unit +
        diversity(...)` has K images per unit. The term couples the pictures of a batch:
        copies of different units are pushed apart too, and every backend optimizes the
        batch as one computation (its crops through the model together).

    Example:
        >>> objective = objectives.logit(model, 309) + diversity(model, "block_6_expand_relu", copies=4)
        >>> images, transparency = maco_keras.maco(objective)        # 4 different bees, on any backend
    """
    copies = int(copies)
    if copies < 2:
        raise ValueError(f"expected at least 2 copies to diversify, received: copies={copies}")
    found = objectives.layer_tap(model, layer)
    return objectives._objective(model, found, np.eye(copies, dtype=np.float32), objectives.gram_diversity,
                                 float(weight), [f"Copy#{k}" for k in range(copies)], kind="gram")


def accentuate(model, unit, image, layer, *, weight=1.0, values_range=(-1.0, 1.0), steps=128, crops=16,
               crop_scale=0.8, noise=0.05, learning_rate=0.05, magnitude="image", seed=None, verbose=True,
               return_visualization=False):
    """Feature accentuation: push a real image towards a unit while keeping it close to the original.

    MACO starts from the image's own phase (`spectrum.image_spectrum`) instead of a random
    one, by default with the image's own magnitude, and the objective adds a regularizer that keeps the activations at `layer`
    (averaged over positions, so that crops need not line up) near the image's. Crops
    cover most of the image (`crop_scale` of its area), so the result stays the
    image's composition. The defaults were chosen by eye, not measured.

    Args:
        model: Keras model.
        unit: an int (a logit of `model`'s output) or an objective with one objective (an
            Xplique `Objective` on TensorFlow, a `maco_keras.objectives` one on JAX and PyTorch).
        image: array (H, W, C) in `values_range`; resized up to the model input if smaller.
        layer: name or index of the layer whose (pooled) activations stay near the image's.
        weight: strength of that regularizer (the multiplier of its mean squared distance).
        values_range: the model's input range.
        learning_rate: NAdam's (default 0.05): MACO's 1.0 would move a phase that starts from
            a real image by about a radian per step and lose the image within a few steps.
        magnitude: "image" (default: the image's own, which keeps its colours and contrast)
            or "imagenet" (MACO's average magnitude: only the phase comes from the image).
        steps, crops, crop_scale, noise, seed, verbose, return_visualization: see `visualize`.

    Returns:
        (images, transparency) of shape (1, H, W, C), or the `Visualization`.

    Example:
        >>> accentuated, _ = accentuate(model, 309, photo, "block_13_expand_relu", weight=2.0)
    """
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"expected one image (H, W, C), received: image.shape={image.shape}")
    if magnitude not in ("image", "imagenet"):
        raise ValueError(f"expected magnitude='image' or 'imagenet', received: magnitude={magnitude!r}")
    height, width = model.input_shape[1:3]
    if image.shape[0] < height or image.shape[1] < width:
        size = (max(height, image.shape[0]), max(width, image.shape[1]))
        image = keras.ops.convert_to_numpy(keras.ops.image.resize(image, size)).astype(np.float32)
    kept = objectives.layer_tap(model, layer)
    # Positions (or tokens) averaged away, so that crops need not line up with the image.
    spatial_axes = tuple(range(1, kept.rank - 1))
    reference = layer_outputs(model, layer, image[None])
    reference = (reference.mean(axis=spatial_axes) if spatial_axes else reference).astype(np.float32)
    if not _tensorflow():
        objective = unit if isinstance(unit, core_objectives.Objective) else objectives.logit(model, [int(unit)])
        keep = core_objectives.Objective(model, [core_objectives.Term(kept, "pooled", reference, (f"Keep#{kept.path}",),
                                                                      float(weight))])
        image_magnitude, image_phase = render.image_spectrum(image[None], values_range)
        config = CONFIGS["paper"].replace(
            steps=steps, crops=crops, image_size=image.shape[:2], crop_scale=crop_scale, crop_scale_std=0.05,
            noise=noise, learning_rate=learning_rate, values_range=values_range,
            seed=seed)
        return _neutral_run(model, config, objective + keep, image_magnitude if magnitude == "image" else None,
                            image_phase, verbose, return_visualization)
    import tensorflow as tf
    from xplique.features_visualizations import Objective

    from . import engine, spectrum
    from .augmentation import Augmentation
    from .parameterization import MacoImage

    objective = unit if isinstance(unit, Objective) else objectives.logit(model, [int(unit)])

    def keep_close(output, reference):
        pooled = tf.reduce_mean(tf.cast(output, tf.float32), axis=spatial_axes) if spatial_axes else output
        return -tf.reduce_mean(tf.square(pooled - reference), axis=-1)

    objective = objective + Objective(model, [kept], [reference], [keep_close], [float(weight)],
                                      [[f"Keep#{kept.path}"]])
    image_magnitude, image_phase = spectrum.image_spectrum(image[None], values_range)
    images = MacoImage(1, image.shape[:2], image.shape[-1], values_range=values_range, seed=seed,
                       magnitude=image_magnitude[0] if magnitude == "image" else None)
    images.set_start_phase(image_phase)
    return engine.visualize(objective, images, augmentation=Augmentation(crop_scale_std=0.05, crop_scale_of="area"),
                            optimizer=keras.optimizers.Nadam(learning_rate), steps=steps, crops=crops,
                            crop_scale=crop_scale, noise=noise, seed=seed, verbose=verbose,
                            return_visualization=return_visualization)


def _neutral_run(model, config, objective, magnitude, start_phases, verbose, return_visualization):
    """An application's run through a `Visualizer` (JAX, PyTorch): the same return as on TensorFlow."""
    from .visualizer import Visualizer

    visualization = Visualizer(model, config, magnitude=magnitude, verbose=verbose)(objective, start_phases=start_phases)
    if return_visualization:
        return visualization
    return visualization.images, visualization.transparency


def invert(model, layer, reference_images, *, jitter=4, values_range=(-1.0, 1.0), steps=256, crops=8, noise=0.02,
           image_size=512, cossim_pow=2.0, seed=None, verbose=True, return_visualization=False):
    """Feature inversion at any depth: images whose activations at `layer` match the references'.

    At a spatial layer, an activation map says *where* each feature is, so the crops must
    line up with the reference's view: the canvas is the model input plus `jitter` pixels
    on each side, and every crop is a model-input-sized window of it, shifted by at most
    `jitter` pixels (translation only). Random crops of a large canvas cannot line up with
    a map, and give textures. At a pooled (2-D) layer there is nothing to line up and MACO's
    own crops of an `image_size` canvas are used, the paper's setting. Shallow layers give
    back the photo; deep layers keep what the network kept.

    Args:
        model: Keras model.
        layer: name or index of the layer to match.
        reference_images: array (N, H, W, C) in `values_range` (resized to the model input).
        jitter: pixels of translation on each side, for a spatial layer (default 4).
        values_range: the model's input range.
        steps, crops, noise, seed, verbose, return_visualization: see `visualize`.
        image_size: canvas side for a pooled layer (default 512).
        cossim_pow: see `feature_inversion`.

    Returns:
        (images, transparency) of shape (N, h + 2 jitter, w + 2 jitter, C) for a spatial
        layer (the centre h x w is the reference's view), (N, image_size, image_size, C)
        otherwise; or the `Visualization`.
    """
    reference_images = np.asarray(reference_images, np.float32)
    if reference_images.ndim != 4:
        raise ValueError(f"expected reference images (N, H, W, C), received: reference_images.shape="
                         f"{reference_images.shape}")
    jitter = int(jitter)
    if jitter < 0:
        raise ValueError(f"expected jitter >= 0 pixels, received: jitter={jitter}")
    height, width, channels = model.input_shape[1:]
    references = keras.ops.convert_to_numpy(keras.ops.image.resize(reference_images, (height, width)))
    objective = feature_inversion(model, layer, references, cossim_pow=cossim_pow)
    # A spatial map or a transformer's patch tokens say where each feature is: the crops must line up.
    if objectives.layer_tap(model, layer).rank in (objectives.SPATIAL_RANK, objectives.TOKEN_RANK):
        size = (height + 2 * jitter, width + 2 * jitter)
        # A fixed-size window at a uniform position: a translation by up to `jitter` pixels.
        crop_scale_of, crop_scale_std, crop_scale = "side", 0.0, height / size[0]
    else:
        size, crop_scale_of, crop_scale_std, crop_scale = image_size, "area", 0.1, 0.25
    if not _tensorflow():
        config = CONFIGS["paper"].replace(steps=steps, crops=crops, image_size=size, crop_scale=crop_scale,
                                          crop_scale_of=crop_scale_of, crop_scale_std=crop_scale_std, noise=noise,
                                          values_range=values_range, seed=seed)
        return _neutral_run(model, config, objective, None, None, verbose, return_visualization)
    from . import engine
    from .augmentation import Augmentation
    from .parameterization import MacoImage

    augmentation = Augmentation(crop_scale_of=crop_scale_of, crop_scale_std=crop_scale_std)
    images = MacoImage(len(references), size, channels, values_range=values_range, seed=seed)
    return engine.visualize(objective, images, augmentation=augmentation, steps=steps, crops=crops,
                            crop_scale=crop_scale, noise=noise, seed=seed, verbose=verbose,
                            return_visualization=return_visualization)
