import keras
import numpy as np
import pytest
import tensorflow as tf

from maco_keras import metrics


def _gaussian(seed, n=300, dim=8, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


def test_fid_and_kid_known_answers():
    a, b = _gaussian(0), _gaussian(1)
    shifted = _gaussian(2, shift=1.0)
    assert metrics.frechet_distance(a, a) < 1e-6
    same_fid, shifted_fid = metrics.frechet_distance(a, b), metrics.frechet_distance(a, shifted)
    same_kid, shifted_kid = metrics.kernel_distance(a, b), metrics.kernel_distance(a, shifted)
    # Two draws of one distribution are close; a mean shift of 1 per dimension adds ~dim to FID.
    assert same_fid < 0.5 < 6 < shifted_fid < 10
    # KID is unbiased: ~0 for two draws of one distribution, and for a set against itself
    # only its O(1/n) diagonal correction remains.
    assert abs(same_kid) < 0.02 * shifted_kid
    assert abs(metrics.kernel_distance(a, a)) < 0.02 * shifted_kid
    # The further the shift, the larger both distances.
    assert metrics.frechet_distance(a, _gaussian(3, shift=2.0)) > shifted_fid
    assert metrics.kernel_distance(a, _gaussian(3, shift=2.0)) > shifted_kid


def test_plausibility_nearest_neighbours_and_classes():
    natural = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 3.0]])
    samples = np.array([[0.0, 0.0], [9.0, 0.0]])
    np.testing.assert_allclose(metrics.plausibility(samples, natural), [0.0, 1.0])
    np.testing.assert_allclose(metrics.plausibility(samples, natural, k=2), [1.5, (1 + 9) / 2])
    # Restricted to their own class, sample 0 (class 2) must look at [0, 3].
    np.testing.assert_allclose(metrics.plausibility(samples, natural, [2, 1], [0, 1, 2]), [3.0, 1.0])
    with pytest.raises(ValueError, match="k=2"):
        metrics.plausibility(samples, natural, [2, 1], [0, 1, 2], k=2)
    with pytest.raises(ValueError, match="features"):
        metrics.plausibility(np.zeros((0, 2)), natural)


def test_normalized_plausibility_ignores_how_strong_the_features_are():
    natural = np.array([[4.0, 0.0], [0.0, 4.0]])
    faint = np.array([[0.1, 0.1]])  # raw: near everything; its direction is halfway between the two
    assert metrics.plausibility(faint, natural)[0] < 4.0
    np.testing.assert_allclose(metrics.plausibility(faint, natural, normalize=True), [np.sqrt(2 - np.sqrt(2))])
    np.testing.assert_allclose(metrics.plausibility(3 * natural, natural, normalize=True), [0.0, 0.0], atol=1e-7)
    with pytest.raises(ValueError, match="normalize"):
        metrics.plausibility(faint, natural, normalize="yes")


def test_top_k_and_center_crop():
    logits = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    assert metrics.top_k_accuracy(logits, [2, 0], k=1) == 0.5
    assert metrics.top_k_accuracy(logits, [2, 0], k=2) == 1.0
    assert metrics.center_crop(np.zeros((2, 512, 512, 3))).shape == (2, 299, 299, 3)
    with pytest.raises(ValueError, match="logits"):
        metrics.top_k_accuracy(logits, [1], k=1)


def _coloured_images(seed, n):
    """Class c: channel c brighter than the others, under noise; values in [-1, 1]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.uniform(-1, 0.2, (n, 16, 16, 3))
    images[np.arange(n), :, :, labels] += 0.8
    return images.astype(np.float32), labels


def test_transferability_is_high_on_training_like_images():
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([
        keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    classifier.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels = _coloured_images(0, 600)
    classifier.fit(images, labels, epochs=15, batch_size=32, verbose=0)
    fresh, fresh_labels = _coloured_images(1, 90)
    scores = metrics.transferability({"tiny": classifier}, fresh, fresh_labels, ks=(1, 2))
    assert scores["tiny"][1] > 0.9 and scores["tiny"][2] >= scores["tiny"][1]
    # Labels unrelated to the images: chance level (1/3), far from the above.
    shuffled = metrics.transferability({"tiny": classifier}, fresh, (fresh_labels + 1) % 3, ks=(1,))
    assert shuffled["tiny"][1] < 0.2
    assert metrics.logit_magnitude(classifier, fresh, fresh_labels) > metrics.logit_magnitude(
        classifier, fresh, (fresh_labels + 1) % 3)


def test_path_similarity_tells_class_like_activations_from_arbitrary_ones():
    rng = np.random.default_rng(0)
    classes = np.repeat(np.arange(5), 4)  # 4 natural images of each of 5 classes
    prototypes = rng.normal(size=(5, 32))
    natural = {"early": prototypes[classes] + 0.3 * rng.normal(size=(20, 32))}
    faithful = {"early": prototypes[[0, 3]] + 0.3 * rng.normal(size=(2, 32))}
    arbitrary = {"early": rng.normal(size=(200, 32))}  # each leans to some class by chance: many, on average
    high = metrics.path_similarity(faithful, [0, 3], natural, classes)["early"]
    chance = metrics.path_similarity(arbitrary, np.arange(200) % 5, natural, classes)["early"]
    assert high.shape == (2,) and np.all(high > 0.95)
    assert abs(chance.mean() - 0.5) < 0.05
    # Ranks only: driving the layer 10 times harder changes nothing.
    scaled = metrics.path_similarity({"early": 10 * faithful["early"]}, [0, 3], natural, classes)["early"]
    np.testing.assert_allclose(scaled, high)
    with pytest.raises(ValueError, match="none of classes \\[7\\]"):
        metrics.path_similarity(faithful, [0, 7], natural, classes)
    with pytest.raises(ValueError, match="other classes"):
        metrics.path_similarity(faithful, [0, 0], natural, np.zeros(20, int))


def test_path_layers_and_their_activations(tiny_model):
    assert metrics.path_layers(tiny_model, count=4) == ["conv1", "conv2"]
    assert metrics.path_layers(tiny_model, count=1) == ["conv2"]
    images = np.random.default_rng(1).uniform(-1, 1, (3, 40, 40, 3)).astype(np.float32)
    activations = metrics.layer_activations(tiny_model, ["conv1", "conv2"], images, batch_size=2)
    assert activations["conv1"].shape == (3, 8) and activations["conv2"].shape == (3, 16)
    expected = tiny_model.get_layer("conv2").output
    probe = keras.Model(tiny_model.inputs, expected)
    resized = tf.image.resize(images, (32, 32), antialias=True)
    np.testing.assert_allclose(activations["conv2"], probe(resized).numpy().mean((1, 2)), rtol=1e-5, atol=1e-6)
