#include "experiments/run_spec.h"

#include "mixers/tensor.h"

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
    if (i == 0 || model.layers[i].mixer != model.layers[i - 1].mixer) mixers += (mixers.empty() ? "" : "+") + model.layers[i].mixer;
  return train.task + "-" + mixers + "-" + model.pos + "-s" + std::to_string(train.seed);
}

}  // namespace mixlab
