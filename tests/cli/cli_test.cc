// The command line: bad input gets one clear line on stderr and exit code 2; good input works end to end.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "mixers/ops/usage_error.h"
#include "tests/test_util.h"

namespace {

using Outcome = mixlab::testing::CommandResult;

Outcome RunMixlab(const std::string& args) {
  return mixlab::testing::RunCommand(std::string(MIXLAB_BINARY) + " " + args, "mixlab_cli");
}

int Lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

void ExpectUsageError(const std::string& args, const std::string& mention) {
  const Outcome o = RunMixlab(args);
  EXPECT_EQ(o.code, 2) << args << "\n" << o.err;
  EXPECT_EQ(Lines(o.err), 1) << args << ": expected one line, got:\n" << o.err;
  EXPECT_NE(o.err.find(mention), std::string::npos) << args << ": error should mention '" << mention << "':\n" << o.err;
}

TEST(Cli, RefusesBadInputWithOneLineAndExitCode2) {
  ExpectUsageError("frobnicate", "unknown command 'frobnicate'");
  ExpectUsageError("train --no-such-flag 3", "no-such-flag");
  ExpectUsageError("train --d-model 0", "--d-model");
  ExpectUsageError("train --d-model 64 --softmax.n-heads 3", "not divisible");
  ExpectUsageError("train --mixer nosuch", "unknown sequence mixer 'nosuch'");
  ExpectUsageError("train --task nosuch", "unknown task 'nosuch'");
  ExpectUsageError("train --pos spiral", "--pos");
  ExpectUsageError("train --lr abc", "--lr");
  ExpectUsageError("train --eval-lens 64,x", "--eval-lens");
  ExpectUsageError("train --task mqar --mqar.vocab 256 --mqar.pairs 20 --train-len 64", "needs sequence length >= 80");
  ExpectUsageError("train --task mqar --mqar.pairs 20", "distinct keys");
  ExpectUsageError("train --pos learned --max-len 100 --eval-lens 64,128", "exceeds --max-len");
  ExpectUsageError("train --task mqar --induction.vocab 4", "--task is 'mqar'");
  ExpectUsageError("train --softmax.impl fast", "--softmax.impl");
  ExpectUsageError("train --config /nonexistent/x.json", "cannot read");
  ExpectUsageError("eval", "--checkpoint is required");
  ExpectUsageError("eval --checkpoint /nonexistent/model.safetensors", "not found");
  ExpectUsageError("compare --positions rope,spiral", "--pos");
  ExpectUsageError("compare --preset nosuch", "unknown preset 'nosuch'");
  ExpectUsageError("compare --mixers mamba --positions alibi", "does not support positional encoding 'alibi'");
  ExpectUsageError("compare --sweep bogus=1,2", "unknown flag 'bogus'");
  ExpectUsageError("compare --lrs 1e-3,abc", "--lrs");
  ExpectUsageError("compare --tasks mqar --eval-sweep passkey.depth=0,1", "not among --tasks");
  ExpectUsageError("train --task passkey --eval-sweep passkey.depth=3", "depth");
  ExpectUsageError("train --task char-lm --char-lm.data /nonexistent/corpus.txt", "not found");
  ExpectUsageError("train --task listops --train-len 4", "listops");
  ExpectUsageError("train --task listops --listops.min-len 300 --train-len 256", "--listops.min-len 300");
  ExpectUsageError("train --task mqar --mqar.vocab 64 --mqar.mixture 64:4,256:16 --train-len 128",
                   "longer than the training length");
  ExpectUsageError("train --task mqar --mqar.mixture 64:x", "--mqar.mixture entry '64:x'");
  ExpectUsageError("train --task mqar --mqar.vocab 64 --eval-lens 64 --eval-sweep mqar.pairs=20",
                   "cannot be generated at any --eval-lens");
  ExpectUsageError("compare --mixers softmax@spiral", "--pos");
  ExpectUsageError("compare --mixers mamba@rope", "does not support positional encoding 'rope'");
}

// At least one case of every class the hardening review found (issue "Hardening"): stray arguments, empty lists,
// crashing sizes, impossible sizes (memory estimate), hostile configs and paths, endless inputs, and shell
// metacharacters in paths, which must name a directory and never run a command.
TEST(Cli, RefusesHostileInput) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "mixlab_cli_hostile";
  fs::remove_all(dir);
  fs::create_directories(dir / "a_directory");
  std::ofstream(dir / "a_file") << "x";
  std::ofstream(dir / "deep.json") << std::string(5000, '[') << std::string(5000, ']');
  const std::string d = dir.string();
  const Outcome none = RunMixlab("");
  EXPECT_EQ(none.code, 2);
  EXPECT_EQ(Lines(none.err), 1) << none.err;
  ExpectUsageError("train garbage", "unexpected argument 'garbage'");
  ExpectUsageError("list extra", "unexpected argument 'extra'");
  ExpectUsageError("analyze a b", "unexpected argument 'b'");
  ExpectUsageError("train --=5", "unexpected argument");
  ExpectUsageError("train '-x%original_token%'",
                   "two '%' signs");  // hung Boost's message formatting (found by fuzzing)
  ExpectUsageError("train --layers ,", "--layers");
  ExpectUsageError("train --layers ,,", "--layers");
  ExpectUsageError("compare --mixers ''", "--mixers");
  ExpectUsageError("compare --mixers ,", "--mixers");
  ExpectUsageError("compare --tasks ,", "--tasks");
  ExpectUsageError("compare --positions ''", "--positions");
  ExpectUsageError("compare --sweep =64", "--sweep");
  ExpectUsageError("compare --sweep d-model=,", "--sweep");
  ExpectUsageError("compare --lrs 1e-3x", "--lrs");
  ExpectUsageError("train --eval-sweep mqar.pairs=", "--eval-sweep");
  ExpectUsageError("compare --task induction", "--tasks");
  ExpectUsageError("compare --mixer mamba", "--mixers");
  ExpectUsageError("compare --pos alibi", "--positions");
  ExpectUsageError("train --mixer linear --pos none --linear.chunk 65536", "--linear.chunk");
  ExpectUsageError("train --config " + d + "/deep.json", "nests deeper");
  ExpectUsageError("train --config " + d + "/a_directory", "not a regular file");
  ExpectUsageError("train --batch 1048576", "more than this machine's");
  ExpectUsageError("train --train-len 16777216 --eval-lens 64", "more than this machine's");
  ExpectUsageError("train --d-model 8192 --n-layers 256", "more than this machine's");
  ExpectUsageError("train --steps 1 --out " + d + "/a_file", "cannot create directory");
  ExpectUsageError("train --steps 1 --out " + d + "/a_file/below", "cannot create directory");
  ExpectUsageError("train --steps 1 --out /proc/mixlab_run", "cannot create directory");
  ExpectUsageError("train --task char-lm --char-lm.data /dev/zero", "not a regular file");

