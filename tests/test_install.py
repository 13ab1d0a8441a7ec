"""The installed environment is consistent by pip's own check (the [hub] extra's pins included)."""

import importlib.util
import subprocess
import sys

import pytest


def test_pip_check_finds_no_broken_requirement():
    if importlib.util.find_spec("pip") is None:
        pytest.skip("no pip in this environment to check it with")
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
