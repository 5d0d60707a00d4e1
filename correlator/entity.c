#include "correlator/entity.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Bytes of one argument scanned for addresses and URLs: a command line can
 * be megabytes (an agent decides), a link key only needs the start. */
#define ARG_SCAN_MAX 4096
#define ARGS_SCAN_MAX 64
#define DOMAIN_MAX 253

void cw_entity_keys_init(cw_entity_keys *ks)
{
    ks->n = 0;
    ks->used = 0;
}

void cw_entity_keys_add(cw_entity_keys *ks, const char *key)
{
    if (!key || !key[0] || ks->n >= CW_ENTITY_MAX_KEYS) return;
    size_t len = strnlen(key, CW_ENTITY_KEY_MAX);
    for (size_t i = 0; i < ks->n; i++)
        if (strncmp(ks->k[i], key, len) == 0 && ks->k[i][len] == 0) return;
    if (ks->used + len + 1 > sizeof ks->buf) return;
    char *dst = ks->buf + ks->used;
    memcpy(dst, key, len);
    dst[len] = 0;
    ks->used += len + 1;
    ks->k[ks->n++] = dst;
}

static void addf(cw_entity_keys *ks, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(cw_entity_keys *ks, const char *fmt, ...)
{
    char key[CW_ENTITY_KEY_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    cw_entity_keys_add(ks, key);
}

static int empty(const char *s) { return !s || !s[0]; }

enum cw_ip_class cw_entity_ip_class(const char *ip)
{
    if (empty(ip)) return CW_IP_INVALID;
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1) {
        uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
        if (a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224) return CW_IP_PRIVATE;
        if ((v & 0xffc00000u) == 0x64400000u) return CW_IP_PRIVATE; /* 100.64/10 */
        if ((v & 0xffff0000u) == 0xa9fe0000u) return CW_IP_PRIVATE; /* 169.254/16 */
        if ((v & 0xfff00000u) == 0xac100000u) return CW_IP_PRIVATE; /* 172.16/12 */
        if ((v & 0xffff0000u) == 0xc0a80000u) return CW_IP_PRIVATE; /* 192.168/16 */
        return CW_IP_PUBLIC;
    }
    if (inet_pton(AF_INET6, ip, a) == 1) {
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, 12) == 0) {
            char v4[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, a + 12, v4, sizeof v4);
            return cw_entity_ip_class(v4);
        }
        int zero = 1;
        for (int i = 0; i < 15; i++) zero &= a[i] == 0;
        if (zero) return CW_IP_PRIVATE;                             /* :: and ::1 */
        if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return CW_IP_PRIVATE; /* fe80::/10 */
        if ((a[0] & 0xfe) == 0xfc || a[0] == 0xff) return CW_IP_PRIVATE; /* ULA, multicast */
        return CW_IP_PUBLIC;
    }
    return CW_IP_INVALID;
}

/* The scope part of a Pod/workload key: the cluster, or for a container
 * runtime with Pods but no cluster name, the host. */
static void scope_of(const cw_event *ev, char *out, size_t size)
{
    if (ev->cluster[0]) snprintf(out, size, "%s", ev->cluster);
    else snprintf(out, size, "agent:%s", ev->agent_id);
}

static void add_pod(cw_entity_keys *ks, const char *scope, const char *ns, const char *name)
{
    if (!empty(ns) && !empty(name)) addf(ks, "p|%s|%s|%s", scope, ns, name);
}

static void add_sa(cw_entity_keys *ks, const char *scope, const char *ns, const char *sa)
{
    /* kube-system accounts belong to controllers acting for everyone. */
    if (empty(ns) || empty(sa) || strcmp(ns, "kube-system") == 0) return;
    addf(ks, "s|%s|%s|%s", scope, ns, sa);
}

/* A controller name with its generated suffix removed: ReplicaSet
 * "web-5d8c7f9b" -> Deployment "web", Job "backup-28391220" -> CronJob
 * "backup". Returns 0 when there is nothing to strip. */
