"""Is format 3 worse than the version before it at the frontier's defaults, or were three seeds too few to tell?

Format 3 (issue 28) changed which random draws a run gets (one counter-based generator on
every backend) and the scale the logit is maximized at; on MobileNetV2 its first three seeds
came out worse in FID and transfer than the version before's three. This script compares
the two over five seeds each, from the frontier tables (it runs nothing): the version before
over seeds 0-2 (the eighth pass, run at 433dab9, whose TensorFlow pictures the later commits
up to a02ddc4 kept bit for bit by their logs: mean ± standard deviation in
`benchmarks/README.md`, *Eighth pass*; its per-seed values were not kept) and seeds 3-4 (run
at a02ddc4 for this check), format 3 over seeds 0-4 (per seed: *Ninth pass* for 0-2, this check for 3-4).
The values are copied from those tables, at their digits.

For each metric it prints both means, the difference (format 3 minus before, with the
metric's sign: positive is better) and its 95% confidence interval:
- where the eighth pass gave a standard deviation (Deep-KNN, plausibility, FID, KID), each
  version's five-seed variance is known, up to the tables' rounding (the three seeds' sum of squares, recovered from
  their standard deviation, with the other two) and the interval is Welch's;
- elsewhere the three old seeds give only their mean, so the seed variance is pooled over the
  values known one by one (on MobileNetV2 format 3's five and the old version's two: 5
  degrees of freedom), assuming the two versions spread alike, and the interval is
  Student's; so is it where one version has a single seed (its spread taken from the other).

Run:    python benchmarks/seed_check.py [--subjects mobilenet_v2 efficientnet_lite0]
"""

import argparse

import numpy as np
from scipy import stats

from common import markdown_table

# (name, +1 when higher is better, -1 when lower is better)
METRICS = [("Deep-KNN", -1), ("plausibility", -1), ("FID", -1), ("KID", -1), ("transfer top-1", 1),
           ("transfer top-5", 1), ("centre top-1", 1), ("centre top-5", 1), ("logit", 1), ("path AUC", 1),
           ("path AUC, first layer", 1), ("path AUC, last layer", 1)]

# Per subject: the version before format 3 over seeds 0-2 as its table gave them (mean, and the standard deviation
# or None), then its seeds run one by one, and format 3's seeds (each a row in METRICS' order).
SUBJECTS = {
    "mobilenet_v2": {
        "title": "MobileNetV2",
        "before_three": (0.900, 2.66, 668, 1.65, 0.14, 0.27, 0.49, 0.75, 15.8, 0.64, 0.55, 0.98),
        "before_three_std": (0.007, 0.06, 6, 0.08, None, None, None, None, None, None, None, None),
        "before_seeds": {
            3: (0.891, 2.74, 672, 1.48, 0.14, 0.25, 0.47, 0.72, 16.4, 0.64, 0.54, 0.99),
            4: (0.881, 2.66, 683, 1.63, 0.06, 0.19, 0.39, 0.69, 16.3, 0.64, 0.55, 0.99),
        },
        "format3_seeds": {
            0: (0.891, 2.71, 709, 1.92, 0.14, 0.19, 0.42, 0.69, 14.9, 0.65, 0.55, 0.98),
            1: (0.909, 2.66, 679, 1.56, 0.08, 0.22, 0.56, 0.72, 16.3, 0.65, 0.55, 0.98),
            2: (0.890, 2.68, 680, 1.73, 0.11, 0.22, 0.50, 0.86, 15.7, 0.64, 0.55, 0.98),
            3: (0.889, 2.64, 668, 1.62, 0.08, 0.17, 0.42, 0.72, 15.8, 0.65, 0.55, 0.99),
            4: (0.894, 2.67, 686, 1.82, 0.14, 0.25, 0.47, 0.67, 15.8, 0.64, 0.55, 0.99),
        },
    },
    "efficientnet_lite0": {
        "title": "EfficientNet-Lite0",
        "before_three": (0.906, 2.72, 660, 1.15, 0.35, 0.52, 0.67, 0.83, 13.9, 0.69, 0.55, 0.97),
        "before_three_std": (0.013, 0.02, 19, 0.09, None, None, None, None, None, None, None, None),
        "before_seeds": {},
        "format3_seeds": {
            0: (0.908, 2.68, 652, 0.97, 0.33, 0.50, 0.58, 0.83, 15.0, 0.69, 0.54, 0.98),
            1: (0.891, 2.69, 671, 1.35, 0.36, 0.53, 0.64, 0.75, 14.2, 0.69, 0.55, 0.98),
            2: (0.904, 2.74, 633, 1.13, 0.42, 0.56, 0.56, 0.72, 15.4, 0.72, 0.55, 0.98),
        },
    },
}


