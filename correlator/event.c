#include "correlator/event.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/jsonw.h"

const char *const cw_event_type_names[CW_EV__COUNT] = {
    [CW_EV_PROCESS_EXEC] = "process_exec",
    [CW_EV_PROCESS_EXIT] = "process_exit",
    [CW_EV_NET_CONNECT] = "net_connect",
    [CW_EV_NET_LISTEN] = "net_listen",
    [CW_EV_DNS_QUERY] = "dns_query",
    [CW_EV_FILE_OP] = "file_op",
    [CW_EV_LOGIN] = "login",
    [CW_EV_CONTAINER_START] = "container_start",
    [CW_EV_CONTAINER_STOP] = "container_stop",
    [CW_EV_K8S_AUDIT] = "k8s_audit",
};

const char *const cw_event_source_names[CW_SRC__COUNT] = {
    [CW_SRC_AGENT] = "agent",
    [CW_SRC_K8S_AUDIT] = "k8s_audit",
};

/* Longest auditID and stage kept verbatim in an event id. A real auditID is
 * a 36-character UUID, but clients may set the Audit-ID header themselves,
 * so longer ones are shortened to a prefix plus a hash of the whole. */
#define AUDIT_ID_KEEP 160
#define STAGE_KEEP 32

static void clear_event(cw_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->cluster = ev->cloud = ev->region = ev->host = ev->node = ev->agent_id = "";
    ev->container_id = ev->namespace = ev->pod = ev->pod_uid = ev->owner = "";
    ev->k8s.response_code = -1;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* Writes the decimal digits of v ending just before `end`; returns the start. */
static char *utoa_back(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* "<agent_id>:<seq>:<index>", as snprintf would, without its per-call cost:
 * this runs for every event. Truncates (like snprintf) if it does not fit. */
static void format_agent_id(char *out, size_t cap, const char *agent_id, uint64_t seq,
                            uint32_t index)
{
    char nums[48], *end = nums + sizeof nums;
    char *p = utoa_back(end, index);
    *--p = ':';
    p = utoa_back(p, seq);
    *--p = ':';
    size_t alen = strlen(agent_id), nlen = (size_t)(end - p);
    if (alen > cap - 1) alen = cap - 1;
    memcpy(out, agent_id, alen);
    if (nlen > cap - 1 - alen) nlen = cap - 1 - alen;
    memcpy(out + alen, p, nlen);
    out[alen + nlen] = 0;
}

int cw_event_from_agent(cw_event *ev, const char *agent_id, uint64_t seq, uint32_t index,
                        const Chainwatch__V1__Event *pb, int64_t recv_time_ns)
{
    clear_event(ev);
    ev->source = CW_SRC_AGENT;
    ev->agent_id = nz(agent_id);
    ev->seq = seq;
    ev->index = index;
    ev->pb = pb;
    ev->time_ns = pb->has_time_ns && pb->time_ns != 0 ? pb->time_ns : recv_time_ns;
    ev->clock_ns = ev->time_ns;
    const char *cid = NULL;
    switch (pb->payload_case) {
    case CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC:
        ev->type = CW_EV_PROCESS_EXEC;
        ev->agent.payload = pb->process_exec;
        if (pb->process_exec) cid = pb->process_exec->container_id;
        break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXIT:
        ev->type = CW_EV_PROCESS_EXIT;
        ev->agent.payload = pb->process_exit;
        if (pb->process_exit) cid = pb->process_exit->container_id;
        break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT:
        ev->type = CW_EV_NET_CONNECT;
        ev->agent.payload = pb->net_connect;
        if (pb->net_connect) cid = pb->net_connect->container_id;
        break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_NET_LISTEN:
        ev->type = CW_EV_NET_LISTEN;
        ev->agent.payload = pb->net_listen;
        if (pb->net_listen) cid = pb->net_listen->container_id;
        break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_DNS_QUERY:
        ev->type = CW_EV_DNS_QUERY;
        ev->agent.payload = pb->dns_query;
        if (pb->dns_query) cid = pb->dns_query->container_id;
        break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP:
        ev->type = CW_EV_FILE_OP;
        ev->agent.payload = pb->file_op;
        if (pb->file_op) cid = pb->file_op->container_id;
        break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN:
        ev->type = CW_EV_LOGIN;
        ev->agent.payload = pb->login;
        if (pb->login) cid = pb->login->container_id;
        break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START:
        ev->type = CW_EV_CONTAINER_START;
        ev->agent.payload = pb->container_start;
        if (pb->container_start) cid = pb->container_start->container_id;
        break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_STOP:
        ev->type = CW_EV_CONTAINER_STOP;
        ev->agent.payload = pb->container_stop;
        if (pb->container_stop) cid = pb->container_stop->container_id;
        break;
    default:
        return -1;
    }
    /* protobuf-c always allocates the oneof member it reports; checked
     * anyway because a NULL here would crash every later stage. */
    if (!ev->agent.payload) return -1;
    ev->container_id = nz(cid);
    format_agent_id(ev->id, sizeof ev->id, ev->agent_id, seq, index);
    return 0;
}

/* ---------------------------------------------------------------- audit */

static const char *jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key)); /* NULL-safe */
}

