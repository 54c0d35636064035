#!/usr/bin/env bash
# Set up gppf_mm in a virtual environment inside the checkout.
#
#   bash tools/setup_env.sh        # torch 2.14.1; mmcv without compiled ops:
#                                  # nms / RoIAlign from torchvision (CPU + CUDA)
#   GPPF_MMCV_OPS=compiled bash tools/setup_env.sh            # mmcv CPU ops
#   GPPF_MMCV_OPS=compiled FORCE_CUDA=1 bash tools/setup_env.sh  # CUDA ops
#
# Environment variables:
#   GPPF_VENV     where the environment lives (default: <repo>/.venv)
#   PYTHON        interpreter used to create it (default: python3)
#   TORCH_SPEC    pip requirement(s) for torch (default: the pinned pair below);
#                 set TORCH_SPEC=none to keep a torch that is already installed
#                 in the environment (for example your own CUDA build)
#   GPPF_MMCV_OPS torchvision (default): mmcv 2.1.0's Python code only, no
#                 compiler needed; gppf_mm supplies the ops its configs use
#                 from torchvision's kernels (gppf_mm/upstream).
#                 compiled: build mmcv's own ops from source (minutes)
#   FORCE_CUDA    1 to build mmcv's CUDA ops (with GPPF_MMCV_OPS=compiled)
#   MAX_JOBS      parallel compile jobs for mmcv (default: number of cores)
#
# The script is idempotent: when nothing it depends on changed it returns in
# seconds. The compiled mmcv wheel is cached outside the checkout under
# ${XDG_CACHE_HOME:-~/.cache}/gppf_mm/ with a key made of the mmcv version,
# the torch version, the python tag and the ops flavour, so a fresh clone on
# the same machine reuses it and it is never reused against another torch.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GPPF_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
MMCV_VERSION=2.1.0
FORCE_CUDA="${FORCE_CUDA:-0}"
MMCV_OPS="${GPPF_MMCV_OPS:-torchvision}"
case "$MMCV_OPS" in
    torchvision|compiled) ;;
    *) echo "GPPF_MMCV_OPS must be 'torchvision' or 'compiled', got '$MMCV_OPS'"
       exit 2 ;;
esac
if [[ "$FORCE_CUDA" == "1" && "$MMCV_OPS" != "compiled" ]]; then
    echo "FORCE_CUDA=1 builds mmcv's CUDA ops: set GPPF_MMCV_OPS=compiled too"
    echo "(without it, torchvision's CUDA kernels serve nms and RoIAlign)"
    exit 2
fi
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/gppf_mm"

log() { printf '[setup_env] %s\n' "$*" >&2; }

