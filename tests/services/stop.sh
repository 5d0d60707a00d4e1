#!/usr/bin/env bash
# Stops the services that tests/services/start.sh started from
# $CW_SERVICES_DIR, by their pid files only (a process is signalled only when
# its command line shows it is the service that pid file names), then removes
# that directory unless CW_SERVICES_KEEP=1. Idempotent: stopping what is not
# running is no error. Progress goes to stderr.
#
# With names (stop.sh kafka postgres redis, any of them) it stops only those
# and keeps the directory, so that start.sh restarts them on the same data:
# how the outage tests take a service away and bring it back.
set -uo pipefail

dir=${CW_SERVICES_DIR:-/tmp/chainwatch-services}
marker=.chainwatch-services

say() { echo "services: $*" >&2; }

alive() { # PID PATTERN; as in start.sh
  local pid=$1 pat=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pat"
}

# stop NAME PID PATTERN SIGNAL GRACE: sends SIGNAL, waits up to GRACE
# seconds for the process to exit, then kills it.
stop() {
  local name=$1 pid=$2 pat=$3 sig=$4 grace=$5
  alive "$pid" "$pat" || return 0
  say "stopping $name (pid $pid)"
  kill "-$sig" "$pid" 2>/dev/null
  local deadline=$((SECONDS + grace))
  while alive "$pid" "$pat"; do
    if [ $SECONDS -ge $deadline ]; then
      say "$name did not stop within ${grace}s: killing it"
      kill -KILL "$pid" 2>/dev/null
      # The kernel may take a moment to reap it; don't report success early.
      for _ in $(seq 40); do alive "$pid" "$pat" || break; sleep 0.05; done
      break
    fi
    sleep 0.1
  done
}

if [ ! -d "$dir" ]; then
  exit 0
fi
if [ ! -f "$dir/$marker" ]; then
  say "$dir was not made by start.sh; leaving it alone"
  exit 1
fi

only=" $* "
for name in "$@"; do
  case $name in
    kafka|postgres|redis) ;;
    *) say "unknown service $name (kafka, postgres, redis)"; exit 2 ;;
  esac
done
want() { [ "$only" = "  " ] || [[ $only == *" $1 "* ]]; }

# Kafka first: it is the slowest, and nothing depends on it here. SIGTERM
# makes it shut down cleanly (a controlled shutdown of the single node).
want kafka && stop Kafka "$(cat "$dir/kafka/kafka.pid" 2>/dev/null)" kafka.Kafka TERM 30
# SIGINT is PostgreSQL's "fast" shutdown: it ends sessions and exits.
want postgres &&
  stop PostgreSQL "$(head -n 1 "$dir/pg/data/postmaster.pid" 2>/dev/null)" postgres INT 30
want redis && stop Redis "$(cat "$dir/redis/redis.pid" 2>/dev/null)" redis-server TERM 10

[ $# -gt 0 ] && exit 0

if [ "${CW_SERVICES_KEEP:-0}" = 1 ]; then
  say "keeping $dir (CW_SERVICES_KEEP=1)"
else
  rm -rf "$dir"
  say "removed $dir"
fi
exit 0
