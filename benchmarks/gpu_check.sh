#!/usr/bin/env bash
# One prepared check for a short-lived CUDA machine (H100 / H200): at most 10 minutes, offline.
#
#   bash benchmarks/gpu_check.sh [OUT.json] [--cpu-smoke]
#
# Writes ONE JSON file (default gpu_check.json; written atomically at the end) holding
#   env        device name, torch / CUDA / cuDNN versions, driver, git commit, date, load;
#   parts      every part's status (ok / failed / timeout), exit code, seconds, time limit and,
#              when it did not succeed, the tail of its log -- a failed part is recorded, never fatal;
#   bench      raw benchmarks/bench_model.py --json results: the default path (micro-batch 10,
#              text checkpointing; training + inference at batch 100), the fast path
#              (--micro-batch 0 --no-checkpointing --only train) and inference at batch 1;
#   evaluation raw benchmarks/bench_evaluation.py --json rows (ActivityNet- and THUMOS14-sized);
#   cuda_tests pytest -m cuda: passed / failed / errors / skipped counts;
#   extract    raw benchmarks/bench_extract.py --json results: stale extract on 4 one-minute 320x240
#              clips, ViT-B/16 (random weights) on the GPU, with 0, 2 and 4 decode workers;
#   summary    median step (s), derived 15 ActivityNet epochs (1500 x step), videos/s at batch 100
#              and 1, evaluation seconds, extract frames/s per worker count, and each against its target.
#
# Text towers have random weights (text.weights=random, as bench_model.py does): nothing is
# downloaded. Each part runs under its own `timeout`, capped by what is left of an overall
# budget (570 s; 230 s with --cpu-smoke), so a hang cannot eat the machine's time.
#
# --cpu-smoke: the same parts on the CPU at tiny sizes (bench_model --quick, the small
# stale-test tower, THUMOS14-sized evaluation only, extract on one 1 s clip with ViT-S/32),
# for tests on a machine without a GPU.
#
# PYTHON: the interpreter (default .venv/bin/python when it exists, else python).
# Exit status: 0 when every part succeeded, 1 when some part failed (the JSON still holds
# everything), 2 on a usage error.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="gpu_check.json"
SMOKE=0
for arg in "$@"; do
    case "$arg" in
        --cpu-smoke) SMOKE=1 ;;
        -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "gpu_check.sh: error: unknown option $arg" >&2; exit 2 ;;
        *) OUT="$arg" ;;
    esac
done
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
if [ ! -d "$(dirname "$OUT")" ]; then
    echo "gpu_check.sh: error: $(dirname "$OUT"): no such folder for the output file" >&2
    exit 2
fi
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT" || exit 2
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

if [ "$SMOKE" = 1 ]; then
    BUDGET=230
    DEVICE=cpu
    BENCH=(--quick --arch stale-test --device cpu --threads 1 --steps 1)
    EVAL=(--cases thumos14 --repeat 1)
    EXTRACT=(--videos 1 --seconds 1 --size 64x48 --fps 10 --workers 0 1 --shards 0 --arch ViT-S-32 --threads 1
             --device cpu)
    export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1
else
    BUDGET=570
    DEVICE=cuda
    BENCH=(--device cuda --steps 10)
    EVAL=(--repeat 3)
    EXTRACT=(--videos 4 --seconds 60 --workers 0 2 4 --shards 0 --device cuda --threads 4 --batch-size 256)
fi
START=$(date +%s)
FAILED=0

# run_part NAME LIMIT_S COMMAND...: the command under `timeout`, its log and status in $WORK
run_part() {
    local name="$1" limit="$2"; shift 2
    local left=$(( BUDGET - ($(date +%s) - START) - 5 ))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 1 ]; then
        printf '{"status": "skipped", "rc": null, "seconds": 0, "limit_s": 0}\n' > "$WORK/$name.status"
        echo "gpu_check: $name skipped (overall budget of ${BUDGET}s spent)" >&2
        FAILED=1
        return
    fi
    echo "gpu_check: $name (limit ${limit}s) ..." >&2
    local t0 rc status
    t0=$(date +%s%N)
    timeout -k 5 "$limit" "$@" > "$WORK/$name.log" 2>&1
    rc=$?
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    case $rc in
        0) status=ok ;;
        124|137) status=timeout; FAILED=1 ;;
        *) status=failed; FAILED=1 ;;
    esac
    printf '{"status": "%s", "rc": %d, "seconds": %d.%03d, "limit_s": %d}\n' "$status" "$rc" \
        $(( ms / 1000 )) $(( ms % 1000 )) "$limit" > "$WORK/$name.status"
    echo "gpu_check: $name $status (exit $rc)" >&2
}

run_part env 30 "$PYTHON" - "$WORK/env.json" <<'EOF'
import datetime, json, os, platform, subprocess, sys
import torch
env = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
       "python": platform.python_version(), "torch": torch.__version__,
       "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
       "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
       "cpu_count": os.cpu_count(), "load_avg": list(os.getloadavg())}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    env.update(device=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
               gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}")
else:
    env["device"] = "cpu: " + (platform.processor() or platform.machine())
for key, cmd in (("driver", ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]),
                 ("git_commit", ["git", "rev-parse", "HEAD"])):
    try:
        env[key] = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env[key] = None
