// Causal importance of heads: remove a set of heads (or mamba channel groups) and measure the task again.
// A head is removed through its rows of the projection its mixer declares as ParamRole::kHeadOutput (wo, mamba's
// out_proj): heads are contiguous row blocks (HeadGroupOfRow, the grouping Mixing() uses), so zeroing a block
// removes exactly that head's contribution (tests/mixers/mixer_contract_test.cc checks this for every mixer). Mean
// ablation then adds back the head's mean contribution, measured on clean validation inputs, as a constant
// (LanguageModel::SetMixerOffset).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "experiments/run/evaluate.h"
#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"
#include "models/language_model.h"

namespace mixlab {

using HeadId = std::pair<int, int>;  // (layer, head)

enum class AblationMode { kZero, kMean };

struct AblationSetup {
  const Task* task = nullptr;
  int length = 64, batch = 16;
  int64_t answers = 2000;  // the test set scored with and without each head
  uint64_t seed = 0;
  AblationMode mode = AblationMode::kZero;
  std::vector<int> heads_per_layer;  // AblatableHeads(): 0 for a layer whose mixer declares no head output
};

// Heads per layer that can be ablated: the head_groups of each layer's kHeadOutput projection, 0 where none.
std::vector<int> AblatableHeads(LanguageModel& model);

// Applies an ablation for its lifetime: removes `removed` heads (mean mode: offsets measured on one validation
// batch), and restores every weight and offset when destroyed. Throws UsageError when a layer with a removed head
// declares no head output projection.
class Ablation {
 public:
  Ablation(LanguageModel& model, const AblationSetup& setup, const std::vector<HeadId>& removed);
  ~Ablation();
  Ablation(const Ablation&) = delete;
  Ablation& operator=(const Ablation&) = delete;

 private:
  LanguageModel& model_;
  std::vector<float> saved_;
};

// The validation batch mean ablation and HeadOutputShares measure on.
Batch AblationBatch(const AblationSetup& setup);

// Test-split evaluation with `removed` heads ablated.
EvalResult EvaluateAblated(LanguageModel& model, const AblationSetup& setup, const std::vector<HeadId>& removed);

// ||contribution of head h|| / ||layer output|| on one validation batch (clean upstream layers), per layer and head.
std::vector<std::vector<double>> HeadOutputShares(LanguageModel& model, const AblationSetup& setup);

struct PruningPoint {
  double fraction = 0, accuracy = 0, loss = 0;
  HeadId removed{-1, -1};  // the head removed at this point (none at fraction 0)
};
// Greedy pruning (Michel et al. 2019): repeatedly remove the head whose removal keeps accuracy highest (then loss
// lowest), until every head is gone.
std::vector<PruningPoint> GreedyPruning(LanguageModel& model, const AblationSetup& setup);

}  // namespace mixlab
