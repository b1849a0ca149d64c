#include "experiments/run/evaluate.h"

#include <algorithm>
#include <cmath>
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

namespace {

// The counts of the scored batches: correct, scored, sequences, then kPositionBins correct and scored per position bin,
// then how often each answer occurs (vocab entries).
struct EvalCounts {
  enum { kCorrect, kScored, kSequences, kBins };
  std::vector<int64_t> n;
  explicit EvalCounts(int vocab) : n(kBins + 2 * kPositionBins + size_t(vocab), 0) {}
  int64_t& bin_correct(int bin) { return n[kBins + bin]; }
  int64_t& bin_scored(int bin) { return n[kBins + kPositionBins + bin]; }
  int64_t& answer(int32_t token) { return n[kBins + 2 * kPositionBins + size_t(token)]; }
};

// The next sequences of the stream, one at a time, stopping as soon as the set holds enough answers; *scored is the
// number of answers they hold.
Batch DrawEvalBatch(const Task& task, int length, int64_t still_needed, int batch, Rng& rng, Split split,
                    int64_t* scored) {
  std::vector<Batch> drawn;
  *scored = 0;
  while (int(drawn.size()) < batch && *scored < still_needed) {
    drawn.push_back(task.Sample(1, length, rng, split));
    int64_t in_sequence = 0;
    for (float m : drawn.back().mask) in_sequence += m != 0;
    if (in_sequence == 0) throw std::logic_error("task '" + task.Name() + "' drew a sequence with nothing to score");
    *scored += in_sequence;
  }
  Batch b(int(drawn.size()), length);
  for (size_t i = 0; i < drawn.size(); ++i) {
    std::copy(drawn[i].tokens.begin(), drawn[i].tokens.end(), b.tokens.begin() + int64_t(i) * length);
    std::copy(drawn[i].targets.begin(), drawn[i].targets.end(), b.targets.begin() + int64_t(i) * length);
    std::copy(drawn[i].mask.begin(), drawn[i].mask.end(), b.mask.begin() + int64_t(i) * length);
  }
  return b;
}

// Scores one batch into `counts`; returns its loss summed over its scored answers.
double ScoreBatch(LanguageModel& model, const Batch& b, int64_t scored, EvalCounts& counts) {
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
    counts.n[EvalCounts::kCorrect] += right;
    ++counts.n[EvalCounts::kScored];
    ++counts.answer(b.targets[j]);
    counts.bin_correct(bin) += right;
    ++counts.bin_scored(bin);
  }
  counts.n[EvalCounts::kSequences] += b.B;
  return double(loss) * double(scored);
}

}  // namespace

EvalResult Evaluate(LanguageModel& model, const Task& task, int length, int64_t answers, int batch, uint64_t seed,
                    Split split, const Communicator& comm) {
  Rng rng = SplitRng(seed, split, length);
  EvalCounts counts(model.vocab());
  std::vector<double> batch_loss;  // per batch, summed over its scored answers; 0 on the ranks that did not score it
  for (int64_t drawn_answers = 0; drawn_answers < answers;) {
    int64_t scored = 0;
    const Batch b = DrawEvalBatch(task, length, answers - drawn_answers, batch, rng, split, &scored);
    const bool mine = int(batch_loss.size()) % comm.size() == comm.rank();
    batch_loss.push_back(mine ? ScoreBatch(model, b, scored, counts) : 0.0);
    drawn_answers += scored;
  }
  comm.SumDisjoint(batch_loss.data(), int64_t(batch_loss.size()));
  comm.SumExact(counts.n.data(), int64_t(counts.n.size()));
  EvalResult r;
  r.length = length;
  r.correct = counts.n[EvalCounts::kCorrect];
  r.scored = counts.n[EvalCounts::kScored];
  r.sequences = counts.n[EvalCounts::kSequences];
  for (int bin = 0; bin < kPositionBins; ++bin) {
    r.bin_correct[bin] = counts.bin_correct(bin);
    r.bin_scored[bin] = counts.bin_scored(bin);
  }
  double loss_sum = 0;
  for (double part : batch_loss) loss_sum += part;  // in batch order, as one process adds them
  r.loss = r.scored ? loss_sum / double(r.scored) : 0.0;
  r.accuracy = r.scored ? double(r.correct) / double(r.scored) : 0.0;
  for (int32_t token = 0; token < model.vocab(); ++token)
    r.majority = std::max(r.majority, double(counts.answer(token)) / double(std::max<int64_t>(r.scored, 1)));
  return r;
}

}  // namespace mixlab
