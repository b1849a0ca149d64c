// S4D, the diagonal linear time-invariant state space (Gu et al. 2022, "On the Parameterization and Initialization of
// Diagonal State Space Models"): the time-invariant baseline of the Mamba paper. Per channel c of E = d_model channels
// and M = d_state / 2 complex modes n (the conjugate modes are the factor 2 Re):
//
//   u = x Win                                          (D, E)
//   A_n = -exp(a_re_n) + i a_im_n,  dt_c = exp(log_dt_c),  z_n = exp(dt_c A_n)
//   K_c[l] = 2 Re sum_n C_n B_n (z_n - 1) / A_n z_n^l    zero-order hold; B, C complex, independent of the input
//   y_c = K_c * u_c + D_c u_c                          causal convolution
//   out = y Wo                                         Wo (E, D), the per-group output projection
//
// Training runs the recurrence h_n <- z_n h_n + (z_n - 1) / A_n B_n u, y = 2 Re sum_n C_n h_n + D u (impl=scan, the
// default: O(T M) per channel, backward by the reverse recurrence), or goes through the kernel K, computed from the
// parameters in double and applied by FFT in O(T log T) (impl=fft; backward: dK by an FFT correlation of dy and u,
// then the parameter gradients through the kernel's closed form), or by the O(T^2) direct sum (impl=naive, the
// reference). Measured in the reference model (d_model 128, d_state 64, batch 8, 2 threads): the scan, vectorised
// over modes (ops/diagonal_scan.h), 83.1k / 82.6k training tokens/s at T 256 / 4096 (model_bench); fft 29.3k / 24.8k
// and naive 35.0k / 5.1k at T 256 / 2048 (when the scalar scan ran 31.9k / 32.2k), so scan is the default. Step runs
// the same recurrence with z and the discretised B computed once per decode: O(M) per channel and token, state 2 E M
// floats. Initialisation: S4D-Lin (A_n = -1/2 + i pi n) or S4D-Real (A_n = -(n + 1)); B = 1; C ~ N(0, 1/2) per part;
// dt log-uniform in [dt-min, dt-max]. Mixing: M_c[t, s] = K_c[t - s] (+ D_c on the diagonal), averaged over groups of
// channels; the value path is u (no gate), exact with one channel per group. Saves x, u and y (scan: the states are
// recomputed in backward), and the kernel (fft, naive).
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <complex>
#include <unsupported/Eigen/FFT>

#include "mixers/head_groups.h"
#include "mixers/head_projections.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/diagonal_scan.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/rng.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

using Complex = std::complex<double>;

struct S4dOptions : Options {
  int d_state = 64;
  std::string init = "lin";
  float dt_min = 0.001f;
  float dt_max = 0.1f;
  std::string impl = "scan";
  int mixing_groups = 4;
  void Visit(OptionVisitor& v) override {
    v.Int("d-state", d_state, "state size N per channel (N / 2 complex modes; must be even)", 2, 4096);
    v.Choice("init", init, "A's initialisation: lin (S4D-Lin, -1/2 + i pi n) or real (S4D-Real, -(n + 1))",
             {"lin", "real"});
    v.Float("dt-min", dt_min, "smallest initial step size (log-uniform init of log_dt)", 1e-6f, 1.0f);
    v.Float("dt-max", dt_max, "largest initial step size", 1e-6f, 10.0f);
    v.Choice("impl", impl,
             "fft: the kernel applied by FFT, O(T log T); scan: the recurrence, O(T M), no kernel; naive: the O(T^2) "
             "direct convolution",
             {"fft", "scan", "naive"});
    v.Int("mixing-groups", mixing_groups, "channel groups in the exported mixing matrices (capped at d_model)", 1,
          1 << 16);
  }
};

enum Param { kWin, kLogDt, kARe, kAIm, kB, kC, kDSkip, kWo };

struct S4dContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, u, y;                // x (B, T, D); u, y (B, T, E)
  std::vector<double> kernel;    // (E, T)
  Buffer du, dy_inner;           // (B, T, E)
  std::vector<double> dk_parts;  // (B, E, T): dK per sequence, summed in a fixed order
};

