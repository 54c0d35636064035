#!/usr/bin/env bash
# One command on a CUDA machine: the CUDA tests, the lego backbone's step
# time against the plain ResNet on CUDA (fp32 and bf16 autocast, batch
# 32 x 224), and the demo on one GPU; one short report.
#
#   bash tools/misc/gpu_check.sh [OUT_DIR]      (default work_dirs/gpu_check)
#   bash tools/misc/gpu_check.sh --dry-run [OUT_DIR]
#
# --dry-run (any machine, no GPU needed, default OUT_DIR
# work_dirs/gpu_check_dry): the same steps and report on the CPU at toy
# sizes (the CUDA tests are collected and skip, the benchmark runs at batch
# 2 x 64, the demo for 10 iterations), so that the script, its commands and
# the report are checked before a GPU is spent on them.
#
# Set-up first, also without a package registry (see docs/get_started.md,
# "GPU machines"):
#   TORCH_SPEC=none bash tools/setup_env.sh          # keep the CUDA torch
#   PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/wheels TORCH_SPEC=none \
#       bash tools/setup_env.sh                      # offline, wheels folder
#
# Every step has its own time limit (GPU_CHECK_LIMIT_S, default 420 s for
# the demo) so that the whole check stays inside about 8 minutes; a step
# that fails or runs out of time is reported and the next one runs.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
if [[ "${1:-}" == -* ]]; then
    echo "usage: bash tools/misc/gpu_check.sh [--dry-run] [OUT_DIR]"; exit 2
fi
if [[ $DRY == 1 ]]; then
    OUT="${1:-$ROOT/work_dirs/gpu_check_dry}"
    DEVICE=cpu BENCH=(--batch-size 2 --size 64 --repeats 2 --warmup 1)
    DEMO=(--iters 10)
else
    OUT="${1:-$ROOT/work_dirs/gpu_check}"
    DEVICE=cuda BENCH=(--batch-size 32 --size 224 --repeats 10 --warmup 2)
    DEMO=()
fi
PY="${PY:-$ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
mkdir -p "$OUT"
REPORT="$OUT/report.md"
cd "$ROOT"

if [[ $DRY == 0 ]]; then
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "gpu_check: torch sees no CUDA device here (--dry-run checks" \
            "the script on the CPU)"; exit 2; }
fi

step() {  # step NAME LIMIT_S CMD...: run, keep the log, note the outcome
    local name="$1" limit="$2"; shift 2
    local start=$SECONDS rc
    echo "[gpu_check] $name"
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; rc=$?
    printf '| %s | %s | %d s |\n' "$name" \
        "$([[ $rc == 0 ]] && echo ok || ([[ $rc == 124 ]] && echo 'timed out' || echo "failed ($rc)"))" \
        "$((SECONDS - start))" >>"$OUT/steps.md"
}

: >"$OUT/steps.md"
"$PY" - >"$OUT/env.md" 2>&1 <<'PYEOF'
import torch, torchvision, mmcv, mmengine, gppf_mm
from gppf_mm.upstream import compiled_ops_available
import platform
if torch.cuda.is_available():
    print(f'- device: {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}')
else:
    print(f'- device: CPU ({platform.machine()}), dry run')
print(f'- Python {platform.python_version()}')
print(f'- torch {torch.__version__}, torchvision {torchvision.__version__}, '
      f'mmcv {mmcv.__version__} ('
      f'{"compiled ops" if compiled_ops_available() else "ops from torchvision"}'
      f'), mmengine {mmengine.__version__}, gppf_mm {gppf_mm.__version__}')
import cv2, numpy
try:
    import transformers
    extra = f', transformers {transformers.__version__}'
except ImportError:
    extra = ''
print(f'- numpy {numpy.__version__}, opencv {cv2.__version__}{extra}')
PYEOF

# 1. tests that need CUDA (they skip on a CPU machine)
step cuda_tests 240 "$PY" -m pytest -q -rs \
    tests/test_upstream tests/test_models/test_routing/test_amp.py \
    tests/test_engine/test_cuda_collectives.py \
    tests/test_e2e/test_cuda_training.py \
    tests/test_engine/test_runner/test_simt_loop.py -k "cuda or upstream"
# 2. step time and memory of the lego backbone against the plain ResNet
for amp in none bf16; do
    step "backbone_$amp" 120 "$PY" tools/analysis_tools/benchmark_backbone.py \
        --device "$DEVICE" "${BENCH[@]}" --autocast "$amp"
done
# 3. the demo on one GPU (one rank)
step demo "${GPU_CHECK_LIMIT_S:-420}" env CUDA_VISIBLE_DEVICES=0 \
    "$PY" tools/demo.py --work-dir "$OUT/demo" "${DEMO[@]}"

{
    echo "# GPU check$([[ $DRY == 1 ]] && echo ' (dry run on the CPU)')"; echo; cat "$OUT/env.md"; echo
    echo "| step | outcome | time |"; echo "|---|---|---|"; cat "$OUT/steps.md"
    echo; echo "## CUDA tests"; echo '```'; tail -n 15 "$OUT/cuda_tests.log"
    echo '```'
    for amp in none bf16; do
        echo; echo "## Lego ResNet-50 vs plain ResNet-50, autocast $amp"
        echo '```'; tail -n 16 "$OUT/backbone_$amp.log"; echo '```'
    done
    echo; echo "## Demo on $([[ $DRY == 1 ]] && echo 'the CPU, 10 iterations' ||
        echo 'one GPU')"; echo '```'
    grep -E '^\[demo\]|^\|' "$OUT/demo.log" | tail -n 30; echo '```'
} >"$REPORT"
echo "[gpu_check] report: $REPORT"
