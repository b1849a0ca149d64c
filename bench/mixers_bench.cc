// Scaling benchmarks over the mixer registry: every registered sequence mixer, no per-mixer code. For
// T = 64 ... 65536 (doubling), batch 1, d_model 128, default options:
//   forward/<mixer>           an inference Forward over (1, T, 128) (ForwardMode::inference: nothing kept for backward)
//   forward_backward/<mixer>  Forward + Backward
//   decode/<mixer>            one-token Step after a context of T tokens (averaged over the next 64 positions)
// plus width and batch cases at T = 1024 (d_model 64/128/256, batch 1/8), and
//   forward_1M/<mixer>        one Forward over (1, 2^20, 128) for every mixer whose cost per token does not grow
//                             with T; peak_MB (above the 1 GiB of input and output) shows whether it fits.
// A length is skipped when one forward
// would exceed kMaxFlops by the mixer's own estimate (softmax attention beyond 16k). Counters: tokens/s, GFLOP/s
// (Describe's estimate; forward + backward counts 3x the forward), peak_MB (peak heap of the measured
// iterations, heap_tracker.h). Complexity in T is fitted per family (SetComplexityN / oAuto).
//   build: scripts/build.sh -DMIXLAB_BENCH=ON;  run: build/mixers_bench --benchmark_out=mixers.json
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "bench/heap_tracker.h"
#include "mixers/ops/rng.h"
#include "mixers/registry.h"
#include "models/param_store.h"

namespace mixlab::bench {
namespace {

constexpr double kMaxFlops = 2e11;
constexpr int kDecodeSteps = 64;
constexpr int64_t kMillion = int64_t(1) << 20;

struct Harness {
  std::unique_ptr<Mixer> mixer;
  ParamStore store;
  Harness(const std::string& name, int d_model) {
    mixer = MakeMixer(name, MixerKind::kSequence, MixerDims{d_model, 2, 0, "none"}, {});
    std::vector<int> idx;
    for (const auto& p : mixer->Params()) idx.push_back(store.Add(p.name, p));
    store.Allocate();
    store.Initialize(1);
    std::vector<ParamRef> refs;
    for (int i : idx) refs.push_back(store.Ref(i));
    mixer->Bind(refs);
    mixer->InitCustomParams(1);
  }
};

Buffer Random(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Buffer v(n);
  for (auto& x : v) x = float(rng.Normal());
  return v;
}

void Report(benchmark::State& state, const Mixer& mixer, int T, int B, double flops_factor) {
  const double tokens = double(state.iterations()) * B * T;
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(tokens * mixer.Describe(T).flops_per_token * flops_factor * 1e-9, benchmark::Counter::kIsRate);
  state.counters["peak_MB"] = double(PeakHeapBytes()) / (1 << 20);
  state.SetComplexityN(T);
}

void Forward(benchmark::State& state, const std::string& name, bool backward) {
  const int T = int(state.range(0)), B = int(state.range(1)), D = int(state.range(2));
  Harness h(name, D);
  const Buffer x = Random(int64_t(B) * T * D, 1), dy = backward ? Random(x.size(), 2) : Buffer();
  Buffer y(x.size()), dx(backward ? x.size() : 0);
  std::vector<int32_t> pos(size_t(B) * T);
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = int32_t(i % T);
  auto ctx = h.mixer->NewContext();
  ForwardMode mode;
  mode.inference = !backward;  // a forward-only case measures inference: nothing kept for a backward pass
  ResetPeakHeap();
  for (auto _ : state) {
    h.mixer->Forward(x.data(), pos.data(), B, T, y.data(), *ctx, mode);
    if (backward) h.mixer->Backward(*ctx, dy.data(), dx.data());
    benchmark::DoNotOptimize(y.data());
  }
  Report(state, *h.mixer, T, B, backward ? 3.0 : 1.0);
}

void Decode(benchmark::State& state, const std::string& name) {
  const int T = int(state.range(0)), D = int(state.range(2));
  Harness h(name, D);
  const Buffer x = Random(D, 3);
  Buffer y(D);
  auto s = h.mixer->NewState(1);
  for (int32_t t = 0; t < T; ++t) h.mixer->Step(x.data(), &t, y.data(), *s);  // the context
  int32_t t = T;
  ResetPeakHeap();
  for (auto _ : state) {
    h.mixer->Step(x.data(), &t, y.data(), *s);
    ++t;
  }
  state.counters["tokens/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["peak_MB"] = double(PeakHeapBytes()) / (1 << 20);
  state.SetComplexityN(T);
}

void RegisterAll() {
  for (const auto& name : ListMixers(MixerKind::kSequence)) {
    const auto probe = MakeMixer(name, MixerKind::kSequence, MixerDims{128, 2, 0, "none"}, {});
    std::vector<int64_t> lengths;
    for (int64_t T = 64; T <= 65536; T *= 2)
      if (probe->Describe(int(T)).flops_per_token * double(T) <= kMaxFlops) lengths.push_back(T);
    for (bool backward : {false, true}) {
      auto* b = benchmark::RegisterBenchmark((std::string(backward ? "forward_backward/" : "forward/") + name).c_str(),
                                             [name, backward](benchmark::State& s) { Forward(s, name, backward); });
      for (int64_t T : lengths) b->Args({T, 1, 128});
      b->ArgNames({"T", "B", "D"})->Unit(benchmark::kMillisecond)->Complexity(benchmark::oAuto)->UseRealTime();
      auto* w = benchmark::RegisterBenchmark((std::string(backward ? "width_fb/" : "width_f/") + name).c_str(),
                                             [name, backward](benchmark::State& s) { Forward(s, name, backward); });
      for (int64_t D : {64, 128, 256})
        for (int64_t B : {1, 8}) w->Args({1024, B, D});
      w->ArgNames({"T", "B", "D"})->Unit(benchmark::kMillisecond)->UseRealTime();
    }
    const double per_token_short = probe->Describe(1024).flops_per_token;
    if (probe->Describe(kMillion).flops_per_token <= 1.5 * per_token_short) {  // linear in T: one million-token pass
      benchmark::RegisterBenchmark(("forward_1M/" + name).c_str(),
                                   [name](benchmark::State& s) { Forward(s, name, false); })
          ->Args({kMillion, 1, 128})
          ->ArgNames({"T", "B", "D"})
          ->Iterations(1)
          ->Unit(benchmark::kSecond)
          ->UseRealTime();
    }
    auto* d =
        benchmark::RegisterBenchmark(("decode/" + name).c_str(), [name](benchmark::State& s) { Decode(s, name); });
    for (int64_t T : lengths)
      if (T <= 16384) d->Args({T, 1, 128});
    d->ArgNames({"T", "B", "D"})
        ->Iterations(kDecodeSteps)
        ->Unit(benchmark::kMicrosecond)
        ->Complexity(benchmark::oAuto)
        ->UseRealTime();
  }
}

}  // namespace
}  // namespace mixlab::bench

// Benchmarks are registered in main, after static initialisation has filled the mixer registry (each mixer registers
// itself from its own file, in an order the linker chooses).
int main(int argc, char** argv) {
  mixlab::bench::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
