"""Every Keras backend: the same draws, the same pictures, one trace, and no TensorFlow under JAX or PyTorch.

A process has one Keras backend, so each backend's side runs in `backend_worker.py`, in a
subprocess with KERAS_BACKEND set; the results come back as .npz files and are compared
here. The tiny model's weights come from NumPy, so it is the same network on every backend.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, shared_dir

WORKER = REPO / "tests" / "backend_worker.py"
NEUTRAL = ["jax", "torch"]
BACKENDS = ["tensorflow", *NEUTRAL]
SMALL_SHARED = "mobilenet_v1_0.25_128.keras"  # the shared model that runs fast enough on JAX's CPU XLA


def available(backend):
    try:
        __import__(backend)
    except ImportError:
        return False
    return True


def run_worker(backend, task, out_dir, model=None, env=None):
    if not available(backend):
        if os.environ.get("CI"):
            raise AssertionError(f"{backend} is not installed: README's set-up installs every backend")
        pytest.skip(f"{backend} is not installed (pip install -e '.[jax,torch]')")
    out = out_dir / f"{task}_{backend}_{'tiny' if model is None else 'shared'}.npz"
    if not out.exists():
        command = [sys.executable, str(WORKER), task, str(out)] + ([str(model)] if model else [])
        environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(out))


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("backends")


def shared_model():
    path = shared_dir() / "models" / SMALL_SHARED
    if not path.exists():
        if os.environ.get("CI"):
            raise AssertionError(f"CI needs ../shared: {path} is missing")
        pytest.skip(f"shared model not found at {path} (set MACO_SHARED)")
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_draws_equal_the_numpy_generator_bit_for_bit(backend, out_dir):
    from maco_keras.core import draws

    got = run_worker(backend, "draws", out_dir)
    for step in (-1, 0, 5):
        expected = draws.numpy_bits(draws.numpy_stream_key(3, 1234567, step, draws.NOISE), (1000,))
        assert np.array_equal(got[f"bits_{step}"].astype(np.int64) & 0xFFFFFFFF, expected.astype(np.int64))
    assert len(np.unique(got["bits_0"])) == 1000 and not np.array_equal(got["bits_0"], got["bits_5"])
    for step in (-1, 0, 5):
        # Squares inside the picture, and two crops' boxes are the first two of eight (a counter-based generator):
        # on TensorFlow, Keras's `ops.add` once added two crops' sides along the wrong axis.
        for boxes in (got[f"boxes_{step}"], got[f"two_boxes_{step}"]):
            np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1], atol=1e-6)
            assert np.all(boxes >= 0) and np.all(boxes <= 1 + 1e-6)
        np.testing.assert_array_equal(got[f"two_boxes_{step}"], got[f"boxes_{step}"][:2])


def test_every_backend_draws_the_same_crops_noise_and_phase(out_dir):
    runs = {backend: run_worker(backend, "draws", out_dir) for backend in BACKENDS}
    reference = runs["tensorflow"]
    for backend in NEUTRAL:
        for step in (-1, 0, 5):
            # Uniforms are exact multiples of 2**-24, and so is the noise and the phase built from them.
            assert np.array_equal(runs[backend][f"noise_{step}"], reference[f"noise_{step}"])
            # Normals and the crop sides go through log, cos and sqrt: equal to float tolerance.
            np.testing.assert_allclose(runs[backend][f"normal_{step}"], reference[f"normal_{step}"], atol=2e-6)
            np.testing.assert_allclose(runs[backend][f"boxes_{step}"], reference[f"boxes_{step}"], atol=1e-6)
        assert np.array_equal(runs[backend]["phase"], reference["phase"])


def test_one_unit_three_steps_agrees_across_backends(out_dir):
    """The tiny network: each step's inputs equal, scores within 1e-5 and pictures within 1e-4 (measured: 2e-6)."""
    runs = {backend: run_worker(backend, "run", out_dir) for backend in BACKENDS}
    reference = runs["tensorflow"]
    for backend in NEUTRAL:
        got = runs[backend]
        assert np.array_equal(got["phase0"], reference["phase0"])
        np.testing.assert_allclose(got["image0"], reference["image0"], atol=1e-5)
        for step in range(3):
            np.testing.assert_allclose(got[f"crops_{step}"], reference[f"crops_{step}"], atol=1e-5)
        np.testing.assert_allclose(got["scores"], reference["scores"], atol=1e-5)
        np.testing.assert_allclose(got["images"], reference["images"], atol=1e-4)
        np.testing.assert_allclose(got["transparency"], reference["transparency"], atol=1e-5)