  const std::string run = d + "/run";
  ASSERT_EQ(RunMixlab("train --d-model 16 --steps 2 --batch 4 --train-len 16 --eval-lens 16 --out " + run).code, 0);
  ExpectUsageError("analyze " + run + "/model.safetensors --length 65536", "mixing maps alone");
  ExpectUsageError("probe " + run + "/model.safetensors --fragment-tokens 1 --out " + d + "/a_file/x.json",
                   "cannot write");
  // A quote closes any quoting a shell command line could give the path; then ";touch" would run.
  const std::string hostile = d + "/figs';touch " + d + "/injected;'";
  const Outcome injected =
      RunMixlab("analyze " + run + "/model.safetensors --samples 1 --answers 4 --out \"" + hostile + "\"");
  EXPECT_EQ(injected.code, 0) << injected.err;
  EXPECT_TRUE(fs::is_directory(hostile)) << "the path is one directory name";
  EXPECT_FALSE(fs::exists(d + "/injected")) << "a path ran as a shell command";
}

// A small compare end to end: two learning rates x two seeds, the report and tables, a repeated compare that skips
// every finished run, an extended compare that trains only its new runs, and refusal of a directory compare did not
// write.
int Count(const std::string& text, const std::string& word) {
  int n = 0;
  for (size_t at = 0; (at = text.find(word, at)) != std::string::npos; ++at) ++n;
  return n;
}

