#include "mixers/ops/options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

std::string FormatFloat(float v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string FormatIntList(const std::vector<int>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out;
}

std::string Range(double lo, double hi) {
  std::ostringstream s;
  s << "[" << lo << ", " << hi << "]";
  return s.str();
}

class Lister : public OptionVisitor {
 public:
  std::vector<OptionField> fields;
  void Int(const char* n, int& v, const char* h, int lo, int hi) override {
    fields.push_back({n, "int", std::to_string(v), h, Range(lo, hi)});
  }
  void Float(const char* n, float& v, const char* h, float lo, float hi) override {
    fields.push_back({n, "float", FormatFloat(v), h, Range(lo, hi)});
  }
  void Bool(const char* n, bool& v, const char* h) override {
    fields.push_back({n, "bool", v ? "true" : "false", h, "true|false"});
  }
  void Choice(const char* n, std::string& v, const char* h, const std::vector<std::string>& a) override {
    fields.push_back({n, "choice", v, h, JoinList(a, "|")});
  }
  void String(const char* n, std::string& v, const char* h) override { fields.push_back({n, "string", v, h, ""}); }
  void IntList(const char* n, std::vector<int>& v, const char* h, int lo, int hi) override {
    fields.push_back({n, "int list", FormatIntList(v), h, "each in " + Range(lo, hi)});
  }
};

class Setter : public OptionVisitor {
 public:
  Setter(const std::map<std::string, std::string>& values, const std::string& owner) : values_(values), owner_(owner) {}

  void Int(const char* n, int& v, const char* h, int lo, int hi) override {
    if (auto* s = Find(n)) v = ParseInt(n, *s, lo, hi);
  }
  void Float(const char* n, float& v, const char* h, float lo, float hi) override {
    auto* s = Find(n);
    if (!s) return;
    char* end = nullptr;
    errno = 0;
    const double x = std::strtod(s->c_str(), &end);
    if (s->empty() || *end != '\0' || errno != 0 || !std::isfinite(x)) Fail(n, *s, "a number in " + Range(lo, hi));
    if (x < lo || x > hi) Fail(n, *s, "a number in " + Range(lo, hi));
    v = float(x);
  }
  void Bool(const char* n, bool& v, const char* h) override {
    auto* s = Find(n);
    if (!s) return;
    if (*s == "true" || *s == "1" || *s == "yes" || s->empty()) v = true;
    else if (*s == "false" || *s == "0" || *s == "no") v = false;
    else Fail(n, *s, "true or false");
  }
  void Choice(const char* n, std::string& v, const char* h, const std::vector<std::string>& a) override {
    auto* s = Find(n);
    if (!s) return;
    for (const auto& x : a)
      if (x == *s) {
        v = *s;
        return;
      }
    Fail(n, *s, "one of " + JoinList(a, ", "));
  }
  void String(const char* n, std::string& v, const char* h) override {
    if (auto* s = Find(n)) v = *s;
  }
  void IntList(const char* n, std::vector<int>& v, const char* h, int lo, int hi) override {
    auto* s = Find(n);
    if (!s) return;
    std::vector<int> out;
    for (const auto& item : SplitList(*s, ',', Label(n))) out.push_back(ParseInt(n, item, lo, hi));
    if (out.empty()) Fail(n, *s, "a comma-separated list of integers in " + Range(lo, hi));
    v = out;
  }

  void CheckAllUsed() const {
    for (const auto& [name, value] : values_)
      if (!used_.count(name))
        throw UsageError("unknown option " + Label(name) + "; allowed: " + JoinList(known_, ", "));
  }

 private:
  const std::string* Find(const char* n) {
    known_.push_back(n);
    auto it = values_.find(n);
    if (it == values_.end()) return nullptr;
    used_[n] = true;
    return &it->second;
  }
  int ParseInt(const char* n, const std::string& s, int lo, int hi) const {
    char* end = nullptr;
    errno = 0;
    const long x = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0 || x < lo || x > hi) Fail(n, s, "an integer in " + Range(lo, hi));
    return int(x);
  }
  [[noreturn]] void Fail(const char* n, const std::string& s, const std::string& allowed) const {
    throw UsageError("invalid value '" + s + "' for " + Label(n) + "; allowed: " + allowed);
  }
  // "--d-model" for command-line flags (owner "--" or "--softmax."), "mixer 'softmax' option 'n-heads'" otherwise.
  std::string Label(const std::string& n) const {
    return owner_.rfind("--", 0) == 0 ? owner_ + n : owner_ + " option '" + n + "'";
  }

  const std::map<std::string, std::string>& values_;
  std::string owner_;
  std::map<std::string, bool> used_;
  std::vector<std::string> known_;
};

}  // namespace

std::vector<OptionField> ListOptions(Options& options) {
  Lister lister;
  options.Visit(lister);
  return lister.fields;
}

std::map<std::string, std::string> OptionValues(Options& options) {
  std::map<std::string, std::string> out;
  for (const auto& f : ListOptions(options)) out[f.name] = f.value;
  return out;
}

void SetOptions(Options& options, const std::map<std::string, std::string>& values, const std::string& owner) {
  Setter setter(values, owner);
  options.Visit(setter);
  setter.CheckAllUsed();
}

std::vector<std::string> SplitList(const std::string& text, char sep, const std::string& what) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(sep, start);
    out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (out.back().empty())
      throw UsageError(what + " '" + text + "' has an empty item; expected items separated by '" + std::string(1, sep) +
                       "'");
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

std::string JoinList(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

}  // namespace mixlab
