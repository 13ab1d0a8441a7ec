import numpy as np
import pytest
import tensorflow as tf

import maco_keras
from maco_keras import color, spectrum


@pytest.mark.parametrize("size,shape", [(512, (512, 257)), (224, (224, 113)), ((40, 33), (40, 17)), (8, (8, 5))])
@pytest.mark.parametrize("channels", [1, 3])
def test_imagenet_magnitude_shapes(size, shape, channels):
    magnitude = maco_keras.imagenet_magnitude(size, channels)
    assert magnitude.shape == (channels, *shape)
    assert magnitude.dtype == np.float32
    assert np.all(np.isfinite(magnitude)) and np.all(magnitude >= 0)


def _per_pixel_stats(magnitude, height, width):
    weights = np.full(magnitude.shape, 2.0)
    weights[:, :, 0] = 1.0
    if width % 2 == 0:
        weights[:, :, -1] = 1.0
    ac_energy = (weights * magnitude.astype(np.float64) ** 2).sum((1, 2)) - magnitude[:, 0, 0] ** 2.0
    return magnitude[:, 0, 0] / (height * width), np.sqrt(ac_energy) / (height * width)


def test_resize_keeps_per_pixel_mean_and_frequency_layout():
    full = maco_keras.imagenet_magnitude(512)
    small = maco_keras.imagenet_magnitude(256)
    mean_full, _ = _per_pixel_stats(full, 512, 512)
    mean_small, _ = _per_pixel_stats(small, 256, 256)
    np.testing.assert_allclose(mean_small, mean_full, rtol=1e-5)
    # Frequency (fy, fx) = (k/256, l/256) is stored at [k, l] in 256 and [2k, 2l] in 512:
    # the resized spectrum must agree there (up to the sqrt(pixels) scale of AC bins),
    # for positive and negative vertical frequencies alike.
    for k, l in [(1, 1), (5, 3), (-5, 3), (-1, 0), (60, 100), (-60, 7)]:
        np.testing.assert_allclose(small[:, k, l] * 2.0, full[:, 2 * k, 2 * l], rtol=1e-4)


def test_resize_is_identity_at_same_size():
    magnitude = maco_keras.imagenet_magnitude(64)
    np.testing.assert_array_equal(maco_keras.resize_magnitude(magnitude, 64), magnitude)


def test_compute_magnitude_array_and_dataset_agree(tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (10, 16, 20, 3)).astype(np.float32)
    from_array = maco_keras.compute_magnitude(images, values_range=(0, 255), batch_size=3)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(10))).batch(4)
    from_dataset = maco_keras.compute_magnitude(dataset, values_range=(0, 255))
    unbatched = maco_keras.compute_magnitude(tf.data.Dataset.from_tensor_slices(images), values_range=(0, 255))
    assert from_array.shape == (3, 16, 11)
    np.testing.assert_allclose(from_array, from_dataset, rtol=1e-5)
    np.testing.assert_allclose(from_array, unbatched, rtol=1e-5)
    path = tmp_path / "magnitude.npy"
    maco_keras.save_magnitude(path, from_array)
    np.testing.assert_array_equal(maco_keras.load_magnitude(path), from_array)


def test_compute_magnitude_uses_the_parameterization_color_space():
    # An RGB image whose decorrelated channels 1 and 2 are constant: in the space that
    # MacoImage recorrelates from, those channels have no AC energy at all.
    rng = np.random.default_rng(1)
    decorrelated = np.zeros((4, 16, 16, 3), np.float32)
    decorrelated[..., 0] = rng.normal(size=(4, 16, 16))
    decorrelated[..., 1:] = 0.3
    rgb = color.recorrelate(tf.constant(decorrelated)).numpy()
    magnitude = maco_keras.compute_magnitude(rgb, values_range=(0, 1))
    ac = magnitude.copy()
    ac[:, 0, 0] = 0
    assert ac[0].max() > 1.0
    assert ac[1:].max() < 1e-3 * ac[0].max()


def test_compute_magnitude_grayscale_and_other_channels():
    images = np.random.default_rng(2).uniform(size=(3, 12, 12, 1))
    assert maco_keras.compute_magnitude(images).shape == (1, 12, 7)
    assert maco_keras.compute_magnitude(np.random.default_rng(3).uniform(size=(2, 12, 12, 5))).shape == (5, 12, 7)


