"""Run folders: each unit's files and the `manifest.json` that describes the run.

A run folder holds, per unit `u`, `units/unit_<u>.png` (the image),
`units/unit_<u>_transparency.png` (the image with its transparency as alpha) and
`units/unit_<u>.npz` (image, transparency, per-step scores), plus one `manifest.json`
(model, layer, method, settings, seed, versions); each unit's state and final score are in
`units/unit_<u>.json`, written after its files.

Every file is written whole or not at all (written to a temporary file in the same
folder, then renamed), so a run killed at any moment leaves no half-written file. Several
processes (`--shard I/N`) share a folder without locks: each writes only its own files
(its plan, its units' files and records; see `RunFolder`). A unit counts as finished only
when its three files are there and intact; a rerun skips finished units without touching
their files and redoes the others.
"""

import datetime
import io
import json
import os
import pathlib
import platform
import socket
import zipfile

import matplotlib.image
import numpy as np

from . import storage
from . import validation

MANIFEST = "manifest.json"
UNITS = "units"
SHARDS = "shards"
# 2: random draws keyed per unit (settings "draws": "per unit"); 1: per batch, by earlier
# versions. Both are read (atlas); a format-1 run is not resumed (see `RunFolder.open`).
FORMAT = 2
READABLE_FORMATS = (1, 2)
# The settings that change a unit's result: a folder's units must all share them.
RESULT_SETTINGS = ("method", "steps", "image_size", "crops", "values_range", "seed", "noise", "crop_scale", "preset",
                   "contrast", "draws", "backend")


def _recorded(settings, key):
    """`settings[key]` of a manifest, or what it was before manifests recorded it (earlier
    versions): the paper's preset, MACO's contrast 1.0 (every preset had it then) and
    random draws keyed per batch (before format 2)."""
    if key in settings:
        return settings[key]
    if key == "draws":
        return "per batch"
    if key == "backend":
        return "tensorflow"
    if key == "preset":
        return "paper"
    if key == "contrast" and settings.get("method") == "maco":
        return 1.0
    return None


def to_display(images, values_range=(-1.0, 1.0)):
    """Maps images from `values_range` to [0, 1] RGB for display (grayscale is repeated)."""
    low, high = validation.values_range(values_range)
    images = np.clip((np.asarray(images, np.float32) - low) / (high - low), 0.0, 1.0)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def transparency_alpha(transparency, percentile=80):
    """Per-pixel alpha in [0, 1] from a transparency map (N, H, W, C), as `plot_maco` builds it:
    channel mean, ceiled at its `percentile`, scaled by its maximum."""
    alpha = np.mean(np.asarray(transparency, np.float32), axis=-1, keepdims=True)
    ceiling = np.percentile(alpha.reshape(len(alpha), -1), percentile, axis=1).reshape(-1, 1, 1, 1)
    alpha = np.minimum(alpha, ceiling)
    return alpha / np.maximum(alpha.reshape(len(alpha), -1).max(1).reshape(-1, 1, 1, 1), 1e-12)


class RunFolderError(ValueError):
    """The folder holds another run, or a manifest that cannot be read."""


# Written whole or not at all (see `storage`); here for the modules that wrote with it before.
write_atomic = storage.write_atomic


def remove_stale_temporaries(folder):
    """Deletes the temporary files that killed processes of this host left in a run folder."""
    if storage.is_url(folder):
        return  # a bucket's leftovers are other objects: nothing reads them, and no pid says whose they are
    host = socket.gethostname()
    for path in pathlib.Path(folder).rglob(".*.tmp"):
        parts = path.name.rsplit(".", 3)  # .<name>.<host>.<pid>.tmp
        if len(parts) != 4 or parts[1] != host or not parts[2].isdigit():
            continue
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


def png_bytes(image01):
    """PNG bytes of an (H, W, 3) or (H, W, 4) float image in [0, 1]."""
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, np.clip(image01, 0.0, 1.0), format="png")
    return buffer.getvalue()


def npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def unit_files(unit):
    """The three files of a unit, relative to the run folder."""
    stem = f"{UNITS}/unit_{unit}"
    return {"image": f"{stem}.png", "transparency": f"{stem}_transparency.png", "data": f"{stem}.npz"}


