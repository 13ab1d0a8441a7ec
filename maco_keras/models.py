"""Which model to visualize: a saved Keras file, a `keras.applications` architecture or a keras_hub preset.

A `keras.applications` model is built with its own input preprocessing in front
(`<module>.preprocess_input`), so that every architecture takes RGB images in
[0, 255] (`values_range=(0, 255)`) whatever its own convention (caffe, torch or tf
style), and with its classifier's softmax removed: feature visualization maximizes logits.
A keras_hub image classifier preset (`vit_base_patch16_224_imagenet`, or `hub:<preset>`;
the optional `maco-keras[hub]` extra) gets its own image converter in front the same way
(`with_image_converter`), so it too takes RGB in [0, 255].
"""

import contextlib
import dataclasses
import difflib
import hashlib
import json
import pathlib
import sys
from typing import Tuple

import keras
import numpy as np

from . import validation

SAVED_SUFFIXES = validation.SAVED_SUFFIXES


@dataclasses.dataclass
class LoadedModel:
    """A model and what is known of its input.

    Attributes:
        model: the `keras.Model`.
        values_range: its input range, or None when the file does not say (saved models).
        source: how it was named (path or application name).
    """

    model: keras.Model
    values_range: Tuple[float, float] = None
    source: str = ""


def application_names():
    """The model constructors of `keras.applications` (e.g. "MobileNetV2", "ResNet50")."""
    return sorted(name for name in dir(keras.applications)
                  if name[:1].isupper() and callable(getattr(keras.applications, name)))


def _build_application(name, weights, input_size=None):
    constructor = getattr(keras.applications, name)
    preprocess = getattr(sys.modules[constructor.__module__], "preprocess_input", None)
    kwargs = {"weights": weights}
    shape = (input_size, input_size, 3) if input_size else (224, 224, 3)
    inputs = keras.Input(shape)
    # The preprocessing becomes the model's first operations: inputs are RGB in [0, 255].
    tensor = preprocess(inputs) if preprocess is not None else inputs
    try:
        return constructor(input_tensor=tensor, classifier_activation=None, **kwargs)
    except TypeError:  # an architecture without a classifier_activation argument
        return constructor(input_tensor=tensor, **kwargs)


HUB_PREFIX = "hub:"


def hub_presets():
    """The keras_hub image classifier presets (names only: nothing is downloaded), or () without keras_hub."""
    try:
        import keras_hub
    except ImportError:
        return ()
    return tuple(sorted(keras_hub.models.ImageClassifier.presets))


def with_image_converter(classifier, converter, name=None):
    """`classifier` with keras_hub's `converter` (resize, scale, offset) in front: it takes RGB in [0, 255].

    Args:
        classifier: a keras_hub `ImageClassifier` (or any Keras model of the converter's output).
        converter: a keras_hub `ImageConverter`, e.g. `classifier.preprocessor.image_converter`.
        name: the wrapper's name (default: the classifier's).

    Returns:
        A functional `keras.Model` whose input has the converter's `image_size`; the
        classifier is its one nested layer, so its layers are reached by path
        (`<classifier name>/...`) or by their bare names.
    """
    height, width = converter.image_size
    inputs = keras.Input((height, width, 3), name="images_0_255")
    return keras.Model(inputs, classifier(converter(inputs)), name=name or classifier.name)


def _load_hub_preset(preset):
    try:
        import keras_hub
    except ImportError:
        raise ValueError(f"expected keras_hub for a preset (pip install 'maco-keras[hub]'), received: MODEL={preset}")
    try:
        classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"cannot load the keras_hub preset {preset}: {first_line[:200]}") from None
    converter = getattr(classifier.preprocessor, "image_converter", None)
    if converter is None or converter.image_size is None:
        raise ValueError(f"expected a keras_hub preset with an image converter of fixed size, received: MODEL={preset}")
    return with_image_converter(classifier, converter)


