#!/usr/bin/env bash
# Sink benchmark: end-to-end events/s from `agentsim load` to confirmed in
# both PostgreSQL and Kafka, on this machine, compared in the same run with
# `psql \copy` of the same rows into the same table and `kcat -P` of the same
# messages to a topic of the same shape.
#
# 1. End to end: a Release chainwatchd with --pg (a fresh database) and
#    --kafka-brokers (fresh topics), loaded by agentsim for CW_BENCH_DURATION
#    seconds. Reports acked events/s, the rate until each sink confirmed
#    every event, and CPU per server thread, agentsim, PostgreSQL and the
#    Kafka JVM.
# 2. The PostgreSQL sink alone: the same load with the events table locked,
#    so everything waits in the sink spool; then the lock is released and
#    the drain is timed on an otherwise quiet machine.
# 3. \copy: the rows of 2 are exported, the table emptied, and the file
#    loaded back with psql \copy (same table, indexes and partitions).
# 4. kcat: the values of the events topic of 1 are exported (kafkadump
#    --values-out) and produced again by kcat -P to a topic with the same
#    partitions, with the sink's producer settings (idempotence, zstd,
#    linger, batch sizes).
# The test services are started if needed (tests/services/start.sh) and
# left running; kcat is installed if missing.
#
# Environment (all optional):
#   CW_BENCH_BUILD     build directory (default build-bench, Release)
#   CW_BENCH_DURATION  seconds of load (default 20)
#   CW_BENCH_AGENTS    agent connections (default 50)
#   CW_BENCH_RATE      events/s offered, 0 = unlimited (default 100000)
#   CW_BENCH_SERVER_ARGS  extra chainwatchd arguments
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${CW_BENCH_BUILD:-$root/build-bench}
duration=${CW_BENCH_DURATION:-20}
agents=${CW_BENCH_AGENTS:-50}
rate=${CW_BENCH_RATE:-100000}

scripts/install-deps.sh
command -v kcat >/dev/null || {
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends kcat >&2
}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target chainwatchd agentsim kafkadump >/dev/null

