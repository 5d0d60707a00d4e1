/* Tests of storage/pg_sink.c against a real PostgreSQL (PG_CONNINFO, see
 * tests/services/README.md): a sink spool filled with CW_REC_OUT_* records
 * is delivered, then checked with a blocking connection. Each test works in
 * a database of its own, cw_sink_<pid>_<n>, dropped at its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "chainwatch.pb-c.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "storage/outrec.h"
#include "storage/pg_schema.h"
#include "pg_testlib.h"
#include "storage/pg_sink.h"
/* Not every helper of the shared test library is used here. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "spool_testlib.h"

static const char *conninfo;
static char db[64];
static char sink_conninfo[900];
static int db_seq;

/* ---- Database helpers ---------------------------------------------- */


static PGconn *connect_db(const char *name)
{
    const char *keys[] = {"dbname", name ? "dbname" : NULL, NULL};
    const char *vals[] = {conninfo, name, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("connect: %s", PQerrorMessage(c));
    must(c, "SET TimeZone = 'UTC'");
    return c;
}

static long count(PGconn *c, const char *sql)
{
    char v[64];
    value(c, sql, v, sizeof v);
    return atol(v);
}

static void expect_sql(PGconn *c, const char *sql, const char *want)
{
    char v[4096];
    value(c, sql, v, sizeof v);
    if (strcmp(v, want) != 0) fail_msg("%s: got [%s], want [%s]", sql, v, want);
}

/* Runs an admin statement on the PG_CONNINFO database. Retried for a few
 * seconds: DROP DATABASE ... WITH (FORCE) cannot end an autovacuum worker
 * (not our role's), which a large test may have started. */
static void admin(const char *fmt, const char *name)
{
    PGconn *c = connect_db(NULL);
    char sql[256];
    must(c, "SET client_min_messages = warning");
    snprintf(sql, sizeof sql, fmt, name);
    for (int i = 0;; i++) {
        PGresult *r = PQexec(c, sql);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok && i == 40) fail_msg("%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        if (ok) break;
        usleep(250 * 1000);
    }
    PQfinish(c);
}

/* ---- Fixtures: a database and a spool directory per test ------------ */

static int test_setup(void **state)
{
    snprintf(db, sizeof db, "cw_sink_%ld_%d", (long)getpid(), ++db_seq);
    admin("DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    admin("CREATE DATABASE %s", db);
    snprintf(sink_conninfo, sizeof sink_conninfo, "%s dbname=%s", conninfo, db);
    *state = make_tmpdir();
    return *state ? 0 : -1;
}

static int test_teardown(void **state)
{
    remove_tmpdir(*state);
    /* CW_PG_KEEP_DB=1 keeps the databases to look at by hand. */
    if (!getenv("CW_PG_KEEP_DB")) admin("DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    conninfo = getenv("PG_CONNINFO");
    if (!conninfo || !*conninfo) {
        fprintf(stderr, "PG_CONNINFO is not set: start tests/services/start.sh\n");
        return -1;
    }
    return 0;
}

/* ---- Records -------------------------------------------------------- */

#define T0 1767225600000000000LL /* 2026-01-01T00:00:00Z */

/* A sink spool request owning its memory. */
typedef struct oreq {
    cw_spool_req req;
    tracker *t;
    cw_buf body;
} oreq;

static void oreq_done(cw_spool_req *req)
{
    oreq *q = req->user;
    pthread_mutex_lock(&q->t->m);
    q->t->done++;
    if (req->status == CW_SPOOL_OK) q->t->ok++;
    pthread_cond_broadcast(&q->t->c);
    pthread_mutex_unlock(&q->t->m);
}

static oreq *reqs[4096];
static size_t n_reqs;

static void submit(cw_spool *s, tracker *t, uint8_t kind, cw_buf *body)
{
    oreq *q = calloc(1, sizeof *q);
    q->t = t;
    q->body = *body;
    q->req.kind = kind;
    q->req.key = CW_OUTREC_KEY;
    q->req.key_len = (uint8_t)strlen(CW_OUTREC_KEY);
    q->req.seq = n_reqs + 1;
    q->req.time_ns = T0;
    q->req.body = q->body.data;
    q->req.body_len = (uint32_t)q->body.len;
    q->req.done = oreq_done;
    q->req.user = q;
    assert_true(n_reqs < sizeof reqs / sizeof reqs[0]);
    reqs[n_reqs++] = q;
    int rc;
    while ((rc = cw_spool_submit(s, &q->req)) == CW_SPOOL_FULL) usleep(1000);
    assert_int_equal(rc, CW_SPOOL_OK);
}

static void free_reqs(void)
{
    for (size_t i = 0; i < n_reqs; i++) {
        cw_buf_free(&reqs[i]->body);
        free(reqs[i]);
    }
    n_reqs = 0;
}

/* Event i: id "ag-1:<i/100>:<i%100>", one per millisecond from T0 (so a
 * large i crosses into the next days when `day_step` is set), odd ones in
 * a Pod, with characters COPY must escape in owner and body. */
static void append_event_at(cw_buf *b, long i, int64_t t)
{
    char id[64], host[32], ns[32], pod[32], json[512];
    snprintf(id, sizeof id, "ag-1:%ld:%ld", i / 100, i % 100);
    snprintf(host, sizeof host, "node-%ld", i % 7);
    snprintf(ns, sizeof ns, "ns%ld", i % 3);
    snprintf(pod, sizeof pod, "pod-%ld", i % 5);
    int in_pod = i & 1;
    Chainwatch__V1__StoredEvent se = CHAINWATCH__V1__STORED_EVENT__INIT;
    Chainwatch__V1__Label lab = CHAINWATCH__V1__LABEL__INIT;
    Chainwatch__V1__Label *labs[1] = {&lab};
    lab.key = "app";
    lab.value = "web";
    se.id = id;
    se.has_time_ns = 1;
    se.time_ns = t;
    se.type = "process_exec";
    se.source = "agent";
    se.host = host;
    se.agent_id = "ag-1";
    se.cluster = "prod";
    se.cloud = ""; /* empty: NULL */
    se.region = "eu-west-1";
    se.node = host;
    if (in_pod) {
        se.namespace_ = ns;
        se.pod = pod;
        se.pod_uid = "uid-1";
        se.container_id = "c0ffee";
        se.owner = "Deployment/w\teb\\x\n";
        se.n_labels = 1;
        se.labels = labs;
    }
    se.audit_json = "{\"skipped\":\"by the scan\"}";
    size_t pblen = chainwatch__v1__stored_event__get_packed_size(&se);
    uint8_t *pb = malloc(pblen);
    chainwatch__v1__stored_event__pack(&se, pb);
    snprintf(json, sizeof json,
             "{\"id\":\"%s\",\"time\":\"t\",\"type\":\"process_exec\",\"host\":\"%s\","
             "\"cmd\":\"a\\tb \\\\ c \\\"q\\\" \\u0000 \\\\u0000 \xc3\xa9\",\"i\":%ld}",
             id, host, i);
    cw_outrec_event ev = {
        .id = id,
        .id_len = (uint16_t)strlen(id),
        .key = host,
        .key_len = (uint16_t)strlen(host),
        .time_ns = t,
        .pb = pb,
        .pb_len = (uint32_t)pblen,
        .json = json,
        .json_len = (uint32_t)strlen(json),
    };
    assert_int_equal(cw_outrec_append(b, &ev), 0);
    free(pb);
}

static void append_event(cw_buf *b, long i, int day_step)
{
    append_event_at(b, i, T0 + i * 1000000LL + (day_step ? (i % 3) * 86400000000000LL : 0) + 123);
}

/* Events [from, to) in records of `per` events. */
static void submit_events(cw_spool *s, tracker *t, long from, long to, long per, int day_step)
{
    for (long i = from; i < to; i += per) {
        cw_buf b;
        cw_buf_init(&b, 0);
        for (long k = i; k < to && k < i + per; k++) append_event(&b, k, day_step);
        submit(s, t, CW_REC_OUT_EVENTS, &b);
    }
}

static void submit_json(cw_spool *s, tracker *t, uint8_t kind, const char *json)
{
    cw_buf b;
    cw_buf_init(&b, 0);
    cw_buf_append(&b, json, strlen(json));
    submit(s, t, kind, &b);
}

static const char alert1[] =
    "{\"id\":\"al-1\",\"rule\":\"shell_in_container\",\"title\":\"Shell\",\"severity\":\"high\","
    "\"time\":\"2026-01-01T00:00:01.500000000Z\",\"host\":\"node-1\",\"cluster\":\"prod\","
    "\"namespace\":\"ns1\",\"pod\":\"pod-1\",\"container_id\":\"c0ffee\",\"tactic\":\"execution\","
    "\"technique\":null,\"attack\":\"T1059\",\"phase\":\"exploit\",\"summary\":\"sh \\u0000 in "
    "pod\",\"incident\":\"inc-1\",\"event_id\":\"ag-1:0:1\"}";
static const char alert2[] =
    "{\"id\":\"al-2\",\"rule\":\"crypto_miner\",\"title\":\"Miner\",\"severity\":\"critical\","
    "\"time\":\"2026-01-01T00:00:02Z\",\"host\":\"node-2\",\"cluster\":null,\"namespace\":null,"
    "\"pod\":null,\"container_id\":null,\"tactic\":\"impact\",\"technique\":null,"
    "\"attack\":null,\"phase\":\"impact\",\"summary\":\"miner\",\"incident\":null}";
static const char inc_v1[] =
    "{\"id\":\"inc-1\",\"severity\":\"high\",\"status\":\"open\","
    "\"first_seen\":\"2026-01-01T00:00:01.500000000Z\","
    "\"last_seen\":\"2026-01-01T00:00:01.500000000Z\",\"hosts\":[\"node-1\"],"
    "\"clusters\":[\"prod\"],\"pods\":[\"ns1/pod-1\"],\"tactics\":[\"execution\"],"
    "\"techniques\":[],\"phases\":[\"exploit\"],\"alert_count\":1,\"alerts\":[\"al-1\"]}";
static const char inc_v2[] =
    "{\"id\":\"inc-1\",\"severity\":\"critical\",\"status\":\"open\","
    "\"first_seen\":\"2026-01-01T00:00:01.500000000Z\","
    "\"last_seen\":\"2026-01-01T00:00:02Z\",\"hosts\":[\"node-1\",\"node-2\"],"
    "\"clusters\":[\"prod\"],\"pods\":[\"ns1/pod-1\",\"a\\\"b,c\"],"
    "\"tactics\":[\"execution\",\"impact\"],\"techniques\":[\"MS-TA9038\"],"
    "\"phases\":[\"exploit\",\"impact\"],\"alert_count\":2,"
    "\"alerts\":[\"al-1\",{\"id\":\"al-2\",\"rule\":\"crypto_miner\"}]}";

/* ---- Running a sink ------------------------------------------------- */

typedef struct rig {
    cw_spool *spool;
    cw_pg_sink *sink;
    tracker t;
    cw_config cfg;
} rig;

/* The partition window of the next rig_open. Most tests' events are dated
 * from T0, which is not near today: they get their partitions with this
 * wide window (test_partition_window narrows it). */
static uint32_t rig_past_days = 36500, rig_future_days = 3650;

static void rig_open(rig *r, const char *dir, const char *ci, uint32_t batch_rows)
{
    memset(r, 0, sizeof *r);
    tracker_init(&r->t);
    cw_config_defaults(&r->cfg);
    snprintf(r->cfg.pg_conninfo, sizeof r->cfg.pg_conninfo, "%s", ci);
    r->cfg.pg_batch_rows = batch_rows;
    r->cfg.pg_partition_past_days = rig_past_days;
    r->cfg.pg_partition_future_days = rig_future_days;
    cw_spool_opts o = test_opts(dir);
    r->spool = open_spool(&o);
    char err[256] = "";
    if (cw_pg_sink_create(&r->sink, &r->cfg, r->spool, err, sizeof err) != 0)
        fail_msg("create: %s", err);
    assert_int_equal(cw_spool_start(r->spool), 0);
}

static void rig_start(rig *r)
{
    char err[256] = "";
    if (cw_pg_sink_start(r->sink, err, sizeof err) != 0) fail_msg("start: %s", err);
}

/* Stops the spool, lets the sink drain (everything must be written), and
 * closes both. */
static void rig_close(rig *r, unsigned drain_ms)
{
    assert_int_equal(tracker_wait(&r->t, (int)n_reqs), 0);
    cw_spool_stop(r->spool);
    cw_pg_sink_stop(r->sink, drain_ms);
    cw_pg_sink_free(r->sink);
    cw_spool_close(r->spool);
    tracker_destroy(&r->t);
    free_reqs();
}

static uint64_t m_events(void)
{
    return cw_metric_get(cw_m.sink_delivered_total[CW_SINK_PG][CW_SINK_EVENTS]);
}

static uint64_t m_dups(void)
{
    return cw_metric_get(cw_m.sink_duplicates_total[CW_SINK_PG]);
}

static uint64_t m_errors(void)
{
    return cw_metric_get(cw_m.sink_errors_total[CW_SINK_PG]);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits until `sql` counts at least n (60 s bound: a broken build only). */
static void wait_count(PGconn *c, const char *sql, long n)
{
    for (int i = 0; i < 6000; i++) {
        PGresult *r = PQexec(c, sql);
        long v = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        if (v >= n) return;
        usleep(10000);
    }
    fail_msg("timed out waiting for %s >= %ld", sql, n);
}

/* The whole content the tests check, independent of row order. */
static void check_events(PGconn *c, long n)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM events");
    assert_int_equal(count(c, sql), n);
    assert_int_equal(count(c, "SELECT count(DISTINCT id) FROM events"), n);
    assert_int_equal(count(c, "SELECT count(*) FROM events WHERE body->>'id' <> id"), 0);
}

/* ---- Tests ---------------------------------------------------------- */

static void test_delivers_everything(void **state)
{
    rig r;
    uint64_t ev0 = m_events(), dup0 = m_dups();
    rig_open(&r, *state, sink_conninfo, 64); /* records of 50: some split */
    submit_events(r.spool, &r.t, 0, 500, 50, 1);
    submit_json(r.spool, &r.t, CW_REC_OUT_ALERT, alert1);
    submit_json(r.spool, &r.t, CW_REC_OUT_INCIDENT, inc_v1);
    submit_events(r.spool, &r.t, 500, 520, 20, 1);
    submit_json(r.spool, &r.t, CW_REC_OUT_ALERT, alert2);
    submit_json(r.spool, &r.t, CW_REC_OUT_INCIDENT, inc_v2);
    submit_json(r.spool, &r.t, CW_REC_OUT_ALERT, "not json"); /* skipped, not fatal */
    rig_start(&r);
    rig_close(&r, 30000);
    assert_int_equal(cw_metric_get(cw_m.sink_lag_bytes[CW_SINK_PG]), 0);
    assert_int_equal(m_events() - ev0, 520);
    assert_int_equal(m_dups() - dup0, 0);

    PGconn *c = connect_db(db);
    check_events(c, 520);
    /* Typed columns, NULL for empty, escaping, and the day partitions. */
    expect_sql(c,
                 "SELECT concat_ws('|', time, type, source, host, agent_id, cluster,"
                 " coalesce(cloud, 'N'), region, node, namespace, pod, pod_uid, container_id,"
                 " owner) FROM events WHERE id = 'ag-1:0:1'",
                 "2026-01-02 00:00:00.001+00|process_exec|agent|node-1|ag-1|prod|N|eu-west-1|"
                 "node-1|ns1|pod-1|uid-1|c0ffee|Deployment/w\teb\\x\n");
    expect_sql(c, "SELECT concat_ws('|', namespace IS NULL, pod IS NULL, owner IS NULL)"
                    " FROM events WHERE id = 'ag-1:0:2'",
                 "t|t|t");
    expect_sql(c, "SELECT body->>'cmd' FROM events WHERE id = 'ag-1:0:3'",
                 "a\tb \\ c \"q\" \xef\xbf\xbd \\u0000 \xc3\xa9");
    expect_sql(c, "SELECT (body->>'i')::int FROM events WHERE id = 'ag-1:4:99'", "499");
    assert_int_equal(count(c, "SELECT count(*) FROM events_default"), 0);
    assert_int_equal(count(c, "SELECT count(*) FROM pg_class WHERE relname IN"
                              " ('events_p20260101', 'events_p20260102', 'events_p20260103')"),
                     3);
    /* Alerts, the incident's latest state and its alerts. */
    expect_sql(c,
                 "SELECT concat_ws('|', rule, title, severity, time, host, cluster, namespace,"
                 " pod, container_id, tactic, coalesce(technique, 'N'), attack, phase, summary,"
                 " incident, body->>'event_id') FROM alerts WHERE id = 'al-1'",
                 "shell_in_container|Shell|high|2026-01-01 00:00:01.5+00|node-1|prod|ns1|pod-1|"
                 "c0ffee|execution|N|T1059|exploit|sh \xef\xbf\xbd in pod|inc-1|ag-1:0:1");
    expect_sql(c, "SELECT concat_ws('|', cluster IS NULL, incident IS NULL) FROM alerts"
                    " WHERE id = 'al-2'",
                 "t|t");
    expect_sql(c,
                 "SELECT concat_ws('|', severity, status, first_seen, last_seen, hosts, clusters,"
                 " pods, tactics, techniques, phases, alert_count, body->>'alert_count')"
                 " FROM incidents WHERE id = 'inc-1'",
                 "critical|open|2026-01-01 00:00:01.5+00|2026-01-01 00:00:02+00|"
                 "{node-1,node-2}|{prod}|{ns1/pod-1,\"a\\\"b,c\"}|{execution,impact}|"
                 "{MS-TA9038}|{exploit,impact}|2|2");
    assert_int_equal(count(c, "SELECT count(*) FROM incidents"), 1);
    expect_sql(c, "SELECT string_agg(alert_id, ',' ORDER BY alert_id) FROM incident_alerts"
                    " WHERE incident_id = 'inc-1'",
                 "al-1,al-2");
    PQfinish(c);
}

/* The same records written again (the cursor was never saved: a crash)
 * and a second sink over the same database: nothing is stored twice and
 * the duplicates are counted. */
static void test_replay(void **state)
{
    char *dir = *state;
    rig r;
    rig_open(&r, dir, sink_conninfo, 100);
    submit_events(r.spool, &r.t, 0, 300, 30, 0);
    submit_json(r.spool, &r.t, CW_REC_OUT_ALERT, alert1);
    submit_json(r.spool, &r.t, CW_REC_OUT_INCIDENT, inc_v1);
    rig_start(&r);
    rig_close(&r, 30000);

    PGconn *c = connect_db(db);
    check_events(c, 300);
    expect_sql(c, "SELECT severity || alert_count FROM incidents WHERE id = 'inc-1'", "high1");
    char v1[64];
    value(c, "SELECT updated_at FROM incidents WHERE id = 'inc-1'", v1, sizeof v1);

    /* Forget the cursor: the reopened spool delivers everything again, plus
     * new events after it. */
    char path[1024];
    snprintf(path, sizeof path, "%s/spool/cursors/pg", dir);
    assert_int_equal(unlink(path), 0);
    uint64_t dup0 = m_dups(), ev0 = m_events();
    rig_open(&r, dir, sink_conninfo, 100);
    submit_events(r.spool, &r.t, 300, 350, 25, 0);
    submit_json(r.spool, &r.t, CW_REC_OUT_ALERT, alert2);
    submit_json(r.spool, &r.t, CW_REC_OUT_INCIDENT, inc_v2); /* a later state */
    rig_start(&r);
    rig_close(&r, 30000);
    assert_int_equal(m_dups() - dup0, 300);
    assert_int_equal(m_events() - ev0, 50);
    check_events(c, 350);
    assert_int_equal(count(c, "SELECT count(*) FROM alerts"), 2);
    assert_int_equal(count(c, "SELECT count(*) FROM incidents"), 1);
    assert_int_equal(count(c, "SELECT count(*) FROM incident_alerts"), 2);
    expect_sql(c, "SELECT severity || alert_count FROM incidents WHERE id = 'inc-1'",
               "critical2");
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT updated_at > '%s' FROM incidents WHERE id = 'inc-1'", v1);
    expect_sql(c, sql, "t");
    PQfinish(c);
}

/* The server kills the sink's connection several times mid-stream. */
static void test_connection_loss(void **state)
{
    rig r;
    const long n = 20000;
    uint64_t err0 = m_errors();
    rig_open(&r, *state, sink_conninfo, 500);
    rig_start(&r);
    PGconn *c = connect_db(db);
    char kill[512];
    snprintf(kill, sizeof kill,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE application_name = 'chainwatchd-sink' AND datname = '%s'",
             db);
    long killed = 0;
    for (int round = 0; round < 4; round++) {
        submit_events(r.spool, &r.t, round * n / 4, (round + 1) * n / 4, 100, 1);
        wait_count(c, "SELECT count(*) FROM events", round * n / 4 + 1);
        killed += count(c, kill);
    }
    submit_json(r.spool, &r.t, CW_REC_OUT_INCIDENT, inc_v1);
    submit_json(r.spool, &r.t, CW_REC_OUT_INCIDENT, inc_v2);
    rig_close(&r, 60000);
    assert_true(killed >= 2);
    assert_true(m_errors() - err0 >= 2);
    check_events(c, n);
    expect_sql(c, "SELECT severity FROM incidents WHERE id = 'inc-1'", "critical");
    PQfinish(c);
}

/* Nothing listens on the port: the sink keeps trying, and stop returns
 * within its drain time. */
static void test_unreachable(void **state)
{
    char ci[1200];
    snprintf(ci, sizeof ci, "%s port=1", sink_conninfo);
    rig r;
    uint64_t err0 = m_errors();
    rig_open(&r, *state, ci, 100);
    submit_events(r.spool, &r.t, 0, 10, 10, 0);
    rig_start(&r);
    usleep(800 * 1000); /* 0.1 + 0.2 + 0.4 s of backoff */
    assert_true(m_errors() - err0 >= 2);
    assert_int_equal(cw_metric_get(cw_m.sink_up[CW_SINK_PG]), 0);
    assert_int_equal(tracker_wait(&r.t, (int)n_reqs), 0);
    cw_spool_stop(r.spool);
    double t0 = now_s();
    cw_pg_sink_stop(r.sink, 300);
    double took = now_s() - t0;
    assert_true(took < 1.0);
    cw_pg_sink_free(r.sink);
    cw_spool_close(r.spool);
    tracker_destroy(&r.t);
    free_reqs();
    /* The cursor did not move: the next start delivers them. */
    rig_open(&r, *state, sink_conninfo, 100);
    rig_start(&r);
    rig_close(&r, 30000);
    PGconn *c = connect_db(db);
    check_events(c, 10);
    PQfinish(c);
}

/* A server that accepts the TCP connection and never answers: the
 * connect timer (libpq's connect_timeout does not apply to
 * PQconnectPoll) gives up and the sink tries again. */
static void test_connect_timeout(void **state)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 16), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
    char ci[256];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d connect_timeout=2 user=x dbname=x",
             ntohs(a.sin_port));
    rig r;
    uint64_t err0 = m_errors();
    rig_open(&r, *state, ci, 100);
    rig_start(&r);
    usleep(1500 * 1000);
    assert_int_equal(m_errors() - err0, 0); /* still waiting */
    usleep(1000 * 1000);
    assert_true(m_errors() - err0 >= 1);
    double t0 = now_s();
    rig_close(&r, 200);
    assert_true(now_s() - t0 < 1.0);
    close(ls);
}

