"""tests/services/start.sh and stop.sh as a developer or CI uses them: the
settings they print, that PostgreSQL, Redis and Kafka answer there on
loopback only, that a second start reuses the running services, that a
taken port fails the start before anything runs, and that stop.sh leaves
nothing behind.

Runs its own set of services on free ports in its own directory, so that it
never touches the services scripts/test.sh started for the other tests.
Registered only when CW_SERVICES=1 (tests/services.cmake)."""
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import unittest

from cwtest import free_port

SOURCE = os.environ.get("CW_SOURCE", os.path.join(os.path.dirname(__file__), "../.."))
START = os.path.join(SOURCE, "tests/services/start.sh")
STOP = os.path.join(SOURCE, "tests/services/stop.sh")
KEYS = {"PG_CONNINFO", "KAFKA_BROKERS", "REDIS_URL"}


def services_env(svc_dir, ports):
    env = dict(os.environ)
    for k in ("PG_CONNINFO", "KAFKA_BROKERS", "REDIS_URL"):
        env.pop(k, None)
    env.update({"CW_SERVICES_DIR": svc_dir,
                "CW_PG_PORT": str(ports[0]), "CW_REDIS_PORT": str(ports[1]),
                "CW_KAFKA_PORT": str(ports[2]), "CW_KAFKA_CONTROLLER_PORT": str(ports[3])})
    return env


