"""Colour decorrelation shared by the parameterizations and the magnitude spectra.

MACO, like Lucid's Fourier parameterization, works in a decorrelated colour space:
the optimized channels are mapped to RGB by the ImageNet colour-correlation matrix.
The matrix is read from Xplique's own `recorrelate_colors`, so that our images and
Xplique's agree exactly; its inverse maps natural RGB images into the space in which
magnitudes are measured (`spectrum.compute_magnitude`).
"""

import numpy as np
import tensorflow as tf
from xplique.features_visualizations.preconditioning import recorrelate_colors

# Rows of the identity go through Xplique's recorrelation, which yields its matrix M
# such that rgb = decorrelated @ M.
COLOR_CORRELATION = recorrelate_colors(tf.eye(3)).numpy().astype(np.float32)
COLOR_DECORRELATION = np.linalg.inv(COLOR_CORRELATION).astype(np.float32)


def recorrelate(images):
    """Maps images from the decorrelated colour space to RGB.

    Args:
        images: tensor (..., C). Only 3-channel tensors are transformed; other channel
            counts (grayscale, multispectral) have no known correlation and pass unchanged.

    Returns:
        A tensor of the same shape.
    """
    if images.shape[-1] != 3:
        return images
    return tf.tensordot(images, tf.constant(COLOR_CORRELATION, images.dtype), axes=1)


def decorrelate(images):
    """Maps RGB images to the decorrelated colour space (inverse of `recorrelate`).

    Args:
        images: tensor or array (..., C); only C == 3 is transformed.

    Returns:
        A float32 tensor of the same shape.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape[-1] != 3:
        return images
    return tf.tensordot(images, tf.constant(COLOR_DECORRELATION), axes=1)


IMAGENET_PIXEL_STATISTICS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""ImageNet's per-channel RGB pixel mean and standard deviation, in [0, 1] (the usual normalization constants)."""


def check_pixel_statistics(mean, std):
    """(mean, std) as float64 arrays (C,), or a ValueError when no sigmoid of a Gaussian has them.

    The cheap half of `fit_pixel_statistics`: validation at the boundary without the fit.
    """
    mean, std = np.atleast_1d(np.asarray(mean, np.float64)), np.atleast_1d(np.asarray(std, np.float64))
    if mean.shape != std.shape or mean.ndim != 1:
        raise ValueError(f"expected a mean and a std of one value per channel, received: mean={mean.tolist()}, "
                         f"std={std.tolist()}")
    # A pixel in (0, 1) with mean m has variance below m (1 - m): Bernoulli's, the sigmoid's limit.
    if np.any(mean <= 0) or np.any(mean >= 1) or np.any(std <= 0) or np.any(std ** 2 >= mean * (1 - mean)):
        raise ValueError(f"expected means in (0, 1) and standard deviations in (0, sqrt(mean * (1 - mean))), "
                         f"received: mean={mean.tolist()}, std={std.tolist()}")
    return mean, std


def fit_pixel_statistics(mean, std):
    """The Gaussian logits whose sigmoid has, per channel, the given pixel mean and standard deviation.

    A picture rendered as `sigmoid(b + a * z)`, z a standardized Gaussian field, has pixels
    whose mean and spread depend on (a, b) through the sigmoid's curve; this inverts that
    map per channel, by Gauss-Hermite quadrature and a root finder.

    Args:
        mean: per-channel pixel means in (0, 1), e.g. `IMAGENET_PIXEL_STATISTICS[0]`.
        std: per-channel pixel standard deviations, each in (0, sqrt(mean * (1 - mean))).

    Returns:
        (offset, scale): float32 arrays (C,), b and a above.

    Example:
        >>> offset, scale = fit_pixel_statistics(*IMAGENET_PIXEL_STATISTICS)
    """
    from scipy import optimize

    mean, std = check_pixel_statistics(mean, std)
    nodes, weights = np.polynomial.hermite_e.hermegauss(64)
    weights = weights / weights.sum()

    def moments(offset, log_scale):
        pixels = 1.0 / (1.0 + np.exp(-(offset + np.exp(log_scale) * nodes)))
        first = weights @ pixels
        return first, np.sqrt(max(weights @ pixels ** 2 - first ** 2, 1e-12))

    offsets, scales = [], []
    for m, s in zip(mean, std):
        start = (np.log(m / (1 - m)), np.log(s / (m * (1 - m))))
        solution = optimize.fsolve(lambda p: np.subtract(moments(*p), (m, s)), start, xtol=1e-10)
        offsets.append(solution[0])
        scales.append(np.exp(solution[1]))
    return np.asarray(offsets, np.float32), np.asarray(scales, np.float32)