/* Two digits at s (no sign, no spaces); -1 if not digits. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int cw_parse_rfc3339_ns(const char *s, int64_t *out)
{
    if (!s || strlen(s) < 20) return -1;
    int Y = digits(s, 4), M = digits(s + 5, 2), D = digits(s + 8, 2);
    int h = digits(s + 11, 2), m = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (Y < 0 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 || m < 0 || m > 59 ||
        sec < 0 || sec > 60 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
        return -1;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 9) frac = frac * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0) return -1;
        for (; nd < 9; nd++) frac *= 10;
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) return -1;
        offset = (int64_t)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    /* Years 0000-9999 fit in int64 ns only between 1678 and 2261. */
    if (Y < 1678 || Y > 2261) return -1;
    *out = ((int64_t)t - offset) * 1000000000 + frac;
    return 0;
}

/* FNV-1a: only used to shorten oversized ids, not for hash tables. */
static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

void cw_event_bound_clock(cw_event *ev, int64_t recv_ns, int64_t max_ahead_ns)
{
    if (max_ahead_ns < 0) return;
    int64_t limit = recv_ns > INT64_MAX - max_ahead_ns ? INT64_MAX : recv_ns + max_ahead_ns;
    ev->clock_ns = ev->time_ns < limit ? ev->time_ns : limit;
}

int cw_event_from_audit(cw_event *ev, const char *cluster, json_t *audit, int64_t recv_time_ns)
{
    clear_event(ev);
    if (!json_is_object(audit)) return -1;
    ev->type = CW_EV_K8S_AUDIT;
    ev->source = CW_SRC_K8S_AUDIT;
    ev->audit = audit;
    ev->cluster = nz(cluster);

    cw_k8s_fields *k = &ev->k8s;
    k->audit_id = jstr(audit, "auditID");
    k->stage = jstr(audit, "stage");
    k->verb = jstr(audit, "verb");
    k->request_uri = jstr(audit, "requestURI");
    k->user_agent = jstr(audit, "userAgent");
    json_t *user = json_object_get(audit, "user");
    k->user = jstr(user, "username");
    k->groups = json_object_get(user, "groups");
    if (!json_is_array(k->groups)) k->groups = NULL;
    json_t *ips = json_object_get(audit, "sourceIPs");
    if (json_is_array(ips) && json_array_size(ips) > 0)
        k->source_ip = json_string_value(json_array_get(ips, json_array_size(ips) - 1));
    json_t *ref = json_object_get(audit, "objectRef");
    k->resource = jstr(ref, "resource");
    k->subresource = jstr(ref, "subresource");
    k->api_group = jstr(ref, "apiGroup");
    k->obj_namespace = jstr(ref, "namespace");
    k->name = jstr(ref, "name");
    json_t *code = json_object_get(json_object_get(audit, "responseStatus"), "code");
    if (json_is_integer(code) && json_integer_value(code) >= 0 && json_integer_value(code) <= 999)
        k->response_code = (int)json_integer_value(code);
    k->decision = jstr(json_object_get(audit, "annotations"), "authorization.k8s.io/decision");

    if (cw_parse_rfc3339_ns(jstr(audit, "stageTimestamp"), &ev->time_ns) < 0 &&
        cw_parse_rfc3339_ns(jstr(audit, "requestReceivedTimestamp"), &ev->time_ns) < 0)
        ev->time_ns = recv_time_ns;
    ev->clock_ns = ev->time_ns;

    ev->namespace = nz(k->obj_namespace);
    if (k->resource && strcmp(k->resource, "pods") == 0) ev->pod = nz(k->name);

    const char *aid = nz(k->audit_id), *stage = nz(k->stage);
    size_t alen = strlen(aid), slen = strlen(stage);
    if (slen > STAGE_KEEP) slen = STAGE_KEEP;
    if (alen > AUDIT_ID_KEEP)
        snprintf(ev->id, sizeof ev->id, "%s:%.*s~%016" PRIx64 ":%.*s", ev->cluster,
                 AUDIT_ID_KEEP - 17, aid, fnv1a(aid, alen), (int)slen, stage);
    else
        snprintf(ev->id, sizeof ev->id, "%s:%s:%.*s", ev->cluster, aid, (int)slen, stage);
    return 0;
}

