#!/usr/bin/env bash
# Idempotent set-up of the OpenMMLab stack in .venv/ (repo root).
#
#   bash tools/setup_env.sh          # or: make setup
#
# Re-runs are fast: a stamp file records a hash of the requirement files and setup.py,
# and pip's wheel cache keeps the compiled mmcv, so only a changed requirement reinstalls.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
STAMP=$VENV/.mmvit_ext-stack
HASH=$(cat requirements/*.txt setup.py | sha256sum | cut -c1-16)

if [[ -f $STAMP && $(cat "$STAMP") == "$HASH" ]] && "$VENV/bin/python" -c 'import mmvit_ext' 2>/dev/null; then
  echo "[setup] .venv is up to date ($HASH)"
  exit 0
fi

step() { echo "[setup] $(date +%H:%M:%S) $*"; }

if [[ ! -x $VENV/bin/python ]]; then
  step "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
PIP=(pip_quiet "$VENV/bin/python" -m pip --disable-pip-version-check)
# pip warns about index locations of this machine's pip.conf that do not exist; hide only those lines.
pip_quiet() { "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }

step "build tools (pip, setuptools<81 for pkg_resources, wheel, ninja)"
"${PIP[@]}" install -q --upgrade pip
"${PIP[@]}" install -q -r requirements/build.txt

step "torch + torchvision (a large download the first time, then pip's cache)"
"${PIP[@]}" install -q -r requirements/torch.txt

if "$VENV/bin/python" -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == "2.1.0"' 2>/dev/null; then
  step "mmcv 2.1.0 with ops already installed"
else
  step "mmcv 2.1.0 with ops: compiled once (about 15 min on 2 cores), then pip's wheel cache makes it instant"
  LOG=$(mktemp /tmp/mmcv-build.XXXXXX.log)
  # ninja prints [i/N] per compiled file: show those lines as progress, keep the rest in $LOG.
  MMCV_WITH_OPS=1 "${PIP[@]}" install -v --no-build-isolation -r requirements/mminstall.txt -c requirements/torch.txt \
    > >(tee "$LOG" | grep --line-buffered -oE '^ *\[[0-9]+/[0-9]+\]|Using cached mmcv[^ ]*|Successfully installed.*') 2>&1 \
    || { echo "[setup] mmcv install failed, full log: $LOG" >&2; tail -40 "$LOG" >&2; exit 1; }
fi

step "mmengine, mmdet, mmsegmentation, mmpretrain and test tools"
"${PIP[@]}" install -q -r requirements/runtime.txt -r requirements/tests.txt -c requirements/torch.txt -c requirements/mminstall.txt

step "mmvit_ext (editable)"
LOG=$(mktemp /tmp/mmvit_ext-install.XXXXXX.log)
"${PIP[@]}" install -q --no-deps --no-build-isolation -e . > "$LOG" 2>&1 || { cat "$LOG" >&2; exit 1; }

"$VENV/bin/python" - <<'PY'
import torch, torchvision, mmcv, mmcv.ops, mmengine, mmdet, mmseg, mmpretrain, mmvit_ext
print(f"[setup] torch {torch.__version__}, torchvision {torchvision.__version__}, mmengine {mmengine.__version__}, "
      f"mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, "
      f"mmpretrain {mmpretrain.__version__}, mmvit_ext {mmvit_ext.__version__}")
PY
echo "$HASH" > "$STAMP"
step "done"
