#include "experiments/evaluate.h"

#include <algorithm>

namespace mixlab {

Rng SplitRng(uint64_t seed, Split split, int length) {
  return Rng(seed, uint64_t(split) * 0x10000000ULL + uint64_t(length));
}

std::pair<int64_t, int64_t> CountCorrect(const LanguageModel& model, const Batch& batch) {
  const int V = model.vocab();
  int64_t correct = 0, scored = 0;
  for (int64_t i = 0; i < int64_t(batch.B) * batch.T; ++i) {
    if (batch.mask[i] == 0) continue;
    const float* row = model.logits() + i * V;
    const int64_t argmax = std::max_element(row, row + V) - row;
    correct += argmax == batch.targets[i];
    ++scored;
  }
  return {correct, scored};
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
    model.Forward(b.tokens.data(), b.B, b.T);
    const float loss = model.Loss(b.targets.data(), b.mask.data()) - model.last_aux_loss();
    auto [c, s] = CountCorrect(model, b);
    correct += c;
    r.scored += s;
    loss_sum += loss;
  }
  r.loss = loss_sum / n_batches;
  r.accuracy = r.scored ? double(correct) / double(r.scored) : 0.0;
  return r;
}

}  // namespace mixlab
