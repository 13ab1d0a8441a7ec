"""The PyTorch runner: autograd on one device, a step at a time.

Eager PyTorch has no compiled loop over steps, so a step is Python: per unit, its picture
is rendered from a leaf phase, its crops go through the Keras model (a `torch.nn.Module`
on this backend) and `torch.autograd.grad` gives the picture's and the phase's gradients
only (never the model weights'). `torch.compile` is not used: on a Keras model it did not
pay (`benchmarks/torch_compile.py`, the shared MobileNetV1-0.25 on the 2-core CPU: 30 to
64 s to compile, dynamo hitting its recompile limit on Keras's layers, then 0.24 s per
forward and backward of 32 crops against eager's 0.09 s).
"""

import numpy as np
import torch
from keras import ops

from .. import models
from .. import taps


class Runner:
    """Runs a `core.plan.Plan` with PyTorch's autograd.

    Args:
        plan: the configuration's `Plan`.
        compiled: the `CompiledObjective` (its model and taps).
        devices: unused (one device: Keras's own, CUDA when there is one).
    """

    @staticmethod
    def sharing(devices=None):
        """How many devices share each unit's crops: one (an error for more)."""
        if devices is not None and len(devices) > 1:
            raise ValueError(f"expected one device on PyTorch, received: devices={devices!r}")
        return 1

    def __init__(self, plan, compiled, devices=None):
        self.sharing(devices)  # one device
        self.plan = plan
        self.model = compiled.model
        self.capture = taps.FeatureCapture(self.model, compiled.taps)
        self.trace_count = 0  # nothing is traced

    def start(self, seed, keys, steps):
        with torch.no_grad():
            phases = ops.stack([self.plan.initial_phase(seed, int(key)) for key in keys])
            return self.plan.initial_state(phases, steps)

    def unit_step(self, phase, magnitude, key, masks, scales, seed, step, scale, amplitude):
        """One unit's (score, d score / d image, d score / d phase) at one step."""
        phase = phase.detach().requires_grad_(True)
        image = self.plan.picture(phase, magnitude)
        if self.plan.crop_chunk is None:
            crops = self.plan.crops(image, seed, key, step, scale, amplitude)
            score = self.plan.score(self.capture(crops), masks, scales)
            image_gradient, phase_gradient = torch.autograd.grad(score, [image, phase])
            return score.detach(), image_gradient, phase_gradient
        # A chunk of crops at a time: each chunk's graph is freed before the next runs. The noise is additive, so
        # the gradient at the noisy picture is the picture's.
        noisy, boxes = self.plan.noisy_and_boxes(image.detach(), seed, key, step, scale, amplitude)
        noisy.requires_grad_(True)
        score, image_gradient = 0.0, torch.zeros_like(noisy)
        for index in range(self.plan.num_chunks):
            share = self.plan.chunk_score(self.capture(self.plan.cut(noisy, self.plan.chunk_boxes(boxes, index))),
                                          masks, scales)
            (gradient,) = torch.autograd.grad(share, [noisy])
            score, image_gradient = score + share.detach(), image_gradient + gradient
        (phase_gradient,) = torch.autograd.grad(image, [phase], grad_outputs=image_gradient)
        return score, image_gradient, phase_gradient

    def group_step(self, phases, magnitudes, keys, masks, scales, seed, step, scale, amplitude):
        """Every unit's (score, d total / d image, d total / d phase) at one step, the units one computation (a
        coupling term: diversity)."""
        phases = phases.detach().requires_grad_(True)
        images = torch.stack([self.plan.picture(phases[index], magnitudes[index]) for index in range(len(keys))])
        crops = self.plan.group_crops(images, seed, [int(key) for key in keys], step, scale, amplitude)
        scores = self.plan.group_score(self.capture(crops), masks, scales)
        image_gradients, phase_gradients = torch.autograd.grad(scores.sum(), [images, phases])
        return scores.detach(), image_gradients, phase_gradients

    def _step(self, phases, step, seed, keys, magnitudes, masks, scales, scale, amplitude):
        if self.plan.coupled:
            return self.group_step(phases, magnitudes, keys, masks, scales, seed, step, scale, amplitude)
        results = [self.unit_step(phases[index], magnitudes[index], int(key), [mask[index] for mask in masks],
                                  scales[index], seed, step, scale, amplitude)
                   for index, key in enumerate(keys)]
        return [torch.stack(part) for part in zip(*results)]

    def advance(self, state, start, stop, seed, keys, magnitudes, masks, scales, schedules):
        magnitudes = ops.convert_to_tensor(magnitudes)
        masks = [ops.convert_to_tensor(mask) for mask in masks]
        scales = ops.convert_to_tensor(scales)
        schedules = {name: [float(value) for value in values] for name, values in schedules.items()}
        for step in range(start, stop):
            scores, image_gradients, phase_gradients = self.step_gradients(
                state[0], step, seed, keys, magnitudes, masks, scales, schedules["crop_scale"][step],
                schedules["noise"][step], as_numpy=False)
            with torch.no_grad():
                state = self.plan.update(state, step, scores, image_gradients, phase_gradients,
                                         schedules["learning_rate"][step], schedules["cutoff"][step])
        return state

    def pictures(self, phases, magnitudes):
        with torch.no_grad():
            magnitudes = ops.convert_to_tensor(magnitudes)
            return np.stack([ops.convert_to_numpy(self.plan.picture(phases[index], magnitudes[index]))
                             for index in range(phases.shape[0])])

    def step_gradients(self, phases, step, seed, keys, magnitudes, masks, scales, scale, amplitude, as_numpy=True):
        """Every unit's (score, image gradient, phase gradient) at one step, without an update (NumPy: for tests)."""
        # The ReLU redirect's steps run inside its block (their autograd graphs hold the redirected rule).
        with models.redirecting_relus(self.model, step < self.plan.config.relu_redirect_steps):
            parts = self._step(ops.convert_to_tensor(phases), step, seed, keys, ops.convert_to_tensor(magnitudes),
                               [ops.convert_to_tensor(mask) for mask in masks], ops.convert_to_tensor(scales),
                               scale, amplitude)
        return [ops.convert_to_numpy(part) for part in parts] if as_numpy else parts
