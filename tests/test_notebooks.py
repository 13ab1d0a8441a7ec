"""The notebooks parse, and run end to end (with MACO_STEPS small) on the shared model."""

import ast
import json

import pytest

from conftest import REPO, shared_dir, skip_unless_ci

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _python(cell_source):
    # IPython magics and shell lines are not Python: a `pass` keeps any block they sit in valid.
    lines = cell_source.splitlines()
    return "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("!", "%"))
                     else line for line in lines)


def test_there_are_six_notebooks():
    assert [path.name for path in NOTEBOOKS] == [
        "01_quickstart.ipynb", "02_internal_channels.ipynb", "03_inversion_and_accentuation.ipynb",
        "04_craft_concepts.ipynb", "05_vision_transformer.ipynb", "06_jax_and_pytorch.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_cells_parse(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            ast.parse(_python("".join(cell["source"])))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_end_to_end(path, monkeypatch):
    if not (shared_dir() / "models").is_dir():
        skip_unless_ci(f"shared data not found at {shared_dir()}: offline, the notebooks need its models")
    import nbclient
    import nbformat

    monkeypatch.setenv("MACO_STEPS", "2")
    monkeypatch.setenv("MACO_VIT_PRESET", "")  # offline: the ViT notebook's random-weight model, no download
    monkeypatch.setenv("MACO_SHARED", str(shared_dir().resolve()))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs), "the notebook shows no picture"
    if path.name == "06_jax_and_pytorch.ipynb":  # it ran on JAX, without TensorFlow or Xplique
        text = "".join(output.get("text", "") for output in outputs)
        assert "Keras backend: jax" in text and "tensorflow imported: False | xplique imported: False" in text, text
