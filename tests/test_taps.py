"""Layers by path inside nested models and subclassed layers, captured during the model's forward pass."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import maco_keras
from conftest import build_tiny_model
from maco_keras import objectives, optimization, taps
from xplique.features_visualizations import Objective

KW = dict(steps=3, crops=2, image_size=40, seed=0, verbose=False)


def nested(tiny):
    """The usual transfer-learning model: the tiny model's conv layers as a base inside a Sequential."""
    base = keras.Model(tiny.inputs, tiny.get_layer("conv2").output, name="base")
    return keras.Sequential([base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5, name="head")])


class Encoder(keras.layers.Layer):
    """A subclassed layer whose blocks no functional graph exposes (like keras_hub's ViTEncoder)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [keras.layers.Dense(8, activation="relu", name=f"block_{i}") for i in range(2)]

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def token_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    patches = keras.layers.Reshape((16, 8))(keras.layers.Conv2D(8, 8, strides=8, name="embed")(inputs))
    summary = keras.layers.GlobalAveragePooling1D(keepdims=True, name="summary")(patches)  # a "class token"
    tokens = keras.layers.Concatenate(axis=1, name="with_cls")([summary, patches])
    tokens = Encoder(name="encoder")(tokens)
    logits = keras.layers.Dense(4, name="logits")(tokens[:, 0])
    return keras.Model(inputs, logits, name="tokens")


def test_paths_reach_nested_and_subclassed_layers(tiny_model):
    model = nested(tiny_model)
    assert taps.find(model, "base/conv1")[0] == "base/conv1"
    assert taps.find(model, "conv1")[0] == "base/conv1"  # a unique bare name
    assert taps.tap(model, "base/conv1").shape == (30, 30, 8)
    vit = token_model()
    assert [path for path, _ in taps.layer_paths(vit) if path.startswith("encoder")] == [
        "encoder", "encoder/block_0", "encoder/block_1"]
    assert taps.tap(vit, "encoder/block_1").shape == (17, 8)
    assert taps.tap(vit, None).shape == (4,)
    assert taps.matching(vit, "encoder/block_*") == ["encoder/block_0", "encoder/block_1"]


@pytest.mark.parametrize("spec, message", [
    ("base/conv1:1", "which returns one"),
    ("conv", "closest: conv2, conv1"),
    ("base/conv9", "closest: base/conv2, base/conv1"),
    ("", "expected a layer name, path or index"),
])
def test_a_missing_layer_names_the_closest(tiny_model, spec, message):
    with pytest.raises(ValueError, match=message):
        taps.tap(nested(tiny_model), spec)


def test_an_ambiguous_bare_name_lists_the_paths():
    tiny = build_tiny_model()
    other = build_tiny_model(seed=1)
    inputs = keras.Input((32, 32, 3))
    a = keras.Model(tiny.inputs, tiny.get_layer("conv2").output, name="a")
    b = keras.Model(other.inputs, other.get_layer("conv2").output, name="b")
    model = keras.Model(inputs, keras.layers.Add()([a(inputs), b(inputs)]))
    with pytest.raises(ValueError, match="names 2: a/conv1, b/conv1"):
        taps.find(model, "conv1")
    assert taps.find(model, "b/conv1")[1] is other.get_layer("conv1")


def test_a_5d_layer_is_refused():
    inputs = keras.Input((8, 8, 3))
    volume = keras.layers.Reshape((2, 4, 8, 3), name="volume")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(volume)))
    with pytest.raises(ValueError, match=r"received: layer=volume with output shape \(None, 2, 4, 8, 3\)"):
        objectives.channel(model, "volume", 0)


def test_wrapping_does_not_change_the_result(tiny_model):
    """A channel reached through the nested path: the same bits as in the unwrapped model. (Xplique's own
    `Objective.channel` is not compared since format 3: it keeps Xplique's scale, the channel's mean divided by the
    channel count, where `objectives.channel` is maximized in the channel's own mean, as on every backend.)"""
    flat, _ = maco_keras.maco(objectives.channel(tiny_model, "conv1", [3]), **KW)
    wrapped, _ = maco_keras.maco(objectives.channel(nested(tiny_model), "base/conv1", [3]), **KW)
    np.testing.assert_array_equal(flat, wrapped)


@pytest.mark.shared
def test_wrapped_shared_mobilenet_gives_bit_identical_images(shared):
    """The issue's check: MobileNetV2 as a transfer-learning base; block_13_expand_relu channel 5."""
    model = keras.models.load_model(shared / "models" / "mobilenet_v2_1.0_224.keras", compile=False)
    base = keras.Model(model.inputs, model.get_layer("out_relu").output, name="mobilenetv2_1.00_224")
    wrapped = keras.Sequential([base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)])
    settings = dict(steps=2, crops=4, image_size=256, seed=3, verbose=False)
    alone, alone_transparency = maco_keras.maco(objectives.channel(model, "block_13_expand_relu", [5]), **settings)
    inside, inside_transparency = maco_keras.maco(
        objectives.channel(wrapped, "mobilenetv2_1.00_224/block_13_expand_relu", [5]), **settings)
    np.testing.assert_array_equal(alone, inside)
    np.testing.assert_array_equal(alone_transparency, inside_transparency)


