import ast
import json

import numpy as np
import pytest

from conftest import REPO
from maco_keras import cli


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_code_cells_parse(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(line for line in cell["source"] if not line.lstrip().startswith(("!", "%")))
            ast.parse(source)


def test_cli_writes_and_resumes(tiny_model, tmp_path, capsys):
    model_path = tmp_path / "tiny.keras"
    tiny_model.save(model_path)
    out = tmp_path / "out"
    argv = [str(model_path), "--units", "1", "2", "--layer", "conv2", "--channels", "3", "--out", str(out),
            "--steps", "4", "--image-size", "48", "--crops", "2", "--quiet"]
    assert cli.main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["channel_conv2_3.npz", "channel_conv2_3.png", "logit_1.npz", "logit_1.png", "logit_2.npz",
                     "logit_2.png"]
    saved = np.load(out / "logit_1.npz")
    assert saved["image"].shape == (48, 48, 3) and saved["transparency"].shape == (48, 48, 3)
    assert cli.main(argv) == 0
    assert "3 of 3 already in" in capsys.readouterr().out


def test_cli_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        cli.parse_args([str(tmp_path / "m.keras")])
    with pytest.raises(SystemExit):
        cli.parse_args([str(tmp_path / "m.keras"), "--channels", "1"])
