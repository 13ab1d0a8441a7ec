#!/usr/bin/env bash
# Runs Xplique's own MACO unit test against maco_keras's drop-in replacement.
#
# Usage: benchmarks/xplique_upstream.sh PATH [--both]
#   PATH    tests/features_visualizations/test_maco.py from an Xplique checkout,
#           or the root of the checkout (the file is looked up inside it).
#   --both  also run the unmodified test against xplique's own maco first.
#
# Nothing is downloaded: the test file comes from PATH, everything else from the
# current environment. The only change made to the test is its import of `maco`
# (taken from maco_keras.xplique_compat); every other name stays xplique's.
# Environment: PYTHON (default: the repository's .venv/bin/python, else python3),
#              MACO_KERAS_ROOT (default: the folder above this script).
# Exit status: pytest's for the drop-in run (or the first failing run), 2 on bad use.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${MACO_KERAS_ROOT:-$(cd "$here/.." && pwd)}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi

src="${1:-}"
both=0
[[ "${2:-}" == "--both" ]] && both=1
if [[ -d "$src" ]]; then src="$src/tests/features_visualizations/test_maco.py"; fi
if [[ ! -f "$src" ]]; then
    echo "usage: $0 PATH/TO/xplique[/tests/features_visualizations/test_maco.py] [--both]" >&2
    exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$src" "$work/test_maco_upstream.py"

# Rewrite only the import of `maco`: drop it from `from xplique.features_visualizations
# import ...` (one-line or parenthesised) and import it from the drop-in instead.
"$PYTHON" - "$work/test_maco_upstream.py" "$work/test_maco_dropin.py" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
pattern = re.compile(r"^from xplique\.features_visualizations import (\([^)]*\)|[^\n]*)\n", re.M)
match = pattern.search(text)
if match is None:
    sys.exit("no `from xplique.features_visualizations import ...` line found")
names = [n.strip() for n in match.group(1).strip("()").replace("\n", " ").split(",") if n.strip()]
if "maco" not in names:
    sys.exit(f"the test does not import `maco` from xplique.features_visualizations: {names}")
rest = [n for n in names if n != "maco"]
new = ""
if rest:
    new = "from xplique.features_visualizations import (\n" + "".join(f"    {n},\n" for n in rest) + ")\n"
new += "from maco_keras.xplique_compat import maco\n"
open(sys.argv[2], "w").write(text[:match.start()] + new + text[match.end():])
EOF
diff -u "$work/test_maco_upstream.py" "$work/test_maco_dropin.py" || true

export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}" TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cd "$work"

# Make sure the modified test really uses the drop-in from this checkout.
"$PYTHON" -c '
import sys, test_maco_dropin as t
mod = sys.modules[t.maco.__module__]
print("maco used:", t.maco.__module__, mod.__file__)
assert t.maco.__module__ == "maco_keras.xplique_compat", t.maco.__module__
'

pytest_args=(-q -p no:cacheprovider -rA -W ignore::DeprecationWarning --durations=0)
if (( both )); then
    echo "== upstream test, xplique's own maco =="
    "$PYTHON" -m pytest "${pytest_args[@]}" test_maco_upstream.py
fi
echo "== upstream test, maco_keras.xplique_compat.maco =="
"$PYTHON" -m pytest "${pytest_args[@]}" test_maco_dropin.py
