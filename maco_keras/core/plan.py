"""What one configuration computes, unit by unit, as pure `keras.ops` functions that each backend compiles.

A step of unit i, on every backend:

    image  = render(phase_i)                                   # the picture
    crops  = cut(image + noise(seed, key_i, step), boxes(seed, key_i, step))   # antialias: at 2x, then 2x2 means
    score  = mean over crops of the objective at the model's tapped outputs
    d score / d image  (the transparency),  d score / d phase_i  (by the backend's autodiff)
             (`crop_chunk`: the crops through the model that many at a time, each chunk's
              share of the score and its gradient added up, so one chunk's activations are alive)
    phase_i <- NAdam ascent step on the frequencies below this step's cutoff

Every unit is a computation of its own shapes (its picture, its K crops through the
model), so its bits do not depend on the other units of its batch; `update` is
elementwise. A coupling term (diversity: each crop's style against the other copies')
makes a batch's units one computation instead: their crops go through the model together
and the sum of their scores is differentiated (`group_crops`, `group_score`); a failed
unit's crops then count as unlike every other, so its NaN stays its own there too. A unit whose score or gradient is not finite is frozen from that step on,
and the others go on (masks select, they never multiply a NaN by 0).
"""

from keras import ops

from .. import validation
from . import crops as crops_lib
from . import draws
from . import nadam
from . import objectives as objectives_lib
from . import render
from . import tone as tone_lib


