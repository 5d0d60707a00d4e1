#include "evpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventjson.h"

typedef struct gen {
    uint32_t rng;
    int oom;
} gen;

static uint32_t rnd(gen *g, uint32_t n)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 17;
    g->rng ^= g->rng << 5;
    return n ? g->rng % n : 0;
}

#define PICK(g, arr) ((arr)[rnd((g), sizeof(arr) / sizeof((arr)[0]))])

static char *dup(gen *g, const char *s)
{
    char *d = strdup(s);
    if (!d) g->oom = 1;
    return d;
}

static char *fmt(gen *g, const char *f, unsigned a, unsigned b, unsigned c, unsigned d)
{
    char buf[128];
    snprintf(buf, sizeof buf, f, a, b, c, d);
    return dup(g, buf);
}

/* A NULL-terminated list of strings as a repeated field. */
static char **strv(gen *g, const char *const *src, size_t *n)
{
    size_t k = 0;
    while (src[k]) k++;
    char **v = calloc(k ? k : 1, sizeof *v);
    if (!v) {
        g->oom = 1;
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < k; i++) v[i] = dup(g, src[i]);
    *n = k;
    return v;
}

static void *msg(gen *g, size_t size, void (*init)(void *))
{
    void *m = malloc(size);
    if (!m) {
        g->oom = 1;
        return NULL;
    }
    init(m);
    return m;
}
#define NEW(g, type, init) ((type *)msg((g), sizeof(type), (void (*)(void *))(init)))

/* ------------------------------------------------------------ tables */

#define N_CONTAINERS 24
static const char *const namespaces[] = {"shop", "payments", "default", "monitoring",
                                         "kube-system", "search", "auth"};
static const char *const apps[] = {"checkout", "cart",   "catalog", "frontend", "ledger",
                                   "gateway",  "worker", "indexer", "session",  "redis"};
static const char *const images[] = {
    "registry.corp/shop/checkout:8.1", "registry.corp/shop/cart:3.4",
    "nginx:1.25-alpine",               "redis:7.2",
    "python:3.11-slim",                "registry.corp/payments/ledger:2.0.7",
    "node:20-bookworm-slim",           "eclipse-temurin:17-jre"};

typedef struct proc {
    const char *exe;
    const char *argv[7];
    const char *parent_exe;
    const char *parent_argv[5];
} proc;

static const proc procs[] = {
    {"/usr/bin/python3", {"python3", "/app/worker.py", "--queue", "default", NULL},
     "/usr/local/bin/gunicorn", {"gunicorn", "app:wsgi", "-w", "4", NULL}},
    {"/usr/sbin/nginx", {"nginx", "-g", "daemon off;", NULL},
     "/usr/bin/containerd-shim-runc-v2", {"containerd-shim-runc-v2", "-namespace", "k8s.io", NULL}},
    {"/bin/sh", {"sh", "-c", "ls -la /var/log/app", NULL}, "/usr/bin/java",
     {"java", "-jar", "/app/service.jar", NULL}},
    {"/usr/bin/curl", {"curl", "-sf", "http://127.0.0.1:8080/healthz", NULL}, "/bin/sh",
     {"sh", "-c", "curl -sf http://127.0.0.1:8080/healthz", NULL}},
    {"/usr/local/bin/node", {"node", "--max-old-space-size=512", "server.js", NULL},
     "/usr/bin/tini", {"tini", "--", "node", "server.js", NULL}},
    {"/usr/bin/java", {"java", "-Xmx512m", "-jar", "/app/service.jar", NULL},
     "/usr/bin/containerd-shim-runc-v2", {"containerd-shim-runc-v2", "-namespace", "k8s.io", NULL}},
    {"/bin/ps", {"ps", "aux", NULL}, "/bin/bash", {"bash", NULL}},
    {"/usr/bin/grep", {"grep", "-r", "ERROR", "/var/log/app", NULL}, "/bin/bash", {"bash", NULL}},
    {"/usr/bin/find", {"find", "/tmp", "-mtime", "+7", "-delete", NULL}, "/usr/sbin/cron",
     {"/usr/sbin/cron", "-f", NULL}},
    {"/usr/sbin/logrotate", {"logrotate", "/etc/logrotate.conf", NULL}, "/usr/sbin/cron",
     {"/usr/sbin/cron", "-f", NULL}},
    {"/usr/bin/redis-cli", {"redis-cli", "-h", "redis", "ping", NULL}, "/bin/sh",
     {"sh", "-c", "redis-cli -h redis ping", NULL}},
    {"/usr/bin/pg_isready", {"pg_isready", "-h", "postgres", "-p", "5432", NULL}, "/bin/sh",
     {"sh", "-c", "pg_isready -h postgres -p 5432", NULL}},
    {"/usr/bin/du", {"du", "-sh", "/var/lib/containerd", NULL}, "/usr/bin/node_exporter",
     {"node_exporter", NULL}},
    {"/bin/cat", {"cat", "/etc/os-release", NULL}, "/bin/bash", {"bash", "-l", NULL}},
    {"/usr/bin/git", {"git", "pull", "--ff-only", NULL}, "/bin/bash", {"bash", NULL}},
    {"/usr/bin/kubectl", {"kubectl", "get", "pods", "-n", "shop", "-o", "wide"}, "/bin/bash",
     {"bash", NULL}},
};

