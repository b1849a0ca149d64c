// Response maps: edits place the fragment and keep track of where every context token went; an edit that changes
// nothing moves nothing; a real edit moves the residual stream; a few steps on the fragment lower its loss and the
// model is restored afterwards.
#include "experiments/analysis/response_map.h"

#include <gtest/gtest.h>

#include <cmath>

#include "mixers/ops/usage_error.h"
#include "models/model_config.h"

namespace mixlab {
namespace {

TEST(ResponseMap, EditsPlaceTheFragmentAndTrackOrigins) {
  const std::vector<int32_t> c = {10, 11, 12, 13, 14};
  const auto ins = ApplyEdit(c, {7, 8}, Edit::kInsert, 2);
  EXPECT_EQ(ins.tokens, (std::vector<int32_t>{10, 11, 7, 8, 12, 13, 14}));
  EXPECT_EQ(ins.fragment, (std::vector<int>{2, 3}));
  EXPECT_EQ(ins.origin, (std::vector<int>{0, 1, -1, -1, 2, 3, 4}));
  const auto rep = ApplyEdit(c, {7, 8}, Edit::kReplace, 1);
  EXPECT_EQ(rep.tokens, (std::vector<int32_t>{10, 7, 8, 13, 14}));
  EXPECT_EQ(rep.origin, (std::vector<int>{0, -1, -1, 3, 4}));
  const auto twice = ApplyEdit(c, {7}, Edit::kRepeat, 5);
  EXPECT_EQ(twice.tokens, (std::vector<int32_t>{10, 11, 12, 13, 14, 7, 7}));
  EXPECT_EQ(twice.fragment, (std::vector<int>{6}));
  EXPECT_THROW(ApplyEdit(c, {1, 2, 3, 4, 5, 6}, Edit::kInsert, 0), UsageError);
  EXPECT_THROW(ApplyEdit(c, {}, Edit::kInsert, 0), UsageError);
  EXPECT_THROW(ApplyEdit(c, {1, 2}, Edit::kReplace, 4), UsageError);
  EXPECT_THROW(ParseEdit("swap"), UsageError);
}

TEST(ResponseMap, JensenShannonBounds) {
  EXPECT_NEAR(JensenShannon({0.2, 0.8}, {0.2, 0.8}), 0.0, 1e-12);
  EXPECT_NEAR(JensenShannon({1, 0}, {0, 1}), std::log(2.0), 1e-12);
  EXPECT_NEAR(JensenShannon({2, 6}, {0.25, 0.75}), 0.0, 1e-12) << "inputs are renormalised";
  EXPECT_NEAR(JensenShannon({0.3, 0.7}, {0.6, 0.4}), JensenShannon({0.6, 0.4}, {0.3, 0.7}), 1e-15);
}

class Responses : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ModelOptions o;
    o.d_model = 16;
    o.n_layers = 2;
    o.mixer = GetParam();
    o.pos = GetParam() == "softmax" ? "rope" : "none";
    model = std::make_unique<LanguageModel>(ResolveModelConfig(o, {}, 12));
    model->Initialize(4);
  }
  std::unique_ptr<LanguageModel> model;
  const std::vector<int32_t> context = {1, 4, 2, 8, 5, 7, 3, 9, 6, 0, 11, 10, 2, 3};
};

TEST_P(Responses, AnEditThatChangesNothingMovesNothing) {
  const auto same = ApplyEdit(context, {5, 7}, Edit::kReplace, 4);  // context[4..5] are 5, 7 already
  ASSERT_EQ(same.tokens, context);
  const ResponseMap r = Respond(*model, context, same, 1e-3);
  EXPECT_EQ(r.first_layer_over, -1);
  for (const auto& l : r.layers) {
    EXPECT_NEAR(l.residual_change, 0.0, 1e-6);
    EXPECT_NEAR(l.lens_kl, 0.0, 1e-6);
    for (const auto& h : l.heads) EXPECT_NEAR(h.js_shift, 0.0, 1e-6);
  }
}

TEST_P(Responses, AnInsertedFragmentMovesTheStream) {
  const ResponseMap r = Respond(*model, context, ApplyEdit(context, {11, 11, 11}, Edit::kInsert, 5), 1e-3);
  ASSERT_EQ(r.layers.size(), 2u);
  EXPECT_GT(r.layers[0].residual_change, 1e-3);
  EXPECT_EQ(r.first_layer_over, 0);
  double mass = 0;
  for (const auto& h : r.layers[0].heads) mass += h.fragment_mass;
  EXPECT_GT(mass, 0.0) << "positions after the fragment mix some of it in";
}

TEST_P(Responses, TrainingOnTheFragmentLowersItsLossAndIsUndone) {
  const auto variant = ApplyEdit(context, {3, 3, 9}, Edit::kInsert, 6);
  Batch heldout(2, 14);
  for (int i = 0; i < 28; ++i) heldout.tokens[i] = i % 12, heldout.targets[i] = (i + 1) % 12, heldout.mask[i] = 1;
  const std::vector<float> before(model->params().values(), model->params().values() + model->params().size());
  const auto t = TrainOnFragment(*model, variant, heldout, 10, 1e-2f, 1);
  EXPECT_LT(t.fragment_after, t.fragment_before);
  EXPECT_FALSE(t.weight_change.empty());
  for (const auto& [group, change] : t.weight_change) EXPECT_GT(change, 0.0) << group;
  const std::vector<float> after(model->params().values(), model->params().values() + model->params().size());
  EXPECT_EQ(before, after);
}

INSTANTIATE_TEST_SUITE_P(Mixers, Responses, ::testing::Values("softmax", "linear", "mamba"));

}  // namespace
}  // namespace mixlab
