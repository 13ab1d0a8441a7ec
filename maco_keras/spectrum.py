"""Fourier magnitude spectra: the fixed `r` of MACO's `z = r * exp(i * phase)`.

A magnitude is a float32 array of shape `(channels, height, width // 2 + 1)`: the
`tf.signal.rfft2d` layout of images of size `(height, width)`, one spectrum per channel,
measured in the decorrelated colour space of `maco_keras.color` (for 3 channels).
"""

import os

import numpy as np
import tensorflow as tf

from . import color
from . import validation
from .core.render import frequency_radius, spectrum_shape  # noqa: F401
from .core.magnitude import imagenet_magnitude, resize_magnitude  # noqa: F401


def irfft2d_per_image(spectra, image_size):
    """`tf.signal.irfft2d` of (N, C, H, W // 2 + 1) spectra, one image at a time.

    TF's batched CPU transform groups the images' rows differently for different N
    (measured at 512px: image 0 of a batch of 5 differs in its last bits from the same
    image alone). Transforming each image on its own makes an image's pixels, and their
    gradient, the same whatever batch it is in, at the same speed (16 images at 512px:
    83 vs 78 ms on 2 cores).

    Returns:
        float32 tensor (N, C, H, W).
    """
    return tf.stack([tf.signal.irfft2d(spectra[index], fft_length=image_size) for index in range(spectra.shape[0])])


def check_magnitude(magnitude, image_size, channels, name="magnitude", num_images=None):
    """Validates a user magnitude against the images it must generate.

    Args:
        num_images: N, when one magnitude per image (N, C, H, W // 2 + 1) is allowed too.

    Returns:
        float32 array (channels, height, width // 2 + 1), or (N, channels, ...) per image.
    """
    array = np.asarray(magnitude, dtype=np.float32) if not isinstance(magnitude, tf.Variable) else magnitude.numpy()
    expected = (channels, *spectrum_shape(image_size))
    if array.shape != expected and (num_images is None or array.shape != (num_images, *expected)):
        hint, per_image = "", "" if num_images is None else f" or {(num_images, *expected)}, one per image,"
        if array.ndim in (3, 4) and array.shape[-3] == channels:
            hint = " Use `maco_keras.resize_magnitude(magnitude, image_size)` to resample it."
        raise ValueError(
            f"`{name}` must have shape {expected} (channels, height, width // 2 + 1){per_image} for "
            f"{channels}-channel images of size {tuple(image_size)}, got {array.shape}.{hint}"
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"`{name}` must be finite and non-negative.")
    return array


def image_spectrum(images, values_range=(-1.0, 1.0)):
    """The Fourier magnitude and phase of images in the space `MacoImage` renders from.

    `MacoImage` renders `sigmoid(recorrelate(standardize(irfft2d(magnitude * exp(i * phase)))))`;
    this undoes the sigmoid and the colour correlation and takes the spectrum, so a
    `MacoImage` started from the phase draws the images' structure (see
    `MacoImage.set_start_phase`), and with the magnitude too, their colours and contrast.

    Args:
        images: array (N, H, W, C) in `values_range`.
        values_range: (low, high) of the images.

    Returns:
        (magnitude, phase): float32 arrays (N, C, H, W // 2 + 1).
    """
    low, high = validation.values_range(values_range)
    images = np.clip((np.asarray(images, np.float32) - low) / (high - low), 1e-3, 1 - 1e-3)
    logits = color.decorrelate(np.log(images) - np.log1p(-images))
    spectra = tf.signal.rfft2d(tf.transpose(logits, (0, 3, 1, 2))).numpy()
    return np.abs(spectra).astype(np.float32), np.angle(spectra).astype(np.float32)


def image_phase(images, values_range=(-1.0, 1.0)):
    """The phase of `image_spectrum`: MACO's own phase for these images, (N, C, H, W // 2 + 1)."""
    return image_spectrum(images, values_range)[1]


def resolve_magnitude(magnitude, image_size, channels, name="magnitude", num_images=None):
    """The one place that turns a `magnitude` argument into the array the images use.

    Args:
        magnitude: None (the ImageNet magnitude, for 3 or 1 channels) or an array
            (channels, height, width // 2 + 1), e.g. from `compute_magnitude`.
        image_size: (height, width) of the images.
        channels: C.
        name: the parameter's name in error messages.
        num_images: N, when one magnitude per image is allowed (see `check_magnitude`).

    Returns:
        float32 array (channels, height, width // 2 + 1), or (N, channels, ...) per image.
    """
    if magnitude is None:
        if channels not in (1, 3):
            raise ValueError(
                f"expected a `{name}` for {channels}-channel images (the default ImageNet magnitude has 3 or 1 "
                f"channels; measure one with `maco_keras.compute_magnitude`), received: {name}=None")
        return imagenet_magnitude(image_size, channels)
    return check_magnitude(magnitude, image_size, channels, name=name, num_images=num_images)


