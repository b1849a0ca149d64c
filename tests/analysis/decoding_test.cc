// Decoding: temperature 0 and beam width 1 equal greedy; incremental (Step) greedy equals greedy over full
// forwards; cloned decoding states (beam search) continue independently; the top-p set is the smallest with mass >= p;
// n-gram blocking and the repetition penalty do what they say.
#include "experiments/analysis/decoding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "models/model_config.h"

namespace mixlab {
namespace {

std::unique_ptr<LanguageModel> SmallModel(const std::string& mixer) {
  ModelOptions o;
  o.d_model = 32;
  o.n_layers = 2;
  o.mixer = mixer;
  o.pos = mixer == "softmax" ? "rope" : "none";
  auto model = std::make_unique<LanguageModel>(ResolveModelConfig(o, {}, 20));
  model->Initialize(3);
  return model;
}

// Greedy the slow way: a full forward of the whole prefix for every new token.
std::vector<int32_t> GreedyByForward(LanguageModel& model, std::vector<int32_t> seq, int n) {
  for (int i = 0; i < n; ++i) {
    model.Forward(seq.data(), 1, int(seq.size()));
    const float* row = model.logits() + int64_t(seq.size() - 1) * model.vocab();
    seq.push_back(int32_t(std::max_element(row, row + model.vocab()) - row));
  }
  return seq;
}

std::vector<int32_t> Tokens(const std::vector<DecodeStep>& steps) {
  std::vector<int32_t> t;
  for (const auto& s : steps) t.push_back(s.token);
  return t;
}

class Decoding : public ::testing::TestWithParam<std::string> {};

TEST_P(Decoding, GreedyTemperatureZeroAndBeamWidthOneAgree) {
  auto model = SmallModel(GetParam());
  const std::vector<int32_t> prompt = {1, 5, 2, 7};
  const auto reference = GreedyByForward(*model, prompt, 12);
  const std::vector<int32_t> expected(reference.begin() + 4, reference.end());
  EXPECT_EQ(Tokens(Generate(*model, prompt, 12, {})), expected) << "Step-based greedy";
  EXPECT_EQ(Tokens(Generate(*model, prompt, 12, {.temperature = 0, .top_k = 3, .top_p = 0.5f})), expected)
      << "temperature 0";
  EXPECT_EQ(Tokens(Generate(*model, prompt, 12, {.beam_width = 1})), expected) << "beam width 1";
}

TEST_P(Decoding, SamplingIsSeededAndRespectsTopK) {
  auto model = SmallModel(GetParam());
  const std::vector<int32_t> prompt = {3, 4};
  const DecodeSettings s{.temperature = 1.5f, .top_k = 2, .seed = 9};
  const auto a = Generate(*model, prompt, 20, s), b = Generate(*model, prompt, 20, s);
  EXPECT_EQ(Tokens(a), Tokens(b));
  // Each sampled token is one of the two most likely under the model at that step.
  std::vector<int32_t> seq = prompt;
  for (const auto& d : a) {
    model->Forward(seq.data(), 1, int(seq.size()));
    const float* row = model->logits() + int64_t(seq.size() - 1) * model->vocab();
    int above = 0;
    for (int v = 0; v < model->vocab(); ++v) above += row[v] > row[d.token];
    EXPECT_LT(above, 2);
    seq.push_back(d.token);
  }
}

TEST_P(Decoding, ClonedDecodingStatesContinueIndependently) {
  auto model = SmallModel(GetParam());
  const int V = model->vocab();
  auto state = model->NewDecodeState(1);
  std::vector<float> logits(V), a(V), b(V), reference(V);
  for (int32_t t = 0; t < 5; ++t) {
    const int32_t tok = (t * 7) % V;
    model->Step(&tok, &t, 1, logits.data(), *state);
  }
  auto clone = LanguageModel::CloneDecodeState(*state);
  const int32_t pos = 5, x = 3, y = 11;
  model->Step(&y, &pos, 1, b.data(), *clone);  // the clone goes its own way first
  model->Step(&x, &pos, 1, a.data(), *state);
  // The original continues as if the clone did not exist: equal to a fresh decode of the same tokens.
  auto fresh = model->NewDecodeState(1);
  for (int32_t t = 0; t < 5; ++t) {
    const int32_t tok = (t * 7) % V;
    model->Step(&tok, &t, 1, reference.data(), *fresh);
  }
  model->Step(&x, &pos, 1, reference.data(), *fresh);
  EXPECT_EQ(a, reference);
  EXPECT_NE(a, b);
}

INSTANTIATE_TEST_SUITE_P(Mixers, Decoding, ::testing::Values("softmax", "mamba", "gla", "linear", "local"));

TEST(DecodingRules, NucleusIsTheSmallestSetWithMassP) {
  const std::vector<double> p = {0.05, 0.4, 0.1, 0.3, 0.15};
  EXPECT_EQ(NucleusSet(p, 0.4), (std::vector<int>{1}));
  EXPECT_EQ(NucleusSet(p, 0.41), (std::vector<int>{1, 3}));
  EXPECT_EQ(NucleusSet(p, 0.7), (std::vector<int>{1, 3}));
  EXPECT_EQ(NucleusSet(p, 0.71), (std::vector<int>{1, 3, 4}));
  EXPECT_EQ(NucleusSet(p, 1.0).size(), 5u);
}

TEST(DecodingRules, NgramBlockingAndRepetitionPenalty) {
  std::vector<float> z(6, 1.0f);
  // history ... 2 3 4 ... 2 3: with n = 3, completing "2 3 4" again is banned; nothing else.
  PenaliseHistory(z, {2, 3, 4, 1, 2, 3}, {.no_repeat_ngram = 3});
  for (int v = 0; v < 6; ++v) EXPECT_EQ(std::isinf(z[v]), v == 4) << v;
  std::vector<float> r = {2.0f, -2.0f, 2.0f, 1.0f};
  PenaliseHistory(r, {0, 1, 1}, {.repetition_penalty = 2.0f});
  EXPECT_FLOAT_EQ(r[0], 1.0f);
  EXPECT_FLOAT_EQ(r[1], -4.0f);
  EXPECT_FLOAT_EQ(r[2], 2.0f);
}

TEST(DecodingRules, GeneratedSequencesNeverRepeatABlockedNgram) {
  auto model = SmallModel("softmax");
  const std::vector<int32_t> prompt = {1, 2};
  const auto steps = Generate(*model, prompt, 40, {.no_repeat_ngram = 2});
  std::vector<int32_t> seq = prompt;
  for (const auto& d : steps) seq.push_back(d.token);
  std::set<std::pair<int, int>> bigrams;
  for (size_t i = 0; i + 1 < seq.size(); ++i) EXPECT_TRUE(bigrams.insert({seq[i], seq[i + 1]}).second) << "at " << i;
}

}  // namespace
}  // namespace mixlab
