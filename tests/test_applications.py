import numpy as np
import pytest

import maco_keras
from maco_keras import applications, metrics

FAST = dict(image_size=48, crops=4, verbose=False)


def _cosine(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_feature_inversion_moves_towards_the_reference(tiny_model):
    references = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    objective = applications.feature_inversion(tiny_model, "conv2", references)
    extractor = metrics.feature_model(tiny_model, "conv2", pool=False)
    target = metrics.model_outputs(extractor, references)
    # A spatial activation pattern is matched on the whole image (no crops).
    visualization = maco_keras.maco(objective, steps=40, seed=0, crop_scale=1.0, crop_scale_std=0.0,
                                    return_visualization=True, **FAST)
    assert visualization.images.shape == (2, 48, 48, 3)
    initial = maco_keras.MacoImage(2, 48, values_range=(-1, 1))
    initial.reset(0)
    before = _cosine(metrics.model_outputs(extractor, initial().numpy()), target)
    after = _cosine(metrics.model_outputs(extractor, visualization.images), target)
    assert np.all(after > before), (before, after)


def test_concept_visualization(tiny_model):
    concepts = np.abs(np.random.default_rng(1).normal(size=(3, 16)))
    objective = applications.concept_visualization(tiny_model, "conv2", concepts)
    images, transparency = maco_keras.maco(objective, steps=5, seed=0, **FAST)
    assert images.shape == (3, 48, 48, 3) and transparency.shape == (3, 48, 48, 3)
    with pytest.raises(ValueError, match="concepts"):
        applications.concept_visualization(tiny_model, "conv2", np.ones((3, 7)))
    with pytest.raises(ValueError, match="reference_images"):
        applications.feature_inversion(tiny_model, "conv2", np.ones((32, 32, 3)))


def _mean_gram_similarity(model, layer, images):
    import tensorflow as tf

    extractor = metrics.feature_model(model, layer, pool=False)
    features = extractor(tf.image.resize(images, model.input_shape[1:3]))
    copies = np.eye(len(images), dtype=np.float32)
    return float(np.mean(applications.gram_similarity(features, copies).numpy()))


def test_diversity_makes_the_copies_less_alike(tiny_model):
    from maco_keras import Objective

    settings = dict(steps=40, seed=0, return_visualization=True, **FAST)
    plain = maco_keras.maco(Objective.neuron(tiny_model, -1, [4, 4, 4]), **settings)
    diverse = maco_keras.maco(Objective.neuron(tiny_model, -1, 4) + applications.diversity(
        tiny_model, "conv1", copies=3, weight=5.0), **settings)
    assert diverse.names == ["Neuron#logits_4 & Copy#0", "Neuron#logits_4 & Copy#1", "Neuron#logits_4 & Copy#2"]
    before = _mean_gram_similarity(tiny_model, "conv1", plain.images)
    after = _mean_gram_similarity(tiny_model, "conv1", diverse.images)
    assert after < before, (before, after)
    with pytest.raises(ValueError, match="copies"):
        applications.diversity(tiny_model, "conv1", copies=1)


def _photo(size=48):
    """A smooth synthetic 'photo' in [-1, 1]: colour gradients and a disc."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    disc = ((y - 0.4) ** 2 + (x - 0.6) ** 2 < 0.06).astype(np.float32)
    image = np.stack([x, y, 0.5 * (1 - x) + 0.5 * disc], -1)
    return (2 * image - 1).astype(np.float32)


def _structure(a, b):
    """Correlation of two images' pixels, each channel centred (colour offsets aside)."""
    a, b = a - a.mean((0, 1)), b - b.mean((0, 1))
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_image_phase_starts_maco_from_the_image():
    image = _photo()
    images = maco_keras.MacoImage(1, 48, values_range=(-1, 1))
    images.set_start_phase(maco_keras.spectrum.image_phase(image[None], (-1, 1)))
    images.reset(0)
    assert _structure(images().numpy()[0], image) > 0.5
    images.set_start_phase(None)
    for seed in range(3):
        images.reset(seed)
        assert _structure(images().numpy()[0], image) < 0.35
    with pytest.raises(ValueError, match="phase"):
        images.set_start_phase(np.zeros((1, 3, 48, 10)))


def test_accentuation_raises_the_unit_and_stays_close_to_the_image(tiny_model):
    image, unit = _photo(), 4
    accentuated = applications.accentuate(tiny_model, unit, image, "conv1", weight=1.0, steps=30, crops=4, seed=0,
                                          verbose=False, return_visualization=True)
    plain = maco_keras.maco(tiny_model, units=[unit], steps=30, seed=0, **FAST)[0]
    assert accentuated.images.shape == (1, 48, 48, 3)
    assert accentuated.names == [f"Neuron#logits_{unit} & Keep#conv1"]
    # The unit rises from the image's own start (the scores include the small regularizer)...
    assert accentuated.scores[-5:].mean() > accentuated.scores[:5].mean() + 0.005
    # ... and the result stays much closer to the image than plain MACO's.
    assert np.mean((accentuated.images[0] - image) ** 2) < 0.8 * np.mean((plain[0] - image) ** 2)
    assert _structure(accentuated.images[0], image) > 0.3 > _structure(plain[0], image)


def test_inversion_at_a_shallow_layer_gives_back_the_photo(tiny_model):
    import tensorflow as tf

    reference = _photo(32)[None]
    aligned, _ = applications.invert(tiny_model, "conv1", reference, jitter=2, steps=60, crops=4, seed=0,
                                     verbose=False)
    pooled, _ = applications.invert(tiny_model, "pool", reference, steps=60, crops=4, image_size=48, seed=0,
                                    verbose=False)
    # The same shallow objective with MACO's random crops of a canvas: they cannot line up.
    unaligned, _ = maco_keras.maco(applications.feature_inversion(tiny_model, "conv1", reference), steps=60,
                                   seed=0, **FAST)
    assert aligned.shape == (1, 36, 36, 3) and pooled.shape == (1, 48, 48, 3)
    shallow = _structure(aligned[0, 2:34, 2:34], reference[0])
    deep = _structure(tf.image.resize(pooled, (32, 32)).numpy()[0], reference[0])
    random_crops = _structure(tf.image.resize(unaligned, (32, 32)).numpy()[0], reference[0])
    # Measured: 0.44, -0.04 and 0.23.
    assert shallow > 0.35 and shallow > deep + 0.3 and shallow > random_crops + 0.1, (shallow, deep, random_crops)
    with pytest.raises(ValueError, match="jitter"):
        applications.invert(tiny_model, "conv1", reference, jitter=-1)
