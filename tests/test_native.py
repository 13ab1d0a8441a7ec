"""The compiled crop-gradient kernel: same bits as the fallback, and a clean fallback without it."""

import logging
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import skip_unless_ci

import maco_keras
from maco_keras import Objective, augmentation, native


@pytest.fixture
def kernel():
    if shutil.which("c++") is None:
        skip_unless_ci("no C++ compiler (c++) on this machine: the kernel cannot be built, the fallback runs")
    library = native.library()
    assert library is not None, "a C++ compiler is here, yet the kernel did not build or load (see the warning)"
    return library


def _gradient(images, boxes, num_crops, output_size, weights):
    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            tape.watch(images)
            crops = augmentation.crop_and_resize_crop_major(images, boxes, num_crops, output_size)
            loss = tf.reduce_sum(crops * weights)
        return tape.gradient(loss, images)

    return gradient().numpy(), gradient.get_concrete_function().graph


def _uses_kernel(graph):
    return any(op.type == "MacoCropAndResizeGradImage" for op in graph.get_operations())


# (images, height, width, channels, crops per image, crop size, augmentation, scale)
CASES = [
    (1, 96, 96, 3, 24, (40, 40), augmentation.Augmentation(), 0.3),
    (3, 64, 80, 3, 8, (24, 31), augmentation.Augmentation(flip=True), 0.5),  # mirrored boxes
    (2, 50, 50, 1, 6, (64, 64), augmentation.Augmentation(crop_center="jitter"), 0.2),  # upsampled, overhanging
    (2, 40, 30, 4, 5, (1, 7), augmentation.Augmentation(crop_center="jitter", flip=True), 0.9),  # one-row crops
]


@pytest.mark.parametrize("num_images, height, width, channels, num_crops, output_size, aug, scale", CASES)
def test_the_kernel_gives_the_bits_of_the_fallback(kernel, monkeypatch, num_images, height, width, channels,
                                                   num_crops, output_size, aug, scale):
    seed = tf.constant([num_images, height, 0])
    images = tf.random.stateless_normal((num_images, height, width, channels), seed=(1, 2))
    boxes = augmentation.sample_boxes(seed, num_crops * num_images, tf.constant(scale), aug)
    if aug.flip:
        boxes = augmentation.flip_boxes(seed + 1, boxes)
    weights = tf.random.stateless_normal((num_crops * num_images, *output_size, channels), seed=(3, 4))
    fast, graph = _gradient(images, boxes, num_crops, output_size, weights)
    assert _uses_kernel(graph)
    np.testing.assert_array_equal(_gradient(images, boxes, num_crops, output_size, weights)[0], fast)
    monkeypatch.setenv("MACO_KERAS_NATIVE", "0")
    slow, graph = _gradient(images, boxes, num_crops, output_size, weights)
    assert not _uses_kernel(graph)
    np.testing.assert_array_equal(fast, slow)
    assert np.abs(fast).max() > 0


def test_the_kernel_names_a_bad_box_index(kernel):
    grads, boxes = tf.ones((2, 4, 4, 3)), tf.constant([[0.0, 0.0, 1.0, 1.0]] * 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected box_index in \[0, 2\), received 5 for box 1"):
        kernel.maco_crop_and_resize_grad_image(grads, boxes, tf.constant([0, 5]), num_images=2, image_height=8,
                                               image_width=8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected boxes of shape \(2, 4\)"):
        kernel.maco_crop_and_resize_grad_image(grads, boxes[:1], tf.constant([0, 1]), num_images=2, image_height=8,
                                               image_width=8)


def test_maco_gives_the_same_images_with_and_without_the_kernel(kernel, tiny_model, monkeypatch):
    objective = Objective.neuron(tiny_model, -1, [0, 5])
    settings = dict(steps=12, image_size=48, crops=6, verbose=False, seed=3)
    maco_keras.clear_cache()
    fast = maco_keras.maco(objective, **settings)
    monkeypatch.setenv("MACO_KERAS_NATIVE", "0")
    maco_keras.clear_cache()  # the choice is made when the loop is traced
    slow = maco_keras.maco(objective, **settings)
    maco_keras.clear_cache()
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


def test_without_a_compiler_the_fallback_runs_after_one_warning(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(native, "_library", None)  # forget the loaded kernel, for this test only
    monkeypatch.setenv("MACO_KERAS_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    with caplog.at_level(logging.WARNING, logger="maco_keras.native"):
        assert native.library() is None
        assert native.library() is None
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1
    assert "expected a C++ compiler, received: CXX='no-such-compiler'" in warnings[0] and "fallback" in warnings[0]
    assert list(tmp_path.iterdir()) == []
    images = tf.random.stateless_normal((1, 32, 32, 3), seed=(0, 0))
    boxes = augmentation.sample_boxes(tf.constant([0, 1, 0]), 4, tf.constant(0.5), augmentation.Augmentation())
    gradient, graph = _gradient(images, boxes, 4, (16, 16), tf.ones((4, 16, 16, 3)))
    assert not _uses_kernel(graph) and np.abs(gradient).max() > 0


def test_a_failed_build_leaves_no_partial_library(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setenv("MACO_KERAS_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with caplog.at_level(logging.WARNING, logger="maco_keras.native"):
        assert native.library() is None
    assert "failed with exit code 1" in caplog.records[0].getMessage()
    assert list(tmp_path.iterdir()) == []


def test_the_switch_turns_the_kernel_off(monkeypatch):
    for value in ("0", "off", "False"):
        monkeypatch.setenv("MACO_KERAS_NATIVE", value)
        assert native.disabled() and native.library() is None
    monkeypatch.setenv("MACO_KERAS_NATIVE", "1")
    assert not native.disabled()


def test_a_compiler_failure_is_reported_by_its_first_error():
    stderr = ("In file included from .../tensorflow/core/platform/errors.h:29,\n"
              "x.cc:3:1: warning: something deprecated\n"
              "x.cc:25:19: error: 'Name' has not been declared\n"
              "x.cc:30:1: error: a later error\n")
    error = native.subprocess.CalledProcessError(1, ["/usr/bin/c++", "x.cc"], stderr=stderr)
    assert native._reason(error) == "/usr/bin/c++ failed with exit code 1: x.cc:25:19: error: 'Name' has not been declared"
