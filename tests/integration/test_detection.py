"""Detection end to end: every scenario in ../shared/scenarios and
tests/scenarios replays into a real chainwatchd, and every `expect` line
holds on the alerts-out and incidents-out it writes (scenario_check.py);
each real audit sample of ../shared/corpus/k8s-audit raises its rule family.
The checker itself is tested first on hand-made outputs, so a checker that
accepts anything cannot pass."""
import glob
import json
import os
import unittest

import signal
import tempfile
import time

import scenario_check
from cwtest import SHARED, Agent, Server, batch, hello, process_exec_event

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = sorted(glob.glob(os.path.join(SHARED, "scenarios", "*.jsonl"))
                   + glob.glob(os.path.join(HERE, "..", "scenarios", "*.jsonl")))
CORPUS = os.path.join(SHARED, "corpus", "k8s-audit")
# Sample -> substrings of which some alert's rule id must contain one.
CORPUS_FAMILIES = {
    "anonymous-user-creates-namespace.json": ["anonymous"],
    "create-clusterrolebinding-to-cluster-admin.json": ["cluster-admin"],
    "create-pod-with-hostpath-etc-mount.json": ["hostpath", "sensitive-mount"],
    "create-privileged-pod.json": ["privileged"],
    "exec-into-pod.json": ["exec"],
}


def detection_built(srv):
    """False when this chainwatchd runs without rules (built without the rule
    engine, or no rules directory): it logs "detection is off"."""
    return "detection is off" not in srv.logs()


class CheckerTest(unittest.TestCase):
    """scenario_check.check() on hand-made outputs."""

    INC = {"id": "inc-1", "severity": "high", "status": "open", "hosts": ["a", "b"],
           "clusters": ["c"], "pods": ["ns/p"], "tactics": ["execution", "impact"],
           "techniques": [], "phases": ["mid", "post"], "alert_count": 2, "alerts": []}

    def test_incident_expect(self):
        ok = {"type": "expect", "expect": "incident", "hosts": ["a"], "tactics": ["impact"],
              "min_severity": "medium"}
        self.assertEqual(scenario_check.check([ok], [], [self.INC]), [])
        for bad in ({"hosts": ["z"]}, {"pods": ["ns/q"]}, {"phases": ["pre"]},
                    {"min_severity": "critical"}, {"clusters": ["c", "d"]}):
            exp = dict(ok, **bad)
            self.assertEqual(len(scenario_check.check([exp], [], [self.INC])), 1, bad)

    def test_count_ignores_merged_and_takes_last_line(self):
        import tempfile
        d = tempfile.mkdtemp()
        inc_path, al_path = os.path.join(d, "i.jsonl"), os.path.join(d, "a.jsonl")
        with open(inc_path, "w") as f:
            f.write(json.dumps(dict(self.INC, severity="low")) + "\n")
            f.write(json.dumps(dict(self.INC, id="inc-2")) + "\n")
            f.write(json.dumps(dict(self.INC, id="inc-2", status="merged",
                                    merged_into="inc-1")) + "\n")
            f.write(json.dumps(self.INC) + "\n")
        with open(al_path, "w") as f:
            f.write(json.dumps({"rule": "r", "severity": "critical"}) + "\n")
        alerts, incidents = scenario_check.load_outputs(al_path, inc_path)
        self.assertEqual([i["id"] for i in incidents], ["inc-1"])
        self.assertEqual(incidents[0]["severity"], "high")
        count = {"type": "expect", "expect": "incident_count", "min": 1, "max": 1}
        self.assertEqual(scenario_check.check([count], alerts, incidents), [])
        self.assertEqual(len(scenario_check.check([dict(count, min=2, max=3)], alerts,
                                                  incidents)), 1)
        maxsev = {"type": "expect", "expect": "max_severity", "severity": "high"}
        self.assertEqual(len(scenario_check.check([maxsev], alerts, incidents)), 1)  # the alert
        self.assertEqual(len(scenario_check.check([maxsev], [], incidents)), 0)


