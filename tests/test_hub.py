"""keras_hub vision models (config-built, random weights, nothing downloaded): inside a ViT, from Python and the shell."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import hub_models
import maco_keras
from maco_keras import applications, cli, models, objectives, results
from xplique.features_visualizations import Objective

SMALL = ["--steps", "8", "--image-size", "48", "--crops", "4", "--quiet", "--seed", "0"]


@pytest.fixture(scope="module")
def saved_vit(tmp_path_factory):
    path = tmp_path_factory.mktemp("vit") / "vit.keras"
    hub_models.vit().save(path)
    return path


def _rises(scores):
    """The score of the last steps is above that of the first: the optimization raised it."""
    scores = np.asarray(scores)
    return scores[-2:].mean() > scores[:2].mean()


def test_vit_from_the_shell_logits_blocks_and_a_class_token_neuron(saved_vit, tmp_path):
    out = tmp_path / "vit"
    assert cli.main(["visualize", str(saved_vit), "--out", str(out / "logits"), "--units", "3", *SMALL]) == 0
    blocks = "vit_encoder/transformer_block_2,vit_encoder/transformer_block_4"
    assert cli.main(["visualize", str(saved_vit), "--out", str(out / "blocks"), "--layer", blocks, "--units", "5",
                     *SMALL]) == 0
    assert cli.main(["visualize", str(saved_vit), "--out", str(out / "cls"), "--layer", "transformer_block_4",
                     "--token", "cls", "--units", "7", *SMALL]) == 0
    logits = results.RunFolder(out / "logits").read()
    assert (logits["layer"], logits["kind"]) == ("predictions", "logit")
    root = json.loads((out / "blocks" / results.MODEL_MANIFEST).read_text())
    assert [entry["layer"] for entry in root["layers"]] == [
        "vi_t_backbone/vit_encoder/transformer_block_2", "vi_t_backbone/vit_encoder/transformer_block_4"]
    folders = [out / "logits", out / "cls"] + [out / "blocks" / entry["folder"] for entry in root["layers"]]
    for folder in folders:
        manifest = results.RunFolder(folder).read()
        unit = int(next(iter(manifest["units"])))
        assert _rises(results.load_unit(folder, unit)["scores"]), folder
    cls = results.RunFolder(out / "cls").read()
    assert (cls["kind"], cls["token"], cls["num_units"]) == ("neuron", 0, 32)
    # Dataset examples at token layers, by path, for every layer of the root.
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(3):
        Image.fromarray((np.random.default_rng(index).random((40, 50, 3)) * 255).astype(np.uint8)).save(
            photos / f"photo_{index}.png")
    assert cli.main(["atlas", str(out / "blocks"), "--examples", str(photos), "--top", "2"]) == 0
    assert cli.main(["atlas", str(out / "cls"), "--examples", str(photos), "--top", "2"]) == 0
    for folder in [out / "cls"] + [out / "blocks" / entry["folder"] for entry in root["layers"]]:
        page = next((folder / "pages").glob("unit_*.html")).read_text()
        assert page.count('src="../examples/example_') == 2, folder
    assert "vi_t_backbone/vit_encoder/transformer_block_4" in (out / "blocks" / "index.html").read_text()


def test_vit_composition_from_python():
    """A block channel + 0.5 * a logit, in an Xplique composition: both parts rise."""
    model = hub_models.vit()
    objective = objectives.channel(model, "vit_encoder/transformer_block_2", [0, 1]) + 0.5 * Objective.neuron(
        model, -1, [3])
    visualization = maco_keras.maco(objective, steps=12, crops=4, image_size=48, seed=0, verbose=False,
                                    return_visualization=True)
    assert visualization.names[0] == "Channel#vi_t_backbone/vit_encoder/transformer_block_2_0 & Neuron#predictions_3"
    assert all(_rises(visualization.scores[:, index]) for index in range(2))
    # The MLP's hidden units of a block, and a class-token neuron, are units too.
    hidden = objectives.channel(model, "transformer_block_2/mlp/dense_1", [0])
    assert hidden.layers[0].shape == (17, 64)


def test_inversion_at_a_vit_penultimate_token_layer():
    """The inversion's activations at the backbone's output tokens approach the reference's."""
    model = hub_models.vit()
    layer = "vi_t_backbone"  # the backbone's output: the encoder's normalized tokens, before the head
    # A reference MACO can reach: an image of natural spectrum (uniform noise has none).
    reference = maco_keras.MacoImage(1, 32, values_range=(-1, 1), seed=7)().numpy()
    target = applications.layer_outputs(model, layer, reference)
    start = maco_keras.MacoImage(1, 40, values_range=(-1, 1), seed=0)().numpy()
    images, _ = applications.invert(model, layer, reference, jitter=4, steps=48, crops=4, seed=0, verbose=False)
    center = lambda image: image[:, 4:-4, 4:-4]  # noqa: E731 - the reference's view
    distance = lambda image: float(np.linalg.norm(applications.layer_outputs(model, layer, center(image)) - target))  # noqa: E731
    before, after = distance(start), distance(images)
    print(f"inversion distance at {layer}: {before:.2f} at the start, {after:.2f} after 48 steps "
          f"({after / before:.2f} of it)")
    assert after < 0.5 * before


