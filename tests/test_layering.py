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


# The short names the package also answers to (`maco_keras.cli` is `maco_keras.runs.cli`): an import by one
# is an import of that folder's module.
SHORT_NAMES = {member: package for package, members in MEMBER_ORDER.items() for member in members}
# Names imported from the package that are not modules.
ATTRIBUTES = {"__version__"}


def imports_of(path, source=None):
    """What `path` (its text, or `source` read as if it were its text) imports from the package, relative or absolute, at any depth (lazy imports in functions too),
    each as (stage, member): member is the module inside a subpackage (None for a top-level module or a
    subpackage itself). A short name (`from . import cli`, `from maco_keras import plots`) counts as its folder's
    module; a name that is neither a stage nor a known attribute fails, so no import can slip past the checks."""
    package = list(path.relative_to(PACKAGE).parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        candidates = []
        if isinstance(node, ast.ImportFrom):
            module = [part for part in (node.module or "").split(".") if part]
            if node.level:
                base = package[:len(package) - (node.level - 1)]
            elif module[:1] == ["maco_keras"]:
                base, module = [], module[1:]
            else:
                continue
            candidates = [base + module + [alias.name] for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name.split(".")[1:] for alias in node.names if alias.name.startswith("maco_keras.")]
        for parts in candidates:
            if parts and parts[0] in SHORT_NAMES:
                parts = [SHORT_NAMES[parts[0]], *parts]
            if not parts or parts[0] in ATTRIBUTES:
                continue
            assert parts[0] in ORDER, f"{path.relative_to(PACKAGE)} imports maco_keras.{'.'.join(parts)}, not a stage"
            member = parts[1] if len(parts) > 1 and (PACKAGE / parts[0] / f"{parts[1]}.py").exists() else None
            found.add((parts[0], member))
    return found


def members_imported(path):
    """The modules of `path`'s own subpackage that `path` imports (by any of the forms `imports_of` reads)."""
    package = path.parent.name
    return {member for stage, member in imports_of(path) if stage == package and member}


def imported_modules(path):
    """The package stages that `path` imports, relative or absolute, at any depth."""
    return {stage for stage, _ in imports_of(path)}


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
# knows no run folder or command line; run folders know no command line or atlas (but the atlas and the command
# line themselves); evaluation knows no command line, atlas or dataset examples.
FORBIDDEN = {
    "core": {"backends", "visualizer", "optimization", "engine", "presets", "runs", "evaluation"},
    "backends": {"visualizer", "runs", "evaluation"},
    "visualizer": {"runs", "evaluation"},
    "runs": {"evaluation"},
}
# Evaluation comes after the run folders but needs only their image helpers, never the shell, atlas or examples.
FORBIDDEN_ACROSS = {"evaluation": {("runs", "cli"), ("runs", "atlas"), ("runs", "examples")}}
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


@pytest.mark.parametrize("stage", sorted(FORBIDDEN_ACROSS))
def test_forbidden_modules_of_other_folders(stage):
    for path in [path for path in module_files() if stage_of(path) == stage]:
        found = imports_of(path) & FORBIDDEN_ACROSS[stage]
        assert not found, f"{path.relative_to(PACKAGE)} imports {sorted(found)}"


def test_short_names_and_folder_paths_count_alike():
    """Every form of import is read: a check that missed one would pass vacuously."""
    forms = {"from . import cli": {("runs", "cli")}, "from .. import results": {("runs", "results")},
             "from maco_keras import plots": {("evaluation", "plots")}, "from ..runs import atlas": {("runs", "atlas")},
             "from ..runs.cli import main": {("runs", "cli")}, "import maco_keras.evaluation.metrics": {
                 ("evaluation", "metrics")}, "from .. import __version__": set(),
             "from ..core.outcome import NonFiniteError": {("core", "outcome")}}
    probe = PACKAGE / "runs" / "storage.py"  # each statement read as if it were in runs/storage.py, in a function
    for statement, expected in forms.items():
        assert imports_of(probe, f"def f():\n    {statement}\n") == expected, statement
    with pytest.raises(AssertionError, match="not a stage"):
        imports_of(probe, "from .. import nonexistent_thing\n")
    assert members_imported(PACKAGE / "runs" / "cli.py") >= {"results", "atlas", "examples"}
