/* Unit tests: enrichment of events with agent, container and pod context. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "correlator/enrich.h"

#define SEC 1000000000LL

static void hello(cw_enrich *e, const char *agent_id, const char *host, const char *cluster)
{
    Chainwatch__V1__Hello h = CHAINWATCH__V1__HELLO__INIT;
    char *ips[] = {"10.2.0.21"};
    h.agent_id = (char *)agent_id;
    h.hostname = (char *)host;
    h.cloud = "tencent";
    h.region = "ap-shanghai";
    h.cluster = (char *)cluster;
    h.n_ip_addresses = 1;
    h.ip_addresses = ips;
    cw_enrich_hello(e, agent_id, &h);
}

/* A container_start event, normalized and enriched. labels: "k=v" strings. */
static void container_start(cw_enrich *e, const char *agent, const char *cid, const char *pod_uid,
                            const char *pod, const char *ns, const char *const *labels,
                            int64_t t, cw_event *ev)
{
    Chainwatch__V1__ContainerStart cs = CHAINWATCH__V1__CONTAINER_START__INIT;
    Chainwatch__V1__Label lab[8], *labp[8];
    char kbuf[8][64];
    size_t n = 0;
    for (; labels && labels[n]; n++) {
        chainwatch__v1__label__init(&lab[n]);
        snprintf(kbuf[n], sizeof kbuf[n], "%s", labels[n]);
        char *eq = strchr(kbuf[n], '=');
        *eq = 0;
        lab[n].key = kbuf[n];
        lab[n].value = eq + 1;
        labp[n] = &lab[n];
    }
    cs.container_id = (char *)cid;
    cs.name = "app";
    cs.image = "registry/app:1";
    cs.pod_uid = (char *)pod_uid;
    cs.pod = (char *)pod;
    cs.namespace_ = (char *)ns;
    cs.n_labels = n;
    cs.labels = labp;
    cs.service_account = "app-sa";
    cs.pod_ip = "10.244.3.15";
    Chainwatch__V1__Event pb = CHAINWATCH__V1__EVENT__INIT;
    pb.has_time_ns = 1;
    pb.time_ns = t;
    pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START;
    pb.container_start = &cs;
    assert_int_equal(cw_event_from_agent(ev, agent, 1, 0, &pb, 0), 0);
    cw_enrich_agent_event(e, ev);
}

/* Enriches a process_exec (or container_stop if stop) in container cid. */
static void agent_event(cw_enrich *e, const char *agent, const char *cid, int64_t t, int stop,
                        cw_event *ev)
{
    static Chainwatch__V1__ProcessExec p;
    static Chainwatch__V1__ContainerStop s;
    static Chainwatch__V1__Event pb;
    chainwatch__v1__process_exec__init(&p);
    chainwatch__v1__container_stop__init(&s);
    chainwatch__v1__event__init(&pb);
    p.exe = "/bin/sh";
    p.container_id = (char *)cid;
    s.container_id = (char *)cid;
    pb.has_time_ns = 1;
    pb.time_ns = t;
    if (stop) {
        pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_STOP;
        pb.container_stop = &s;
    } else {
        pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC;
        pb.process_exec = &p;
    }
    assert_int_equal(cw_event_from_agent(ev, agent, 2, 0, &pb, 0), 0);
    cw_enrich_agent_event(e, ev);
}

