#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is
# missing, builds twice (plain and ASan+UBSan) and runs every test under
# ctest in both builds. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
build build-asan -DCMAKE_BUILD_TYPE=Debug -DCW_SANITIZE=ON
# libFuzzer targets (clang): their seed replays and short mutation runs.
CC=clang build build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCW_SANITIZE=ON -DCW_FUZZ=ON

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
echo "== tests: release build"
(cd build && ctest --output-on-failure -j "$jobs") || status=1
echo "== tests: ASan+UBSan build"
(cd build-asan && ctest --output-on-failure -j "$jobs") || status=1
echo "== fuzz smoke runs"
(cd build-fuzz && ctest --output-on-failure -j "$jobs" -R '^fuzz_') || status=1
exit $status
