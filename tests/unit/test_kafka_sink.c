/* Tests of storage/kafka_sink.c.
 *
 * Without arguments: against librdkafka's mock cluster (rdkafka_mock.h), a
 * real sink spool in a temporary directory: delivery with the right keys,
 * headers, values and partitions, exactly once; malformed records skipped;
 * the cursor committed; QUEUE_FULL mid-record; a broker down at start and
 * mid-stream; a produce error that replaces the producer; a restart with
 * the cursor reset that must not duplicate anything.
 *
 * With --real-broker: the same delivery and restart checks against
 * KAFKA_BROKERS (tests/services), on topics named after the pid and time,
 * which the sink creates (admin API) and the test deletes at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "spool_testlib.h"
#pragma GCC diagnostic pop

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "storage/kafka_sink.h"
#include "storage/outrec.h"

#define NPARTS 3

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static char brokers[512];
static char topics[3][128];
static int real_broker;

/* ---- records ---- */

typedef struct want {
    int topic; /* 0 events, 1 alerts, 2 incidents */
    char id[64];
    char key[64];
    char value[96];
    uint32_t idx;
    int seen;
} want;

typedef struct run {
    want *w;
    size_t nw, capw;
    /* submitted requests, with their bodies */
    struct sreq *reqs;
    size_t nreq, capreq;
    pthread_mutex_t m;
    pthread_cond_t c;
    size_t done, failed;
} run;

typedef struct sreq {
    cw_spool_req req;
    run *r;
    cw_buf body;
} sreq;

static void add_want(run *r, int topic, const char *id, const char *key, const char *value,
                     uint32_t idx)
{
    if (r->nw == r->capw) {
        r->capw = r->capw ? r->capw * 2 : 256;
        r->w = realloc(r->w, r->capw * sizeof *r->w);
    }
    want *w = &r->w[r->nw++];
    memset(w, 0, sizeof *w);
    w->topic = topic;
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->key, sizeof w->key, "%s", key);
    snprintf(w->value, sizeof w->value, "%s", value);
    w->idx = idx;
}

static void run_init(run *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->m, NULL);
    pthread_cond_init(&r->c, NULL);
    /* Requests must not move once submitted: allocate them up front. */
    r->capreq = 8192;
    r->reqs = calloc(r->capreq, sizeof *r->reqs);
}

static void run_free(run *r)
{
    for (size_t i = 0; i < r->nreq; i++) cw_buf_free(&r->reqs[i].body);
    free(r->reqs);
    free(r->w);
    pthread_cond_destroy(&r->c);
    pthread_mutex_destroy(&r->m);
}

/* Writer thread of the spool. */
static void sreq_done(cw_spool_req *req)
{
    sreq *q = req->user;
    pthread_mutex_lock(&q->r->m);
    q->r->done++;
    if (req->status != CW_SPOOL_OK) q->r->failed++;
    pthread_cond_broadcast(&q->r->c);
    pthread_mutex_unlock(&q->r->m);
}

static void wait_written(run *r)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    pthread_mutex_lock(&r->m);
    while (r->done < r->nreq)
        if (pthread_cond_timedwait(&r->c, &r->m, &dl)) break;
    size_t done = r->done, failed = r->failed;
    pthread_mutex_unlock(&r->m);
    assert_int_equal(done, r->nreq);
    assert_int_equal(failed, 0);
}

static void submit(cw_spool *s, run *r, uint8_t kind)
{
    assert_true(r->nreq < r->capreq);
    sreq *q = &r->reqs[r->nreq++];
    q->r = r;
    q->req.kind = kind;
    q->req.key = CW_OUTREC_KEY;
    q->req.key_len = (uint8_t)strlen(CW_OUTREC_KEY);
    q->req.body = q->body.data;
    q->req.body_len = (uint32_t)q->body.len;
    q->req.done = sreq_done;
    q->req.user = q;
    int rc;
    /* The spool may say FULL for a moment in the bigger runs. */
    while ((rc = cw_spool_submit(s, &q->req)) == CW_SPOOL_FULL) usleep(1000);
    assert_int_equal(rc, CW_SPOOL_OK);
}

