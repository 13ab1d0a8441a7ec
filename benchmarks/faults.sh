#!/usr/bin/env bash
# Run folders under faults, from the shell: the rows of tests/test_faults.py, each run as a user would, printed
# as a Markdown table (fault | exit codes | what maco-keras said | the folder at the end).
#
#   bash benchmarks/faults.sh            # about 3 minutes on 2 cores; a tiny model, nothing downloaded
#
# "intact" means `maco-keras verify` exits 0 and finds every planned unit done, each file matching its record's
# SHA-256; otherwise the column shows verify's exit code and summary.
# The full disk and the read-only folder use a small tmpfs where this shell may mount one (root), else a
# Python wrapper whose writes raise ENOSPC / EROFS.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
W=$(mktemp -d)
trap 'mountpoint -q "$W/disk" 2>/dev/null && umount "$W/disk"; rm -rf "$W"' EXIT

"$PY" - "$W" <<'EOF'
import sys
import keras
import numpy as np
sys.path.insert(0, "tests")
from conftest import build_tiny_model

folder = sys.argv[1]
build_tiny_model(seed=0).save(f"{folder}/tiny.keras")
build_tiny_model(seed=1).save(f"{folder}/other.keras")
model = build_tiny_model(seed=0)
kernel, bias = model.get_layer("logits").get_weights()
bias[3] = np.nan  # logit 3 is NaN; its gradient (zero, masks select) stays finite
model.get_layer("logits").set_weights([kernel, bias])
model.save(f"{folder}/nan.keras")
EOF

mk() { "$PY" -m maco_keras "$@"; }
SMALL=(--steps 3 --image-size 40 --crops 2 --batch 2 --quiet)
UNITS=(--units 0-3,7)
said() { grep -v '^$' "$W/err" | tail -n 1 | sed "s#$W/##g" | cut -c1-160 | sed 's/|/\\|/g'; }
state() {  # verify's exit code and summary: "intact" only when every planned unit is done and matches its record
  mk verify "$1" >"$W/verify" 2>&1; local code=$? summary
  summary=$(head -n 1 "$W/verify" | sed 's/.*: //')
  if [ $code -eq 0 ] && ! grep -qE 'pending|failed|no record' <<<"$summary"; then echo "intact: $summary";
  else echo "verify $code: $summary"; fi; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }
flip() { "$PY" -c "import sys; p=sys.argv[1]; d=bytearray(open(p,'rb').read()); d[len(d)//2]^=255; open(p,'wb').write(d)" "$1"; }

mk visualize "$W/tiny.keras" --out "$W/reference" "${UNITS[@]}" "${SMALL[@]}" >/dev/null 2>&1

echo "| fault | exit codes | what maco-keras said | the folder at the end |"
echo "|---|---|---|---|"

damage() {  # name, command that damages $1
  local name=$1; shift
  rm -rf "$W/run"; cp -r "$W/reference" "$W/run"
  "$@" "$W/run"
  mk verify "$W/run" >"$W/verify_before" 2>&1; local before=$?
  mk visualize "$W/tiny.keras" --out "$W/run" "${UNITS[@]}" "${SMALL[@]}" >"$W/out" 2>"$W/err"; local code=$?
  local message; message=$(grep -m1 -E 'redoing|already in' "$W/out" | sed "s#$W/##g" | cut -c1-110)
  row "$name" "verify $before, rerun $code" "$message" "$(state "$W/run")"
}
flip_npz() { flip "$1/units/unit_3.npz"; }
flip_png() { flip "$1/units/unit_3.png"; }
truncate_npz() { truncate -s 100 "$1/units/unit_3.npz"; }
garbage_record() { printf 'garbage{' >"$1/units/unit_3.json"; }
delete_file() { rm "$1/units/unit_3_transparency.png"; }
damage "same-size byte flip in an .npz" flip_npz
damage "same-size byte flip in a PNG" flip_png
damage "truncated .npz" truncate_npz
damage "garbage record" garbage_record
damage "deleted file" delete_file

# A full disk, then a read-only folder: a 96 kB tmpfs (two units fit), else writes that raise.
FAIL_WRITES='import errno, os, sys
code = getattr(errno, os.environ["FAIL_WITH"]); real = os.fsync; calls = [0]
def fsync(fd):
    calls[0] += 1
    if calls[0] > 6: raise OSError(code, os.strerror(code))
    real(fd)
