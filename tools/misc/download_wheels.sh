#!/usr/bin/env bash
# Fill a folder with everything tools/setup_env.sh installs (torch aside),
# for a machine that reaches no package registry: run it where one is
# reachable, carry the folder, then on the target machine
#
#   PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels TORCH_SPEC=none \
#       bash tools/setup_env.sh
#
#   bash tools/misc/download_wheels.sh [DIR] [PYTHON_VERSION] [PLATFORM]
#   (defaults: wheels, 3.12, manylinux2014_x86_64)
#
# TORCH_SPEC=none keeps the torch + torchvision already in the target's
# environment (create it with --system-site-packages, or install them into
# .venv first); to carry torch too, add its wheels to the folder and leave
# TORCH_SPEC unset.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:-wheels}"
PYV="${2:-3.12}"
PLAT="${3:-manylinux2014_x86_64}"
PIP="${PIP:-python3 -m pip}"
mkdir -p "$DIR"
REQ="$(mktemp)"
ST="$(mktemp -d)"
trap 'rm -f "$REQ"; rm -rf "$ST"' EXIT
# mmcv 2.1.0 has no wheel on PyPI for current torch: its sdist comes below
cat "$ROOT"/requirements/{build,tests,mim}.txt >"$REQ"
grep -v '^mmcv' "$ROOT/requirements/mminstall.txt" >>"$REQ"
grep -v '^openmim' "$ROOT/requirements/runtime.txt" >>"$REQ"
# wheels for the target's Python and platform, with their dependencies
$PIP download -q -d "$DIR" --python-version "$PYV" --platform "$PLAT" \
    --platform "manylinux_2_28_x86_64" --only-binary=:all: -r "$REQ" \
    -c "$ROOT/requirements/constraints.txt"
# openmim without its dependencies, and the setuptools of the develop step
$PIP download -q -d "$DIR" --no-deps \
    "$(grep '^openmim' "$ROOT/requirements/runtime.txt")" \
    -r "$ROOT/requirements/develop.txt"
# mmcv is built from its sdist by setup_env.sh. pip reads the sdist's
# metadata by running its setup.py, which imports pkg_resources: setuptools
# >= 81 has none, so that step runs with the develop step's setuptools.
$PIP install -q --no-deps --target "$ST" -r "$ROOT/requirements/develop.txt"
PYTHONPATH="$ST" $PIP download -q -d "$DIR" --no-deps \
    --no-build-isolation --no-binary mmcv "mmcv==2.1.0"
echo "$(ls "$DIR" | wc -l) files in $DIR"