def load(spec, weights="imagenet", input_size=None):
    """Loads a model from a `.keras`/`.h5` path, a `keras.applications` name or a keras_hub preset.

    Args:
        spec: path of a saved Keras model, a name from `application_names()`, or a keras_hub
            image classifier preset (`hub_presets()`, optionally prefixed `hub:`), which
            keras_hub downloads on first use.
        weights: for an application: "imagenet" (as Keras fetches them) or None (random, drawn with seed 0:
            the same in every process).
        input_size: for an application: its input side (default 224).

    Returns:
        A `LoadedModel`.

    Raises:
        ValueError: the file is missing or unreadable, or the name is not an application.
    """
    spec = str(spec)
    path = pathlib.Path(spec)
    if validation.names_model_file(spec):
        if not path.is_file():
            raise ValueError(f"expected a saved Keras model file, received: MODEL={spec} (no such file)")
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as error:  # Keras raises many kinds for a bad file
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ValueError(f"cannot read the model in {spec}: {first_line[:200]}") from None
        if not isinstance(model, keras.Model):
            raise ValueError(f"expected a keras.Model in {spec}, received: {type(model).__name__}")
        return LoadedModel(model, None, spec)
    presets = hub_presets()
    if spec.startswith(HUB_PREFIX) or spec in presets:
        preset = spec.removeprefix(HUB_PREFIX)
        return LoadedModel(_load_hub_preset(preset), (0.0, 255.0), spec)
    names = application_names()
    if spec not in names:
        close = difflib.get_close_matches(spec, names + list(presets), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"expected a .keras/.h5 file, a keras.applications name (e.g. MobileNetV2) or a keras_hub preset, "
            f"received: MODEL={spec}{hint}")
    if weights is None:
        # Random weights, the same in every process (shards, resumes and the atlas load the same model).
        keras.utils.set_random_seed(0)
    try:
        model = _build_application(spec, weights, input_size)
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"cannot build {spec} with weights={weights}: {first_line[:200]}") from None
    return LoadedModel(model, (0.0, 255.0), spec)


def _without_names(value):
    """A layer's config with its names left out: Keras numbers the names it makes (`normalization_1`) per process."""
    if isinstance(value, dict):
        return {key: _without_names(item) for key, item in value.items() if key != "name"}
    if isinstance(value, (list, tuple)):
        return [_without_names(item) for item in value]
    return value


def digest(model):
    """A digest of a model's structure and weights: each layer's class and config (names left out), and each
    variable's shape, dtype and values in order.

    Run folders record it, so that the same model resumes however its path is spelled, and a
    file with other weights, or another structure, at the same path is refused.
    """
    found = hashlib.sha256()
    for layer in model._flatten_layers(include_self=False, recursive=True):  # nested models' and sublayers too
        try:
            config = _without_names(layer.get_config())
        except Exception:  # a subclassed layer without get_config: its class stands for it
            config = None
        found.update(f"{type(layer).__module__}.{type(layer).__qualname__}|".encode())
        found.update(json.dumps(config, sort_keys=True, default=lambda value: type(value).__name__).encode())
    for variable in model.weights:
        values = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
        found.update(f"{values.shape}|{values.dtype.str}|".encode())
        found.update(values.tobytes())
    return found.hexdigest()


_REDIRECT = []


