"""`maco`: MACO feature visualization (Fel et al., NeurIPS 2023), a preset of the shared loop."""

import numbers
from typing import Callable, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from . import augmentation as augmentation_lib
from . import optimization
from . import parameterization as parameterization_lib
from . import spectrum
from . import validation
from . import engine

_IMAGES = optimization.ParameterizationCache()

DEFAULT_LEARNING_RATE = optimization.Ramp(1.0, 0.1, "cosine")
"""`maco`'s learning rate when neither `learning_rate` nor `optimizer` is given."""


Schedule = Union[float, Callable[[int], float], Sequence[float]]


def maco(
    objective,
    units: Optional[Union[int, Sequence[int]]] = None,
    *,
    steps: int = 64,
    image_size: Union[int, Tuple[int, int]] = 512,
    crops: int = 32,
    crop_scale: Schedule = optimization.Ramp(0.5, 0.25),
    crop_scale_std: float = 0.1,
    crop_scale_of: str = "area",
    antialias: bool = False,
    phase_as: str = "angle",
    noise: Schedule = 0.1,
    learning_rate: Optional[Schedule] = None,
    optimizer: Optional[keras.optimizers.Optimizer] = None,
    values_range: Tuple[float, float] = (-1.0, 1.0),
    magnitude: Optional[np.ndarray] = None,
    contrast: float = 0.7,
    pixel_statistics=None,
    seed: Optional[int] = None,
    jit_compile: bool = False,
    verbose: bool = True,
    input_shape: Optional[Tuple[int, int, int]] = None,
    return_visualization: bool = False,
    strategy: Optional[tf.distribute.Strategy] = None,
    crop_chunk: Optional[int] = None,
    batch_size: Optional[int] = None,
    relu_redirect_steps: int = 0,
    snapshot_steps: Sequence[int] = (),
    coarse_to_fine: float = 0.5,
):
    """Optimizes N images, one per objective, by their Fourier phase at a fixed magnitude.

    The defaults (`PRESETS["fast"]`, spelled out) are a quarter of the paper's compute: 64
    steps with coarse to fine, a decaying learning rate, large crops first and contrast 0.7.
    `benchmarks/frontier.py` chose them: on 12 held-out classes (two sets of 6, pooled) and
    two networks of different families, they are at least as good as the paper's settings
    at 256 steps on every metric it scores (README, *Quality*). The paper's settings are a preset:
    `maco(model, units, **PRESETS["paper"])`.

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
        steps: optimization steps (default 64; paper: 256). The schedules below scale with
            the run, so a longer run stretches them (chosen at 64 steps; 128 measured no better).
        image_size: int or (height, width) of the images (paper: 512); >= model input.
        crops: crops per image per step.
        crop_scale: mean crop size as a fraction of the image (default `Ramp(0.5, 0.25)`:
            from half the image to a quarter over the run, the large structure first; paper:
            0.25, "25% of the image"); also a number, a callable `step -> scale` or a
            sequence of `steps` values.
        crop_scale_std: standard deviation of the crop size (paper: 0.1).
        crop_scale_of: "area" (default) or "side": what `crop_scale` is a fraction of.
            The paper's "N(0.25, 0.1), on average 25% of the image" reads either way;
            "area" was chosen by measurement (benchmarks/RESULTS.md, Table 3: the
            "crop side 0.25" row is the other reading).
        antialias: cut crops at twice the model input and average 2x2 pixels (default
            False; see `Augmentation`).
        phase_as: "angle" (default, the paper's) or "complex": the phase as a normalized
            complex number (see `MacoImage`).
        noise: amplitude a of the additive U(-a, a) noise, as a fraction of the
            `values_range` span (paper: 0.1); a number, callable or sequence.
        learning_rate: NAdam learning rate (paper: 1.0), a number or a per-step schedule (a
            `Ramp`, callable or sequence). Default None: `Ramp(1.0, 0.1, "cosine")`, from 1.0
            to 0.1 over the run, or the `optimizer`'s own rate when one is given. A number is
            ignored if `optimizer` is given; a schedule then sets that optimizer's rate.
        optimizer: a Keras optimizer to use instead (its configuration is copied).
        values_range: (low, high) input range of the model, e.g. (-1, 1) or (0, 255).
        magnitude: array (C, H, W // 2 + 1) (see `compute_magnitude`), or (N, C, H,
            W // 2 + 1), one per objective (e.g. from each unit's dataset examples, a prior
            from data); default ImageNet.
        contrast: standard deviation the image is standardized to in the decorrelated
            colour space, before the sigmoid (default 0.7; paper: 1.0; see `MacoImage`).
        pixel_statistics: None (default) or (mean, std) per RGB channel in [0, 1], or
            "imagenet": each channel's pixels given that mean and spread instead of the one
            `contrast` (see `MacoImage`).
        seed: int; a unit's random draws are keyed by (seed, the unit's name, step), so
            the same unit, settings and seed give the same image alone, in any batch or
            shard (bit for bit on one device and compile mode, where the model's kernels
            give an example the same bits at any batch size; see `seeding`). None: random.
        jit_compile: compile with XLA (recommended on GPU/TPU; slower on CPU).
        verbose: show a progress bar.
        input_shape: (h, w, C) of the model, for a callable objective.
        return_visualization: return the `Visualization` (images, transparency, per-step
            scores, names) instead of the tuple.
        strategy: a `tf.distribute.Strategy` (e.g. `MirroredStrategy` over a machine's GPUs,
            `TPUStrategy` over a TPU's cores); each step's crops are split across its
            replicas, the phase is mirrored and the gradients summed. `crops` must be
            divisible by the number of replicas. Build or load the model under
            `strategy.scope()` so that each replica holds its weights. Default None: one device.
        crop_chunk: crops per image that a device processes at once; the others follow, and
            the crops' gradients reach the image together (the same bits as without chunks). Lower it when the
            model's activations for `batch_size x crops` crops do not fit in memory. Must
            divide the crops per replica. Default None: all at once.
        batch_size: objectives optimized together (default None: all N at once); memory
            grows with `batch_size x crop_chunk`, not with N. A unit's picture does not
            depend on its batch (see `seed`).
        relu_redirect_steps: for the first this many steps (default 0: off), the model's
            ReLUs pass gradients through dead units (Lucid's redirected ReLU), so that
            internal units that start inactive can wake up. The forward pass is unchanged.
        snapshot_steps: steps in [1, steps] after which the images and transparency are
            also kept, in the `Visualization`'s `snapshots` (default (): none). With
            constant settings a snapshot at step s is what a run of s steps gives, so one
            run shows several budgets.
        coarse_to_fine: fraction of the steps (default 0.5; paper: 0, off) over which the phases
            being optimized widen from the lowest frequencies to all of them: step s
            updates the frequencies of radius <= (s + 1) / (coarse_to_fine * steps), 1
            being the highest (`spectrum.frequency_radius`), so the layout settles before
            the detail. The others keep their initial phase until then.

    Returns:
        (images, transparency): float32 arrays (N, H, W, C); images in `values_range`,
        transparency the mean |dL/dx| over the steps.

    Example:
        >>> model = keras.models.load_model("mobilenet_v2_1.0_224.keras")
        >>> images, transparency = maco(model, units=[1, 309])  # 64 steps
        >>> images, transparency = maco(model, units=[1, 309], **PRESETS["paper"])  # 256 steps
        >>> obj = Objective.neuron(model, -1, [1, 309]) + 0.5 * Objective.channel(model, "out_relu", 7)
        >>> images, transparency = maco(obj)
        >>> strategy = tf.distribute.MirroredStrategy()  # every GPU of the machine
        >>> images, transparency = maco(model, units=[1, 309], strategy=strategy)
    """
    validation.non_negative_float("crop_scale_std", crop_scale_std)
    if learning_rate is None:
        # The default schedule, unless the caller brings an optimizer: its own rate is then kept.
        learning_rate = DEFAULT_LEARNING_RATE if optimizer is None else 1.0
    learning_rate_schedule = None
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        # A schedule: validated with the other schedules; it sets the rate at every step.
        learning_rate_schedule, learning_rate = learning_rate, 1.0
    learning_rate = validation.non_negative_float("learning_rate", learning_rate)
    contrast = validation.positive_float("contrast", contrast)
    antialias = validation.boolean("antialias", antialias)
    pixel_statistics = parameterization_lib.resolve_pixel_statistics(pixel_statistics, None)
    if phase_as not in ("angle", "complex"):
        raise ValueError(f"expected phase_as 'angle' or 'complex', received: phase_as={phase_as!r}")

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
            contrast=contrast, phase_as=phase_as, pixel_statistics=pixel_statistics)

    return engine.run_method(
        objective, units, input_shape, make_images=make_images, cache=_IMAGES, prepare=prepare,
        image_key=(contrast, phase_as, pixel_statistics, per_image),
        steps=steps, image_size=image_size, crops=crops, crop_scale=crop_scale, noise=noise,
        values_range=values_range, seed=seed,
        augmentation=augmentation_lib.Augmentation(crop_scale_std=float(crop_scale_std), crop_scale_of=crop_scale_of,
                                                   antialias=antialias),
        optimizer=optimizer if optimizer is not None else optimization.default_optimizer(learning_rate),
        jit_compile=jit_compile, verbose=verbose, return_visualization=return_visualization,
        strategy=strategy, crop_chunk=crop_chunk, batch_size=batch_size, relu_redirect_steps=relu_redirect_steps,
        snapshot_steps=snapshot_steps, learning_rate=learning_rate_schedule, coarse_to_fine=coarse_to_fine)