static int strip_suffix(const char *name, char *out, size_t size)
{
    const char *dash = strrchr(name, '-');
    if (!dash || dash == name || !dash[1]) return 0;
    size_t len = (size_t)(dash - name);
    if (len >= size) return 0;
    memcpy(out, name, len);
    out[len] = 0;
    return 1;
}

static void add_pod_context(cw_entity_keys *ks, const char *scope, const cw_enrich_pod *p)
{
    if (!p) return;
    add_pod(ks, scope, p->namespace, p->name);
    add_sa(ks, scope, p->namespace, p->service_account);
    if (empty(p->controller_name) || empty(p->namespace)) return;
    addf(ks, "w|%s|%s|%s", scope, p->namespace, p->controller_name);
    char base[256];
    if ((strcmp(p->controller_kind, "ReplicaSet") == 0 || strcmp(p->controller_kind, "Job") == 0) &&
        strip_suffix(p->controller_name, base, sizeof base))
        addf(ks, "w|%s|%s|%s", scope, p->namespace, base);
}

/* Resolves an address the event talked to (or came from). allow_host: a
 * monitored host's address links to that host; off for audit sources, where
 * a node address is every kubelet's and host-network Pod's. */
static void add_ip(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *ks, const char *ip,
                   int allow_host)
{
    enum cw_ip_class cls = cw_entity_ip_class(ip);
    if (cls == CW_IP_INVALID) return;
    const char *agent = c->agent_by_ip ? c->agent_by_ip(c->ud, ip) : NULL;
    if (agent) {
        if (allow_host && strcmp(agent, ev->agent_id) != 0) addf(ks, "h|%s", agent);
        return;
    }
    if (c->enrich && ev->cluster[0]) {
        const cw_enrich_pod *p = cw_enrich_pod_by_ip(c->enrich, ev->cluster, ip);
        if (p) {
            add_pod(ks, ev->cluster, p->namespace, p->name);
            return;
        }
    }
    if (cls == CW_IP_PUBLIC) addf(ks, "i|%s", ip);
}

static void add_domain(cw_entity_keys *ks, const char *d, size_t len)
{
    while (len && d[len - 1] == '.') len--;
    if (len == 0 || len > DOMAIN_MAX || !memchr(d, '.', len)) return;
    char low[DOMAIN_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_') return;
        low[i] = (char)tolower(ch);
    }
    low[len] = 0;
    /* An address written as a host name is handled as an address. */
    if (cw_entity_ip_class(low) != CW_IP_INVALID) return;
    addf(ks, "d|%s", low);
}

/* URL hosts ("scheme://[user@]host[:port]/...") in one argument. */
static void scan_urls(cw_entity_keys *ks, const char *s, size_t len)
{
    const char *end = s + len, *p = s;
    while (p < end) {
        const char *m = memmem(p, (size_t)(end - p), "://", 3);
        if (!m) return;
        const char *h = m + 3, *e = h;
        while (e < end && !strchr("/?#: \t'\"|;&)", *e)) e++;
        const char *at = memchr(h, '@', (size_t)(e - h));
        if (at) h = at + 1;
        add_domain(ks, h, (size_t)(e - h));
        p = e;
    }
}

/* Dotted-quad IPv4 addresses in one argument ("root@10.0.1.12",
 * "stratum+tcp://198.51.100.77:14444"). Returns how many were added. */
