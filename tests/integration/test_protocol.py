"""Agent protocol against the real chainwatchd: handshake, acks, dedupe
across reconnects and kill -9, every rejection path, and that a bad peer
never affects the others."""
import os
import struct
import time
import unittest

from cwtest import (Agent, Server, batch, frame, heartbeat, hello, process_exec_event)

ERR_FRAME_TOO_LARGE, ERR_DECODE, ERR_NO_HELLO, ERR_BAD_HELLO = 1, 2, 3, 4
ERR_SEQ_GAP, ERR_SEQ_REGRESSION, ERR_UNKNOWN_EVENT, ERR_BAD_EVENT = 5, 6, 7, 8
ERR_TOO_MANY_EVENTS, ERR_SUPERSEDED = 13, 11

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def events(n, seq):
    return [process_exec_event(T0 + seq * 1000 + i, argv=("sh", "-c", "echo %d.%d" % (seq, i)))
            for i in range(n)]


class ProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(extra=["--set", "ingest.handshake_timeout_ms=1500"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def rejected(self, reason):
        return self.srv.metrics().get('chainwatch_frames_rejected_total{reason="%s"}' % reason, 0)

    def assert_rejected(self, agent, code, reason, before):
        kind, v = agent.recv()
        self.assertEqual(kind, "error", v)
        self.assertEqual(v[0], code, v)
        self.assertTrue(v[1], "error frames carry a message")
        self.assertEqual(agent.recv(), ("closed", None))
        agent.close()
        self.assertEqual(self.rejected(reason), before + 1)

    def test_hello_batch_ack_and_heartbeat(self):
        a = Agent(self.srv)
        a.send(hello("proto-basic"))
        a.expect_ack(0)
        before = self.srv.metrics()['chainwatch_events_received_total{source="agent"}']
        a.send(batch(1, events(3, 1)))
        self.assertEqual(a.ack_at_least(1), 1)
        a.send(heartbeat())
        self.assertEqual(a.recv()[0], "heartbeat")
        self.srv.wait_metric('chainwatch_events_received_total{source="agent"}', before + 3)
        a.close()

    def test_partial_frames_and_many_frames_per_write(self):
        a = Agent(self.srv)
        data = frame(hello("proto-split"))
        for i in range(len(data)):  # one byte at a time
            a.send_raw(data[i:i + 1])
            time.sleep(0.001)
        a.expect_ack(0)
        many = b"".join(frame(batch(s, events(2, s))) for s in range(1, 6))
        a.send_raw(many)
        self.assertEqual(a.ack_at_least(5), 5)
        a.close()

    def test_resend_after_reconnect_is_deduplicated(self):
        a = Agent(self.srv)
        a.send(hello("proto-dedupe"))
        a.expect_ack(0)
        for s in (1, 2, 3):
            a.send(batch(s, events(4, s)))
        self.assertEqual(a.ack_at_least(3), 3)
        a.close()
        m0 = self.srv.metrics()
        b = Agent(self.srv)
        b.send(hello("proto-dedupe"))
        b.expect_ack(3)  # the server remembers what it stored
        for s in (2, 3, 4):  # an agent unsure of 2 and 3 resends them
            b.send(batch(s, events(4, s)))
        self.assertEqual(b.ack_at_least(4), 4)
        m1 = self.srv.metrics()
        self.assertEqual(m1['chainwatch_events_received_total{source="agent"}']
                         - m0['chainwatch_events_received_total{source="agent"}'], 4)
        self.assertEqual(m1["chainwatch_batches_duplicate_total"]
                         - m0["chainwatch_batches_duplicate_total"], 2)
        b.close()

    def test_new_connection_supersedes_old(self):
        a = Agent(self.srv)
        a.send(hello("proto-twice"))
        a.expect_ack(0)
        b = Agent(self.srv)
        b.send(hello("proto-twice"))
        b.expect_ack(0)
        kind, v = a.recv()
        self.assertEqual((kind, v[0]), ("error", ERR_SUPERSEDED))
        b.send(batch(1, events(1, 1)))
        self.assertEqual(b.ack_at_least(1), 1)
        a.close()
        b.close()

    def test_oversize_frame_before_hello(self):
        before = self.rejected("frame_too_large")
        a = Agent(self.srv)
        a.send_raw(struct.pack(">I", 65537) + b"x" * 100)  # pre-hello limit is 64 KiB
        self.assert_rejected(a, ERR_FRAME_TOO_LARGE, "frame_too_large", before)

    def test_oversize_frame_after_hello(self):
        a = Agent(self.srv)
        a.send(hello("proto-big"))
        a.expect_ack(0)
        before = self.rejected("frame_too_large")
        a.send_raw(struct.pack(">I", 4 * 1024 * 1024 + 1))
        self.assert_rejected(a, ERR_FRAME_TOO_LARGE, "frame_too_large", before)

    def test_max_size_frame_is_accepted(self):
        a = Agent(self.srv)
        a.send(hello("proto-max"))
        a.expect_ack(0)
        # One event with a padded argv so the frame is exactly 4 MiB.
        limit = 4 * 1024 * 1024
        e = process_exec_event(T0, argv=("x",))
        base = len(batch(1, [e]))
        pad = limit - base - 16
        for _ in range(3):
            e = process_exec_event(T0, argv=("x" * pad,))
            msg = batch(1, [e])
            pad += limit - len(msg)
        self.assertEqual(len(msg), limit)
        a.send(msg)
        self.assertEqual(a.ack_at_least(1), 1)
        a.close()

    def test_garbage_is_a_decode_error(self):
        before = self.rejected("decode_error")
        a = Agent(self.srv)
        a.send_raw(frame(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
        self.assert_rejected(a, ERR_DECODE, "decode_error", before)

    def test_empty_frame_is_rejected(self):
        before = self.rejected("decode_error")
        a = Agent(self.srv)
        a.send_raw(frame(b""))
        self.assert_rejected(a, ERR_DECODE, "decode_error", before)

    def test_batch_before_hello(self):
        before = self.rejected("no_hello")
        a = Agent(self.srv)
        a.send(batch(1, events(1, 1)))
        self.assert_rejected(a, ERR_NO_HELLO, "no_hello", before)

    def test_hello_without_agent_id(self):
        before = self.rejected("bad_hello")
        a = Agent(self.srv)
        a.send(hello(""))
        self.assert_rejected(a, ERR_BAD_HELLO, "bad_hello", before)

    def test_sequence_gap(self):
        a = Agent(self.srv)
        a.send(hello("proto-gap"))
        a.expect_ack(0)
        before = self.rejected("seq_gap")
        a.send(batch(2, events(1, 2)))  # 1 is missing
        self.assert_rejected(a, ERR_SEQ_GAP, "seq_gap", before)

    def test_sequence_regression(self):
        a = Agent(self.srv)
        a.send(hello("proto-regress"))
        a.expect_ack(0)
        a.send(batch(1, events(1, 1)))
        a.send(batch(2, events(1, 2)))
        self.assertEqual(a.ack_at_least(2), 2)
        before = self.rejected("seq_regression")
        a.send(batch(2, events(1, 2)))
        self.assert_rejected(a, ERR_SEQ_REGRESSION, "seq_regression", before)

    def test_unknown_event_type(self):
        a = Agent(self.srv)
        a.send(hello("proto-unknown"))
        a.expect_ack(0)
        before = self.rejected("unknown_event_type")
        # An Event with time_ns and a payload field number this server does not know.
        from cwtest import field_bytes, field_varint
        unknown = field_varint(1, T0) + field_bytes(99, b"\x08\x01")
        a.send(batch(1, [unknown]))
        self.assert_rejected(a, ERR_UNKNOWN_EVENT, "unknown_event_type", before)

    def test_event_without_required_fields(self):
        a = Agent(self.srv)
        a.send(hello("proto-badevent"))
        a.expect_ack(0)
        before = self.rejected("bad_event")
        a.send(batch(1, [process_exec_event(0)]))  # no time
        self.assert_rejected(a, ERR_BAD_EVENT, "bad_event", before)

    def test_handshake_timeout(self):
        before = self.rejected("handshake_timeout")
        a = Agent(self.srv)
        self.assert_rejected(a, 9, "handshake_timeout", before)

    def test_bad_peer_does_not_disturb_others(self):
        good = Agent(self.srv)
        good.send(hello("proto-good"))
        good.expect_ack(0)
        good.send(batch(1, events(2, 1)))
        self.assertEqual(good.ack_at_least(1), 1)
        bad = Agent(self.srv)
        bad.send_raw(os.urandom(3) + b"\x00" * 40)
        bad.recv()
        good.send(batch(2, events(2, 2)))
        self.assertEqual(good.ack_at_least(2), 2)
        good.close()
        bad.close()


class IdleTest(unittest.TestCase):
    def test_idle_agent_is_disconnected_and_counted(self):
        with Server(extra=["--set", "ingest.handshake_timeout_ms=500",
                           "--set", "ingest.idle_timeout_ms=1500"]) as srv:
            a = Agent(srv)
            a.send(hello("idle-agent"))
            a.expect_ack(0)
            srv.wait_metric("chainwatch_agents_connected", 1)
            status, body = srv.get("/api/v1/agents")
            self.assertEqual(status, 200)
            (agent,) = [x for x in __import__("json").loads(body) if x["agent_id"] == "idle-agent"]
            self.assertTrue(agent["connected"])
            self.assertEqual((agent["hostname"], agent["cloud"]), ("host-1", "aws"))
            # Heartbeats keep it alive past the idle timeout...
            for _ in range(4):
                time.sleep(0.5)
                a.send(heartbeat())
                self.assertEqual(a.recv()[0], "heartbeat")
            # ...silence does not.
            kind, v = a.recv()
            self.assertEqual((kind, v[0]), ("error", 10))
            self.assertEqual(a.recv(), ("closed", None))
            a.close()
            srv.wait_metric('chainwatch_frames_rejected_total{reason="idle_timeout"}', 1)
            srv.wait_metric("chainwatch_agents_connected", 0)
            (agent,) = [x for x in __import__("json").loads(srv.get("/api/v1/agents")[1])
                        if x["agent_id"] == "idle-agent"]
            self.assertFalse(agent["connected"], "the registry keeps disconnected agents")


class RestartTest(unittest.TestCase):
    def test_high_water_mark_survives_kill9(self):
        srv = Server().start()
        try:
            a = Agent(srv)
            a.send(hello("restart-agent"))
            a.expect_ack(0)
            for s in range(1, 21):
                a.send(batch(s, events(10, s)))
            acked = a.ack_at_least(20)
            a.close()
        finally:
            srv.kill9()
        srv2 = Server(data_dir=srv.data_dir)
        srv2.events_out = srv.events_out
        with srv2:
            b = Agent(srv2)
            b.send(hello("restart-agent"))
            b.expect_ack(acked)
            for s in range(15, 23):  # resend some acked batches and two new ones
                b.send(batch(s, events(10, s)))
            self.assertEqual(b.ack_at_least(22), 22)
            b.close()
            srv2.wait_metric("chainwatch_batches_duplicate_total", 6)
            srv2.wait_metric('chainwatch_events_received_total{source="agent"}', 20)
        dump = [l.split() for l in
                __import__("cwtest").run([__import__("cwtest").BUILD + "/spooldump", srv.data_dir]).stdout.splitlines()]
        seqs = sorted(int(r[2]) for r in dump if r[0] == "batch" and r[1] == "restart-agent")
        self.assertEqual(seqs, list(range(1, 23)), "every acked batch stored exactly once")


if __name__ == "__main__":
    unittest.main(verbosity=2)
