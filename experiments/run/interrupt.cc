#include "experiments/run/interrupt.h"

#include <atomic>

namespace mixlab {
namespace {
std::atomic<bool> interrupt_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "a signal handler sets it");
}  // namespace

void RequestInterrupt() { interrupt_requested.store(true); }
void ClearInterrupt() { interrupt_requested.store(false); }
bool InterruptRequested() { return interrupt_requested.load(); }

}  // namespace mixlab
