// Finite-difference checks of every op's backward, and the forward identities they rest on.
#include "mixers/ops/ops.h"

#include <gtest/gtest.h>
#include <omp.h>

#include "mixers/ops/matmul.h"
#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

constexpr int64_t N = 5, D = 12;

// Checks d<dy, f(x)>/dx for an op given as forward(x) -> y and backward(x, dy) -> dx.
void CheckOp(const std::string& what, int64_t nx, int64_t ny, const std::function<void(const float*, float*)>& forward,
             const std::function<void(const float*, const float*, float*)>& backward, float eps = 1e-2f) {
  auto x = RandomVector(nx, 1);
  auto dy = RandomVector(ny, 2);
  std::vector<float> y(ny), dx(nx);
  auto loss = [&] {
    forward(x.data(), y.data());
    return Dot(dy, y);
  };
  forward(x.data(), y.data());
  backward(x.data(), dy.data(), dx.data());
  ExpectGradientMatches(loss, x.data(), dx.data(), nx, 40, eps, 1e-2, what);
}

TEST(Ops, LayerNorm) {
  auto gamma = RandomVector(D, 3), beta = RandomVector(D, 4);
  std::vector<float> mean(N), rstd(N), dgamma(D), dbeta(D);
  auto fwd = [&](const float* x, float* y) {
    LayerNormForward(x, gamma.data(), beta.data(), y, mean.data(), rstd.data(), N, D);
  };
  CheckOp("layernorm dx", N * D, N * D, fwd, [&](const float* x, const float* dy, float* dx) {
    fwd(x, std::vector<float>(N * D).data());
    LayerNormBackward(x, gamma.data(), mean.data(), rstd.data(), dy, dx, dgamma.data(), dbeta.data(), N, D);
  });
  // parameter gradients: gamma
  auto x = RandomVector(N * D, 5), dy = RandomVector(N * D, 6);
  std::vector<float> y(N * D), dx(N * D);
  std::fill(dgamma.begin(), dgamma.end(), 0.0f);
  std::fill(dbeta.begin(), dbeta.end(), 0.0f);
  auto loss = [&] {
    fwd(x.data(), y.data());
    return Dot(dy, y);
  };
  loss();
  LayerNormBackward(x.data(), gamma.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dgamma.data(), dbeta.data(),
                    N, D);
  ExpectGradientMatches(loss, gamma.data(), dgamma.data(), D, 12, 1e-2f, 1e-2, "layernorm dgamma");
  ExpectGradientMatches(loss, beta.data(), dbeta.data(), D, 12, 1e-2f, 1e-2, "layernorm dbeta");
}

TEST(Ops, RMSNorm) {
  auto gamma = RandomVector(D, 3);
  std::vector<float> rstd(N), dgamma(D);
  auto fwd = [&](const float* x, float* y) { RMSNormForward(x, gamma.data(), y, rstd.data(), N, D); };
  CheckOp("rmsnorm dx", N * D, N * D, fwd, [&](const float* x, const float* dy, float* dx) {
    fwd(x, std::vector<float>(N * D).data());
    RMSNormBackward(x, gamma.data(), rstd.data(), dy, dx, dgamma.data(), N, D);
  });
  auto x = RandomVector(N * D, 5), dy = RandomVector(N * D, 6);
  std::vector<float> y(N * D), dx(N * D);
  std::fill(dgamma.begin(), dgamma.end(), 0.0f);
  auto loss = [&] {
    fwd(x.data(), y.data());
    return Dot(dy, y);
  };
  loss();
  RMSNormBackward(x.data(), gamma.data(), rstd.data(), dy.data(), dx.data(), dgamma.data(), N, D);
  ExpectGradientMatches(loss, gamma.data(), dgamma.data(), D, 12, 1e-2f, 1e-2, "rmsnorm dgamma");
}

TEST(Ops, Gelu) {
  CheckOp(
      "gelu", N * D, N * D, [](const float* x, float* y) { GeluForward(x, y, N * D); },
      [](const float* x, const float* dy, float* dx) { GeluBackward(x, dy, dx, N * D); });
  float x[3] = {-10.0f, 0.0f, 10.0f}, y[3];
  GeluForward(x, y, 3);
  EXPECT_NEAR(y[0], 0.0f, 1e-6);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_NEAR(y[2], 10.0f, 1e-5);
}

TEST(Ops, SwiGLU) {
  CheckOp(
      "swiglu", N * 2 * D, N * D, [](const float* h, float* y) { SwiGLUForward(h, y, N, D); },
      [](const float* h, const float* dy, float* dh) { SwiGLUBackward(h, dy, dh, N, D); });
}

TEST(Ops, Softmax) {
  CheckOp(
      "softmax", N * D, N * D, [](const float* x, float* y) { SoftmaxForward(x, y, N, D); },
      [](const float* x, const float* dy, float* dx) {
        std::vector<float> y(N * D);
        SoftmaxForward(x, y.data(), N, D);
        SoftmaxBackward(y.data(), dy, dx, N, D);
      });
  std::vector<float> x = {1000.0f, 1000.0f, -1000.0f}, y(3);
  SoftmaxForward(x.data(), y.data(), 1, 3);  // stable at large logits
  EXPECT_FLOAT_EQ(y[0], 0.5f);
  EXPECT_FLOAT_EQ(y[2], 0.0f);
}

