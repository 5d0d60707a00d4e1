/* audit_intake: a webhook request from body to response. The contract is in
 * audit_intake.h.
 *
 * A request's life: post() parses and de-duplicates, then advance() submits
 * its records one by one. `refs` counts one hold for the loop (until it stops
 * submitting) plus one per record queued in the spool; whoever drops it to
 * zero finishes the request: the loop directly, or the last done callback by
 * posting `msg` to the loop. A request waiting for spool room sits in the
 * parked FIFO; only its head is ever resumed, expired or given up, so the
 * list is singly linked.
 */
#include "server/audit_intake.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "server/audit.h"
#include "server/dedupe.h"

enum { RL_MALFORMED, RL_TOO_LARGE, RL_INVALID, RL_REPAIRED, RL_UNAVAILABLE, RL__COUNT };

typedef struct audit_rec {
    cw_spool_req sreq;
    cw_dedupe_ref ref;
} audit_rec;

struct cw_audit_req {
    cw_msg msg;
    cw_audit_intake *in;
    void *conn; /* NULL once detached */
    cw_audit_req *next_parked;
    int parked;
    uint64_t parked_at;
    const char *gave_up; /* why the rest was not submitted, or NULL */
    atomic_size_t refs;
    cw_audit_batch batch;
    audit_rec *recs;
    size_t n_recs, next_rec, duplicates, too_big, mem;
    char cluster[CW_AUDIT_CLUSTER_MAX + 1];
};

struct cw_audit_intake {
    cw_audit_intake_opts o;
    cw_dedupe *dedupe;
    uint64_t inflight_bytes;
    size_t inflight_reqs;
    cw_audit_req *park_head, *park_tail;
    size_t n_parked;
    int stopping;
    cw_log_limit rl[RL__COUNT];
};

/* Logs at most one line per second per reason: a misbehaving client must not
 * flood the log. */
static void rl_log(cw_audit_intake *in, int which, enum cw_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void rl_log(cw_audit_intake *in, int which, enum cw_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cw_vlog_limited(&in->rl[which], uv_now(in->o.loop), lvl, "audit", fmt, ap);
    va_end(ap);
}

static void respond_error(cw_audit_intake *in, void *conn, int status, const char *why)
{
    json_t *j = json_pack("{s:s}", "error", why);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        in->o.respond(in->o.ud, conn, status, s, strlen(s));
    else
        in->o.respond(in->o.ud, conn, status, "{\"error\":\"out of memory\"}", 25);
    free(s);
    json_decref(j);
}

static void unavailable(cw_audit_intake *in, void *conn, const char *cluster, const char *why)
{
    cw_metric_add(cw_m.audit_requests_rejected[CW_AUDIT_REJ_UNAVAILABLE], 1);
    rl_log(in, RL_UNAVAILABLE, CW_LOG_WARN, "cluster %s: answering 503: %s", cluster, why);
    if (conn)
        respond_error(in, conn, 503, why);
}

int cw_audit_intake_create(cw_audit_intake **out, const cw_audit_intake_opts *opts)
{
    cw_audit_intake *in = calloc(1, sizeof(*in));
    if (!in)
        return CW_AUDIT_ENOMEM;
    in->o = *opts;
    int rc = cw_dedupe_create(&in->dedupe, opts->dedupe_entries);
    if (rc != 0) {
        free(in);
        return rc;
    }
    *out = in;
    return 0;
}

void cw_audit_intake_free(cw_audit_intake *in)
{
    if (!in)
        return;
    cw_dedupe_free(in->dedupe);
    free(in);
}

size_t cw_audit_intake_inflight(const cw_audit_intake *in)
{
    return in->inflight_reqs;
}

/* Spool writer thread: a record is durable (or failed). */
static void on_rec_done(cw_spool_req *sreq)
{
    cw_audit_req *r = sreq->user;
    if (atomic_fetch_sub(&r->refs, 1) == 1)
        cw_mailbox_post(r->in->o.mailbox, &r->msg);
}

/* Loop thread: every record of r is done (or was never submitted). */
static void finish(cw_audit_req *r)
{
    cw_audit_intake *in = r->in;
    size_t ok = 0, failed = 0;
    for (size_t i = 0; i < r->n_recs; i++) {
        int stored = i < r->next_rec && r->recs[i].sreq.status == CW_SPOOL_OK;
        cw_dedupe_end(in->dedupe, r->recs[i].ref, stored);
        ok += (size_t)stored;
        failed += (size_t)(i < r->next_rec && !stored);
    }
    cw_metric_add(cw_m.events_received[CW_SRC_K8S_AUDIT], ok);
    in->inflight_bytes -= r->mem;
    in->inflight_reqs--;
    if (failed || r->gave_up) {
        unavailable(in, r->conn, r->cluster, failed ? "storage write failed" : r->gave_up);
    } else if (r->conn) {
        char body[128];
        int n = snprintf(body, sizeof(body),
                         "{\"accepted\":%zu,\"duplicates\":%zu,\"invalid\":%zu}", ok,
                         r->duplicates, r->batch.n_invalid + r->too_big);
        in->o.respond(in->o.ud, r->conn, 200, body, (size_t)n);
    }
    cw_audit_batch_free(&r->batch);
    free(r->recs);
    free(r);
}

/* Drops the loop's hold; returns 1 if r is still alive. */
static int release(cw_audit_req *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1) {
        finish(r);
        return 0;
    }
    return 1;
}

