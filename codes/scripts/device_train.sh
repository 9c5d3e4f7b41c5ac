#!/usr/bin/env bash
# One device call for the pretrained models (issue 7): train for a fixed wall-clock budget, continuing
# from pretrained/KULNet_x<S>.pth when it exists (weights only: Adam restarts with a warm-up), then
# score Set5 under the nine-kernel protocol and bring back the weights, the log and the results.
#
# Here, once (../shared does not travel to the device; .carry/ is ignored by git):
#     mkdir -p .carry && cp -r ../shared/datasets/train ../shared/datasets/Set5 ../shared/datasets/Set14 .carry/
# Then:  run(carry=[".carry"], timeout_s=560, command="bash codes/scripts/device_train.sh 4 6")
#        (scale 4, 6 minutes of training; the evaluation and start-up take about a minute more)
# Dry run on a CPU (checks the script, not the model):
#     DRY=1 bash codes/scripts/device_train.sh 4 0.2
set -euo pipefail
SCALE=${1:-4}
MINUTES=${2:-6}
OUT=${OUT:-device_train_out}
DATA=${DATA:-.carry}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
NAME="KULNet_x${SCALE}_device"
EXP="$OUT/exp"
START="pretrained/KULNet_x${SCALE}.pth"

ARGS=(-opt options/train/train_demo.yml --time_budget "$MINUTES"
      --set "name=$NAME" --set "scale=$SCALE" --set "datasets.train.GT_size=$((48 * SCALE))"
      --set "datasets.train.dataroot_GT=$DATA/train/HR" --set "datasets.val.dataroot_GT=$DATA/Set14/HR"
      --set "path.experiments_root=$EXP" --set logger.progress_bar=false
      --set train.niter=100000 --set "train.lr_steps=[100000]" --set train.warmup_iter=200
      --set train.val_freq=1000 --set logger.save_checkpoint_freq=1000)
[ -f "$START" ] && ARGS+=(--set "path.pretrain_model_G=$START")
TEST=(--checkpoint "$EXP/$NAME/models/latest_G.pth" --datasets "Set5=$DATA/Set5/HR"
      --out "$OUT/test_set5" --no_save_images)
if [ -n "${DRY:-}" ]; then  # tiny CPU settings
    ARGS+=(--device cpu --set datasets.train.batch_size=2 --set datasets.train.n_workers=0
           --set "network_G={est_nf: 8, sr_nf: 8, n_stages: 2}" --set datasets.val.max_images=1)
    TEST+=(--device cpu)
fi
{ date; nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/env.txt"

t0=$SECONDS
python codes/train.py "${ARGS[@]}" 2>&1 | tee "$OUT/train.log" | grep -E "validation|stopped|saved|error" || true
echo "training: $((SECONDS - t0)) s"
cp "$EXP/$NAME/models/latest_G.pth" "$OUT/KULNet_x${SCALE}.pth"
if [ -z "${DRY:-}" ]; then
    python codes/test.py -opt options/test/test.yml "${TEST[@]}" 2>&1 | tail -n 25 | tee "$OUT/test.log"
else
    echo "DRY: skipping the Set5 evaluation (the tiny network does not match the test options)"
fi
rm -rf "$EXP"  # only the files above come back
ls -la "$OUT"
