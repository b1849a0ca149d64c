// A request to stop training early (Ctrl-C in the Python bindings): the trainer checks it after every optimizer step
// and, when set, stops at that step boundary and throws Interrupted. The run directory then holds what a killed run
// leaves (its last checkpoint, the metrics up to it), which `--resume` continues; a compare stops between or inside
// runs the same way. RequestInterrupt is async-signal-safe (one atomic store).
#pragma once
#include <stdexcept>

namespace mixlab {

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

void RequestInterrupt();
void ClearInterrupt();
bool InterruptRequested();

}  // namespace mixlab
