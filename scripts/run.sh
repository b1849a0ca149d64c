#!/usr/bin/env bash
# The main job: install what is missing, build, and run `mixlab compare` on its built-in defaults.
# The report lands in runs/compare/report.md. Extra arguments go to `mixlab compare`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$(nproc)" --target mixlab  # the main job builds only what it runs (not the tests)
build/mixlab compare "$@"
