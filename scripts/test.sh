#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is
# missing, starts the test services, builds twice (plain and ASan+UBSan) and
# runs every test under ctest in both builds. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

# Real PostgreSQL, Redis and Kafka for the tests that need them
# (tests/services/README.md), stopped on every exit. Started before the
# builds so that a failure ends the run at once; their KEY=value settings
# and CW_SERVICES=1 (which registers those tests) reach cmake and ctest.
# CW_SERVICES=0 skips them, and the tests that need them.
if [ "${CW_SERVICES:-1}" != 0 ]; then
  trap 'tests/services/stop.sh' EXIT
  settings=$(tests/services/start.sh) ||
    { echo "test.sh: the test services did not start (see above)" >&2; exit 1; }
  while IFS= read -r line; do export "$line"; done <<<"$settings"
  export CW_SERVICES=1
fi

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
