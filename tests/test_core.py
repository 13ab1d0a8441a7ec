"""The backend-neutral core, checked in this (TensorFlow) process: configuration, NAdam, colours, crops, runner."""

import json
import keras
import numpy as np
import pytest
import tensorflow as tf

import maco_keras
from maco_keras import objectives
from maco_keras.core import config as config_lib
from maco_keras.core import crops, draws, nadam, render
from maco_keras.core.config import MacoConfig, Ramp


@pytest.mark.parametrize("settings, named", [
    (dict(steps=0), "steps"),
    (dict(steps=2.5), "steps"),
    (dict(image_size=(0, 64)), "image_size"),
    (dict(crops=-1), "crops"),
    (dict(crop_scale=0.0), "crop_scale"),
    (dict(crop_scale=[0.2, 0.3]), "crop_scale"),  # not one value per step
    (dict(crop_scale_std=-0.1), "crop_scale_std"),
    (dict(crop_scale_of="volume"), "crop_scale_of"),
    (dict(noise=-1.0), "noise"),
    (dict(noise=lambda step: 0.1), "noise"),  # a callable is no frozen setting
    (dict(learning_rate="fast"), "learning_rate"),
    (dict(contrast=0.0), "contrast"),
    (dict(coarse_to_fine=1.5), "coarse_to_fine"),
    (dict(values_range=(1.0, -1.0)), "values_range"),
    (dict(seed=-3), "seed"),
    (dict(antialias=1), "antialias"),
    (dict(phase_as="polar"), "phase_as"),
    (dict(pixel_statistics=((0.5, 0.5), (0.2,))), "pixel_statistics"),
    (dict(relu_redirect_steps=True), "relu_redirect_steps"),
])
def test_bad_settings_name_the_setting(settings, named):
    with pytest.raises((TypeError, ValueError), match=named):
        MacoConfig(**settings)


def test_configurations_are_frozen_validated_and_round_trip():
    config = MacoConfig(steps=8, seed=3, image_size=64)
    assert config.image_size == (64, 64)
    with pytest.raises(Exception):
        config.steps = 9  # frozen
    with pytest.raises(TypeError, match="stepz"):
        config.replace(stepz=9)
    assert MacoConfig.from_json(config.to_json()) == config
    imagenet = MacoConfig(pixel_statistics="imagenet", phase_as="complex", relu_redirect_steps=2)
    assert MacoConfig.from_json(json.loads(json.dumps(imagenet.to_json()))) == imagenet
    assert config_lib.CONFIGS["paper"].steps == 256 and config_lib.CONFIGS["fast"] == MacoConfig()
    schedules = MacoConfig(steps=4, noise=0.1, values_range=(0, 255), crop_scale=Ramp(0.5, 0.25)).schedules()
    np.testing.assert_allclose(schedules["noise"], 25.5)
    np.testing.assert_allclose(schedules["crop_scale"], [0.5, 0.41666666, 0.33333334, 0.25])


def test_the_core_nadam_is_keras_nadam():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 5)).astype(np.float32)
    variable = keras.Variable(weights)
    optimizer = keras.optimizers.Nadam(learning_rate=0.7)
    state = nadam.initial_state(tf.constant(weights))
    ours = tf.constant(weights)
    for step in range(4):
        gradient = rng.normal(size=(3, 5)).astype(np.float32)
        optimizer.apply_gradients([(tf.constant(gradient), variable)])
        ours, state = nadam.update(ours, tf.constant(gradient), state, step, 0.7)
    np.testing.assert_allclose(ours.numpy(), variable.numpy(), rtol=1e-6, atol=1e-6)


def test_the_colour_correlation_is_xpliques():
    from xplique.features_visualizations.preconditioning import recorrelate_colors

    np.testing.assert_array_equal(render.COLOR_CORRELATION, recorrelate_colors(tf.eye(3)).numpy())


