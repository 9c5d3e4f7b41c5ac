#!/usr/bin/env bash
# Speed check of KULNet on one GPU, in about 5 minutes: one JSON per run under OUT, then
#     ${PYTHON:-python} codes/benchmarks/render_tables.py OUT     # the tables of codes/benchmarks/README.md
# Usage (from the repository root):
#     bash codes/benchmarks/gpu_check.sh [OUT]          # default OUT: benchmark_results/gpu_check
#     DRY_RUN=1 bash codes/benchmarks/gpu_check.sh OUT  # on the CPU at tiny sizes: checks the script only
# Runs: the x4 training step at the defaults (train.yml on CUDA: fp16, compile auto, blur auto), with
# inference (LR 128, 256), the degradation and a profile (top 15 operators); then the step with each
# option changed alone; then x2 and x3 at the defaults, eager. DEADLINE (seconds, default 290) skips
# what would end past it; every run writes its JSON as soon as it ends.
set -u
PY=${PYTHON:-python}
OUT=${1:-benchmark_results/gpu_check}
DEADLINE=${DEADLINE:-290}
mkdir -p "$OUT"
B=(codes/benchmarks/benchmark.py --device cuda --precision fp16 --repeats 10 --warmup 3)
if [ -n "${DRY_RUN:-}" ]; then
    B=(codes/benchmarks/benchmark.py --device cpu --batch 1 --gt_size 24 --infer_sizes 8 --blur_sizes 24
       --repeats 1 --warmup 0 --threads 1)
fi

run() {  # run NAME SECONDS ARGS...: one benchmark run with its own time limit
    local name=$1 secs=$2; shift 2
    if (( SECONDS + 15 > DEADLINE )); then echo "$name: skipped (DEADLINE $DEADLINE s)"; return; fi
    (( SECONDS + secs > DEADLINE )) && secs=$((DEADLINE - SECONDS))
    echo "$name: ${B[*]} $*"
    timeout "$secs" "$PY" "${B[@]}" "$@" --json "$OUT/$name.json" >"$OUT/$name.log" 2>&1
    echo "$name: exit $? after $SECONDS s"
}

"$PY" - "$OUT/env.json" <<'EOF'
import json, platform, sys, torch
cuda = torch.cuda.is_available()
json.dump({"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or "CPU"},
          open(sys.argv[1], "w"), indent=1)
EOF
run x4_defaults 150 --scale 4 --parts train,infer,degrade,blur --profile "$OUT/x4_profile.txt" --profile_rows 15
run x4_eager 40 --scale 4 --parts train --compile eager
run x4_blur_direct 40 --scale 4 --parts train --compile eager --blur direct
run x4_channels_last_off 40 --scale 4 --parts train --compile eager --channels_last off
run x4_memory_options_off 40 --scale 4 --parts train --compile eager --memory_options off
run x4_bf16 40 --scale 4 --parts train --compile eager --precision bf16
run x4_plain 40 --scale 4 --parts train,infer --compile eager --plain
run x2_eager 30 --scale 2 --parts train --compile eager
run x3_eager 30 --scale 3 --parts train --compile eager
echo "done in $SECONDS s; JSON in $OUT"
