#include "correlator/fields.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "correlator/enrich.h"

#define T(x) (1u << CW_EV_##x)
#define AGENT                                                                                    \
    (T(PROCESS_EXEC) | T(PROCESS_EXIT) | T(NET_CONNECT) | T(NET_LISTEN) | T(DNS_QUERY) |         \
     T(FILE_OP) | T(LOGIN) | T(CONTAINER_START) | T(CONTAINER_STOP))
#define ALL (AGENT | T(K8S_AUDIT))
#define WITH_EXE (T(PROCESS_EXEC) | T(NET_CONNECT) | T(NET_LISTEN) | T(DNS_QUERY) | T(FILE_OP))
#define WITH_PID (WITH_EXE | T(PROCESS_EXIT))

enum {
    F_ID, F_TIME, F_TYPE, F_SOURCE, F_HOST, F_AGENT_ID, F_CLUSTER, F_CLOUD, F_REGION, F_NODE,
    F_NAMESPACE, F_POD, F_POD_UID, F_CONTAINER_ID, F_OWNER, F_LABEL,
    F_CONTAINER_NAME, F_IMAGE, F_SERVICE_ACCOUNT, F_IN_CONTAINER,
    F_PID, F_PPID, F_EXE, F_EXE_NAME, F_ARGV, F_CMDLINE, F_CWD, F_UID, F_USER, F_PARENT_EXE,
    F_PARENT_EXE_NAME, F_PARENT_ARGV, F_PARENT_CMDLINE, F_TTY, F_STDIN, F_STDOUT, F_STDIO_PEER,
    F_STDIO_PEER_IP, F_STDIO_PEER_PORT, F_SHA256, F_EXIT_CODE,
    F_PROTO, F_DIRECTION, F_SRC_IP, F_SRC_PORT, F_DST_IP, F_DST_PORT, F_IP, F_PORT,
    F_QUERY, F_ANSWERS, F_OP, F_PATH, F_NEW_PATH,
    F_SERVICE, F_METHOD, F_SUCCESS, F_KEY_FP,
    F_NAME, F_PRIVILEGED, F_HOST_PID, F_HOST_NETWORK, F_HOST_IPC, F_CAPS_ADD, F_HOST_PATHS,
    F_WRITABLE_HOST_PATHS, F_HOST_PORTS, F_RESTART, F_STARTED_BY, F_POD_IP,
    F_GROUPS, F_VERB, F_RESOURCE, F_SUBRESOURCE, F_API_GROUP, F_SOURCE_IP, F_USER_AGENT,
    F_DECISION, F_RESPONSE_CODE, F_STAGE, F_AUDIT_ID, F_REQUEST_URI, F_IMAGES, F_ROLE_REF,
    F_ROLE_REF_KIND, F_SUBJECTS, F_EXEC_COMMAND, F_EXEC_TTY, F_ANONYMOUS, F_OWNER_KIND,
    F__COUNT
};

