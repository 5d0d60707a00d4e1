/* kafka_sink: the sink spool to Kafka, exactly once. See kafka_sink.h for the
 * contract; this comment explains how.
 *
 * Thread and phases. The sink owns one thread and one libuv loop. The
 * thread runs "sessions": a session creates a producer, makes sure the
 * topics exist, learns every partition's newest cw-pos (the dedupe state),
 * then runs the loop until the producer must be replaced or the sink stops.
 * The set-up steps use librdkafka's blocking calls with short timeouts (at
 * most 2 s each) in loops that check the stop deadline. They run on the
 * sink thread *before* its loop runs, so nothing on the loop ever blocks:
 * the loop only sees a ready producer. While set-up waits for a broker the
 * loop does not need to do anything else (without a broker there is nothing
 * to deliver, and the spool grows on disk, which is the backpressure the
 * contract asks for). We chose this over an admin-result queue wired into
 * the loop because it keeps the set-up a straight sequence that is run the
 * same way at start and after a producer is replaced.
 *
 * In flight. Records read from the spool are copied into a bounded FIFO
 * (FIFO_MAX_RECORDS records, FIFO_MAX_BYTES bytes of bodies). Each entry
 * remembers how far it has been produced (an events record may stop midway
 * on QUEUE_FULL) and how many of its messages await a delivery report. The
 * message payloads point into the FIFO's copy, which lives until every
 * report of the record has come, so librdkafka need not copy them again
 * (keys and headers are always copied by librdkafka). The cursor is
 * committed past the longest prefix of entries that are fully produced and
 * fully confirmed. Reading stops while the FIFO is full or the producer
 * says QUEUE_FULL, and resumes when delivery reports free room.
 *
 * Delivery errors. With message.timeout.ms=0 a delivery report only fails
 * for errors the producer cannot retry by itself (a fatal idempotence
 * error, a permanent broker refusal). Then the session ends: the producer
 * is purged and destroyed, and after a backoff (1 s doubling to 30 s) a new
 * session re-reads the partitions' newest cw-pos and produces the FIFO's
 * entries again from their start, skipping what the topic already holds.
 * Nothing is dropped; a message the broker refuses forever stalls the sink
 * (visible as sink_errors_total and sink_lag_bytes) rather than being lost.
 *
 * Exactly once. Every message goes to a partition we choose ourselves:
 * the Java-compatible murmur2 hash of its key modulo the topic's partition
 * count at session start (the same mapping librdkafka's "murmur2"
 * partitioner and Kafka's Java client use). The idempotent producer writes
 * each partition in produce order, and we produce in spool order, so a
 * partition holds a prefix of what we sent it: if its newest message says
 * cw-pos P, every message for that partition with position <= P is there.
 * Set-up reads the newest message of every partition (watermarks, then a
 * consumer at high-1) and the sink skips such messages (counted in
 * sink_duplicates_total). Only the records after the committed cursor are
 * replayed, so only they can be skipped.
 */
#include "storage/kafka_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "common/log.h"
#include "common/metrics.h"
#include "storage/kafka_conf.h"
#include "storage/kafka_stub.h"
#include "storage/outrec.h"

#define MOD "kafka"

/* In-flight bounds. 4096 records of a typical events record (a batch of a
 * few hundred events) are far more than linger and a round trip need; the
 * byte bound keeps memory flat whatever the records hold. One record always
 * fits, whatever its size, so a huge record cannot wedge the sink. */
#define FIFO_MAX_RECORDS 4096
#define FIFO_MAX_BYTES (64u << 20)
/* Records read (or messages produced) per loop turn before yielding, so
 * delivery reports and the stop signal are served in between. */
#define PUMP_BUDGET 4096
#define TICK_MS 100
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
/* Blocking librdkafka calls in set-up: each short, all in loops that check
 * the stop deadline. */
#define SETUP_CALL_MS 1000
#define SCAN_MAX_MS 20000
#define CREATE_MAX_MS 15000

enum { T_EVENTS, T_ALERTS, T_INCIDENTS, T__COUNT };

/* The newest position found on one partition at session start. */
typedef struct last_pos {
    uint64_t off;
    uint32_t idx;
    uint8_t set;     /* a chainwatch message was found */
    uint8_t scanned; /* set-up is done with this partition */
} last_pos;

typedef struct inflight {
    uint64_t offset, end; /* the record's spool offset and end */
    uint8_t kind;
    uint8_t produced; /* every message handed to librdkafka or skipped */
    uint8_t *body;
    uint32_t len;
    size_t next_pos;   /* events: where producing continues in body */
    uint32_t next_idx; /* index of the next entry */
    uint32_t outstanding;
} inflight;

