// Looking inside: head scores on hand-built maps with known answers, ablation that removes exactly the chosen
// heads (zero and mean), greedy pruning bookkeeping, and the logit lens ending at the model's own output.
#include "experiments/analysis/analysis.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "experiments/analysis/ablation.h"
#include "models/model_config.h"

namespace mixlab {
namespace {

TEST(HeadScores, PreviousTokenMap) {
  const int T = 8;
  RowMatrix a = RowMatrix::Zero(T, T);
  a(0, 0) = 1;
  for (int t = 1; t < T; ++t) a(t, t - 1) = 1;
  HeadScores s;
  ScoreGeneral(a, s);
  EXPECT_DOUBLE_EQ(s.previous_token, 1.0);
  EXPECT_DOUBLE_EQ(s.mean_distance, 1.0);
  EXPECT_DOUBLE_EQ(s.entropy, 0.0);
  EXPECT_NEAR(s.sink_mass, 1.0 / (T - 1), 1e-12);  // only row 1's previous token is the first token
}

TEST(HeadScores, UniformMap) {
  const int T = 10;
  RowMatrix a = RowMatrix::Zero(T, T);
  for (int t = 0; t < T; ++t)
    for (int s = 0; s <= t; ++s) a(t, s) = 1.0f / float(t + 1);
  HeadScores s;
  ScoreGeneral(a, s);
  EXPECT_NEAR(s.entropy_ratio, 1.0, 1e-6);
  double sink = 0, distance = 0;
  for (int t = 1; t < T; ++t) sink += 1.0 / (t + 1), distance += t / 2.0;
  EXPECT_NEAR(s.sink_mass, sink / (T - 1), 1e-6);
  EXPECT_NEAR(s.mean_distance, distance / (T - 1), 1e-5);
}

TEST(HeadScores, InductionAndDuplicateMapsOnARepeatedSequence) {
  const int L = 8, T = 2 * L;
  RowMatrix induction = RowMatrix::Zero(T, T), duplicate = RowMatrix::Zero(T, T);
  for (int t = L; t < T; ++t) induction(t, t - L + 1) = 1, duplicate(t, t - L) = 1;
  HeadScores si, sd;
  ScoreRepeated(induction, L, si);
  ScoreRepeated(duplicate, L, sd);
  EXPECT_DOUBLE_EQ(si.induction, 1.0);
  EXPECT_DOUBLE_EQ(si.duplicate_token, 0.0);
  EXPECT_DOUBLE_EQ(sd.duplicate_token, 1.0);
  EXPECT_DOUBLE_EQ(sd.induction, 0.0);
}

TEST(HeadScores, AnswerInductionLooksAfterTheLatestEarlierOccurrence) {
  // tokens: 5 7 5 9 _ 5 ; scored at t = 5 (a 5): latest earlier 5 is at 2, its successor at 3.
  const std::vector<int32_t> tokens = {5, 7, 5, 9, 1, 5};
  const std::vector<float> mask = {0, 0, 0, 0, 0, 1};
  RowMatrix a = RowMatrix::Zero(6, 6);
  a(5, 3) = 0.75f, a(5, 1) = 0.25f;
  HeadScores s;
  ScoreAnswerInduction(a, tokens, mask, s);
  EXPECT_FLOAT_EQ(s.answer_induction, 0.75);
}

TEST(HeadScores, NormalizeRowsUsesMagnitudesAndKeepsZeroRows) {
  RowMatrix m(3, 3);
  m << 0, 0, 0, -1, 3, 0, 2, -2, 4;
  const RowMatrix a = NormalizeRows(m);
  EXPECT_FLOAT_EQ(a.row(0).sum(), 0.0f);
  EXPECT_FLOAT_EQ(a(1, 0), 0.25f);
  EXPECT_FLOAT_EQ(a(2, 2), 0.5f);
  EXPECT_FLOAT_EQ(a.row(1).sum(), 1.0f);
}

TEST(HeadScores, RepeatedRandomSequenceRepeats) {
  Rng rng(3);
  const auto seq = RepeatedRandomSequence(20, 7, rng);
  ASSERT_EQ(seq.size(), 40u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(seq[i], seq[i + 20]);
    EXPECT_TRUE(seq[i] >= 0 && seq[i] < 7);
  }
}

TEST(HeadScores, ProbesDrawOnlyTheTokensTheTaskUses) {
  // A text of three letters: the alphabet is those bytes, not the 256 a byte model's vocabulary holds.
  const auto path = std::filesystem::temp_directory_path() / "mixlab_alphabet_test.txt";
  {
    std::ofstream out(path);
    for (int i = 0; i < 400; ++i) out << "abc"[(i * 7) % 3];
  }
  auto task = MakeTask("char-lm", {{"data", path.string()}});
  EXPECT_EQ(TaskAlphabet(*task, 16, 0), (std::vector<int32_t>{'a', 'b', 'c'}));
  Rng rng(2);
  const auto seq = RepeatedRandomSequence(30, TaskAlphabet(*task, 16, 0), rng);
  std::set<int32_t> drawn(seq.begin(), seq.end());
  EXPECT_EQ(drawn, (std::set<int32_t>{'a', 'b', 'c'}));
  for (int i = 0; i < 30; ++i) EXPECT_EQ(seq[i], seq[i + 30]);
}

// Mean next-token loss over positions [from, to) of the model's last Forward, computed directly.
double MeanLoss(const LanguageModel& model, const std::vector<int32_t>& targets, int from, int to) {
  double sum = 0;
  for (int t = from; t < to; ++t) {
    const float* z = model.logits() + int64_t(t) * model.vocab();
    double norm = 0;
    for (int v = 0; v < model.vocab(); ++v) norm += std::exp(double(z[v]));
    sum += std::log(norm) - z[targets[t]];
  }
  return sum / (to - from);
}

TEST(HeadScores, InContextScoresAreLateMinusEarlyLoss) {
  auto task = MakeTask("induction", {});
  ModelOptions o;
  o.d_model = 16;
  o.n_layers = 1;
  LanguageModel model(ResolveModelConfig(o, {}, task->Vocab()));
  model.Initialize(3);
  Rng rng(4);
  const auto repeated = RepeatedRandomSequence(20, task->Vocab(), rng);  // T = 40: targets 1..19 early, 20..39 late
  const double score = InContextScore(model, repeated);
  std::vector<int32_t> next(repeated.begin() + 1, repeated.end());
  model.Forward(repeated.data(), 1, 40);
  EXPECT_NEAR(score, MeanLoss(model, next, 19, 39) - MeanLoss(model, next, 0, 19), 1e-5);

  const Batch sample = task->Sample(1, 50, rng, Split::kTest);
  const double text = TextInContextScore(model, sample);  // last tenth [45, 50) minus second tenth [5, 10)
  model.Forward(sample.tokens.data(), 1, 50);
  EXPECT_NEAR(text, MeanLoss(model, sample.targets, 45, 50) - MeanLoss(model, sample.targets, 5, 10), 1e-5);
}

struct Fixture {
  std::unique_ptr<Task> task = MakeTask("mqar", {});
  std::unique_ptr<LanguageModel> model;
  AblationSetup setup;
  Fixture(const std::string& mixer, const std::map<std::string, OptionMap>& flags) {
    ModelOptions o;
    o.d_model = 16;
    o.n_layers = 2;
    o.mixer = mixer;
    o.pos = "none";
    model = std::make_unique<LanguageModel>(ResolveModelConfig(o, flags, task->Vocab()));
    model->Initialize(5);
    setup.task = task.get();
    setup.length = 32;
    setup.answers = 32;
    setup.batch = 4;
    Rng rng(1);
    const Batch b = task->Sample(1, setup.length, rng, Split::kTest);
    for (const auto& l : AnalyzeHeads(*model, b.tokens, b.mask, RepeatedRandomSequence(16, task->Vocab(), rng)))
      setup.heads_per_layer.push_back(int(l.heads.size()));
  }
};

class AblationTest : public ::testing::TestWithParam<std::pair<std::string, std::map<std::string, OptionMap>>> {};

TEST_P(AblationTest, ZeroAblationOfEveryHeadSilencesTheLayerAndIsUndone) {
  Fixture f(GetParam().first, GetParam().second);
  const Batch b = AblationBatch(f.setup);
  const std::vector<float> before(f.model->params().values(), f.model->params().values() + f.model->params().size());
  std::vector<HeadId> all;
  for (int h = 0; h < f.setup.heads_per_layer[1]; ++h) all.push_back({1, h});
  {
    Ablation ablation(*f.model, f.setup, all);
    f.model->Forward(b.tokens.data(), b.B, b.T);
    const float* y = f.model->mixer_output(1);
    for (int64_t i = 0; i < int64_t(b.B) * b.T * f.model->d_model(); ++i) ASSERT_EQ(y[i], 0.0f) << i;
  }
  const std::vector<float> after(f.model->params().values(), f.model->params().values() + f.model->params().size());
  EXPECT_EQ(before, after);
  // Each head carries part of the output; a single head's share is below the whole.
  const auto shares = HeadOutputShares(*f.model, f.setup);
  for (double s : shares[1]) EXPECT_TRUE(s > 0.0 && s < 1.0) << s;
}

TEST_P(AblationTest, MeanAblationReplacesTheLayerOutputByItsMean) {
  Fixture f(GetParam().first, GetParam().second);
  f.setup.mode = AblationMode::kMean;
  const Batch b = AblationBatch(f.setup);
  const int64_t N = int64_t(b.B) * b.T, D = f.model->d_model();
  f.model->Forward(b.tokens.data(), b.B, b.T);
  std::vector<double> mean(D, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) mean[d] += f.model->mixer_output(0)[i * D + d] / double(N);
  std::vector<HeadId> all;
  for (int h = 0; h < f.setup.heads_per_layer[0]; ++h) all.push_back({0, h});
  Ablation ablation(*f.model, f.setup, all);
  f.model->Forward(b.tokens.data(), b.B, b.T);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) ASSERT_NEAR(f.model->mixer_output(0)[i * D + d], mean[d], 1e-5) << i << "," << d;
}

INSTANTIATE_TEST_SUITE_P(
    Mixers, AblationTest,
    ::testing::Values(
        std::make_pair(std::string("softmax"), std::map<std::string, OptionMap>{{"softmax", {{"n-heads", "4"}}}}),
        std::make_pair(std::string("gla"), std::map<std::string, OptionMap>{{"gla", {{"n-heads", "2"}}}}),
        std::make_pair(std::string("mamba"), std::map<std::string, OptionMap>{{"mamba", {{"mixing-groups", "4"}}}})),
    [](const auto& info) { return info.param.first; });

TEST(Pruning, RemovesEveryHeadOnceAndEndsWithNoHeads) {
  Fixture f("softmax", {{"softmax", {{"n-heads", "2"}}}});
  const auto curve = GreedyPruning(*f.model, f.setup);
  ASSERT_EQ(curve.size(), 5u);
  EXPECT_EQ(curve.front().fraction, 0.0);
  EXPECT_EQ(curve.back().fraction, 1.0);
  std::set<HeadId> removed;
  for (size_t i = 1; i < curve.size(); ++i) removed.insert(curve[i].removed);
  EXPECT_EQ(removed.size(), 4u);
  std::vector<HeadId> all(removed.begin(), removed.end());
  const EvalResult none = EvaluateAblated(*f.model, f.setup, all);
  EXPECT_DOUBLE_EQ(curve.back().loss, none.loss);
}

TEST(ExpertRoles, MqarRolesAndRoutingFractions) {
  auto task = MakeTask("mqar", {{"pairs", "3"}});
  Rng rng(4);
  const Batch b = task->Sample(1, 32, rng, Split::kTest);
  EXPECT_EQ(task->Role(b, 0, 0), "key");
  EXPECT_EQ(task->Role(b, 0, 5), "value");
  int queries = 0;
  for (int t = 0; t < 32; ++t) queries += task->Role(b, 0, t) == "query";
  EXPECT_EQ(queries, 3);

  ModelOptions o;
  o.d_model = 16;
  o.n_layers = 1;
  o.channel = "moe";
  o.pos = "none";
  LanguageModel model(ResolveModelConfig(o, {{"moe", {{"n-experts", "4"}, {"top-k", "2"}}}}, task->Vocab()));
  model.Initialize(2);
  const HeadSurvey survey = SurveyHeads(model, *task, 32, 3, 0);
  ASSERT_EQ(survey.expert_roles.count(0), 1u);
  for (const auto& [role, row] : survey.expert_roles.at(0)) {
    ASSERT_EQ(row.size(), 4u) << role;
    EXPECT_NEAR(std::accumulate(row.begin(), row.end(), 0.0), 1.0, 1e-9) << role;
  }
  model.Forward(b.tokens.data(), 1, 32);
  const auto routes = model.channel(0).Routes();
  ASSERT_EQ(routes.size(), 32u);
  for (const auto& r : routes) EXPECT_LE(r.size(), 2u);
}

TEST(LogitLens, LastLayerIsTheModelsOwnOutput) {
  Fixture f("softmax", {{"softmax", {{"n-heads", "2"}}}});
  Rng rng(2);
  const Batch b = f.task->Sample(1, 32, rng, Split::kTest);
  const auto lens = LogitLens(*f.model, b.tokens, b.mask);
  ASSERT_EQ(int(lens.size()), f.model->n_layers() + 1);
  EXPECT_NEAR(lens.back().kl_to_final, 0.0, 1e-9);
  EXPECT_EQ(lens.back().final_top1_rank, 0.0);
  EXPECT_GT(lens.front().kl_to_final, 1e-6);  // the embedding alone does not predict like the whole model
  for (const auto& l : lens) EXPECT_TRUE(std::isfinite(l.entropy) && l.entropy > 0);
}

}  // namespace
}  // namespace mixlab
