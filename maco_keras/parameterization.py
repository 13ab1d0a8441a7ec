"""Image parameterizations: Keras layers whose weights *are* the images being optimized.

A parameterization holds N images as trainable weights and `call()` renders them as a
float32 tensor (N, H, W, C) in `values_range`. The optimization loop only needs that and
`reset(seed, unit_keys)`, so MACO and the baselines share one loop.
"""

import inspect
import math

import keras
import numpy as np
import tensorflow as tf

from . import color
from . import seeding
from . import spectrum
from . import validation
from .core import draws
from .core import render
from .core.tone import resolve_pixel_statistics  # noqa: F401 (also this module's API)


class ImageParameterization(keras.layers.Layer):
    """Base class: N images of size `image_size` with `channels` channels.

    Subclasses create their weights in `__init__` (they depend on no input), render in
    `call()` and re-draw their initial state in `reset(seed, unit_keys)`, each image's
    from its own unit's key (`initial_draws`), so that an image does not depend on its batch.

    Args:
        num_images: N, one image per objective.
        image_size: int or (height, width).
        channels: number of channels C.
        values_range: (low, high) range of the rendered pixels, the model's input range.
        seed: int seed of the initial weights (None: random).
    """

    def __init__(self, num_images, image_size, channels=3, values_range=(0.0, 1.0), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_images = validation.positive_int("num_images", num_images)
        self.image_size = validation.image_size("image_size", image_size)
        self.channels = validation.positive_int("channels", channels)
        self.values_range = validation.values_range(values_range)
        self.seed = validation.seed(seed)

    def reset(self, seed, unit_keys=None):
        """Re-draws the trainable weights, image i's from (seed, unit_keys[i]).

        Args:
            seed: an int or a scalar int tensor.
            unit_keys: int32 array (N,), each image's unit (`seeding.unit_keys` of the
                objectives' names); None: the images' indices.
        """
        raise NotImplementedError

    def initial_draws(self, draw, seed, unit_keys=None, stream=draws.WEIGHTS):
        """Stacks `draw(h)` over the images, image i's stream key h from (seed, unit_keys[i], step -1, `stream`).

        `draw` makes one image's weights from its key with `core.draws` (the generator every
        backend shares).

        Example:
            >>> self.pixels.assign(self.initial_draws(lambda h: draws.normal(h, (64, 64, 3)), seed, keys))
        """
        keys = np.arange(self.num_images, dtype=np.int32) if unit_keys is None else unit_keys
        rows = seeding.unit_draws(seed, draws.INITIAL_STEP, keys)
        return seeding.per_unit(draw, seeding.stream_keys(rows, stream))

    @staticmethod
    def initial_seed(seed):
        """A TensorFlow stateless seed (2,), (seed, -1), for a parameterization of one's own that draws its
        whole batch's initial weights with `tf.random.stateless_*`; `initial_draws` keys each image by its
        unit instead, with the generator every backend shares."""
        return tf.stack([tf.cast(seed, tf.int32), -1])

    def frequency_radius(self):
        """For each trainable weight, the radius (see `spectrum.frequency_radius`) of the
        frequency each entry sets, broadcastable to the weight; None where the weights are
        not frequencies (the default: coarse to fine optimization is not available)."""
        return None

    def to_values_range(self, images01):
        """Rescales images from [0, 1] to `values_range`."""
        low, high = self.values_range
        return low + (high - low) * images01

    def get_config(self):
        config = super().get_config()
        config.update(
            num_images=self.num_images,
            image_size=self.image_size,
            channels=self.channels,
            values_range=self.values_range,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="maco_keras")
class MacoImage(ImageParameterization):
    """MACO's magnitude-constrained image: only the Fourier phase is trained.

    `x = sigmoid(recorrelate(contrast * standardize(irfft2d(magnitude * exp(i * phase)))))`,
    rescaled to `values_range`. `phase` is a trainable `tf.Variable` of shape
    (N, C, H, W // 2 + 1); `magnitude` a non-trainable weight of shape (C, H, W // 2 + 1),
    by default the average ImageNet magnitude (`spectrum.imagenet_magnitude`), or
    (N, C, H, W // 2 + 1), one per image.

    Args:
        num_images: N, one image per objective.
        image_size: int or (height, width).
        channels: C (3 for RGB, 1 for grayscale, other counts need a `magnitude`).
        magnitude: array (C, H, W // 2 + 1), e.g. from `compute_magnitude`, or (N, C, H,
            W // 2 + 1), one per image (e.g. each from its unit's dataset examples: a prior
            from data, see README *Quality*); default ImageNet.
        values_range: (low, high) pixel range of the rendered images.
        seed: int seed of the initial phase, drawn uniformly in [-pi, pi) (None: random).
        contrast: standard deviation of the standardized image in the decorrelated colour
            space, before recorrelation and the sigmoid (default 1.0: the paper's unit
            standardization, which gives pixels a standard deviation of about 0.14 of the
            range; 1.9 gives about 0.23, that of ImageNet photos).
        phase_as: how the phase is a weight: "angle" (default, the paper's): `phase` holds
            angles, (N, C, H, W // 2 + 1); "complex": `phase` holds each frequency's phase as
            a complex number (real, imaginary), (N, C, H, W // 2 + 1, 2), normalized to unit
            length when rendered. The optimizer then moves points in the plane: a step turns a
            phase less as its point moves away from 0, a built-in annealing, and no angle
            wraps around.
        pixel_statistics: None (default: one standardization to `contrast`) or (mean, std),
            each one value per RGB channel in [0, 1], e.g. `color.IMAGENET_PIXEL_STATISTICS`
            (also "imagenet"): each image is standardized, recorrelated, and each of its RGB
            channels given the logit offset and scale (`color.fit_pixel_statistics`) under
            which its pixels have that mean and spread. `contrast` is then unused.

    Example:
        >>> images = MacoImage(num_images=4, image_size=224, values_range=(-1, 1))
        >>> images().shape
        TensorShape([4, 224, 224, 3])
    """

    def __init__(self, num_images, image_size, channels=3, magnitude=None, values_range=(0.0, 1.0),
                 seed=None, contrast=1.0, phase_as="angle", pixel_statistics=None, **kwargs):
        super().__init__(num_images, image_size, channels, values_range, seed, **kwargs)
        self.contrast = validation.positive_float("contrast", contrast)
        if phase_as not in ("angle", "complex"):
            raise ValueError(f"expected phase_as 'angle' or 'complex', received: phase_as={phase_as!r}")
        self.phase_as = phase_as
        self.pixel_statistics = resolve_pixel_statistics(pixel_statistics, self.channels)
        self._tone = None if self.pixel_statistics is None else color.fit_pixel_statistics(*self.pixel_statistics)
        magnitude = spectrum.resolve_magnitude(magnitude, self.image_size, self.channels, num_images=self.num_images)
        self.start_phase = None
        phase_shape = (self.num_images, self.channels, *spectrum.spectrum_shape(self.image_size))
        self.phase = self.add_weight(
            shape=phase_shape + ((2,) if phase_as == "complex" else ()), name="phase", trainable=True,
            initializer=keras.initializers.RandomUniform(-math.pi, math.pi, seed=self.seed),
        )
        self.magnitude = self.add_weight(
            shape=magnitude.shape, name="magnitude", trainable=False,
            initializer=keras.initializers.Constant(magnitude),
        )
        self.built = True

    def _as_weight(self, angles):
        """Angles (N, C, H, W // 2 + 1) as the `phase` weight's values."""
        if self.phase_as == "complex":
            return tf.stack([tf.cos(angles), tf.sin(angles)], axis=-1)
        return angles

    def reset(self, seed, unit_keys=None):
        if self.start_phase is not None:
            self.phase.assign(self._as_weight(self.start_phase))
            return
        shape = tuple(self.phase.shape[1:4])
        # The core's initial phase (`core.plan.Plan.initial_phase`): the same on every backend.
        self.phase.assign(self._as_weight(self.initial_draws(
            lambda h: render.initial_phase(draws.uniform(h, shape)), seed, unit_keys, stream=draws.PHASE)))

    def set_start_phase(self, phase):
        """Makes every run start from `phase` (N, C, H, W // 2 + 1), e.g. `spectrum.image_phase` of
        real images (feature accentuation), instead of a random phase; None: random again."""
        if phase is not None:
            phase = np.asarray(phase, np.float32)
            if phase.shape != tuple(self.phase.shape[:4]):
                raise ValueError(f"expected a phase of shape {tuple(self.phase.shape[:4])}, received: phase.shape="
                                 f"{phase.shape}")
        self.start_phase = phase

    def frequency_radius(self):
        radius = spectrum.frequency_radius(self.image_size)[None, None]
        return [radius[..., None] if self.phase_as == "complex" else radius]

    def spatial_images(self):
        """`irfft2d(magnitude * exp(i * phase))` as (N, H, W, C), before any normalization."""
        magnitude = tf.convert_to_tensor(self.magnitude)
        if self.phase_as == "complex":
            real, imaginary = self.phase[..., 0], self.phase[..., 1]
            scale = magnitude * tf.math.rsqrt(real * real + imaginary * imaginary + 1e-12)
            spectra = tf.complex(scale * real, scale * imaginary)
        else:
            spectra = tf.complex(magnitude * tf.cos(self.phase), magnitude * tf.sin(self.phase))
        return tf.transpose(spectrum.irfft2d_per_image(spectra, self.image_size), (0, 2, 3, 1))

    def call(self, inputs=None):
        images = self.spatial_images()
        mean, variance = tf.nn.moments(images, axes=(1, 2, 3), keepdims=True)
        if self._tone is None:
            images = (images - mean) * (self.contrast * tf.math.rsqrt(variance + 1e-10))
            return self.to_values_range(tf.nn.sigmoid(color.recorrelate(images)))
        # Each RGB channel standardized on its own, then given the logit offset and scale
        # under which its pixels take the target mean and spread through the sigmoid.
        images = color.recorrelate((images - mean) * tf.math.rsqrt(variance + 1e-10))
        mean, variance = tf.nn.moments(images, axes=(1, 2), keepdims=True)
        offset, scale = (tf.constant(value) for value in self._tone)
        images = offset + scale * (images - mean) * tf.math.rsqrt(variance + 1e-10)
        return self.to_values_range(tf.nn.sigmoid(images))

    def get_config(self):
        statistics = None if self.pixel_statistics is None else [list(part) for part in self.pixel_statistics]
        return {**super().get_config(), "contrast": self.contrast, "phase_as": self.phase_as,
                "pixel_statistics": statistics, "magnitude_per_image": len(self.magnitude.shape) == 4}

    @classmethod
    def from_config(cls, config):
        # The magnitude is a weight: it is restored with the weights, not the config.
        size = validation.image_size("image_size", config["image_size"])
        placeholder = np.zeros((config["channels"], *spectrum.spectrum_shape(size)), np.float32)
        if config.get("magnitude_per_image"):
            placeholder = np.zeros((config["num_images"],) + placeholder.shape, np.float32)
        config = {key: value for key, value in config.items() if key != "magnitude_per_image"}
        return cls(magnitude=placeholder, **config)


def reset(parameterization, seed, unit_keys):
    """`parameterization.reset(seed, unit_keys)`; a parameterization written for earlier versions,
    whose `reset` takes the seed alone, draws its weights for the batch as a whole."""
    try:
        parameters = inspect.signature(parameterization.reset).parameters
    except (TypeError, ValueError):
        parameters = {}
    if "unit_keys" in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        parameterization.reset(seed, unit_keys=unit_keys)
    else:
        parameterization.reset(seed)


def _min_max_normalize(images):
    """Per-image stretch to [0, 1], as Xplique's `to_valid_rgb` does after the sigmoid."""
    low = tf.reduce_min(images, axis=(1, 2, 3), keepdims=True)
    high = tf.reduce_max(images, axis=(1, 2, 3), keepdims=True)
    return (images - low) / (high - low + 1e-8)


@keras.saving.register_keras_serializable(package="maco_keras")
class FourierImage(ImageParameterization):
    """Olah et al.'s (Lucid) Fourier parameterization, the paper's "Fourier" baseline.

    A complex spectrum (real and imaginary parts trainable, N(0, std) initially) is scaled
    by `1 / max(f, 1 / max(H, W)) ** decay_power * sqrt(H * W)` (boosting low frequencies),
    inverted, divided by 4, recorrelated, passed through a sigmoid and stretched to
    `values_range` per image, following Xplique's `optimize(use_fft=True)`, which the
    paper used. The scale is computed here with `rfftfreq`, which is also right for odd
    widths.

    Args:
        num_images, image_size, channels, values_range, seed: see `ImageParameterization`.
        decay_power: frequency decay of the scale (Xplique's default 0.85; Lucid's 1.0).
        std: standard deviation of the initial spectrum.
    """

    def __init__(self, num_images, image_size, channels=3, values_range=(0.0, 1.0), seed=None,
                 decay_power=0.85, std=0.01, **kwargs):
        super().__init__(num_images, image_size, channels, values_range, seed, **kwargs)
        self.decay_power = float(decay_power)
        self.std = float(std)
        height, width = self.image_size
        frequencies = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None])
        scale = 1.0 / np.maximum(frequencies, 1.0 / max(height, width)) ** self.decay_power
        self.scale = tf.constant(scale * np.sqrt(height * width), tf.float32)
        shape = (2, self.num_images, self.channels, *spectrum.spectrum_shape(self.image_size))
        self.spectrum = self.add_weight(
            shape=shape, name="spectrum", trainable=True,
            initializer=keras.initializers.RandomNormal(stddev=self.std, seed=self.seed))
        self.built = True

    def reset(self, seed, unit_keys=None):
        shape = (2, *self.spectrum.shape[2:])  # one image's real and imaginary parts
        spectra = self.initial_draws(lambda h: draws.normal(h, shape), seed, unit_keys)
        self.spectrum.assign(self.std * tf.transpose(spectra, (1, 0, 2, 3, 4)))

    def call(self, inputs=None):
        spectra = tf.complex(self.spectrum[0] * self.scale, self.spectrum[1] * self.scale)
        images = tf.transpose(spectrum.irfft2d_per_image(spectra, self.image_size), (0, 2, 3, 1)) / 4.0
        return self.to_values_range(_min_max_normalize(tf.nn.sigmoid(color.recorrelate(images))))

    def get_config(self):
        return {**super().get_config(), "decay_power": self.decay_power, "std": self.std}