PRESETS = {
    # The paper's settings (Fel et al. 2023, Sec. 4 and App. B); maco's defaults until the fifth pass.
    "paper": dict(steps=256, crops=32, crop_scale=0.25, crop_scale_std=0.1, noise=0.1, learning_rate=1.0,
                  coarse_to_fine=0.0, contrast=1.0),
    # `maco`'s defaults, spelled out: a quarter of the paper's compute. Chosen by
    # benchmarks/frontier.py (MobileNetV2 and EfficientNet-Lite0; benchmarks/README.md): on
    # 12 held-out classes (two disjoint sets of 6, pooled), at least as good as the paper's
    # settings at 256 steps on all 8 metrics on both subjects. contrast=0.7 (fourth pass)
    # moved plausibility, FID and KID towards the photos on both subjects.
    "fast": dict(steps=64, crops=32, crop_scale=optimization.Ramp(0.5, 0.25), crop_scale_std=0.1, noise=0.1,
                 learning_rate=DEFAULT_LEARNING_RATE, coarse_to_fine=0.5, contrast=0.7),
}
"""Named settings of `maco`: `maco(model, units, **PRESETS["paper"])`. "fast": the defaults."""


def schedules(preset):
    """`PRESETS[preset]` without its steps and crops: what a caller that sets those itself passes to `maco`."""
    return {key: value for key, value in PRESETS[preset].items() if key not in ("steps", "crops")}
