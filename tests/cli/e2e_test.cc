// End to end, bounded by steps (never by time): 2-layer softmax models learn induction heads to >= 90% and MQAR to
// >= 99% test accuracy. Each bar is reached by well under half the budget on every seed and thread count tried, so it
// is not one machine's rounding: induction (d_model 64, length 64, lr 1e-3) first validated at >= 90% at steps
// 350-650 of 1500 on seeds 0-7 at 1 thread and seeds 0, 1, 3 at 2 threads (>= 99% at 400-700 on seven of the eight
// seeds; seed 3 stays at 0.98 from step 1050 on, at both thread counts); MQAR (d_model 128, length 32, 4 pairs, lr
// 1e-3) at >= 99% at steps 150-250 of 800 on seeds 0-3 with 1 and 2 threads. (At lr 3e-3 induction stalled at 0.93-0.94
// on seeds 0 and 1, and MQAR at d_model 64, length 64 left its 0.41 plateau anywhere between steps 900 and 1900.)
#include <gtest/gtest.h>

#include <filesystem>

#include "experiments/cli/run_builder.h"
#include "experiments/run/trainer.h"

namespace mixlab::testing {
namespace {

struct Recipe {
  std::string task;
  int train_len, d_model, steps, warmup;
  OptionMap task_options;
  int test_answers;
};

TrainResult TrainSoftmax(const Recipe& r) {
  TrainOptions t;
  t.task = r.task;
  t.train_len = r.train_len;
  t.eval_lens = {r.train_len};
  t.steps = r.steps;
  t.batch = 64;
  t.lr = 1e-3f;
  t.warmup = r.warmup;
  t.eval_every = 0;
  t.val_answers = 1000;
  t.test_answers = r.test_answers;
  t.out = (std::filesystem::temp_directory_path() / ("mixlab_e2e_" + r.task)).string();
  ModelOptions m;
  m.d_model = r.d_model;
  m.n_layers = 2;
  m.mixer = "softmax";
  ParsedFlags flags;
  flags.prefixed[r.task] = r.task_options;
  RunSpec spec = BuildRunSpec(t, m, flags, true);
  return Train(spec, {.progress_prefix = r.task, .quiet = true});
}

TEST(EndToEnd, SoftmaxLearnsInductionHeads) {
  const TrainResult r = TrainSoftmax({"induction", 64, 64, 1500, 200, {}, 2000});
  ASSERT_FALSE(r.diverged) << r.divergence;
  ASSERT_EQ(r.test.size(), 1u);
  EXPECT_GE(r.test[0].accuracy, 0.90) << "induction test accuracy after " << r.steps_done << " steps";  // chance 1/16
  EXPECT_GE(r.test[0].scored, 2000);
}

TEST(EndToEnd, SoftmaxLearnsMqar) {
  const TrainResult r = TrainSoftmax({"mqar", 32, 128, 800, 50, {{"pairs", "4"}, {"vocab", "16"}}, 4000});
  ASSERT_FALSE(r.diverged) << r.divergence;
  ASSERT_EQ(r.test.size(), 1u);
  EXPECT_GE(r.test[0].accuracy, 0.99) << "MQAR test accuracy after " << r.steps_done << " steps";
  EXPECT_GE(r.test[0].scored, 4000);
}

}  // namespace
}  // namespace mixlab::testing
