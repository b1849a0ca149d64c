// mixlab generate: decode from a checkpoint with any strategy, printing the continuation and, per step, the model's
// entropy, top-1 probability and nucleus size.

#include <cstdio>

#include "experiments/analysis/decoding.h"
#include "experiments/cli/commands.h"
#include "experiments/cli/flags.h"
#include "experiments/cli/run_builder.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

namespace {

struct GenerateOptions : Options {
  std::string checkpoint, prompt;
  std::vector<int> prompt_tokens;
  int tokens = 32, top_k = 0, no_repeat_ngram = 0, beam_width = 0, seed = 0, threads = 1;
  float temperature = 0, top_p = 1, repetition_penalty = 1, length_alpha = 0;
  void Visit(OptionVisitor& v) override {
    v.String("checkpoint", checkpoint, "RUN/model.safetensors (also accepted as the first argument)");
    v.String("prompt", prompt, "prompt text, one token per byte (byte-level models: vocabulary >= 256)");
    v.IntList("prompt-tokens", prompt_tokens, "prompt as token ids, comma-separated (any model)", 0, 1 << 30);
    v.Int("tokens", tokens, "tokens to generate", 1, 1 << 20);
    v.Float("temperature", temperature, "sampling temperature; 0 = greedy", 0.0f, 100.0f);
    v.Int("top-k", top_k, "sample among the k most likely tokens; 0 = off", 0, 1 << 30);
    v.Float("top-p", top_p, "sample among the smallest set with mass >= p; 1 = off", 0.0f, 1.0f);
    v.Float("repetition-penalty", repetition_penalty,
            "divide positive (multiply negative) logits of tokens already present", 1.0f, 100.0f);
    v.Int("no-repeat-ngram", no_repeat_ngram, "never complete an n-gram that already occurred; 0 = off", 0, 1 << 16);
    v.Int("beam-width", beam_width, "beam search with this many beams; 0 = off (greedy or sampling)", 0, 1 << 12);
    v.Float("length-alpha", length_alpha, "beam score = log p / length^alpha", 0.0f, 10.0f);
    v.Int("seed", seed, "sampling seed", 0, 1 << 30);
    v.Int("threads", threads, "OpenMP threads", 1, 1024);
  }
};

}  // namespace

int GenerateCommand(int argc, char** argv) {
  GenerateOptions o;
  if (!ParseCheckpointCommand("generate",
                              "Decode from a checkpoint: greedy, sampling (temperature, top-k, top-p), beam search.",
                              "decoding", argc, argv, o, o.checkpoint, &o.threads))
    return 0;
  LoadedRun run = LoadRun(o.checkpoint);
  LanguageModel& model = *run.model;
  const int V = model.vocab();
  const std::vector<int32_t> prompt = TokensFromFlags(o.prompt, o.prompt_tokens, V, "prompt");
  if (prompt.empty()) throw UsageError("the prompt is empty: give --prompt TEXT or --prompt-tokens ID,ID,...");
  CheckFitsLearnedPositions(run.spec.model, int(prompt.size()) + o.tokens, "prompt + --tokens");
  DecodeSettings s{.temperature = o.temperature,
                   .top_k = o.top_k,
                   .top_p = o.top_p,
                   .repetition_penalty = o.repetition_penalty,
                   .no_repeat_ngram = o.no_repeat_ngram,
                   .beam_width = o.beam_width,
                   .length_alpha = o.length_alpha,
                   .seed = uint64_t(o.seed)};
  const auto steps = Generate(model, prompt, o.tokens, s);
  const bool bytes = V >= 256;
  auto show = [&](int32_t t) {
    if (!bytes) return std::to_string(t) + " ";
    return (t >= 32 && t < 127) || t == '\n' ? std::string(1, char(t)) : "\\x" + std::to_string(t);
  };
  std::string text;
  for (int32_t t : prompt) text += show(t);
  text += bytes ? "|" : "| ";
  for (const auto& d : steps) text += show(d.token);
  std::printf("%s\n\nstep  token  entropy  top1   nucleus\n", text.c_str());
  for (size_t i = 0; i < steps.size(); ++i)
    std::printf("%4zu  %5d  %7.3f  %.3f  %7d\n", i, steps[i].token, steps[i].entropy, steps[i].top1_prob,
                steps[i].nucleus_size);
  return 0;
}

}  // namespace mixlab
