"""Bad arguments to the benchmark scripts stop them at once, with one line naming the argument."""

import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script, argument, value", [
    ("step_profile.py", "--sizes", "0"),
    ("step_profile.py", "--crops", "0"),
    ("step_profile.py", "--steps", "-1"),
    ("frontier.py", "--classes", "0"),
    ("frontier.py", "--budgets", "0"),
    ("contrast_check.py", "--photos", "1"),
    ("naturalness.py", "--steps", "0"),
    ("naturalness.py", "--gains", "-1"),
])
def test_bad_argument_exits_with_2_naming_it(script, argument, value):
    required = ["--out", "/nonexistent"] if script == "naturalness.py" else []
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), argument, value, *required],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert f"expected positive {argument}" in last and value in last


def test_naturalness_names_what_it_lacks():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "naturalness.py"), "--crops", "1.5", "--out", "/x"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "expected --crops in (0, 1), received: 1.5" in result.stderr.splitlines()[-1]


def test_coarse_to_fine_needs_a_positive_opening(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import frontier
    with pytest.raises(ValueError, match="open_steps >= 1, received: open_steps=0"):
        frontier.CoarseToFineNadam(open_steps=0)
    assert frontier.CoarseToFineNadam(open_steps=3).get_config()["open_steps"] == 3


def test_the_second_class_set_is_another_held_out_sample(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import frontier
    for count in (1, 6, 12):
        first, second = frontier.pick_classes(count), frontier.pick_classes(count, 1)
        assert len(second) == count and not set(first) & set(second)
        assert all(c % 4 == 3 and c not in frontier.PAPER_TABLE_CLASSES for c in second)
    assert frontier.pick_classes(6) == [3, 203, 403, 599, 799, 995]  # set 0 as in every saved run


def _frontier_section(results, subject, tag, classes, rows):
    """A section as frontier.py writes it: a class line and its table."""
    import common
    header = ["method", "steps", "seeds", "s / picture", "plausibility ↓", "KID ↓", "transfer top-1 ↑"]
    body = [["real photos", "", "", "", "2.60", "-0.06", "0.80"]] + rows
    common.write_section(results, common.frontier_section(subject, tag), "\n".join([
        f"## {subject}, {tag}", "", f"Classes (6, held out): {classes}.", "", common.markdown_table(header, body)]))


def test_the_verdict_pools_class_sets_and_counts_ties_as_at_least_as_good(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import verdict
    results = tmp_path / "RESULTS.md"
    # Set 0: the reference and the candidate in two sections; the candidate loses top-1 there.
    _frontier_section(results, "mobilenet_v2", "a", "3 tiger shark", [
        ["MACO", "256", "3", "150", "2.80 ± 0.05", "1.80 ± 0.20", "0.20 ± 0.00"]])
    _frontier_section(results, "mobilenet_v2", "b", "3 tiger shark", [
        ["fast", "64", "4", "38", "2.70 ± 0.05", "1.40 ± 0.20", "0.10 ± 0.05"]])
    # Set 1: the candidate wins top-1 by more than it lost on set 0, and ties KID's pooled mean.
    _frontier_section(results, "mobilenet_v2", "c", "83 prairie chicken", [
        ["MACO", "256", "3", "150", "2.90 ± 0.05", "1.00 ± 0.20", "0.20 ± 0.00"],
        ["fast", "64", "4", "38", "2.80 ± 0.05", "1.40 ± 0.20", "0.40 ± 0.05"]])
    report, wins, count, gap = verdict.verdict(results, "mobilenet_v2", ("fast", 64), ("MACO", 256),
                                               [["a", "b"], ["c"]])
    assert (wins, count) == (3, 3)
    assert "| transfer top-1 ↑ | 0.10 / 0.20 | 0.40 / 0.20 | 0.25 / 0.20 | ✓ |" in report
    assert "| KID ↓ | 1.40 / 1.80 | 1.40 / 1.00 | 1.40 / 1.40 | ✓ |" in report
    assert gap == pytest.approx((2.85 - 2.75) / (2.85 - 2.60))
    # Each set alone is not enough: set 0 loses top-1, set 1 loses KID.
    assert verdict.verdict(results, "mobilenet_v2", ("fast", 64), ("MACO", 256), [["a", "b"]])[1] == 2
    assert verdict.verdict(results, "mobilenet_v2", ("fast", 64), ("MACO", 256), [["c"]])[1] == 2
    with pytest.raises(ValueError, match="expected sections of one class set"):
        verdict.verdict(results, "mobilenet_v2", ("fast", 64), ("MACO", 256), [["a", "c"]])


def test_the_verdict_reports_the_gap_in_each_naturalness_column(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import common
    import verdict
    results = tmp_path / "RESULTS.md"
    header = ["method", "steps", "seeds", "s / picture", "plausibility ↓", "Deep-KNN ↓", "KID ↓"]
    body = [["real photos", "", "", "", "2.84", "0.840", "0.13"],
            ["MACO", "64", "3", "30", "2.63", "0.900", "1.60"],
            ["new", "64", "3", "30", "2.60", "0.870", "1.50"]]
    common.write_section(results, common.frontier_section("mobilenet_v2", "t"), "\n".join([
        "## t", "", "Classes (12, held out): 3 tiger shark.", "", common.markdown_table(header, body)]))
    report, wins, count, gap = verdict.verdict(results, "mobilenet_v2", ("new", 64), ("MACO", 64), [["t"]])
    assert (wins, count) == (3, 3)
    assert gap is None and "plausibility gap to the photos closed by the candidate: set 0: photos 2.84" in report
    assert "no gap (reference at or below the photos)" in report
    assert ("Deep-KNN gap to the photos closed by the candidate: set 0: photos 0.84, reference 0.9, candidate 0.87, "
            "50% of the gap closed") in report


@pytest.mark.parametrize("arguments, message", [
    (["--class-set", "no such tag"], "expected a section 'frontier-mobilenet_v2-no-such-tag'"),
    (["--class-set", "", "--candidate", "MACO", "0"], "expected positive --candidate STEPS, received: 0"),
    (["--class-set", "", "--candidate", "no such method", "64"], "expected a row ('no such method', 64 steps)"),
])
def test_the_verdict_refuses_what_is_not_in_the_results(arguments, message):
    defaults = {"--candidate": ["MACO", "64"], "--reference": ["MACO", "256"]}
    for flag, value in defaults.items():
        if flag not in arguments:
            arguments = arguments + [flag, *value]
    result = subprocess.run([sys.executable, str(BENCHMARKS / "verdict.py"), "--subjects", "mobilenet_v2", *arguments],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]


def test_the_median_interval_is_the_textbook_order_statistics(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import common
    # 95% intervals for the median: (x_2, x_10) of 11 values (coverage 98.8%; x_3 gives 93.5%),
    # (x_10, x_22) of 31; fewer than 6 values cannot reach 95%.
    values = [0.1 * v for v in range(11, 0, -1)]
    assert common.median_interval(values) == (0.2, 1.0)
    assert common.median_interval(list(range(31))) == (9, 21)
    assert common.median_interval(list(range(6))) == (0, 5)
    assert common.median_interval(list(range(5))) is None
    assert common.median_interval(list(range(11)), confidence=0.9) == (2, 8)


def test_speed_refuses_step_interleaving_beyond_the_pauses_of_the_loop():
    # The loop pauses after every step (where the floor's steps are slotted in) only up to 50 steps.
    result = subprocess.run([sys.executable, str(BENCHMARKS / "speed.py"), "--steps", "64"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "expected --steps <= 50 with --interleave step" in last and "64" in last


@pytest.mark.parametrize("script, argument, value, message", [
    ("backends.py", "--steps", "0", "expected --steps >= 1, received: 0"),
    ("backends.py", "--units", "0", "expected --units counts in [1, 16], received: [0]"),
    ("horama_compare.py", "--classes", "0", "expected --classes in [1, 12], received: 0"),
    ("horama_compare.py", "--crops", "0", "expected --crops >= 1, received: 0"),
    ("torch_compile.py", "--repeats", "0", "expected --repeats >= 1, received: 0"),
])
def test_the_backend_benchmarks_name_a_bad_argument(script, argument, value, message):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), argument, value],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1], result.stderr
