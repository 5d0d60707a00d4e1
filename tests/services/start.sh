#!/usr/bin/env bash
# Starts the real services that chainwatch's integration tests and developers
# use: PostgreSQL, Redis and a single-node Kafka broker (KRaft mode), all on
# 127.0.0.1 only, with their data under $CW_SERVICES_DIR. Installs what is
# missing first (Debian packages; the Kafka jars through Maven, cached between
# runs). Idempotent: services already running from the same directory are
# reused, not started twice.
#
# stdout carries only the settings, as KEY=value lines (PG_CONNINFO,
# KAFKA_BROKERS, REDIS_URL); progress and errors go to stderr. The same
# settings are written to $CW_SERVICES_DIR/env in shell syntax, for `source`.
# Exit status is non-zero, with the failing service's log tail on stderr,
# when anything does not come up within $CW_SERVICES_TIMEOUT seconds.
# Environment variables and defaults: tests/services/README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# fd 3 is the real stdout, kept for the settings alone; everything else that
# this script or its commands print goes to stderr.
exec 3>&1 1>&2

dir=${CW_SERVICES_DIR:-/tmp/chainwatch-services}
pg_port=${CW_PG_PORT:-55432}
redis_port=${CW_REDIS_PORT:-56379}
kafka_port=${CW_KAFKA_PORT:-59092}
kafka_cport=${CW_KAFKA_CONTROLLER_PORT:-59093}
kafka_version=${CW_KAFKA_VERSION:-4.1.1}
kafka_heap=${CW_KAFKA_HEAP:--Xms256m -Xmx512m}
cache=${CW_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/chainwatch}
timeout=${CW_SERVICES_TIMEOUT:-120}
marker=.chainwatch-services