def test_the_crop_cut_is_tensorflows_crop_and_resize():
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (37, 41, 3)).astype(np.float32)
    boxes = np.array([[0.1, 0.2, 0.6, 0.7], [0.0, 0.0, 1.0, 1.0], [-0.2, 0.5, 0.5, 1.2], [0.3, 0.9, 0.8, 0.1]],
                     np.float32)  # inside, the whole picture, overhanging, mirrored
    expected = tf.image.crop_and_resize(image[None], boxes, np.zeros(4, np.int32), (16, 12)).numpy()
    # The taps are computed in another order (a tap 1e-6 pixel away reads 1e-6 times the pixels' step).
    np.testing.assert_allclose(crops.cut(tf.constant(image), tf.constant(boxes), (16, 12)).numpy(), expected,
                               atol=1e-5)


def test_irfft2_is_numpys():
    rng = np.random.default_rng(2)
    real, imag = rng.normal(size=(2, 3, 10, 7)).astype(np.float32)
    np.testing.assert_allclose(render.irfft2(real, imag, (10, 12)).numpy(),
                               np.fft.irfft2(real + 1j * imag, s=(10, 12)), atol=1e-5)


def test_pinned_draws_and_unit_keys():
    """A change of the generator or of the keying changes every picture: it must not pass silently."""
    assert draws.unit_key("Neuron#predictions_309") == draws.unit_key("Neuron#base/predictions_309")
    assert draws.unit_key("Neuron#predictions_309") == 1001707946
    assert draws.unit_key("Channel#block_6_expand_relu_7") == 661587685
    bits = draws.bits(draws.stream_key(7, 12345, 3, draws.NOISE), (3,)).numpy().astype(np.int64) & 0xFFFFFFFF
    assert bits.tolist() == [2162874223, 872241855, 3830470646]


def test_the_visualizer_on_tensorflow_traces_once_and_repeats_its_bits(tiny_model):
    config = MacoConfig(steps=3, image_size=40, crops=2, seed=0)
    visualizer = maco_keras.Visualizer(tiny_model, config, verbose=False)
    first = visualizer(units=[1, 2])
    again = visualizer(units=[1, 2])
    other = visualizer(objectives.logit(tiny_model, [5, 7]))
    (runner,) = visualizer._runners.values()
    assert runner.trace_count == 1
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)
    assert first.scores.shape == (3, 2) and first.names == ["Neuron#logits_1", "Neuron#logits_2"]


def test_a_nan_unit_is_frozen_and_named_and_its_batch_mates_finish(tiny_model):
    inputs = keras.Input((32, 32, 3))
    logits = tiny_model(inputs)
    # Unit 1 is NaN (log of a negative), the others are the tiny model's logits.
    poisoned = keras.layers.Lambda(lambda x: tf.concat([x[:, :1], tf.math.log(-tf.abs(x[:, 1:2]) - 1.0),
                                                        x[:, 2:]], axis=1))(logits)
    model = keras.Model(inputs, poisoned)
    visualizer = maco_keras.Visualizer(model, MacoConfig(steps=2, image_size=40, crops=2, seed=0), verbose=False)
    with pytest.raises(maco_keras.NonFiniteError, match="predictions_1|lambda.*_1") as caught:
        visualizer(units=[0, 1, 2])
    partial = caught.value.partial
    assert np.all(np.isfinite(partial.images)) and len(caught.value.units) == 1
    alone = visualizer(units=[0, 2])
    np.testing.assert_array_equal(partial.images[[0, 2]], alone.images)


def test_a_visualizer_checks_its_arguments(tiny_model):
    with pytest.raises(TypeError, match="config"):
        maco_keras.Visualizer(tiny_model, {"steps": 3})
    with pytest.raises(ValueError, match="image_size"):
        maco_keras.Visualizer(tiny_model, MacoConfig(image_size=16))
    with pytest.raises(ValueError, match=r"expected pixel_statistics with 3 means .* received: pixel_statistics="):
        maco_keras.Visualizer(tiny_model, MacoConfig(pixel_statistics=((0.5, 0.5), (0.2, 0.2))))
    with pytest.raises(ValueError, match=r"standard deviations in .*\(from pixel_statistics\)"):
        MacoConfig(pixel_statistics=((0.5, 0.5, 0.5), (0.6, 0.2, 0.2)))
    visualizer = maco_keras.Visualizer(tiny_model, MacoConfig(steps=1, image_size=40, crops=2), verbose=0)
    assert visualizer.verbose is False  # Keras's verbose=0, as TensorFlow's maco takes it
    with pytest.raises(TypeError, match=r"expected True or False \(or 0 or 1\), received: verbose=2"):
        maco_keras.Visualizer(tiny_model, MacoConfig(steps=1, image_size=40, crops=2), verbose=2)
    with pytest.raises(ValueError, match="units"):
        visualizer()
    with pytest.raises(ValueError, match="magnitude"):
        maco_keras.Visualizer(tiny_model, MacoConfig(steps=1, image_size=40), magnitude=np.ones((3, 8, 5)),
                              verbose=False)(units=[1])


