"""Data parallelism over crops (`strategy=`) and chunked crops (`crop_chunk=`).

The multi-device checks run in a subprocess with two logical CPU devices: TF fixes the
device list once per process, and the rest of the suite runs on one device.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import maco_keras
from maco_keras import objective as objective_lib
from maco_keras import optimization
from maco_keras.augmentation import Augmentation
from maco_keras.parameterization import MacoImage

from conftest import REPO

TWO_DEVICES = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {tests!r})
    from conftest import build_tiny_model
    import maco_keras
    from maco_keras import objective as objective_lib, optimization
    from maco_keras.augmentation import Augmentation
    from maco_keras.parameterization import MacoImage

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    model = build_tiny_model()
    compiled = objective_lib.compile_objective(model, units=[1, 4])
    augmentation = Augmentation(crop_scale_of="area")

    def gradients(strategy, crop_chunk=None):
        with (strategy or tf.distribute.get_strategy()).scope():
            images = MacoImage(2, 48, values_range=(-1, 1), seed=0)
        loop = optimization.OptimizationLoop(images, compiled, 8, augmentation, optimization.default_optimizer(),
                                             strategy=strategy, crop_chunk=crop_chunk)
        images.reset(3)
        return loop.step_gradients(5, 3, compiled.masks, compiled.multipliers, 0.25, 0.2)

    single = gradients(None)
    mirrored = gradients(strategy)
    mirrored_chunks = gradients(strategy, crop_chunk=2)

    def gap(a, b):
        return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))

    run = dict(units=[1, 4], steps=24, image_size=48, crops=8, seed=0, verbose=False, return_visualization=True)
    visualization = maco_keras.maco(model, strategy=strategy, **run)
    one_device = maco_keras.maco(model, **run)
    # The fast preset sets the learning rate and masks the phase gradient in each replica.
    fast = dict(run, **maco_keras.presets.schedules("fast"))
    fast_mirrored = maco_keras.maco(model, strategy=strategy, **fast)
    fast_one_device = maco_keras.maco(model, **fast)
    print(json.dumps({{
        "scores": gap(single[0], mirrored[0]),
        "image_gradient": gap(single[1], mirrored[1]),
        "phase_gradient": gap(single[2][0], mirrored[2][0]),
        "phase_gradient_chunks": gap(single[2][0], mirrored_chunks[2][0]),
        "first_scores": visualization.scores[:4].mean(0).tolist(),
        "last_scores": visualization.scores[-4:].mean(0).tolist(),
        "one_device_last_scores": one_device.scores[-4:].mean(0).tolist(),
        "fast_first_scores": fast_mirrored.scores[:4].mean(0).tolist(),
        "fast_last_scores": fast_mirrored.scores[-4:].mean(0).tolist(),
        "fast_one_device_last_scores": fast_one_device.scores[-4:].mean(0).tolist(),
        "image_shape": list(visualization.images.shape),
        "phase_is_mirrored": type(maco_keras.presets._IMAGES._entries[next(iter(
            maco_keras.presets._IMAGES._entries))].phase.value).__name__,
    }}))
""")


