#!/usr/bin/env bash
# DFANet A and B on a GPU beside the paper's FPS (Table 5, Titan X: A 100 FPS and B 120 FPS at
# 1024x1024, A' 160 FPS at 512x1024): batch 1, fp32 and fp16, eager, fast and compiled paths.
#
#   experiments/benchmarks/gpu_check.sh                  # on a CUDA machine
#   DEVICE=cpu PROTOCOL=cheap SIZES=72x136 DTYPES=fp32 COMPILE=false \
#       experiments/benchmarks/gpu_check.sh threads=1    # dry run of the same commands on a CPU
#
# Arguments are passed on to every `python -m experiments.benchmarks.inference_speed` run.
# Each run prints its table (the paper's FPS stands beside DFANet A/B rows whose input size
# matches) and saves CSV + Markdown under OUT (default outputs/benchmarks). Compiling takes
# about a minute per architecture, dtype and size on a GPU; COMPILE=false skips it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
PROTOCOL=${PROTOCOL:-full}
SIZES=${SIZES:-1024x1024 512x1024}
DTYPES=${DTYPES:-fp32 fp16}
COMPILE=${COMPILE:-true}
OUT=${OUT:-outputs/benchmarks}

for size in $SIZES; do
    for dtype in $DTYPES; do
        "$PYTHON" -m experiments.benchmarks.inference_speed arch=dfanet_a arch=dfanet_b input_size="$size" \
            device="$DEVICE" batch=1 dtype="$dtype" compile="$COMPILE" protocol="$PROTOCOL" \
            out="$OUT" "$@"
    done
done
