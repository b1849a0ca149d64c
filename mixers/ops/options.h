// Options are plain structs that list each field once through a visitor (gemma.cpp's argument style).
// The same list yields defaults, --help text, flag parsing with range checks, JSON configs and the
// resolved config saved with every run, so no option is parsed by hand in two places.
//
//   struct MyOptions : Options {
//     int n_heads = 4;
//     void Visit(OptionVisitor& v) override { v.Int("n-heads", n_heads, "attention heads", 1, 256); }
//   };
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mixers/ops/usage_error.h"

namespace mixlab {

using OptionMap = std::map<std::string, std::string>;

class OptionVisitor {
 public:
  virtual ~OptionVisitor() = default;
  virtual void Int(const char* name, int& value, const char* help, int lo, int hi) = 0;
  virtual void Float(const char* name, float& value, const char* help, float lo, float hi) = 0;
  virtual void Bool(const char* name, bool& value, const char* help) = 0;
  virtual void Choice(const char* name, std::string& value, const char* help,
                      const std::vector<std::string>& allowed) = 0;
  virtual void String(const char* name, std::string& value, const char* help) = 0;
  virtual void IntList(const char* name, std::vector<int>& value, const char* help, int lo, int hi) = 0;
};

struct Options {
  virtual ~Options() = default;
  virtual void Visit(OptionVisitor& v) = 0;
};

// One field as the listing shows it.
struct OptionField {
  std::string name, type, value, help, allowed;
};

// Every field with its current value (a freshly constructed struct gives the defaults).
std::vector<OptionField> ListOptions(Options& options);
// Current values as strings, the form flags and JSON configs use.
std::map<std::string, std::string> OptionValues(Options& options);
// Sets fields from name -> string; throws UsageError naming `owner` ("--" for command-line flags), the field and what
// is allowed on an unknown name, an unparsable value or a value out of range.
void SetOptions(Options& options, const std::map<std::string, std::string>& values, const std::string& owner);

// Helpers shared by parsers.
// Splits "a,b,c" at `sep`; throws UsageError naming `what` (e.g. "--mixers") on an empty list or an empty item
// ("a,,b", ",", "a,").
std::vector<std::string> SplitList(const std::string& text, char sep, const std::string& what);
std::string JoinList(const std::vector<std::string>& items, const std::string& sep);

}  // namespace mixlab