struct S4dState : CopyableState<S4dState> {
  int B = 0;
  std::vector<double> h;             // (B, E, 2, M): real parts, then imaginary parts
  std::vector<DiagonalModes> modes;  // per channel, fixed for a decode (the weights are)
};

// The first T values of the linear convolution of a and b (each T long), or with `correlate` of a with b reversed:
//   convolve:  out[t] = sum_{s<=t} a[t-s] b[s];   correlate:  out[l] = sum_{t>=l} a[t] b[t-l]
// by FFT of length L >= 2T (no wrap-around).
void FftProduct(const double* a, const double* b, int T, bool correlate, double* out) {
  int L = 1;
  while (L < 2 * T) L *= 2;
  Eigen::FFT<double> fft;
  std::vector<double> pa(L, 0.0), pb(L, 0.0), result;
  std::copy_n(a, T, pa.begin());
  std::copy_n(b, T, pb.begin());
  std::vector<Complex> fa, fb;
  fft.fwd(fa, pa);
  fft.fwd(fb, pb);
  for (int i = 0; i < L; ++i) fa[i] *= correlate ? std::conj(fb[i]) : fb[i];
  fft.inv(result, fa);
  std::copy_n(result.begin(), T, out);
}

class S4d : public SequenceMixer<S4dContext, S4dState> {
 public:
  S4d(const MixerDims& dims, const S4dOptions& o)
      : D_(dims.d_model), E_(dims.d_model), M_(o.d_state / 2), o_(o), dims_(dims) {
    if (o.d_state % 2 != 0)
      throw UsageError(dims.name + ": d-state " + std::to_string(o.d_state) +
                       " must be even (pairs of conjugate modes)");
    if (o.dt_min > o.dt_max)
      throw UsageError(dims.name + ": dt-min " + std::to_string(o.dt_min) + " exceeds dt-max " +
                       std::to_string(o.dt_max));
  }

  std::vector<ParamSpec> Params() const override {
    return {{"win", {D_, E_}, Init::kNormal, InputStd(dims_, D_)},
            {"log_dt", {E_}, Init::kCustom, 0, false},
            {"a_re", {E_, M_}, Init::kCustom, 0, false},
            {"a_im", {E_, M_}, Init::kCustom, 0, false},
            {"b", {E_, M_, 2}, Init::kCustom, 0, false},
            {"c", {E_, M_, 2}, Init::kCustom, 0, false},
            {"d_skip", {E_}, Init::kOnes, 0, false},
            {"wo", {E_, D_}, Init::kNormal, ResidualOutputStd(dims_, E_), true, ParamRole::kHeadOutput, Groups()}};
  }
  void InitCustomParams(uint64_t seed) override {
    Rng rng(seed, 53);
    const bool lin = o_.init == "lin";
    for (int e = 0; e < E_; ++e) {
      params_[kLogDt].value[e] =
          float(std::log(o_.dt_min) + rng.Uniform() * (std::log(o_.dt_max) - std::log(o_.dt_min)));
      for (int n = 0; n < M_; ++n) {
        const int64_t i = int64_t(e) * M_ + n;
        params_[kARe].value[i] = float(lin ? std::log(0.5) : std::log(double(n + 1)));
        params_[kAIm].value[i] = float(lin ? M_PI * n : 0.0);
        params_[kB].value[2 * i] = 1.0f;
        params_[kB].value[2 * i + 1] = 0.0f;
        params_[kC].value[2 * i] = float(std::sqrt(0.5) * rng.Normal());
        params_[kC].value[2 * i + 1] = float(std::sqrt(0.5) * rng.Normal());
      }
    }
  }

