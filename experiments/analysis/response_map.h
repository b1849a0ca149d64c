// Response maps: how a trained model's mixing and residual stream respond when a fragment is inserted into,
// replaced in, or repeated in a context; and how its weights and losses move after a few optimizer steps on the
// edited text. Every mixer through its exported mixing matrix (rows normalised as in analysis.h).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"
#include "models/language_model.h"

namespace mixlab {

enum class Edit { kInsert, kReplace, kRepeat };
Edit ParseEdit(const std::string& name);  // insert | replace | repeat; throws UsageError

struct EditedSequence {
  std::vector<int32_t> tokens;
  std::vector<int> fragment;  // positions of the (last copy of the) fragment in tokens
  std::vector<int> origin;    // per position of tokens: the context position it came from, -1 for fragment tokens
};

// insert: the fragment at position `at`; replace: tokens [at, at + |fragment|) replaced; repeat: the fragment inserted
// twice at `at`. Throws UsageError for an empty fragment, one longer than the context, or `at` out of range.
EditedSequence ApplyEdit(const std::vector<int32_t>& context, const std::vector<int32_t>& fragment, Edit edit, int at);

double JensenShannon(std::vector<double> p, std::vector<double> q);  // nats; inputs renormalised

struct HeadResponse {
  double fragment_mass = 0;  // mean mixing mass on the fragment from the positions after it (variant)
  double js_shift = 0;       // mean JS divergence of mixing over shared tokens, original vs variant
};
struct LayerResponse {
  double residual_change =
      0;               // mean ||h_var - h_orig|| / ||h_orig|| of the layer's output at shared positions after the edit
  double lens_kl = 0;  // mean KL(original lens || variant lens) there
  std::vector<HeadResponse> heads;
};
struct ResponseMap {
  std::vector<LayerResponse> layers;
  int first_layer_over = -1;  // first layer whose residual change exceeds the threshold; -1 none
};
ResponseMap Respond(LanguageModel& model, const std::vector<int32_t>& context, const EditedSequence& variant,
                    double threshold);

struct FragmentTraining {
  std::vector<std::pair<std::string, double>> weight_change;  // per parameter group: ||w_after - w|| / ||w||
  double fragment_before = 0, fragment_after = 0;             // loss on the fragment's tokens in the variant
  double heldout_before = 0, heldout_after = 0;               // loss on held-out task data
  double unrelated_before = 0, unrelated_after = 0;           // loss on uniformly random tokens
};
// `steps` AdamW steps (constant lr, no weight decay) on the variant's next-token loss; the model is restored after.
// Held-out loss uses the task's own targets and mask; unrelated data are uniformly random tokens of the same shape.
FragmentTraining TrainOnFragment(LanguageModel& model, const EditedSequence& variant, const Batch& heldout, int steps,
                                 float lr, uint64_t seed);

}  // namespace mixlab
