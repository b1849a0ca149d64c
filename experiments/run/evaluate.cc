#include "experiments/run/evaluate.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

namespace mixlab {

Rng SplitRng(uint64_t seed, Split split, int length) {
  return Rng(seed, uint64_t(split) * 0x10000000ULL + uint64_t(length));
}

int EvalBatchSize(int batch, int train_len, int length) {
  return std::min(batch, std::max(4, int(int64_t(batch) * train_len / std::max(length, 1))));
}

std::pair<double, double> WilsonInterval(int64_t correct, int64_t n) {
  if (n <= 0) return {0.0, 1.0};
  constexpr double z = 1.959963984540054;
  const double p = double(correct) / double(n), z2n = z * z / double(n);
  const double center = (p + z2n / 2) / (1 + z2n);
  const double half = z * std::sqrt(p * (1 - p) / double(n) + z2n / (4 * double(n))) / (1 + z2n);
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

EvalResult Evaluate(LanguageModel& model, const Task& task, int length, int64_t answers, int batch, uint64_t seed,
                    Split split) {
  Rng rng = SplitRng(seed, split, length);
  EvalResult r;
  r.length = length;
  double loss_sum = 0;  // summed over scored answers
  std::map<int32_t, int64_t> answer_counts;
  const int V = model.vocab();
  while (r.scored < answers) {
    // The next sequences of the stream, one at a time, stopping as soon as the set holds enough answers.
    std::vector<Batch> drawn;
    int64_t in_batch = 0;
    while (int(drawn.size()) < batch && r.scored + in_batch < answers) {
      drawn.push_back(task.Sample(1, length, rng, split));
      int64_t scored = 0;
      for (float m : drawn.back().mask) scored += m != 0;
      if (scored == 0) throw std::logic_error("task '" + task.Name() + "' drew a sequence with nothing to score");
      in_batch += scored;
    }
    Batch b(int(drawn.size()), length);
    for (size_t i = 0; i < drawn.size(); ++i) {
      std::copy(drawn[i].tokens.begin(), drawn[i].tokens.end(), b.tokens.begin() + int64_t(i) * length);
      std::copy(drawn[i].targets.begin(), drawn[i].targets.end(), b.targets.begin() + int64_t(i) * length);
      std::copy(drawn[i].mask.begin(), drawn[i].mask.end(), b.mask.begin() + int64_t(i) * length);
    }
    ForwardMode inference;
    inference.inference = true;  // nothing kept for a backward pass: long evaluation lengths fit
    model.Forward(b.tokens.data(), b.B, b.T, inference);
    const float loss = model.Loss(b.targets.data(), b.mask.data()) - model.last_aux_loss();
    for (int64_t j = 0; j < int64_t(b.B) * b.T; ++j) {
      if (b.mask[j] == 0) continue;
      const float* row = model.logits() + j * V;
      const int bin = int(int64_t(j % b.T) * kPositionBins / b.T);
      const bool right = (std::max_element(row, row + V) - row) == b.targets[j];
      r.correct += right;
      ++answer_counts[b.targets[j]];
      ++r.scored;
      r.bin_correct[bin] += right;
      ++r.bin_scored[bin];
    }
    r.sequences += b.B;
    loss_sum += double(loss) * double(in_batch);
  }
  r.loss = r.scored ? loss_sum / double(r.scored) : 0.0;
  r.accuracy = r.scored ? double(r.correct) / double(r.scored) : 0.0;
  for (const auto& [answer, count] : answer_counts) r.majority = std::max(r.majority, double(count) / double(r.scored));
  return r;
}

}  // namespace mixlab
