// Command-line flags built from option structs (one declaration per option): each subcommand names the
// groups it accepts; boost::program_options parses; --config file.json supplies values that flags override.
// Groups with a prefix ("softmax.", "mqar.") collect raw name -> value maps that the registries validate.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "mixers/ops/usage_error.h"
#include "models/model_config.h"

namespace mixlab {

struct FlagGroup {
  std::string title;
  Options* options = nullptr;          // fixed group: fields are set directly
  std::string prefix;                  // prefixed group (mixer or task options): see ParsedFlags::prefixed
  std::unique_ptr<Options> prototype;  // for prefixed groups: lists the fields and their defaults
};

struct ParsedFlags {
  bool help = false;
  std::map<std::string, OptionMap> prefixed;  // "softmax" -> {"n-heads": "2"}
};

// Groups for every registered sequence mixer, channel mixer and task, prefixed by their names.
std::vector<FlagGroup> MixerFlagGroups();
std::vector<FlagGroup> TaskFlagGroups();

// Parses argv (without the program and subcommand names). Throws UsageError on an unknown flag, a bad value,
// or a malformed --config file. Values come from `base` (flag -> value, e.g. a preset), then --config, then
// the command line, each overriding the one before.
ParsedFlags ParseFlags(const std::string& command, int argc, char** argv, std::vector<FlagGroup>& groups,
                       const OptionMap& base = {});

// Parses like ParseFlags; when --help was given, prints the help and returns false (the command exits 0).
bool ParseFlagsOrHelp(const std::string& command, const std::string& summary, int argc, char** argv,
                      std::vector<FlagGroup>& groups, ParsedFlags& parsed, const OptionMap& base = {});

std::string FlagHelp(const std::string& command, const std::string& summary, std::vector<FlagGroup>& groups);

}  // namespace mixlab