def compare(subject, index, name, sign):
    new = np.array([row[index] for row in subject["format3_seeds"].values()], np.float64)
    old_known = np.array([row[index] for row in subject["before_seeds"].values()], np.float64)
    three_mean, three_std = subject["before_three"][index], subject["before_three_std"][index]
    old_n = 3 + len(old_known)
    old_mean = (3 * three_mean + old_known.sum()) / old_n
    difference = sign * (new.mean() - old_mean)
    if three_std is not None and len(new) > 1:  # Welch, each version's variance over its own seeds
        old_ss = 2 * three_std ** 2 + 3 * (three_mean - old_mean) ** 2 + np.sum((old_known - old_mean) ** 2)
        a, b = old_ss / (old_n - 1) / old_n, new.var(ddof=1) / len(new)
        error = np.sqrt(a + b)
        dof = (a + b) ** 2 / (a ** 2 / (old_n - 1) + b ** 2 / (len(new) - 1))
        how = "Welch"
    else:  # Student, the variance pooled over what is known of each version's spread
        if three_std is not None:  # the old version's whole spread
            old_ss, old_dof = 2 * three_std ** 2 + 3 * (three_mean - old_mean) ** 2 + np.sum((old_known - old_mean) ** 2), old_n - 1
        else:  # only its seeds run one by one
            old_ss = np.sum((old_known - old_known.mean()) ** 2) if len(old_known) else 0.0
            old_dof = max(len(old_known) - 1, 0)
        dof = max(len(new) - 1, 0) + old_dof
        if dof == 0:
            return [name, *_cells(old_mean, new.mean(), difference), "", "", "", "not tested"]
        ss = np.sum((new - new.mean()) ** 2) + old_ss
        error = np.sqrt(ss / dof * (1 / old_n + 1 / len(new)))
        how = "pooled"
    if error == 0:  # every seed equal at the tables' digits: no spread to test against
        return [name, *_cells(old_mean, new.mean(), difference), "", "", how, "no spread at the tables' digits"]
    half = stats.t.ppf(0.975, dof) * error
    p = 2 * stats.t.sf(abs(difference) / error, dof)
    verdict = "worse" if difference + half < 0 else "better" if difference - half > 0 else "not resolved"
    old_cell, new_cell, difference_cell = _cells(old_mean, new.mean(), difference)
    digits = _digits(old_mean)
    return [name, old_cell, new_cell, difference_cell, f"{difference - half:+.{digits}f} to {difference + half:+.{digits}f}",
            f"{p:.2f}", how, verdict]


def _digits(value):
    return 1 if abs(value) >= 100 else 2 if abs(value) >= 10 else 3  # one more than the tables'


def _cells(old_mean, new_mean, difference):
    digits = _digits(old_mean)
    difference = round(difference, digits) + 0.0  # no "-0.000"
    return f"{old_mean:.{digits}f}", f"{new_mean:.{digits}f}", f"{difference:+.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", nargs="+", default=list(SUBJECTS), choices=list(SUBJECTS))
    args = parser.parse_args()
    for name in args.subjects:
        subject = SUBJECTS[name]
        before, after = 3 + len(subject["before_seeds"]), len(subject["format3_seeds"])
        seeds = lambda count: f"{count} seed{'s' if count > 1 else ''}"  # noqa: E731
        header = ["metric", f"before ({seeds(before)})", f"format 3 ({seeds(after)})", "difference (+ better)",
                  "95% interval", "p", "test", "verdict"]
        rows = [compare(subject, index, metric, sign) for index, (metric, sign) in enumerate(METRICS)]
        print(f"{subject['title']}, the defaults at 64 steps, 12 classes of set 2: format 3 against the version "
              f"before\n")
        print(markdown_table(header, rows) + "\n")


if __name__ == "__main__":
    main()
