#!/usr/bin/env bash
# One device call for the pretrained models (issue 7): train for a fixed wall-clock budget, continuing
# from the float32 weights of the last call when they are carried (.carry/KULNet_x<S>_float32.pth),
# else from pretrained/KULNet_x<S>.pth when it exists (weights only: Adam restarts with a warm-up),
# then ship it with codes/scripts/ship_model.py (float16 copy, Set5 float32-vs-float16 check, Set5 and
# Set14 results with the baselines, manifest, MANIFEST.md, README table), all under $OUT.
# Everything that could fail after the training (data folders, manifest, README markers, a start
# file that is not what was shipped) is checked before it, so a mistake costs no device time.
#
# Here, once (../shared does not travel to the device; .carry/ is ignored by git):
#     mkdir -p .carry && cp -r ../shared/datasets/train ../shared/datasets/Set5 ../shared/datasets/Set14 .carry/
# Then (the three shipped float16 files are in git, so the tree and the data already take 59 of the
# 64 MiB (67.1 MB) a call carries; a float32 file (11.6 MB) no longer fits beside them):
#     run(carry=[".carry/train", ".carry/Set5", ".carry/Set14"],
#         timeout_s=560, command="bash codes/scripts/device_train.sh 4 6")
#     The run continues from the shipped float16 pretrained/KULNet_x4.pth (rounding the weights to
#     float16 moved Set5 by 0.0001 dB, and Adam restarts either way).
#     (scale 4, 6 minutes of training; start-up and the measurements take about 1.5 minutes more;
#     BENCH=1 bash ... also measures issue 6's x4 figures and the compiled step first, about 3 minutes on an H100).
#     The learning rate is constant (2e-4 after a 200-iteration warm-up) by default; ITERS=N bash ...
#     decays it along a cosine to 1e-7 at iteration N instead (set N from the it/s of an earlier call
#     so that N iterations fit in the minutes; the time budget still stops the run).
# Back here: cp <files_at>/pretrained/* pretrained/ && cp <files_at>/README.md README.md, check, commit;
#            cp <files_at>/KULNet_x<S>_float32.pth .carry/ (ignored, the full-precision copy); a later
#            call continues from it only where it fits the 64 MiB (not with three models in git).
#            Adam's state (23 MB) does not come back: each call restarts it with a 200-iteration warm-up.
#            A second call before shipping (2026-11-26, x4): carry .carry/{train,Set5} and the float32 file
#            (65.6 of 67.1 MB: Set14 stays behind) and run train.py with path.pretrain_model_G=<that file>,
#            validation on Set5 and a new train.manual_seed; then ship both calls at once, here:
#            ship_model.py <second> --continues --start pretrained/KULNet_x<S>.pth --via <first> S NAME OPTS.
# The device's copy of the tree may carry a stale .git (the first call recorded an older HEAD):
# put KULNET_CODE_VERSION=$(git rev-parse --short HEAD) (run here, committed tree) before the command.
# For one call that must fit a device budget (issue 7's first x4 call):
#     END_BY=570 ITERS=auto SNAPSHOT=5 SHIP=later BENCH=1 bash codes/scripts/device_train.sh 4
#     END_BY=S: train until S seconds after the script's start (the MINUTES argument is ignored);
#     ITERS=auto: N from the benchmark's train step time (needs BENCH=1), so that the cosine ends
#     with the run; SNAPSHOT=M: also bring back the weights at M minutes of training
#     (KULNet_x<S>_snapshot_float32.pth, to compare with a run of M minutes); SHIP=later: do not ship
#     on the device (the measurements take device time): ship here with ship_model.py afterwards.
#     The logs come back as one archive, device_logs.tgz, in both modes (at most 8 files come back).
#     COMPILE=auto (with ITERS=auto): train with train.compile=reduce-overhead when the benchmark's
#     x<S> (else x4) step is at least 15% faster with it (codes/scripts/plan_training.py; the compile
#     time is taken off the iterations); COMPILE=<mode>: always. With ITERS=auto an eager run also
#     takes train.blur_impl=fft when the benchmark's x4 step was 3% faster with it; BLUR=<impl>: always.
# Dry run on a CPU (checks the script and the shipping, not the model; tiny network, Set5 only):
#     DRY=1 OUT=/tmp/dry bash codes/scripts/device_train.sh 4 0.2
# PRETRAINED (default pretrained) is the folder of the shipped files and manifest (tests change it).
set -euo pipefail
SCALE=${1:-4}
MINUTES=${2:-6}
ITERS=${ITERS:-}
OUT=${OUT:-device_train_out}
DATA=${DATA:-.carry}
PRETRAINED=${PRETRAINED:-pretrained}
mkdir -p "$OUT/pretrained"
export PYTHONUNBUFFERED=1
NAME="KULNet_x${SCALE}_device"
EXP="$OUT/exp"
SHIPPED="$PRETRAINED/KULNet_x${SCALE}.pth"          # float16, in git
FULL="$DATA/KULNet_x${SCALE}_float32.pth"          # the float32 weights an earlier call brought back
START=$([ -f "$FULL" ] && echo "$FULL" || echo "$SHIPPED")

