// Named `mixlab compare` configurations that reproduce published experiments at a scale a 2-core machine
// finishes. A preset is a set of flag values applied first; --config and command-line flags override it.
#pragma once
#include <string>
#include <vector>

#include "mixers/ops/options.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

struct Preset {
  std::string name;
  std::string reproduces;  // the experiment and what the paper reported
  std::string scale;       // how the preset departs from the paper to fit a CPU budget
  OptionMap flags;         // flag (without --) -> value
};

const std::vector<Preset>& Presets();
const Preset& FindPreset(const std::string& name);  // throws UsageError listing the presets

}  // namespace mixlab
