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

# The tone's fit is backend-neutral (`core.tone`); these names stay here too.
from .core.tone import IMAGENET_PIXEL_STATISTICS, check_pixel_statistics, fit_pixel_statistics  # noqa: F401

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