static sreq *next_req(run *r)
{
    sreq *q = &r->reqs[r->nreq];
    memset(q, 0, sizeof *q);
    cw_buf_init(&q->body, 0);
    return q;
}

/* Queues n records tagged `tag`: mostly events records of 1..maxent
 * entries (keys spread over hosts and pods), an alert every 10th, an
 * incident every 10th. */
static void add_records(cw_spool *s, run *r, const char *tag, int n, int maxent)
{
    for (int i = 0; i < n; i++) {
        sreq *q = next_req(r);
        char id[64], key[64], val[96];
        if (i % 10 == 8 || i % 10 == 9) {
            int alert = i % 10 == 8;
            snprintf(id, sizeof id, "%s-%s-%d", alert ? "alert" : "inc", tag, i);
            snprintf(val, sizeof val, "{\"id\":\"%s\",\"n\":%d}", id, i);
            cw_buf_append(&q->body, val, strlen(val));
            add_want(r, alert ? 1 : 2, id, id, val, 0);
            submit(s, r, alert ? CW_REC_OUT_ALERT : CW_REC_OUT_INCIDENT);
            continue;
        }
        int ne = 1 + i % maxent;
        for (int j = 0; j < ne; j++) {
            snprintf(id, sizeof id, "agent-%s:%d:%d", tag, i, j);
            if ((i + j) % 3)
                snprintf(key, sizeof key, "host-%d", (i * 7 + j) % 11);
            else
                snprintf(key, sizeof key, "prod/default/pod-%d", (i + j) % 5);
            snprintf(val, sizeof val, "pb:%s", id);
            cw_outrec_event ev = {.id = id,
                                  .id_len = (uint16_t)strlen(id),
                                  .key = key,
                                  .key_len = (uint16_t)strlen(key),
                                  .time_ns = i,
                                  .pb = (const uint8_t *)val,
                                  .pb_len = (uint32_t)strlen(val),
                                  .json = "{}",
                                  .json_len = 2};
            assert_int_equal(cw_outrec_append(&q->body, &ev), 0);
            add_want(r, 0, id, key, val, (uint32_t)j);
        }
        submit(s, r, CW_REC_OUT_EVENTS);
    }
}

/* Three malformed records: an events body whose second entry is cut
 * short (its first entry is still delivered), an alert that is not JSON,
 * an incident without an id. */
static void add_bad_records(cw_spool *s, run *r)
{
    sreq *q = next_req(r);
    cw_outrec_event ev = {.id = "bad:1:0", .id_len = 7, .key = "host-x", .key_len = 6,
                          .pb = (const uint8_t *)"pb:bad:1:0", .pb_len = 10,
                          .json = "{}", .json_len = 2};
    cw_outrec_append(&q->body, &ev);
    add_want(r, 0, "bad:1:0", "host-x", "pb:bad:1:0", 0);
    ev.id = "bad:1:1";
    cw_outrec_append(&q->body, &ev);
    q->body.len -= 3;
    submit(s, r, CW_REC_OUT_EVENTS);
    q = next_req(r);
    cw_buf_append(&q->body, "{not json", 9);
    submit(s, r, CW_REC_OUT_ALERT);
    q = next_req(r);
    cw_buf_append(&q->body, "{\"state\":\"open\"}", 16);
    submit(s, r, CW_REC_OUT_INCIDENT);
}

static size_t msgs_of(const run *r)
{
    return r->nw;
}

/* ---- reading the topics back ---- */

static rd_kafka_t *new_consumer(void)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char e[512];
    assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", brokers, e, sizeof e), 0);
    assert_int_equal(rd_kafka_conf_set(c, "group.id", "test-kafka-sink", e, sizeof e), 0);
    assert_int_equal(rd_kafka_conf_set(c, "enable.auto.commit", "false", e, sizeof e), 0);
    assert_int_equal(rd_kafka_conf_set(c, "enable.partition.eof", "true", e, sizeof e), 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof e);
    assert_non_null(rk);
    return rk;
}