def test_mirrored_strategy_on_two_logical_devices_matches_one_device():
    script = TWO_DEVICES.format(tests=str(REPO / "tests"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # One step's gradient: the two replicas' halves of the crops add up to the one-device step.
    assert report["scores"] < 1e-5
    assert report["image_gradient"] < 1e-5
    assert report["phase_gradient"] < 1e-5
    assert report["phase_gradient_chunks"] < 1e-5
    assert report["phase_is_mirrored"] == "MirroredVariable"
    # A run with the strategy optimizes: each objective's score rises.
    assert report["image_shape"] == [2, 48, 48, 3]
    first, last = np.array(report["first_scores"]), np.array(report["last_scores"])
    assert np.all(last > first)
    # ... and it follows the one-device run (float differences aside).
    assert np.all(np.abs(last - np.array(report["one_device_last_scores"])) < 0.1 * (last - first))
    # So does the fast preset (learning-rate schedule and coarse to fine under the strategy).
    first, last = np.array(report["fast_first_scores"]), np.array(report["fast_last_scores"])
    assert np.all(last > first)
    assert np.all(np.abs(last - np.array(report["fast_one_device_last_scores"])) < 0.1 * (last - first))


def _loop(tiny_model, crop_chunk, num_crops=8):
    compiled = objective_lib.compile_objective(tiny_model, units=[1, 4])
    images = MacoImage(2, 48, values_range=(-1, 1), seed=0)
    loop = optimization.OptimizationLoop(images, compiled, num_crops, Augmentation(crop_scale_of="area"),
                                         optimization.default_optimizer(), crop_chunk=crop_chunk)
    images.reset(3)
    return loop, compiled


@pytest.mark.parametrize("crop_chunk", [1, 2, 4])
def test_chunked_crops_give_the_same_gradient(tiny_model, crop_chunk):
    loop, compiled = _loop(tiny_model, None)
    whole = loop.step_gradients(2, 7, compiled.masks, compiled.multipliers, 0.25, 0.2)
    loop, _ = _loop(tiny_model, crop_chunk)
    chunked = loop.step_gradients(2, 7, compiled.masks, compiled.multipliers, 0.25, 0.2)
    again = loop.step_gradients(2, 7, compiled.masks, compiled.multipliers, 0.25, 0.2)
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-5, atol=1e-6)
    scale = np.abs(whole[2][0]).max()
    assert np.abs(chunked[2][0] - whole[2][0]).max() < 1e-5 * scale
    # Same seed, same bits, chunk by chunk.
    assert all(np.array_equal(a, b) for a, b in zip(chunked[2], again[2]))
    assert np.array_equal(chunked[1], again[1])


def test_crop_noise_does_not_depend_on_the_chunks(tiny_model):
    # Noise on the crops (Xplique's recipe) is keyed per crop index, so chunking keeps it.
    compiled = objective_lib.compile_objective(tiny_model, units=[2])
    results = []
    for chunk in (None, 2):
        images = MacoImage(1, 40, values_range=(-1, 1), seed=0)
        loop = optimization.OptimizationLoop(images, compiled, 4, Augmentation(noise_on="crops"),
                                             optimization.default_optimizer(), crop_chunk=chunk)
        images.reset(1)
        results.append(loop.step_gradients(0, 1, compiled.masks, compiled.multipliers, 0.5, 0.1)[2][0])
    assert np.abs(results[0] - results[1]).max() < 1e-5 * np.abs(results[0]).max()


def test_maco_with_crop_chunk_and_batch_size_is_deterministic(tiny_model):
    kwargs = dict(units=[0, 1, 2], steps=3, image_size=40, crops=4, seed=5, verbose=False)
    first = maco_keras.maco(tiny_model, crop_chunk=2, batch_size=2, return_visualization=True, **kwargs)
    second = maco_keras.maco(tiny_model, crop_chunk=2, batch_size=2, return_visualization=True, **kwargs)
    assert first.images.shape == (3, 40, 40, 3) and first.scores.shape == (3, 3)
    assert first.names == second.names and len(first.names) == 3
    assert np.array_equal(first.images, second.images)
    assert np.array_equal(first.transparency, second.transparency)
    # One trace per configuration (groups of 2 and of 1), reused by the second call.
    loops = [loop for loop in optimization.cached_loops() if loop.step.chunks.chunk == 2 and loop.step.num_crops == 4]
    assert sorted(loop.parameterization.num_images for loop in loops) == [1, 2]
    assert all(loop.trace_count == 1 for loop in loops)


@pytest.mark.parametrize("kwargs, parameter", [
    (dict(crop_chunk=3), "crop_chunk"),
    (dict(crop_chunk=0), "crop_chunk"),
    (dict(batch_size=0), "batch_size"),
    (dict(strategy="mirrored"), "strategy"),
])
def test_bad_distribution_arguments_are_named(tiny_model, kwargs, parameter):
    before = len(optimization.cached_loops())
    with pytest.raises((ValueError, TypeError), match=parameter):
        maco_keras.maco(tiny_model, units=[1], steps=2, image_size=40, crops=4, verbose=False, **kwargs)
    assert len(optimization.cached_loops()) == before


def test_parameterization_outside_the_strategy_scope_is_refused(tiny_model):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    compiled = objective_lib.compile_objective(tiny_model, units=[1])
    images = MacoImage(1, 40, seed=0)
    with pytest.raises(ValueError, match="strategy.scope"):
        optimization.OptimizationLoop(images, compiled, 2, Augmentation(), optimization.default_optimizer(),
                                      strategy=strategy)


TWO_DEVICES_VIT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {tests!r})
    import hub_models
    from maco_keras import objective as objective_lib, objectives, optimization
    from maco_keras.augmentation import Augmentation
    from maco_keras.parameterization import MacoImage

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    model = hub_models.vit()
    # A block inside the subclassed encoder: captured in each replica's own trace (one per thread).
    compiled = objective_lib.compile_objective(
        objectives.channel(model, "vit_encoder/transformer_block_2", [0, 1]) + 0.5 * objectives.logit(model, 3))

    def gradients(strategy, crop_chunk=None):
        with (strategy or tf.distribute.get_strategy()).scope():
            images = MacoImage(2, 48, values_range=(-1, 1), seed=0)
        loop = optimization.OptimizationLoop(images, compiled, 8, Augmentation(crop_scale_of="area"),
                                             optimization.default_optimizer(), strategy=strategy, crop_chunk=crop_chunk)
        images.reset(3)
        return loop.step_gradients(5, 3, compiled.masks, compiled.multipliers, 0.25, 0.2)

    single, mirrored = gradients(None), gradients(strategy, crop_chunk=2)
    gap = lambda a, b: float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
    print(json.dumps({{"scores": gap(single[0], mirrored[0]), "phase_gradient": gap(single[2][0], mirrored[2][0]),
                       "nonzero": float(np.abs(single[2][0]).max())}}))
""")


def test_a_captured_vit_block_under_mirrored_strategy_matches_one_device():
    pytest.importorskip("hub_models")
    script = TWO_DEVICES_VIT.format(tests=str(REPO / "tests"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["nonzero"] > 0
    assert report["scores"] < 1e-5 and report["phase_gradient"] < 1e-5
