"""Quality against compute: MACO, its variants and the baselines at several budgets, on two subjects.

For each subject (a visualized network: the shared MobileNetV2 and EfficientNet-Lite0, two
families), each method visualizes the logits of `--classes` ImageNet classes with each
seed, at several step budgets, and every set of pictures is scored with the paper's
metrics next to the *real photos* of the same classes (the ceiling):
- plausibility: 1-NN distance of each picture to the reference photos in the pooled
  `conv_pw_11_relu` features of MobileNetV1-0.5 (lower is better);
- Deep-KNN: the same 1-NN distance with the features normalized (`normalize=True`), in its
  pooled `conv_pw_13_relu` features (its last before the classifier): the naturalness measure.
  Raw distances count a flat picture's weak features as near every photo (on class set 2
  the real photos score worse in plausibility than every method); normalized, at the last
  features, they are the nearest there (lower is better);
- FID and KID: pooled `conv_pw_13_relu` features of MobileNetV1-0.5, 299/512 centre crops,
  against the reference photos (lower is better; FID is biased upwards at this sample size,
  KID is not, and every row has the same sample size);
- transferability: top-1 / top-5 accuracy of the networks that did not make the picture
  (MobileNetV1-0.5, MobileNetV1-0.25 and the other subject), averaged, on the whole
  picture (the paper's protocol) and on its central half (the scale the crops showed);
- logit: the target logit in the subject itself (whole picture);
- the faithfulness check (`metrics.path_similarity`, after Geirhos et al., ICML 2024): at 4
  layers spread along the subject's own path, the chance that the photo of a picture's
  class is closer to it (Spearman correlation of pooled activations) than a reference photo
  of another class; 0.5 is chance. Reported as the mean over the 4 layers, and at the first
  and the last. The real photos are scored against a second view of themselves (mirrored,
  central 80%), since the shared set holds one photo per class: their row is a ceiling
  that also counts what two views of one photo share.
Held out: the 500 shared photos are one per odd class; the photos of classes 1 mod 4 are the
reference set, and the classes visualized are taken evenly among the others (3 mod 4),
leaving out the 20 classes of the paper tables. The real-photo row scores the visualized
classes' own photos, which are not in the reference set, exactly like the pictures.

Time: wall seconds per picture on this machine, from the steady (already traced) calls.
Methods whose settings do not depend on the step count run once to the largest budget and
keep snapshots at the others (`snapshot_steps`: the same images as shorter runs); methods
with step-dependent schedules run once per budget. Every finished run is saved under
`--out` and reused by a rerun with the same settings. Writes a section of `--results`
and `figures/frontier_<subject>.png`.

Run:    python benchmarks/frontier.py                                   # about 3 h on 2 cores
        python benchmarks/frontier.py --classes 2 --seeds 0 --budgets 4 8 --schedule-budgets 4 --baseline-budgets 4 \\
            --xplique-budgets 2 --subjects mobilenet_v2 --results /tmp/frontier.md       # minutes
"""

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import textwrap
import time
from typing import Callable, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib  # noqa: E402
import matplotlib.ticker  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from xplique.features_visualizations import Objective  # noqa: E402
from xplique.features_visualizations import maco as xplique_maco  # noqa: E402

import maco_keras  # noqa: E402
from common import REPO, frontier_section, load_natural, markdown_table, shared_dir, write_section  # noqa: E402
from maco_keras import baselines, metrics, objectives, plots  # noqa: E402

VALUES_RANGE = (-1.0, 1.0)  # the shared models' input range
SUBJECTS = {"mobilenet_v2": ("MobileNetV2", "mobilenet_v2_1.0_224.keras"),
            "efficientnet_lite0": ("EfficientNet-Lite0", "efficientnet_lite0_224.keras")}
JUDGES = {"MobileNetV1-0.5": "mobilenet_v1_0.5_160.keras", "MobileNetV1-0.25": "mobilenet_v1_0.25_128.keras"}
PAPER_TABLE_CLASSES = {1, 53, 107, 159, 211, 263, 317, 369, 421, 473, 527, 579, 631, 683, 737, 789, 841, 893, 947, 999}
METRICS = [  # key, column title, format, higher is better
    ("plausibility", "plausibility", ".2f", False),
    ("deep_knn", "Deep-KNN", ".3f", False),
    ("fid", "FID", ".0f", False),
    ("kid", "KID", ".2f", False),
    ("transfer1", "transfer top-1", ".2f", True),
    ("transfer5", "transfer top-5", ".2f", True),
    ("centre1", "centre top-1", ".2f", True),
    ("centre5", "centre top-5", ".2f", True),
    ("logit", "logit", ".1f", True),
    ("path", "path AUC", ".2f", True),
    ("path_first", "path AUC, first layer", ".2f", True),
    ("path_last", "path AUC, last layer", ".2f", True),
]


