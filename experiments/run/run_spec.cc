#include "experiments/run/run_spec.h"

#include <cstdio>

#include "mixers/ops/usage_error.h"

namespace mixlab {

nlohmann::json RunSpec::ToJson() {
  return {{"train", OptionValues(train)}, {"task_options", task_options}, {"model", model.ToJson()}};
}

RunSpec RunSpec::FromJson(const nlohmann::json& j) {
  RunSpec spec;
  try {
    SetOptions(spec.train, j.at("train").get<OptionMap>(), "run config 'train'");
    spec.task_options = j.at("task_options").get<OptionMap>();
    spec.model = ModelConfig::FromJson(j.at("model"));
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(std::string("malformed run config: ") + e.what());
  }
  return spec;
}

std::string RunSpec::DefaultRunName() const {
  std::string mixers;
  for (size_t i = 0; i < model.layers.size(); ++i)
    if (i == 0 || model.layers[i].mixer != model.layers[i - 1].mixer)
      mixers += (mixers.empty() ? "" : "+") + model.layers[i].mixer;
  return train.task + "-" + mixers + "-" + model.pos + "-s" + std::to_string(train.seed) + "-" + ConfigId();
}

std::string RunSpec::ConfigId() const {
  RunSpec copy = *this;
  copy.train.out.clear();
  nlohmann::json hashed = copy.ToJson();
  // Options added after run directories existed are hashed only away from the value every earlier run had, so a
  // compare directory from before them keeps its run ids (and skips its finished runs) instead of retraining.
  if (train.grad_accum == 1) hashed["train"].erase("grad-accum");
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : hashed.dump()) h = (h ^ c) * 0x100000001b3ULL;
  char id[9];
  std::snprintf(id, sizeof id, "%08x", unsigned(h ^ (h >> 32)));
  return id;
}

}  // namespace mixlab
