// Whole-model and GEMM benchmarks.
//   train_step/<variant>  one training step (forward, loss, backward, AdamW) of the reference model of
//                         ../shared/peers (2 layers, d_model 128, 4 heads, vocab 256, GELU MLP 4x, pre-LayerNorm,
//                         learned positions, untied head, batch 8) for every sequence mixer and softmax + MoE,
//                         at T = 256, 1024, 4096, and at d_model 256, T = 1024 (the MFU case); and the larger model
//                         (d_model 512, 8 layers, 8 heads, T = 1024, batch 8: train_step/<variant>/T:1024/D:512/L:8).
//                         Counters: tokens/s, model GFLOP/s (3x the forward estimate of every mixer, channel mixer
//                         and the LM head), MFU (that rate over gemm_peak, the better of two 2048^3 GEMM rates at
//                         the same thread count measured just before and just after the case), peak_MB. The
//                         output's context also records the GEMM peaks at 1 thread and at the benchmarks' count.
//   gemm                  mixlab's matmul at the shapes those models use (op 0: forward x W and op 1: input
//                         gradient dy W^T through oneDNN's sgemm; op 2: weight gradient x^T dy through
//                         AddWeightGradient) and at 2048^3: the machine's GEMM rate, against which model GFLOP/s
//                         reads as model FLOP utilisation.
//   build: scripts/build.sh -DMIXLAB_BENCH=ON;  run: build/model_bench --benchmark_out=model.json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <string>
#include <vector>

#include "bench/heap_tracker.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/rng.h"
#include "mixers/registry.h"
#include "models/adamw.h"
#include "models/language_model.h"