def _batches(images, batch_size):
    """Yields float32 batches (B, H, W, C) from an array, a tensor or a tf.data.Dataset."""
    if isinstance(images, tf.data.Dataset):
        for element in images:
            if isinstance(element, (tuple, list)):  # (images, labels) datasets
                element = element[0]
            if isinstance(element, dict):
                raise TypeError("`images` dataset elements must be image tensors or (images, labels) tuples.")
            element = tf.convert_to_tensor(element)
            yield element[None] if element.shape.rank == 3 else element
        return
    if isinstance(images, (str, bytes, os.PathLike)) or not hasattr(images, "shape"):
        images = np.asarray(images)
    if len(images.shape) == 3:
        images = images[None]
    for start in range(0, images.shape[0], batch_size):
        yield tf.convert_to_tensor(images[start:start + batch_size])


def compute_magnitude(images, image_size=None, values_range=(0.0, 1.0), batch_size=32):
    """Measures the average magnitude spectrum of natural images, streamed in batches.

    The convention is the one `MacoImage` uses to generate images: pixels are rescaled
    from `values_range` to [0, 1], mapped to the decorrelated colour space (3 channels;
    grayscale and other channel counts are used as they are), and the magnitude is the
    mean over images of `|rfft2d|` per channel. Xplique's own dataset path skips the
    decorrelation that its parameterization then applies; this function does not.

    Args:
        images: array or tensor (N, H, W, C) or (H, W, C), or a `tf.data.Dataset` of
            images, image batches or (images, labels) pairs.
        image_size: int or (height, width) to resize every image to; required when the
            images differ in size. Default: the size of the images.
        values_range: (low, high) range of the pixel values, e.g. (0, 255).
        batch_size: images per FFT batch for arrays (datasets keep their own batching).

    Returns:
        float32 array (C, height, width // 2 + 1).

    Example:
        >>> magnitude = compute_magnitude(dataset.map(lambda x, y: x), image_size=512,
        ...                               values_range=(0, 255))
        >>> save_magnitude("my_magnitude.npy", magnitude)
    """
    low, high = validation.values_range(values_range)
    batch_size = validation.positive_int("batch_size", batch_size)
    size = None if image_size is None else validation.image_size("image_size", image_size)
    if not isinstance(images, tf.data.Dataset) and not hasattr(images, "shape"):
        images = np.asarray(images)
    if hasattr(images, "shape") and len(images.shape) not in (3, 4):
        raise ValueError(f"`images` must have shape (N, H, W, C) or (H, W, C), got {tuple(images.shape)}.")

    total, count, channels = None, 0, None
    for batch in _batches(images, batch_size):
        if batch.shape.rank != 4:
            raise ValueError(f"`images` must hold (H, W, C) images, got a batch of shape {tuple(batch.shape)}.")
        batch = (tf.cast(batch, tf.float32) - low) / (high - low)
        if size is None:
            size = tuple(batch.shape[1:3])
        elif tuple(batch.shape[1:3]) != size:
            if image_size is None:
                raise ValueError(
                    f"`images` differ in size ({size} and {tuple(batch.shape[1:3])}): pass `image_size`."
                )
            batch = tf.image.resize(batch, size, antialias=True)
        if channels is None:
            channels = batch.shape[-1]
        elif batch.shape[-1] != channels:
            raise ValueError(f"`images` mix {channels} and {batch.shape[-1]} channels.")
        spectra = tf.abs(tf.signal.rfft2d(tf.transpose(color.decorrelate(batch), (0, 3, 1, 2))))
        batch_total = tf.reduce_sum(spectra, axis=0).numpy().astype(np.float64)
        total = batch_total if total is None else total + batch_total
        count += int(batch.shape[0])
    if count == 0:
        raise ValueError("`images` is empty: a magnitude needs at least one image.")
    return (total / count).astype(np.float32)


def save_magnitude(path, magnitude):
    """Saves a magnitude spectrum as a `.npy` file."""
    magnitude = np.asarray(magnitude, np.float32)
    if magnitude.ndim != 3:
        raise ValueError(f"`magnitude` must have shape (channels, height, width // 2 + 1), got {magnitude.shape}.")
    np.save(path, magnitude)


def load_magnitude(path):
    """Loads a magnitude spectrum saved by `save_magnitude`.

    Returns:
        float32 array (channels, height, width // 2 + 1).
    """
    magnitude = np.load(path)
    if magnitude.ndim != 3 or not np.all(np.isfinite(magnitude)) or np.any(magnitude < 0):
        raise ValueError(
            f"{path} does not hold a magnitude: expected a finite, non-negative array of rank 3, "
            f"got shape {magnitude.shape}."
        )
    return magnitude.astype(np.float32)
