// Runs a helper program (the plot scripts) with an argument vector: posix_spawn + waitpid, never a shell, so
// no path or flag value is ever interpreted as shell syntax.
#pragma once
#include <string>
#include <vector>

namespace mixlab {

// Runs argv[0] (an absolute path) with argv and waits; returns its exit status, or -1 if it could not be started or
// was killed by a signal. The child inherits stdout and stderr.
int RunProgram(const std::vector<std::string>& argv);

// argv as a line a user could paste into a shell (each argument single-quoted), for messages.
std::string CommandLine(const std::vector<std::string>& argv);

// The command that runs one of the Python scripts next to this file (plot_report.py, plot_analysis.py,
// html_report.py) on `out`.
std::vector<std::string> PlotCommand(const std::string& script, const std::string& out);

// Writes the interactive page of `out` with html_report.py (kind "analysis": analysis.html, "report": report.html).
// Returns "" when written, else one line saying why not and the command to run.
std::string WriteHtmlPage(const std::string& kind, const std::string& out);

}  // namespace mixlab