namespace mixlab::bench {
namespace {

constexpr int kVocab = 256, kBatch = 8;

ModelConfig ReferenceModel(const std::string& mixer, const std::string& channel, int T, int d_model, int layers) {
  ModelOptions o;
  o.d_model = d_model;
  o.n_layers = layers;
  o.mixer = mixer;
  o.channel = channel;
  o.pos = "learned";
  o.max_len = T;
  o.tie_embeddings = false;
  std::map<std::string, OptionMap> flags;
  const auto opts = FindMixer(mixer, MixerKind::kSequence).make_options();
  for (const auto& f : ListOptions(*opts))
    if (f.name == "n-heads") flags[mixer]["n-heads"] = d_model >= 512 ? "8" : "4";
  return ResolveModelConfig(o, flags, kVocab);
}

// The GEMM rate at the current thread count: the best of 5 runs of a 2048^3 sgemm (oneDNN) after one untimed run.
double MeasureGemmGflops() {
  const int64_t n = 2048;
  Buffer a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    Gemm(false, false, n, n, n, a.data(), b.data(), c.data(), false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (rep > 0) best = std::max(best, 2.0 * n * n * n / s * 1e-9);  // the first run generates the kernel
  }
  return best;
}


void TrainStep(benchmark::State& state, const std::string& mixer, const std::string& channel) {
  const int T = int(state.range(0)), D = int(state.range(1)), layers = int(state.range(2));
  LanguageModel model(ReferenceModel(mixer, channel, T, D, layers));
  model.Initialize(1);
  AdamW optimizer(model.params(), AdamWConfig{});
  Rng rng(7);
  std::vector<int32_t> tokens(size_t(kBatch) * T), targets(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = int32_t(rng.Int(0, kVocab)), targets[i] = int32_t(rng.Int(0, kVocab));
  const std::vector<float> mask(tokens.size(), 1.0f);
  double flops_per_token = 2.0 * D * kVocab;  // LM head
  for (int l = 0; l < model.n_layers(); ++l)
    flops_per_token += model.mixer(l).Describe(T).flops_per_token + model.channel(l).Describe(T).flops_per_token;
  int step = 0;
  auto train_step = [&] {
    model.params().ZeroGrad();
    model.Forward(tokens.data(), kBatch, T, ForwardMode{true, 1, step});
    benchmark::DoNotOptimize(model.Loss(targets.data(), mask.data()));
    model.Backward();
    optimizer.Step(step++);
  };
  // One untimed step first: it allocates (and first touches) every buffer, which a training run pays once. A slow
  // step otherwise runs a single timed iteration that includes it. The peak heap counts it.
  // The GEMM peak this case divides by: the better of two measurements taken just before and just after it (this
  // machine's speed drifts by 5-10% over minutes, so a peak measured at the start of a long run can flatter or
  // penalise a case that runs later). Their buffers are not counted in the case's peak heap.
  const double peak_before = MeasureGemmGflops();
  ResetPeakHeap();
  train_step();
  for (auto _ : state) train_step();
  const double peak_heap_mb = double(PeakHeapBytes()) / (1 << 20);
  const double peak = std::max(peak_before, MeasureGemmGflops());
  const double tokens_done = double(state.iterations()) * kBatch * T;
  state.counters["tokens/s"] = benchmark::Counter(tokens_done, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(tokens_done * 3.0 * flops_per_token * 1e-9, benchmark::Counter::kIsRate);
  state.counters["MFU"] =
      benchmark::Counter(tokens_done * 3.0 * flops_per_token * 1e-9 / peak, benchmark::Counter::kIsRate);
  state.counters["gemm_peak"] = peak;
  state.counters["peak_MB"] = peak_heap_mb;
}

void GemmCase(benchmark::State& state) {
  // op: 0 = forward y = x W, 1 = input gradient dx = dy W^T, 2 = weight gradient dW += x^T dy (the three products
  // of a linear layer; the last two read an operand transposed).
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2), op = state.range(3);
  Buffer a(M * K, 0.5f), b(K * N, 0.25f), c(M * N);
  for (auto _ : state) {
    if (op == 2) AddWeightGradient(a.data(), b.data(), c.data(), K, M, N);  // what LinearBackward calls for dW
    else Gemm(false, op == 1, M, N, K, a.data(), b.data(), c.data(), false);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(double(state.iterations()) * 2.0 * M * N * K * 1e-9, benchmark::Counter::kIsRate);
}

void RegisterAll() {
  std::vector<std::pair<std::string, std::string>> variants;
  for (const auto& name : ListMixers(MixerKind::kSequence)) variants.push_back({name, "mlp"});
  variants.push_back({"softmax", "moe"});
  for (const auto& [mixer, channel] : variants) {
    const std::string label = "train_step/" + mixer + (channel == "mlp" ? "" : "/" + channel);
    benchmark::RegisterBenchmark(
        label.c_str(), [mixer = mixer, channel = channel](benchmark::State& s) { TrainStep(s, mixer, channel); })
        ->Args({256, 128, 2})
        ->Args({1024, 128, 2})
        ->Args({4096, 128, 2})
        ->Args({1024, 256, 2})
        ->Args({1024, 512, 8})
        ->ArgNames({"T", "D", "L"})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  auto* g = benchmark::RegisterBenchmark("gemm", GemmCase);
  const int64_t rows = int64_t(kBatch) * 1024;
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{128, 128}, {512, 128}, {128, 512}, {kVocab, 128}}) {
    g->Args({rows, n, k, 0});  // forward
    g->Args({rows, k, n, 1});  // input gradient
    g->Args({k, n, rows, 2});  // weight gradient
  }
  g->Args({2048, 2048, 2048, 0})->ArgNames({"M", "N", "K", "op"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace
}  // namespace mixlab::bench

// Benchmarks are registered in main, after static initialisation has filled the mixer registry (each mixer registers
// itself from its own file, in an order the linker chooses).
int main(int argc, char** argv) {
  mixlab::bench::RegisterAll();
  benchmark::Initialize(&argc, argv);
  // The GEMM peaks at 1 thread and at the benchmarks' thread count, recorded in the output's context.
  const int threads = omp_get_max_threads();
  const double peak = mixlab::bench::MeasureGemmGflops();
  omp_set_num_threads(1);
  const double one_thread = mixlab::bench::MeasureGemmGflops();
  omp_set_num_threads(threads);
  benchmark::AddCustomContext("gemm_peak_gflops_1_thread", std::to_string(one_thread));
  benchmark::AddCustomContext("gemm_peak_gflops_threads", std::to_string(threads));
  benchmark::AddCustomContext("gemm_peak_gflops", std::to_string(peak));
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