def test_tensorflows_engine_draws_the_cores_inputs_and_agrees_with_every_backend(out_dir):
    """`maco` on TensorFlow (its own MacoImage, TF's CropAndResize and the crop-gradient kernel, Keras's Nadam)
    starts from the core's phase to the bit, cuts the same crops from the same noise, and its 3-step picture agrees
    with every backend's `Visualizer` (measured 2026-12-07 on the tiny network: inputs within 1.7e-6, scores within
    1.2e-7, pictures within 1.8e-6 and transparency within 1.3e-8 of TensorFlow's, JAX's and PyTorch's)."""
    runs = {backend: run_worker(backend, "run", out_dir) for backend in BACKENDS}
    engine = runs["tensorflow"]
    assert np.array_equal(engine["engine_phase0"], engine["phase0"])
    np.testing.assert_allclose(engine["engine_image0"], engine["image0"], atol=1e-5)
    for step in range(3):
        np.testing.assert_allclose(engine[f"engine_crops_{step}"], engine[f"crops_{step}"], atol=1e-5)
    for backend in BACKENDS:
        got = runs[backend]
        np.testing.assert_allclose(engine["engine_scores"], got["scores"], atol=1e-5)
        np.testing.assert_allclose(engine["engine_images"], got["images"], atol=1e-4)
        np.testing.assert_allclose(engine["engine_transparency"], got["transparency"], atol=1e-5)


