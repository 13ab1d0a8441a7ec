import keras
import numpy as np
import pytest
import tensorflow as tf

import maco_keras
from maco_keras import MacoImage


def test_shapes_weights_and_range():
    layer = MacoImage(num_images=2, image_size=(24, 30), values_range=(-1, 1), seed=0)
    images = layer()
    assert images.shape == (2, 24, 30, 3)
    assert float(tf.reduce_min(images)) >= -1 and float(tf.reduce_max(images)) <= 1
    assert [w.name for w in layer.trainable_weights] == ["phase"]
    assert layer.phase.shape == (2, 3, 24, 16)
    assert [w.name for w in layer.non_trainable_weights] == ["magnitude"]
    assert layer.magnitude.shape == (3, 24, 16)


def _spectrum_magnitude(layer):
    spatial = tf.transpose(layer.spatial_images(), (0, 3, 1, 2))
    return np.abs(tf.signal.rfft2d(spatial).numpy())


def _interior(array):
    # DC and the Nyquist column/row of a real image only keep the real part of the
    # spectrum (|cos(phase)| * magnitude): compare the bins where the phase is free.
    return array[..., 1:-1][..., 1:, :]


def test_generated_spectrum_has_the_fixed_magnitude():
    layer = MacoImage(num_images=3, image_size=32, seed=1)
    measured = _spectrum_magnitude(layer)
    expected = np.broadcast_to(layer.magnitude.numpy(), measured.shape)
    np.testing.assert_allclose(_interior(measured), _interior(expected), rtol=2e-3, atol=1e-3 * expected.max())


def test_optimization_changes_the_phase_only(tiny_model):
    visualization = maco_keras.maco(tiny_model, units=[0, 3], steps=15, image_size=48, crops=2, seed=3,
                                    verbose=False, return_visualization=True)
    layer = next(loop.parameterization for loop in maco_keras.optimization.cached_loops()
                 if loop.parameterization.num_images == 2 and loop.parameterization.image_size == (48, 48))
    initial = MacoImage(2, 48, values_range=(-1, 1), seed=3)
    initial.reset(3)
    assert not np.allclose(layer.phase.numpy(), initial.phase.numpy())
    np.testing.assert_array_equal(layer.magnitude.numpy(), maco_keras.imagenet_magnitude(48))
    # The returned images are this layer's, and their spectrum still has that magnitude.
    np.testing.assert_allclose(layer().numpy(), visualization.images, atol=1e-6)
    measured = _spectrum_magnitude(layer)
    expected = np.broadcast_to(layer.magnitude.numpy(), measured.shape)
    np.testing.assert_allclose(_interior(measured), _interior(expected), rtol=2e-3, atol=1e-3 * expected.max())


def test_serialization_round_trip():
    layer = MacoImage(num_images=1, image_size=16, channels=1, values_range=(0, 255), seed=4, contrast=1.5)
    config = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(config)
    restored.set_weights(layer.get_weights())
    assert restored.get_config() == layer.get_config()
    np.testing.assert_allclose(restored().numpy(), layer().numpy(), atol=1e-5)


def test_a_complex_phase_renders_its_angle(tiny_model):
    """phase_as="complex": the same image as the angle of each (real, imaginary) pair, at any length."""
    complex_images = MacoImage(2, 32, values_range=(-1, 1), phase_as="complex")
    complex_images.reset(3)
    vectors = complex_images.phase.numpy()
    assert vectors.shape == (2, 3, 32, 17, 2)
    np.testing.assert_allclose(np.hypot(vectors[..., 0], vectors[..., 1]), 1.0, rtol=1e-6)
    complex_images.phase.assign(vectors * np.random.default_rng(0).uniform(0.5, 3.0, vectors.shape[:-1] + (1,)))
    angle_images = MacoImage(2, 32, values_range=(-1, 1))
    angle_images.phase.assign(np.arctan2(vectors[..., 1], vectors[..., 0]))
    np.testing.assert_allclose(complex_images().numpy(), angle_images().numpy(), atol=2e-5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(complex_images))
    assert restored.get_config()["phase_as"] == "complex"
    with pytest.raises(ValueError, match="phase_as"):
        MacoImage(1, 32, phase_as="polar")
    # Through maco, with the defaults' coarse to fine (its radii broadcast over the pairs).
    visualization = maco_keras.maco(tiny_model, units=[1], steps=6, image_size=40, crops=4, seed=0, verbose=False,
                                    phase_as="complex", return_visualization=True)
    assert visualization.scores[-1, 0] > visualization.scores[0, 0]