say() { echo "services: $*"; }
die() { echo "services: ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# alive PID PATTERN: true when PID runs and its command line contains
# PATTERN, so that a recycled pid of an unrelated process never counts.
alive() {
  local pid=$1 pat=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pat"
}

# port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
port_busy() {
  timeout 2 bash -c "exec 5<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

check_port() { # PORT VARIABLE
  if port_busy "$1"; then
    die "127.0.0.1:$1 is already in use by a program this script did not start; choose another port with $2=..."
  fi
}

# wait_ready NAME PID PATTERN LOG... -- COMMAND...: polls COMMAND until it
# succeeds; fails with the logs' tails when the process dies or time runs out.
wait_ready() {
  local name=$1 pid=$2 pat=$3; shift 3
  local logs=()
  while [ "$1" != "--" ]; do logs+=("$1"); shift; done
  shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    local why=
    alive "$pid" "$pat" || why="its process (pid $pid) exited"
    [ -z "$why" ] && [ $SECONDS -ge $deadline ] && why="no answer within ${timeout}s"
    if [ -n "$why" ]; then
      echo "services: ERROR: $name did not come up: $why"
      local f
      for f in "${logs[@]}"; do
        [ -f "$f" ] || continue
        echo "---- last lines of $f"
        tail -n 40 "$f"
      done
      exit 1
    fi
    sleep 0.25
  done
}

# ---------------------------------------------------------------- packages
is_root() { [ "$(id -u)" -eq 0 ]; }
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
java_major() {
  command -v java >/dev/null || { echo 0; return; }
  java -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}
kjars=$cache/kafka-$kafka_version

missing=()
[ -x "$(pg_bindir)/initdb" ] || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v python3 >/dev/null || missing+=(python3)
# Kafka 4 brokers need Java 17 or newer (Debian 12's default).
[ "$(java_major)" -ge 17 ] 2>/dev/null || missing+=(default-jre-headless)
if [ ! -f "$kjars/.complete" ] && ! command -v mvn >/dev/null; then
  missing+=(maven)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing: ${missing[*]}"
  SUDO=; is_root || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
pg_bin=$(pg_bindir)
[ -x "$pg_bin/initdb" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
[ "$(java_major)" -ge 17 ] 2>/dev/null || die "java 17 or newer is needed for Kafka $kafka_version"

# ------------------------------------------------------ the data directory
if [ -d "$dir" ] && [ ! -f "$dir/$marker" ] && [ -n "$(ls -A "$dir")" ]; then
  die "$dir exists and was not made by this script; set CW_SERVICES_DIR to a new directory"
fi
mkdir -p "$dir"
chmod 755 "$dir"
touch "$dir/$marker"

# --------------------------------------------- what runs, what is in use
# Every port is checked before anything starts, so that a conflict fails
# the whole start without leaving half of the services running.
pgdir=$dir/pg
pgdata=$pgdir/data
rdir=$dir/redis
kdir=$dir/kafka
pg_pid=$(head -n 1 "$pgdata/postmaster.pid" 2>/dev/null || true)
redis_pid=$(cat "$rdir/redis.pid" 2>/dev/null || true)
kafka_pid=$(cat "$kdir/kafka.pid" 2>/dev/null || true)
pg_running=0 redis_running=0 kafka_running=0
if alive "$pg_pid" postgres && [ -f "$pgdir/port" ]; then
  pg_running=1
else
  check_port "$pg_port" CW_PG_PORT
fi
if alive "$redis_pid" redis-server && [ -f "$rdir/port" ]; then
  redis_running=1
else
  check_port "$redis_port" CW_REDIS_PORT
fi
if alive "$kafka_pid" kafka.Kafka && [ -f "$kdir/port" ]; then
  kafka_running=1
else
  check_port "$kafka_port" CW_KAFKA_PORT
  check_port "$kafka_cport" CW_KAFKA_CONTROLLER_PORT
fi

# ------------------------------------------------------------- Kafka jars
if [ ! -f "$kjars/.complete" ]; then
  t0=$(now)
  say "fetching Kafka $kafka_version jars into $kjars (once)"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.kafka-$kafka_version.XXXXXX")
  if ! mvn -B -q -Dstyle.color=never -f "$here/kafka/pom.xml" \
      -Dmaven.repo.local="$cache/m2" -Dkafka.version="$kafka_version" \
      dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp/jars" >"$tmp/mvn.log" 2>&1; then
    tail -n 40 "$tmp/mvn.log"
    rm -rf "$tmp"
    die "could not fetch the Kafka $kafka_version jars with Maven (log above)"
  fi
  # Moved into place only when complete, so an interrupted fetch is redone.
  touch "$tmp/jars/.complete"
  rm -rf "$kjars"
  mv "$tmp/jars" "$kjars"
  rm -rf "$tmp"
  say "Kafka jars fetched in $(since "$t0")s"
fi

# ------------------------------------------------------------- PostgreSQL
# PostgreSQL refuses to run as root: as root, the server runs as the
# unprivileged user the Debian package creates, and owns its directory.
pg_os_user=${CW_PG_OS_USER:-postgres}
as_pg() {
  if is_root; then runuser -u "$pg_os_user" -- "$@"; else "$@"; fi
}
t0=$(now)
if [ $pg_running = 1 ]; then
  pg_port=$(cat "$pgdir/port")
  say "PostgreSQL already running (pid $pg_pid, port $pg_port)"
else
  if is_root; then
    getent passwd "$pg_os_user" >/dev/null ||
      die "user $pg_os_user does not exist; set CW_PG_OS_USER to an unprivileged user"
  fi
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    rm -rf "$pgdir"
    mkdir -p "$pgdir"
    is_root && chown "$pg_os_user" "$pgdir"
    as_pg test -w "$pgdir" ||
      die "$pgdir is not writable by $pg_os_user (is a parent directory private?)"
    echo postgres >"$pgdir/pwfile"
    is_root && chown "$pg_os_user" "$pgdir/pwfile"
    as_pg "$pg_bin/initdb" -D "$pgdata" -U postgres --pwfile="$pgdir/pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale \
      >"$pgdir/initdb.log" 2>&1 || { cat "$pgdir/initdb.log"; die "initdb failed"; }
    # Test data is thrown away: durability settings off make tests faster.
    # No Unix socket: its path could exceed the length limit under a long
    # CW_SERVICES_DIR, and clients use TCP anyway.
    cat >>"$pgdata/postgresql.conf" <<EOF

# chainwatch test instance (tests/services/start.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi
  as_pg "$pg_bin/pg_ctl" -D "$pgdata" -l "$pgdir/server.log" -o "-p $pg_port" \
    -w -t "$timeout" start >/dev/null 3>&- ||
    { tail -n 40 "$pgdir/server.log" 2>/dev/null; die "PostgreSQL did not start (log above)"; }
  echo "$pg_port" >"$pgdir/port"
  pg_pid=$(head -n 1 "$pgdata/postmaster.pid")
  say "PostgreSQL started (pid $pg_pid, port $pg_port)"
fi
wait_ready PostgreSQL "$pg_pid" postgres "$pgdir/server.log" -- \
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"
# The role and database are ensured on every start, which also repairs a
# first start that was interrupted after initdb.
admin="host=127.0.0.1 port=$pg_port user=postgres password=postgres dbname=postgres"
psql "$admin" -v ON_ERROR_STOP=1 -qAt >/dev/null <<'EOF' || die "could not create the chainwatch role"
SELECT 'CREATE ROLE chainwatch LOGIN CREATEDB PASSWORD ''chainwatch'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chainwatch') \gexec
SELECT 'CREATE DATABASE chainwatch OWNER chainwatch'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'chainwatch') \gexec
EOF
pg_conninfo="host=127.0.0.1 port=$pg_port dbname=chainwatch user=chainwatch password=chainwatch"
say "PostgreSQL ready in $(since "$t0")s"

# ------------------------------------------------------------------ Redis
t0=$(now)
mkdir -p "$rdir"
if [ $redis_running = 1 ]; then
  redis_port=$(cat "$rdir/port")
  say "Redis already running (pid $redis_pid, port $redis_port)"
else
  rm -f "$rdir/redis.pid"
  # No persistence: test data is thrown away.
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$rdir" \
    --daemonize yes --pidfile "$rdir/redis.pid" --logfile "$rdir/redis.log" \
    --save '' --appendonly no 3>&- ||
    { tail -n 40 "$rdir/redis.log" 2>/dev/null; die "Redis did not start (log above)"; }
  # The daemon writes its pid file just after it forks.
  for _ in $(seq 40); do [ -s "$rdir/redis.pid" ] && break; sleep 0.05; done
  redis_pid=$(cat "$rdir/redis.pid" 2>/dev/null || true)
  echo "$redis_port" >"$rdir/port"
  say "Redis started (pid $redis_pid, port $redis_port)"
fi
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping)" = PONG ]; }
wait_ready Redis "$redis_pid" redis-server "$rdir/redis.log" -- redis_ping
say "Redis ready in $(since "$t0")s"

# ------------------------------------------------------------------ Kafka
t0=$(now)
mkdir -p "$kdir/data" "$kdir/logs"
if [ $kafka_running = 1 ]; then
  kafka_port=$(cat "$kdir/port")
  say "Kafka already running (pid $kafka_pid, port $kafka_port)"
else
  # One node that is both broker and controller. Topics are not created on
  # first use: chainwatch creates its own, and a typo should fail loudly.
  cat >"$kdir/server.properties" <<EOF
# chainwatch test broker (tests/services/start.sh); rewritten on each start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_cport
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_cport
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$kdir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  # The client-only JIT (C1) and the serial collector start the broker
  # faster and leave more of a 2-core machine to the tests; a test broker's
  # throughput does not need C2 or G1.
  java_opts=($kafka_heap -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$here/kafka/log4j2.properties"
    -Dkafka.logs.dir="$kdir/logs")
  if [ ! -f "$kdir/data/meta.properties" ]; then
    # A cluster id is 16 random bytes in URL-safe base64; Kafka's own tool
    # avoids ids that start with '-', which command lines would misread.
    cluster_id=$(python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break')
    java "${java_opts[@]}" -cp "$kjars/*" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$kdir/server.properties" >"$kdir/logs/format.log" 2>&1 ||
      { cat "$kdir/logs/format.log"; die "could not format the Kafka storage"; }
  fi
  # Every server is started with fd 3 (our stdout) closed: a daemon holding
  # it would keep a caller that reads our output waiting for ever.
  # setsid: the broker outlives this script and is not hit by a Ctrl-C
  # meant for the caller. The subshell is no process group leader, so
  # setsid does not fork and $! is the JVM's own pid.
  # A failed start shows the log of this launch, not of an earlier one.
  [ -f "$kdir/logs/server.log" ] && mv "$kdir/logs/server.log" "$kdir/logs/server.log.prev"
  (exec setsid java "${java_opts[@]}" -cp "$kjars/*" kafka.Kafka \
    "$kdir/server.properties" </dev/null >"$kdir/logs/kafka.out" 2>&1 3>&-) &
  kafka_pid=$!
  echo "$kafka_pid" >"$kdir/kafka.pid"
  echo "$kafka_port" >"$kdir/port"
  say "Kafka $kafka_version started (pid $kafka_pid, port $kafka_port)"
fi
wait_ready Kafka "$kafka_pid" kafka.Kafka "$kdir/logs/kafka.out" "$kdir/logs/server.log" -- \
  python3 "$here/kafka_ready.py" "127.0.0.1:$kafka_port" 2
say "Kafka ready in $(since "$t0")s"

# --------------------------------------------------------------- settings
kafka_brokers=127.0.0.1:$kafka_port
redis_url=redis://127.0.0.1:$redis_port
cat >"$dir/env.tmp" <<EOF
PG_CONNINFO='$pg_conninfo'
KAFKA_BROKERS='$kafka_brokers'
REDIS_URL='$redis_url'
EOF
mv "$dir/env.tmp" "$dir/env"
printf 'PG_CONNINFO=%s\nKAFKA_BROKERS=%s\nREDIS_URL=%s\n' \
  "$pg_conninfo" "$kafka_brokers" "$redis_url" >&3
