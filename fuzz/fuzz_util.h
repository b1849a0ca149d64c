// Shared by the libFuzzer targets: the input as a file (the loaders read paths), argv from NUL-separated words, and
// the rule every target checks: bad input may only end in UsageError (the CLI's one-line exit 2); any other
// exception, a crash, a hang or a sanitizer report is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "mixers/ops/usage_error.h"

namespace mixlab::fuzz {

// Writes the input to a per-process file in /dev/shm (or /tmp) and returns its path.
inline std::string InputFile(const uint8_t* data, size_t size, const std::string& suffix) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = dir + "/mixlab_fuzz_" + std::to_string(getpid()) + suffix;
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

// "--d-model\0 64\0..." -> {"--d-model", "64", ...}
inline std::vector<std::string> Words(const uint8_t* data, size_t size) {
  std::vector<std::string> words(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) words.emplace_back();
    else words.back() += char(data[i]);
  }
  return words;
}

// argv for a command: argv[0] is the command name, then the words.
struct Argv {
  explicit Argv(const std::string& command, std::vector<std::string> words) : storage(std::move(words)) {
    storage.insert(storage.begin(), command);
    for (auto& w : storage) pointers.push_back(w.data());
    pointers.push_back(nullptr);
  }
  int argc() const { return int(storage.size()); }
  char** argv() { return pointers.data(); }
  std::vector<std::string> storage;
  std::vector<char*> pointers;
};

}  // namespace mixlab::fuzz
