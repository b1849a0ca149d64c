#include "mixers/ops/diagonal_scan.h"

#include <algorithm>
#include <cstring>

namespace mixlab {
namespace {

constexpr int kLanes = kScanModes / 2;
using Vec = double __attribute__((vector_size(8 * kLanes)));
constexpr int64_t kScanChunk = 64;  // tokens whose states the reverse pass holds at once: 65 x 4 vectors, in L1

Vec Load(const double* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
void Store(double* p, Vec v) { std::memcpy(p, &v, sizeof v); }
double Sum(Vec v) {
  double s = 0;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// Modes [n0, n0 + kScanModes): vector j holds modes n0 + j kLanes onwards.
struct Block {
  Vec zr[2], zi[2], br[2], bi[2], cr[2], ci[2];
  Block(const DiagonalModes& m, int n0) {
    for (int j = 0; j < 2; ++j) {
      const int n = n0 + j * kLanes;
      zr[j] = Load(&m.z_re[n]), zi[j] = Load(&m.z_im[n]);
      br[j] = Load(&m.beta_re[n]), bi[j] = Load(&m.beta_im[n]);
      cr[j] = Load(&m.c_re[n]), ci[j] = Load(&m.c_im[n]);
    }
  }
};

struct State {
  Vec re[2] = {}, im[2] = {};
};

// Advances h over tokens [t0, t1); adds 2 Re(c . h_t) to y[t] when y is given, and stores h_t in states[t - t0] when
// states is given.
inline void Forward(const Block& k, State& h, const float* u, int64_t stride, int64_t t0, int64_t t1, double* y,
                    State* states) {
  for (int64_t t = t0; t < t1; ++t) {
    const double ut = u[t * stride];
    Vec out = {};
    for (int j = 0; j < 2; ++j) {
      const Vec re = k.zr[j] * h.re[j] - k.zi[j] * h.im[j] + k.br[j] * ut;
      const Vec im = k.zr[j] * h.im[j] + k.zi[j] * h.re[j] + k.bi[j] * ut;
      h.re[j] = re;
      h.im[j] = im;
      out += k.cr[j] * re - k.ci[j] * im;
    }
    if (y) y[t] += 2.0 * Sum(out);
    if (states) states[t - t0] = h;
  }
}

}  // namespace

DiagonalModes::DiagonalModes(int modes)
    : count(modes),
      padded(Padded(modes)),
      z_re(padded, 0.0),
      z_im(padded, 0.0),
      beta_re(padded, 0.0),
      beta_im(padded, 0.0),
      c_re(padded, 0.0),
      c_im(padded, 0.0) {}

void DiagonalScanForward(const DiagonalModes& m, const float* u, int64_t stride, int64_t T, double* y) {
  std::fill(y, y + T, 0.0);
  for (int n0 = 0; n0 < m.padded; n0 += kScanModes) {
    State h;
    Forward(Block(m, n0), h, u, stride, 0, T, y, nullptr);
  }
}

void DiagonalScanBackward(const DiagonalModes& m, const float* u, const float* g, int64_t stride, int64_t T, double* du,
                          double* g_z, double* g_beta, double* g_c) {
  std::fill(du, du + T, 0.0);
  const int64_t chunks = (T + kScanChunk - 1) / kScanChunk;
  std::vector<State> starts(chunks), states(kScanChunk + 1);  // states[i + 1] = h_{t0 + i}, states[0] = h_{t0 - 1}
  for (int n0 = 0; n0 < m.padded; n0 += kScanModes) {
    const Block k(m, n0);
    State h;
    for (int64_t c = 0; c < chunks; ++c) {
      starts[c] = h;
      Forward(k, h, u, stride, c * kScanChunk, std::min(T, (c + 1) * kScanChunk), nullptr, nullptr);
    }
    State lambda;
    Vec gzr[2] = {}, gzi[2] = {}, gbr[2] = {}, gbi[2] = {}, gcr[2] = {}, gci[2] = {};
    for (int64_t c = chunks - 1; c >= 0; --c) {
      const int64_t t0 = c * kScanChunk, t1 = std::min(T, t0 + kScanChunk);
      states[0] = h = starts[c];
      Forward(k, h, u, stride, t0, t1, nullptr, states.data() + 1);
      for (int64_t t = t1 - 1; t >= t0; --t) {
        const State &now = states[t - t0 + 1], &before = states[t - t0];
        const double gt = g[t * stride], ut = u[t * stride];
        Vec d = {};
        for (int j = 0; j < 2; ++j) {
          const Vec lr = gt * k.cr[j] + k.zr[j] * lambda.re[j] - k.zi[j] * lambda.im[j];
          const Vec li = gt * k.ci[j] + k.zr[j] * lambda.im[j] + k.zi[j] * lambda.re[j];
          lambda.re[j] = lr;
          lambda.im[j] = li;
          gzr[j] += lr * before.re[j] - li * before.im[j];
          gzi[j] += lr * before.im[j] + li * before.re[j];
          gbr[j] += lr * ut;
          gbi[j] += li * ut;
          gcr[j] += gt * now.re[j];
          gci[j] += gt * now.im[j];
          d += k.br[j] * lr - k.bi[j] * li;
        }
        du[t] += 2.0 * Sum(d);
      }
    }
    for (int j = 0; j < 2; ++j) {
      const int n = n0 + j * kLanes;
      Store(g_z + n, gzr[j]), Store(g_z + m.padded + n, gzi[j]);
      Store(g_beta + n, gbr[j]), Store(g_beta + m.padded + n, gbi[j]);
      Store(g_c + n, gcr[j]), Store(g_c + m.padded + n, gci[j]);
    }
  }
}

}  // namespace mixlab
