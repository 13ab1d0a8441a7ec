"""One picture per unit: the same (model, unit, settings, seed) gives the same bits in any company.

A unit's initial phase, crops and noise are keyed by (seed, the unit's identity, step)
(`seeding`), each image's inverse FFT runs alone (`spectrum.irfft2d_per_image`), each crop
weighs 1 / K whatever its chunk (`CompiledObjective.scores`), and a replica's crop
gradients reach the images in one call (`chunks`). So nothing a unit's picture depends on
changes with the batch, the shard or the chunk it ran in, provided the model's own kernels
give an example the same bits at every batch size. The shared MobileNetV2's do on this CPU
(tested here). TF's CPU convolution can take another path for a batch of one: the tiny
test model's strided convolution gives other last bits to its input gradient at batch 1
than at 2 or more, so the tiny checks below never call it on a single crop.
"""

import json

import keras
import numpy as np
import pytest

import maco_keras
from maco_keras import Objective, cli, objectives, results, seeding

UNITS = [1, 309, 500]


def test_unit_keys_are_stable_and_leave_nested_paths_out():
    # Fixed numbers: a key must not change between processes or versions (run folders rely on it).
    assert seeding.unit_key("Neuron#predictions_309") == seeding.unit_key("Neuron#predictions_309")
    assert seeding.unit_identity("Channel#base/inner/conv1_3") == "Channel#conv1_3"
    assert seeding.unit_identity("Neuron#a/logits_1 & Copy#0") == "Neuron#logits_1 & Copy#0"
    keys = seeding.unit_keys(["Neuron#predictions_1", "Neuron#predictions_309", "Channel#conv1_3"])
    assert keys.dtype == np.int32 and len(set(keys.tolist())) == 3 and (keys >= 0).all()


def test_a_unit_draws_the_same_alone_in_a_batch_and_in_chunks(tiny_model):
    kwargs = dict(steps=3, image_size=40, crops=4, seed=2, verbose=False, return_visualization=True)
    together = maco_keras.maco(tiny_model, units=[1, 4, 8], **kwargs)
    reordered = maco_keras.maco(tiny_model, units=[8, 1], crop_chunk=2, **kwargs)
    alone = maco_keras.maco(tiny_model, units=[4], crop_chunk=2, **kwargs)
    np.testing.assert_array_equal(together.images[[2, 0]], reordered.images)
    np.testing.assert_array_equal(together.images[1], alone.images[0])
    np.testing.assert_array_equal(together.transparency[1], alone.transparency[0])
    np.testing.assert_allclose(together.scores[:, 1], alone.scores[:, 0], rtol=1e-5)
    # A composition keys on its parts: the same composed unit alone or beside another.
    composed = Objective.neuron(tiny_model, -1, [1, 4]) + 0.5 * Objective.channel(tiny_model, "conv2", [3])
    both = maco_keras.maco(composed, **kwargs)
    first = maco_keras.maco(Objective.neuron(tiny_model, -1, [1]) + 0.5 * Objective.channel(tiny_model, "conv2", [3]),
                            **kwargs)
    np.testing.assert_array_equal(both.images[0], first.images[0])
    # Other seeds or other units give other pictures.
    assert not np.array_equal(maco_keras.maco(tiny_model, units=[4], **{**kwargs, "seed": 3}).images[0],
                              alone.images[0])


def _cli_images(model_path, folder, *options):
    argv = ["visualize", str(model_path), "--out", str(folder), "--units", ",".join(map(str, UNITS)), "--steps", "2",
            "--crops", "4", "--image-size", "256", "--seed", "0", "--values-range", "-1", "1", "--quiet", *options]
    assert cli.main(argv) == 0
    return {unit: np.load(folder / "units" / f"unit_{unit}.npz")["image"] for unit in UNITS
            if (folder / "units" / f"unit_{unit}.npz").exists()}


