// The resolved architecture of a language model: every layer's mixers with all of their option values.
// It is built from the command line (ModelOptions plus per-mixer flags), saved as JSON in config.json and in
// every checkpoint, and is all that is needed to rebuild the model.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mixers/ops/options.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

struct LayerSpec {
  std::string mixer = "softmax";
  OptionMap mixer_options;
  std::string channel = "mlp";
  OptionMap channel_options;
};

// Flags of the skeleton. Mixer options are flags too: --softmax.n-heads 8 sets them for every softmax layer,
// and a layer list entry may override them for one layer: --layers softmax:n-heads=2,softmax.
struct ModelOptions : Options {
  int d_model = 64;
  int n_layers = 2;
  std::string mixer = "softmax";
  std::string layers;
  std::string channel = "mlp";
  std::string channels;
  std::string pos = "auto";
  std::string norm = "layernorm";
  std::string norm_position = "pre";
  bool tie_embeddings = true;
  int max_len = 2048;
  std::string init = "fan-in";
  void Visit(OptionVisitor& v) override;
};

struct ModelConfig {
  int vocab = 0;
  int d_model = 64;
  int max_len = 2048;
  std::string pos = "rope";        // none | learned | sinusoidal | rope | alibi
  std::string norm = "layernorm";  // layernorm | rmsnorm
  std::string norm_position = "pre";
  bool tie_embeddings = true;
  std::string init = "fan-in";  // fan-in | gpt2 (see InputStd in mixers/mixer.h)
  // lm: next-token logits at every position; compression: MAD's decoder reconstructs the sequence from the last
  // position (set by the task, not a flag).
  std::string head = "lm";
  std::vector<LayerSpec> layers;

  nlohmann::json ToJson() const;
  static ModelConfig FromJson(const nlohmann::json& j);  // throws UsageError on a malformed config
  std::string Summary() const;                           // e.g. "softmax+mlp x2, d64, rope"
};

// Resolves options and per-mixer flags (mixer name -> option map) into a full config; validates every
// mixer option against its registry entry. vocab comes from the task.
ModelConfig ResolveModelConfig(ModelOptions& options, const std::map<std::string, OptionMap>& mixer_flags, int vocab);

// The positional encoding a sequence mixer applies itself (rope, alibi, t5: inside its scores), else "none" (absolute
// encodings live in the skeleton).
std::string MixerPosition(const std::string& pos);

}  // namespace mixlab
