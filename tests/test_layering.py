"""The package is a pipeline: a module imports only modules of earlier stages (no cycles).

The subpackages are stages of their own: `core` (backend-neutral, right after validation:
it imports no backend module, no command line and no run folders), `backends` (one module
per Keras backend, after the taps they run), `runs` (run folders, then the atlas and the
command line) and `evaluation` (metrics and plots). Within `core` and `backends` modules
import each other freely; within `runs` and `evaluation` they are a pipeline too
(`MEMBER_ORDER`).
"""

import ast

import pytest

from conftest import REPO

ORDER = [
    "validation", "core", "seeding", "color", "spectrum", "parameterization", "native", "augmentation", "models", "taps",
    "objectives", "objective", "chunks", "steps", "optimization", "engine", "presets", "backends", "visualizer",
    "baselines", "applications", "runs", "evaluation", "xplique_compat", "__main__",
]
SUBPACKAGES = ("core", "backends", "runs", "evaluation")
# The subpackages whose modules are a pipeline of their own, in order.
MEMBER_ORDER = {
    "runs": ["storage", "results", "examples", "atlas", "cli"],
    "evaluation": ["metrics", "plots"],
}
PACKAGE = REPO / "maco_keras"
# What the backend-neutral core may never import: any one backend's framework, or Xplique (which imports TensorFlow).
FRAMEWORKS = ("tensorflow", "jax", "torch", "xplique", "tf_keras")


def stage_of(path):
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def members_imported(path):
    """The sibling modules that `path` (a module of a subpackage) imports, relative or absolute, at any depth."""
    package = path.parent.name
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:
                found.add(module.split(".")[0]) if module else found.update(alias.name for alias in node.names)
            elif node.level == 0 and module.startswith(f"maco_keras.{package}"):
                rest = module.removeprefix(f"maco_keras.{package}").lstrip(".")
                found.add(rest.split(".")[0]) if rest else found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[2] for alias in node.names
                         if alias.name.startswith(f"maco_keras.{package}.") and alias.name.count(".") >= 2)
    return found - {"__init__", ""}


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


@pytest.mark.parametrize("package", sorted(MEMBER_ORDER))
def test_members_import_only_earlier_members(package):
    order = MEMBER_ORDER[package]
    files = sorted(path for path in (PACKAGE / package).glob("*.py") if path.name != "__init__.py")
    assert [path.stem for path in files] == sorted(order), f"{package}/ holds modules missing from MEMBER_ORDER"
    for path in files:
        later = {name for name in members_imported(path) if order.index(name) >= order.index(path.stem)}
        assert not later, f"{package}/{path.name} imports {sorted(later)}, which come later in {package}/"


# The architecture as forbidden imports (implied by ORDER and MEMBER_ORDER, stated here so that a reordering
# cannot drop one): the core knows no backend, no TensorFlow engine, no run folder and no command line; a backend
# knows no run folder or command line; run folders know no command line or atlas; evaluation knows no command line.
FORBIDDEN = {
    "core": {"backends", "visualizer", "optimization", "engine", "presets", "runs", "evaluation"},
    "backends": {"visualizer", "runs", "evaluation"},
    "visualizer": {"runs", "evaluation"},
    "runs": {"evaluation"},
}
FORBIDDEN_MEMBERS = {
    "runs/storage.py": {"atlas", "cli"},
    "runs/results.py": {"atlas", "cli"},
    "runs/examples.py": {"atlas", "cli"},
}


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_forbidden_imports(stage):
    files = [path for path in module_files() if stage_of(path) == stage]
    assert files, f"no module of stage {stage}"
    for path in files:
        found = imported_modules(path) & FORBIDDEN[stage]
        assert not found, f"{path.relative_to(PACKAGE)} imports {sorted(found)}"  # lazy imports in functions too


@pytest.mark.parametrize("relative", sorted(FORBIDDEN_MEMBERS))
def test_forbidden_member_imports(relative):
    found = members_imported(PACKAGE / relative) & FORBIDDEN_MEMBERS[relative]
    assert not found, f"{relative} imports {sorted(found)}"


def test_evaluation_reads_run_folders_only_through_results():
    """Evaluation comes after the run folders, but needs only their image helpers, never the shell or the atlas."""
    for path in sorted((PACKAGE / "evaluation").glob("*.py")):
        text = path.read_text()
        for member in ("cli", "atlas", "examples"):
            assert f"runs.{member}" not in text and f"runs import {member}" not in text, (path.name, member)
