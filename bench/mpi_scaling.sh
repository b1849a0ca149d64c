#!/usr/bin/env bash
# Scale-out figures on this machine, under mpirun (Open MPI):
#  1. Strong scaling of data-parallel training: training tokens/s of the reference model (2 layers, d_model 128,
#     4 heads, batch 8, as bench/train_throughput.sh) at T 256 and 2048, as 1 process x 1 thread, 2 ranks x 1 thread
#     each (mpirun -np 2) and 1 process x 2 threads. Each figure is the median of 3 runs' throughput after their first
#     step; the all-reduce carries the whole gradient (parameters x 4 bytes) once per step.
#  2. A distributed sweep: wall time of a 16-run compare (4 mixers x 4 seeds, 1 thread per run) serial and over
#     mpirun -np 2.
# Run it on a quiet machine (check `uptime`); it prints Markdown tables.
# Usage: bench/mpi_scaling.sh [T ...]   (default: 256 2048; MIXERS='softmax mamba' by default; SWEEP=0 skips part 2)
set -euo pipefail
cd "$(dirname "$0")/.."
lens=("${@:-256}"); [[ $# -eq 0 ]] && lens=(256 2048)
mixers=(${MIXERS:-softmax mamba})
mpirun=(mpirun --allow-run-as-root -q)  # Open MPI binds each of 2 ranks to its own core
out=/tmp/mixlab_mpi_scaling
rm -rf "$out"; mkdir -p "$out"

# Median over 3 runs of "N after the first step" tokens/s from `mixlab train`'s summary line; $1 = launcher prefix.
median_tokens() {
  local launcher=$1; shift
  local runs=()
  for rep in 1 2 3; do
    rm -rf "$out/run"
    line=$($launcher build/mixlab train "$@" --out "$out/run" 2>/dev/null | grep '^run ')
    runs+=("$(sed -E 's/.*\(([0-9]+) after the first step\).*/\1/' <<<"$line")")
  done
  printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p
}

echo "load before: $(uptime)"
echo
echo "| mixer | T | params | all-reduce MB/step | 1 proc x 1 thread tok/s | 2 ranks x 1 thread tok/s (speed-up) | 1 proc x 2 threads tok/s (speed-up) | step ms (1 x 1) |"
echo "|---|---|---|---|---|---|---|---|"
for T in "${lens[@]}"; do
  steps=$(( 200000 / (8 * T) )); (( steps < 8 )) && steps=8
  for mixer in "${mixers[@]}"; do
    heads=(); build/mixlab list | grep -q -- "--$mixer.n-heads " && heads=(--"$mixer".n-heads 4)
    args=(--task copy --copy.vocab 255 --d-model 128 "${heads[@]}" --train-len "$T" --eval-lens "$T" --val-answers 1
          --test-answers 1 --batch 8 --pos learned --max-len "$T" --tie-embeddings false --steps "$steps" --eval-every 0
          --mixer "$mixer")
    one=$(median_tokens "" "${args[@]}" --threads 1)
    ranks=$(median_tokens "${mpirun[*]} -np 2" "${args[@]}" --threads 1)
    threads=$(median_tokens "" "${args[@]}" --threads 2)
    params=$(python3 -c "import json; print(json.load(open('$out/run/results.json'))['params'])")
    awk -v m="$mixer" -v T="$T" -v p="$params" -v a="$one" -v b="$ranks" -v c="$threads" 'BEGIN {
      printf "| %s | %d | %d | %.2f | %d | %d (%.2fx) | %d (%.2fx) | %.1f |\n", m, T, p, p * 4 / 1e6, a, b, b / a, c, c / a,
             8 * T / a * 1000 }'
  done
done

if [[ ${SWEEP:-1} != 0 ]]; then
  sweep=(compare --tasks mqar --mixers softmax,linear,gla,mamba --seeds 4 --steps 300 --batch 32 --train-len 64
         --eval-lens 64,128 --d-model 64 --threads 1 --plots false --analyze false)
  start=$(date +%s.%N); build/mixlab "${sweep[@]}" --out "$out/sweep1" >/dev/null 2>&1; end=$(date +%s.%N)
  serial=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
  start=$(date +%s.%N); "${mpirun[@]}" -np 2 build/mixlab "${sweep[@]}" --out "$out/sweep2" >/dev/null 2>&1
  end=$(date +%s.%N)
  parallel=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
  same=$(diff <(grep -v -E 'tokens_per_s|train_seconds|load_average|peak_rss' "$out/sweep1/results.csv") \
              <(grep -v -E 'tokens_per_s|train_seconds|load_average|peak_rss' "$out/sweep2/results.csv") >/dev/null &&
         echo "identical" || echo "DIFFERENT")
  echo
  echo "| sweep (16 runs, 1 thread each) | serial s | mpirun -np 2 s | speed-up | accuracy tables |"
  echo "|---|---|---|---|---|"
  awk -v s="$serial" -v p="$parallel" -v same="$same" 'BEGIN {
    printf "| mqar x softmax, linear, gla, mamba x 4 seeds, 300 steps | %.1f | %.1f | %.2fx | %s |\n", s, p, s / p, same }'
fi
echo
echo "load after: $(uptime)"
