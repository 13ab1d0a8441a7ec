"""Argument checks run at the public boundary, before any expensive work.

Every check raises `TypeError` for a value of the wrong kind and `ValueError` for a value
of the right kind but out of range, naming the parameter, what was expected and what came.
"""

import numbers
import pathlib

import numpy as np

# The files `models.load` reads as saved Keras models (here, so that the command line checks them before Keras loads).
SAVED_SUFFIXES = (".keras", ".h5", ".hdf5")


def names_model_file(spec):
    """Whether a model spec names a saved model file (by its suffix, or because the path exists) rather than a
    `keras.applications` name or a keras_hub preset."""
    path = pathlib.Path(str(spec))
    return path.suffix.lower() in SAVED_SUFFIXES or path.exists()


def positive_int(name, value):
    """Returns `value` as an int, or raises if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"`{name}` must be a positive integer, got {value!r} ({type(value).__name__}).")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value}.")
    return int(value)


def non_negative_float(name, value):
    """Returns `value` as a float, or raises if it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a non-negative number, got {value!r} ({type(value).__name__}).")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value}.")
    return float(value)


def positive_float(name, value):
    """Returns `value` as a float, or raises if it is not a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a positive number, got {value!r} ({type(value).__name__}).")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value}.")
    return float(value)


def image_size(name, value):
    """Returns `(height, width)` from an int or a pair of positive ints."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        size = positive_int(name, value)
        return size, size
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return positive_int(f"{name}[0]", value[0]), positive_int(f"{name}[1]", value[1])
    raise TypeError(f"`{name}` must be a positive int or a (height, width) pair, got {value!r}.")


def values_range(value, name="values_range"):
    """Returns `(low, high)` as floats, or raises unless low < high are finite numbers."""
    if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 2:
        raise TypeError(f"`{name}` must be a (low, high) pair of numbers, got {value!r}.")
    low, high = value
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, (numbers.Real, np.floating, np.integer)):
            raise TypeError(f"`{name}` must be a (low, high) pair of numbers, got {value!r}.")
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"`{name}` must be finite, got {value!r}.")
    if low >= high:
        raise ValueError(
            f"`{name}` must satisfy low < high (an empty or inverted range has no images), got {value!r}."
        )
    return low, high


def seed(value, name="seed"):
    """Returns an int seed; `None` draws one at random."""
    if value is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"`{name}` must be an int or None, got {value!r} ({type(value).__name__}).")
    if not 0 <= value < 2**31:
        raise ValueError(f"`{name}` must be in [0, 2**31), got {value}.")
    return int(value)


def boolean(name, value):
    """`value` if it is a bool (NumPy's too), else a TypeError naming `name`."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"expected True or False, received: {name}={value!r}")
    return bool(value)


def flag(name, value):
    """`boolean`, the ints 0 and 1 accepted too: a switch such as `verbose`, which Keras's own `verbose=0` and
    earlier versions of maco-keras spell with them."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value in (0, 1):
        return bool(value)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"expected True or False (or 0 or 1), received: {name}={value!r}")
    return bool(value)
