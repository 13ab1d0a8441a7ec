"""Is one frontier row at least as good as another on every metric, class set by class set and pooled?

Reads the tables that `frontier.py` wrote to RESULTS.md (it runs nothing). For each
subject, a *class set* is one or more sections (named by their `--tag`; "" is the untagged
section) that scored the same classes: the candidate row, the reference row and the real
photos are looked up there. Each metric's mean is compared per class set and pooled over the
class sets (the mean of their means: the classes of all the sets, each set weighing the
same). A metric is ✓ when the candidate is at least as good as the reference at the
table's digits (the pooled means are rounded to them too), so equal cells are ties. Also
printed: how much of the reference's gap to the photos the candidate closes, in plausibility
and in Deep-KNN (the normalized distance, the naturalness measure).

FID and KID are set statistics: pooled, they are the mean of the per-set values, not the
FID of the union. The table's means are rounded, so a pooled difference below the last
digit is not resolved.

Run:    python benchmarks/verdict.py --candidate "MACO, fast preset" 64 --reference MACO 256 \\
            --class-set "" "fourth pass" --class-set "class set 1"
"""

import argparse
import pathlib
import re
import sys

from common import REPO, frontier_section, markdown_table, read_section

SUBJECTS = ("mobilenet_v2", "efficientnet_lite0")
NATURALNESS = ("plausibility", "Deep-KNN")  # the columns whose gap to the photos is reported


def parse_table(section):
    """(header, {(method, steps): cells}) of the first Markdown table in a section's text."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    split = lambda line: [cell.strip() for cell in line.strip().strip("|").split("|")]  # noqa: E731
    header = split(lines[0])
    rows = {}
    for line in lines[2:]:
        cells = split(line)
        rows[(cells[0], cells[1])] = dict(zip(header, cells))
    return header, rows


def cell_value(text):
    """(mean, decimals) of a cell like '2.66 ± 0.04' or '747'."""
    mean = text.split("±")[0].strip()
    return float(mean), len(mean.split(".")[1]) if "." in mean else 0


class ClassSet:
    """The rows of the sections that scored one set of classes, for one subject."""

    def __init__(self, results, subject, tags):
        self.rows, self.photos, self.classes, self.header = {}, None, None, None
        self.tags = " ".join(map(repr, tags))  # as given, for messages
        for tag in tags:
            name = frontier_section(subject, tag)
            text = read_section(results, name)
            if text is None:
                raise ValueError(f"expected a section {name!r} (--tag {tag!r}) in {results}, received: none")
            classes = re.search(r"^Classes .*$", text, re.MULTILINE)
            if classes and self.classes and classes.group(0) != self.classes:
                raise ValueError(f"expected sections of one class set, received: --class-set {self.tags} "
                                 f"mixes {self.classes!r} and {classes.group(0)!r}")
            self.classes = self.classes or (classes.group(0) if classes else None)
            header, rows = parse_table(text)
            self.header = self.header or header
            for key, cells in rows.items():
                if key[0] == "real photos":
                    self.photos = self.photos or cells
                elif key in self.rows and self.rows[key] != cells:
                    raise ValueError(f"expected one row {key} per class set, received: two different ones in "
                                     f"--class-set {self.tags}")
                else:
                    self.rows.setdefault(key, cells)

    def row(self, method, steps):
        if (method, str(steps)) not in self.rows:
            raise ValueError(f"expected a row ({method!r}, {steps} steps) in --class-set {self.tags}, received: none")
        return self.rows[(method, str(steps))]


def metrics_of(header):
    """[(column, higher is better)] of a frontier table: the columns with an arrow."""
    return [(column, column.endswith("↑")) for column in header if column.endswith(("↑", "↓"))]


def verdict(results, subject, candidate, reference, class_sets):
    """(Markdown report, ✓ count, metric count, share of the plausibility gap closed) for one subject.

    The share is the pooled one (the only set's with one class set); None where the reference
    is no less plausible than the photos."""
    sets = [ClassSet(results, subject, tags) for tags in class_sets]
    columns = metrics_of(sets[0].header)
    header = ["metric"] + [f"set {i}: candidate / reference" for i in range(len(sets))]
    header += ["pooled: candidate / reference", "at least as good"] if len(sets) > 1 else ["at least as good"]
    body, wins, pooled, per_set = [], 0, {}, {}
    for column, higher in columns:
        cells, means = [], {"candidate": [], "reference": [], "photos": []}
        for class_set in sets:
            (c, digits), (r, _) = (cell_value(class_set.row(*which)[column]) for which in (candidate, reference))
            means["candidate"].append(c)
            means["reference"].append(r)
            means["photos"].append(cell_value(class_set.photos[column])[0])
            cells.append(f"{c:.{digits}f} / {r:.{digits}f}")
            per_set.setdefault(column, []).append((c, r, means["photos"][-1]))
        c, r = (round(sum(means[k]) / len(sets), digits) for k in ("candidate", "reference"))
        pooled[column] = (c, r, sum(means["photos"]) / len(sets))
        good = c >= r if higher else c <= r
        wins += good
        body.append([column] + cells + ([f"{c:.{digits}f} / {r:.{digits}f}"] if len(sets) > 1 else [])
                    + ["✓" if good else "✗"])
    lines = [markdown_table(header, body)]
    gap = None
    naturalness = [column for column, _ in columns if column.startswith(NATURALNESS)]
    for column in naturalness:
        closed = []
        for name, (c, r, photos) in [(f"set {i}", values) for i, values in enumerate(per_set[column])] + (
                [("pooled", pooled[column])] if len(sets) > 1 else []):
            share = (r - c) / (r - photos) if r > photos else None
            closed.append(f"{name}: photos {photos:g}, reference {r:g}, candidate {c:g}, "
                          + (f"{share:.0%} of the gap closed" if share is not None else "no gap (reference at or "
                             "below the photos)"))
            if column == naturalness[0]:
                gap = share
        lines.append(f"\n{column.rstrip(' ↓')} gap to the photos closed by the candidate: " + "; ".join(closed) + ".")
    lines.append(f"\nAt least as good on {wins} of {len(columns)} metrics.")
    return "\n".join(lines), wins, len(columns), gap


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", nargs=2, metavar=("METHOD", "STEPS"), required=True)
    parser.add_argument("--reference", nargs=2, metavar=("METHOD", "STEPS"), required=True)
    parser.add_argument("--class-set", nargs="+", action="append", metavar="TAG", required=True,
                        help="the tags of the sections that scored one set of classes (\"\" is the untagged "
                             "one); repeat for each class set")
    parser.add_argument("--subjects", nargs="+", choices=SUBJECTS, default=list(SUBJECTS))
    parser.add_argument("--results", type=pathlib.Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    for name in ("candidate", "reference"):
        steps = getattr(args, name)[1]
        if not steps.isdigit() or int(steps) < 1:
            parser.error(f"expected positive --{name} STEPS, received: {steps}")
    for subject in args.subjects:
        try:
            report, *_ = verdict(args.results, subject, args.candidate, args.reference, args.class_set)
        except ValueError as error:
            parser.exit(2, f"{parser.prog}: error: {error}\n")
        print(f"## {subject}: {args.candidate[0]} ({args.candidate[1]} steps) against {args.reference[0]} "
              f"({args.reference[1]} steps)\n")
        print(report + "\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
