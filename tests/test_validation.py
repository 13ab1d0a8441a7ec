"""Bad input raises a clear error naming the parameter, before any optimization starts."""

import keras
import numpy as np
import pytest

import maco_keras
from maco_keras import Objective, optimization


@pytest.fixture
def no_new_loop():
    before = len(optimization.cached_loops())
    yield
    assert len(optimization.cached_loops()) == before, "a loop was built before the error"


CASES = [
    # (kwargs, error type, the parameter the message must name)
    (dict(units=[]), ValueError, "units"),
    (dict(units=None), ValueError, "units"),
    (dict(units=[1.5]), TypeError, "units"),
    (dict(units=[1], steps=0), ValueError, "steps"),
    (dict(units=[1], steps=-3), ValueError, "steps"),
    (dict(units=[1], steps=2.5), TypeError, "steps"),
    (dict(units=[1], crops=0), ValueError, "crops"),
    (dict(units=[1], image_size=0), ValueError, "image_size"),
    (dict(units=[1], image_size=(64, -1)), ValueError, "image_size"),
    (dict(units=[1], image_size=16), ValueError, "image_size"),
    (dict(units=[1], values_range=(1, -1)), ValueError, "values_range"),
    (dict(units=[1], values_range=(0, 0)), ValueError, "values_range"),
    (dict(units=[1], values_range=(0, float("nan"))), ValueError, "values_range"),
    (dict(units=[1], values_range="0-1"), TypeError, "values_range"),
    (dict(units=[1], magnitude=np.ones((3, 32, 17))), ValueError, "magnitude"),
    (dict(units=[1], magnitude=np.ones((1, 64, 33))), ValueError, "magnitude"),
    (dict(units=[1], magnitude=-np.ones((3, 64, 33))), ValueError, "magnitude"),
    (dict(units=[1], noise=-0.1), ValueError, "noise"),
    (dict(units=[1], crop_scale_of="volume"), ValueError, "crop_scale_of"),
    (dict(units=[1], crop_scale=0.0), ValueError, "crop_scale"),
    (dict(units=[1], crop_scale=1.5), ValueError, "crop_scale"),
    (dict(units=[1], crop_scale=[0.2, 0.3]), ValueError, "crop_scale"),
    (dict(units=[1], crop_scale=lambda step: 1.5), ValueError, "crop_scale"),
    (dict(units=[1], noise=lambda step: -0.1), ValueError, "noise"),
    (dict(units=[1], seed="x"), TypeError, "seed"),
    (dict(units=[1], optimizer="adam"), TypeError, "optimizer"),
    (dict(units=[1], learning_rate=-1.0), ValueError, "learning_rate"),
    (dict(units=[1], snapshot_steps=[0]), ValueError, "snapshot_steps"),
    (dict(units=[1], snapshot_steps=[6]), ValueError, "snapshot_steps"),
    (dict(units=[1], snapshot_steps=3), ValueError, "snapshot_steps"),
    (dict(units=[1], snapshot_steps=[2.5]), ValueError, "snapshot_steps"),
    (dict(units=[1], learning_rate=[1.0, 0.5]), ValueError, "learning_rate"),
    (dict(units=[1], learning_rate=lambda step: -0.1), ValueError, "learning_rate"),
    (dict(units=[1], learning_rate=maco_keras.Ramp(1.0, 0.1),
          optimizer=keras.optimizers.Nadam(keras.optimizers.schedules.CosineDecay(1.0, 5))), ValueError,
     "learning_rate"),
    (dict(units=[1], coarse_to_fine=1.5), ValueError, "coarse_to_fine"),
    (dict(units=[1], coarse_to_fine=-0.1), ValueError, "coarse_to_fine"),
    (dict(units=[1], coarse_to_fine="half"), ValueError, "coarse_to_fine"),
    (dict(units=[1], contrast=0.0), ValueError, "contrast"),
    (dict(units=[1], contrast=float("inf")), ValueError, "contrast"),
    (dict(units=[1], contrast="high"), TypeError, "contrast"),
    (dict(units=[1], phase_as="polar"), ValueError, "phase_as"),
    (dict(units=[1], antialias="yes"), TypeError, "antialias"),
    (dict(units=[1], pixel_statistics="photos"), ValueError, "pixel_statistics"),
    (dict(units=[1], pixel_statistics=((0.5, 0.5), (0.2, 0.2, 0.2))), ValueError, "pixel_statistics"),
    (dict(units=[1], pixel_statistics=((0.5, 0.5, 1.5), (0.2, 0.2, 0.2))), ValueError, "pixel_statistics"),
    (dict(units=[1], pixel_statistics=((0.5, 0.5, 0.5), (0.2, 0.2, 0.6))), ValueError, "pixel_statistics"),
    (dict(units=[1, 2], magnitude=np.ones((3, 3, 64, 33), np.float32)), ValueError, "magnitude"),
]


@pytest.mark.parametrize("kwargs,name", [
    (dict(start=-1.0, end=0.5), "Ramp.start"),
    (dict(start=1.0, end=float("nan")), "Ramp.end"),
    (dict(start=1.0, end=0.1, shape="exponential"), "shape"),
])
def test_bad_ramps(kwargs, name):
    with pytest.raises(ValueError, match=name):
        maco_keras.Ramp(**kwargs)


def test_coarse_to_fine_needs_frequencies(tiny_model, no_new_loop):
    images = maco_keras.PixelImage(1, 64, values_range=(-1, 1))
    with pytest.raises(ValueError, match="parameterization"):
        maco_keras.visualize(tiny_model, images, units=[1], steps=5, coarse_to_fine=0.5, verbose=False)


@pytest.mark.parametrize("kwargs,error,name", CASES)
def test_bad_arguments(tiny_model, no_new_loop, kwargs, error, name):
    kwargs = {"image_size": 64, "steps": 5, "verbose": False, **kwargs}
    with pytest.raises(error, match=name):
        maco_keras.maco(tiny_model, **kwargs)


@pytest.mark.parametrize("objective", [3, "model", None, [1, 2]])
def test_objective_of_the_wrong_type(objective, no_new_loop):
    with pytest.raises(TypeError, match="objective"):
        maco_keras.maco(objective, image_size=64, verbose=False)


def test_model_without_known_input_shape(no_new_loop):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(ValueError, match="input shape"):
        maco_keras.maco(model, units=[1], image_size=64, verbose=False)


def test_callable_without_input_shape(tiny_model, no_new_loop):
    with pytest.raises(ValueError, match="input_shape"):
        maco_keras.maco(lambda x: tiny_model(x)[:, 0], image_size=64, verbose=False)


def test_units_with_an_objective(tiny_model, no_new_loop):
    with pytest.raises(ValueError, match="units"):
        maco_keras.maco(Objective.neuron(tiny_model, -1, [1]), units=[2], image_size=64, verbose=False)


def test_empty_objective(tiny_model, no_new_loop):
    with pytest.raises(ValueError, match="objective"):
        maco_keras.maco(Objective.channel(tiny_model, "conv2", []), image_size=64, verbose=False)
