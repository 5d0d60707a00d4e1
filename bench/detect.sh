#!/usr/bin/env bash
# Detection benchmark: per-event cost of the compiled rule engine with 10,
# 100 and 1,000 generated rules over a mixed event set (bench/detect.c).
# Builds a Release tree (CW_BENCH_BUILD, default build-bench) if needed.
#   CW_BENCH_EVENTS  events per rule count (default 400000)
#   CW_BENCH_BIG=1   also 10,000 rules
#
# Measured (Release, 2-core VM shared with other builds; thread CPU time,
# median of 7 interleaved runs of 400k events):
#   rules   median ns/event
#   10      168
#   100     163
#   1000    195   (1.16x the 10-rule cost)
#   10000   201
set -euo pipefail
cd "$(dirname "$0")/.."
build=${CW_BENCH_BUILD:-$PWD/build-bench}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target bench_detect >/dev/null
"$build/bench_detect" "${CW_BENCH_EVENTS:-400000}" ${CW_BENCH_BIG:+big}
