"""The package is a pipeline: a module imports only modules of earlier stages (no cycles)."""

import ast

import pytest

from conftest import REPO

ORDER = [
    "validation", "seeding", "color", "spectrum", "parameterization", "native", "augmentation", "models", "taps", "objectives", "objective",
    "chunks", "steps", "optimization", "engine", "presets", "baselines", "storage", "results", "metrics", "plots", "applications", "examples", "atlas",
    "cli", "xplique_compat", "__main__",
]
PACKAGE = REPO / "maco_keras"


def imported_modules(path):
    """The package modules that `path` imports, relative or absolute, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or (node.module or "").startswith("maco_keras"):
                module = (node.module or "").removeprefix("maco_keras").lstrip(".").split(".")[0]
                found.update([module] if module else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("maco_keras."))
    return found & set(ORDER)


def test_every_module_has_a_stage():
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(ORDER)


@pytest.mark.parametrize("module", ORDER)
def test_imports_only_earlier_stages(module):
    later = {name for name in imported_modules(PACKAGE / f"{module}.py") if ORDER.index(name) >= ORDER.index(module)}
    assert not later, f"{module} imports {sorted(later)}, which come later in the pipeline"
