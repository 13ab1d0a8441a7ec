"""Dataset examples at scale: recursive folders, aspect-preserving crops, unreadable files skipped, a running top-k."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from maco_keras import cli, examples, objectives, taps


def make_folder(root, count=60, corrupt=3, seed=0):
    """Images in class subfolders, of varied sizes and aspect ratios, and `corrupt` unreadable .jpg files."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        folder = root / f"class_{index % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        height, width = rng.integers(24, 80, size=2)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            folder / f"image_{index}.{'png' if index % 2 else 'jpg'}")
    for index in range(corrupt):
        (root / f"class_{index}" / f"broken_{index}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "notes.txt").write_text("not an image")
    return root


def brute_force(model, layer, kind, paths, units, top):
    """Every image's activation, all at once, then ranked."""
    height, width = model.input_shape[1:3]
    images = []
    for path in paths:
        try:
            images.append(examples.load_image(path, height, width))
        except OSError:
            images.append(None)
    readable = [index for index, image in enumerate(images) if image is not None]
    batch = -1 + 2 * np.stack([images[i] for i in readable]).astype(np.float32) / 255.0
    tap = objectives.layer_tap(model, None if kind == "logit" else layer)
    output = taps.FeatureCapture(model, [tap])(tf.constant(batch))[0].numpy()
    values = objectives.unit_values(output, kind)[:, units]
    order = np.argsort(-values, axis=0, kind="stable")[:top]
    return {unit: [readable[i] for i in order[:, column]] for column, unit in enumerate(units)}


@pytest.mark.parametrize("layer, kind", [("conv2", "channel"), (None, "logit")])
def test_the_running_top_k_equals_a_brute_force_ranking(tiny_model, tmp_path, layer, kind):
    folder = make_folder(tmp_path / "images")
    units = [0, 3, 5, 7]
    found = examples.dataset_examples(tiny_model, layer, kind, folder, (-1, 1), units, top=5, batch_size=7,
                                      verbose=False)
    assert len(found.paths) == 63 and found.images == 60
    assert sorted(path.name for path in found.skipped) == ["broken_0.jpg", "broken_1.jpg", "broken_2.jpg"]
    expected = brute_force(tiny_model, layer, kind, found.paths, units, 5)
    assert {unit: [index for index, _, _ in ranked] for unit, ranked in found.top.items()} == expected
    boxes = [box for ranked in found.top.values() for _, _, box in ranked]
    assert all(box is None for box in boxes) if kind == "logit" else all(
        0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1 for box in boxes)


def test_aspect_preserving_resize_and_centre_crop(tmp_path):
    image = np.zeros((40, 120, 3), np.uint8)
    image[:, 40:80] = 255  # a white middle third
    Image.fromarray(image).save(tmp_path / "wide.png")
    crop = examples.load_image(tmp_path / "wide.png", 20, 20)
    # The centre square (white but for its edges' blur), not the whole width squashed (white in its middle third only).
    assert crop.shape == (20, 20, 3) and crop[:, 2:-2].min() >= 250


def test_patch_box():
    assert examples.patch_box(0, 0, (4, 4)) == (0.0, 0.0, 0.75, 0.75)  # 3 cells of 4, moved inside
    top, left, bottom, right = examples.patch_box(20, 20, (40, 40))  # a fine grid: a quarter of the image
    assert bottom - top == pytest.approx(0.25) and (top + bottom) / 2 == pytest.approx(20.5 / 40)


@pytest.mark.parametrize("content, message", [
    ("empty", "which has none"),
    ("text", "which has none"),
    ("broken", "none of the 2 image files could be read"),
])
def test_an_image_less_folder_is_one_line_and_exit_2(content, message, tiny_model, tmp_path, capsys):
    from test_cli import SMALL

    model = tmp_path / "tiny.keras"
    tiny_model.save(model)
    assert cli.main(["visualize", str(model), "--out", str(tmp_path / "run"), "--units", "0", *SMALL]) == 0
    folder = tmp_path / "images"
    folder.mkdir()
    if content == "text":
        (folder / "readme.txt").write_text("no images here")
    if content == "broken":
        for index in range(2):
            (folder / f"broken_{index}.jpg").write_bytes(b"garbage")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["atlas", str(tmp_path / "run"), "--examples", str(folder)])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("maco-keras: error: ") and message in stderr[0], stderr
