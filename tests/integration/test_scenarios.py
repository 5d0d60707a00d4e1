"""Every scenario in ../shared/scenarios and tests/scenarios replays through
agentsim into a real chainwatchd: the server counts each event line once,
and --events-out holds each event once, enriched."""
import glob
import json
import os
import unittest

from cwtest import AGENTSIM, SHARED, Server, run, scenario_event_count

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = sorted(glob.glob(os.path.join(SHARED, "scenarios", "*.jsonl"))
                   + glob.glob(os.path.join(HERE, "..", "scenarios", "*.jsonl")))


class ScenarioReplayTest(unittest.TestCase):
    def test_scenarios_exist(self):
        self.assertGreaterEqual(len(SCENARIOS), 4)

    def test_every_scenario_counts_each_event_once(self):
        for path in SCENARIOS:
            with self.subTest(scenario=os.path.basename(path)):
                expected = scenario_event_count(path)
                with Server() as srv:
                    run([AGENTSIM, "replay", "--speed", "0",
                         "--server", "127.0.0.1:%d" % srv.agent_port,
                         "--http", "http://127.0.0.1:%d" % srv.http_port, path])
                    m = srv.metrics()
                    got = (m['chainwatch_events_received_total{source="agent"}']
                           + m['chainwatch_events_received_total{source="k8s_audit"}'])
                    self.assertEqual(got, expected)
                    srv.wait_metric("chainwatch_pipeline_events_total", expected)
                events = srv.events()
                self.assertEqual(len(events), expected)
                self.assertEqual(len({e["id"] for e in events}), expected, "ids are unique")

    def test_attack_events_are_enriched_with_pod_and_cluster(self):
        path = os.path.join(SHARED, "scenarios", "anonymous-apiserver-to-miner-worm.jsonl")
        with Server() as srv:
            run([AGENTSIM, "replay", "--speed", "0",
                 "--server", "127.0.0.1:%d" % srv.agent_port,
                 "--http", "http://127.0.0.1:%d" % srv.http_port, path])
            srv.wait_metric("chainwatch_pipeline_events_total", scenario_event_count(path))
        # The scenario's shop container: every event from it carries its Pod.
        shop = "f3a8453599cc649bfa628e9b194270fb264e0233c629e1acbb56b82b0ec54068"
        from_shop = [e for e in srv.events() if e.get("container_id") == shop]
        self.assertTrue(from_shop)
        for e in from_shop:
            self.assertEqual(e["namespace"], "shop")
            self.assertEqual(e["pod"], "shop-7d9f5c-x2k4p")
            self.assertEqual(e["cluster"], "prod-hz")
            self.assertEqual(e["cloud"], "aliyun")
            self.assertEqual(e["host"], "node-a")
            self.assertEqual(e["owner"], "trade")  # from the Pod's team label
        audit = [e for e in srv.events() if e["type"] == "k8s_audit"]
        self.assertTrue(audit)
        self.assertTrue(all(e["cluster"] == "prod-hz" for e in audit))


if __name__ == "__main__":
    unittest.main(verbosity=2)
