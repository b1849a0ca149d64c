// Evaluation of a model on a task at one sequence length: mean loss per scored answer and accuracy (argmax == target
// at scored positions), with the count and a 95% Wilson interval.
//
// The set scored is fixed by (seed, split, length, answers) alone: sequences are drawn one at a time from the split's
// seeded stream until they hold at least `answers` scored positions. The batch size only chunks that set, so `train`'s
// final test, `eval` and `analyze` score the same sequences whenever they ask for the same number of answers.
#pragma once
#include "experiments/run/communicator.h"
#include "experiments/tasks/task.h"
#include "models/language_model.h"

namespace mixlab {

// Accuracy as a function of where in the sequence a scored position lies: kPositionBins equal slices of [0, T).
constexpr int kPositionBins = 16;

struct EvalResult {
  int length = 0;
  double loss = 0, accuracy = 0;
  int64_t scored = 0;     // scored answers (n of the accuracy)
  int64_t correct = 0;    // of which right
  int64_t sequences = 0;  // sequences they came from
  double majority = 0;    // the chance baseline: accuracy of always answering the set's most frequent answer
  std::vector<int64_t> bin_correct = std::vector<int64_t>(kPositionBins),
                       bin_scored = std::vector<int64_t>(kPositionBins);
};

// The 95% Wilson score interval of `correct` successes in `n` trials: {low, high}; {0, 1} for n = 0.
std::pair<double, double> WilsonInterval(int64_t correct, int64_t n);

// Sequences per evaluation batch at `length`: the training batch, shrunk so a batch holds about as many tokens as a
// training batch (long-context evaluation stays affordable), but never below 4 sequences.
int EvalBatchSize(int batch, int train_len, int length);

Rng SplitRng(uint64_t seed, Split split, int length);

// Scores the fixed set of at least `answers` answers of `split` at `length` (see above), in batches of `batch`
// sequences. Over several ranks, every rank draws the whole set and scores the batches i with i % ranks == rank; the
// counts are summed and the loss added in batch order, so every rank gets the single process's result, bit for bit.
EvalResult Evaluate(LanguageModel& model, const Task& task, int length, int64_t answers, int batch, uint64_t seed,
                    Split split, const Communicator& comm = Communicator::Single());

}  // namespace mixlab
