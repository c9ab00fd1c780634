#!/usr/bin/env bash
# The prepared GPU check: every GPU figure issue 27 asks for, in one run of at most 10 minutes
# on one GPU, each part under its own `timeout`, its table and log written under OUT.
#
# Through the device tool (the GPU machine has torch, numpy, pandas, matplotlib, scipy, pyyaml
# and tqdm but not optuna, hydra-core, omegaconf, fvcore, ... and no package index): build the
# kit of the project's pure-Python dependencies here, once, and carry it with the checkout:
#
#   python -m experiments.benchmarks.gpu_kit --out .gpukit
#   run(command="experiments/benchmarks/gpu_check.sh", carry=[".gpukit"], timeout_s=600)
#
# The script puts .gpukit and the checkout on PYTHONPATH itself. The device tool sets OUT (its
# folder comes back); elsewhere the results go to outputs/gpu_check. `summary.md` lists each
# part's exit status (124: it ran out of time; the measurements it printed are in its log)
# and seconds; `environment.txt` the GPU, driver and versions.
#
#   DEVICE=cpu QUICK=1 experiments/benchmarks/gpu_check.sh   # dry run on a CPU: tiny sizes and
#                                                            # steps, the same commands
# Parts (GPU limits in seconds, 590 in all):
#   inference (120)   DFANet A and B, 1024x1024, batch 1, fp16: eager, deployed and compiled,
#                     the paper's FPS beside
#   train_512x1024 (100)  DFANet A, the demo recipe at batch 8: the bare step under each speed
#                     setting, the Trainer eager and graphed, the loader (augmenting in its
#                     workers and on the GPU)
#   train_shared (70) the same at the demo's 128x256: 1, 2, 4 and 8 Trainers sharing the GPU
#   train_cityscapes (100)  the Cityscapes recipe's step: batch 48, 1024x1024, OHEM; the loader
#                     from PNG files (2048x1024, as Cityscapes) with 16 workers
#   cuda_tests (45)   the tests that run only where CUDA is: the speed settings, a graphed
#                     step against the eager one, a resumed run, the augmentation on the GPU
#   demo_study (140)  `python -m experiments.search +study=demo device=cuda tracking=none`, on
#                     a fresh storage, with its wall time
#   schedule_sizing (15)  GPU-hours of the Cityscapes study at the measured seconds per step
set -uo pipefail  # no -e: a part that fails or runs out of time is recorded, the others run
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/.gpukit:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-outputs/gpu_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [[ ${QUICK:-0} == 1 ]]; then
    INFERENCE=(--input-size 64x128 --dtype fp32 --compile false --protocol cheap)
    STEPS=1
    TRAINER_SETTINGS=recipe  # a CPU has neither cudnn.benchmark nor graphs
    TRAIN_512=(--batch-size 2 --input-size 64x128
               dataset.height=64 dataset.width=128 dataset.input_size=64x128
               dataset.n_train=8 dataset.n_val=2)
    SHARED=(--batch-size 2 --input-size 64x128 --processes 1,2
            dataset.height=64 dataset.width=128 dataset.n_train=8 dataset.n_val=2)
    CITY_BATCH=2
    CITYSCAPES=(--input-size 64x64 --loader-workers 2
                dataset.height=64 dataset.width=128 dataset.input_size=64x64
                dataset.n_train=8 dataset.n_val=2 trainer.loss.ohem_min_kept=1000)
    DEMO=(study.n_trials=1 study.reference_designs=[dfanet_b] study.first_trials_per_head=0
          study.schedule.enabled=false study.latency.measure=false
          trainer.steps=2 trainer.eval_every=2 trainer.batch_size=2 trainer.eval_batch_size=2
          trainer.warmup_steps=1 dataset.n_train=8 dataset.n_val=2 dataset.height=64
          dataset.width=128 dataset.input_size=64x128)
    LIMITS=(inference=120 train_512x1024=120 train_shared=120 train_cityscapes=120
            cuda_tests=120 demo_study=120 schedule_sizing=60)