@dataclasses.dataclass
class Method:
    """How a method makes pictures.

    Attributes:
        run: `(model, classes, seed, steps, snapshot_steps) -> {steps: (images, transparency)}`.
        snapshots: whether one long run gives every budget (settings independent of the length).
        note: what it is, for the table.
        source, post: a method that only post-processes another's pictures names it and
            maps its (images, transparency) to pictures (nothing is optimized again).
        key: what its saved runs are named by (default: `note`), so that a note can be
            reworded without recomputing the runs it describes.
    """

    run: Optional[Callable]
    snapshots: bool
    note: str
    source: Optional[str] = None
    post: Optional[Callable] = None
    key: Optional[str] = None


def per_budget(function):
    """Marks a setting that depends on the run's length: `steps -> value`."""
    function.per_budget = True
    return function


class CoarseToFineNadam(keras.optimizers.Nadam):
    """NAdam that updates only the phases of frequencies below a cutoff growing with the steps.

    The cutoff, a radius in the spectrum normalized to 1 at the corner frequency, grows
    linearly from `1 / open_steps` to 1 over the first `open_steps` steps, so the low
    frequencies (the layout) are optimized first and the high ones (the detail) join
    later. The phase variable is (N, C, H, W // 2 + 1): the frequencies are read from its
    shape. Frequencies above the cutoff keep their random initial phase meanwhile.
    """

    def __init__(self, open_steps=32, **kwargs):
        if int(open_steps) < 1:
            raise ValueError(f"expected open_steps >= 1, received: open_steps={open_steps}")
        super().__init__(**kwargs)
        self.open_steps = int(open_steps)

    def update_step(self, gradient, variable, learning_rate):
        height, half_width = variable.shape[-2:]
        radius = tf.constant(maco_keras.spectrum.frequency_radius((height, 2 * (half_width - 1))), gradient.dtype)
        cutoff = tf.minimum(1.0, tf.cast(self.iterations + 1, gradient.dtype) / self.open_steps)
        gradient = gradient * tf.cast(radius <= cutoff, gradient.dtype)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "open_steps": self.open_steps}


def cosine_decay(steps):
    """The learning rate decayed from 1.0 to 0.1 over the run (cosine)."""
    return keras.optimizers.schedules.CosineDecay(1.0, decay_steps=steps, alpha=0.1)


@per_budget
def large_crops_first(steps):
    """The mean crop area decreasing linearly from 0.5 to 0.25 of the image over the run."""
    return np.linspace(0.5, 0.25, steps)


def from_data(function):
    """Marks a setting computed from the subject and the classes: `(model, classes) -> value` (a prior from data)."""
    function.from_data = True
    return function


@functools.lru_cache(maxsize=None)
def natural_images():
    return load_natural(shared_dir(), 512, VALUES_RANGE)


EXAMPLES_PER_UNIT = 8


def unit_examples(model, classes, count=EXAMPLES_PER_UNIT):
    """Each class's `count` dataset examples: the shared photos its logit ranks highest, among those that
    no score sees (not the judges' reference photos, 1 mod 4, nor the visualized classes' own photos)."""
    natural, labels = natural_images()
    pool = natural[(labels % 4 == 3) & ~np.isin(labels, classes)]
    logits = metrics.model_outputs(model, pool)
    return [pool[np.argsort(-logits[:, unit], kind="stable")[:count]] for unit in classes]


NATURAL_REFERENCES = 32


def natural_references(model, classes, count=NATURAL_REFERENCES):
    """`count` photos of no particular class, the same for every class: spread evenly over the pool of
    `unit_examples` (photos no score sees), whatever the model ranks them."""
    natural, labels = natural_images()
    pool = natural[(labels % 4 == 3) & ~np.isin(labels, classes)]
    return pool[np.linspace(0, len(pool) - 1, count).round().astype(int)]


@from_data
def examples_magnitude(model, classes):
    """One magnitude per class, the mean of its dataset examples' (`unit_examples`)."""
    return np.stack([maco_keras.compute_magnitude(images, values_range=VALUES_RANGE)
                     for images in unit_examples(model, classes)])


def distribution_layers(model):
    """Three layers for VITAL's term, spread along the path and none of the faithfulness check's."""
    return metrics.path_layers(model, 9)[0:7:3]


def vital_method(note, weight, references=unit_examples):
    """The fast preset, each class's logit plus `weight` times VITAL's feature distribution term towards its
    references: `references(model, classes)` gives one set per class (default: its dataset examples,
    `unit_examples`, one class at a time: a unit's picture does not depend on its batch), or one set for all
    (`natural_references`: all the classes in one batch)."""
    def run(model, classes, seed, steps, snapshot_steps):
        layers = distribution_layers(model)
        found = references(model, classes)
        batches = ([([int(unit)], images) for unit, images in zip(classes, found)] if isinstance(found, list)
                   else [([int(unit) for unit in classes], found)])
        results = []
        for units, images in batches:
            objective = (objectives.logit(model, units)
                         + weight * objectives.feature_distribution(model, layers, images))
            results.append(maco_keras.maco(objective, seed=seed, steps=steps, crops=32, values_range=VALUES_RANGE,
                                           verbose=False, return_visualization=True, snapshot_steps=snapshot_steps,
                                           **maco_keras.presets.schedules("fast")))
        return {steps: (np.concatenate([r.images for r in results]),
                        np.concatenate([r.transparency for r in results]))}

    return Method(run, False, note)


