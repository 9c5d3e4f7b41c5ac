#!/usr/bin/env bash
# One-call GPU check for issue 6 (speed). Run from the repository root on a CUDA machine:
#     bash codes/benchmarks/device_check.sh            # writes JSON + logs under $OUT (or ./device_check_out)
# Budget: about 7-8 minutes on an H100 (DEADLINE=540 for all of it): every run has its own
# timeout, runs are skipped after DEADLINE seconds (default 400), and each run writes its JSON at
# once, so partial results come back.
# QUICK=1: only the x4 part of the issue table (fp16 step, inference, degradation, FLOPs, profiles), the
# same with Aᵀ's blur as a transposed convolution and with the FFT blur, the x4 step compiled with CUDA
# graphs (reduce-overhead), then the x4 step with contiguous weights and the x2 step, about 4 minutes
# on an H100; device_train.sh runs it first with BENCH=1.
# SKIP_TABLE=1: only the rest (the options, bf16, torch.compile), for a later call.
# PACK=1: pack the files into $OUT/device_check.tgz at the end (at most 8 files come back).
# Dry run on a CPU (checks the script, not the speed):
#     DEVICE=cpu EXTRA="--batch 1 --gt_size 16 --infer_sizes 8 --repeats 1 --warmup 0 --threads 1" \
#         bash codes/benchmarks/device_check.sh
# Targets (H100, faithful numerics): x4/x2 train step <= 45 ms, degradation <= 1 ms,
# x4 inference LR 256x256 <= 15 ms and <= 1 GiB.
set -u
OUT=${OUT:-device_check_out}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
DEVICE=${DEVICE:-cuda}
EXTRA=${EXTRA:-}
DEADLINE=${DEADLINE:-400}
B="python codes/benchmarks/benchmark.py --device $DEVICE"
finish() {  # PACK=1: everything in one archive (the device tool brings back at most 8 files)
    echo "$1; files in $OUT" | tee -a "$LOG"
    if [ -n "${PACK:-}" ]; then
        (cd "$OUT" && tar czf device_check.tgz --exclude=device_check.tgz ./* &&
         find . -maxdepth 1 -type f ! -name device_check.tgz ! -name log.txt -delete)
    fi
    ls -la "$OUT"
    exit 0
}
run() {  # run <seconds> <name> <args...>
    local secs=$1 name=$2; shift 2
    if (( SECONDS + 20 > DEADLINE )); then echo "=== $name: skipped (deadline)" | tee -a "$LOG"; return; fi
    (( SECONDS + secs > DEADLINE )) && secs=$((DEADLINE - SECONDS))
    echo "=== $name: $* $EXTRA" | tee -a "$LOG"
    local t0=$SECONDS
    # shellcheck disable=SC2086
    timeout "$secs" $B "$@" $EXTRA --json "$OUT/$name.json" >>"$LOG" 2>&1
    echo "=== $name: rc=$? in $((SECONDS - t0)) s" | tee -a "$LOG"
    tail -n 8 "$LOG" | grep -v "^===" || true
}
{ date; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv 2>/dev/null; uptime
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# 1. the issue table with profiles (defaults: direct blur, channels-last on the GPU), then the plain
#    path (every speed/memory option off) to see what the options are worth.
#    (First device session, H100: the x4 run with FLOPs and a profile ran past 80 s, mostly Python
#    start-up, the FLOP count on the CPU and cuDNN's autotuning, and lost its figures; the profiles
#    now come after the JSON.)
if [ -z "${SKIP_TABLE:-}" ]; then
# --profile: torch.profiler tables of 3 steps and of 3 forwards at LR 256 (device busy vs wall time),
# written after the JSON, so a timeout while profiling keeps the figures
run 150 x4_fp16     --scale 4 --precision fp16 --parts flops,infer,degrade,train --repeats 10 --warmup 3 \
    --profile "$OUT/x4_fp16_profile.txt"
# Aᵀ's blur as cuDNN's transposed convolution (the blur impl before 2026-11-26): the H100 profile of
# 2026-11-26 gave it 67% of the inference time at LR 256 (14.2 ms a call without autotuning, against
# 0.49 ms for the depthwise correlation that 'direct' now uses); this run is the baseline of the change
run 60 x4_fp16_tconv --scale 4 --precision fp16 --parts infer,train --blur transposed --repeats 10 --warmup 3
# the FFT blur (the backward of the nine 21x21 blurs of a step took 14 of its 63 GPU ms in that profile)
run 45 x4_fp16_fft  --scale 4 --precision fp16 --parts infer,train --blur fft --repeats 20 --warmup 5
# CUDA graphs through torch.compile against the host launch overhead (x2 on 2026-11-25: GPU busy 33 of
# 76 ms; x4 on 2026-11-26: busy 63 of 71 ms, and this run 62.6 ms); device_train.sh COMPILE=auto
# trains with it when this run is 15% faster
run 150 x4_fp16_compile_ro --scale 4 --precision fp16 --parts train --compile reduce-overhead --repeats 20 \
    --warmup 3
# the weights in the layout of their maps (KULNet.match_weight_layout, default since 2026-11-26)
# against contiguous weights, whose gradients autograd converts back (counted on the CPU: 1,274 ->
# 1,174 ATen operators a x4 step) and which cuDNN is expected to convert at every convolution
run 45 x4_fp16_wcontig --scale 4 --precision fp16 --parts train --weight_layout contiguous --repeats 10 --warmup 3
if [ -n "${QUICK:-}" ]; then
    # x2 (its step for plan_training.py too): host-bound when last timed (2026-11-25: GPU busy 33 of
    # 76 ms), so fewer operators should show there; the full run times it below with a profile
    run 45 x2_fp16 --scale 2 --precision fp16 --parts train --repeats 10 --warmup 3
    finish "done (QUICK)"
fi
run 80 x2_fp16      --scale 2 --precision fp16 --parts degrade,train --repeats 10 --warmup 3 \
    --profile "$OUT/x2_fp16_profile.txt"
# the memory options add 9% operators to a step (benchmarks/op_count.py), which costs where the step is host-bound
run 60 x4_fp16_nomem --scale 4 --precision fp16 --parts train --memory_options off --repeats 10 --warmup 3
run 100 x4_fp16_plain --scale 4 --precision fp16 --parts infer,train --plain --repeats 10 --warmup 3
fi
# 2. speed options (each equals the plain path to float rounding; see tests/test_benchmark.py)
run 60 x4_fp16_nchw --scale 4 --precision fp16 --parts infer,train --channels_last off --repeats 10 --warmup 3
run 45 x4_bf16      --scale 4 --precision bf16 --parts train --repeats 20 --warmup 5
run 45 x2_bf16      --scale 2 --precision bf16 --parts train --repeats 20 --warmup 5
run 40 x4_infer_bf16_cl_fft --scale 4 --parts infer --infer_precision bf16 --channels_last on --blur fft \
    --repeats 20 --warmup 3
# 3. more torch.compile (compile time counts in the warm-up only; the x4 reduce-overhead run is in 1)
run 120 x2_fp16_compile_ro --scale 2 --precision fp16 --parts train --compile reduce-overhead --repeats 20 \
    --warmup 3
run 120 x4_fp16_compile --scale 4 --precision fp16 --parts train --compile --repeats 20 --warmup 3
finish done
