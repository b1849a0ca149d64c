// The skeleton: whole-model gradients (every positional encoding, pre/post norm, LayerNorm/RMSNorm, tied and
// untied heads, MAD's compression decoder), incremental decoding == forward, overfitting one batch, determinism and
// checkpoints.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "experiments/cli/run_builder.h"
#include "experiments/run/trainer.h"
#include "experiments/tasks/task.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/usage_error.h"
#include "models/adamw.h"
#include "models/checkpoint.h"
#include "models/language_model.h"
#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

ModelConfig SmallConfig(const std::string& pos = "rope", const std::string& norm = "layernorm",
                        const std::string& norm_position = "pre", bool tie = true, const std::string& channel = "mlp",
                        const std::string& head = "lm") {
  ModelOptions o;
  o.d_model = 16;
  o.n_layers = 2;
  o.pos = pos;
  o.norm = norm;
  o.norm_position = norm_position;
  o.tie_embeddings = tie;
  o.channel = channel;
  o.max_len = 64;
  ModelConfig config = ResolveModelConfig(o, {{"softmax", {{"n-heads", "2"}}}}, 11);
  config.head = head;
  return config;
}

ModelConfig RwkvConfig() {
  ModelOptions o;
  o.d_model = 16;
  o.n_layers = 2;
  o.pos = "none";
  o.mixer = "rwkv";
  o.channel = "rwkv-ffn";
  o.max_len = 64;
  return ResolveModelConfig(o, {}, 11);
}

struct ModelCase {
  std::string label;
  ModelConfig config;
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.label; }

class WholeModel : public ::testing::TestWithParam<ModelCase> {};

TEST_P(WholeModel, GradientMatchesFiniteDifferences) {
  LanguageModel model(GetParam().config);
  model.Initialize(3);
  // Larger init so every path carries signal at this tiny size, and embeddings of unit scale: at the default
  // std 0.02 the LayerNorm right after them is so steep that a float32 central difference is meaningless.
  for (const auto& p : model.params().params()) {
    const float scale = p.name.find("embedding") != std::string::npos ? 50.0f : 1.5f;
    for (int64_t i = 0; i < p.spec.Numel(); ++i) model.params().values()[p.offset + i] *= scale;
  }
  const int B = 2, T = 9;
  Rng rng(5);
  std::vector<int32_t> tokens(B * T), targets(B * T);
  std::vector<float> mask(B * T);
  for (int i = 0; i < B * T; ++i) {
    tokens[i] = int32_t(rng.Int(0, 11));
    targets[i] = int32_t(rng.Int(0, 11));
    mask[i] = rng.Uniform() < 0.7 ? 1.0f : 0.0f;
  }
  auto loss = [&] {
    model.Forward(tokens.data(), B, T);
    return double(model.Loss(targets.data(), mask.data()));
  };
  model.params().ZeroGrad();
  loss();
  model.Backward();
  for (const auto& p : model.params().params()) {
    ExpectGradientMatches(loss, model.params().values() + p.offset, model.params().grads() + p.offset, p.spec.Numel(),
                          12, 3e-3f, 5e-2, p.name, 9, 1e-3);
  }
}

