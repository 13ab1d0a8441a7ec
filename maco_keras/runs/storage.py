"""Where run folders live: a local path, or any file system TensorFlow reaches (`gs://`, ...).

`path(location)` gives a `pathlib.Path` for a local folder and a `GfilePath` for a URL
(`scheme://...`). `GfilePath` has the few `pathlib` methods run folders use, done with
`tf.io.gfile`, so `results` reads and writes both alike: Cloud TPU VMs write straight to
a bucket (`--out gs://bucket/run`) where TensorFlow's GCS file system is installed.

`write_atomic` writes a temporary file, then renames it. On a local or NFS folder the
rename is atomic; on an object store it is a copy then a delete, so a reader may see a
file before it is whole. Run folders stay correct anyway: a unit's record is written
after its files, and a unit counts as finished only when its record is there and its files
are whole and of the recorded sizes (see `results.RunFolder`).
"""

import contextlib
import errno
import fnmatch
import os
import pathlib
import posixpath
import socket
from types import SimpleNamespace


def is_url(location):
    """Whether `location` is a URL (`gs://...`, `ram://...`) rather than a local path."""
    return "://" in str(location)


def path(location):
    """A `pathlib.Path` for a local path, a `GfilePath` for a URL."""
    if isinstance(location, GfilePath):
        return location
    return GfilePath(str(location)) if is_url(location) else pathlib.Path(location)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def _as_os_error(function):
    """Raises TF's file errors as `OSError`s (`FileNotFoundError` for a missing file), as `pathlib` does."""
    def wrapped(*args, **kwargs):
        import tensorflow as tf

        try:
            return function(*args, **kwargs)
        except tf.errors.NotFoundError as error:
            raise FileNotFoundError(error.message) from None
        except tf.errors.OpError as error:
            raise OSError(error.message) from None

    wrapped.__name__, wrapped.__doc__ = function.__name__, function.__doc__
    return wrapped


class GfilePath:
    """A file or folder on a file system that `tf.io.gfile` reaches, with `pathlib.Path`'s methods that run
    folders use (`/`, `name`, `stem`, `suffix`, `parent`, `exists`, `is_file`, `read_*`, `write_bytes`,
    `glob`, `mkdir`, `stat`, `unlink`, `with_name`).

    Example:
        >>> folder = GfilePath("gs://bucket/run")
        >>> (folder / "manifest.json").read_text()
    """

    def __init__(self, url):
        scheme, _, rest = str(url).partition("://")
        self._scheme = scheme
        self._rest = rest.rstrip("/") if rest.strip("/") else rest

    def __str__(self):
        return f"{self._scheme}://{self._rest}"

    def __repr__(self):
        return f"GfilePath({str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, GfilePath) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __lt__(self, other):
        return str(self) < str(other)

    def __fspath__(self):
        return str(self)

    def __truediv__(self, other):
        return GfilePath(f"{self._scheme}://{posixpath.join(self._rest, str(other))}")

    @property
    def name(self):
        return posixpath.basename(self._rest)

    @property
    def suffix(self):
        return posixpath.splitext(self.name)[1]

    @property
    def stem(self):
        return posixpath.splitext(self.name)[0]

    @property
    def parent(self):
        return GfilePath(f"{self._scheme}://{posixpath.dirname(self._rest)}")

    def with_name(self, name):
        return self.parent / name

    def exists(self):
        return _gfile().exists(str(self))

    def is_file(self):
        return self.exists() and not _gfile().isdir(str(self))

    def is_dir(self):
        return _gfile().isdir(str(self))

    @_as_os_error
    def read_bytes(self):
        with _gfile().GFile(str(self), "rb") as handle:
            return handle.read()

    def read_text(self):
        return self.read_bytes().decode("utf-8")

    @_as_os_error
    def write_bytes(self, data):
        with _gfile().GFile(str(self), "wb") as handle:
            handle.write(data)

    @_as_os_error
    def mkdir(self, parents=False, exist_ok=False):
        if self.exists() and not exist_ok:
            raise FileExistsError(str(self))
        (_gfile().makedirs if parents else _gfile().mkdir)(str(self))

    @_as_os_error
    def stat(self):
        return SimpleNamespace(st_size=_gfile().stat(str(self)).length)

    @_as_os_error
    def unlink(self, missing_ok=False):
        if missing_ok and not self.exists():
            return
        _gfile().remove(str(self))

    def iterdir(self):
        if not self.is_dir():
            return iter(())
        return iter(sorted(self / entry.rstrip("/") for entry in _gfile().listdir(str(self))))

    def glob(self, pattern):
        """The entries matching `pattern` (one or more path components, `*`/`?`/`[...]` within each)."""
        found = [self]
        for part in pattern.split("/"):
            found = [entry for folder in found for entry in folder.iterdir() if fnmatch.fnmatchcase(entry.name, part)]
        return iter(sorted(found))


def _temporary(target):
    return target.with_name(f".{target.name}.{socket.gethostname()}.{os.getpid()}.tmp")


def _write_synced(temporary, data, target=None):
    """Writes `data` to the local file `temporary`, flushed to disk; removes it if the write fails
    (a full disk, a read-only folder): a failed write leaves nothing behind. The error names
    `target`, the file that could not be written."""
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError) and target is not None:
            # Name the file that could not be written, not its temporary (a full disk names none at all).
            raise OSError(error.errno, error.strerror or str(error), str(target)) from None
        raise


def write_atomic(location, data):
    """Writes `data` (bytes) to `location` whole: a temporary file in the same folder, then a rename.

    Locally the file is flushed to disk before the rename, which is atomic; see the module
    docstring for object stores. A write that fails leaves no temporary file.
    """
    target = path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(target)
    if isinstance(target, GfilePath):
        temporary.write_bytes(data)
        _gfile().rename(str(temporary), str(target), overwrite=True)
        return
    _write_synced(temporary, data, target)
    try:
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def create_exclusive(location, data):
    """Writes `data` to `location` whole, only if nothing is there yet; returns whether it did.

    Locally the whole file is written under a temporary name, then hard-linked to
    `location`: `link` fails if the target exists, so of two processes that create the same
    file at the same instant exactly one succeeds, and a reader never sees it half-written.
    Where hard links are not supported, `open(..., "x")` (O_EXCL) takes their place. On a
    `tf.io.gfile` file system there is no exclusive create: the file is written if absent
    (check, then write), and run folders check each unit's record instead (`results`).
    """
    target = path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(target, GfilePath):
        if target.exists():
            return False
        write_atomic(target, data)
        return True
    temporary = _temporary(target)
    _write_synced(temporary, data, target)
    try:
        os.link(temporary, target)
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        try:  # no hard links here: an exclusive create, then the content (a reader may see it empty meanwhile)
            with open(target, "xb") as handle:
                try:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                except BaseException:
                    os.unlink(target)  # never leave an empty or partial file that blocks the folder for good
                    raise
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    return True