static const struct {
    const char *name;
    unsigned types;
    enum cw_fkind kind;
} table[F__COUNT] = {
    [F_ID] = {"id", ALL, CW_FK_STR},
    [F_TIME] = {"time", ALL, CW_FK_NUM},
    [F_TYPE] = {"type", ALL, CW_FK_STR},
    [F_SOURCE] = {"source", ALL, CW_FK_STR},
    [F_HOST] = {"host", ALL, CW_FK_STR},
    [F_AGENT_ID] = {"agent_id", ALL, CW_FK_STR},
    [F_CLUSTER] = {"cluster", ALL, CW_FK_STR},
    [F_CLOUD] = {"cloud", ALL, CW_FK_STR},
    [F_REGION] = {"region", ALL, CW_FK_STR},
    [F_NODE] = {"node", ALL, CW_FK_STR},
    [F_NAMESPACE] = {"namespace", ALL, CW_FK_STR},
    [F_POD] = {"pod", ALL, CW_FK_STR},
    [F_POD_UID] = {"pod_uid", ALL, CW_FK_STR},
    [F_CONTAINER_ID] = {"container_id", ALL, CW_FK_STR},
    [F_OWNER] = {"owner", ALL, CW_FK_STR},
    [F_LABEL] = {"labels.", ALL, CW_FK_STR},
    [F_CONTAINER_NAME] = {"container_name", AGENT, CW_FK_STR},
    [F_IMAGE] = {"image", AGENT, CW_FK_STR},
    [F_SERVICE_ACCOUNT] = {"service_account", AGENT, CW_FK_STR},
    [F_IN_CONTAINER] = {"in_container", AGENT, CW_FK_BOOL},
    [F_PID] = {"pid", WITH_PID, CW_FK_NUM},
    [F_PPID] = {"ppid", T(PROCESS_EXEC), CW_FK_NUM},
    [F_EXE] = {"exe", WITH_EXE, CW_FK_STR},
    [F_EXE_NAME] = {"exe_name", WITH_EXE, CW_FK_STR},
    [F_ARGV] = {"argv", T(PROCESS_EXEC), CW_FK_STR_LIST},
    [F_CMDLINE] = {"cmdline", T(PROCESS_EXEC), CW_FK_STR},
    [F_CWD] = {"cwd", T(PROCESS_EXEC), CW_FK_STR},
    [F_UID] = {"uid", T(PROCESS_EXEC), CW_FK_NUM},
    [F_USER] = {"user", T(PROCESS_EXEC) | T(LOGIN) | T(K8S_AUDIT), CW_FK_STR},
    [F_PARENT_EXE] = {"parent_exe", T(PROCESS_EXEC), CW_FK_STR},
    [F_PARENT_EXE_NAME] = {"parent_exe_name", T(PROCESS_EXEC), CW_FK_STR},
    [F_PARENT_ARGV] = {"parent_argv", T(PROCESS_EXEC), CW_FK_STR_LIST},
    [F_PARENT_CMDLINE] = {"parent_cmdline", T(PROCESS_EXEC), CW_FK_STR},
    [F_TTY] = {"tty", T(PROCESS_EXEC), CW_FK_BOOL},
    [F_STDIN] = {"stdin", T(PROCESS_EXEC), CW_FK_STR},
    [F_STDOUT] = {"stdout", T(PROCESS_EXEC), CW_FK_STR},
    [F_STDIO_PEER] = {"stdio_peer", T(PROCESS_EXEC), CW_FK_STR},
    [F_STDIO_PEER_IP] = {"stdio_peer_ip", T(PROCESS_EXEC), CW_FK_STR},
    [F_STDIO_PEER_PORT] = {"stdio_peer_port", T(PROCESS_EXEC), CW_FK_NUM},
    [F_SHA256] = {"sha256", T(PROCESS_EXEC), CW_FK_STR},
    [F_EXIT_CODE] = {"exit_code", T(PROCESS_EXIT), CW_FK_NUM},
    [F_PROTO] = {"proto", T(NET_CONNECT) | T(NET_LISTEN), CW_FK_STR},
    [F_DIRECTION] = {"direction", T(NET_CONNECT), CW_FK_STR},
    [F_SRC_IP] = {"src_ip", T(NET_CONNECT) | T(LOGIN), CW_FK_STR},
    [F_SRC_PORT] = {"src_port", T(NET_CONNECT) | T(LOGIN), CW_FK_NUM},
    [F_DST_IP] = {"dst_ip", T(NET_CONNECT), CW_FK_STR},
    [F_DST_PORT] = {"dst_port", T(NET_CONNECT), CW_FK_NUM},
    [F_IP] = {"ip", T(NET_LISTEN), CW_FK_STR},
    [F_PORT] = {"port", T(NET_LISTEN), CW_FK_NUM},
    [F_QUERY] = {"query", T(DNS_QUERY), CW_FK_STR},
    [F_ANSWERS] = {"answers", T(DNS_QUERY), CW_FK_STR_LIST},
    [F_OP] = {"op", T(FILE_OP), CW_FK_STR},
    [F_PATH] = {"path", T(FILE_OP), CW_FK_STR},
    [F_NEW_PATH] = {"new_path", T(FILE_OP), CW_FK_STR},
    [F_SERVICE] = {"service", T(LOGIN), CW_FK_STR},
    [F_METHOD] = {"method", T(LOGIN), CW_FK_STR},
    [F_SUCCESS] = {"success", T(LOGIN), CW_FK_BOOL},
    [F_KEY_FP] = {"key_fingerprint", T(LOGIN), CW_FK_STR},
    [F_NAME] = {"name", T(CONTAINER_START) | T(K8S_AUDIT), CW_FK_STR},
    [F_PRIVILEGED] = {"privileged", T(CONTAINER_START) | T(K8S_AUDIT), CW_FK_BOOL},
    [F_HOST_PID] = {"host_pid", T(CONTAINER_START) | T(K8S_AUDIT), CW_FK_BOOL},
    [F_HOST_NETWORK] = {"host_network", T(CONTAINER_START) | T(K8S_AUDIT), CW_FK_BOOL},
    [F_HOST_IPC] = {"host_ipc", T(CONTAINER_START) | T(K8S_AUDIT), CW_FK_BOOL},
    [F_CAPS_ADD] = {"caps_add", T(CONTAINER_START) | T(K8S_AUDIT), CW_FK_STR_LIST},
    [F_HOST_PATHS] = {"host_paths", T(CONTAINER_START) | T(K8S_AUDIT), CW_FK_STR_LIST},
    [F_WRITABLE_HOST_PATHS] = {"writable_host_paths", T(CONTAINER_START), CW_FK_STR_LIST},
    [F_HOST_PORTS] = {"host_ports", T(CONTAINER_START), CW_FK_NUM_LIST},
    [F_RESTART] = {"restart", T(CONTAINER_START), CW_FK_STR},
    [F_STARTED_BY] = {"started_by", T(CONTAINER_START), CW_FK_STR},
    [F_POD_IP] = {"pod_ip", T(CONTAINER_START), CW_FK_STR},
    [F_GROUPS] = {"groups", T(K8S_AUDIT), CW_FK_STR_LIST},
    [F_VERB] = {"verb", T(K8S_AUDIT), CW_FK_STR},
    [F_RESOURCE] = {"resource", T(K8S_AUDIT), CW_FK_STR},
    [F_SUBRESOURCE] = {"subresource", T(K8S_AUDIT), CW_FK_STR},
    [F_API_GROUP] = {"api_group", T(K8S_AUDIT), CW_FK_STR},
    [F_SOURCE_IP] = {"source_ip", T(K8S_AUDIT), CW_FK_STR},
    [F_USER_AGENT] = {"user_agent", T(K8S_AUDIT), CW_FK_STR},
    [F_DECISION] = {"decision", T(K8S_AUDIT), CW_FK_STR},
    [F_RESPONSE_CODE] = {"response_code", T(K8S_AUDIT), CW_FK_NUM},
    [F_STAGE] = {"stage", T(K8S_AUDIT), CW_FK_STR},
    [F_AUDIT_ID] = {"audit_id", T(K8S_AUDIT), CW_FK_STR},
    [F_REQUEST_URI] = {"request_uri", T(K8S_AUDIT), CW_FK_STR},
    [F_IMAGES] = {"images", T(K8S_AUDIT), CW_FK_STR_LIST},
    [F_ROLE_REF] = {"role_ref", T(K8S_AUDIT), CW_FK_STR},
    [F_ROLE_REF_KIND] = {"role_ref_kind", T(K8S_AUDIT), CW_FK_STR},
    [F_SUBJECTS] = {"subjects", T(K8S_AUDIT), CW_FK_STR_LIST},
    [F_EXEC_COMMAND] = {"exec_command", T(K8S_AUDIT), CW_FK_STR_LIST},
    [F_EXEC_TTY] = {"exec_tty", T(K8S_AUDIT), CW_FK_BOOL},
    [F_ANONYMOUS] = {"anonymous", T(K8S_AUDIT), CW_FK_BOOL},
    [F_OWNER_KIND] = {"owner_kind", T(K8S_AUDIT), CW_FK_STR},
};

