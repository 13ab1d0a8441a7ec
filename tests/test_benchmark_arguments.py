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
])
def test_bad_argument_exits_with_2_naming_it(script, argument, value):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), argument, value],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert f"expected positive {argument}" in last and value in last


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