def test_other_weights_of_one_structure_are_not_the_first_ones(tiny_model):
    config = MacoConfig(steps=2, image_size=40, crops=2, seed=0)
    reused = maco_keras.Visualizer(tiny_model, config, verbose=False)
    composed = lambda weight: objectives.channel(tiny_model, "conv1", 2) + weight * objectives.logit(tiny_model, 3)  # noqa
    reused(composed(0.5))
    second = reused(composed(4.0))
    fresh = maco_keras.Visualizer(tiny_model, config, verbose=False)(composed(4.0))
    np.testing.assert_array_equal(second.images, fresh.images)


def test_maco_keeps_a_given_configurations_seed_and_takes_callable_schedules(tiny_model):
    config = MacoConfig(steps=2, image_size=40, crops=2, seed=7)
    visualizer = maco_keras.Visualizer(tiny_model, config, verbose=False)
    expected = visualizer(units=[1]).images
    from maco_keras import visualizer as visualizer_lib

    # The neutral `maco` (what JAX and PyTorch run), called directly in this TensorFlow process.
    images, _ = visualizer_lib.neutral_maco(tiny_model, [1], config=config, verbose=False)
    np.testing.assert_array_equal(images, expected)
    with pytest.raises(TypeError, match="config"):
        visualizer_lib.maco(tiny_model, [1], config={"seed": 7})
    decayed, _ = visualizer_lib.neutral_maco(tiny_model, [1], config=config, learning_rate=lambda step: 1.0 / (step + 1),
                                             verbose=False)
    assert decayed.shape == expected.shape and not np.array_equal(decayed, expected)


def test_a_non_finite_crop_stays_out_of_the_other_crops_diversity():
    from maco_keras.core.objectives import gram_similarities

    features = np.random.default_rng(0).normal(size=(4, 3, 3, 2)).astype(np.float32)
    copies = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    clean = keras.ops.convert_to_numpy(gram_similarities(features, copies))
    features[3, 0, 0, 0] = np.nan  # crop 3's unit failed
    got = keras.ops.convert_to_numpy(gram_similarities(features, copies))
    assert np.isnan(got[3]) and np.all(np.isfinite(got[:3]))
    np.testing.assert_allclose(got[[1]], clean[[1]], rtol=1e-6)  # crop 1 is of crop 3's copy: never compared
    assert np.all(np.abs(got[[0, 2]]) < np.abs(clean[[0, 2]]) + 1e-6)  # the failed crop counts as unlike them


def test_diversity_keeps_a_nan_unit_to_itself_and_needs_its_copies_in_one_batch():
    from maco_keras import applications

    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(4, 3, name="features")(inputs)
    logits = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(features))
    # Unit 1 is NaN (log of a negative), the others are logits.
    poisoned = keras.layers.Lambda(lambda x: tf.concat([x[:, :1], tf.math.log(-tf.abs(x[:, 1:2]) - 1.0),
                                                        x[:, 2:]], axis=1))(logits)
    model = keras.Model(inputs, poisoned)
    objective = objectives.logit(model, [0, 1]) + applications.diversity(model, "features", copies=2)
    config = MacoConfig(steps=2, image_size=40, crops=2, seed=0)
    with pytest.raises(maco_keras.NonFiniteError) as caught:
        maco_keras.Visualizer(model, config, verbose=False)(objective)
    names = caught.value.partial.names  # unit 0's two copies, then unit 1's
    assert sorted(caught.value.units) == [f"{names[2]} (step 0)", f"{names[3]} (step 0)"]
    assert np.all(np.isfinite(caught.value.partial.images))
    with pytest.raises(ValueError, match=r"batch_size of at least the objective's 4 units .* received: batch_size=2"):
        maco_keras.Visualizer(model, config, batch_size=2, verbose=False)(objective)
