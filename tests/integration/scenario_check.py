#!/usr/bin/env python3
"""Checks a server's conclusions against a scenario's `expect` lines
(../shared/scenarios/FORMAT.md). Python 3 standard library only.

Library:
    expects = load_expects(scenario_path)
    alerts, incidents = load_outputs(alerts_path, incidents_path)
    failures = check(expects, alerts, incidents)   # [] when all hold
    report(failures, alerts, incidents)            # text for a failure message

CLI:
    scenario_check.py SCENARIO ALERTS_JSONL INCIDENTS_JSONL
    scenario_check.py --run SCENARIO     (starts chainwatchd from CW_BUILD,
                                          replays with agentsim, then checks)
Exit status 0 when every expect holds, 1 otherwise.

How incidents are counted: incidents-out holds every new state of every
incident; the last line of an id is its final state. An incident merged
into another ends with status "merged" (and merged_into); it is not a
separate incident, so it is ignored for every expect. Open and closed
incidents count.
"""
import json
import os
import sys

SEVERITIES = ["info", "low", "medium", "high", "critical"]


def rank(sev):
    return SEVERITIES.index(sev) if sev in SEVERITIES else -1


def _lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if s and not s.startswith("#"):
                yield json.loads(s)


def load_expects(path):
    return [o for o in _lines(path) if o.get("type") == "expect"]


def event_count(path):
    """Event lines: everything but comments, agent and expect lines."""
    return sum(1 for o in _lines(path) if o.get("type") not in ("agent", "expect"))


def load_outputs(alerts_path, incidents_path):
    """(alerts, incidents): every alert line, and the final state of each
    incident that was not merged into another, in order of first appearance."""
    alerts = list(_lines(alerts_path)) if os.path.exists(alerts_path) else []
    final = {}
    if os.path.exists(incidents_path):
        for inc in _lines(incidents_path):
            final.pop(inc["id"], None)  # keep first-appearance order stable enough
            final[inc["id"]] = inc
    incidents = [i for i in final.values() if i.get("status") != "merged"]
    return alerts, incidents


def _covers(inc, exp):
    for field in ("hosts", "clusters", "pods", "tactics", "techniques", "phases"):
        want = exp.get(field)
        if want and not set(want) <= set(inc.get(field) or []):
            return False
    if "min_severity" in exp and rank(inc.get("severity")) < rank(exp["min_severity"]):
        return False
    return True


def _describe(exp):
    return json.dumps({k: v for k, v in exp.items() if k != "type"}, sort_keys=True)


def check(expects, alerts, incidents):
    """Returns a list of failure messages, one per expect that does not hold."""
    failures = []
    for exp in expects:
        kind = exp.get("expect")
        if kind == "incident":
            if not any(_covers(i, exp) for i in incidents):
                failures.append("no incident covers %s" % _describe(exp))
        elif kind == "incident_count":
            n = len(incidents)
            lo, hi = exp.get("min", 0), exp.get("max")
            if n < lo or (hi is not None and n > hi):
                failures.append("incident_count %d not within [%s, %s]" % (n, lo, hi))
        elif kind == "max_severity":
            limit = rank(exp["severity"])
            worse = [("alert", a.get("rule"), a.get("severity")) for a in alerts
                     if rank(a.get("severity")) > limit]
            worse += [("incident", i.get("id"), i.get("severity")) for i in incidents
                      if rank(i.get("severity")) > limit]
            if worse:
                failures.append("max_severity %s exceeded by %s" % (exp["severity"], worse[:10]))
        # Unknown expect kinds are ignored: the format may grow.
    return failures


def report(failures, alerts, incidents):
    """A compact dump for a failure message."""
    out = ["FAILED: " + f for f in failures]
    out.append("incidents (%d):" % len(incidents))
    for i in incidents:
        out.append("  %s %s %s hosts=%s clusters=%s pods=%s tactics=%s phases=%s alerts=%s" % (
            i.get("id"), i.get("severity"), i.get("status"), i.get("hosts"), i.get("clusters"),
            i.get("pods"), i.get("tactics"), i.get("phases"), i.get("alert_count")))
    out.append("alerts (%d):" % len(alerts))
    for a in alerts[:200]:
        out.append("  %s %-8s %-40s host=%s pod=%s/%s tactic=%s incident=%s" % (
            a.get("time"), a.get("severity"), a.get("rule"), a.get("host"), a.get("namespace"),
            a.get("pod"), a.get("tactic"), a.get("incident")))
    return "\n".join(out)


def server_args():
    """Extra chainwatchd flags: --rules $CW_RULES when set (to try a rules
    directory other than the built-in one)."""
    rules = os.environ.get("CW_RULES")
    return ["--rules", rules] if rules else []


def run_scenario(path, extra=()):
    """Replays path into a fresh chainwatchd (cwtest.Server), waits until the
    pipeline has processed every event, stops the server (flushing its
    outputs) and returns (alerts, incidents, server)."""
    import cwtest
    srv = cwtest.Server(extra=server_args() + list(extra), events_out=False)
    with srv:
        cwtest.run([cwtest.AGENTSIM, "replay", "--speed", "0",
                    "--server", "127.0.0.1:%d" % srv.agent_port,
                    "--http", "http://127.0.0.1:%d" % srv.http_port, path])
        srv.wait_metric("chainwatch_pipeline_events_total", event_count(path))
    alerts, incidents = load_outputs(os.path.join(srv.tmp, "alerts.jsonl"),
                                     os.path.join(srv.tmp, "incidents.jsonl"))
    return alerts, incidents, srv


def main(argv):
    if len(argv) == 3 and argv[1] == "--run":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        alerts, incidents, _ = run_scenario(argv[2])
        expects = load_expects(argv[2])
    elif len(argv) == 4:
        expects = load_expects(argv[1])
        alerts, incidents = load_outputs(argv[2], argv[3])
    else:
        sys.stderr.write(__doc__)
        return 2
    failures = check(expects, alerts, incidents)
    if failures:
        print(report(failures, alerts, incidents))
        return 1
    print("OK: %d expects hold (%d incidents, %d alerts)" % (len(expects), len(incidents),
                                                            len(alerts)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