@pytest.mark.shared
def test_shared_mobilenet_units_are_bit_identical_in_any_company(shared, tmp_path):
    """The issue's check: units 1, 309 and 500 together, each alone, --batch 1, two shards, crop_chunk."""
    path = shared / "models" / "mobilenet_v2_1.0_224.keras"
    model = keras.models.load_model(path, compile=False)
    kwargs = dict(steps=2, crops=4, image_size=256, seed=0, values_range=(-1, 1), verbose=False)
    together, together_transparency = maco_keras.maco(model, units=UNITS, **kwargs)
    for index, unit in enumerate(UNITS):
        alone, alone_transparency = maco_keras.maco(model, units=[unit], **kwargs)
        np.testing.assert_array_equal(alone[0], together[index])
        np.testing.assert_array_equal(alone_transparency[0], together_transparency[index])
    chunked, chunked_transparency = maco_keras.maco(model, units=UNITS, crop_chunk=1, **kwargs)
    np.testing.assert_array_equal(chunked, together)
    np.testing.assert_array_equal(chunked_transparency, together_transparency)
    # From the shell: --batch 1, and two shards of one folder.
    batch_one = _cli_images(path, tmp_path / "batch1", "--batch", "1")
    first = _cli_images(path, tmp_path / "shards", "--shard", "0/2", "--crop-chunk", "2")
    sharded = _cli_images(path, tmp_path / "shards", "--shard", "1/2", "--crop-chunk", "2")
    assert 0 < len(first) < len(UNITS) and len(sharded) == len(UNITS)
    chunk_two = _cli_images(path, tmp_path / "chunks", "--crop-chunk", "2")
    for index, unit in enumerate(UNITS):
        for images in (batch_one, sharded, chunk_two):
            np.testing.assert_array_equal(images[unit], together[index])
    # The folder says how its draws were keyed.
    manifest = json.loads((tmp_path / "shards" / results.MANIFEST).read_text())
    assert manifest["format"] == results.FORMAT and manifest["settings"]["draws"] == seeding.DRAWS


def test_a_channel_is_the_same_in_a_wrapped_model(tiny_model):
    inputs = keras.Input((32, 32, 3))
    wrapped = keras.Model(inputs, keras.layers.Dense(2)(tiny_model(inputs)))
    kwargs = dict(steps=2, image_size=40, crops=4, seed=1, verbose=False)
    flat, _ = maco_keras.maco(objectives.channel(tiny_model, "conv1", [3, 5]), **kwargs)
    inside, _ = maco_keras.maco(objectives.channel(wrapped, f"{tiny_model.name}/conv1", [5]), **kwargs)
    np.testing.assert_array_equal(flat[1], inside[0])


@pytest.mark.parametrize("format_, draws, said", [(1, None, "Philox generator keyed per batch"),
                                                  (2, "per unit", "Philox generator keyed per unit")])
def test_a_folder_of_earlier_draws_is_read_but_not_resumed(tiny_model, tmp_path, capsys, format_, draws, said):
    model_path = tmp_path / "tiny.keras"
    tiny_model.save(model_path)
    folder = tmp_path / "run"
    argv = ["visualize", str(model_path), "--out", str(folder), "--units", "0-2", "--steps", "2", "--image-size", "40",
            "--crops", "2", "--quiet"]
    assert cli.main(argv) == 0
    # What an earlier version wrote: format 1, no "draws" (Philox keyed per batch), or format 2, TensorFlow's
    # Philox keyed per unit; one unit left to do.
    manifest = json.loads((folder / results.MANIFEST).read_text())
    manifest["format"] = format_
    if draws is None:
        del manifest["settings"]["draws"]
    else:
        manifest["settings"]["draws"] = draws
    (folder / results.MANIFEST).write_text(json.dumps(manifest))
    (folder / "units" / "unit_2.json").unlink()
    before = {path.name: path.stat().st_mtime_ns for path in (folder / "units").iterdir()}
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and said in error and f"format {format_}" in error and "another --out" in error
    assert {path.name: path.stat().st_mtime_ns for path in (folder / "units").iterdir()} == before
    # Its finished units are still read, and an atlas is still drawn.
    assert sorted(results.RunFolder(folder).read()["units"]) == ["0", "1", "2"]
    assert cli.main(["atlas", str(folder)]) == 0


def test_a_run_folder_on_a_tensorflow_file_system(tiny_model, tmp_path, capsys):
    """--out on a file system reached through tf.io.gfile (ram:// here, gs:// on a Cloud TPU VM): two shards,
    a resume that rewrites nothing, and the same pictures as a local folder."""
    model_path = tmp_path / "tiny.keras"
    tiny_model.save(model_path)
    common = ["--units", "0-4", "--steps", "2", "--image-size", "40", "--crops", "2", "--batch", "2", "--quiet"]
    remote = "ram://maco-test/run"
    for shard in ("0/2", "1/2"):
        assert cli.main(["visualize", str(model_path), "--out", remote, "--shard", shard, *common]) == 0
    folder = results.RunFolder(remote)
    manifest = folder.read()
    assert sorted(manifest["units"], key=int) == ["0", "1", "2", "3", "4"]
    assert all(entry["state"] == "done" for entry in manifest["units"].values())
    assert folder.finished(range(5)) == list(range(5))
    capsys.readouterr()
    assert cli.main(["visualize", str(model_path), "--out", remote, *common]) == 0
    assert "5 of 5 units already in" in capsys.readouterr().out
    assert cli.main(["visualize", str(model_path), "--out", str(tmp_path / "local"), *common]) == 0
    for unit in range(5):
        np.testing.assert_array_equal(results.load_unit(remote, unit)["image"],
                                      results.load_unit(tmp_path / "local", unit)["image"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["atlas", remote])
    assert exit_info.value.code == 2 and "expected a local run folder" in capsys.readouterr().err
