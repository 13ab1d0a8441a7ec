"""Metrics of the MACO paper (Section 4), each usable alone on NumPy/TF arrays.

- `plausibility`: Deep-KNN distance of each visualization to natural images in a
  network's features (the paper's plausibility score, lower is better);
- `frechet_distance` (FID) and `kernel_distance` (KID, unbiased at small sample sizes)
  between visualizations and natural images in a feature model chosen by the caller;
- `transferability`: top-k accuracy of other classifiers on the visualizations;
- `logit_magnitude`: the target logit, the quantity being maximized;
- `path_similarity`: a faithfulness check after Geirhos et al. (ICML 2024): along the
  network's path, is a picture processed like natural images of its class, rather than
  like those of other classes? (`path_layers`, `layer_activations` feed it);
- `center_crop`: the paper's 299/512 centre crop (against the centre bias of FID).
"""

import keras
import numpy as np
import scipy.linalg
import scipy.stats
import tensorflow as tf

from .. import validation


def center_crop(images, fraction=299 / 512):
    """Keeps the central `fraction` of each side (the paper crops 512 px images to 299 px)."""
    images = np.asarray(images)
    if not 0 < fraction <= 1:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction}.")
    height, width = images.shape[1:3]
    crop_h, crop_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return images[:, top:top + crop_h, left:left + crop_w]


def _resize_to(model, images):
    height, width = model.input_shape[1:3]
    images = tf.convert_to_tensor(images, tf.float32)
    if tuple(images.shape[1:3]) != (height, width):
        images = tf.image.resize(images, (height, width), antialias=True)
    return images


def model_outputs(model, images, batch_size=32):
    """`model` on `images` (resized to its input), batched; returns a NumPy array."""
    batch_size = validation.positive_int("batch_size", batch_size)
    outputs = [np.asarray(model(_resize_to(model, images[start:start + batch_size]), training=False))
               for start in range(0, len(images), batch_size)]
    return np.concatenate(outputs).astype(np.float64)


def feature_model(model, layer, pool=True):
    """A model mapping inputs to `layer`'s output, global-average-pooled if spatial."""
    output = model.get_layer(layer).output
    if pool and len(output.shape) == 4:
        output = keras.layers.GlobalAveragePooling2D()(output)
    return keras.Model(model.inputs, output)


