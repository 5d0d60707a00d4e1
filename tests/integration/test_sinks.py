"""Every event of every scenario reaches PostgreSQL once and Kafka once,
with its enrichment; alerts and incidents reach both stores, and an
incident's later states update its row. Real chainwatchd, agentsim, the
PostgreSQL and Kafka of tests/services."""
import glob
import json
import os
import random
import string
import unittest

from cwtest import AGENTSIM, CHAINWATCHD, SHARED, Server, free_port, run, scenario_event_count
from cwsinks import Database, Topics, duplicates, services_env, wait_caught_up, with_param

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = sorted(glob.glob(os.path.join(SHARED, "scenarios", "*.jsonl"))
                   + glob.glob(os.path.join(HERE, "..", "scenarios", "*.jsonl")))


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class SinksTest(unittest.TestCase):
    def test_every_scenario_event_once_in_both_stores(self):
        expected = sum(scenario_event_count(p) for p in SCENARIOS)
        topics = Topics()
        with Database() as db:
            srv = Server(extra=["--pg", db.conninfo] + topics.server_args())
            with srv:
                # All scenarios into one server, one after another.
                run([AGENTSIM, "replay", "--speed", "0",
                     "--server", "127.0.0.1:%d" % srv.agent_port,
                     "--http", "http://127.0.0.1:%d" % srv.http_port] + SCENARIOS, timeout=600)
                m = wait_caught_up(srv, ["kafka", "postgres"], expected)
                self.assertEqual(m['chainwatch_sink_delivered_total{sink="postgres",kind="events"}'],
                                 expected)
                self.assertEqual(m['chainwatch_sink_delivered_total{sink="kafka",kind="events"}'],
                                 expected)
            events = srv.events()
            ids = {e["id"] for e in events}
            self.assertEqual(len(ids), expected)

            # PostgreSQL: each event once (the key enforces it; the count
            # proves none is missing), with its typed columns.
            rows = db.rows("SELECT id, type, host, cluster, namespace, pod, body->>'id' FROM events")
            self.assertEqual(len(rows), expected)
            self.assertEqual({r[0] for r in rows}, ids)
            by_id = {r[0]: r for r in rows}
            for e in events:
                r = by_id[e["id"]]
                self.assertEqual(r[1], e["type"])
                self.assertEqual(r[2], e.get("host") or "")
                self.assertEqual(r[3], e.get("cluster") or "")
                self.assertEqual(r[5], e.get("pod") or "")
                self.assertEqual(r[6], e["id"])
            in_shop = [r for r in rows if r[5] == "shop-7d9f5c-x2k4p"]
            self.assertTrue(in_shop, "the worm scenario's Pod is in the events table")

            # Kafka: each event once; one Pod's events on one partition.
            msgs = topics.dump(topics.events)
            self.assertEqual(duplicates(m["id"] for m in msgs), {})
            self.assertEqual({m["id"] for m in msgs}, ids)
            parts_by_key = {}
            for m in msgs:
                parts_by_key.setdefault(m["key"], set()).add(m["partition"])
            self.assertTrue(all(len(p) == 1 for p in parts_by_key.values()))
            self.assertIn("prod-hz/shop/shop-7d9f5c-x2k4p", parts_by_key)

            # Alerts: the same set in the file, the table and the topic.
            alerts = read_jsonl(os.path.join(srv.tmp, "alerts.jsonl"))
            alert_ids = {a["id"] for a in alerts}
            self.assertTrue(alert_ids)
            self.assertEqual({r[0] for r in db.rows("SELECT id FROM alerts")}, alert_ids)
            amsgs = topics.dump(topics.alerts)
            self.assertEqual(duplicates(m["id"] for m in amsgs), {})
            self.assertEqual({m["id"] for m in amsgs}, alert_ids)

            # Incidents: every state on the topic, the latest in the table.
            states = read_jsonl(os.path.join(srv.tmp, "incidents.jsonl"))
            final = {}
            for s in states:
                final[s["id"]] = s
            self.assertGreater(len(states), len(final), "some incident changed after it opened")
            rows = {r[0]: r for r in db.rows(
                "SELECT id, severity, status, alert_count, body->>'severity' FROM incidents")}
            self.assertEqual(set(rows), set(final))
            for iid, s in final.items():
                self.assertEqual(rows[iid][1], s["severity"])
                self.assertEqual(rows[iid][2], s.get("status") or "")
                self.assertEqual(int(rows[iid][3]), s["alert_count"])
            # On the topic: states in order per incident (keyed by id), at
            # most one per incident per flush, ending with the final one.
            imsgs = topics.dump(topics.incidents)
            self.assertLessEqual(len(imsgs), len(states))
            last_on_topic = {}
            for m in sorted(imsgs, key=lambda m: (m["partition"], m["offset"])):
                last_on_topic[m["id"]] = m["value"]
            self.assertEqual(set(last_on_topic), set(final))
            for iid, s in final.items():
                self.assertEqual(last_on_topic[iid], s)
            worm = [s for s in final.values()
                    if {"node-a", "node-b"} <= set(s.get("hosts", []))]
            self.assertTrue(worm, "the worm incident spans both nodes")
            linked = db.rows("SELECT count(*) FROM incident_alerts WHERE incident_id = '%s'"
                             % worm[0]["id"])
            self.assertGreater(int(linked[0][0]), 1)

    def test_restart_stores_nothing_twice(self):
        """A clean restart on the same data dir sends nothing again."""
        path = os.path.join(SHARED, "scenarios", "anonymous-apiserver-to-miner-worm.jsonl")
        n = scenario_event_count(path)
        topics = Topics()
        with Database() as db:
            srv = Server(extra=["--pg", db.conninfo] + topics.server_args())
            with srv:
                run([AGENTSIM, "replay", "--speed", "0",
                     "--server", "127.0.0.1:%d" % srv.agent_port,
                     "--http", "http://127.0.0.1:%d" % srv.http_port, path])
                wait_caught_up(srv, ["kafka", "postgres"], n)
            again = Server(data_dir=srv.data_dir, extra=["--pg", db.conninfo] + topics.server_args())
            with again:
                m = wait_caught_up(again, ["kafka", "postgres"])
                self.assertEqual(m['chainwatch_sink_delivered_total{sink="kafka",kind="events"}'], 0)
            self.assertEqual(int(db.rows("SELECT count(*) FROM events")[0][0]), n)
            self.assertEqual(len(topics.dump(topics.events)), n)

    def test_wiped_data_dir_against_used_topics_loses_nothing(self):
        """A server with a new data dir (wiped, or a replacement node) writing
        to topics that already hold another spool's messages: its sink spool
        positions start at 0 again, and none of its events may be taken for
        already delivered."""
        path = os.path.join(SHARED, "scenarios", "ssh-bruteforce-cron-miner.jsonl")
        n = scenario_event_count(path)
        topics = Topics()
        with Database() as db:
            for run_no in (1, 2):
                srv = Server(extra=["--pg", db.conninfo] + topics.server_args())
                with srv:
                    run([AGENTSIM, "replay", "--speed", "0",
                         "--server", "127.0.0.1:%d" % srv.agent_port,
                         "--http", "http://127.0.0.1:%d" % srv.http_port, path])
                    m = wait_caught_up(srv, ["kafka", "postgres"], n)
                    self.assertEqual(
                        m['chainwatch_sink_delivered_total{sink="kafka",kind="events"}'], n,
                        "run %d: every event produced" % run_no)
                    self.assertEqual(m['chainwatch_sink_duplicates_total{sink="kafka"}'], 0)
            msgs = topics.dump(topics.events)
            self.assertEqual(len(msgs), 2 * n)
            self.assertEqual(duplicates(m["id"] for m in msgs), {})
            self.assertEqual(int(db.rows("SELECT count(*) FROM events")[0][0]), 2 * n)

    def test_event_too_large_for_kafka_is_whole_in_postgres_and_a_stub_on_kafka(self):
        """A RequestResponse audit event of a 1.5 MB ConfigMap is over what a
        Kafka broker takes by default (about 1 MB). It must not stop the
        Kafka sink: it goes there without its payload (omitted_bytes), whole
        to PostgreSQL, and the events after it flow."""
        blob = "".join(random.choice(string.ascii_letters) for _ in range(1500000))

        def audit(aid, data):
            return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
                    "auditID": aid, "stage": "ResponseComplete", "verb": "create",
                    "requestURI": "/api/v1/namespaces/app/configmaps",
                    "user": {"username": "deployer"}, "sourceIPs": ["10.0.0.5"],
                    "objectRef": {"resource": "configmaps", "namespace": "app", "name": aid},
                    "requestObject": {"kind": "ConfigMap", "data": {"blob": data}},
                    "requestReceivedTimestamp": "2026-12-02T10:00:00.000000Z",
                    "stageTimestamp": "2026-12-02T10:00:00.000000Z"}
        topics = Topics()
        with Database() as db:
            srv = Server(extra=["--pg", db.conninfo] + topics.server_args())
            with srv:
                for items in ([audit("big-1", blob), audit("small-2", "x")], [audit("small-3", "y")]):
                    body = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                                       "items": items}).encode()
                    status, _ = srv.post("/api/v1/k8s-audit/prod", body)
                    self.assertEqual(status, 200)
                m = wait_caught_up(srv, ["kafka", "postgres"], 3)
                self.assertEqual(m['chainwatch_sink_delivered_total{sink="kafka",kind="events"}'], 3)
                self.assertEqual(m["chainwatch_kafka_values_omitted_total"], 1)
                self.assertEqual(m['chainwatch_sink_errors_total{sink="kafka"}'], 0)
            msgs = {msg["id"]: msg for msg in topics.dump(topics.events)}
            self.assertEqual(sorted(msgs), ["prod:big-1:ResponseComplete",
                                            "prod:small-2:ResponseComplete",
                                            "prod:small-3:ResponseComplete"])
            big = msgs["prod:big-1:ResponseComplete"]
            self.assertEqual(big["type"], "k8s_audit")
            self.assertGreater(big["omitted_bytes"], 1500000)
            self.assertLess(big["value_len"], 1000)
            self.assertNotIn("omitted_bytes", msgs["prod:small-2:ResponseComplete"])
            rows = dict(db.rows("SELECT id, length(body->'audit'->'requestObject'->'data'->>'blob')"
                                " FROM events"))
            self.assertEqual(rows["prod:big-1:ResponseComplete"], "1500000")

    def test_check_config_says_whether_the_stores_answer(self):
        pg, brokers = services_env()
        ok = run([CHAINWATCHD, "--check-config", "--pg", pg, "--kafka-brokers", brokers])
        self.assertIn("configuration OK", ok.stdout)
        dead = free_port()  # nothing listens there
        bad_pg = run([CHAINWATCHD, "--check-config",
                      "--pg", with_param(pg, "port", dead)], check=False)
        self.assertEqual(bad_pg.returncode, 1)
        self.assertIn("postgres", bad_pg.stderr)
        bad_kafka = run([CHAINWATCHD, "--check-config",
                         "--kafka-brokers", "127.0.0.1:%d" % dead], check=False)
        self.assertEqual(bad_kafka.returncode, 1)
        self.assertIn("kafka", bad_kafka.stderr)


if __name__ == "__main__":
    unittest.main()