TEST(Cli, CompareSelectsLearningRatesSkipsFinishedRunsAndGrowsItsDirectory) {
  const auto dir = (std::filesystem::temp_directory_path() / "mixlab_cli_compare").string();
  std::filesystem::remove_all(dir);
  const std::string common =
      "compare --tasks mqar --d-model 16 --steps 6 --batch 4 --train-len 16 --eval-lens 16,32 --eval-every 3 "
      "--val-answers 8 --test-answers 8 --lrs 1e-5,1.5e-5 --seeds 2 --plots false --out " +
      dir;
  const std::string args = common + " --mixers softmax,gla/moe";
  Outcome c = RunMixlab(args);
  ASSERT_EQ(c.code, 0) << c.err;
  for (const char* f : {"report.md", "results.csv", "runs.json", "experiment.json"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + f)) << f;
  std::ifstream report(dir + "/report.md");
  const std::string md(std::istreambuf_iterator<char>(report), {});
  for (const char* s : {"| softmax rope |", "| gla/moe none |", "per learning rate", "**", "lr 1e-5 |", "lr 1.5e-5 |",
                        "e-05 |", "(n=8)"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
  int run_dirs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) run_dirs += e.is_directory();
  EXPECT_EQ(run_dirs, 8) << "learning rates 1e-5 and 1.5e-5 must not share a directory";
  Outcome again = RunMixlab(args);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(Count(again.err, "skipped"), 8) << again.err;
  Outcome grown = RunMixlab(common + " --mixers softmax,gla/moe,linear");
  ASSERT_EQ(grown.code, 0) << grown.err;
  EXPECT_EQ(Count(grown.err, "skipped"), 8) << "only linear's four runs are new:\n" << grown.err;
  EXPECT_EQ(Count(grown.err, ": done"), 4) << grown.err;
  const std::string foreign = dir + "_foreign";
  std::filesystem::create_directories(foreign);
  std::ofstream(foreign + "/notes.txt") << "mine";
  ExpectUsageError(common.substr(0, common.find("--out")) + "--out " + foreign, "not written by mixlab compare");
}

TEST(Cli, RefusesMalformedConfigAndCorruptCheckpoint) {
  const auto dir = std::filesystem::temp_directory_path() / "mixlab_cli";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "bad.json") << "{\"d-model\": 32,";
  ExpectUsageError("train --config " + (dir / "bad.json").string(), "not valid JSON");
  std::ofstream(dir / "unknown.json") << "{\"d-modle\": 32}";
  ExpectUsageError("train --config " + (dir / "unknown.json").string(), "unknown flag 'd-modle'");
  std::ofstream(dir / "junk.safetensors") << "this is not a checkpoint at all";
  ExpectUsageError("eval --checkpoint " + (dir / "junk.safetensors").string(), "refused");
}

TEST(Cli, TheReadmeExampleConfigTrains) {
  const auto dir = (std::filesystem::temp_directory_path() / "mixlab_cli_example").string();
  std::filesystem::remove_all(dir);
  const Outcome t = RunMixlab(std::string("train --config ") + MIXLAB_SOURCE_DIR +
                              "/docs/examples/mqar_hybrid.json --steps 2 --eval-lens 64 "
                              "--val-answers 8 --test-answers 8 --out " +
                              dir);
  ASSERT_EQ(t.code, 0) << t.err;
  std::ifstream config(dir + "/config.json");
  const auto j = nlohmann::json::parse(config);
  EXPECT_EQ(j["model"]["layers"][0]["mixer"], "mamba");
  EXPECT_EQ(j["model"]["layers"][1]["mixer_options"]["n-heads"], "2");
}

TEST(Cli, TrainThenEvalAtOtherLengths) {
  const auto dir = (std::filesystem::temp_directory_path() / "mixlab_cli_run").string();
  std::filesystem::remove_all(dir);
  std::ofstream(dir + ".json") << "{\"d-model\": 32, \"steps\": 40, \"eval-lens\": [32]}";
  Outcome t =
      RunMixlab("train --config " + dir + ".json --steps 20 --train-len 32 --batch 8 --eval-every 10 --out " + dir);
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("20 steps"), std::string::npos) << "flags must override --config: " << t.out;
  for (const char* f : {"config.json", "metrics.jsonl", "model.safetensors", "results.json"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + f)) << f;
  Outcome e = RunMixlab("eval --checkpoint " + dir + "/model.safetensors --eval-lens 48,96 --answers 16");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("T=96"), std::string::npos) << e.out;
  // The test split at a length is one fixed set: eval of the checkpoint scores exactly what train's final test scored.
  Outcome same = RunMixlab("eval --checkpoint " + dir + "/model.safetensors --batch 3 --out " + dir + "/eval.json");
  ASSERT_EQ(same.code, 0) << same.err;
  std::ifstream results(dir + "/results.json"), evaluated(dir + "/eval.json");
  const auto train_test = nlohmann::json::parse(results)["test"]["32"];
  const auto eval_test = nlohmann::json::parse(evaluated)["test"]["32"];
  EXPECT_EQ(train_test["scored"], eval_test["scored"]);
  EXPECT_EQ(train_test["correct"], eval_test["correct"]);
  EXPECT_GE(train_test["scored"].get<int>(), 2000) << "the default test set";
  EXPECT_EQ(train_test["ci95"].size(), 2u);
}