TEST_P(WholeModel, StepDecodingEqualsForward) {
  LanguageModel model(GetParam().config);
  model.Initialize(4);
  const int B = 2, T = 7, V = model.vocab();
  Rng rng(6);
  std::vector<int32_t> tokens(B * T);
  for (auto& t : tokens) t = int32_t(rng.Int(0, V));
  model.Forward(tokens.data(), B, T);
  std::vector<float> full(model.logits(), model.logits() + B * T * V);
  auto state = model.NewDecodeState(B);
  std::vector<float> logits(B * V);
  if (GetParam().config.head == "compression") {  // decodes a whole sequence at once: step-wise decoding is refused
    int32_t tok[B] = {tokens[0], tokens[T]}, pos[B] = {0, 0};
    EXPECT_THROW(model.Step(tok, pos, B, logits.data(), *state), UsageError);
    return;
  }
  for (int t = 0; t < T; ++t) {
    int32_t tok[B] = {tokens[t], tokens[T + t]}, pos[B] = {t, t};
    model.Step(tok, pos, B, logits.data(), *state);
    for (int b = 0; b < B; ++b)
      EXPECT_LE(MaxAbsDiff(logits.data() + b * V, full.data() + (size_t(b) * T + t) * V, V), 1e-4f) << "t=" << t;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, WholeModel,
    ::testing::Values(
        ModelCase{"rope_pre", SmallConfig("rope")},
        ModelCase{"rope_pre_untied", SmallConfig("rope", "layernorm", "pre", false)},
        ModelCase{"rope_pre_swiglu", SmallConfig("rope", "layernorm", "pre", true, "swiglu")},
        ModelCase{"learned_post", SmallConfig("learned", "layernorm", "post")},
        ModelCase{"sinusoidal_untied_swiglu", SmallConfig("sinusoidal", "layernorm", "pre", false, "swiglu")},
        ModelCase{"none_post_rmsnorm", SmallConfig("none", "rmsnorm", "post")},
        ModelCase{"compression_decoder", SmallConfig("rope", "layernorm", "pre", true, "mlp", "compression")},
        ModelCase{"compression_decoder_post_rmsnorm",
                  SmallConfig("none", "rmsnorm", "post", true, "mlp", "compression")},
        // An RWKV-4 block: a channel mixer with a decoding state (token shift) in the channel slot.
        ModelCase{"rwkv_block", RwkvConfig()}),
    [](const auto& i) { return i.param.label; });

TEST(Model, OverfitsOneBatch) {
  LanguageModel model(SmallConfig());
  model.Initialize(1);
  AdamWConfig ac;
  ac.lr = 1e-2f;
  ac.warmup = 10;
  ac.total_steps = 300;
  ac.weight_decay = 0;
  AdamW opt(model.params(), ac);
  const int B = 4, T = 16;
  Rng rng(2);
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (int i = 0; i < B * T; ++i) tokens[i] = int32_t(rng.Int(0, 11)), targets[i] = int32_t(rng.Int(0, 11));
  std::vector<float> mask(B * T, 1.0f);
  float first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    model.params().ZeroGrad();
    model.Forward(tokens.data(), B, T);
    last = model.Loss(targets.data(), mask.data());
    if (step == 0) first = last;
    model.Backward();
    opt.Step(step);
  }
  EXPECT_GT(first, 2.0f);  // about log(11) at initialisation
  EXPECT_LT(last, 0.05f);  // memorised
}

TEST(Model, LearningRateSchedule) {
  ParamStore store;
  store.Add("w", {"w", {1}});
  store.Allocate();
  AdamWConfig ac;
  ac.lr = 1.0f;
  ac.warmup = 10;
  ac.total_steps = 110;
  ac.min_lr_ratio = 0.1f;
  AdamW opt(store, ac);
  EXPECT_FLOAT_EQ(opt.LearningRate(0), 0.1f);
  EXPECT_FLOAT_EQ(opt.LearningRate(9), 1.0f);
  EXPECT_NEAR(opt.LearningRate(60), 0.55f, 1e-5);
  EXPECT_NEAR(opt.LearningRate(110), 0.1f, 1e-6);
}

RunSpec TinyRun(const std::string& out, int steps = 30, const std::string& task = "mqar") {
  TrainOptions t;
  t.task = task;
  t.train_len = 32;
  t.eval_lens = {32};
  t.steps = steps;
  t.batch = 8;
  t.eval_every = 10;
  t.val_answers = t.test_answers = 32;
  t.out = out;
  ModelOptions m;
  m.d_model = 32;
  return BuildRunSpec(t, m, ParsedFlags{}, true);
}

