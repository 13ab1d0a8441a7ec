"""The average ImageNet magnitude spectrum, and resampling a magnitude to another picture size.

A magnitude is a float32 array of shape `(channels, height, width // 2 + 1)`: the rfft2
layout of pictures of size `(height, width)`, one spectrum per channel, measured in the
decorrelated colour space. Neutral: NumPy and SciPy only, read on every backend.
"""

import functools
import importlib.util
import pathlib

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from .. import validation



def imagenet_spectrum_path():
    """Where the installed Xplique keeps `spectrum_decorrelated.npy`, found without importing Xplique (which
    imports TensorFlow): the same file as `xplique.features_visualizations.preconditioning.IMAGENET_SPECTRUM_PATH`."""
    spec = importlib.util.find_spec("xplique")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("expected xplique installed (it ships the ImageNet magnitude), received: no xplique; "
                                  "pass a `magnitude` (see `compute_magnitude`) or `pip install xplique`")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "features_visualizations" / "spectrum_decorrelated.npy"


@functools.lru_cache(maxsize=1)
def _imagenet_magnitude_512():
    magnitude = np.load(imagenet_spectrum_path()).astype(np.float32)
    magnitude.setflags(write=False)
    return magnitude


def imagenet_magnitude(image_size=(512, 512), channels=3):
    """The average magnitude spectrum of ImageNet images, resized to `image_size`.

    Provenance: the array `spectrum_decorrelated.npy` that the MACO authors ship with
    Xplique (`xplique.features_visualizations.preconditioning.IMAGENET_SPECTRUM_PATH`,
    MIT licence): the mean of `|rfft2d|` over ImageNet images at 512x512 in the
    decorrelated colour space, shape (3, 512, 257). It is read from the installed
    Xplique package, so it is available offline. A measured property worth knowing:
    it holds almost no energy above ~0.4 cycles/pixel (its images were upsampled),
    which keeps MACO images free of pixel-level noise.

    Args:
        image_size: int or (height, width) of the images to generate.
        channels: 3 (decorrelated RGB) or 1 (grayscale: the first decorrelated channel,
            which is the luminance axis of the ImageNet colour PCA).

    Returns:
        float32 array (channels, height, width // 2 + 1).

    Example:
        >>> imagenet_magnitude(224).shape
        (3, 224, 113)
    """
    size = validation.image_size("image_size", image_size)
    channels = validation.positive_int("channels", channels)
    if channels not in (1, 3):
        raise ValueError(
            f"`channels` must be 3 (RGB) or 1 (grayscale) for the ImageNet magnitude, got {channels}; "
            "for other channel counts measure one with `compute_magnitude`."
        )
    magnitude = _imagenet_magnitude_512()[:channels]
    return resize_magnitude(magnitude, size, source_width=512)


def resize_magnitude(magnitude, image_size, source_width=None):
    """Resamples a magnitude spectrum to images of another size.

    The spectrum is treated as a function of frequency in cycles per pixel and
    interpolated (log-linearly: natural spectra are power laws) at the frequencies of
    the target grid, then scaled so that the images keep the same per-pixel mean and
    variance whatever their size. Resizing the raw rfft2d array as if it were an image, as Xplique
    does, mixes the positive and negative vertical frequencies stored at its two ends.

    Args:
        magnitude: array (channels, height, width // 2 + 1).
        image_size: int or (height, width) of the target images.
        source_width: width of the images the magnitude was measured on; by default the
            even width `2 * (magnitude.shape[-1] - 1)`.

    Returns:
        float32 array (channels, target_height, target_width // 2 + 1).
    """
    magnitude = np.asarray(magnitude, np.float32)
    if magnitude.ndim != 3:
        raise ValueError(f"`magnitude` must have shape (channels, height, width // 2 + 1), got {magnitude.shape}.")
    height, width = validation.image_size("image_size", image_size)
    src_height, src_half = magnitude.shape[1:]
    src_width = 2 * (src_half - 1) if source_width is None else int(source_width)
    if src_width // 2 + 1 != src_half:
        raise ValueError(f"`source_width`={source_width} does not match the spectrum width {src_half}.")
    if (src_height, src_width) == (height, width):
        return magnitude.copy()

    src_fy = np.fft.fftshift(np.fft.fftfreq(src_height))
    src_fx = np.fft.rfftfreq(src_width)
    # The floor only keeps log() finite on empty bins; it is far below any real value.
    log_magnitude = np.log(np.maximum(np.fft.fftshift(magnitude, axes=1), 1e-12 * magnitude.max() + 1e-30))

    fy = np.clip(np.fft.fftfreq(height), src_fy[0], src_fy[-1])
    fx = np.clip(np.fft.rfftfreq(width), src_fx[0], src_fx[-1])
    grid = np.stack(np.meshgrid(fy, fx, indexing="ij"), axis=-1)
    resized = np.exp(np.stack([
        RegularGridInterpolator((src_fy, src_fx), channel, method="linear")(grid)
        for channel in log_magnitude
    ]))
    # Keep per-pixel statistics: the DC bin sums the pixels (it grows with their number),
    # the other bins of a stationary signal grow with its square root.
    pixel_ratio = (height * width) / (src_height * src_width)
    resized *= np.sqrt(pixel_ratio)
    resized[:, 0, 0] = magnitude[:, 0, 0] * pixel_ratio
    return resized.astype(np.float32)


