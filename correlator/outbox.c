/* outbox: the pipeline's writer of the sink spool. See outbox.h. */
#include "correlator/outbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "storage/outrec.h"

#define WAIT_SLICE_MS 100 /* re-check abort and lost wake-ups this often */

enum { ST_PENDING, ST_OK, ST_FAILED, ST_UNSENT };

typedef struct item {
    cw_spool_req req; /* first: the done callback gets &req */
    struct item *next;
    struct cw_outbox *o;
    _Atomic int state;
    size_t len;
    uint8_t body[]; /* the copy the spool writes from */
} item;

struct cw_outbox {
    cw_spool *spool;
    uint64_t max_bytes;
    uint64_t resume;
    /* Pipeline thread only. */
    item *head, *tail;
    uint64_t bytes;   /* bodies in the FIFO */
    uint64_t durable; /* highest seq with everything before it durable */
    /* Shared with the writer thread and abort(). */
    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint64_t space_gen; /* bumped by the space listener */
    _Atomic int aborted;
};

/* Writer thread: the record is written (or failed). */
static void on_done(cw_spool_req *req)
{
    item *it = (item *)req;
    cw_outbox *o = it->o;
    atomic_store_explicit(&it->state, req->status == CW_SPOOL_OK ? ST_OK : ST_FAILED,
                          memory_order_release);
    pthread_mutex_lock(&o->lock);
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->lock);
}

/* Writer thread: the sink spool has room again. */
static void on_space(void *ud)
{
    cw_outbox *o = ud;
    pthread_mutex_lock(&o->lock);
    o->space_gen++;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->lock);
}

static void collect_hwm(const char *id, size_t len, uint64_t seq, void *ud)
{
    cw_outbox *o = ud;
    if (len == strlen(CW_OUTREC_KEY) && memcmp(id, CW_OUTREC_KEY, len) == 0 && seq > o->resume)
        o->resume = seq;
}

int cw_outbox_create(cw_outbox **out, cw_spool *sink_spool, uint64_t max_bytes)
{
    cw_outbox *o = calloc(1, sizeof *o);
    if (!o) return -ENOMEM;
    o->spool = sink_spool;
    o->max_bytes = max_bytes;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cv, NULL);
    int r = cw_spool_add_space_listener(sink_spool, on_space, o);
    if (r < 0) {
        cw_outbox_free(o);
        return r;
    }
    cw_spool_foreach_hwm(sink_spool, collect_hwm, o);
    *out = o;
    return 0;
}

/* Waits on the condition variable for at most one slice. Caller holds lock. */
static void wait_slice(cw_outbox *o)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&o->cv, &o->lock, &ts);
}

/* Submits it, waiting while the sink spool is full unless `wait` is 0 (then
 * the item is left ST_UNSENT). Returns 0 (queued, or unsent), or -1 when
 * aborted or refused for good. */
static int submit(cw_outbox *o, item *it, int wait)
{
    for (int counted = 0;;) {
        pthread_mutex_lock(&o->lock);
        uint64_t gen = o->space_gen;
        pthread_mutex_unlock(&o->lock);
        atomic_store_explicit(&it->state, ST_PENDING, memory_order_relaxed);
        int r = cw_spool_submit(o->spool, &it->req);
        if (r == CW_SPOOL_OK) return 0;
        if (r != CW_SPOOL_FULL) {
            cw_error("pipeline", "sink spool refused a record (%d); its outputs are not stored", r);
            atomic_store_explicit(&it->state, ST_UNSENT, memory_order_relaxed);
            return -1;
        }
        atomic_store_explicit(&it->state, ST_UNSENT, memory_order_relaxed);
        if (!wait) return 0;
        if (!counted++) cw_metric_add(cw_m.pipeline_sink_waits_total, 1);
        pthread_mutex_lock(&o->lock);
        /* One slice at most, then retry: room may have come back before
         * this submit failed, and then no listener call follows. */
        if (o->space_gen == gen && !atomic_load(&o->aborted)) wait_slice(o);
        pthread_mutex_unlock(&o->lock);
        if (atomic_load(&o->aborted)) return -1;
    }
}

