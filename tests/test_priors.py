"""Opt-in priors from data: VITAL's feature distribution term and one magnitude per unit."""

import numpy as np
import pytest
import tensorflow as tf

import maco_keras
from maco_keras import objective as objective_lib
from maco_keras import objectives


def _term(compiled, images):
    """The compiled objective's score of `images` (one crop each)."""
    masks = [tf.constant(np.repeat(mask, len(images), axis=0)) for mask in compiled.masks]
    return compiled.scores(compiled.model(images), masks, tf.constant(compiled.multipliers), 1)[0].numpy()


def test_a_reference_matches_its_own_distribution_wherever_its_pixels_are(tiny_model):
    reference = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    term = objective_lib.compile_objective(objectives.feature_distribution(tiny_model, ["conv1", "conv2"], reference))
    assert term.names == ["Distribution#conv1 & Distribution#conv2"]
    assert _term(term, reference)[0] == pytest.approx(0.0, abs=1e-6)
    other = np.random.default_rng(1).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32) * 0.2
    assert _term(term, other)[0] < -1e-3


def test_sorted_distance_forgets_positions():
    activations = tf.random.stateless_normal((2, 5, 6, 4), (0, 1))
    reference = tf.sort(tf.reshape(activations, (2, 30, 4)), axis=1)
    shuffled = tf.reshape(tf.gather(tf.reshape(activations, (2, 30, 4)), np.random.default_rng(0).permutation(30),
                                    axis=1), (2, 5, 6, 4))
    np.testing.assert_allclose(objectives.sorted_distance(shuffled, tf.reshape(reference, (2, 5, 6, 4))), 0.0)
    assert np.all(objectives.sorted_distance(2 * activations, tf.reshape(reference, (2, 5, 6, 4))).numpy() < 0)


def test_the_term_composes_with_every_unit_and_pulls_towards_the_references(tiny_model):
    references = np.random.default_rng(2).uniform(-1, 1, (3, 40, 40, 3)).astype(np.float32)
    settings = dict(steps=6, crops=2, image_size=48, seed=0, verbose=False, return_visualization=True)

    def distance(images):
        term = objective_lib.compile_objective(objectives.feature_distribution(tiny_model, ["conv2"], references))
        return -_term(term, tf.image.resize(images, (32, 32))).mean()

    plain = maco_keras.maco(objectives.logit(tiny_model, [0, 1]), **settings)
    pulled = maco_keras.maco(objectives.logit(tiny_model, [0, 1])
                             + 1.0 * objectives.feature_distribution(tiny_model, ["conv2"], references), **settings)
    assert pulled.names == ["Neuron#logits_0 & Distribution#conv2", "Neuron#logits_1 & Distribution#conv2"]
    assert distance(pulled.images) < distance(plain.images)
    alone = maco_keras.maco(objectives.logit(tiny_model, [1])
                            + 1.0 * objectives.feature_distribution(tiny_model, ["conv2"], references), **settings)
    # The same unit alone: its own draws, so the same picture; to float tolerance, since the distribution term's
    # sort and TF's CPU kernels for this tiny model take other paths at other batch sizes on some CPUs (measured:
    # 4e-7 on an AMD EPYC, bit-equal on an Intel machine).
    np.testing.assert_allclose(alone.images[0], pulled.images[1], atol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(layers=["logits"]), "spatial or token layers"),
    (dict(layers=[]), "at least one layer"),
    (dict(layers=["nowhere"]), "layers"),
    (dict(reference_images=np.zeros((0, 32, 32, 3), np.float32)), "reference_images"),
    (dict(reference_images=np.zeros((2, 32, 32, 1), np.float32)), "reference_images"),
])
def test_bad_feature_distribution_arguments(tiny_model, kwargs, message):
    arguments = {"layers": ["conv1"], "reference_images": np.zeros((2, 32, 32, 3), np.float32), **kwargs}
    with pytest.raises(ValueError, match=message):
        objectives.feature_distribution(tiny_model, **arguments)


def test_one_magnitude_per_unit_follows_its_unit_through_batches(tiny_model):
    base = maco_keras.imagenet_magnitude((48, 48))
    magnitude = np.stack([base, base[:, ::-1], 0.5 * base])
    settings = dict(steps=3, crops=2, image_size=48, seed=0, verbose=False)
    together, _ = maco_keras.maco(tiny_model, units=[0, 1, 2], magnitude=magnitude, **settings)
    batched, _ = maco_keras.maco(tiny_model, units=[0, 1, 2], magnitude=magnitude, batch_size=2, **settings)
    alone, _ = maco_keras.maco(tiny_model, units=[2], magnitude=magnitude[2:], **settings)
    shared, _ = maco_keras.maco(tiny_model, units=[0, 1, 2], magnitude=base, **settings)
    np.testing.assert_array_equal(batched, together)
    np.testing.assert_array_equal(alone[0], together[2])
    np.testing.assert_array_equal(shared[0], together[0])  # unit 0's own magnitude is the shared one
    assert not np.array_equal(shared[1], together[1])


def test_dataset_examples_give_each_unit_its_images_and_magnitude(tiny_model, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(6):
        smooth = index % 2 == 0  # half the images smooth, half noisy: other spectra
        pixels = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
        if smooth:
            pixels = np.full_like(pixels, 40 * index) + np.arange(48, dtype=np.uint8)[None, :, None]
        Image.fromarray(pixels).save(tmp_path / f"{index}.png")
    examples = maco_keras.examples.dataset_examples(tiny_model, None, "logit", tmp_path, (-1, 1), [0, 3], top=2,
                                                    verbose=False)
    images = maco_keras.examples.example_images(examples, 3, 24, values_range=(-1, 1))
    assert images.shape == (2, 24, 24, 3) and images.min() >= -1 and images.max() <= 1
    magnitudes = maco_keras.examples.example_magnitudes(examples, [0, 3], image_size=32)
    assert magnitudes.shape == (2, 3, 32, 17)
    first = maco_keras.examples.example_images(examples, 0, 32, values_range=(0, 1))
    np.testing.assert_allclose(magnitudes[0], maco_keras.compute_magnitude(first), rtol=1e-5)
    with pytest.raises(ValueError, match="unit"):
        maco_keras.examples.example_images(examples, 5, 24)


def test_a_model_of_any_input_size_is_told_to_fix_one_before_its_references_run():
    import keras
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3, name="conv")])
    with pytest.raises(ValueError, match="known input shape"):
        objectives.feature_distribution(model, ["conv"], np.zeros((2, 32, 32, 3), np.float32))
