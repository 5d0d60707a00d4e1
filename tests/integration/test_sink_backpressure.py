"""Backpressure from a sink, never loss: with PostgreSQL unreachable (a
proxy in front of it that this test cuts), the sink spool fills to
sink.max_bytes, the pipeline waits, the input spool fills, the server stops
reading agents and its memory stays bounded; once the database is back
everything flows and every acked event is stored once."""
import os
import subprocess
import time
import unittest

from cwtest import AGENTSIM, Server, rss_bytes
from cwsinks import Database, TcpProxy, acked_ids, pg_host_port, wait_caught_up, with_param

MiB = 1024 * 1024


class SinkBackpressureTest(unittest.TestCase):
    def test_unreachable_database_pauses_agents_and_recovers(self):
        with Database() as db:
            proxy = TcpProxy(*pg_host_port(db.conninfo))
            proxy.cut()
            conninfo = with_param(with_param(db.conninfo, "host", "127.0.0.1"), "port", proxy.port)
            srv = Server(events_out=False, extra=[
                "--pg", conninfo,
                "--set", "sink.max_bytes=16MiB", "--set", "spool.max_bytes=24MiB",
                "--set", "spool.segment_bytes=4MiB",
                "--set", "ingest.total_inflight_bytes=8MiB",
                "--set", "ingest.conn_inflight_bytes=1MiB"])
            srv.start()
            try:
                ack_log = os.path.join(srv.tmp, "acks.log")
                load = subprocess.Popen(
                    [AGENTSIM, "load", "--agents", "8", "--rate", "0", "--duration", "8",
                     "--drain", "240", "--ack-log", ack_log,
                     "--server", "127.0.0.1:%d" % srv.agent_port],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                deadline = time.time() + 90
                peak = 0
                while True:
                    m = srv.metrics()
                    peak = max(peak, rss_bytes(srv.proc.pid))
                    if (m["chainwatch_pipeline_sink_waits_total"] > 0
                            and m["chainwatch_ingest_pauses_total"] > 0
                            and m["chainwatch_spool_bytes"] >= 16 * MiB):
                        break
                    self.assertLess(time.time(), deadline, "backpressure never reached intake: %r"
                                    % {k: v for k, v in m.items() if "sink" in k or "spool" in k})
                    time.sleep(0.2)
                self.assertEqual(m['chainwatch_sink_up{sink="postgres"}'], 0)
                # Stalled: intake stops, memory stays bounded.
                time.sleep(1.0)
                a = srv.metrics()['chainwatch_events_received_total{source="agent"}']
                for _ in range(10):
                    peak = max(peak, rss_bytes(srv.proc.pid))
                    time.sleep(0.1)
                b = srv.metrics()['chainwatch_events_received_total{source="agent"}']
                self.assertLess(b - a, 50000, "intake continued while every spool was full")
                self.assertLess(peak, 400 * MiB)
                # The database comes back: everything flows and is stored once.
                proxy.restore()
                out, err = load.communicate(timeout=300)
                self.assertEqual(load.returncode, 0, out + err)
                wait_caught_up(srv, ["postgres"])
                srv.stop()
            finally:
                if srv.proc.poll() is None:
                    srv.proc.kill()
                    srv.proc.wait()
                proxy.close()
            acked = acked_ids(ack_log)
            self.assertGreater(len(acked), 0)
            rows = db.rows("SELECT id FROM events")
            self.assertEqual(len(rows), len(acked))
            self.assertEqual({r[0] for r in rows}, acked)


if __name__ == "__main__":
    unittest.main(verbosity=2)
