"""Backpressure instead of loss: with the pipeline stalled (its events-out
is a FIFO nobody reads yet), the spool fills to its limit, the server stops
reading agents, its memory stays bounded, and once the pipeline drains
everything flows and every event the agents sent is acked exactly once."""
import os
import subprocess
import threading
import time
import unittest

from cwtest import AGENTSIM, Server, rss_bytes

MiB = 1024 * 1024


class BackpressureTest(unittest.TestCase):
    def test_stalled_pipeline_pauses_agents_and_recovers(self):
        srv = Server(events_out=False, extra=[
            "--set", "spool.max_bytes=24MiB", "--set", "spool.segment_bytes=4MiB",
            "--set", "ingest.total_inflight_bytes=8MiB", "--set", "ingest.conn_inflight_bytes=1MiB"])
        fifo = os.path.join(srv.tmp, "events.fifo")
        os.mkfifo(fifo)
        # Hold the read end open without reading: the pipeline's writes block
        # once the pipe buffer is full.
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        srv.extra += ["--events-out", fifo]
        srv.start()
        try:
            load = subprocess.Popen(
                [AGENTSIM, "load", "--agents", "8", "--rate", "0", "--duration", "6",
                 "--server", "127.0.0.1:%d" % srv.agent_port],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # The spool fills up to its limit and the server stops reading.
            deadline = time.time() + 60
            peak_rss = 0
            while True:
                m = srv.metrics()
                peak_rss = max(peak_rss, rss_bytes(srv.proc.pid))
                if m["chainwatch_ingest_pauses_total"] > 0 and m["chainwatch_spool_bytes"] >= 16 * MiB:
                    break
                self.assertLess(time.time(), deadline, "spool never filled: %r" % m)
                time.sleep(0.1)
            # While stalled: intake stops, the spool stays near its limit,
            # and memory stays bounded.
            time.sleep(1.0)
            a = srv.metrics()['chainwatch_events_received_total{source="agent"}']
            for _ in range(10):
                peak_rss = max(peak_rss, rss_bytes(srv.proc.pid))
                time.sleep(0.1)
            m = srv.metrics()
            b = m['chainwatch_events_received_total{source="agent"}']
            self.assertLess(b - a, 50000, "intake continued while the spool was full")
            self.assertLessEqual(m["chainwatch_spool_bytes"], 24 * MiB + 4 * MiB + MiB)
            self.assertLess(peak_rss, 300 * MiB)
            # Drain the pipeline: everything flows again.
            lines = [0]
            stop = threading.Event()

            def drain():
                os.set_blocking(rfd, True)
                while True:
                    chunk = os.read(rfd, 1 << 20)
                    if not chunk:
                        return
                    lines[0] += chunk.count(b"\n")

            t = threading.Thread(target=drain, daemon=True)
            t.start()
            out, err = load.communicate(timeout=180)
            self.assertEqual(load.returncode, 0, out + err)
            stats = dict(l.split("=", 1) for l in out.splitlines() if "=" in l and " " not in l)
            acked = int(stats["events_acked"])
            self.assertGreater(acked, 0)
            srv.wait_metric('chainwatch_events_received_total{source="agent"}', acked)
            srv.wait_metric("chainwatch_pipeline_events_total", acked, timeout=120)
            srv.stop()
            t.join(timeout=30)
            self.assertEqual(lines[0], acked, "each acked event reached the output once")
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()
            os.close(rfd)


if __name__ == "__main__":
    unittest.main(verbosity=2)