def run(cmd, env, timeout=900):
    return subprocess.run([cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True)


def parse_settings(out):
    """KEY=value lines -> dict; any other line on stdout is an error."""
    settings = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key.isupper():
            raise AssertionError("not a KEY=value line on stdout: %r" % line)
        settings[key] = value
    return settings


def listening_addresses(port):
    """Local IPv4/IPv6 addresses with a socket listening on PORT."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                addr, hexport = fields[1].rsplit(":", 1)
                if int(hexport, 16) == port and fields[3] == "0A":  # LISTEN
                    found.append(addr)
    return found


def is_loopback(hexaddr):
    if len(hexaddr) == 8:  # IPv4, little-endian 32-bit word
        return hexaddr.endswith("7F")
    # IPv6: ::1, or an IPv4-mapped 127.x address (::ffff:127.x.y.z)
    return (hexaddr == "00000000000000000000000001000000"
            or (hexaddr.startswith("0000000000000000FFFF0000") and hexaddr.endswith("7F")))


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class ServicesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # World-traversable: as root, PostgreSQL runs as an unprivileged user
        # that must reach its data directory below this one.
        cls.tmp = tempfile.mkdtemp(prefix="cwtest-services-")
        os.chmod(cls.tmp, 0o755)
        cls.dir = os.path.join(cls.tmp, "svc")
        cls.ports = [free_port() for _ in range(4)]
        cls.env = services_env(cls.dir, cls.ports)
        cls.start = run(START, cls.env)
        if cls.start.returncode != 0:
            run(STOP, cls.env)
            raise AssertionError("start.sh failed (%d):\n%s" % (cls.start.returncode, cls.start.stderr))
        cls.settings = parse_settings(cls.start.stdout)

    @classmethod
    def tearDownClass(cls):
        run(STOP, cls.env)  # idempotent; test_9 checked it already
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_settings(self):
        s = self.settings
        self.assertEqual(set(s), KEYS)
        pg, redis, kafka, _ = self.ports
        conninfo = dict(kv.split("=", 1) for kv in s["PG_CONNINFO"].split())
        self.assertEqual(conninfo["host"], "127.0.0.1")
        self.assertEqual(conninfo["port"], str(pg))
        self.assertEqual(conninfo["dbname"], "chainwatch")
        self.assertEqual(s["REDIS_URL"], "redis://127.0.0.1:%d" % redis)
        self.assertEqual(s["KAFKA_BROKERS"], "127.0.0.1:%d" % kafka)
        # The env file, sourced by a shell, gives the same values.
        out = subprocess.run(
            ["bash", "-c", 'set -a; . "$1/env"; printf "%s\\n" "$PG_CONNINFO" "$KAFKA_BROKERS" "$REDIS_URL"',
             "bash", self.dir], env=self.env, stdout=subprocess.PIPE, text=True, check=True).stdout
        self.assertEqual(out.splitlines(), [s["PG_CONNINFO"], s["KAFKA_BROKERS"], s["REDIS_URL"]])

    def test_2_postgres(self):
        sql = ("CREATE TABLE t (id int); INSERT INTO t VALUES (7); "
               "SELECT current_user || ' ' || current_database() || ' ' || sum(id) FROM t; DROP TABLE t;")
        out = subprocess.run(["psql", self.settings["PG_CONNINFO"], "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "chainwatch chainwatch 7")

    def test_2_postgres_wrong_password(self):
        conninfo = self.settings["PG_CONNINFO"].replace("password=chainwatch", "password=wrong")
        out = subprocess.run(["psql", conninfo, "-c", "SELECT 1"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("password authentication failed", out.stderr)

    def test_3_redis(self):
        port = int(self.settings["REDIS_URL"].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            self.assertEqual(recv_exact(s, 7), b"+PONG\r\n")
            s.sendall(b"*3\r\n$3\r\nSET\r\n$2\r\ncw\r\n$2\r\nok\r\n*2\r\n$3\r\nGET\r\n$2\r\ncw\r\n")
            self.assertEqual(recv_exact(s, 5 + 8), b"+OK\r\n$2\r\nok\r\n")

    def test_4_kafka_api_versions(self):
        host, port = self.settings["KAFKA_BROKERS"].rsplit(":", 1)
        client = b"cwtest"
        # ApiVersions v0: header api_key=18, version=0, correlation id, client id.
        req = struct.pack(">hhih", 18, 0, 42, len(client)) + client
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(struct.pack(">i", len(req)) + req)
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            self.assertLess(size, 1 << 20)
            body = recv_exact(s, size)
        corr, err, n = struct.unpack(">ihi", body[:10])
        self.assertEqual((corr, err), (42, 0))
        apis = {struct.unpack(">h", body[10 + 6 * i:12 + 6 * i])[0] for i in range(n)}
        # Produce, Fetch, Metadata, CreateTopics, InitProducerId: what
        # chainwatch's idempotent producer and topic setup need.
        self.assertTrue({0, 1, 3, 19, 22} <= apis, sorted(apis))

    def test_5_loopback_only(self):
        for port in self.ports:
            addrs = listening_addresses(port)
            self.assertTrue(addrs, "nothing listens on port %d" % port)
            for a in addrs:
                self.assertTrue(is_loopback(a), "port %d listens on %s" % (port, a))

    def test_6_second_start_reuses(self):
        again = run(START, self.env, timeout=120)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(parse_settings(again.stdout), self.settings)
        self.assertIn("PostgreSQL already running", again.stderr)
        self.assertIn("Redis already running", again.stderr)
        self.assertIn("Kafka already running", again.stderr)

    def test_7_port_taken(self):
        """A port in use by someone else fails the start before anything
        runs, and says which variable picks another port."""
        other_dir = os.path.join(self.tmp, "other")
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen(1)
            ports = [free_port(), free_port(), squatter.getsockname()[1], free_port()]
            env = services_env(other_dir, ports)
            try:
                out = run(START, env, timeout=300)
            finally:
                run(STOP, env)
        self.assertNotEqual(out.returncode, 0)
        self.assertEqual(out.stdout, "")
        self.assertIn("CW_KAFKA_PORT", out.stderr)
        self.assertNotIn("started", out.stderr)
        self.assertEqual(listening_addresses(ports[0]), [])

    def test_9_stop(self):
        pids = []
        for name in ("pg/data/postmaster.pid", "redis/redis.pid", "kafka/kafka.pid"):
            with open(os.path.join(self.dir, name)) as f:
                pids.append(f.readline().strip())
        out = run(STOP, self.env, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertFalse(os.path.exists(self.dir))
        for pid in pids:
            # Gone, or a zombie that our sandbox has not reaped yet.
            try:
                with open("/proc/%s/stat" % pid) as f:
                    self.assertIn(") Z", f.read())
            except FileNotFoundError:
                pass
        for port in self.ports:
            self.assertEqual(listening_addresses(port), [], "port %d still listened on" % port)
        again = run(STOP, self.env, timeout=60)
        self.assertEqual(again.returncode, 0, again.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
