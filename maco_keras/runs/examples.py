"""Dataset examples: the natural images that most activate each unit (OpenAI Microscope's), at any scale.

One streaming pass over a folder (recursive: ImageNet's one subfolder per class works):
- each image is resized keeping its aspect ratio and centre-cropped to the model input;
- a file that cannot be read is skipped and counted, never the end of the pass;
- each unit keeps its `top` best images as the pass goes (a running top-k), so memory
  is bounded by the batch and the units, whatever the number of images;
- a progress bar counts the images.

A unit's activation is its own value as its objective defines it
(`objectives.unit_values`). For a channel of a spatial or token layer the position of its
peak is kept too, and `patch_box` turns it into the patch of the image around it.
"""

import dataclasses
import pathlib
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from .. import objectives, taps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class NoImagesError(ValueError):
    """The folder holds no image that can be read."""


def image_paths(folder, parameter="--examples"):
    """Every image file under `folder`, at any depth, sorted by path.

    Raises:
        NoImagesError: not a folder, or no file with an image suffix in it.
    """
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise NoImagesError(f"expected a folder of images, received: {parameter}={folder}")
    paths = sorted(path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    if not paths:
        raise NoImagesError(f"expected a folder with images ({', '.join(IMAGE_SUFFIXES)}, in subfolders too), "
                            f"received: {parameter}={folder}, which has none")
    return paths


def load_image(path, height, width):
    """RGB uint8 (height, width, 3): resized keeping the aspect ratio, so that it covers the size, then centre-cropped.

    Raises:
        OSError (or ValueError): the file cannot be read as an image.
    """
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = max(height / image.height, width / image.width)
        size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
        image = image.resize(size, Image.BILINEAR)
        left, top = (size[0] - width) // 2, (size[1] - height) // 2
        return np.asarray(image.crop((left, top, left + width, top + height)), np.uint8)


def peak_cells(output, kind, units, token=None):
    """For each image and unit, the grid cell (row, column) where a channel peaks, and the grid size.

    Returns:
        (rows, columns, grid) with rows and columns int arrays (batch, units), or None when the
        layer has no positions (a vector layer, or a neuron).
    """
    output = np.asarray(output, np.float32)
    if kind != "channel" or output.ndim == objectives.VECTOR_RANK:
        return None
    if output.ndim == objectives.TOKEN_RANK:
        patches = output[:, objectives.count_prefix_tokens(output.shape[1]):]
        side = int(round(np.sqrt(patches.shape[1])))
        grid = (side, patches.shape[1] // max(side, 1))
        flat = patches[..., units].argmax(axis=1)
    else:
        grid = output.shape[1:3]
        flat = output[..., units].reshape(len(output), -1, len(units)).argmax(axis=1)
    return flat // grid[1], flat % grid[1], grid


def patch_box(row, column, grid, fraction=None):
    """The patch around a grid cell, as (top, left, bottom, right) fractions of the image.

    A square of side `fraction` of the image (default: 3 cells of the grid, and at least a
    quarter of the image), centred on the cell and moved inside the image.
    """
    side = fraction if fraction is not None else max(0.25, 3.0 / min(grid))
    side = min(side, 1.0)
    centre = ((row + 0.5) / grid[0], (column + 0.5) / grid[1])
    top, left = (min(max(c - side / 2, 0.0), 1.0 - side) for c in centre)
    return top, left, top + side, left + side


@dataclasses.dataclass
class Examples:
    """What a pass found.

    Attributes:
        paths: the image files, in pass order (an image's index is its place here).
        top: {unit: [(image index, activation, patch box or None), ...]}, best first.
        skipped: the files that could not be read.
        images: how many images were read.
    """

    paths: List[pathlib.Path]
    top: Dict[int, List[Tuple[int, float, Optional[Tuple[float, float, float, float]]]]]
    skipped: List[pathlib.Path]
    images: int


class RunningTop:
    """The `k` largest values per column seen so far, with their row indices (earlier rows first on ties).

    Memory: (k + batch) x columns, whatever the number of rows.
    """

    def __init__(self, k, columns):
        self.k = k
        self.values = np.full((0, columns), -np.inf, np.float32)
        self.rows = np.zeros((0, columns), np.int64)
        self.extra = np.zeros((0, columns, 2), np.int64)

    def add(self, values, rows, extra=None):
        """Merges a batch: `values` (batch, columns), `rows` (batch,) their indices, `extra` (batch, columns, 2)."""
        values = np.asarray(values, np.float32)
        extra = np.zeros(values.shape + (2,), np.int64) if extra is None else extra
        merged = np.concatenate([self.values, values])
        merged_rows = np.concatenate([self.rows, np.broadcast_to(np.asarray(rows)[:, None], values.shape)])
        merged_extra = np.concatenate([self.extra, extra])
        # Kept entries come from earlier rows than the batch: a stable sort keeps them first on ties.
        order = np.argsort(-merged, axis=0, kind="stable")[:self.k]
        self.values = np.take_along_axis(merged, order, axis=0)
        self.rows = np.take_along_axis(merged_rows, order, axis=0)
        self.extra = np.take_along_axis(merged_extra, order[..., None], axis=0)


def dataset_examples(model, layer, kind, folder, values_range, units, top=6, batch_size=32, token=None,
                     verbose=True, patch_fraction=None):
    """The natural images of `folder` (recursive) that most activate each unit, in one streaming pass.

    Args:
        model: Keras model; layer: a name or path (None, or kind "logit": the output).
        kind: "channel", "neuron" or "logit" (see `objectives.unit_values`).
        folder: a folder of images, at any depth.
        values_range: the model's input range; images are mapped to it from [0, 255].
        units: the units ranked.
        top: images kept per unit (default 6).
        batch_size: images per forward pass (default 32).
        token: the token of a token layer's neurons.
        verbose: a progress bar over the images.
        patch_fraction: the side of a channel's patch, as a fraction of the image (default:
            see `patch_box`).

    Returns:
        `Examples`.

    Raises:
        NoImagesError: the folder has no image, or none could be read.
    """
    import keras

    paths = image_paths(folder)
    height, width = model.input_shape[1:3]
    features = taps.output_function(objectives.layer_tap(model, None if kind == "logit" else layer))
    low, high = values_range
    units = list(units)
    running = RunningTop(top, len(units))
    skipped, grid, read = [], None, 0
    progress = keras.utils.Progbar(len(paths), unit_name="image") if verbose else None
    for start in range(0, len(paths), batch_size):
        batch, rows = [], []
        for index in range(start, min(start + batch_size, len(paths))):
            try:
                batch.append(load_image(paths[index], height, width))
                rows.append(index)
            except (OSError, ValueError, Image.DecompressionBombError):
                skipped.append(paths[index])  # unreadable or damaged: counted, not fatal
        if batch:
            images = low + (high - low) * np.stack(batch).astype(np.float32) / 255.0
            output = keras.ops.convert_to_numpy(features(keras.ops.convert_to_tensor(images)))
            peaks = peak_cells(output, kind, units, token)
            extra = None
            if peaks is not None:
                grid = peaks[2]
                extra = np.stack([peaks[0], peaks[1]], axis=-1)
            running.add(objectives.unit_values(output, kind, token)[:, units], np.asarray(rows), extra)
            read += len(batch)
        if progress is not None:
            progress.update(min(start + batch_size, len(paths)))  # skipped files: counted in the result
    if not read:
        raise NoImagesError(f"expected readable images, received: --examples={folder}, where none of the "
                            f"{len(paths)} image files could be read")
    ranked = {}
    for column, unit in enumerate(units):
        entries = []
        for rank in range(min(top, read)):
            box = None if grid is None else patch_box(*running.extra[rank, column], grid, patch_fraction)
            entries.append((int(running.rows[rank, column]), float(running.values[rank, column]), box))
        ranked[unit] = entries
    return Examples(paths, ranked, skipped, read)


def example_images(examples, unit, size, values_range=(0.0, 255.0)):
    """A unit's dataset examples as one array, best first: e.g. VITAL's reference images
    (`objectives.feature_distribution`).

    Args:
        examples: `Examples` from `dataset_examples`.
        unit: one of its units.
        size: int or (height, width) the images are resized and centre-cropped to.
        values_range: the range of the returned pixels (default (0, 255)).

    Returns:
        float32 array (k, height, width, 3).
    """
    if unit not in examples.top:
        raise ValueError(f"expected one of the ranked units {sorted(examples.top)}, received: unit={unit!r}")
    height, width = (size, size) if np.ndim(size) == 0 else size
    low, high = values_range
    images = [load_image(examples.paths[index], height, width) for index, _, _ in examples.top[unit]]
    return low + (high - low) * np.stack(images).astype(np.float32) / 255.0


def example_magnitudes(examples, units, image_size=512):
    """One magnitude per unit, the mean of its dataset examples' (`spectrum.compute_magnitude`).

    `maco(..., magnitude=example_magnitudes(examples, units))` draws each unit with the
    second-order statistics of its own examples instead of ImageNet's: MACO still optimizes
    the phase only, but the prior is now a few images (README, *Quality*).

    Returns:
        float32 array (len(units), 3, height, width // 2 + 1).
    """
    import keras

    size = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
    if keras.backend.backend() != "tensorflow":
        from ..core import render  # NumPy's FFT, the same convention

        return np.stack([render.mean_magnitude(example_images(examples, unit, size, (0.0, 1.0)), (0.0, 1.0))
                         for unit in units])
    from .. import spectrum  # TensorFlow's FFT (its pictures stay the same)

    return np.stack([spectrum.compute_magnitude(example_images(examples, unit, size, (0.0, 1.0)))
                     for unit in units])
