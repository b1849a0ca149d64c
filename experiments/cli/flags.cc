#include "experiments/cli/flags.h"

#include <boost/program_options.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"
#include "mixers/registry.h"
#include "models/file_io.h"
#include "models/json_text.h"

namespace po = boost::program_options;

namespace mixlab {
namespace {

constexpr int64_t kMaxConfigBytes = 16 << 20;

std::string FlagName(const FlagGroup& g, const std::string& field) {
  return g.prefix.empty() ? field : g.prefix + "." + field;
}

Options& Fields(FlagGroup& g) { return g.options ? *g.options : *g.prototype; }

std::string JsonToFlagValue(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + JsonToFlagValue(x);
    return s;
  }
  return v.dump();
}

}  // namespace

std::vector<FlagGroup> MixerFlagGroups() {
  std::vector<FlagGroup> groups;
  for (auto kind : {MixerKind::kSequence, MixerKind::kChannel})
    for (const auto& name : ListMixers(kind)) {
      const auto& info = FindMixer(name, kind);
      auto proto = info.make_options();
      if (ListOptions(*proto).empty()) continue;
      groups.push_back({(kind == MixerKind::kSequence ? "sequence mixer " : "channel mixer ") + name + ": " + info.help,
                        nullptr, name, std::move(proto)});
    }
  return groups;
}

std::vector<FlagGroup> TaskFlagGroups() {
  std::vector<FlagGroup> groups;
  for (const auto& name : ListTasks()) {
    const auto& info = FindTask(name);
    groups.push_back({"task " + name + ": " + info.help, nullptr, name, info.make_options()});
  }
  return groups;
}

ParsedFlags ParseFlags(const std::string& command, int argc, char** argv, std::vector<FlagGroup>& groups,
                       const OptionMap& base) {
  po::options_description desc;
  desc.add_options()("help,h", "")("config", po::value<std::string>(), "");
  std::map<std::string, std::pair<FlagGroup*, std::string>> owner;  // flag -> (group, field)
  for (auto& g : groups)
    for (const auto& f : ListOptions(Fields(g))) {
      const std::string flag = FlagName(g, f.name);
      auto* value = po::value<std::string>();
      if (f.type == "bool") value->implicit_value("true");
      desc.add_options()(flag.c_str(), value, "");
      owner[flag] = {&g, f.name};
    }
  // Boost.ProgramOptions fills its messages by replacing %placeholders%; a token that contains one makes that loop
  // forever (found by fuzz/flags_fuzz.cc). No flag or value needs such a pattern, so it is refused before parsing.
  for (int i = 1; i < argc; ++i) {
    const std::string token = argv[i];
    const auto open = token.find('%');
    if (open != std::string::npos && token.find('%', open + 1) != std::string::npos)
      throw UsageError("argument '" + token + "' contains two '%' signs, which no flag or value uses; see `mixlab " +
                       command + " --help`");
  }
  po::variables_map vm;
  try {
    namespace style = po::command_line_style;  // no abbreviated flags: a typo is an error, not a guess
    const po::parsed_options given =
        po::command_line_parser(argc, argv).options(desc).style(style::default_style & ~style::allow_guessing).run();
    for (const auto& option : given.options)  // a stray word or "--=5" is an error, not silently dropped
      if (option.position_key >= 0 || option.string_key.empty())
        throw UsageError("unexpected argument '" +
                         (option.original_tokens.empty() ? std::string() : option.original_tokens[0]) +
                         "'; every value follows its --flag; see `mixlab " + command + " --help`");
    po::store(given, vm);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + "; see `mixlab " + command + " --help`");
  }
  ParsedFlags parsed;
  parsed.help = vm.count("help") > 0;
  std::map<std::string, std::string> values;
  for (const auto& [k, v] : base) {
    if (!owner.count(k)) throw std::logic_error("preset sets unknown flag '" + k + "'");
    values[k] = v;
  }
  if (vm.count("config")) {
    const std::string path = vm["config"].as<std::string>();
    const nlohmann::json j = ParseJsonText(ReadTextFile(path, "--config", kMaxConfigBytes), "--config '" + path + "'");
    if (!j.is_object()) throw UsageError("--config: '" + path + "' must hold a JSON object of flag names to values");
    for (const auto& [k, v] : j.items()) {
      if (!owner.count(k))
        throw UsageError("--config: unknown flag '" + k + "' in '" + path + "'; see `mixlab " + command + " --help`");
      values[k] = JsonToFlagValue(v);
    }
  }
  for (const auto& [k, v] : vm)
    if (owner.count(k)) values[k] = v.as<std::string>();
  // Fixed groups are set field by field (with range checks); prefixed ones collected raw.
  std::map<FlagGroup*, OptionMap> per_group;
  for (const auto& [flag, value] : values) per_group[owner[flag].first][owner[flag].second] = value;
  for (auto& [g, map] : per_group) {
    if (g->options) SetOptions(*g->options, map, "--");
    else {
      SetOptions(*g->prototype, map, "--" + g->prefix + ".");  // validates; values are applied by the registry
      parsed.prefixed[g->prefix] = map;
    }
  }
  return parsed;
}

bool ParseFlagsOrHelp(const std::string& command, const std::string& summary, int argc, char** argv,
                      std::vector<FlagGroup>& groups, ParsedFlags& parsed, const OptionMap& base) {
  parsed = ParseFlags(command, argc, argv, groups, base);
  if (parsed.help) std::cout << FlagHelp(command, summary, groups);
  return !parsed.help;
}

std::string FlagHelp(const std::string& command, const std::string& summary, std::vector<FlagGroup>& groups) {
  std::ostringstream s;
  s << "usage: mixlab " << command << " [flags]\n"
    << summary
    << "\n\n  --config FILE.json   flag values as a JSON object; flags given on the command line override it\n";
  for (auto& g : groups) {
    s << "\n" << g.title << ":\n";
    for (const auto& f : ListOptions(Fields(g))) {
      std::string left = "  --" + FlagName(g, f.name) + " " + f.type;
      if (left.size() < 34) left.append(34 - left.size(), ' ');
      s << left << " " << f.help << " (default: " << (f.value.empty() ? "\"\"" : f.value) << ")";
      if (!f.allowed.empty() && f.type != "int" && f.type != "float") s << " [" << f.allowed << "]";
      s << "\n";
    }
  }
  return s.str();
}

}  // namespace mixlab
