// Task generators: every answer a task scores is checked against an independent reading of the sequence it
// generated (a stack evaluator for ListOps, a search for the probe key's earlier value for recall, ...), tokens
// stay inside the vocabulary, and lengths a task cannot generate are refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "experiments/run/evaluate.h"
#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab::testing {
namespace {

Batch Draw(const Task& task, int B, int T, Split split, uint64_t seed = 3) {
  Rng rng(seed);
  return task.Sample(B, T, rng, split);
}

void ExpectInVocab(const Task& task, const Batch& b) {
  for (size_t i = 0; i < b.tokens.size(); ++i) {
    ASSERT_GE(b.tokens[i], 0);
    ASSERT_LT(b.tokens[i], task.Vocab()) << task.Name();
    ASSERT_LT(b.targets[i], task.Vocab()) << task.Name();
  }
}

std::vector<int> Scored(const Batch& b, int row) {
  std::vector<int> at;
  for (int t = 0; t < b.T; ++t)
    if (b.mask[size_t(row) * b.T + t] != 0) at.push_back(t);
  return at;
}

TEST(Tasks, EveryTaskGeneratesInVocabularyAndDeterministically) {
  for (const auto& name : ListTasks()) {
    auto task = MakeTask(name, {});
    for (Split split : {Split::kTrain, Split::kTest}) {
      const Batch a = Draw(*task, 4, 128, split), b = Draw(*task, 4, 128, split);
      ExpectInVocab(*task, a);
      EXPECT_EQ(a.tokens, b.tokens) << name;
      EXPECT_GT(Scored(a, 0).size(), 0u) << name << " scores nothing";
    }
    EXPECT_THROW(task->CheckLength(0), UsageError) << name;
  }
}

TEST(Tasks, SelectiveCopyAnswersAreTheScatteredTokensInOrder) {
  auto task = MakeTask("selective-copy", {{"tokens", "6"}, {"vocab", "10"}});
  const Batch b = Draw(*task, 8, 40, Split::kTest);
  for (int r = 0; r < 8; ++r) {
    std::vector<int> content;
    for (int t = 0; t < 40 - 6 - 1; ++t)
      if (b.tokens[size_t(r) * 40 + t] != 8) content.push_back(b.tokens[size_t(r) * 40 + t]);
    ASSERT_EQ(content.size(), 6u);
    const auto at = Scored(b, r);
    ASSERT_EQ(at.size(), 6u);
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(b.targets[size_t(r) * 40 + at[i]], content[i]);
      EXPECT_EQ(b.tokens[size_t(r) * 40 + at[i]], 8) << "answer slots hold blanks, not the answers";
    }
  }
}

TEST(Tasks, RecallProbeValueIsTheValueShownEarlier) {
  for (const std::string name : {"in-context-recall", "noisy-recall"}) {
    auto task = MakeTask(name, {});
    const Batch b = Draw(*task, 16, 64, Split::kTest);
    for (int r = 0; r < 16; ++r) {
      const auto at = Scored(b, r);
      ASSERT_EQ(at.size(), 1u) << name;
      const int32_t* tok = b.tokens.data() + size_t(r) * 64;
      const int t = at[0], key = tok[t], value = b.targets[size_t(r) * 64 + t];
      EXPECT_EQ(tok[t - 1], task->Vocab() - 1) << "copy prefix before the probe";
      bool shown = false;
      for (int s = 0; s + 1 < t - 1; s += 2) shown |= tok[s] == key && tok[s + 1] == value;
      EXPECT_TRUE(shown) << name << ": probe value not shown after its key earlier";
    }
    EXPECT_EQ(Scored(Draw(*task, 1, 64, Split::kTrain), 0).size(), 64u) << "MAD trains on every next token";
  }
}

TEST(Tasks, FuzzyRecallProbeValueFollowsTheProbeKeyEarlier) {
  auto task = MakeTask("fuzzy-recall", {});
  const Batch b = Draw(*task, 16, 64, Split::kTest);
  for (int r = 0; r < 16; ++r) {
    const auto at = Scored(b, r);
    ASSERT_FALSE(at.empty());
    const std::vector<int32_t> row(b.tokens.begin() + r * 64, b.tokens.begin() + (r + 1) * 64);
    std::vector<int32_t> value;
    for (int t : at) value.push_back(b.targets[size_t(r) * 64 + t]);
    const std::vector<int32_t> key(row.begin() + at[0] - 2, row.begin() + at[0] + 1);  // evaluation keys have 3 tokens
    EXPECT_EQ(row[at[0] - 3], 15) << "copy prefix before the probe key";
    std::vector<int32_t> pattern = key;
    pattern.insert(pattern.end(), value.begin(), value.end());
    EXPECT_NE(std::search(row.begin(), row.begin() + at[0] - 3, pattern.begin(), pattern.end()),
              row.begin() + at[0] - 3)
        << "probe key + value not found earlier";
  }
}

