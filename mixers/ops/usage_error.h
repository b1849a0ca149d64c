// Thrown for any user-facing mistake (bad option, impossible shape, corrupt file); the CLI prints what() on one
// line and exits with code 2.
#pragma once
#include <stdexcept>

namespace mixlab {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace mixlab
