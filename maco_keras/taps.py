"""Any layer of a model, by path, and its output captured during the model's own forward pass.

Keras users' models are rarely flat: a fine-tuned `Sequential([base, pooling, head])`
keeps its base's layers inside the base, and a vision transformer keeps its blocks
inside a subclassed encoder layer, which no functional graph exposes. Both are reached
here the same way:

- a layer is named by its *path* from the model, `/`-separated
  (`mobilenetv2_1.00_160/block_13_expand_relu`, `vit_encoder/transformer_block_2`), or
  by the path's last components, or by a bare name, when they name exactly one layer;
- its output is *captured*: while the model runs its own forward pass, the layer's
  `call` records what it returns. Inside a `tf.function` the ops after the captured
  layers feed no output and are pruned, so capturing a layer costs what a model cut at
  that layer costs, and it computes the same values, bit for bit.

`Tap` (one layer reached by path) is what objectives hold in place of a layer's
symbolic output; `FeatureCapture` is the callable `images -> [outputs]` the
optimization loop calls.
"""

import contextlib
import dataclasses
import difflib
import fnmatch
import threading
import weakref
from typing import Optional, Tuple

import keras

SEPARATOR = "/"


def _children(layer):
    """A layer's direct sublayers: a model's layers, or a subclassed layer's tracked ones."""
    if isinstance(layer, keras.Model) and hasattr(layer, "layers"):
        children = list(layer.layers)
        # A subclassed model (e.g. a task wrapping a backbone) may track layers its `layers` omits.
        known = {id(child) for child in children}
        return children + [child for child in layer._flatten_layers(include_self=False, recursive=False)
                           if id(child) not in known]
    return list(layer._flatten_layers(include_self=False, recursive=False))


def layer_paths(model):
    """Every layer under `model` as (path, layer), depth first, in the order the model lists them.

    A layer reached twice (shared between two sublayers) is listed under each path.
    """
    found = []

    def walk(layer, prefix, chain):
        for child in _children(layer):
            if id(child) in chain or isinstance(child, keras.layers.InputLayer):
                continue
            path = prefix + (child.name,)
            found.append((SEPARATOR.join(path), child))
            walk(child, path, chain | {id(child)})

    walk(model, (), {id(model)})
    return found


