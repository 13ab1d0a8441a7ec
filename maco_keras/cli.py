"""`maco-keras` (or `python -m maco_keras`): visualize a whole model from the shell, then browse it.

    maco-keras visualize MobileNetV2 --out run/ --units all          # every logit
    maco-keras visualize model.keras --out run/ --layer block_13_expand_relu --units 0-63
    maco-keras visualize vit.keras --out vit/ --layer "vit_encoder/transformer_block_*" --units 0-15
    maco-keras atlas run/ [--labels labels.txt] [--examples images/]  # run/index.html

`visualize` writes, per unit, an image PNG, a transparency PNG and an .npz (image,
transparency, per-step scores), and a `manifest.json`; every file is written whole
(temporary file, then rename). A rerun skips finished units and redoes the others;
`--shard I/N` lets N processes share one folder. `atlas` turns a run folder into a
static site that opens from the file system. Bad input prints one line and exits 2.
"""

import argparse
import contextlib
import os
import sys
import time

# Before TensorFlow loads (the package imports it lazily): its C++ start-up logs are noise here.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from . import backends  # noqa: E402 (imports no Keras: safe before --backend is read)

PROG = "maco-keras"
COMMANDS = ("visualize", "atlas")


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
    commands = parser.add_subparsers(dest="command", metavar="{visualize,atlas}", parser_class=_Parser)

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
    visualize.add_argument("--quiet", action="store_true", help="no step progress bar")
    visualize.add_argument("--backend", choices=backends.BACKENDS, default=None,
                           help="Keras backend (default: $KERAS_BACKEND, else Keras's configured one); recorded in "
                           "the manifest: a folder resumes on its own backend only")

    atlas = commands.add_parser("atlas", help="write a static site (index.html) into a run folder",
                                description="Write a static, server-less site into a run folder.")
    atlas.add_argument("folder", help="a run folder written by `maco-keras visualize`")
    atlas.add_argument("--labels", help="text file, one unit name per line (line i = unit i)")
    atlas.add_argument("--examples", help="folder of natural images: show those that most activate each unit")
    atlas.add_argument("--top", type=_positive_int, default=6, help="examples per unit (default 6)")
    return parser


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # The first version took `maco-keras MODEL --units ...`: that is `visualize` still.
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv = ["visualize"] + argv
    args = build_parser().parse_args(argv)
    if args.command is None:
        fail("expected a command, visualize or atlas (see maco-keras --help)")
    if getattr(args, "backend", None):
        select_backend(args.backend)
    return args


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
        from . import objectives, results, taps

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
        from . import objectives, taps

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
    from . import objectives, taps

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
        from . import models, optimization, results, validation

        import keras

        self.args = args
        self.backend = keras.backend.backend()
        self.shard = results.parse_shard(args.shard, shards=args.shards)
        if args.values_range is not None:
            validation.values_range(tuple(args.values_range), name="--values-range")
        if self.backend != "tensorflow":
            # The established engine's options; the other backends run the backend-neutral core.
            for flag, value, default in (("--strategy", args.strategy, "none"), ("--crop-chunk", args.crop_chunk, None),
                                         ("--relu-redirect-steps", args.relu_redirect_steps, 0),
                                         ("--method", args.method, "maco")):
                if value != default:
                    raise ValueError(f"expected {flag} {default} on the {self.backend} backend (TensorFlow only), "
                                     f"received: {flag}={value}")
            self.strategy = None
        else:
            from . import optimization

            self.strategy = _strategy(args.strategy)
            optimization.split_crops(args.crops, optimization.resolve_strategy(self.strategy), args.crop_chunk)
        scope = self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()
        with scope:  # so that every replica holds the model's weights
            loaded = models.load(args.model, weights=None if args.weights == "none" else "imagenet")
        self.model = loaded.model
        self.values_range = (tuple(args.values_range) if args.values_range is not None
                             else loaded.values_range or (-1.0, 1.0))
        taps = resolve_layers(self.model, args.layer)
        self.layers = [LayerRun(self.model, tap, args.units, args.token) for tap in taps]
        model_height, model_width = self.model.input_shape[1:3]
        if args.image_size < max(model_height, model_width):
            raise ValueError(f"expected --image-size >= the model input {model_height}x{model_width}, "
                             f"received: --image-size={args.image_size}")
        if args.preset not in (None, "paper") and args.method != "maco":
            raise ValueError(f"expected --method maco with --preset {args.preset}, received: --method={args.method}")
        from .core.config import CONFIGS

        if args.preset is None:
            # maco's defaults; the baselines have no schedules, which manifests have always called "paper".
            args.preset = "fast" if args.method == "maco" else "paper"

        if args.steps is None:
            args.steps = CONFIGS[args.preset].steps
        if self.backend == "tensorflow":
            from maco_keras import seeding

            draws = seeding.DRAWS
        else:
            from .core import draws as draws_lib

            draws = draws_lib.DRAWS
            self.config = CONFIGS[args.preset].replace(steps=args.steps, image_size=args.image_size, crops=args.crops,
                                                       values_range=self.values_range, seed=args.seed)
        settings = {"method": args.method, "steps": args.steps, "image_size": args.image_size, "crops": args.crops,
                    "values_range": list(self.values_range), "seed": args.seed, "noise": None, "crop_scale": None,
                    "batch": args.batch, "crop_chunk": args.crop_chunk, "strategy": args.strategy,
                    "relu_redirect_steps": args.relu_redirect_steps, "preset": args.preset,
                    "contrast": CONFIGS[args.preset].contrast if args.method == "maco" else None,
                    "weights": args.weights if loaded.values_range is not None else None, "draws": draws,
                    "backend": self.backend}
        self.is_root = args.layer is not None and (len(self.layers) > 1 or any(c in args.layer for c in ",*?["))
        if self.is_root:
            folders = results.ModelRoot(args.out).open(loaded.source, [
                {"layer": run.layer, "kind": run.kind, "num_units": run.num_units,
                 **({"token": run.token} if run.token is not None else {})} for run in self.layers])
        else:
            folders = {self.layers[0].layer: args.out}
        for run in self.layers:
            run.folder = results.RunFolder(folders[run.layer])
            run.mine = results.shard_units(run.units, *self.shard)
            run.manifest = run.folder.open(run.description(loaded.source, settings), run.mine, self.shard)

    def run(self):
        for run in self.layers:
            if len(self.layers) > 1:
                print(f"layer {run.layer} ({run.kind}s): {run.folder.folder}", flush=True)
            self.run_layer(run)
        return 0

    def run_layer(self, layer):
        import maco_keras
        from maco_keras import results

        args = self.args
        if self.backend == "tensorflow":
            from maco_keras import baselines, presets

            method = {"maco": maco_keras.maco, "fourier": baselines.fourier, "pixel": baselines.pixel}[args.method]
            # The preset's schedules; its steps are --steps' default and --crops stays the user's.
            preset = presets.schedules(args.preset) if args.method == "maco" else {}
        folder = layer.folder
        results.remove_stale_temporaries(folder.folder)
        finished = set(folder.finished(layer.mine))
        todo = [unit for unit in layer.mine if unit not in finished]
        shard = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard[1] > 1 else ""
        print(f"{len(finished)} of {len(layer.mine)} units{shard} already in {folder.folder}; {len(todo)} to go",
              flush=True)
        started, done_here = time.perf_counter(), 0
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
            if self.backend != "tensorflow":
                if getattr(self, "visualizer", None) is None:  # one per job: its compiled runs serve every batch
                    self.visualizer = maco_keras.Visualizer(self.model, self.config, verbose=not args.quiet)
                visualization = self.visualizer(layer.objective(batch))
            else:
                visualization = method(
                    layer.objective(batch), steps=args.steps, image_size=args.image_size, crops=args.crops,
                    values_range=self.values_range, seed=args.seed, verbose=not args.quiet, strategy=self.strategy,
                    crop_chunk=args.crop_chunk, relu_redirect_steps=args.relu_redirect_steps,
                    return_visualization=True, **preset)
            seconds = (time.perf_counter() - unit_started) / len(batch)
            for index, unit in enumerate(batch):
                scores = visualization.scores[:, index]  # in the unit's own value
                sizes = results.save_unit(folder.folder, unit, visualization.images[index],
                                          visualization.transparency[index], scores, self.values_range)
                folder.record(unit, scores[-1], sizes, seconds=round(seconds, 2),
                              shard=f"{self.shard[0]}/{self.shard[1]}")
            done_here += len(batch)
        print(f"units {len(finished) + done_here}/{len(layer.mine)} done{shard}: {folder.folder}", flush=True)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.command == "visualize":
            job = VisualizeJob(args)
        else:
            from . import atlas

            job = atlas.job(args.folder, labels=args.labels, examples=args.examples, top=args.top)
    except (ValueError, TypeError, OSError) as error:
        # Everything above only reads and checks the input: a failure there is bad input.
        fail(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
    from .examples import NoImagesError

    try:
        return job.run()
    except NoImagesError as error:  # every file of --examples unreadable: found only once they were read
        fail(str(error))


if __name__ == "__main__":
    sys.exit(main())
