"""Every Python block of README.md runs, at 1 step instead of the defaults' 64 or the paper's 256 (a README
example that breaks fails here)."""

import re

import keras
import matplotlib
import pytest

from conftest import REPO, shared_dir
from maco_keras import presets

matplotlib.use("Agg")
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(presets.maco.__kwdefaults__, "steps", 1)
    monkeypatch.setitem(presets.PRESETS["fast"], "steps", 1)
    monkeypatch.setitem(presets.PRESETS["paper"], "steps", 1)
    # No network here: the shared MobileNetV2 stands in for keras.applications' ImageNet one
    # (random weights when ../shared is absent: the code runs the same).
    path = shared_dir() / "models" / "mobilenet_v2_1.0_224.keras"
    model = (keras.models.load_model(path) if path.is_file()
             else keras.applications.MobileNetV2(weights=None, classifier_activation=None))
    monkeypatch.setattr(keras.applications, "MobileNetV2", lambda *args, **kwargs: model)
    model.save(tmp_path / "model.keras")
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {"__name__": "readme"})