int cw_field_lookup(const char *name, enum cw_event_type t, cw_fref *out)
{
    if ((unsigned)t >= CW_EV__COUNT || !name) return -1;
    out->label = NULL;
    if (strncmp(name, "labels.", 7) == 0 && name[7]) {
        out->id = F_LABEL;
        out->label = name + 7;
        return 0;
    }
    for (int i = 0; i < F__COUNT; i++) {
        if (i == F_LABEL || !(table[i].types & (1u << t))) continue;
        if (strcmp(table[i].name, name) == 0) {
            out->id = i;
            return 0;
        }
    }
    return -1;
}

enum cw_fkind cw_field_kind(const cw_fref *f)
{
    return table[f->id].kind;
}

const char *cw_field_name(const cw_fref *f)
{
    return table[f->id].name;
}

int cw_field_is_numeric(const cw_fref *f)
{
    return table[f->id].kind == CW_FK_NUM || table[f->id].kind == CW_FK_NUM_LIST;
}

int cw_field_same(const cw_fref *a, const cw_fref *b)
{
    if (a->id != b->id) return 0;
    if (a->id != F_LABEL) return 1;
    return strcmp(a->label, b->label) == 0;
}

void cw_fvals_init(cw_fvals *fv)
{
    memset(fv, 0, sizeof *fv);
}

void cw_fvals_free(cw_fvals *fv)
{
    free(fv->v);
    free(fv->scratch);
    memset(fv, 0, sizeof *fv);
}

/* ------------------------------------------------------------ building */