static void exec_in_container_gets_pod_and_host_context(void **state)
{
    (void)state;
    cw_enrich *e;
    cw_enrich_opts o = {.owner_labels = "owner, team"};
    assert_int_equal(cw_enrich_create(&e, &o), 0);
    hello(e, "ag-1", "node-1", "prod-sh");
    cw_event ev;
    static const char *const labels[] = {"app=checkout", "team=trade", NULL};
    container_start(e, "ag-1", "ce37", "uid-1", "checkout-abc", "shop", labels, 10 * SEC, &ev);
    /* The container_start itself already carries its pod. */
    assert_string_equal(ev.pod, "checkout-abc");
    assert_string_equal(ev.owner, "trade");

    agent_event(e, "ag-1", "ce37", 11 * SEC, 0, &ev);
    assert_string_equal(ev.host, "node-1");
    assert_string_equal(ev.node, "node-1"); /* node_name defaults to the hostname */
    assert_string_equal(ev.cluster, "prod-sh");
    assert_string_equal(ev.cloud, "tencent");
    assert_string_equal(ev.region, "ap-shanghai");
    assert_string_equal(ev.agent_id, "ag-1");
    assert_string_equal(ev.container_id, "ce37");
    assert_string_equal(ev.namespace, "shop");
    assert_string_equal(ev.pod, "checkout-abc");
    assert_string_equal(ev.pod_uid, "uid-1");
    assert_int_equal(ev.n_labels, 2);
    assert_string_equal(cw_event_label(&ev, "app"), "checkout");
    assert_string_equal(ev.owner, "trade");
    assert_non_null(ev.container_info);
    assert_string_equal(ev.container_info->image, "registry/app:1");
    assert_string_equal(ev.pod_info->service_account, "app-sa");

    /* The JSON carries the context. */
    cw_buf b;
    cw_buf_init(&b, 0);
    assert_int_equal(cw_event_to_json(&ev, &b), 0);
    json_t *j = json_loadb((const char *)b.data, b.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "owner")), "trade");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "labels"), "team")), "trade");
    assert_string_equal(json_string_value(json_object_get(j, "namespace")), "shop");
    json_decref(j);
    cw_buf_free(&b);

    /* The first owner label present wins. */
    static const char *const labels2[] = {"team=trade", "owner=alice", NULL};
    container_start(e, "ag-1", "c2", "uid-2", "p2", "shop", labels2, 12 * SEC, &ev);
    agent_event(e, "ag-1", "c2", 12 * SEC, 0, &ev);
    assert_string_equal(ev.owner, "alice");

    /* A host process: host context only. */
    agent_event(e, "ag-1", "", 13 * SEC, 0, &ev);
    assert_string_equal(ev.host, "node-1");
    assert_string_equal(ev.pod, "");
    assert_string_equal(ev.owner, "");

    /* Unknown container: id kept, pod fields empty. */
    agent_event(e, "ag-1", "nope", 13 * SEC, 0, &ev);
    assert_string_equal(ev.container_id, "nope");
    assert_string_equal(ev.pod, "");
    assert_string_equal(ev.namespace, "");
    assert_int_equal(ev.n_labels, 0);

    /* Another agent naming ag-1's container does not get its pod. */
    hello(e, "ag-2", "node-2", "prod-sh");
    agent_event(e, "ag-2", "ce37", 13 * SEC, 0, &ev);
    assert_string_equal(ev.host, "node-2");
    assert_string_equal(ev.pod, "");

    /* An agent never seen in a Hello: nothing but its id. */
    agent_event(e, "ghost", "ce37", 13 * SEC, 0, &ev);
    assert_string_equal(ev.agent_id, "ghost");
    assert_string_equal(ev.host, "");

    /* Pods are indexed by IP and name too. */
    const cw_enrich_pod *p = cw_enrich_pod_by_ip(e, "prod-sh", "10.244.3.15");
    assert_non_null(p);
    assert_non_null(cw_enrich_pod_by_name(e, "prod-sh", "shop", "checkout-abc"));
    cw_enrich_free(e);
}

static json_t *load_corpus(const char *name)
{
    const char *shared = getenv("CW_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/corpus/k8s-audit/%s", shared ? shared : "../shared", name);
    json_t *j = json_load_file(path, 0, NULL);
    if (!j) fail_msg("cannot load %s", path);
    return j;
}

