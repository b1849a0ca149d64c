// Tasks generate seeded batches of (tokens, targets, loss mask) for any sequence length, so training and
// test lengths are set independently. Accuracy is measured only where the mask is set, i.e. where the task
// defines an answer (the queried values of MQAR, the final answer of induction heads, the copied half of copy).
#pragma once
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mixers/ops/options.h"
#include "mixers/ops/rng.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens, targets;  // (B, T); targets[t] is the token to predict at position t
  std::vector<float> mask;               // (B, T) 1 where the prediction is scored
  Batch(int b, int t) : B(b), T(t), tokens(size_t(b) * t, 0), targets(size_t(b) * t, 0), mask(size_t(b) * t, 0.0f) {}
  // Sequences [first, first + count): a micro-batch, or one rank's shard of a step's batch.
  Batch Sequences(int first, int count) const {
    Batch part(count, T);
    const size_t begin = size_t(first) * T, n = size_t(count) * T;
    std::copy_n(tokens.begin() + begin, n, part.tokens.begin());
    std::copy_n(targets.begin() + begin, n, part.targets.begin());
    std::copy_n(mask.begin() + begin, n, part.mask.begin());
    return part;
  }
};

// Which seeded stream a batch comes from: training, validation (model selection, periodic evals) or test (final).
// Tasks over a corpus draw each split from its own region of the text; tasks that train on every next token
// (MAD) score only their probe outside training.
enum class Split { kTrain = 1, kValidation = 2, kTest = 3 };

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string Name() const = 0;
  virtual int Vocab() const = 0;
  // Throws UsageError naming the task and the smallest length it can generate.
  virtual void CheckLength(int T) const = 0;
  // The same for the training length, where a task may train on other settings than it is tested on (MQAR's
  // mixture of lengths and pair counts).
  virtual void CheckTrainLength(int T) const { CheckLength(T); }
  virtual Batch Sample(int B, int T, Rng& rng, Split split) const = 0;
  // The model readout the task needs (ModelConfig::head): "lm", or "compression" (reconstruct from the last position).
  virtual std::string Head() const { return "lm"; }
  // The role of token t of sequence b in a batch this task sampled, for routing analyses (which tokens each MoE
  // expert takes). Default: "scored" where the mask is set, else "context"; tasks with richer structure override.
  virtual std::string Role(const Batch& batch, int b, int t) const {
    return batch.mask[size_t(b) * batch.T + t] != 0 ? "scored" : "context";
  }
};

// Writes sequence b from T + 1 tokens: inputs seq[0..T), next-token targets seq[1..T]. Training scores every next
// token; validation and test score only the positions t whose target seq[t + 1] is a probe (MAD's convention).
inline void FillNextToken(Batch& batch, int b, const std::vector<int32_t>& seq, const std::vector<bool>& probe,
                          Split split) {
  const int T = batch.T;
  for (int t = 0; t < T; ++t) {
    batch.tokens[size_t(b) * T + t] = seq[t];
    batch.targets[size_t(b) * T + t] = seq[t + 1];
    batch.mask[size_t(b) * T + t] = split == Split::kTrain || probe[t + 1] ? 1.0f : 0.0f;
  }
}

struct TaskInfo {
  std::string name, help;
  std::function<std::unique_ptr<Options>()> make_options;
  std::function<std::unique_ptr<Task>(const Options&)> make;
};

std::vector<std::string> ListTasks();
const TaskInfo& FindTask(const std::string& name);  // throws UsageError listing the known tasks
std::unique_ptr<Task> MakeTask(const std::string& name, const std::map<std::string, std::string>& option_values);

template <class TaskT, class OptionsT>
TaskInfo TaskEntry(std::string name, std::string help) {
  return TaskInfo{std::move(name), std::move(help), [] { return std::make_unique<OptionsT>(); },
                  [](const Options& o) -> std::unique_ptr<Task> {
                    return std::make_unique<TaskT>(static_cast<const OptionsT&>(o));
                  }};
}

}  // namespace mixlab
