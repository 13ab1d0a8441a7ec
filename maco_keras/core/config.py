"""One frozen configuration of a MACO run, validated once; presets are instances of it.

`MacoConfig` holds every setting that changes a picture and is not an array (the
magnitude is): the backends, the `Visualizer` and run manifests take it whole, so no
setting is re-declared in a second signature. `MacoConfig.schedules()` turns it into the
per-step arrays a compiled loop takes as arguments (one trace serves any seed, unit or
schedule of the same shapes).
"""

import dataclasses
import numbers
from typing import Optional, Tuple, Union

import numpy as np

from .. import validation
from . import tone


@dataclasses.dataclass(frozen=True)
class Ramp:
    """A per-step value going from `start` at the first step towards `end` over the run, whatever its length.

    Accepted wherever a schedule is (`crop_scale`, `noise`, `learning_rate`): the run's
    step count turns it into one value per step, so one `Ramp` serves 64-step and
    256-step runs alike (and, as a tensor argument, the same compiled loop).

    Args:
        start: the value at the first step.
        end: "linear": the value at the last step; "cosine": the value the cosine tends
            to after the last step, as in `keras.optimizers.schedules.CosineDecay(start,
            decay_steps=steps, alpha=end / start)`.
        shape: "linear" (default) or "cosine".

    Example:
        >>> maco(model, units=[1], steps=64, learning_rate=Ramp(1.0, 0.1, "cosine"), crop_scale=Ramp(0.5, 0.25))
    """

    start: float
    end: float
    shape: str = "linear"

    def __post_init__(self):
        for name in ("start", "end"):
            validation.non_negative_float(f"Ramp.{name}", getattr(self, name))
        if self.shape not in ("linear", "cosine"):
            raise ValueError(f"expected Ramp.shape 'linear' or 'cosine', received: shape={self.shape!r}")

    def values(self, steps):
        """float32 array (steps,): the value at each step."""
        if self.shape == "linear":
            return np.linspace(self.start, self.end, steps).astype(np.float32)
        cosine = 0.5 * (1.0 + np.cos(np.pi * np.arange(steps) / steps))
        return (self.end + (self.start - self.end) * cosine).astype(np.float32)


def schedule(name, value, steps):
    """A per-step schedule from a number, a `Ramp`, a callable `step -> number` or a sequence.

    Callables are evaluated once per step here, before the loop, so the loop itself
    runs no Python.

    Returns:
        float32 array (steps,).
    """
    if isinstance(value, Ramp):
        values = value.values(steps)
    elif callable(value):
        values = np.array([value(step) for step in range(steps)], np.float32)
    elif np.ndim(value) == 0:
        values = np.full((steps,), validation.non_negative_float(name, value), np.float32)
    else:
        values = np.asarray(value, np.float32)
        if values.shape != (steps,):
            raise ValueError(f"`{name}` as a sequence must have one value per step ({steps}), got shape {values.shape}.")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"`{name}` must be finite and >= 0 at every step.")
    return values


def coarse_to_fine_cutoffs(coarse_to_fine, steps):
    """The per-step frequency cutoffs of coarse to fine optimization, or None when it is off (0).

    The cutoff grows linearly, reaching 1 (every frequency) after the first
    `coarse_to_fine * steps` steps: step s (from 0) updates radii <= (s + 1) / that count.
    """
    if isinstance(coarse_to_fine, bool) or not isinstance(coarse_to_fine, (int, float, np.floating, np.integer)) \
            or not 0.0 <= coarse_to_fine <= 1.0:
        raise ValueError(f"expected a fraction of the steps in [0, 1], received: coarse_to_fine={coarse_to_fine!r}")
    if coarse_to_fine == 0:
        return None
    open_steps = max(1, int(coarse_to_fine * steps))
    return np.minimum(1.0, np.arange(1, steps + 1) / open_steps).astype(np.float32)


def snapshot_list(snapshot_steps, steps):
    """`snapshot_steps` as a sorted tuple of distinct ints in [1, steps], or an error naming it."""
    try:
        values = sorted(set(int(step) for step in snapshot_steps if step == int(step) and not isinstance(step, bool)))
        valid = len(values) == len(set(snapshot_steps)) and all(1 <= step <= steps for step in values)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"expected `snapshot_steps` to be ints in [1, steps={steps}], "
                         f"received: snapshot_steps={snapshot_steps!r}")
    return tuple(values)


Schedule = Union[float, Ramp, Tuple[float, ...]]


