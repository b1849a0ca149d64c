// Looking inside a trained model through every mixer's exported mixing matrix (Mixer::Mixing): exact attention
// weights for softmax, local and sparse attention, the implied kernel for linear attention, Performer and gla, the
// materialised selective-scan kernel for mamba. Rows are normalised to distributions (|M| / row sum; exact attention
// is unchanged), so the same head-specialisation scores apply to every mixer:
//   previous-token   mean A[t, t-1]                                    (rows t >= 1)
//   duplicate-token  mean A[t, t-L] on a sequence repeating with period L   (rows in the repeat)
//   induction        mean A[t, t-L+1]: the token after the earlier occurrence (Olsson et al. 2022)
//   answer induction on task sequences, at the scored positions: mean A[t, s+1] where s is the latest earlier
//                    occurrence of token t (the final trigger -> the answer in induction heads, a queried key ->
//                    its value in MQAR); catches task-specific induction circuits the random-sequence probe misses
//   entropy          mean row entropy (nats), and its ratio to a uniform row over the visible positions
//   mean distance    mean sum_s A[t, s] (t - s)
//   sink mass        mean A[t, 0]
// and the logit lens reads every layer's residual stream through the final norm and the LM head.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "experiments/tasks/task.h"
#include "mixers/ops/rng.h"
#include "mixers/ops/tensor.h"
#include "models/language_model.h"

namespace mixlab {

struct HeadScores {
  double previous_token = 0, duplicate_token = 0, induction = 0, answer_induction = 0, entropy = 0, entropy_ratio = 0,
         mean_distance = 0, sink_mass = 0;
};

// Rows of |M| scaled to sum to 1 (all-zero rows stay zero).
RowMatrix NormalizeRows(const RowMatrix& m);
// previous-token, entropy, entropy ratio, mean distance and sink mass of a normalised map.
void ScoreGeneral(const RowMatrix& a, HeadScores& s);
// duplicate-token and induction scores of a normalised map of a sequence whose positions L.. repeat 0..
void ScoreRepeated(const RowMatrix& a, int period, HeadScores& s);
// answer induction of a normalised map of `tokens`, over positions where mask != 0 whose token occurred before.
void ScoreAnswerInduction(const RowMatrix& a, const std::vector<int32_t>& tokens, const std::vector<float>& mask,
                          HeadScores& s);

struct LayerAnalysis {
  int layer = 0;
  std::string mixer;
  std::vector<RowMatrix> task_maps;  // normalised, per head or channel group, on the task sequence
  std::vector<HeadScores> heads;
};

// Runs the model on one task sequence (general and answer-induction scores, maps) and on `repeated`, a sequence whose
// second half repeats its first (duplicate-token and induction scores).
std::vector<LayerAnalysis> AnalyzeHeads(LanguageModel& model, const std::vector<int32_t>& task_tokens,
                                        const std::vector<float>& task_mask, const std::vector<int32_t>& repeated);

struct LensLayer {
  int layer = 0;                // residual stream entering this layer (n_layers = the output)
  double entropy = 0;           // mean entropy of the lens distribution (nats) over the scored positions
  double kl_to_final = 0;       // mean KL(final || lens)
  double final_top1_rank = 0;   // mean rank (0 = first) of the model's final prediction under the lens
  std::vector<int> top_tokens;  // the lens's 5 most likely tokens at the last scored position
};

// log softmax of V logits, in double.
std::vector<double> LogSoftmax(const float* z, int V);

// The logit lens on one sequence, averaged over the positions where mask != 0.
std::vector<LensLayer> LogitLens(LanguageModel& model, const std::vector<int32_t>& tokens,
                                 const std::vector<float>& mask);

}  // namespace mixlab

namespace mixlab {

// Cosine similarity of every pair of heads' maps, heads numbered layer-major across all layers.
std::vector<std::vector<double>> MapSimilarity(const std::vector<LayerAnalysis>& layers);

// A sequence of `half` uniformly random tokens of `alphabet` followed by the same tokens again (the induction probe).
std::vector<int32_t> RepeatedRandomSequence(int half, const std::vector<int32_t>& alphabet, Rng& rng);
// The same over every token id in [0, vocab).
std::vector<int32_t> RepeatedRandomSequence(int half, int vocab, Rng& rng);

// The tokens a task's sequences use, sorted: the probes draw from these, because a token the task never shows keeps
// its initial embedding shrunk by weight decay (a byte-level model on English text sees about 100 of 256 bytes), and
// repeats of such tokens measure nothing the model learned.
std::vector<int32_t> TaskAlphabet(const Task& task, int T, uint64_t seed);

// In-context-learning score on a repeated sequence: mean next-token loss over the second half minus the first
// (Olsson et al. 2022's late-minus-early loss); strongly negative once the model copies from context.
double InContextScore(LanguageModel& model, const std::vector<int32_t>& repeated);

// Olsson et al.'s in-context score on the task's own sequences: mean next-token loss over the last tenth of the
// positions minus over the second tenth (their token 500 minus token 50 of 512). Meaningful for tasks that predict
// every next token (char-lm); negative when later context helps.
double TextInContextScore(LanguageModel& model, const Batch& sample);

// Head scores of `samples` task sequences of length T (test split) and as many repeated random sequences.
// A task sequence with every layer's normalised maps on it (the interactive pages show them over its tokens).
struct ShownSample {
  std::vector<int32_t> tokens;
  std::vector<float> mask;
  std::vector<std::vector<RowMatrix>> maps;  // [layer][head]
};
constexpr int kShownSamples = 4;

struct HeadSurvey {
  std::vector<LayerAnalysis> first;             // maps and scores of the first sample
  std::vector<ShownSample> shown;               // the first kShownSamples samples with their maps
  std::vector<std::vector<HeadScores>> mean;    // [layer][head], averaged over samples
  std::vector<std::vector<double>> similarity;  // map similarity (MapSimilarity), averaged over samples
  std::map<std::string, double> channel_stats;  // channel mixers' Stats() (MoE load, router entropy), averaged
  double in_context = 0;                        // InContextScore, averaged
  double text_in_context = 0;                   // TextInContextScore on the task samples, averaged
  // MoE layers: layer -> token role (Task::Role) -> fraction of that role's routed tokens each expert took.
  std::map<int, std::map<std::string, std::vector<double>>> expert_roles;
};
HeadSurvey SurveyHeads(LanguageModel& model, const Task& task, int T, int samples, uint64_t seed);

// Every score's name and field, in report order.
const std::vector<std::pair<const char*, double HeadScores::*>>& ScoreFields();

}  // namespace mixlab
