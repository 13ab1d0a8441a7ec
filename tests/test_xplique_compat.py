"""The drop-in keeps Xplique's `maco` contract (signature, defaults, return shapes)."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from xplique.features_visualizations import maco as xplique_maco

from maco_keras import Objective
from maco_keras.xplique_compat import maco


def _small(channels):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, channels)),
        keras.layers.Conv2D(4, 3),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    return model


def _objectives(model):
    return [
        Objective.neuron(model, -1, 0),
        Objective.direction(model, -1, tf.one_hot(1, 10)),
        Objective.channel(model, -3, 0),
    ]


def test_same_signature_and_defaults():
    ours = inspect.signature(maco).parameters
    theirs = inspect.signature(xplique_maco).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values()] == [p.default for p in theirs.values()]


@pytest.mark.parametrize("with_dataset", [False, True])
def test_rgb_objectives(with_dataset):
    model = _small(3)
    dataset = tf.data.Dataset.from_tensor_slices(tf.random.normal((10, 8, 8, 3))).batch(2) if with_dataset else None
    for objective in _objectives(model):
        image, transparency = maco(objective, nb_steps=10, custom_shape=(8, 8), values_range=(-127, 127),
                                   maco_dataset=dataset)
        assert isinstance(image, np.ndarray) and image.shape == (8, 8, 3)
        assert tuple(transparency.shape) == (8, 8, 3)
        assert image.min() >= -127 and image.max() <= 127


@pytest.mark.parametrize("with_dataset", [False, True])
def test_grayscale_objectives(with_dataset):
    model = _small(1)
    dataset = tf.data.Dataset.from_tensor_slices(tf.random.normal((10, 8, 8, 1))).batch(2) if with_dataset else None
    for objective in _objectives(model):
        image, transparency = maco(objective, nb_steps=10, custom_shape=(8, 8), values_range=(127, -127),
                                   maco_dataset=dataset)
        assert image.shape == (8, 8, 1) and tuple(transparency.shape) == (8, 8, 1)
        assert image.min() >= -127 and image.max() <= 127


def test_schedules_whole_image_and_batches():
    model = _small(3)
    image, _ = maco(Objective.neuron(model, -1, 2), nb_steps=6, custom_shape=(16, 16),
                    box_size=lambda step: 0.5 - 0.05 * step, noise_intensity=lambda step: 0.1 / (step + 1))
    assert image.shape == (16, 16, 3)
    image, _ = maco(Objective.neuron(model, -1, 2), nb_steps=4, nb_crops=0, custom_shape=None)
    assert image.shape == (8, 8, 3)
    images, transparency = maco(Objective.neuron(model, -1, [1, 2, 3]), nb_steps=4, custom_shape=(16, 16))
    assert images.shape == (3, 16, 16, 3) and tuple(transparency.shape) == (3, 16, 16, 3)


def test_bad_arguments():
    model = _small(3)
    with pytest.raises(TypeError, match="objective"):
        maco(model)
    with pytest.raises(ValueError, match="nb_steps"):
        maco(Objective.neuron(model, -1, 0), nb_steps=0)
    with pytest.raises(ValueError, match="nb_crops"):
        maco(Objective.neuron(model, -1, 0), nb_crops=-1)
    with pytest.raises(ValueError, match="custom_shape"):
        maco(Objective.neuron(model, -1, 0), custom_shape=(4, 4))
    with pytest.raises(TypeError, match="box_size"):
        maco(Objective.neuron(model, -1, 0), box_size="big")
    with pytest.raises(TypeError, match="maco_dataset"):
        maco(Objective.neuron(model, -1, 0), maco_dataset=np.zeros((2, 8, 8, 3)))