def test_the_feature_distribution_term_runs_and_agrees_on_every_backend(out_dir):
    """VITAL's term (sorted activations at two layers) composed with two logits, 3 steps: scores within 1e-4
    relative and pictures within 1e-4 of TensorFlow's Visualizer (the same draws; measured 2026-12-07: JAX 2.5e-5
    relative and 5.7e-5, PyTorch 1.4e-7 and 1.0e-6)."""
    runs = {backend: run_worker(backend, "distribution", out_dir) for backend in BACKENDS}
    reference = runs["tensorflow"]
    assert reference["names"].tolist() == ["Neuron#predictions_1 & Distribution#conv1 & Distribution#conv2",
                                           "Neuron#predictions_2 & Distribution#conv1 & Distribution#conv2"]
    assert not np.allclose(reference["scores"][0], reference["scores"][-1])  # it moved
    for backend in NEUTRAL:
        got = runs[backend]
        assert got["names"].tolist() == reference["names"].tolist()
        np.testing.assert_allclose(got["scores"], reference["scores"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["images"], reference["images"], atol=1e-4)
        assert not got["tensorflow_imported"] and not got["xplique_imported"]


def assert_every_backend_agrees(runs):
    """TensorFlow's `maco` (its engine) agrees with TensorFlow's `Visualizer`, and every backend's `Visualizer` with
    it, in scores, pictures and transparency (runs of a worker task that saves both on TensorFlow)."""
    reference = runs["tensorflow"]
    np.testing.assert_allclose(reference["engine_scores"], reference["scores"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reference["engine_images"], reference["images"], atol=1e-4)
    np.testing.assert_allclose(reference["engine_transparency"], reference["transparency"], rtol=1e-3, atol=1e-6)
    for backend in NEUTRAL:
        got = runs[backend]
        np.testing.assert_allclose(got["scores"], reference["scores"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["images"], reference["images"], atol=1e-4)
        np.testing.assert_allclose(got["transparency"], reference["transparency"], rtol=1e-3, atol=1e-6)
        assert not got["tensorflow_imported"] and not got["xplique_imported"]


def test_antialiased_crops_and_pixel_statistics_agree_on_every_backend(out_dir):
    """`antialias` and `pixel_statistics="imagenet"` together, two units, 3 steps: every backend's `Visualizer` and
    TensorFlow's `maco` (its MacoImage tone and CropAndResize at twice the input, then avg_pool) agree (measured
    2026-12-07 on the tiny network: pictures within 6.8e-6, scores within 1.1e-6 and transparency within 8.2e-9 of
    TensorFlow's Visualizer), and together the two change the pictures (by up to 1.03 here)."""
    runs = {backend: run_worker(backend, "tone", out_dir) for backend in BACKENDS}
    assert np.abs(runs["tensorflow"]["images"] - runs["tensorflow"]["plain_images"]).max() > 0.05
    assert_every_backend_agrees(runs)


def test_diversity_couples_the_copies_and_agrees_on_every_backend(out_dir):
    """Two copies of a logit pushed apart in style (Lucid's diversity, Gram matrices at conv1), 3 steps: the copies
    are one computation; every backend's `Visualizer` and TensorFlow's `maco` agree (measured 2026-12-07: scores
    within 4.8e-7 and pictures within 8.3e-7 of TensorFlow's `Visualizer` on JAX, 6.0e-7 on PyTorch, 4.8e-7 for
    TensorFlow's `maco`; the term moves the pictures by 0.93)."""
    runs = {backend: run_worker(backend, "diversity", out_dir) for backend in BACKENDS}
    reference = runs["tensorflow"]
    assert reference["names"].tolist() == ["Neuron#predictions_3 & Copy#0", "Neuron#predictions_3 & Copy#1"]
    # The term moves the pictures (weight 2 against 0: the same draws, another gradient).
    assert np.abs(reference["images"] - reference["plain_images"]).max() > 1e-2
    np.testing.assert_allclose(reference["engine_scores"], reference["scores"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reference["engine_images"], reference["images"], atol=1e-4)
    for backend in NEUTRAL:
        got = runs[backend]
        assert got["names"].tolist() == reference["names"].tolist()
        np.testing.assert_allclose(got["scores"], reference["scores"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["images"], reference["images"], atol=1e-4)
        np.testing.assert_allclose(got["plain_images"], reference["plain_images"], atol=1e-4)


@pytest.mark.shared
def test_a_real_network_gets_the_same_inputs_and_first_score_on_every_backend(out_dir):
    """MobileNetV1-0.25: the same phase, crops and first score everywhere. The pictures after 3 steps are not
    compared: NAdam's first steps, about +-lr per frequency whatever the gradient's size, turn the sign of the
    smallest gradients into whole-radian phase moves, so kernels that differ in the last bits part them. JAX's
    differ by 0.32 (XLA's fused kernels move the ReLUs' gradients by 1e-3 relative); PyTorch's stayed within 0.05
    of TensorFlow's on an Intel machine and differed by 0.27 on an AMD EPYC one (2026-12-06). The small network of
    `test_one_unit_three_steps_agrees_across_backends` pins the agreement where the kernels agree."""
    model = shared_model()
    runs = {backend: run_worker(backend, "run", out_dir, model) for backend in BACKENDS}
    reference = runs["tensorflow"]
    for backend in NEUTRAL:
        got = runs[backend]
        assert np.array_equal(got["phase0"], reference["phase0"])
        for step in range(3):
            np.testing.assert_allclose(got[f"crops_{step}"], reference[f"crops_{step}"], atol=2e-5)
        np.testing.assert_allclose(got["scores"][0], reference["scores"][0], rtol=1e-5, atol=1e-5)


@pytest.mark.shared
@pytest.mark.parametrize("backend", NEUTRAL)
def test_same_seed_same_bits_and_a_unit_alone_equals_it_in_a_batch(backend, out_dir):
    got = run_worker(backend, "same_bits", out_dir, shared_model())
    assert np.array_equal(got["first"], got["second"])
    assert np.array_equal(got["alone"][0], got["first"][1])
    assert not np.array_equal(got["first"][0], got["first"][1])
    assert not got["tensorflow_imported"] and not got["xplique_imported"]


@pytest.mark.parametrize("backend", NEUTRAL)
def test_one_trace_per_configuration(backend, out_dir):
    got = run_worker(backend, "same_bits", out_dir)
    # Two calls with other units of the same structure: JAX traced once; eager PyTorch traces nothing.
    assert got["traces"].tolist() == ([1] if backend == "jax" else [0])


@pytest.mark.parametrize("backend", NEUTRAL)
def test_nested_models_compositions_and_inversion(backend, out_dir):
    got = run_worker(backend, "objectives", out_dir)
    np.testing.assert_array_equal(got["nested"], got["flat"])
    assert got["inversion_scores"][-1, 0] > got["inversion_scores"][0, 0]
    assert got["composed_names"].tolist() == ["Channel#conv1_2 & Neuron#predictions_1",
                                              "Channel#conv1_2 & Neuron#predictions_2"]
    assert not got["tensorflow_imported"] and not got["xplique_imported"]


@pytest.mark.parametrize("backend", NEUTRAL)
def test_inversion_accentuation_and_dataset_examples_run_without_tensorflow(backend, out_dir):
    got = run_worker(backend, "applications", out_dir)
    # A spatial layer's canvas is the model input plus 4 pixels of jitter on each side.
    assert got["inverted_images"].shape == (2, 40, 40, 3) and np.all(np.isfinite(got["inverted_scores"]))
    assert got["accentuated"].shape == (1, 40, 40, 3)
    assert got["accentuated_names"].tolist() == ["Neuron#predictions_3 & Keep#conv1"]
    # It starts from the image's own phase and magnitude: the picture is still the image's.
    correlation = np.corrcoef(got["accentuated"][0].ravel(), got["image"].ravel())[0, 1]
    assert correlation > 0.8, correlation
    # Dataset examples and their magnitudes, a prior from data, on this backend.
    assert got["magnitudes"].shape == (2, 3, 40, 21) and np.all(got["magnitudes"] > 0)
    assert got["prior"].shape == (2, 40, 40, 3) and np.all(np.isfinite(got["prior"]))
    assert int(got["plotted"]) == 2  # plotted with their transparency, without Xplique
    assert not got["tensorflow_imported"] and not got["xplique_imported"]


@pytest.mark.parametrize("backend", NEUTRAL)
def test_a_keras_hub_vit_block_channel(backend, out_dir):
    pytest.importorskip("keras_hub") if not os.environ.get("CI") else None
    got = run_worker(backend, "vit", out_dir)
    assert got["vit_images"].shape == (2, 40, 40, 3) and np.all(np.isfinite(got["vit_images"]))
    assert np.all(np.isfinite(got["vit_scores"]))
    assert not got["xplique_imported"]  # (`import keras_hub` itself imports TensorFlow when it is installed)


def test_jax_on_two_devices_equals_one_device(out_dir):
    got = run_worker("jax", "devices", out_dir, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert int(got["devices"]) == 2
    # Each unit its own computation; two copies coupled by diversity; each device's crops one at a time.
    for case, reference in (("", ""), ("coupled_", "coupled_"), ("chunked_", "")):
        np.testing.assert_allclose(got[f"{case}scores_all"], got[f"{reference}scores_one"], atol=1e-5)
        np.testing.assert_allclose(got[f"{case}gradients_all"], got[f"{reference}gradients_one"], atol=1e-5)
    # A Visualizer on both devices, a crop per device at a time, against one device with every crop at once.
    np.testing.assert_allclose(got["chunked_images"], got["whole_images"], atol=1e-4)


def test_a_phase_held_as_complex_numbers_agrees_on_every_backend(out_dir):
    """`phase_as="complex"`, two units, 3 steps: every backend's `Visualizer` and TensorFlow's `maco` (MacoImage's
    complex weight, Keras's Nadam) agree (measured 2026-12-07 on the tiny network, against TensorFlow's `Visualizer`:
    pictures within 2.3e-6 on JAX and PyTorch and 3.2e-6 for `maco`, scores within 1.8e-7, transparency within
    1.3e-8); the form moves the pictures from the angles' (by up to 0.39), and a run started from an image's phase
    (given as angles) draws what the angles draw (within 3.6e-7)."""
    runs = {backend: run_worker(backend, "complex", out_dir) for backend in BACKENDS}
    assert np.abs(runs["tensorflow"]["images"] - runs["tensorflow"]["plain_images"]).max() > 0.05
    assert_every_backend_agrees(runs)
    for got in runs.values():
        # Started from an image's phase (angles given, held as complex numbers), one step of a tiny rate: the
        # picture the angles give, which is the image's (restandardized: correlated, not equal).
        np.testing.assert_allclose(got["started_complex"], got["started_angle"], atol=1e-4)
        assert np.corrcoef(got["started_complex"][0].ravel(), got["image"].ravel())[0, 1] > 0.8


def test_the_relu_redirect_wakes_a_dead_channel_on_every_backend(out_dir):
    """A channel whose ReLU never fires gets no gradient, and its picture stays the start; with
    `relu_redirect_steps=2` of 4 it moves, the same on every backend's `Visualizer` and TensorFlow's `maco` (measured
    2026-12-07 on the tiny network: within 7.2e-7 of TensorFlow's `Visualizer` on JAX, 4.8e-7 on PyTorch, 1.7e-6 for
    `maco`; the picture moves by 0.86). A ReLU6 layer in a nested model too; the forward pass is plain ReLU's; the
    redirected steps are a trace of their own (two per configuration with the redirect)."""
    runs = {backend: run_worker(backend, "redirect", out_dir) for backend in BACKENDS}
    reference = runs["tensorflow"]
    np.testing.assert_allclose(reference["engine_images"], reference["moved"], atol=1e-4)
    for backend, got in runs.items():
        np.testing.assert_allclose(got["still"][0], got["start"], atol=1e-6)  # no gradient: nothing moves
        assert np.all(got["still_scores"] == 0.0)
        assert np.abs(got["moved"][0] - got["start"]).max() > 0.1
        np.testing.assert_allclose(got["moved"], reference["moved"], atol=1e-4)
        assert np.abs(got["relu6_moved"] - got["relu6_still"]).max() > 0.1
        np.testing.assert_allclose(got["relu6_moved"], reference["relu6_moved"], atol=1e-4)
        np.testing.assert_array_equal(got["forward_redirected"], got["forward"])
        assert bool(got["restored"])
        assert got["traces"].tolist() == ([0] if backend == "torch" else [2])
        if backend != "tensorflow":
            assert not got["tensorflow_imported"] and not got["xplique_imported"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_crop_chunks_change_the_pictures_by_rounding_only(backend, out_dir):
    """A unit's 4 crops through the model 2 and 1 at a time, 3 steps, a channel plus half a logit, antialiased:
    within float rounding of all 4 at once on each backend's `Visualizer` (measured 2026-12-07 on the tiny
    network: pictures within 1.1e-6, scores within 2.7e-7, transparency within 1.7e-8), and one trace per
    configuration with chunks too."""
    got = run_worker(backend, "chunks", out_dir)
    for name in ("two", "one"):
        np.testing.assert_allclose(got[f"{name}_images"], got["whole_images"], atol=1e-5)
        np.testing.assert_allclose(got[f"{name}_scores"], got["whole_scores"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[f"{name}_transparency"], got["whole_transparency"], rtol=1e-4, atol=1e-7)
    # Not a no-op: the crops were cut and scored (the run moved the pictures from their start).
    assert np.abs(got["whole_scores"][-1] - got["whole_scores"][0]).max() > 1e-3
    assert got["traces"].tolist() == ([0] if backend == "torch" else [1])
    if backend != "tensorflow":  # maco on TensorFlow is its engine, whose crop_chunk has its own tests
        np.testing.assert_allclose(got["maco_images"], got["two_images"], atol=0)
    assert got["diverse_whole"].shape == (2, 48, 48, 3)
    messages = got["messages"].tolist()
    assert messages[0].startswith("expected crop_chunk=None with a diversity term") and "crop_chunk=2" in messages[0]
    # No devices: JAX says so; the others share no crops between devices and ignore it (TensorFlow) or take one.
    assert messages[1] == ("expected at least one device, received: devices=[]" if backend == "jax" else "no error")


@pytest.mark.parametrize("backend", NEUTRAL)
def test_tensorflow_only_settings_are_named_errors(backend, out_dir):
    messages = run_worker(backend, "errors", out_dir)["messages"].tolist()
    assert "strategy" in messages[0] and "TensorFlow only" in messages[0]
    assert "jit_compile" in messages[1]
    assert "steps" in messages[2]
    assert "crop_scale_of" in messages[3] and "volume" in messages[3]


def test_the_command_line_under_jax_then_a_resume_under_tensorflow_is_refused(tmp_path):
    if not available("jax"):
        pytest.skip("jax is not installed")
    import json

    import keras

    from conftest import build_tiny_model

    model_path = tmp_path / "tiny.keras"
    build_tiny_model().save(model_path)
    out = tmp_path / "run"
    base = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    command = [sys.executable, "-m", "maco_keras", "visualize", str(model_path), "--out", str(out), "--units", "1-2",
               "--steps", "2", "--image-size", "40", "--crops", "2", "--quiet"]
    # A --crop-chunk that does not divide the crops: one line, exit 2, before the run folder exists.
    refused = subprocess.run(command + ["--backend", "jax", "--crop-chunk", "3"], env=base, capture_output=True,
                             text=True, timeout=600)
    assert refused.returncode == 2 and not out.exists(), refused.stderr[-2000:]
    assert refused.stderr.strip().splitlines() == [
        "maco-keras: error: expected --crop-chunk to divide --crops=2, received: --crop-chunk=3"]
    done = subprocess.run(command + ["--backend", "jax", "--crop-chunk", "1", "--relu-redirect-steps", "1"], env=base,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["backend"] == "jax" and manifest["settings"]["draws"] == "counter"
    assert manifest["settings"]["crop_chunk"] == 1 and manifest["settings"]["relu_redirect_steps"] == 1
    # On JAX a crop chunk makes the pictures (a chunk's crops are a batch of their own): a resume with another is
    # one line, exit 2.
    other_chunk = subprocess.run(command + ["--backend", "jax", "--relu-redirect-steps", "1", "--units", "1-3"],
                                 env=base, capture_output=True, text=True, timeout=600)
    assert other_chunk.returncode == 2 and not (out / "units" / "unit_3.json").exists()
    assert "crop_chunk=1, this one has crop_chunk=None" in other_chunk.stderr.strip().splitlines()[-1]
    # A JAX run on another number of devices (they share each unit's crops) is refused too; a JAX folder of
    # --crops 2 by 0.4.0 is not (its boxes were squares: only TensorFlow's ops.add took the sides for a bias).
    assert manifest["settings"]["devices"] == 1
    manifest_path = out / "manifest.json"
    manifest["versions"]["maco_keras"] = "0.4.0"
    for devices, code in ((2, 2), (1, 0)):
        manifest["settings"]["devices"] = devices
        manifest_path.write_text(json.dumps(manifest))
        resumed = subprocess.run(command + ["--backend", "jax", "--crop-chunk", "1", "--relu-redirect-steps", "1"],
                                 env=base, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == code, resumed.stderr[-2000:]
        if code:
            assert "holds a run on 2 devices, this one runs on 1" in resumed.stderr.strip().splitlines()[-1]
    assert "jax" in manifest["versions"] and "tensorflow" not in manifest["versions"]
    # The atlas with dataset examples: a folder of natural images ranked by the units under JAX.
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for index in range(4):
        pixels = np.random.default_rng(index).integers(0, 256, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"photo_{index}.png")
    # (The atlas checks the model's digest, whose `layer.get_config()` makes Keras's serialization probe for
    # TensorFlow, importing it when it is installed, on any backend: Keras's, not ours. Xplique stays out.)
    probe = ("import sys; from maco_keras import cli; cli.main(['atlas', sys.argv[1], '--examples', sys.argv[2], "
             "'--top', '2']); print('xplique' in sys.modules)")
    atlas = subprocess.run([sys.executable, "-c", probe, str(out), str(photos)], env={**base, "KERAS_BACKEND": "jax"},
                           capture_output=True, text=True, timeout=600)
    assert atlas.returncode == 0 and atlas.stdout.strip().endswith("False"), atlas.stderr[-2000:]
    assert (out / "index.html").exists()
    page = (out / "pages" / "unit_1.html").read_text()
    assert len(list((out / "examples").glob("example_*.jpg"))) >= 2
    assert page.count('alt="photo_') == 2 and "examples/example_" in page  # the unit's top 2 photos
    resumed = subprocess.run(command, env={**base, "KERAS_BACKEND": "tensorflow"}, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 2
    # (TensorFlow's own start-up line about cuInit, at TF_CPP_MIN_LOG_LEVEL=2, is not ours: issue 29.)
    lines = [line for line in resumed.stderr.strip().splitlines() if "cuInit" not in line]
    assert len(lines) == 1 and lines[0].startswith("maco-keras: error:") and "jax backend" in lines[0], resumed.stderr
    assert keras.backend.backend() == "tensorflow"  # this process's own backend is untouched
