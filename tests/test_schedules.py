"""Per-step schedules: `Ramp`, learning-rate schedules, coarse to fine, and the presets built from them."""

import dataclasses

import keras
import numpy as np

import maco_keras
from maco_keras import MacoImage, Ramp, engine, optimization, seeding, spectrum


def test_ramp_values():
    np.testing.assert_allclose(Ramp(0.5, 0.25).values(5), [0.5, 0.4375, 0.375, 0.3125, 0.25])
    # "cosine" is Keras' CosineDecay with alpha = end / start, one value per step.
    decay = keras.optimizers.schedules.CosineDecay(2.0, decay_steps=8, alpha=0.05)
    np.testing.assert_allclose(Ramp(2.0, 0.1, "cosine").values(8), [float(decay(step)) for step in range(8)],
                               rtol=1e-6)
    np.testing.assert_array_equal(optimization.schedule("noise", Ramp(0.2, 0.0), 3), np.float32([0.2, 0.1, 0.0]))


def test_learning_rate_schedule_sets_each_steps_rate(tiny_model):
    kwargs = dict(units=[1, 4], image_size=40, crops=2, seed=3, verbose=False)
    one_step = maco_keras.maco(tiny_model, steps=1, **kwargs)[0]
    # A rate of 0 at the second step leaves the images where the first step put them ...
    frozen = maco_keras.maco(tiny_model, steps=2, learning_rate=[1.0, 0.0], **kwargs)[0]
    np.testing.assert_array_equal(frozen, one_step)
    # ... and any other rate moves them.
    moved = maco_keras.maco(tiny_model, steps=2, learning_rate=[1.0, 0.5], **kwargs)[0]
    assert np.abs(moved - one_step).max() > 1e-3


def test_coarse_to_fine_updates_low_frequencies_first(tiny_model):
    images = MacoImage(1, 40, values_range=(-1, 1))
    compiled = engine.compile_for(tiny_model, [2], None, images.image_size)
    settings = optimization.LoopSettings.of(maco_keras.MacoConfig(steps=4, crops=2, seed=5, coarse_to_fine=1.0,
                                                                   learning_rate=1.0),
                                            optimization.RunOptions(verbose=False))
    np.testing.assert_allclose(settings.frequency_cutoffs, [0.25, 0.5, 0.75, 1.0])
    images.reset(5, unit_keys=seeding.unit_keys(compiled.names))  # the run's start
    start = images.phase.numpy()
    # Step 0 only (cutoff 0.25): the loop runs the configuration's steps through the same schedules.
    engine.run(images, compiled, dataclasses.replace(settings, config=settings.config.replace(steps=1)))
    moved = images.phase.numpy() != start
    low = np.broadcast_to(spectrum.frequency_radius(images.image_size) <= 0.25, moved.shape)
    assert not moved[~low].any(), "a phase above the cutoff was updated"
    assert moved[low].mean() > 0.9
    # The whole run reaches every frequency.
    engine.run(images, compiled, settings)
    assert (images.phase.numpy() != start).mean() > 0.9


def test_fast_preset_is_one_trace_for_any_length(tiny_model):
    maco_keras.clear_cache()
    kwargs = dict(units=[1, 4], image_size=40, seed=2, verbose=False, config=maco_keras.PRESETS["fast"])
    first = maco_keras.maco(tiny_model, steps=3, **kwargs)[0]
    np.testing.assert_array_equal(maco_keras.maco(tiny_model, steps=3, **kwargs)[0], first)
    assert not np.array_equal(maco_keras.maco(tiny_model, steps=5, **kwargs)[0], first)
    assert [loop.trace_count for loop in optimization.cached_loops()] == [1]


def test_the_fast_preset_is_the_default_and_the_paper_a_preset(tiny_model):
    kwargs = dict(units=[1], image_size=40, seed=1, verbose=False)
    default = maco_keras.maco(tiny_model, steps=3, **kwargs)[0]
    np.testing.assert_array_equal(default, maco_keras.maco(tiny_model, config=maco_keras.PRESETS["fast"], steps=3,
                                                           **kwargs)[0])
    paper = maco_keras.maco(tiny_model, config=maco_keras.PRESETS["paper"], steps=3, **kwargs)[0]
    assert not np.array_equal(default, paper)
    # Presets are configurations: the same instances the Visualizer takes.
    assert maco_keras.PRESETS is maco_keras.CONFIGS and maco_keras.PRESETS["fast"] == maco_keras.MacoConfig(seed=0)
    assert maco_keras.PRESETS["fast"].steps == 64 and maco_keras.PRESETS["paper"].steps == 256


def test_an_optimizer_of_ones_own_keeps_its_rate_under_the_default_schedule(tiny_model):
    # The default learning rate is a schedule, which would set a given optimizer's rate at
    # every step: it applies only when no optimizer is given.
    kwargs = dict(units=[1], image_size=40, seed=1, verbose=False, steps=3)
    slow = maco_keras.maco(tiny_model, optimizer=keras.optimizers.Nadam(1e-6), **kwargs)[0]
    start = maco_keras.maco(tiny_model, learning_rate=0.0, **kwargs)[0]
    np.testing.assert_allclose(slow, start, atol=1e-4)
    assert np.abs(maco_keras.maco(tiny_model, **kwargs)[0] - start).max() > 1e-2
