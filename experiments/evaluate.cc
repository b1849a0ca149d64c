#include "experiments/evaluate.h"

#include <algorithm>

namespace mixlab {

Rng SplitRng(uint64_t seed, Split split, int length) {
  return Rng(seed, uint64_t(split) * 0x10000000ULL + uint64_t(length));
}

int EvalBatchSize(int batch, int train_len, int length) {
  return std::min(batch, std::max(4, int(int64_t(batch) * train_len / std::max(length, 1))));
}

EvalResult Evaluate(LanguageModel& model, const Task& task, int length, int n_batches, int batch, uint64_t seed,
                    Split split) {
  Rng rng = SplitRng(seed, split, length);
  EvalResult r;
  r.length = length;
  int64_t correct = 0;
  double loss_sum = 0;
  for (int i = 0; i < n_batches; ++i) {
    Batch b = task.Sample(batch, length, rng, split);
    ForwardMode inference;
    inference.inference = true;  // nothing kept for a backward pass: long evaluation lengths fit
    model.Forward(b.tokens.data(), b.B, b.T, inference);
    const float loss = model.Loss(b.targets.data(), b.mask.data()) - model.last_aux_loss();
    const int V = model.vocab();
    for (int64_t j = 0; j < int64_t(b.B) * b.T; ++j) {
      if (b.mask[j] == 0) continue;
      const float* row = model.logits() + j * V;
      const int bin = int(int64_t(j % b.T) * kPositionBins / b.T);
      const bool right = (std::max_element(row, row + V) - row) == b.targets[j];
      correct += right;
      ++r.scored;
      r.bin_correct[bin] += right;
      ++r.bin_scored[bin];
    }
    loss_sum += loss;
  }
  r.loss = loss_sum / n_batches;
  r.accuracy = r.scored ? double(correct) / double(r.scored) : 0.0;
  return r;
}

}  // namespace mixlab
