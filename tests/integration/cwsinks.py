"""Helpers for tests of the Kafka and PostgreSQL sinks against the real
services of tests/services (start.sh): a database and topic names of a
test's own, reading back what the sinks stored (psql, kafkadump), and
taking a service away and bringing it back (stop.sh NAME, start.sh).

Python 3 standard library only; psql comes with the PostgreSQL packages
start.sh installs, kafkadump is built with chainwatchd."""
import collections
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

from cwtest import BUILD

SOURCE = os.environ.get("CW_SOURCE", os.path.join(os.path.dirname(__file__), "../.."))
SERVICES = os.path.join(SOURCE, "tests", "services")
KAFKADUMP = os.path.join(BUILD, "kafkadump")


def services_env():
    """PG_CONNINFO and KAFKA_BROKERS as scripts/test.sh exports them."""
    pg, kafka = os.environ.get("PG_CONNINFO"), os.environ.get("KAFKA_BROKERS")
    if not pg or not kafka:
        raise RuntimeError("PG_CONNINFO and KAFKA_BROKERS must be set (tests/services/start.sh)")
    return pg, kafka


def with_param(conninfo, key, value):
    """conninfo with key=value replaced or added."""
    parts = [p for p in conninfo.split() if not p.startswith(key + "=")]
    return " ".join(parts + ["%s=%s" % (key, value)])


def psql(conninfo, sql, timeout=120):
    """Rows of a query as lists of strings (psql unaligned, tab-separated)."""
    p = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                        "-d", conninfo, "-c", sql],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("psql %r failed: %s" % (sql, p.stderr))
    return [line.split("\t") for line in p.stdout.splitlines() if line != ""]


_seq = [0]


def unique_name(prefix):
    _seq[0] += 1
    return "%s_%d_%d_%d" % (prefix, os.getpid(), int(time.time()), _seq[0])


class Database:
    """A database of the test's own on the test PostgreSQL, dropped at exit."""

    def __init__(self):
        self.admin, _ = services_env()
        self.name = unique_name("cwtest")
        psql(self.admin, "CREATE DATABASE %s" % self.name)
        self.conninfo = with_param(self.admin, "dbname", self.name)

    def rows(self, sql):
        return psql(self.conninfo, sql)

    def drop(self):
        # Sessions of a killed server, or an autovacuum worker (which this
        # role may not terminate), may linger for a moment: retry, and leave
        # the database behind rather than fail a test that passed.
        for attempt in range(20):
            try:
                psql(self.admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)
                return
            except AssertionError as e:
                err = e
                time.sleep(0.5)
        sys.stderr.write("warning: database %s not dropped: %s\n" % (self.name, err))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.drop()


class Topics:
    """Topic names of the test's own (chainwatchd creates them)."""

    def __init__(self):
        _, self.brokers = services_env()
        base = unique_name("cwtest")
        self.events, self.alerts, self.incidents = (base + ".events", base + ".alerts",
                                                    base + ".incidents")

    def server_args(self, partitions=3):
        return ["--kafka-brokers", self.brokers,
                "--set", "kafka.topic_events=" + self.events,
                "--set", "kafka.topic_alerts=" + self.alerts,
                "--set", "kafka.topic_incidents=" + self.incidents,
                "--set", "kafka.partitions=%d" % partitions]

    def dump(self, topic, timeout=300):
        """Every message of topic, as kafkadump prints them."""
        p = subprocess.run([KAFKADUMP, "--brokers", self.brokers, "--topic", topic,
                            "--timeout-ms", str(timeout * 1000)],
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError("kafkadump %s exited %d: %s" % (topic, p.returncode, p.stderr))
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def sink_lag(m, sink):
    return m.get('chainwatch_sink_lag_bytes{sink="%s"}' % sink, 0)


def wait_caught_up(srv, sinks, expected_events=None, timeout=240):
    """Until the pipeline has processed everything (at least expected_events
    when given) and every sink in `sinks` ("kafka", "postgres") has confirmed
    all of the sink spool, twice in a row."""
    deadline = time.time() + timeout
    calm = 0
    while True:
        m = srv.metrics()
        done = m["chainwatch_pipeline_lag_bytes"] == 0 and all(
            sink_lag(m, s) == 0 for s in sinks)
        if expected_events is not None:
            done = done and m["chainwatch_pipeline_events_total"] >= expected_events
        calm = calm + 1 if done else 0
        if calm >= 3:
            return m
        if time.time() > deadline:
            raise AssertionError("sinks did not catch up: %r" % {
                k: v for k, v in m.items() if "sink" in k or "pipeline" in k})
        time.sleep(0.3)


def acked_ids(ack_log):
    """Event ids that agentsim saw acknowledged (agentsim --ack-log)."""
    ids = set()
    with open(ack_log) as f:
        for line in f:
            agent, seq, count = line.split()
            for i in range(int(count)):
                ids.add("%s:%s:%d" % (agent, seq, i))
    return ids


def duplicates(values):
    return {v: n for v, n in collections.Counter(values).items() if n > 1}


def stop_service(name):
    subprocess.run([os.path.join(SERVICES, "stop.sh"), name], check=True, timeout=120)


def start_services():
    """Starts what is not running (the stopped service, on its old data)."""
    subprocess.run([os.path.join(SERVICES, "start.sh")], check=True, timeout=300,
                   stdout=subprocess.DEVNULL)


class TcpProxy:
    """A loopback TCP forwarder in front of a service, which the test can
    cut (every connection dropped, new ones refused) and restore: a database
    outage that affects only this test's server."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.up = True
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            try:
                s = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, s]
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns = []

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        self.lsock.close()


def pg_host_port(conninfo):
    host = re.search(r"host=(\S+)", conninfo).group(1)
    port = int(re.search(r"port=(\d+)", conninfo).group(1))
    return host, port