static void park(cw_audit_req *r)
{
    cw_audit_intake *in = r->in;
    r->parked = 1;
    r->parked_at = uv_now(in->o.loop);
    r->next_parked = NULL;
    if (in->park_tail)
        in->park_tail->next_parked = r;
    else
        in->park_head = r;
    in->park_tail = r;
    in->n_parked++;
}

static void unpark_head(cw_audit_intake *in)
{
    cw_audit_req *r = in->park_head;
    in->park_head = r->next_parked;
    if (!in->park_head)
        in->park_tail = NULL;
    in->n_parked--;
    r->parked = 0;
    r->next_parked = NULL;
}

/* Stops submitting r (it must be the parked head if parked): the records not
 * submitted are forgotten by de-duplication so that a retry stores them. */
static int give_up(cw_audit_req *r, const char *why)
{
    if (r->parked)
        unpark_head(r->in);
    r->gave_up = why;
    return release(r);
}

/* Submits r's remaining records. Returns 1 if r is still alive (parked, or
 * waiting for done callbacks). */
static int advance(cw_audit_req *r)
{
    cw_audit_intake *in = r->in;
    while (r->next_rec < r->n_recs) {
        if (in->stopping)
            return give_up(r, "server is stopping");
        atomic_fetch_add(&r->refs, 1); /* before submit: done may run at once */
        int rc = cw_spool_submit(in->o.spool, &r->recs[r->next_rec].sreq);
        if (rc == CW_SPOOL_OK) {
            r->next_rec++;
            continue;
        }
        atomic_fetch_sub(&r->refs, 1); /* never reaches 0: the loop holds one */
        if (rc != CW_SPOOL_FULL)
            return give_up(r, rc == CW_SPOOL_STOPPED ? "storage is stopped"
                                                     : "storage refused a record");
        if (r->parked)
            return 1; /* still the head; wait for the next space signal */
        if (in->n_parked >= in->o.max_parked)
            return give_up(r, "storage is full");
        park(r);
        return 1;
    }
    if (r->parked)
        unpark_head(in);
    return release(r);
}