@keras.saving.register_keras_serializable(package="maco_keras")
class PixelImage(ImageParameterization):
    """Pixel-space parameterization, the paper's "CBR" baseline.

    Pixels in the decorrelated colour space (N(0, std) initially), recorrelated, passed
    through a sigmoid and stretched to `values_range` per image, as Xplique's
    `optimize(use_fft=False)`.

    Args:
        num_images, image_size, channels, values_range, seed: see `ImageParameterization`.
        std: standard deviation of the initial pixels.
    """

    def __init__(self, num_images, image_size, channels=3, values_range=(0.0, 1.0), seed=None, std=0.01,
                 **kwargs):
        super().__init__(num_images, image_size, channels, values_range, seed, **kwargs)
        self.std = float(std)
        self.pixels = self.add_weight(
            shape=(self.num_images, *self.image_size, self.channels), name="pixels", trainable=True,
            initializer=keras.initializers.RandomNormal(stddev=self.std, seed=self.seed))
        self.built = True

    def reset(self, seed, unit_keys=None):
        shape = tuple(self.pixels.shape[1:])
        self.pixels.assign(self.std * self.initial_draws(lambda h: draws.normal(h, shape), seed, unit_keys))

    def call(self, inputs=None):
        return self.to_values_range(_min_max_normalize(tf.nn.sigmoid(color.recorrelate(self.pixels))))

    def get_config(self):
        return {**super().get_config(), "std": self.std}