TEST(Cli, AnalyzeWritesScoresAblationsAndRefusesBadInput) {
  const auto dir = (std::filesystem::temp_directory_path() / "mixlab_cli_analyze").string();
  std::filesystem::remove_all(dir);
  ASSERT_EQ(RunMixlab("train --d-model 16 --steps 4 --batch 4 --train-len 32 --eval-lens 32 --layers softmax,mamba "
                      "--pos none --out " +
                      dir)
                .code,
            0);
  const std::string ckpt = dir + "/model.safetensors";
  Outcome a = RunMixlab("analyze " + ckpt + " --samples 2 --answers 4 --plots false");
  ASSERT_EQ(a.code, 0) << a.err;
  for (const char* f : {"analysis.json", "induction.csv", "previous_token.csv", "sink_mass.csv"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/analysis/" + f)) << f;
  std::ifstream csv(dir + "/analysis/induction.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "layer,head0,head1,head2,head3") << "softmax has 4 heads, mamba 4 channel groups";
  std::ifstream json(dir + "/analysis/analysis.json");
  const std::string text(std::istreambuf_iterator<char>(json), {});
  for (const char* key : {"\"pruning\"", "\"logit_lens\"", "\"similarity\"", "\"accuracy_change\"", "\"mamba\""})
    EXPECT_NE(text.find(key), std::string::npos) << key;
  ExpectUsageError("analyze", "--checkpoint is required");
  ExpectUsageError("analyze /nonexistent/model.safetensors", "not found");
  ExpectUsageError("analyze " + ckpt + " --length 2", "needs sequence length >= 16");
  ExpectUsageError("analyze " + ckpt + " --ablation random", "--ablation");

  Outcome g = RunMixlab("generate " + ckpt + " --prompt-tokens 1,2,3 --tokens 5 --beam-width 2");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find("nucleus"), std::string::npos) << g.out;
  ExpectUsageError("generate " + ckpt, "the prompt is empty");
  ExpectUsageError("generate " + ckpt + " --prompt-tokens 1,999", "outside the vocabulary");
  ExpectUsageError("generate " + ckpt + " --prompt hello", "byte-level");
  ExpectUsageError("generate " + ckpt + " --prompt-tokens 1 --top-p 2", "--top-p");

  Outcome p = RunMixlab("probe " + ckpt + " --fragment-tokens 3,4 --edit repeat --train-steps 2");
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_NE(p.out.find("relative weight change"), std::string::npos) << p.out;
  ExpectUsageError("probe " + ckpt, "the fragment is empty");
  ExpectUsageError("probe " + ckpt + " --context-tokens 1,2 --fragment-tokens 1,2,3", "longer than the context");
  ExpectUsageError("probe " + ckpt + " --fragment-tokens 1 --at 99", "--at 99 is outside");
  ExpectUsageError("probe " + ckpt + " --fragment-tokens 1 --edit swap", "--edit");
}

// A mixer that declares no per-head output projection (ema without its projection) is analysed like any other:
// maps, scores, logit lens and figures, with its ablations skipped and said so; the other layer is ablated as usual.
TEST(Cli, AnalyzeSkipsAblationsOfAMixerWithoutHeadOutput) {
  const auto dir = (std::filesystem::temp_directory_path() / "mixlab_cli_headless").string();
  std::filesystem::remove_all(dir);
  ASSERT_EQ(RunMixlab("train --d-model 16 --steps 4 --batch 4 --train-len 32 --eval-lens 32 --layers ema,softmax "
                      "--ema.output-projection false --pos none --out " +
                      dir)
                .code,
            0);
  Outcome a = RunMixlab("analyze " + dir + "/model.safetensors --samples 2 --answers 4");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.err.find("layer 0 (ema): no per-head output projection declared"), std::string::npos) << a.err;
  EXPECT_EQ(a.err.find("figures not drawn"), std::string::npos) << "the plot script must handle skipped ablations:\n"
                                                                << a.err;
  EXPECT_TRUE(std::filesystem::exists(dir + "/analysis/scores.png"));
  std::ifstream in(dir + "/analysis/analysis.json");
  const auto j = nlohmann::json::parse(in);
  ASSERT_EQ(j["skipped"].size(), 1u);
  int ablated = 0, skipped = 0;
  for (const auto& h : j["heads"]) {
    if (h["layer"] == 0) skipped += h["accuracy_change"].is_null();
    else ablated += h["accuracy_change"].is_number();
  }
  EXPECT_EQ(skipped, 4) << "ema's four heads are not ablatable";
  EXPECT_EQ(ablated, 4) << "softmax's four heads are";
}

TEST(Cli, SnapshotsThenAnalyzeOverTraining) {
  const auto dir = (std::filesystem::temp_directory_path() / "mixlab_cli_snapshots").string();
  std::filesystem::remove_all(dir);
  ExpectUsageError("analyze --over-training " + dir, "no snapshots/ directory");
  ASSERT_EQ(RunMixlab("train --task induction --d-model 16 --steps 6 --batch 4 --train-len 32 --eval-lens 32 "
                      "--snapshot-every 3 --out " +
                      dir)
                .code,
            0);
  for (const char* f : {"step_00000000", "step_00000003", "step_00000006"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/snapshots/" + f + ".safetensors")) << f;
  Outcome a = RunMixlab("analyze --over-training " + dir + " --samples 2 --answers 4 --plots false");
  ASSERT_EQ(a.code, 0) << a.err;
  // Three snapshots are too few to tell a phase change from noise: every curve gets a verdict, and it is "no".
  for (const char* curve :
       {"max_induction", "max_answer_induction", "accuracy", "in_context_drop", "text_in_context_drop"})
    EXPECT_NE(a.out.find(std::string(curve) + " "), std::string::npos) << curve << "\n" << a.out;
  EXPECT_EQ(a.out.find("PHASE CHANGE"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("no phase change"), std::string::npos) << a.out;
  std::ifstream csv(dir + "/analysis/over_training/over_training.csv");
  int lines = 0;
  for (std::string line; std::getline(csv, line);) ++lines;
  EXPECT_EQ(lines, 4) << "header + one row per snapshot";
  ExpectUsageError("analyze " + dir + "/model.safetensors --over-training " + dir, "not both");
}

TEST(Cli, ListAndHelp) {
  Outcome l = RunMixlab("list");
  ASSERT_EQ(l.code, 0);
  for (const char* s :
       {"softmax", "mlp", "swiglu", "mamba", "moe", "mqar", "induction", "copy", "selective-copy", "listops", "passkey",
        "char-lm", "fuzzy-recall", "--softmax.n-heads", "params", "zoology-mqar", "mamba-induction"})
    EXPECT_NE(l.out.find(s), std::string::npos) << s;
  Outcome names = RunMixlab("list --names sequence");
  ASSERT_EQ(names.code, 0);
  for (const char* s : {"ema\n", "mamba\n", "softmax\n"}) EXPECT_NE(names.out.find(s), std::string::npos) << s;
  EXPECT_EQ(names.out.find("mlp"), std::string::npos) << "channel mixers are listed with --names channel";
  ExpectUsageError("list --names bogus", "allowed: sequence, channel, task");
  Outcome v = RunMixlab("--version");
  ASSERT_EQ(v.code, 0);
  EXPECT_EQ(v.out.rfind("mixlab ", 0), 0u) << v.out;
  EXPECT_NE(v.out.find("commit"), std::string::npos) << v.out;
  Outcome h = RunMixlab("train --help");
  ASSERT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("--eval-lens"), std::string::npos);
  EXPECT_NE(h.out.find("(default: 64)"), std::string::npos);
}

}  // namespace