def test_compute_magnitude_resizes_to_image_size():
    images = np.random.default_rng(4).uniform(size=(2, 30, 40, 3))
    assert maco_keras.compute_magnitude(images, image_size=(16, 16)).shape == (3, 16, 9)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 8, 8, 3)), "empty"),
    (np.zeros((8, 8)), "shape"),
])
def test_compute_magnitude_rejects_bad_images(bad, match):
    with pytest.raises(ValueError, match=match):
        maco_keras.compute_magnitude(bad)


def test_compute_magnitude_rejects_mixed_sizes_without_image_size():
    dataset = tf.data.Dataset.from_generator(
        lambda: iter([np.zeros((8, 8, 3), np.float32), np.zeros((10, 10, 3), np.float32)]),
        output_signature=tf.TensorSpec((None, None, 3), tf.float32))
    with pytest.raises(ValueError, match="image_size"):
        maco_keras.compute_magnitude(dataset)
    assert maco_keras.compute_magnitude(dataset, image_size=8).shape == (3, 8, 5)


def test_bad_magnitude_arguments(tmp_path):
    with pytest.raises(ValueError, match="channels"):
        maco_keras.imagenet_magnitude(64, channels=4)
    with pytest.raises(TypeError, match="image_size"):
        maco_keras.imagenet_magnitude("big")
    with pytest.raises(ValueError, match="values_range"):
        maco_keras.compute_magnitude(np.zeros((1, 8, 8, 3)), values_range=(1, 0))
    np.save(tmp_path / "bad.npy", -np.ones((3, 4, 3)))
    with pytest.raises(ValueError, match="magnitude"):
        maco_keras.load_magnitude(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match="resize_magnitude"):
        spectrum.check_magnitude(np.ones((3, 16, 9)), (32, 32), 3)


@pytest.mark.shared
def test_shared_imagenet_samples_agree_with_default_magnitude(shared):
    files = sorted((shared / "imagenet-samples").glob("*.JPEG"))[:100]
    dataset = tf.data.Dataset.from_tensor_slices([str(f) for f in files]).map(
        lambda path: tf.io.decode_jpeg(tf.io.read_file(path), channels=3))
    size = 128
    measured = maco_keras.compute_magnitude(dataset, image_size=size, values_range=(0, 255))
    default = maco_keras.imagenet_magnitude(size)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None]
    radius = np.broadcast_to(np.hypot(fy, fx), default.shape[1:])
    # Shape of the spectrum, channel by channel: log-magnitudes correlate. The default
    # holds almost no energy above 0.4 cycles/pixel (its source images were upsampled;
    # see `imagenet_magnitude`), so the comparison stops there. Measured when written:
    # 0.976 / 0.982 / 0.976 below 0.4, and 0.84-0.87 over all frequencies.
    band = (radius > 0) & (radius < 0.4)
    for channel in range(3):
        correlation = np.corrcoef(np.log(measured[channel][band]), np.log(default[channel][band]))[0, 1]
        assert correlation > 0.95, (channel, correlation)
    # The same check tells a wrong spectrum apart: flat (white) magnitudes do not correlate.
    white = np.abs(np.fft.rfft2(np.random.default_rng(0).normal(size=(size, size))))
    assert np.corrcoef(np.log(white[band]), np.log(default[0][band]))[0, 1] < 0.5


def test_the_cores_numpy_spectra_are_tensorflows():
    """`core.render` measures images with NumPy's FFT (JAX and PyTorch use it): TensorFlow's results to float
    tolerance, for RGB and grayscale."""
    from maco_keras.core import render

    rng = np.random.default_rng(5)
    for channels in (3, 1):
        images = rng.uniform(0, 255, (3, 24, 20, channels)).astype(np.float32)
        expected = spectrum.compute_magnitude(images, values_range=(0, 255))
        np.testing.assert_allclose(render.mean_magnitude(images, (0, 255)), expected, rtol=1e-4, atol=1e-3)
        magnitude, phase = render.image_spectrum(images, (0, 255))
        tf_magnitude, tf_phase = spectrum.image_spectrum(images, (0, 255))
        np.testing.assert_allclose(magnitude, tf_magnitude, rtol=1e-4, atol=1e-3)
        strong = tf_magnitude > 1.0  # a phase is defined where its magnitude is not ~0
        np.testing.assert_allclose(np.angle(np.exp(1j * (phase - tf_phase)))[strong], 0.0, atol=1e-3)
    with pytest.raises(ValueError, match="images.shape"):
        render.mean_magnitude(np.zeros((0, 8, 8, 3)), (0, 1))