def maco_method(note, **overrides):
    def run(model, classes, seed, steps, snapshot_steps):
        # The paper's settings (maco's defaults until the fifth pass), then the method's changes.
        paper = maco_keras.presets.schedules("paper")
        if "optimizer" in overrides:
            paper.pop("learning_rate")  # the method's optimizer keeps its own rate (a schedule of its own)
        kwargs = {"crops": 32, **paper,
                  **{key: value(steps) if getattr(value, "per_budget", False) else value
                     for key, value in overrides.items()}}
        kwargs = {key: value(model, classes) if getattr(value, "from_data", False) else value
                  for key, value in kwargs.items()}
        result = maco_keras.maco(model, units=classes, seed=seed, steps=steps, values_range=VALUES_RANGE,
                                 verbose=False, return_visualization=True, snapshot_steps=snapshot_steps, **kwargs)
        return {**result.snapshots, steps: (result.images, result.transparency)}

    return Method(run, not any(getattr(value, "per_budget", False) for value in overrides.values()), note)


def fast_preset(note, **overrides):
    """The package's `PRESETS["fast"]` (its schedules scale with the steps: one run per budget), with `overrides`."""
    return Method(maco_method(note, **{**maco_keras.presets.schedules("fast"), **overrides}).run, False, note)


def baseline_method(function, note):
    def run(model, classes, seed, steps, snapshot_steps):
        result = function(model, units=classes, seed=seed, steps=steps, values_range=VALUES_RANGE, verbose=False,
                          return_visualization=True, snapshot_steps=snapshot_steps)
        return {**result.snapshots, steps: (result.images, result.transparency)}

    return Method(run, True, note)


def xplique_run(model, classes, seed, steps, snapshot_steps):
    np.random.seed(seed)  # Xplique draws its phase from NumPy and its crops from TF
    tf.random.set_seed(seed)
    outputs = [xplique_maco(Objective.neuron(model, -1, int(unit)), nb_steps=steps, values_range=VALUES_RANGE)
               for unit in classes]
    return {steps: (np.stack([np.asarray(o[0]) for o in outputs]), np.stack([np.asarray(o[1]) / steps for o in outputs]))}


