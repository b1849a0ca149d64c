#include "models/json_text.h"

#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

// Deepest nesting of [ and { outside strings.
int NestingDepth(const std::string& text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

nlohmann::json ParseJsonText(const std::string& text, const std::string& what) {
  if (NestingDepth(text) > kMaxJsonDepth)
    throw UsageError(what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    std::string why = e.what();
    if (auto colon = why.rfind(": "); colon != std::string::npos) why = why.substr(colon + 2);
    throw UsageError(what + " is not valid JSON (" + why + ")");
  }
}

}  // namespace mixlab
