"""Plotting and saving visualizations, with Xplique's conventions (`xplique.plots.plot_maco`).

On TensorFlow a picture with its transparency is drawn by Xplique's `plot_maco`; on JAX and
PyTorch by `plot_with_transparency`, the same arithmetic without Xplique, which imports
TensorFlow (and on a GPU, TensorFlow takes its memory from the backend that runs).
"""

import math
import pathlib
import re

import keras
import matplotlib.pyplot as plt
import numpy as np

from .. import validation
from ..runs.results import png_bytes, to_display, transparency_alpha, write_atomic  # noqa: F401 (this module's API)


def apply_transparency(images, transparency, values_range=(-1.0, 1.0), percentile=80):
    """Composites images over mid-grey with their transparency as alpha (in `values_range`)."""
    low, high = validation.values_range(values_range)
    alpha = transparency_alpha(transparency, percentile)
    return alpha * np.asarray(images, np.float32) + (1.0 - alpha) * (low + high) / 2.0


def plot_with_transparency(image, transparency, percentile_alpha=80):
    """Xplique's `plot_maco` without Xplique: the picture (its 1st to 99th percentile) times its alpha, stretched to
    [0, 1], drawn with that alpha (`transparency_alpha`: the channel mean, ceiled at `percentile_alpha`)."""
    image = np.asarray(image, np.float32)
    image = np.clip(image, np.percentile(image, 1.0), np.percentile(image, 99.0))
    alpha = transparency_alpha(np.asarray(transparency, np.float32)[None], percentile_alpha)[0]
    image = image * alpha
    image = image - image.min()
    image = image / image.max()
    plt.imshow(np.concatenate([image, alpha], -1))
    plt.axis("off")


def plot_visualizations(images, transparency=None, names=None, values_range=(-1.0, 1.0), cols=4, img_size=3.0,
                        percentile_alpha=80):
    """A grid of N visualizations; with `transparency`, each is drawn by Xplique's `plot_maco`.

    Args:
        images: array (N, H, W, C) in `values_range`.
        transparency: optional array (N, H, W, C) (mean |dL/dx|) used as alpha.
        names: optional N titles.
        values_range: range of `images`.
        cols: grid columns.
        img_size: inches per image.
        percentile_alpha: alpha ceiling percentile (higher: only the most attended parts).

    Returns:
        The matplotlib figure.
    """
    images = to_display(images, values_range)
    count = images.shape[0]
    cols = min(validation.positive_int("cols", cols), count)
    rows = math.ceil(count / cols)
    figure = plt.figure(figsize=(cols * img_size, rows * img_size))
    if transparency is not None and keras.backend.backend() == "tensorflow":
        from xplique.plots import plot_maco as plot_with_alpha
    else:
        plot_with_alpha = plot_with_transparency
    for index in range(count):
        plt.subplot(rows, cols, index + 1)
        if transparency is not None:
            alpha = np.asarray(transparency[index])
            plot_with_alpha(images[index], alpha if alpha.shape[-1] == 3 else np.repeat(alpha, 3, -1),
                            percentile_alpha=percentile_alpha)
        else:
            plt.imshow(images[index])
            plt.axis("off")
        if names is not None:
            plt.title(str(names[index]), fontsize=8)
    plt.tight_layout()
    return figure


def file_name(name):
    """A file-system-safe version of an objective name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "objective"


def save_images(directory, images, names, values_range=(-1.0, 1.0)):
    """Saves each image as `<directory>/<name>.png`; returns the paths."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for image, name in zip(to_display(images, values_range), names):
        path = directory / f"{file_name(name)}.png"
        write_atomic(path, png_bytes(image))
        paths.append(path)
    return paths
