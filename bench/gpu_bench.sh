#!/usr/bin/env bash
# GPU benchmark table: ballast (--device cuda) and HF transformers on the same shapes,
# in the same run. OUTDIR gets the logs; the table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build-cuda}/bin/ballast
OUTDIR=${OUTDIR:-/tmp}
MODELS=${MODELS:-"llama-3.2-1b llama-2-7b"}
for m in $MODELS; do
  timeout 60 $B bench --device cuda --model random:$m -p 128 -n 256 -r 2 --json 2>&1 | tee -a $OUTDIR/ours.jsonl
  timeout 60 $B bench --device cuda --model random:$m -p 2048 -n 0 -r 3 --json 2>&1 | tee -a $OUTDIR/ours.jsonl
  timeout 90 $B bench --device cuda --model random:$m -p 128 -n 128 -c 256 -r 1 --json 2>&1 | tee -a $OUTDIR/ours.jsonl
done
if [[ ${HF:-1} == 1 ]]; then
  for m in $MODELS; do
    PYTHONUNBUFFERED=1 timeout ${HF_TIMEOUT:-120} python3 bench/gpu_hf_bench.py $m ${HF_B1_NEW:-32} 2>$OUTDIR/hf_$m.err | tee -a $OUTDIR/hf.jsonl
  done
fi
