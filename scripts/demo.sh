#!/usr/bin/env bash
# Set up (if needed) and run the built-in zero-shot demo; extra arguments go to `stale demo`.
#
# Threads: torch would use every core, which on a machine already busy with other work
# oversubscribes it (a "few minutes" demo once took 26 minutes on a loaded 2-core machine). The
# default here is the cores left free by the current 1-minute load average, rounded, at least 1
# and at most all cores; set STALE_THREADS (or OMP_NUM_THREADS) to choose, or pass --threads N.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
if [ -n "${STALE_THREADS:-}" ]; then
  threads=$STALE_THREADS
elif [ -n "${OMP_NUM_THREADS:-}" ]; then
  threads=$OMP_NUM_THREADS
else
  threads=$(.venv/bin/python - <<'PY'
import os
cores = os.cpu_count() or 1
try:
    load = os.getloadavg()[0]
except (OSError, AttributeError):   # no load average on this platform
    load = 0.0
print(max(1, min(cores, int(cores - load + 0.5))))
PY
)
  echo "demo.sh: using $threads torch thread(s): $(.venv/bin/python -c 'import os; print(os.cpu_count())') cores, 1-minute load $(.venv/bin/python -c 'import os; print(round(os.getloadavg()[0], 2))' 2>/dev/null || echo unknown) (set STALE_THREADS to choose)" >&2
fi
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
exec .venv/bin/stale demo --threads "$threads" "$@"
