// Decoding strategies over a trained model: greedy, temperature sampling with top-k / top-p (nucleus) filtering,
// repetition penalty (Keskar et al. 2019), n-gram blocking, and beam search with length normalisation (Wu et al.
// 2016). Every strategy decodes incrementally through every mixer's Step, so a recurrent mixer's cost per token is
// constant; beam search forks decoding states (MixerState::Clone).
#pragma once
#include <cstdint>
#include <vector>

#include "mixers/ops/rng.h"
#include "models/language_model.h"

namespace mixlab {

struct DecodeSettings {
  float temperature = 0;         // 0 = greedy (argmax)
  int top_k = 0;                 // 0 = off
  float top_p = 1;               // 1 = off
  float repetition_penalty = 1;  // > 1 discourages tokens already in the sequence
  int no_repeat_ngram = 0;       // n > 0: never complete an n-gram that already occurred
  int beam_width = 0;            // > 0: beam search (ignores temperature, top-k, top-p)
  float length_alpha = 0;        // beam score = log p / length^alpha
  uint64_t seed = 0;
};

struct DecodeStep {
  int token = 0;
  double entropy = 0;    // of the model's distribution (before any filter), nats
  double top1_prob = 0;  // of the model's distribution
  int nucleus_size = 0;  // tokens in the smallest set with mass >= top_p (0.9 when top_p is off)
};

// The smallest set of token ids whose probabilities sum to >= p (probabilities need not be sorted), most likely first.
std::vector<int> NucleusSet(const std::vector<double>& probs, double p);

// Applies the repetition penalty and n-gram blocking for `history` to logits (V), in place.
void PenaliseHistory(std::vector<float>& logits, const std::vector<int32_t>& history, const DecodeSettings& s);

// Generates up to `n_new` tokens after `prompt` (not empty).
std::vector<DecodeStep> Generate(LanguageModel& model, const std::vector<int32_t>& prompt, int n_new,
                                 const DecodeSettings& s);

}  // namespace mixlab
