"""A compiled CPU kernel for the crops' gradient, built on first use.

TensorFlow's CPU gradient of `CropAndResize` lets the threads of crops of one image race
(see `augmentation`), so `maco_keras` falls back to TF's kernel on one crop of each image
at a time, summed in a `tf.while_loop`: deterministic, but on one core and with a
whole-image add per crop. `kernels/crop_and_resize_grad_image.cc` does the same sums in the
same order on every core, each thread owning bands of image rows: the same bits, about
2.7x faster (32 crops of a 512px image on 2 cores: 10.7 vs 28.8 ms for one image, 30 vs
93 ms for four; `benchmarks/step_profile.py` times it in a step).

The kernel is compiled once, with the installed TensorFlow's own flags
(`tf.sysconfig`) and the C++ compiler `$CXX` (default `c++`), into
`$MACO_KERAS_CACHE` (default `~/.cache/maco-keras`), under a name keyed by the source,
TensorFlow's version, the flags and the machine, written then renamed. That takes about
10 s. Without a compiler, or with `MACO_KERAS_NATIVE=0`, the fallback runs: same
results, slower.
"""

import hashlib
import logging
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
import threading

import tensorflow as tf

SOURCE = pathlib.Path(__file__).parent / "kernels" / "crop_and_resize_grad_image.cc"
# No -march: the kernel's float arithmetic must be TF's own (no fused multiply-adds),
# which is what makes its bits those of the fallback.
CXXFLAGS = ["-shared", "-fPIC", "-O2", "-ffp-contract=off", "-Wno-deprecated-declarations"]

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_library = None  # the loaded module, False once a build or load has failed


def disabled():
    """True when `MACO_KERAS_NATIVE` is set to 0, false or off."""
    return os.environ.get("MACO_KERAS_NATIVE", "1").strip().lower() in ("0", "false", "off", "no")


def cache_dir():
    """Where the built kernel is kept: `$MACO_KERAS_CACHE`, else `$XDG_CACHE_HOME/maco-keras`."""
    if os.environ.get("MACO_KERAS_CACHE"):
        return pathlib.Path(os.environ["MACO_KERAS_CACHE"])
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "maco-keras"


def _compiler():
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler is None:
        raise FileNotFoundError(f"expected a C++ compiler, received: CXX={os.environ.get('CXX', 'c++')!r} (not found)")
    return compiler


def build():
    """Compiles the kernel unless the cache holds it already; returns the library's path.

    Raises:
        FileNotFoundError: no compiler. subprocess.CalledProcessError: it failed.
    """
    compiler = _compiler()
    flags = CXXFLAGS + tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags()
    key = hashlib.sha256("\n".join(
        [SOURCE.read_text(), tf.__version__, compiler, *flags, platform.machine(), platform.system()]).encode())
    path = cache_dir() / f"maco_kernels-{key.hexdigest()[:16]}.so"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("maco_keras: compiling its CPU crop-gradient kernel into %s (once, about 10 s)", path)
    handle, partial = tempfile.mkstemp(suffix=".so.partial", dir=path.parent)
    os.close(handle)
    try:
        subprocess.run([compiler, str(SOURCE), "-o", partial, *flags], check=True, capture_output=True, text=True)
        os.replace(partial, path)  # atomic: another process never loads a half-written library
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def _reason(error):
    """One line on why the build or load failed: the compiler's first error, if it has one."""
    if isinstance(error, subprocess.CalledProcessError):
        errors = [line for line in (error.stderr or "").splitlines() if "error:" in line]
        return f"{error.cmd[0]} failed with exit code {error.returncode}" + (f": {errors[0].strip()}" if errors else "")
    return str(error).strip().splitlines()[0]


@tf.autograph.experimental.do_not_convert  # called while tracing; plain Python, no graph ops
def library():
    """The loaded kernel library, building it on first call; None when unavailable.

    The first failure is logged once as a warning (with the compiler's first error); the
    caller then uses the fallback.
    """
    global _library
    if disabled():
        return None
    with _lock:
        if _library is None:
            try:
                _library = tf.load_op_library(str(build()))
            except (OSError, subprocess.CalledProcessError, tf.errors.OpError) as error:
                logger.warning("maco_keras: the CPU crop-gradient kernel is unavailable (%s); using the slower "
                               "fallback, with the same results", _reason(error))
                _library = False
    return _library or None


def runs_on_cpu(tensor):
    """Whether `tensor`'s ops are placed on a CPU: its device, or no GPU when it has none."""
    if tensor.device:
        return tf.DeviceSpec.from_string(tensor.device).device_type == "CPU"
    return not tf.config.list_logical_devices("GPU")


def crop_and_resize_grad_image(grads, boxes, box_index, image_shape):
    """The image gradient of bilinear `tf.image.crop_and_resize`, summed over boxes in order.

    Args:
        grads: float32 tensor (B, h, w, C), the gradient at the crops.
        boxes: float32 tensor (B, 4), the crops' boxes.
        box_index: int32 tensor (B,), the image of each box.
        image_shape: (N, H, W) of the images.

    Returns:
        float32 tensor (N, H, W, C), or None when the kernel is unavailable.
    """
    kernels = library()
    if kernels is None:
        return None
    num_images, height, width = image_shape
    return kernels.maco_crop_and_resize_grad_image(grads, boxes, box_index, num_images=num_images,
                                                   image_height=height, image_width=width)
