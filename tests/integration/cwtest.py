"""Helpers for chainwatch integration tests (Python 3 standard library only).

Starts the real chainwatchd on free loopback ports with a temporary data
directory, talks the agent protocol with a minimal protobuf encoder, and
reads /metrics. Every server started here is stopped (and checked to exit 0
on SIGTERM) by the test that started it.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("CW_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
SHARED = os.environ.get("CW_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
CHAINWATCHD = os.path.join(BUILD, "chainwatchd")
AGENTSIM = os.path.join(BUILD, "agentsim")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A chainwatchd process on free ports. Use as a context manager."""

    def __init__(self, data_dir=None, extra=(), events_out=True):
        self.tmp = tempfile.mkdtemp(prefix="cwtest-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.agent_port = free_port()
        self.http_port = free_port()
        self.events_out = os.path.join(self.tmp, "events.jsonl") if events_out else None
        self.extra = list(extra)
        self.proc = None
        self.log_path = os.path.join(self.tmp, "chainwatchd.log")

    def args(self):
        a = [CHAINWATCHD, "--data-dir", self.data_dir,
             "--agent-listen", "127.0.0.1:%d" % self.agent_port,
             "--http-listen", "127.0.0.1:%d" % self.http_port,
             "--alerts-out", os.path.join(self.tmp, "alerts.jsonl"),
             "--incidents-out", os.path.join(self.tmp, "incidents.jsonl")]
        if self.events_out:
            a += ["--events-out", self.events_out]
        return a + self.extra

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chainwatchd exited with %d:\n%s" % (self.proc.returncode, self.logs()))
            try:
                if self.get("/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("chainwatchd did not become healthy:\n" + self.logs())

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, expect_code=0):
        """SIGTERM, wait, and check the exit status (a clean stop exits 0)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("chainwatchd did not stop on SIGTERM:\n" + self.logs())
            if expect_code is not None and self.proc.returncode != expect_code:
                raise AssertionError("chainwatchd exited %d:\n%s" % (self.proc.returncode, self.logs()))
        self.log.close()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            if exc[0] is None:
                self.stop()
            else:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                sys.stderr.write("--- chainwatchd log ---\n" + self.logs())

    # HTTP
    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url(path), timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path, body, content_type="application/json"):
        req = urllib.request.Request(self.url(path), data=body, method="POST",
                                     headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics(self):
        """Returns {'name{labels}': value} from /metrics."""
        status, body = self.get("/metrics")
        assert status == 200, status
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def wait_metric(self, name, value, timeout=20):
        deadline = time.time() + timeout
        while True:
            got = self.metrics().get(name)
            if got == value:
                return
            if time.time() > deadline:
                raise AssertionError("%s = %r, expected %r" % (name, got, value))
            time.sleep(0.05)

    def events(self):
        """The events written to --events-out, parsed."""
        with open(self.events_out) as f:
            return [json.loads(l) for l in f if l.strip()]


# ---------------------------------------------------------------- protobuf

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v & 0xFFFFFFFFFFFFFFFF)


def field_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(num << 3 | 2) + varint(len(b)) + b


def hello(agent_id, hostname="host-1", cluster="", ip="10.0.0.1"):
    h = (field_varint(1, 1) + field_bytes(2, agent_id) + field_bytes(3, hostname)
         + field_bytes(4, ip) + field_bytes(5, "aws") + field_bytes(6, "us-east-1")
         + field_bytes(7, cluster) + field_bytes(8, hostname))
    return field_bytes(1, h)  # AgentFrame.hello


def process_exec_event(time_ns, exe="/bin/sh", argv=("sh", "-c", "true"), container_id=""):
    pe = field_varint(1, 1234) + field_varint(2, 1) + field_bytes(3, exe)
    for a in argv:
        pe += field_bytes(4, a)
    pe += field_varint(6, 0)
    if container_id:
        pe += field_bytes(8, container_id)
    return field_varint(1, time_ns) + field_bytes(10, pe)


def batch(seq, events):
    b = field_varint(1, seq)
    for e in events:
        b += field_bytes(2, e)
    return field_bytes(2, b)  # AgentFrame.batch


def heartbeat():
    return field_bytes(3, field_varint(1, time.time_ns()))


def frame(msg):
    return struct.pack(">I", len(msg)) + msg


def parse_fields(buf):
    """Decodes one protobuf message level into [(num, value)]."""
    i, out = 0, []
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.append((num, v))
    return out


def _read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


class Agent:
    """A raw agent connection speaking the wire protocol."""

    def __init__(self, server, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", server.agent_port), timeout=timeout)
        self.buf = b""

    def send(self, msg):
        self.sock.sendall(frame(msg))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self):
        """Next ServerFrame as (kind, value): ('ack', seq), ('error', (code, text)),
        ('heartbeat', ns), or ('closed', None)."""
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    msg, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return self._decode(msg)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return ("closed", None)
            self.buf += chunk

    @staticmethod
    def _decode(msg):
        (num, body), = parse_fields(msg)
        f = dict(parse_fields(body))
        if num == 1:
            return ("ack", f.get(1, 0))
        if num == 2:
            return ("heartbeat", f.get(1, 0))
        if num == 3:
            return ("error", (f.get(1, 0), f.get(2, b"").decode()))
        return ("command", f)

    def expect_ack(self, seq):
        got = self.recv()
        assert got == ("ack", seq), "expected ack %d, got %r" % (seq, got)

    def ack_at_least(self, seq, timeout=20):
        """Reads acks until one covers seq; returns it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            kind, v = self.recv()
            assert kind in ("ack", "heartbeat"), (kind, v)
            if kind == "ack" and v >= seq:
                return v
        raise AssertionError("no ack for %d" % seq)

    def close(self):
        self.sock.close()


def scenario_event_count(path):
    """Event lines in a scenario file: everything but comments, agent and expect lines."""
    n = 0
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            t = json.loads(s).get("type")
            if t not in ("agent", "expect"):
                n += 1
    return n


def rss_bytes(pid):
    """Resident memory of a process, from /proc."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run(cmd, timeout=300, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s" % (cmd, p.returncode, p.stdout, p.stderr))
    return p
