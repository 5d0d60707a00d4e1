#!/usr/bin/env python3
"""rulesim: replay a scenario file through the rules in rules/ (offline).

A rule author's aid, NOT the engine: a small Python model of the Sigma subset
rules/FIELDS.md documents, so rule changes can be checked against the
scenario files before (or without) building chainwatchd. It answers "which
rules fire on which lines, and do the expect lines' tactics and severity
bounds hold?". Incident grouping is the server's job; here every alert of a
scenario is treated as one candidate incident, so incident_count and the
per-incident host/pod lists are NOT checked - only tactics, phases,
techniques and the severity bounds.

Needs PyYAML (python3-yaml). Usage:
    tests/tools/rulesim.py [-v] rules/ scenario.jsonl [...]
Exit status 1 when an expect line that it can check does not hold.
"""
import ipaddress
import json
import os
import re
import sys
import urllib.parse

import yaml

SEV = {"informational": 0, "info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
SEV_NAME = {0: "info", 1: "low", 2: "medium", 3: "high", 4: "critical"}
PHASE = {"initial-access": "pre", "execution": "mid", "persistence": "mid",
         "privilege-escalation": "mid", "defense-evasion": "mid", "credential-access": "mid",
         "discovery": "post", "lateral-movement": "post", "collection": "post", "impact": "post"}


def absent(v):
    return v is None or v == "" or v == []


# ---------------------------------------------------------------- events

class World:
    """Agent and container context, like the server's enrichment."""

    def __init__(self):
        self.agents = {}
        self.containers = {}


def base_fields(line, world):
    f = {"type": line["type"], "source": "agent"}
    host = line.get("host")
    if host:
        a = world.agents.get(host, {})
        f.update(host=host, node=host, agent_id=host, cluster=a.get("cluster") or None,
                 cloud=a.get("cloud"), region=a.get("region"))
    cid = line.get("container_id") or None
    f["container_id"] = cid
    f["in_container"] = bool(cid)
    if cid and cid in world.containers:
        c = world.containers[cid]
        f.update(namespace=c.get("namespace"), pod=c.get("pod"), pod_uid=c.get("pod_uid"),
                 container_name=c.get("name"), image=c.get("image"),
                 service_account=c.get("service_account"))
        for k, v in (c.get("labels") or {}).items():
            f["labels." + k] = v
    return f


def exec_fields(line, f):
    for k in ("pid", "ppid", "exe", "argv", "cwd", "uid", "user", "parent_exe", "parent_argv",
              "tty", "stdin", "stdout", "stdio_peer", "sha256"):
        if k in line:
            f[k] = line[k]
    f["exe_name"] = os.path.basename(line.get("exe", ""))
    f["parent_exe_name"] = os.path.basename(line.get("parent_exe", "")) or None
    f["cmdline"] = " ".join(line.get("argv", []))
    if "parent_argv" in line:
        f["parent_cmdline"] = " ".join(line["parent_argv"])
    peer = line.get("stdio_peer")
    if peer and ":" in peer:
        ip, port = peer.rsplit(":", 1)
        f["stdio_peer_ip"] = ip.strip("[]")
        f["stdio_peer_port"] = int(port)


def audit_fields(line):
    e = line["event"]
    user = e.get("user") or {}
    ref = e.get("objectRef") or {}
    ips = e.get("sourceIPs") or []
    f = {"type": "k8s_audit", "source": "k8s_audit", "cluster": line.get("cluster"),
         "user": user.get("username"), "groups": user.get("groups"), "verb": e.get("verb"),
         "resource": ref.get("resource"), "subresource": ref.get("subresource"),
         "api_group": ref.get("apiGroup"), "namespace": ref.get("namespace"),
         "name": ref.get("name"), "source_ip": ips[-1] if ips else None,
         "user_agent": e.get("userAgent"),
         "decision": (e.get("annotations") or {}).get("authorization.k8s.io/decision"),
         "response_code": (e.get("responseStatus") or {}).get("code"),
         "stage": e.get("stage"), "audit_id": e.get("auditID"), "request_uri": e.get("requestURI")}
    if f["resource"] == "pods":
        f["pod"] = f["name"]
    groups = f["groups"] or []
    f["anonymous"] = f["user"] == "system:anonymous" or "system:unauthenticated" in groups
    ro = e.get("requestObject") or {}
    spec = None
    s = ro.get("spec") if isinstance(ro, dict) else None
    if isinstance(s, dict):
        if "containers" in s:
            spec = s
        elif isinstance(s.get("template"), dict):
            spec = s["template"].get("spec")
        elif isinstance(s.get("jobTemplate"), dict):
            spec = (((s["jobTemplate"].get("spec") or {}).get("template") or {}).get("spec"))
    if isinstance(spec, dict):
        cs = (spec.get("containers") or []) + (spec.get("initContainers") or []) + \
            (spec.get("ephemeralContainers") or [])
        f["privileged"] = any(((c.get("securityContext") or {}).get("privileged") is True) for c in cs)
        f["host_pid"] = bool(spec.get("hostPID"))
        f["host_network"] = bool(spec.get("hostNetwork"))
        f["host_ipc"] = bool(spec.get("hostIPC"))
        f["host_paths"] = [v["hostPath"]["path"] for v in spec.get("volumes") or [] if v.get("hostPath")]
        f["caps_add"] = [cap for c in cs for cap in
                         (((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or [])]
        f["images"] = [c.get("image") for c in cs if c.get("image")]
    if isinstance(ro, dict) and "roleRef" in ro:
        f["role_ref"] = ro["roleRef"].get("name")
        f["role_ref_kind"] = ro["roleRef"].get("kind")
        f["subjects"] = [x.get("name") for x in ro.get("subjects") or []]
    uri = f["request_uri"] or ""
    if "?" in uri:
        q = urllib.parse.parse_qs(uri.split("?", 1)[1])
        if "command" in q:
            f["exec_command"] = q["command"]
        if "tty" in q:
            f["exec_tty"] = q["tty"][0] == "true"
    md = ro.get("metadata") if isinstance(ro, dict) else None
    if isinstance(md, dict):
        owners = md.get("ownerReferences") or []
        f["owner_kind"] = owners[0].get("kind", "") if owners else ""
    return f


def to_fields(line, world):
    t = line["type"]
    if t == "agent":
        world.agents[line["host"]] = line
        return None
    if t == "k8s_audit":
        return audit_fields(line)
    if t == "container_start":
        world.containers[line["container_id"]] = line
    f = base_fields(line, world)
    if t == "process_exec":
        exec_fields(line, f)
    elif t == "container_start":
        for k in ("name", "image", "privileged", "host_pid", "host_network", "host_ipc", "caps_add",
                  "restart", "started_by", "pod_ip", "service_account", "pod_uid", "pod", "namespace"):
            if k in line:
                f[k] = line[k]
        f["host_paths"] = [m["host_path"] for m in line.get("mounts", [])]
        f["writable_host_paths"] = [m["host_path"] for m in line.get("mounts", []) if not m.get("read_only")]
        f["host_ports"] = [p.get("host_port", 0) for p in line.get("ports", [])]
        f["container_name"] = line.get("name")
    else:
        for k, v in line.items():
            if k not in ("t", "type", "host", "container_id"):
                f[k] = v
        if "exe" in line:
            f["exe_name"] = os.path.basename(line["exe"])
    return f


# ---------------------------------------------------------------- matching

def wildcard_re(pat):
    out = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if c == "\\" and i + 1 < len(pat) and pat[i + 1] in "*?\\":
            out.append(re.escape(pat[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return "".join(out)


def match_one(val, pat, mods):
    if "exists" in mods:
        return (not absent(val)) == bool(pat)
    if pat is None:
        return absent(val)
    if absent(val):
        return False
    if isinstance(val, bool):
        return isinstance(pat, bool) and val == pat or str(pat).lower() == str(val).lower()
    if any(m in mods for m in ("gt", "gte", "lt", "lte")):
        try:
            v = int(val)
        except (TypeError, ValueError):
            return False
        p = int(pat)
        return {"gt": v > p, "gte": v >= p, "lt": v < p, "lte": v <= p}[
            [m for m in mods if m in ("gt", "gte", "lt", "lte")][0]]
    sval, spat = str(val), str(pat)
    if "cidr" in mods:
        try:
            return ipaddress.ip_address(sval) in ipaddress.ip_network(spat, strict=False)
        except ValueError:
            return False
    if "re" in mods:
        flags = re.I if "i" in mods else 0
        return re.search(spat, sval, flags) is not None
    flags = 0 if "cased" in mods else re.I
    w = wildcard_re(spat)
    if "contains" in mods:
        w = ".*" + w + ".*"
    elif "startswith" in mods:
        w = w + ".*"
    elif "endswith" in mods:
        w = ".*" + w
    return re.fullmatch(w, sval, flags | re.S) is not None


def match_field(fields, key, pats):
    name, *mods = key.split("|")
    val = fields.get(name)
    if not isinstance(pats, list):
        pats = [pats]
    vals = val if isinstance(val, list) else [val]
    if isinstance(val, list) and not val:
        vals = [None]
    if "all" in mods:
        return all(any(match_one(v, p, mods) for v in vals) for p in pats)
    return any(match_one(v, p, mods) for p in pats for v in vals)


def match_sel(fields, sel):
    if isinstance(sel, list):
        return any(match_sel(fields, s) for s in sel)
    return all(match_field(fields, k, v) for k, v in sel.items())


def eval_cond(cond, sels):
    toks = re.findall(r"\(|\)|[A-Za-z0-9_*]+", cond)
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else None

    def take():
        pos[0] += 1
        return toks[pos[0] - 1]

    def names(pat):
        r = re.compile(wildcard_re(pat))
        return [n for n in sels if r.fullmatch(n)]

    def atom():
        t = take()
        if t == "(":
            v = expr()
            take()
            return v
        if t == "not":
            return not atom()
        if t in ("1", "all") and peek() == "of":
            take()
            ns = names(take())
            return any(sels[n] for n in ns) if t == "1" else all(sels[n] for n in ns)
        return sels[t]

    def conj():
        v = atom()
        while peek() == "and":
            take()
            r = atom()
            v = v and r
        return v

    def expr():
        v = conj()
        while peek() == "or":
            take()
            r = conj()
            v = v or r
        return v

    return expr()


# ---------------------------------------------------------------- rules

def load_rules(d):
    rules = []
    for fn in sorted(os.listdir(d)):
        if fn.endswith((".yml", ".yaml")):
            with open(os.path.join(d, fn)) as fh:
                for doc in yaml.safe_load_all(fh):
                    if doc:
                        doc["_file"] = fn
                        rules.append(doc)
    return rules


def parse_span(s):
    m = re.fullmatch(r"(\d+)([smhd])", str(s))
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class Corr:
    def __init__(self, rule):
        self.r = rule
        c = rule["correlation"]
        self.type, self.refs = c["type"], c["rules"]
        self.group, self.span = c.get("group-by", []), parse_span(c["timespan"])
        self.cond = c.get("condition", {})
        self.state = {}

    def feed(self, rid, t, f):
        if rid not in self.refs:
            return False
        key = tuple(str(f.get(g)) for g in self.group)
        hist = self.state.setdefault(key, [])
        hist.append((t, rid, f))
        hist[:] = [h for h in hist if h[0] >= t - self.span]
        if self.type == "event_count":
            n = len(hist)
        elif self.type == "value_count":
            n = len({str(h[2].get(self.cond["field"])) for h in hist})
        else:
            seen = 0
            for h in hist:
                if seen < len(self.refs) and h[1] == self.refs[seen]:
                    seen += 1
                elif self.type == "temporal" and h[1] in self.refs:
                    pass
            if self.type == "temporal":
                return all(any(h[1] == r for h in hist) for r in self.refs)
            return seen == len(self.refs)
        for op, lim in self.cond.items():
            if op == "field":
                continue
            if not {"gte": n >= lim, "gt": n > lim, "lte": n <= lim, "lt": n < lim, "eq": n == lim}[op]:
                return False
        return True


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    rules = load_rules(args[0])
    base = [r for r in rules if "detection" in r]
    corrs = [Corr(r) for r in rules if "correlation" in r]
    bad = 0
    for path in args[1:]:
        world = World()
        alerts, expects = [], []
        with open(path) as fh:
            for n, raw in enumerate(fh, 1):
                raw = raw.strip()
                if not raw or raw.startswith("#"):
                    continue
                line = json.loads(raw)
                if line["type"] == "expect":
                    expects.append(line)
                    continue
                f = to_fields(line, world)
                if f is None:
                    continue
                fired = []
                for r in base:
                    ls = r["logsource"]
                    cat = ls.get("category") or ("k8s_audit" if ls.get("service") == "audit" else None)
                    if cat != f["type"]:
                        continue
                    det = r["detection"]
                    sels = {k: match_sel(f, v) for k, v in det.items() if k != "condition"}
                    if eval_cond(det["condition"], sels):
                        fired.append(r)
                queue = list(fired)
                while queue:
                    r = queue.pop(0)
                    for c in corrs:
                        if c.feed(r["id"], line["t"], f):
                            fired.append(c.r)
                            queue.append(c.r)
                for r in fired:
                    if r.get("generate") is False:
                        continue
                    cw = r.get("chainwatch") or {}
                    alerts.append((n, line["t"], r, f))
                    if verbose:
                        print(f"  {os.path.basename(path)}:{n} t={line['t']} {r['level']:<13} "
                              f"{cw.get('tactic'):<20} {r['id']} host={f.get('host')} pod={f.get('pod')}")
        sevs = [SEV[a[2]["level"]] for a in alerts]
        tactics = {a[2]["chainwatch"]["tactic"] for a in alerts}
        phases = {a[2]["chainwatch"].get("phase") or PHASE[a[2]["chainwatch"]["tactic"]] for a in alerts}
        techs = {a[2]["chainwatch"].get("technique") for a in alerts}
        hosts = {a[3].get("host") for a in alerts}
        top = max(sevs) if sevs else -1
        print(f"{path}: {len(alerts)} alerts, max {SEV_NAME.get(top, 'none')}, tactics {sorted(tactics)}")
        for e in expects:
            ok, why = True, ""
            if e["expect"] == "max_severity":
                ok = top <= SEV[e["severity"]]
                why = f"max alert severity {SEV_NAME.get(top)}"
            elif e["expect"] == "incident":
                miss = [t for t in e.get("tactics", []) if t not in tactics]
                miss += [p for p in e.get("phases", []) if p not in phases]
                miss += [t for t in e.get("techniques", []) if t not in techs]
                miss += [h for h in e.get("hosts", []) if h not in hosts]
                if "min_severity" in e and top < SEV[e["min_severity"]]:
                    miss.append("severity " + e["min_severity"])
                ok, why = not miss, "missing " + ", ".join(miss)
            elif e["expect"] == "incident_count":
                if e.get("max") == 0:
                    ok = not [s for s in sevs if s >= SEV["medium"]]
                    why = "medium+ alerts present (would likely open an incident)"
                else:
                    ok = not (e.get("min", 0) > 0 and not alerts)
                    why = "no alerts"
            print(f"  expect {json.dumps({k: v for k, v in e.items() if k != 'type'})}: "
                  f"{'ok' if ok else 'FAIL: ' + why}")
            bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