/* Two hosts, the first refusing: libpq moves on to a new socket in the
 * middle of PQconnectPoll, and the sink must follow it. */
static void test_socket_changes(void **state)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    const char *port = "5432";
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "port") == 0 && o->val) port = o->val;
    char ci[1200];
    snprintf(ci, sizeof ci, "%s host=127.0.0.1,127.0.0.1 port=1,%s", sink_conninfo, port);
    PQconninfoFree(opts);
    rig r;
    uint64_t err0 = m_errors();
    rig_open(&r, *state, ci, 100);
    submit_events(r.spool, &r.t, 0, 10, 10, 0);
    rig_start(&r);
    rig_close(&r, 30000);
    assert_int_equal(m_errors() - err0, 0);
    PGconn *c = connect_db(db);
    check_events(c, 10);
    PQfinish(c);
}

/* Transactions without events (no COPY: BEGIN goes into the pipeline). */
static void test_no_events(void **state)
{
    rig r;
    uint64_t al0 = cw_metric_get(cw_m.sink_delivered_total[CW_SINK_PG][CW_SINK_ALERTS]);
    rig_open(&r, *state, sink_conninfo, 100);
    submit_json(r.spool, &r.t, CW_REC_OUT_ALERT, alert2);
    submit_json(r.spool, &r.t, CW_REC_OUT_INCIDENT, inc_v1);
    rig_start(&r);
    rig_close(&r, 30000);
    assert_int_equal(cw_metric_get(cw_m.sink_delivered_total[CW_SINK_PG][CW_SINK_ALERTS]) - al0,
                     1);
    PGconn *c = connect_db(db);
    assert_int_equal(count(c, "SELECT count(*) FROM events"), 0);
    expect_sql(c, "SELECT rule FROM alerts WHERE id = 'al-2'", "crypto_miner");
    expect_sql(c, "SELECT status || alert_count FROM incidents", "open1");
    expect_sql(c, "SELECT alert_id FROM incident_alerts", "al-1");
    PQfinish(c);
}