os.fsync = fsync
from maco_keras.runs.cli import main
sys.exit(main(sys.argv[1:]))'
mkdir -p "$W/disk"
if mount -t tmpfs -o size=96k tmpfs "$W/disk" 2>/dev/null; then
  how="tmpfs"
  mk visualize "$W/tiny.keras" --out "$W/disk/run" "${UNITS[@]}" "${SMALL[@]}" >"$W/out" 2>"$W/err"; code=$?
  said_full=$(said | sed "s#$W/##g"); tmp=$(find "$W/disk" -name '*.tmp' | wc -l)
  mount -o remount,size=4m "$W/disk"
  mk visualize "$W/tiny.keras" --out "$W/disk/run" "${UNITS[@]}" "${SMALL[@]}" >"$W/out" 2>"$W/err"; rerun=$?
  row "full disk ($how)" "$code, then $rerun with room" "$said_full ($tmp .tmp left)" "$(state "$W/disk/run")"
  rm -rf "$W/disk/run"; mk visualize "$W/tiny.keras" --out "$W/disk/run" --units 0 "${SMALL[@]}" >/dev/null 2>&1
  mount -o remount,ro "$W/disk"
  mk visualize "$W/tiny.keras" --out "$W/disk/run" "${UNITS[@]}" "${SMALL[@]}" >"$W/out" 2>"$W/err"; code=$?
  said_ro=$(said | sed "s#$W/##g")
  mk atlas "$W/disk/run" >"$W/out" 2>"$W/err"; atlas=$?
  row "read-only folder ($how)" "visualize $code, atlas $atlas" "$said_ro; atlas: $(said | sed "s#$W/##g" | cut -c1-60)" "$(state "$W/disk/run")"
  umount "$W/disk"
else
  how="injected"
  for fault in ENOSPC EROFS; do
    rm -rf "$W/run"
    FAIL_WITH=$fault "$PY" -c "$FAIL_WRITES" visualize "$W/tiny.keras" --out "$W/run" "${UNITS[@]}" "${SMALL[@]}" \
      >"$W/out" 2>"$W/err"; code=$?
    said_fault=$(said | sed "s#$W/##g"); tmp=$(find "$W/run" -name '*.tmp' | wc -l)
    mk visualize "$W/tiny.keras" --out "$W/run" "${UNITS[@]}" "${SMALL[@]}" >"$W/out" 2>"$W/err"; rerun=$?
    row "$fault ($how)" "$code, then $rerun" "$said_fault ($tmp .tmp left)" "$(state "$W/run")"
  done
fi

# SIGKILL at five random moments (seeded) of a run, then a run to the end. A clean run is timed first: its first
# unit comes after TensorFlow's import, the model and the trace; the moments fall between its first unit and its
# end, where units are computed and written (the start is covered by the rows above and the test's table).
KILLED=(--steps 300 --image-size 40 --crops 8 --batch 1 --quiet)  # ~0.8 s per unit after the first
rm -rf "$W/clean"; start=$(date +%s%N)
mk visualize "$W/tiny.keras" --out "$W/clean" "${UNITS[@]}" "${KILLED[@]}" >/dev/null 2>&1 & clean=$!
first_ms=""
while kill -0 $clean 2>/dev/null; do
  [ -z "$first_ms" ] && [ -e "$W/clean/units/unit_0.json" ] && first_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  sleep 0.01
done
wait $clean
duration_ms=$(( ($(date +%s%N) - start) / 1000000 )); first_ms=${first_ms:-$duration_ms}
RANDOM=2026; codes=(); done_units=(); resumed=(); same=()
for index in 1 2 3 4 5; do  # each kill in a folder of its own, then its resume
  moment_ms=$(( first_ms + (RANDOM * 32768 + RANDOM) % (duration_ms - first_ms + 1) ))
  moment=$(printf '%d.%02d' $((moment_ms / 1000)) $((moment_ms % 1000 / 10)))
  timeout -s KILL "$moment" "$PY" -m maco_keras visualize "$W/tiny.keras" --out "$W/run_$index" "${UNITS[@]}" \
    "${KILLED[@]}" >/dev/null 2>&1; codes+=("${moment}s:$?")
  done_units+=("$(ls "$W/run_$index/units" 2>/dev/null | grep -c 'json$')")
  mk visualize "$W/tiny.keras" --out "$W/run_$index" "${UNITS[@]}" "${KILLED[@]}" >/dev/null 2>&1; resumed+=("$?")
  same+=("$("$PY" -c "import sys, numpy as np
a, b = sys.argv[1:]
print(all(np.array_equal(np.load(f'{a}/units/unit_{u}.npz')['image'], np.load(f'{b}/units/unit_{u}.npz')['image'])
          for u in (0, 1, 2, 3, 7)))" "$W/run_$index" "$W/clean")")
  states+=("$(state "$W/run_$index" | cut -d: -f1)")
