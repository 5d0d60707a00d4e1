#!/usr/bin/env bash
# PostgreSQL sink against psql \copy, repeated: bench/sinks.sh measures
# each once, and on this 2-core machine one pair varies by 20 % from run to
# run. Spools CW_BENCH_EVENTS worth of agentsim load (50 agents, 100k/s)
# once with the database unreachable, then CW_BENCH_ROUNDS times: a fresh
# database, the sink drains that spool alone (timed until it confirmed
# every event), the rows are exported, the table emptied and the file
# loaded back with psql \copy (timed). Prints each pair, its ratio and the
# median ratio. The test services are started if needed and left running.
#
# Environment (all optional):
#   CW_BENCH_BUILD     build directory (default build-bench, Release)
#   CW_BENCH_DURATION  seconds of load to spool (default 20: 2.0 M events)
#   CW_BENCH_ROUNDS    drain + \copy pairs (default 3)
#   CW_BENCH_SERVER_ARGS  extra chainwatchd arguments for the drain
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${CW_BENCH_BUILD:-$root/build-bench}
duration=${CW_BENCH_DURATION:-20}
rounds=${CW_BENCH_ROUNDS:-3}

scripts/install-deps.sh
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target chainwatchd agentsim >/dev/null
settings=$(tests/services/start.sh)
while IFS= read -r line; do export "$line"; done <<<"$settings"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
now() { date +%s.%N; }
work=$(mktemp -d /tmp/cw-bench-pgdrain.XXXXXX)
chmod 755 "$work"
server_pid=
db=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  [ -n "$db" ] && psql -X -q -d "$PG_CONNINFO" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
metric() {
  curl -sf "http://127.0.0.1:$http_port/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
start_server() { # data dir, conninfo
  agent_port=$(free_port)
  http_port=$(free_port)
  # shellcheck disable=SC2086  # a list of words on purpose
  "$build/chainwatchd" --data-dir "$1" --agent-listen "127.0.0.1:$agent_port" \
    --http-listen "127.0.0.1:$http_port" --pg "$2" ${CW_BENCH_SERVER_ARGS:-} 2>>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && return; sleep 0.05; done
  echo "chainwatchd did not start" >&2; exit 1
}
stop_server() { kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=; }

# The spool, once: the sink cannot connect, so everything waits in it.
start_server "$work/seed" "host=127.0.0.1 port=1 dbname=none user=none connect_timeout=1"
"$build/agentsim" load --agents 50 --rate 100000 --duration "$duration" --batch 500 \
  --server "127.0.0.1:$agent_port" >"$work/load.out"
events=$(sed -n 's/^events_acked=//p' "$work/load.out")
for _ in $(seq 600); do
  [ "$(metric chainwatch_pipeline_lag_bytes)" = 0 ] && break
  sleep 0.2
done
stop_server
echo "== $events events spooled; $rounds rounds of: sink drain alone, then \\copy of its rows"
cols="id, time, type, source, host, agent_id, cluster, cloud, region, node, namespace, pod,"
cols="$cols pod_uid, container_id, owner, body"
ratios=()
for round in $(seq "$rounds"); do
  db=cwbench_drain_$$_$round
  psql -X -q -d "$PG_CONNINFO" -c "CREATE DATABASE $db" >/dev/null
  conninfo="${PG_CONNINFO/dbname=chainwatch/dbname=$db}"
  rm -rf "$work/run"
  cp -a "$work/seed" "$work/run"
  t0=$(now)
  start_server "$work/run" "$conninfo"
  for _ in $(seq 3000); do
    n=$(metric 'chainwatch_sink_delivered_total{sink="postgres",kind="events"}')
    [ "${n:-0}" -ge "$events" ] && break
    sleep 1
  done
  t1=$(now)
  stop_server
  psql -X -q -d "$conninfo" -c "\\copy (SELECT $cols FROM events) TO '$work/rows.tsv'"
  psql -X -q -d "$conninfo" -c "TRUNCATE events" >/dev/null
  c0=$(now)
  psql -X -q -d "$conninfo" -c "\\copy events ($cols) FROM '$work/rows.tsv'"
  c1=$(now)
  rm -f "$work/rows.tsv"
  psql -X -q -d "$PG_CONNINFO" -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
  db=
  line=$(awk -v n="$events" -v a="$t0" -v b="$t1" -v c="$c0" -v d="$c1" 'BEGIN {
    s = n / (b - a); p = n / (d - c)
    printf "sink_drain=%.0f events/s (%.1f s) psql_copy=%.0f rows/s (%.1f s) ratio=%.2f",
      s, b - a, p, d - c, s / p }')
  echo "round $round: $line"
  ratios+=("${line##*ratio=}")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END { printf "median_ratio=%s\n", r[int((NR + 1) / 2)] }'