json.dump(env, open(sys.argv[1], "w"), indent=1)
EOF
run_part bench_default 150 "$PYTHON" benchmarks/bench_model.py "${BENCH[@]}" --json "$WORK/bench_default.json"
run_part bench_fast 100 "$PYTHON" benchmarks/bench_model.py "${BENCH[@]}" --micro-batch 0 --no-checkpointing \
    --only train --json "$WORK/bench_fast.json"
run_part predict_batch_1 60 "$PYTHON" benchmarks/bench_model.py "${BENCH[@]}" --only infer --predict-batch 1 \
    --json "$WORK/predict_batch_1.json"
run_part evaluation 60 "$PYTHON" benchmarks/bench_evaluation.py "${EVAL[@]}" --json "$WORK/evaluation.json"
run_part cuda_tests 70 "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests --junitxml="$WORK/cuda_tests.xml"
run_part extract 100 "$PYTHON" benchmarks/bench_extract.py "${EXTRACT[@]}" --workdir "$WORK" --json "$WORK/extract.json"

"$PYTHON" - "$WORK" "$OUT" "$SMOKE" "$DEVICE" <<'EOF'
import json, math, os, sys, xml.etree.ElementTree as ET
from pathlib import Path

work, out, smoke, device = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
NAMES = ["env", "bench_default", "bench_fast", "predict_batch_1", "evaluation", "cuda_tests", "extract"]


def load(name):
    try:
        return json.loads((work / name).read_text())
    except (OSError, ValueError):
        return None


parts = {}
for name in NAMES:
    st = load(f"{name}.status") or {"status": "missing", "rc": None, "seconds": None, "limit_s": None}
    if st["status"] != "ok":
        try:
            st["log_tail"] = (work / f"{name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            st["log_tail"] = ""
    parts[name] = st
bench = {k: load(f"{k}.json") for k in ("bench_default", "bench_fast", "predict_batch_1")}
evaluation = load("evaluation.json")
extract = load("extract.json")
tests = None
try:
    suites = ET.parse(work / "cuda_tests.xml").getroot()
    suites = [suites] if suites.tag == "testsuite" else list(suites)
    count = lambda key: sum(int(s.get(key, 0)) for s in suites)
    tests = {"tests": count("tests"), "failed": count("failures"), "errors": count("errors"),
             "skipped": count("skipped")}
    tests["passed"] = tests["tests"] - tests["failed"] - tests["errors"] - tests["skipped"]
except (OSError, ET.ParseError):
    pass


def result(name, case):
    for r in (bench.get(name) or {}).get("results", []):
        if r["case"]["name"] == case:
            return r
    return None


def train(name):
    r = result(name, "train, text fine-tuned")
    if r is None:
        return None
    return {"step_s": r["value"] / 1000.0, "batch": r["case"]["batch"],
            "micro_batch": r["case"]["micro_batch"], "grad_checkpointing": r["case"]["grad_checkpointing"],
            "context_length": r["case"]["context_length"], "gpu_peak_mib": r.get("gpu_peak_mib"),
            **r.get("derived", {})}


def infer(name, case):
    r = result(name, case)
    return None if r is None else {"batch": r["case"]["batch"], "videos_per_s": r["value"]}


summary = {"train": {"default": train("bench_default"), "fast": train("bench_fast")},
           "inference": {"full_batch": infer("bench_default", "predict"),
                         "batch_1": infer("predict_batch_1", "predict, batch 1")},
           "evaluation_s": {r["case"]: r["eval_s"] for r in (evaluation or {}).get("rows", [])} or None,
           "cuda_tests": tests,
           "extract": [{"case": r["case"], "decoded_frames_per_s": r["decoded_fps"],
                        "encoded_frames_per_s": r["encoded_fps"], "videos_per_hour": r["videos_per_hour"],
                        "same_bytes": r["identical"]} for r in (extract or {}).get("rows", [])] or None}
targets = {"train_step_s_max": 0.08, "inference_videos_per_s_min": 2000.0,
           "activitynet_15_epochs_s_max": 120.0}
fast = summary["train"]["fast"] or {}
full = summary["inference"]["full_batch"] or {}
summary["targets"] = targets
summary["meets_targets"] = None if smoke else {
    "train_step": fast.get("step_s") is not None and fast["step_s"] <= targets["train_step_s_max"],
    "inference": full.get("videos_per_s") is not None and full["videos_per_s"] >= targets["inference_videos_per_s_min"],
    "activitynet_15_epochs": fast.get("activitynet_15_epochs_s") is not None
    and fast["activitynet_15_epochs_s"] <= targets["activitynet_15_epochs_s_max"]}
report = {"schema": "stale-gpu-check/1", "mode": "cpu-smoke" if smoke else "gpu", "device": device,
          "env": load("env.json"), "parts": parts, "summary": summary, "bench": bench,
          "evaluation": evaluation, "extract": extract}


def finite(obj):
    """Non-finite numbers become null (the JSON stays standard)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    return obj


tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
tmp.write_text(json.dumps(finite(report), indent=1, allow_nan=False, default=str))
os.replace(tmp, out)
print(f"gpu_check: wrote {out}", file=sys.stderr)
EOF
rc=$?
if [ $rc -ne 0 ]; then
    echo "gpu_check.sh: error: could not write $OUT" >&2
    exit 1
fi
exit $FAILED
