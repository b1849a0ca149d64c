#include "experiments/run/presets.h"

#include "mixers/ops/usage_error.h"

namespace mixlab {

namespace {
const char* kAllFamilies = "softmax,linear,performer,local,sparse,gla,mamba,softmax/moe";

// Presets state their own scale rather than inherit the default compare's (which is tuned to finish in ten
// minutes): d_model 64, training length 64 tested at 64..512, lr 3e-3 with 100 warmup steps, validation every 250
// steps, unless the preset says otherwise.
OptionMap AtPresetScale(OptionMap flags) {
  flags.insert({{"d-model", "64"},
                {"train-len", "64"},
                {"eval-lens", "64,128,256,512"},
                {"lr", "3e-3"},
                {"warmup", "100"},
                {"eval-every", "250"}});
  return flags;
}
}  // namespace

const std::vector<Preset>& Presets() {
  static const std::vector<Preset> presets = [] {
    std::vector<Preset> list = {
        {"zoology-mqar",
         "Zoology (Arora et al. 2023) figure 2: MQAR accuracy against the number of key-value pairs and model width, "
         "trained "
         "on a mixture of (length, pairs) settings and tested on the hard ones; attention solves MQAR at every width, "
         "gated "
         "and linear recurrences fall off as the pairs grow at fixed width and recover with width",
         "vocabulary 16 (Zoology: 8192), so at most 7 pairs: with 32 or more symbols softmax attention stayed on the "
         "1/pairs "
         "plateau (it guesses among the values shown) at 4 pairs in T 64 for 2000-8000 steps at d_model 64 and 128, 1 "
         "or 4 "
         "heads, lr 1e-3 or 3e-3, with or without the mixture. Attention runs with one head (Zoology's) and with 4: on "
         "one seed "
         "each, 4 heads stayed on the plateau at d_model 64 and one head at d_model 128, while the other setting "
         "solved it. "
         "Training mixture 32:2, 64:4, 128:7 at T 128 (Zoology: 64:4 "
         "up to 256:64), tested at 64 and 128 with 2, 4, 6 and 7 pairs; d_model 64 and 128; 2000 steps of batch 64, "
         "the "
         "better of lr 1e-3 and 3e-3 on validation (Zoology sweeps the learning rate too; softmax attention at d_model "
         "64 "
         "stayed on the plateau at 1e-3)",
         {{"tasks", "mqar"},
          {"mixers", "softmax:n-heads=1,softmax,linear,gla,mamba"},
          {"sweep", "d-model=64,128"},
          {"train-len", "128"},
          {"eval-lens", "64,128"},
          {"mqar.vocab", "16"},
          {"mqar.pairs", "7"},
          {"mqar.mixture", "32:2,64:4,128:7"},
          {"eval-sweep", "mqar.pairs=2,4,6,7"},
          {"steps", "2000"},
          {"batch", "64"},
          {"lrs", "1e-3,3e-3"},
          {"warmup", "100"},
          {"seeds", "3"}}},
        {"mamba-induction",
         "Mamba (Gu and Dao 2023) table 2: induction heads trained at length 256 and tested up to 2^20; Mamba "
         "extrapolates "
         "perfectly, attention learns the task at its training length and fails beyond about 2x with RoPE, degrades "
         "more "
         "slowly with ALiBi and fails at once without positions",
         "trained at length 64 (the paper: 256) and tested up to 2^14 = 16384 (256x; the paper: 2^20, 4096x), 2 layers "
         "d_model 64, vocabulary 16, 2000 steps of batch 64 at lr 1e-3, 3 seeds. At length 256 with 2000 steps of "
         "batch 32 "
         "no attention variant left chance, so the paper's attention rows could not be shown; at 64 softmax attention "
         "reaches "
         "99% by step 600",
         {{"tasks", "induction"},
          {"mixers", "softmax@rope,softmax@alibi,softmax@none,mamba,gla"},
          {"train-len", "64"},
          {"eval-lens", "64,128,256,1024,4096,16384"},
          {"steps", "2000"},
          {"batch", "64"},
          {"lr", "1e-3"},
          {"warmup", "200"},
          {"eval-every", "500"},
          {"seeds", "3"},
          {"test-answers", "256"}}},  // one answer per sequence: 256 x 16384 tokens
        {"mamba-selective-copy",
         "Mamba (Gu and Dao 2023) table 1: selective copying (16 tokens among noise); S6 (Mamba) 99.8%, S4 and linear "
         "time-invariant models 18-57%, attention solves it",
         "T = 256 instead of 4096, 2 layers d_model 64, 3 seeds; S4D (`s4d`) is the time-invariant S4, GLA with "
         "RetNet's fixed decays (`gla:gate=retnet`) a second time-invariant recurrence",
         {{"tasks", "selective-copy"},
          {"mixers", "softmax,linear,gla,gla:gate=retnet,s4d,mamba"},
          {"train-len", "256"},
          {"eval-lens", "256,512"},
          {"steps", "2000"},
          {"batch", "32"},
          {"seeds", "3"}}},
        {"mad",
         "MAD (Poli et al. 2024): in-context recall, fuzzy recall, noisy recall, selective copying, compression and "
         "memorization, each task with MAD's default vocabulary and counts; hybrids of attention and recurrences score "
         "best "
         "overall",
         "one training length for all tasks (T = 128; MAD: 128 for recall, 256 for selective copying, 32 for "
         "compression and "
         "memorization)",
         {{"tasks", "in-context-recall,fuzzy-recall,noisy-recall,selective-copy,compression,memorization"},
          {"mixers", "softmax,linear,gla,mamba,mamba+softmax"},
          {"train-len", "128"},
          {"eval-lens", "128,256"},
          {"steps", "1500"},
          {"batch", "32"}}},
        {"lra-listops",
         "Long Range Arena (Tay et al. 2021) ListOps, table 1: on expressions of 500-2000 tokens transformers and most "
         "efficient variants reach 35-37% (full attention 36.4%), local attention 15.8%, linear transformer 16.1%, "
         "Performer "
         "18.0% (chance about 10%)",
         "LRA's length filter at half scale: expressions of 250-1000 tokens at T = 1024 (LRA: 500-2000 at T = 2000), 2 "
         "layers "
         "d_model 64, 2000 steps of batch 16 (LRA: 5000 steps of batch 32, d_model 512), 3 seeds",
         {{"tasks", "listops"},
          {"mixers", "softmax,linear,performer,local,gla,mamba"},
          {"train-len", "1024"},
          {"eval-lens", "1024"},
          {"listops.min-len", "250"},
          {"listops.max-len", "1000"},
          {"steps", "2000"},
          {"batch", "16"},
          {"lr", "1e-3"},
          {"seeds", "3"},
          {"eval-every", "500"}}},
        {"char-lm",
         "character-level language modelling on real English text (Debian's fortunes): bits per byte by mixer",
         "2 layers d_model 128, T = 256, 3000 steps; no published number for this corpus",
         {{"tasks", "char-lm"},
          {"mixers", kAllFamilies},
          {"d-model", "128"},
          {"train-len", "256"},
          {"eval-lens", "256,1024"},
          {"steps", "3000"},
          {"batch", "16"},
          {"lr", "1e-3"},
          {"val-answers", "4096"},
          {"test-answers", "32768"}}},  // every byte scored: 16 and 128 x 256
        {"olsson-induction",
         "Olsson et al. (2022) induction heads: a 2-layer attention-only transformer trained on natural text forms "
         "induction "
         "heads in a short window of training (a phase change), visible as a jump of the induction score on repeated "
         "random "
         "sequences together with a fall of the in-context score (late minus early loss)",
         "character-level (bytes of Debian's fortunes) instead of tokens, d_model 128 with 4 heads instead of 12 heads "
         "of 64, "
         "3000 steps of 16 x 256 bytes (12M bytes; Olsson: billions of tokens), 3 seeds; a snapshot every 100 steps, "
         "each read "
         "by `mixlab analyze --over-training` and tested for a phase change against the other intervals",
         {{"tasks", "char-lm"},
          {"mixers", "softmax/none"},
          {"d-model", "128"},
          {"train-len", "256"},
          {"eval-lens", "256,1024"},
          {"steps", "3000"},
          {"batch", "16"},
          {"lr", "1e-3"},
          {"warmup", "100"},
          {"snapshot-every", "100"},
          {"seeds", "3"},
          {"eval-every", "500"},
          {"val-answers", "4096"},
          {"test-answers", "32768"}}},
        {"positional",
         "positional encodings for softmax attention on recall and induction, train short / test long",
         "2 layers d_model 64",
         {{"tasks", "mqar,induction"},
          {"mixers", "softmax"},
          {"positions", "none,learned,sinusoidal,rope,alibi"},
          {"steps", "1500"},
          {"batch", "64"}}},
    };
    for (auto& p : list) p.flags = AtPresetScale(p.flags);
    return list;
  }();
  return presets;
}

const Preset& FindPreset(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& p : Presets()) {
    if (p.name == name) return p;
    names.push_back(p.name);
  }
  throw UsageError("unknown preset '" + name + "'; known: " + JoinList(names, ", "));
}

}  // namespace mixlab
