#!/usr/bin/env bash
# Installs what is missing, builds mixlab with its tests, and runs the whole GoogleTest suite through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh -DMIXLAB_TESTS=ON
ctest --test-dir build --output-on-failure --timeout 900
