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
import hashlib
import io
import json
import os
import pathlib
import platform
import socket
import zipfile

import matplotlib.image
import numpy as np
from PIL import Image

from . import storage
from .. import validation

MANIFEST = "manifest.json"
UNITS = "units"
SHARDS = "shards"
# 3: random draws from the core's counter-based generator, the same on every backend
# (settings "draws": "counter"); 2: TensorFlow's Philox keyed per unit ("per unit"); 1: Philox
# keyed per batch, by earlier versions. All are read (atlas); a run whose draws are not this
# version's is not resumed (see `RunFolder.open`).
FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
# What each earlier `draws` was, for the one line that refuses to resume it.
EARLIER_DRAWS = {"per batch": "TensorFlow's Philox generator keyed per batch",
                 "per unit": "TensorFlow's Philox generator keyed per unit"}
# The versions whose MACO crops of a TensorFlow run with --crops 2 were not squares: Keras's `ops.add` on TensorFlow took the
# two crops' sides for a bias of the box's last axis (`core.crops.boxes` repeats them since 0.4.1); runs with other
# crop counts drew the same boxes then as now.
NON_SQUARE_TWO_CROPS = ("0.3.0", "0.4.0")
# The settings that change a unit's result: a folder's units must all share them.
RESULT_SETTINGS = ("method", "steps", "image_size", "crops", "values_range", "seed", "noise", "crop_scale", "preset",
                   "contrast", "draws", "backend", "relu_redirect_steps", "weights")


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
    if key == "relu_redirect_steps":
        return 0
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


def sha256(data):
    """The SHA-256 hex digest of `data` (bytes)."""
    return hashlib.sha256(data).hexdigest()


def chunk_changes_pictures(settings):
    """Whether a run's `crop_chunk` is one of the settings that make its pictures: on JAX and PyTorch a chunk's
    crops go through the model as a batch of their own, and after the first step's rounding, NAdam parts the
    pictures (TensorFlow's engine sums the crops' gradients in one order whatever the chunk: the same bits)."""
    return _recorded(settings, "backend") != "tensorflow"


def settings_digest(settings, model_digest=None):
    """A digest of the settings that change a unit's picture (`RESULT_SETTINGS`) and of the model.

    Each unit's record holds it, so that a folder on a file system without exclusive
    creation (`tf.io.gfile`) still refuses, at read time, units that another run made.
    """
    checked = {key: _recorded(settings, key) for key in RESULT_SETTINGS}
    if chunk_changes_pictures(settings) and settings.get("crop_chunk") is not None:
        checked["crop_chunk"] = settings["crop_chunk"]  # (absent when None: earlier folders keep their digests)
    return sha256(json.dumps({"settings": checked, "model": model_digest}, sort_keys=True).encode())[:16]


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
    """Cheap structural check: a PNG ends with its IEND chunk, an .npz has its zip directory (a unit
    without a recorded digest is decoded whole as well: see `RunFolder._recover`)."""
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


def unit_damage(folder, unit, entry=None):
    """Why a unit's files are not its finished result, or None when they are.

    With a record (`entry`) that holds digests (this version's), each file must match its
    SHA-256: any change, even of the same size, is seen. Older records hold sizes only:
    then the files must be whole and of the recorded sizes.

    Returns:
        None, or one line: the file and what is wrong with it.
    """
    folder = storage.path(folder)
    sizes = (entry or {}).get("sizes", {})
    digests = (entry or {}).get("digests", {})
    if not isinstance(sizes, dict) or not isinstance(digests, dict):
        return f"{UNITS}/unit_{unit}.json is not a record of this version (hand-edited?)"
    for kind, relative in unit_files(unit).items():
        path = folder / relative
        if not path.is_file():
            return f"{relative} is missing"
        if kind in digests:
            try:
                content = path.read_bytes()
            except OSError as error:
                return f"{relative} cannot be read ({error.strerror or error})"
            if sha256(content) != digests[kind]:
                return f"{relative} differs from its record's digest"
            continue
        if not _intact(path):
            return f"{relative} is damaged"
        if kind in sizes and path.stat().st_size != sizes[kind]:
            return f"{relative} is {path.stat().st_size} bytes, its record says {sizes[kind]}"
    return None


