"""Random augmentations applied at every optimization step: crops and additive noise.

All randomness is stateless, the core's counter-based generator (`core.draws`) keyed per
image by (seed, its unit, step; see `seeding`), so an image's crops and noise are the same
on every run and device, whatever other images share its batch, and on every backend: MACO's
crops and noise here are the core's (`core.crops`), to the bit.

Crops are cut with `tf.image.crop_and_resize` semantics, but never with that op's own
gradient: on CPU, `CropAndResizeGradImage` lets the threads of crops of one image race
on it (measured: gradients off by 2% for 32 crops of one image, and different on every
run). Two deterministic versions are used instead:
- `crop_and_resize_crop_major` (default): TF's forward op. On CPU its gradient is
  `native`'s compiled kernel (each thread owns bands of image rows; 10.7 ms for 32 224px
  crops of a 512px image on 2 cores). Where that kernel is not built, or off CPU, it is
  TF's kernel applied to one crop per image at a time, accumulated in a `tf.while_loop`
  (a fixed order; 28.8 ms). Both sum the same terms in the same order: same bits.
- `crop_and_resize_gather`: bilinear sampling from gathers, for XLA (which has no
  CropAndResize kernel), where gathers are cheap.
"""

import dataclasses
from typing import Tuple, Union

import tensorflow as tf

from . import native
from . import seeding
from .core import crops as core_crops
from .core import draws


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """How crops and noise are drawn. Per-step values (schedules) are passed separately.

    Every augmentation is a set of square crops (boxes in normalized image coordinates,
    pixels outside the image read as 0) resized to the model input, plus additive noise.

    Attributes:
        crop_scale_std: standard deviation of the crop side, as a fraction of the image side.
        crop_scale_range: (min, max) the drawn crop scale is clipped to.
        crop_scale_of: "side": the scale is the fraction of the image side a crop spans;
            "area": the fraction of the image area (the crop side is its square root).
        crop_center: how boxes are placed:
            "uniform": inside the image, corner drawn uniformly (MACO; every region is visited);
            a float s: centres ~ N(0.5, s) per axis, boxes may overlap the border (Xplique's `maco`);
            "jitter": Lucid/Xplique's standard transformations (pad, then random jitters,
            a random rescale and two more jitters), which amount to a box of side
            `1 + 2 pad - sum(jitters) - sum(post_jitters) / scale` at a jittered corner;
            `crop_scale` is then unused.
        noise_on: "image": the noise is drawn at the image's resolution before cropping
            (the MACO paper's order); "crops": drawn per crop after resizing.
        flip: flip each crop left-right with probability 1/2.
        antialias: cut each crop at twice the model input's side, then average each 2x2
            block (a box filter): a crop of a large area then shows the model its picture
            without aliasing (Horama, the MACO authors' PyTorch library, does the same). The
            noise on the crops, if any, is added after.
        pad, jitters, scale_range, post_jitters: the "jitter" placement, as fractions of
            the image side (defaults: Xplique's `generate_standard_transformations`, whose
            unit is 1/16 of the image side).
    """

    crop_scale_std: float = 0.1
    crop_scale_range: Tuple[float, float] = (0.05, 1.0)
    crop_scale_of: str = "side"
    crop_center: Union[str, float] = "uniform"
    noise_on: str = "image"
    flip: bool = False
    antialias: bool = False
    pad: float = 4 / 16
    jitters: Tuple[float, ...] = (2 / 16, 2 / 16, 4 / 16, 4 / 16, 4 / 16)
    scale_range: Tuple[float, float] = (0.92, 0.96)
    post_jitters: Tuple[float, ...] = (1 / 16, 1 / 16)

    def __post_init__(self):
        low, high = self.crop_scale_range
        if not 0 < low <= high <= 1:
            raise ValueError(f"`crop_scale_range` must satisfy 0 < min <= max <= 1, got {self.crop_scale_range}.")
        if self.crop_scale_std < 0:
            raise ValueError(f"`crop_scale_std` must be >= 0, got {self.crop_scale_std}.")
        if not (self.crop_center in ("uniform", "jitter")
                or isinstance(self.crop_center, float) and self.crop_center >= 0):
            raise ValueError(f"`crop_center` must be 'uniform', 'jitter' or a float >= 0, got {self.crop_center!r}.")
        if self.crop_scale_of not in ("side", "area"):
            raise ValueError(f"`crop_scale_of` must be 'side' or 'area', got {self.crop_scale_of!r}.")
        if self.noise_on not in ("image", "crops"):
            raise ValueError(f"`noise_on` must be 'image' or 'crops', got {self.noise_on!r}.")
        if self.crop_center == "jitter":
            side = 1 + 2 * self.pad - sum(self.jitters) - sum(self.post_jitters) / min(self.scale_range)
            if side <= 0 or min(self.scale_range) <= 0:
                raise ValueError(f"The jitter settings leave no image (box side {side:.3f}).")