ARGS=(-opt options/train/train_demo.yml
      --set "name=$NAME" --set "scale=$SCALE" --set "datasets.train.GT_size=$((48 * SCALE))"
      --set "datasets.train.dataroot_GT=$DATA/train/HR" --set "datasets.val.dataroot_GT=$DATA/Set14/HR"
      --set "path.experiments_root=$EXP" --set logger.progress_bar=false
      --set train.niter=100000 --set "train.lr_steps=[100000]" --set train.warmup_iter=200
      --set train.val_freq=1000 --set logger.save_checkpoint_freq=1000)
cosine_to() {  # cosine decay to the end of N iterations (short runs end better decayed)
    ARGS+=(--set train.niter="$1" --set train.lr_scheme=CosineAnnealingRestartLR
           --set "train.T_period=[$1]" --set "train.restart_weights=[1]" --set train.eta_min=1e-7)
}
if [ -n "$ITERS" ] && [ "$ITERS" != auto ]; then cosine_to "$ITERS"; fi
if [ -n "${SNAPSHOT:-}" ]; then ARGS+=(--snapshot_after "$SNAPSHOT"); fi
if [ -z "${DRY:-}" ]; then ARGS+=(--set datasets.train.n_workers="${WORKERS:-12}"); fi
SETS=(--set5 "$DATA/Set5/HR" --set14 "$DATA/Set14/HR")
if [ -n "${DRY:-}" ]; then  # tiny CPU settings, Set5 only
    ARGS+=(--device cpu --set datasets.train.batch_size=2 --set datasets.train.n_workers=0
           --set "network_G={est_nf: 8, sr_nf: 8, n_stages: 2}" --set datasets.val.max_images=1)
    SETS=(--set5 "$DATA/Set5/HR" --noise 0 --device cpu)
fi
SHIP_MODE=${SHIP:-device}
if [ "$SHIP_MODE" != device ] && [ "$SHIP_MODE" != later ]; then echo "error: SHIP=$SHIP_MODE: device or later"; exit 2; fi
if [ "$ITERS" = auto ] && [ -z "${BENCH:-}" ]; then echo "error: ITERS=auto needs BENCH=1"; exit 2; fi
case "${COMPILE:-}" in ""|auto|eager|default|reduce-overhead|max-autotune) ;;
    *) echo "error: COMPILE=$COMPILE: auto, eager, default, reduce-overhead or max-autotune"; exit 2;; esac
if [ "${COMPILE:-}" = auto ] && [ "$ITERS" != auto ]; then echo "error: COMPILE=auto needs ITERS=auto and BENCH=1"; exit 2; fi
cp README.md "$OUT/README.md"
if [ -f "$PRETRAINED/manifest.json" ]; then cp "$PRETRAINED/manifest.json" "$OUT/pretrained/"; fi
SHIP=("${SETS[@]}" --out "$OUT/pretrained/KULNet_x${SCALE}.pth" --manifest "$OUT/pretrained/manifest.json"
      --readme "$OUT/README.md")  # --train_options is added once END_BY and ITERS are settled

