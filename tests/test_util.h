// Shared test helpers: random buffers, central finite-difference gradient checks, a harness that builds one mixer
// with its own parameter store, and running a shell command with its output captured.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mixers/ops/matmul.h"
#include "mixers/ops/rng.h"
#include "mixers/ops/tensor.h"
#include "mixers/registry.h"
#include "models/param_store.h"

namespace mixlab::testing {

inline std::vector<float> RandomVector(int64_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.Normal()) * scale;
  return v;
}

inline RowMatrix RandomMatrix(int64_t rows, int64_t cols, uint64_t seed) {
  return AsMatrix(RandomVector(rows * cols, seed).data(), rows, cols);
}

// A shell command's exit code and what it wrote to stdout and stderr (through files named after `tag` in the temp
// directory).
struct CommandResult {
  int code;
  std::string out, err;
};

inline CommandResult RunCommand(const std::string& cmd, const std::string& tag) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string unique = tag + "_" + std::to_string(getpid());  // tests run in parallel processes (ctest -j)
  const std::string out_path = (dir / (unique + "_out.txt")).string(),
                    err_path = (dir / (unique + "_err.txt")).string();
  const int status = std::system((cmd + " > " + out_path + " 2> " + err_path).c_str());
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  return {WEXITSTATUS(status), slurp(out_path), slurp(err_path)};
}

inline double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

inline float MaxAbsDiff(const float* a, const float* b, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// ||a - b|| / ||b|| over two equally long buffers.
inline float RelativeDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += double(a[i] - b[i]) * (a[i] - b[i]), den += double(b[i]) * b[i];
  return float(std::sqrt(num / std::max(den, 1e-30)));
}

// Compares analytic gradients with central differences of `loss` at `samples` random coordinates of x.
// Passes when ||numeric - analytic|| <= rtol * ||numeric|| + atol over the sampled coordinates and the
// sampled gradient is not identically zero (a check that cannot fail is no check).
inline void ExpectGradientMatches(const std::function<double()>& loss, float* x, const float* analytic, int64_t n,
                                  int samples, float eps, double rtol, const std::string& what, uint64_t seed = 7,
                                  double atol = 1e-6) {
  Rng rng(seed);
  double diff2 = 0, num2 = 0, ana2 = 0;
  std::string worst;
  double worst_err = -1;
  for (int s = 0; s < samples; ++s) {
    const int64_t i = rng.Int(0, n);
    const float saved = x[i];
    x[i] = saved + eps;
    const double up = loss();
    x[i] = saved - eps;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2.0 * eps);
    diff2 += (numeric - analytic[i]) * (numeric - analytic[i]);
    num2 += numeric * numeric;
    ana2 += double(analytic[i]) * analytic[i];
    if (std::abs(numeric - analytic[i]) > worst_err) {
      worst_err = std::abs(numeric - analytic[i]);
      worst = "index " + std::to_string(i) + ": numeric " + std::to_string(numeric) + " analytic " +
              std::to_string(analytic[i]);
    }
  }
  EXPECT_GT(ana2, 0.0) << what << ": sampled analytic gradient is identically zero";
  EXPECT_LE(std::sqrt(diff2), rtol * std::sqrt(num2) + atol)
      << what << ": relative error " << std::sqrt(diff2 / std::max(num2, 1e-30)) << ", worst " << worst;
}

// One mixer with its own parameters, initialised from a seed.
struct MixerHarness {
  std::unique_ptr<Mixer> mixer;
  ParamStore store;
  std::unique_ptr<MixerContext> ctx;

  MixerHarness(const std::string& name, MixerKind kind, const MixerDims& dims, const OptionMap& options,
               uint64_t seed = 1) {
    mixer = MakeMixer(name, kind, dims, options);
    std::vector<int> idx;
    for (const auto& p : mixer->Params()) idx.push_back(store.Add(p.name, p));
    store.Allocate();
    store.Initialize(seed);
    // Rescale normal-initialised matrices from std 0.02 to 1/sqrt(fan_in): at the tiny sizes of these tests,
    // 0.02 leaves attention uniform and every gradient near zero, which would make the checks toothless.
    for (const auto& p : store.params())
      if (p.spec.init == Init::kNormal && p.spec.std > 0) {
        const float scale = 1.0f / (std::sqrt(float(p.spec.shape[0])) * p.spec.std);
        for (int64_t i = 0; i < p.spec.Numel(); ++i) store.values()[p.offset + i] *= scale;
      }
    std::vector<ParamRef> refs;
    for (int i : idx) refs.push_back(store.Ref(i));
    mixer->Bind(refs);
    mixer->InitCustomParams(seed);
    ctx = mixer->NewContext();
  }
  std::vector<float> Forward(const std::vector<float>& x, const std::vector<int32_t>& pos, int B, int T,
                             const ForwardMode& mode = {}) {
    std::vector<float> y(x.size());
    mixer->Forward(x.data(), pos.data(), B, T, y.data(), *ctx, mode);
    return y;
  }
};

// A registry or fixture name as a GoogleTest parameter name (letters, digits and '_' only): "rwkv-ffn" -> "rwkv_ffn".
inline std::string TestName(std::string name) {
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

inline std::vector<int32_t> Positions(int B, int T, int offset = 0) {
  std::vector<int32_t> p(size_t(B) * T);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) p[size_t(b) * T + t] = t + offset;
  return p;
}

// Output, input gradient and parameter gradients of one forward/backward on seeded random x (B, T, D) and dy.
struct ForwardBackward {
  std::vector<float> y, dx, grads;
};

inline ForwardBackward RunForwardBackward(MixerHarness& h, int B, int T, int D, const ForwardMode& mode = {}) {
  auto x = RandomVector(int64_t(B) * T * D, 4);
  auto dy = RandomVector(int64_t(B) * T * D, 5);
  ForwardBackward r;
  r.y = h.Forward(x, Positions(B, T), B, T, mode);
  r.dx.resize(x.size());
  h.store.ZeroGrad();
  h.mixer->Backward(*h.ctx, dy.data(), r.dx.data());
  r.grads.assign(h.store.grads(), h.store.grads() + h.store.size());
  return r;
}

}  // namespace mixlab::testing
