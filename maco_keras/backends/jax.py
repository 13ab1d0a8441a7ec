"""The JAX runner: a chunk of steps in one `jax.jit`, the model through `stateless_call`.

Inside one compiled function: `fori_loop` over the steps, `lax.map` over the units (each
unit its own computation, so its bits do not depend on the batch), and per unit `jax.vjp`
of the rendering and `value_and_grad` of its crops' score (a coupling term, diversity,
makes the units one computation: their crops in one batch, the sum of their scores). With several devices, each
unit's K crops are split across them by a sharding constraint on a one-axis mesh: XLA's
partitioner runs the model on each device's crops and sums their gradients, as
`strategy=` shares a step's crops on TensorFlow.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .. import models
from .. import taps


class Runner:
    """Compiles a `core.plan.Plan` for JAX.

    Args:
        plan: the configuration's `Plan`.
        compiled: the `CompiledObjective` (its model and taps).
        devices: the devices that share each unit's crops (default: every device of JAX's
            default backend); the crops per unit must be divisible by their count.
    """

    @staticmethod
    def sharing(devices=None):
        """How many devices share each unit's crops (`crop_chunk` is per device); an error for no devices."""
        if devices is not None and not len(devices):
            raise ValueError(f"expected at least one device, received: devices={devices!r}")
        return len(jax.devices() if devices is None else devices)

    def __init__(self, plan, compiled, devices=None):
        self.plan = plan
        self.model = compiled.model
        self.capture = taps.FeatureCapture(self.model, compiled.taps)
        self.devices = list(jax.devices() if devices is None else devices)
        count = self.sharing(self.devices)
        if plan.config.crops % count or (plan.crop_chunk or count) % count:
            raise ValueError(f"expected crops (and a crop chunk) divisible by the {count} devices that share them, "
                             f"received: crops={plan.config.crops}, crop_chunk={plan.crop_chunk}")
        self.mesh = Mesh(np.array(self.devices), ("crops",)) if len(self.devices) > 1 else None
        self.trace_count = 0
        self._start = jax.jit(self._start_steps, static_argnums=2)
        # The ReLU redirect (`relu_redirect_steps`) rewires the model's gradient: its steps are a compilation apart.
        self._advance = jax.jit(self._advance_steps, static_argnames="redirect")
        self._pictures = jax.jit(lambda phases, magnitudes: jax.lax.map(lambda args: plan.picture(*args),
                                                                        (phases, magnitudes)))

    def place(self, tree):
        """Arrays on the runner's devices (replicated over the mesh)."""
        if self.mesh is None:
            return jax.device_put(tree, self.devices[0])
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

    def weights(self):
        return self.place(([v.value for v in self.model.trainable_variables],
                           [v.value for v in self.model.non_trainable_variables]))

    def _start_steps(self, seed, keys, steps):
        phases = jax.lax.map(lambda key: self.plan.initial_phase(seed, key), keys)
        return self.plan.initial_state(phases, steps)

    def outputs(self, weights, crops):
        """The tapped outputs at `crops`, the crops split across the devices when there are several."""
        if self.mesh is not None:
            crops = jax.lax.with_sharding_constraint(crops, NamedSharding(self.mesh, PartitionSpec("crops")))
        trainable, non_trainable = weights
        return self.capture.outputs_of(
            lambda: self.model.stateless_call(trainable, non_trainable, crops, training=False)[0])

    def unit_step(self, weights, phase, magnitude, key, masks, scales, seed, step, scale, amplitude):
        """One unit's (score, d score / d image, d score / d phase) at one step."""
        image, pullback = jax.vjp(lambda p: self.plan.picture(p, magnitude), phase)
        if self.plan.crop_chunk is None:
            score, image_gradient = jax.value_and_grad(
                lambda image: self.plan.score(self.outputs(weights, self.plan.crops(image, seed, key, step, scale,
                                                                                    amplitude)), masks, scales))(image)
        else:
            # A chunk of crops at a time, in a loop XLA does not unroll: one chunk's activations are alive at once.
            # The noise is additive, so the gradient at the noisy picture is the picture's.
            noisy, boxes = self.plan.noisy_and_boxes(image, seed, key, step, scale, amplitude)

            def chunk(index, totals):
                chunk_boxes = self.plan.chunk_boxes(boxes, index)
                share, gradient = jax.value_and_grad(
                    lambda noisy: self.plan.chunk_score(self.outputs(weights, self.plan.cut(noisy, chunk_boxes)),
                                                        masks, scales))(noisy)
                return totals[0] + share, totals[1] + gradient

            score, image_gradient = jax.lax.fori_loop(
                0, self.plan.num_chunks, chunk, (jax.numpy.float32(0.0), jax.numpy.zeros_like(noisy)))
        (phase_gradient,) = pullback(image_gradient)
        return score, image_gradient, phase_gradient

    def group_step(self, weights, phases, magnitudes, keys, masks, scales, seed, step, scale, amplitude):
        """Every unit's (score, d total / d image, d total / d phase) at one step, the units one computation (a
        coupling term: diversity)."""
        images, pullback = jax.vjp(
            lambda p: jax.lax.map(lambda args: self.plan.picture(*args), (p, magnitudes)), phases)

        def total_of(images):
            crops = self.plan.group_crops(images, seed, keys, step, scale, amplitude)
            scores = self.plan.group_score(self.outputs(weights, crops), masks, scales)
            return jax.numpy.sum(scores), scores

        (_, scores), image_gradients = jax.value_and_grad(total_of, has_aux=True)(images)
        (phase_gradients,) = pullback(image_gradients)
        return scores, image_gradients, phase_gradients

    def step_of_units(self, weights, phases, magnitudes, keys, masks, scales, seed, step, scale, amplitude):
        """Every unit's (score, image gradient, phase gradient): each its own computation, or one if coupled."""
        if self.plan.coupled:
            return self.group_step(weights, phases, magnitudes, keys, masks, scales, seed, step, scale, amplitude)

        def unit(args):
            phase, magnitude, key, unit_masks, unit_scales = args
            return self.unit_step(weights, phase, magnitude, key, unit_masks, unit_scales, seed, step, scale,
                                  amplitude)

        return jax.lax.map(unit, (phases, magnitudes, keys, masks, scales))

    def _advance_steps(self, weights, state, start, stop, seed, keys, magnitudes, masks, scales, schedules,
                       redirect=False):
        self.trace_count += 1  # Python side effect: runs only while tracing.

        def body(step, state):
            scores, image_gradients, phase_gradients = self.step_of_units(
                weights, state[0], magnitudes, keys, masks, scales, seed, step, schedules["crop_scale"][step],
                schedules["noise"][step])
            return self.plan.update(state, step, scores, image_gradients, phase_gradients,
                                    schedules["learning_rate"][step], schedules["cutoff"][step])

        with models.redirecting_relus(self.model, redirect):  # traced inside
            return jax.lax.fori_loop(start, stop, body, state)

    def start(self, seed, keys, steps):
        self._placed_weights = self.weights()  # once per run, not at every chunk of steps
        return self._start(self.place(np.int32(seed)), self.place(keys), steps)

    def advance(self, state, start, stop, seed, keys, magnitudes, masks, scales, schedules):
        arguments = (self.place(np.int32(seed)), self.place(keys), self.place(magnitudes), self.place(list(masks)),
                     self.place(scales), self.place(schedules))
        for first, end, redirect in self.plan.spans(start, stop):
            state = self._advance(self._placed_weights, state, self.place(np.int32(first)),
                                  self.place(np.int32(end)), *arguments, redirect=redirect)
        return state

    def pictures(self, phases, magnitudes):
        return np.asarray(self._pictures(phases, self.place(magnitudes)))

    def step_gradients(self, phases, step, seed, keys, magnitudes, masks, scales, scale, amplitude):
        """Every unit's (score, image gradient, phase gradient) at one step, without an update (for tests)."""
        run = jax.jit(lambda weights, args: self.step_of_units(weights, *args, seed, step, scale, amplitude))
        with models.redirecting_relus(self.model, step < self.plan.config.relu_redirect_steps):  # traced inside
            parts = run(self.weights(), self.place((phases, magnitudes, keys, list(masks), scales)))
        return [np.asarray(x) for x in parts]
