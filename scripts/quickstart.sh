#!/usr/bin/env bash
# Quickstart on a fresh Debian machine: installs what is missing, builds,
# starts chainwatchd on its embedded default (local spool only, no external
# services), replays the example attack from ../shared/scenarios with the
# agent simulator, shows what the server made of it, and stops the server.
# Usage: scripts/quickstart.sh [SCENARIO.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scenario=${1:-$root/../shared/scenarios/anonymous-apiserver-to-miner-worm.jsonl}
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

work=${CW_QUICKSTART_DIR:-$(mktemp -d /tmp/chainwatch-quickstart.XXXXXX)}
mkdir -p "$work"
agent_port=${CW_AGENT_PORT:-7400}
http_port=${CW_HTTP_PORT:-7480}
echo "== starting chainwatchd (data in $work)"
build/chainwatchd --data-dir "$work/data" \
  --agent-listen 127.0.0.1:$agent_port --http-listen 127.0.0.1:$http_port \
  --events-out "$work/events.jsonl" --alerts-out "$work/alerts.jsonl" \
  --incidents-out "$work/incidents.jsonl" 2>"$work/chainwatchd.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$work/chainwatchd.log"; exit 1; }
  sleep 0.1
done

echo "== replaying $(basename "$scenario")"
build/agentsim replay --speed 0 --server 127.0.0.1:$agent_port \
  --http "http://127.0.0.1:$http_port" "$scenario"
sleep 1

echo "== metrics (http://127.0.0.1:$http_port/metrics)"
curl -s "http://127.0.0.1:$http_port/metrics" |
  grep -E '^chainwatch_(events_received_total|agents_connected|spool_bytes|pipeline_events_total|alerts_total|incidents_total)' |
  grep -v ' 0$' || true
echo "== three enriched events from $work/events.jsonl"
grep '"container_id":"[0-9a-f]' "$work/events.jsonl" | head -3 || true
echo "== incidents ($work/incidents.jsonl: every state of every incident; the last one per id)"
python3 - "$work/incidents.jsonl" <<'PY'
import json, sys
last = {}
for line in open(sys.argv[1]):
    inc = json.loads(line)
    last[inc["id"]] = inc
for inc in last.values():
    if inc["status"] == "merged":
        continue
    print("%s %s: hosts %s, pods %s, %d alerts" % (inc["id"], inc["severity"], ",".join(inc["hosts"]),
          ",".join(inc["pods"]), inc["alert_count"]))
    print("  tactics: %s" % ", ".join(inc["tactics"]))
    print("  techniques: %s; phases: %s" % (", ".join(inc["techniques"]), ", ".join(inc["phases"])))
PY
kill -TERM $pid
wait $pid
trap - EXIT
echo "== chainwatchd stopped cleanly; files in $work"