static const struct {
    const char *name;
    unsigned uid;
} users[] = {{"root", 0}, {"app", 1000}, {"www-data", 33}, {"nobody", 65534}, {"deploy", 1001}};

static const struct {
    const char *ip;
    unsigned port;
    const char *proto;
} peers[] = {{"10.96.0.10", 53, "udp"},      {"10.96.12.7", 5432, "tcp"},
             {"10.96.3.4", 6379, "tcp"},     {"172.217.3.110", 443, "tcp"},
             {"52.94.236.248", 443, "tcp"},  {"10.244.2.17", 8080, "tcp"},
             {"10.244.5.31", 9090, "tcp"},   {"100.100.2.136", 443, "tcp"},
             {"169.254.169.254", 80, "tcp"}, {"10.0.1.11", 22, "tcp"}};

static const char *const domains[] = {"api.github.com",
                                      "registry-1.docker.io",
                                      "redis.shop.svc.cluster.local",
                                      "postgres.payments.svc.cluster.local",
                                      "s3.us-east-1.amazonaws.com",
                                      "oss-cn-hangzhou.aliyuncs.com",
                                      "kubernetes.default.svc",
                                      "pypi.org",
                                      "cdn.jsdelivr.net",
                                      "auth.corp.example"};

static const struct {
    const char *op, *path, *new_path;
} files[] = {{"read", "/etc/passwd", NULL},
             {"read", "/etc/ssl/certs/ca-certificates.crt", NULL},
             {"read", "/app/config/settings.yaml", NULL},
             {"write", "/var/log/app/app.log", NULL},
             {"write", "/var/lib/redis/dump.rdb", NULL},
             {"create", "/tmp/tmp8c1f2a.json", NULL},
             {"delete", "/tmp/tmp8c1f2a.json", NULL},
             {"rename", "/var/log/app/app.log", "/var/log/app/app.log.1"},
             {"chmod", "/app/bin/entrypoint.sh", NULL},
             {"read", "/proc/self/status", NULL}};

/* ------------------------------------------------------------ builders */

/* 64 hex digits, stable per index: container ids and executable hashes. */
static char *hex64(gen *g, unsigned i)
{
    char id[65];
    uint32_t h = 0x811c9dc5u ^ (i * 2654435761u);
    for (int k = 0; k < 64; k++) {
        h = (h ^ (uint32_t)k) * 16777619u;
        id[k] = "0123456789abcdef"[(h >> 7) & 15];
    }
    id[64] = 0;
    return dup(g, id);
}

static void exec_event(gen *g, Chainwatch__V1__Event *e)
{
    Chainwatch__V1__ProcessExec *m =
        NEW(g, Chainwatch__V1__ProcessExec, chainwatch__v1__process_exec__init);
    if (!m) return;
    e->payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC;
    e->process_exec = m;
    const proc *p = &PICK(g, procs);
    m->has_pid = m->has_ppid = m->has_uid = 1;
    m->pid = 1000 + rnd(g, 60000);
    m->ppid = 1 + rnd(g, 5000);
    m->exe = dup(g, p->exe);
    m->argv = strv(g, p->argv, &m->n_argv);
    m->cwd = dup(g, rnd(g, 2) ? "/app" : "/");
    unsigned u = rnd(g, sizeof users / sizeof users[0]);
    m->uid = users[u].uid;
    m->user = dup(g, users[u].name);
    if (rnd(g, 10) < 7) m->container_id = hex64(g, rnd(g, N_CONTAINERS));
    m->parent_exe = dup(g, p->parent_exe);
    m->parent_argv = strv(g, p->parent_argv, &m->n_parent_argv);
    m->has_stdin = m->has_stdout = 1;
    m->stdin = CHAINWATCH__V1__STDIO_KIND__STDIO_NULL;
    m->stdout = CHAINWATCH__V1__STDIO_KIND__STDIO_PIPE;
    if (rnd(g, 4) == 0) m->sha256 = hex64(g, 1000 + rnd(g, 100000));
}

