#include "mixers/matmul.h"

#include <dnnl.hpp>
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

namespace mixlab {
namespace {

struct Key {
  bool ta, tb, acc;
  int64_t M, N, K;
  bool operator<(const Key& o) const {
    return std::tie(ta, tb, acc, M, N, K) < std::tie(o.ta, o.tb, o.acc, o.M, o.N, o.K);
  }
};

struct Cached {
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c;
};

struct Cache {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<Key, Cached> prims;
  std::mutex mu;
  int64_t created = 0;
};

Cache& GetCache() {
  static Cache cache;
  return cache;
}

// Row-major (rows, cols) matrix stored as given, or its transpose read through strides.
dnnl::memory::desc Desc(int64_t rows, int64_t cols, bool transposed) {
  using dt = dnnl::memory::data_type;
  if (!transposed) return dnnl::memory::desc({rows, cols}, dt::f32, dnnl::memory::dims{cols, 1});
  return dnnl::memory::desc({rows, cols}, dt::f32, dnnl::memory::dims{1, rows});
}

}  // namespace

void Gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
          bool accumulate) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) std::fill(C, C + M * N, 0.0f);
    return;
  }
  Cache& cache = GetCache();
  Key key{ta, tb, accumulate, M, N, K};
  Cached* entry;
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.prims.find(key);
    if (it == cache.prims.end()) {
      Cached c;
      c.a = Desc(M, K, ta);
      c.b = Desc(K, N, tb);
      c.c = Desc(M, N, false);
      dnnl::primitive_attr attr;
      if (accumulate) {
        dnnl::post_ops ops;
        ops.append_sum(1.0f);
        attr.set_post_ops(ops);
      }
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(c.a, c.b, c.c), attr, cache.engine);
      c.prim = dnnl::matmul(pd);
      it = cache.prims.emplace(key, std::move(c)).first;
      ++cache.created;
    }
    entry = &it->second;
  }
  dnnl::memory ma(entry->a, cache.engine, const_cast<float*>(A));
  dnnl::memory mb(entry->b, cache.engine, const_cast<float*>(B));
  dnnl::memory mc(entry->c, cache.engine, C);
  entry->prim.execute(cache.stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
  cache.stream.wait();
}

int64_t GemmPrimitivesCreated() {
  std::lock_guard<std::mutex> lock(GetCache().mu);
  return GetCache().created;
}

}  // namespace mixlab
