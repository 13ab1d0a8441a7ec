"""The opt-in ReLU gradient redirect: dead units get a gradient in the first steps, then plain ReLU."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import maco_keras
from maco_keras import Objective, models, optimization, seeding
from maco_keras import objective as objective_lib
from maco_keras.augmentation import Augmentation
from maco_keras.parameterization import MacoImage

from conftest import build_tiny_model


@pytest.fixture(scope="module")
def dead_model():
    """The tiny model with channel 3 of conv2 dead: a bias so negative that its ReLU never fires."""
    model = build_tiny_model()
    kernel, bias = model.get_layer("conv2").get_weights()
    bias[3] = -100.0
    model.get_layer("conv2").set_weights([kernel, bias])
    return model


def _phase_gradient(model, redirect, step, redirect_steps=4):
    compiled = objective_lib.compile_objective(Objective.channel(model, "conv2", [3]), redirect_relu=redirect)
    images = MacoImage(1, 40, values_range=(-1, 1))
    loop = optimization.OptimizationLoop(images, compiled, 2, Augmentation(), optimization.default_optimizer(),
                                         relu_redirect_steps=redirect_steps if redirect else 0)
    images.reset(0)
    scores, _, gradients = loop.step_gradients(step, 0, compiled.masks, compiled.multipliers, 0.5, 0.0)
    return scores, gradients[0]


def test_redirect_gives_a_gradient_where_plain_relu_gives_none(dead_model):
    scores, plain = _phase_gradient(dead_model, redirect=False, step=0)
    assert scores[0] == 0.0 and np.all(plain == 0.0)
    _, redirected = _phase_gradient(dead_model, redirect=True, step=0)
    assert np.abs(redirected).max() > 0.0
    # After the first `relu_redirect_steps` steps the gradient is plain ReLU's again.
    _, later = _phase_gradient(dead_model, redirect=True, step=4)
    assert np.all(later == 0.0)


def test_redirected_copy_computes_the_same_forward_pass(dead_model):
    copy = models.with_redirected_relu(dead_model)
    inputs = tf.random.uniform((2, 32, 32, 3), -1, 1, seed=1)
    np.testing.assert_array_equal(copy(inputs).numpy(), dead_model(inputs).numpy())
    assert [layer.activation.__name__ for layer in copy.layers[:2]] == ["redirected_relu"] * 2
    relu6 = keras.Sequential([keras.Input((4,)), keras.layers.ReLU(6.0)])
    assert type(models.with_redirected_relu(relu6).layers[-1]).__name__ == "RedirectedReLU"


def test_maco_wakes_a_dead_channel_with_the_redirect(dead_model):
    objective = Objective.channel(dead_model, "conv2", [3])
    kwargs = dict(steps=12, image_size=40, crops=2, seed=0, verbose=False)
    start = MacoImage(1, 40, values_range=(-1, 1), contrast=maco_keras.PRESETS["fast"].contrast)  # maco's default
    start.reset(0, unit_keys=seeding.unit_keys(objective_lib.compile_objective(objective).names))  # the run's start
    still, _ = maco_keras.maco(objective, **kwargs)
    np.testing.assert_array_equal(still, start().numpy())  # no gradient: nothing moves
    moved, _ = maco_keras.maco(objective, relu_redirect_steps=6, **kwargs)
    assert np.abs(moved - start().numpy()).max() > 0.01
    with pytest.raises(ValueError, match="relu_redirect_steps"):
        maco_keras.maco(objective, relu_redirect_steps=-1, **kwargs)
    with pytest.raises(ValueError, match="callable"):
        maco_keras.maco(lambda x: dead_model(x)[:, 0], input_shape=(32, 32, 3), relu_redirect_steps=2, **kwargs)


def test_the_any_backend_redirect_swaps_only_what_an_instance_holds_and_restores_it():
    """`models.redirecting_relus` (what a `Visualizer` runs on every backend): a ReLU inside an RNN's cell is
    swapped (the RNN layer's own `activation` is a read-only property), everything is itself again after, even
    when the block raises, and the forward pass is plain ReLU's."""
    inputs = keras.Input((5, 3))
    x = keras.layers.LSTM(4, activation="relu", return_sequences=True, name="lstm")(inputs)
    x = keras.layers.Activation("relu", name="act")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x)))
    data = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    cell = model.get_layer("lstm").cell
    with models.redirecting_relus(model):
        assert cell.activation is models.redirected_relu_any_backend
        assert model.get_layer("act").activation is models.redirected_relu_any_backend
        np.testing.assert_allclose(model(data).numpy(), model.predict(data, verbose=0), atol=1e-6)
    assert cell.activation is keras.activations.relu and model.get_layer("act").activation is keras.activations.relu
    with pytest.raises(RuntimeError):
        with models.redirecting_relus(model):
            raise RuntimeError("a failed trace")
    assert cell.activation is keras.activations.relu and "call" not in model.get_layer("act").__dict__