static void net_event(gen *g, Chainwatch__V1__Event *e)
{
    Chainwatch__V1__NetConnect *m =
        NEW(g, Chainwatch__V1__NetConnect, chainwatch__v1__net_connect__init);
    if (!m) return;
    e->payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT;
    e->net_connect = m;
    unsigned pi = rnd(g, sizeof peers / sizeof peers[0]);
    m->has_pid = m->has_src_port = m->has_dst_port = 1;
    m->pid = 1000 + rnd(g, 60000);
    m->exe = dup(g, PICK(g, procs).exe);
    if (rnd(g, 10) < 7) m->container_id = hex64(g, rnd(g, N_CONTAINERS));
    m->proto = dup(g, peers[pi].proto);
    int in = rnd(g, 5) == 0;
    m->direction = dup(g, in ? "in" : "out");
    m->src_ip = fmt(g, "10.244.%u.%u", rnd(g, 8), 2 + rnd(g, 250), 0, 0);
    m->src_port = 32768 + rnd(g, 28000);
    m->dst_ip = dup(g, peers[pi].ip);
    m->dst_port = peers[pi].port;
}

static void dns_event(gen *g, Chainwatch__V1__Event *e)
{
    Chainwatch__V1__DnsQuery *m = NEW(g, Chainwatch__V1__DnsQuery, chainwatch__v1__dns_query__init);
    if (!m) return;
    e->payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_DNS_QUERY;
    e->dns_query = m;
    m->has_pid = 1;
    m->pid = 1000 + rnd(g, 60000);
    m->exe = dup(g, PICK(g, procs).exe);
    if (rnd(g, 10) < 7) m->container_id = hex64(g, rnd(g, N_CONTAINERS));
    m->query = dup(g, PICK(g, domains));
    unsigned n = 1 + rnd(g, 3);
    m->answers = calloc(n, sizeof *m->answers);
    if (!m->answers) {
        g->oom = 1;
        return;
    }
    m->n_answers = n;
    for (unsigned i = 0; i < n; i++)
        m->answers[i] = fmt(g, "%u.%u.%u.%u", 13 + rnd(g, 190), rnd(g, 256), rnd(g, 256),
                            1 + rnd(g, 254));
}

static void file_event(gen *g, Chainwatch__V1__Event *e)
{
    Chainwatch__V1__FileOp *m = NEW(g, Chainwatch__V1__FileOp, chainwatch__v1__file_op__init);
    if (!m) return;
    e->payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP;
    e->file_op = m;
    unsigned fi = rnd(g, sizeof files / sizeof files[0]);
    m->has_pid = 1;
    m->pid = 1000 + rnd(g, 60000);
    m->exe = dup(g, PICK(g, procs).exe);
    if (rnd(g, 10) < 7) m->container_id = hex64(g, rnd(g, N_CONTAINERS));
    m->op = dup(g, files[fi].op);
    m->path = dup(g, files[fi].path);
    if (files[fi].new_path) m->new_path = dup(g, files[fi].new_path);
}

static void exit_event(gen *g, Chainwatch__V1__Event *e)
{
    Chainwatch__V1__ProcessExit *m =
        NEW(g, Chainwatch__V1__ProcessExit, chainwatch__v1__process_exit__init);
    if (!m) return;
    e->payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXIT;
    e->process_exit = m;
    m->has_pid = m->has_exit_code = 1;
    m->pid = 1000 + rnd(g, 60000);
    m->exit_code = rnd(g, 8) == 0 ? 1 : 0;
    if (rnd(g, 10) < 7) m->container_id = hex64(g, rnd(g, N_CONTAINERS));
}

static void listen_event(gen *g, Chainwatch__V1__Event *e)
{
    static const unsigned ports[] = {8080, 9090, 6379, 5432, 3000, 8443};
    Chainwatch__V1__NetListen *m =
        NEW(g, Chainwatch__V1__NetListen, chainwatch__v1__net_listen__init);
    if (!m) return;
    e->payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_NET_LISTEN;
    e->net_listen = m;
    m->has_pid = m->has_port = 1;
    m->pid = 1000 + rnd(g, 60000);
    m->exe = dup(g, PICK(g, procs).exe);
    m->container_id = hex64(g, rnd(g, N_CONTAINERS));
    m->proto = dup(g, "tcp");
    m->ip = dup(g, "0.0.0.0");
    m->port = PICK(g, ports);
}

static void login_event(gen *g, Chainwatch__V1__Event *e)
{
    Chainwatch__V1__Login *m = NEW(g, Chainwatch__V1__Login, chainwatch__v1__login__init);
    if (!m) return;
    e->payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN;
    e->login = m;
    int ok = rnd(g, 4) != 0;
    m->user = dup(g, ok ? "deploy" : (rnd(g, 2) ? "root" : "admin"));
    m->src_ip = ok ? fmt(g, "10.0.%u.%u", rnd(g, 4), 2 + rnd(g, 250), 0, 0)
                   : fmt(g, "203.0.113.%u", 1 + rnd(g, 254), 0, 0, 0);
    m->has_src_port = m->has_success = 1;
    m->src_port = 32768 + rnd(g, 28000);
    m->service = dup(g, "sshd");
    m->method = dup(g, ok ? "publickey" : "password");
    m->success = ok;
    if (ok) m->key_fingerprint = dup(g, "SHA256:Qx1mIw4cd1Rr3bNq0yq2b8s2pQm1e7gJm3mD2N0hE4A");
}

