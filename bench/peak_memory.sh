#!/usr/bin/env bash
# Peak memory of one training step (forward + backward + AdamW, batch 1) of the reference model (2 layers,
# d_model 128, vocab 256) per mixer at doubling lengths; memory that grows linearly in T doubles at most from one
# length to the next. Reads the peak RSS mixlab train reports. Usage: bench/peak_memory.sh [mixer ...]
# (default: every registered sequence mixer; lengths 4096 8192 16384)
set -euo pipefail
cd "$(dirname "$0")/.."
mixers=("${@:-}"); [[ $# -eq 0 ]] && mapfile -t mixers < <(build/mixlab list --names sequence)
echo "| mixer | T=4096 MB | T=8192 MB | T=16384 MB | growth 8k/4k | growth 16k/8k |"
echo "|---|---|---|---|---|---|"
for m in "${mixers[@]}"; do
  mb=()
  for T in 4096 8192 16384; do
    line=$(build/mixlab train --task copy --copy.vocab 255 --d-model 128 --mixer "$m" --pos none --train-len "$T" --eval-lens "$T" \
           --val-answers 1 --test-answers 1 --batch 1 --steps 1 --eval-every 0 --tie-embeddings false --threads 2 --out "/tmp/mixlab_memory/$m-$T" 2>/dev/null | grep '^run ')
    mb+=("$(sed -E 's/.*peak memory ([0-9]+) MB.*/\1/' <<<"$line")")
  done
  echo "| $m | ${mb[0]} | ${mb[1]} | ${mb[2]} | $(python3 -c "print(f'{${mb[1]}/${mb[0]}:.2f}')") | $(python3 -c "print(f'{${mb[2]}/${mb[1]}:.2f}')") |"
done