/* Pops what is done from the head: durable records are freed, failed ones
 * sent again (without waiting; `wait` allows it). */
static int advance(cw_outbox *o, int wait)
{
    while (o->head) {
        item *it = o->head;
        int st = atomic_load_explicit(&it->state, memory_order_acquire);
        if (st == ST_PENDING) break;
        if (st == ST_FAILED || st == ST_UNSENT) {
            if (st == ST_FAILED)
                cw_warn("pipeline", "sink spool write failed; writing the record again");
            if (submit(o, it, wait) < 0) return -1;
            break;
        }
        if (it->req.seq > o->durable) o->durable = it->req.seq;
        o->head = it->next;
        if (!o->head) o->tail = NULL;
        o->bytes -= it->len;
        free(it);
    }
    return 0;
}

void cw_outbox_poll(cw_outbox *o)
{
    advance(o, 0);
}

/* Waits until the head changes state or a slice passes. */
static void wait_head(cw_outbox *o)
{
    pthread_mutex_lock(&o->lock);
    if (o->head && atomic_load_explicit(&o->head->state, memory_order_acquire) == ST_PENDING &&
        !atomic_load(&o->aborted))
        wait_slice(o);
    pthread_mutex_unlock(&o->lock);
}

int cw_outbox_put(cw_outbox *o, uint8_t kind, const void *body, size_t len, uint64_t seq)
{
    if (atomic_load(&o->aborted)) return -1;
    /* Bound the copies held in memory: wait for the writer to catch up. */
    for (int counted = 0; o->head && o->bytes + len > o->max_bytes;) {
        if (advance(o, 1) < 0) return -1;
        if (!o->head || o->bytes + len <= o->max_bytes) break;
        if (!counted++) cw_metric_add(cw_m.pipeline_sink_waits_total, 1);
        wait_head(o);
        if (atomic_load(&o->aborted)) return -1;
    }
    item *it = malloc(sizeof *it + len);
    if (!it) {
        cw_error("pipeline", "out of memory for a sink spool record");
        return -1;
    }
    memset(&it->req, 0, sizeof it->req);
    it->next = NULL;
    it->o = o;
    it->len = len;
    if (len) memcpy(it->body, body, len);
    it->req.kind = kind;
    it->req.key = CW_OUTREC_KEY;
    it->req.key_len = (uint8_t)strlen(CW_OUTREC_KEY);
    it->req.seq = seq;
    it->req.body = it->body;
    it->req.body_len = (uint32_t)len;
    it->req.done = on_done;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    it->req.time_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    /* Records must reach the spool in order, so a new one waits behind an
     * earlier one that is still unsent. */
    if (advance(o, 1) < 0 || submit(o, it, 1) < 0) {
        free(it);
        return -1;
    }
    if (o->tail) o->tail->next = it;
    else o->head = it;
    o->tail = it;
    o->bytes += len;
    return 0;
}

uint64_t cw_outbox_durable(cw_outbox *o)
{
    return o->durable;
}

int cw_outbox_idle(cw_outbox *o)
{
    return o->head == NULL;
}

uint64_t cw_outbox_resume(const cw_outbox *o)
{
    return o->resume;
}

int cw_outbox_drain(cw_outbox *o)
{
    while (o->head) {
        if (advance(o, 1) < 0) return -1;
        if (!o->head) break;
        if (atomic_load(&o->aborted)) return -1;
        wait_head(o);
    }
    return 0;
}

void cw_outbox_abort(cw_outbox *o)
{
    atomic_store(&o->aborted, 1);
    pthread_mutex_lock(&o->lock);
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->lock);
}

void cw_outbox_free(cw_outbox *o)
{
    if (!o) return;
    /* Pending items are referenced by the spool until their done callback
     * runs; the spool is stopped (which runs every callback) before this. */
    while (o->head) {
        item *it = o->head;
        o->head = it->next;
        free(it);
    }
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->lock);
    free(o);
}