def unit_is_finished(folder, unit, entry=None):
    """Whether a unit's three files are there and intact (see `unit_damage`)."""
    return unit_damage(folder, unit, entry) is None


def save_unit(folder, unit, image, transparency, scores, values_range):
    """Writes a unit's image PNG, transparency PNG and .npz, each atomically.

    Returns:
        {kind: {"size": bytes, "sha256": digest}} of the files written, for `RunFolder.record`.
    """
    folder = storage.path(folder)
    display = to_display(image[None], values_range)[0]
    alpha = transparency_alpha(transparency[None])[0]
    contents = {
        "image": png_bytes(display),
        "transparency": png_bytes(np.concatenate([display, alpha], axis=-1)),
        "data": npz_bytes(image=image, transparency=transparency, scores=np.asarray(scores, np.float32)),
    }
    written = {}
    for kind, relative in unit_files(unit).items():
        write_atomic(folder / relative, contents[kind])
        written[kind] = {"size": len(contents[kind]), "sha256": sha256(contents[kind])}
    return written


def versions():
    """The versions that made a run: the package, Keras, the backend's framework (and Xplique on TensorFlow)."""
    import importlib

    import keras

    from .. import __version__

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
            key not in manifest for key in required) or not isinstance(manifest.get("settings", {}), dict) or not \
            isinstance(manifest.get("layers", []), list) or not all(
                isinstance(entry, dict) and isinstance(entry.get("layer"), str) and isinstance(entry.get("folder"), str)
                for entry in manifest.get("layers", [])):
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

    def open(self, model, layers, model_digest=None):
        """Creates or extends the model manifest; `layers` are dicts with "layer", "kind", "num_units".

        Args:
            model: the model's source (a path or a name); model_digest: its digest
                (`models.digest`), which identifies it however the path is spelled.

        Returns:
            {layer path: its run folder's path}.
        """
        if (self.folder / MANIFEST).exists():
            raise RunFolderError(f"{self.folder} holds a run of one layer, not a model root: use another --out")
        fresh = {"format": FORMAT, "model": model, "layers": [],
                 "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        if model_digest is not None:
            fresh["model_digest"] = model_digest
        storage.create_exclusive(self.path, json.dumps(fresh, indent=1, sort_keys=True).encode())
        manifest = self.read()
        recorded = manifest.get("model_digest")
        if not (recorded == model_digest if recorded and model_digest else _same_model(manifest["model"], model)):
            raise RunFolderError(f"{self.folder} holds runs of model={manifest['model']!r}, not {model!r}: "
                                 "use another --out")
        known = {entry["layer"]: entry for entry in manifest["layers"]}
        added = False
        for layer in layers:
            if layer["layer"] not in known:
                known[layer["layer"]] = {**layer, "folder": layer_folder(layer["layer"])}
                manifest["layers"].append(known[layer["layer"]])
                added = True
        if added:
            write_atomic(self.path, json.dumps(manifest, indent=1, sort_keys=True).encode())
        return {layer["layer"]: self.folder / known[layer["layer"]]["folder"] for layer in layers}


class RunFolder:
    """A run folder, shared by any number of processes without locks.

    Each process writes only files it owns, so nothing depends on `flock` (many NFS set-ups
    and object stores have none):
    - `manifest.json`, the run's description (model, layer, kind, settings, versions), is
      created once, exclusively (`storage.create_exclusive`): of two runs that start at the
      same instant, one creates it and the other finds it and is checked against it;
    - `shards/shard_<i>_of_<n>.json`: the units shard i of n plans (pending units are those
      planned and not done);
    - per unit, after its three files, `units/unit_<u>.json`: its record (score, each
      file's size and SHA-256, the settings digest, shard, seconds), written last, so a
      record is only ever there for a finished unit, even where a rename is not atomic. A
      unit whose run went non-finite gets a record with state "failed" and the reason.
      Only the unit's own shard writes it.
    `read()` merges them into one manifest, with a "units" dict as earlier versions kept
    inside `manifest.json` (whose own "units", in a folder an earlier version wrote, are
    still read).

    Args:
        folder: the run folder (created if needed).
    """

    def __init__(self, folder):
        self.folder = storage.path(folder)
        self.path = self.folder / MANIFEST
        self.settings_digest = None  # this run's, once `open` has checked the folder
        self.damaged = {}  # unit -> why its files were not kept (see `finished`)

    def _description(self):
        return _read_manifest(self.path, "manifest", "model", "layer", "settings")

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
            number = record.stem.removeprefix("unit_")
            entry = _read_record(record) if number.isdigit() else None  # not a stray file (unit_3.old.json)
            if entry is not None:
                units[number] = entry
        manifest["units"] = units
        return manifest

    def open(self, description, units, shard=(0, 1)):
        """Creates the manifest if there is none, or checks that it describes the same run; plans `units`.

        Args:
            description: dict with "model", "layer", "kind", "num_units", "settings" (see
                `RESULT_SETTINGS`), optionally "model_digest" and "model_path", and anything
                else worth recording.
            units: the unit numbers this process (shard `shard`) will work on.

        Returns:
            The manifest (see `read`).

        Raises:
            RunFolderError: the folder holds another run, or a manifest that is not one.
        """
        created = storage.create_exclusive(self.path, json.dumps(
            {"format": FORMAT, **description, "versions": versions(),
             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
            indent=1, sort_keys=True).encode())
        manifest = self._description()
        # Checked even when this process created it: on a `tf.io.gfile` file system another run may have
        # written its own in between (nothing there is exclusive).
        self._check_same_run(manifest, description)
        self.settings_digest = settings_digest(description["settings"], description.get("model_digest")
                                               or manifest.get("model_digest"))
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

    def _check_same_run(self, manifest, description):
        """Raises a `RunFolderError` unless `manifest` (found in the folder) describes the run `description` asks for."""
        theirs_digest, ours_digest = manifest.get("model_digest"), description.get("model_digest")
        if theirs_digest and ours_digest:
            # The same weights and structure, however the path is spelled or wherever the folder moved.
            if theirs_digest != ours_digest:
                raise RunFolderError(
                    f"{self.folder} holds a run of another model: {manifest.get('model')!r} with digest "
                    f"{theirs_digest[:12]}, this one is {description.get('model')!r} with digest {ours_digest[:12]} "
                    "(other weights or structure): use another --out")
        elif not _same_model(manifest.get("model"), description.get("model")):
            raise RunFolderError(f"{self.folder} holds a run of model={manifest.get('model')!r}, not "
                                 f"{description.get('model')!r}: use another --out")
        for key in ("layer", "token"):
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
        theirs_draws = _recorded(manifest["settings"], "draws")
        if theirs_draws != description["settings"].get("draws"):
            raise RunFolderError(
                f"{self.folder} was written by an earlier maco-keras (format {manifest.get('format')}), whose "
                f"random draws came from {EARLIER_DRAWS.get(theirs_draws, repr(theirs_draws))}, not this version's "
                f"generator: resuming it would mix the two; finish it with the version that started it (its "
                f"manifest's versions), or use another --out")
        made_by = (manifest.get("versions") or {}).get("maco_keras")
        if theirs_draws == "counter" and made_by in NON_SQUARE_TWO_CROPS and backend == "tensorflow" and \
                manifest["settings"].get("method") == "maco" and manifest["settings"].get("crops") == 2:
            raise RunFolderError(
                f"{self.folder} was written by maco-keras {made_by}, whose two crops per step were not squares "
                "(fixed in 0.4.1): resuming it would mix the two; finish it with the version that started it, or "
                "use another --out")
        if chunk_changes_pictures(manifest["settings"]) and \
                manifest["settings"].get("crop_chunk") != description["settings"].get("crop_chunk"):
            raise RunFolderError(
                f"{self.folder} holds a run with crop_chunk={manifest['settings'].get('crop_chunk')!r}, this one has "
                f"crop_chunk={description['settings'].get('crop_chunk')!r} (on the {backend} backend the chunk "
                "changes the pictures): use the same --crop-chunk to resume, or another --out")
        theirs_devices, ours_devices = manifest["settings"].get("devices"), description["settings"].get("devices")
        if theirs_devices is not None and ours_devices is not None and theirs_devices != ours_devices:
            raise RunFolderError(
                f"{self.folder} holds a run on {theirs_devices} devices, this one runs on {ours_devices} (they share "
                "each unit's crops: another count changes the pictures): resume it where it ran, or use another --out")
        for key in RESULT_SETTINGS:
            ours = _recorded(description["settings"], key)
            theirs = _recorded(manifest["settings"], key)
            if ours != theirs:
                raise RunFolderError(
                    f"{self.folder} holds a run with {key}={theirs!r}, this one has {key}={ours!r}: "
                    "use the same settings to resume, or another --out")

    def _record_path(self, unit):
        return self.folder / UNITS / f"unit_{unit}.json"

    def _check_record(self, unit, entry):
        """Refuses a record that another run's settings made (a file system without exclusive creation)."""
        theirs = entry.get("settings_digest")
        if theirs is not None and self.settings_digest is not None and theirs != self.settings_digest:
            raise RunFolderError(
                f"{self.folder} holds unit {unit} made with other settings than its manifest's (its record's "
                f"settings digest {theirs}, the manifest's {self.settings_digest}): two runs wrote this folder; "
                "use another --out")

    def finished(self, units):
        """The units among `units` whose files are there and match their record. Call it for this shard's units only.

        Adopts finished units that a killed process wrote but did not record (their files
        decoded whole), without rewriting their files. Drops the record of a unit whose files
        are missing or damaged, so that it is redone, and keeps why in `self.damaged`. Leaves
        failed units' records alone (see `failed`).
        """
        legacy = (self._description() or {}).get("units", {})
        done, self.damaged = [], {}
        for unit in units:
            entry = _read_record(self._record_path(unit)) or legacy.get(str(unit), {})
            if entry:
                self._check_record(unit, entry)
            if entry.get("state") == "failed":
                continue
            if entry.get("state") == "done":
                damage = unit_damage(self.folder, unit, entry)
                if damage is None:
                    done.append(unit)
                    continue
                self.damaged[unit] = damage
                self._record_path(unit).unlink(missing_ok=True)  # its files went missing or bad: redo it
            elif self._recover(unit):
                done.append(unit)
        return done

    def failed(self, units):
        """{unit: reason} of the units among `units` recorded as failed (their run went non-finite)."""
        found = {}
        for unit in units:
            entry = _read_record(self._record_path(unit)) or {}
            if entry.get("state") == "failed":
                found[unit] = entry.get("reason", "failed")
        return found

    def _recover(self, unit):
        """Records a unit whose three files a killed process wrote but did not record, if each decodes whole.

        Not on a `tf.io.gfile` file system: there two runs may have shared the folder, and files without a
        record cannot say which run made them; the unit is redone.
        """
        if storage.is_url(self.folder):
            return False
        files = {kind: self.folder / relative for kind, relative in unit_files(unit).items()}
        if not all(path.is_file() and _intact(path) for path in files.values()):
            return False
        try:
            contents = {kind: path.read_bytes() for kind, path in files.items()}
            with np.load(io.BytesIO(contents["data"])) as data:
                scores = data["scores"]
                data["image"], data["transparency"]  # noqa: B018 - decompress: fails if damaged
            for kind in ("image", "transparency"):
                with Image.open(io.BytesIO(contents[kind])) as picture:
                    picture.load()  # checks each chunk's CRC and the compressed stream
        except Exception:  # a damaged archive or PNG raises many kinds of errors
            return False
        written = {kind: {"size": len(content), "sha256": sha256(content)} for kind, content in contents.items()}
        self._write_record(unit, {**self._entry(scores[-1] if len(scores) else None, written), "recovered": True})
        return True

    @staticmethod
    def _entry(score, written):
        return {"state": "done", "score": None if score is None else float(score),
                "sizes": {kind: item["size"] for kind, item in written.items()},
                "digests": {kind: item["sha256"] for kind, item in written.items()}}

    def _write_record(self, unit, entry):
        entry = {**entry, "files": unit_files(unit)}
        if self.settings_digest is not None:
            entry["settings_digest"] = self.settings_digest
        write_atomic(self._record_path(unit), json.dumps(entry, sort_keys=True).encode())

    def record(self, unit, score, written, **extra):
        """Marks a unit done: its record (score, each file's size and digest from `save_unit`), written after its files."""
        self._write_record(unit, {**self._entry(score, written), **extra})

    def record_failed(self, unit, reason, **extra):
        """Marks a unit failed (its run went non-finite): a rerun retries it only when asked (`--retry-failed`)."""
        self._write_record(unit, {"state": "failed", "reason": reason, **extra})

    def retry(self, units):
        """Forgets the failed records of `units`, so that they are run again."""
        for unit in units:
            self._record_path(unit).unlink(missing_ok=True)

    def verify(self):
        """The folder's state, checked without changing anything.

        Returns:
            dict: "done" (units whose files match their records), "damaged" ({unit: why}),
            "failed" ({unit: reason}), "pending" (planned, not done), "unrecorded" (files
            there, no record: adopted by the next run if whole), "foreign" (records made
            with other settings than the manifest's).
        """
        manifest = self.read()
        if manifest is None:
            raise RunFolderError(f"expected a run folder with {MANIFEST}, received: {self.folder}")
        ours = settings_digest(manifest["settings"], manifest.get("model_digest"))
        report = {"done": [], "damaged": {}, "failed": {}, "pending": [], "unrecorded": [], "foreign": []}
        for key, entry in sorted(manifest["units"].items(), key=lambda item: int(item[0])):
            unit = int(key)
            state = entry.get("state")
            if entry.get("settings_digest") not in (None, ours):
                report["foreign"].append(unit)
            elif state == "done":
                damage = unit_damage(self.folder, unit, entry)
                if damage is None:
                    report["done"].append(unit)
                else:
                    report["damaged"][unit] = damage
            elif state == "failed":
                report["failed"][unit] = entry.get("reason", "failed")
            elif all((self.folder / relative).is_file() for relative in unit_files(unit).values()):
                report["unrecorded"].append(unit)
            else:
                report["pending"].append(unit)
        return report


def _same_model(recorded, given):
    """Whether two model sources name the same thing: equal, or paths to the same file."""
    if recorded == given:
        return True
    if recorded is None or given is None or storage.is_url(recorded) or storage.is_url(given):
        return False
    try:
        return os.path.samefile(recorded, given)
    except OSError:
        return False


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
        count: the number of units there are (valid numbers: 0 .. count - 1); None checks
            the syntax only ("all" then gives None).
        parameter: the name used in error messages.

    Returns:
        Sorted list of distinct ints.
    """
    if not isinstance(spec, str):
        spec = ",".join(str(part) for part in spec)
    text = spec.replace(" ", "")
    if text == "all":
        return None if count is None else list(range(count))
    units = set()
    for part in filter(None, text.split(",")):
        bounds = part.split("-")
        if len(bounds) > 2 or not all(bound.isdigit() for bound in bounds):
            raise ValueError(
                f"expected numbers and ranges such as 1,5,10-19, or all; received: {parameter}={spec}")
        low, high = int(bounds[0]), int(bounds[-1])
        if low > high:
            raise ValueError(f"expected ranges low-high with low <= high, received: {parameter}={spec}")
        if count is not None and high >= count:
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