def _frozen_schedule(name, value):
    """A schedule as a hashable value: a number, a `Ramp` or a tuple of numbers (callables are evaluated by
    `MacoConfig.replace`'s caller, never stored: a frozen configuration must say what it does)."""
    if isinstance(value, Ramp):
        return value
    if isinstance(value, bool) or callable(value):
        raise TypeError(f"expected a number, a Ramp or a sequence of numbers, received: {name}={value!r}")
    if np.ndim(value) == 0:
        return validation.non_negative_float(name, value)
    return tuple(float(v) for v in np.ravel(value))


@dataclasses.dataclass(frozen=True)
class MacoConfig:
    """Every setting of a MACO run that changes its pictures, validated when it is made.

    The defaults are `maco`'s (the "fast" preset: a quarter of the paper's compute, chosen
    by `benchmarks/frontier.py`); `CONFIGS["paper"]` holds the paper's.

    Attributes:
        steps: optimization steps.
        image_size: (height, width) of the pictures (>= the model input).
        crops: K, random crops per picture per step.
        crop_scale: mean crop size, a fraction of the picture (`crop_scale_of`): a number,
            a `Ramp` or one value per step.
        crop_scale_std: standard deviation of the crop size.
        crop_scale_of: "area" or "side".
        noise: amplitude a of the U(-a, a) noise added to the picture before it is cut, as a
            fraction of `values_range`'s span; a number, a `Ramp` or one value per step.
        learning_rate: NAdam's learning rate, a number, a `Ramp` or one value per step.
        contrast: the standard deviation the picture is standardized to in the
            decorrelated colour space, before the sigmoid.
        coarse_to_fine: fraction of the steps over which the optimized frequencies widen
            from the lowest to all (0: off).
        values_range: (low, high) of the model's inputs.
        seed: int in [0, 2**31): a unit's draws are keyed by (seed, unit, step).
        antialias: cut crops at twice the model input and average 2x2 pixels.
        phase_as: "angle" (the paper's) or "complex": each phase a normalized complex number.
        pixel_statistics: None, "imagenet" or ((mean per channel), (std per channel)) in
            [0, 1]: each channel rendered with that mean and spread instead of `contrast`.
        relu_redirect_steps: for the first this many steps the model's ReLUs pass gradients
            through dead units (Lucid's redirected ReLU).
        Every setting runs on every backend.

    Example:
        >>> config = MacoConfig(steps=128, seed=0)
        >>> config.replace(crops=16).crops
        16
    """

    steps: int = 64
    image_size: Tuple[int, int] = (512, 512)
    crops: int = 32
    crop_scale: Schedule = Ramp(0.5, 0.25)
    crop_scale_std: float = 0.1
    crop_scale_of: str = "area"
    noise: Schedule = 0.1
    learning_rate: Schedule = Ramp(1.0, 0.1, "cosine")
    contrast: float = 0.7
    coarse_to_fine: float = 0.5
    values_range: Tuple[float, float] = (-1.0, 1.0)
    seed: int = 0
    antialias: bool = False
    phase_as: str = "angle"
    pixel_statistics: Optional[Union[str, Tuple[Tuple[float, ...], Tuple[float, ...]]]] = None
    relu_redirect_steps: int = 0

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("steps", validation.positive_int("steps", self.steps))
        set_("image_size", validation.image_size("image_size", self.image_size))
        set_("crops", validation.positive_int("crops", self.crops))
        set_("crop_scale_std", validation.non_negative_float("crop_scale_std", self.crop_scale_std))
        if self.crop_scale_of not in ("area", "side"):
            raise ValueError(f"expected crop_scale_of 'area' or 'side', received: crop_scale_of={self.crop_scale_of!r}")
        set_("contrast", validation.positive_float("contrast", self.contrast))
        set_("values_range", validation.values_range(self.values_range))
        set_("seed", validation.seed(self.seed))
        for name in ("crop_scale", "noise", "learning_rate"):
            set_(name, _frozen_schedule(name, getattr(self, name)))
        if isinstance(self.coarse_to_fine, (numbers.Real, np.floating)) and not isinstance(self.coarse_to_fine, bool):
            set_("coarse_to_fine", float(self.coarse_to_fine))
        set_("antialias", validation.boolean("antialias", self.antialias))
        if self.phase_as not in ("angle", "complex"):
            raise ValueError(f"expected phase_as 'angle' or 'complex', received: phase_as={self.phase_as!r}")
        set_("pixel_statistics", _frozen_pixel_statistics(self.pixel_statistics))
        if isinstance(self.relu_redirect_steps, bool) or not isinstance(self.relu_redirect_steps, numbers.Integral) \
                or self.relu_redirect_steps < 0:
            raise ValueError(f"expected an int >= 0, received: relu_redirect_steps={self.relu_redirect_steps!r}")
        set_("relu_redirect_steps", int(self.relu_redirect_steps))
        self.schedules()  # every schedule checked against the step count, once, here

    def replace(self, **changes):
        """A new configuration with `changes`, validated."""
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"expected settings of MacoConfig ({', '.join(f.name for f in dataclasses.fields(self))}), "
                            f"received: {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def schedules(self):
        """The per-step values a compiled loop takes: float32 arrays (steps,).

        Returns:
            dict with "crop_scale", "noise" (in model input units: the fraction times the
            span), "learning_rate" and "cutoff" (every frequency, 1, when coarse to fine is off).
        """
        crop_scale = schedule("crop_scale", self.crop_scale, self.steps)
        if np.any(crop_scale <= 0) or np.any(crop_scale > 1):
            raise ValueError(f"expected crop_scale in (0, 1] at every step, received: crop_scale={self.crop_scale!r}")
        low, high = self.values_range
        cutoffs = coarse_to_fine_cutoffs(self.coarse_to_fine, self.steps)
        return {
            "crop_scale": crop_scale,
            "noise": schedule("noise", self.noise, self.steps) * np.float32(high - low),
            "learning_rate": schedule("learning_rate", self.learning_rate, self.steps),
            "cutoff": np.ones((self.steps,), np.float32) if cutoffs is None else cutoffs,
        }

    def to_json(self):
        """A JSON-ready dict of every setting (for manifests); `from_json` reads it back."""
        data = dataclasses.asdict(self)
        for name in ("crop_scale", "noise", "learning_rate"):
            value = getattr(self, name)
            data[name] = {"ramp": dataclasses.asdict(value)} if isinstance(value, Ramp) else value
        return data

    @classmethod
    def from_json(cls, data):
        data = dict(data)
        for name in ("crop_scale", "noise", "learning_rate"):
            if isinstance(data.get(name), dict):
                data[name] = Ramp(**data[name]["ramp"])
        return cls(**data)


def _frozen_pixel_statistics(value):
    """None, "imagenet" or ((means), (stds)) as tuples of floats, or an error naming `pixel_statistics`.

    Values no sigmoid of a Gaussian has are refused here, not at the fit (`core.tone`); the
    channel count is checked against the model where one is known (`Visualizer`, `MacoImage`).
    """
    if value is None or value == "imagenet":
        return value
    return tone.resolve_pixel_statistics(value, None)


def configure(base=None, settings=None, default=None):
    """The one place a run's settings become a `MacoConfig`: `base` (default `default`, else the "fast"
    preset) with `settings`.

    Callable schedules (`step -> value`) are evaluated here, once per step, since a frozen
    configuration holds values. Without a `base`, the seed defaults to a random one (as
    `maco(seed=None)` always has); a given configuration keeps its own.

    Args:
        base: a `MacoConfig` or None.
        settings: dict of `MacoConfig` field overrides (others raise, naming them).

    Returns:
        A validated `MacoConfig`.
    """
    settings = dict(settings or {})
    if "learning_rate" in settings and settings["learning_rate"] is None:
        del settings["learning_rate"]  # None: not given (the configuration's rate, or a given optimizer's own)
    if base is None:
        settings.setdefault("seed", None)
        base = CONFIGS["fast"] if default is None else default
    elif not isinstance(base, MacoConfig):
        raise TypeError(f"expected a maco_keras.MacoConfig or None, received: config={type(base).__name__}")
    steps = validation.positive_int("steps", settings.get("steps", base.steps))
    for name in ("crop_scale", "noise", "learning_rate"):
        if callable(settings.get(name)) and not isinstance(settings[name], Ramp):
            settings[name] = tuple(float(value) for value in schedule(name, settings[name], steps))
    return base.replace(**settings)


CONFIGS = {
    "fast": MacoConfig(),
    # The paper's settings (Fel et al. 2023, Sec. 4 and App. B).
    "paper": MacoConfig(steps=256, crop_scale=0.25, learning_rate=1.0, coarse_to_fine=0.0, contrast=1.0),
}
"""Named configurations: `Visualizer(model, CONFIGS["paper"])`. "fast" is the default."""
