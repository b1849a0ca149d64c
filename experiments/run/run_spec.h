// Everything that defines one training run: trainer options, the task with its options, and the resolved
// model config. Saved as config.json in the run directory and in the checkpoint metadata ("run").
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mixers/ops/usage_error.h"
#include "models/model_config.h"

namespace mixlab {

struct TrainOptions : Options {
  std::string task = "mqar";
  int train_len = 64;
  std::vector<int> eval_lens = {64, 128, 256};
  int steps = 1000;
  int batch = 32;
  int grad_accum = 1;
  float lr = 3e-3f;
  int warmup = 50;
  float weight_decay = 0.1f;
  float clip = 1.0f;
  float beta2 = 0.95f;
  float min_lr_ratio = 0.1f;
  int eval_every = 250;
  int snapshot_every = 0;
  int val_answers = 256;
  int test_answers = 2000;
  int log_every = 50;
  int seed = 0;
  int threads = 2;
  std::string eval_sweep;
  std::string out;
  void Visit(OptionVisitor& v) override {
    v.String("task", task, "task to train on (see `mixlab list`)");
    v.Int("train-len", train_len, "training sequence length", 2, 1 << 24);
    v.IntList("eval-lens", eval_lens, "evaluation sequence lengths, comma-separated", 2, 1 << 24);
    v.Int("steps", steps, "optimizer steps", 1, 100000000);
    v.Int("batch", batch, "sequences per step (over all ranks under mpirun)", 1, 1 << 20);
    v.Int("grad-accum", grad_accum,
          "micro-batches per step and rank, their gradients summed in a fixed order (--batch must divide by ranks x "
          "grad-accum)",
          1, 1 << 20);
    v.Float("lr", lr, "peak learning rate", 0.0f, 10.0f);
    v.Int("warmup", warmup, "linear warmup steps", 0, 100000000);
    v.Float("weight-decay", weight_decay, "AdamW decoupled weight decay (matrices only)", 0.0f, 10.0f);
    v.Float("clip", clip, "global gradient-norm clip; 0 = off", 0.0f, 1e9f);
    v.Float("beta2", beta2, "AdamW beta2", 0.0f, 0.99999f);
    v.Float("min-lr-ratio", min_lr_ratio, "cosine decay floor as a fraction of --lr", 0.0f, 1.0f);
    v.Int("eval-every", eval_every, "validation interval in steps (and checkpoint); 0 = only at the end", 0, 100000000);
    v.Int("snapshot-every", snapshot_every,
          "save RUN/snapshots/step_N.safetensors every N steps (and at step 0) for `mixlab analyze --over-training`; 0 "
          "= off",
          0, 100000000);
    v.Int("val-answers", val_answers,
          "scored answers per length in each validation (a fixed set of the validation split)", 1, 1 << 24);
    v.Int("test-answers", test_answers,
          "scored answers per length in the final test: a fixed set that `eval` and `analyze` score too", 1, 1 << 24);
    v.Int("log-every", log_every, "steps between metric lines", 1, 100000000);
    v.Int("seed", seed, "seed of initialisation, data and dropout", 0, 1 << 30);
    v.Int("threads", threads, "OpenMP threads", 1, 1024);
    v.String("eval-sweep", eval_sweep,
             "after training, test every eval length for each value of one task option, e.g. passkey.depth=0,0.5,1");
    v.String("out", out, "run directory; empty = runs/<task>-<mixers>-<pos>-s<seed>-<hash of the config>");
  }
};

struct RunSpec {
  TrainOptions train;
  OptionMap task_options;  // resolved, all fields
  ModelConfig model;

  nlohmann::json ToJson();
  static RunSpec FromJson(const nlohmann::json& j);  // throws UsageError on a malformed spec
  // A saved config as this version writes it: options an older mixlab did not know take their defaults (the
  // behaviour it had), so comparing configs across versions sees only real changes.
  static nlohmann::json Canonical(const nlohmann::json& saved) { return FromJson(saved).ToJson(); }
  std::string DefaultRunName() const;  // runs/<task>-<mixers>-<pos>-s<seed>-<config id>
  // 8 hex digits of an FNV-1a hash of the whole config except the output path: distinct configs, distinct directories.
  std::string ConfigId() const;
};

}  // namespace mixlab