def _features(name, values):
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty (samples, features) array, got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{name}` must be finite.")
    return values


def plausibility(features, natural_features, labels=None, natural_labels=None, k=1, normalize=False):
    """Deep-KNN distance: mean L2 distance from each sample to its k nearest natural images.

    Args:
        features: (n, d) features of the visualizations.
        natural_features: (m, d) features of natural images.
        labels, natural_labels: optional classes; then each visualization is compared with
            the natural images of its own class only (the paper's protocol).
        k: neighbours averaged (default 1).
        normalize: divide every feature vector by its L2 norm first (default False), so the
            distance compares what the features say, not how strongly they say it. Raw
            distances count a flat, low-contrast picture (small ReLU features) as near
            every photo; normalized ones lie in [0, 2] (sqrt(2 - 2 cos)).

    Returns:
        float array (n,): one distance per visualization (lower is more plausible).
    """
    features = _features("features", features)
    natural = _features("natural_features", natural_features)
    k = validation.positive_int("k", k)
    if features.shape[1] != natural.shape[1]:
        raise ValueError(f"feature sizes differ: {features.shape[1]} and {natural.shape[1]}.")
    if not isinstance(normalize, (bool, np.bool_)):
        raise ValueError(f"expected normalize True or False, received: normalize={normalize!r}")
    if normalize:
        features, natural = (array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)
                             for array in (features, natural))
    distances = np.sqrt(np.maximum(
        (features ** 2).sum(1)[:, None] + (natural ** 2).sum(1)[None] - 2 * features @ natural.T, 0.0))
    if labels is not None or natural_labels is not None:
        if labels is None or natural_labels is None:
            raise ValueError("`labels` and `natural_labels` go together.")
        labels, natural_labels = np.asarray(labels), np.asarray(natural_labels)
        distances = np.where(labels[:, None] == natural_labels[None], distances, np.inf)
    available = np.isfinite(distances).sum(1)
    if np.any(available < k):
        raise ValueError(f"some samples have fewer than k={k} natural images to compare with.")
    return np.sort(distances, axis=1)[:, :k].mean(1)


def frechet_distance(features_a, features_b):
    """Fréchet distance between Gaussians fitted to two feature sets (FID in Inception features).

    Biased upwards at small sample sizes (the covariances are estimated from few samples):
    compare values computed with equal sample sizes, or use `kernel_distance`.
    """
    a, b = _features("features_a", features_a), _features("features_b", features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}.")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each set needs at least 2 samples for a covariance.")
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean)
    return float(max(distance, 0.0))


def kernel_distance(features_a, features_b, degree=3):
    """Unbiased squared MMD with the polynomial kernel (x.y / d + 1) ** degree (KID).

    Unbiased at any sample size, so it can be slightly negative for identical distributions.
    """
    a, b = _features("features_a", features_a), _features("features_b", features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}.")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each set needs at least 2 samples.")
    dim = a.shape[1]
    k_aa = (a @ a.T / dim + 1) ** degree
    k_bb = (b @ b.T / dim + 1) ** degree
    k_ab = (a @ b.T / dim + 1) ** degree
    n, m = len(a), len(b)
    return float((k_aa.sum() - np.trace(k_aa)) / (n * (n - 1)) + (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
                 - 2 * k_ab.mean())


def top_k_accuracy(logits, labels, k=1):
    """Fraction of samples whose label is among the k highest logits."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or len(labels) != len(logits):
        raise ValueError(f"`logits` must be (n, classes) and `labels` (n,), got {logits.shape} and {labels.shape}.")
    k = validation.positive_int("k", k)
    top = np.argsort(-logits, axis=1)[:, :k]
    return float((top == labels[:, None]).any(1).mean())


def transferability(classifiers, images, labels, ks=(1, 5), batch_size=32):
    """Top-k accuracy of each classifier on the visualizations.

    Args:
        classifiers: dict name -> Keras classifier (inputs in the images' value range).
        images: (n, H, W, C) visualizations (resized to each classifier's input).
        labels: (n,) the class each visualization was made for.
        ks: the k of top-k.

    Returns:
        dict name -> {k: accuracy}.
    """
    return {name: {k: top_k_accuracy(logits, labels, k) for k in ks}
            for name, logits in ((name, model_outputs(model, images, batch_size)) for name, model in classifiers.items())}


def logit_magnitude(model, images, labels, batch_size=32):
    """Mean logit of each visualization's own class in `model` (what MACO maximizes)."""
    logits = model_outputs(model, images, batch_size)
    return float(logits[np.arange(len(labels)), np.asarray(labels)].mean())


def path_layers(model, count=4):
    """`count` layers spread evenly along the path of a convolutional model: its spatial
    (4-D) outputs at equal steps of depth, the last one included. Activations and residual
    sums are preferred (what a block hands on), where the model has `count` of them.

    Args:
        model: a functional Keras model.
        count: how many layers (default 4).

    Returns:
        list of layer names, input side first.
    """
    count = validation.positive_int("count", count)
    spatial = [layer.name for layer in model.layers
               if not isinstance(layer, keras.layers.InputLayer) and len(getattr(layer, "output").shape) == 4]
    handed_on = [name for name in spatial
                 if isinstance(model.get_layer(name), (keras.layers.ReLU, keras.layers.Activation, keras.layers.Add))]
    spatial = handed_on if len(handed_on) >= count else spatial
    if not spatial:
        raise ValueError(f"expected a model with spatial (batch, height, width, channels) layers, received: "
                         f"model={model.name}")
    count = min(count, len(spatial))
    picks = np.linspace(len(spatial) / count, len(spatial), count).round().astype(int) - 1
    return [spatial[index] for index in sorted(set(picks.tolist()))]


def layer_activations(model, layers, images, batch_size=32):
    """Each layer's activations, averaged over space, for `images` (resized to the model input).

    Returns:
        {layer: float64 array (n, channels)}.
    """
    outputs = [model.get_layer(layer).output for layer in layers]
    pooled = [keras.ops.mean(output, axis=tuple(range(1, len(output.shape) - 1))) if len(output.shape) > 2 else output
              for output in outputs]
    probe = keras.Model(model.inputs, pooled)
    batch_size = validation.positive_int("batch_size", batch_size)
    parts = [[np.asarray(value, np.float64) for value in probe(_resize_to(model, images[start:start + batch_size]),
                                                               training=False)]
             for start in range(0, len(images), batch_size)]
    return {layer: np.concatenate([part[index] for part in parts]) for index, layer in enumerate(layers)}


def _spearman_rows(a, b):
    """Spearman's rank correlation between every row of `a` (n, d) and every row of `b` (m, d): (n, m)."""
    def standardized_ranks(values):
        ranks = scipy.stats.rankdata(values, axis=1)
        ranks -= ranks.mean(1, keepdims=True)
        return ranks / np.maximum(np.linalg.norm(ranks, axis=1, keepdims=True), 1e-12)

    return standardized_ranks(a) @ standardized_ranks(b).T


def path_similarity(activations, labels, natural_activations, natural_labels):
    """The faithfulness check: per layer, is each picture closer to natural images of its own class than to others'?

    Geirhos et al. ("Don't trust your eyes", ICML 2024) show that a feature visualization
    can look right while the network processes it unlike any natural image, and check the
    *path*: the activations a picture causes at each layer along the way, against those of
    natural images. Here, at each layer, a picture's similarity to a natural image is
    Spearman's rank correlation of their (spatially averaged) activations, which ignores
    how much harder a picture drives the layer than photos do. The score is the chance that
    a natural image of the picture's class is more similar to it than one of another class
    (an AUC): 0.5 means the picture is processed like an arbitrary image at that layer,
    1.0 like its class's photos and no other. A prior that paints class-like pictures
    the network does not use would score high at the early layers and no better at the
    late ones; a faithful picture rises towards the end of the path like photos do.

    Args:
        activations: {layer: (n, d)} of the pictures (`layer_activations`).
        labels: (n,) each picture's class.
        natural_activations: {layer: (m, d)} of natural images, same layers.
        natural_labels: (m,) their classes; every picture's class needs at least one natural
            image, and there must be images of other classes.

    Returns:
        {layer: float array (n,)}: each picture's AUC at that layer.

    Example:
        >>> layers = path_layers(model)
        >>> auc = path_similarity(layer_activations(model, layers, pictures), classes,
        ...                       layer_activations(model, layers, photos), photo_classes)
    """
    labels, natural_labels = np.asarray(labels), np.asarray(natural_labels)
    same = labels[:, None] == natural_labels[None]
    if not same.any(1).all():
        missing = sorted(set(labels[~same.any(1)].tolist()))
        raise ValueError(f"expected natural images of every picture's class, received: none of classes {missing}")
    if same.all(1).any():
        raise ValueError("expected natural images of other classes than each picture's, received: only its own")
    scores = {}
    for layer, values in activations.items():
        similarity = _spearman_rows(_features(f"activations[{layer!r}]", values),
                                    _features(f"natural_activations[{layer!r}]", natural_activations[layer]))
        aucs = []
        for row, own in zip(similarity, same):
            # Over every (own-class image, other-class image) pair: how often the own-class one is closer; ties half.
            ours, theirs = row[own][:, None], row[~own][None]
            aucs.append(float(((ours > theirs) + 0.5 * (ours == theirs)).mean()))
        scores[layer] = np.array(aucs)
    return scores
