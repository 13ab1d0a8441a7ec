"""A step's random crops and noise for one unit, and their cut as two small matrix products.

Boxes are squares in normalized coordinates [y1, x1, y2, x2], of side ~ N(scale, std)
(clipped to [0.05, 1]; the square root of it when the scale is of the area), placed
uniformly inside the picture (MACO: every region is visited). Each is resized to the
model input bilinearly with `tf.image.crop_and_resize`'s sampling (taps at
`y1 * (H - 1) + i * (y2 - y1) * (H - 1) / (h - 1)`).

The cut is written as `crop = Wy @ image @ Wx^T`, Wy and Wx each sampling matrix's row the
bilinear "tent" `max(0, 1 - |tap - pixel|)`. That is the same arithmetic on every backend,
its gradient is two more matrix products (deterministic, with no scatter whose atomics
race on a GPU), and accelerators run it at matmul speed.
"""

import numpy as np
from keras import ops

from . import draws

SIDE_RANGE = (0.05, 1.0)
TAP_SLACK = 1e-3


def sides(seed, key, step, num_crops, scale, std, scale_of="side", side_range=SIDE_RANGE):
    """float32 tensor (K, 1): the sides of one unit's K square crops at one step, as fractions of the picture's.

    Args:
        seed, key, step: int32 scalars (the run's seed, the unit's key, the step).
        num_crops: K.
        scale: float32 scalar, this step's mean crop scale.
        std: the scale's standard deviation.
        scale_of: "side" or "area" (the side is then the square root of the drawn scale).
        side_range: (min, max) the drawn scale is clipped to.
    """
    normal = draws.normal(draws.stream_key(seed, key, step, draws.SIDES), (num_crops,))
    drawn = ops.clip(ops.add(scale, ops.multiply(np.float32(std), normal)), *side_range)
    if scale_of == "area":
        drawn = ops.sqrt(drawn)
    return ops.expand_dims(drawn, 1)


def boxes(seed, key, step, num_crops, scale, config, side_range=SIDE_RANGE):
    """float32 tensor (K, 4): one unit's boxes at one step, each placed uniformly inside the picture.

    Args:
        seed, key, step: int32 scalars (the run's seed, the unit's key, the step).
        num_crops: K.
        scale: float32 scalar, this step's mean crop scale.
        config: the `MacoConfig` (its crop_scale_std and crop_scale_of), or anything with those two.
        side_range: (min, max) the drawn scale is clipped to.
    """
    side = sides(seed, key, step, num_crops, scale, config.crop_scale_std, config.crop_scale_of, side_range)
    corners = ops.multiply(draws.uniform(draws.stream_key(seed, key, step, draws.CORNERS), (num_crops, 2)),
                           ops.subtract(1.0, side))
    # The side repeated to the corners' shape, not broadcast: on TensorFlow, Keras's `ops.add` takes a second
    # operand with one axis of size > 1 for a bias of the first's last axis (`tf.nn.bias_add`), so (K, 2) + (K, 1)
    # added the K sides along the columns when K == 2 (Keras 3.15; a test pins the boxes of two crops).
    return ops.concatenate([corners, ops.add(corners, ops.repeat(side, 2, axis=1))], axis=1)


def noise(seed, key, step, shape, amplitude):
    """float32 tensor `shape`: U(-amplitude, amplitude) noise of one unit's picture at one step."""
    unit = draws.uniform(draws.stream_key(seed, key, step, draws.NOISE), shape)
    return ops.multiply(ops.subtract(ops.multiply(unit, np.float32(2.0)), np.float32(1.0)), amplitude)


def sampling_matrices(start, end, in_size, out_size):
    """(K, out_size, in_size): each box's bilinear sampling along one axis; taps outside the picture read 0."""
    if out_size > 1:
        steps = np.arange(out_size, dtype=np.float32) / np.float32(out_size - 1)
        taps = ops.add(ops.expand_dims(ops.multiply(start, np.float32(in_size - 1)), 1),
                       ops.multiply(ops.expand_dims(ops.multiply(ops.subtract(end, start), np.float32(in_size - 1)), 1),
                                    steps[None]))
    else:
        taps = ops.expand_dims(ops.multiply(ops.add(start, end), np.float32(0.5 * (in_size - 1))), 1)
    # A tap within 1/1000 pixel of the picture is inside: a crop of the whole picture ends exactly on its
    # last pixel, and a compiler's fused multiply-add may land an ulp beyond it (a row of zeros otherwise).
    inside = ops.cast(ops.logical_and(ops.greater_equal(taps, np.float32(-TAP_SLACK)),
                                      ops.less_equal(taps, np.float32(in_size - 1 + TAP_SLACK))), "float32")
    pixels = np.arange(in_size, dtype=np.float32)
    tent = ops.relu(ops.subtract(1.0, ops.abs(ops.subtract(ops.expand_dims(taps, 2), pixels[None, None]))))
    return ops.multiply(tent, ops.expand_dims(inside, 2))


def cut(image, unit_boxes, output_size):
    """The crops of one picture, resized to `output_size`.

    Args:
        image: float32 tensor (H, W, C).
        unit_boxes: float32 tensor (K, 4) of normalized [y1, x1, y2, x2] (x1 > x2 mirrors).
        output_size: (h, w).

    Returns:
        float32 tensor (K, h, w, C).
    """
    height, width = image.shape[0], image.shape[1]
    rows = sampling_matrices(unit_boxes[:, 0], unit_boxes[:, 2], height, output_size[0])
    columns = sampling_matrices(unit_boxes[:, 1], unit_boxes[:, 3], width, output_size[1])
    cut_rows = ops.einsum("kyh,hwc->kywc", rows, image)
    return ops.einsum("kxw,kywc->kyxc", columns, cut_rows)
