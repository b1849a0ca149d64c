#!/usr/bin/env bash
# Installs what is missing, builds mixlab with its tests, and runs the whole GoogleTest suite through CTest.
#   bash scripts/test.sh              the README's test command (CI runs it)
#   bash scripts/test.sh --sanitize   the same suite built with AddressSanitizer + UBSan into build-sanitize/, without the
#                                     end-to-end learning tests (about 10x slower under the sanitizers)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  bash scripts/setup.sh
  cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIXLAB_TESTS=ON -DMIXLAB_SANITIZE=ON > /dev/null
  cmake --build build-sanitize -j "$(nproc)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-sanitize --output-on-failure --timeout 1800 -j "$(nproc)" -E 'EndToEnd'
  exit
fi
bash scripts/build.sh -DMIXLAB_TESTS=ON
ctest --test-dir build --output-on-failure --timeout 900
