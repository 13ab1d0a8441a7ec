import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402
import sys  # noqa: E402

import keras  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def skip_unless_ci(reason):
    """Skips a test whose requirement is missing here; under CI (`CI=true`, set by `.ci/run`) it fails instead,
    since CI installs everything README's set-up does and has ../shared."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI must have this: {reason}")
    pytest.skip(reason)


def shared_dir():
    """../shared beside the checkout, or $MACO_SHARED."""
    return pathlib.Path(os.environ.get("MACO_SHARED", REPO.parent / "shared"))


@pytest.fixture
def shared():
    path = shared_dir()
    if not (path / "models").is_dir() or not (path / "imagenet-samples").is_dir():
        skip_unless_ci(f"shared data not found at {path} (set MACO_SHARED): real-model tests need it")
    return path


def build_tiny_model(channels=3, size=32, seed=0):
    """A few conv layers on 32x32 inputs: fast enough for unit tests, deep enough to have layers."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((size, size, channels)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv2"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(10, name="logits"),
    ])


@pytest.fixture(scope="session")
def tiny_model():
    return build_tiny_model()


@pytest.fixture(scope="session")
def tiny_gray_model():
    return build_tiny_model(channels=1)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_model):
    """The tiny model saved as a .keras file: what the command line tests load."""
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_model.save(path)
    return path


def command(*args):
    """`python -m maco_keras ARGS`, for a subprocess."""
    return [sys.executable, "-m", "maco_keras", *map(str, args)]


def environment(**extra):
    """The environment of a `command` subprocess: this checkout importable, TensorFlow's logs off."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), **extra}