def test_contrast_scales_the_image_before_the_sigmoid():
    plain = MacoImage(num_images=2, image_size=32, values_range=(0, 1), seed=6)
    stronger = MacoImage(num_images=2, image_size=32, values_range=(0, 1), seed=6, contrast=1.9)
    stronger.set_weights(plain.get_weights())
    logits = lambda layer: np.log(layer().numpy()) - np.log1p(-layer().numpy())  # noqa: E731
    # Same phase: the pre-sigmoid image is scaled by exactly the contrast.
    np.testing.assert_allclose(logits(stronger), 1.9 * logits(plain), rtol=1e-3, atol=1e-3)
    assert stronger().numpy().std() > 1.4 * plain().numpy().std()
    with pytest.raises(ValueError, match="contrast"):
        MacoImage(num_images=1, image_size=16, contrast=-1.0)


def test_maco_reuses_images_per_contrast(tiny_model):
    """A call with another contrast must not reuse the cached images of the first."""
    settings = dict(units=[0], steps=2, image_size=48, crops=2, seed=7, verbose=False)
    plain, _ = maco_keras.maco(tiny_model, **settings)
    stronger, _ = maco_keras.maco(tiny_model, contrast=1.9, **settings)
    again, _ = maco_keras.maco(tiny_model, **settings)
    assert stronger.std() > 1.2 * plain.std()
    np.testing.assert_array_equal(again, plain)


def test_usable_in_custom_training_code():
    layer = MacoImage(num_images=1, image_size=16, seed=5)
    optimizer = keras.optimizers.Adam(0.1)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(layer()[..., 0])  # make the red channel brighter
    before = float(-loss)
    optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_weights), layer.trainable_weights))
    assert float(tf.reduce_mean(layer()[..., 0])) > before


def test_custom_magnitude_and_channels():
    magnitude = np.ones((5, 8, 5), np.float32)
    assert MacoImage(1, 8, channels=5, magnitude=magnitude)().shape == (1, 8, 8, 5)
    with pytest.raises(ValueError, match="magnitude"):
        MacoImage(1, 8, channels=5)
    with pytest.raises(ValueError, match="magnitude"):
        MacoImage(1, 16, channels=5, magnitude=magnitude)
    with pytest.raises(ValueError, match="values_range"):
        MacoImage(1, 8, values_range=(2, 2))
    with pytest.raises(TypeError, match="num_images"):
        MacoImage(1.5, 8)


def test_pixel_statistics_give_each_channel_its_mean_and_spread():
    mean, std = (0.45, 0.5, 0.3), (0.15, 0.25, 0.2)
    images = MacoImage(num_images=2, image_size=128, seed=3, pixel_statistics=(mean, std))().numpy()
    # A picture's pixels are not exactly Gaussian logits: the fit holds to a few hundredths.
    np.testing.assert_allclose(images.mean(axis=(1, 2)), np.broadcast_to(mean, (2, 3)), atol=0.03)
    np.testing.assert_allclose(images.std(axis=(1, 2)), np.broadcast_to(std, (2, 3)), atol=0.03)
    imagenet = MacoImage(num_images=1, image_size=32, pixel_statistics="imagenet")
    assert imagenet.pixel_statistics == maco_keras.color.IMAGENET_PIXEL_STATISTICS


def test_fit_pixel_statistics_inverts_the_sigmoid():
    offset, scale = maco_keras.color.fit_pixel_statistics((0.2, 0.7), (0.1, 0.3))
    samples = np.random.default_rng(0).standard_normal(400_000)
    pixels = 1 / (1 + np.exp(-(offset[:, None] + scale[:, None] * samples)))
    np.testing.assert_allclose(pixels.mean(axis=1), (0.2, 0.7), atol=3e-3)
    np.testing.assert_allclose(pixels.std(axis=1), (0.1, 0.3), atol=3e-3)
    with pytest.raises(ValueError, match="standard deviations"):
        maco_keras.color.fit_pixel_statistics((0.5,), (0.5,))  # a sigmoid's pixels spread less than that


def test_one_magnitude_per_image():
    base = maco_keras.imagenet_magnitude((32, 32))
    magnitude = np.stack([base, 2 * base])
    layer = MacoImage(num_images=2, image_size=32, magnitude=magnitude, seed=1)
    np.testing.assert_allclose(_interior(_spectrum_magnitude(layer)), _interior(magnitude), rtol=1e-3, atol=1e-3)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(restored().numpy(), layer().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"one per image"):
        MacoImage(num_images=3, image_size=32, magnitude=magnitude)


def test_pixel_statistics_serialize():
    layer = MacoImage(num_images=1, image_size=16, seed=4, pixel_statistics="imagenet")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    restored.set_weights(layer.get_weights())
    assert restored.get_config() == layer.get_config()
    np.testing.assert_allclose(restored().numpy(), layer().numpy(), atol=1e-6)