def sample_boxes(row, num_boxes, scale, augmentation):
    """Draws `num_boxes` square boxes [y1, x1, y2, x2] in normalized coordinates.

    Args:
        row: int32 tensor (3,), the unit's (seed, key, step) (see `seeding.unit_draws`).
        num_boxes: number of boxes.
        scale: scalar tensor, the mean box side as a fraction of the image side.
        augmentation: an `Augmentation`.

    Returns:
        float32 tensor (num_boxes, 4).
    """
    seed, key, step = row[0], row[1], row[2]
    if augmentation.crop_center == "uniform":  # MACO's: the core's boxes, the same on every backend
        return core_crops.boxes(seed, key, step, num_boxes, scale, augmentation, augmentation.crop_scale_range)
    if augmentation.crop_center == "jitter":
        low, high = augmentation.scale_range
        rescale = low + (high - low) * draws.uniform(seeding.stream_key(row, draws.RESCALE), (num_boxes, 1))
        jitters = tf.constant(augmentation.jitters, tf.float32)
        post_jitters = tf.constant(augmentation.post_jitters, tf.float32)
        shifts = draws.uniform(seeding.stream_key(row, draws.SHIFTS), (num_boxes, 2, len(augmentation.jitters)))
        shifts *= jitters
        post_shifts = draws.uniform(seeding.stream_key(row, draws.POST_SHIFTS),
                                    (num_boxes, 2, len(augmentation.post_jitters)))
        post_shifts *= post_jitters
        sides = 1.0 + 2.0 * augmentation.pad - tf.reduce_sum(jitters) - tf.reduce_sum(post_jitters) / rescale
        corners = -augmentation.pad + tf.reduce_sum(shifts, -1) + tf.reduce_sum(post_shifts, -1) / rescale
        return tf.concat([corners, corners + sides], axis=1)
    sides = core_crops.sides(seed, key, step, num_boxes, scale, augmentation.crop_scale_std,
                             augmentation.crop_scale_of, augmentation.crop_scale_range)
    centers = 0.5 + augmentation.crop_center * draws.normal(seeding.stream_key(row, draws.CENTERS), (num_boxes, 2))
    corners = centers - 0.5 * sides
    return tf.concat([corners, corners + sides], axis=1)


def flip_boxes(row, boxes):
    """Swaps x1 and x2 of half the boxes (drawn from the unit's row (seed, key, step)): `crop_and_resize` then
    reads them mirrored."""
    flip = draws.uniform(seeding.stream_key(row, draws.FLIP), (boxes.shape[0], 1)) < 0.5
    return tf.where(flip, tf.gather(boxes, [0, 3, 2, 1], axis=1), boxes)


def _sample_positions(start, end, in_size, out_size):
    """Bilinear taps along one axis, as `tf.image.crop_and_resize` places them."""
    if out_size > 1:
        steps = tf.range(out_size, dtype=tf.float32) / (out_size - 1)
        positions = start[:, None] * (in_size - 1) + steps[None] * ((end - start) * (in_size - 1))[:, None]
    else:
        positions = (0.5 * (start + end) * (in_size - 1))[:, None]
    valid = (positions >= 0.0) & (positions <= in_size - 1.0)
    positions = tf.clip_by_value(positions, 0.0, in_size - 1.0)
    low = tf.floor(positions)
    fraction = positions - low
    low = tf.cast(low, tf.int32)
    high = tf.minimum(low + 1, in_size - 1)
    return low, high, fraction, valid