# Everything that decides what gets installed goes into the stamp.
stamp_of() {
    cat "$ROOT/tools/setup_env.sh" "$ROOT"/requirements/*.txt "$ROOT/setup.py" \
        2>/dev/null | sha256sum | cut -d' ' -f1
    echo "$TORCH_SPEC $MMCV_OPS $FORCE_CUDA $PYTHON"
}
STAMP_FILE="$VENV/.gppf_mm_stamp"
WANT_STAMP="$(stamp_of)"

if [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$WANT_STAMP" ]] &&
    "$VENV/bin/python" -c "import gppf_mm, mmcv.ops, mmdet, mmseg, mmpretrain" \
        >/dev/null 2>&1; then
    log "environment at $VENV is up to date"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment at $VENV"
    "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
pip_install() { "$VPY" -m pip install --disable-pip-version-check -q "$@"; }

log "installing build requirements"
pip_install -r "$ROOT/requirements/build.txt"

if [[ "$TORCH_SPEC" != "none" ]]; then
    log "installing $TORCH_SPEC"
    # shellcheck disable=SC2086
    pip_install $TORCH_SPEC
fi
"$VPY" -c "import torch, torchvision" || {
    log "torch/torchvision do not import in $VENV"; exit 1; }

# ---------------------------------------------------------------- mmcv ---
if "$VPY" - "$MMCV_VERSION" "$MMCV_OPS" "$FORCE_CUDA" <<'EOF' >/dev/null 2>&1
import importlib.util
import sys
import mmcv
assert mmcv.__version__ == sys.argv[1]
compiled = importlib.util.find_spec('mmcv._ext') is not None
assert compiled == (sys.argv[2] == 'compiled')
if sys.argv[3] == '1':
    import torch
    from mmcv.utils import ext_loader
    ext = ext_loader.load_ext('_ext', ['nms'])
    assert torch.cuda.is_available()
    assert ext.get_compiling_cuda_version() != 'not available'
EOF
then
    log "mmcv $MMCV_VERSION ($MMCV_OPS ops) already installed"
else
    read -r TORCH_VER PY_TAG CUDA_VER < <("$VPY" -c "
import sys, torch
print(torch.__version__.replace('+', '_'),
      'cp%d%d' % sys.version_info[:2], torch.version.cuda or 'none')")
    if [[ "$MMCV_OPS" == "torchvision" ]]; then OPS="noops"
    elif [[ "$FORCE_CUDA" == "1" ]]; then OPS="cuda${CUDA_VER}"; else OPS="cpu"; fi
    KEY="mmcv-${MMCV_VERSION}_torch-${TORCH_VER}_${PY_TAG}_${OPS}_$(uname -m)"
    CACHE_DIR="$CACHE_ROOT/wheels/$KEY"
    WHEEL="$(ls "$CACHE_DIR"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$WHEEL" ]]; then
        if [[ "$OPS" == "noops" ]]; then
            log "building mmcv $MMCV_VERSION without compiled ops (seconds)"
        else
            log "building mmcv $MMCV_VERSION ops against torch $TORCH_VER ($OPS);"
            log "this takes about 10-15 minutes on 2 cores, once per torch"
        fi
        WORK="$(mktemp -d)"
        trap 'rm -rf "$WORK"' EXIT
        "$VPY" -m pip download --disable-pip-version-check -q --no-deps \
            --no-binary mmcv --no-build-isolation "mmcv==$MMCV_VERSION" -d "$WORK"
        tar -xzf "$WORK/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK"
        SRC="$WORK/mmcv-$MMCV_VERSION"
        # torch >= 2.14 headers require C++20; mmcv 2.1.0 hard-codes C++14/17.
        if "$VPY" -c "
import torch, sys
v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2])
sys.exit(0 if v >= (2, 14) else 1)"; then
            sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' \
                "$SRC/setup.py"
        fi
        WITH_OPS=1
        if [[ "$OPS" == "noops" ]]; then
            WITH_OPS=0
            # without ops mmcv's setup.py names the distribution mmcv-lite;
            # keep the name mmcv, which the OpenMMLab packages require
            sed -i -e "s/'mmcv-lite'/'mmcv'/g" "$SRC/setup.py"
        fi
        mkdir -p "$WORK/dist"
        (cd "$SRC" && MMCV_WITH_OPS="$WITH_OPS" FORCE_CUDA="$FORCE_CUDA" \
            MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$VPY" -m pip wheel --disable-pip-version-check -q --no-deps \
            --no-build-isolation -w "$WORK/dist" .)
        mkdir -p "$CACHE_DIR"
        BUILT="$(ls "$WORK"/dist/mmcv-*.whl)"
        # copy then rename so an interrupted copy never looks like a wheel
        cp "$BUILT" "$CACHE_DIR/.partial"
        mv "$CACHE_DIR/.partial" "$CACHE_DIR/$(basename "$BUILT")"
        WHEEL="$CACHE_DIR/$(basename "$BUILT")"
        log "cached $WHEEL"
    else
        log "reusing cached $WHEEL"
    fi
    pip_install --force-reinstall --no-deps "$WHEEL"
fi

# ---------------------------------------------- OpenMMLab + the rest ---
log "installing OpenMMLab packages and runtime/test requirements"
grep -v '^openmim' "$ROOT/requirements/runtime.txt" > "$VENV/.runtime-no-mim.txt"
pip_install -r "$ROOT/requirements/mminstall.txt" \
    -r "$VENV/.runtime-no-mim.txt" -r "$ROOT/requirements/tests.txt" \
    -r "$ROOT/requirements/mim.txt" -r "$ROOT/requirements/build.txt" \
    -c "$ROOT/requirements/constraints.txt"
# see requirements/mim.txt for why openmim goes in without its dependencies
pip_install --no-deps "$(grep '^openmim' "$ROOT/requirements/runtime.txt")"

if [[ -f "$ROOT/setup.py" ]]; then
    log "installing gppf_mm in development mode"
    # mim finds configs and tools under <distribution location>/gppf_mm/.mim.
    # A legacy 'develop' install (egg-link) makes that location the source
    # tree; setuptools >= 80 turns 'develop' into a PEP 660 editable install
    # located in site-packages, where mim finds nothing. So the develop step
    # runs with the setuptools of requirements/develop.txt, kept apart from
    # the environment's own.
    LEGACY_ST="$VENV/.develop-setuptools"
    if [[ ! -d "$LEGACY_ST/setuptools" ]]; then
        "$VPY" -m pip install --disable-pip-version-check -q --no-deps \
            --target "$LEGACY_ST" -r "$ROOT/requirements/develop.txt" \
            2>/dev/null ||
            { echo "could not install requirements/develop.txt (setuptools" \
                   "for the develop step)"; exit 1; }
    fi
    "$VPY" -m pip uninstall -y -q gppf_mm >/dev/null 2>&1 || true
    (cd "$ROOT" && PYTHONPATH="$LEGACY_ST" "$VPY" setup.py -q develop \
        --no-deps >"$VENV/.develop.log" 2>&1) ||
        { cat "$VENV/.develop.log"; exit 1; }
fi

"$VPY" -c "import gppf_mm, mmcv.ops, mmdet, mmseg, mmpretrain" 2>/dev/null &&
    echo "$WANT_STAMP" > "$STAMP_FILE"
log "done: activate with 'source $VENV/bin/activate'"
