// Parsing JSON that comes from outside the program (--config files, checkpoint headers and their metadata): a
// nesting bound checked before parsing, so a hostile file cannot exhaust the stack of code that walks the result,
// and one-line UsageErrors instead of library exceptions.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "mixers/ops/usage_error.h"

namespace mixlab {

constexpr int kMaxJsonDepth = 64;

// Parses `text`; throws UsageError "<what> is not valid JSON (...)" or "<what> nests deeper than 64 levels".
nlohmann::json ParseJsonText(const std::string& text, const std::string& what);

}  // namespace mixlab
