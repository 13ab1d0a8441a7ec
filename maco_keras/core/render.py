"""A phase, with its fixed magnitude, to a picture: `x = sigmoid(recorrelate(contrast * standardize(F^-1(r e^{i phi}))))`.

With `pixel_statistics` (`core.tone`) each channel gets its own tone after the recorrelation
instead of `contrast`: `x_c = sigmoid(b_c + a_c * standardize(channel c))`.

One unit's picture at a time: its pixels and their gradient are then the same computation
whatever batch the unit is in, on every backend.
"""

import math

import numpy as np
from keras import ops

# The ImageNet colour correlation (Lucid's, as Xplique's `recorrelate_colors` has it: rgb =
# decorrelated @ COLOR_CORRELATION). `tests/test_backends.py` checks it against Xplique's on TensorFlow.
COLOR_CORRELATION = np.array([
    [0.56282854, 0.58447580, 0.58447580],
    [0.19482528, 0.00000000, -0.19482528],
    [0.04329450, -0.10823626, 0.06494176],
], np.float32)


def spectrum_shape(image_size):
    """The rfft2 shape `(height, width // 2 + 1)` of pictures of size `(height, width)`."""
    height, width = image_size
    return height, width // 2 + 1


def frequency_radius(image_size):
    """Each rfft2 frequency's distance to 0, (height, width // 2 + 1), 1 at the corner (Nyquist, Nyquist)."""
    height, width = image_size
    fy = np.abs(np.fft.fftfreq(height))[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    return (np.sqrt(fy ** 2 + fx ** 2) / np.sqrt(0.5)).astype(np.float32)


def irfft2(real, imag, image_size):
    """The inverse of a 2-D real FFT over the last two axes, from `keras.ops`' 1-D transforms.

    The inverse along the rows is `conj(fft(conj(z))) / height` (keras.ops has no 1-D inverse
    complex FFT), then `irfft` along the columns.

    Args:
        real, imag: float32 tensors (..., height, width // 2 + 1).
        image_size: (height, width).

    Returns:
        float32 tensor (..., height, width).
    """
    height, width = image_size
    real, imag = ops.swapaxes(real, -1, -2), ops.swapaxes(imag, -1, -2)
    real, imag = ops.fft((real, ops.negative(imag)))
    scale = np.float32(1.0 / height)
    real = ops.multiply(ops.swapaxes(real, -1, -2), scale)
    imag = ops.multiply(ops.swapaxes(imag, -1, -2), -scale)
    return ops.irfft((real, imag), fft_length=width)


def render(phase, magnitude, image_size, contrast, values_range, tone=None):
    """One picture from its phase.

    Args:
        phase: float32 tensor (C, H, W // 2 + 1), angles; or (C, H, W // 2 + 1, 2), each
            frequency's phase a complex number (real, imaginary) of any length
            (`phase_as="complex"`: it is normalized to length 1 here).
        magnitude: float32 tensor (C, H, W // 2 + 1).
        image_size: (H, W).
        contrast: the standardized picture's standard deviation in the decorrelated space.
        values_range: (low, high) of the pixels.
        tone: None, or (offset, scale) float32 arrays (C,) from `core.tone.tone` (`pixel_statistics`):
            each channel (after the recorrelation, for 3) is then standardized on its own and
            rendered as `sigmoid(offset + scale * channel)`, in place of `contrast`.

    Returns:
        float32 tensor (H, W, C) in `values_range`.
    """
    channels = phase.shape[0]
    if len(phase.shape) == 4:
        # TensorFlow's MacoImage's arithmetic: magnitude / sqrt(re^2 + im^2 + 1e-12) times each part.
        real, imaginary = phase[..., 0], phase[..., 1]
        scale = ops.multiply(magnitude, ops.rsqrt(ops.add(ops.add(ops.square(real), ops.square(imaginary)),
                                                          np.float32(1e-12))))
        spatial = irfft2(ops.multiply(scale, real), ops.multiply(scale, imaginary), image_size)
    else:
        spatial = irfft2(ops.multiply(magnitude, ops.cos(phase)), ops.multiply(magnitude, ops.sin(phase)),
                         image_size)
    image = ops.transpose(spatial, (1, 2, 0))
    mean = ops.mean(image)
    variance = ops.mean(ops.square(ops.subtract(image, mean)))
    image = ops.multiply(ops.subtract(image, mean), ops.multiply(np.float32(contrast if tone is None else 1.0),
                                                                 ops.rsqrt(variance + 1e-10)))
    if channels == 3:
        image = ops.matmul(image, COLOR_CORRELATION)
    if tone is not None:
        # Each channel standardized on its own, then given the logit offset and scale under which its pixels
        # take the target mean and spread through the sigmoid (`core.tone`; TensorFlow's MacoImage does the same).
        offset, scale = tone
        mean = ops.mean(image, axis=(0, 1), keepdims=True)
        centred = ops.subtract(image, mean)
        variance = ops.mean(ops.square(centred), axis=(0, 1), keepdims=True)
        image = ops.add(np.asarray(offset, np.float32),
                        ops.multiply(ops.multiply(np.asarray(scale, np.float32), centred), ops.rsqrt(variance + 1e-10)))
    low, high = values_range
    return ops.add(np.float32(low), ops.multiply(np.float32(high - low), ops.sigmoid(image)))


# Its inverse, in float64 for the NumPy measurements below (rgb @ this = decorrelated).
_COLOR_DECORRELATION = np.linalg.inv(COLOR_CORRELATION.astype(np.float64))


def _decorrelated_spectra(images):
    """rfft2 of (N, H, W, C) images taken to the decorrelated colour space (3 channels): complex (N, C, H, W // 2 + 1)."""
    if images.shape[-1] == 3:
        images = images @ _COLOR_DECORRELATION
    return np.fft.rfft2(np.transpose(images, (0, 3, 1, 2)))


def image_spectrum(images, values_range):
    """The Fourier magnitude and phase of images in the space `render` draws from (NumPy, any backend).

    Undoes the sigmoid and the colour correlation, then takes the spectrum: a run started
    from the phase draws the images' structure (feature accentuation), and with the
    magnitude too, their colours and contrast.

    Args:
        images: array (N, H, W, C) in `values_range`.
        values_range: (low, high) of the images.

    Returns:
        (magnitude, phase): float32 arrays (N, C, H, W // 2 + 1).
    """
    low, high = values_range
    images = np.clip((np.asarray(images, np.float64) - low) / (high - low), 1e-3, 1 - 1e-3)
    spectra = _decorrelated_spectra(np.log(images) - np.log1p(-images))
    return np.abs(spectra).astype(np.float32), np.angle(spectra).astype(np.float32)


def mean_magnitude(images, values_range):
    """The mean magnitude spectrum of same-size images, as `render` takes it (NumPy, any backend).

    `spectrum.compute_magnitude`'s convention (pixels to [0, 1], the decorrelated colour
    space, the mean over images of |rfft2| per channel), for arrays: e.g. a unit's dataset
    examples (`examples.example_magnitudes`) on JAX and PyTorch.

    Args:
        images: array (N, H, W, C) in `values_range`, N >= 1.
        values_range: (low, high) of the images.

    Returns:
        float32 array (C, H, W // 2 + 1).
    """
    low, high = values_range
    images = (np.asarray(images, np.float64) - low) / (high - low)
    if images.ndim != 4 or not len(images):
        raise ValueError(f"expected images (N, H, W, C) with N >= 1, received: images.shape={images.shape}")
    return np.abs(_decorrelated_spectra(images)).mean(axis=0).astype(np.float32)


def initial_phase(bits_uniform):
    """Angles in [-pi, pi) from uniforms in [0, 1)."""
    return ops.subtract(ops.multiply(bits_uniform, np.float32(2.0 * math.pi)), np.float32(math.pi))


def phase_as(angles, form):
    """Angles (..., C, H, W // 2 + 1) as `form` holds them: "angle" (themselves) or "complex" (their cosine and sine
    on a last axis of 2)."""
    if form == "complex":
        return ops.stack([ops.cos(angles), ops.sin(angles)], axis=-1)
    return angles
