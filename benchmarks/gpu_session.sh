#!/usr/bin/env bash
# benchmarks/gpu_session.sh: the cupy backend's first contact with a GPU, in one command.
#
#   bash benchmarks/gpu_session.sh              # from the repository root; results in $OUT
#
# Made for the lent H100/H200 machines (Python 3.12 with CuPy, NumPy, h5py and pytest; no
# hydra-core, no network): copy ../shared/device-wheels/*.whl (hydra-core, omegaconf,
# antlr4) into the git-ignored .whl/ of the checkout and name .whl in the device tool's
# carry. Within 9 minutes it runs, each step under its own time limit, writing at most 8
# files to $OUT (default benchmarks/results/gpu-session):
#
#   1. nvidia-smi                                   -> session.log
#   2. hydra-core from .whl/ (when it is missing)   -> session.log
#   3. pytest -m gpu, and the NVRTC/nvcc sm_90 build tests   -> pytest.txt
#   4. cupy against numpy, bench_tissue3d 64³, float32 and float64   -> parity.json
#   5. the benchmark suite's GPU plan on cupy and cupy-arrays: device copy bandwidth,
#      section2d 1024², substrates 100³, tissue3d 128³ and 256³   -> bench/results.{json,md}
#   6. ncu, one profile of each hot kernel at 256³   -> kernels.ncu-rep, ncu.txt
#   summary.md: every step's status and time, and what to do with the results.
#
# SESSION_SIZE=tiny runs the same steps at tiny sizes (CI runs it so on the CuPy device
# double: tests/test_gpu_session.py). PYTHON picks the interpreter (default python3);
# SESSION_SECONDS (default 530) is the whole session's time, each step cut to what is left.
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/benchmarks/results/gpu-session}
PY=${PYTHON:-python3}
SIZE=${SESSION_SIZE:-full}
mkdir -p "$OUT"
LOG=$OUT/session.log
SUMMARY=$OUT/summary.md
START=$(date +%s)
DEADLINE=$((START + ${SESSION_SECONDS:-530}))   # the lease allows 9 minutes of commands
FAILED=0
: >"$LOG"
printf '# GPU session %s\n\n| step | status | seconds |\n|---|---|---|\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$SUMMARY"

if [ "$SIZE" = tiny ]; then
  PARITY_SHAPE=12; PARITY_STEPS=2; KERNEL_SHAPE=16; BENCH_ARGS=(--tiny --budget 60)
  PYTEST_GPU=(-m gpu -k "observer or multigrid_kernels"); PYTEST_BUILD=(-k sm90_binary)
else
  PARITY_SHAPE=64; PARITY_STEPS=6; KERNEL_SHAPE=256; BENCH_ARGS=(--budget 170)
  PYTEST_GPU=(-m gpu); PYTEST_BUILD=(-k sm90)
fi

log() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT_SECONDS COMMAND...: run under a time limit (cut to what is left of the
# session), output to the log (and to $STEP_OUT if set), status and time to the summary; a
# failure does not stop the session
step() {
  local name=$1 limit=$2 left t0 rc
  shift 2
  left=$((DEADLINE - $(date +%s)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -le 5 ]; then
    log "== $name: skipped, the session's time is spent"
    echo "| $name | skipped (no time left) | 0 |" >>"$SUMMARY"
    FAILED=1
    return
  fi
  log "== $name (at most ${limit} s)"
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG" ${STEP_OUT:+"$STEP_OUT"}
  rc=${PIPESTATUS[0]}
  local took=$(($(date +%s) - t0)) status=ok
  [ "$rc" -eq 124 ] && status="timed out after ${limit} s"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && status="failed (exit $rc)"
  [ "$rc" -ne 0 ] && FAILED=1
  echo "| $name | $status | $took |" >>"$SUMMARY"
  log "== $name: $status in ${took} s"
}

# 1. the device
if command -v nvidia-smi >/dev/null; then
  step nvidia-smi 20 nvidia-smi
else
  log "== nvidia-smi: not found (no NVIDIA driver here)"
  echo "| nvidia-smi | not found | 0 |" >>"$SUMMARY"
fi

# 2. hydra-core, which the device image lacks, from the carried wheels
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if ! "$PY" -c "import hydra, omegaconf" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    SITE=$(mktemp -d /tmp/spatialdtp-site.XXXX)
    # --no-deps: with --target pip would look for packaging and PyYAML among the wheels
    # too; the device has them
    step "install hydra-core from .whl" 120 "$PY" -m pip install -q --no-index --no-deps \
      --no-compile --no-cache-dir --target "$SITE" .whl/*.whl
    export PYTHONPATH=$SITE:$PYTHONPATH
  else
    log "== hydra-core is missing and .whl/ holds no wheels: copy ../shared/device-wheels/*.whl" \
      "into .whl/ and carry it"
    echo "| install hydra-core | failed (no .whl/) | 0 |" >>"$SUMMARY"
    FAILED=1
  fi
fi
"$PY" -c "import sys, numpy, cupy, h5py; print('python', sys.version.split()[0], 'numpy', \
numpy.__version__, 'cupy', cupy.__version__, 'h5py', h5py.__version__)" 2>&1 | tee -a "$LOG"

# 3. the gpu tests (this script's own test deselected: it would start another session),
# then the sm_90 builds: NVRTC with CuPy's options (registers, spills, local memory), nvcc
: >"$OUT/pytest.txt"
PYTEST=("$PY" -m pytest -q -rfEs -p no:cacheprovider -p no:warnings --durations=15)
STEP_OUT=$OUT/pytest.txt step "pytest -m gpu" 200 "${PYTEST[@]}" --continue-on-collection-errors \
  "${PYTEST_GPU[@]}" --deselect tests/test_gpu_session.py tests
STEP_OUT=$OUT/pytest.txt step "pytest sm_90 builds" 60 "${PYTEST[@]}" -s "${PYTEST_BUILD[@]}" \
  tests/test_backends.py

# 4. parity against numpy
step "parity ${PARITY_SHAPE}³" 90 "$PY" -m benchmarks.gpu_session parity --shape "$PARITY_SHAPE" \
  --steps "$PARITY_STEPS" --out "$OUT"

# 5. the benchmark suite's GPU plan
step "benchmarks (cupy, cupy-arrays)" 200 "$PY" -m benchmarks.gpu_session bench \
  --out "$OUT/bench" "${BENCH_ARGS[@]}"
rm -f "$OUT"/bench/*.png            # the plots stay out of the 8 files; results.md has the tables

# 6. one ncu profile of each hot kernel
KERNELS=(cell_kinetics substrate_coefficients stencil_apply jacobi_sweep restrict_sum
         prolong_add transport_max_jump transport_substep observable_sums)
REGEX="regex:^($(IFS='|'; echo "${KERNELS[*]}"))\$"
if command -v ncu >/dev/null; then
  step "ncu ${KERNEL_SHAPE}³" 120 ncu --clock-control none --profile-from-start off \
    --target-processes all -k "$REGEX" --set detailed -f -o "$OUT/kernels" \
    "$PY" -m benchmarks.gpu_session kernels --shape "$KERNEL_SHAPE"
  if [ -f "$OUT/kernels.ncu-rep" ]; then
    ncu --import "$OUT/kernels.ncu-rep" --page details >"$OUT/ncu.txt" 2>&1
  fi
else
  log "== ncu: not found; the kernels run once each without a profiler"
  step "kernels ${KERNEL_SHAPE}³ (no ncu)" 120 "$PY" -m benchmarks.gpu_session kernels \
    --shape "$KERNEL_SHAPE"
fi

took=$(($(date +%s) - START))
cat >>"$SUMMARY" <<EOF

Session time: ${took} s. Files: $(cd "$OUT" && find . -type f | sort | tr '\n' ' ')

Next (whoever ran this on a GPU): copy bench/results.json and bench/results.md to
benchmarks/results/<device>/ (the device slug is in results.json: machine.device_slug),
run \`python -m benchmarks --readme\`, and put the measured figures into the README's
"Measured speed" table; parity.json and pytest.txt say whether the backend is right there.
EOF
log "session done in ${took} s; summary in $SUMMARY"
cat "$SUMMARY"
exit $FAILED
