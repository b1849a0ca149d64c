// Micro-batches (--grad-accum, data-parallel ranks) compute the gradient of the whole batch's loss: each passes the
// batch's MaskTotal as its loss normaliser, its batch-wide first sequence (dropout masks) and its share of the
// auxiliary losses; the shards of a step's batch are its sequences in order. (tests/mpi/mpi_test.py checks the ranks
// themselves.)
#include <gtest/gtest.h>

#include <cmath>

#include "experiments/tasks/task.h"
#include "mixers/ops/ops.h"
#include "models/language_model.h"
#include "models/model_config.h"

namespace mixlab::testing {
namespace {

ModelConfig Config(const std::string& mixer, const std::string& channel) {
  ModelOptions o;
  o.d_model = 16;
  o.n_layers = 2;
  o.mixer = mixer;
  o.channel = channel;
  return ResolveModelConfig(o, {{"softmax", {{"n-heads", "2"}, {"dropout", "0.2"}}}}, MakeTask("mqar", {})->Vocab());
}

// Gradient of the whole batch (one pass) and the sum of the gradients of its `parts` micro-batches.
std::pair<std::vector<float>, std::vector<float>> WholeAndSummed(const ModelConfig& config, const Batch& batch,
                                                                 int parts, float* whole_loss, float* summed_loss) {
  LanguageModel model(config);
  model.Initialize(5);
  ParamStore& store = model.params();
  const ForwardMode mode{true, 77, 3};
  store.ZeroGrad();
  model.Forward(batch.tokens.data(), batch.B, batch.T, mode);
  *whole_loss = model.Loss(batch.targets.data(), batch.mask.data());
  model.Backward();
  std::vector<float> whole(store.grads(), store.grads() + store.size()), summed(store.size(), 0.0f);
  const int per = batch.B / parts;
  const float normalizer = MaskTotal(batch.mask.data(), int64_t(batch.mask.size()));
  *summed_loss = 0;
  for (int k = 0; k < parts; ++k) {
    const Batch micro = batch.Sequences(k * per, per);
    ForwardMode micro_mode = mode;
    micro_mode.first_sequence = k * per;
    micro_mode.aux_weight = float(per) / float(batch.B);
    store.ZeroGrad();
    model.Forward(micro.tokens.data(), micro.B, micro.T, micro_mode);
    *summed_loss += model.Loss(micro.targets.data(), micro.mask.data(), normalizer);
    model.Backward();
    for (int64_t i = 0; i < store.size(); ++i) summed[i] += store.grads()[i];
  }
  return {whole, summed};
}

Batch TaskBatch(int B, int T) {
  Rng rng(9);
  return MakeTask("mqar", {})->Sample(B, T, rng, Split::kTrain);
}

TEST(MicroBatches, ShardsOfAStepsBatchAreItsSequencesInOrder) {
  const Batch batch = TaskBatch(8, 32);
  for (int parts : {1, 2, 4, 8}) {
    std::vector<int32_t> tokens, targets;
    std::vector<float> mask;
    for (int k = 0; k < parts; ++k) {
      const Batch shard = batch.Sequences(k * 8 / parts, 8 / parts);
      EXPECT_EQ(shard.B, 8 / parts);
      tokens.insert(tokens.end(), shard.tokens.begin(), shard.tokens.end());
      targets.insert(targets.end(), shard.targets.begin(), shard.targets.end());
      mask.insert(mask.end(), shard.mask.begin(), shard.mask.end());
    }
    EXPECT_EQ(tokens, batch.tokens);
    EXPECT_EQ(targets, batch.targets);
    EXPECT_EQ(mask, batch.mask);
  }
}

// With dropout in attention: the masks follow the batch-wide sequence index, so the sum matches to float rounding.
TEST(MicroBatches, GradientsSumToTheWholeBatchsGradient) {
  const Batch batch = TaskBatch(8, 32);
  for (int parts : {2, 4}) {
    float whole_loss = 0, summed_loss = 0;
    const auto [whole, summed] = WholeAndSummed(Config("softmax", "mlp"), batch, parts, &whole_loss, &summed_loss);
    EXPECT_NEAR(summed_loss, whole_loss, 1e-5f * std::abs(whole_loss));
    double max_abs = 0, max_diff = 0;
    for (size_t i = 0; i < whole.size(); ++i) {
      max_abs = std::max(max_abs, double(std::abs(whole[i])));
      max_diff = std::max(max_diff, double(std::abs(whole[i] - summed[i])));
    }
    EXPECT_GT(max_abs, 1e-3);
    EXPECT_LT(max_diff, 1e-5 * max_abs) << parts << " micro-batches";
  }
}

// MoE's load-balancing and z losses are per micro-batch, weighted by its share: the total auxiliary loss stays on the
// scale of the whole batch's (not parts times it), while it is not the same function of the batch.
TEST(MicroBatches, MoeAuxiliaryLossesAreWeightedByTheMicroBatchsShare) {
  const Batch batch = TaskBatch(8, 32);
  LanguageModel model(Config("softmax", "moe"));
  model.Initialize(5);
  model.Forward(batch.tokens.data(), batch.B, batch.T, ForwardMode{true, 1, 0});
  model.Loss(batch.targets.data(), batch.mask.data());
  const float whole_aux = model.last_aux_loss();
  float summed_aux = 0;
  for (int k = 0; k < 4; ++k) {
    const Batch micro = batch.Sequences(2 * k, 2);
    ForwardMode mode{true, 1, 0};
    mode.first_sequence = 2 * k;
    mode.aux_weight = 0.25f;
    model.Forward(micro.tokens.data(), micro.B, micro.T, mode);
    model.Loss(micro.targets.data(), micro.mask.data(), MaskTotal(batch.mask.data(), int64_t(batch.mask.size())));
    summed_aux += model.last_aux_loss();
  }
  EXPECT_GT(whole_aux, 0);
  EXPECT_NEAR(summed_aux, whole_aux, 0.5f * whole_aux);
}

}  // namespace
}  // namespace mixlab::testing