def _intact(path):
    """Cheap structural check: a PNG ends with its IEND chunk, an .npz has its zip directory."""
    try:
        if isinstance(path, storage.GfilePath):
            content = path.read_bytes()  # a few hundred kB; a remote file is read whole
            head, tail, archive_file = content[:8], content[-12:], io.BytesIO(content)
        elif path.suffix == ".png":
            with open(path, "rb") as handle:
                head = handle.read(8)
                handle.seek(-12, os.SEEK_END)
                tail = handle.read(12)
        else:
            archive_file = path
        if path.suffix == ".png":
            return head == b"\x89PNG\r\n\x1a\n" and tail[4:8] == b"IEND"
        with zipfile.ZipFile(archive_file) as archive:
            return {"image.npy", "transparency.npy", "scores.npy"} <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def unit_is_finished(folder, unit, entry=None):
    """Whether a unit's three files are there and intact (and, if recorded, of the recorded sizes)."""
    folder = storage.path(folder)
    sizes = (entry or {}).get("sizes", {})
    for kind, relative in unit_files(unit).items():
        path = folder / relative
        if not path.is_file() or not _intact(path):
            return False
        if kind in sizes and path.stat().st_size != sizes[kind]:
            return False
    return True


def save_unit(folder, unit, image, transparency, scores, values_range):
    """Writes a unit's image PNG, transparency PNG and .npz, each atomically; returns their sizes."""
    folder = storage.path(folder)
    display = to_display(image[None], values_range)[0]
    alpha = transparency_alpha(transparency[None])[0]
    contents = {
        "image": png_bytes(display),
        "transparency": png_bytes(np.concatenate([display, alpha], axis=-1)),
        "data": npz_bytes(image=image, transparency=transparency, scores=np.asarray(scores, np.float32)),
    }
    sizes = {}
    for kind, relative in unit_files(unit).items():
        write_atomic(folder / relative, contents[kind])
        sizes[kind] = len(contents[kind])
    return sizes


def versions():
    """The versions that made a run: the package, Keras, the backend's framework (and Xplique on TensorFlow)."""
    import importlib

    import keras

    from . import __version__

    backend = keras.backend.backend()
    found = {"maco_keras": __version__, "keras": keras.__version__, "python": platform.python_version()}
    found[backend] = getattr(importlib.import_module(backend), "__version__", "unknown")
    if backend == "tensorflow":
        import xplique

        found["xplique"] = getattr(xplique, "__version__", "unknown")
    return found


MODEL_MANIFEST = "model.json"


def layer_folder(path):
    """The folder name of a layer's run under a model root: its path with `/` and odd characters as `_`."""
    return "layer_" + "".join(char if char.isalnum() or char in "-." else "_" for char in path)


def _read_manifest(path, what, *required):
    """A manifest file as a dict, None when there is none; a `RunFolderError` when it is not one of ours."""
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RunFolderError(f"cannot read {path}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in READABLE_FORMATS or any(
            key not in manifest for key in required):
        raise RunFolderError(f"{path} is not a maco-keras {what} (format {' or '.join(map(str, READABLE_FORMATS))})")
    return manifest