static void audit_pod_create_registers_pod(void **state)
{
    (void)state;
    cw_enrich *e;
    cw_enrich_opts o = {.owner_labels = "app"};
    assert_int_equal(cw_enrich_create(&e, &o), 0);
    hello(e, "ag-1", "node-1", "minikube");

    json_t *audit = load_corpus("create-privileged-pod.json");
    cw_event ev;
    assert_int_equal(cw_event_from_audit(&ev, "minikube", audit, 0), 0);
    cw_enrich_audit_event(e, &ev);
    const char *uid = "8c845395-d85f-11e8-88b6-080027728ac4";
    /* The audit event itself now names its pod. */
    assert_string_equal(ev.pod_uid, uid);
    assert_string_equal(ev.pod, "nginx-deployment-5cdcc99dbf-rgw6z");
    assert_string_equal(ev.namespace, "default");
    assert_string_equal(ev.cloud, "tencent"); /* from the cluster's agents */
    assert_string_equal(ev.owner, "nginx");

    const cw_enrich_pod *p = cw_enrich_pod_by_uid(e, "minikube", uid);
    assert_non_null(p);
    assert_string_equal(p->name, "nginx-deployment-5cdcc99dbf-rgw6z");
    assert_string_equal(p->namespace, "default");
    assert_string_equal(p->service_account, "default");
    assert_string_equal(p->controller_kind, "ReplicaSet");
    assert_string_equal(p->controller_name, "nginx-deployment-5cdcc99dbf");
    assert_int_equal(p->n_labels, 2);
    assert_null(cw_enrich_pod_by_uid(e, "other-cluster", uid));
    json_decref(audit);

    /* A container_start without labels or names, but with the pod uid,
     * resolves to the API server's pod. */
    container_start(e, "ag-1", "cx", uid, NULL, NULL, NULL, 5 * SEC, &ev);
    agent_event(e, "ag-1", "cx", 6 * SEC, 0, &ev);
    assert_string_equal(ev.pod, "nginx-deployment-5cdcc99dbf-rgw6z");
    assert_string_equal(ev.namespace, "default");
    assert_string_equal(cw_event_label(&ev, "pod-template-hash"), "1787755869");
    assert_string_equal(ev.owner, "nginx");

    /* The agent cannot overwrite what the API server said. */
    static const char *const fake[] = {"app=evil", NULL};
    container_start(e, "ag-1", "cy", uid, "evil-pod", "kube-system", fake, 7 * SEC, &ev);
    assert_string_equal(ev.pod, "nginx-deployment-5cdcc99dbf-rgw6z");
    assert_string_equal(ev.namespace, "default");
    assert_string_equal(ev.owner, "nginx");

    /* A later exec into that pod (by name) gets its labels. */
    json_t *exec = load_corpus("exec-into-pod.json");
    json_t *ref = json_object_get(exec, "objectRef");
    json_object_set_new(ref, "name", json_string("nginx-deployment-5cdcc99dbf-rgw6z"));
    json_object_set_new(ref, "namespace", json_string("default"));
    assert_int_equal(cw_event_from_audit(&ev, "minikube", exec, 0), 0);
    cw_enrich_audit_event(e, &ev);
    assert_string_equal(ev.pod_uid, uid);
    assert_string_equal(ev.owner, "nginx");
    json_decref(exec);

    /* A refused create (403) registers nothing. */
    json_t *denied = load_corpus("create-pod-with-hostpath-etc-mount.json");
    json_object_set_new(json_object_get(denied, "responseStatus"), "code", json_integer(403));
    cw_enrich_stats st0, st1;
    cw_enrich_get_stats(e, &st0);
    assert_int_equal(cw_event_from_audit(&ev, "minikube", denied, 0), 0);
    cw_enrich_audit_event(e, &ev);
    cw_enrich_get_stats(e, &st1);
    assert_int_equal(st1.pods, st0.pods);
    json_decref(denied);
    cw_enrich_free(e);
}

