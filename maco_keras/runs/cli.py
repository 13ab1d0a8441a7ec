"""`maco-keras` (or `python -m maco_keras`): visualize a whole model from the shell, then browse it.

    maco-keras visualize MobileNetV2 --out run/ --units all          # every logit
    maco-keras visualize model.keras --out run/ --layer block_13_expand_relu --units 0-63
    maco-keras visualize vit.keras --out vit/ --layer "vit_encoder/transformer_block_*" --units 0-15
    maco-keras atlas run/ [--labels labels.txt] [--examples images/]  # run/index.html
    maco-keras verify run/                                            # check every unit's files
    maco-keras layers MobileNetV2 "block_1*"                          # layer paths, shapes, units

`visualize` writes, per unit, an image PNG, a transparency PNG and an .npz (image,
transparency, per-step scores), a record with each file's SHA-256, and a `manifest.json`;
every file is written whole (temporary file, then rename). A rerun skips finished units,
redoes damaged ones and says which; `--shard I/N` lets N processes share one folder.
`atlas` turns a run folder into a static site that opens from the file system.

Exit codes: 0 done; 2 bad input or a folder, disk or file that cannot be used (one line);
3 some units went non-finite and were recorded as failed (`--retry-failed` reruns them);
1 `verify` found damaged units; 130 interrupted (Ctrl-C; finished units are kept).
"""

import argparse
import contextlib
import os
import sys
import time

# Before TensorFlow loads (the package imports it lazily): its C++ start-up logs are noise here.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import pathlib  # noqa: E402

from .. import __version__, backends  # noqa: E402 (imports no Keras: safe before --backend is read)

