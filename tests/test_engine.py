"""`maco_keras.visualize`: the one entry point, with any parameterization (a user's own too) and augmentation."""

import dataclasses
import gc
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

import maco_keras
from maco_keras import Augmentation, ImageParameterization, MacoImage, optimization, presets
from maco_keras import objective as objective_lib


class SmoothPixels(ImageParameterization):
    """A user's own parameterization: pixels at half resolution, upsampled, squashed into range."""

    def __init__(self, num_images, image_size, channels=3, values_range=(0.0, 1.0), seed=None, **kwargs):
        super().__init__(num_images, image_size, channels, values_range, seed, **kwargs)
        height, width = self.image_size
        self.pixels = self.add_weight(shape=(self.num_images, height // 2, width // 2, self.channels),
                                      initializer="zeros", name="pixels")
        self.built = True

    def reset(self, seed):
        self.pixels.assign(0.1 * tf.random.stateless_normal(self.pixels.shape, self.initial_seed(seed)))

    def call(self, inputs=None):
        return self.to_values_range(tf.nn.sigmoid(tf.image.resize(self.pixels, self.image_size)))


def test_a_users_own_parameterization_and_augmentation(tiny_model):
    images = SmoothPixels(2, 40, values_range=(-1, 1))
    augmentation = Augmentation(crop_scale_of="side", flip=True)
    kwargs = dict(units=[3, 6], augmentation=augmentation, optimizer=keras.optimizers.Adam(0.1), steps=25, crops=4,
                  crop_scale=0.6, noise=0.05, seed=2, verbose=False, return_visualization=True)
    first = maco_keras.visualize(tiny_model, images, **kwargs)
    second = maco_keras.visualize(tiny_model, images, **kwargs)
    assert first.images.shape == (2, 40, 40, 3) and first.names == ["Neuron#logits_3", "Neuron#logits_6"]
    np.testing.assert_array_equal(first.images, second.images)
    assert np.all(first.scores[-5:].mean(0) > first.scores[:5].mean(0))
    # The compiled loop belongs to the caller's parameterization (no module-level cache holds it).
    loops = list(optimization.loops_of(images).values())
    assert len(loops) == 1 and loops[0].trace_count == 1 and loops[0].parameterization is images
    assert not [loop for loop in optimization.cached_loops() if loop.parameterization is images]


def test_maco_is_visualize_with_a_maco_image(tiny_model):
    kwargs = dict(units=[1], steps=4, image_size=40, crops=2, seed=4, verbose=False)
    # The paper's settings are visualize's own defaults.
    preset = maco_keras.maco(tiny_model, **kwargs, **presets.schedules("paper"))
    images = MacoImage(1, 40, values_range=(-1, 1))
    direct = maco_keras.visualize(tiny_model, images, units=[1], steps=4, crops=2, seed=4, verbose=False)
    np.testing.assert_allclose(direct[0], preset[0], atol=1e-6)
    # maco's defaults are the fast preset's schedules and contrast, on the same loop.
    default = maco_keras.maco(tiny_model, **kwargs)
    # (crop_scale_std is the Augmentation's, 0.1 in both.)
    fast = {key: value for key, value in presets.schedules("fast").items() if key not in ("contrast", "crop_scale_std")}
    images = MacoImage(1, 40, values_range=(-1, 1), contrast=presets.PRESETS["fast"].contrast)
    direct = maco_keras.visualize(tiny_model, images, units=[1], steps=4, crops=2, seed=4, verbose=False, **fast)
    np.testing.assert_allclose(direct[0], default[0], atol=1e-6)


def test_snapshots_are_what_shorter_runs_give(tiny_model):
    # Constant settings: the state after s of n steps is the result of an s-step run.
    maco_keras.clear_cache()  # so that only this test's loops are counted below
    kwargs = dict(units=[1, 4], image_size=40, crops=3, seed=7, verbose=False, return_visualization=True,
                  **presets.schedules("paper"))  # constant ones (the defaults' schedules follow the length)
    long = maco_keras.maco(tiny_model, steps=9, snapshot_steps=[3, 6], **kwargs)
    assert sorted(long.snapshots) == [3, 6]
    for steps in (3, 6):
        short = maco_keras.maco(tiny_model, steps=steps, **kwargs)
        np.testing.assert_array_equal(long.snapshots[steps][0], short.images)
        np.testing.assert_allclose(long.snapshots[steps][1], short.transparency, rtol=1e-6)
    assert not np.array_equal(long.snapshots[3][0], long.images)
    # Batches' snapshots are concatenated like their images.
    batched = maco_keras.maco(tiny_model, steps=9, snapshot_steps=[3], batch_size=1, **kwargs)
    np.testing.assert_array_equal(batched.snapshots[3][0], maco_keras.maco(tiny_model, steps=3, batch_size=1, **kwargs).images)
    loops = [loop for loop in optimization.cached_loops()
             if isinstance(loop.parameterization, MacoImage) and loop.parameterization.num_images == 2]
    assert [loop.trace_count for loop in loops] == [1]


@pytest.mark.parametrize("parameterization, error, message", [
    ("images", TypeError, "parameterization"),
    (lambda: MacoImage(3, 40), ValueError, "parameterization.num_images=3"),
    (lambda: MacoImage(1, 40, channels=1), ValueError, "parameterization.channels=1"),
    (lambda: MacoImage(1, 24), ValueError, "smaller than the model input"),
])
def test_visualize_rejects_a_mismatched_parameterization(tiny_model, parameterization, error, message):
    parameterization = parameterization() if callable(parameterization) else parameterization
    with pytest.raises(error, match=message):
        maco_keras.visualize(tiny_model, parameterization, units=[1], steps=2, crops=2, verbose=False)


def test_settings_are_validated_before_the_objective(tiny_model):
    with pytest.raises(ValueError, match="steps"):
        maco_keras.visualize(tiny_model, MacoImage(1, 40), units=[1], steps=0)
    with pytest.raises(TypeError, match="augmentation"):
        maco_keras.visualize(tiny_model, MacoImage(1, 40), units=[1], augmentation="crops")
    settings = optimization.LoopSettings.of(maco_keras.MacoConfig(steps=3, crops=2, seed=1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.config = None
    with pytest.raises(TypeError, match="received: stepz"):
        maco_keras.visualize(tiny_model, MacoImage(1, 40), units=[1], stepz=3)


def test_clear_cache_clears_every_cache(tiny_model):
    maco_keras.maco(tiny_model, units=[1], steps=2, image_size=40, crops=2, verbose=False)
    assert optimization.cached_loops() and presets._IMAGES._entries and len(objective_lib._FEATURE_MODELS)
    maco_keras.clear_cache()
    assert not optimization.cached_loops() and not presets._IMAGES._entries
    assert len(objective_lib._FEATURE_MODELS) == 0


def test_a_parameterizations_loops_go_with_it(tiny_model):
    # Compiled state belongs to the object the caller holds: no module-level cache keeps it alive.
    images = MacoImage(1, 40, values_range=(-1, 1))
    maco_keras.visualize(tiny_model, images, units=[1], steps=2, crops=2, seed=0, verbose=False)
    (loop,) = optimization.loops_of(images).values()
    gone = weakref.ref(loop)
    del images, loop
    gc.collect()
    assert gone() is None, "a compiled loop outlived the parameterization it optimizes"


@pytest.mark.parametrize("settings, error, message", [
    (dict(crop_chunk=0), ValueError, "crop_chunk"),
    (dict(batch_size=-1), ValueError, "batch_size"),
    (dict(verbose="yes"), TypeError, "verbose='yes'"),
    (dict(snapshot_steps=[5]), ValueError, "snapshot_steps"),
    (dict(strategy="mirrored"), TypeError, "strategy='mirrored'"),
    (dict(phase_as="polar"), ValueError, "phase_as='polar'"),
    (dict(relu_redirect_steps=-2), ValueError, "relu_redirect_steps=-2"),
    (dict(pixel_statistics="coco"), ValueError, "pixel_statistics='coco'"),
    (dict(stepz=3), TypeError, "received: stepz"),
    (dict(config={"steps": 3}), TypeError, "config=dict"),
])
def test_maco_checks_every_setting_before_compiling(tiny_model, settings, error, message):
    maco_keras.clear_cache()
    with pytest.raises(error, match=message):
        maco_keras.maco(tiny_model, units=[1], steps=3, crops=2, image_size=40, **settings)
    assert not optimization.cached_loops() and not objective_lib._FEATURE_MODELS.get(tiny_model)


def test_what_earlier_versions_took_still_means_the_same(tiny_model):
    kwargs = dict(units=[1], steps=2, crops=2, image_size=40, seed=3)
    default = maco_keras.maco(tiny_model, verbose=False, **kwargs)[0]
    # learning_rate=None (the old default) is "not given", and verbose=0 is Keras's False.
    np.testing.assert_array_equal(maco_keras.maco(tiny_model, learning_rate=None, verbose=0, **kwargs)[0], default)
    adam = keras.optimizers.Adam(0.01)
    own = maco_keras.maco(tiny_model, optimizer=adam, verbose=False, **kwargs)[0]
    np.testing.assert_array_equal(maco_keras.maco(tiny_model, optimizer=adam, learning_rate=None, verbose=False,
                                                  **kwargs)[0], own)


@pytest.mark.parametrize("call, message", [
    (lambda model: maco_keras.baselines.fourier(model, units=[1], contrast=0.7), "contrast=0.7 \\(MACO's only\\)"),
    (lambda model: maco_keras.baselines.pixel(model, units=[1], crop_scale=0.3), "crop_scale=0.3"),
    (lambda model: maco_keras.baselines.fourier(model, units=[1], config=presets.PRESETS["fast"]), "coarse_to_fine"),
    (lambda model: maco_keras.visualize(model, MacoImage(1, 40), units=[1], batch_size=1), "batch_size=1"),
    (lambda model: maco_keras.visualize(model, MacoImage(1, 40), units=[1], image_size=64), "image_size=64"),
    (lambda model: maco_keras.maco(model, units=[1], input_shape=32), "input_shape=32"),
])
def test_settings_a_method_does_not_use_are_named_errors(tiny_model, call, message):
    maco_keras.clear_cache()
    with pytest.raises((TypeError, ValueError), match=message):
        call(tiny_model)
    assert not optimization.cached_loops()