static int scan_ips(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *ks, const char *s,
                    size_t len, int budget)
{
    int found = 0;
    for (size_t i = 0; i < len && found < budget; i++) {
        if (!isdigit((unsigned char)s[i]) || (i > 0 && (isdigit((unsigned char)s[i - 1]) ||
                                                        s[i - 1] == '.')))
            continue;
        size_t j = i;
        while (j < len && j - i < 16 && (isdigit((unsigned char)s[j]) || s[j] == '.')) j++;
        char ip[17];
        size_t n = j - i;
        if (n < 7 || n > 15) continue;
        memcpy(ip, s + i, n);
        ip[n] = 0;
        if (ip[n - 1] == '.') ip[--n] = 0;
        struct in_addr a;
        if (inet_pton(AF_INET, ip, &a) != 1) continue;
        add_ip(c, ev, ks, ip, 1);
        found++;
        i = j;
    }
    return found;
}

static void scan_argv(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *ks,
                      char **argv, size_t argc)
{
    int budget = CW_ENTITY_MAX_ARGV_IPS;
    for (size_t i = 0; i < argc && i < ARGS_SCAN_MAX; i++) {
        if (!argv[i]) continue;
        size_t len = strnlen(argv[i], ARG_SCAN_MAX);
        scan_urls(ks, argv[i], len);
        if (budget > 0) budget -= scan_ips(c, ev, ks, argv[i], len, budget);
    }
}

/* "ip:port" or "[v6]:port" -> ip. */
static void add_peer(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *ks,
                     const char *peer)
{
    if (empty(peer)) return;
    char ip[64];
    const char *s = peer, *e;
    if (*s == '[') {
        s++;
        e = strchr(s, ']');
    } else {
        e = strrchr(s, ':');
    }
    if (!e) e = s + strlen(s);
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof ip) return;
    memcpy(ip, s, n);
    ip[n] = 0;
    add_ip(c, ev, ks, ip, 1);
}

static void agent_keys(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *ks)
{
    char scope[300];
    scope_of(ev, scope, sizeof scope);
    if (ev->agent_id[0]) addf(ks, "h|%s", ev->agent_id);
    if (ev->container_id[0]) addf(ks, "c|%s|%s", ev->agent_id, ev->container_id);
    add_pod(ks, scope, ev->namespace, ev->pod);
    add_pod_context(ks, scope, ev->pod_info);
    switch (ev->type) {
    case CW_EV_PROCESS_EXEC: {
        const Chainwatch__V1__ProcessExec *x = ev->agent.process_exec;
        scan_argv(c, ev, ks, x->argv, x->n_argv);
        add_peer(c, ev, ks, x->stdio_peer);
        if (!empty(x->sha256)) addf(ks, "x|%s", x->sha256);
        break;
    }
    case CW_EV_NET_CONNECT: {
        const Chainwatch__V1__NetConnect *x = ev->agent.net_connect;
        if (x->dst_port == 53 || x->src_port == 53) break; /* DNS servers link everyone */
        int in = x->direction && strcmp(x->direction, "in") == 0;
        add_ip(c, ev, ks, in ? x->src_ip : x->dst_ip, 1);
        break;
    }
    case CW_EV_DNS_QUERY: {
        const Chainwatch__V1__DnsQuery *x = ev->agent.dns_query;
        if (x->query) add_domain(ks, x->query, strnlen(x->query, DOMAIN_MAX + 2));
        for (size_t i = 0; i < x->n_answers && i < CW_ENTITY_MAX_ARGV_IPS; i++)
            add_ip(c, ev, ks, x->answers[i], 1);
        break;
    }
    case CW_EV_LOGIN: {
        const Chainwatch__V1__Login *x = ev->agent.login;
        add_ip(c, ev, ks, x->src_ip, 1);
        if (!empty(x->key_fingerprint)) addf(ks, "k|%s", x->key_fingerprint);
        break;
    }
    case CW_EV_CONTAINER_START: {
        const Chainwatch__V1__ContainerStart *x = ev->agent.container_start;
        add_sa(ks, scope, x->namespace_, x->service_account);
        break;
    }
    default:
        break;
    }
}

static int is_workload(const char *r)
{
    static const char *const kinds[] = {"deployments", "replicasets", "statefulsets",
                                        "daemonsets",  "jobs",        "cronjobs",
                                        "replicationcontrollers"};
    if (empty(r)) return 0;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(r, kinds[i]) == 0) return 1;
    return 0;
}