PROG = "maco-keras"
COMMANDS = ("visualize", "atlas", "verify", "layers")
# What the unit pages leave out of the configuration: the settings the command line has no flag for (they keep
# their defaults), and relu_redirect_steps, which the run's own settings show already.
NO_FLAG = ("antialias", "phase_as", "pixel_statistics", "relu_redirect_steps")
EXIT_USAGE, EXIT_DAMAGED, EXIT_UNITS_FAILED, EXIT_INTERRUPTED = 2, 1, 3, 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input on one line (`maco-keras: error: ...`) and exits 2."""

    def error(self, message):
        fail(message)


def fail(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _int_at_least(minimum, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, received: {text}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def build_parser():
    parser = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}", parser_class=_Parser)

    visualize = commands.add_parser("visualize", help="visualize units of a model into a run folder",
                                    description="Visualize units of a model into a run folder (resumable).")
    visualize.add_argument("model", help="a .keras/.h5 file, a keras.applications name such as MobileNetV2, or a "
                           "keras_hub image classifier preset such as vit_base_patch16_224_imagenet")
    visualize.add_argument("--out", default="maco_out", help="run folder (default: maco_out)")
    visualize.add_argument("--layer", help="layer name or path (inside nested models and subclassed layers: "
                           "base/block_13_expand_relu, vit_encoder/transformer_block_2), a bare name when unique; "
                           "several (A,B,C) or a pattern (vit_encoder/transformer_block_*) write one run folder per "
                           "layer under --out (default: the output, i.e. the logits)")
    visualize.add_argument("--token", type=_token, default=None,
                           help="at a token layer (batch, tokens, dims): the neurons of one token, cls or an index "
                           "(default: channels, each dimension's mean over the patch tokens)")
    visualize.add_argument("--units", nargs="+", default=None,
                           help="units: numbers and ranges (1,5,10-19) or all (default: all)")
    visualize.add_argument("--method", choices=("maco", "fourier", "pixel"), default="maco",
                           help="maco (default), or the paper's baselines fourier and pixel (CBR)")
    visualize.add_argument("--preset", choices=("fast", "paper"), default=None,
                           help="maco's settings: fast (default, maco's defaults: 64 steps, coarse to fine, decaying "
                           "learning rate, large crops first, contrast 0.7; see the README's Quality) or paper (the "
                           "paper's, 256 steps)")
    visualize.add_argument("--steps", type=_positive_int, default=None,
                           help="optimization steps (default: the preset's, 64 or 256)")
    visualize.add_argument("--image-size", type=_positive_int, default=512, help="image side (default 512)")
    visualize.add_argument("--crops", type=_positive_int, default=32, help="crops per image per step (default 32)")
    visualize.add_argument("--crop-chunk", type=_positive_int, default=None,
                           help="crops per image processed at once (default: all); lower it to save memory")
    visualize.add_argument("--batch", type=_positive_int, default=8,
                           help="units optimized together (default 8); memory grows with it")
    visualize.add_argument("--values-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                           help="model input range (default: 0 255 for keras.applications, else -1 1)")
    visualize.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    visualize.add_argument("--relu-redirect-steps", type=_non_negative_int, default=0,
                           help="let gradients through dead ReLUs for the first N steps (default 0: off)")
    visualize.add_argument("--strategy", choices=("none", "mirrored", "tpu"), default="none",
                           help="mirrored: every GPU of the machine; tpu: the TPU's cores (default: one device)")
    visualize.add_argument("--shards", type=_positive_int, default=None,
                           help="with --shard auto in a Kubernetes Indexed Job: the number of completions")
    visualize.add_argument("--shard", default="0/1", help="I/N, or auto (from a Slurm job array's or a Kubernetes "
                           "Indexed Job's environment): this process takes every N-th unit from the I-th "
                           "(0-based), so N processes share one --out (default 0/1)")
    visualize.add_argument("--weights", choices=("imagenet", "none"), default="imagenet",
                           help="weights of a keras.applications model (default imagenet)")
    visualize.add_argument("--quiet", action="store_true",
                           help="no step progress bar (there is none either when the output is not a terminal)")
    visualize.add_argument("--retry-failed", action="store_true",
                           help="run again the units a previous run recorded as failed (non-finite); they are "
                           "skipped otherwise")
    visualize.add_argument("--backend", choices=backends.BACKENDS, default=None,
                           help="Keras backend (default: $KERAS_BACKEND, else Keras's configured one); recorded in "
                           "the manifest: a folder resumes on its own backend only")

    atlas = commands.add_parser("atlas", help="write a static site (index.html) into a run folder",
                                description="Write a static, server-less site into a run folder.")
    atlas.add_argument("folder", help="a run folder written by `maco-keras visualize`")
    atlas.add_argument("--labels", help="text file, one unit name per line (line i = unit i)")
    atlas.add_argument("--examples", help="folder of natural images: show those that most activate each unit")
    atlas.add_argument("--top", type=_positive_int, default=6, help="examples per unit (default 6)")
    atlas.add_argument("--model", help="the model for --examples, where the one the manifest records (by absolute "
                       "path and digest) has moved; it must have the recorded digest")

    verify = commands.add_parser("verify", help="check a run folder's units against their records (changes nothing)",
                                 description="Check every unit of a run folder (or of each run folder of a model "
                                 "root) against its record's digests, without changing anything. Exit 0 when every "
                                 "recorded unit is intact, 1 when some are damaged or foreign.")
    verify.add_argument("folder", help="a run folder or model root written by `maco-keras visualize`")

    layers = commands.add_parser("layers", help="list a model's layer paths, output shapes and units",
                                 description="List the layer paths --layer takes, with output shapes and the units "
                                 "each gives.")
    layers.add_argument("model", help="as for visualize")
    layers.add_argument("pattern", nargs="?", default="*", help="only paths matching this pattern (default: all)")
    layers.add_argument("--backend", choices=backends.BACKENDS, default=None, help="Keras backend (as for visualize)")
    return parser


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # The first version took `maco-keras MODEL --units ...`: that is `visualize` still.
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv = ["visualize"] + argv
    args = build_parser().parse_args(argv)
    if args.command is None:
        fail(f"expected a command, {', '.join(COMMANDS)} (see maco-keras --help)")
    try:
        check_before_import(args)
    except ValueError as error:
        fail(str(error))
    except OSError as error:  # a path the system refuses to look at (too long, no permission)
        fail(_os_error_line(error))
    if getattr(args, "backend", None):
        select_backend(args.backend)
    return args


def _check_model_file(spec, parameter="MODEL"):
    from .. import validation

    if (validation.names_model_file(spec) or os.sep in spec) and "://" not in spec and not pathlib.Path(spec).is_file():
        what = "a folder" if pathlib.Path(spec).is_dir() else "no such file"
        raise ValueError(f"expected a saved Keras model file, received: {parameter}={spec} ({what})")


def _check_out(out):
    if not out.strip():
        raise ValueError("expected a folder for --out, received: --out=''")
    if "://" not in out and pathlib.Path(out).exists() and not pathlib.Path(out).is_dir():
        raise ValueError(f"expected --out to be a folder (or a path to create), received: --out={out}, a file")


def _check_run_folder(folder, parameter="FOLDER"):
    from . import results

    if "://" in folder:
        return  # a tf.io.gfile location: checked once TensorFlow is there to reach it
    root = pathlib.Path(folder)
    if not (root / results.MANIFEST).is_file() and not (root / results.MODEL_MANIFEST).is_file():
        what = "no such folder" if not root.exists() else f"no {results.MANIFEST} in it"
        raise ValueError(f"expected a run folder with {results.MANIFEST} or {results.MODEL_MANIFEST} (from maco-keras "
                         f"visualize), received: {parameter}={folder} ({what})")


def configured_backend(args):
    """The backend this command will run on, found without importing Keras: --backend, $KERAS_BACKEND, Keras's
    configuration file, else TensorFlow (Keras's default)."""
    if getattr(args, "backend", None):
        return args.backend
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        return json.loads(pathlib.Path(home, "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def check_before_import(args):
    """Checks everything that needs no model before Keras, TensorFlow or any backend is imported (fast errors)."""
    from . import results
    from .. import validation

    if args.command == "visualize":
        _check_model_file(args.model)
        _check_out(args.out)
        if args.units is not None:
            results.parse_units(args.units, count=None)  # the syntax; the range once the layer is known
        results.parse_shard(args.shard, shards=args.shards)
        if args.values_range is not None:
            validation.values_range(tuple(args.values_range), name="--values-range")
        if args.preset not in (None, "paper") and args.method != "maco":
            raise ValueError(f"expected --method maco with --preset {args.preset}, received: --method={args.method}")
        if args.layer is not None and not args.layer.strip(" ,"):
            raise ValueError(f"expected a layer name, path or pattern, received: --layer={args.layer!r}")
        backend = configured_backend(args)
        if backend != "tensorflow":
            # The established engine's options; the other backends run the backend-neutral core.
            for flag, value, default in (("--strategy", args.strategy, "none"), ("--method", args.method, "maco")):
                if value != default:
                    raise ValueError(f"expected {flag} {default} on the {backend} backend (TensorFlow only), "
                                     f"received: {flag}={value}")
            if args.crop_chunk is not None and args.crops % args.crop_chunk:  # (JAX's devices: checked at the model)
                raise ValueError(f"expected --crop-chunk to divide --crops={args.crops}, received: "
                                 f"--crop-chunk={args.crop_chunk}")
    elif args.command == "atlas":
        _check_run_folder(args.folder)
        if args.labels is not None and not pathlib.Path(args.labels).is_file():
            raise ValueError(f"expected a text file of labels, received: --labels={args.labels} (no such file)")
        if args.examples is not None and not pathlib.Path(args.examples).is_dir():
            raise ValueError(f"expected a folder of images, received: --examples={args.examples} (no such folder)")
        if args.model is not None:
            _check_model_file(args.model, "--model")
    elif args.command == "verify":
        _check_run_folder(args.folder)
    elif args.command == "layers":
        _check_model_file(args.model)


def select_backend(name):
    """Makes `name` Keras's backend: set before Keras loads; an error if Keras already runs another."""
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.backend.backend() != name:
        fail(f"expected --backend {loaded.backend.backend()} in a process where Keras already runs on it, "
             f"received: --backend={name}")
    os.environ["KERAS_BACKEND"] = name


def _strategy(name):
    import tensorflow as tf

    if name == "none":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:
        raise ValueError(f"cannot connect to a TPU for --strategy tpu: {str(error).splitlines()[0][:200]}") from None
    return tf.distribute.TPUStrategy(resolver)


def _token(text):
    if text == "cls":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a token index or cls, received: {text}") from None


class LayerRun:
    """One layer's part of a `visualize` command: its units, kind and run folder, validated.

    Args:
        model: the loaded model; tap: its layer (`taps.Tap`); units_spec, token: as given.
    """

    def __init__(self, model, tap, units_spec, token, parameter="--layer"):
        from .. import objectives, taps
        from . import results

        self.tap = tap
        # The output, or the layer that computes it (--layer predictions): logits.
        is_output = tap.path in (taps.OUTPUT, taps.tap(model, None).name)
        # The manifest names the output by the layer that computes it, as earlier versions did.
        self.layer = tap.name
        self.num_units = int(tap.shape[-1])
        if token is not None and tap.rank != objectives.TOKEN_RANK:
            raise ValueError(f"expected --token only with a token layer (batch, tokens, dims), received: "
                             f"--token={token} for {parameter}={tap.path} with output shape {(None,) + tap.shape}")
        self.token = None
        if tap.rank == objectives.TOKEN_RANK and token is not None:
            self.token = objectives.token_index(0 if token == "cls" else token, tap, "--token", cls=token == "cls")
        if tap.rank == objectives.VECTOR_RANK:
            self.kind = "logit" if is_output else "neuron"
        else:
            self.kind = "neuron" if self.token is not None else "channel"
        self.units = results.parse_units(units_spec or "all", self.num_units)
        self.model = model

    def objective(self, units):
        from .. import objectives, taps

        layer = None if self.tap.path == taps.OUTPUT else self.tap.path
        return objectives.unit_objective(self.model, layer, self.kind, units, self.token)

    def description(self, source, settings):
        what = {"channel": "the channel's own value (its mean over positions or patch tokens)",
                "neuron": "the neuron's own value", "logit": "the logit"}[self.kind]
        description = {"model": source, "layer": self.layer, "kind": self.kind, "num_units": self.num_units,
                       "settings": settings,
                       "score": f"{what}, averaged over the step's crops; per step in each unit's .npz, the last "
                       "step's here"}
        if self.token is not None:
            description["token"] = self.token
        return description


def resolve_layers(model, spec):
    """The taps `--layer` names: comma-separated names or paths, each maybe a pattern (`*`, `?`, `[...]`)."""
    from .. import objectives, taps

    if spec is None:
        return [objectives.layer_tap(model, None, "--layer")]
    found = []
    for part in filter(None, (part.strip() for part in spec.split(","))):
        paths = taps.matching(model, part, "--layer") if any(char in part for char in "*?[") else [part]
        for path in paths:
            tap = objectives.layer_tap(model, path, "--layer")
            if all(tap is not other for other in found):
                found.append(tap)
    if not found:
        raise ValueError(f"expected at least one layer, received: --layer={spec!r}")
    return found


class VisualizeJob:
    """A validated `visualize` command: everything checked before the first step.

    One layer writes one run folder (`--out`); several (`--layer A,B,C` or a pattern) write
    a model root: `--out/model.json` and one run folder per layer.
    """

    def __init__(self, args):
        from .. import models, optimization
        from . import results
        from .. import taps as taps_lib

        import keras

        self.args = args
        self.backend = keras.backend.backend()
        self.shard = results.parse_shard(args.shard, shards=args.shards)
        if self.backend != "tensorflow":
            self.strategy = None  # the TensorFlow-only options were refused before the import
        else:
            from .. import optimization

            self.strategy = _strategy(args.strategy)
            optimization.split_crops(args.crops, optimization.resolve_strategy(self.strategy), args.crop_chunk)
        scope = self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()
        with scope:  # so that every replica holds the model's weights
            loaded = models.load(args.model, weights=None if args.weights == "none" else "imagenet")
        self.model = loaded.model
        shape = taps_lib.input_shape(self.model)
        if shape is None or len(shape) != 4 or any(dim is None for dim in shape[1:]):
            raise ValueError(f"expected a model of images, input shape (batch, height, width, channels), received: "
                             f"MODEL={args.model} with input shape {shape}")
        self.values_range = (tuple(args.values_range) if args.values_range is not None
                             else loaded.values_range or (-1.0, 1.0))
        taps = resolve_layers(self.model, args.layer)
        self.layers = [LayerRun(self.model, tap, args.units, args.token) for tap in taps]
        model_height, model_width = self.model.input_shape[1:3]
        if args.image_size < max(model_height, model_width):
            raise ValueError(f"expected --image-size >= the model input {model_height}x{model_width}, "
                             f"received: --image-size={args.image_size}")
        from ..core.config import CONFIGS

        if args.preset is None:
            # maco's defaults; the baselines have no schedules, which manifests have always called "paper".
            args.preset = "fast" if args.method == "maco" else "paper"

        if args.steps is None:
            args.steps = CONFIGS[args.preset].steps
        from ..core import draws as draws_lib

        draws = draws_lib.DRAWS  # one generator on every backend
        # maco's whole configuration, validated once: the run takes it, the manifest records it.
        self.config = CONFIGS[args.preset].replace(
            steps=args.steps, image_size=args.image_size, crops=args.crops, values_range=self.values_range,
            seed=args.seed, relu_redirect_steps=args.relu_redirect_steps) if args.method == "maco" else None
        if self.backend != "tensorflow":
            import maco_keras

            # One per job, made (and its settings checked) before any folder is touched: its compiled runs serve
            # every batch.
            self.visualizer = maco_keras.Visualizer(self.model, self.config, crop_chunk=args.crop_chunk,
                                                    verbose=self._show_progress())
        # What the unit pages show for the settings the manifest records as None (the preset's, the model file's).
        self.used = {"weights": args.weights if loaded.values_range is not None else "the model file's",
                     "crop_chunk": args.crops}  # None: every crop of a step at once
        self.config_json = None if self.config is None else self.config.to_json()
        if self.config is not None:
            self.used.update({key: value for key, value in self.config_json.items()
                              if key not in ("steps", "image_size", "crops", "values_range", "seed")
                              and key not in NO_FLAG})
        settings = {"method": args.method, "steps": args.steps, "image_size": args.image_size, "crops": args.crops,
                    "values_range": list(self.values_range), "seed": args.seed, "noise": None, "crop_scale": None,
                    "batch": args.batch, "strategy": args.strategy,
                    # On JAX and PyTorch the chunk makes the pictures: None where it is every crop at once.
                    "crop_chunk": args.crop_chunk if self.backend == "tensorflow" or self.visualizer.chunked else None,
                    "relu_redirect_steps": args.relu_redirect_steps, "preset": args.preset,
                    "contrast": CONFIGS[args.preset].contrast if args.method == "maco" else None,
                    "weights": args.weights if loaded.values_range is not None else None, "draws": draws,
                    "backend": self.backend,
                    **({"devices": self.visualizer.sharing} if self.backend == "jax" else {})}
        self.model_digest = models.digest(self.model)
        self.model_path = (str(pathlib.Path(loaded.source).resolve())
                           if pathlib.Path(loaded.source).is_file() else None)
        self.is_root = args.layer is not None and (len(self.layers) > 1 or any(c in args.layer for c in ",*?["))
        if self.is_root:
            folders = results.ModelRoot(args.out).open(loaded.source, [
                {"layer": run.layer, "kind": run.kind, "num_units": run.num_units,
                 **({"token": run.token} if run.token is not None else {})} for run in self.layers],
                model_digest=self.model_digest)
        else:
            folders = {self.layers[0].layer: args.out}
        for run in self.layers:
            run.folder = results.RunFolder(folders[run.layer])
            run.mine = results.shard_units(run.units, *self.shard)
            description = {**run.description(loaded.source, settings), "model_digest": self.model_digest,
                           "used": self.used}
            if self.config_json is not None:
                description["config"] = self.config_json  # the whole configuration the run takes
            if self.model_path is not None:
                description["model_path"] = self.model_path
            run.manifest = run.folder.open(description, run.mine, self.shard)

    def run(self):
        """Runs every layer's units; returns the exit code (0, or `EXIT_UNITS_FAILED` when some units failed)."""
        self.kept, failed = 0, {}
        for run in self.layers:
            if len(self.layers) > 1:
                print(f"layer {run.layer} ({run.kind}s): {run.folder.folder}", flush=True)
            failed.update({(run.layer, unit): reason for unit, reason in self.run_layer(run).items()})
        if failed:
            shown = ", ".join(f"{unit} ({reason})" if len(self.layers) == 1 else f"{layer}:{unit} ({reason})"
                              for (layer, unit), reason in list(failed.items())[:5])
            more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
            print(f"{PROG}: {len(failed)} unit{'s' * (len(failed) > 1)} failed: {shown}{more}; the others are "
                  f"kept; rerun with --retry-failed to run the failed ones again", file=sys.stderr, flush=True)
            return EXIT_UNITS_FAILED
        return 0

    def _show_progress(self):
        # A step bar redraws its line: in a pipe or a log it would be escape codes and carriage returns.
        return not self.args.quiet and sys.stdout.isatty()

    def _visualize(self, layer, batch):
        """The batch's visualization, and {index in batch: reason} of its units that went non-finite.

        A non-finite unit does not take its batch-mates down: on JAX and PyTorch each unit
        is frozen at its last finite step and the others run on; the TensorFlow engine stops
        the batch, and then each unit runs alone (a unit's draws are its own, so its picture
        is the same alone as in a batch) and only the non-finite ones fail.
        """
        import maco_keras
        from maco_keras.core.outcome import NonFiniteError

        args = self.args
        try:
            if self.backend != "tensorflow":
                return self.visualizer(layer.objective(batch)), {}
            from maco_keras import baselines

            options = dict(verbose=self._show_progress(), strategy=self.strategy, crop_chunk=args.crop_chunk,
                           return_visualization=True)
            if self.config is not None:
                return maco_keras.maco(layer.objective(batch), config=self.config, **options), {}
            method = {"fourier": baselines.fourier, "pixel": baselines.pixel}[args.method]
            return method(layer.objective(batch), steps=args.steps, image_size=args.image_size, crops=args.crops,
                          values_range=self.values_range, seed=args.seed,
                          relu_redirect_steps=args.relu_redirect_steps, **options), {}
        except NonFiniteError as error:
            if error.unit_steps:  # frozen units named; the others ran to the end
                failed = {index: f"non-finite score or gradient at step {error.unit_steps[name]}"
                          for index, name in enumerate(error.partial.names) if name in error.unit_steps}
                return error.partial, failed
            if len(batch) == 1:
                return None, {0: f"non-finite score or gradient at step {error.step}"}
        parts, failed = [], {}
        for index, unit in enumerate(batch):
            visualization, failures = self._visualize(layer, [unit])
            parts.append(visualization)
            if failures:
                failed[index] = failures[0]
        return parts, failed

    def run_layer(self, layer):
        """Runs a layer's units not yet finished; returns {unit: reason} of those that failed."""
        import numpy as np

        from maco_keras.runs import results

        args = self.args
        folder = layer.folder
        results.remove_stale_temporaries(folder.folder)
        finished = set(folder.finished(layer.mine))
        self.kept += len(finished)
        if folder.damaged:
            listed = ", ".join(f"{unit} ({why})" for unit, why in list(folder.damaged.items())[:5])
            more = f" and {len(folder.damaged) - 5} more" if len(folder.damaged) > 5 else ""
            print(f"redoing {len(folder.damaged)} damaged unit{'s' * (len(folder.damaged) > 1)}: {listed}{more}",
                  flush=True)
        failed_before = folder.failed(layer.mine)
        if args.retry_failed:
            folder.retry(failed_before)
            failed_before = {}
        todo = [unit for unit in layer.mine if unit not in finished and unit not in failed_before]
        shard = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard[1] > 1 else ""
        skipped = (f", {len(failed_before)} failed before (skipped; --retry-failed runs them)"
                   if failed_before else "")
        print(f"{len(finished)} of {len(layer.mine)} units{shard} already in {folder.folder}{skipped}; "
              f"{len(todo)} to go", flush=True)
        started, done_here, failed = time.perf_counter(), 0, dict(failed_before)
        for start in range(0, len(todo), args.batch):
            batch = todo[start:start + args.batch]
            remaining = len(todo) - start
            if done_here:
                eta = (time.perf_counter() - started) / done_here * remaining
                eta_text = f"ETA {int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
            else:
                eta_text = "ETA after the first batch"
            print(f"units {len(finished) + done_here}/{len(layer.mine)} done, {remaining} to go, {eta_text}; "
                  f"now {layer.kind} {batch[0]}" + (f"-{batch[-1]}" if len(batch) > 1 else ""), flush=True)
            unit_started = time.perf_counter()
            visualization, failures = self._visualize(layer, batch)
            seconds = (time.perf_counter() - unit_started) / len(batch)
            values = []
            for index, unit in enumerate(batch):
                if index in failures:
                    folder.record_failed(unit, failures[index], shard=f"{self.shard[0]}/{self.shard[1]}")
                    failed[unit] = failures[index]
                    print(f"{layer.kind} {unit} failed: {failures[index]}", flush=True)
                    continue
                part, column = ((visualization[index], 0) if isinstance(visualization, list)
                                else (visualization, index))
                scores = part.scores[:, column]  # in the unit's own value
                written = results.save_unit(folder.folder, unit, part.images[column], part.transparency[column],
                                            scores, self.values_range)
                folder.record(unit, scores[-1], written, seconds=round(seconds, 2),
                              shard=f"{self.shard[0]}/{self.shard[1]}")
                self.kept += 1
                values.append(float(scores[-1]))
            done_here += len(batch)
            if values:
                print(f"  {layer.kind} value at the last step, mean of the batch's units: {np.mean(values):.4g}",
                      flush=True)
        print(f"units {len(finished) + done_here - len(failed) + len(failed_before)}/{len(layer.mine)} done{shard}: "
              f"{folder.folder}", flush=True)
        return failed


class VerifyJob:
    """`maco-keras verify FOLDER`: each unit of a run folder (or of each of a model root's) against its record."""

    def __init__(self, folder):
        from . import results, storage

        root = results.ModelRoot(folder)
        if results.ModelRoot.is_root(folder):
            manifest = root.read()
            self.folders = [root.folder / entry["folder"] for entry in manifest["layers"]]
        else:
            self.folders = [storage.path(folder)]
            if not (self.folders[0] / results.MANIFEST).is_file():
                raise ValueError(f"expected a run folder with {results.MANIFEST}, received: FOLDER={folder}")
        self.reports = {}
        for path in self.folders:
            if (path / results.MANIFEST).is_file():
                self.reports[path] = results.RunFolder(path).verify()

    def run(self):
        bad = 0
        for path, report in self.reports.items():
            parts = [f"{len(report['done'])} done and intact"]
            for key, what in (("damaged", "damaged"), ("foreign", "made with other settings"),
                              ("failed", "failed (non-finite)"), ("unrecorded", "with files but no record"),
                              ("pending", "pending")):
                if report[key]:
                    parts.append(f"{len(report[key])} {what}")
            print(f"{path}: " + ", ".join(parts), flush=True)
            for unit, why in report["damaged"].items():
                print(f"  damaged unit {unit}: {why}", flush=True)
            for unit in report["foreign"]:
                print(f"  unit {unit}: its record's settings digest is not the manifest's", flush=True)
            for unit, why in report["failed"].items():
                print(f"  failed unit {unit}: {why}", flush=True)
            bad += len(report["damaged"]) + len(report["foreign"])
        if bad:
            print(f"{bad} unit{'s' * (bad > 1)} to redo: rerun the same maco-keras visualize command", flush=True)
        return EXIT_DAMAGED if bad else 0


class LayersJob:
    """`maco-keras layers MODEL [PATTERN]`: the layer paths `--layer` takes, their output shapes and units."""

    def __init__(self, args):
        import fnmatch

        from .. import models, objectives, taps

        self.model = models.load(args.model, weights=None).model  # shapes only: no weights to fetch
        paths = [path for path, _ in taps.layer_paths(self.model) if fnmatch.fnmatchcase(path, args.pattern)
                 or fnmatch.fnmatchcase(path.rsplit(taps.SEPARATOR, 1)[-1], args.pattern)]
        if not paths:
            raise ValueError(f"expected a pattern that matches a layer path, received: PATTERN={args.pattern}")
        self.shapes = taps.output_shapes(self.model, paths)
        self.ranks = objectives.SPATIAL_RANK, objectives.TOKEN_RANK, objectives.VECTOR_RANK

    def run(self):
        spatial, token, vector = self.ranks
        width = max(len(path) for path in self.shapes)
        for path, shape in self.shapes.items():
            if isinstance(shape, str):
                print(f"{path:<{width}}  -  ({shape}: not a --layer)", flush=True)
                continue
            rank, units = len(shape) + 1, shape[-1] if shape else 0
            gives = {spatial: f"{units} channels (spatial means), neurons at a position",
                     token: f"{units} channels (patch-token means), neurons of a token (--token)",
                     vector: f"{units} neurons"}.get(rank, "no units (rank not 2, 3 or 4)")
            print(f"{path:<{width}}  {str((None,) + tuple(shape)):<22}  {gives}", flush=True)
        return 0


def _os_error_line(error):
    """One line for a file system error: what failed, where and why (no traceback)."""
    where = f" {error.filename}" if getattr(error, "filename", None) else ""
    return f"cannot use{where}: {error.strerror or error}"


def main(argv=None):
    """The shell command. Returns the exit code; bad input and unusable folders or disks exit 2 with one line.

    A traceback is left for the package's own bugs only.
    """
    from .results import RunFolderError

    args = parse_args(argv)
    job = None
    try:
        try:
            if args.command == "visualize":
                job = VisualizeJob(args)
            elif args.command == "atlas":
                from . import atlas

                job = atlas.job(args.folder, labels=args.labels, examples=args.examples, top=args.top,
                                model=args.model)
            elif args.command == "verify":
                job = VerifyJob(args.folder)
            else:
                job = LayersJob(args)
        except (ValueError, OSError) as error:
            # Everything above only reads and checks the input: a failure there is bad input.
            message = _os_error_line(error) if isinstance(error, OSError) else str(error).strip()
            fail(message.splitlines()[0] if message else type(error).__name__)
        from .examples import NoImagesError

        try:
            return job.run()
        except (NoImagesError, RunFolderError) as error:  # found only once files were read
            fail(str(error))
        except OSError as error:  # a full disk, a read-only folder: nothing half-written is left (write, then rename)
            fail(_os_error_line(error))
    except KeyboardInterrupt:
        kept = getattr(job, "kept", None)
        what = f"{kept} unit{'s' * (kept != 1)} kept, rerun to resume" if kept is not None else "nothing written"
        print(f"{PROG}: interrupted; {what}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
