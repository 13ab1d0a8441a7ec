"""`maco-keras visualize` and `maco-keras atlas`: run folders, resuming, shards, errors, the site."""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from conftest import command, environment
from maco_keras import cli, presets, results

SMALL = ["--steps", "3", "--image-size", "40", "--crops", "2", "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, saved_model):
    out = tmp_path_factory.mktemp("run") / "run"
    assert cli.main(["visualize", str(saved_model), "--out", str(out), "--units", "0-3,7", "--batch", "2", *SMALL]) == 0
    return out


def _unit_snapshot(folder, units):
    return {relative: ((folder / relative).stat().st_mtime_ns, (folder / relative).read_bytes())
            for unit in units for relative in results.unit_files(unit).values()}


def _assert_complete(folder, units):
    manifest = results.RunFolder(folder).read()
    assert sorted(int(unit) for unit, entry in manifest["units"].items() if entry["state"] == "done") == units
    expected = sorted([name.split("/")[1] for unit in units for name in results.unit_files(unit).values()]
                      + [f"unit_{unit}.json" for unit in units])  # files, then the record
    assert sorted(path.name for path in (folder / "units").iterdir()) == expected  # each exactly once, nothing else
    for unit in units:
        data = results.load_unit(folder, unit)
        assert data["image"].shape == (40, 40, 3) and data["scores"].shape == (manifest["settings"]["steps"],)
        with Image.open(folder / results.unit_files(unit)["transparency"]) as image:
            assert image.size == (40, 40) and image.mode == "RGBA"
    return manifest


def test_visualize_writes_units_and_manifest(tiny_run, saved_model):
    manifest = _assert_complete(tiny_run, [0, 1, 2, 3, 7])
    assert manifest["model"] == str(saved_model) and manifest["layer"] == "logits" and manifest["kind"] == "logit"
    assert manifest["num_units"] == 10 and manifest["settings"]["steps"] == 3 and manifest["settings"]["seed"] == 0
    assert {"maco_keras", "tensorflow", "keras", "xplique"} <= set(manifest["versions"])
    assert all(np.isfinite(entry["score"]) for entry in manifest["units"].values())


def test_scores_are_in_the_units_own_values(tiny_run, tiny_model):
    # The first batch (units 0 and 1) again through the API: same images, same scores.
    import maco_keras

    visualization = maco_keras.maco(tiny_model, units=[0, 1], steps=3, image_size=40, crops=2, seed=0,
                                    verbose=False, return_visualization=True)
    manifest = results.RunFolder(tiny_run).read()
    for index, unit in enumerate((0, 1)):
        saved = results.load_unit(tiny_run, unit)
        np.testing.assert_allclose(saved["scores"], visualization.scores[:, index], rtol=1e-5)
        np.testing.assert_array_equal(saved["image"], visualization.images[index])
        assert manifest["units"][str(unit)]["score"] == pytest.approx(float(saved["scores"][-1]))


def test_rerun_skips_finished_units_and_redoes_broken_ones(tiny_run, saved_model, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    kept = _unit_snapshot(folder, [0, 2, 3, 7])
    (folder / results.unit_files(1)["data"]).write_bytes(b"truncated")  # unreadable: redo unit 1
    argv = ["visualize", str(saved_model), "--out", str(folder), "--units", "0-3,7", "--batch", "2", *SMALL]
    assert cli.main(argv) == 0
    assert "4 of 5 units already in" in capsys.readouterr().out
    assert _unit_snapshot(folder, [0, 2, 3, 7]) == kept
    _assert_complete(folder, [0, 1, 2, 3, 7])


def test_sigkill_then_rerun_keeps_the_first_batch_untouched(saved_model, tmp_path):
    folder = tmp_path / "run"
    args = ["visualize", saved_model, "--out", folder, "--units", "0-7", "--batch", "2", "--steps", "40",
            "--image-size", "40", "--crops", "2", "--quiet"]
    process = subprocess.Popen(command(*args), env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    first_batch = [folder / relative for unit in (0, 1) for relative in results.unit_files(unit).values()]
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in first_batch):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the first batch never appeared"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL  # killed mid-run, not finished
    unfinished = [unit for unit in range(8) if not results.unit_is_finished(folder, unit)]
    assert unfinished, "the run finished before the kill: the test proved nothing"
    kept = _unit_snapshot(folder, [0, 1])
    rerun = subprocess.run(command(*args), env=environment(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "2 of 8 units already in" in rerun.stdout or "3 of 8" in rerun.stdout
    assert _unit_snapshot(folder, [0, 1]) == kept
    _assert_complete(folder, list(range(8)))
    assert not list(folder.rglob("*.tmp"))


def test_two_shards_share_one_folder(saved_model, tmp_path):
    folder = tmp_path / "run"
    processes = [subprocess.Popen(command("visualize", saved_model, "--out", folder, "--units", "all", "--batch", "2",
                                           "--shard", f"{index}/2", *SMALL), env=environment(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for index in range(2)]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
    manifest = _assert_complete(folder, list(range(10)))
    assert {unit: entry["shard"] for unit, entry in manifest["units"].items()} == {
        str(unit): f"{unit % 2}/2" for unit in range(10)}


def test_three_shards_one_killed_then_resumed(saved_model, tmp_path):
    """Shards write only their own files (the package takes no lock): every unit is
    written once, by its shard, and a shard killed mid-run resumes without rewriting what it finished."""
    folder = tmp_path / "run"

    def shard(index):
        args = ["visualize", saved_model, "--out", folder, "--units", "0-9", "--batch", "1", "--shard", f"{index}/3",
                "--steps", "40", "--image-size", "40", "--crops", "2", "--quiet"]
        return subprocess.Popen(command(*args), env=environment(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    slow = shard(2)  # units 2, 5, 8: killed after its first
    others = [shard(0), shard(1)]
    first = [folder / relative for relative in results.unit_files(2).values()] + [folder / "units/unit_2.json"]
    deadline = time.monotonic() + 180
    while not all(path.exists() for path in first):
        assert slow.poll() is None, slow.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "shard 2's first unit never appeared"
        time.sleep(0.01)
    slow.send_signal(signal.SIGKILL)
    slow.communicate()
    for process in others:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
    assert not results.unit_is_finished(folder, 8), "shard 2 finished before the kill: the test proved nothing"
    kept = _unit_snapshot(folder, [unit for unit in range(10) if results.unit_is_finished(folder, unit)])
    records = {unit: (folder / f"units/unit_{unit}.json").stat().st_mtime_ns for unit in range(10)
               if (folder / f"units/unit_{unit}.json").exists()}
    resumed = shard(2)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-2000:]
    assert "of 3 units (shard 2/3) already in" in stdout
    assert _unit_snapshot(folder, [int(relative.split("_")[1].split(".")[0]) for relative in kept
                                   if relative.endswith(".npz")]) == kept
    assert all((folder / f"units/unit_{unit}.json").stat().st_mtime_ns == mtime for unit, mtime in records.items())
    manifest = _assert_complete(folder, list(range(10)))
    assert {unit: entry["shard"] for unit, entry in manifest["units"].items()} == {
        str(unit): f"{unit % 3}/3" for unit in range(10)}
    assert not any(entry.get("recovered") for entry in manifest["units"].values())
    assert sorted(path.name for path in (folder / "shards").iterdir()) == [f"shard_{i}_of_3.json" for i in range(3)]


def test_keras_applications_name_and_a_channel_layer(tmp_path):
    # Offline: random weights. The model takes [0, 255] RGB with its own preprocessing in front.
    out = tmp_path / "run"
    assert cli.main(["visualize", "MobileNetV2", "--weights", "none", "--layer", "block_1_expand_relu",
                     "--units", "3", "--out", str(out), "--steps", "1", "--image-size", "224", "--crops", "1",
                     "--quiet"]) == 0
    manifest = results.RunFolder(out).read()
    assert manifest["kind"] == "channel" and manifest["num_units"] == 96
    assert manifest["settings"]["values_range"] == [0.0, 255.0]
    assert results.load_unit(out, 3)["image"].max() > 1.0


def test_visualize_with_a_strategy_and_crop_chunks(saved_model, tiny_run, tmp_path):
    # MirroredStrategy over this machine's one CPU: the same code path as several GPUs.
    out = tmp_path / "run"
    assert cli.main(["visualize", str(saved_model), "--out", str(out), "--units", "0,1", "--strategy", "mirrored",
                     "--crop-chunk", "1", *SMALL]) == 0
    manifest = _assert_complete(out, [0, 1])
    assert manifest["settings"]["strategy"] == "mirrored" and manifest["settings"]["crop_chunk"] == 1
    for unit in (0, 1):  # chunks and one replica change only the order of float sums
        np.testing.assert_allclose(results.load_unit(out, unit)["scores"], results.load_unit(tiny_run, unit)["scores"],
                                   rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["visualize", "{tmp}/missing.keras"], "no such file"),
    (["visualize", "MobileNetv2"], "did you mean MobileNetV2"),
    (["visualize", "{model}", "--units", "5000"], "expected units in 0-9"),
    (["visualize", "{model}", "--units", "3-1"], "low <= high"),
    (["visualize", "{model}", "--units", "one"], "--units=one"),
    (["visualize", "{model}", "--layer", "conv3"], "closest: conv2, conv1"),
    (["visualize", "{model}", "--steps", "0"], "--steps"),
    (["visualize", "{model}", "--crops", "x"], "--crops"),
    (["visualize", "{model}", "--crops", "4", "--crop-chunk", "3"], "crop_chunk"),
    (["visualize", "{model}", "--image-size", "16"], "--image-size"),
    (["visualize", "{model}", "--values-range", "1", "-1"], "values-range"),
    (["visualize", "{model}", "--shard", "2/2"], "--shard"),
    (["visualize", "{model}", "--method", "deepdream"], "--method"),
    (["visualize", "{model}", "--method", "fourier", "--preset", "fast"], "--method=fourier"),
    (["visualize", "{model}", "--preset", "quick"], "--preset"),
    (["visualize", "{model}", "--out", "{run}", "--units", "0-3,7", "--preset", "paper", *SMALL],
     "preset='fast'"),
    (["visualize", "{model}", "--out", "{run}", "--units", "0-3,7", "--steps", "5"], "steps=3"),
    (["visualize", "{tmp}/garbage.keras"], "cannot read the model"),
    (["atlas", "{tmp}/nowhere"], "manifest.json"),
    (["atlas", "{run}", "--labels", "{tmp}/missing.txt"], "--labels"),
    (["atlas", "{run}", "--examples", "{tmp}/missing"], "--examples"),
    ([], "expected a command"),
])
def test_bad_input_is_one_error_line_and_exit_2(argv, message, saved_model, tiny_run, tmp_path, capsys):
    (tmp_path / "garbage.keras").write_bytes(b"not a zip")
    argv = [part.format(tmp=tmp_path, model=saved_model, run=tiny_run) for part in argv]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("maco-keras: error: ") and message in stderr[0], stderr


def test_the_installed_command_prints_one_line(tmp_path):
    result = subprocess.run(command("visualize", tmp_path / "missing.keras"), env=environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"maco-keras: error: expected a saved Keras model file, received: MODEL={tmp_path / 'missing.keras'} "
        "(no such file)"]


def test_maco_rejects_a_unit_out_of_range(tiny_model):
    import maco_keras

    with pytest.raises(ValueError, match=r"`units`.*0-9"):
        maco_keras.maco(tiny_model, units=[5000], verbose=False)


def test_parse_units():
    assert results.parse_units("1,5,7-9", 10) == [1, 5, 7, 8, 9]
    assert results.parse_units(["1", "3"], 10) == [1, 3]
    assert results.parse_units("all", 4) == [0, 1, 2, 3]
    assert results.shard_units(list(range(7)), 1, 3) == [1, 4]


def _chromium_driver(tmp_path):
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium and chromium-driver (see .ci/run)")
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium "
                    "chromium-driver); CI installs them")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium must not fetch a browser or a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,900", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.mark.browser
def test_atlas_in_headless_chromium(tiny_run, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    labels = ["zero", "<img src=x onerror=alert(1)>", "two", "three", "four", "five", "six", "seven"]
    (tmp_path / "labels.txt").write_text("\n".join(labels))
    examples = tmp_path / "examples"
    examples.mkdir()
    for index in range(4):
        Image.fromarray(np.full((50, 60, 3), 60 * index, np.uint8)).save(examples / f"photo_{index}.png")
    assert cli.main(["atlas", str(folder), "--labels", str(tmp_path / "labels.txt"), "--examples",
                     str(examples), "--top", "2"]) == 0

    driver = _chromium_driver(tmp_path)
    try:
        driver.get((folder / "index.html").as_uri())
        cards = driver.find_elements(By.CSS_SELECTOR, ".card")
        assert len(cards) == 5
        # Every thumbnail loads (lazy images are loaded once scrolled into view).
        for card in cards:
            driver.execute_script("arguments[0].scrollIntoView()", card)
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)"))
        # The label is text: shown literally, no alert, no injected element.
        assert "<img src=x onerror=alert(1)>" in driver.find_element(By.CSS_SELECTOR, "a[href$='unit_1.html']").text
        assert not driver.find_elements(By.CSS_SELECTOR, "img[src='x']")
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text
        # The search shows what matches, by name or number.
        search = driver.find_element(By.ID, "search")

        def shown():
            return [card.get_attribute("href").rsplit("/", 1)[1] for card in
                    driver.find_elements(By.CSS_SELECTOR, "#grid .card")]

        search.send_keys("thr")
        assert shown() == ["unit_3.html"]
        search.clear()
        search.send_keys("7")
        assert shown() == ["unit_7.html"]
        assert driver.find_element(By.ID, "matches").text == "1 of 5 units"
        search.clear()
        search.send_keys("x")  # matches unit 1's label only
        assert shown() == ["unit_1.html"]
        # A unit page opens; the transparency toggle changes what is shown.
        driver.find_element(By.CSS_SELECTOR, "#grid .card").click()
        WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("pages/unit_1.html"))
        assert driver.find_element(By.ID, "title").text == "logit 1: <img src=x onerror=alert(1)>"
        plain = driver.find_element(By.CSS_SELECTOR, ".viewer .plain")
        overlay = driver.find_element(By.CSS_SELECTOR, ".viewer .overlay")
        assert plain.is_displayed() and not overlay.is_displayed()
        driver.find_element(By.ID, "toggle").click()
        assert overlay.is_displayed() and not plain.is_displayed()
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(
            "return [...document.images].every(i => i.complete && (i.naturalWidth > 0 || !i.offsetParent))"))
        assert driver.execute_script("return document.querySelector('.overlay').naturalWidth") == 40
        assert len(driver.find_elements(By.CSS_SELECTOR, ".examples img")) == 2
        assert driver.find_element(By.ID, "curve").get_attribute("aria-label") == "score per step"
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text
    finally:
        driver.quit()


def test_the_fast_preset_from_the_shell(saved_model, tmp_path):
    out = tmp_path / "fast"
    assert cli.main(["visualize", str(saved_model), "--out", str(out), "--units", "1", "--preset", "fast",
                     *SMALL]) == 0
    manifest = results.RunFolder(out).read()
    assert manifest["settings"]["preset"] == "fast" and manifest["units"]["1"]["state"] == "done"
    assert manifest["settings"]["contrast"] == presets.PRESETS["fast"].contrast != 1.0
    resume = ["visualize", str(saved_model), "--out", str(out), "--units", "1", "--preset", "fast", *SMALL]
    cli.VisualizeJob(cli.parse_args(resume))  # same settings: resumable
    # A fast-preset folder written before contrasts were recorded had contrast 1.0: not resumed with 0.7.
    del manifest["settings"]["contrast"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(results.RunFolderError, match="contrast=1.0"):
        cli.VisualizeJob(cli.parse_args(resume))
    # A folder written before presets were recorded resumes as the paper's settings.
    del manifest["settings"]["preset"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(results.RunFolderError, match="preset='paper'"):
        cli.VisualizeJob(cli.parse_args(resume))
    # ... and so it is: an earlier version's folder of the paper's settings resumes with --preset paper
    # (the paper's settings were the default then; the fast preset is now).
    cli.VisualizeJob(cli.parse_args(["visualize", str(saved_model), "--out", str(out), "--units", "1",
                                     "--preset", "paper", *SMALL]))
    with pytest.raises(results.RunFolderError, match="preset='paper'"):
        cli.VisualizeJob(cli.parse_args(["visualize", str(saved_model), "--out", str(out), "--units", "1", *SMALL]))


@pytest.fixture(scope="module")
def model_root(tmp_path_factory, saved_model):
    """Two layers of the tiny model and its logits under one root (`--layer A,B,C`)."""
    out = tmp_path_factory.mktemp("root") / "root"
    assert cli.main(["visualize", str(saved_model), "--out", str(out), "--layer", "conv1,conv2,logits",
                     "--units", "0-2", *SMALL]) == 0
    return out


def test_several_layers_write_a_model_root(model_root, saved_model, capsys):
    manifest = json.loads((model_root / results.MODEL_MANIFEST).read_text())
    assert [(entry["layer"], entry["kind"], entry["num_units"]) for entry in manifest["layers"]] == [
        ("conv1", "channel", 8), ("conv2", "channel", 16), ("logits", "logit", 10)]
    for entry in manifest["layers"]:
        _assert_complete(model_root / entry["folder"], [0, 1, 2])
    # A rerun resumes every layer; a pattern adds layers to the same root.
    assert cli.main(["visualize", str(saved_model), "--out", str(model_root), "--layer", "conv*", "--units", "0-2",
                     *SMALL]) == 0
    assert "3 of 3 units already in" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["visualize", str(saved_model), "--out", str(model_root / manifest["layers"][0]["folder"]),
                  "--layer", "conv1,conv2", *SMALL])  # a run folder is not a root


@pytest.mark.browser
def test_model_atlas_in_headless_chromium(model_root, tmp_path):
    """Model page -> layer page -> unit page by clicks, breadcrumbs back, and a search across layers."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    folder = tmp_path / "root"
    shutil.copytree(model_root, folder)
    assert cli.main(["atlas", str(folder)]) == 0
    driver = _chromium_driver(tmp_path)
    try:
        driver.get((folder / "index.html").as_uri())
        sections = driver.find_elements(By.CSS_SELECTOR, "section.layer")
        assert [section.find_element(By.TAG_NAME, "h2").text for section in sections] == ["conv1", "conv2", "logits"]
        assert all(len(section.find_elements(By.CSS_SELECTOR, ".card")) == 3 for section in sections)
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('section .card img')].every(i => i.complete && i.naturalWidth > 0)"))
        sections[1].find_element(By.CSS_SELECTOR, "h2 a").click()  # the layer page
        WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("layer_conv2/index.html"))
        assert driver.find_element(By.CSS_SELECTOR, "nav.crumbs").text == "tiny › conv2"
        driver.find_element(By.CSS_SELECTOR, "a.card[href$='unit_2.html']").click()  # a unit page
        WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("layer_conv2/pages/unit_2.html"))
        assert driver.find_element(By.ID, "title").text == "channel 2"
        assert driver.find_element(By.CSS_SELECTOR, "nav.crumbs").text == "tiny › conv2 › channel 2"
        driver.find_element(By.CSS_SELECTOR, "nav.crumbs a").click()  # back to the model page
        WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("root/index.html"))
        # Search across layers: by layer and number.
        search = driver.find_element(By.ID, "search")
        search.send_keys("conv2 1")
        results_shown = driver.find_elements(By.CSS_SELECTOR, "#results .card")
        assert [card.text for card in results_shown] == ["conv2 1"]
        assert not driver.find_element(By.ID, "layers").is_displayed()
        search.clear()
        search.send_keys("2")
        assert sorted(card.text for card in driver.find_elements(By.CSS_SELECTOR, "#results .card")) == [
            "conv1 2", "conv2 2", "logits 2"]
        driver.find_elements(By.CSS_SELECTOR, "#results .card")[0].click()
        WebDriverWait(driver, 10).until(lambda d: "/pages/unit_2.html" in d.current_url)
    finally:
        driver.quit()


def test_a_5d_layer_at_the_shell_is_one_line_and_exit_2(tmp_path, capsys):
    import keras

    inputs = keras.Input((8, 8, 3))
    volume = keras.layers.Reshape((2, 4, 8, 3), name="volume")(inputs)
    keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(volume))).save(tmp_path / "volume.keras")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["visualize", str(tmp_path / "volume.keras"), "--layer", "volume", *SMALL])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "maco-keras: error: expected a layer with (batch, units), (batch, tokens, dims) or (batch, h, w, channels) "
        "outputs, received: --layer=volume with output shape (None, 2, 4, 8, 3)"]


@pytest.mark.parametrize("environ, shards, expected", [
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8"}, None, (3, 8)),
    ({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_MAX": "19"}, None, (2, 10)),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "8",
      "SLURM_ARRAY_TASK_STEP": "2"}, None, (2, 5)),
    ({"JOB_COMPLETION_INDEX": "5"}, 6, (5, 6)),
])
def test_shard_auto_reads_slurm_and_kubernetes(environ, shards, expected):
    assert results.parse_shard("auto", shards=shards, environ=environ) == expected


@pytest.mark.parametrize("environ, argv, message", [
    ({}, [], "expected a Slurm job array (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job"),
    ({"JOB_COMPLETION_INDEX": "2"}, [], "expected --shards N"),
    ({"JOB_COMPLETION_INDEX": "2"}, ["--shards", "2"], "expected the Kubernetes task index in [0, 2)"),
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}, [], "SLURM_ARRAY_TASK_ID to be a number"),
    ({"SLURM_ARRAY_TASK_ID": "1"}, [], "SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MAX"),
])
def test_shard_auto_without_a_job_array_is_one_line_and_exit_2(saved_model, tmp_path, monkeypatch, capsys,
                                                               environ, argv, message):
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                 "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["visualize", str(saved_model), "--out", str(tmp_path / "out"), "--shard", "auto", *argv, *SMALL])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1 and message in stderr[0], stderr


def test_shard_auto_in_a_slurm_array_takes_its_share(saved_model, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    out = tmp_path / "auto"
    assert cli.main(["visualize", str(saved_model), "--out", str(out), "--units", "0-3", "--shard", "auto",
                     *SMALL]) == 0
    manifest = results.RunFolder(out).read()
    assert sorted(int(u) for u, entry in manifest["units"].items() if entry["state"] == "done") == [1, 3]
    assert {entry["shard"] for entry in manifest["units"].values() if entry["state"] == "done"} == {"1/2"}
