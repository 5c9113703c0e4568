#!/usr/bin/env bash
# Create ./.venv with stale and its dependencies (idempotent: a second run only checks).
# torch 2.14.1 + torchvision 0.29.1 are pinned together on purpose: open-clip-torch imports
# torchvision, and a torchvision built for another torch fails at import time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import stale, torch, torchvision, open_clip, orjson, selenium, submitit, h5py" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  .venv/bin/python -m pip install -q -e ".[test]"
fi
.venv/bin/python -c "import stale, torch; print(f'stale {stale.__version__} ready (torch {torch.__version__})')"
