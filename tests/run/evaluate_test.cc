// Evaluation scores one fixed set per (seed, split, length, answers): the batch size only chunks it, so train's test,
// eval and analyze agree on a checkpoint; every accuracy carries its n and a Wilson interval.
#include "experiments/run/evaluate.h"

#include <gtest/gtest.h>

#include "experiments/tasks/task.h"
#include "models/language_model.h"
#include "models/model_config.h"

namespace mixlab::testing {
namespace {

TEST(Evaluate, TheSetDoesNotDependOnTheBatchSize) {
  for (const char* name : {"induction", "mqar", "selective-copy"}) {
    auto task = MakeTask(name, {});
    ModelOptions o;
    o.d_model = 16;
    LanguageModel model(ResolveModelConfig(o, {}, task->Vocab()));
    model.Initialize(3);
    const EvalResult one = Evaluate(model, *task, 64, 50, 1, 7, Split::kTest);
    for (int batch : {3, 8, 64}) {
      const EvalResult r = Evaluate(model, *task, 64, 50, batch, 7, Split::kTest);
      EXPECT_EQ(r.scored, one.scored) << name << " batch " << batch;
      EXPECT_EQ(r.correct, one.correct) << name << " batch " << batch;
      EXPECT_EQ(r.sequences, one.sequences) << name << " batch " << batch;
      EXPECT_NEAR(r.loss, one.loss, 1e-5 * one.loss) << name << " batch " << batch;
    }
    EXPECT_GE(one.scored, 50) << name;
    const int64_t per_sequence = one.scored / one.sequences;  // these tasks score the same count in every sequence
    EXPECT_LT(one.scored - per_sequence, 50) << name << ": the set stops at the first sequence that reaches the target";
  }
}

TEST(Evaluate, WilsonIntervalMatchesTheFormula) {
  // Reference values from the closed form (Wilson 1927, z = 1.96).
  auto [lo, hi] = WilsonInterval(0, 10);
  EXPECT_NEAR(lo, 0.0, 1e-9);
  EXPECT_NEAR(hi, 0.27753, 1e-4);
  std::tie(lo, hi) = WilsonInterval(5, 10);
  EXPECT_NEAR(lo, 0.23659, 1e-4);
  EXPECT_NEAR(hi, 0.76341, 1e-4);
  std::tie(lo, hi) = WilsonInterval(1990, 2000);
  EXPECT_NEAR(lo, 0.99083, 1e-4);
  EXPECT_NEAR(hi, 0.99729, 1e-4);
  EXPECT_EQ(WilsonInterval(0, 0), std::make_pair(0.0, 1.0));
}

}  // namespace
}  // namespace mixlab::testing
