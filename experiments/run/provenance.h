// Where a result came from: mixlab's version and the git commit it was built from (read when CMake configured the
// build, which scripts/build.sh does on every build), the date, the host's CPU, its load and the threads used.
// Recorded in every results.json and report; `mixlab --version` prints the first two.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace mixlab {

constexpr const char* kMixlabVersion = "0.2.0";

std::string VersionLine();               // "mixlab 0.2.0 (commit 1a2b3c4d5e6f)"
nlohmann::json Provenance(int threads);  // version, commit, date (UTC), cpu, cores, threads, load average
double LoadAverage();                    // the 1-minute load average, -1 if unknown

}  // namespace mixlab