std::vector<double> Losses(const std::string& metrics_path) {
  std::ifstream in(metrics_path);
  std::vector<double> out;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

TEST(Training, SameSeedGivesIdenticalLosses) {
  const auto dir = std::filesystem::temp_directory_path() / "mixlab_determinism";
  RunSpec a = TinyRun((dir / "a").string()), b = TinyRun((dir / "b").string());
  a.train.log_every = b.train.log_every = 1;
  Train(a, {.quiet = true});
  Train(b, {.quiet = true});
  const auto la = Losses((dir / "a" / "metrics.jsonl").string()), lb = Losses((dir / "b" / "metrics.jsonl").string());
  ASSERT_EQ(la.size(), 30u);
  EXPECT_EQ(la, lb);
  RunSpec c = TinyRun((dir / "c").string());
  c.train.seed = 1;
  c.train.log_every = 1;
  Train(c, {.quiet = true});
  EXPECT_NE(la, Losses((dir / "c" / "metrics.jsonl").string()));
}

// A run killed after its step-20 checkpoint and resumed ends bit-identical to one that was never interrupted:
// weights, AdamW moments, the step and the data stream all continue exactly.
TEST(Training, ResumeIsBitExact) {
  const auto dir = std::filesystem::temp_directory_path() / "mixlab_resume";
  std::filesystem::remove_all(dir);
  RunSpec whole = TinyRun((dir / "whole").string(), 40), cut = TinyRun((dir / "cut").string(), 40);
  whole.train.log_every = cut.train.log_every = 1;
  const TrainResult a = Train(whole, {.quiet = true});
  TrainHooks kill{.quiet = true, .after_step = [](LanguageModel&, int step) {
                    if (step == 25) throw std::runtime_error("killed");
                  }};
  EXPECT_THROW(Train(cut, kill), std::runtime_error);
  const TrainResult b = Train(cut, {.quiet = true, .resume = true});
  EXPECT_EQ(b.resumed_from, 20);
  auto wa = LoadCheckpoint((dir / "whole" / "model.safetensors").string());
  auto wb = LoadCheckpoint((dir / "cut" / "model.safetensors").string());
  ASSERT_EQ(wa->params().size(), wb->params().size());
  EXPECT_EQ(std::memcmp(wa->params().values(), wb->params().values(), sizeof(float) * wa->params().size()), 0);
  EXPECT_EQ(a.test[0].loss, b.test[0].loss);
  EXPECT_EQ(Losses((dir / "whole" / "metrics.jsonl").string()), Losses((dir / "cut" / "metrics.jsonl").string()))
      << "the resumed run's metrics must continue, not repeat, the interrupted one's";

  RunSpec changed = TinyRun((dir / "cut").string(), 40);
  changed.train.log_every = 1;
  changed.train.lr = 1e-3f;
  EXPECT_THROW(Train(changed, {.quiet = true, .resume = true}), UsageError) << "resuming under another config";
}

TEST(Training, EvalSweepTestsEachTaskOptionValue) {
  const auto dir = std::filesystem::temp_directory_path() / "mixlab_sweep";
  RunSpec spec = TinyRun(dir.string(), 2, "passkey");
  spec.train.eval_sweep = "passkey.depth=0,0.5,1";
  const TrainResult r = Train(spec, {.quiet = true});
  ASSERT_EQ(r.sweep.size(), 3u);
  EXPECT_EQ(r.sweep[1].first, "depth=0.5");
  EXPECT_EQ(r.sweep[1].second.size(), spec.train.eval_lens.size());
  for (const std::string bad : {"passkey.no-such=1", "mqar.pairs=2", "passkey.depth=7"}) {
    spec.train.eval_sweep = bad;
    EXPECT_THROW(ValidateRun(spec, *MakeTask("passkey", spec.task_options)), UsageError) << bad;
  }
}

TEST(Training, StopsOnNonFiniteLossNamingStepAndTensorAndKeepsLastGoodCheckpoint) {
  const auto dir = std::filesystem::temp_directory_path() / "mixlab_nan";
  std::filesystem::remove_all(dir);
  RunSpec spec = TinyRun(dir.string(), 30);
  spec.train.eval_every = 5;
  TrainHooks hooks{.quiet = true, .after_step = [](LanguageModel& m, int step) {
                     if (step == 11) {  // after the 12th update: poison one weight
                       const int i = m.params().Find("layers.1.mixer.wq");
                       m.params().values()[m.params().params()[i].offset + 3] = std::nanf("");
                     }
                   }};
  const TrainResult r = Train(spec, hooks);
  EXPECT_TRUE(r.diverged);
  EXPECT_EQ(r.steps_done, 12);
  EXPECT_NE(r.divergence.find("step 12"), std::string::npos) << r.divergence;
  EXPECT_NE(r.divergence.find("layers.1.mixer.wq"), std::string::npos) << r.divergence;
  const auto meta = ReadCheckpointMetadata((dir / "model.safetensors").string());
  EXPECT_EQ(meta.at("step"), "10");  // the last good one
  auto model = LoadCheckpoint((dir / "model.safetensors").string());
  for (int64_t i = 0; i < model->params().size(); ++i) ASSERT_TRUE(std::isfinite(model->params().values()[i]));
}

TEST(Checkpoint, RoundTripReproducesLogits) {
  const auto dir = std::filesystem::temp_directory_path() / "mixlab_ckpt";
  RunSpec spec = TinyRun(dir.string(), 10);
  Train(spec, {.quiet = true});
  const std::string path = (dir / "model.safetensors").string();
  auto model = LoadCheckpoint(path);
  LanguageModel fresh(spec.model);
  fresh.Initialize(99);
  LoadCheckpointInto(path, fresh);
  std::vector<int32_t> tokens(32);
  for (int i = 0; i < 32; ++i) tokens[i] = i % 7 + 1;
  model->Forward(tokens.data(), 1, 32);
  fresh.Forward(tokens.data(), 1, 32);
  EXPECT_EQ(MaxAbsDiff(model->logits(), fresh.logits(), 32 * model->vocab()), 0.0f);
  EXPECT_EQ(ReadCheckpointMetadata(path).count("run"), 1u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

std::string RefusalOf(const std::string& path) {
  try {
    LoadCheckpoint(path);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Checkpoint, RefusesMissingCorruptTruncatedAndMismatched) {
  const auto dir = std::filesystem::temp_directory_path() / "mixlab_ckpt_bad";
  RunSpec spec = TinyRun(dir.string(), 5);
  Train(spec, {.quiet = true});
  const std::string good = (dir / "model.safetensors").string();
  EXPECT_NE(RefusalOf((dir / "missing.safetensors").string()).find("not found"), std::string::npos);

  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& name, const std::string& content) {
    const std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  };
  std::string flipped = bytes;
  flipped[flipped.size() - 5] ^= 0x40;
  EXPECT_NE(RefusalOf(write("flipped.safetensors", flipped)).find("checksum"), std::string::npos);
  EXPECT_NE(RefusalOf(write("truncated.safetensors", bytes.substr(0, bytes.size() - 100))).find("refused"),
            std::string::npos);
  EXPECT_NE(RefusalOf(write("tiny.safetensors", "abc")).find("truncated"), std::string::npos);
  EXPECT_NE(RefusalOf(write("garbage.safetensors", std::string(8, '\x10') + std::string(64, 'x'))).find("refused"),
            std::string::npos);

  ModelOptions other;
  other.d_model = 48;
  LanguageModel mismatched(ResolveModelConfig(other, {}, 256));
  try {
    LoadCheckpointInto(good, mismatched);
    ADD_FAILURE() << "a checkpoint of another shape was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixlab::testing
