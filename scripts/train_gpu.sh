#!/usr/bin/env bash
# Time-boxed fine-tuning of a shipped family on a leased GPU (or, for a dry run, the CPU): build
# the cache from a packed image folder, train, and leave weights-only checkpoints + logs in $OUT.
#
#   RECIPE=light PACK=gpu_pack OUT=/tmp/out T2=420 B2=16 LR2=1e-4 bash scripts/train_gpu.sh   # mrt-s2 (default)
#   RECIPE=mrt-s PACK=gpu_pack OUT=/tmp/out T1=180 T2=220 bash scripts/train_gpu.sh
#
# RECIPE=light (the shipped mrt-s2 family): stage 2 of configs/stage2_light.yaml from INIT (default
# src/mrt/weights/mrt-s2.mrtm) with the third release's adversarial recipe (noise inputs, feature
# discriminator from scratch, W_ADV from step ADV_START over ADV_RAMP steps) and its loss weights
# read from PACK/loss_pack.safetensors (scripts/make_gpu_pack.py --recipe light).
# RECIPE=mrt-s (the previous family): stage 1 then stage 2 (configs/stage1.yaml, stage2.yaml), each
# initialised from the previous weights, from INIT (default src/mrt/weights/mrt-s.mrtm); PACK holds
# mrtcache/metrics/lpips_alex.safetensors (make_gpu_pack.py --recipe mrt-s).
# PACK holds train/ (images) and taef2/ (the two TAEF2 .pth files) for both. Everything the run
# writes besides $OUT goes to WORK.
set -euo pipefail
RECIPE=${RECIPE:-light}
PACK=${PACK:-gpu_pack}
OUT=${OUT:?set OUT}
WORK=${WORK:-/tmp/mrt_gpu}
DEVICE=${DEVICE:-cuda}
case "$RECIPE" in
  light) INIT=${INIT:-src/mrt/weights/mrt-s2.mrtm}; LR2=${LR2:-1e-4} ;;  # 2e-4 was no better on the CPU (experiments.md)
  mrt-s) INIT=${INIT:-src/mrt/weights/mrt-s.mrtm} ;;
  *) echo "RECIPE must be light or mrt-s" >&2; exit 2 ;;
esac
T1=${T1:-180}          # stage-1 wall-clock budget (s)
T2=${T2:-220}          # stage-2 wall-clock budget (s)
B1=${B1:-32}           # stage-1 batch
B2=${B2:-16}           # stage-2 batch
LR1=${LR1:-5e-4}
LR2=${LR2:-2e-4}
WORKERS=${WORKERS:-6}
STAGES=${STAGES:-"1 2"}  # mrt-s: "2" = stage 2 only, initialised from INIT
W_ADV=${W_ADV:-0.1}      # light: the adversarial term
ADV_START=${ADV_START:-20}
ADV_RAMP=${ADV_RAMP:-80}
EXTRA2=${EXTRA2:-}       # light: more stage-2 overrides, space-separated (e.g. "task_args.train_encoder=true")
PY=${PY:-python3}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MRT_CACHE=$(cd "$PACK" && pwd)/mrtcache
mkdir -p "$OUT" "$WORK"

common=(data.sources="[$PACK/train]" data.cache_dir="$WORK/cache" data.taef2_dir="$PACK/taef2"
        data.max_side=1024 data.num_workers="$WORKERS" task_args.taef2_dir="$PACK/taef2"
        run.device="$DEVICE" run.progress=false run.tensorboard=false run.keep_last=1)

echo "== $(date -u +%T) environment"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

if [[ "$RECIPE" == light ]]; then
[[ -f "$PACK/loss_pack.safetensors" ]] || { echo "$PACK/loss_pack.safetensors missing (make_gpu_pack.py --recipe light)" >&2; exit 2; }
echo "== $(date -u +%T) cache"
$PY -m mrt.train configs/stage2_light.yaml "${common[@]}" data.flip_latents=true --build-only
echo "== $(date -u +%T) stage 2, light (${T2}s)"
$PY -m mrt.train configs/stage2_light.yaml "${common[@]}" run.out_dir="$WORK/stage2" \
    run.init_from="$INIT" run.time_limit_s="$T2" run.steps=100000 run.ckpt_every=100000 run.log_every=20 \
    run.bf16=true run.threads=0 data.batch_size="$B2" optim.lr="$LR2" optim.warmup_steps=50 \
    model.target.light_noise=true task_args.w_adv="$W_ADV" task_args.adv_start="$ADV_START" \
    task_args.adv_ramp="$ADV_RAMP" task_args.disc=features task_args.disc_width=64 \
    task_args.loss_pack="$PACK/loss_pack.safetensors" $EXTRA2 2>&1 | tee "$OUT/stage2.log"
$PY -c "import torch; from mrt.train.checkpoint import slim_checkpoint as s; s('$WORK/stage2', '$OUT/stage2_slim.pt', dtype=torch.float16)"
cp "$WORK/stage2/metrics.csv" "$OUT/stage2_metrics.csv"
echo "== $(date -u +%T) done"
ls -la "$OUT"
exit 0
fi

echo "== $(date -u +%T) cache"
$PY -m mrt.train configs/stage1.yaml "${common[@]}" data.flip_latents=true --build-only

if [[ " $STAGES " == *" 1 "* ]]; then
echo "== $(date -u +%T) stage 1 (${T1}s)"
$PY -m mrt.train configs/stage1.yaml "${common[@]}" run.out_dir="$WORK/stage1" \
    task_args.stage0=null run.init_from="$INIT" run.time_limit_s="$T1" run.steps=100000 run.ckpt_every=100000 run.log_every=50 \
    data.batch_size="$B1" optim.lr="$LR1" optim.warmup_steps=50 2>&1 | tee "$OUT/stage1.log"
$PY -c "import torch; from mrt.train.checkpoint import slim_checkpoint as s; s('$WORK/stage1', '$OUT/stage1_slim.pt', dtype=torch.float16)"
cp "$WORK/stage1/metrics.csv" "$OUT/stage1_metrics.csv"
s2_init=(task_args.stage1="$WORK/stage1")
else
s2_init=(task_args.stage1=null run.init_from="$INIT")  # stage 2 only: continue from INIT
fi

echo "== $(date -u +%T) stage 2 (${T2}s)"
$PY -m mrt.train configs/stage2.yaml "${common[@]}" run.out_dir="$WORK/stage2" \
    "${s2_init[@]}" run.time_limit_s="$T2" run.steps=100000 run.ckpt_every=100000 \
    run.log_every=20 data.batch_size="$B2" optim.lr="$LR2" 2>&1 | tee "$OUT/stage2.log"
$PY -c "import torch; from mrt.train.checkpoint import slim_checkpoint as s; s('$WORK/stage2', '$OUT/stage2_slim.pt', dtype=torch.float16)"
cp "$WORK/stage2/metrics.csv" "$OUT/stage2_metrics.csv"
echo "== $(date -u +%T) done"
ls -la "$OUT"
