#include "experiments/presets.h"

#include "mixers/tensor.h"

namespace mixlab {

namespace {
const char* kAllFamilies = "softmax,linear,performer,local,sparse,gla,mamba,softmax/moe";

// Presets state their own scale rather than inherit the default compare's (which is tuned to finish in ten
// minutes): d_model 64, training length 64 tested at 64..512, lr 3e-3 with 100 warmup steps, validation every 250
// steps, unless the preset says otherwise.
OptionMap AtPresetScale(OptionMap flags) {
  flags.insert({{"d-model", "64"}, {"train-len", "64"}, {"eval-lens", "64,128,256,512"}, {"lr", "3e-3"}, {"warmup", "100"},
                {"eval-every", "250"}});
  return flags;
}
}  // namespace

const std::vector<Preset>& Presets() {
  static const std::vector<Preset> presets = [] {
    std::vector<Preset> list = {
      {"zoology-mqar",
       "Zoology (Arora et al. 2023) figure 2: MQAR accuracy against model width for attention and gated/linear "
       "recurrences; attention solves MQAR at every width, the recurrences need width growing with the sequence length "
       "and the number of pairs",
       "2 layers, d_model 64 and 128, T = 64 with 4 pairs (Zoology: T 64..512 with up to 64 pairs, vocab 8192, d_model up to "
       "512), vocab 16, 1500 steps of batch 64, the best of lr 1e-3 and 3e-3 per variant on validation (Zoology sweeps the "
       "learning rate too); softmax, linear attention, GLA and Mamba. At 600 steps softmax attention had not left the "
       "1/pairs plateau at either width",
       {{"tasks", "mqar"}, {"mixers", "softmax,linear,gla,mamba"}, {"sweep", "d-model=64,128"}, {"lrs", "1e-3,3e-3"},
        {"train-len", "64"}, {"eval-lens", "64,128,256"}, {"mqar.pairs", "4"}, {"steps", "1500"}, {"batch", "64"},
        {"warmup", "150"}}},
      {"mamba-induction",
       "Mamba (Gu and Dao 2023) table 2: induction heads trained at length 256 and tested up to 2^20; Mamba extrapolates "
       "perfectly, attention with most positional encodings fails beyond about 2x the training length",
       "2 layers d_model 64, vocab 16, 2000 steps of batch 32 at lr 1e-3, tested up to 2^14 = 16384 (the paper: 2^20) on 32 "
       "sequences per length from 4096 up, validated only at the end (softmax attention at 16k dominates the cost otherwise). "
       "With 1500 steps of batch 16 at lr 3e-3 no mixer left chance; Mamba at this budget reaches 99% at step 1500",
       {{"tasks", "induction"}, {"mixers", "softmax,linear,gla,mamba,local"}, {"train-len", "256"},
        {"eval-lens", "256,512,1024,2048,4096,8192,16384"}, {"steps", "2000"}, {"batch", "32"}, {"lr", "1e-3"},
        {"eval-every", "0"}, {"eval-batches", "8"}}},
      {"mamba-selective-copy",
       "Mamba (Gu and Dao 2023) table 1: selective copying (16 tokens among noise); S6 (Mamba) 99.8%, S4 and linear "
       "time-invariant models 18-57%, attention solves it",
       "T = 256 instead of 4096, 2 layers d_model 64",
       {{"tasks", "selective-copy"}, {"mixers", "softmax,linear,gla,mamba"}, {"train-len", "256"}, {"eval-lens", "256,512"},
        {"steps", "2000"}, {"batch", "32"}}},
      {"mad",
       "MAD (Poli et al. 2024): in-context recall, fuzzy recall, noisy recall, selective copying, compression and "
       "memorization, each task with MAD's default vocabulary and counts; hybrids of attention and recurrences score best "
       "overall",
       "one training length for all tasks (T = 128; MAD: 128 for recall, 256 for selective copying, 32 for compression and "
       "memorization)",
       {{"tasks", "in-context-recall,fuzzy-recall,noisy-recall,selective-copy,compression,memorization"},
        {"mixers", "softmax,linear,gla,mamba,mamba+softmax"}, {"train-len", "128"}, {"eval-lens", "128,256"},
        {"steps", "1500"}, {"batch", "32"}}},
      {"lra-listops",
       "Long Range Arena (Tay et al. 2021) ListOps: transformers and efficient variants reach 15-38% (chance 10%)",
       "T = 512 (LRA: up to 2000 tokens), 2 layers d_model 64",
       {{"tasks", "listops"}, {"mixers", "softmax,linear,performer,local,gla,mamba"}, {"train-len", "512"},
        {"eval-lens", "512,1024"}, {"steps", "2000"}, {"batch", "16"}}},
      {"char-lm",
       "character-level language modelling on real English text (Debian's fortunes): bits per byte by mixer",
       "2 layers d_model 128, T = 256, 3000 steps; no published number for this corpus",
       {{"tasks", "char-lm"}, {"mixers", kAllFamilies}, {"d-model", "128"}, {"train-len", "256"}, {"eval-lens", "256,1024"},
        {"steps", "3000"}, {"batch", "16"}, {"lr", "1e-3"}}},
      {"positional",
       "positional encodings for softmax attention on recall and induction, train short / test long",
       "2 layers d_model 64",
       {{"tasks", "mqar,induction"}, {"mixers", "softmax"}, {"positions", "none,learned,sinusoidal,rope,alibi"},
        {"steps", "1500"}, {"batch", "64"}}},
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