  void Mix(const float* x, const int32_t*, int B, int T, float* out, S4dContext& c, const ForwardMode&) override {
    const int64_t N = int64_t(B) * T;
    c.B = B;
    c.T = T;
    c.x.assign(x, x + N * D_);
    c.u.resize(N * E_);
    c.y.resize(N * E_);
    LinearForward(x, P(kWin), c.u.data(), N, D_, E_);
    if (o_.impl == "scan") {
#pragma omp parallel for schedule(static)
      for (int64_t be = 0; be < int64_t(B) * E_; ++be) ScanForward(c, be / E_, be % E_);
      LinearForward(c.y.data(), P(kWo), out, N, E_, D_);
      return;
    }
    c.kernel.resize(int64_t(E_) * T);
#pragma omp parallel for schedule(static)
    for (int e = 0; e < E_; ++e) Kernel(e, T, c.kernel.data() + int64_t(e) * T);
#pragma omp parallel for schedule(static)
    for (int64_t be = 0; be < int64_t(B) * E_; ++be) {
      const int64_t b = be / E_, e = be % E_;
      std::vector<double> u(T), y(T);
      for (int t = 0; t < T; ++t) u[t] = c.u[(b * T + t) * E_ + e];
      Convolve(c.kernel.data() + e * T, u.data(), T, y.data());
      for (int t = 0; t < T; ++t) c.y[(b * T + t) * E_ + e] = float(y[t] + double(P(kDSkip)[e]) * u[t]);
    }
    LinearForward(c.y.data(), P(kWo), out, N, E_, D_);
  }

  void MixBackward(S4dContext& c, const float* dout, float* dx) override {
    const int64_t B = c.B, T = c.T, N = B * T;
    c.dy_inner.resize(N * E_);
    LinearBackward(c.y.data(), P(kWo), dout, c.dy_inner.data(), G(kWo), N, E_, D_);
    c.du.resize(N * E_);
    if (o_.impl == "scan") return ScanBackward(c, dx);
    c.dk_parts.assign(B * E_ * T, 0.0);
    std::vector<double> dd_parts(B * E_, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t be = 0; be < B * E_; ++be) {
      const int64_t b = be / E_, e = be % E_;
      std::vector<double> u(T), g(T), du(T);
      for (int64_t t = 0; t < T; ++t) {
        u[t] = c.u[(b * T + t) * E_ + e];
        g[t] = c.dy_inner[(b * T + t) * E_ + e];
      }
      Correlate(g.data(), c.kernel.data() + e * T, T, du.data());    // du[s] = sum_{t>=s} K[t-s] g[t]
      Correlate(g.data(), u.data(), T, c.dk_parts.data() + be * T);  // dK[l] = sum_t g[t] u[t-l]
      double dd = 0;
      for (int64_t t = 0; t < T; ++t) {
        c.du[(b * T + t) * E_ + e] = float(du[t] + double(P(kDSkip)[e]) * g[t]);
        dd += g[t] * u[t];
      }
      dd_parts[be] = dd;
    }
#pragma omp parallel for schedule(static)
    for (int e = 0; e < E_; ++e) {
      std::vector<double> dk(T, 0.0);
      for (int64_t b = 0; b < B; ++b) {
        const double* part = c.dk_parts.data() + (b * E_ + e) * T;
        for (int64_t l = 0; l < T; ++l) dk[l] += part[l];
      }
      KernelBackward(e, int(T), dk.data());
      double dd = 0;
      for (int64_t b = 0; b < B; ++b) dd += dd_parts[b * E_ + e];
      G(kDSkip)[e] += float(dd);
    }
    LinearBackward(c.x.data(), P(kWin), c.du.data(), dx, G(kWin), N, D_, E_);
  }

  void InitState(S4dState& s, int B) const override {
    s.B = B;
    s.h.assign(int64_t(B) * E_ * 2 * M_, 0.0);
    s.modes.clear();
    for (int e = 0; e < E_; ++e) s.modes.push_back(Modes(e));
  }

  void MixStep(const float* x, const int32_t*, float* out, S4dState& s) override {
    Buffer u(int64_t(s.B) * E_), y(u.size());
    LinearForward(x, P(kWin), u.data(), s.B, D_, E_);
    for (int b = 0; b < s.B; ++b)
      for (int e = 0; e < E_; ++e) {
        const double ue = u[int64_t(b) * E_ + e];
        double* h = s.h.data() + (int64_t(b) * E_ + e) * 2 * M_;
        const double acc = Advance(s.modes[e], h, h + M_, ue);
        y[int64_t(b) * E_ + e] = float(acc + double(P(kDSkip)[e]) * ue);
      }
    LinearForward(y.data(), P(kWo), out, s.B, E_, D_);
  }