def test_keras_hub_families_token_and_spatial_layers():
    for name, build in hub_models.BUILDERS.items():
        model = build()
        block = objectives.layer_tap(model, hub_models.BLOCKS[name])
        assert block.rank in (3, 4), name
        expected_prefix = {"ViT": 1, "DeiT": 2, "DINOv2": 5}.get(name)
        if block.rank == 3:
            assert objectives.count_prefix_tokens(block.shape[0]) == expected_prefix, name


def test_a_hub_classifier_with_its_image_converter_takes_0_255():
    model = hub_models.vit()
    converter = hub_models.keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0)
    wrapped = models.with_image_converter(model, converter)
    images = tf.random.uniform((2, 32, 32, 3), 0, 255, seed=0)
    np.testing.assert_allclose(wrapped(images), model(images / 127.5 - 1.0), atol=1e-4)
    assert objectives.layer_tap(wrapped, "transformer_block_2").path == "vit/vi_t_backbone/vit_encoder/transformer_block_2"


@pytest.mark.parametrize("argv, message", [
    (["--layer", "dropout"], "which names"),
    (["--layer", "vit_encoder/transformer_block_9"], "closest: vi_t_backbone/vit_encoder/transformer_block_"),
    (["--layer", "transformer_block_4", "--token", "17"], "expected --token in [0, 17)"),
    (["--layer", "transformer_block_4", "--token", "x"], "--token"),
    (["--layer", "predictions", "--token", "0"], "expected --token only with a token layer"),
    (["--layer", "nothing_*"], "expected a pattern that matches layers"),
])
def test_bad_layer_input_at_the_shell(saved_vit, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["visualize", str(saved_vit), "--out", str(tmp_path / "out"), *argv, *SMALL])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("maco-keras: error: ") and message in stderr[0], stderr


def test_a_keras_hub_preset_name_at_the_shell(monkeypatch, tmp_path):
    """A preset name is loaded as keras_hub's classifier with its own image converter in front (RGB in [0, 255]);
    `from_preset` is replaced by a config-built ViT here (no network)."""
    keras_hub = hub_models.keras_hub
    converter = keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0)

    def from_preset(preset, **kwargs):
        classifier = hub_models.vit()
        classifier.preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
        return classifier

    monkeypatch.setattr(keras_hub.models.ImageClassifier, "from_preset", from_preset)
    assert "vit_base_patch16_224_imagenet" in models.hub_presets()
    loaded = models.load("vit_base_patch16_224_imagenet")
    assert loaded.values_range == (0.0, 255.0) and loaded.model.input_shape == (None, 32, 32, 3)
    out = tmp_path / "preset"
    assert cli.main(["visualize", "hub:vit_base_patch16_224_imagenet", "--out", str(out), "--layer",
                     "transformer_block_1", "--units", "0", *SMALL]) == 0
    manifest = results.RunFolder(out).read()
    assert manifest["layer"] == "vit/vi_t_backbone/vit_encoder/transformer_block_1"
    assert manifest["settings"]["values_range"] == [0.0, 255.0]


def test_a_concept_direction_over_a_vit_block_tokens():
    model = hub_models.vit()
    concepts = np.random.default_rng(0).random((2, 32)).astype(np.float32)
    objective = applications.concept_visualization(model, "transformer_block_3", concepts)
    mask = objective.masks[0]
    assert mask.shape == (2, 17, 32)
    np.testing.assert_array_equal(mask[:, 0], 0.0)  # the class token is left out
    np.testing.assert_array_equal(mask[:, 1:], np.broadcast_to(concepts[:, None], (2, 16, 32)))
    visualization = maco_keras.maco(objective, steps=8, crops=4, image_size=48, seed=0, verbose=False,
                                     return_visualization=True)
    assert all(_rises(visualization.scores[:, index]) for index in range(2))