/* Who made an audit request: the identity and where it came from. */
static void audit_actor_keys(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *ks)
{
    const char *u = ev->k8s.user;
    static const char sa_prefix[] = "system:serviceaccount:";
    if (!empty(u)) {
        if (strncmp(u, sa_prefix, sizeof sa_prefix - 1) == 0) {
            const char *ns = u + sizeof sa_prefix - 1, *colon = strchr(ns, ':');
            if (colon && colon > ns && (size_t)(colon - ns) < 254) {
                char nsb[254];
                memcpy(nsb, ns, (size_t)(colon - ns));
                nsb[colon - ns] = 0;
                add_sa(ks, ev->cluster, nsb, colon + 1);
            }
        } else if (strncmp(u, "system:", 7) != 0 || strcmp(u, "system:anonymous") == 0) {
            addf(ks, "u|%s|%s", ev->cluster, u);
        }
    }
    add_ip(c, ev, ks, ev->k8s.source_ip, 0);
}

/* What an audit request was about: a Pod or a workload. */
static void audit_target_keys(const cw_event *ev, cw_entity_keys *ks)
{
    const char *ns = ev->k8s.obj_namespace, *name = ev->k8s.name;
    if (!empty(ev->k8s.resource) && strcmp(ev->k8s.resource, "pods") == 0) {
        add_pod(ks, ev->cluster, ev->namespace, ev->pod);
        add_pod_context(ks, ev->cluster, ev->pod_info);
    } else if (is_workload(ev->k8s.resource) && !empty(ns) && !empty(name)) {
        addf(ks, "w|%s|%s|%s", ev->cluster, ns, name);
    }
}

void cw_entity_keys_of(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *out)
{
    cw_entity_keys_init(out);
    if (ev->type == CW_EV_K8S_AUDIT) {
        if (!ev->cluster[0]) return;
        audit_actor_keys(c, ev, out);
        audit_target_keys(ev, out);
    } else {
        agent_keys(c, ev, out);
    }
}

static int is_write_verb(const char *v)
{
    return !empty(v) && (strcmp(v, "create") == 0 || strcmp(v, "update") == 0 ||
                         strcmp(v, "patch") == 0);
}

int cw_entity_relation(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *actors,
                       cw_entity_keys *targets)
{
    cw_entity_keys_init(actors);
    cw_entity_keys_init(targets);
    if (ev->type == CW_EV_K8S_AUDIT) {
        const cw_k8s_fields *k = &ev->k8s;
        if (!ev->cluster[0] || empty(k->resource)) return 0;
        if (k->response_code >= 400) return 0; /* refused: nothing was touched */
        int pod = strcmp(k->resource, "pods") == 0;
        int into = pod && !empty(k->subresource) &&
                   (strcmp(k->subresource, "exec") == 0 || strcmp(k->subresource, "attach") == 0 ||
                    strcmp(k->subresource, "portforward") == 0 ||
                    strcmp(k->subresource, "ephemeralcontainers") == 0);
        int write = is_write_verb(k->verb) && empty(k->subresource) &&
                    (pod || is_workload(k->resource));
        if (!into && !write) return 0;
        audit_actor_keys(c, ev, actors);
        audit_target_keys(ev, targets);
        return actors->n && targets->n;
    }
    if (ev->type == CW_EV_LOGIN) {
        const Chainwatch__V1__Login *x = ev->agent.login;
        if (!x->success || !ev->agent_id[0] || !c->agent_by_ip || empty(x->src_ip)) return 0;
        const char *from = c->agent_by_ip(c->ud, x->src_ip);
        if (!from || strcmp(from, ev->agent_id) == 0) return 0;
        addf(actors, "h|%s", from);
        addf(targets, "h|%s", ev->agent_id);
        return 1;
    }
    return 0;
}
