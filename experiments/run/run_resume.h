// Resuming a run: the checkpoint pair's file names, exact numbers in checkpoint metadata, the metrics kept up to the
// checkpoint, and which changed settings a resume accepts (noted) or refuses (named).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mixers/ops/usage_error.h"

namespace mixlab {

// The metrics of a run up to its checkpoint's `step`, read back when resuming.
struct MetricsSoFar {
  std::vector<std::string> lines;  // the lines up to `step`, rewritten (what followed the checkpoint is dropped)
  bool has_validation = false;     // some line records a validation, i.e. a checkpoint was written
  int steps_to_99 = -1;            // first validation step with accuracy >= 0.99 at the training length
};
MetricsSoFar ReadMetrics(const std::string& path, int step, int train_len);

// "%.17g": a double that reads back bit-identical (resume restores the running loss sum exactly).
std::string ExactDouble(double x);
// A number or a step count from checkpoint metadata; throws UsageError naming the file when missing or malformed.
double ParseDouble(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file);
int ParseStep(const std::map<std::string, std::string>& meta, const std::string& file);

// Refuses a resume under a setting that changes the training computation, naming each (--lr 0.003 -> 0.001); notes
// on stderr the settings a resume may change (steps, evaluation lengths and sizes, intervals, out, threads).
void CheckResumable(const nlohmann::json& saved, const nlohmann::json& now, int step, const std::string& run_dir);

// The checkpoint pair: RUN/optimizer-STEP.safetensors belongs to the model checkpoint of STEP.
std::string OptimizerFile(const std::string& run_dir, int step);
// Removes optimizer files of other steps and temporaries a crash left behind.
void RemoveStaleFiles(const std::string& run_dir, int keep_step);

}  // namespace mixlab
