"""The package is a pipeline: a module imports only modules of earlier stages (no cycles).

The subpackages are stages of their own: `core` (backend-neutral, right after validation:
it imports no backend module, no command line and no run folders) and `backends` (one
module per Keras backend, after the taps they run). Within a subpackage, modules import
each other freely.
"""

import ast

import pytest

from conftest import REPO

ORDER = [
    "validation", "core", "seeding", "color", "spectrum", "parameterization", "native", "augmentation", "models", "taps",
    "objectives", "objective", "chunks", "steps", "optimization", "engine", "presets", "backends", "visualizer",
    "baselines", "storage", "results", "metrics", "plots", "applications", "examples", "atlas", "cli", "xplique_compat",
    "__main__",
]
SUBPACKAGES = ("core", "backends")
PACKAGE = REPO / "maco_keras"
# What the backend-neutral core may never import: any one backend's framework, or Xplique (which imports TensorFlow).
FRAMEWORKS = ("tensorflow", "jax", "torch", "xplique", "tf_keras")


def stage_of(path):
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_modules(path):
    """The package stages that `path` imports, relative or absolute, at any depth."""
    inside = stage_of(path) if path.parent != PACKAGE else None
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 and inside:
                found.add(inside)  # a sibling in the same subpackage
                continue
            if node.level in (1, 2) or module.startswith("maco_keras"):
                module = module.removeprefix("maco_keras").lstrip(".").split(".")[0]
                found.update([module] if module else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("maco_keras."))
    return found & set(ORDER)


def frameworks_imported(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names & set(FRAMEWORKS)


def module_files():
    return sorted(path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE)


def test_every_module_has_a_stage():
    stages = {stage_of(path) for path in module_files()}
    assert stages == set(ORDER)


@pytest.mark.parametrize("path", module_files(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_only_earlier_stages(path):
    stage = stage_of(path)
    later = {name for name in imported_modules(path) if name != stage and ORDER.index(name) >= ORDER.index(stage)}
    assert not later, f"{path.name} ({stage}) imports {sorted(later)}, which come later in the pipeline"


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda path: path.name)
def test_the_core_imports_no_backend_framework(path):
    assert not frameworks_imported(path), f"core/{path.name} imports {sorted(frameworks_imported(path))}"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_each_backend_module_imports_only_its_own_framework(backend):
    others = set(FRAMEWORKS) - {backend}
    assert not frameworks_imported(PACKAGE / "backends" / f"{backend}.py") & others


# The architecture as forbidden imports (implied by ORDER, stated here so that a reordering cannot drop one):
# the core knows no backend, no TensorFlow engine, no run folder and no command line; a backend knows no run
# folder or command line; run folders know no command line or atlas.
FORBIDDEN = {
    "core": {"backends", "visualizer", "optimization", "engine", "presets", "storage", "results", "atlas", "cli"},
    "backends": {"visualizer", "storage", "results", "atlas", "cli"},
    "visualizer": {"storage", "results", "atlas", "cli"},
    "storage": {"atlas", "cli"},
    "results": {"atlas", "cli"},
    "metrics": {"cli", "atlas"},
}


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_forbidden_imports(stage):
    files = [path for path in module_files() if stage_of(path) == stage]
    assert files, f"no module of stage {stage}"
    for path in files:
        found = imported_modules(path) & FORBIDDEN[stage]
        assert not found, f"{path.relative_to(PACKAGE)} imports {sorted(found)}"  # lazy imports in functions too