struct cw_kafka_sink {
    cw_config cfg;
    cw_spool_reader *reader;
    rd_kafka_conf_t *pconf; /* producer template, duplicated per session */
    rd_kafka_conf_t *cconf; /* consumer template for the set-up scan */
    const char *topic[T__COUNT];
    /* The sink spool's identity (cw_spool_id), sent as header cw-src: only
     * positions of this very spool count as already delivered. */
    char src[CW_SPOOL_ID_LEN + 1];

    pthread_t thread;
    int started, loop_ready;
    uv_loop_t loop;
    uv_async_t wake; /* spool notify (writer thread) and stop (main thread) */
    uv_poll_t evpoll;
    uv_timer_t tick;
    int pipefd[2]; /* librdkafka's main queue writes here when it fills */

    _Atomic int stopping;
    _Atomic uint64_t deadline_ms; /* CLOCK_MONOTONIC, valid once stopping */

    /* Sink thread only from here on. */
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    rd_kafka_topic_t *rkt[T__COUNT];
    int32_t nparts[T__COUNT];
    last_pos *last[T__COUNT];
    int rk_dying; /* ignore delivery reports: the producer is being destroyed */

    inflight *fifo;
    size_t head, count, prod; /* prod: entries from head fully produced */
    uint64_t fifo_bytes;
    uint64_t committed;
    int eof, restart, done;
    unsigned backoff_ms;
    cw_log_limit lim_err, lim_dr, lim_bad, lim_big;
    cw_buf stub; /* the value sent in place of one over kafka.max_value_bytes */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void limited(cw_log_limit *l, enum cw_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void limited(cw_log_limit *l, enum cw_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cw_vlog_limited(l, now_ms(), lvl, MOD, fmt, ap);
    va_end(ap);
}

/* ---- helpers ---- */

static int32_t partition_of(const cw_kafka_sink *k, int t, const char *key, size_t len)
{
    return rd_kafka_msg_partitioner_murmur2(NULL, key, len, k->nparts[t], NULL, NULL);
}

/* "<u64>.<u32>", nothing else. Returns 0 or -1. */
static int parse_pos(const char *s, size_t len, uint64_t *off, uint32_t *idx)
{
    char buf[48];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *dot = strchr(buf, '.');
    if (!dot || dot == buf || !dot[1]) return -1;
    for (char *p = buf; *p; p++)
        if (p != dot && (*p < '0' || *p > '9')) return -1;
    errno = 0;
    unsigned long long o = strtoull(buf, NULL, 10);
    unsigned long long i = strtoull(dot + 1, NULL, 10);
    if (errno || i > UINT32_MAX) return -1;
    *off = o;
    *idx = (uint32_t)i;
    return 0;
}

static int stop_due(cw_kafka_sink *k)
{
    if (!atomic_load(&k->stopping)) return 0;
    if (now_ms() >= atomic_load(&k->deadline_ms)) return 1;
    /* Nothing left to deliver: no need to wait for a broker. */
    return k->count == 0 && cw_spool_reader_lag(k->reader) == 0;
}

/* Sleeps ms in small steps, returning early (1) if the sink must stop. */
static int nap(cw_kafka_sink *k, unsigned ms)
{
    uint64_t until = now_ms() + ms;
    while (now_ms() < until) {
        if (stop_due(k)) return 1;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return stop_due(k);
}

static inflight *at(cw_kafka_sink *k, size_t i)
{
    return &k->fifo[(k->head + i) % FIFO_MAX_RECORDS];
}

static void schedule_restart(cw_kafka_sink *k)
{
    if (k->restart) return;
    k->restart = 1;
    uv_stop(&k->loop);
}

/* ---- callbacks served by rd_kafka_poll (sink thread) ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    cw_kafka_sink *k = opaque;
    inflight *e = m->_private;
    if (k->rk_dying || !e) return;
    if (m->err) {
        cw_metric_add(cw_m.sink_errors_total[CW_SINK_KAFKA], 1);
        limited(&k->lim_dr, CW_LOG_ERROR,
                "delivery to %s [%" PRId32 "] failed: %s; replacing the producer",
                rd_kafka_topic_name(m->rkt), m->partition, rd_kafka_err2str(m->err));
        schedule_restart(k);
        return;
    }
    if (e->outstanding) e->outstanding--;
    int kind = e->kind == CW_REC_OUT_EVENTS  ? CW_SINK_EVENTS
               : e->kind == CW_REC_OUT_ALERT ? CW_SINK_ALERTS
                                             : CW_SINK_INCIDENTS;
    cw_metric_add(cw_m.sink_delivered_total[CW_SINK_KAFKA][kind], 1);
    cw_metric_set(cw_m.sink_up[CW_SINK_KAFKA], 1);
    k->backoff_ms = 0;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    cw_kafka_sink *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_resp_err_t fe = rd_kafka_fatal_error(rk, buf, sizeof buf);
        cw_metric_add(cw_m.sink_errors_total[CW_SINK_KAFKA], 1);
        cw_error(MOD, "fatal producer error %s: %s; replacing the producer",
                 rd_kafka_err2name(fe), buf);
        if (!k->rk_dying && k->loop_ready) schedule_restart(k);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        cw_metric_set(cw_m.sink_up[CW_SINK_KAFKA], 0);
    cw_metric_add(cw_m.sink_errors_total[CW_SINK_KAFKA], 1);
    limited(&k->lim_err, CW_LOG_WARN, "%s: %s", k->cfg.kafka_brokers, reason);
}

/* ---- set-up (sink thread, before the loop runs) ---- */

static void free_last(cw_kafka_sink *k)
{
    for (int t = 0; t < T__COUNT; t++) {
        free(k->last[t]);
        k->last[t] = NULL;
    }
}

/* Creates the topics in `want` (a bit per topic) and waits for the result.
 * Returns 0 when each exists (created now or before), -1 otherwise. */
static int create_topics(cw_kafka_sink *k, unsigned want)
{
    rd_kafka_NewTopic_t *nt[T__COUNT];
    size_t n = 0;
    int rf = k->cfg.kafka_replication_factor ? (int)k->cfg.kafka_replication_factor : -1;
    char e[256];
    for (int t = 0; t < T__COUNT; t++) {
        if (!(want & (1u << t))) continue;
        nt[n] = rd_kafka_NewTopic_new(k->topic[t], (int)k->cfg.kafka_partitions, rf, e, sizeof e);
        if (!nt[n]) {
            cw_error(MOD, "topic %s: %s", k->topic[t], e);
            for (size_t i = 0; i < n; i++) rd_kafka_NewTopic_destroy(nt[i]);
            return -1;
        }
        cw_info(MOD, "creating topic %s (%u partitions, replication %d)", k->topic[t],
                k->cfg.kafka_partitions, rf);
        n++;
    }
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(k->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(o, CREATE_MAX_MS - 1000, e, sizeof e);
    rd_kafka_AdminOptions_set_operation_timeout(o, CREATE_MAX_MS - 2000, e, sizeof e);
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
    rd_kafka_CreateTopics(k->rk, nt, n, o, q);
    rd_kafka_NewTopic_destroy_array(nt, n);
    rd_kafka_AdminOptions_destroy(o);

    int rc = -1;
    uint64_t until = now_ms() + CREATE_MAX_MS;
    rd_kafka_event_t *ev = NULL;
    /* Short polls so a stop is noticed; the request itself times out on
     * its own before `until`, so the result always comes. */
    while (!ev && now_ms() < until && !stop_due(k)) ev = rd_kafka_queue_poll(q, 200);
    if (ev) {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        if (rd_kafka_event_error(ev) || !res) {
            cw_warn(MOD, "create topics: %s", rd_kafka_event_error_string(ev));
        } else {
            size_t cnt;
            const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
            rc = 0;
            for (size_t i = 0; i < cnt; i++) {
                rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[i]);
                if (te == RD_KAFKA_RESP_ERR_NO_ERROR ||
                    te == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                    continue;
                cw_error(MOD, "create topic %s: %s", rd_kafka_topic_result_name(tr[i]),
                         rd_kafka_topic_result_error_string(tr[i]));
                rc = -1;
            }
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Waits until the three topics exist, creating the missing ones, and
 * records their partition counts. Returns 0, or -1 (stop, or give up this
 * attempt: the caller backs off and tries again). */
static int ensure_topics(cw_kafka_sink *k)
{
    int created = 0;
    for (int attempt = 0; attempt < 30; attempt++) {
        if (stop_due(k)) return -1;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(k->rk, 1, NULL, &md, SETUP_CALL_MS);
        if (err) {
            cw_metric_add(cw_m.sink_errors_total[CW_SINK_KAFKA], 1);
            limited(&k->lim_err, CW_LOG_WARN, "%s: metadata: %s", k->cfg.kafka_brokers,
                    rd_kafka_err2str(err));
            continue; /* the call itself waited */
        }
        unsigned missing = 0;
        for (int t = 0; t < T__COUNT; t++) {
            k->nparts[t] = 0;
            for (int i = 0; i < md->topic_cnt; i++)
                if (strcmp(md->topics[i].topic, k->topic[t]) == 0 && !md->topics[i].err)
                    k->nparts[t] = md->topics[i].partition_cnt;
            if (k->nparts[t] <= 0) missing |= 1u << t;
        }
        rd_kafka_metadata_destroy(md);
        if (!missing) return 0;
        /* Create once per session; after that only wait for the new topics
         * to show in metadata (brokers learn of them a moment later). */
        if (!created) {
            if (create_topics(k, missing) < 0) return -1;
            created = 1;
        }
        if (nap(k, 200)) return -1;
    }
    cw_warn(MOD, "topics do not show in metadata; retrying");
    return -1;
}

static int topic_index(const cw_kafka_sink *k, const char *name)
{
    for (int t = 0; t < T__COUNT; t++)
        if (strcmp(k->topic[t], name) == 0) return t;
    return -1;
}

/* Fills k->last: every partition's newest cw-pos. Returns 0 or -1. */
static int scan_last(cw_kafka_sink *k)
{
    free_last(k);
    for (int t = 0; t < T__COUNT; t++) {
        k->last[t] = calloc((size_t)k->nparts[t], sizeof(last_pos));
        if (!k->last[t]) return -1;
    }
    char e[512];
    rd_kafka_conf_t *cc = rd_kafka_conf_dup(k->cconf);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof e);
    if (!c) {
        rd_kafka_conf_destroy(cc);
        cw_error(MOD, "scan consumer: %s", e);
        return -1;
    }
    int rc = -1, pending = 0;
    rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new(16);
    for (int t = 0; t < T__COUNT; t++) {
        for (int32_t p = 0; p < k->nparts[t]; p++) {
            int64_t lo = 0, hi = 0;
            rd_kafka_resp_err_t err;
            while ((err = rd_kafka_query_watermark_offsets(c, k->topic[t], p, &lo, &hi,
                                                           SETUP_CALL_MS))) {
                cw_metric_add(cw_m.sink_errors_total[CW_SINK_KAFKA], 1);
                limited(&k->lim_err, CW_LOG_WARN, "%s [%" PRId32 "]: watermarks: %s",
                        k->topic[t], p, rd_kafka_err2str(err));
                if (stop_due(k)) goto out;
            }
            if (hi <= lo) {
                k->last[t][p].scanned = 1;
                continue;
            }
            rd_kafka_topic_partition_list_add(pl, k->topic[t], p)->offset = hi - 1;
            pending++;
        }
    }
    if (pending && rd_kafka_assign(c, pl)) {
        cw_error(MOD, "scan: assign failed");
        goto out;
    }
    uint64_t until = now_ms() + SCAN_MAX_MS;
    while (pending > 0) {
        if (stop_due(k) || now_ms() >= until) {
            if (!stop_due(k)) cw_warn(MOD, "scan of the newest messages timed out; retrying");
            goto out;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m) continue;
        int t = m->rkt ? topic_index(k, rd_kafka_topic_name(m->rkt)) : -1;
        last_pos *lp = t >= 0 && m->partition >= 0 && m->partition < k->nparts[t]
                           ? &k->last[t][m->partition]
                           : NULL;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            limited(&k->lim_err, CW_LOG_WARN, "scan: %s", rd_kafka_message_errstr(m));
        } else if (lp && !lp->scanned) {
            /* A message, or the end before one (it was deleted meanwhile):
             * either way this partition is settled. */
            if (!m->err) {
                rd_kafka_headers_t *h = NULL;
                const void *v;
                size_t vl;
                const void *sv;
                size_t sl;
                /* Positions of another spool (a wiped data dir, another
                 * server) say nothing about ours: nothing is skipped. */
                if (rd_kafka_message_headers(m, &h) == 0 &&
                    rd_kafka_header_get_last(h, "cw-src", &sv, &sl) == 0 && sv &&
                    sl == CW_SPOOL_ID_LEN && memcmp(sv, k->src, sl) == 0 &&
                    rd_kafka_header_get_last(h, "cw-pos", &v, &vl) == 0 && v &&
                    parse_pos(v, vl, &lp->off, &lp->idx) == 0)
                    lp->set = 1;
            }
            lp->scanned = 1;
            pending--;
            if (lp->set)
                cw_debug(MOD, "%s [%d]: newest cw-pos %" PRIu64 ".%" PRIu32, k->topic[t],
                         m->partition, lp->off, lp->idx);
        }
        rd_kafka_message_destroy(m);
    }
    rc = 0;
out:
    rd_kafka_topic_partition_list_destroy(pl);
    rd_kafka_destroy(c);
    return rc;
}

static void teardown(cw_kafka_sink *k, int final);

/* One session's producer: created, topics ensured, newest positions known,
 * wired into the loop. Returns 0 or -1 (everything undone). */
static int setup(cw_kafka_sink *k)
{
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_dup(k->pconf);
    rd_kafka_conf_set_opaque(c, k);
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_conf_set_error_cb(c, on_error);
    k->rk_dying = 0;
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
    if (!k->rk) {
        rd_kafka_conf_destroy(c);
        cw_error(MOD, "producer: %s", e);
        return -1;
    }
    /* Delivery reports and errors land on the main queue; librdkafka writes
     * a byte to the pipe whenever it becomes non-empty, the loop polls. */
    k->mainq = rd_kafka_queue_get_main(k->rk);
    rd_kafka_queue_io_event_enable(k->mainq, k->pipefd[1], "1", 1);
    if (ensure_topics(k) < 0 || scan_last(k) < 0) goto fail;
    for (int t = 0; t < T__COUNT; t++) {
        k->rkt[t] = rd_kafka_topic_new(k->rk, k->topic[t], NULL);
        if (!k->rkt[t]) {
            cw_error(MOD, "topic %s: %s", k->topic[t], rd_kafka_err2str(rd_kafka_last_error()));
            goto fail;
        }
    }
    cw_info(MOD, "connected to %s: %s %d, %s %d, %s %d partitions", k->cfg.kafka_brokers,
            k->topic[0], k->nparts[0], k->topic[1], k->nparts[1], k->topic[2], k->nparts[2]);
    return 0;
fail:
    teardown(k, 0);
    return -1;
}

/* ---- the loop (sink thread) ---- */

static void complete_prefix(cw_kafka_sink *k)
{
    uint64_t end = 0;
    while (k->count > 0 && k->prod > 0) {
        inflight *e = at(k, 0);
        if (!e->produced || e->outstanding) break;
        end = e->end;
        k->fifo_bytes -= e->len;
        free(e->body);
        e->body = NULL;
        k->head = (k->head + 1) % FIFO_MAX_RECORDS;
        k->count--;
        k->prod--;
    }
    if (end > k->committed) {
        cw_spool_reader_commit_at(k->reader, end);
        k->committed = end;
    }
}

/* Produces one message; 0 sent, 1 skipped (already on the topic), -EAGAIN
 * (queue full: retry later), -EIO (any other refusal). */
static int produce_one(cw_kafka_sink *k, int t, inflight *e, uint32_t idx, const char *key,
                       size_t klen, const char *id, size_t idlen, const void *val, size_t vlen)
{
    int32_t p = partition_of(k, t, key, klen);
    const last_pos *lp = &k->last[t][p];
    if (lp->set && (e->offset < lp->off || (e->offset == lp->off && idx <= lp->idx))) {
        cw_metric_add(cw_m.sink_duplicates_total[CW_SINK_KAFKA], 1);
        return 1;
    }
    char pos[48];
    snprintf(pos, sizeof pos, "%" PRIu64 ".%" PRIu32, e->offset, idx);
    /* No RD_KAFKA_MSG_F_COPY: the payload is the FIFO's copy of the record,
     * kept until this message's delivery report. A value the broker would
     * refuse (forever, stopping the sink) goes as a stub (kafka_stub.h),
     * which librdkafka copies. */
    int flags = 0;
    if (vlen > k->cfg.kafka_max_value_bytes) {
        size_t max = (size_t)k->cfg.kafka_max_value_bytes;
        int r = t == T_EVENTS ? cw_kafka_event_stub(val, vlen, 0, &k->stub)
                              : cw_kafka_json_stub(id, idlen, vlen, &k->stub);
        if (r == 0 && t == T_EVENTS && k->stub.len > max)
            r = cw_kafka_event_stub(val, vlen, 1, &k->stub);
        if (r < 0) return -EIO; /* out of memory: the session starts over */
        cw_metric_add(cw_m.kafka_values_omitted_total, 1);
        limited(&k->lim_big, CW_LOG_WARN,
                "%s: value of %zu bytes over kafka.max_value_bytes (%zu): sent without its"
                " payload (id %.*s)",
                k->topic[t], vlen, max, (int)(idlen > 200 ? 200 : idlen), id);
        val = k->stub.data;
        vlen = k->stub.len;
        flags = RD_KAFKA_MSG_F_COPY;
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        k->rk, RD_KAFKA_V_RKT(k->rkt[t]), RD_KAFKA_V_PARTITION(p), RD_KAFKA_V_MSGFLAGS(flags),
        RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_KEY(key, klen),
        RD_KAFKA_V_HEADER("cw-id", id, (ssize_t)idlen), RD_KAFKA_V_HEADER("cw-pos", pos, -1),
        RD_KAFKA_V_HEADER("cw-src", k->src, CW_SPOOL_ID_LEN),
        RD_KAFKA_V_OPAQUE(e), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return -EAGAIN;
    if (err) {
        cw_metric_add(cw_m.sink_errors_total[CW_SINK_KAFKA], 1);
        limited(&k->lim_dr, CW_LOG_ERROR, "produce to %s (record %" PRIu64 "): %s", k->topic[t],
                e->offset, rd_kafka_err2str(err));
        return -EIO;
    }
    e->outstanding++;
    return 0;
}

static void bad_record(cw_kafka_sink *k, const inflight *e, const char *why)
{
    cw_metric_add(cw_m.sink_errors_total[CW_SINK_KAFKA], 1);
    limited(&k->lim_bad, CW_LOG_ERROR, "sink spool record at %" PRIu64 " (kind %u): %s; skipped",
            e->offset, e->kind, why);
}

/* Produces what is left of e, spending *budget. Returns 0 (done, or the
 * budget ran out: e->produced says which), -EAGAIN or -EIO. */
static int produce_record(cw_kafka_sink *k, inflight *e, int *budget)
{
    if (e->kind == CW_REC_OUT_EVENTS) {
        while (*budget > 0) {
            size_t pos = e->next_pos;
            cw_outrec_event ev;
            int r = cw_outrec_next(e->body, e->len, &pos, &ev);
            if (r == 0) break;
            if (r < 0) {
                bad_record(k, e, "malformed events entry");
                break;
            }
            r = produce_one(k, T_EVENTS, e, e->next_idx, ev.key, ev.key_len, ev.id, ev.id_len,
                            ev.pb, ev.pb_len);
            if (r < 0) return r;
            e->next_pos = pos;
            e->next_idx++;
            (*budget)--;
        }
        if (*budget > 0) e->produced = 1;
        return 0;
    }
    if (e->kind != CW_REC_OUT_ALERT && e->kind != CW_REC_OUT_INCIDENT) {
        bad_record(k, e, "unknown record kind");
        e->produced = 1;
        return 0;
    }
    int t = e->kind == CW_REC_OUT_ALERT ? T_ALERTS : T_INCIDENTS;
    json_error_t je;
    json_t *o = json_loadb((const char *)e->body, e->len, 0, &je);
    const char *id = o ? json_string_value(json_object_get(o, "id")) : NULL;
    int r = 0;
    if (!o || !json_is_object(o))
        bad_record(k, e, o ? "not a JSON object" : je.text);
    else if (!id || !*id)
        bad_record(k, e, "no \"id\"");
    else
        r = produce_one(k, t, e, 0, id, strlen(id), id, strlen(id), e->body, e->len);
    json_decref(o);
    if (r < 0) return r;
    (*budget)--;
    e->produced = 1;
    return 0;
}

static void check_drain(cw_kafka_sink *k)
{
    if (k->done || !atomic_load(&k->stopping)) return;
    if ((k->eof && k->count == 0) || now_ms() >= atomic_load(&k->deadline_ms)) {
        k->done = 1;
        uv_stop(&k->loop);
    }
}

static void pump(cw_kafka_sink *k)
{
    if (!k->rk || k->restart || k->done) return;
    int budget = PUMP_BUDGET;
    while (budget > 0) {
        if (k->prod < k->count) {
            inflight *e = at(k, k->prod);
            int r = produce_record(k, e, &budget);
            if (r == -EAGAIN) break; /* delivery reports will make room */
            if (r < 0) {
                schedule_restart(k);
                return;
            }
            if (!e->produced) break;
            k->prod++;
            continue;
        }
        if (k->eof) break;
        if (k->count == FIFO_MAX_RECORDS || (k->count > 0 && k->fifo_bytes >= FIFO_MAX_BYTES))
            break;
        cw_spool_record rec;
        int r = cw_spool_read(k->reader, &rec, 0);
        if (r == 0) {
            k->eof = 1;
            break;
        }
        if (r < 0) break;
        uint8_t *copy = malloc(rec.body_len ? rec.body_len : 1);
        if (!copy) {
            /* The record was read: it cannot be re-read without a restart of
             * the server, so failing here would lose it. Memory for one
             * body is tiny next to the FIFO bound; treat as fatal. */
            cw_error(MOD, "out of memory for a %" PRIu32 "-byte record", rec.body_len);
            abort();
        }
        memcpy(copy, rec.body, rec.body_len);
        inflight *e = at(k, k->count);
        *e = (inflight){.offset = rec.offset,
                        .end = rec.end,
                        .kind = rec.kind,
                        .body = copy,
                        .len = rec.body_len};
        k->count++;
        k->fifo_bytes += rec.body_len;
        budget--;
    }
    /* Budget spent: more may be waiting; come back after serving the rest. */
    if (budget <= 0) uv_async_send(&k->wake);
    complete_prefix(k);
    check_drain(k);
}

/* Loop thread: serves delivery reports and errors. */
static void serve(cw_kafka_sink *k)
{
    char buf[256];
    while (read(k->pipefd[0], buf, sizeof buf) > 0) {
    }
    if (!k->rk) return;
    for (int i = 0; i < 1000 && rd_kafka_poll(k->rk, 0) > 0; i++) {
    }
}

static void on_evpoll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    cw_kafka_sink *k = h->data;
    serve(k);
    pump(k);
}

/* Loop thread: a spool notify (from the writer thread) or stop (main). */
static void on_wake(uv_async_t *h)
{
    cw_kafka_sink *k = h->data;
    serve(k);
    pump(k);
    check_drain(k);
}

/* Loop thread: backstop for a missed wake-up, the lag gauge, the deadline. */
static void on_tick(uv_timer_t *h)
{
    cw_kafka_sink *k = h->data;
    serve(k);
    pump(k);
    cw_metric_set(cw_m.sink_lag_bytes[CW_SINK_KAFKA], (int64_t)cw_spool_reader_lag(k->reader));
    check_drain(k);
}

/* Sink thread, outside the loop. final: the sink is stopping, so first let
 * what is in flight finish for a moment and commit it. */
static void teardown(cw_kafka_sink *k, int final)
{
    if (k->rk) {
        if (final && !k->restart) {
            /* Serves delivery reports while it waits (bounded). */
            rd_kafka_flush(k->rk, 1000);
            complete_prefix(k);
        }
        k->rk_dying = 1;
        rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                  RD_KAFKA_PURGE_F_NON_BLOCKING);
        for (int t = 0; t < T__COUNT; t++) {
            if (k->rkt[t]) rd_kafka_topic_destroy(k->rkt[t]);
            k->rkt[t] = NULL;
        }
        if (k->mainq) {
            rd_kafka_queue_io_event_enable(k->mainq, -1, NULL, 0);
            rd_kafka_queue_destroy(k->mainq);
            k->mainq = NULL;
        }
        rd_kafka_destroy(k->rk);
        k->rk = NULL;
    }
    free_last(k);
    cw_metric_set(cw_m.sink_up[CW_SINK_KAFKA], 0);
    /* What was not confirmed is produced again, from its start, by the next
     * session (with the dedupe state read afresh). */
    for (size_t i = 0; i < k->count; i++) {
        inflight *e = at(k, i);
        e->produced = 0;
        e->next_pos = 0;
        e->next_idx = 0;
        e->outstanding = 0;
    }
    k->prod = 0;
}

static void *thread_main(void *arg)
{
    cw_kafka_sink *k = arg;
    while (!k->done) {
        if (stop_due(k)) break;
        if (setup(k) < 0) {
            k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_MIN_MS;
            if (k->backoff_ms > BACKOFF_MAX_MS) k->backoff_ms = BACKOFF_MAX_MS;
            if (nap(k, k->backoff_ms)) break;
            continue;
        }
        cw_metric_set(cw_m.sink_up[CW_SINK_KAFKA], 1);
        k->restart = 0;
        uv_async_send(&k->wake);
        uv_run(&k->loop, UV_RUN_DEFAULT);
        int restart = k->restart && !k->done;
        teardown(k, k->done);
        if (restart) {
            k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_MIN_MS;
            if (k->backoff_ms > BACKOFF_MAX_MS) k->backoff_ms = BACKOFF_MAX_MS;
            if (nap(k, k->backoff_ms)) break;
        }
    }
    teardown(k, 0);
    complete_prefix(k);
    cw_metric_set(cw_m.sink_lag_bytes[CW_SINK_KAFKA], (int64_t)cw_spool_reader_lag(k->reader));
    if (k->count)
        cw_info(MOD, "stopping with %zu records unconfirmed; they stay in the sink spool",
                k->count);
    /* Nothing left to deliver: close the loop here, on its own thread. */
    cw_spool_reader_set_notify(k->reader, NULL, NULL);
    uv_close((uv_handle_t *)&k->wake, NULL);
    uv_close((uv_handle_t *)&k->evpoll, NULL);
    uv_close((uv_handle_t *)&k->tick, NULL);
    uv_run(&k->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&k->loop) != 0) cw_error(MOD, "loop still has handles at exit");
    return NULL;
}

/* Writer thread of the spool: new records may be readable. */
static void on_spool_notify(void *ud)
{
    cw_kafka_sink *k = ud;
    uv_async_send(&k->wake);
}

/* ---- public ---- */

int cw_kafka_sink_create(cw_kafka_sink **out, const cw_config *cfg, cw_spool *sink_spool,
                         char *err, size_t errlen)
{
    *out = NULL;
    cw_kafka_sink *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, "kafka: out of memory");
        return -1;
    }
    k->cfg = *cfg;
    cw_buf_init(&k->stub, 0);
    k->pipefd[0] = k->pipefd[1] = -1;
    k->topic[T_EVENTS] = k->cfg.kafka_topic_events;
    k->topic[T_ALERTS] = k->cfg.kafka_topic_alerts;
    k->topic[T_INCIDENTS] = k->cfg.kafka_topic_incidents;
    snprintf(k->src, sizeof k->src, "%s", cw_spool_id(sink_spool));
    for (int t = 0; t < T__COUNT; t++) {
        if (!*k->topic[t]) {
            snprintf(err, errlen, "kafka: empty topic name");
            goto fail;
        }
    }
    if (cw_kafka_producer_conf(cfg, &k->pconf, err, errlen) < 0 ||
        cw_kafka_consumer_conf(cfg, &k->cconf, err, errlen) < 0)
        goto fail;
    k->fifo = calloc(FIFO_MAX_RECORDS, sizeof *k->fifo);
    if (!k->fifo) {
        snprintf(err, errlen, "kafka: out of memory");
        goto fail;
    }
    int r = cw_spool_reader_open(sink_spool, "kafka", &k->reader);
    if (r < 0) {
        snprintf(err, errlen, "kafka: sink spool reader: %s", strerror(-r));
        goto fail;
    }
    *out = k;
    return 0;
fail:
    cw_kafka_sink_free(k);
    return -1;
}

int cw_kafka_sink_start(cw_kafka_sink *k, char *err, size_t errlen)
{
    if (k->started) {
        snprintf(err, errlen, "kafka: already started");
        return -1;
    }
    int r;
    if (pipe2(k->pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "kafka: pipe: %s", strerror(errno));
        return -1;
    }
    /* The loop and its handles are made here, on the main thread, before
     * the sink thread exists; from then on only that thread touches them. */
    if ((r = uv_loop_init(&k->loop)) < 0) goto uverr;
    k->loop_ready = 1;
    uv_async_init(&k->loop, &k->wake, on_wake);
    uv_timer_init(&k->loop, &k->tick);
    uv_poll_init(&k->loop, &k->evpoll, k->pipefd[0]);
    k->wake.data = k->tick.data = k->evpoll.data = k;
    uv_timer_start(&k->tick, on_tick, TICK_MS, TICK_MS);
    uv_poll_start(&k->evpoll, UV_READABLE, on_evpoll);
    cw_spool_reader_set_notify(k->reader, on_spool_notify, k);
    cw_metric_set(cw_m.sink_up[CW_SINK_KAFKA], 0);
    if ((r = pthread_create(&k->thread, NULL, thread_main, k)) != 0) {
        cw_spool_reader_set_notify(k->reader, NULL, NULL);
        uv_close((uv_handle_t *)&k->wake, NULL);
        uv_close((uv_handle_t *)&k->evpoll, NULL);
        uv_close((uv_handle_t *)&k->tick, NULL);
        uv_run(&k->loop, UV_RUN_DEFAULT);
        uv_loop_close(&k->loop);
        k->loop_ready = 0;
        snprintf(err, errlen, "kafka: thread: %s", strerror(r));
        return -1;
    }
    pthread_setname_np(k->thread, "cw-kafka");
    k->started = 1;
    return 0;
uverr:
    snprintf(err, errlen, "kafka: loop: %s", uv_strerror(r));
    return -1;
}

void cw_kafka_sink_stop(cw_kafka_sink *k, unsigned drain_ms)
{
    if (!k || !k->started) return;
    atomic_store(&k->deadline_ms, now_ms() + drain_ms);
    atomic_store(&k->stopping, 1);
    uv_async_send(&k->wake);
    pthread_join(k->thread, NULL);
    k->started = 0;
    k->loop_ready = 0;
}

void cw_kafka_sink_free(cw_kafka_sink *k)
{
    if (!k) return;
    if (k->started) cw_kafka_sink_stop(k, 0);
    if (k->fifo) {
        for (size_t i = 0; i < k->count; i++) free(at(k, i)->body);
        free(k->fifo);
    }
    if (k->pconf) rd_kafka_conf_destroy(k->pconf);
    if (k->cconf) rd_kafka_conf_destroy(k->cconf);
    for (int i = 0; i < 2; i++)
        if (k->pipefd[i] >= 0) close(k->pipefd[i]);
    cw_buf_free(&k->stub);
    free(k);
}

int cw_kafka_sink_check(const cw_config *cfg, unsigned timeout_ms, char *err, size_t errlen)
{
    rd_kafka_conf_t *c;
    if (cw_kafka_producer_conf(cfg, &c, err, errlen) < 0) return -1;
    char e[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
    if (!rk) {
        rd_kafka_conf_destroy(c);
        snprintf(err, errlen, "kafka: %s", e);
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t r = rd_kafka_metadata(rk, 1, NULL, &md, (int)timeout_ms);
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    if (r) {
        snprintf(err, errlen, "kafka: %s: %s", cfg->kafka_brokers, rd_kafka_err2str(r));
        return -1;
    }
    return 0;
}
