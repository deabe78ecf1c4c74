#!/usr/bin/env bash
# Time-boxed fine-tuning of the shipped family on a leased GPU (or, for a dry run, the CPU):
# build the cache from a packed image folder, stage 1 then stage 2, each initialised from the
# previous weights, and leave weights-only checkpoints + logs in $OUT.
#
#   PACK=gpu_pack OUT=/tmp/out T1=180 T2=220 bash scripts/train_gpu.sh
#
# PACK holds train/ (images), taef2/ (the two TAEF2 .pth files) and mrtcache/metrics/
# (lpips_alex.safetensors, as `python -m mrt.metrics.weights fetch` writes it). The run starts from
# INIT (default: the shipped src/mrt/weights/mrt-s.mrtm). Everything it writes besides $OUT goes to WORK.
set -euo pipefail
PACK=${PACK:-gpu_pack}
OUT=${OUT:?set OUT}
WORK=${WORK:-/tmp/mrt_gpu}
DEVICE=${DEVICE:-cuda}
INIT=${INIT:-src/mrt/weights/mrt-s.mrtm}
T1=${T1:-180}          # stage-1 wall-clock budget (s)
T2=${T2:-220}          # stage-2 wall-clock budget (s)
B1=${B1:-32}           # stage-1 batch
B2=${B2:-16}           # stage-2 batch
LR1=${LR1:-5e-4}
LR2=${LR2:-2e-4}
WORKERS=${WORKERS:-6}
STAGES=${STAGES:-"1 2"}  # "2": stage 2 only, initialised from INIT
PY=${PY:-python3}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MRT_CACHE=$(cd "$PACK" && pwd)/mrtcache
mkdir -p "$OUT" "$WORK"

common=(data.sources="[$PACK/train]" data.cache_dir="$WORK/cache" data.taef2_dir="$PACK/taef2"
        data.max_side=1024 data.num_workers="$WORKERS" task_args.taef2_dir="$PACK/taef2"
        run.device="$DEVICE" run.progress=false run.tensorboard=false run.keep_last=1)

echo "== $(date -u +%T) environment"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

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
