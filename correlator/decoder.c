#include "correlator/decoder.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define READ_TIMEOUT_MS 50
#define ERROR_BACKOFF_NS (20 * 1000000LL) /* after a spool read error */
#define QUICK_NS (2 * 1000000LL)          /* a "nothing new" faster than this is an error */
#define LOG_FIRST 10

struct cw_decoder {
    cw_spool_reader *reader;
    cw_decoder_bad_cb bad;
    void *ud;
    pthread_t thread;
    int started;
    atomic_int stopping;
    pthread_mutex_t lock;
    pthread_cond_t filled, freed;
    /* Slots head..tail-1 (mod SLOTS) are decoded and waiting; `taken` is the
     * number the consumer holds; the rest are free. */
    size_t head, count, taken;
    int eof;
    cw_rec_item items[CW_DECODER_SLOTS];
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pause_ns(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

/* Decoder thread: fills `it` from `rec`. Returns 0, or -1 (reported, skip). */
static int decode(cw_decoder *d, const cw_spool_record *rec, cw_rec_item *it)
{
    it->kind = rec->kind;
    memcpy(it->key, rec->key ? rec->key : "", rec->key ? rec->key_len : 0);
    it->key[rec->key ? rec->key_len : 0] = 0;
    it->seq = rec->seq;
    it->offset = rec->offset;
    it->end = rec->end;
    it->time_ns = rec->time_ns;
    it->hello = NULL;
    it->batch = NULL;
    it->audit = NULL;
    switch (rec->kind) {
    case CW_REC_HELLO:
        it->hello = chainwatch__v1__hello__unpack(&it->arena.pb, rec->body_len, rec->body);
        if (it->hello) return 0;
        d->bad(d->ud, rec, it->arena.exhausted ? "Hello over the decode memory bound"
                                               : "Hello does not decode");
        return -1;
    case CW_REC_BATCH:
        it->batch = chainwatch__v1__event_batch__unpack(&it->arena.pb, rec->body_len, rec->body);
        if (it->batch) return 0;
        d->bad(d->ud, rec, it->arena.exhausted ? "batch over the decode memory bound"
                                               : "batch does not decode");
        return -1;
    case CW_REC_AUDIT: {
        json_error_t jerr;
        /* JSON_ALLOW_NUL: accept what the webhook accepted; "\u0000" in a
         * string only truncates the C view of it. */
        it->audit = json_loadb((const char *)rec->body, rec->body_len, JSON_ALLOW_NUL, &jerr);
        if (it->audit) return 0;
        d->bad(d->ud, rec, "audit event is not valid JSON");
        return -1;
    }
    default:
        d->bad(d->ud, rec, "unknown record kind");
        return -1;
    }
}

static void finish(cw_decoder *d)
{
    pthread_mutex_lock(&d->lock);
    d->eof = 1;
    pthread_cond_broadcast(&d->filled);
    pthread_mutex_unlock(&d->lock);
}

static void *run(void *arg)
{
    cw_decoder *d = arg;
    int read_errors = 0;
    pthread_setname_np(pthread_self(), "cw-decode"); /* for top -H and the benchmarks */
    for (;;) {
        /* Wait for a free slot: a slow consumer holds the decoder back. */
        pthread_mutex_lock(&d->lock);
        while (d->count + d->taken == CW_DECODER_SLOTS) pthread_cond_wait(&d->freed, &d->lock);
        /* In ring order: taken slots (behind head), waiting ones, then free. */
        cw_rec_item *it = &d->items[(d->head + d->count) % CW_DECODER_SLOTS];
        pthread_mutex_unlock(&d->lock);

        cw_spool_record rec;
        int64_t before = mono_ns();
        int r = cw_spool_read(d->reader, &rec, READ_TIMEOUT_MS);
        if (r == 1) {
            read_errors = 0;
            cw_arena_reset(&it->arena);
            if (decode(d, &rec, it) < 0) continue;
            pthread_mutex_lock(&d->lock);
            d->count++;
            pthread_cond_signal(&d->filled);
            pthread_mutex_unlock(&d->lock);
            continue;
        }
        if (r == CW_SPOOL_EOF) break;
        if (r < -1) {
            if (++read_errors <= LOG_FIRST) cw_error("pipeline", "spool read failed (%d); retrying", r);
            pause_ns(ERROR_BACKOFF_NS);
        } else if (mono_ns() - before < QUICK_NS) {
            /* -1 without waiting: the spool could not read a segment right
             * now (logged there) and will retry; do not spin on it. */
            pause_ns(ERROR_BACKOFF_NS);
        }
        /* Nothing new: stopping without cw_spool_stop() ends here. */
        if (atomic_load(&d->stopping)) break;
    }
    finish(d);
    return NULL;
}

int cw_decoder_create(cw_decoder **out, cw_spool_reader *reader, size_t arena_bytes,
                      cw_decoder_bad_cb bad, void *ud)
{
    cw_decoder *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->reader = reader;
    d->bad = bad;
    d->ud = ud;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->filled, NULL);
    pthread_cond_init(&d->freed, NULL);
    for (int i = 0; i < CW_DECODER_SLOTS; i++) cw_arena_init(&d->items[i].arena, arena_bytes);
    *out = d;
    return 0;
}

int cw_decoder_start(cw_decoder *d)
{
    int r = pthread_create(&d->thread, NULL, run, d);
    if (r != 0) return -r;
    d->started = 1;
    return 0;
}

int cw_decoder_next(cw_decoder *d, cw_rec_item **item, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&d->lock);
    while (d->count == 0 && !d->eof) {
        if (pthread_cond_timedwait(&d->filled, &d->lock, &deadline) == ETIMEDOUT) break;
    }
    int r;
    if (d->count > 0) {
        *item = &d->items[d->head];
        d->head = (d->head + 1) % CW_DECODER_SLOTS;
        d->count--;
        d->taken++;
        r = 1;
    } else {
        r = d->eof ? 0 : -1;
    }
    pthread_mutex_unlock(&d->lock);
    return r;
}

void cw_decoder_release(cw_decoder *d, cw_rec_item *item)
{
    if (item->audit) {
        json_decref(item->audit);
        item->audit = NULL;
    }
    /* Slots go back in the order they were taken (the consumer processes
     * in order), so the ring stays contiguous. */
    pthread_mutex_lock(&d->lock);
    d->taken--;
    pthread_cond_signal(&d->freed);
    pthread_mutex_unlock(&d->lock);
}

void cw_decoder_stop(cw_decoder *d)
{
    if (!d || !d->started) return;
    atomic_store(&d->stopping, 1);
    pthread_join(d->thread, NULL);
    d->started = 0;
}

void cw_decoder_free(cw_decoder *d)
{
    if (!d) return;
    cw_decoder_stop(d);
    for (int i = 0; i < CW_DECODER_SLOTS; i++) {
        if (d->items[i].audit) json_decref(d->items[i].audit);
        cw_arena_destroy(&d->items[i].arena);
    }
    pthread_cond_destroy(&d->filled);
    pthread_cond_destroy(&d->freed);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