/* Events whose clock is wrong or hostile (decades off, one per random
 * day) are all stored once, but only today's day gets a partition: the
 * rest go to events_default, counted. */
static void test_partition_window(void **state)
{
    rig r;
    uint64_t un0 = cw_metric_get(cw_m.pg_events_unpartitioned_total);
    rig_past_days = 2;
    rig_future_days = 1;
    rig_open(&r, *state, sink_conninfo, 50);
    rig_past_days = 36500;
    rig_future_days = 3650;
    const int64_t day = 86400000000000LL;
    int64_t now = (int64_t)time(NULL) * 1000000000LL;
    cw_buf b;
    cw_buf_init(&b, 0);
    append_event_at(&b, 0, now);
    append_event_at(&b, 1, now - 400 * day);
    append_event_at(&b, 2, now + 30 * day);
    append_event_at(&b, 3, 7289567999000000000LL); /* 2200-12-31 */
    append_event_at(&b, 4, 86400000000000LL);      /* 1970-01-02 */
    append_event_at(&b, 5, -1000000000LL * 86400 * 365 * 200); /* 1770 */
    submit(r.spool, &r.t, CW_REC_OUT_EVENTS, &b);
    /* 300 more, each on a different day within +-150 years. */
    uint64_t x = 88172645463325252ULL;
    for (long i = 6; i < 306; i += 50) {
        cw_buf_init(&b, 0);
        for (long k = i; k < i + 50; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int64_t days = (int64_t)(x % 109500) - 54750;
            if (days >= -2 && days <= 1) days += 10; /* never today's window */
            append_event_at(&b, k, now + days * day);
        }
        submit(r.spool, &r.t, CW_REC_OUT_EVENTS, &b);
    }
    rig_start(&r);
    rig_close(&r, 30000);
    PGconn *c = connect_db(db);
    check_events(c, 306);
    assert_int_equal(count(c, "SELECT count(*) FROM pg_inherits i JOIN pg_class p"
                              " ON p.oid = i.inhparent WHERE p.relname = 'events'"),
                     2); /* today's and the default */
    char today[16];
    time_t tt = (time_t)(now / 1000000000LL); /* the day of event 0, even past midnight */
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(today, sizeof today, "%Y%m%d", &tm);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM events_p%s WHERE id = 'ag-1:0:0'", today);
    assert_int_equal(count(c, sql), 1);
    assert_int_equal(count(c, "SELECT count(*) FROM events_default"), 305);
    assert_int_equal(cw_metric_get(cw_m.pg_events_unpartitioned_total) - un0, 305);
    PQfinish(c);
}

