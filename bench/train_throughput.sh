#!/usr/bin/env bash
# Training throughput of the reference model for every mixer family, next to the PyTorch peer
# (../shared/peers/run_peer.sh) on identical settings, in one session: 2 layers, d_model 128, 4 heads, vocab 256,
# GELU MLP 4x, pre-LayerNorm, learned positions, untied head, batch 8, 2 threads, AdamW. mixlab trains on the
# copy task with 255 content tokens + separator (vocab 256); the peer on random tokens (same cost per step).
# Both are timed the same way: the peer runs one untimed warm-up step and reports the median of 3 repetitions;
# mixlab runs 3 times and its figure is the median of the runs' throughput after their first step (which allocates
# and first touches every buffer and lets oneDNN generate its GEMM kernels).
# Prints one Markdown table: mixer x T, mixlab tokens/s, peak memory, PyTorch tokens/s and peak memory, ratio.
# Usage: bench/train_throughput.sh [T ...]        (default: 256 2048; needs build/mixlab and python3-torch)
#        ONLY='mamba|gla' bench/train_throughput.sh 256   (only the variants matching an extended regex)
set -euo pipefail
cd "$(dirname "$0")/.."
lens=("${@:-256}"); [[ $# -eq 0 ]] && lens=(256 2048)
peer=../shared/peers/run_peer.sh
# Every registered sequence mixer (with the MLP), and softmax with the MoE channel mixer, as "mixlab variant|peer mixer"
# ('-' = no PyTorch equivalent in ../shared/peers).
peer_of() { case $1 in softmax | linear | local | mamba) echo "$1" ;; softmax/moe) echo moe ;; *) echo - ;; esac; }
variants=()
for name in $(build/mixlab list --names sequence) softmax/moe; do variants+=("$name|$(peer_of "$name")"); done
echo "| mixer | T | mixlab tok/s | mixlab peak MB | PyTorch tok/s | PyTorch peak MB | ratio |"
echo "|---|---|---|---|---|---|---|"
for T in "${lens[@]}"; do
  steps=$(( 200000 / (8 * T) )); (( steps < 8 )) && steps=8
  for v in "${variants[@]}"; do
    name=${v%%|*}; peer_name=${v##*|}
    [[ -n ${ONLY:-} && ! $name =~ ^(${ONLY})$ ]] && continue
    seq=${name%%/*}
    heads=(); build/mixlab list | grep -q -- "--$seq.n-heads " && heads=(--"$seq".n-heads 4)   # mixers with heads
    args=(--task copy --copy.vocab 255 --d-model 128 "${heads[@]}" --train-len "$T" --eval-lens "$T" --val-answers 1 --test-answers 1
          --batch 8 --pos learned --max-len "$T" --tie-embeddings false --steps "$steps" --eval-every 0 --threads 2
          --mixer "$seq" --out "/tmp/mixlab_throughput/$seq-$T")
    [[ $name == */moe ]] && args+=(--channel moe)
    runs=()
    for rep in 1 2 3; do
      line=$(build/mixlab train "${args[@]}" 2>/dev/null | grep '^run ')
      runs+=("$(sed -E 's/.*\(([0-9]+) after the first step\).*/\1/' <<<"$line")")
    done
    ours=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p); ours_mb=$(sed -E 's/.*peak memory ([0-9]+) MB.*/\1/' <<<"$line")
    if [[ $peer_name == - ]]; then
      echo "| $name | $T | $ours | $ours_mb | - | - | - |"
    else
      json=$("$peer" --mode train --mixer "$peer_name" --seq "$T" --batch 8 --threads 2)
      theirs=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['tok_per_s_median']))" "$json")
      theirs_mb=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['peak_rss_mb']))" "$json")
      echo "| $name | $T | $ours | $ours_mb | $theirs | $theirs_mb | $(python3 -c "print(f'{$ours/$theirs:.2f}x')") |"
    fi
  done
done
