"""Plotting and saving visualizations, with Xplique's conventions (`xplique.plots.plot_maco`)."""

import math
import pathlib
import re

import matplotlib.pyplot as plt
import numpy as np
from xplique.plots import plot_maco

from .. import validation
from ..runs.results import png_bytes, to_display, transparency_alpha, write_atomic  # noqa: F401 (this module's API)


def apply_transparency(images, transparency, values_range=(-1.0, 1.0), percentile=80):
    """Composites images over mid-grey with their transparency as alpha (in `values_range`)."""
    low, high = validation.values_range(values_range)
    alpha = transparency_alpha(transparency, percentile)
    return alpha * np.asarray(images, np.float32) + (1.0 - alpha) * (low + high) / 2.0


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
    for index in range(count):
        plt.subplot(rows, cols, index + 1)
        if transparency is not None:
            alpha = np.asarray(transparency[index])
            plot_maco(images[index], alpha if alpha.shape[-1] == 3 else np.repeat(alpha, 3, -1),
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
