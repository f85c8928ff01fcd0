#!/usr/bin/env bash
# Reproduces the shipped default model (and the three comparison variants) from nothing, from the repository root:
#   synthesise the training and validation stores, probe throughput, train four variants concurrently for the
#   remaining time budget, export slim checkpoints to $OUT. Defaults are the sizes of the recorded run (one H200 +
#   16 CPU cores, BUDGET_S=470). On a 2-core CPU use e.g. N_TRAIN=2048 WORKERS=2 NW=1 BUDGET_S=14400.
# Sizes from the environment: N_TRAIN, N_VAL, BUDGET_S, WORKERS, BATCH, NW (loader workers per run), PROBE.
set -uo pipefail
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP:-2}
R="${RELAXOMAP:-relaxomap}"
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
W=${WORK:-/tmp/relaxo}; rm -rf $W; mkdir -p $W/runs $W/probe $W/logs ${OUT:-$W/out}
python3 -c "import torch,numba,h5py,click,tqdm,scipy;print('torch',torch.__version__,'cuda',torch.cuda.is_available())" 2>&1 | tee $W/logs/env.txt
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee -a $W/logs/env.txt
$R synth --out $W/val.h5 --n ${N_VAL:-256} --config train/clinical/default_model/synth_val.json --workers ${WORKERS:-16} > $W/logs/synth_val.log 2>&1 || { tail -30 $W/logs/synth_val.log; exit 1; }
$R synth --out $W/train.h5 --n ${N_TRAIN:-8192} --config train/clinical/default_model/synth_train.json --workers ${WORKERS:-16} > $W/logs/synth_train.log 2>&1 || { tail -30 $W/logs/synth_train.log; exit 1; }
echo "synth done at $(el) s"; tail -3 $W/logs/synth_train.log
VARIANTS="pe-unet:0.1:pe-unet-physics pe-unet:0:pe-unet unet:0.1:unet channels:0.1:channels"
run_all() {  # $1 = root dir, $2 = steps, $3 = extra args
  python3 -c "import json; c=json.load(open('train/clinical/default_model/train_common.json')); c['warmup_steps']=min(c['warmup_steps'], $2//10); json.dump(c, open('$W/common-$2.json','w'))"
  for v in $VARIANTS; do IFS=: read arch w name <<< "$v"
    $R train --store $W/train.h5 --val $W/val.h5 --arch $arch --physics-weight $w --patch 128 \
      --batch-size ${BATCH:-24} --steps $2 --num-workers ${NW:-3} --config $W/common-$2.json \
      --out $1/$name $3 > $W/logs/$(basename $1)-$name.log 2>&1 &
  done; wait; }
run_all $W/probe 100000 "--stop-after ${PROBE:-60}"
RATE=$(python3 - "$W/probe" <<'PY'
import json, sys, glob
rates = []
for f in glob.glob(sys.argv[1] + "/*/metrics.jsonl"):
    rows = [json.loads(l) for l in open(f) if '"samples_per_s"' in l]
    if rows: rates.append(rows[-1]["samples_per_s"])
print(min(rates) if rates else 0)
PY
)
LEFT=$(( ${BUDGET_S:-470} - $(el) - 45 ))
STEPS=$(python3 -c "print(max(50, int($RATE * $LEFT * 0.85 / ${BATCH:-24})))")
echo "probe done at $(el) s: slowest $RATE samples/s per run; $LEFT s left -> $STEPS steps"
timeout $(( LEFT + 20 )) bash -c "$(declare -f run_all); W=$W R='$R' VARIANTS='$VARIANTS' BATCH=${BATCH:-24} NW=${NW:-3}; run_all $W/runs $STEPS ''"
echo "train done at $(el) s"
for v in $VARIANTS; do IFS=: read arch w name <<< "$v"
  ck=$W/runs/$name/best.pt; [ -f $ck ] || ck=$W/runs/$name/last.pt
  $R export --ckpt $ck --out ${OUT:-$W/out}/$name.pt || echo "export $name failed"
  cp $W/runs/$name/metrics.jsonl $W/logs/$name-metrics.jsonl 2>/dev/null
done
tar czf ${OUT:-$W/out}/logs.tgz -C $W logs
echo "all done at $(el) s"
