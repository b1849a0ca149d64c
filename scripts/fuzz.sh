#!/usr/bin/env bash
# Builds the libFuzzer targets (clang 14 with AddressSanitizer + UBSan; Debian clang-14, libfuzzer-14-dev, libomp-14-dev)
# and runs each for a bounded time from the seed corpus in fuzz/corpus. Prints executions and findings per target;
# exits 1 if any target found a crash, a leak, a timeout or an uncaught exception (reproducers land in build-fuzz/findings).
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(checkpoint_fuzz config_fuzz flags_fuzz specs_fuzz)
if ! command -v clang++-14 >/dev/null || [ ! -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ]; then
  echo "installing clang-14, libfuzzer-14-dev and libomp-14-dev"
  apt-get install -y -qq clang-14 libfuzzer-14-dev libomp-14-dev >/dev/null
fi
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIXLAB_FUZZ=ON -DMIXLAB_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" >/dev/null
mkdir -p build-fuzz/findings
status=0
for t in "${targets[@]}"; do
  corpus="build-fuzz/corpus/${t%_fuzz}"
  mkdir -p "$corpus"
  cp -n fuzz/corpus/"${t%_fuzz}"/* "$corpus"/ 2>/dev/null || true
  log="build-fuzz/$t.log"
  set +e
  start=$SECONDS
  OMP_NUM_THREADS=1 "build-fuzz/$t" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/findings/$t-" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" || echo "?")
  findings=$(ls build-fuzz/findings | grep -c "^$t-" || true)
  echo "$t: $runs executions in $((SECONDS - start))s, exit $rc, $findings finding(s) (log $log)"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
