"""The TensorFlow runner of the backend-neutral core: a `tf.function` per chunk of steps.

This runs the same per-unit computation as JAX and PyTorch (the same draws, the same
crops as matrix products), so the three agree to float tolerance; `maco` on TensorFlow
still runs the established engine (`maco_keras.optimization`: `tf.distribute`, Xplique
objectives, the C++ crop-gradient kernel), which draws the same inputs from the same
generator and agrees with this runner to float tolerance (tests).
"""

import numpy as np
import tensorflow as tf
from keras import ops

from .. import models
from .. import taps


class Runner:
    """Compiles a `core.plan.Plan` with `tf.function`.

    Args:
        plan: the configuration's `Plan`.
        compiled: the `CompiledObjective` (its model and taps).
        devices: unused (one device).
    """

    @staticmethod
    def sharing(devices=None):
        """How many devices share each unit's crops: one (`maco`'s `strategy=` shares them on TensorFlow)."""
        return 1

    def __init__(self, plan, compiled, devices=None):
        self.plan = plan
        self.model = compiled.model
        self.capture = taps.FeatureCapture(self.model, compiled.taps)
        self.trace_count = 0
        self._advance = tf.function(self._advance_steps)

    def start(self, seed, keys, steps):
        phases = tf.stack([self.plan.initial_phase(seed, int(key)) for key in keys])
        return self.plan.initial_state(phases, steps)

    def unit_step(self, phase, magnitude, key, masks, scales, seed, step, scale, amplitude):
        """One unit's (score, d score / d image, d score / d phase) at one step."""
        if self.plan.crop_chunk is None:
            with tf.GradientTape() as tape:
                tape.watch(phase)
                image = self.plan.picture(phase, magnitude)
                crops = self.plan.crops(image, seed, key, step, scale, amplitude)
                score = self.plan.score(self.capture(crops), masks, scales)
            image_gradient, phase_gradient = tape.gradient(score, [image, phase])
            return score, image_gradient, phase_gradient
        with tf.GradientTape() as tape:
            tape.watch(phase)
            image = self.plan.picture(phase, magnitude)
        # The noise is additive, so the gradient at the noisy picture is the picture's.
        noisy, boxes = self.plan.noisy_and_boxes(image, seed, key, step, scale, amplitude)

        def chunk(index, score, image_gradient):
            with tf.GradientTape() as chunk_tape:
                chunk_tape.watch(noisy)
                share = self.plan.chunk_score(self.capture(self.plan.cut(noisy, self.plan.chunk_boxes(boxes, index))),
                                              masks, scales)
            return index + 1, score + share, image_gradient + chunk_tape.gradient(share, noisy)

        # One chunk at a time (TF would otherwise overlap up to 10): one chunk's activations are alive at once.
        _, score, image_gradient = tf.while_loop(lambda index, *_: index < self.plan.num_chunks, chunk,
                                                 (tf.constant(0), tf.constant(0.0), tf.zeros_like(noisy)),
                                                 parallel_iterations=1)
        phase_gradient = tape.gradient(image, phase, output_gradients=image_gradient)
        return score, image_gradient, phase_gradient

    def group_step(self, phases, magnitudes, keys, masks, scales, seed, step, scale, amplitude):
        """Every unit's (score, d total / d image, d total / d phase) at one step, the units one computation (a
        coupling term: diversity)."""
        with tf.GradientTape() as tape:
            tape.watch(phases)
            images = tf.stack([self.plan.picture(phases[index], magnitudes[index]) for index in range(phases.shape[0])])
            crops = self.plan.group_crops(images, seed, keys, step, scale, amplitude)
            scores = self.plan.group_score(self.capture(crops), masks, scales)
            total = tf.reduce_sum(scores)
        image_gradients, phase_gradients = tape.gradient(total, [images, phases])
        return scores, image_gradients, phase_gradients

    def _units(self, phases, step, seed, keys, magnitudes, masks, scales, scale, amplitude):
        if self.plan.coupled:
            return self.group_step(phases, magnitudes, keys, masks, scales, seed, step, scale, amplitude)
        # Unrolled over the N units (N is static in a trace): each unit its own computation.
        results = [self.unit_step(phases[index], magnitudes[index], keys[index], [mask[index] for mask in masks],
                                  scales[index], seed, step, scale, amplitude) for index in range(phases.shape[0])]
        return [tf.stack(part) for part in zip(*results)]

    def _advance_steps(self, state, start, stop, seed, keys, magnitudes, masks, scales, schedules, redirect=False):
        self.trace_count += 1  # Python side effect: runs only while tracing (a Python `redirect` is traced apart).

        def body(step, state):
            scores, image_gradients, phase_gradients = self._units(
                state[0], step, seed, keys, magnitudes, masks, scales, schedules["crop_scale"][step],
                schedules["noise"][step])
            state = self.plan.update(state, step, scores, image_gradients, phase_gradients,
                                     schedules["learning_rate"][step], schedules["cutoff"][step])
            return step + 1, state

        with models.redirecting_relus(self.model, redirect):  # traced inside
            _, state = tf.while_loop(lambda step, _: step < stop, body, (start, state))
        return state

    def advance(self, state, start, stop, seed, keys, magnitudes, masks, scales, schedules):
        arguments = (tf.constant(seed, tf.int32), tf.constant(keys, tf.int32), tf.constant(magnitudes),
                     [tf.constant(mask) for mask in masks], tf.constant(scales),
                     {name: tf.constant(values) for name, values in schedules.items()})
        for first, end, redirect in self.plan.spans(start, stop):
            state = self._advance(state, tf.constant(first, tf.int32), tf.constant(end, tf.int32), *arguments,
                                  redirect=redirect)
        return state

    def pictures(self, phases, magnitudes):
        return np.stack([ops.convert_to_numpy(self.plan.picture(phases[index], magnitudes[index]))
                         for index in range(phases.shape[0])])

    def step_gradients(self, phases, step, seed, keys, magnitudes, masks, scales, scale, amplitude):
        """Every unit's (score, image gradient, phase gradient) at one step, without an update (for tests)."""
        with models.redirecting_relus(self.model, step < self.plan.config.relu_redirect_steps):
            parts = self._units(tf.constant(phases), tf.constant(step, tf.int32), tf.constant(seed, tf.int32),
                                tf.constant(keys, tf.int32), tf.constant(magnitudes), [tf.constant(m) for m in masks],
                                tf.constant(scales), tf.constant(scale, tf.float32),
                                tf.constant(amplitude, tf.float32))
        return [part.numpy() for part in parts]
