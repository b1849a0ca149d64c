#include "models/model_config.h"

#include <algorithm>

#include "mixers/ops/usage_error.h"
#include "mixers/registry.h"

namespace mixlab {

constexpr int kMaxVocab = 1 << 24;

void ModelOptions::Visit(OptionVisitor& v) {
  v.Int("d-model", d_model, "residual stream width", 1, 8192);
  v.Int("n-layers", n_layers, "number of blocks (when --layers is not given)", 1, 256);
  v.String("mixer", mixer, "sequence mixer of every layer (see `mixlab list`)");
  v.String("layers", layers,
           "one sequence mixer per layer, comma-separated, each NAME[:opt=value:...]; overrides --mixer/--n-layers");
  v.String("channel", channel, "channel mixer of every layer: mlp | swiglu | none | ...");
  v.String("channels", channels, "one channel mixer per layer, comma-separated, each NAME[:opt=value:...]");
  v.Choice("pos", pos,
           "positional encoding: absolute in the skeleton (learned, sinusoidal) or inside the mixer (rope, alibi, t5: "
           "T5's learned relative bias); "
           "auto = rope where "
           "every layer's mixer applies it, else none",
           {"auto", "none", "learned", "sinusoidal", "rope", "alibi", "t5"});
  v.Choice("norm", norm, "normalisation layer", {"layernorm", "rmsnorm"});
  v.Choice("norm-position", norm_position, "pre-norm x + f(norm(x)) or post-norm norm(x + f(x))", {"pre", "post"});
  v.Bool("tie-embeddings", tie_embeddings, "LM head shares the token embedding");
  v.Int("max-len", max_len, "largest position for --pos learned", 1, 1 << 24);
  v.Choice("init", init,
           "weight init: fan-in N(0, 1/fan_in) or gpt2 N(0, 0.02^2); residual outputs / sqrt(2 n_layers); embeddings "
           "N(0, 0.02^2)",
           {"fan-in", "gpt2"});
}

namespace {

// "softmax:n-heads=2:dropout=0.1" -> name and options
std::pair<std::string, OptionMap> ParseLayerEntry(const std::string& entry, const std::string& flag) {
  auto parts = SplitList(entry, ':', "--" + flag + " entry");
  OptionMap opts;
  for (size_t i = 1; i < parts.size(); ++i) {
    auto eq = parts[i].find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError("malformed --" + flag + " entry '" + entry + "'; expected NAME[:option=value...]");
    opts[parts[i].substr(0, eq)] = parts[i].substr(eq + 1);
  }
  return {parts[0], opts};
}

std::vector<std::pair<std::string, OptionMap>> ParseLayerList(const std::string& list, const std::string& single,
                                                              int n_layers, const std::string& flag) {
  std::vector<std::pair<std::string, OptionMap>> out;
  if (list.empty()) {
    for (int i = 0; i < n_layers; ++i) out.push_back(ParseLayerEntry(single, flag));
  } else {
    for (const auto& e : SplitList(list, ',', "--" + flag)) out.push_back(ParseLayerEntry(e, flag));
  }
  return out;
}

// Fills every option of the mixer (defaults, then --name.opt flags, then the per-layer ones) and checks them
// by building the mixer once.
OptionMap ResolveMixerOptions(const std::string& name, MixerKind kind, const OptionMap& layer_opts,
                              const std::map<std::string, OptionMap>& mixer_flags, const ModelConfig& cfg) {
  const MixerInfo& info = FindMixer(name, kind);
  auto options = info.make_options();
  auto it = mixer_flags.find(name);
  if (it != mixer_flags.end()) SetOptions(*options, it->second, "mixer '" + name + "'");
  SetOptions(*options, layer_opts, "mixer '" + name + "'");
  OptionMap resolved = OptionValues(*options);
  MixerDims dims{cfg.d_model, 1, 0, MixerPosition(cfg.pos), cfg.init};
  MakeMixer(name, kind, dims, resolved);  // throws on a combination the mixer refuses
  return resolved;
}

}  // namespace

ModelConfig ResolveModelConfig(ModelOptions& o, const std::map<std::string, OptionMap>& mixer_flags, int vocab) {
  ModelConfig cfg;
  cfg.vocab = vocab;
  cfg.d_model = o.d_model;
  cfg.max_len = o.max_len;
  cfg.pos = o.pos;
  cfg.norm = o.norm;
  cfg.norm_position = o.norm_position;
  cfg.tie_embeddings = o.tie_embeddings;
  cfg.init = o.init;
  auto seq = ParseLayerList(o.layers, o.mixer, o.n_layers, "layers");
  if (cfg.pos == "auto") {  // rope where every layer's mixer applies it (as compare's --positions auto), else none
    cfg.pos = "rope";
    for (const auto& [name, _] : seq) {
      const auto& supported = FindMixer(name, MixerKind::kSequence).supported_pos;
      if (std::find(supported.begin(), supported.end(), "rope") == supported.end()) cfg.pos = "none";
    }
  }
  auto ch = ParseLayerList(o.channels, o.channel, int(seq.size()), "channels");
  if (ch.size() == 1 && seq.size() > 1) ch.assign(seq.size(), ch[0]);
  if (ch.size() != seq.size())
    throw UsageError("--channels names " + std::to_string(ch.size()) + " layers but the model has " +
                     std::to_string(seq.size()));
  for (const auto& [name, _] : mixer_flags) {
    bool known = false;
    for (auto kind : {MixerKind::kSequence, MixerKind::kChannel})
      for (const auto& m : ListMixers(kind)) known |= m == name;
    if (!known) FindMixer(name, MixerKind::kSequence);  // throws with the list of known mixers
  }
  for (size_t i = 0; i < seq.size(); ++i) {
    LayerSpec l;
    l.mixer = seq[i].first;
    l.channel = ch[i].first;
    l.mixer_options = ResolveMixerOptions(l.mixer, MixerKind::kSequence, seq[i].second, mixer_flags, cfg);
    l.channel_options = ResolveMixerOptions(l.channel, MixerKind::kChannel, ch[i].second, mixer_flags, cfg);
    cfg.layers.push_back(l);
  }
  return cfg;
}

nlohmann::json ModelConfig::ToJson() const {
  nlohmann::json layers_json = nlohmann::json::array();
  for (const auto& l : layers)
    layers_json.push_back({{"mixer", l.mixer},
                           {"mixer_options", l.mixer_options},
                           {"channel", l.channel},
                           {"channel_options", l.channel_options}});
  return {{"vocab", vocab},
          {"d_model", d_model},
          {"max_len", max_len},
          {"pos", pos},
          {"norm", norm},
          {"norm_position", norm_position},
          {"tie_embeddings", tie_embeddings},
          {"init", init},
          {"head", head},
          {"layers", layers_json}};
}

ModelConfig ModelConfig::FromJson(const nlohmann::json& j) {
  try {
    ModelConfig c;
    c.vocab = j.at("vocab").get<int>();
    c.d_model = j.at("d_model").get<int>();
    c.max_len = j.at("max_len").get<int>();
    c.pos = j.at("pos").get<std::string>();
    c.norm = j.at("norm").get<std::string>();
    c.norm_position = j.at("norm_position").get<std::string>();
    c.tie_embeddings = j.at("tie_embeddings").get<bool>();
    c.init = j.at("init").get<std::string>();
    c.head = j.value("head", std::string("lm"));  // absent in checkpoints from before the compression task
    if (c.head != "lm" && c.head != "compression")
      throw UsageError("model config: unknown head '" + c.head + "'; allowed: lm, compression");
    for (const auto& l : j.at("layers")) {
      LayerSpec s;
      s.mixer = l.at("mixer").get<std::string>();
      s.channel = l.at("channel").get<std::string>();
      s.mixer_options = l.at("mixer_options").get<OptionMap>();
      s.channel_options = l.at("channel_options").get<OptionMap>();
      c.layers.push_back(s);
    }
    if (c.vocab < 1 || c.vocab > kMaxVocab)
      throw UsageError("model config: vocab " + std::to_string(c.vocab) + " is outside [1, " +
                       std::to_string(kMaxVocab) + "]");
    if (c.layers.empty()) throw UsageError("model config has no layers");
    if (c.pos == "auto") throw UsageError("model config: pos 'auto' was never resolved to an encoding");
    // The skeleton's fields pass the same checks as the flags that set them (mixer options are checked when built).
    ModelOptions skeleton;
    SetOptions(skeleton,
               {{"d-model", std::to_string(c.d_model)},
                {"max-len", std::to_string(c.max_len)},
                {"pos", c.pos},
                {"norm", c.norm},
                {"norm-position", c.norm_position},
                {"init", c.init}},
               "model config");
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(std::string("malformed model config: ") + e.what());
  }
}

std::string ModelConfig::Summary() const {
  std::string s;
  for (size_t i = 0; i < layers.size(); ++i) s += (i ? "," : "") + layers[i].mixer;
  return s + " +" + layers[0].channel + " d" + std::to_string(d_model) + " " + pos + (head == "lm" ? "" : " " + head);
}

std::string MixerPosition(const std::string& pos) {
  return pos == "rope" || pos == "alibi" || pos == "t5" ? pos : "none";
}

}  // namespace mixlab