const char *cw_event_label(const cw_event *ev, const char *key)
{
    for (size_t i = 0; i < ev->n_labels; i++)
        if (strcmp(ev->labels[i].key, key) == 0) return ev->labels[i].value;
    return NULL;
}

/* ---------------------------------------------------------------- JSON */

/* A field the format requires: always written, null if the agent left it out. */
static void req_str(cw_jsonw *w, const char *k, const char *v)
{
    cw_jsonw_key(w, k);
    cw_jsonw_str(w, v);
}

/* An optional field: written only when present. */
static void opt_str(cw_jsonw *w, const char *k, const char *v)
{
    if (!v) return;
    cw_jsonw_key(w, k);
    cw_jsonw_str(w, v);
}

static void req_u32(cw_jsonw *w, const char *k, int has, uint32_t v)
{
    cw_jsonw_key(w, k);
    if (has) cw_jsonw_uint(w, v);
    else cw_jsonw_null(w);
}

static void opt_u32(cw_jsonw *w, const char *k, int has, uint32_t v)
{
    if (!has) return;
    cw_jsonw_key(w, k);
    cw_jsonw_uint(w, v);
}

static void req_bool(cw_jsonw *w, const char *k, int has, int v)
{
    cw_jsonw_key(w, k);
    if (has) cw_jsonw_bool(w, v);
    else cw_jsonw_null(w);
}

static void strv(cw_jsonw *w, const char *k, size_t n, char **v)
{
    cw_jsonw_key(w, k);
    cw_jsonw_arr_open(w);
    for (size_t i = 0; i < n; i++) cw_jsonw_str(w, v[i]);
    cw_jsonw_arr_close(w);
}

static const char *stdio_name(int has, int kind)
{
    static const char *const names[] = {NULL, "tty", "pipe", "socket", "file", "null"};
    /* Enum values come off the wire unchecked by protobuf-c. */
    if (!has || kind < 0 || kind >= (int)(sizeof names / sizeof names[0])) return NULL;
    return names[kind];
}

static void json_process_exec(cw_jsonw *w, const Chainwatch__V1__ProcessExec *p)
{
    req_u32(w, "pid", p->has_pid, p->pid);
    req_u32(w, "ppid", p->has_ppid, p->ppid);
    req_str(w, "exe", p->exe);
    strv(w, "argv", p->n_argv, p->argv);
    opt_str(w, "cwd", p->cwd);
    req_u32(w, "uid", p->has_uid, p->uid);
    opt_str(w, "user", p->user);
    opt_str(w, "parent_exe", p->parent_exe);
    if (p->n_parent_argv) strv(w, "parent_argv", p->n_parent_argv, p->parent_argv);
    if (p->has_tty) {
        cw_jsonw_key(w, "tty");
        cw_jsonw_bool(w, p->tty);
    }
    opt_str(w, "stdin", stdio_name(p->has_stdin, (int)p->stdin));
    opt_str(w, "stdout", stdio_name(p->has_stdout, (int)p->stdout));
    opt_str(w, "stdio_peer", p->stdio_peer);
    opt_str(w, "sha256", p->sha256);
}

