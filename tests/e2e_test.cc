// End to end, bounded by steps (never by time): a 2-layer softmax model with d_model 64 learns MQAR
// (length 64, 4 key-value pairs) and induction heads (length 64) to >= 99% test accuracy.
#include <gtest/gtest.h>

#include <filesystem>

#include "experiments/run_builder.h"
#include "experiments/trainer.h"

namespace mixlab::testing {
namespace {

TrainResult TrainSoftmax(const std::string& task, int steps, int batch, float lr, const OptionMap& task_options = {}) {
  TrainOptions t;
  t.task = task;
  t.train_len = 64;
  t.eval_lens = {64};
  t.steps = steps;
  t.batch = batch;
  t.lr = lr;
  t.warmup = 200;
  t.eval_every = 500;
  t.eval_batches = 16;
  t.out = (std::filesystem::temp_directory_path() / ("mixlab_e2e_" + task)).string();
  ModelOptions m;
  m.d_model = 64;
  m.n_layers = 2;
  m.mixer = "softmax";
  ParsedFlags flags;
  flags.prefixed[task] = task_options;
  RunSpec spec = BuildRunSpec(t, m, flags, true);
  return Train(spec, {.progress_prefix = task, .quiet = true});
}

TEST(EndToEnd, SoftmaxLearnsInductionHeads) {
  const TrainResult r = TrainSoftmax("induction", 2000, 64, 3e-3f);
  ASSERT_FALSE(r.diverged) << r.divergence;
  ASSERT_EQ(r.test.size(), 1u);
  EXPECT_GE(r.test[0].accuracy, 0.99) << "induction test accuracy after " << r.steps_done << " steps";
  EXPECT_GE(r.test[0].scored, 500);
}

TEST(EndToEnd, SoftmaxLearnsMqar) {
  const TrainResult r = TrainSoftmax("mqar", 2000, 64, 3e-3f, {{"pairs", "4"}, {"vocab", "16"}});
  ASSERT_FALSE(r.diverged) << r.divergence;
  ASSERT_EQ(r.test.size(), 1u);
  EXPECT_GE(r.test[0].accuracy, 0.99) << "MQAR test accuracy after " << r.steps_done << " steps";
  EXPECT_GE(r.test[0].scored, 2000);
}

}  // namespace
}  // namespace mixlab::testing