TEST(Tasks, MemorizationMapIsFixedAcrossSeedsAndSplits) {
  auto task = MakeTask("memorization", {});
  std::map<int, int> value_of;
  for (uint64_t seed : {1, 2, 3})
    for (Split split : {Split::kTrain, Split::kTest}) {
      const Batch b = Draw(*task, 4, 32, split, seed);
      for (size_t i = 1; i < b.tokens.size(); i += 2) {
        ASSERT_EQ(b.tokens[i], 255);
        auto [it, fresh] = value_of.emplace(b.tokens[i - 1], b.targets[i]);
        EXPECT_EQ(it->second, b.targets[i]) << "key " << b.tokens[i - 1] << " changed its value";
      }
    }
  EXPECT_GT(value_of.size(), 50u);
}

TEST(Tasks, CompressionTargetsAreTheInputsAndNoiseIsUnscored) {
  auto task = MakeTask("compression", {{"noise-vocab", "3"}, {"frac-noise", "0.3"}});
  EXPECT_EQ(task->Head(), "compression");
  const Batch b = Draw(*task, 8, 32, Split::kTrain, 4);
  int noise = 0;
  for (int r = 0; r < 8; ++r) {
    const size_t last = size_t(r) * 32 + 31;
    EXPECT_EQ(b.tokens[last], 15) << "the sequence ends with the compression token";
    EXPECT_EQ(b.mask[last], 0.0f);
    for (size_t i = last - 31; i < last; ++i) {
      EXPECT_EQ(b.targets[i], b.tokens[i]);
      const bool is_noise = b.tokens[i] >= 12;  // content [0, 12), noise [12, 15)
      EXPECT_EQ(b.mask[i], is_noise ? 0.0f : 1.0f);
      noise += is_noise;
    }
  }
  EXPECT_GT(noise, 30);  // ~0.3 of 248
  EXPECT_THROW(MakeTask("compression", {{"noise-vocab", "15"}}), UsageError);
  EXPECT_THROW(MakeTask("compression", {{"frac-noise", "0.2"}}), UsageError);
}

// Evaluates a ListOps token sequence with an explicit stack.
int EvaluateListOps(const int32_t* tok, int n) {
  std::vector<std::pair<int, std::vector<int>>> stack;
  int result = -1;
  for (int i = 0; i < n; ++i) {
    const int v = tok[i];
    if (v >= 10 && v <= 13) stack.push_back({v, {}});
    else if (v < 10) stack.back().second.push_back(v);
    else if (v == 14) {
      auto [op, args] = stack.back();
      stack.pop_back();
      std::sort(args.begin(), args.end());
      int r = 0;
      if (op == 10) r = args.back();
      else if (op == 11) r = args.front();
      else if (op == 12) r = (args[(args.size() - 1) / 2] + args[args.size() / 2]) / 2;
      else
        for (int a : args) r = (r + a) % 10;
      if (stack.empty()) result = r;
      else stack.back().second.push_back(r);
    }
  }
  return result;
}

TEST(Tasks, ListOpsAnswerEvaluatesTheExpression) {
  auto task = MakeTask("listops", {{"max-depth", "4"}, {"max-args", "5"}, {"branch", "0.4"}});
  const Batch b = Draw(*task, 32, 80, Split::kTest);
  int nested = 0;
  for (int r = 0; r < 32; ++r) {
    const int32_t* tok = b.tokens.data() + size_t(r) * 80;
    ASSERT_EQ(tok[79], 16);
    EXPECT_EQ(Scored(b, r), std::vector<int>{79});
    EXPECT_EQ(b.targets[size_t(r) * 80 + 79], EvaluateListOps(tok, 79));
    nested += std::count_if(tok, tok + 79, [](int v) { return v >= 10 && v <= 13; }) > 1;
  }
  EXPECT_GT(nested, 0) << "no nested expressions drawn";
}

TEST(Tasks, ListOpsKeepsOnlyExpressionsInTheLengthBand) {
  auto task = MakeTask("listops", {{"min-len", "30"}, {"max-len", "60"}});
  const int T = 100;
  const Batch b = Draw(*task, 64, T, Split::kTrain);
  for (int r = 0; r < 64; ++r) {
    const int32_t* tok = b.tokens.data() + size_t(r) * T;
    const int length = int(std::count_if(tok, tok + T - 1, [](int v) { return v != 15; }));  // everything but padding
    EXPECT_GE(length, 30);
    EXPECT_LE(length, 60);
    EXPECT_EQ(b.targets[size_t(r) * T + T - 1], EvaluateListOps(tok, T - 1));
  }
  EXPECT_THROW(MakeTask("listops", {{"min-len", "50"}, {"max-len", "40"}}), UsageError);
  EXPECT_THROW(task->CheckLength(30), UsageError) << "no room for a 30-token expression and '='";
  EXPECT_NO_THROW(task->CheckLength(31));
  // Depth 1 with at most 3 arguments draws expressions of at most 5 tokens: a band above that is refused up front.
  EXPECT_THROW(MakeTask("listops", {{"max-depth", "1"}, {"max-args", "3"}, {"min-len", "10"}}), UsageError);
}