static void json_container_start(cw_jsonw *w, const Chainwatch__V1__ContainerStart *c)
{
    opt_str(w, "name", c->name);
    opt_str(w, "image", c->image);
    req_bool(w, "privileged", c->has_privileged, c->privileged);
    req_bool(w, "host_pid", c->has_host_pid, c->host_pid);
    req_bool(w, "host_network", c->has_host_network, c->host_network);
    req_bool(w, "host_ipc", c->has_host_ipc, c->host_ipc);
    strv(w, "caps_add", c->n_caps_add, c->caps_add);
    cw_jsonw_key(w, "mounts");
    cw_jsonw_arr_open(w);
    for (size_t i = 0; i < c->n_mounts; i++) {
        const Chainwatch__V1__Mount *m = c->mounts[i];
        cw_jsonw_obj_open(w);
        req_str(w, "host_path", m->host_path);
        req_str(w, "container_path", m->container_path);
        cw_jsonw_key(w, "read_only");
        cw_jsonw_bool(w, m->has_read_only && m->read_only);
        cw_jsonw_obj_close(w);
    }
    cw_jsonw_arr_close(w);
    cw_jsonw_key(w, "ports");
    cw_jsonw_arr_open(w);
    for (size_t i = 0; i < c->n_ports; i++) {
        const Chainwatch__V1__PortMapping *p = c->ports[i];
        cw_jsonw_obj_open(w);
        req_u32(w, "host_port", p->has_host_port, p->host_port);
        req_u32(w, "container_port", p->has_container_port, p->container_port);
        req_str(w, "proto", p->proto);
        cw_jsonw_obj_close(w);
    }
    cw_jsonw_arr_close(w);
    opt_str(w, "restart", c->restart);
    opt_str(w, "started_by", c->started_by);
    opt_str(w, "pod_ip", c->pod_ip);
    opt_str(w, "service_account", c->service_account);
}

static void json_agent_payload(cw_jsonw *w, const cw_event *ev)
{
    switch (ev->type) {
    case CW_EV_PROCESS_EXEC:
        json_process_exec(w, ev->agent.process_exec);
        break;
    case CW_EV_PROCESS_EXIT: {
        const Chainwatch__V1__ProcessExit *p = ev->agent.process_exit;
        req_u32(w, "pid", p->has_pid, p->pid);
        if (p->has_exit_code) {
            cw_jsonw_key(w, "exit_code");
            cw_jsonw_int(w, p->exit_code);
        }
        break;
    }
    case CW_EV_NET_CONNECT: {
        const Chainwatch__V1__NetConnect *p = ev->agent.net_connect;
        req_u32(w, "pid", p->has_pid, p->pid);
        req_str(w, "exe", p->exe);
        req_str(w, "proto", p->proto);
        req_str(w, "direction", p->direction);
        req_str(w, "src_ip", p->src_ip);
        req_u32(w, "src_port", p->has_src_port, p->src_port);
        req_str(w, "dst_ip", p->dst_ip);
        req_u32(w, "dst_port", p->has_dst_port, p->dst_port);
        break;
    }
    case CW_EV_NET_LISTEN: {
        const Chainwatch__V1__NetListen *p = ev->agent.net_listen;
        req_u32(w, "pid", p->has_pid, p->pid);
        req_str(w, "exe", p->exe);
        req_str(w, "proto", p->proto);
        req_str(w, "ip", p->ip);
        req_u32(w, "port", p->has_port, p->port);
        break;
    }
    case CW_EV_DNS_QUERY: {
        const Chainwatch__V1__DnsQuery *p = ev->agent.dns_query;
        req_u32(w, "pid", p->has_pid, p->pid);
        req_str(w, "exe", p->exe);
        req_str(w, "query", p->query);
        if (p->n_answers) strv(w, "answers", p->n_answers, p->answers);
        break;
    }
    case CW_EV_FILE_OP: {
        const Chainwatch__V1__FileOp *p = ev->agent.file_op;
        req_u32(w, "pid", p->has_pid, p->pid);
        req_str(w, "exe", p->exe);
        req_str(w, "op", p->op);
        req_str(w, "path", p->path);
        opt_str(w, "new_path", p->new_path);
        break;
    }
    case CW_EV_LOGIN: {
        const Chainwatch__V1__Login *p = ev->agent.login;
        req_str(w, "user", p->user);
        req_str(w, "src_ip", p->src_ip);
        opt_u32(w, "src_port", p->has_src_port, p->src_port);
        req_str(w, "service", p->service);
        req_str(w, "method", p->method);
        req_bool(w, "success", p->has_success, p->success);
        opt_str(w, "key_fingerprint", p->key_fingerprint);
        break;
    }
    case CW_EV_CONTAINER_START:
        json_container_start(w, ev->agent.container_start);
        break;
    default: /* container_stop: nothing beyond container_id */
        break;
    }
}

