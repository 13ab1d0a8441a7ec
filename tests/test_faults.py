"""Run folders under faults: one row per fault, each ending in a folder whose every unit decodes and
matches its record (`maco-keras verify` finds nothing to redo), or in one line and a non-zero exit.

The faults: same-size byte flips in an .npz and a PNG, truncation, a garbage record, a deleted file, a
full disk, a read-only folder, SIGKILL at five random moments, SIGINT, a NaN logit among six units, two
runs with different --steps started together, a changed model file at the same path, and the relu
redirect changed on resume. `benchmarks/faults.sh` runs the same faults from the shell.
"""

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from conftest import build_tiny_model, command, environment
from maco_keras import cli, results, storage

SMALL = ["--steps", "3", "--image-size", "40", "--crops", "2", "--quiet"]
UNITS = [0, 1, 2, 3, 7]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, saved_model):
    """A clean run of units 0-3 and 7: what every fault must end in (or be refused)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert cli.main(["visualize", str(saved_model), "--out", str(out), "--units", "0-3,7", "--batch", "2", *SMALL]) == 0
    return out


def _visualize(model, folder, *extra, units="0-3,7"):
    return ["visualize", str(model), "--out", str(folder), "--units", units, "--batch", "2", *SMALL, *extra]


def assert_intact(folder, units, reference=None):
    """Every unit is done, decodes, matches its record's digests, and (given a reference) has its pictures."""
    report = results.RunFolder(folder).verify()
    assert report["done"] == sorted(units), report
    assert not report["damaged"] and not report["foreign"] and not report["unrecorded"], report
    for unit in units:
        data = results.load_unit(folder, unit)
        assert np.all(np.isfinite(data["image"]))
        if reference is not None:
            np.testing.assert_array_equal(data["image"], results.load_unit(reference, unit)["image"])
    assert not list(folder.rglob("*.tmp"))


def _one_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def _flip_byte(path, offset_from_end=None):
    data = bytearray(path.read_bytes())
    position = len(data) // 2 if offset_from_end is None else len(data) - offset_from_end
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "npz same-size byte flip": lambda folder: _flip_byte(folder / results.unit_files(3)["data"]),
    "png same-size byte flip": lambda folder: _flip_byte(folder / results.unit_files(3)["image"]),
    "transparency png flip in its last chunk": lambda folder: _flip_byte(
        folder / results.unit_files(3)["transparency"], offset_from_end=20),
    "truncation": lambda folder: (folder / results.unit_files(3)["data"]).write_bytes(
        (folder / results.unit_files(3)["data"]).read_bytes()[:100]),
    "garbage record": lambda folder: (folder / "units" / "unit_3.json").write_bytes(b"\x00garbage{"),
    "deleted file": lambda folder: (folder / results.unit_files(3)["transparency"]).unlink(),
}


