// Evaluation of a model on a task at one sequence length: mean masked loss and accuracy (argmax == target
// at scored positions), over a fixed, seeded set of batches.
#pragma once
#include "experiments/task.h"
#include "models/language_model.h"

namespace mixlab {

// Accuracy as a function of where in the sequence a scored position lies: kPositionBins equal slices of [0, T).
constexpr int kPositionBins = 16;

struct EvalResult {
  int length = 0;
  double loss = 0, accuracy = 0;
  int64_t scored = 0;  // scored positions
  std::vector<int64_t> bin_correct = std::vector<int64_t>(kPositionBins), bin_scored = std::vector<int64_t>(kPositionBins);
};

// Sequences per evaluation batch at `length`: the training batch, shrunk so a batch holds about as many tokens as a
// training batch (long-context evaluation stays affordable), but never below 4 sequences.
int EvalBatchSize(int batch, int train_len, int length);

Rng SplitRng(uint64_t seed, Split split, int length);

EvalResult Evaluate(LanguageModel& model, const Task& task, int length, int n_batches, int batch,
                    uint64_t seed, Split split);

}  // namespace mixlab