  // M_c[t, s] = K_c[t - s] (+ D_c at s = t), averaged over each group of channels.
  std::vector<RowMatrix> Mixing(const float*, const int32_t*, int T) override {
    const int groups = Groups();
    std::vector<RowMatrix> maps(groups, RowMatrix::Zero(T, T));
    const std::vector<int64_t> sizes = HeadGroupSizes(E_, groups);
    std::vector<double> k(T);
    for (int e = 0; e < E_; ++e) {
      Kernel(e, T, k.data());
      const int g = HeadGroupOfRow(e, E_, groups);
      const float scale = 1.0f / float(sizes[g]);
      for (int t = 0; t < T; ++t) {
        for (int s = 0; s <= t; ++s) maps[g](t, s) += scale * float(k[t - s]);
        maps[g](t, t) += scale * P(kDSkip)[e];
      }
    }
    return maps;
  }
  MixingValuePath MixingValues(const float* x, const int32_t*, int T) override {
    return ValuePath(x, P(kWin), T, D_, E_);
  }

  MixerDescription Cost(int T) const override {
    MixerDescription d;
    d.state_floats_fixed = 2 * int64_t(E_) * M_;
    const double log_t = std::log2(std::max(2.0, 2.0 * T));
    const double conv = o_.impl == "fft" ? 3 * 5.0 * log_t : o_.impl == "scan" ? 8.0 * M_ : 2.0 * T / 2;
    d.flops_per_token = 2.0 * 2 * D_ * E_ + E_ * conv + 8.0 * E_ * M_;
    return d;
  }

 private:
  int Groups() const { return std::min(o_.mixing_groups, E_); }
  Complex Param(int which, int e, int n) const {
    const float* p = P(which) + 2 * (int64_t(e) * M_ + n);
    return {double(p[0]), double(p[1])};
  }
  Complex Mode(int e, int n) const {
    const int64_t i = int64_t(e) * M_ + n;
    return {-std::exp(double(P(kARe)[i])), double(P(kAIm)[i])};
  }

  void Convolve(const double* k, const double* u, int T, double* y) const {
    if (o_.impl == "fft") return FftProduct(k, u, T, false, y);
    for (int t = 0; t < T; ++t) {
      double acc = 0;
      for (int s = 0; s <= t; ++s) acc += k[t - s] * u[s];
      y[t] = acc;
    }
  }
  // c[l] = sum_{t>=l} a[t] b[t-l].
  void Correlate(const double* a, const double* b, int T, double* c) const {
    if (o_.impl == "fft") return FftProduct(a, b, T, true, c);
    for (int l = 0; l < T; ++l) {
      double acc = 0;
      for (int t = l; t < T; ++t) acc += a[t] * b[t - l];
      c[l] = acc;
    }
  }

  // K_e[l] = 2 Re sum_n C_n B_n (z_n - 1) / A_n z_n^l, l < T.
  void Kernel(int e, int T, double* k) const {
    std::fill(k, k + T, 0.0);
    const double dt = std::exp(double(P(kLogDt)[e]));
    for (int n = 0; n < M_; ++n) {
      const Complex A = Mode(e, n), z = std::exp(dt * A);
      Complex term = Param(kC, e, n) * Param(kB, e, n) * (z - 1.0) / A;
      for (int l = 0; l < T; ++l, term *= z) k[l] += 2.0 * term.real();
    }
  }

  // The discretised recurrence of channel e: z_n = exp(dt A_n), beta_n = (z_n - 1) / A_n B_n, and C_n.
  DiagonalModes Modes(int e) const {
    const double dt = std::exp(double(P(kLogDt)[e]));
    DiagonalModes m(M_);
    for (int n = 0; n < M_; ++n) {
      const Complex A = Mode(e, n), z = std::exp(dt * A), beta = (z - 1.0) / A * Param(kB, e, n), c = Param(kC, e, n);
      m.z_re[n] = z.real(), m.z_im[n] = z.imag();
      m.beta_re[n] = beta.real(), m.beta_im[n] = beta.imag();
      m.c_re[n] = c.real(), m.c_im[n] = c.imag();
    }
    return m;
  }

