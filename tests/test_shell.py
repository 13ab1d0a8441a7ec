"""The shell around run folders: errors before any import, moved folders, `layers`, `verify`, `--version`,
piped output, a non-atomic rename, pinned pictures and compositions in the units' own values."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import build_tiny_model, command, environment
from maco_keras import cli, results, storage

SMALL = ["--steps", "3", "--image-size", "40", "--crops", "2", "--quiet"]


# Any import of a framework fails: what the command line checks before importing one must not need it.
NO_FRAMEWORKS = ("import sys\n"
                 "class Blocked:\n"
                 "    def find_spec(self, name, path=None, target=None):\n"
                 "        if name.split('.')[0] in ('tensorflow', 'keras', 'jax', 'torch', 'xplique'):\n"
                 "            raise ImportError(f'{name} is blocked in this test')\n"
                 "sys.meta_path.insert(0, Blocked())\n"
                 "from maco_keras.runs.cli import main\n"
                 "sys.exit(main(sys.argv[1:]))\n")


@pytest.mark.parametrize("argv, message", [
    (["visualize", "missing.keras", "--out", "{tmp}/out"], "MODEL=missing.keras (no such file)"),
    (["visualize", "{model}", "--out", "{tmp}/out", "--units", "3-1"], "low <= high"),
    (["visualize", "{model}", "--out", "{tmp}/out", "--units", "x"], "numbers and ranges"),
    (["visualize", "{model}", "--out", "{tmp}/out", "--shard", "2/2"], "--shard=2/2"),
    (["visualize", "{model}", "--out", "{model}"], "a file"),
    (["visualize", "{model}", "--out", ""], "--out=''"),
    (["visualize", "{model}", "--out", "{tmp}/out", "--values-range", "1", "0"], "--values-range"),
    (["visualize", "{model}", "--out", "{tmp}/out", "--backend", "jax", "--strategy", "mirrored"], "--strategy"),
    (["visualize", "{model}", "--out", "{tmp}/out", "--backend", "torch", "--crops", "4", "--crop-chunk", "3"],
     "--crop-chunk=3"),
    (["visualize", "{model}", "--out", "{tmp}/out", "--steps", "0"], "--steps"),
    (["atlas", "{tmp}/nowhere"], "no such folder"),
    (["atlas", "{tmp}", "--top", "2"], "no manifest.json in it"),
    (["verify", "{tmp}/x" + "y" * 300], "File name too long"),
    (["verify", "{tmp}"], "no manifest.json in it"),
    (["layers", "{tmp}/missing.h5"], "no such file"),
])
def test_bad_input_is_one_line_before_any_framework_import(argv, message, saved_model, tmp_path):
    argv = [part.format(tmp=tmp_path, model=saved_model) for part in argv]
    result = subprocess.run([sys.executable, "-c", NO_FRAMEWORKS, *argv], env=environment(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maco-keras: error: ") and message in lines[0], result.stderr


def test_version_and_the_frameworks_stay_unimported():
    result = subprocess.run([sys.executable, "-c", NO_FRAMEWORKS, "--version"], env=environment(),
                            capture_output=True, text=True, timeout=60)
    from maco_keras import __version__

    assert result.returncode == 0 and result.stdout.strip() == f"maco-keras {__version__}"


def test_layers_lists_paths_shapes_and_units(saved_model, capsys):
    assert cli.main(["layers", str(saved_model)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["conv1", "conv2", "pool", "logits"]
    assert "(None, 14, 14, 16)" in lines[1] and "16 channels" in lines[1]
    assert "(None, 10)" in lines[3] and "10 neurons" in lines[3]
    assert cli.main(["layers", str(saved_model), "conv*"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    with pytest.raises(SystemExit) as stopped:
        cli.main(["layers", str(saved_model), "nothing*"])
    assert stopped.value.code == 2


def test_layers_of_a_nested_model(tmp_path, capsys):
    import keras

    inner = build_tiny_model()
    outer = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1.0, name="scale"), inner])
    path = tmp_path / "nested.keras"
    outer.save(path)
    assert cli.main(["layers", str(path), f"{inner.name}/conv*"]) == 0
    out = capsys.readouterr().out
    assert f"{inner.name}/conv2" in out and "16 channels" in out


def test_piped_output_is_plain_lines(saved_model, tmp_path):
    """No --quiet, output to a pipe: no step bar, so no escape sequence and no carriage return."""
    folder = tmp_path / "run"
    result = subprocess.run(command("visualize", saved_model, "--out", folder, "--units", "0-1", "--steps", "3",
                                     "--image-size", "40", "--crops", "2"), env=environment(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\r" not in stream
    assert "0 of 2 units already in" in result.stdout and "mean of the batch's units" in result.stdout
    atlas = subprocess.run(command("atlas", folder), env=environment(), capture_output=True, text=True, timeout=300)
    assert atlas.returncode == 0 and "\x1b" not in atlas.stdout + atlas.stderr and "\r" not in atlas.stdout


def test_a_moved_folder_resumes_and_builds_its_atlas_with_examples(saved_model, tmp_path, shared):
    """The manifest records the model by absolute path and digest: a moved folder resumes with the model spelled
    another way, and its atlas finds the model from another directory (or takes --model)."""
    model = tmp_path / "models" / "tiny.keras"
    model.parent.mkdir()
    shutil.copy(saved_model, model)
    first = tmp_path / "a" / "run"
    relative = os.path.relpath(model, tmp_path)
    result = subprocess.run(command("visualize", relative, "--out", first, "--units", "0", *SMALL),
                            env=environment(), capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((first / results.MANIFEST).read_text())
    assert manifest["model"] == relative and manifest["model_path"] == str(model.resolve())
    moved = tmp_path / "b" / "moved"
    moved.parent.mkdir()
    shutil.move(first, moved)
    assert cli.main(["visualize", str(model.resolve()), "--out", str(moved), "--units", "0-1", *SMALL]) == 0
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((shared / "imagenet-samples").glob("*"))[:4]:
        shutil.copy(path, images)
    elsewhere = tmp_path / "c"
    elsewhere.mkdir()
    result = subprocess.run(command("atlas", moved, "--examples", images, "--top", "2"), env=environment(),
                            capture_output=True, text=True, cwd=elsewhere, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (moved / "index.html").is_file() and list((moved / "examples").glob("example_*.jpg"))
    # With the model moved too, --model names it; another model is refused.
    shutil.move(model, tmp_path / "tiny_moved.keras")
    assert cli.main(["atlas", str(moved), "--examples", str(images), "--top", "2",
                     "--model", str(tmp_path / "tiny_moved.keras")]) == 0
    build_tiny_model(seed=3).save(tmp_path / "other.keras")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["atlas", str(moved), "--examples", str(images), "--model", str(tmp_path / "other.keras")])
    assert stopped.value.code == 2


def test_unit_pages_show_the_values_used(saved_model, tmp_path):
    folder = tmp_path / "run"
    assert cli.main(["visualize", str(saved_model), "--out", str(folder), "--units", "0", *SMALL]) == 0
    assert cli.main(["atlas", str(folder)]) == 0
    page = (folder / "pages" / "unit_0.html").read_text()
    for shown in ("ramp", "the model file&#39;s", "model_digest"):
        assert shown in page, shown
    assert ">None<" not in page.replace(" ", "")


class _Killed(BaseException):
    """The process dies here (in a test: raised through everything)."""


def test_a_non_atomic_rename_never_passes_a_half_copied_file(saved_model, tmp_path, monkeypatch):
    """On object stores a rename is a copy then a delete: a process that dies mid-copy leaves a half-written
    target. Killed in the middle of each of a unit's four renames in turn, the rerun ends in a folder whose
    every unit matches its record."""
    reference = tmp_path / "reference"
    assert cli.main(["visualize", str(saved_model), "--out", str(reference), "--units", "0-1", *SMALL]) == 0
    real_replace = os.replace
    for victim in range(4):  # unit 0's image, transparency, data, then its record
        folder = tmp_path / f"run_{victim}"
        calls = []

        def copy_then_delete(source, target):
            name = os.path.basename(target)
            if name.startswith("unit_0"):
                calls.append(name)
            data = open(source, "rb").read()
            with open(target, "wb") as handle:
                handle.write(data[:len(data) // 2])
                if name.startswith("unit_0") and len(calls) == victim + 1:
                    raise _Killed(name)  # half the target written, the source not deleted
                handle.write(data[len(data) // 2:])
            os.unlink(source)

        monkeypatch.setattr(storage.os, "replace", copy_then_delete)
        with pytest.raises(_Killed):
            cli.main(["visualize", str(saved_model), "--out", str(folder), "--units", "0-1", "--batch", "1", *SMALL])
        monkeypatch.setattr(storage.os, "replace", real_replace)
        assert results.RunFolder(folder).verify()["done"] == []  # the half-written unit is not taken for done
        assert cli.main(["visualize", str(saved_model), "--out", str(folder), "--units", "0-1", "--batch", "1",
                         *SMALL]) == 0
        report = results.RunFolder(folder).verify()
        assert report["done"] == [0, 1] and not report["damaged"], (victim, report)
        for unit in (0, 1):
            np.testing.assert_array_equal(results.load_unit(folder, unit)["image"],
                                          results.load_unit(reference, unit)["image"])


# A change of the random keying or of the draws changes this digest: it cannot pass silently. It pins what a
# unit's picture starts from, its initial phase, exactly: integer hashing gives the same bits on every CPU and
# backend, and TensorFlow's engine draws the core's phase (format 3; before, its own Philox phase, "c91371ca8d780ae5").
# A finished picture's bits are not pinned: TF's CPU kernels differ in the last bits between CPU families
# (measured: an AMD EPYC and an Intel machine), which NAdam's sign-like first steps amplify.
PINNED_PHASE = "1164bed437f41a40"


def _digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def test_pinned_initial_phases(saved_model, tmp_path):
    import math

    from maco_keras import parameterization, seeding
    from maco_keras.core import draws

    keys = seeding.unit_keys(["Neuron#logits_7"])
    assert keys.tolist() == [draws.unit_key("Neuron#logits_7")]
    shape = (3, 40, 21)  # colour, height, width // 2 + 1: a 40-pixel picture's spectrum
    images = parameterization.MacoImage(1, 40, magnitude=np.ones(shape, np.float32))
    images.reset(0, keys)
    engine = images.phase.numpy()[0]
    uniform = draws.numpy_uniform(draws.numpy_stream_key(0, int(keys[0]), draws.INITIAL_STEP, draws.PHASE), shape)
    core = uniform * np.float32(2.0 * math.pi) - np.float32(math.pi)  # `render.initial_phase`, in float32
    assert _digest(np.float32(core)) == PINNED_PHASE
    np.testing.assert_array_equal(engine, np.float32(core))
    # The run folder's picture of that unit starts from the engine's phase: one step moves it, the run is seeded.
    folder = tmp_path / "run"
    assert cli.main(["visualize", str(saved_model), "--out", str(folder), "--units", "7", *SMALL]) == 0
    again = tmp_path / "again"
    assert cli.main(["visualize", str(saved_model), "--out", str(again), "--units", "7", *SMALL]) == 0
    assert _digest(results.load_unit(folder, 7)["image"]) == _digest(results.load_unit(again, 7)["image"])


def test_compositions_weigh_the_units_own_values(tiny_model):
    """`channel + 0.5 * logit` from `maco_keras.objectives` maximizes the channel's mean plus half the logit, in the
    units' own values (as the core does on every backend); Xplique's own objectives keep Xplique's weighting."""
    import tensorflow as tf
    from xplique.features_visualizations import Objective

    from maco_keras import objectives
    from maco_keras.objective import compile_objective

    images = tf.random.stateless_uniform((1, 32, 32, 3), (1, 2), -1.0, 1.0)
    conv = keras_model_output(tiny_model, "conv2", images)
    logits = tiny_model(images).numpy()
    channel_mean, logit = conv[0, :, :, 7].mean(), logits[0, 3]
    channels = conv.shape[-1]

    def loss_and_values(objective):
        compiled = compile_objective(objective)
        outputs = compiled.model(images)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        total, values = compiled.scores(list(outputs), [tf.constant(mask) for mask in compiled.masks],
                                        tf.constant(compiled.multipliers), num_crops=1)
        return float(total[0]), float(values[0])

    ours = objectives.channel(tiny_model, "conv2", 7) + 0.5 * objectives.logit(tiny_model, 3)
    total, values = loss_and_values(ours)
    assert values == pytest.approx(channel_mean + 0.5 * logit, rel=1e-5)
    assert total == pytest.approx(channel_mean + 0.5 * logit, rel=1e-5)  # the units' own values, as the core
    alone, _ = loss_and_values(objectives.channel(tiny_model, "conv2", 7))
    assert alone == pytest.approx(channel_mean, rel=1e-5)
    xplique = Objective.channel(tiny_model, "conv2", 7) + 0.5 * Objective.neuron(tiny_model, "logits", 3)
    total, values = loss_and_values(xplique)
    assert values == pytest.approx(channel_mean + 0.5 * logit, rel=1e-5)
    assert total == pytest.approx(channel_mean / channels + 0.5 * logit / logits.shape[-1], rel=1e-5)


def keras_model_output(model, layer, images):
    import keras

    return keras.Model(model.inputs, model.get_layer(layer).output)(images).numpy()


def test_a_model_without_image_inputs_is_one_line(tmp_path, capsys):
    import keras

    path = tmp_path / "dense.keras"
    keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)]).save(path)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["visualize", str(path), "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "input shape (None, 10)" in error and "(batch, height, width, channels)" in error
