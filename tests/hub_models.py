"""Small keras_hub vision models built from configs, random weights: nothing is downloaded.

Layers are named explicitly, so that paths do not depend on what was built before.
Each builder returns a task model (or a backbone with a head) of 32x32 RGB inputs and
10 logits; `BLOCKS[name]` is a layer path of one block in it, `LAST_BLOCKS[name]` of the last.
"""

import os

import keras
import pytest

try:
    import keras_hub
except ImportError:
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        raise  # CI installs the [hub] extra, as README's set-up does: its tests must run there
    pytest.skip("keras_hub is the optional [hub] extra: pip install -e '.[dev,hub]'", allow_module_level=True)

SIZE = 32


def vit(num_layers=4):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=num_layers, num_heads=2, hidden_dim=32, mlp_dim=64,
        dropout_rate=0.0, attention_dropout=0.0, layer_norm_epsilon=1e-6, name="vi_t_backbone")
    return keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=10, preprocessor=None, name="vit")


def deit():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.DeiTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, name="dei_t_backbone")
    return keras_hub.models.DeiTImageClassifier(backbone=backbone, num_classes=10, preprocessor=None, name="deit")


def dinov2():
    """DINOv2 with 4 register tokens, a linear head on its class token (keras_hub has no DINOv2 task)."""
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.DINOV2Backbone(
        patch_size=8, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32, num_register_tokens=4,
        image_shape=(SIZE, SIZE, 3), position_embedding_shape=(SIZE, SIZE, 3), name="dinov2_backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    tokens = backbone(inputs)
    logits = keras.layers.Dense(10, name="predictions")(tokens[:, 0])
    return keras.Model(inputs, logits, name="dinov2_classifier")


def resnet():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        image_shape=(SIZE, SIZE, 3), name="res_net_backbone")
    return keras_hub.models.ResNetImageClassifier(backbone=backbone, num_classes=10, preprocessor=None,
                                                  name="resnet")


BUILDERS = {"ViT": vit, "DeiT": deit, "DINOv2": dinov2, "ResNet": resnet}
# DeiT's blocks return (tokens, attention scores): `:0` names the tokens.
BLOCKS = {"ViT": "vit_encoder/transformer_block_2", "DeiT": "deit_encoder/transformer_block_1:0",
          "DINOv2": "dinov2_backbone_encoder/layers_0", "ResNet": "stack0_block0_out"}
LAST_BLOCKS = {"ViT": "vit_encoder/transformer_block_4", "DeiT": "deit_encoder/transformer_block_2:0",
               "DINOv2": "dinov2_backbone_encoder/layers_1", "ResNet": "stack1_block0_out"}
