#include "experiments/run/run_resume.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "mixers/ops/options.h"
#include "mixers/ops/usage_error.h"
#include "models/file_io.h"

namespace mixlab {

MetricsSoFar ReadMetrics(const std::string& path, int step, int train_len) {
  std::ifstream in(path);
  MetricsSoFar m;
  const std::string key = std::to_string(train_len);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer() || j["step"].get<int>() > step)
      continue;
    m.lines.push_back(line);
    if (!j.contains("validation") || !j["validation"].is_object()) continue;
    m.has_validation = true;
    if (m.steps_to_99 < 0 && j["validation"].contains(key) && j["validation"][key].value("accuracy", 0.0) >= 0.99)
      m.steps_to_99 = j["step"];
  }
  return m;
}

std::string ExactDouble(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

double ParseDouble(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file) {
  const auto it = meta.find(key);
  char* end = nullptr;
  const double x = it == meta.end() ? 0 : std::strtod(it->second.c_str(), &end);
  if (it == meta.end() || it->second.empty() || *end != '\0')
    throw UsageError("cannot resume from '" + file + "': metadata '" + key + "' is missing or not a number");
  return x;
}

int ParseStep(const std::map<std::string, std::string>& meta, const std::string& file) {
  const double step = ParseDouble(meta, "step", file);
  if (step < 0 || step > 1e9 || step != std::floor(step))
    throw UsageError("cannot resume from '" + file + "': impossible step");
  return int(step);
}

namespace {

// Training settings a resume may change: none alters the computation up to the checkpoint. (--steps stretches the
// learning-rate schedule from the checkpoint on; --threads and --grad-accum change float rounding, so bit-exactness
// needs the same counts.)
const std::set<std::string> kResumableSettings = {"steps",       "eval-lens",    "out",       "threads",
                                                  "eval-every",  "grad-accum",   "log-every", "snapshot-every",
                                                  "val-answers", "test-answers", "eval-sweep"};

// "train.lr" -> value, for every leaf of a run config.
void Flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
  if (j.is_object())
    for (const auto& [k, v] : j.items()) Flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  else out[prefix] = j;
}

}  // namespace

void CheckResumable(const nlohmann::json& saved, const nlohmann::json& now, int step, const std::string& run_dir) {
  std::map<std::string, nlohmann::json> a, b;
  Flatten(saved, "", a);
  Flatten(now, "", b);
  std::vector<std::string> refused, noted;
  for (const auto& [key, value] : b) {
    const auto it = a.find(key);
    if (it != a.end() && it->second == value) continue;
    const std::string setting = key.rfind("train.", 0) == 0 ? key.substr(6) : key;
    const auto text = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
    const std::string change = (key.rfind("train.", 0) == 0 ? "--" + setting : setting) + " " +
                               (it == a.end() ? std::string("(new)") : text(it->second)) + " -> " + text(value);
    (kResumableSettings.count(setting) ? noted : refused).push_back(change);
  }
  for (const auto& [key, value] : a)
    if (!b.count(key)) refused.push_back(key + " " + value.dump() + " -> (absent)");
  if (!refused.empty())
    throw UsageError("cannot resume run '" + run_dir + "' under changed settings: " + JoinList(refused, ", ") +
                     "; use another --out, or drop --resume to start over");
  for (const auto& change : noted)
    std::cerr << "mixlab: resuming " << run_dir << " from step " << step << " with " << change
              << (change.rfind("--steps", 0) == 0
                      ? " (the learning-rate schedule continues as if this many steps had been asked from the start)"
                  : change.rfind("--threads", 0) == 0 || change.rfind("--grad-accum", 0) == 0
                      ? " (float rounding follows the thread and micro-batch counts: bit-exact only with the old ones)"
                      : "")
              << "\n";
}

std::string OptimizerFile(const std::string& run_dir, int step) {
  return run_dir + "/optimizer-" + std::to_string(step) + ".safetensors";
}

void RemoveStaleFiles(const std::string& run_dir, int keep_step) {
  std::error_code ec;
  const std::string keep = "optimizer-" + std::to_string(keep_step) + ".safetensors";
  for (const auto& entry : std::filesystem::directory_iterator(run_dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool optimizer = name.rfind("optimizer", 0) == 0 && name != keep;
    if (optimizer || name.find(".tmp.") != std::string::npos) RemoveQuietly(entry.path().string());
  }
}

}  // namespace mixlab