/* Event values no real name reaches (3000 bytes, multi-byte characters and
 * stray bytes; an audit POST or an agent chooses them) would make the row
 * too large for its indexes, which PostgreSQL refuses for good: they are
 * cut in their columns, kept whole in body, and what follows is stored. */
static void test_long_values(void **state)
{
    rig r;
    uint64_t cut0 = cw_metric_get(cw_m.pg_columns_truncated_total);
    rig_open(&r, *state, sink_conninfo, 100);
    /* Random letters (so that PostgreSQL cannot compress the index entry
     * below its limit), a two-byte character every 50 bytes and a stray
     * byte every 97, after a known start. */
    char *v = malloc(3001);
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    memcpy(v, "\xc3\xa9z\xc3\xa9z", 6);
    for (int i = 6; i < 3000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v[i] = (char)("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[x % 62]);
        if (i % 97 == 0) v[i] = (char)0xff;
        if (i % 50 == 0 && i < 2998) memcpy(v + i++, "\xc3\xa9", 2);
    }
    v[3000] = 0;
    Chainwatch__V1__StoredEvent se = CHAINWATCH__V1__STORED_EVENT__INIT;
    se.id = "ag-1:9:0";
    se.has_time_ns = 1;
    se.time_ns = T0;
    se.type = "k8s_audit";
    se.source = "k8s_audit";
    se.host = se.cluster = se.namespace_ = se.pod = v;
    size_t pblen = chainwatch__v1__stored_event__get_packed_size(&se);
    uint8_t *pb = malloc(pblen);
    chainwatch__v1__stored_event__pack(&se, pb);
    cw_buf json;
    cw_buf_init(&json, 0);
    cw_buf_printf(&json, "{\"id\":\"ag-1:9:0\",\"namespace\":\"%s\"}", v);
    cw_outrec_event ev = {.id = "ag-1:9:0", .id_len = 8, .key = "k", .key_len = 1,
                          .time_ns = T0, .pb = pb, .pb_len = (uint32_t)pblen,
                          .json = (const char *)json.data, .json_len = (uint32_t)json.len};
    cw_buf b;
    cw_buf_init(&b, 0);
    assert_int_equal(cw_outrec_append(&b, &ev), 0);
    submit(r.spool, &r.t, CW_REC_OUT_EVENTS, &b);
    submit_events(r.spool, &r.t, 0, 10, 10, 0);
    rig_start(&r);
    rig_close(&r, 30000);
    free(pb);
    cw_buf_free(&json);
    free(v);
    PGconn *c = connect_db(db);
    check_events(c, 11);
    /* Cut between characters, each at most 512 bytes. */
    expect_sql(c, "SELECT concat_ws('|', octet_length(host) BETWEEN 500 AND 512,"
                  " octet_length(cluster) <= 512, octet_length(namespace) <= 512,"
                  " octet_length(pod) <= 512, left(pod, 4))"
                  " FROM events WHERE id = 'ag-1:9:0'",
               "t|t|t|t|\xc3\xa9z\xc3\xa9z");
    expect_sql(c, "SELECT octet_length(body->>'namespace') >= 3000 FROM events"
                  " WHERE id = 'ag-1:9:0'",
               "t");
    assert_int_equal(cw_metric_get(cw_m.pg_columns_truncated_total) - cut0, 4);
    PQfinish(c);
}

/* A statement of the transaction fails once (a trigger on alerts), then
 * the connection is killed in the pipeline (a trigger on incidents): the
 * whole transaction is rolled back and written again, once. */
static void test_query_error_retried(void **state)
{
    PGconn *c = connect_db(db);
    char err[256];
    int from, to;
    assert_int_equal(cw_pg_migrate(c, &from, &to, err, sizeof err), 0);
    must(c, "CREATE SEQUENCE failseq");
    must(c, "CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF nextval('failseq') = 1 THEN RAISE EXCEPTION 'injected'; END IF;"
            " RETURN NEW; END $$");
    must(c, "CREATE TRIGGER fail_once BEFORE INSERT ON alerts FOR EACH ROW"
            " EXECUTE FUNCTION fail_once()");
    /* And then the connection dies in the middle of the pipeline. */
    must(c, "CREATE SEQUENCE killseq");
    must(c, "CREATE FUNCTION kill_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF nextval('killseq') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid());"
            " END IF; RETURN NEW; END $$");
    must(c, "CREATE TRIGGER kill_once BEFORE INSERT ON incidents FOR EACH ROW"
            " EXECUTE FUNCTION kill_once()");
    rig r;
    uint64_t err0 = m_errors(), dup0 = m_dups();
    rig_open(&r, *state, sink_conninfo, 1000);
    submit_events(r.spool, &r.t, 0, 100, 50, 0);
    submit_json(r.spool, &r.t, CW_REC_OUT_ALERT, alert1);
    submit_json(r.spool, &r.t, CW_REC_OUT_INCIDENT, inc_v1);
    rig_start(&r);
    rig_close(&r, 30000);
    assert_true(m_errors() - err0 >= 2);
    assert_int_equal(count(c, "SELECT count(*) FROM incidents"), 1);
    assert_int_equal(m_dups() - dup0, 0); /* rolled back: nothing was stored */
    check_events(c, 100);
    assert_int_equal(count(c, "SELECT count(*) FROM alerts"), 1);
    PQfinish(c);
}

/* Stop while the migration waits for the schema lock (another server
 * migrating): the migration is cancelled and stop returns in time. */
static void test_stop_during_migration(void **state)
{
    PGconn *c = connect_db(db);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", (long long)CW_PG_SCHEMA_LOCK);
    must(c, sql);
    rig r;
    rig_open(&r, *state, sink_conninfo, 100);
    submit_events(r.spool, &r.t, 0, 10, 10, 0);
    rig_start(&r);
    wait_count(c, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                  " AND application_name = 'chainwatchd-sink'",
               1);
    assert_int_equal(cw_metric_get(cw_m.sink_up[CW_SINK_PG]), 0);
    double t0 = now_s();
    rig_close(&r, 300);
    assert_true(now_s() - t0 < 1.5);
    PQfinish(c);
}

/* A sink never started is stopped and freed cleanly. */
static void test_never_started(void **state)
{
    rig r;
    rig_open(&r, *state, sink_conninfo, 100);
    rig_close(&r, 1000);
    cw_config cfg;
    cw_config_defaults(&cfg);
    snprintf(cfg.pg_conninfo, sizeof cfg.pg_conninfo, "host=x bogus_option=1");
    cw_pg_sink *p = NULL;
    char err[256] = "";
    cw_spool_opts o = test_opts(*state);
    cw_spool *s = open_spool(&o);
    assert_int_equal(cw_pg_sink_create(&p, &cfg, s, err, sizeof err), -1);
    assert_true(strncmp(err, "postgres: ", 10) == 0);
    cw_spool_close(s);
}

static void test_check(void **state)
{
    (void)state;
    cw_config cfg;
    cw_config_defaults(&cfg);
    char err[256] = "";
    snprintf(cfg.pg_conninfo, sizeof cfg.pg_conninfo, "%s", sink_conninfo);
    if (cw_pg_sink_check(&cfg, 5000, err, sizeof err) != 0) fail_msg("check: %s", err);
    PGconn *c = connect_db(db);
    int from, to;
    assert_int_equal(cw_pg_migrate(c, &from, &to, err, sizeof err), 0);
    assert_int_equal(cw_pg_sink_check(&cfg, 5000, err, sizeof err), 0);
    must(c, "INSERT INTO schema_migrations (version, name) VALUES (99, 'future')");
    assert_int_equal(cw_pg_sink_check(&cfg, 5000, err, sizeof err), -1);
    assert_non_null(strstr(err, "newer"));
    PQfinish(c);
    snprintf(cfg.pg_conninfo, sizeof cfg.pg_conninfo, "%s port=1", sink_conninfo);
    assert_int_equal(cw_pg_sink_check(&cfg, 2000, err, sizeof err), -1);
    assert_true(strncmp(err, "postgres: ", 10) == 0);
}

/* Throughput of the whole path (spool read, rows, COPY, COMMIT), printed;
 * not an assertion. CW_PG_BENCH_EVENTS sets the number of events. */
static void test_throughput(void **state)
{
    const char *e = getenv("CW_PG_BENCH_EVENTS");
    long n = e ? atol(e) : 50000;
    rig r;
    rig_open(&r, *state, sink_conninfo, 10000);
    submit_events(r.spool, &r.t, 0, n, 500, 0);
    assert_int_equal(tracker_wait(&r.t, (int)n_reqs), 0);
    /* Schema and partition first, so only the writing is timed. */
    PGconn *c = connect_db(db);
    char err[256];
    int from, to;
    assert_int_equal(cw_pg_migrate(c, &from, &to, err, sizeof err), 0);
    must(c, "SELECT chainwatch_ensure_partition('2026-01-01')");
    double t0 = now_s();
    rig_start(&r);
    rig_close(&r, 120000);
    double took = now_s() - t0;
    check_events(c, n);
    print_message("pg_sink: %ld events in %.2f s: %.0f rows/s\n", n, took, n / took);
    PQfinish(c);
}

int main(void)
{
    cw_log_set_level(CW_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivers_everything, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_replay, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_connection_loss, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_socket_changes, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_no_events, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_partition_window, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_long_values, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_query_error_retried, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_stop_during_migration, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_never_started, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_check, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_throughput, test_setup, test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
