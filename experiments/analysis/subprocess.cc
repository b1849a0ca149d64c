#include "experiments/analysis/subprocess.h"

#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>

extern char** environ;

namespace mixlab {

int RunProgram(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = 0;
  if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& a : argv) {
    std::string quoted = "'";
    for (char c : a) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += (line.empty() ? "" : " ") + quoted + "'";
  }
  return line;
}

std::vector<std::string> PlotCommand(const std::string& script, const std::string& out) {
  return {"/usr/bin/python3", std::string(MIXLAB_SOURCE_DIR) + "/experiments/analysis/" + script, out};
}

std::string WriteHtmlPage(const std::string& kind, const std::string& out) {
  std::vector<std::string> cmd = PlotCommand("html_report.py", out);
  cmd.push_back(kind);
  if (RunProgram(cmd) == 0) return "";
  return kind + ".html not written (python3 missing or the page script failed; run `" + CommandLine(cmd) + "`)";
}

}  // namespace mixlab