settings=$(tests/services/start.sh)
while IFS= read -r line; do export "$line"; done <<<"$settings"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
now() { date +%s.%N; }
clk_tck=$(getconf CLK_TCK)
# utime + stime in seconds of /proc/PID[/task/TID]/stat.
cpu_stat() {
  local stat
  stat=$(cat "$1" 2>/dev/null) || { echo 0; return; }
  stat=${stat##*) }
  awk -v tck="$clk_tck" '{ printf "%.2f", ($12 + $13) / tck }' <<<"$stat"
}
# CPU seconds of every process whose command line matches $1 (summed).
cpu_of_pattern() {
  local total=0 pid
  for pid in $(pgrep -f "$1" || true); do
    total=$(awk -v a="$total" -v b="$(cpu_stat "/proc/$pid/stat")" 'BEGIN { print a + b }')
  done
  echo "$total"
}
# "name=seconds" for every thread name of process $1, summed by name.
threads_cpu() {
  local t
  for t in /proc/"$1"/task/*; do
    echo "$(cat "$t/comm") $(cpu_stat "$t/stat")"
  done | awk '{ s[$1] += $2 } END { for (n in s) printf "%s=%.2f\n", n, s[n] }' | sort
}

work=$(mktemp -d /tmp/cw-bench-sinks.XXXXXX)
chmod 755 "$work"
db=cwbench_$$
base=cwbench.$$.$(date +%s)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  psql -X -q -d "$PG_CONNINFO" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql -X -q -d "$PG_CONNINFO" -c "CREATE DATABASE $db" >/dev/null
conninfo="$PG_CONNINFO"
conninfo="${conninfo/dbname=chainwatch/dbname=$db}"
metric() {
  curl -sf "http://127.0.0.1:$http_port/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# start_server NAME ARGS...: a chainwatchd on free ports with its own data
# dir; sets server_pid, agent_port, http_port.
start_server() {
  local name=$1; shift
  agent_port=$(free_port)
  http_port=$(free_port)
  # shellcheck disable=SC2086  # CW_BENCH_SERVER_ARGS is a list of words on purpose
  "$build/chainwatchd" --data-dir "$work/$name" \
    --agent-listen "127.0.0.1:$agent_port" --http-listen "127.0.0.1:$http_port" \
    "$@" ${CW_BENCH_SERVER_ARGS:-} 2>"$work/$name.log" &
  server_pid=$!
}
# wait_up SINK...: until every named sink reports up.
wait_up() {
  local s ok
  for _ in $(seq 600); do
    ok=1
    for s in "$@"; do [ "$(metric "chainwatch_sink_up{sink=\"$s\"}")" = 1 ] || ok=0; done
    [ $ok = 1 ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "chainwatchd exited:" >&2; exit 1; }
    sleep 0.1
  done
  echo "sinks $* did not come up" >&2
  exit 1
}
stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
}
rate_of() {
  awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f events/s (%.1f s)", n / (b - a), b - a }'
}
# wait_delivered SINK N: until SINK confirmed N events; prints the time.
wait_delivered() {
  local v
  for _ in $(seq 12000); do
    v=$(metric "chainwatch_sink_delivered_total{sink=\"$1\",kind=\"events\"}")
    [ "${v%.*}" -ge "$2" ] && { now; return 0; }
    sleep 0.05
  done
  echo "sink $1 did not catch up" >&2
  exit 1
}

echo "== 1. end to end: agentsim load, $agents agents, rate $rate (0 = unlimited), ${duration} s; both sinks on"
start_server e2e --pg "$conninfo" --kafka-brokers "$KAFKA_BROKERS" \
  --set "kafka.topic_events=$base.events" --set "kafka.topic_alerts=$base.alerts" \
  --set "kafka.topic_incidents=$base.incidents"
wait_up kafka postgres
pg_cpu0=$(cpu_of_pattern 'postgres')
kafka_cpu0=$(cpu_of_pattern 'kafka.Kafka')
t0=$(now)
"$build/agentsim" load --agents "$agents" --rate "$rate" --duration "$duration" \
  --server "127.0.0.1:$agent_port" >"$work/load.out" 2>"$work/load.err"
received=$(metric 'chainwatch_events_received_total{source="agent"}')
received=${received%.*}
t_kafka=$(wait_delivered kafka "$received")
t_pg=$(wait_delivered postgres "$received")
pg_cpu=$(awk -v a="$pg_cpu0" -v b="$(cpu_of_pattern postgres)" 'BEGIN { printf "%.2f", b - a }')
kafka_cpu=$(awk -v a="$kafka_cpu0" -v b="$(cpu_of_pattern kafka.Kafka)" \
  'BEGIN { printf "%.2f", b - a }')
grep -E '^(events_per_s|ack_latency_p50_ms|ack_latency_p99_ms)=' "$work/load.out"
echo "events=$received"
echo "e2e_kafka=$(rate_of "$received" "$t0" "$t_kafka")"
echo "e2e_postgres=$(rate_of "$received" "$t0" "$t_pg")"
last=$t_kafka
[ "$(awk -v a="$t_pg" -v b="$t_kafka" 'BEGIN { print (a > b) }')" = 1 ] && last=$t_pg
echo "e2e_both=$(rate_of "$received" "$t0" "$last")"
echo "-- cpu seconds, load start to both confirmed (server threads by name; \"chainwatchd\" is the main thread)"
threads_cpu "$server_pid"
echo "agentsim=$(sed -n 's/^cpu_s=//p' "$work/load.out")"
echo "postgres=$pg_cpu"
echo "kafka_jvm=$kafka_cpu"
stop_server

echo "== 2. the PostgreSQL sink alone, draining a full sink spool on a quiet machine"
# The events table is locked while the load runs, so the sink spool
# absorbs everything; the lock is released once the pipeline is done and
# the drain is timed: the sink's own rate, comparable with \copy below.
psql -X -q -d "$conninfo" -c "TRUNCATE events, alerts, incidents, incident_alerts"
start_server drain --pg "$conninfo"
wait_up postgres
mkfifo "$work/lock.fifo"
psql -X -q -d "$conninfo" <"$work/lock.fifo" >/dev/null 2>&1 &
lock_pid=$!
exec 7>"$work/lock.fifo"
echo "BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE; SELECT 'locked';" >&7
sleep 1
"$build/agentsim" load --agents "$agents" --rate "$rate" --duration "$duration" \
  --server "127.0.0.1:$agent_port" >"$work/load2.out" 2>"$work/load2.err"
received2=$(metric 'chainwatch_events_received_total{source="agent"}')
received2=${received2%.*}
for _ in $(seq 6000); do
  [ "$(metric chainwatch_pipeline_lag_bytes)" = 0 ] && break
  sleep 0.1
done
echo "spooled_bytes=$(metric 'chainwatch_sink_lag_bytes{sink="postgres"}')"
pg_cpu0=$(cpu_of_pattern 'postgres')
t5=$(now)
echo "ROLLBACK;" >&7
exec 7>&-
wait "$lock_pid" || true
t6=$(wait_delivered postgres "$received2")
echo "events=$received2"
echo "sink_drain=$(rate_of "$received2" "$t5" "$t6")"
echo "postgres_cpu=$(awk -v a="$pg_cpu0" -v b="$(cpu_of_pattern postgres)" \
  'BEGIN { printf "%.2f", b - a }')"
stop_server

echo "== 3. psql \\copy of the same rows into the same (emptied) table"
cols="id, time, type, source, host, agent_id, cluster, cloud, region, node, namespace, pod, pod_uid, container_id, owner, body"
psql -X -q -d "$conninfo" -c "\\copy (SELECT $cols FROM events) TO '$work/events.copy'"
rows=$(wc -l <"$work/events.copy")
psql -X -q -d "$conninfo" -c "TRUNCATE events"
t1=$(now)
psql -X -q -d "$conninfo" -c "\\copy events ($cols) FROM '$work/events.copy'"
t2=$(now)
echo "rows=$rows"
echo "psql_copy=$(rate_of "$rows" "$t1" "$t2")"

echo "== 4. kcat -P of the same messages to a new topic, the sink's producer settings"
delim=$'\x1e\x1fCW\x1f\x1e'
"$build/kafkadump" --brokers "$KAFKA_BROKERS" --topic "$base.events" --timeout-ms 600000 \
  --values-out "$work/values.bin" --delimiter "$delim" >/dev/null
parts=$(kcat -b "$KAFKA_BROKERS" -L -t "$base.events" | awk '/ partitions/ { print $(NF-1); exit }')
# The test broker creates no topic on first use: a chainwatchd with only the
# Kafka sink creates kcat's with the same partition count, then stops.
start_server topic --kafka-brokers "$KAFKA_BROKERS" --set "kafka.topic_events=$base.kcat" \
  --set "kafka.topic_alerts=$base.kcat-a" --set "kafka.topic_incidents=$base.kcat-i" \
  --set "kafka.partitions=$parts"
wait_up kafka
stop_server
t3=$(now)
kcat -P -b "$KAFKA_BROKERS" -t "$base.kcat" -D "$delim" -l "$work/values.bin" \
  -X enable.idempotence=true -X compression.codec=zstd -X compression.level=1 \
  -X linger.ms=25 -X batch.size=1000000 -X batch.num.messages=20000 -X topic.partitioner=murmur2_random 2>"$work/kcat.err" ||
  { cat "$work/kcat.err" >&2; exit 1; }
t4=$(now)
sent=$(kcat -C -b "$KAFKA_BROKERS" -t "$base.kcat" -e -q -f '%o\n' 2>/dev/null | wc -l)
echo "partitions=$parts"
echo "messages=$sent"
echo "kcat_produce=$(rate_of "$sent" "$t3" "$t4")"
