"""Every Python block of README.md runs, at 1 step instead of the defaults' 64 or the paper's 256 (a README
example that breaks fails here)."""

import re

import keras
import matplotlib
import pytest

from conftest import REPO, shared_dir
from maco_keras import baselines, engine, presets  # noqa: F401
from maco_keras.core import config as config_lib

matplotlib.use("Agg")
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(engine, "VISUALIZE_DEFAULTS", engine.VISUALIZE_DEFAULTS.replace(steps=1))
    monkeypatch.setattr(baselines, "BASELINE", baselines.BASELINE.replace(steps=1))
    for name, config in list(config_lib.CONFIGS.items()):
        monkeypatch.setitem(config_lib.CONFIGS, name, config.replace(steps=1))
    # No network here: the shared MobileNetV2 stands in for keras.applications' ImageNet one
    # (random weights when ../shared is absent: the code runs the same).
    path = shared_dir() / "models" / "mobilenet_v2_1.0_224.keras"
    model = (keras.models.load_model(path) if path.is_file()
             else keras.applications.MobileNetV2(weights=None, classifier_activation=None))
    build = keras.applications.MobileNetV2

    def mobilenet_v2(*args, include_top=True, **kwargs):
        # A base for transfer learning: the architecture with random weights (nothing to download).
        return model if include_top else build(*args, include_top=False, **{**kwargs, "weights": None})

    monkeypatch.setattr(keras.applications, "MobileNetV2", mobilenet_v2)
    if "keras_hub" in BLOCKS[index]:
        hub_models = pytest.importorskip("hub_models")
        # A config-built ViT with ViT-B's 12 blocks (random weights) stands in for the preset.
        monkeypatch.setattr(hub_models.keras_hub.models.ImageClassifier, "from_preset",
                            lambda *args, **kwargs: hub_models.vit(num_layers=12))
    model.save(tmp_path / "model.keras")
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {"__name__": "readme"})