def __getattr__(name):
    # `REDIRECT`: whether redirected ReLUs (see `with_redirected_relu`) pass gradients through dead units. The
    # TensorFlow loop sets it at every step: on for the first `relu_redirect_steps`. Made on first use, so that
    # loading a model imports no TensorFlow on the other backends.
    if name == "REDIRECT":
        if not _REDIRECT:
            import tensorflow as tf

            _REDIRECT.append(tf.Variable(False, trainable=False, name="maco_keras_relu_redirect"))
        return _REDIRECT[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _redirected_relu(x, max_value=None):
    """ReLU (or ReLU6) whose gradient, while `REDIRECT` is on, also flows through inactive units.

    Lucid's "redirected ReLU": where no gradient gets through an example's ReLU (all its
    units inactive), the gradient passes anyway, except where it would push an already
    negative input lower. The forward pass is the plain ReLU.
    """

    import tensorflow as tf

    redirect = __getattr__("REDIRECT")

    @tf.custom_gradient
    def relu(x):
        y = tf.nn.relu(x) if max_value is None else tf.clip_by_value(x, 0.0, max_value)

        def gradient(upstream):
            inactive = x < 0.0 if max_value is None else (x < 0.0) | (x > max_value)
            plain = tf.where(inactive, tf.zeros_like(upstream), upstream)
            # Ascent: a negative upstream gradient would push a negative input lower still.
            redirected = tf.where((x < 0.0) & (upstream < 0.0), tf.zeros_like(upstream), upstream)
            flat = tf.reshape(plain, (tf.shape(plain)[0], -1))
            nothing_through = tf.reshape(tf.reduce_all(tf.equal(flat, 0.0), axis=1),
                                         [-1] + [1] * (plain.shape.rank - 1))
            return tf.where(redirect & nothing_through, redirected, plain)

        return y, gradient

    return relu(x)


@keras.saving.register_keras_serializable(package="maco_keras")
def redirected_relu(x):
    """`keras.activations.relu` with the redirected gradient (see `_redirected_relu`)."""
    return _redirected_relu(x)


@keras.saving.register_keras_serializable(package="maco_keras")
class RedirectedReLU(keras.layers.ReLU):
    """`keras.layers.ReLU` (ReLU6 too) with the redirected gradient (see `_redirected_relu`)."""

    def call(self, inputs):
        if self.negative_slope or self.threshold:
            return super().call(inputs)  # leaky or thresholded: never dead, nothing to redirect
        return _redirected_relu(inputs, self.max_value)


def redirected_relu_any_backend(x, max_value=None):
    """`_redirected_relu`'s rule, always on, in `keras.ops` (`keras.ops.custom_gradient`): on every backend.

    The forward pass is the plain ReLU (ReLU6 with `max_value`). Its gradient: plain ReLU's,
    except for an example (the first axis) through which plain ReLU lets no gradient at
    all; there the gradient passes, except where it would push a negative input lower.
    """
    from keras import ops

    @ops.custom_gradient
    def relu(x):
        y = ops.relu(x) if max_value is None else ops.clip(x, 0.0, max_value)

        def gradient(*args, upstream=None):
            if upstream is None:  # TensorFlow and JAX pass it positionally, PyTorch by name
                (upstream,) = args
            zeros = ops.zeros_like(upstream)
            negative = ops.less(x, 0.0)
            inactive = negative if max_value is None else ops.logical_or(negative, ops.greater(x, max_value))
            plain = ops.where(inactive, zeros, upstream)
            # Ascent: a negative upstream gradient would push a negative input lower still.
            redirected = ops.where(ops.logical_and(negative, ops.less(upstream, 0.0)), zeros, upstream)
            nothing_through = ops.all(ops.equal(ops.reshape(plain, (ops.shape(plain)[0], -1)), 0.0), axis=1)
            nothing_through = ops.reshape(nothing_through, (-1,) + (1,) * (len(plain.shape) - 1))
            return ops.where(nothing_through, redirected, plain)

        return y, gradient

    return relu(x)


@contextlib.contextmanager
def redirecting_relus(model, redirect=True):
    """Within the block, `model`'s ReLUs (`ReLU` layers, `ReLU(max_value=6)` too, and an
    instance's `activation="relu"`, nested models' too) have the redirected gradient
    (`redirected_relu_any_backend`); restored after.

    What the backend-neutral core runs for `relu_redirect_steps` on every backend: a step
    traced (or, on PyTorch, run) inside the block redirects, one outside does not. The
    layers' `call` or `activation` is swapped on the instance, as `taps.recording` swaps a
    tapped layer's `call` (nested inside this block, it wraps the swapped call). With
    `redirect` false the block changes nothing (a step outside the redirected ones).
    """
    swapped = []  # (layer, attribute, the instance's own value or None)
    try:
        for layer in model._flatten_layers(include_self=False, recursive=True) if redirect else ():
            if type(layer) is keras.layers.ReLU:
                if layer.negative_slope or layer.threshold:
                    continue  # leaky or thresholded: never dead, nothing to redirect
                swapped.append((layer, "call", layer.__dict__.get("call")))
                object.__setattr__(layer, "call", lambda inputs, max_value=layer.max_value:
                                   redirected_relu_any_backend(inputs, max_value))
            elif layer.__dict__.get("activation") is keras.activations.relu:
                # (An RNN layer's `activation` is a read-only property: its cell, reached too, holds the function.)
                swapped.append((layer, "activation", layer.__dict__.get("activation")))
                object.__setattr__(layer, "activation", redirected_relu_any_backend)
        yield
    finally:
        for layer, attribute, own in reversed(swapped):
            if own is None:
                layer.__dict__.pop(attribute, None)
            else:
                object.__setattr__(layer, attribute, own)


def with_redirected_relu(model):
    """A copy of `model`, same weights, whose ReLUs pass gradients through dead units on demand.

    ReLU and ReLU6 layers and `activation="relu"` are replaced; the forward pass is
    unchanged. The redirect is on while `REDIRECT` is (the loop's `relu_redirect_steps`).
    """
    def clone(layer):
        config = layer.get_config()
        if type(layer) is keras.layers.ReLU:
            return RedirectedReLU.from_config(config)
        if getattr(layer, "activation", None) is keras.activations.relu:
            config["activation"] = redirected_relu
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy

