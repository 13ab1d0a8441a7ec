"""What a run returns (`Visualization`) and how it stops (`NonFiniteError`), on every backend."""

import dataclasses
from typing import Dict, List, Tuple

import numpy as np


@dataclasses.dataclass
class Visualization:
    """What an optimization returns.

    Attributes:
        images: float32 array (N, H, W, C) in the model's `values_range`.
        transparency: float32 array (N, H, W, C), mean |dL/dx| over the steps: where the
            model looked (the paper's "transparency for free").
        scores: float32 array (steps, N), each objective's score per step, mean over the step's crops,
            in the units' own values (a logit as the logit, a channel as its spatial mean).
        names: the N objective names.
        snapshots: {step: (images, transparency)} after each of the run's `snapshot_steps`
            (empty by default): with constant settings, what a run of that many steps gives.
    """

    images: np.ndarray
    transparency: np.ndarray
    scores: np.ndarray
    names: List[str]
    snapshots: Dict[int, Tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)

    @classmethod
    def concatenate(cls, visualizations):
        """One `Visualization` of the objectives of several, in order."""
        if len(visualizations) == 1:
            return visualizations[0]
        return cls(
            images=np.concatenate([v.images for v in visualizations]),
            transparency=np.concatenate([v.transparency for v in visualizations]),
            scores=np.concatenate([v.scores for v in visualizations], axis=1),
            names=[name for v in visualizations for name in v.names],
            snapshots={step: tuple(np.concatenate([v.snapshots[step][i] for v in visualizations]) for i in (0, 1))
                       for step in visualizations[0].snapshots},
        )


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; `partial` holds the last finite state."""

    def __init__(self, step, partial, units=None, unit_steps=None):
        if units:
            message = (f"Non-finite loss or gradient of {', '.join(units)}: each was frozen at its last finite "
                       "step and the other units ran to the end. Every unit's picture is in this error's "
                       "`partial` attribute.")
        else:
            message = (f"Non-finite loss or gradient at step {step}: the optimization stopped there. "
                       "The images of the last finite step are in this error's `partial` attribute.")
        super().__init__(message)
        self.step = step
        self.partial = partial
        self.units = list(units or [])
        # {objective name: the step it went non-finite at}, where units were frozen one by one.
        self.unit_steps = dict(unit_steps or {})
