"""`maco`: MACO feature visualization (Fel et al., NeurIPS 2023), a preset of the shared loop."""

from typing import Optional, Sequence, Union

import keras
import numpy as np

from . import optimization
from . import parameterization as parameterization_lib
from . import spectrum
from . import engine
from .core.config import CONFIGS, MacoConfig

_IMAGES = optimization.ParameterizationCache()

DEFAULT_LEARNING_RATE = CONFIGS["fast"].learning_rate
"""`maco`'s learning rate when neither `learning_rate` nor `optimizer` is given."""


def maco(objective, units: Optional[Union[int, Sequence[int]]] = None, *, config: Optional[MacoConfig] = None,
         optimizer: Optional[keras.optimizers.Optimizer] = None, magnitude: Optional[np.ndarray] = None, **settings):
    """Optimizes N images, one per objective, by their Fourier phase at a fixed magnitude.

    What the run computes is one `MacoConfig`: `config` (default `CONFIGS["fast"]`, with a
    random seed), with any of its fields given as keyword arguments. The "fast" preset is a
    quarter of the paper's compute: 64 steps with coarse to fine, a decaying learning rate,
    large crops first and contrast 0.7. `benchmarks/frontier.py` chose it: on 12 held-out
    classes (two sets of 6, pooled) and two networks of different families, it is at least
    as good as the paper's settings at 256 steps on every metric it scores (README,
    *Quality*). The paper's settings are a preset: `maco(model, units, config=PRESETS["paper"])`.

    All N objectives are optimized together in one batch: each step draws `crops` random
    crops of every image (area ~ N(crop_scale, crop_scale_std) of the image, uniform
    position), adds uniform noise, resizes them to the model input and takes one NAdam
    step on the phases. The compiled loop is traced once per (model, shapes) and reused
    by later calls.

    Args:
        objective: an Xplique `Objective` (any composition), a Keras model with `units`
            (its output units, e.g. logits), or a callable `images -> scores` with
            `input_shape` (scores (B,), or (B, U) with `units`).
        units: int or list of output units, for a Keras model or a (B, U) callable.
        config: a `MacoConfig`: steps, image_size, crops, crop_scale (a number, a `Ramp`,
            a callable `step -> scale` or one value per step), crop_scale_std,
            crop_scale_of, noise, learning_rate, contrast, coarse_to_fine, values_range,
            seed, antialias, phase_as, pixel_statistics, relu_redirect_steps: see
            `MacoConfig`. A seed keys each unit's draws by (seed, the unit's name, step), so
            the same unit, settings and seed give the same image alone, in any batch or
            shard (bit for bit on one device and compile mode, where the model's kernels
            give an example the same bits at any batch size; see `seeding`).
        optimizer: a Keras optimizer to use instead of NAdam (its configuration is copied);
            it keeps its own rate unless `learning_rate` is given.
        magnitude: array (C, H, W // 2 + 1) (see `compute_magnitude`), or (N, C, H,
            W // 2 + 1), one per objective (e.g. from each unit's dataset examples, a prior
            from data); default ImageNet.
        **settings: fields of `MacoConfig` overriding `config`'s, and the `RunOptions`:
            strategy (a `tf.distribute.Strategy`, e.g. `MirroredStrategy` over a machine's
            GPUs or `TPUStrategy` over a TPU's cores: each step's crops are split across
            its replicas; build or load the model under `strategy.scope()`), crop_chunk
            (crops per image a device processes at once, the same bits; lower it when
            `batch_size x crops` crops do not fit in memory), batch_size (objectives
            optimized together; a unit's picture does not depend on its batch),
            jit_compile (XLA: for GPU/TPU, slower on CPU), verbose, snapshot_steps (steps
            after which the images are also kept, in the `Visualization`'s `snapshots`),
            return_visualization, input_shape (for a callable).

    Returns:
        (images, transparency): float32 arrays (N, H, W, C); images in `values_range`,
        transparency the mean |dL/dx| over the steps. With `return_visualization=True`,
        the `Visualization` (images, transparency, per-step scores, names).

    Example:
        >>> model = keras.models.load_model("mobilenet_v2_1.0_224.keras")
        >>> images, transparency = maco(model, units=[1, 309])  # 64 steps
        >>> images, transparency = maco(model, units=[1, 309], config=PRESETS["paper"])  # 256 steps
        >>> obj = Objective.neuron(model, -1, [1, 309]) + 0.5 * Objective.channel(model, "out_relu", 7)
        >>> images, transparency = maco(obj)
        >>> strategy = tf.distribute.MirroredStrategy()  # every GPU of the machine
        >>> images, transparency = maco(model, units=[1, 309], strategy=strategy)
    """
    config, options = optimization.split_settings(config, settings)
    loop_settings = optimization.LoopSettings.of(
        config, options, optimizer=optimizer, optimizer_rate=optimization.keeps_own_rate(optimizer, settings))
    pixel_statistics = parameterization_lib.resolve_pixel_statistics(config.pixel_statistics, None)

    per_image = magnitude is not None and np.ndim(magnitude) == 4

    def prepare(compiled, size):
        channels = compiled.input_shape[-1]
        fixed = spectrum.resolve_magnitude(magnitude, size, channels, num_images=compiled.num_objectives)
        parameterization_lib.resolve_pixel_statistics(pixel_statistics, channels)
        return lambda images, start, stop: images.magnitude.assign(fixed[start:stop] if per_image else fixed)

    def make_images(num_images, size, channels, values_range, seed):
        # Built with a placeholder magnitude: `prepare` assigns the real one on every call.
        placeholder = np.ones((num_images,) * per_image + (channels, *spectrum.spectrum_shape(size)), np.float32)
        return parameterization_lib.MacoImage(
            num_images, size, channels, magnitude=placeholder, values_range=values_range, seed=seed,
            contrast=config.contrast, phase_as=config.phase_as, pixel_statistics=pixel_statistics)

    return engine.run_method(
        objective, units, loop_settings, make_images=make_images, cache=_IMAGES, prepare=prepare,
        image_key=(config.contrast, config.phase_as, pixel_statistics, per_image))


PRESETS = CONFIGS
"""Named configurations of `maco` (`MacoConfig` instances): `maco(model, units, config=PRESETS["paper"])`.

"fast" is the defaults: a quarter of the paper's compute, chosen by benchmarks/frontier.py
(MobileNetV2 and EfficientNet-Lite0; benchmarks/README.md): on 12 held-out classes (two
disjoint sets of 6, pooled), at least as good as the paper's settings at 256 steps on all 8
metrics on both subjects. "paper": the paper's settings (Fel et al. 2023, Sec. 4 and App. B).
"""

_SCHEDULE_FIELDS = ("crop_scale", "crop_scale_std", "noise", "learning_rate", "coarse_to_fine", "contrast")


def schedules(preset):
    """A preset's schedules (crop scale, noise, learning rate, coarse to fine, contrast) as keyword arguments:
    what a caller that sets the steps, crops, size and seed itself passes to `maco`."""
    return {name: getattr(PRESETS[preset], name) for name in _SCHEDULE_FIELDS}