  // One token of one channel (decoding): h_n <- z_n h_n + beta_n u; returns sum_n 2 Re(C_n h_n).
  double Advance(const DiagonalModes& m, double* h_re, double* h_im, double u) const {
    const double *zr = m.z_re.data(), *zi = m.z_im.data(), *br = m.beta_re.data(), *bi = m.beta_im.data();
    const double *cr = m.c_re.data(), *ci = m.c_im.data();
    double acc = 0;
    for (int n = 0; n < M_; ++n) {
      const double re = zr[n] * h_re[n] - zi[n] * h_im[n] + br[n] * u;
      const double im = zr[n] * h_im[n] + zi[n] * h_re[n] + bi[n] * u;
      h_re[n] = re;
      h_im[n] = im;
      acc += cr[n] * re - ci[n] * im;
    }
    return 2.0 * acc;
  }

  // The recurrence for sequence b, channel e (diagonal_scan.h): y_t = 2 Re(C . h_t) + D u_t into the context.
  void ScanForward(S4dContext& c, int64_t b, int64_t e) const {
    const int64_t T = c.T;
    const float* u = c.u.data() + b * T * E_ + e;
    std::vector<double> y(T);
    DiagonalScanForward(Modes(int(e)), u, E_, T, y.data());
    for (int64_t t = 0; t < T; ++t) c.y[(b * T + t) * E_ + e] = float(y[t] + double(P(kDSkip)[e]) * u[t * E_]);
  }

  // The reverse recurrence per sequence and channel (diagonal_scan.h) gives G_z, G_beta, G_C and du_t = 2 Re(beta .
  // lambda_t) + D g_t; the per-sequence sums are reduced over the batch in a fixed order.
  void ScanBackward(S4dContext& c, float* dx) {
    const int64_t B = c.B, T = c.T, N = B * T;
    const int64_t Mp = DiagonalModes::Padded(M_);
    // Per sequence and channel, (2, Mp) each: the real parts of G_z, G_beta, G_C, then their imaginary parts.
    std::vector<double> gz(B * E_ * 2 * Mp), gbeta(gz.size()), gc(gz.size());
    std::vector<double> dd(B * E_, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t be = 0; be < B * E_; ++be) {
      const int64_t b = be / E_, e = be % E_;
      const float *u = c.u.data() + b * T * E_ + e, *g = c.dy_inner.data() + b * T * E_ + e;
      std::vector<double> du(T);
      DiagonalScanBackward(Modes(int(e)), u, g, E_, T, du.data(), gz.data() + be * 2 * Mp, gbeta.data() + be * 2 * Mp,
                           gc.data() + be * 2 * Mp);
      for (int64_t t = 0; t < T; ++t) {
        c.du[(b * T + t) * E_ + e] = float(du[t] + double(P(kDSkip)[e]) * g[t * E_]);
        dd[be] += double(g[t * E_]) * u[t * E_];
      }
    }
#pragma omp parallel for schedule(static)
    for (int e = 0; e < E_; ++e) {
      double ddt = 0, dd_e = 0;
      for (int n = 0; n < M_; ++n) {
        Complex sz(0, 0), sb(0, 0), sc(0, 0);
        for (int64_t b = 0; b < B; ++b) {
          const int64_t i = (b * E_ + e) * 2 * Mp + n;
          sz += Complex(gz[i], gz[i + Mp]), sb += Complex(gbeta[i], gbeta[i + Mp]), sc += Complex(gc[i], gc[i + Mp]);
        }
        ddt += AddModeGradients(e, n, sz, sb, sc);
      }
      for (int64_t b = 0; b < B; ++b) dd_e += dd[b * E_ + e];
      G(kLogDt)[e] += float(ddt * std::exp(double(P(kLogDt)[e])));
      G(kDSkip)[e] += float(dd_e);
    }
    LinearBackward(c.x.data(), P(kWin), c.du.data(), dx, G(kWin), N, D_, E_);
  }

