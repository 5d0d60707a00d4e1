#!/usr/bin/env python3
"""Says whether a Kafka broker at HOST:PORT is ready to serve clients.

Used by start.sh (no kcat or Kafka CLI needed: Python 3 stdlib only). Ready
means: an ApiVersions request (v0) is answered without error, and a Metadata
request (v4) lists at least one broker. The second check matters because a
KRaft broker accepts connections before it has caught up with the metadata
log; clients that connect then get no brokers. Exit status 0 when ready, 1
otherwise, with the reason on stderr.

Usage: kafka_ready.py HOST:PORT [TIMEOUT_SECONDS]
"""
import socket
import struct
import sys

API_METADATA = 3
API_VERSIONS = 18
MAX_RESPONSE = 16 * 1024 * 1024  # a sanity bound on what we read


def request(sock, api_key, version, corr, body):
    """Sends one request with a v1 header and returns the response body."""
    client = b"chainwatch-kafka-ready"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    if size < 4 or size > MAX_RESPONSE:
        raise ValueError("bad response size %d" % size)
    data = recv_exact(sock, size)
    got = struct.unpack(">i", data[:4])[0]
    if got != corr:
        raise ValueError("correlation id %d, expected %d" % (got, corr))
    return data[4:]


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return buf


def api_versions(sock):
    """Returns {api_key: (min, max)} from an ApiVersions v0 exchange."""
    body = request(sock, API_VERSIONS, 0, 1, b"")
    err, count = struct.unpack(">hi", body[:6])
    if err != 0:
        raise ValueError("ApiVersions error code %d" % err)
    apis = {}
    for i in range(count):
        key, lo, hi = struct.unpack(">hhh", body[6 + 6 * i:12 + 6 * i])
        apis[key] = (lo, hi)
    return apis


def broker_count(sock):
    """Returns how many brokers a Metadata v4 response lists."""
    # topics = null (all), allow_auto_topic_creation = false
    body = request(sock, API_METADATA, 4, 2, struct.pack(">ib", -1, 0))
    _throttle, count = struct.unpack(">ii", body[:8])
    return count


def check(addr, timeout):
    host, _, port = addr.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.settimeout(timeout)
        apis = api_versions(sock)
        lo, hi = apis.get(API_METADATA, (1, 0))
        if not lo <= 4 <= hi:
            raise ValueError("broker does not offer Metadata v4 (%d..%d)" % (lo, hi))
        if broker_count(sock) < 1:
            raise ValueError("Metadata lists no broker yet")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    timeout = float(sys.argv[2]) if len(sys.argv) == 3 else 5.0
    try:
        check(sys.argv[1], timeout)
    except (OSError, ValueError, struct.error) as e:
        print("kafka not ready at %s: %s" % (sys.argv[1], e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