TEST(Ops, CrossEntropyWithMask) {
  const int64_t V = 7;
  std::vector<int32_t> targets = {1, 6, 0, 3, 2};
  std::vector<float> mask = {1, 0, 1, 1, 0};
  auto logits = RandomVector(N * V, 8);
  std::vector<float> probs(N * V), dlogits(N * V);
  auto loss = [&] {
    return double(CrossEntropyForward(logits.data(), targets.data(), mask.data(), probs.data(), N, V));
  };
  const double l = loss();
  CrossEntropyBackward(probs.data(), targets.data(), mask.data(), dlogits.data(), N, V);
  ExpectGradientMatches(loss, logits.data(), dlogits.data(), N * V, 30, 1e-2f, 1e-2, "cross-entropy");
  loss();  // probs of the unperturbed logits
  double expect = 0;
  for (int i : {0, 2, 3}) expect -= std::log(probs[i * V + targets[i]]);
  EXPECT_NEAR(l, expect / 3, 1e-5);
  for (int j = 0; j < V; ++j) EXPECT_EQ(dlogits[1 * V + j], 0.0f) << "masked rows get no gradient";
}

TEST(Ops, EmbeddingScatterAdds) {
  const int64_t V = 4;
  auto table = RandomVector(V * D, 9);
  std::vector<int32_t> tokens = {2, 0, 2};
  std::vector<float> y(3 * D), dtable(V * D, 0.0f);
  EmbeddingForward(tokens.data(), table.data(), y.data(), 3, D);
  EXPECT_EQ(y[2 * D + 3], table[2 * D + 3]);
  std::vector<float> dy(3 * D, 1.0f);
  EmbeddingBackward(tokens.data(), dy.data(), dtable.data(), 3, D);
  EXPECT_EQ(dtable[2 * D], 2.0f);  // token 2 appears twice
  EXPECT_EQ(dtable[1 * D], 0.0f);
}

// The fused bias + GELU pass against the separate ops: the same bits, for any number of threads.
TEST(Ops, BiasGeluMatchesSeparateOps) {
  const int64_t rows = 600, cols = 37;
  auto h = RandomVector(rows * cols, 20), bias = RandomVector(cols, 21), da = RandomVector(rows * cols, 22);
  std::vector<float> h_sep = h, a_sep(rows * cols), a(rows * cols), dh_sep(rows * cols), db_sep(cols, 0.5f);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) h_sep[i * cols + j] += bias[j];
  GeluForward(h_sep.data(), a_sep.data(), rows * cols);
  BiasGeluForward(h.data(), bias.data(), a.data(), rows, cols);
  EXPECT_EQ(h, h_sep);
  EXPECT_EQ(a, a_sep);
  GeluBackward(h_sep.data(), da.data(), dh_sep.data(), rows * cols);
  AddColumnSums(dh_sep.data(), rows, cols, db_sep.data());
  // The bias gradient sums blocks of rows, then the blocks: the same sums at every thread count, and the row-by-row
  // sums up to rounding.
  const int saved = omp_get_max_threads();
  std::vector<float> db_one_thread;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> dh = da, db(cols, 0.5f);  // in place, as the MLP calls it
    BiasGeluBackward(h.data(), dh.data(), dh.data(), db.data(), rows, cols);
    EXPECT_EQ(dh, dh_sep) << threads << " threads";
    if (db_one_thread.empty()) db_one_thread = db;
    EXPECT_EQ(db, db_one_thread) << threads << " threads";
    for (int64_t j = 0; j < cols; ++j) EXPECT_NEAR(db[j], db_sep[j], 1e-5f * (1.0f + std::abs(db_sep[j])));
  }
  omp_set_num_threads(saved);
}

TEST(Ops, MatmulTranspositionsMatchEigen) {
  const int64_t M = 7, K = 5, Nn = 3;
  auto a = RandomVector(M * K, 10), b = RandomVector(K * Nn, 11);
  RowMatrix A = AsMatrix(a.data(), M, K), Bm = AsMatrix(b.data(), K, Nn);
  RowMatrix At = A.transpose(), Bt = Bm.transpose();
  RowMatrix expect = A * Bm;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      std::vector<float> c(M * Nn);
      Gemm(ta, tb, M, Nn, K, ta ? At.data() : A.data(), tb ? Bt.data() : Bm.data(), c.data(), false);
      EXPECT_LE(MaxAbsDiff(c.data(), expect.data(), M * Nn), 1e-5f) << "ta=" << ta << " tb=" << tb;
      Gemm(ta, tb, M, Nn, K, ta ? At.data() : A.data(), tb ? Bt.data() : Bm.data(), c.data(), true);  // accumulate
      const RowMatrix twice = 2.0f * expect;
      EXPECT_LE(MaxAbsDiff(c.data(), twice.data(), M * Nn), 2e-5f) << "ta=" << ta << " tb=" << tb;
    }
}

TEST(Ops, LinearBackwardMatchesFiniteDifferences) {
  const int64_t in = 6, out = 4;
  auto W = RandomVector(in * out, 12);
  std::vector<float> dW(in * out);
  CheckOp(
      "linear dx", N * in, N * out, [&](const float* x, float* y) { LinearForward(x, W.data(), y, N, in, out); },
      [&](const float* x, const float* dy, float* dx) { LinearBackward(x, W.data(), dy, dx, dW.data(), N, in, out); });
  auto x = RandomVector(N * in, 13), dy = RandomVector(N * out, 14);
  std::vector<float> y(N * out), dx(N * in);
  std::fill(dW.begin(), dW.end(), 0.0f);
  auto loss = [&] {
    LinearForward(x.data(), W.data(), y.data(), N, in, out);
    return Dot(dy, y);
  };
  LinearBackward(x.data(), W.data(), dy.data(), dx.data(), dW.data(), N, in, out);
  ExpectGradientMatches(loss, W.data(), dW.data(), in * out, 20, 1e-2f, 1e-2, "linear dW");
}

}  // namespace
}  // namespace mixlab::testing