def crop_and_resize_gather(images, boxes, image_indices, output_size):
    """Bilinear crops of `images`, resized to `output_size`, built from gathers.

    Same semantics as `tf.image.crop_and_resize(..., method="bilinear",
    extrapolation_value=0)`; the gradient of a gather is a segment sum, deterministic on
    CPU and compiled well by XLA.

    Args:
        images: float tensor (N, H, W, C) with static H, W.
        boxes: float32 tensor (B, 4) of normalized [y1, x1, y2, x2].
        image_indices: int32 tensor (B,), the image each box is cut from.
        output_size: (h, w) ints.

    Returns:
        tensor (B, h, w, C).
    """
    _, height, width, channels = images.shape
    out_height, out_width = output_size
    y_low, y_high, y_frac, y_valid = _sample_positions(boxes[:, 0], boxes[:, 2], height, out_height)
    x_low, x_high, x_frac, x_valid = _sample_positions(boxes[:, 1], boxes[:, 3], width, out_width)

    rows = tf.reshape(images, (-1, width, channels))
    offsets = image_indices[:, None] * height
    top = tf.gather(rows, offsets + y_low)
    bottom = tf.gather(rows, offsets + y_high)
    rows = top + (bottom - top) * tf.cast(y_frac, images.dtype)[:, :, None, None]

    left = tf.gather(rows, x_low, axis=2, batch_dims=1)
    right = tf.gather(rows, x_high, axis=2, batch_dims=1)
    crops = left + (right - left) * tf.cast(x_frac, images.dtype)[:, None, :, None]
    inside = y_valid[:, :, None, None] & x_valid[:, None, :, None]
    return tf.where(inside, crops, tf.zeros_like(crops))


def crop_images(num_images, num_crops):
    """int32 tensor (K * N,): the image each crop of a crop-major batch is cut from (crop k * N + i: image i)."""
    return tf.tile(tf.range(num_images, dtype=tf.int32), [num_crops])


def crop_and_resize_crop_major(images, boxes, num_crops, output_size):
    """`tf.image.crop_and_resize` of K crops per image in crop-major order, deterministic gradient.

    Args:
        images: tensor (N, H, W, C).
        boxes: float32 tensor (K * N, 4): box k * N + i is cut from image i.
        num_crops: K.
        output_size: (h, w).

    Returns:
        tensor (K * N, h, w, C).
    """
    num_images = images.shape[0]
    image_indices = crop_images(num_images, num_crops)

    @tf.custom_gradient
    def crop(images, boxes):
        crops = tf.image.crop_and_resize(images, boxes, image_indices, output_size)

        def gradient(upstream):
            return crop_gradient(upstream, boxes, num_crops, images.shape, images.dtype), tf.zeros_like(boxes)

        return crops, gradient

    return crop(images, boxes)


def crop_gradient(upstream, boxes, num_crops, images_shape, dtype=tf.float32, gather=False):
    """The images' gradient from their crops' gradient: the adjoint of cutting `boxes`.

    Each image's crops are summed in crop order, in one call, so the result's bits depend
    only on the crops' gradients and boxes, not on how they were computed (all at once or
    in chunks).

    Args:
        upstream: tensor (K * N, h, w, C), the gradient at crops in crop-major order.
        boxes: float32 tensor (K * N, 4), their boxes.
        num_crops: K.
        images_shape: (N, H, W, C).
        gather: the crops were cut with `crop_and_resize_gather` (XLA), not CropAndResize.

    Returns:
        tensor (N, H, W, C).
    """
    num_images, height, width, channels = images_shape
    output_size = tuple(upstream.shape[1:3])
    if gather:
        # Linear in the image: the gradient of cutting zeros is the gradient of cutting anything.
        zeros = tf.zeros(images_shape, dtype)
        with tf.GradientTape() as tape:
            tape.watch(zeros)
            crops = crop_and_resize_gather(zeros, boxes, crop_images(num_images, num_crops),
                                           output_size)
        return tape.gradient(crops, zeros, output_gradients=upstream)
    if dtype == tf.float32 and native.runs_on_cpu(upstream):
        image_indices = crop_images(num_images, num_crops)
        total = native.crop_and_resize_grad_image(upstream, boxes, image_indices, (num_images, height, width))
        if total is not None:
            return total
    # Crops k*N .. k*N+N-1 hit N different images: no two threads share an image
    # within one kernel call, and the while loop fixes the order of the sums.
    upstream = tf.reshape(upstream, (num_crops, num_images, *output_size, channels))
    boxes_by_crop = tf.reshape(boxes, (num_crops, num_images, 4))

    def body(k, total):
        return k + 1, total + tf.raw_ops.CropAndResizeGradImage(
            grads=upstream[k], boxes=boxes_by_crop[k], box_ind=tf.range(num_images, dtype=tf.int32),
            image_size=[num_images, height, width, channels], T=dtype)

    _, total = tf.while_loop(lambda k, _: k < num_crops, body, [tf.constant(0), tf.zeros(images_shape, dtype)])
    return total