else
    INFERENCE=(--input-size 1024x1024 --dtype fp16 --compile true --protocol full)
    STEPS=30
    TRAINER_SETTINGS=fp32+bench,fp32+bench+graph  # the Trainer eager and graphed
    TRAIN_512=(--batch-size 8 --input-size 512x1024
               dataset.height=512 dataset.width=1024 dataset.input_size=512x1024
               dataset.n_train=64 dataset.n_val=8)
    SHARED=(--batch-size 8 --input-size 128x256 --processes 1,2,4,8)
    CITY_BATCH=48
    CITYSCAPES=(--input-size 1024x1024 --loader-workers 16
                dataset.height=1024 dataset.width=2048 dataset.input_size=1024x1024
                dataset.n_train=96 dataset.n_val=4)
    DEMO=()
    LIMITS=(inference=120 train_512x1024=100 train_shared=70 train_cityscapes=100
            cuda_tests=45 demo_study=140 schedule_sizing=15)
fi
declare -A LIMIT
for pair in "${LIMITS[@]}"; do LIMIT[${pair%%=*}]=${pair#*=}; done

SUMMARY="$OUT/summary.md"
printf '# GPU check (device %s%s)\n\n| part | exit | seconds | log |\n|---|---|---|---|\n' \
    "$DEVICE" "$([[ ${QUICK:-0} == 1 ]] && echo ', QUICK dry run')" > "$SUMMARY"

# part NAME COMMAND...: run it under its limit, its output into NAME.log, a row of the summary.
part() {
    local name=$1 limit=${LIMIT[$1]} started code
    shift
    echo "== $name (at most ${limit}s): $*"
    started=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    code=$?
    echo "| $name | $code | $(( $(date +%s) - started )) | $name.log |" >> "$SUMMARY"
    tail -n 4 "$OUT/$name.log"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    "$PYTHON" -c 'import os, sys, torch; print(sys.version); print("torch", torch.__version__,
"cuda", torch.version.cuda, "available", torch.cuda.is_available(), "cores", os.cpu_count())'
} > "$OUT/environment.txt" 2>&1

part inference "$PYTHON" -m experiments.benchmarks.inference_speed --arch dfanet_a,dfanet_b \
    --device "$DEVICE" --batch 1 --onnx false "${INFERENCE[@]}" --out "$OUT/inference"

TRAIN=("$PYTHON" -m experiments.benchmarks.training_speed --arch dfanet_a --device "$DEVICE"
       --steps "$STEPS")
part train_512x1024 "${TRAIN[@]}" --recipe demo --processes 1 \
    --settings fp32,fp32+bench,bf16+bench,fp32+bench+graph,fp32+bench+compile \
    --trainer-settings "$TRAINER_SETTINGS" --out "$OUT/train_512x1024" "${TRAIN_512[@]}"
part train_shared "${TRAIN[@]}" --recipe demo --settings fp32+bench \
    --out "$OUT/train_shared" "${SHARED[@]}"
part train_cityscapes "${TRAIN[@]}" --recipe cityscapes --batch-size "$CITY_BATCH" \
    --settings fp32+bench --processes 1 --out "$OUT/train_cityscapes" "${CITYSCAPES[@]}"

part cuda_tests "$PYTHON" -m pytest -q -p no:cacheprovider -k cuda tests/test_training_step.py \
    tests/test_trainer.py tests/test_data_device_transforms.py

# A fresh storage: the same study name in an old one would resume, and finish at once.
rm -rf "$OUT/demo"
part demo_study "$PYTHON" -m experiments.search +study=demo device="$DEVICE" tracking=none \
    output_dir="$OUT/demo" storage.url="sqlite:///$OUT/demo/studies.db" "${DEMO[@]}"

# Seconds per step of the Cityscapes recipe: its batch over the Trainer's images/s.
SECONDS_PER_STEP=$("$PYTHON" - "$OUT/train_cityscapes" "$CITY_BATCH" <<'EOF'
import sys
from pathlib import Path

import pandas as pd

tables = sorted(Path(sys.argv[1]).glob("training_speed_*.csv"))
rates = pd.read_csv(tables[-1]).query("kind == 'trainer'")["images_per_s"].dropna() if tables else []
print(f"{int(sys.argv[2]) / rates.iloc[0]:.4f}" if len(rates) else "")
EOF
)
if [[ -n $SECONDS_PER_STEP ]]; then
    part schedule_sizing "$PYTHON" -m experiments.research.schedule_sizing --study cityscapes \
        --architectures 100 --seeds 0 --seconds-per-step "$SECONDS_PER_STEP"
else
    echo "| schedule_sizing | not run: no Trainer images/s in train_cityscapes | | |" >> "$SUMMARY"
fi
echo "seconds per step of the Cityscapes recipe (Trainer): ${SECONDS_PER_STEP:-not measured}" \
    >> "$SUMMARY"
echo "== summary"
cat "$SUMMARY"
