#!/usr/bin/env bash
# Ingest benchmark: a Release chainwatchd on free loopback ports with a
# temporary data directory, loaded by `agentsim load` (100 agents, as fast as
# the server acks, 60 s). Prints the server's RSS every 5 s, agentsim's
# figures (events/s acked, ack latency percentiles, its CPU) and the server's
# CPU time, then stops the server and removes everything it made.
#
# Environment (all optional):
#   CW_BENCH_BUILD     build directory (default build-bench; configured as
#                      Release if it does not exist yet)
#   CW_BENCH_DURATION  seconds of load (default 60)
#   CW_BENCH_AGENTS    agent connections (default 100)
#   CW_BENCH_RATE      events/s in total, 0 = unlimited (default 0)
#   CW_BENCH_BATCH     events per batch (default 500)
#   CW_BENCH_SERVER_ARGS  extra chainwatchd arguments, e.g. "--set spool.max_bytes=1GiB"
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${CW_BENCH_BUILD:-$root/build-bench}
duration=${CW_BENCH_DURATION:-60}
agents=${CW_BENCH_AGENTS:-100}
rate=${CW_BENCH_RATE:-0}
batch=${CW_BENCH_BATCH:-500}

if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target chainwatchd agentsim >/dev/null

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

work=$(mktemp -d /tmp/cw-bench.XXXXXX)
server_pid=
load_pid=
cleanup() {
  # Only what this script started, by pid.
  if [ -n "$load_pid" ]; then kill "$load_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

agent_port=$(free_port)
http_port=$(free_port)
# shellcheck disable=SC2086  # CW_BENCH_SERVER_ARGS is a list of words on purpose
"$build/chainwatchd" --data-dir "$work/data" \
  --agent-listen "127.0.0.1:$agent_port" --http-listen "127.0.0.1:$http_port" \
  ${CW_BENCH_SERVER_ARGS:-} 2>"$work/chainwatchd.log" &
server_pid=$!
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1 && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "chainwatchd exited during start-up:" >&2
    cat "$work/chainwatchd.log" >&2
    exit 1
  fi
  sleep 0.05
done

clk_tck=$(getconf CLK_TCK)
# utime + stime of a process in seconds, from /proc/PID/stat (fields 14 and
# 15, counted after the parenthesised command name, which may hold spaces).
cpu_of() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "?"; return; }
  stat=${stat##*) }
  awk -v tck="$clk_tck" '{ printf "%.2f", ($12 + $13) / tck }' <<<"$stat"
}
rss_of() {
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

echo "== chainwatchd pid $server_pid, agents on 127.0.0.1:$agent_port, data in $work/data"
echo "== agentsim load: $agents agents, rate $rate (0 = unlimited), batch $batch, ${duration} s"
server_cpu_before=$(cpu_of "$server_pid")
t_start=$(date +%s.%N)
load_rc=0
"$build/agentsim" load --agents "$agents" --rate "$rate" --duration "$duration" \
  --batch "$batch" --server "127.0.0.1:$agent_port" >"$work/load.out" 2>"$work/load.err" &
load_pid=$!
# Sample in this shell (no helper process to clean up): every 5 s while the
# load runs, checking once a second whether it has finished.
t=0
: >"$work/rss"
while kill -0 "$load_pid" 2>/dev/null; do
  if [ $((t % 5)) -eq 0 ]; then
    echo "t=${t}s server_rss_mib=$(rss_of "$server_pid")" >>"$work/rss"
  fi
  sleep 1
  t=$((t + 1))
done
wait "$load_pid" || load_rc=$?
load_pid=
final_rss=$(rss_of "$server_pid")
# End to end: ingest + enrichment + detection + incident correlation. Wait
# until the pipeline has processed every event the server accepted.
metric() {
  curl -sf "http://127.0.0.1:$http_port/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
received=$(metric 'chainwatch_events_received_total{source="agent"}')
for _ in $(seq 1200); do
  done_events=$(metric chainwatch_pipeline_events_total)
  [ "${done_events%.*}" -ge "${received%.*}" ] && break
  sleep 0.1
done
t_done=$(date +%s.%N)
server_cpu_after=$(cpu_of "$server_pid")

echo "== server RSS during the run (every 5 s)"
cat "$work/rss"
echo "t=${t}s server_rss_mib=$final_rss (end)"
echo "== agentsim"
cat "$work/load.out"
if [ -s "$work/load.err" ]; then
  echo "== agentsim stderr (last lines)"
  tail -5 "$work/load.err"
fi
echo "== end to end (ingest + enrichment + detection + incidents)"
echo "pipeline_events=$done_events"
awk -v n="$done_events" -v a="$t_start" -v b="$t_done" \
  'BEGIN { printf "e2e_events_per_s=%.0f (until the pipeline caught up, %.1f s)\n", n / (b - a), b - a }'
echo "alerts=$(curl -sf "http://127.0.0.1:$http_port/metrics" |
  awk '/^chainwatch_alerts_total/ { s += $2 } END { print s + 0 }')"
echo "detect_seconds=$(metric chainwatch_detect_seconds_total)"
echo "== cpu"
server_cpu=$(awk -v a="$server_cpu_before" -v b="$server_cpu_after" \
  'BEGIN { printf "%.2f", b - a }')
echo "server_cpu_s=$server_cpu"
echo "agentsim_cpu_s=$(sed -n 's/^cpu_s=//p' "$work/load.out")"

kill -TERM "$server_pid"
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=
if [ "$server_rc" -ne 0 ]; then
  echo "chainwatchd exited $server_rc; last log lines:" >&2
  tail -20 "$work/chainwatchd.log" >&2
fi
if [ "$load_rc" -ne 0 ]; then
  echo "agentsim load exited $load_rc" >&2
  exit "$load_rc"
fi
exit "$server_rc"