# before any training: 'continue' (START is what was shipped, or its float32 original) or 'fresh'
MODE=$(python codes/scripts/ship_model.py --check --start "$START" "${SHIP[@]}")
SEED=0  # train_demo.yml's seed for a run from scratch
if [ "$MODE" = continue ]; then
    # a seed of its own for each start file: with seed 0 every call would replay the first call's
    # patches, kernels and noise (the two H200 calls of 2026-11-26 did)
    SEED=$((16#$(sha256sum "$START" | cut -c1-7)))
    echo "continuing from $START (seed $SEED)"
    ARGS+=(--set "path.pretrain_model_G=$START" --set "train.manual_seed=$SEED")
    SHIP+=(--continues --start "$START")
else
    echo "training from scratch"
fi
{ date; nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/env.txt"

BENCH_S=0
if [ -n "${BENCH:-}" ]; then  # issue 6's figures first (about 3 minutes on an H100; BENCH_DEADLINE s at most), JSON under $OUT/bench
    OUT="$OUT/bench" QUICK=1 DEADLINE=${BENCH_DEADLINE:-250} DEVICE=$([ -n "${DRY:-}" ] && echo cpu || echo cuda) \
        EXTRA=${BENCH_EXTRA:-} bash codes/benchmarks/device_check.sh | { grep -E "^=== |^done" || true; }
    BENCH_S=$SECONDS  # not counted as the model's device time
    tar czf "$OUT/bench.tgz" -C "$OUT" bench && rm -rf "$OUT/bench"
fi
if [ -n "${END_BY:-}" ]; then  # the rest of the call's budget, less 25 s for saving and packing
    MINUTES=$(python -c "print(round(max(0.5, ($END_BY - $SECONDS - 25) / 60), 2))")
    echo "training for $MINUTES minutes (END_BY=$END_BY)"
fi
ARGS+=(--time_budget "$MINUTES")
if [ "$ITERS" = auto ]; then  # N iterations for the rest of the budget at the benchmark's step time
    # (and, with COMPILE=auto, train.compile=reduce-overhead when the benchmark found it faster;
    # train.blur_impl=fft for an eager run when the benchmark's FFT-blur step was faster)
    FORCED_BLUR=${BLUR:-}
    read -r ITERS COMPILE BLUR < <(python codes/scripts/plan_training.py "$OUT/bench.tgz" --scale "$SCALE" \
                                   --minutes "$MINUTES" --compile "${COMPILE:-eager}") || true
    [ "$ITERS" = - ] && ITERS=""
    if [ -n "$ITERS" ]; then echo "ITERS=auto: cosine to $ITERS iterations"; cosine_to "$ITERS"
    else echo "warning: ITERS=auto: no train step time in the benchmark, or under 100 iterations; constant learning rate"; fi
fi
COMPILE=${COMPILE:-eager}
COMPILED=""
if [ "$COMPILE" != eager ]; then ARGS+=(--set "train.compile=$COMPILE"); COMPILED="train.compile=$COMPILE, "; fi
BLUR=${FORCED_BLUR:-${BLUR:-auto}}
if [ "$BLUR" != auto ]; then ARGS+=(--set "train.blur_impl=$BLUR"); COMPILED="${COMPILED}train.blur_impl=$BLUR, "; fi
SHIP+=(--train_options "options/train/train_demo.yml, ${ITERS:+cosine to ITERS=$ITERS, }${COMPILED}manual_seed=$SEED, codes/scripts/device_train.sh $SCALE $MINUTES")
t0=$SECONDS
# (|| keeps set -e from ending the group before train.rc is written when train.py fails)
{ rc=0; python codes/train.py "${ARGS[@]}" 2>&1 || rc=$?; echo "$rc" >"$OUT/train.rc"; } | tee "$OUT/train.log" |
    { grep -E "validation|stopped|saved|error" || true; }
echo "training: $((SECONDS - t0)) s, exit status $(cat "$OUT/train.rc")"
WEIGHTS="$EXP/$NAME/models/latest_G.pth"
if [ "$(cat "$OUT/train.rc")" != 0 ] || [ ! -f "$WEIGHTS" ]; then
    echo "error: training failed; nothing shipped (see $OUT/train.log)"; tail -n 5 "$OUT/train.log"
    exit 1
fi
pack_logs() { (cd "$OUT" && tar czf device_logs.tgz "$@" && rm "$@"); }  # at most 8 files come back
cp "$WEIGHTS" "$OUT/KULNet_x${SCALE}_float32.pth"  # 11.5 MB, comes back even if the shipping fails; not for git
SNAP_ITER=$(sed -n 's/.*snapshot at iteration \([0-9]*\) .*/\1/p' "$OUT/train.log" | head -n 1)
if [ -n "$SNAP_ITER" ]; then cp "$EXP/$NAME/models/${SNAP_ITER}_G.pth" "$OUT/KULNet_x${SCALE}_snapshot_float32.pth"; fi
if [ "$SHIP_MODE" = later ]; then
    echo "SHIP=later: ship here with python codes/scripts/ship_model.py KULNet_x${SCALE}_float32.pth" \
         "--device_seconds $((SECONDS - BENCH_S)) ... (device time of the training part)"
    rm -rf "$EXP" "$OUT/pretrained" "$OUT/README.md"
    pack_logs env.txt train.log train.rc
    echo "total: $SECONDS s"; ls -la "$OUT"
    exit 0
fi
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)
python codes/scripts/ship_model.py "$WEIGHTS" "${SHIP[@]}" \
    --device_seconds "$((SECONDS - BENCH_S))" --device_name "${GPU_NAME:-$(uname -m) CPU}" 2>&1 | tee "$OUT/ship.log"
echo "total: $SECONDS s"
rm -rf "$EXP"  # only the files below come back
pack_logs env.txt train.log train.rc ship.log
ls -la "$OUT" "$OUT/pretrained"
