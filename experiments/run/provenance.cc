#include "experiments/run/provenance.h"

#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>

#ifndef MIXLAB_GIT_COMMIT
#define MIXLAB_GIT_COMMIT "unknown"
#endif

namespace mixlab {
namespace {

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string UtcNow() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buf;
}

}  // namespace

std::string VersionLine() { return std::string("mixlab ") + kMixlabVersion + " (commit " + MIXLAB_GIT_COMMIT + ")"; }

double LoadAverage() {
  double load[1];
  return getloadavg(load, 1) == 1 ? load[0] : -1.0;
}

nlohmann::json Provenance(int threads) {
  return {{"version", kMixlabVersion},
          {"commit", MIXLAB_GIT_COMMIT},
          {"date", UtcNow()},
          {"cpu", CpuModel()},
          {"cores", sysconf(_SC_NPROCESSORS_ONLN)},
          {"threads", threads},
          {"load_average", LoadAverage()}};
}

}  // namespace mixlab