static void json_audit(cw_jsonw *w, const cw_event *ev)
{
    const cw_k8s_fields *k = &ev->k8s;
    req_str(w, "user", k->user);
    cw_jsonw_key(w, "groups");
    cw_jsonw_json(w, k->groups); /* null when absent */
    req_str(w, "verb", k->verb);
    req_str(w, "resource", k->resource);
    req_str(w, "subresource", k->subresource);
    req_str(w, "name", k->name);
    req_str(w, "source_ip", k->source_ip);
    req_str(w, "user_agent", k->user_agent);
    req_str(w, "decision", k->decision);
    cw_jsonw_key(w, "response_code");
    if (k->response_code >= 0) cw_jsonw_int(w, k->response_code);
    else cw_jsonw_null(w);
    req_str(w, "stage", k->stage);
    req_str(w, "audit_id", k->audit_id);
    cw_jsonw_key(w, "audit");
    cw_jsonw_json(w, ev->audit);
}

int cw_event_to_json(const cw_event *ev, cw_buf *out)
{
    cw_jsonw w;
    cw_jsonw_init(&w, out);
    cw_jsonw_obj_open(&w);
    cw_jsonw_key(&w, "id");
    cw_jsonw_str(&w, ev->id);
    cw_jsonw_key(&w, "time");
    cw_jsonw_time_ns(&w, ev->time_ns);
    cw_jsonw_key(&w, "type");
    cw_jsonw_str(&w, (unsigned)ev->type < CW_EV__COUNT ? cw_event_type_names[ev->type] : NULL);
    cw_jsonw_key(&w, "source");
    cw_jsonw_str(&w,
                 (unsigned)ev->source < CW_SRC__COUNT ? cw_event_source_names[ev->source] : NULL);
    static const char *const ctx_names[] = {"host",      "agent_id", "cluster", "cloud",
                                            "region",    "node",     "namespace", "pod",
                                            "pod_uid",   "container_id"};
    const char *ctx_vals[] = {ev->host,      ev->agent_id, ev->cluster, ev->cloud,
                              ev->region,    ev->node,     ev->namespace, ev->pod,
                              ev->pod_uid,   ev->container_id};
    for (size_t i = 0; i < sizeof ctx_names / sizeof ctx_names[0]; i++) {
        cw_jsonw_key(&w, ctx_names[i]);
        cw_jsonw_str_or_null(&w, ctx_vals[i]);
    }
    cw_jsonw_key(&w, "labels");
    cw_jsonw_obj_open(&w);
    for (size_t i = 0; i < ev->n_labels; i++) {
        cw_jsonw_key(&w, ev->labels[i].key);
        cw_jsonw_str(&w, ev->labels[i].value);
    }
    cw_jsonw_obj_close(&w);
    cw_jsonw_key(&w, "owner");
    cw_jsonw_str_or_null(&w, ev->owner);

    if (ev->type == CW_EV_K8S_AUDIT) json_audit(&w, ev);
    else if (ev->source == CW_SRC_AGENT && ev->agent.payload) json_agent_payload(&w, ev);
    cw_jsonw_obj_close(&w);
    return cw_jsonw_error(&w);
}