class ScenarioDetectionTest(unittest.TestCase):
    def test_scenarios_exist(self):
        self.assertGreaterEqual(len(SCENARIOS), 4)

    def test_every_scenario_meets_its_expects(self):
        for path in SCENARIOS:
            with self.subTest(scenario=os.path.basename(path)):
                alerts, incidents, srv = scenario_check.run_scenario(path)
                if not detection_built(srv):
                    self.skipTest("chainwatchd runs without rules (detection is off)")
                failures = scenario_check.check(scenario_check.load_expects(path), alerts,
                                                incidents)
                self.assertEqual(failures, [], "%s\n%s" % (
                    os.path.basename(path), scenario_check.report(failures, alerts, incidents)))


class CorpusDetectionTest(unittest.TestCase):
    def test_each_audit_sample_raises_its_rule_family(self):
        for name, families in sorted(CORPUS_FAMILIES.items()):
            with self.subTest(sample=name):
                with open(os.path.join(CORPUS, name), "rb") as f:
                    item = json.loads(f.read())
                body = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                                   "items": [item]}).encode()
                with Server(extra=scenario_check.server_args(), events_out=False) as srv:
                    status, reply = srv.post("/api/v1/k8s-audit/lab", body)
                    self.assertEqual(status, 200, reply)
                    srv.wait_metric("chainwatch_pipeline_events_total", 1)
                alerts, _ = scenario_check.load_outputs(os.path.join(srv.tmp, "alerts.jsonl"),
                                                        os.path.join(srv.tmp, "incidents.jsonl"))
                if not detection_built(srv):
                    self.skipTest("chainwatchd runs without rules (detection is off)")
                rules = [a["rule"] for a in alerts]
                self.assertTrue(any(fam in r for r in rules for fam in families),
                                "%s: expected a rule matching %s, got %s" % (name, families,
                                                                            rules))
                for a in alerts:
                    self.assertEqual(a["cluster"], "lab")
                    self.assertIn(a["severity"], scenario_check.SEVERITIES)


RULE = """title: marker %(name)s
id: t-marker-%(name)s
level: medium
logsource: {product: linux, category: process_exec}
chainwatch: {tactic: execution, phase: mid}
detection:
  selection:
    exe_name: marker-%(name)s
  condition: selection
"""


class ReloadTest(unittest.TestCase):
    def wait_log(self, srv, text, timeout=20):
        deadline = time.time() + timeout
        while text not in srv.logs():
            self.assertLess(time.time(), deadline, "no %r in the log:\n%s" % (text, srv.logs()))
            time.sleep(0.05)

    def test_sighup_swaps_rules_and_a_bad_file_keeps_the_old_ones(self):
        rules = tempfile.mkdtemp(prefix="cwrules-")
        with open(os.path.join(rules, "a.yml"), "w") as f:
            f.write(RULE % {"name": "a"})
        with Server(extra=["--rules", rules], events_out=False) as srv:
            agent = Agent(srv)
            agent.send(hello("ag-reload", "host-r"))
            agent.expect_ack(0)
            now = time.time_ns()
            agent.send(batch(1, [process_exec_event(now, exe="/usr/bin/marker-a")]))
            agent.ack_at_least(1)
            # A broken file: the reload fails and rule a stays.
            with open(os.path.join(rules, "b.yml"), "w") as f:
                f.write("title: [unclosed\n")
            srv.proc.send_signal(signal.SIGHUP)
            self.wait_log(srv, "rules not reloaded")
            agent.send(batch(2, [process_exec_event(now + 1, exe="/usr/bin/marker-a")]))
            agent.ack_at_least(2)
            with open(os.path.join(rules, "b.yml"), "w") as f:
                f.write(RULE % {"name": "b"})
            srv.proc.send_signal(signal.SIGHUP)
            self.wait_log(srv, "reloaded 2 rules")
            agent.send(batch(3, [process_exec_event(now + 2, exe="/usr/bin/marker-b")]))
            agent.ack_at_least(3)
            srv.wait_metric("chainwatch_pipeline_events_total", 3)
            agent.close()
        alerts, _ = scenario_check.load_outputs(os.path.join(srv.tmp, "alerts.jsonl"),
                                                os.path.join(srv.tmp, "incidents.jsonl"))
        self.assertEqual([a["rule"] for a in alerts],
                         ["t-marker-a", "t-marker-a", "t-marker-b"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
