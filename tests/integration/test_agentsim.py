"""agentsim against a real chainwatchd: what agentsim says was acked is
exactly what the server stored (--ack-log against --events-out), through a
server crash and restart in the middle of a load run; an agent id reused
across runs is refused instead of silently dropped; bad arguments are named."""
import collections
import os
import subprocess
import tempfile
import time
import unittest

from cwtest import AGENTSIM, SHARED, Server, run, scenario_event_count

SCENARIOS = os.path.join(SHARED, "scenarios")


def acked_ids(path):
    """Expands an ack log ("<agent_id> <seq> <count>" lines) into event ids,
    checking that each agent's seqs run 1, 2, 3, ... without gaps."""
    ids, seqs = set(), collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            agent, seq, count = line.split()
            seqs[agent].append(int(seq))
            for i in range(int(count)):
                ids.add("%s:%s:%d" % (agent, seq, i))
    for agent, s in seqs.items():
        assert s == list(range(1, len(s) + 1)), "%s acked out of order: %r" % (agent, s[:20])
    return ids


def stats_of(out):
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l and " " not in l)


class AgentsimTest(unittest.TestCase):
    def test_replay_ack_log_matches_what_the_server_stored(self):
        files = sorted(os.path.join(SCENARIOS, f) for f in os.listdir(SCENARIOS)
                       if f.endswith(".jsonl"))
        with Server() as srv:
            log = os.path.join(srv.tmp, "acks.log")
            p = run([AGENTSIM, "replay", "--speed", "0", "--ack-log", log,
                     "--server", "127.0.0.1:%d" % srv.agent_port,
                     "--http", "http://127.0.0.1:%d" % srv.http_port] + files)
            total = sum(scenario_event_count(f) for f in files)
            srv.wait_metric("chainwatch_pipeline_events_total", total)
        ids = acked_ids(log)
        stored = {e["id"] for e in srv.events() if e["type"] != "k8s_audit"}
        self.assertEqual(ids, stored)
        self.assertIn("replayed %d files:" % len(files), p.stdout)
        self.assertRegex(p.stdout, r"acked (\d+)/\1 batches")

    def test_load_survives_a_server_crash_and_restart(self):
        srv = Server()
        srv.start()
        log = os.path.join(srv.tmp, "acks.log")
        load = subprocess.Popen(
            [AGENTSIM, "load", "--agents", "20", "--rate", "20000", "--duration", "8",
             "--batch", "200", "--ack-log", log, "--server", "127.0.0.1:%d" % srv.agent_port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(3)
            srv.kill9()
            time.sleep(1)
            # Same ports and data directory: the agents reconnect and resend.
            srv.start()
            out, err = load.communicate(timeout=120)
            self.assertEqual(load.returncode, 0, out + err)
            stats = stats_of(out)
            self.assertEqual(stats["batches_unacked"], "0")
            self.assertGreaterEqual(int(stats["reconnects"]), 20)
            ids = acked_ids(log)
            self.assertEqual(len(ids), int(stats["events_acked"]))
            self.assertEqual(int(stats["events_acked"]), int(stats["events_sent"]))
            # Every acked event reaches the output (at least once across the crash).
            deadline = time.time() + 60
            while True:
                stored = {e["id"] for e in srv.events() if e.get("agent_id")}
                if ids <= stored or time.time() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(ids - stored, set())
            srv.stop()
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()

    def test_reused_agent_ids_are_refused(self):
        path = os.path.join(SCENARIOS, "ssh-bruteforce-cron-miner.jsonl")
        with Server() as srv:
            args = [AGENTSIM, "replay", "--speed", "0", "--timeout", "10",
                    "--agent-prefix", "fixed-", "--server", "127.0.0.1:%d" % srv.agent_port, path]
            run(args)
            # A second run of the same ids would start at seq 1, which the
            # server already holds: its batches would vanish as duplicates.
            p = run(args, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("agent id reused", p.stderr)
            # With the default (per-run) prefix a rerun is fine.
            run(args[:6] + args[8:])

    def test_bad_arguments_are_named(self):
        cases = [
            (["replay", "--server", "127.0.0.1", "x.jsonl"], "expected HOST:PORT"),
            (["replay", "--speed", "fast", "--server", "127.0.0.1:1", "x"], "--speed fast"),
            (["replay", "--server", "127.0.0.1:1"], "no scenario file"),
            (["load", "--agents", "0", "--server", "127.0.0.1:1"], "--agents 0"),
            (["load", "--server", "127.0.0.1:1", "--batch", "20000"], "--batch 20000"),
            (["teleport"], "unknown command"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                p = run([AGENTSIM] + args, check=False)
                self.assertEqual(p.returncode, 2)
                self.assertIn(msg, p.stderr)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
            f.write('{"t":0,"type":"agent","host":"h","cloud":"aws","region":"r","cluster":"",'
                    '"ip":"10.0.0.1"}\n{"t":1,"type":"login","host":"h","user":"root"}\n')
            f.flush()
            p = run([AGENTSIM, "replay", "--server", "127.0.0.1:1", f.name], check=False)
            self.assertEqual(p.returncode, 2)
            self.assertIn("%s:2: login: missing field" % f.name, p.stderr)
        for cmd in ("replay", "load"):
            p = run([AGENTSIM, cmd, "--help"])
            self.assertIn("--ack-log FILE", p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
