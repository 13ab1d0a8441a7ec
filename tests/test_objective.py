import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from maco_keras import Objective
from maco_keras.objective import compile_objective


def test_composition_order_names_and_multipliers(tiny_model):
    objective = Objective.neuron(tiny_model, -1, [1, 2]) + 0.5 * Objective.channel(tiny_model, "conv2", [0, 1, 2])
    compiled = compile_objective(objective)
    assert compiled.num_objectives == 6
    assert compiled.names[0] == "Neuron#logits_1 & Channel#conv2_0"
    assert compiled.names[-1] == "Neuron#logits_2 & Channel#conv2_2"
    np.testing.assert_allclose(compiled.multipliers, [1.0, 0.5])

    # Scores on known outputs, 2 crops per objective in crop-major order: the combination
    # is multiplier_a * f_a + multiplier_b * f_b, averaged over crops.
    logits = tf.tile(tf.range(10, dtype=tf.float32)[None], [12, 1])
    conv = tf.ones((12, 14, 14, 16)) * tf.range(16, dtype=tf.float32)
    masks = [tf.constant(mask) for mask in compiled.masks]
    loss, values = compiled.scores([logits, conv], masks, tf.constant(compiled.multipliers), num_crops=2)
    # neuron reducer = mean over the layer of (output * mask) = unit / 10; channel = c / 16.
    expected = [1.0 * (u / 10) + 0.5 * (c / 16) for u in (1, 2) for c in (0, 1, 2)]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    # In the units' own values: the logit itself, the channel's spatial mean.
    expected = [1.0 * u + 0.5 * c for u in (1, 2) for c in (0, 1, 2)]
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-6)


def test_reported_scores_are_the_logits_and_channel_means(tiny_model):
    import maco_keras

    # A plain callable that returns the raw value, with the same seed and the same unit name (the
    # draws are keyed by it): one step scores the same initial images on the same crops, so the
    # reported scores must agree.
    features = tf.keras.Model(tiny_model.inputs, tiny_model.get_layer("conv2").output)
    settings = dict(steps=1, image_size=40, crops=4, seed=3, verbose=False, return_visualization=True)
    for objective, raw in (
        (Objective.neuron(tiny_model, -1, [4]), lambda x: tiny_model(x)[:, 4]),
        (Objective.channel(tiny_model, "conv2", [5]), lambda x: tf.reduce_mean(features(x)[..., 5], axis=(1, 2))),
    ):
        ours = maco_keras.maco(objective, **settings)
        same_name = dataclasses.replace(compile_objective(raw, input_shape=(32, 32, 3)), names=ours.names)
        reference = maco_keras.maco(same_name, **settings)
        np.testing.assert_allclose(ours.scores, reference.scores, rtol=1e-4, atol=1e-6)


def test_keras_model_shortcut_means_logits(tiny_model):
    compiled = compile_objective(tiny_model, units=[3, 7])
    assert compiled.num_objectives == 2 and compiled.input_shape == (32, 32, 3)
    with pytest.raises(ValueError, match="units"):
        compile_objective(tiny_model, units=[10])


def test_same_structure_same_key(tiny_model):
    first = compile_objective(Objective.channel(tiny_model, "conv2", [0, 1]))
    second = compile_objective(Objective.channel(tiny_model, "conv2", [5, 9]))
    other_layer = compile_objective(Objective.channel(tiny_model, "conv1", [0, 1]))
    assert first.key == second.key
    assert first.key != other_layer.key