done
row "SIGKILL at 5 moments, each then resumed (clean run: first unit at $((first_ms / 1000)) s, end at \
$((duration_ms / 1000)) s)" "${codes[*]}; resumes ${resumed[*]}" "records at each kill: ${done_units[*]}; pictures \
equal to the clean run's: ${same[*]}" "${states[*]}"

# SIGINT (Ctrl-C) once the first unit is in.
rm -rf "$W/run"
set -m  # its own process group, SIGINT not ignored: a background job of a script is otherwise deaf to it
"$PY" -m maco_keras visualize "$W/tiny.keras" --out "$W/run" "${UNITS[@]}" --steps 200 --image-size 40 --crops 2 \
  --batch 1 --quiet >"$W/out" 2>"$W/err" & pid=$!
set +m
until [ -e "$W/run/units/unit_0.json" ] || ! kill -0 $pid 2>/dev/null; do sleep 0.1; done
kill -INT -- -$pid; wait $pid; code=$?
lines=$(grep -c . "$W/err"); interrupted=$(said | sed "s#$W/##g")
mk visualize "$W/tiny.keras" --out "$W/run" "${UNITS[@]}" --steps 200 --image-size 40 --crops 2 --batch 1 --quiet \
  >"$W/out" 2>/dev/null; rerun=$?
row "SIGINT" "$code, then $rerun" "$interrupted ($lines line)" "$(state "$W/run")"

# A NaN logit (unit 3) among six units in one batch.
rm -rf "$W/run"
mk visualize "$W/nan.keras" --out "$W/run" --units 0-5 --batch 6 --steps 3 --image-size 40 --crops 2 --quiet \
  >"$W/out" 2>"$W/err"; code=$?
row "NaN logit among 6 units" "$code" "$(said | sed "s#$W/##g")" "$(state "$W/run")"

# Two runs with different --steps started together, each delayed between writing its manifest and linking it.
DELAYED='import os, sys, time
link = os.link
def delayed(*args, **kwargs):
    time.sleep(3)
    return link(*args, **kwargs)
os.link = delayed
from maco_keras.runs.cli import main
sys.exit(main(sys.argv[1:]))'
rm -rf "$W/run"
"$PY" -c "$DELAYED" visualize "$W/tiny.keras" --out "$W/run" --units 0-1 --steps 8 --image-size 40 --crops 2 \
  --quiet >/dev/null 2>"$W/err8" & a=$!
"$PY" -c "$DELAYED" visualize "$W/tiny.keras" --out "$W/run" --units 0-1 --steps 4 --image-size 40 --crops 2 \
  --quiet >/dev/null 2>"$W/err4" & b=$!
wait $a; ca=$?; wait $b; cb=$?
cat "$W/err8" "$W/err4" >"$W/err"
row "two runs, --steps 8 and 4, together" "$ca and $cb" "$(said | sed "s#$W/##g")" "$(state "$W/run")"

# A changed model file at the same path; the relu redirect changed on resume.
rm -rf "$W/run"; cp "$W/tiny.keras" "$W/model.keras"
mk visualize "$W/model.keras" --out "$W/run" --units 0 "${SMALL[@]}" >/dev/null 2>&1
cp "$W/other.keras" "$W/model.keras"
mk visualize "$W/model.keras" --out "$W/run" "${UNITS[@]}" "${SMALL[@]}" >"$W/out" 2>"$W/err"; code=$?
row "changed model file, same path" "$code" "$(said | sed "s#$W/##g")" "$(state "$W/run")"
mk visualize "$W/tiny.keras" --out "$W/reference" "${UNITS[@]}" "${SMALL[@]}" --relu-redirect-steps 2 \
  >"$W/out" 2>"$W/err"; code=$?
row "--relu-redirect-steps changed on resume" "$code" "$(said | sed "s#$W/##g")" "$(state "$W/reference")"
