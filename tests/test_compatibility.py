"""The compatibility matrix: every keras.applications architecture, keras_hub's vision families and the
nested transfer-learning model, each for its logits and one channel inside, 1 step at a small input.

One model per keras.applications family runs by default (the cheap half); `MACO_SLOW=1` runs them all.
README's "Tested models" table is `readme_table()` (a test keeps them equal).
"""

import os

import keras
import numpy as np
import pytest

import maco_keras
from conftest import REPO
from maco_keras import models, objectives, taps

# family -> (the model run by default, the others); every keras.applications constructor is in one.
FAMILIES = {
    "ConvNeXt": ("ConvNeXtTiny", ["ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"]),
    "DenseNet": ("DenseNet121", ["DenseNet169", "DenseNet201"]),
    "EfficientNet": ("EfficientNetB0", [f"EfficientNetB{i}" for i in range(1, 8)]),
    "EfficientNetV2": ("EfficientNetV2B0", ["EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
                                            "EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L"]),
    "Inception": ("InceptionV3", ["InceptionResNetV2"]),
    "MobileNet (V1, V2)": ("MobileNetV2", ["MobileNet"]),
    "MobileNetV3": ("MobileNetV3Small", ["MobileNetV3Large"]),
    "NASNet": ("NASNetMobile", ["NASNetLarge"]),
    "ResNet": ("ResNet50", ["ResNet101", "ResNet152"]),
    "ResNetV2": ("ResNet50V2", ["ResNet101V2", "ResNet152V2"]),
    "VGG": ("VGG16", ["VGG19"]),
    "Xception": ("Xception", []),
}
SLOW = os.environ.get("MACO_SLOW") == "1"
CASES = [pytest.param(name, id=name) for default, _ in FAMILIES.values() for name in [default]] + [
    pytest.param(name, id=name, marks=[pytest.mark.slow, pytest.mark.skipif(not SLOW, reason="MACO_SLOW=1 runs it")])
    for _, others in FAMILIES.values() for name in others]


def _input_size(name):
    return 75 if name.startswith(("Inception", "Xception")) else 32


def middle_channel_layer(model):
    """The middle of the model's top-level 4-D layers: a channel layer half-way through."""
    spatial = [layer.name for layer in model.layers
               if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4]
    return spatial[len(spatial) // 2]


def _check_logit_and_channel(model, layer, values_range, size):
    settings = dict(steps=1, crops=1, image_size=size + 8, values_range=values_range, seed=0, verbose=False,
                    return_visualization=True)
    for objective in (objectives.logit(model, [1]), objectives.channel(model, layer, [0])):
        visualization = maco_keras.maco(objective, **settings)
        assert visualization.images.shape == (1, size + 8, size + 8, 3)
        assert np.all(np.isfinite(visualization.images)) and np.all(np.isfinite(visualization.scores))
    maco_keras.clear_cache()


def test_every_application_is_in_the_matrix():
    listed = {name for default, others in FAMILIES.values() for name in [default, *others]}
    assert listed == set(models.application_names())


@pytest.mark.parametrize("name", CASES)
def test_keras_applications(name):
    size = _input_size(name)
    model = models.load(name, weights=None, input_size=size).model
    _check_logit_and_channel(model, middle_channel_layer(model), (0, 255), size)


def test_nested_transfer_learning_model():
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    model = keras.Sequential([base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)])
    path = f"{base.name}/block_6_expand_relu"
    assert taps.find(model, "block_6_expand_relu")[0] == path
    _check_logit_and_channel(model, path, (-1, 1), 32)


def test_keras_hub_families():
    hub_models = pytest.importorskip("hub_models")
    for name, build in hub_models.BUILDERS.items():
        _check_logit_and_channel(build(), hub_models.BLOCKS[name], (-1, 1), hub_models.SIZE)


def readme_table():
    rows = [f"| {family} | {', '.join([default, *others])} | {default} | {', '.join(others) or '-'} |"
            for family, (default, others) in FAMILIES.items()]
    rows.append("| keras_hub (config-built) | ViT, DeiT, DINOv2 (4 registers), ResNet | all four, a block's channel "
                "and the logits | - |")
    rows.append("| nested (transfer learning) | `Sequential([MobileNetV2(include_top=False), "
                "GlobalAveragePooling2D(), Dense(5)])` | logits and `block_6_expand_relu` by path | - |")
    return "\n".join(rows)


def test_the_readme_table_is_the_matrix():
    assert readme_table() in (REPO / "README.md").read_text()