static void container_event(gen *g, Chainwatch__V1__Event *e)
{
    Chainwatch__V1__ContainerStart *m =
        NEW(g, Chainwatch__V1__ContainerStart, chainwatch__v1__container_start__init);
    if (!m) return;
    e->payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START;
    e->container_start = m;
    unsigned ci = rnd(g, N_CONTAINERS), a = ci % (sizeof apps / sizeof apps[0]);
    m->container_id = hex64(g, ci);
    m->name = dup(g, apps[a]);
    m->image = dup(g, images[ci % (sizeof images / sizeof images[0])]);
    m->pod_uid = fmt(g, "%08x-5f9b-4e0d-9ef5-%08x", ci * 2654435761u, ci * 40503u, 0, 0);
    char pod[64];
    snprintf(pod, sizeof pod, "%s-6f7c9-%05u", apps[a], ci);
    m->pod = dup(g, pod);
    m->namespace_ = dup(g, namespaces[ci % (sizeof namespaces / sizeof namespaces[0])]);
    m->labels = calloc(2, sizeof *m->labels);
    if (!m->labels) {
        g->oom = 1;
        return;
    }
    const char *kv[2][2] = {{"app", apps[a]}, {"team", "platform"}};
    for (int i = 0; i < 2; i++) {
        Chainwatch__V1__Label *l = NEW(g, Chainwatch__V1__Label, chainwatch__v1__label__init);
        if (!l) return;
        m->labels[m->n_labels++] = l;
        l->key = dup(g, kv[i][0]);
        l->value = dup(g, kv[i][1]);
    }
    m->has_privileged = m->has_host_pid = m->has_host_network = m->has_host_ipc = 1;
    m->started_by = dup(g, "kubelet");
    m->restart = dup(g, "always");
    m->pod_ip = fmt(g, "10.244.%u.%u", rnd(g, 8), 2 + rnd(g, 250), 0, 0);
    m->service_account = dup(g, apps[a]);
}

static void stop_event(gen *g, Chainwatch__V1__Event *e)
{
    Chainwatch__V1__ContainerStop *m =
        NEW(g, Chainwatch__V1__ContainerStop, chainwatch__v1__container_stop__init);
    if (!m) return;
    e->payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_STOP;
    e->container_stop = m;
    m->container_id = hex64(g, rnd(g, N_CONTAINERS));
}

int sim_evpool_build(sim_evpool *p, size_t n, uint32_t seed)
{
    /* Mix, in percent: exec 45, net 18, dns 12, file 12, exit 6, listen 2,
     * login 2, container start 2, container stop 1. */
    static const struct {
        unsigned upto;
        void (*make)(gen *, Chainwatch__V1__Event *);
    } mix[] = {{45, exec_event},  {63, net_event},    {75, dns_event},
               {87, file_event},  {93, exit_event},   {95, listen_event},
               {97, login_event}, {99, container_event}, {100, stop_event}};
    memset(p, 0, sizeof *p);
    p->events = calloc(n, sizeof *p->events);
    if (!p->events) return -1;
    gen g = {seed ? seed : 1, 0};
    for (size_t i = 0; i < n && !g.oom; i++) {
        Chainwatch__V1__Event *e = NEW(&g, Chainwatch__V1__Event, chainwatch__v1__event__init);
        if (!e) break;
        p->events[p->n++] = e;
        e->has_time_ns = 1;
        unsigned r = rnd(&g, 100);
        for (size_t k = 0; k < sizeof mix / sizeof mix[0]; k++)
            if (r < mix[k].upto) {
                mix[k].make(&g, e);
                break;
            }
    }
    if (g.oom) {
        sim_evpool_free(p);
        return -1;
    }
    return 0;
}

void sim_evpool_take(sim_evpool *p, Chainwatch__V1__Event **out, size_t k, int64_t t0)
{
    for (size_t i = 0; i < k; i++) {
        Chainwatch__V1__Event *e = p->events[p->next];
        if (++p->next == p->n) p->next = 0;
        e->time_ns = t0 + (int64_t)i;
        out[i] = e;
    }
}

void sim_evpool_free(sim_evpool *p)
{
    for (size_t i = 0; i < p->n; i++) sim_event_free(p->events[i]);
    free(p->events);
    memset(p, 0, sizeof *p);
}
