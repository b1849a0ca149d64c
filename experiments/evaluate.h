// Evaluation of a model on a task at one sequence length: mean masked loss and accuracy (argmax == target
// at scored positions), over a fixed, seeded set of batches.
#pragma once
#include "experiments/task.h"
#include "models/language_model.h"

namespace mixlab {

struct EvalResult {
  int length = 0;
  double loss = 0, accuracy = 0;
  int64_t scored = 0;  // scored positions
};

Rng SplitRng(uint64_t seed, Split split, int length);

EvalResult Evaluate(LanguageModel& model, const Task& task, int length, int n_batches, int batch,
                    uint64_t seed, Split split);

// Accuracy of the last Forward over positions with mask != 0: counts (correct, scored).
std::pair<int64_t, int64_t> CountCorrect(const LanguageModel& model, const Batch& batch);

}  // namespace mixlab
