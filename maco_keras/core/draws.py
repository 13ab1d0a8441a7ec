"""One counter-based generator for every backend: the same random draws from TF, JAX and PyTorch.

Each backend's own generator (TF's Philox, JAX's threefry, torch's) gives other numbers
for the same seed, so a picture could only be reproduced on the backend that drew it.
Here a draw is a pure function of (seed, unit key, step, stream, element index), hashed
with Wellons' `lowbias32` integer mixer in int32 `keras.ops` arithmetic (every backend
wraps int32 products and sums the same way; logical right shifts are an arithmetic shift
and a mask, since backends differ in unsigned support). Uniforms take the top 24 bits,
so they are exact float32 values: equal to the bit on every backend and device. Normals
go through `log` and `cos` and agree to float tolerance.

A unit is keyed by `unit_key(name)`, a stable 31-bit hash of its objective's name (nested
models' paths left out), never by the batch it is in: the same (unit, settings, seed)
draws the same crops and noise alone, in any batch, shard or backend. `numpy_bits` is the
same generator in NumPy, the reference the backends are tested against.
"""

import hashlib
import math

import numpy as np
from keras import ops

# lowbias32's multipliers (Wellons, "Prospecting for hash functions"), as int32 bit patterns.
_M1 = 0x7FEB352D
_M2 = 0x846CA68B - (1 << 32)
_GOLDEN = 0x9E3779B9 - (1 << 32)

# What run folders record as `draws` for this generator, on every backend (format 3; earlier TensorFlow
# folders record "per unit" or nothing: TensorFlow's Philox).
DRAWS = "counter"

# Streams: what a draw is for, so that two uses of one (seed, unit, step) never share numbers.
# The first four are every backend's (the core's); the others serve TensorFlow's engine's other
# augmentations (Lucid's jitters, Xplique's centred crops, flips, noise per crop, Gaussian noise)
# and the baselines' initial weights.
PHASE, SIDES, CORNERS, NOISE, NORMAL_PAIR = 1, 2, 3, 4, 5
FLIP, RESCALE, SHIFTS, POST_SHIFTS, CENTERS, GAUSSIAN_NOISE, CROP_NOISE, CROP_GAUSSIAN_NOISE, WEIGHTS = range(6, 15)
INITIAL_STEP = -1  # the initial phase's step, apart from the optimization's steps 0, 1, ...


def unit_identity(name):
    """What keys a unit's draws: its objective's name without the nested models its layer is in.

    "Channel#base/conv1_3" is "Channel#conv1_3", so a model used as a transfer-learning
    base draws the pictures it draws alone.
    """
    parts = []
    for part in str(name).split(" & "):
        kind, separator, rest = part.rpartition("#")
        parts.append(kind + separator + rest.rsplit("/", 1)[-1])
    return " & ".join(parts)


def unit_key(name):
    """A stable 31-bit key of a unit (`unit_identity` of its objective's name): the same in every process,
    version and backend, unlike Python's `hash`."""
    digest = hashlib.sha256(unit_identity(name).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def unit_keys(names):
    """int32 array (N,): `unit_key` of each name."""
    return np.array([unit_key(name) for name in names], np.int32)


def _i32(value):
    return ops.convert_to_tensor(np.int32(value), "int32")


def _shift(x, bits):
    """Logical right shift of int32 bit patterns: an arithmetic shift, then the sign's copies masked off."""
    return ops.bitwise_and(ops.right_shift(x, bits), _i32((1 << (32 - bits)) - 1))


def mix(x):
    """lowbias32: a bijection of 32-bit patterns whose every output bit depends on every input bit."""
    x = ops.bitwise_xor(x, _shift(x, 16))
    x = ops.multiply(x, _i32(_M1))
    x = ops.bitwise_xor(x, _shift(x, 15))
    x = ops.multiply(x, _i32(_M2))
    return ops.bitwise_xor(x, _shift(x, 16))


def stream_key(seed, key, step, stream):
    """int32 scalar: the key of one stream of one unit's draws at one step.

    Args:
        seed, key, step: int32 scalars (Python ints or tensors; `step` may be traced).
        stream: a Python int (`PHASE`, `SIDES`, ...).
    """
    h = mix(ops.add(ops.multiply(ops.cast(seed, "int32"), _i32(_GOLDEN)), _i32(stream)))
    h = mix(ops.bitwise_xor(h, ops.cast(key, "int32")))
    return mix(ops.bitwise_xor(h, ops.add(ops.cast(step, "int32"), _i32(_GOLDEN))))


def substream(h, index):
    """int32: the key of draw `index` (a crop's number, ...) within stream key `h` (elementwise on tensors)."""
    return mix(ops.bitwise_xor(h, mix(ops.add(ops.cast(index, "int32"), _i32(_GOLDEN)))))


def bits(h, shape):
    """int32 tensor of `shape`: element i's 32 random bits from stream key `h`."""
    size = int(np.prod(shape))
    counter = ops.arange(size, dtype="int32")
    return ops.reshape(mix(ops.add(mix(ops.bitwise_xor(counter, h)), h)), shape)


def uniform(h, shape):
    """float32 in [0, 1), multiples of 2**-24: exact, the same bits on every backend."""
    return ops.multiply(ops.cast(_shift(bits(h, shape), 8), "float32"), np.float32(2.0 ** -24))


def normal(h, shape):
    """Standard normals by Box-Muller from two uniforms (equal across backends to float tolerance)."""
    first = ops.add(uniform(h, shape), np.float32(2.0 ** -25))  # in (0, 1): log is finite
    second = uniform(mix(ops.bitwise_xor(h, _i32(NORMAL_PAIR))), shape)
    radius = ops.sqrt(ops.multiply(np.float32(-2.0), ops.log(first)))
    return ops.multiply(radius, ops.cos(ops.multiply(np.float32(2.0 * math.pi), second)))


# --- The same generator in NumPy: the reference every backend is tested against. -------------------------------

def _np_mix(x):
    x = np.asarray(x, np.uint32)
    x ^= x >> np.uint32(16)
    x = (x * np.uint32(_M1 & 0xFFFFFFFF)).astype(np.uint32)
    x ^= x >> np.uint32(15)
    x = (x * np.uint32(_M2 & 0xFFFFFFFF)).astype(np.uint32)
    x ^= x >> np.uint32(16)
    return x


def numpy_stream_key(seed, key, step, stream):
    with np.errstate(over="ignore"):
        h = _np_mix(np.uint32((seed * (_GOLDEN & 0xFFFFFFFF) + stream) & 0xFFFFFFFF))
        h = _np_mix(h ^ np.uint32(key & 0xFFFFFFFF))
        return _np_mix(h ^ np.uint32((step + (_GOLDEN & 0xFFFFFFFF)) & 0xFFFFFFFF))


def numpy_bits(h, shape):
    """`bits` in NumPy (as uint32)."""
    with np.errstate(over="ignore"):
        counter = np.arange(int(np.prod(shape)), dtype=np.uint32)
        return (_np_mix(_np_mix(counter ^ h) + h)).reshape(shape)


def numpy_uniform(h, shape):
    """`uniform` in NumPy."""
    return (numpy_bits(h, shape) >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