static cw_fval *push(cw_fvals *fv)
{
    if (fv->n == fv->cap) {
        size_t nc = fv->cap ? fv->cap * 2 : 16;
        cw_fval *nv = realloc(fv->v, nc * sizeof *nv);
        if (!nv) {
            fv->oom = 1;
            return NULL;
        }
        fv->v = nv;
        fv->cap = nc;
    }
    cw_fval *v = &fv->v[fv->n++];
    memset(v, 0, sizeof *v);
    fv->present = 1;
    return v;
}

static void str(cw_fvals *fv, const char *s)
{
    if (!s) return;
    cw_fval *v = push(fv);
    if (!v) return;
    v->s = s;
    v->len = strlen(s);
}

/* Context strings: "" means unknown, which rules see as absent. */
static void ctx(cw_fvals *fv, const char *s)
{
    if (s && *s) str(fv, s);
}

/* Appends bytes to scratch; returns the offset or SIZE_MAX when over the
 * bound (then nothing is appended). */
static size_t scratch_add(cw_fvals *fv, const char *s, size_t n)
{
    if (fv->slen + n > CW_FIELD_SCRATCH_MAX) return SIZE_MAX;
    if (fv->slen + n > fv->scap) {
        size_t nc = fv->scap ? fv->scap : 256;
        while (nc < fv->slen + n) nc *= 2;
        char *ns = realloc(fv->scratch, nc);
        if (!ns) {
            fv->oom = 1;
            return SIZE_MAX;
        }
        fv->scratch = ns;
        fv->scap = nc;
    }
    size_t off = fv->slen;
    memcpy(fv->scratch + off, s, n);
    fv->slen += n;
    return off;
}

/* A value whose text lives in scratch; resolved to a pointer once all
 * values are in (scratch may move while growing). */
static cw_fval *copied(cw_fvals *fv, const char *s, size_t n)
{
    size_t off = scratch_add(fv, s, n);
    if (off == SIZE_MAX) return NULL;
    cw_fval *v = push(fv);
    if (!v) return NULL;
    v->off = off;
    v->len = n;
    return v;
}

static void num(cw_fvals *fv, int has, int64_t x)
{
    if (!has) return;
    char b[24];
    int n = snprintf(b, sizeof b, "%" PRId64, x);
    cw_fval *v = copied(fv, b, (size_t)n);
    if (!v) return;
    v->num = x;
    v->has_num = 1;
}

static void boolean(cw_fvals *fv, int has, int x)
{
    if (has) str(fv, x ? "true" : "false");
}

static void strs(cw_fvals *fv, size_t n, char **v)
{
    for (size_t i = 0; i < n; i++) str(fv, v[i]);
    if (n == 0) fv->present = 0;
}

/* argv joined by ' ', bounded by the scratch limit (truncated beyond). */
static void joined(cw_fvals *fv, size_t n, char **argv)
{
    if (n == 0) return;
    size_t start = fv->slen, len = 0;
    for (size_t i = 0; i < n; i++) {
        if (!argv[i]) continue;
        size_t l = strlen(argv[i]);
        if (len && scratch_add(fv, " ", 1) != SIZE_MAX) len++;
        if (l > CW_FIELD_SCRATCH_MAX - fv->slen) l = CW_FIELD_SCRATCH_MAX - fv->slen;
        if (scratch_add(fv, argv[i], l) == SIZE_MAX) break;
        len += l;
    }
    cw_fval *v = push(fv);
    if (!v) return;
    v->off = start;
    v->len = len;
}