static void tables_stay_bounded(void **state)
{
    (void)state;
    cw_enrich *e;
    cw_enrich_opts o = {.max_containers = 8, .max_pods = 4, .max_agents = 2};
    assert_int_equal(cw_enrich_create(&e, &o), 0);
    hello(e, "ag-1", "node-1", "c");
    cw_event ev;
    char cid[32], uid[32];
    for (int i = 0; i < 100; i++) {
        snprintf(cid, sizeof cid, "c%d", i);
        snprintf(uid, sizeof uid, "u%d", i);
        container_start(e, "ag-1", cid, uid, cid, "ns", NULL, i * SEC, &ev);
        /* Every container resolves right after its start. */
        agent_event(e, "ag-1", cid, i * SEC, 0, &ev);
        assert_string_equal(ev.pod_uid, uid);
    }
    cw_enrich_stats st;
    cw_enrich_get_stats(e, &st);
    assert_int_equal(st.containers, 8);
    assert_int_equal(st.pods, 4);
    assert_int_equal(st.container_evictions, 92);
    assert_int_equal(st.pod_evictions, 96);
    /* The oldest are gone; the newest still resolve. */
    agent_event(e, "ag-1", "c0", 200 * SEC, 0, &ev);
    assert_string_equal(ev.pod, "");
    agent_event(e, "ag-1", "c99", 200 * SEC, 0, &ev);
    assert_string_equal(ev.pod, "c99");
    assert_null(cw_enrich_pod_by_ip(e, "c", "10.244.0.0")); /* never existed */

    /* Agents are bounded too. */
    hello(e, "ag-2", "n2", "c");
    hello(e, "ag-3", "n3", "c");
    cw_enrich_get_stats(e, &st);
    assert_int_equal(st.agents, 2);
    assert_null(cw_enrich_agent_get(e, "ag-1"));
    cw_enrich_free(e);

    /* The byte bound holds as well: pods with long names fill it first. */
    cw_enrich_opts ob = {.max_table_bytes = 64 * 1024};
    assert_int_equal(cw_enrich_create(&e, &ob), 0);
    hello(e, "ag-1", "node-1", "c");
    static char big[900];
    memset(big, 'v', sizeof big - 1);
    for (int i = 0; i < 2000; i++) {
        snprintf(cid, sizeof cid, "c%d", i);
        snprintf(uid, sizeof uid, "u%d", i);
        container_start(e, "ag-1", cid, uid, big, big, NULL, i * SEC, &ev);
    }
    cw_enrich_get_stats(e, &st);
    assert_true(st.pods < 2000);
    assert_true(st.pods * 1800 <= 64 * 1024 + 4096);
    assert_true(st.pod_evictions > 0);
    cw_enrich_free(e);
}

static void stopped_containers_expire_after_grace(void **state)
{
    (void)state;
    cw_enrich *e;
    cw_enrich_opts o = {.stopped_grace_ns = 600 * SEC};
    assert_int_equal(cw_enrich_create(&e, &o), 0);
    hello(e, "ag-1", "node-1", "c");
    hello(e, "ag-2", "node-2", "c");
    cw_event ev;
    container_start(e, "ag-1", "c1", "u1", "p1", "ns", NULL, 100 * SEC, &ev);
    agent_event(e, "ag-1", "c1", 110 * SEC, 1, &ev); /* stop */
    assert_string_equal(ev.pod, "p1");             /* the stop itself resolves */

    /* A late event within the grace period still resolves. */
    agent_event(e, "ag-1", "c1", 500 * SEC, 0, &ev);
    assert_string_equal(ev.pod, "p1");

    /* Another agent's clock (far ahead) does not expire ag-1's container. */
    for (int i = 0; i < 8; i++) agent_event(e, "ag-2", "", 100000 * SEC, 0, &ev);
    assert_non_null(cw_enrich_container_get(e, "ag-1", "c1"));

    /* Past the grace period on its own agent's clock, it is gone. */
    agent_event(e, "ag-1", "", 711 * SEC, 0, &ev);
    agent_event(e, "ag-1", "c1", 712 * SEC, 0, &ev);
    assert_string_equal(ev.pod, "");
    assert_null(cw_enrich_container_get(e, "ag-1", "c1"));
    cw_enrich_stats st;
    cw_enrich_get_stats(e, &st);
    assert_int_equal(st.containers_expired, 1);

    /* A restarted container is running again and does not expire. */
    container_start(e, "ag-1", "c2", "u2", "p2", "ns", NULL, 800 * SEC, &ev);
    agent_event(e, "ag-1", "c2", 801 * SEC, 1, &ev);
    container_start(e, "ag-1", "c2", "u2", "p2", "ns", NULL, 802 * SEC, &ev);
    for (int i = 0; i < 8; i++) agent_event(e, "ag-1", "", 5000 * SEC, 0, &ev);
    assert_non_null(cw_enrich_container_get(e, "ag-1", "c2"));
    cw_enrich_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exec_in_container_gets_pod_and_host_context),
        cmocka_unit_test(audit_pod_create_registers_pod),
        cmocka_unit_test(tables_stay_bounded),
        cmocka_unit_test(stopped_containers_expire_after_grace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
