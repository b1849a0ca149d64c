// bench/plot_scaling.py: the exponents it fits and prints (the README's scaling table comes from them) and its
// refusal of input that is not Google Benchmark JSON. Runs the script on synthetic benchmark JSON with known
// exponents of T.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

namespace fs = std::filesystem;

CommandResult PlotScaling(const fs::path& out_dir, const std::vector<fs::path>& inputs) {
  std::string cmd = "/usr/bin/python3 " MIXLAB_SOURCE_DIR "/bench/plot_scaling.py " + out_dir.string();
  for (const auto& f : inputs) cmd += " " + f.string();
  return RunCommand(cmd, "mixlab_plot_scaling");
}

// The printed Markdown table: mixer -> column -> slope.
std::map<std::string, std::map<std::string, double>> ParseTable(const std::string& text) {
  auto cells = [](const std::string& line) {
    std::vector<std::string> out;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, '|')) {
      const auto b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      if (b != std::string::npos) out.push_back(cell.substr(b, e - b + 1));
    }
    return out;
  };
  std::stringstream lines(text);
  std::string line;
  std::getline(lines, line);
  const auto header = cells(line);
  std::getline(lines, line);  // |---|
  std::map<std::string, std::map<std::string, double>> table;
  while (std::getline(lines, line)) {
    const auto row = cells(line);
    for (size_t i = 1; i < row.size() && i < header.size(); ++i) table[row[0]][header[i]] = std::stod(row[i]);
  }
  return table;
}

// Google Benchmark JSON for two made-up mixers: "quad" costs c T^2 (forward and forward+backward) with memory
// linear in T, "flat" costs c T with memory constant; decoding costs T^1 for quad and nothing extra for flat.
// Aggregate rows and other widths must be ignored.
std::string SyntheticJson() {
  std::string rows;
  auto add = [&](const std::string& name, double time_ms, double peak_mb, const char* run_type = "iteration") {
    if (!rows.empty()) rows += ",\n";
    rows += "{\"name\": \"" + name + "\", \"run_type\": \"" + run_type +
            "\", \"real_time\": " + std::to_string(time_ms) +
            ", \"time_unit\": \"ms\", \"peak_MB\": " + std::to_string(peak_mb) + "}";
  };
  for (int T = 64; T <= 4096; T *= 2) {
    const std::string t = "/T:" + std::to_string(T) + "/B:1/D:128/real_time";
    const double x = T / 64.0;
    add("forward/quad" + t, 0.5 * x * x, 2.0 * x);
    add("forward_backward/quad" + t, 1.5 * x * x, 3.0 * x);
    add("forward/flat" + t, 0.1 * x, 7.0);
    add("forward_backward/flat" + t, 0.3 * x, 7.0);
    add("decode/quad" + t, 0.01 * x, 0.0);
    add("decode/flat" + t, 0.02, 0.0);
    add("forward/quad" + t + "_mean", 99.0, 99.0, "aggregate");                         // ignored
    add("forward/flat/T:" + std::to_string(T) + "/B:1/D:256/real_time", 1.0 / x, 1.0);  // ignored
  }
  return "{\"context\": {}, \"benchmarks\": [\n" + rows + "\n]}\n";
}

fs::path TempDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(PlotScaling, FitsTheExponentsOfTAndDrawsEveryPlot) {
  const fs::path dir = TempDir("mixlab_plot_scaling"), json = dir / "bench.json", out = dir / "plots";
  std::ofstream(json) << SyntheticJson();
  const CommandResult r = PlotScaling(out, {json});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto table = ParseTable(r.out);
  ASSERT_EQ(table.size(), 2u) << r.out;
  const std::map<std::string, std::map<std::string, double>> expected = {{"quad",
                                                                          {{"forward slope", 2.0},
                                                                           {"forward_backward slope", 2.0},
                                                                           {"decode slope", 1.0},
                                                                           {"memory slope", 1.0},
                                                                           {"inference memory slope", 1.0}}},
                                                                         {"flat",
                                                                          {{"forward slope", 1.0},
                                                                           {"forward_backward slope", 1.0},
                                                                           {"decode slope", 0.0},
                                                                           {"memory slope", 0.0},
                                                                           {"inference memory slope", 0.0}}}};
  for (const auto& [mixer, columns] : expected)
    for (const auto& [column, slope] : columns) {
      ASSERT_TRUE(table.at(mixer).count(column)) << mixer << " has no '" << column << "' column:\n" << r.out;
      EXPECT_NEAR(table.at(mixer).at(column), slope, 0.005) << mixer << ", " << column;
    }
  for (const char* png : {"scaling_time_forward.png", "scaling_time_forward_backward.png", "scaling_time_decode.png",
                          "scaling_memory.png", "scaling_memory_forward.png"})
    EXPECT_GT(fs::exists(out / png) ? fs::file_size(out / png) : 0, 1000u) << png;
}

TEST(PlotScaling, RefusesInputThatIsNotBenchmarkJsonWithOneLine) {
  const fs::path dir = TempDir("mixlab_plot_scaling_bad");
  const std::map<std::string, std::string> files = {
      {"not_json.json", "this is not json"},
      {"no_benchmarks.json", "{\"context\": {}}"},
      {"malformed_entry.json", "{\"benchmarks\": [{\"name\": \"forward/x/B:1\", \"run_type\": \"iteration\"}]}"},
      {"empty.json", "{\"benchmarks\": []}"}};
  for (const auto& [name, text] : files) std::ofstream(dir / name) << text;
  const std::map<std::string, std::string> mention = {{"not_json.json", "not Google Benchmark JSON"},
                                                      {"no_benchmarks.json", "not Google Benchmark JSON"},
                                                      {"malformed_entry.json", "malformed benchmark entry"},
                                                      {"empty.json", "no forward"},
                                                      {"missing.json", "cannot read"}};
  for (const auto& [name, words] : mention) {
    const CommandResult r = PlotScaling(dir / "plots", {dir / name});
    EXPECT_NE(r.code, 0) << name;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << name << ":\n" << r.err;
    EXPECT_NE(r.err.find(words), std::string::npos) << name << ":\n" << r.err;
    EXPECT_NE(r.err.find(name), std::string::npos) << name << ": the error should name the file:\n" << r.err;
  }
}

}  // namespace
}  // namespace mixlab::testing
