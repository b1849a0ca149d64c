#include "bench/heap_tracker.h"

#include <malloc.h>

#include <atomic>
#include <cerrno>

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {

std::atomic<int64_t> g_live{0}, g_peak{0}, g_base{0};

void Track(void* p) {
  if (!p) return;
  const int64_t live = g_live.fetch_add(int64_t(malloc_usable_size(p))) + int64_t(malloc_usable_size(p));
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {}
}

void Untrack(void* p) {
  if (p) g_live.fetch_sub(int64_t(malloc_usable_size(p)));
}

}  // namespace

extern "C" {
void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  Track(p);
  return p;
}
void free(void* p) {
  Untrack(p);
  __libc_free(p);
}
void* calloc(size_t n, size_t size) {
  void* p = __libc_calloc(n, size);
  Track(p);
  return p;
}
void* realloc(void* old, size_t n) {
  Untrack(old);
  void* p = __libc_realloc(old, n);
  Track(p ? p : (n ? old : nullptr));  // on failure the old block is still live
  return p;
}
void* memalign(size_t alignment, size_t n) {
  void* p = __libc_memalign(alignment, n);
  Track(p);
  return p;
}
void* aligned_alloc(size_t alignment, size_t n) { return memalign(alignment, n); }
int posix_memalign(void** out, size_t alignment, size_t n) {
  void* p = memalign(alignment, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}

namespace mixlab::bench {

void ResetPeakHeap() {
  g_base = g_live.load();
  g_peak = g_base.load();
}

int64_t PeakHeapBytes() { return g_peak.load() - g_base.load(); }

}  // namespace mixlab::bench
