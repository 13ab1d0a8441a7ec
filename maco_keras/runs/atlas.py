"""`maco-keras atlas`: a run folder as a static site, like the Lens site or OpenAI Microscope.

The site opens from the file system (no server, nothing fetched from the network):
- `index.html`: a thumbnail per unit with its number and name, drawn a page at a time
  from data embedded in the page, a search box that filters by name or number, and
  lazily loaded thumbnails, so 10,000 units open as quickly as 100;
- `pages/unit_<u>.html`: the image, a toggle for the transparency overlay, the score per
  step, the settings, and, with `--examples`, the natural images that most activate the
  unit (Microscope's "dataset examples", with the patch where a channel peaks), found in one
  streaming pass over the folder (`examples`).

Names come from a labels file, else ImageNet's class names for 1000 logits. Every name
is HTML-escaped (Jinja2 autoescaping): a label is shown as text, never run.
"""

import importlib.resources
import io
import json
import pathlib
import sys

import numpy as np
from markupsafe import Markup
from PIL import Image

from . import examples as examples_lib
from . import results
from . import storage
from .. import validation

THUMBNAIL = 160

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; background: #fafafa; color: #222; }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
#search { font-size: 1rem; padding: .3rem .5rem; width: 18rem; }
.grid { display: flex; flex-wrap: wrap; gap: .6rem; margin-top: 1rem; }
.card { width: 160px; text-decoration: none; color: inherit; font-size: .8rem; }
.card img { width: 160px; height: 160px; background: #ddd; display: block; }
.card[hidden] { display: none; }
.viewer { position: relative; width: min(512px, 95vw); }
.viewer img { width: 100%; display: block; }
.viewer .overlay { display: none; background: #808080; }
.viewer.transparency .plain { display: none; }
.viewer.transparency .overlay { display: block; }
table { border-collapse: collapse; font-size: .85rem; }
td, th { border-bottom: 1px solid #ddd; padding: .2rem .6rem; text-align: left; }
.examples { display: flex; flex-wrap: wrap; gap: .5rem; }
.examples figure { margin: 0; font-size: .75rem; max-width: 260px; overflow-wrap: anywhere; }
.examples img { width: 128px; height: 128px; object-fit: cover; }
.crumbs { font-size: .9rem; margin-bottom: .5rem; }
.pager { margin-top: 1rem; }
#matches { margin-left: .6rem; font-size: .85rem; color: #555; }
.layer { margin: 1.2rem 0; }
.layer h2 { font-size: 1.05rem; margin: 0 0 .3rem; }
.results { display: flex; flex-wrap: wrap; gap: .6rem; margin-top: .6rem; }
"""

_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ style }}</style></head>
<body>
{% if parent %}<nav class="crumbs"><a href="../index.html">{{ parent }}</a> &rsaquo; {{ layer }}</nav>{% endif %}
<header><h1>{{ title }}</h1>
<span>{{ count }} units of {{ layer }} ({{ kind }}s), {{ method }}, {{ steps }} steps{% if pending %};
{{ pending }} not finished yet{% endif %}</span></header>
<input id="search" type="search" placeholder="Filter by name or number" autofocus>
<span id="matches"></span>
<div class="grid" id="grid"></div>
<nav class="pager"><button id="previous" type="button">&larr; previous</button>
<span id="page"></span> <button id="next" type="button">next &rarr;</button></nav>
<script id="units" type="application/json">{{ units_json }}</script>
<script>
// The units are data, drawn a page at a time: an atlas of 10,000 units opens as quickly as one of 100.
const units = JSON.parse(document.getElementById("units").textContent);
const PAGE = {{ page_size }};
const grid = document.getElementById("grid"), search = document.getElementById("search");
let matches = units, page = 0;
function card(unit) {
  const link = document.createElement("a");
  link.className = "card";
  link.href = `pages/unit_${unit.n}.html`;
  const image = document.createElement("img");
  image.loading = "lazy"; image.width = 160; image.height = 160;
  image.src = `thumbs/unit_${unit.n}.jpg`; image.alt = `unit ${unit.n}`;
  const label = document.createElement("span");
  label.textContent = unit.name ? `${unit.n} · ${unit.name}` : `${unit.n}`;  // text, never markup
  link.append(image, label);
  return link;
}
function render() {
  const pages = Math.max(1, Math.ceil(matches.length / PAGE));
  page = Math.min(page, pages - 1);
  grid.replaceChildren(...matches.slice(page * PAGE, (page + 1) * PAGE).map(card));
  document.getElementById("page").textContent = `page ${page + 1} of ${pages}`;
  document.getElementById("matches").textContent = `${matches.length} of ${units.length} units`;
  document.getElementById("previous").disabled = page === 0;
  document.getElementById("next").disabled = page >= pages - 1;
}
{{ matching_script|safe }}
search.addEventListener("input", () => {
  const words = searchWords(search.value);
  matches = words.length ? matching(units, words) : units;
  page = 0;
  render();
});
document.getElementById("previous").addEventListener("click", () => { page -= 1; render(); });
document.getElementById("next").addEventListener("click", () => { page += 1; render(); });
render();
</script>
</body></html>
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ kind }} {{ unit.number }}{% if unit.name %}: {{ unit.name }}{% endif %}</title>
<style>{{ style }}</style></head>
<body>
<nav class="crumbs">{% if parent %}<a href="../../index.html">{{ parent }}</a> &rsaquo; {% endif %}<a href="../index.html">{{ layer }}</a> &rsaquo; {{ kind }} {{ unit.number }}</nav>
<p><a href="../index.html">&larr; all units</a>
{% if previous is not none %}· <a href="unit_{{ previous }}.html">previous</a>{% endif %}
{% if next is not none %}· <a href="unit_{{ next }}.html">next</a>{% endif %}</p>
<h1 id="title">{{ kind }} {{ unit.number }}{% if unit.name %}: {{ unit.name }}{% endif %}</h1>
<p><button id="toggle" type="button" aria-pressed="false">Show transparency</button>
final score {{ unit.score }}</p>
<div class="viewer" id="viewer">
<img class="plain" src="../{{ unit.files.image }}" alt="visualization">
<img class="overlay" src="../{{ unit.files.transparency }}" alt="visualization with transparency">
</div>
<h2>Score per step</h2>
{{ curve|safe }}
{% if examples %}<h2>Natural images that activate it most</h2>
{% if examples[0].patch %}<p>Each image beside the patch around the channel's peak (3 cells of the layer's grid, at least a quarter of the image).</p>{% endif %}
<div class="examples">{% for example in examples %}<figure>{% if example.patch %}<img class="patch" src="../examples/{{ example.patch }}" alt="{{ example.name }}, patch at the peak">{% endif %}<img src="../examples/{{ example.thumbnail }}" alt="{{ example.name }}">
<figcaption>{{ example.name }} ({{ example.activation }})</figcaption></figure>{% endfor %}</div>{% endif %}
<h2>Settings</h2>
<table>{% for key, value in settings %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
<script>
const viewer = document.getElementById("viewer"), toggle = document.getElementById("toggle");
toggle.addEventListener("click", () => {
  const on = viewer.classList.toggle("transparency");
  toggle.setAttribute("aria-pressed", String(on));
  toggle.textContent = on ? "Show image" : "Show transparency";
});
</script>
</body></html>
"""


# The search of a layer's index and of a model page: a number matches a unit's number (or a
# number in its name) exactly, other words match within the unit's layer and name.
_MATCHING_SCRIPT = """
function searchWords(text) { return text.trim().toLowerCase().split(/\\s+/).filter(Boolean); }
function matching(units, words) {
  return units.filter(u => words.every(w => u.search.split(" ").some(part => part === w || (isNaN(w) && part.includes(w)))));
}
"""

# Cards drawn per page of a layer's index (the rest are a click, or a search, away).
PAGE_SIZE = 120


def script_json(value):
    """`value` as JSON to embed in a <script> block: what could close the block is escaped
    (`<`, `>`, `&` as \\u escapes); the page's own text is autoescaped by Jinja2."""
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def imagenet_labels():
    """The 1000 ImageNet class names, shortest form ("goldfish"), in class order."""
    text = importlib.resources.files("maco_keras").joinpath("data/imagenet_labels.txt").read_text()
    return [line.split(",")[0].strip() for line in text.splitlines()]


def read_labels(path, parameter="--labels"):
    """One name per line (line i = unit i)."""
    try:
        return pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"expected a readable UTF-8 text file, received: {parameter}={path} "
                         f"({type(error).__name__})") from None


def score_curve(scores, width=480, height=140):
    """An inline SVG line of the scores per step (numbers only: nothing to escape)."""
    scores = np.asarray(scores, np.float64)
    if scores.size == 0 or not np.all(np.isfinite(scores)):
        return "<p>no scores</p>"
    low, high = float(scores.min()), float(scores.max())
    span = high - low or 1.0
    pad = 30
    xs = pad + np.linspace(0, width - pad - 5, len(scores)) if len(scores) > 1 else np.array([pad])
    ys = 5 + (height - 25) * (1 - (scores - low) / span)
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    return (f'<svg id="curve" width="{width}" height="{height}" role="img" aria-label="score per step">'
            f'<polyline fill="none" stroke="#c0392b" stroke-width="1.5" points="{points}"/>'
            f'<text x="0" y="12" font-size="10">{high:.3g}</text>'
            f'<text x="0" y="{height - 20}" font-size="10">{low:.3g}</text>'
            f'<text x="{pad}" y="{height - 4}" font-size="10">step 1</text>'
            f'<text x="{width - 60}" y="{height - 4}" font-size="10">step {len(scores)}</text></svg>')


def _jpeg(image01, size):
    image = Image.fromarray((np.clip(image01, 0, 1) * 255).round().astype(np.uint8))
    image.thumbnail((size, size), Image.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


class AtlasJob:
    """A validated `atlas` command.

    Args:
        folder: a run folder (with `manifest.json`).
        labels: optional labels file (line i names unit i).
        examples: optional folder of natural images.
        top: examples per unit.
        model: the model for `examples` where the recorded one moved (it must have the
            recorded digest); by default the manifest's absolute path, else its model as named.
    """

    def __init__(self, folder, labels=None, examples=None, top=6, parent=None, model=None):
        self.folder = pathlib.Path(folder)
        self.parent = parent
        self.model = None
        if not (self.folder / results.MANIFEST).is_file():
            raise ValueError(f"expected a run folder with {results.MANIFEST} or {results.MODEL_MANIFEST} (from "
                             f"maco-keras visualize), received: FOLDER={folder}")
        self.manifest = results.RunFolder(self.folder).read()
        self.labels = read_labels(labels) if labels else None
        if examples is not None:
            examples_lib.image_paths(examples)  # a missing, empty or image-less folder: an error now, before any work
        self.examples = examples
        self.top = top
        self.model_source = self._model_source(model) if examples is not None else None

    def _model_source(self, given):
        """Where the model for dataset examples is: `given`, the recorded absolute path, or the model as named."""
        if given is not None:
            return given
        recorded = str(self.manifest["model"])
        candidates = [self.manifest.get("model_path"), recorded]
        for candidate in candidates:
            if candidate and pathlib.Path(candidate).is_file():
                return candidate
        is_name = "://" in recorded or recorded.startswith("hub:")  # a keras_hub preset by URL or prefix
        if not is_name and (pathlib.Path(recorded).suffix.lower() in validation.SAVED_SUFFIXES or "/" in recorded):
            raise ValueError(f"expected the run's model for --examples at {self.manifest.get('model_path') or recorded}"
                             f", received: no such file (the folder or the model moved?): pass --model PATH")
        return recorded  # a keras.applications name or a keras_hub preset

    def _write_examples(self, found):
        """Each ranked image's thumbnail (once per image) and, for a channel, its patch around the peak."""
        written, pages = set(), {}
        for unit, ranked in found.top.items():
            pages[unit] = []
            for rank, (index, activation, box) in enumerate(ranked):
                if index not in written:
                    image = np.asarray(Image.open(found.paths[index]).convert("RGB"), np.float32) / 255.0
                    results.write_atomic(self.folder / "examples" / f"example_{index}.jpg", _jpeg(image, 128))
                    written.add(index)
                entry = {"thumbnail": f"example_{index}.jpg", "name": found.paths[index].stem,
                         "activation": f"{activation:.3g}", "patch": None}
                if box is not None:
                    height, width = self.model.input_shape[1:3]
                    view = examples_lib.load_image(found.paths[index], height, width)
                    top, left, bottom, right = box
                    patch = view[int(top * height):max(int(bottom * height), int(top * height) + 1),
                                 int(left * width):max(int(right * width), int(left * width) + 1)]
                    entry["patch"] = f"patch_{unit}_{rank}.jpg"
                    results.write_atomic(self.folder / "examples" / entry["patch"],
                                         _jpeg(patch.astype(np.float32) / 255.0, 128))
                pages[unit].append(entry)
        return pages

    def names(self):
        if self.labels is not None:
            return self.labels
        if self.manifest.get("kind") == "logit" and self.manifest.get("num_units") == 1000:
            return imagenet_labels()
        return []

    def run(self):
        from jinja2 import Environment

        manifest = self.manifest
        names = self.names()
        recorded = sorted(int(unit) for unit, entry in manifest["units"].items() if entry.get("state") == "done")
        # A unit whose files do not match its record is left out and listed, never read.
        ours = results.settings_digest(manifest["settings"], manifest.get("model_digest"))
        damaged = {number: ("made with other settings than the manifest's"
                            if manifest["units"][str(number)].get("settings_digest") not in (None, ours)
                            else results.unit_damage(self.folder, number, manifest["units"][str(number)]))
                   for number in recorded}
        damaged = {number: why for number, why in damaged.items() if why is not None}
        done = [number for number in recorded if number not in damaged]
        pending = len(manifest["units"]) - len(recorded)
        units = []
        for number in done:
            entry = manifest["units"][str(number)]
            name = names[number] if number < len(names) else ""
            score = entry.get("score")
            units.append({"number": number, "name": name, "files": results.unit_files(number),
                          "score": "n/a" if score is None else f"{score:.4g}",
                          "search": f"{number} {name}".lower()})
        environment = Environment(autoescape=True)
        settings = manifest["settings"]
        values_range = tuple(settings["values_range"])
        kind = manifest.get("kind", "unit")
        examples = {}
        if self.examples is not None and done:
            from .. import models

            if self.model is None:
                weights = None if settings.get("weights") == "none" else "imagenet"
                self.model = models.load(self.model_source, weights=weights).model
                recorded_digest = manifest.get("model_digest")
                if recorded_digest and models.digest(self.model) != recorded_digest:
                    raise results.RunFolderError(
                        f"expected the run's model (digest {recorded_digest[:12]}) for --examples, received: "
                        f"{self.model_source}, another model (other weights or structure)")
            found = examples_lib.dataset_examples(self.model, manifest["layer"], kind, self.examples, values_range,
                                                  done, self.top, token=manifest.get("token"), verbose=sys.stdout.isatty())
            if found.skipped:
                print(f"examples: {len(found.skipped)} of {len(found.paths)} files could not be read and were skipped, "
                      f"e.g. {found.skipped[0]}", flush=True)
            examples = self._write_examples(found)
        page = environment.from_string(_PAGE)
        # The values used: where the manifest records None (the preset's schedules, a model file's weights), its
        # "used" entry says what they were.
        used = manifest.get("used", {})
        shown = {**{key: value for key, value in used.items() if key not in settings},
                 **{key: used.get(key, value) if value is None else value for key, value in settings.items()}}
        identity = [("model", manifest["model"])] + [(key, manifest[key]) for key in ("model_path", "model_digest")
                                                      if manifest.get(key)] + [("layer", manifest["layer"])]
        table = [(key, json.dumps(value) if isinstance(value, (list, dict)) else value)
                 for key, value in identity + sorted(shown.items()) + sorted(manifest.get("versions", {}).items())]
        pages = []
        for unit in units:
            try:
                pages.append((unit, results.load_unit(self.folder, unit["number"])))
            except Exception as error:  # a damaged archive of an older record without digests: many kinds of errors
                damaged[unit["number"]] = f"{results.unit_files(unit['number'])['data']} cannot be read ({error})"
        units = [unit for unit, _ in pages]
        if damaged:
            listed = ", ".join(f"{number} ({why})" for number, why in sorted(damaged.items())[:5])
            more = f" and {len(damaged) - 5} more" if len(damaged) > 5 else ""
            print(f"atlas: skipped {len(damaged)} damaged unit{'s' * (len(damaged) > 1)}: {listed}{more}; rerun "
                  "maco-keras visualize to redo them", flush=True)
        self.damaged = damaged
        for position, (unit, data) in enumerate(pages):
            results.write_atomic(self.folder / "thumbs" / f"unit_{unit['number']}.jpg",
                                 _jpeg(results.to_display(data["image"][None], values_range)[0], THUMBNAIL))
            text = page.render(
                style=_STYLE, kind=kind, unit=unit, curve=score_curve(data["scores"]), settings=table,
                parent=self.parent, layer=manifest["layer"],
                examples=examples.get(unit["number"], []),
                previous=units[position - 1]["number"] if position > 0 else None,
                next=units[position + 1]["number"] if position + 1 < len(units) else None)
            results.write_atomic(self.folder / "pages" / f"unit_{unit['number']}.html", text.encode())
        title = f"{pathlib.Path(str(manifest['model'])).stem} · {manifest['layer']}"
        listed = [{"n": unit["number"], "name": unit["name"], "search": unit["search"]} for unit in units]
        index = environment.from_string(_INDEX).render(
            title=title, style=_STYLE, count=len(units), units_json=script_json(listed), page_size=PAGE_SIZE,
            matching_script=_MATCHING_SCRIPT,
            layer=manifest["layer"], kind=kind, parent=self.parent,
            method=settings.get("method"), steps=settings.get("steps"), pending=pending)
        results.write_atomic(self.folder / "index.html", index.encode())
        print(f"atlas of {len(units)} units: {self.folder / 'index.html'}", flush=True)
        self.units = units
        return 0


_MODEL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ style }}</style></head>
<body>
<header><h1>{{ title }}</h1><span>{{ layers|length }} layers, {{ total }} units</span></header>
<input id="search" type="search" placeholder="Search every layer: layer name and unit number or name" autofocus>
<div class="results" id="results"></div>
<div id="layers">
{% for layer in layers %}<section class="layer"><h2><a href="{{ layer.folder }}/index.html">{{ layer.layer }}</a></h2>
<span>{{ layer.count }} {{ layer.kind }}s{% if layer.token is not none %} of token {{ layer.token }}{% endif %}</span>
<div class="grid">{% for unit in layer.preview %}<a class="card" href="{{ layer.folder }}/pages/unit_{{ unit.number }}.html">
<img loading="lazy" src="{{ layer.folder }}/thumbs/unit_{{ unit.number }}.jpg" alt="{{ layer.layer }} unit {{ unit.number }}" width="160" height="160">
<span>{{ unit.number }}{% if unit.name %} · {{ unit.name }}{% endif %}</span></a>{% endfor %}</div></section>
{% endfor %}</div>
<script id="units" type="application/json">{{ index_json }}</script>
<script>
const units = JSON.parse(document.getElementById("units").textContent);
const search = document.getElementById("search"), found = document.getElementById("results");
const layers = document.getElementById("layers");
const LIMIT = 200;
{{ matching_script|safe }}
search.addEventListener("input", () => {
  const words = searchWords(search.value);
  found.replaceChildren();
  layers.hidden = words.length > 0;
  if (!words.length) return;
  const hits = matching(units, words);
  for (const unit of hits.slice(0, LIMIT)) {
    const card = document.createElement("a");
    card.className = "card result";
    card.href = unit.href;
    const image = document.createElement("img");
    image.loading = "lazy"; image.src = unit.thumb; image.width = 160; image.height = 160; image.alt = unit.label;
    const label = document.createElement("span");
    label.textContent = unit.label;
    card.append(image, label);
    found.append(card);
  }
  if (hits.length > LIMIT) {
    const more = document.createElement("p");
    more.textContent = `${hits.length - LIMIT} more: refine the search`;
    found.append(more);
  }
});
</script>
</body></html>
"""


class ModelAtlasJob:
    """`maco-keras atlas ROOT` on a model root: each layer's atlas, and a model page above them.

    The model page lists the layers with a few thumbnails each and searches the units of
    every layer (by layer name and unit number or name); layer and unit pages lead back
    to it by breadcrumbs.

    Args:
        folder: a model root (with `model.json`); labels, examples, top: as for `AtlasJob`,
            the labels applying to the logits.
        preview: thumbnails per layer on the model page.
    """

    def __init__(self, folder, labels=None, examples=None, top=6, preview=6, model=None):
        self.folder = pathlib.Path(folder)
        self.manifest = results.ModelRoot(self.folder).read()
        title = pathlib.Path(str(self.manifest["model"])).stem
        self.jobs = []
        for entry in self.manifest["layers"]:
            layer_folder = self.folder / entry["folder"]
            if (layer_folder / results.MANIFEST).is_file():
                self.jobs.append((entry, AtlasJob(layer_folder, labels=labels if entry["kind"] == "logit" else None,
                                                  examples=examples, top=top, parent=title, model=model)))
        if not self.jobs:
            raise ValueError(f"expected a model root with at least one layer's run, received: FOLDER={folder}")
        self.title = title
        self.preview = preview

    def run(self):
        from jinja2 import Environment

        model = None
        layers, index = [], []
        for entry, job in self.jobs:
            job.model = model  # one model for every layer's dataset examples
            job.run()
            model = job.model
            layers.append({"layer": entry["layer"], "folder": entry["folder"], "kind": entry["kind"],
                           "token": entry.get("token"), "count": len(job.units), "preview": job.units[:self.preview]})
            for unit in job.units:
                label = f"{entry['layer']} {unit['number']}" + (f" · {unit['name']}" if unit["name"] else "")
                index.append({"label": label, "href": f"{entry['folder']}/pages/unit_{unit['number']}.html",
                              "thumb": f"{entry['folder']}/thumbs/unit_{unit['number']}.jpg",
                              "search": f"{entry['layer'].lower()} {unit['search']}"})
        page = Environment(autoescape=True).from_string(_MODEL_PAGE).render(
            title=self.title, style=_STYLE, layers=layers, total=len(index), index_json=script_json(index),
            matching_script=_MATCHING_SCRIPT)
        results.write_atomic(self.folder / "index.html", page.encode())
        print(f"model atlas of {len(layers)} layers: {self.folder / 'index.html'}", flush=True)
        return 0


def job(folder, labels=None, examples=None, top=6, model=None):
    """The atlas job for a run folder (`AtlasJob`) or a model root (`ModelAtlasJob`), on a local folder."""
    if storage.is_url(folder):
        raise ValueError(f"expected a local run folder for the atlas (a static site with thumbnails), received: "
                         f"folder={folder} (copy it first, e.g. gcloud storage cp -r {folder} .)")
    if results.ModelRoot.is_root(folder):
        return ModelAtlasJob(folder, labels=labels, examples=examples, top=top, model=model)
    return AtlasJob(folder, labels=labels, examples=examples, top=top, model=model)