class ModelRoot:
    """A folder of run folders, one per layer of one model (`maco-keras visualize --layer A,B,C`).

    `model.json` names the model and lists its layers, each with its run folder, kind and
    unit count; each run folder is a `RunFolder` of its own (resume, shards, atomic writes,
    no locks). A rerun on the same model with more layers adds them; a layer's folder that
    the list lacks (two processes added layers at once) is found by `read()` all the same.

    Args:
        folder: the root folder (created if needed).
    """

    def __init__(self, folder):
        self.folder = storage.path(folder)
        self.path = self.folder / MODEL_MANIFEST

    @staticmethod
    def is_root(folder):
        return (storage.path(folder) / MODEL_MANIFEST).is_file()

    def read(self):
        """The model manifest as a dict, or None when the folder has none."""
        manifest = _read_manifest(self.path, "model manifest", "layers")
        if manifest is None:
            return None
        # Processes that add layers at the same time may each rewrite the list without the
        # other's (no locks): a layer's run folder is found all the same.
        listed = {entry["folder"] for entry in manifest["layers"]}
        for path in sorted(self.folder.glob(f"layer_*/{MANIFEST}")):
            if path.parent.name not in listed:
                run = RunFolder(path.parent)._description()
                if run is not None:
                    manifest["layers"].append({"layer": run["layer"], "kind": run.get("kind"), "folder": path.parent.name,
                                               "num_units": run.get("num_units"),
                                               **({"token": run["token"]} if "token" in run else {})})
        return manifest

    def open(self, model, layers):
        """Creates or extends the model manifest; `layers` are dicts with "layer", "kind", "num_units".

        Returns:
            {layer path: its run folder's path}.
        """
        if (self.folder / MANIFEST).exists():
            raise RunFolderError(f"{self.folder} holds a run of one layer, not a model root: use another --out")
        manifest = self.read() or {"format": FORMAT, "model": model, "layers": [],
                                   "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        if manifest["model"] != model:
            raise RunFolderError(f"{self.folder} holds runs of model={manifest['model']!r}, not {model!r}: "
                                 "use another --out")
        known = {entry["layer"]: entry for entry in manifest["layers"]}
        added = False
        for layer in layers:
            if layer["layer"] not in known:
                known[layer["layer"]] = {**layer, "folder": layer_folder(layer["layer"])}
                manifest["layers"].append(known[layer["layer"]])
                added = True
        if added or not self.path.exists():
            write_atomic(self.path, json.dumps(manifest, indent=1, sort_keys=True).encode())
        return {layer["layer"]: self.folder / known[layer["layer"]]["folder"] for layer in layers}


class RunFolder:
    """A run folder, shared by any number of processes without locks.

    Each process writes only files it owns, so nothing depends on `flock` (many NFS set-ups
    and object stores have none):
    - `manifest.json`, the run's description (model, layer, kind, settings, versions), is
      written once; a process that finds one checks that it describes the same run;
    - `shards/shard_<i>_of_<n>.json`: the units shard i of n plans (pending units are those
      planned and not done);
    - per unit, after its three files, `units/unit_<u>.json`: its record (score, sizes,
      shard, seconds), written last, so a record is only ever there for a finished unit,
      even where a rename is not atomic. Only the unit's own shard writes it.
    `read()` merges them into one manifest, with a "units" dict as earlier versions kept
    inside `manifest.json` (whose own "units", in a folder an earlier version wrote, are
    still read).

    Args:
        folder: the run folder (created if needed).
    """

    def __init__(self, folder):
        self.folder = storage.path(folder)
        self.path = self.folder / MANIFEST

    def _description(self):
        return _read_manifest(self.path, "manifest")

    def read(self):
        """The manifest with every unit's state merged in ("units": {u: entry}), or None when there is none."""
        manifest = self._description()
        if manifest is None:
            return None
        units = dict(manifest.get("units", {}))  # an earlier version's manifest kept them here
        for plan in sorted((self.folder / SHARDS).glob("shard_*.json")):
            try:
                planned = json.loads(plan.read_text())["units"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a plan is rewritten whole; an unreadable one is another writer's, mid-replace
            for unit in planned:
                units.setdefault(str(unit), {"state": "pending"})
        for record in (self.folder / UNITS).glob("unit_*.json"):
            entry = _read_record(record)
            if entry is not None:
                units[record.stem.removeprefix("unit_")] = entry
        manifest["units"] = units
        return manifest

    def open(self, description, units, shard=(0, 1)):
        """Writes the manifest if there is none, or checks that it describes the same run; plans `units`.

        Args:
            description: dict with "model", "layer", "kind", "num_units", "settings" (see
                `RESULT_SETTINGS`) and anything else worth recording.
            units: the unit numbers this process (shard `shard`) will work on.

        Returns:
            The manifest (see `read`).
        """
        manifest = self._description()
        if manifest is None:
            write_atomic(self.path, json.dumps(
                {"format": FORMAT, **description, "versions": versions(),
                 "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
                indent=1, sort_keys=True).encode())
            # Shards that start together each write one; they describe the same run, so any wins.
            manifest = self._description()
        for key in ("model", "layer", "token"):
            if manifest.get(key) != description.get(key):
                raise RunFolderError(
                    f"{self.folder} holds a run of {key}={manifest.get(key)!r}, not {description.get(key)!r}: "
                    "use another --out")
        backend = _recorded(manifest["settings"], "backend")
        if backend != description["settings"].get("backend", "tensorflow"):
            raise RunFolderError(
                f"{self.folder} holds a run made on the {backend} backend, this one runs on "
                f"{description['settings'].get('backend', 'tensorflow')}: resume it with --backend {backend} (or "
                f"KERAS_BACKEND={backend}), or use another --out")
        if _recorded(manifest["settings"], "draws") != description["settings"].get("draws"):
            raise RunFolderError(
                f"{self.folder} was written by an earlier maco-keras (format {manifest.get('format')}), whose "
                f"random draws were keyed per batch, not per unit: resuming it would mix the two; finish it with "
                f"the version that started it (its manifest's versions), or use another --out")
        for key in RESULT_SETTINGS:
            ours = _recorded(description["settings"], key)
            theirs = _recorded(manifest["settings"], key)
            if ours != theirs:
                raise RunFolderError(
                    f"{self.folder} holds a run with {key}={theirs!r}, this one has {key}={ours!r}: "
                    "use the same settings to resume, or another --out")
        index, count = shard
        plan = self.folder / SHARDS / f"shard_{index}_of_{count}.json"
        planned = set(units)
        if plan.exists():
            try:
                planned |= set(json.loads(plan.read_text())["units"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
        write_atomic(plan, json.dumps({"units": sorted(planned)}).encode())
        return self.read()

    def _record_path(self, unit):
        return self.folder / UNITS / f"unit_{unit}.json"

    def finished(self, units):
        """The units among `units` whose files are there and intact. Adopts finished units that a
        killed process wrote but did not record, without rewriting their files; drops the record
        of a unit whose files went missing, so that it is redone. Call it for this shard's units only."""
        legacy = (self._description() or {}).get("units", {})
        done = []
        for unit in units:
            entry = _read_record(self._record_path(unit)) or legacy.get(str(unit), {})
            if entry.get("state") == "done" and unit_is_finished(self.folder, unit, entry):
                done.append(unit)
            elif unit_is_finished(self.folder, unit) and self._recover(unit):
                done.append(unit)
            else:
                self._record_path(unit).unlink(missing_ok=True)  # its files went missing: redo it
        return done

    def _recover(self, unit):
        try:
            with np.load(self.folder / unit_files(unit)["data"]) as data:
                scores = data["scores"]
                data["image"], data["transparency"]  # noqa: B018 - decompress: fails if damaged
        except Exception:  # a damaged archive raises many kinds of errors
            return False
        sizes = {kind: (self.folder / relative).stat().st_size for kind, relative in unit_files(unit).items()}
        self._write_record(unit, {"state": "done", "score": float(scores[-1]) if len(scores) else None,
                                  "sizes": sizes, "files": unit_files(unit), "recovered": True})
        return True

    def _write_record(self, unit, entry):
        write_atomic(self._record_path(unit), json.dumps(entry, sort_keys=True).encode())

    def record(self, unit, score, sizes, **extra):
        """Marks a unit done: its record, written after its files."""
        self._write_record(unit, {"state": "done", "score": float(score), "sizes": sizes, "files": unit_files(unit),
                                  **extra})


def _read_record(path):
    """A unit's record, or None when there is none (or it cannot be read: the unit is then redone)."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def parse_units(spec, count, parameter="--units"):
    """Unit numbers from a spec: "all", or comma-separated numbers and ranges ("1,5,10-19").

    Args:
        spec: a string, or a list of strings (joined with commas).
        count: the number of units there are (valid numbers: 0 .. count - 1).
        parameter: the name used in error messages.

    Returns:
        Sorted list of distinct ints.
    """
    if not isinstance(spec, str):
        spec = ",".join(str(part) for part in spec)
    text = spec.replace(" ", "")
    if text == "all":
        return list(range(count))
    units = set()
    for part in filter(None, text.split(",")):
        bounds = part.split("-")
        if len(bounds) > 2 or not all(bound.isdigit() for bound in bounds):
            raise ValueError(
                f"expected numbers and ranges such as 1,5,10-19, or all; received: {parameter}={spec}")
        low, high = int(bounds[0]), int(bounds[-1])
        if low > high:
            raise ValueError(f"expected ranges low-high with low <= high, received: {parameter}={spec}")
        if high >= count:
            raise ValueError(f"expected units in 0-{count - 1} (the layer has {count}), received: {parameter}={spec}")
        units.update(range(low, high + 1))
    if not units:
        raise ValueError(f"expected at least one unit, received: {parameter}={spec!r}")
    return sorted(units)


def parse_shard(text, parameter="--shard", shards=None, environ=None):
    """(index, count) from "I/N", 0 <= I < N, or from a job array's environment for "auto".

    "auto" reads a Slurm job array (`SLURM_ARRAY_TASK_ID`, with `SLURM_ARRAY_TASK_COUNT` or
    `SLURM_ARRAY_TASK_MIN`/`_MAX` and `_STEP`), or a Kubernetes Indexed Job
    (`JOB_COMPLETION_INDEX`, whose count `shards`, i.e. `--shards N`, gives: Kubernetes
    does not pass it).
    """
    if text == "auto":
        return auto_shard(os.environ if environ is None else environ, shards, parameter)
    parts = str(text).split("/")
    if len(parts) != 2 or not all(part.isdigit() for part in parts) or not 0 <= int(parts[0]) < int(parts[1]):
        raise ValueError(f"expected I/N with 0 <= I < N (e.g. 0/4), received: {parameter}={text}")
    return int(parts[0]), int(parts[1])


def _environment_int(environ, name, parameter):
    value = environ.get(name, "")
    if not value.strip().isdigit():
        raise ValueError(f"expected {name} to be a number for {parameter}=auto, received: {name}={value!r}")
    return int(value)


def auto_shard(environ, shards=None, parameter="--shard"):
    """(index, count) of this task of a Slurm job array or a Kubernetes Indexed Job (see `parse_shard`)."""
    if "SLURM_ARRAY_TASK_ID" in environ:
        task = _environment_int(environ, "SLURM_ARRAY_TASK_ID", parameter)
        first = _environment_int(environ, "SLURM_ARRAY_TASK_MIN", parameter) if "SLURM_ARRAY_TASK_MIN" in environ else 0
        step = _environment_int(environ, "SLURM_ARRAY_TASK_STEP", parameter) if "SLURM_ARRAY_TASK_STEP" in environ else 1
        if "SLURM_ARRAY_TASK_COUNT" in environ:
            count = _environment_int(environ, "SLURM_ARRAY_TASK_COUNT", parameter)
        elif "SLURM_ARRAY_TASK_MAX" in environ:
            count = (_environment_int(environ, "SLURM_ARRAY_TASK_MAX", parameter) - first) // max(step, 1) + 1
        else:
            raise ValueError(f"expected SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MAX with SLURM_ARRAY_TASK_ID for "
                             f"{parameter}=auto, received: neither")
        index = (task - first) // max(step, 1)
        source = "Slurm"
    elif "JOB_COMPLETION_INDEX" in environ:
        index = _environment_int(environ, "JOB_COMPLETION_INDEX", parameter)
        if shards is None:
            raise ValueError(f"expected --shards N (the Indexed Job's completions) with {parameter}=auto in a "
                             f"Kubernetes Indexed Job, received: JOB_COMPLETION_INDEX={index} and no --shards")
        count, source = shards, "Kubernetes"
    else:
        raise ValueError(f"expected a Slurm job array (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job "
                         f"(JOB_COMPLETION_INDEX) for {parameter}=auto, received: neither is set")
    if not 0 <= index < count:
        raise ValueError(f"expected the {source} task index in [0, {count}), received: {index} for {parameter}=auto")
    return index, count


def shard_units(units, index, count):
    """The units of shard `index` of `count`: every count-th unit, so shards get equal shares."""
    return units[index::count]


def load_unit(folder, unit):
    """A finished unit's arrays: dict with image, transparency, scores."""
    with np.load(io.BytesIO((storage.path(folder) / unit_files(unit)["data"]).read_bytes())) as data:
        return {key: data[key] for key in data.files}