static const char *base_name(const char *p)
{
    if (!p) return NULL;
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static const char *stdio_name(int has, int kind)
{
    static const char *const names[] = {NULL, "tty", "pipe", "socket", "file", "null"};
    if (!has || kind < 0 || kind >= (int)(sizeof names / sizeof names[0])) return NULL;
    return names[kind];
}

/* "ip:port" or "[v6]:port" -> its parts. */
static void peer(cw_fvals *fv, const char *p, int want_port)
{
    if (!p || !*p) return;
    const char *colon = strrchr(p, ':');
    const char *ip = p, *ipend = colon ? colon : p + strlen(p);
    if (*p == '[') {
        const char *rb = strchr(p, ']');
        if (!rb) return;
        ip = p + 1;
        ipend = rb;
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else if (colon && strchr(p, ':') != colon) {
        colon = NULL; /* bare IPv6 without port */
        ipend = p + strlen(p);
    }
    if (want_port) {
        if (!colon || !colon[1]) return;
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (*end || v < 0 || v > 65535) return;
        num(fv, 1, v);
    } else {
        copied(fv, ip, (size_t)(ipend - ip));
    }
}

static void time_text(cw_fvals *fv, int64_t ns)
{
    time_t t = (time_t)(ns / 1000000000);
    int64_t frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        t--;
    }
    struct tm tm;
    char b[64];
    if (!gmtime_r(&t, &tm)) return;
    int n = snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    cw_fval *v = copied(fv, b, (size_t)n);
    if (v) {
        v->num = ns;
        v->has_num = 1;
    }
}

/* --------------------------------------------------------- audit fields */

static json_t *jget(json_t *o, const char *k)
{
    return json_object_get(o, k); /* NULL-safe */
}

/* The workload's pod spec inside requestObject (see k8s-audit.md 4.3). */
static json_t *workload_spec(const cw_event *ev)
{
    json_t *spec = jget(jget(ev->audit, "requestObject"), "spec");
    if (!json_is_object(spec)) return NULL;
    json_t *t = jget(jget(spec, "template"), "spec");
    if (json_is_object(t)) return t;
    t = jget(jget(jget(jget(spec, "jobTemplate"), "spec"), "template"), "spec");
    if (json_is_object(t)) return t;
    if (jget(spec, "containers") || jget(spec, "volumes") ||
        (ev->k8s.resource && strcmp(ev->k8s.resource, "pods") == 0))
        return spec;
    return NULL;
}

static int jtrue(json_t *j)
{
    return json_is_true(j);
}

static void spec_bool(cw_fvals *fv, const cw_event *ev, const char *key)
{
    json_t *s = workload_spec(ev);
    if (s) boolean(fv, 1, jtrue(jget(s, key)));
}

static const char *const container_lists[] = {"containers", "initContainers",
                                              "ephemeralContainers"};

/* For every container of the workload spec: privileged (mode 0), caps add
 * (mode 1) or images (mode 2). */
static void containers(cw_fvals *fv, const cw_event *ev, int mode)
{
    json_t *s = workload_spec(ev);
    if (!s) return;
    int priv = 0;
    for (size_t l = 0; l < 3; l++) {
        json_t *arr = jget(s, container_lists[l]), *c;
        size_t i;
        if (!json_is_array(arr)) continue;
        json_array_foreach(arr, i, c) {
            json_t *sc = jget(c, "securityContext");
            if (mode == 0) {
                priv |= jtrue(jget(sc, "privileged"));
            } else if (mode == 1) {
                json_t *add = jget(jget(sc, "capabilities"), "add"), *cap;
                size_t k;
                if (json_is_array(add))
                    json_array_foreach(add, k, cap) str(fv, json_string_value(cap));
            } else {
                str(fv, json_string_value(jget(c, "image")));
            }
        }
    }
    if (mode == 0) boolean(fv, 1, priv);
    else fv->present = fv->n > 0;
}

static void host_paths_audit(cw_fvals *fv, const cw_event *ev)
{
    json_t *vols = jget(workload_spec(ev), "volumes"), *v;
    size_t i;
    if (!json_is_array(vols)) return;
    json_array_foreach(vols, i, v) str(fv, json_string_value(jget(jget(v, "hostPath"), "path")));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Query parameters `key` of request_uri, URL-decoded; mode 1 = bool. */
static void uri_param(cw_fvals *fv, const char *uri, const char *key, int as_bool)
{
    const char *q = uri ? strchr(uri, '?') : NULL;
    size_t klen = strlen(key);
    while (q && *q) {
        q++;
        const char *end = strchr(q, '&');
        if (!end) end = q + strlen(q);
        if ((size_t)(end - q) > klen && strncmp(q, key, klen) == 0 && q[klen] == '=') {
            const char *v = q + klen + 1;
            size_t start = fv->slen, len = 0;
            for (const char *p = v; p < end; p++) {
                char c = *p;
                if (c == '+') c = ' ';
                else if (c == '%' && end - p >= 3 && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
                    c = (char)(hexval(p[1]) * 16 + hexval(p[2]));
                    p += 2;
                }
                if (scratch_add(fv, &c, 1) == SIZE_MAX) break;
                len++;
            }
            if (as_bool) {
                fv->slen = start;
                boolean(fv, 1, len == 4 && strncmp(fv->scratch + start, "true", 4) == 0);
                return;
            }
            cw_fval *val = push(fv);
            if (val) {
                val->off = start;
                val->len = len;
            }
        }
        q = *end ? end : NULL;
    }
}

static int anonymous(const cw_event *ev)
{
    if (ev->k8s.user && strcmp(ev->k8s.user, "system:anonymous") == 0) return 1;
    json_t *g;
    size_t i;
    if (ev->k8s.groups)
        json_array_foreach(ev->k8s.groups, i, g) {
            const char *s = json_string_value(g);
            if (s && strcmp(s, "system:unauthenticated") == 0) return 1;
        }
    return 0;
}

static void audit_field(int id, const cw_event *ev, cw_fvals *fv)
{
    const cw_k8s_fields *k = &ev->k8s;
    json_t *ro = jget(ev->audit, "requestObject");
    switch (id) {
    case F_USER: str(fv, k->user); break;
    case F_GROUPS: {
        json_t *g;
        size_t i;
        if (k->groups) json_array_foreach(k->groups, i, g) str(fv, json_string_value(g));
        break;
    }
    case F_VERB: str(fv, k->verb); break;
    case F_RESOURCE: str(fv, k->resource); break;
    case F_SUBRESOURCE: str(fv, k->subresource); break;
    case F_API_GROUP: ctx(fv, k->api_group); break;
    case F_NAME: str(fv, k->name); break;
    case F_SOURCE_IP: str(fv, k->source_ip); break;
    case F_USER_AGENT: str(fv, k->user_agent); break;
    case F_DECISION: str(fv, k->decision); break;
    case F_RESPONSE_CODE: num(fv, k->response_code >= 0, k->response_code); break;
    case F_STAGE: str(fv, k->stage); break;
    case F_AUDIT_ID: str(fv, k->audit_id); break;
    case F_REQUEST_URI: str(fv, k->request_uri); break;
    case F_PRIVILEGED: containers(fv, ev, 0); break;
    case F_HOST_PID: spec_bool(fv, ev, "hostPID"); break;
    case F_HOST_NETWORK: spec_bool(fv, ev, "hostNetwork"); break;
    case F_HOST_IPC: spec_bool(fv, ev, "hostIPC"); break;
    case F_HOST_PATHS: host_paths_audit(fv, ev); break;
    case F_CAPS_ADD: containers(fv, ev, 1); break;
    case F_IMAGES: containers(fv, ev, 2); break;
    case F_ROLE_REF: str(fv, json_string_value(jget(jget(ro, "roleRef"), "name"))); break;
    case F_ROLE_REF_KIND: str(fv, json_string_value(jget(jget(ro, "roleRef"), "kind"))); break;
    case F_SUBJECTS: {
        json_t *s = jget(ro, "subjects"), *x;
        size_t i;
        if (json_is_array(s))
            json_array_foreach(s, i, x) str(fv, json_string_value(jget(x, "name")));
        break;
    }
    case F_EXEC_COMMAND: uri_param(fv, k->request_uri, "command", 0); break;
    case F_EXEC_TTY: uri_param(fv, k->request_uri, "tty", 1); break;
    case F_ANONYMOUS: boolean(fv, 1, anonymous(ev)); break;
    case F_OWNER_KIND: {
        json_t *o = json_array_get(jget(jget(ro, "metadata"), "ownerReferences"), 0);
        const char *kind = json_string_value(jget(o, "kind"));
        str(fv, kind ? kind : "");
        break;
    }
    default: break;
    }
}

/* --------------------------------------------------------- agent fields */

static void agent_pid_exe(int id, const cw_event *ev, cw_fvals *fv)
{
    int has = 0;
    uint32_t pid = 0;
    const char *exe = NULL;
    switch (ev->type) {
    case CW_EV_PROCESS_EXEC:
        has = ev->agent.process_exec->has_pid, pid = ev->agent.process_exec->pid;
        exe = ev->agent.process_exec->exe;
        break;
    case CW_EV_PROCESS_EXIT:
        has = ev->agent.process_exit->has_pid, pid = ev->agent.process_exit->pid;
        break;
    case CW_EV_NET_CONNECT:
        has = ev->agent.net_connect->has_pid, pid = ev->agent.net_connect->pid;
        exe = ev->agent.net_connect->exe;
        break;
    case CW_EV_NET_LISTEN:
        has = ev->agent.net_listen->has_pid, pid = ev->agent.net_listen->pid;
        exe = ev->agent.net_listen->exe;
        break;
    case CW_EV_DNS_QUERY:
        has = ev->agent.dns_query->has_pid, pid = ev->agent.dns_query->pid;
        exe = ev->agent.dns_query->exe;
        break;
    case CW_EV_FILE_OP:
        has = ev->agent.file_op->has_pid, pid = ev->agent.file_op->pid;
        exe = ev->agent.file_op->exe;
        break;
    default: return;
    }
    if (id == F_PID) num(fv, has, pid);
    else if (id == F_EXE) str(fv, exe);
    else str(fv, base_name(exe));
}

static void container_start_field(int id, const Chainwatch__V1__ContainerStart *c, cw_fvals *fv)
{
    switch (id) {
    case F_NAME: case F_CONTAINER_NAME: str(fv, c->name); break;
    case F_IMAGE: str(fv, c->image); break;
    case F_SERVICE_ACCOUNT: str(fv, c->service_account); break;
    case F_PRIVILEGED: boolean(fv, c->has_privileged, c->privileged); break;
    case F_HOST_PID: boolean(fv, c->has_host_pid, c->host_pid); break;
    case F_HOST_NETWORK: boolean(fv, c->has_host_network, c->host_network); break;
    case F_HOST_IPC: boolean(fv, c->has_host_ipc, c->host_ipc); break;
    case F_CAPS_ADD: strs(fv, c->n_caps_add, c->caps_add); break;
    case F_HOST_PATHS: case F_WRITABLE_HOST_PATHS:
        for (size_t i = 0; i < c->n_mounts; i++) {
            const Chainwatch__V1__Mount *m = c->mounts[i];
            if (id == F_WRITABLE_HOST_PATHS && m->has_read_only && m->read_only) continue;
            str(fv, m->host_path);
        }
        break;
    case F_HOST_PORTS:
        for (size_t i = 0; i < c->n_ports; i++)
            num(fv, c->ports[i]->has_host_port, c->ports[i]->host_port);
        break;
    case F_RESTART: str(fv, c->restart); break;
    case F_STARTED_BY: str(fv, c->started_by); break;
    case F_POD_IP: str(fv, c->pod_ip); break;
    default: break;
    }
}

static void agent_field(int id, const cw_event *ev, cw_fvals *fv)
{
    if (id == F_PID || id == F_EXE || id == F_EXE_NAME) {
        agent_pid_exe(id, ev, fv);
        return;
    }
    if (ev->type == CW_EV_CONTAINER_START) {
        container_start_field(id, ev->agent.container_start, fv);
        return;
    }
    if (id == F_CONTAINER_NAME || id == F_IMAGE) {
        const cw_enrich_container *c = ev->container_info;
        if (c) ctx(fv, id == F_IMAGE ? c->image : c->name);
        return;
    }
    if (id == F_SERVICE_ACCOUNT) {
        if (ev->pod_info) ctx(fv, ev->pod_info->service_account);
        return;
    }
    switch (ev->type) {
    case CW_EV_PROCESS_EXEC: {
        const Chainwatch__V1__ProcessExec *p = ev->agent.process_exec;
        switch (id) {
        case F_PPID: num(fv, p->has_ppid, p->ppid); break;
        case F_ARGV: strs(fv, p->n_argv, p->argv); break;
        case F_CMDLINE: joined(fv, p->n_argv, p->argv); break;
        case F_CWD: str(fv, p->cwd); break;
        case F_UID: num(fv, p->has_uid, p->uid); break;
        case F_USER: str(fv, p->user); break;
        case F_PARENT_EXE: str(fv, p->parent_exe); break;
        case F_PARENT_EXE_NAME: str(fv, base_name(p->parent_exe)); break;
        case F_PARENT_ARGV: strs(fv, p->n_parent_argv, p->parent_argv); break;
        case F_PARENT_CMDLINE: joined(fv, p->n_parent_argv, p->parent_argv); break;
        case F_TTY: boolean(fv, p->has_tty, p->tty); break;
        case F_STDIN: str(fv, stdio_name(p->has_stdin, (int)p->stdin)); break;
        case F_STDOUT: str(fv, stdio_name(p->has_stdout, (int)p->stdout)); break;
        case F_STDIO_PEER: str(fv, p->stdio_peer); break;
        case F_STDIO_PEER_IP: peer(fv, p->stdio_peer, 0); break;
        case F_STDIO_PEER_PORT: peer(fv, p->stdio_peer, 1); break;
        case F_SHA256: str(fv, p->sha256); break;
        default: break;
        }
        break;
    }
    case CW_EV_PROCESS_EXIT:
        if (id == F_EXIT_CODE)
            num(fv, ev->agent.process_exit->has_exit_code, ev->agent.process_exit->exit_code);
        break;
    case CW_EV_NET_CONNECT: {
        const Chainwatch__V1__NetConnect *p = ev->agent.net_connect;
        switch (id) {
        case F_PROTO: str(fv, p->proto); break;
        case F_DIRECTION: str(fv, p->direction); break;
        case F_SRC_IP: str(fv, p->src_ip); break;
        case F_SRC_PORT: num(fv, p->has_src_port, p->src_port); break;
        case F_DST_IP: str(fv, p->dst_ip); break;
        case F_DST_PORT: num(fv, p->has_dst_port, p->dst_port); break;
        default: break;
        }
        break;
    }
    case CW_EV_NET_LISTEN: {
        const Chainwatch__V1__NetListen *p = ev->agent.net_listen;
        if (id == F_PROTO) str(fv, p->proto);
        else if (id == F_IP) str(fv, p->ip);
        else if (id == F_PORT) num(fv, p->has_port, p->port);
        break;
    }
    case CW_EV_DNS_QUERY:
        if (id == F_QUERY) str(fv, ev->agent.dns_query->query);
        else if (id == F_ANSWERS)
            strs(fv, ev->agent.dns_query->n_answers, ev->agent.dns_query->answers);
        break;
    case CW_EV_FILE_OP: {
        const Chainwatch__V1__FileOp *p = ev->agent.file_op;
        if (id == F_OP) str(fv, p->op);
        else if (id == F_PATH) str(fv, p->path);
        else if (id == F_NEW_PATH) str(fv, p->new_path);
        break;
    }
    case CW_EV_LOGIN: {
        const Chainwatch__V1__Login *p = ev->agent.login;
        switch (id) {
        case F_USER: str(fv, p->user); break;
        case F_SRC_IP: str(fv, p->src_ip); break;
        case F_SRC_PORT: num(fv, p->has_src_port, p->src_port); break;
        case F_SERVICE: str(fv, p->service); break;
        case F_METHOD: str(fv, p->method); break;
        case F_SUCCESS: boolean(fv, p->has_success, p->success); break;
        case F_KEY_FP: str(fv, p->key_fingerprint); break;
        default: break;
        }
        break;
    }
    default: break;
    }
}

static void common_field(const cw_fref *f, const cw_event *ev, cw_fvals *fv)
{
    switch (f->id) {
    case F_ID: str(fv, ev->id); break;
    case F_TIME: time_text(fv, ev->time_ns); break;
    case F_TYPE:
        if ((unsigned)ev->type < CW_EV__COUNT) str(fv, cw_event_type_names[ev->type]);
        break;
    case F_SOURCE:
        if ((unsigned)ev->source < CW_SRC__COUNT) str(fv, cw_event_source_names[ev->source]);
        break;
    case F_HOST: ctx(fv, ev->host); break;
    case F_AGENT_ID: ctx(fv, ev->agent_id); break;
    case F_CLUSTER: ctx(fv, ev->cluster); break;
    case F_CLOUD: ctx(fv, ev->cloud); break;
    case F_REGION: ctx(fv, ev->region); break;
    case F_NODE: ctx(fv, ev->node); break;
    case F_NAMESPACE: ctx(fv, ev->namespace); break;
    case F_POD: ctx(fv, ev->pod); break;
    case F_POD_UID: ctx(fv, ev->pod_uid); break;
    case F_CONTAINER_ID: ctx(fv, ev->container_id); break;
    case F_OWNER: ctx(fv, ev->owner); break;
    case F_LABEL: str(fv, cw_event_label(ev, f->label)); break;
    case F_IN_CONTAINER: boolean(fv, 1, ev->container_id && *ev->container_id); break;
    default: break;
    }
}

void cw_field_get(const cw_fref *f, const cw_event *ev, cw_fvals *fv)
{
    fv->present = 0;
    fv->n = 0;
    fv->slen = 0;
    fv->oom = 0;
    if (f->id < 0 || f->id >= F__COUNT || (unsigned)ev->type >= CW_EV__COUNT ||
        !(table[f->id].types & (1u << ev->type)))
        return;
    if (f->id <= F_LABEL || f->id == F_IN_CONTAINER) common_field(f, ev, fv);
    else if (ev->type == CW_EV_K8S_AUDIT) audit_field(f->id, ev, fv);
    else if (ev->agent.payload) agent_field(f->id, ev, fv);
    for (size_t i = 0; i < fv->n; i++)
        if (!fv->v[i].s) fv->v[i].s = fv->scratch ? fv->scratch + fv->v[i].off : "";
    if (fv->n == 0) fv->present = 0;
}

void cw_field_first(const cw_fref *f, const cw_event *ev, cw_fvals *fv, char *buf, size_t n)
{
    if (!n) return;
    buf[0] = 0;
    cw_field_get(f, ev, fv);
    if (fv->present && fv->n) {
        size_t l = fv->v[0].len < n - 1 ? fv->v[0].len : n - 1;
        memcpy(buf, fv->v[0].s, l);
        buf[l] = 0;
    }
}