def test_token_objectives_and_scores_in_the_units_own_values():
    model = token_model()
    channel = objectives.channel(model, "encoder/block_1", [2, 5])
    neuron = objectives.neuron(model, "block_1", [2], token=3)
    tap = taps.tap(model, "encoder/block_1")
    images = tf.random.uniform((2, 32, 32, 3), -1, 1, seed=0)
    output = taps.FeatureCapture(model, [tap])(images)[0].numpy()
    compiled = maco_keras.objective.compile_objective(channel)
    _, values = compiled.scores([tf.concat([output] * 2, 0)[:2]], [tf.constant(m) for m in compiled.masks],
                                tf.constant(compiled.multipliers), 1)
    # Row i is crop i for objective i (one crop per objective): mean over the 16 patch tokens, class token left out.
    np.testing.assert_allclose(values.numpy(), [output[0, 1:, 2].mean(), output[1, 1:, 5].mean()], rtol=1e-5)
    np.testing.assert_allclose(objectives.unit_values(output, "channel")[:, [2, 5]],
                               output[:, 1:, [2, 5]].mean(axis=1))
    assert neuron.names == [["Neuron#encoder/block_1_2@token3"]]
    with pytest.raises(ValueError, match=r"expected token in \[0, 17\) for encoder/block_1, received: token=17"):
        objectives.neuron(model, "encoder/block_1", 0, token=17)
    with pytest.raises(ValueError, match="expected a spatial or token layer for channels"):
        objectives.channel(model, "logits", 0)


def test_prefix_tokens():
    assert [objectives.count_prefix_tokens(n) for n in (197, 261, 196, 50, 18)] == [1, 5, 0, 1, 2]
    assert objectives.count_prefix_tokens(197, 0) == 0
    with pytest.raises(ValueError, match="prefix_tokens"):
        objectives.count_prefix_tokens(197, 197)


def test_a_subclassed_block_in_the_compiled_loop_traces_once_with_chunks_and_a_strategy():
    model = token_model()
    objective = objectives.channel(model, "encoder/block_0", [0, 1]) + 0.5 * objectives.logit(model, 2)
    optimization.clear_cache()
    first = maco_keras.maco(objective, return_visualization=True, crop_chunk=1, **KW)
    again = maco_keras.maco(objectives.channel(model, "encoder/block_0", [3, 4]) + 0.5 * objectives.logit(model, 1),
                            return_visualization=True, crop_chunk=1, **KW)
    loops = optimization.cached_loops()
    assert len(loops) == 1 and loops[0].trace_count == 1
    assert first.names[0] == "Channel#encoder/block_0_0 & Neuron#logits_2" and again.images.shape == (2, 40, 40, 3)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        mirrored = maco_keras.maco(objective, return_visualization=True, strategy=strategy, **KW)
    np.testing.assert_allclose(mirrored.images, first.images, atol=1e-4)


def test_composition_with_xplique_objectives_on_a_nested_model(tiny_model):
    model = nested(tiny_model)
    objective = objectives.channel(model, "base/conv2", [1, 2]) + 0.5 * Objective.neuron(model, -1, [0])
    visualization = maco_keras.maco(objective, return_visualization=True, **KW)
    assert visualization.images.shape == (2, 40, 40, 3)
    assert visualization.names == ["Channel#base/conv2_1 & Neuron#head_0", "Channel#base/conv2_2 & Neuron#head_0"]


class SubclassedNet(keras.Model):
    """A subclassed model: no symbolic inputs or outputs, only the shape it was built with."""

    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, name="conv")
        self.head = keras.layers.Dense(3, name="head")

    def call(self, x):
        return self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))


def test_a_subclassed_model_built_with_a_shape():
    keras.utils.set_random_seed(0)
    model = SubclassedNet()
    model.build((None, 32, 32, 3))
    assert [path for path, _ in taps.layer_paths(model)] == ["conv", "head"]
    assert taps.tap(model, "conv").shape == (30, 30, 4) and taps.tap(model, None).shape == (3,)
    visualization = maco_keras.maco(objectives.channel(model, "conv", [1]) + objectives.logit(model, 2),
                                    return_visualization=True, **KW)
    assert visualization.names == ["Channel#conv_1 & Neuron#output_2"] and visualization.images.shape == (1, 40, 40, 3)