def add_noise(noise_keys, images, uniform_amplitude, gaussian_std):
    """Adds U(-a, a) and N(0, std) noise (either may be 0) to each image, image i's drawn from `noise_keys[i]`.

    Args:
        noise_keys: int32 tensor (N, 2), each image's stream keys of its uniform and its Gaussian noise.
        images: tensor (N, ...).
        uniform_amplitude, gaussian_std: scalars.
    """
    shape = tuple(images.shape[1:])

    def uniform():
        # `core.crops.noise`'s arithmetic, so that MACO's noisy picture is the core's to the bit.
        noise = seeding.per_unit(lambda h: draws.uniform(h, shape), noise_keys[:, 0])
        return images + tf.cast((noise * 2.0 - 1.0) * uniform_amplitude, images.dtype)

    def gaussian(noisy):
        noise = seeding.per_unit(lambda h: draws.normal(h, shape), noise_keys[:, 1])
        return noisy + tf.cast(gaussian_std * noise, images.dtype)

    # A term whose amplitude is 0 at this step is not drawn at all: drawing an image's worth
    # of random numbers costs about as much as cutting its crops.
    noisy = tf.cond(tf.not_equal(uniform_amplitude, 0.0), uniform, lambda: tf.identity(images))
    return tf.cond(tf.not_equal(gaussian_std, 0.0), lambda: gaussian(noisy), lambda: tf.identity(noisy))


def draw(rows, images, num_crops, augmentation, scale, uniform_amplitude, gaussian_std):
    """This step's random draws, shared by every chunk of crops and every replica.

    Each image's draws come from its own row (seed, its unit's key, step; see `seeding`),
    so they do not depend on the other images of the batch. Drawing everything for the
    whole step, then cutting any slice of the crops with `cut`, is what makes a step's
    crops the same whether they are processed at once, in chunks or split across the
    replicas of a `tf.distribute` strategy.

    Args:
        rows: int32 tensor (N, 3), each image's (seed, key, step) (`seeding.unit_draws`).
        images: tensor (N, H, W, C).
        num_crops: K, crops per image.
        augmentation: an `Augmentation`.
        scale, uniform_amplitude, gaussian_std: this step's scalars.

    Returns:
        (images, boxes, crop_noise_keys): the images with their image-level noise (the
        paper's order; unchanged when the noise is on the crops), the float32 boxes
        (K * N, 4) in crop-major order, and each image's stream keys (N, 2) of its crops' noise.
    """
    num_images = images.shape[0]
    if augmentation.noise_on == "image":
        noise_keys = tf.stack([seeding.stream_keys(rows, draws.NOISE), seeding.stream_keys(rows, draws.GAUSSIAN_NOISE)],
                              axis=1)
        images = add_noise(noise_keys, images, uniform_amplitude, gaussian_std)

    def image_boxes(row):
        boxes = sample_boxes(row, num_crops, scale, augmentation)
        return flip_boxes(row, boxes) if augmentation.flip else boxes

    boxes = seeding.per_unit(image_boxes, rows)
    # (N, K, 4) -> crop-major (K * N, 4): box k * N + i is image i's k-th.
    boxes = tf.reshape(tf.transpose(boxes, (1, 0, 2)), (num_crops * num_images, 4))
    crop_noise_keys = tf.stack([seeding.stream_keys(rows, draws.CROP_NOISE),
                                seeding.stream_keys(rows, draws.CROP_GAUSSIAN_NOISE)], axis=1)
    return images, boxes, crop_noise_keys


def cut_size(output_size, augmentation):
    """The size crops are cut at: the model input's, or twice it with `antialias`."""
    factor = 2 if augmentation.antialias else 1
    return tuple(factor * side for side in output_size)