METHODS = {
    "MACO": dataclasses.replace(
        maco_method("the paper's settings (PRESETS['paper'], maco's defaults until the fifth pass): 32 crops of "
                    "N(0.25, 0.1) of the area, noise 0.1, NAdam lr 1.0, contrast 1"),
        key="today's defaults: 32 crops of N(0.25, 0.1) of the area, noise 0.1, NAdam lr 1.0"),
    "MACO, composited": Method(None, True, "MACO composited over grey with its transparency", source="MACO",
                               post=lambda images, transparency: plots.apply_transparency(images, transparency,
                                                                                          VALUES_RANGE)),
    "MACO, lr 1 to 0.1 (cosine)": maco_method(
        "learning rate decayed from 1.0 to 0.1 over the run (cosine)",
        optimizer=per_budget(lambda steps: keras.optimizers.Nadam(cosine_decay(steps)))),
    "MACO, crop scale 0.5 to 0.25": maco_method(
        "mean crop area decreasing linearly from 0.5 to 0.25 of the image (large structure first)",
        crop_scale=large_crops_first),
    "MACO, cosine lr and crop scale 0.5 to 0.25": maco_method(
        "both of the above: learning rate 1.0 to 0.1 (cosine) and mean crop area 0.5 to 0.25",
        optimizer=per_budget(lambda steps: keras.optimizers.Nadam(cosine_decay(steps))),
        crop_scale=large_crops_first),
    "MACO, coarse to fine": maco_method(
        "only the phases below a frequency cutoff are updated; the cutoff opens linearly over the first half "
        "of the run (low frequencies first)",
        optimizer=per_budget(lambda steps: CoarseToFineNadam(open_steps=steps // 2, learning_rate=1.0))),
    "MACO, coarse to fine and cosine lr": maco_method(
        "coarse to fine as above, with the learning rate decayed from 1.0 to 0.1 (cosine) over the run",
        optimizer=per_budget(lambda steps: CoarseToFineNadam(open_steps=steps // 2,
                                                             learning_rate=cosine_decay(steps)))),
    "MACO, coarse to fine, cosine lr and crop scale 0.5 to 0.25": maco_method(
        "coarse to fine over the first half of the run, learning rate 1.0 to 0.1 (cosine) and mean crop area "
        "0.5 to 0.25",
        optimizer=per_budget(lambda steps: CoarseToFineNadam(open_steps=steps // 2,
                                                             learning_rate=cosine_decay(steps))),
        crop_scale=large_crops_first),
    "MACO, coarse to fine over a quarter and cosine lr": maco_method(
        "coarse to fine with the cutoff opening over the first quarter of the run, learning rate 1.0 to 0.1 "
        "(cosine)",
        optimizer=per_budget(lambda steps: CoarseToFineNadam(open_steps=steps // 4,
                                                             learning_rate=cosine_decay(steps)))),
    "MACO, fast preset": fast_preset(
        "the package's PRESETS['fast'] at the given steps: coarse to fine over half the run, learning rate "
        "Ramp(1.0, 0.1, 'cosine'), mean crop area Ramp(0.5, 0.25), contrast 0.7"),
    "MACO, fast preset, anti-aliased crops": fast_preset(
        "the fast preset with antialias=True: crops cut at twice the model input and box-filtered 2x2 (Horama's "
        "anti-aliased crops)", antialias=True),
    "MACO, fast preset, complex phase": fast_preset(
        "the fast preset with phase_as='complex': each phase a complex number, normalized when rendered",
        phase_as="complex"),
    "MACO, fast preset, ImageNet pixel statistics": fast_preset(
        "the fast preset with pixel_statistics='imagenet': each RGB channel rendered with ImageNet's pixel mean "
        "and standard deviation (0.485, 0.456, 0.406; 0.229, 0.224, 0.225) instead of one standardization to "
        "contrast 0.7", pixel_statistics="imagenet"),
    "MACO, fast preset, examples' magnitude (data)": fast_preset(
        f"a prior from data: the fast preset with each class's own magnitude, the mean of its {EXAMPLES_PER_UNIT} "
        "dataset examples' (the shared photos its logit ranks highest, none of which any score uses)",
        magnitude=examples_magnitude),
    "MACO, fast preset, VITAL term, natural references (data)": vital_method(
        f"a prior from data: as the VITAL term above (the same weight, 0.1, and layers), towards "
        f"{NATURAL_REFERENCES} photos of no particular class, the same for every class (spread over the photos "
        "no score sees): like photos in general, rather than like the class's own", 0.1, natural_references),
    "MACO, fast preset, VITAL term (data)": dataclasses.replace(vital_method(
        f"a prior from data: the fast preset, the class's logit plus 0.1 x VITAL's feature distribution term "
        f"(sorted per-channel activations at 3 layers, none of the faithfulness check's) towards its "
        f"{EXAMPLES_PER_UNIT} dataset examples (as above); 0.1: in a probe (vital_weight.py, 2 classes, 32 steps) "
        f"the smallest weight at which the term's distance reached its floor, the logit intact", 0.1),
        # What its saved runs are named by (the note's first wording).
        key=f"a prior from data: the fast preset, the class's logit plus 0.1 x VITAL's feature distribution term "
            f"(sorted per-channel activations at 3 layers, none of the faithfulness check's) towards its "
            f"{EXAMPLES_PER_UNIT} dataset examples (as above); 0.1: in a probe (2 classes, 32 steps) the weight "
            f"past which the term's distance fell no further and the logit began to fall"),
    "MACO, fast preset, NAdam epsilon 1e-4": fast_preset(
        "the fast preset with NAdam's epsilon at 1e-4 instead of Keras's 1e-7: for a logit, the optimizer of "
        "the versions before format 3, which maximized it at Xplique's scale (divided by the 1000 classes) "
        "with epsilon 1e-7 (Adam's step is unchanged when the gradient and epsilon are scaled together)",
        optimizer=keras.optimizers.Nadam(learning_rate=1.0, epsilon=1e-4)),
    "MACO, fast preset, contrast 1": fast_preset(
        "the fast preset with contrast=1.0, the paper's standardization (PRESETS['fast'] until the fourth "
        "pass; the third pass's 'MACO, fast preset')", contrast=1.0),
    "MACO, fast preset, 16 crops": fast_preset(
        "the fast preset with contrast=1.0 and 16 crops per step instead of 32: at 128 steps, the compute of "
        "the fast preset at 64 steps (a quarter of the paper's 256 x 32 crops), spent on more steps",
        contrast=1.0, crops=16),
    "MACO, fast preset, contrast 1.9": fast_preset(
        "the fast preset with contrast=1.9: the image standardized to 1.9 instead of 1 before the sigmoid, "
        "which gives a Gaussian image the pixel standard deviation of ImageNet photos (0.23 of the range, "
        "against 0.14 at contrast 1 and 0.10 at the preset's 0.7)", contrast=1.9),
    "MACO, 16 crops": maco_method("16 crops per step instead of 32 (half the compute per step)", crops=16),
    "Fourier": baseline_method(baselines.fourier, "Lucid's Fourier parameterization (decay 0.85, Adam 0.05)"),
    "CBR": baseline_method(baselines.pixel, "pixels (Adam 0.05)"),
    "Xplique maco": Method(xplique_run, False, "xplique.features_visualizations.maco, its defaults"),
}


BASELINES = ("Fourier", "CBR", "Xplique maco")


def pick_classes(count, class_set=0):
    """`count` classes among the held-out ones (3 mod 4, not in the paper tables), spread evenly.

    Set 0 spans the candidates end to end; set 1 is as evenly spread, inset by half a
    spacing at both ends: another held-out sample of ImageNet, none of set 0's classes.
    Set 2 spans the candidates that neither set 0 nor set 1 of 6 classes holds: the 12
    classes the fast preset was chosen on are left out, so set 2 tests it on classes
    that played no part in choosing it."""
    candidates = [c for c in range(3, 1000, 4) if c not in PAPER_TABLE_CLASSES]
    if class_set == 2:
        chosen_on = set(pick_classes(6, 0)) | set(pick_classes(6, 1))
        candidates = [c for c in candidates if c not in chosen_on]
        class_set = 0
    inset = class_set * (len(candidates) - 1) / count / 2
    positions = np.linspace(inset, len(candidates) - 1 - inset, count)
    return [candidates[i] for i in np.unique(positions.round().astype(int))]


def run_key(subject, name, seed, steps, classes):
    settings = dict(subject=subject, method=name, seed=seed, steps=steps, image_size=512, classes=classes,
                    note=METHODS[name].key or METHODS[name].note, version=maco_keras.__version__)
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def save_atomically(path, **arrays):
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(temporary, **arrays)
    os.replace(temporary, path)


def make_pictures(args, subject, model, name, classes, seed):
    """{budget: (pictures, seconds per picture)} for one method, subject and seed (saved, reused)."""
    method = METHODS[name]
    if method.source is not None:
        made = make_pictures_of(args, subject, model, method.source, classes, seed)
        return {budget: (method.post(images, transparency), seconds)
                for budget, ((images, transparency), seconds) in made.items()}
    return {budget: (images, seconds)
            for budget, ((images, _), seconds) in make_pictures_of(args, subject, model, name, classes, seed).items()}


def make_pictures_of(args, subject, model, name, classes, seed):
    method = METHODS[name]
    if name in BASELINES:
        budgets = args.xplique_budgets if name == "Xplique maco" else args.baseline_budgets
    else:
        budgets = args.budgets if method.snapshots else args.schedule_budgets
    budgets = sorted(budgets)
    runs = [(max(budgets), budgets[:-1])] if method.snapshots else [(b, []) for b in budgets]
    pictures = {}
    for steps, snapshot_steps in runs:
        key = run_key(subject, name, seed, steps, classes)
        path = args.out / f"{subject}-{plots.file_name(name)}-s{seed}-{steps}-{key}.npz"
        if not path.exists() and args.saved_only:
            continue
        if path.exists():
            saved = np.load(path)
            shots = {int(k[7:]): (saved[k], saved["transparency_" + k[7:]].astype(np.float32))
                     for k in saved.files if k.startswith("images_")}
            seconds_per_step = float(saved["seconds_per_step"])
        else:
            start = time.perf_counter()
            shots = method.run(model, classes, seed, steps, snapshot_steps)
            seconds_per_step = (time.perf_counter() - start) / steps / len(classes)
            arrays = {f"images_{s}": images for s, (images, _) in shots.items()}
            arrays.update({f"transparency_{s}": t.astype(np.float16) for s, (_, t) in shots.items()})
            save_atomically(path, seconds_per_step=seconds_per_step, **arrays)
            print(f"{subject} {name} seed {seed}: {steps} steps in {seconds_per_step * steps * len(classes):.0f} s",
                  flush=True)
        for budget, shot in shots.items():
            pictures[budget] = (shot, seconds_per_step * budget)
    return pictures


class Realism:
    """Plausibility, Deep-KNN, FID and KID of pictures against `reference` photos, in the features of
    `judge` (MobileNetV1-0.5): 1-NN distance in pooled `conv_pw_11_relu` features, 1-NN distance of
    normalized pooled `conv_pw_13_relu` features, and FID / KID in pooled `conv_pw_13_relu` features
    of the pictures' 299/512 centre crops."""

    def __init__(self, judge, reference):
        self.plausibility_model = metrics.feature_model(judge, "conv_pw_11_relu")
        self.fid_model = metrics.feature_model(judge, "conv_pw_13_relu")
        self.reference_plausibility = metrics.model_outputs(self.plausibility_model, reference)
        self.reference_fid = metrics.model_outputs(self.fid_model, reference)

    def deep_knn(self, images):
        """Each picture's 1-NN distance to the reference photos in normalized pooled `conv_pw_13_relu` features."""
        return metrics.plausibility(metrics.model_outputs(self.fid_model, images), self.reference_fid, normalize=True)

    def __call__(self, images):
        images = np.asarray(images, np.float32)
        plausibility = metrics.plausibility(metrics.model_outputs(self.plausibility_model, images),
                                            self.reference_plausibility)
        deep_knn = self.deep_knn(images)
        crops = metrics.model_outputs(self.fid_model, metrics.center_crop(images, 299 / 512))
        return {
            "plausibility": float(plausibility.mean()),
            "deep_knn": float(deep_knn.mean()),
            "fid": metrics.frechet_distance(crops, self.reference_fid),
            "kid": metrics.kernel_distance(crops, self.reference_fid),
        }


class Scorer:
    """The paper's metrics for a set of pictures of `classes`, against the reference photos."""

    def __init__(self, shared, subject, model, classes):
        self.classes = np.asarray(classes)
        load = lambda file: keras.models.load_model(shared / "models" / file)  # noqa: E731
        self.subject = model  # the subject, already loaded by the caller
        self.judges = {name: load(file) for name, file in JUDGES.items()}
        other = next(key for key in SUBJECTS if key != subject)
        self.judges[SUBJECTS[other][0]] = load(SUBJECTS[other][1])
        natural, labels = load_natural(shared, 512, VALUES_RANGE)
        self.realism = Realism(self.judges["MobileNetV1-0.5"], natural[labels % 4 == 1])
        self.photos = natural[[int(np.flatnonzero(labels == c)[0]) for c in classes]]
        # The faithfulness check's natural images: the classes' own photos, then the reference photos.
        self.path_layers = metrics.path_layers(model)
        self.path_labels = np.concatenate([self.classes, labels[labels % 4 == 1]])
        self.path_natural = metrics.layer_activations(model, self.path_layers,
                                                      np.concatenate([self.photos, natural[labels % 4 == 1]]))

    def path(self, images, photos=False):
        """The faithfulness check's AUCs, mean over the path's layers and at its ends."""
        natural = self.path_natural
        if photos:
            # A photo is not its own evidence: its class is represented by another view of it.
            views = np.asarray(metrics.center_crop(images[:, :, ::-1], 0.8), np.float32)
            own = metrics.layer_activations(self.subject, self.path_layers, views)
            natural = {layer: np.concatenate([own[layer], values[len(self.classes):]])
                       for layer, values in natural.items()}
        aucs = metrics.path_similarity(metrics.layer_activations(self.subject, self.path_layers, images),
                                       self.classes, natural, self.path_labels)
        by_layer = [float(aucs[layer].mean()) for layer in self.path_layers]
        return {"path": float(np.mean(by_layer)), "path_first": by_layer[0], "path_last": by_layer[-1]}

    def __call__(self, images, photos=False):
        images = np.asarray(images, np.float32)
        whole = metrics.transferability(self.judges, images, self.classes)
        centre = metrics.transferability(self.judges, metrics.center_crop(images, 0.5), self.classes)
        return {
            **self.realism(images),
            "transfer1": float(np.mean([by_k[1] for by_k in whole.values()])),
            "transfer5": float(np.mean([by_k[5] for by_k in whole.values()])),
            "centre1": float(np.mean([by_k[1] for by_k in centre.values()])),
            "centre5": float(np.mean([by_k[5] for by_k in centre.values()])),
            "logit": metrics.logit_magnitude(self.subject, images, self.classes),
            **self.path(images, photos),
        }


def summarize(per_seed):
    """{metric: (mean, sd over seeds)} from a list of per-seed metric dicts."""
    return {key: (float(np.mean([m[key] for m in per_seed])),
                  float(np.std([m[key] for m in per_seed], ddof=1)) if len(per_seed) > 1 else float("nan"))
            for key, *_ in METRICS}


def cell(value, spread, fmt):
    return format(value, fmt) + ("" if np.isnan(spread) else f" ± {format(spread, fmt)}")


def plot(rows, photos, path):
    shown = [("deep_knn", "Deep-KNN (lower is better)"), ("kid", "KID (lower is better)"),
             ("centre5", "transfer, centre top-5"), ("logit", "target logit"), ("path", "path AUC (faithfulness)")]
    subjects = list(rows)
    figure, axes = plt.subplots(len(subjects), len(shown), figsize=(4.2 * len(shown) + 3, 3.4 * len(subjects)),
                                squeeze=False)
    # One colour per method (the default cycle repeats after 10), in the order of METHODS.
    colours = {name: plt.cm.tab20(index % 20) for index, name in enumerate(METHODS)}
    for row, subject in enumerate(subjects):
        by_method = {}
        for (name, budget), (seconds, summary) in rows[subject].items():
            by_method.setdefault(name, []).append((seconds, budget, summary))
        for col, (key, title) in enumerate(shown):
            axis = axes[row][col]
            for name, points in by_method.items():
                points.sort()
                x = [p[0] for p in points]
                y = np.array([p[2][key][0] for p in points])
                err = np.array([p[2][key][1] for p in points])
                axis.errorbar(x, y, yerr=None if np.all(np.isnan(err)) else err, marker="o", ms=3, capsize=2,
                              label=name, linewidth=1, color=colours[name])
                for seconds, budget, summary in points:
                    axis.annotate(str(budget), (seconds, summary[key][0]), fontsize=6, alpha=0.7)
            axis.axhline(photos[subject][key], color="k", linestyle="--", linewidth=1, label="real photos")
            axis.set_xscale("log")
            axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            axis.set_xlabel("wall seconds per picture (2 CPU cores)")
            axis.set_title(f"{SUBJECTS[subject][0]}: {title}", fontsize=9)
            if row == 0 and col == len(shown) - 1:
                axis.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle("Quality against compute (numbers: steps; bars: sd over seeds; dashed: real photos)",
                    fontsize=10)
    figure.tight_layout()
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(temporary, dpi=80)
    os.replace(temporary, path)
    plt.close(figure)


def gallery(photos, pictures, captions, path):
    """Each class's photo beside each method's picture of it (one row per class): the same units, side by side."""
    columns = ["real photo"] + list(pictures)
    figure, axes = plt.subplots(len(photos), len(columns), figsize=(1.9 * len(columns), 1.9 * len(photos)),
                                squeeze=False)
    for column, (title, images) in enumerate([("real photo", photos)] + list(pictures.items())):
        for row, image in enumerate(images):
            axis = axes[row][column]
            axis.imshow(np.clip((np.asarray(image) - VALUES_RANGE[0]) / (VALUES_RANGE[1] - VALUES_RANGE[0]), 0, 1))
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(textwrap.fill(title, 26), fontsize=7)
            if column == 0:
                axis.set_ylabel(captions[row], fontsize=7)
    figure.tight_layout()
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(temporary, dpi=60)
    os.replace(temporary, path)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", nargs="+", default=list(SUBJECTS), choices=list(SUBJECTS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--classes", type=int, default=8, help="classes visualized (held out, spread over ImageNet)")
    parser.add_argument("--class-set", type=int, default=0, choices=(0, 1, 2),
                        help="0: the default classes; 1: those halfway between them (a second held-out sample); "
                             "2: spread over the held-out classes that sets 0 and 1 of 6 (where the fast preset was "
                             "chosen) do not hold")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--baseline-seeds", type=int, nargs="+", help="seeds of the baselines (default: --seeds)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[32, 64, 128, 256],
                        help="step budgets of MACO and its variants of fixed settings (one run, snapshots)")
    parser.add_argument("--schedule-budgets", type=int, nargs="+", default=[64],
                        help="budgets of the variants whose schedules depend on the length (one run each)")
    parser.add_argument("--baseline-budgets", type=int, nargs="+", default=[32, 64, 128],
                        help="budgets of Fourier and CBR (one run, snapshots)")
    parser.add_argument("--xplique-budgets", type=int, nargs="+", default=[64])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "benchmarks" / "out" / "frontier")
    parser.add_argument("--results", type=pathlib.Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument("--tag", default="",
                        help="writes its own sections and figures (e.g. 'fourth pass'), beside those of other tags")
    parser.add_argument("--gallery", action="store_true",
                        help="also draw figures/gallery_<subject>.png: each class's photo beside every method's "
                             "picture (the first seed; one column per budget)")
    parser.add_argument("--saved-only", action="store_true",
                        help="run nothing: score the saved runs only (a row's seeds are those of --seeds saved)")
    args = parser.parse_args()
    args.baseline_seeds = args.baseline_seeds or args.seeds
    for name, values in (("budgets", args.budgets), ("xplique-budgets", args.xplique_budgets),
                         ("schedule-budgets", args.schedule_budgets), ("baseline-budgets", args.baseline_budgets),
                         ("classes", [args.classes])):
        if min(values) < 1:
            parser.error(f"expected positive --{name}, received: {values}")
    shared = shared_dir()
    labels = (shared / "imagenet_labels.txt").read_text().splitlines()
    classes = pick_classes(args.classes, args.class_set)
    class_line = (f"Classes ({len(classes)}, held out" + (f", set {args.class_set}" if args.class_set else "") + "): "
                  + ", ".join(f"{c} {labels[c].split(',')[0]}" for c in classes) + ".")
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    intro = [
        "# Quality against compute (frontier)", "",
        "Classes (6, held out) of the sections that do not list theirs: " + ", ".join(
            f"{c} {labels[c].split(',')[0]}" for c in pick_classes(6)) + ".  ",
        "Each cell is the mean over seeds ± their standard deviation (none with one seed); each seed's value is "
        f"itself a mean over the {len(classes)} classes. Real photos: the classes' own photos, not in the reference "
        "set. s / picture: wall seconds per picture on this machine (2 CPU cores), the fastest seed's call (a "
        "configuration's first call also traces); a budget read from a snapshot of a longer run is charged its "
        "share of that run's steps. With `--saved-only`, a row averages those of the requested seeds that "
        "had a saved run; its seeds column counts them.", "",
        "Methods (a section shows only those it ran): "
        + "; ".join(f"**{name}**: {note.note}" for name, note in METHODS.items()) + ".", "",
        "Metrics: plausibility = 1-NN distance to the reference photos in MobileNetV1-0.5 pooled "
        "`conv_pw_11_relu` features; Deep-KNN = the same with normalized features (cosine geometry) in its "
        "pooled `conv_pw_13_relu` features, where the photos are the nearest; FID / KID in its pooled `conv_pw_13_relu` features of the 299/512 centre "
        "crops (same sample size in every row); transfer / centre = top-k accuracy, averaged over the networks "
        "that did not make the picture (the MobileNetV1s and the other subject), on the whole picture or its "
        "central half; logit = the subject's target logit; path AUC = the faithfulness check (Geirhos et al.): at 4 "
        "layers along the subject's path, how often the photo of the picture's class is closer to it than a "
        "reference photo of another class (0.5: chance; the real photos' row compares each with a mirrored, "
        "cropped view of itself). ↓ lower is better, ↑ higher is better. One section "
        "per subject follows, each with the command that wrote it.",
    ]
    write_section(args.results, "frontier", "\n".join(intro))
    for subject in args.subjects:
        start = time.perf_counter()
        model = keras.models.load_model(shared / "models" / SUBJECTS[subject][1])
        scorer = Scorer(shared, subject, model, classes)
        photos = scorer(scorer.photos, photos=True)
        rows, shown = {}, {}
        for name in args.methods:
            seeds = args.baseline_seeds if name in BASELINES else args.seeds
            per_seed = [make_pictures(args, subject, model, name, classes, seed) for seed in seeds]
            for budget in sorted(per_seed[0] if per_seed else ()):
                shown[name if len(per_seed[0]) == 1 else f"{name}, {budget} steps"] = per_seed[0][budget][0]
            for budget in sorted(set().union(*per_seed)):
                runs = [pictures[budget] for pictures in per_seed if budget in pictures]  # all, unless --saved-only
                rows[(name, budget)] = (min(seconds for _, seconds in runs), len(runs),
                                        summarize([scorer(pictures) for pictures, _ in runs]))
        maco_keras.clear_cache()
        header = (["method", "steps", "seeds", "s / picture"]
                  + [title + (" ↓" if not up else " ↑") for _, title, _, up in METRICS])
        body = [["real photos", "", "", ""] + [format(photos[key], fmt) for key, _, fmt, _ in METRICS]]
        body += [[name, budget, count, f"{seconds:.0f}"] + [cell(*summary[key], fmt) for key, _, fmt, _ in METRICS]
                 for (name, budget), (seconds, count, summary) in rows.items()]
        suffix = f"_{plots.file_name(args.tag)}" if args.tag else ""
        figure = args.results.parent / "figures" / f"frontier_{subject}{suffix}.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        plot({subject: {key: (seconds, summary) for key, (seconds, _, summary) in rows.items()}},
             {subject: photos}, figure)
        command = ("python benchmarks/frontier.py --subjects " + subject + " --methods "
                   + " ".join(f'"{m}"' for m in args.methods) + f" --classes {args.classes}"
                   + (f" --class-set {args.class_set}" if args.class_set else "") + " --seeds "
                   + " ".join(map(str, args.seeds)) + " --baseline-seeds " + " ".join(map(str, args.baseline_seeds))
                   + " --budgets " + " ".join(map(str, args.budgets))
                   + " --schedule-budgets " + " ".join(map(str, args.schedule_budgets))
                   + " --baseline-budgets " + " ".join(map(str, args.baseline_budgets))
                   + " --xplique-budgets " + " ".join(map(str, args.xplique_budgets))
                   + (f' --tag "{args.tag}"' if args.tag else "") + (" --gallery" if args.gallery else "")
                   + (" --saved-only" if args.saved_only else ""))
        table = markdown_table(header, body)
        print(table, flush=True)
        title = SUBJECTS[subject][0] + (f", {args.tag}" if args.tag else "")
        lines = [f"## {title}", "",
                 f"Command: `{command}` ({(time.perf_counter() - start) / 60:.0f} min; saved runs are reused).", "",
                 class_line, "", table, "", f"![frontier, {title}](figures/{figure.name})"]
        if args.gallery and shown:
            pictures = figure.with_name(f"gallery_{subject}{suffix}.png")
            gallery(scorer.photos, shown, [f"{c} {labels[c].split(',')[0]}" for c in classes], pictures)
            lines += ["", f"![the same classes: photos and pictures, {title}](figures/{pictures.name})"]
        write_section(args.results, frontier_section(subject, args.tag), "\n".join(lines))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