static int parse_pos(const void *v, size_t n, uint64_t *off, uint32_t *idx)
{
    char b[48];
    if (!v || n == 0 || n >= sizeof b) return -1;
    memcpy(b, v, n);
    b[n] = 0;
    unsigned long long o;
    unsigned i;
    char extra;
    if (sscanf(b, "%llu.%u%c", &o, &i, &extra) != 2) return -1;
    *off = o;
    *idx = i;
    return 0;
}

/* Reads every message of topic t and matches it against r's wants: each
 * must be wanted, seen once, in the partition its key hashes to, with the
 * right key, headers and value, and in increasing cw-pos order within its
 * partition. Returns the number of messages read. */
static size_t check_topic(run *r, int t)
{
    rd_kafka_t *rk = new_consumer();
    int64_t lo[NPARTS], hi[NPARTS];
    rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new(NPARTS);
    int pending = 0;
    for (int p = 0; p < NPARTS; p++) {
        assert_int_equal(
            rd_kafka_query_watermark_offsets(rk, topics[t], p, &lo[p], &hi[p], 10000), 0);
        if (hi[p] > lo[p]) {
            rd_kafka_topic_partition_list_add(pl, topics[t], p)->offset = lo[p];
            pending++;
        }
    }
    if (pending) assert_int_equal(rd_kafka_assign(rk, pl), 0);
    rd_kafka_topic_partition_list_destroy(pl);
    uint64_t last_off[NPARTS] = {0};
    int64_t last_idx[NPARTS] = {-1, -1, -1};
    size_t n = 0;
    time_t until = time(NULL) + 60;
    while (pending > 0) {
        assert_true(time(NULL) < until);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        int p = m->partition;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (hi[p] >= 0) {
                hi[p] = -1;
                pending--;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        assert_int_equal(m->err, 0);
        n++;
        rd_kafka_headers_t *h;
        const void *idv, *posv;
        size_t idn, posn;
        assert_int_equal(rd_kafka_message_headers(m, &h), 0);
        assert_int_equal(rd_kafka_header_get_last(h, "cw-id", &idv, &idn), 0);
        assert_int_equal(rd_kafka_header_get_last(h, "cw-pos", &posv, &posn), 0);
        uint64_t off = 0;
        uint32_t idx = 0;
        assert_int_equal(parse_pos(posv, posn, &off, &idx), 0);
        /* Spool order within the partition. */
        assert_true(off > last_off[p] || (off == last_off[p] && (int64_t)idx > last_idx[p]));
        last_off[p] = off;
        last_idx[p] = idx;
        want *w = NULL;
        for (size_t i = 0; i < r->nw && !w; i++)
            if (r->w[i].topic == t && strlen(r->w[i].id) == idn &&
                memcmp(r->w[i].id, idv, idn) == 0)
                w = &r->w[i];
        if (!w) fprintf(stderr, "unexpected message %.*s\n", (int)idn, (const char *)idv);
        assert_non_null(w);
        if (w->seen) fprintf(stderr, "duplicate message %s\n", w->id);
        assert_int_equal(w->seen, 0);
        w->seen = 1;
        assert_int_equal(idx, w->idx);
        assert_int_equal(m->key_len, strlen(w->key));
        assert_memory_equal(m->key, w->key, m->key_len);
        assert_int_equal(m->len, strlen(w->value));
        assert_memory_equal(m->payload, w->value, m->len);
        assert_int_equal(p, rd_kafka_msg_partitioner_murmur2(NULL, w->key, strlen(w->key),
                                                             NPARTS, NULL, NULL));
        if (m->offset >= hi[p] - 1 && hi[p] >= 0) {
            hi[p] = -1;
            pending--;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* Every want of r seen exactly once, nothing else on the topics. */
static void check_all(run *r)
{
    size_t n = 0;
    for (int t = 0; t < 3; t++) n += check_topic(r, t);
    for (size_t i = 0; i < r->nw; i++) {
        if (!r->w[i].seen) fprintf(stderr, "missing message %s\n", r->w[i].id);
        assert_int_equal(r->w[i].seen, 1);
    }
    assert_int_equal(n, r->nw);
}

/* ---- sink harness ---- */

static uint64_t delivered(void)
{
    uint64_t n = 0;
    for (int i = 0; i < CW_SINK_KIND__COUNT; i++)
        n += cw_metric_get(cw_m.sink_delivered_total[CW_SINK_KAFKA][i]);
    return n;
}

static int wait_delivered(uint64_t n, int secs)
{
    for (int i = 0; i < secs * 20; i++) {
        if (delivered() >= n) return 0;
        usleep(50000);
    }
    return -1;
}

static void config(cw_config *cfg, const char *props)
{
    cw_config_defaults(cfg);
    snprintf(cfg->kafka_brokers, sizeof cfg->kafka_brokers, "%s", brokers);
    snprintf(cfg->kafka_topic_events, sizeof cfg->kafka_topic_events, "%s", topics[0]);
    snprintf(cfg->kafka_topic_alerts, sizeof cfg->kafka_topic_alerts, "%s", topics[1]);
    snprintf(cfg->kafka_topic_incidents, sizeof cfg->kafka_topic_incidents, "%s", topics[2]);
    cfg->kafka_partitions = NPARTS;
    snprintf(cfg->kafka_properties, sizeof cfg->kafka_properties, "%s", props ? props : "");
}

static cw_spool *open_sink_spool(const char *dir)
{
    cw_spool_opts o = test_opts(dir);
    return open_spool(&o);
}

static cw_kafka_sink *new_sink(cw_spool *s, const char *props)
{
    cw_config cfg;
    config(&cfg, props);
    char err[512] = "";
    cw_kafka_sink *k = NULL;
    int rc = cw_kafka_sink_create(&k, &cfg, s, err, sizeof err);
    if (rc) fprintf(stderr, "create: %s\n", err);
    assert_int_equal(rc, 0);
    return k;
}

static void start_sink(cw_kafka_sink *k)
{
    char err[256] = "";
    int rc = cw_kafka_sink_start(k, err, sizeof err);
    if (rc) fprintf(stderr, "start: %s\n", err);
    assert_int_equal(rc, 0);
}

/* The cursor of reader "kafka" is at the end: a new reader of that name
 * finds nothing to read. */
static void check_committed(const char *dir)
{
    cw_spool *s = open_sink_spool(dir);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "kafka", &rd), 0);
    cw_spool_record rec;
    assert_int_equal(cw_spool_read(rd, &rec, 0), -1);
    cw_spool_close(s);
}

/* One sink run over what r adds: records queued before the spool starts,
 * then spool stop and sink stop with a generous drain. */
static void one_run(const char *dir, run *r, const char *tag, int n, int maxent,
                    const char *props, int bad)
{
    cw_spool *s = open_sink_spool(dir);
    cw_kafka_sink *k = new_sink(s, props);
    add_records(s, r, tag, n, maxent);
    if (bad) add_bad_records(s, r);
    assert_int_equal(cw_spool_start(s), 0);
    start_sink(k);
    wait_written(r);
    cw_spool_stop(s);
    cw_kafka_sink_stop(k, 60000);
    cw_kafka_sink_free(k);
    cw_spool_close(s);
}

/* ---- mock cluster ---- */

static void name_topics(const char *test)
{
    static int seq;
    seq++;
    for (int t = 0; t < 3; t++)
        snprintf(topics[t], sizeof topics[t], "cwtest-%d-%ld-%d-%s-%s", (int)getpid(),
                 (long)time(NULL), seq, test, t == 0 ? "events" : t == 1 ? "alerts" : "incidents");
}

static int mock_setup(void **state)
{
    if (setup(state) < 0) return -1;
    if (real_broker) return 0;
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char e[512];
    rd_kafka_conf_set(c, "log_level", "2", e, sizeof e);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
    assert_non_null(mock_rk);
    mock = rd_kafka_mock_cluster_new(mock_rk, 1);
    assert_non_null(mock);
    snprintf(brokers, sizeof brokers, "%s", rd_kafka_mock_cluster_bootstraps(mock));
    return 0;
}

static int mock_teardown(void **state)
{
    if (mock) rd_kafka_mock_cluster_destroy(mock);
    if (mock_rk) rd_kafka_destroy(mock_rk);
    mock = NULL;
    mock_rk = NULL;
    /* Every handle of the test, the sink's included, is gone. */
    assert_int_equal(rd_kafka_wait_destroyed(10000), 0);
    return teardown(state);
}

static void mock_topics(const char *test)
{
    name_topics(test);
    for (int t = 0; t < 3; t++)
        assert_int_equal(rd_kafka_mock_topic_create(mock, topics[t], NPARTS, 1), 0);
}

/* ---- tests ---- */

static void test_deliver(void **state)
{
    mock_topics("deliver");
    run r;
    run_init(&r);
    uint64_t d0 = delivered();
    uint64_t e0 = cw_metric_get(cw_m.sink_errors_total[CW_SINK_KAFKA]);
    one_run(*state, &r, "a", 300, 4, NULL, 1);
    assert_int_equal(delivered() - d0, msgs_of(&r));
    assert_true(cw_metric_get(cw_m.sink_errors_total[CW_SINK_KAFKA]) - e0 >= 3);
    assert_int_equal(cw_metric_get(cw_m.sink_up[CW_SINK_KAFKA]), 0); /* stopped */
    check_all(&r);
    check_committed(*state);
    run_free(&r);
}

/* A producer queue of 7 messages: produce stops midway through records
 * (QUEUE_FULL) and resumes on delivery reports. */
static void test_queue_full(void **state)
{
    mock_topics("qfull");
    run r;
    run_init(&r);
    one_run(*state, &r, "q", 120, 20, "queue.buffering.max.messages=7, linger.ms=1", 0);
    check_all(&r);
    check_committed(*state);
    run_free(&r);
}

/* Delivered, then the cursor is lost (as if the server crashed before it
 * was saved): the second sink finds everything on the topics and skips it,
 * and delivers only the new records. */
static void test_restart_no_duplicates(void **state)
{
    mock_topics("restart");
    run r;
    run_init(&r);
    one_run(*state, &r, "first", 200, 4, NULL, 0);
    size_t first = msgs_of(&r);
    char path[1200];
    snprintf(path, sizeof path, "%s/spool/cursors/kafka", (char *)*state);
    assert_int_equal(unlink(path), 0);

    uint64_t dup0 = cw_metric_get(cw_m.sink_duplicates_total[CW_SINK_KAFKA]);
    uint64_t d0 = delivered();
    run r2;
    run_init(&r2);
    one_run(*state, &r2, "second", 100, 4, NULL, 0);
    assert_int_equal(cw_metric_get(cw_m.sink_duplicates_total[CW_SINK_KAFKA]) - dup0, first);
    assert_int_equal(delivered() - d0, msgs_of(&r2));
    /* Both runs' messages, each once. */
    for (size_t i = 0; i < r2.nw; i++) add_want(&r, r2.w[i].topic, r2.w[i].id, r2.w[i].key,
                                                r2.w[i].value, r2.w[i].idx);
    check_all(&r);
    check_committed(*state);
    run_free(&r2);
    run_free(&r);
}

/* The broker is down when the sink starts, and again mid-stream. */
static void test_broker_down(void **state)
{
    mock_topics("down");
    run r;
    run_init(&r);
    cw_spool *s = open_sink_spool(*state);
    cw_kafka_sink *k = new_sink(s, NULL);
    assert_int_equal(cw_spool_start(s), 0);
    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
    uint64_t d0 = delivered();
    start_sink(k);
    add_records(s, &r, "a", 50, 3);
    wait_written(&r);
    sleep(2);
    assert_int_equal(delivered(), d0);
    assert_int_equal(cw_metric_get(cw_m.sink_up[CW_SINK_KAFKA]), 0);
    assert_int_equal(rd_kafka_mock_broker_set_up(mock, 1), 0);
    assert_int_equal(wait_delivered(d0 + msgs_of(&r), 60), 0);
    assert_int_equal(cw_metric_get(cw_m.sink_up[CW_SINK_KAFKA]), 1);

    /* Down again while records keep coming. */
    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
    size_t before = msgs_of(&r);
    add_records(s, &r, "b", 50, 3);
    wait_written(&r);
    sleep(2);
    assert_int_equal(delivered(), d0 + before);
    assert_true(cw_metric_get(cw_m.sink_lag_bytes[CW_SINK_KAFKA]) > 0);
    assert_int_equal(rd_kafka_mock_broker_set_up(mock, 1), 0);
    cw_spool_stop(s);
    cw_kafka_sink_stop(k, 60000);
    cw_kafka_sink_free(k);
    cw_spool_close(s);
    assert_int_equal(delivered(), d0 + msgs_of(&r));
    check_all(&r);
    check_committed(*state);
    run_free(&r);
}

/* The broker refuses produce requests for good a few times: the producer
 * fails (gapless guarantee), is replaced, and the new one delivers the
 * rest without duplicating what got through. */
static void test_produce_error_replaces_producer(void **state)
{
    mock_topics("perr");
    run r;
    run_init(&r);
    cw_spool *s = open_sink_spool(*state);
    cw_kafka_sink *k = new_sink(s, "linger.ms=1");
    assert_int_equal(cw_spool_start(s), 0);
    uint64_t d0 = delivered(), e0 = cw_metric_get(cw_m.sink_errors_total[CW_SINK_KAFKA]);
    start_sink(k);
    add_records(s, &r, "a", 40, 3);
    wait_written(&r);
    assert_int_equal(wait_delivered(d0 + msgs_of(&r), 60), 0);
    /* ApiKey 0 is Produce. */
    rd_kafka_mock_push_request_errors(mock, 0, 2, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    add_records(s, &r, "b", 40, 3);
    wait_written(&r);
    cw_spool_stop(s);
    cw_kafka_sink_stop(k, 60000);
    cw_kafka_sink_free(k);
    cw_spool_close(s);
    assert_true(cw_metric_get(cw_m.sink_errors_total[CW_SINK_KAFKA]) > e0);
    check_all(&r);
    check_committed(*state);
    run_free(&r);
}

/* Stop with a drain time while the broker is away: returns in about the
 * drain time, commits nothing it has not confirmed, and a later run
 * delivers it. */
static void test_stop_while_down(void **state)
{
    mock_topics("stopdown");
    run r;
    run_init(&r);
    cw_spool *s = open_sink_spool(*state);
    cw_kafka_sink *k = new_sink(s, NULL);
    add_records(s, &r, "a", 30, 3);
    assert_int_equal(cw_spool_start(s), 0);
    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
    start_sink(k);
    wait_written(&r);
    cw_spool_stop(s);
    time_t t0 = time(NULL);
    cw_kafka_sink_stop(k, 1500);
    assert_true(time(NULL) - t0 <= 6);
    cw_kafka_sink_free(k);
    cw_spool_close(s);
    assert_int_equal(rd_kafka_mock_broker_set_up(mock, 1), 0);
    run r2;
    run_init(&r2);
    one_run(*state, &r2, "b", 10, 2, NULL, 0);
    for (size_t i = 0; i < r2.nw; i++) add_want(&r, r2.w[i].topic, r2.w[i].id, r2.w[i].key,
                                                r2.w[i].value, r2.w[i].idx);
    check_all(&r);
    check_committed(*state);
    run_free(&r2);
    run_free(&r);
}

static void test_bad_property(void **state)
{
    name_topics("badprop");
    cw_spool *s = open_sink_spool(*state);
    cw_config cfg;
    config(&cfg, "linger.ms=5,no.such.property=1");
    char err[512] = "";
    cw_kafka_sink *k = NULL;
    assert_int_equal(cw_kafka_sink_create(&k, &cfg, s, err, sizeof err), -1);
    assert_null(k);
    assert_non_null(strstr(err, "no.such.property"));
    config(&cfg, "linger.ms");
    assert_int_equal(cw_kafka_sink_create(&k, &cfg, s, err, sizeof err), -1);
    assert_non_null(strstr(err, "linger.ms"));
    /* A sink that is created but never started stops and frees cleanly. */
    config(&cfg, NULL);
    assert_int_equal(cw_kafka_sink_create(&k, &cfg, s, err, sizeof err), 0);
    cw_kafka_sink_stop(k, 1000);
    cw_kafka_sink_free(k);
    cw_spool_close(s);
}

static void test_check(void **state)
{
    (void)state;
    name_topics("check");
    cw_config cfg;
    config(&cfg, NULL);
    char err[512] = "";
    assert_int_equal(cw_kafka_sink_check(&cfg, 5000, err, sizeof err), 0);
    snprintf(cfg.kafka_brokers, sizeof cfg.kafka_brokers, "127.0.0.1:1");
    assert_int_equal(cw_kafka_sink_check(&cfg, 1000, err, sizeof err), -1);
    assert_non_null(strstr(err, "kafka: 127.0.0.1:1: "));
    config(&cfg, "acks=0"); /* conflicts with enable.idempotence */
    assert_int_equal(cw_kafka_sink_check(&cfg, 1000, err, sizeof err), -1);
}

/* ---- real broker ---- */

static void delete_topics(void)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char e[512];
    rd_kafka_conf_set(c, "bootstrap.servers", brokers, e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
    assert_non_null(rk);
    rd_kafka_DeleteTopic_t *dt[3];
    for (int t = 0; t < 3; t++) dt[t] = rd_kafka_DeleteTopic_new(topics[t]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, dt, 3, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy_array(dt, 3);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

/* A few thousand records to topics the sink creates, then a restart with
 * the cursor reset: every message once. */
static void test_real_broker(void **state)
{
    name_topics("real");
    run r;
    run_init(&r);
    uint64_t d0 = delivered();
    one_run(*state, &r, "r1", 3000, 4, NULL, 1);
    assert_int_equal(delivered() - d0, msgs_of(&r));
    size_t first = msgs_of(&r);
    char path[1200];
    snprintf(path, sizeof path, "%s/spool/cursors/kafka", (char *)*state);
    assert_int_equal(unlink(path), 0);
    uint64_t dup0 = cw_metric_get(cw_m.sink_duplicates_total[CW_SINK_KAFKA]);
    run r2;
    run_init(&r2);
    one_run(*state, &r2, "r2", 1000, 4, NULL, 0);
    assert_int_equal(cw_metric_get(cw_m.sink_duplicates_total[CW_SINK_KAFKA]) - dup0, first);
    for (size_t i = 0; i < r2.nw; i++) add_want(&r, r2.w[i].topic, r2.w[i].id, r2.w[i].key,
                                                r2.w[i].value, r2.w[i].idx);
    check_all(&r);
    check_committed(*state);
    fprintf(stderr, "real broker: %zu messages on %s and friends\n", r.nw, topics[0]);
    if (!getenv("CW_KEEP_TOPICS")) delete_topics();
    run_free(&r2);
    run_free(&r);
}

int main(int argc, char **argv)
{
    cw_log_set_level(getenv("CW_TEST_LOG") ? CW_LOG_DEBUG : CW_LOG_ERROR);
    if (argc > 1 && strcmp(argv[1], "--real-broker") == 0) {
        const char *b = getenv("KAFKA_BROKERS");
        if (!b || !*b) {
            fprintf(stderr, "KAFKA_BROKERS not set\n");
            return 1;
        }
        real_broker = 1;
        snprintf(brokers, sizeof brokers, "%s", b);
        const struct CMUnitTest real[] = {
            cmocka_unit_test_setup_teardown(test_real_broker, mock_setup, mock_teardown),
        };
        return cmocka_run_group_tests(real, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deliver, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_restart_no_duplicates, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_broker_down, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_produce_error_replaces_producer, mock_setup,
                                        mock_teardown),
        cmocka_unit_test_setup_teardown(test_stop_while_down, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_bad_property, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_check, mock_setup, mock_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