  // Parameter gradients of channel e from dK (T values). With coef = C B (z - 1) / A and z = exp(dt A), writing every
  // complex gradient G so that dL = 2 Re(dw G): W = sum_l dK[l] z^l, V = sum_l dK[l] l z^(l-1),
  //   G_C = W B (z-1)/A, G_B = W C (z-1)/A, G_z = W C B / A + coef V, G_A = -W C B (z-1)/A^2 + G_z z dt,
  //   dL/d dt = 2 Re(G_z z A); for w = p + i q: dL/dp = 2 Re G, dL/dq = -2 Im G; A = -exp(a_re) + i a_im.
  void KernelBackward(int e, int T, const double* dk) {
    const double dt = std::exp(double(P(kLogDt)[e]));
    double ddt = 0;
    for (int n = 0; n < M_; ++n) {
      const Complex A = Mode(e, n), z = std::exp(dt * A), Bn = Param(kB, e, n), Cn = Param(kC, e, n);
      Complex W(0, 0), V(0, 0), power(1, 0), previous(0, 0);  // power = z^l, previous = z^(l-1)
      for (int l = 0; l < T; ++l) {
        W += dk[l] * power;
        if (l > 0) V += dk[l] * double(l) * previous;
        previous = power;
        power *= z;
      }
      const Complex beta = (z - 1.0) / A * Bn, coef = Cn * beta;  // K[l] = 2 Re(coef z^l)
      ddt += AddModeGradients(e, n, coef * V, W * Cn, W * beta);
    }
    G(kLogDt)[e] += float(ddt * dt);
  }

  // The gradients of mode n of channel e from complex gradients (dL = 2 Re(dw G)) of z, of beta = (z - 1) / A B and of
  // C: G_B = G_beta (z - 1) / A;  G_z' = G_z + G_beta B / A;  G_A = -G_beta (z - 1) B / A^2 + G_z' z dt;
  // A = -exp(a_re) + i a_im; for w = p + i q, dL/dp = 2 Re G and dL/dq = -2 Im G. Returns dL/d dt = 2 Re(G_z' z A).
  double AddModeGradients(int e, int n, Complex gz, Complex gbeta, Complex gc) {
    const int64_t i = int64_t(e) * M_ + n;
    const double dt = std::exp(double(P(kLogDt)[e]));
    const Complex A = Mode(e, n), z = std::exp(dt * A), Bn = Param(kB, e, n);
    const Complex gB = gbeta * (z - 1.0) / A;
    const Complex gz_total = gz + gbeta * Bn / A;
    const Complex gA = -gbeta * (z - 1.0) * Bn / (A * A) + gz_total * z * dt;
    G(kC)[2 * i] += float(2.0 * gc.real());
    G(kC)[2 * i + 1] += float(-2.0 * gc.imag());
    G(kB)[2 * i] += float(2.0 * gB.real());
    G(kB)[2 * i + 1] += float(-2.0 * gB.imag());
    G(kARe)[i] += float(2.0 * (gA * -std::exp(double(P(kARe)[i]))).real());
    G(kAIm)[i] += float(-2.0 * gA.imag());
    return 2.0 * (gz_total * z * A).real();
  }

  int D_, E_, M_;
  S4dOptions o_;
  MixerDims dims_;
};

}  // namespace

// Finite differences of the default case use a small step: S4D-Lin's frequencies (up to pi M) turn the kernel's phase
// by dt * Im(A) * l, so a 1% step of log_dt moves it by about a radian and a central difference is off by percents.
MIXLAB_REGISTER_MIXER(
    Entry<S4d, S4dOptions>(
        "s4d", MixerKind::kSequence,
        "S4D diagonal linear time-invariant state space (S4D-Lin / S4D-Real), trained by its recurrence or by FFT "
        "convolution")
        .Tests(
            {.fd_eps = 1e-3f,
             .exact_mixing_options = {{"mixing-groups", "65536"}},
             .extra_cases = {
                 {"s4d_naive_real",
                  "none",
                  {{"impl", "naive"}, {"init", "real"}, {"d-state", "6"}, {"dt-min", "0.05"}, {"dt-max", "0.5"}}},
                 {"s4d_fft_lin", "none", {{"d-state", "8"}, {"dt-min", "0.05"}, {"dt-max", "0.5"}}},
                 {"s4d_scan_lin", "none", {{"impl", "scan"}, {"d-state", "8"}, {"dt-min", "0.05"}, {"dt-max", "0.5"}}},
             }}));

}  // namespace mixlab