// The value bound to `key` among the first `pairs` key-value pairs of a row, or -1.
int BoundValue(const int32_t* tok, int pairs, int key) {
  for (int i = 0; i < pairs; ++i)
    if (tok[2 * i] == key) return tok[2 * i + 1];
  return -1;
}

TEST(Tasks, MqarMixtureDrawsEachSettingPaddedAndAnswered) {
  auto task = MakeTask("mqar", {{"vocab", "32"}, {"pairs", "8"}, {"mixture", "16:2,32:4,64:8"}});
  const int T = 64, B = 300;
  const Batch b = Draw(*task, B, T, Split::kTrain);
  ExpectInVocab(*task, b);
  std::map<int, int> rows_with_pairs;
  for (int r = 0; r < B; ++r) {
    const int32_t* tok = b.tokens.data() + size_t(r) * T;
    const auto at = Scored(b, r);
    const int pairs = int(at.size()), length = 8 * pairs;  // the settings above have length = 8 x pairs
    ++rows_with_pairs[pairs];
    for (int t : at) {
      EXPECT_LT(t, length) << "a query past its setting's length";
      EXPECT_EQ(b.targets[size_t(r) * T + t], BoundValue(tok, pairs, tok[t]));
    }
    for (int t = length; t < T; ++t) EXPECT_EQ(tok[t], 0) << "padding after a " << length << "-token setting";
  }
  EXPECT_EQ(rows_with_pairs.size(), 3u) << "every setting is drawn";
  for (const auto& [pairs, rows] : rows_with_pairs) EXPECT_GT(rows, B / 6) << pairs << " pairs";
  // Validation and test ignore the mixture: --mqar.pairs at the evaluation length.
  const Batch test = Draw(*task, 16, T, Split::kTest);
  for (int r = 0; r < 16; ++r) {
    const auto at = Scored(test, r);
    ASSERT_EQ(at.size(), 8u);
    for (int t : at)
      EXPECT_EQ(test.targets[size_t(r) * T + t],
                BoundValue(test.tokens.data() + size_t(r) * T, 8, test.tokens[size_t(r) * T + t]));
  }
}

TEST(Tasks, MqarMixtureRefusesBadSettings) {
  for (const std::string bad : {"64", "64:", ":4", "64:4x", "64:0", "8:4", "64:4,,32:2", "128:40"})
    EXPECT_THROW(MakeTask("mqar", {{"vocab", "64"}, {"mixture", bad}}), UsageError) << bad;
  auto task = MakeTask("mqar", {{"vocab", "64"}, {"mixture", "64:4,256:16"}});
  EXPECT_THROW(task->CheckTrainLength(128), UsageError) << "a setting longer than the training length";
  EXPECT_NO_THROW(task->CheckTrainLength(256));
  EXPECT_NO_THROW(task->CheckLength(64)) << "evaluation uses --mqar.pairs, not the mixture";
}

TEST(Tasks, PasskeyDigitsAreAskedBackAtTheRequestedDepth) {
  for (const std::string depth : {"0", "0.5", "1"}) {
    auto task = MakeTask("passkey", {{"depth", depth}});
    const Batch b = Draw(*task, 4, 100, Split::kTest);
    const int key = 16;
    for (int r = 0; r < 4; ++r) {
      const int32_t* tok = b.tokens.data() + size_t(r) * 100;
      const int at = int(std::find(tok, tok + 100, key) - tok);
      const int expected = int(std::lround(std::stof(depth) * (100 - 5 - 6)));
      EXPECT_EQ(at, expected) << "depth " << depth;
      const auto scored = Scored(b, r);
      ASSERT_EQ(scored.size(), 5u);
      for (int i = 0; i < 5; ++i) EXPECT_EQ(b.targets[size_t(r) * 100 + scored[i]], tok[at + 1 + i]);
      EXPECT_EQ(tok[scored[0]], key + 1) << "query marker before the answers";
    }
  }
}

TEST(Tasks, CharLmDrawsEachSplitFromItsOwnRegion) {
  const auto path = std::filesystem::temp_directory_path() / "mixlab_char_lm_test.txt";
  {
    std::ofstream out(path);
    out << std::string(900, 'a') << std::string(50, 'b') << std::string(50, 'c');
  }
  auto task = MakeTask("char-lm", {{"data", path.string()}});
  for (auto [split, ch] : {std::pair{Split::kTrain, 'a'}, {Split::kValidation, 'b'}, {Split::kTest, 'c'}}) {
    const Batch b = Draw(*task, 8, 40, split);
    for (size_t i = 0; i < b.tokens.size(); ++i) {
      ASSERT_EQ(b.tokens[i], ch);
      ASSERT_EQ(b.mask[i], 1.0f);
    }
  }
  EXPECT_THROW(task->CheckLength(50), UsageError) << "windows longer than the test split";
  EXPECT_THROW(MakeTask("char-lm", {{"data", "/no/such/corpus.txt"}}), UsageError);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace mixlab::testing