cw_audit_req *cw_audit_intake_post(cw_audit_intake *in, const char *cluster, size_t cluster_len,
                                   const char *body, size_t len, void *conn)
{
    char cl[CW_AUDIT_CLUSTER_MAX + 1];
    snprintf(cl, sizeof(cl), "%.*s", (int)cluster_len, cluster);
    if (in->stopping) {
        unavailable(in, conn, cl, "server is stopping");
        return NULL;
    }
    if (in->inflight_bytes + len > in->o.inflight_max) {
        unavailable(in, conn, cl, "too many events waiting for storage");
        return NULL;
    }
    cw_audit_batch b;
    char err[256];
    int rc = cw_audit_parse(body, len, &b, err, sizeof(err));
    if (rc == CW_AUDIT_EMALFORMED) {
        cw_metric_add(cw_m.audit_requests_rejected[CW_AUDIT_REJ_MALFORMED], 1);
        rl_log(in, RL_MALFORMED, CW_LOG_WARN, "cluster %s: refusing body of %zu bytes: %s", cl,
               len, err);
        respond_error(in, conn, 400, err);
        return NULL;
    }
    if (rc == CW_AUDIT_ETOOBIG) {
        cw_metric_add(cw_m.audit_requests_rejected[CW_AUDIT_REJ_TOO_LARGE], 1);
        rl_log(in, RL_TOO_LARGE, CW_LOG_WARN, "cluster %s: refusing body of %zu bytes: %s", cl,
               len, err);
        respond_error(in, conn, 413, err);
        return NULL;
    }
    if (rc != 0) {
        unavailable(in, conn, cl, err);
        return NULL;
    }
    if (b.n_invalid) {
        cw_metric_add(cw_m.audit_events_invalid, b.n_invalid);
        rl_log(in, RL_INVALID, CW_LOG_WARN,
               "cluster %s: skipped %zu event(s) without a usable auditID or stage", cl,
               b.n_invalid);
    }
    if (b.repaired)
        rl_log(in, RL_REPAIRED, CW_LOG_INFO,
               "cluster %s: repaired JSON that jansson refused (bad UTF-8, lone surrogates or "
               "huge numbers)",
               cl);

    cw_audit_req *r = calloc(1, sizeof(*r));
    audit_rec *recs = calloc(b.n_events ? b.n_events : 1, sizeof(*recs));
    if (!r || !recs) {
        free(r);
        free(recs);
        cw_audit_batch_free(&b);
        unavailable(in, conn, cl, "out of memory");
        return NULL;
    }
    r->in = in;
    r->conn = conn;
    r->msg.type = CW_AUDIT_MSG;
    r->batch = b;
    r->recs = recs;
    memcpy(r->cluster, cl, cluster_len + 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    for (size_t i = 0; i < b.n_events; i++) {
        const cw_audit_event *ev = &b.events[i];
        uint8_t key[CW_DEDUPE_KEY_LEN];
        audit_rec *rec = &recs[r->n_recs];
        if (ev->json_len > CW_SPOOL_BODY_MAX) {
            r->too_big++; /* the spool would refuse it: skip it like an invalid event */
            continue;
        }
        cw_audit_event_key(cl, cluster_len, ev, key);
        if (cw_dedupe_begin(in->dedupe, key, &rec->ref) == CW_DEDUPE_DUPLICATE) {
            r->duplicates++;
            continue;
        }
        rec->sreq.kind = CW_REC_AUDIT;
        rec->sreq.key = r->cluster;
        rec->sreq.key_len = (uint8_t)cluster_len;
        rec->sreq.seq = 0;
        rec->sreq.time_ns = now_ns;
        rec->sreq.body = (const uint8_t *)ev->json;
        rec->sreq.body_len = (uint32_t)ev->json_len;
        rec->sreq.done = on_rec_done;
        rec->sreq.user = r;
        r->n_recs++;
    }
    cw_metric_add(cw_m.audit_events_duplicate, r->duplicates);
    if (r->too_big) {
        cw_metric_add(cw_m.audit_events_invalid, r->too_big);
        rl_log(in, RL_INVALID, CW_LOG_WARN, "cluster %s: skipped %zu event(s) over %u bytes", cl,
               r->too_big, (unsigned)CW_SPOOL_BODY_MAX);
    }
    r->mem = sizeof(*r) + b.mem_bytes + (b.n_events ? b.n_events : 1) * sizeof(*recs);
    in->inflight_bytes += r->mem;
    in->inflight_reqs++;
    atomic_init(&r->refs, 1);
    if (in->park_head && r->n_recs) {
        /* Queue behind requests already waiting for room, in order. */
        if (in->n_parked >= in->o.max_parked)
            return give_up(r, "storage is full") ? r : NULL;
        park(r);
        return r;
    }
    return advance(r) ? r : NULL;
}

void cw_audit_intake_detach(cw_audit_req *r)
{
    r->conn = NULL;
}

void cw_audit_intake_on_msg(cw_audit_intake *in, cw_msg *msg)
{
    (void)in;
    finish((cw_audit_req *)((char *)msg - offsetof(cw_audit_req, msg)));
}

void cw_audit_intake_on_space(cw_audit_intake *in)
{
    while (in->park_head) {
        cw_audit_req *r = in->park_head;
        if (advance(r) && r->parked)
            break; /* full again: r stays at the head */
    }
}

void cw_audit_intake_tick(cw_audit_intake *in)
{
    /* A missed space signal must not strand parked requests: retry the head. */
    cw_audit_intake_on_space(in);
    uint64_t now = uv_now(in->o.loop);
    while (in->park_head && now - in->park_head->parked_at >= in->o.park_timeout_ms)
        give_up(in->park_head, "storage stayed full");
}

void cw_audit_intake_stop(cw_audit_intake *in)
{
    in->stopping = 1;
    while (in->park_head)
        give_up(in->park_head, "server is stopping");
}