class Plan:
    """One configuration's per-unit computations.

    Args:
        config: a `MacoConfig`.
        compiled: a `core.objectives.CompiledObjective` (its structure; its masks, divisors and weights are arguments).
        input_shape: (h, w, C) of the model input.
        model_dtype: the model's compute dtype (crops are cast to it).
        crop_chunk: None (a unit's K crops through the model at once), or the crops at a
            time, a divisor of K (K / crop_chunk chunks); it bounds a step's memory and
            changes the score and gradients by float rounding only.
    """

    def __init__(self, config, compiled, input_shape, model_dtype="float32", crop_chunk=None):
        self.config = config
        self.structure = compiled.structure
        self.input_size = tuple(int(side) for side in input_shape[:2])
        self.channels = int(input_shape[2])
        self.image_size = config.image_size
        # `phase_as="complex"`: each frequency's phase a (real, imaginary) pair on a last axis of 2.
        self.angles_shape = (self.channels, *render.spectrum_shape(self.image_size))
        self.phase_shape = self.angles_shape + ((2,) if config.phase_as == "complex" else ())
        radius = render.frequency_radius(self.image_size)
        self.radius = radius[..., None] if config.phase_as == "complex" else radius
        self.model_dtype = model_dtype or "float32"
        self.coupled = any(kind in objectives_lib.COUPLING_KINDS for _, kind, _ in self.structure)
        self.tone = tone_lib.tone(config.pixel_statistics, self.channels)  # fitted once; None: one contrast
        # `antialias`: crops cut at twice the model input, then each 2x2 block averaged (a box filter).
        self.cut_size = tuple(side * (2 if config.antialias else 1) for side in self.input_size)
        if crop_chunk is not None:
            crop_chunk = validation.positive_int("crop_chunk", crop_chunk)
        self.crop_chunk = None if crop_chunk is None or crop_chunk == config.crops else crop_chunk
        if self.crop_chunk is not None and config.crops % self.crop_chunk:
            raise ValueError(f"expected crop_chunk to divide crops={config.crops}, received: crop_chunk={crop_chunk}")
        if self.crop_chunk is not None and self.coupled:
            raise ValueError("expected crop_chunk=None with a diversity term (it compares every crop of a step), "
                             f"received: crop_chunk={crop_chunk}")
        self.num_chunks = 1 if self.crop_chunk is None else config.crops // self.crop_chunk

    def initial_phase(self, seed, key):
        """`phase_shape`: unit `key`'s initial phase, angles uniform in [-pi, pi) (as complex numbers if so held)."""
        return self.as_phase(render.initial_phase(
            draws.uniform(draws.stream_key(seed, key, draws.INITIAL_STEP, draws.PHASE), self.angles_shape)))

    def as_phase(self, angles):
        """Angles (..., C, H, W // 2 + 1) as the configuration's phase holds them (`phase_as`)."""
        return render.phase_as(angles, self.config.phase_as)

    def picture(self, phase, magnitude):
        """(H, W, C) in `values_range`."""
        return render.render(phase, magnitude, self.image_size, self.config.contrast, self.config.values_range,
                             self.tone)

    def crops(self, image, seed, key, step, scale, amplitude):
        """(K, h, w, C): the model's inputs of unit `key` at `step`, noise added to the picture before it is cut."""
        return self.cut(*self.noisy_and_boxes(image, seed, key, step, scale, amplitude))

    def noisy_and_boxes(self, image, seed, key, step, scale, amplitude):
        """(the picture with unit `key`'s noise at `step` (H, W, C), its K boxes (K, 4))."""
        boxes = crops_lib.boxes(seed, key, step, self.config.crops, scale, self.config)
        return ops.add(image, crops_lib.noise(seed, key, step, tuple(image.shape), amplitude)), boxes

    def chunk_boxes(self, boxes, index):
        """(crop_chunk, 4): chunk `index`'s boxes (a Python int or a traced int32)."""
        return ops.slice(boxes, (ops.multiply(index, self.crop_chunk), 0), (self.crop_chunk, 4))

    def cut(self, noisy, boxes):
        """(B, h, w, C): the crops of `noisy` at `boxes`, resized to the model input, in the model's dtype."""
        crops = crops_lib.cut(noisy, boxes, self.cut_size)
        if self.config.antialias:
            (height, width), count = self.input_size, crops.shape[0]
            crops = ops.mean(ops.reshape(crops, (count, height, 2, width, 2, self.channels)), axis=(2, 4))
        return ops.cast(crops, self.model_dtype)

    def score(self, outputs, masks, scales):
        """The unit's score from the model's outputs at its crops (`scales`: its terms' divisors and weights)."""
        return objectives_lib.unit_score(outputs, self.structure, masks, scales)

    def chunk_score(self, outputs, masks, scales):
        """A chunk of the unit's crops' share of its score: the chunks' shares add up to `score` (up to rounding)."""
        return objectives_lib.unit_score(outputs, self.structure, masks, scales, self.config.crops)

    def group_crops(self, images, seed, keys, step, scale, amplitude):
        """(N * K, h, w, C): every unit's `crops` (its own draws), unit-major, for a coupled objective."""
        return ops.concatenate([self.crops(images[unit], seed, keys[unit], step, scale, amplitude)
                                for unit in range(images.shape[0])], axis=0)

    def group_score(self, outputs, masks, scales):
        """(N,): every unit's score from the outputs at `group_crops` (masks (N, ...), scales (N, terms, 2))."""
        return objectives_lib.group_scores(outputs, self.structure, masks, scales, self.config.crops)

    def spans(self, start, stop):
        """Steps start .. stop - 1 as [(first, end, redirect)]: the runs of steps with and without the ReLU redirect
        (on for the first `relu_redirect_steps`), each compiled apart (the redirect rewires the model's gradient)."""
        switch = min(max(self.config.relu_redirect_steps, start), stop)
        return [(first, end, redirect) for first, end, redirect in ((start, switch, True), (switch, stop, False))
                if first < end]

    def initial_state(self, phases, steps):
        """The loop's state: (phases, NAdam state, transparency sum, scores history, failed step per unit)."""
        num_units = phases.shape[0]
        return (phases, nadam.initial_state(phases),
                ops.zeros((num_units, *self.image_size, self.channels), "float32"),
                ops.zeros((steps, num_units), "float32"),
                ops.full((num_units,), -1, "int32"))

    def update(self, state, step, scores, image_gradients, phase_gradients, learning_rate, cutoff):
        """The state after a step, from every unit's score (N,) and gradients (N, ...).

        Gradient ascent on the phases whose frequency radius is at most `cutoff`; units
        whose score or gradients are not finite are frozen, with the step recorded.
        """
        phases, optimizer_state, transparency, history, failed = state
        phase_axes = tuple(range(1, len(phases.shape)))
        finite = ops.logical_and(ops.isfinite(scores),
                                 ops.logical_and(ops.all(ops.isfinite(phase_gradients), axis=phase_axes),
                                                 ops.all(ops.isfinite(image_gradients), axis=(1, 2, 3))))
        failed = ops.where(ops.logical_and(ops.less(failed, 0), ops.logical_not(finite)), ops.cast(step, "int32"),
                           failed)
        active = ops.less(failed, 0)
        selected = ops.cast(ops.less_equal(self.radius, cutoff), "float32")
        keep = ops.reshape(active, (-1,) + (1,) * len(phase_axes))
        ascent = ops.multiply(ops.negative(ops.where(keep, phase_gradients, 0.0)), selected)
        new_phases, (momentum, velocity, u_product) = nadam.update(phases, ascent, optimizer_state, step,
                                                                   learning_rate)
        momentum = ops.where(keep, momentum, optimizer_state[0])
        velocity = ops.where(keep, velocity, optimizer_state[1])
        phases = ops.where(keep, new_phases, phases)
        transparency = ops.add(transparency, ops.where(active[:, None, None, None], ops.abs(image_gradients), 0.0))
        history = ops.slice_update(history, (step, 0), ops.expand_dims(scores, 0))
        return phases, (momentum, velocity, u_product), transparency, history, failed
