// What a run leaves on disk under faults: crafted and corrupt checkpoints are refused (safetensors layout, checksum
// over header and data, config checked like flags), a kill at the most dangerous instant resumes bit-exactly, a
// finished run resumed changes nothing, a second writer is refused, a full disk keeps the old file, and every
// mixer's reloaded checkpoint scores exactly what the trainer scored.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "experiments/cli/run_builder.h"
#include "experiments/run/evaluate.h"
#include "experiments/run/trainer.h"
#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"
#include "mixers/registry.h"
#include "models/checkpoint.h"
#include "models/file_io.h"

namespace mixlab::testing {
namespace {

namespace fs = std::filesystem;

RunSpec SmallRun(const fs::path& out, int steps, const std::string& mixer = "softmax",
                 const std::string& channel = "mlp", const std::map<std::string, OptionMap>& mixer_flags = {}) {
  TrainOptions t;
  t.train_len = 16;
  t.eval_lens = {16};
  t.steps = steps;
  t.batch = 4;
  t.eval_every = 10;
  t.val_answers = t.test_answers = 24;
  t.log_every = 1;
  t.threads = 1;
  t.out = out.string();
  ModelOptions m;
  m.d_model = 16;
  m.mixer = mixer;
  m.channel = channel;
  m.pos = FindMixer(mixer, MixerKind::kSequence).supported_pos.empty()
              ? "none"
              : FindMixer(mixer, MixerKind::kSequence).supported_pos[0];
  ParsedFlags flags;
  flags.prefixed = mixer_flags;  // e.g. {"performer": {"redraw": "3"}}
  return BuildRunSpec(t, m, flags, true);
}

fs::path Fresh(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  return dir;
}

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// metrics.jsonl or results.json without the wall-clock fields (which differ between any two runs) and the directory.
nlohmann::json WithoutTimings(nlohmann::json j) {
  if (j.is_array())
    for (auto& x : j) x = WithoutTimings(x);
  if (j.is_object())
    for (const char* key :
         {"tokens_per_s", "tokens_per_second", "warm_tokens_per_second", "train_seconds", "peak_rss_mb", "resumed_from",
          "run_dir", "load_average", "provenance"})  // provenance: date
      j.erase(key);
  return j;
}

nlohmann::json Lines(const fs::path& path) {
  nlohmann::json lines = nlohmann::json::array();
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return WithoutTimings(lines);
}

std::string Bytes(const LanguageModel& m) {
  return std::string(reinterpret_cast<const char*>(m.params().values()), sizeof(float) * size_t(m.params().size()));
}

// --- crafted checkpoints: the checksum is recomputed as the format defines it, so only the layout checks can refuse.

uint64_t Fnv1a64(const std::string& bytes, uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

void WriteCrafted(const fs::path& src, const fs::path& dst,
                  const std::function<void(nlohmann::json&, std::string&)>& edit) {
  const std::string raw = Slurp(src);
  uint64_t len = 0;
  std::memcpy(&len, raw.data(), 8);
  nlohmann::json header = nlohmann::json::parse(raw.substr(8, len));
  std::string data = raw.substr(8 + len);
  edit(header, data);
  header["__metadata__"].erase("fnv1a64");
  header["__metadata__"]["fnv1a64"] = std::to_string(Fnv1a64(data, Fnv1a64(header.dump())));
  const std::string text = header.dump();
  const uint64_t n = text.size();
  std::ofstream(dst, std::ios::binary) << std::string(reinterpret_cast<const char*>(&n), 8) << text << data;
}

std::string LoadRefusal(const fs::path& path) {
  try {
    LoadRun(path.string());
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(RunFiles, CraftedCheckpointsAreRefused) {
  const fs::path dir = Fresh("mixlab_crafted");
  RunSpec spec = SmallRun(dir, 10);
  Train(spec, {.quiet = true});
  const fs::path good = dir / "model.safetensors";
  ASSERT_EQ(LoadRefusal(good), "") << "the untouched checkpoint loads";
  WriteCrafted(good, dir / "same.safetensors", [](nlohmann::json&, std::string&) {});
  ASSERT_EQ(LoadRefusal(dir / "same.safetensors"), "") << "the test's checksum is the format's";

  const auto offsets = [](nlohmann::json& h, const std::string& name) -> nlohmann::json& {
    return h[name]["data_offsets"];
  };
  const struct {
    std::string label, expected;
    std::function<void(nlohmann::json&, std::string&)> edit;
  } cases[] = {
      {"overlapping offsets", "contiguous",
       [&](nlohmann::json& h, std::string&) { offsets(h, "final_norm.bias") = offsets(h, "final_norm.weight"); }},
      {"offsets shifted by one", "starts at byte 1",
       [&](nlohmann::json& h, std::string&) {
         auto& o = offsets(h, "embedding");
         o = {o[0].get<int64_t>() + 1, o[1].get<int64_t>() + 1};
       }},
      {"bytes no tensor covers", "cover", [](nlohmann::json&, std::string& data) { data += std::string(8, '\0'); }},
      {"a dtype mixlab does not read", "F32", [](nlohmann::json& h, std::string&) { h["embedding"]["dtype"] = "F16"; }},
      {"a shape beyond the file", "larger than the file",
       [](nlohmann::json& h, std::string&) {
         h["embedding"]["shape"] = {1LL << 40, 1LL << 40};
       }},
      {"an invalid config value", "'pos'",
       [](nlohmann::json& h, std::string&) {
         auto c = nlohmann::json::parse(h["__metadata__"]["config"].get<std::string>());
         c["pos"] = "bogus";
         h["__metadata__"]["config"] = c.dump();
       }},
      {"a config that disagrees with the run", "disagrees",
       [](nlohmann::json& h, std::string&) {
         auto c = nlohmann::json::parse(h["__metadata__"]["config"].get<std::string>());
         c["pos"] = "alibi";
         h["__metadata__"]["config"] = c.dump();
       }},
      {"a config far larger than the file", "more than the file",
       [](nlohmann::json& h, std::string&) {
         auto c = nlohmann::json::parse(h["__metadata__"]["config"].get<std::string>());
         c["d_model"] = 8192;
         for (int i = 0; i < 8; ++i) c["layers"].push_back(c["layers"][0]);
         h["__metadata__"]["config"] = c.dump();
       }},
      {"a run config that is not JSON", "not valid JSON",
       [](nlohmann::json& h, std::string&) { h["__metadata__"]["run"] = "{bad"; }},
      {"a step that is not a count", "step",
       [](nlohmann::json& h, std::string&) { h["__metadata__"]["step"] = "ten"; }},
      {"metadata that is not a string", "not a string",
       [](nlohmann::json& h, std::string&) {
         h["__metadata__"]["config"] = {1, 2};
       }},
  };
  for (const auto& c : cases) {
    const fs::path path = dir / "crafted.safetensors";
    WriteCrafted(good, path, c.edit);
    const std::string why = LoadRefusal(path);
    EXPECT_NE(why.find(c.expected), std::string::npos) << c.label << ": " << (why.empty() ? "loaded silently" : why);
  }
  // Without the checksum recomputed, any edit of the header is caught even when the layout stays valid (swapped
  // offsets).
  std::string raw = Slurp(good);
  const size_t at = raw.find("\"data_offsets\":[0,");
  ASSERT_NE(at, std::string::npos);
  raw[at + 16] = '1';  // "[0," -> "[1,"
  std::ofstream(dir / "edited.safetensors", std::ios::binary) << raw;
  EXPECT_NE(LoadRefusal(dir / "edited.safetensors").find("checksum"), std::string::npos);
}

// A kill -9 between the optimizer file and the model file of the step-20 checkpoint (the instant at which the old
// single-file pair disagreed) leaves a resumable pair; the resumed run ends bit-identical, results.json included.
TEST(RunFiles, KillBetweenCheckpointFilesResumesBitExactly) {
  const fs::path dir = Fresh("mixlab_kill");
  RunSpec whole = SmallRun(dir / "whole", 30);
  const TrainResult a = Train(whole, {.quiet = true});
  const pid_t child = fork();  // no OpenMP thread pool exists yet in this process, so the child may use OpenMP
  ASSERT_GE(child, 0);
  if (child == 0) {
    RunSpec cut = SmallRun(dir / "cut", 30);
    int saves = 0;
    TrainHooks hooks{.quiet = true};
    hooks.between_checkpoint_files = [&] {
      if (++saves == 2) raise(SIGKILL);
    };
    Train(cut, hooks);
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the child must die at the second checkpoint";
  ASSERT_TRUE(fs::exists(dir / "cut" / "optimizer-20.safetensors"));
  EXPECT_EQ(ReadCheckpointMetadata((dir / "cut" / "model.safetensors").string()).at("step"), "10");

  RunSpec cut = SmallRun(dir / "cut", 30);
  const TrainResult b = Train(cut, {.quiet = true, .resume = true});
  EXPECT_EQ(b.resumed_from, 10);
  EXPECT_EQ(Bytes(*LoadCheckpoint((dir / "whole" / "model.safetensors").string())),
            Bytes(*LoadCheckpoint((dir / "cut" / "model.safetensors").string())));
  EXPECT_EQ(a.mean_train_loss, b.mean_train_loss) << "the running loss sum is restored exactly";
  EXPECT_EQ(Lines(dir / "whole" / "metrics.jsonl"), Lines(dir / "cut" / "metrics.jsonl"));
  EXPECT_EQ(WithoutTimings(nlohmann::json::parse(Slurp(dir / "whole" / "results.json"))),
            WithoutTimings(nlohmann::json::parse(Slurp(dir / "cut" / "results.json"))));
  EXPECT_FALSE(fs::exists(dir / "cut" / "optimizer-10.safetensors")) << "the older optimizer state is removed";
  EXPECT_FALSE(fs::exists(dir / "cut" / "optimizer-20.safetensors"));
}

TEST(RunFiles, ResumeRefusesWhatItCannotContinueAndChangesNothingWhenFinished) {
  const fs::path dir = Fresh("mixlab_resume_holes");
  RunSpec spec = SmallRun(dir, 20);
  Train(spec, {.quiet = true});
  const std::string metrics = Slurp(dir / "metrics.jsonl"), results = Slurp(dir / "results.json");
  const TrainResult again = Train(spec, {.quiet = true, .resume = true});
  EXPECT_EQ(again.resumed_from, 20);
  EXPECT_EQ(Slurp(dir / "metrics.jsonl"), metrics) << "resuming a finished run appends nothing";
  auto before = nlohmann::json::parse(results), after = nlohmann::json::parse(Slurp(dir / "results.json"));
  EXPECT_EQ(after["warm_tokens_per_second"], before["warm_tokens_per_second"]) << "the training's figures are kept";
  EXPECT_EQ(after["tokens_per_second"], before["tokens_per_second"]);
  for (auto* j : {&before, &after}) j->erase("provenance"), j->erase("resumed_from");
  EXPECT_EQ(before, after) << "resuming a finished run changes nothing but its provenance";

  std::string optimizer = Slurp(dir / "optimizer-20.safetensors");
  optimizer[optimizer.size() / 2] ^= 0x10;
  std::ofstream(dir / "optimizer-20.safetensors", std::ios::binary) << optimizer;
  EXPECT_THROW(Train(spec, {.quiet = true, .resume = true}), UsageError) << "a corrupt optimizer state";
  optimizer[optimizer.size() / 2] ^= 0x10;
  std::ofstream(dir / "optimizer-20.safetensors", std::ios::binary) << optimizer;

  fs::rename(dir / "model.safetensors", dir / "moved.safetensors");
  EXPECT_THROW(Train(spec, {.quiet = true, .resume = true}), UsageError)
      << "metrics record checkpoints, the model is gone";
  EXPECT_EQ(Slurp(dir / "metrics.jsonl"), metrics) << "a refused resume leaves the metrics alone";
  WriteCrafted(dir / "moved.safetensors", dir / "model.safetensors",
               [](nlohmann::json& h, std::string&) { h["__metadata__"]["run"] = "not json"; });
  EXPECT_THROW(Train(spec, {.quiet = true, .resume = true}), UsageError) << "a run config that cannot be compared";
}

TEST(RunFiles, ResumeMayExtendStepsAndNamesASettingItCannotChange) {
  const fs::path dir = Fresh("mixlab_resume_extend");
  RunSpec spec = SmallRun(dir, 20);
  Train(spec, {.quiet = true});
  RunSpec longer = SmallRun(dir, 30);
  longer.train.threads = 2;
  const TrainResult r = Train(longer, {.quiet = true, .resume = true});
  EXPECT_EQ(r.resumed_from, 20);
  EXPECT_EQ(r.steps_done, 30);
  RunSpec other = SmallRun(dir, 30);
  other.train.lr = 1e-4f;
  other.train.seed = 5;
  try {
    Train(other, {.quiet = true, .resume = true});
    ADD_FAILURE() << "a resume under another learning rate and seed";
  } catch (const UsageError& e) {
    const std::string why = e.what();
    EXPECT_NE(why.find("--lr"), std::string::npos) << why;
    EXPECT_NE(why.find("--seed 0 -> 5"), std::string::npos) << why;
    EXPECT_EQ(why.find("--steps"), std::string::npos) << "steps may change: " << why;
  }
}

// Run directories are found by their config id: an option added later must leave the id of every run that does not
// use it unchanged, and a config saved before the option existed compares equal to today's (compare skips the run).
TEST(RunFiles, AnOptionAddedLaterKeepsOldRunIdsAndConfigs) {
  RunSpec spec = SmallRun("unused", 20);
  EXPECT_EQ(spec.ConfigId(), "2272db74") << "the id of an unchanged config changed: old run directories would retrain";
  nlohmann::json older = spec.ToJson();
  older["train"].erase("grad-accum");  // as written before --grad-accum existed
  EXPECT_EQ(RunSpec::Canonical(older), spec.ToJson());
  RunSpec accumulated = spec;
  accumulated.train.grad_accum = 2;
  EXPECT_NE(accumulated.ConfigId(), spec.ConfigId());
  EXPECT_NE(RunSpec::Canonical(accumulated.ToJson()), spec.ToJson());
}

// compare trains many runs in one process: each run's peak memory is its own, not the largest run's before it.
TEST(RunFiles, PeakMemoryIsPerRun) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's quarantine and shadow memory dominate the resident set";
#endif
  RunSpec big = SmallRun(Fresh("mixlab_peak_big"), 2);
  big.train.batch = 64;
  big.train.train_len = 512;
  big.train.eval_lens = {512};
  const TrainResult a = Train(big, {.quiet = true});
  RunSpec small = SmallRun(Fresh("mixlab_peak_small"), 2);
  const TrainResult b = Train(small, {.quiet = true});
  if (!b.peak_rss_per_run) GTEST_SKIP() << "/proc/self/clear_refs is not writable here";
  EXPECT_GT(a.peak_rss_mb, b.peak_rss_mb + 20) << "the small run reported the big run's peak";
}

TEST(RunFiles, ASecondWriterIsRefused) {
  const fs::path dir = Fresh("mixlab_locked");
  fs::create_directories(dir);
  const DirectoryLock held(dir.string());
  RunSpec spec = SmallRun(dir, 2);
  try {
    Train(spec, {.quiet = true});
    ADD_FAILURE() << "two writers in one run directory";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(getpid())), std::string::npos) << e.what();
  }
}

TEST(RunFiles, AFullDiskKeepsTheOldFile) {
  const fs::path dir = Fresh("mixlab_full_disk");
  fs::create_directories(dir);
  const std::string path = (dir / "results.json").string();
  WriteFileAtomic(path, "old\n");
  rlimit saved{};
  getrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, SIG_IGN);  // a write past the limit then fails with EFBIG, as one on a full disk fails with ENOSPC
  rlimit small = saved;
  small.rlim_cur = 1000;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  EXPECT_THROW(WriteFileAtomic(path, std::string(5000, 'x')), UsageError);
  setrlimit(RLIMIT_FSIZE, &saved);
  EXPECT_EQ(Slurp(path), "old\n");
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename(), "results.json") << "a temporary was left behind";
  EXPECT_THROW(WriteFileAtomic((dir / "no" / "such" / "dir.json").string(), "x"), UsageError);
}

// The trainer's last validation and `eval` of the saved checkpoint must agree exactly for every mixer, including
// Performer redrawing its features during training and MoE with a capacity that drops tokens in training.
TEST(RunFiles, ReloadedCheckpointScoresWhatTheTrainerScored) {
  struct Case {
    std::string mixer, channel;
    std::map<std::string, OptionMap> flags;
  };
  std::vector<Case> cases;
  for (const auto& name : ListMixers(MixerKind::kSequence)) cases.push_back({name, "mlp", {}});
  cases.push_back({"performer", "mlp", {{"performer", {{"redraw", "3"}}}}});
  cases.push_back({"softmax", "moe", {{"moe", {{"capacity-factor", "0.5"}}}}});
  for (const auto& c : cases) {
    const fs::path dir = Fresh("mixlab_reload_" + c.mixer + "_" + c.channel);
    RunSpec spec = SmallRun(dir, 10, c.mixer, c.channel, c.flags);
    const TrainResult r = Train(spec, {.quiet = true});
    auto model = LoadCheckpoint((dir / "model.safetensors").string());
    auto task = MakeTask(spec.train.task, spec.task_options);
    const EvalResult e = Evaluate(*model, *task, 16, spec.train.val_answers, EvalBatchSize(spec.train.batch, 16, 16),
                                  uint64_t(spec.train.seed), Split::kValidation);
    ASSERT_EQ(r.validation.size(), 1u);
    EXPECT_EQ(e.loss, r.validation[0].loss) << c.mixer << "/" << c.channel;
  }
}

}  // namespace
}  // namespace mixlab::testing