def cut_crops(images, boxes, first_crop, num_crops, output_size, augmentation, gather=False):
    """Crops `first_crop .. first_crop + num_crops - 1` of every image, at `cut_size`, in crop-major order.

    `finish` turns them into the model's inputs; `crop_gradient` pulls a gradient at them back to the images.
    """
    num_images = images.shape[0]
    boxes = crop_slice(boxes, num_images, first_crop, num_crops)
    size = cut_size(output_size, augmentation)
    if gather:
        image_indices = crop_images(num_images, num_crops)
        return crop_and_resize_gather(images, boxes, image_indices, size)
    return crop_and_resize_crop_major(images, boxes, num_crops, size)


def finish(crops, num_images, first_crop, num_crops, augmentation, crop_noise_keys, uniform_amplitude, gaussian_std):
    """`cut_crops`' crops as the model's inputs: box-filtered to the model input (`antialias`), then their
    noise when it is on the crops."""
    if augmentation.antialias:
        crops = tf.nn.avg_pool2d(crops, 2, 2, "VALID")
    if augmentation.noise_on == "crops":
        # Crop k of image i is drawn from (its image's stream keys, k): the same in whatever slice it is cut.
        indices = tf.cast(first_crop, tf.int32) + tf.range(num_crops)
        keys = draws.substream(crop_noise_keys[None], indices[:, None, None])  # (K, N, 2), crop-major
        crops = add_noise(tf.reshape(keys, (num_crops * num_images, 2)), crops, uniform_amplitude, gaussian_std)
    return crops


def cut(images, boxes, first_crop, num_crops, output_size, augmentation, crop_noise_keys, uniform_amplitude,
        gaussian_std, gather=False):
    """The model's inputs for crops `first_crop .. first_crop + num_crops - 1` of every image, in crop-major
    order: `cut_crops`, then `finish`.

    Args:
        images, boxes, crop_noise_keys: from `draw`.
        first_crop: int or scalar int32 tensor, the first crop index k of the slice.
        num_crops: static size of the slice.
        output_size: (h, w) of the model input.
        augmentation: an `Augmentation`.
        uniform_amplitude, gaussian_std: this step's noise (used when it is on the crops).
        gather: cut crops with gathers (for XLA) instead of TF's CropAndResize kernel.

    Returns:
        tensor (num_crops * N, h, w, C).
    """
    crops = cut_crops(images, boxes, first_crop, num_crops, output_size, augmentation, gather=gather)
    return finish(crops, images.shape[0], first_crop, num_crops, augmentation, crop_noise_keys, uniform_amplitude,
                  gaussian_std)


def crop_slice(boxes, num_images, first_crop, num_crops):
    """Boxes of crops `first_crop .. first_crop + num_crops - 1` of every image, from all (K * N, 4)."""
    first_crop = tf.cast(first_crop, tf.int32)
    boxes = tf.slice(tf.reshape(boxes, (-1, num_images, 4)), tf.stack([first_crop, 0, 0]), [num_crops, num_images, 4])
    return tf.reshape(boxes, (num_crops * num_images, 4))


def augment(rows, images, num_crops, output_size, augmentation, scale, uniform_amplitude, gaussian_std,
            gather=False):
    """The crops fed to the model at one step, in crop-major order: `draw`, then `cut` them all.

    Crop `k * N + i` is the k-th crop of image i, so a batch of N consecutive crops
    holds one crop of every image, which is what Xplique objectives' masks expect.

    Args:
        rows: int32 tensor (N, 3), each image's (seed, key, step) (see `seeding.unit_draws`).
        images: tensor (N, H, W, C).
        num_crops: K, crops per image.
        output_size: (h, w) of the model input.
        augmentation: an `Augmentation`.
        scale, uniform_amplitude, gaussian_std: this step's scalars.
        gather: cut crops with gathers (for XLA) instead of TF's CropAndResize kernel.

    Returns:
        tensor (K * N, h, w, C).
    """
    images, boxes, crop_noise_keys = draw(rows, images, num_crops, augmentation, scale, uniform_amplitude,
                                          gaussian_std)
    return cut(images, boxes, 0, num_crops, output_size, augmentation, crop_noise_keys, uniform_amplitude,
               gaussian_std, gather=gather)