def find(model, spec, parameter="layer"):
    """The layer that `spec` names in `model`: a path, the last components of one, a bare name, or an index.

    An int indexes `model.layers`, as Xplique's `find_layer` does. A string is matched
    against every layer's path (`layer_paths`): a whole path wins, else the paths that
    end with the given components must be exactly one.

    Returns:
        (path, layer).

    Raises:
        ValueError: naming `parameter`, the matching paths when several match, the
        closest paths when none does.
    """
    if isinstance(spec, int) and not isinstance(spec, bool):
        try:
            layer = model.layers[spec]
        except IndexError:
            raise ValueError(f"expected a layer index in [-{len(model.layers)}, {len(model.layers)}), "
                             f"received: {parameter}={spec}") from None
        return layer.name, layer
    if not isinstance(spec, str) or not spec.strip(SEPARATOR):
        raise ValueError(f"expected a layer name, path or index, received: {parameter}={spec!r}")
    wanted = tuple(spec.strip(SEPARATOR).split(SEPARATOR))
    paths = layer_paths(model)
    exact = [(path, layer) for path, layer in paths if tuple(path.split(SEPARATOR)) == wanted]
    if exact:
        return exact[0]
    matches = [(path, layer) for path, layer in paths if tuple(path.split(SEPARATOR))[-len(wanted):] == wanted]
    if len({id(layer) for _, layer in matches}) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(path for path, _ in matches[:8]) + (", ..." if len(matches) > 8 else "")
        raise ValueError(f"expected a layer name that names one layer, received: {parameter}={spec}, "
                         f"which names {len(matches)}: {listed} (give the path)")
    candidates = list(dict.fromkeys([path for path, _ in paths] + [path.split(SEPARATOR)[-1] for path, _ in paths]))
    close = difflib.get_close_matches(spec, candidates, n=3, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else f"; layers are e.g. {', '.join(p for p, _ in paths[-3:])}"
    raise ValueError(f"expected a layer of the model, received: {parameter}={spec}{hint}")


def matching(model, pattern, parameter="layer"):
    """The paths that a pattern names: `/`-separated components, each a shell pattern (`fnmatch`),
    matched against the last components of every path (`encoder/transformer_block_*`: every block,
    not their sublayers). Raises a ValueError naming `parameter` when none matches."""
    wanted = tuple(pattern.strip(SEPARATOR).split(SEPARATOR))
    found = [path for path, _ in layer_paths(model)
             if len(path.split(SEPARATOR)) >= len(wanted)
             and all(fnmatch.fnmatchcase(part, want) for part, want in zip(path.split(SEPARATOR)[-len(wanted):], wanted))]
    if not found:
        raise ValueError(f"expected a pattern that matches layers of the model, received: {parameter}={pattern}")
    return found


# Recording: a layer's `call` is wrapped for the duration of a forward pass. What it records
# goes to the calling thread's list, so replicas that trace in parallel threads
# (MirroredStrategy) each get their own outputs.
_LOCAL = threading.local()
_LOCK = threading.Lock()
_INSTALLED = {}  # id(layer) -> [layer, the instance's own `call` or None, users]


def _install(layer):
    with _LOCK:
        entry = _INSTALLED.get(id(layer))
        if entry is not None:
            entry[2] += 1
            return
        own = layer.__dict__.get("call")
        original = layer.call

        def call(*args, **kwargs):
            outputs = original(*args, **kwargs)
            records = getattr(_LOCAL, "records", None)
            if records is not None and id(layer) in records:
                records[id(layer)].append(outputs)
            return outputs

        _INSTALLED[id(layer)] = [layer, own, 1]
        object.__setattr__(layer, "call", call)


def _uninstall(layer):
    with _LOCK:
        entry = _INSTALLED[id(layer)]
        entry[2] -= 1
        if entry[2]:
            return
        del _INSTALLED[id(layer)]
        if entry[1] is None:
            layer.__dict__.pop("call", None)
        else:
            object.__setattr__(layer, "call", entry[1])


@contextlib.contextmanager
def recording(layers):
    """Within the block, each of `layers` appends its outputs to the yielded {id(layer): [outputs]}."""
    unique = list({id(layer): layer for layer in layers}.values())
    outer = getattr(_LOCAL, "records", None)
    records = {id(layer): [] for layer in unique}
    for layer in unique:
        _install(layer)
    _LOCAL.records = records
    try:
        yield records
    finally:
        _LOCAL.records = outer
        for layer in unique:
            _uninstall(layer)


@dataclasses.dataclass(frozen=True, eq=False)
class Tap:
    """One layer of a model, reached by its path, whose output an objective uses.

    Stands where an Xplique `Objective` holds a layer's symbolic output, so objectives
    on layers inside nested models and subclassed layers compose like any other.

    Attributes:
        model_ref: a weak reference to the model the path starts from (the one that is
            run; weak, so that caches keyed by the model let it go).
        path: the layer's path in it (`OUTPUT` for the model's output).
        layer: the layer (None for the model's output).
        shape: the layer's output shape without the batch axis.
        name: what objectives' names call it: the path, or for the model's output the
            layer that computes it (e.g. "predictions"), as Xplique's names have it.
        output_index: for a layer that returns several tensors, the one used (`path:K`).
    """

    model_ref: weakref.ref
    path: str
    layer: keras.layers.Layer
    shape: Tuple[int, ...]
    name: str
    output_index: Optional[int] = None

    @property
    def model(self):
        return self.model_ref()

    @property
    def rank(self):
        """The output's rank with its batch axis, as a layer's `output.shape` has it."""
        return len(self.shape) + 1


def input_shape(model):
    """The model's input shape with its batch axis: a functional model's `input_shape`, or the shape
    a subclassed model was built with (`model.build(shape)`); None when neither is known."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):  # a subclassed model has no symbolic input
        shapes = list((getattr(model, "_build_shapes_dict", None) or {}).values())
        shape = shapes[0] if len(shapes) == 1 else None
    if isinstance(shape, list):
        shape = shape[0]
    return None if shape is None else tuple(shape)


def image_input_shape(model, name="objective"):
    """(height, width, channels) of the model's one image input, or a ValueError saying how to give it one."""
    shape = input_shape(model)
    if shape is None or len(shape) != 4 or any(dim is None for dim in shape[1:]):
        raise ValueError(
            f"`{name}`'s model must have a known input shape (batch, height, width, channels), got {shape}. "
            "Build it with a fixed `keras.Input(shape=(h, w, c))`, or `model.build((None, h, w, c))`."
        )
    return tuple(int(dim) for dim in shape[1:])


_TAPS = weakref.WeakKeyDictionary()  # model -> {path: Tap}


# The path of the model's own output (its logits, for a classifier): `tap(model, OUTPUT)`.
OUTPUT = "output"


def tap(model, spec, parameter="layer"):
    """The `Tap` of the layer `spec` names (see `find`), its output shape found by a trace (no computation).

    `spec=None` (or `OUTPUT`, unless a layer is called so) is the model's own output,
    whatever computes it (a task model may end in an op rather than a layer).

    Raises:
        ValueError: the layer is not found, is not called by the model's forward pass, or
        is called more than once in it (a shared layer: its output is not one tensor).
    """
    index = None
    if isinstance(spec, str) and ":" in spec:
        # `path:K`: the K-th output of a layer that returns several (a block that also returns attention scores).
        spec, _, text = spec.rpartition(":")
        if not text.isdigit():
            raise ValueError(f"expected a layer path with an output index such as block:0, "
                             f"received: {parameter}={spec}:{text}")
        index = int(text)
    is_output = spec is None or (spec == OUTPUT and not any(path == OUTPUT for path, _ in layer_paths(model)))
    path, layer = (OUTPUT, None) if is_output else find(model, spec, parameter)
    if index is not None:
        path = f"{path}:{index}"
    cached = _TAPS.setdefault(model, {})
    if path not in cached:
        shape = input_shape(model)
        if shape is None or len(shape) < 2 or any(dim is None for dim in shape[1:]):
            raise ValueError(f"expected a model with a known input shape, received: {parameter}={spec} "
                             f"in a model whose input shape is {shape}")
        outputs = []

        def forward(images):
            outputs.clear()  # a trace may run twice (a subclassed model's first call): keep the last
            with recording([] if layer is None else [layer]) as records:
                result = model(images, training=False)
            outputs.extend([result] if layer is None else records[id(layer)])
            return keras.ops.zeros(())

        dtype = getattr(model.inputs[0], "dtype", "float32") if getattr(model, "inputs", None) else "float32"
        trace_shapes(forward, (1,) + tuple(shape[1:]), dtype)
        _check_calls(path, outputs, parameter)
        output = outputs[0]
        if index is not None and not isinstance(output, (tuple, list)):
            raise ValueError(f"expected a layer that returns several tensors with an output index, received: "
                             f"{parameter}={path}, which returns one (name it without :{index})")
        if index is not None:
            if index >= len(output):
                raise ValueError(f"expected an output index below {len(output)}, received: {parameter}={path}")
            output = output[index]
        if isinstance(output, (tuple, list)) and output and keras.ops.is_tensor(output[0]):
            raise ValueError(f"expected a layer with one output tensor, received: {parameter}={path}, which returns "
                             f"{len(output)}: name one as {path}:0 to {path}:{len(output) - 1}")
        if not keras.ops.is_tensor(output):
            raise ValueError(f"expected a layer with one output tensor, received: {parameter}={path}, "
                             f"which returns {type(output).__name__}")
        name = path
        if layer is None:
            symbolic = getattr(model, "outputs", None) or []  # a subclassed model has no symbolic outputs
            producer = getattr(symbolic[0], "_keras_history", None) if symbolic else None
            name = producer.operation.name if producer is not None else path
        cached[path] = Tap(weakref.ref(model), path, layer, tuple(output.shape[1:]), name, index)
    return cached[path]


def output_shapes(model, paths):
    """{path: output shape without the batch axis, or why it has none} for layers of `model`, from one trace.

    What `maco-keras layers` lists: one trace for every layer, where `tap` traces one each.
    """
    shape = input_shape(model)
    if shape is None or len(shape) < 2 or any(dim is None for dim in shape[1:]):
        raise ValueError(f"expected a model with a known input shape, received: input shape {shape}")
    found = {path: find(model, path)[1] for path in paths}
    shapes = {}

    def forward(images):
        with recording(list(found.values())) as records:
            model(images, training=False)
        for path, layer in found.items():
            outputs = records[id(layer)]
            if len(outputs) != 1:
                shapes[path] = "not called" if not outputs else f"called {len(outputs)} times"
            elif keras.ops.is_tensor(outputs[0]):
                shapes[path] = tuple(outputs[0].shape[1:])
            else:
                shapes[path] = f"several outputs (name one as {path}:0)"
        return keras.ops.zeros(())

    dtype = getattr(model.inputs[0], "dtype", "float32") if getattr(model, "inputs", None) else "float32"
    trace_shapes(forward, (1,) + tuple(shape[1:]), dtype)
    return shapes


def trace_shapes(forward, shape, dtype):
    """Runs `forward` on a batch of `shape` only as far as the output shapes need.

    On TensorFlow a trace (`tf.function`'s concrete function: no computation); on JAX and
    PyTorch one eager call on zeros (a batch of one).
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.function(forward).get_concrete_function(tf.TensorSpec(shape, dtype))
    else:
        forward(keras.ops.zeros(shape, dtype))


def _check_calls(path, outputs, parameter="layer"):
    if len(outputs) != 1:
        what = "is not called" if not outputs else f"is called {len(outputs)} times"
        raise ValueError(f"expected a layer the model calls once per forward pass, received: {parameter}={path}, "
                         f"which {what}")


def tap_of_output(model, output):
    """The `Tap` of a symbolic layer output of `model` (what Xplique's objectives hold)."""
    return tap(model, output._keras_history.operation.name)


class FeatureCapture:
    """`images -> [outputs]`: runs the model and returns the captured outputs of its taps.

    Args:
        model: the model to run.
        taps: the `Tap`s whose outputs are returned, in order.
    """

    def __init__(self, model, taps):
        # Weak: the feature-model cache is keyed by the model itself.
        self._model = weakref.ref(model)
        self.taps = list(taps)
        self.compute_dtype = getattr(model, "compute_dtype", None)

    def __call__(self, images, training=False):
        return self.outputs_of(lambda: self._model()(images, training=training))

    def outputs_of(self, run):
        """The taps' outputs while `run()` runs the model and returns its result (e.g. JAX's `stateless_call`)."""
        layers = [tap.layer for tap in self.taps if tap.layer is not None]
        with recording(layers) as records:
            result = run()
        outputs = []
        for tap in self.taps:
            recorded = [result] if tap.layer is None else records[id(tap.layer)]
            _check_calls(tap.path, recorded)
            outputs.append(recorded[0] if tap.output_index is None else recorded[0][tap.output_index])
        return outputs


_OUTPUT_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> {path: compiled images -> the tap's output}


def output_function(tap):
    """`images -> tap's output` for `tap`'s model, built once per (model, path).

    On TensorFlow a `tf.function`: in its graph the model's layers after the tap feed
    nothing and are pruned, so it costs a model cut at the layer. On JAX and PyTorch a
    forward pass with the layer captured.
    """
    per_model = _OUTPUT_FUNCTIONS.setdefault(tap.model, {})
    if tap.path not in per_model:
        capture = FeatureCapture(tap.model, [tap])
        forward = lambda images: capture(images)[0]  # noqa: E731
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # compiled: dataset examples and layer outputs run it batch after batch

            forward = tf.function(forward)
        per_model[tap.path] = forward
    return per_model[tap.path]


def clear_caches():
    """Forgets the compiled output functions built for users' models. The taps are kept: objectives
    already built hold them, and a feature model is keyed by its taps' identity."""
    _OUTPUT_FUNCTIONS.clear()
