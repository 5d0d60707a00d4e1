"""The Kubernetes audit webhook on the real chainwatchd: every corpus sample
is accepted and reaches --events-out, redelivery is de-duplicated, and
malformed or oversize bodies are refused with 400/413 and counted."""
import glob
import json
import os
import unittest

from cwtest import SHARED, Server

CORPUS = sorted(glob.glob(os.path.join(SHARED, "corpus", "k8s-audit", "*.json")))


def event_list(items):
    return json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                       "metadata": {}, "items": items}).encode()


class AuditWebhookTest(unittest.TestCase):
    def test_corpus_samples_accepted_once(self):
        self.assertEqual(len(CORPUS), 5)
        items = [json.load(open(p)) for p in CORPUS]
        with Server(extra=["--set", "http.max_body_bytes=1MiB"]) as srv:
            for item in items:  # one request per sample, as a webhook batch of one
                status, body = srv.post("/api/v1/k8s-audit/lab", event_list([item]))
                self.assertEqual(status, 200, body)
            status, body = srv.post("/api/v1/k8s-audit/lab", event_list(items))  # redelivery
            self.assertEqual(status, 200, body)
            # A single Event (log-backend shape) is accepted too.
            status, _ = srv.post("/api/v1/k8s-audit/other", json.dumps(items[0]).encode())
            self.assertEqual(status, 200)
            m = srv.metrics()
            self.assertEqual(m['chainwatch_events_received_total{source="k8s_audit"}'], 6)
            self.assertEqual(m["chainwatch_audit_events_duplicate_total"], 5)
            srv.wait_metric("chainwatch_pipeline_events_total", 6)
        got = srv.events()
        ids = {(e["cluster"], e["audit"]["auditID"]) for e in got}
        for item in items:
            self.assertIn(("lab", item["auditID"]), ids)
        self.assertIn(("other", items[0]["auditID"]), ids)

    def test_malformed_and_oversize_bodies_are_refused(self):
        with Server(extra=["--set", "http.max_body_bytes=64KiB"]) as srv:
            for body in (b"{not json", b"[]", b'{"kind":"EventList","items":{}}', b'"x"'):
                status, reply = srv.post("/api/v1/k8s-audit/lab", body)
                self.assertEqual(status, 400, (body, reply))
                self.assertIn(b"error", reply)
            status, _ = srv.post("/api/v1/k8s-audit/lab", b"{" + b" " * (70 * 1024) + b"}")
            self.assertEqual(status, 413)
            m = srv.metrics()
            self.assertEqual(m['chainwatch_audit_requests_rejected_total{reason="malformed"}'], 4)
            self.assertEqual(m['chainwatch_audit_requests_rejected_total{reason="too_large"}'], 1)
            self.assertEqual(m['chainwatch_events_received_total{source="k8s_audit"}'], 0)
            status, _ = srv.post("/api/v1/k8s-audit/BAD%21", event_list([]))
            self.assertEqual(status, 400)
            self.assertEqual(srv.get("/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
