"""Zero loss through outages, under load. While `agentsim load` runs: the
Kafka broker is stopped for 30 s and started again, then PostgreSQL is
stopped for 30 s and started again, then chainwatchd is killed with kill -9
and restarted on the same data dir. Afterwards every event agentsim saw
acknowledged is in PostgreSQL once and on the Kafka topic once, and
nothing else is (agentsim's unacknowledged batches were resent and stored
once).

It stops the shared test services, so ctest runs it alone (RUN_SERIAL)."""
import os
import subprocess
import time
import unittest

from cwtest import AGENTSIM, Server
from cwsinks import (Database, Topics, acked_ids, duplicates, start_services, stop_service,
                     wait_caught_up)

OUTAGE_S = 30


class SinkOutageTest(unittest.TestCase):
    def received(self, srv):
        return srv.metrics()['chainwatch_events_received_total{source="agent"}']

    def outage(self, srv, service, sink):
        """Stops `service` for OUTAGE_S seconds under load; intake goes on
        meanwhile (the sink spool absorbs), and the sink recovers."""
        stop_service(service)
        t0 = time.time()
        before = self.received(srv)
        time.sleep(OUTAGE_S / 2)
        m = srv.metrics()
        self.assertEqual(m['chainwatch_sink_up{sink="%s"}' % sink], 0,
                         "%s sink still up with the service stopped" % sink)
        time.sleep(max(0, OUTAGE_S - (time.time() - t0)))
        self.assertGreater(self.received(srv), before, "intake stopped during the outage")
        lag = srv.metrics()['chainwatch_sink_lag_bytes{sink="%s"}' % sink]
        self.assertGreater(lag, 0, "nothing waited for the stopped %s" % service)
        start_services()
        deadline = time.time() + 120
        while srv.metrics()['chainwatch_sink_up{sink="%s"}' % sink] != 1:
            self.assertLess(time.time(), deadline, "%s sink did not come back" % sink)
            time.sleep(0.5)

    def test_broker_database_and_server_outages_lose_nothing(self):
        topics = Topics()
        with Database() as db:
            args = ["--pg", db.conninfo] + topics.server_args()
            srv = Server(events_out=False, extra=args)
            srv.start()
            ack_log = os.path.join(srv.tmp, "acks.log")
            load = subprocess.Popen(
                [AGENTSIM, "load", "--agents", "10", "--rate", "4000", "--duration", "130",
                 "--drain", "180", "--ack-log", ack_log,
                 "--server", "127.0.0.1:%d" % srv.agent_port],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                time.sleep(8)
                self.outage(srv, "kafka", "kafka")
                self.outage(srv, "postgres", "postgres")
                time.sleep(3)
                # A crash: no clean stop, no flush. Restarted on the same
                # ports and data dir; agentsim reconnects and resends.
                srv.kill9()
                again = Server(data_dir=srv.data_dir, events_out=False, extra=args)
                again.agent_port, again.http_port = srv.agent_port, srv.http_port
                again.start()
                out, err = load.communicate(timeout=400)
                self.assertEqual(load.returncode, 0, out + err)
                wait_caught_up(again, ["kafka", "postgres"])
                again.stop()
            finally:
                if load.poll() is None:
                    load.kill()
                start_services()  # whatever happened, leave the services running

            acked = acked_ids(ack_log)
            self.assertGreater(len(acked), 100000)
            pg_ids = [r[0] for r in db.rows("SELECT id FROM events")]
            self.assertEqual(len(pg_ids), len(set(pg_ids)))
            self.assertEqual(set(pg_ids), acked, "PostgreSQL holds exactly the acked events")
            msgs = topics.dump(topics.events)
            self.assertEqual(duplicates(m["id"] for m in msgs), {}, "an event twice on Kafka")
            self.assertEqual({m["id"] for m in msgs}, acked, "Kafka holds exactly the acked events")


if __name__ == "__main__":
    unittest.main()
