#!/usr/bin/env bash
# Set up (if needed) and run the built-in zero-shot demo; extra arguments go to `stale demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/stale demo "$@"
