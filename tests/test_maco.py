import numpy as np
import pytest
import tensorflow as tf

import maco_keras
from maco_keras import Objective, optimization

FAST = dict(steps=30, image_size=64, crops=4, verbose=False)


def _loops_for(compiled_key_part):
    return [loop for loop in optimization.cached_loops() if compiled_key_part(loop)]


def test_objective_rises(tiny_model):
    visualization = maco_keras.maco(tiny_model, units=[1, 4, 8], seed=0, return_visualization=True,
                                    **{**FAST, "steps": 40})
    assert visualization.scores.shape == (40, 3)
    first, last = visualization.scores[:5].mean(0), visualization.scores[-5:].mean(0)
    assert np.all(last > first), (first, last)
    # And on the final images themselves (no augmentation), against the initial ones.
    initial = maco_keras.MacoImage(3, 64, values_range=(-1, 1))
    initial.reset(0)
    def logit_on(images):
        return tiny_model(tf.image.resize(images, (32, 32))).numpy()[np.arange(3), [1, 4, 8]]
    assert np.all(logit_on(visualization.images) > logit_on(initial()))


def test_returns_one_image_per_objective_of_a_composition(tiny_model):
    objective = Objective.neuron(tiny_model, -1, [1, 2]) + 0.5 * Objective.channel(tiny_model, "conv2", [0, 1, 2])
    images, transparency = maco_keras.maco(objective, seed=1, **FAST)
    assert images.shape == (6, 64, 64, 3) and transparency.shape == (6, 64, 64, 3)
    assert images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1
    assert np.all(transparency >= 0) and np.all(transparency.reshape(6, -1).max(1) > 0)
    # Each objective has its own image.
    assert not np.allclose(images[0], images[1])


def test_one_trace_per_configuration(tiny_model):
    maco_keras.clear_cache()
    kwargs = dict(FAST, image_size=48, steps=12)
    maco_keras.maco(Objective.channel(tiny_model, "conv2", [0, 1]), seed=1, **kwargs)
    maco_keras.maco(Objective.channel(tiny_model, "conv2", [5, 9]), seed=2, **kwargs)
    maco_keras.maco(Objective.channel(tiny_model, "conv2", [3, 4]), seed=3, **{**kwargs, "steps": 20},
                    crop_scale=0.5, noise=0.05)
    loops = optimization.cached_loops()
    assert len(loops) == 1 and loops[0].trace_count == 1
    # A new shape is a new configuration: one more loop, traced once.
    maco_keras.maco(Objective.channel(tiny_model, "conv2", [1, 2, 3]), seed=1, **kwargs)
    assert [loop.trace_count for loop in optimization.cached_loops()] == [1, 1]


def test_no_python_per_step(tiny_model):
    calls = []

    def objective(images):
        calls.append(1)  # Python: runs when traced, never per step
        return tiny_model(images)[:, 2]

    maco_keras.maco(objective, input_shape=(32, 32, 3), seed=0, **{**FAST, "steps": 25})
    assert len(calls) == 1


def test_same_seed_same_images(tiny_model):
    objective = Objective.neuron(tiny_model, -1, [0, 5])
    first = maco_keras.maco(objective, seed=7, **FAST)
    second = maco_keras.maco(objective, seed=7, **FAST)
    maco_keras.clear_cache()  # a freshly built and traced loop gives the same images too
    third = maco_keras.maco(objective, seed=7, **FAST)
    other = maco_keras.maco(objective, seed=8, **FAST)
    for a, b in [(first, second), (first, third)]:
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(first[0], other[0])


def test_callable_objectives(tiny_model):
    images, _ = maco_keras.maco(lambda x: tiny_model(x)[:, 3], input_shape=(32, 32, 3), seed=0, **FAST)
    assert images.shape == (1, 64, 64, 3)
    images, _ = maco_keras.maco(tiny_model, units=2, seed=0, **FAST)
    assert images.shape == (1, 64, 64, 3)
    visualization = maco_keras.maco(lambda x: tiny_model(x), units=[2, 6], input_shape=(32, 32, 3), seed=0,
                                    return_visualization=True, **FAST)
    assert visualization.images.shape == (2, 64, 64, 3)
    assert visualization.names == ["callable#2", "callable#6"]


def test_grayscale_and_values_range(tiny_gray_model):
    images, transparency = maco_keras.maco(tiny_gray_model, units=[1], values_range=(0, 255), seed=0, **FAST)
    assert images.shape == (1, 64, 64, 1) and transparency.shape == (1, 64, 64, 1)
    assert images.min() >= 0 and images.max() <= 255 and images.max() - images.min() > 50


def test_custom_magnitude(tiny_model):
    magnitude = maco_keras.compute_magnitude(np.random.default_rng(0).uniform(size=(4, 64, 64, 3)))
    images, _ = maco_keras.maco(tiny_model, units=1, magnitude=magnitude, seed=0, **FAST)
    assert images.shape == (1, 64, 64, 3)


def test_non_finite_stops_with_the_step(tiny_model):
    calls = tf.Variable(0)

    def objective(images):
        calls.assign_add(1)
        score = tiny_model(images)[:, 0]
        return score * tf.where(calls > 5, np.nan, 1.0)  # NaN from the 6th step (step 5) on

    with pytest.raises(maco_keras.NonFiniteError, match="step 5") as error:
        maco_keras.maco(objective, input_shape=(32, 32, 3), seed=0, **FAST)
    assert error.value.step == 5
    assert np.all(np.isfinite(error.value.partial.images)) and error.value.partial.scores.shape == (5, 1)


def test_progress_bar_runs(tiny_model, capsys):
    maco_keras.maco(tiny_model, units=1, seed=0, **{**FAST, "verbose": True})
    assert "30/30" in capsys.readouterr().out


def test_xla_loop_runs_and_is_deterministic(tiny_model):
    # The XLA path (for GPU/TPU) cuts crops with gathers. XLA draws its own random numbers
    # for a seed, so it is compared with itself, not with the default loop.
    kwargs = dict(FAST, steps=12, crops=2, image_size=40)
    first = maco_keras.maco(tiny_model, units=[1, 2], seed=4, jit_compile=True, return_visualization=True, **kwargs)
    second = maco_keras.maco(tiny_model, units=[1, 2], seed=4, jit_compile=True, return_visualization=True, **kwargs)
    assert first.images.shape == (2, 40, 40, 3) and np.all(np.isfinite(first.images))
    np.testing.assert_array_equal(first.images, second.images)
    assert [loop.trace_count for loop in optimization.cached_loops() if loop.jit_compile] == [1]