@pytest.mark.parametrize("fault", list(DAMAGE))
def test_damaged_unit_is_seen_and_redone(fault, reference, saved_model, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    kept = {unit: (folder / results.unit_files(unit)["data"]).stat().st_mtime_ns for unit in (0, 1, 2, 7)}
    DAMAGE[fault](folder)
    garbage_record = fault == "garbage record"
    if not garbage_record:
        assert cli.main(["verify", str(folder)]) == cli.EXIT_DAMAGED
        assert "damaged unit 3" in capsys.readouterr().out
        # The atlas skips and lists the damaged unit, and never reads it.
        assert cli.main(["atlas", str(folder)]) == 0
        out = capsys.readouterr().out
        assert "skipped 1 damaged unit: 3" in out and "atlas of 4 units" in out
    assert cli.main(_visualize(saved_model, folder)) == 0
    out = capsys.readouterr().out
    if garbage_record:  # an unreadable record: its files are whole, so the unit is adopted, not redone
        assert "5 of 5 units already in" in out
    else:
        assert "redoing 1 damaged unit: 3" in out and "4 of 5 units already in" in out
    assert {unit: (folder / results.unit_files(unit)["data"]).stat().st_mtime_ns for unit in (0, 1, 2, 7)} == kept
    assert_intact(folder, UNITS, reference)
    assert cli.main(["verify", str(folder)]) == 0


@pytest.mark.parametrize("error_number", [errno.ENOSPC, errno.EROFS])
def test_full_disk_or_read_only_folder_is_one_line_then_resumes(error_number, reference, saved_model, tmp_path,
                                                                monkeypatch, capsys):
    """A write that fails (a full disk, a read-only file system) mid-run: one line, exit 2, no temporary file
    left; the finished units are kept and the rerun completes the folder."""
    folder = tmp_path / "run"
    real_fsync, calls = os.fsync, []

    def failing_fsync(descriptor):
        calls.append(descriptor)
        if len(calls) > 6:  # the manifest, the plan, unit 0's three files and record, then unit 1's first file
            raise OSError(error_number, os.strerror(error_number))
        real_fsync(descriptor)

    monkeypatch.setattr(storage.os, "fsync", failing_fsync)
    with pytest.raises(SystemExit) as stopped:
        cli.main(_visualize(saved_model, folder))
    assert stopped.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert os.strerror(error_number) in line and "unit_1.png" in line
    assert not list(folder.rglob("*.tmp"))
    assert results.RunFolder(folder).verify()["done"] == [0]
    monkeypatch.setattr(storage.os, "fsync", real_fsync)
    assert cli.main(_visualize(saved_model, folder)) == 0
    assert "1 of 5 units already in" in capsys.readouterr().out
    assert_intact(folder, UNITS, reference)


def test_atlas_on_a_read_only_folder_is_one_line(reference, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)

    def read_only(temporary, data, target=None):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))

    monkeypatch.setattr(storage, "_write_synced", read_only)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["atlas", str(folder)])
    assert stopped.value.code == 2 and "Read-only file system" in _one_line(capsys.readouterr().err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (the EROFS row covers it)")
def test_atlas_in_a_folder_without_write_permission(reference, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)
    try:
        result = subprocess.run(command("atlas", folder), env=environment(), capture_output=True, text=True)
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
    assert result.returncode == 2 and "Permission denied" in _one_line(result.stderr)


@pytest.mark.parametrize("manifest", [b"{not json", b'{"format": 2, "model": "m", "layer": "l", "settings": 3}',
                                      b'["a list"]'])
def test_damaged_or_hand_edited_manifest_is_one_line(manifest, reference, saved_model, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    (folder / results.MANIFEST).write_bytes(manifest)
    for argv in (["atlas", str(folder)], _visualize(saved_model, folder), ["verify", str(folder)]):
        with pytest.raises(SystemExit) as stopped:
            cli.main(argv)
        assert stopped.value.code == 2
        assert "manifest" in _one_line(capsys.readouterr().err)


def test_sigkill_at_five_random_moments_then_resume(saved_model, reference, tmp_path):
    """Killed five times at random moments (seeded) of a run, then run to the end: every unit decodes and matches
    its record, and equals an uninterrupted run's."""
    clean = tmp_path / "clean"
    started = time.monotonic()
    slow = ["--batch", "1", "--steps", "300", "--crops", "8"]  # a unit at a time, each long enough to be killed in
    process = subprocess.Popen(command(*_visualize(saved_model, clean, *slow)), env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None  # when its first unit is in: before, TensorFlow's import, the model's load and the trace
    while process.poll() is None:
        if first is None and (clean / "units" / "unit_0.json").exists():
            first = time.monotonic() - started
        time.sleep(0.01)
    duration = time.monotonic() - started
    assert process.returncode == 0, process.stderr.read()[-2000:]
    process.stderr.close()
    first = duration if first is None else first
    per_unit = (duration - first) / (len(UNITS) - 1)
    draw = random.Random(2026)
    moments = []
    for index in range(5):  # each kill in a folder of its own, then its resume
        folder = tmp_path / f"run_{index}"
        argv = command(*_visualize(saved_model, folder, *slow))
        process = subprocess.Popen(argv, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started = time.monotonic()
        # One moment in five before the first unit (the start, the manifest); the others after a drawn number of
        # units, a drawn fraction of a unit's time later. Anchored to the run's own progress, not to the clock of
        # the clean run: a start (imports, trace) varies by seconds from one process to the next on a busy machine.
        if draw.random() < 0.2:
            after, delay = 0, draw.uniform(0.2 * first, 0.9 * first)
        else:
            after, delay = draw.randint(1, len(UNITS) - 1), draw.uniform(0.0, per_unit)
        while len(list(folder.glob("units/*.json"))) < after and process.poll() is None:
            time.sleep(0.005)
        waited = time.monotonic()
        while time.monotonic() - waited < delay and process.poll() is None:
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
        moments.append((after, round(delay, 2), process.returncode, len(list(folder.glob("units/*.json")))))
        finished = subprocess.run(argv, env=environment(), capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr[-2000:]
        assert_intact(folder, UNITS)
        for unit in UNITS:
            np.testing.assert_array_equal(results.load_unit(folder, unit)["image"],
                                          results.load_unit(clean, unit)["image"])
    assert any(code == -signal.SIGKILL and 0 < records < len(UNITS) for _, _, code, records in moments), moments


# Ctrl-C as in a terminal: a test runner started in the background of a shell makes its children ignore SIGINT,
# so the child takes Python's own handler back first.
INTERRUPTIBLE = ("import signal, sys\n"
                 "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                 "from maco_keras.runs.cli import main\n"
                 "sys.exit(main(sys.argv[1:]))\n")


def test_sigint_is_one_line_exit_130_and_resumes(saved_model, reference, tmp_path):
    folder = tmp_path / "run"
    argv = command(*_visualize(saved_model, folder, "--batch", "1", "--steps", "200"))
    process = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE, *argv[3:]], env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (folder / "units" / "unit_0.json").exists():
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == cli.EXIT_INTERRUPTED
    line = _one_line(stderr)
    assert line.startswith("maco-keras: interrupted; ") and "rerun to resume" in line
    kept = int(line.split("; ")[1].split()[0])
    assert kept >= 1 and len(results.RunFolder(folder).verify()["done"]) == kept
    assert not list(folder.rglob("*.tmp"))
    finished = subprocess.run(argv, env=environment(), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"{kept} of 5 units already in" in finished.stdout
    assert_intact(folder, UNITS)


@keras.saving.register_keras_serializable(package="maco_keras_tests")
class NaNAt(keras.layers.Layer):
    """Makes one logit NaN, and only that one (its gradient is zero: the other logits stay finite)."""

    def __init__(self, unit, **kwargs):
        super().__init__(**kwargs)
        self.unit = unit

    def call(self, inputs):
        selected = keras.ops.arange(inputs.shape[-1]) == self.unit
        return keras.ops.where(selected, keras.ops.full_like(inputs, float("nan")), inputs)

    def get_config(self):
        return {**super().get_config(), "unit": self.unit}


def test_a_nan_logit_among_six_units_fails_alone(tmp_path, capsys):
    model = build_tiny_model()
    nan_model = keras.Sequential([model, NaNAt(3)])
    path = tmp_path / "nan.keras"
    nan_model.save(path)
    folder = tmp_path / "run"
    argv = ["visualize", str(path), "--out", str(folder), "--units", "0-5", "--batch", "6", *SMALL]
    assert cli.main(argv) == cli.EXIT_UNITS_FAILED
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert "1 unit failed: 3 (non-finite score or gradient" in line and "--retry-failed" in line
    report = results.RunFolder(folder).verify()
    assert report["done"] == [0, 1, 2, 4, 5] and list(report["failed"]) == [3]
    assert_intact(folder, [0, 1, 2, 4, 5])
    # Its batch-mates are the pictures they get in a batch without the NaN unit (each unit's draws are its own).
    alone = tmp_path / "alone"
    assert cli.main(["visualize", str(path), "--out", str(alone), "--units", "0-2,4-5", *SMALL]) == 0
    for unit in (0, 1, 2, 4, 5):
        np.testing.assert_array_equal(results.load_unit(folder, unit)["image"], results.load_unit(alone, unit)["image"])
    # A rerun skips the failed unit; --retry-failed runs it again (and it fails again).
    assert cli.main(argv) == cli.EXIT_UNITS_FAILED
    assert "1 failed before (skipped; --retry-failed runs them); 0 to go" in capsys.readouterr().out
    assert cli.main(argv + ["--retry-failed"]) == cli.EXIT_UNITS_FAILED
    assert "1 to go" in capsys.readouterr().out


# Two processes start at the same instant; each waits 3 s between writing its manifest and linking it into
# place, the moment where a check-then-write lets both pass.
DELAYED = ("import os, sys, time\n"
           "link = os.link\n"
           "def delayed(*args, **kwargs):\n"
           "    time.sleep(3)\n"
           "    return link(*args, **kwargs)\n"
           "os.link = delayed\n"
           "from maco_keras.runs.cli import main\n"
           "sys.exit(main(sys.argv[1:]))\n")


def test_two_runs_with_different_steps_started_together_one_is_refused(saved_model, tmp_path):
    folder = tmp_path / "run"
    processes = [subprocess.Popen([sys.executable, "-c", DELAYED, "visualize", str(saved_model), "--out", str(folder),
                                   "--units", "0-1", "--image-size", "40", "--crops", "2", "--quiet", "--steps", steps],
                                  env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for steps in ("8", "4")]
    outcomes = [process.communicate(timeout=300) + (process.returncode,) for process in processes]
    codes = sorted(code for _, _, code in outcomes)
    assert codes == [0, 2], outcomes
    refused = next(stderr for _, stderr, code in outcomes if code == 2)
    assert "steps" in _one_line(refused)
    manifest = json.loads((folder / results.MANIFEST).read_text())
    for unit in (0, 1):
        assert results.load_unit(folder, unit)["scores"].shape == (manifest["settings"]["steps"],)
    assert_intact(folder, [0, 1])


def test_a_changed_model_file_at_the_same_path_is_refused(tmp_path, capsys):
    path = tmp_path / "model.keras"
    build_tiny_model(seed=0).save(path)
    folder = tmp_path / "run"
    assert cli.main(_visualize(path, folder, units="0")) == 0
    build_tiny_model(seed=1).save(path)  # same path, same structure, other weights
    with pytest.raises(SystemExit) as stopped:
        cli.main(_visualize(path, folder, units="0-1"))
    assert stopped.value.code == 2
    assert "another model" in _one_line(capsys.readouterr().err)


def test_relu_redirect_changed_on_resume_is_refused(reference, saved_model, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    with pytest.raises(SystemExit) as stopped:
        cli.main(_visualize(saved_model, folder, "--relu-redirect-steps", "2"))
    assert stopped.value.code == 2
    assert "relu_redirect_steps=0" in _one_line(capsys.readouterr().err)


def test_a_two_crop_run_of_the_versions_with_non_square_crops_is_not_resumed(reference, saved_model, tmp_path,
                                                                             capsys):
    """0.3.0 and 0.4.0 cut two crops per step as non-squares (Keras's `ops.add` on TensorFlow); their folders of
    --crops 2 are refused, one line; the same folder as this version wrote it resumes."""
    import json

    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["settings"]["crops"] == 2 and manifest["settings"]["draws"] == "counter"
    manifest["versions"]["maco_keras"] = "0.4.0"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit) as stopped:
        cli.main(_visualize(saved_model, folder, units="0-3,7,8"))
    assert stopped.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "maco-keras 0.4.0" in line and "not squares" in line
    assert not (folder / "units" / "unit_8.json").exists()  # refused before any unit ran


def test_a_record_made_with_other_settings_is_refused(reference, saved_model, tmp_path, capsys):
    """Where the manifest cannot be created exclusively (object stores), each record's settings digest is
    checked: a unit another run wrote is refused at read time."""
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    record = folder / "units" / "unit_2.json"
    entry = json.loads(record.read_text())
    entry["settings_digest"] = "0" * 16
    record.write_text(json.dumps(entry))
    assert cli.main(["verify", str(folder)]) == cli.EXIT_DAMAGED
    assert "unit 2: its record's settings digest" in capsys.readouterr().out
    assert cli.main(["atlas", str(folder)]) == 0
    assert "skipped 1 damaged unit: 2 (made with other settings" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        cli.main(_visualize(saved_model, folder))
    assert stopped.value.code == 2 and "other settings" in _one_line(capsys.readouterr().err)


def test_a_nan_logit_on_the_torch_backend_fails_alone(tmp_path):
    """On JAX and PyTorch a non-finite unit is frozen and named while its batch-mates run on: the same record."""
    model = build_tiny_model()
    kernel, bias = model.get_layer("logits").get_weights()
    bias[3] = np.nan  # a plain saved model (no custom layer): logit 3 is NaN
    model.get_layer("logits").set_weights([kernel, bias])
    path = tmp_path / "nan_bias.keras"
    model.save(path)
    folder = tmp_path / "run"
    result = subprocess.run(command("visualize", path, "--out", folder, "--units", "0-5", "--batch", "6",
                                     "--backend", "torch", *SMALL), env=environment(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == cli.EXIT_UNITS_FAILED, result.stderr[-3000:]
    line = _one_line(result.stderr)
    assert "1 unit failed: 3 (non-finite score or gradient at step" in line
    report = results.RunFolder(folder).verify()
    assert report["done"] == [0, 1, 2, 4, 5] and list(report["failed"]) == [3]
