#!/usr/bin/env bash
# One-shot benchmark run on a CUDA machine: installs the carried wheels, runs the CUDA-only tests and every
# benchmark at full size (Groma-7B shapes, random weights), and writes the result tables to $OUT:
#   run.log (environment, test results, progress) and one Markdown table per benchmark (7 files).
# Every step has a time limit and the whole run stays under GROMA_BENCH_BUDGET seconds (default 450); a benchmark
# cut short still writes the rounds it measured (its table says PARTIAL).
#
#   OUT=/path/to/empty/folder bash benchmarks/gpu/run.sh                 # from the repository root
#   GROMA_BENCH_SIZE=small GROMA_BENCH_TIME_SCALE=4 OUT=/tmp/out bash benchmarks/gpu/run.sh   # CPU dry run
#
# GROMA_BENCH_TIME_SCALE multiplies every time limit and the budget (a slow or shared CPU needs more time).
#
# Wheels: every .whl under .whl/ (or GROMA_BENCH_WHEELS) is installed with --no-deps into GROMA_BENCH_SITE
# (default /tmp/site), which goes on PYTHONPATH; benchmarks/gpu/fetch_wheels.sh downloads them.
set -u
: "${OUT:?set OUT to an empty output folder}"
SIZE=${GROMA_BENCH_SIZE:-full}
export SCALE=${GROMA_BENCH_TIME_SCALE:-1}
BUDGET=$((${GROMA_BENCH_BUDGET:-450} * SCALE))
SITE=${GROMA_BENCH_SITE:-/tmp/site}
WHEELS=${GROMA_BENCH_WHEELS:-.whl}
START=$(date +%s)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1

elapsed() { echo $(($(date +%s) - START)); }

# step NAME LIMIT COMMAND...: run COMMAND with at most LIMIT seconds (less if the budget is nearly spent);
# the command may use $LIMIT (exported) to size its own time budget.
step() {
    local name=$1 limit=$(($2 * SCALE))
    shift 2
    local left=$((BUDGET - $(elapsed) - 5))
    if ((left < 30)); then
        echo "== $name: skipped, the time budget is spent"
        return
    fi
    ((limit > left)) && limit=$left
    export LIMIT=$limit
    echo "== $name: limit ${limit}s, at $(elapsed)s"
    local t0
    t0=$(date +%s)
    timeout -k 5 "$limit" "$@"
    echo "== $name: exit $? after $(($(date +%s) - t0))s"
}

# bench NAME LIMIT SCRIPT ARGS...: a benchmark told to stop starting rounds 30 s before its limit.
bench() {
    local name=$1 limit=$2 script=$3
    shift 3
    step "$name" "$limit" bash -c 'python3 "benchmarks/$0" --size "$1" --output-dir "$2" --time-budget $((LIMIT - 30 * SCALE)) "${@:3}"' \
        "$script" "$SIZE" "$OUT" "$@"
}

echo "== install wheels from $WHEELS into $SITE"
for wheel in "$WHEELS"/*.whl; do
    [ -e "$wheel" ] || continue
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$wheel" \
        || echo "   could not install $wheel"
done
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error

echo "== environment"
python3 - <<'PY'
import platform, importlib.util
import torch, transformers
print("python", platform.python_version(), "| torch", torch.__version__, "| transformers", transformers.__version__)
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
print("flash_attn installed:", importlib.util.find_spec("flash_attn") is not None)
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv

step "CUDA-only tests" 35 python3 -m pytest -q -p no:cacheprovider -o addopts="" -rs \
    tests/modeling/test_cuda.py tests/training/test_gpu.py tests/modeling/test_low_memory.py::test_quantized_groma_on_cuda_selects_the_float32_regions
bench "grounded inference" 100 grounded_inference.py
bench "decode" 90 decode.py --repeats 3
bench "vision path" 70 vision_path.py
bench "training throughput" 55 train_throughput.py
bench "attention" 40 attention.py
bench "import time" 30 import_time.py --repeats 3
echo "== done at $(elapsed)s; results in $OUT:"
ls -la "$OUT"
