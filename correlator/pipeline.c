#include "correlator/pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "chainwatch.pb-c.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"
#include "correlator/enrich.h"
#include "correlator/decoder.h"
#include "correlator/detect.h"
#include "correlator/event.h"
#include "correlator/incident.h"
#include "correlator/latest.h"
#include "correlator/outbox.h"
#include "correlator/stored_event.h"
#include "storage/jsonl.h"
#include "storage/outrec.h"


/* Where rules are looked for when the configuration names no directory:
 * the installed set, else the source tree's (a developer build run in
 * place). */
#define CW_INSTALLED_RULES_DIR "/usr/share/chainwatch/rules"

#define READ_TIMEOUT_MS 50
#define FLUSH_EVERY_NS (100 * 1000000LL)    /* write(2) buffered lines */
#define COMMIT_EVERY_NS (1000 * 1000000LL)  /* fdatasync outputs, then commit */
/* One event's JSON: bounded by the record size times the worst escaping
 * expansion; anything larger is dropped rather than buffered. */
#define LINE_MAX_BYTES (64u * 1024 * 1024)
#define LINE_KEEP_BYTES (1024 * 1024) /* give back memory after a huge line */
#define DEFAULT_ARENA_BYTES (64u * 1024 * 1024)
/* Logged individually; after that only every LOG_EVERY-th. */
#define LOG_FIRST 10
#define LOG_EVERY 1000

struct cw_pipeline {
    cw_spool *spool;
    cw_spool_reader *reader;
    cw_jsonl *events_out, *alerts_out, *incidents_out;
    cw_enrich *enrich;
    int64_t max_clock_ahead_ns; /* cw_event_bound_clock */
    cw_incidents *incidents;
    cw_detector *detector; /* NULL: no rules directory, detection off */
    char rules_dir[CW_PATH_MAX];
    cw_decoder *decoder; /* reads and decodes the spool ahead of us */
    uint64_t done_end;   /* spool position past the last record fully processed */
    cw_buf line;
    /* The sink spool (NULL: no sink configured). For the input record being
     * processed: its events as one CW_REC_OUT_EVENTS body, and its alert
     * and incident lines (u8 kind, u32 length, bytes each), all put when
     * the record is done. Input records ending at or before `resume` had
     * their outputs stored before a restart: they are processed (to rebuild
     * enrichment and incident state) but their outputs are not put again. */
    cw_outbox *outbox;
    cw_buf out_events, out_lines;
    size_t out_event_count;
    /* Incident states since the last flush, newest per incident: put in
     * the sink spool on each commit (about every second), not on every
     * change. */
    cw_latest incidents_pending;
    int replaying;
    uint64_t resume;
    cw_stored_packer packer;
    cw_buf pb;
    pthread_t thread;
    int started;
    _Atomic uint64_t records, events, bad_records, bad_events;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void bad_record(cw_pipeline *p, const cw_spool_record *rec, const char *why)
{
    uint64_t n = atomic_fetch_add_explicit(&p->bad_records, 1, memory_order_relaxed) + 1;
    cw_metric_add(cw_m.pipeline_bad_records_total, 1);
    if (n <= LOG_FIRST || n % LOG_EVERY == 0)
        cw_warn("pipeline", "skipping record at spool offset %llu (kind %u): %s (%llu so far)",
                (unsigned long long)rec->offset, rec->kind, why, (unsigned long long)n);
}

static void bad_event(cw_pipeline *p, const char *id, const char *why)
{
    uint64_t n = atomic_fetch_add_explicit(&p->bad_events, 1, memory_order_relaxed) + 1;
    if (n <= LOG_FIRST || n % LOG_EVERY == 0)
        cw_warn("pipeline", "skipping event %s: %s (%llu so far)", id, why, (unsigned long long)n);
}

/* Adds ev to the current record's sink spool body. */
static void sink_event(cw_pipeline *p, const cw_event *ev)
{
    char key[CW_EVENT_ID_MAX];
    cw_outrec_event e = {.id = ev->id, .time_ns = ev->time_ns};
    size_t id_len = strlen(ev->id), key_len = cw_stored_event_key(ev, key, sizeof key);
    e.id_len = (uint16_t)id_len;
    e.key = key;
    e.key_len = (uint16_t)key_len;
    cw_buf_reset(&p->pb);
    if (cw_stored_event_pack(&p->packer, ev, &p->pb) < 0 || p->pb.len > UINT32_MAX) {
        bad_event(p, ev->id, "cannot encode it for the sinks");
        return;
    }
    e.pb = p->pb.data;
    e.pb_len = (uint32_t)p->pb.len;
    e.json = (const char *)p->line.data;
    e.json_len = (uint32_t)p->line.len;
    if (cw_outrec_append(&p->out_events, &e) < 0) {
        bad_event(p, ev->id, "too large for the sink spool");
        return;
    }
    p->out_event_count++;
}

static void write_event(cw_pipeline *p, const cw_event *ev)
{
    int to_sinks = p->outbox && !p->replaying;
    if (!p->events_out && !to_sinks) return;
    cw_buf_reset(&p->line);
    if (cw_event_to_json(ev, &p->line) < 0) {
        cw_metric_add(cw_m.output_lines_dropped_total, 1);
        bad_event(p, ev->id, "JSON form too large");
    } else {
        if (p->events_out) cw_jsonl_write(p->events_out, p->line.data, p->line.len);
        if (to_sinks) sink_event(p, ev);
    }
    if (p->line.alloc > LINE_KEEP_BYTES) {
        cw_buf_free(&p->line);
        cw_buf_init(&p->line, LINE_MAX_BYTES);
    }
}

/* Pipeline thread: puts the held incident states in the sink spool, the
 * last one carrying the end of the last record fully processed: with them,
 * every output up to there is put. */
static void flush_incidents(cw_pipeline *p)
{
    cw_latest *l = &p->incidents_pending;
    for (size_t i = 0; i < l->n; i++) {
        uint64_t seq = i + 1 == l->n ? p->done_end : 0;
        if (cw_outbox_put(p->outbox, CW_REC_OUT_INCIDENT, l->ents[i].data, l->ents[i].len, seq) < 0)
            cw_metric_add(cw_m.output_lines_dropped_total, 1);
    }
    cw_latest_clear(l);
}

/* The id of an incident line, which cw_inc_json starts with. */
static int incident_id(const char *line, size_t len, const char **id, size_t *id_len)
{
    static const char pre[] = "{\"id\":\"";
    if (len < sizeof pre || memcmp(line, pre, sizeof pre - 1) != 0) return -1;
    const char *s = line + sizeof pre - 1, *q = memchr(s, '"', len - (sizeof pre - 1));
    if (!q) return -1;
    *id = s;
    *id_len = (size_t)(q - s);
    return 0;
}

/* Pipeline thread: an alert or incident line from the incident stage.
 * Alerts are kept until the record is done; incident states until the next
 * flush, newest per incident. */
static void on_incident_line(void *ud, int is_incident, const char *line, size_t len)
{
    cw_pipeline *p = ud;
    if (!p->outbox || p->replaying) return;
    const char *id;
    size_t id_len;
    if (is_incident && incident_id(line, len, &id, &id_len) == 0) {
        int r = cw_latest_put(&p->incidents_pending, id, id_len, line, len);
        if (r == 1) {
            flush_incidents(p);
            r = cw_latest_put(&p->incidents_pending, id, id_len, line, len);
        }
        if (r == 0) return;
        /* An id too long to hold: written as it comes. */
    }
    uint8_t hdr[5] = {is_incident ? CW_REC_OUT_INCIDENT : CW_REC_OUT_ALERT, (uint8_t)len,
                      (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    if (len > UINT32_MAX || cw_buf_append(&p->out_lines, hdr, sizeof hdr) < 0 ||
        cw_buf_append(&p->out_lines, line, len) < 0) {
        cw_metric_add(cw_m.output_lines_dropped_total, 1);
        cw_error("pipeline", "out of memory for an %s bound for the sinks",
                 is_incident ? "incident" : "alert");
    }
}

/* Pipeline thread: the record ending at `end` is processed; puts its
 * outputs in the sink spool, the last one carrying `end` (outrec.h). */
static void sink_record_done(cw_pipeline *p, uint64_t end)
{
    const uint8_t *q = p->out_lines.data, *stop = q + p->out_lines.len;
    int have_events = p->out_event_count > 0;
    /* The events and alerts of this record carry `end` even while incident
     * states are held: once they are durable a restart must not put them
     * again (Kafka would hold them twice). The input cursor still waits for
     * the held states, since it is committed only after flush_incidents().
     * A crash loses at most the held states (a second's worth of snapshots,
     * superseded by the incident's next change). */
    while (q < stop) {
        uint8_t kind = q[0];
        uint32_t len = (uint32_t)q[1] | (uint32_t)q[2] << 8 | (uint32_t)q[3] << 16 |
                       (uint32_t)q[4] << 24;
        q += 5;
        int last = !have_events && q + len == stop;
        if (cw_outbox_put(p->outbox, kind, q, len, last ? end : 0) < 0)
            cw_metric_add(cw_m.output_lines_dropped_total, 1);
        q += len;
    }
    if (have_events &&
        cw_outbox_put(p->outbox, CW_REC_OUT_EVENTS, p->out_events.data, p->out_events.len, end) < 0)
        cw_metric_add(cw_m.output_lines_dropped_total, p->out_event_count);
    cw_buf_reset(&p->out_lines);
    cw_buf_reset(&p->out_events);
    p->out_event_count = 0;
    if (p->out_events.alloc > 4 * LINE_KEEP_BYTES) {
        cw_buf_free(&p->out_events);
        cw_buf_init(&p->out_events, CW_SPOOL_BODY_MAX);
    }
    if (p->out_lines.alloc > 4 * LINE_KEEP_BYTES) {
        cw_buf_free(&p->out_lines);
        cw_buf_init(&p->out_lines, 0);
    }
}

/* Pipeline thread (called from cw_detector_event): one rule match. */
static void on_alert(const cw_alert *a, void *ud)
{
    cw_pipeline *p = ud;
    cw_incidents_alert(p->incidents, a);
}

/* Pipeline thread: hands one enriched event on: incident context, rules,
 * then events-out. */
static void emit(cw_pipeline *p, const cw_event *ev)
{
    cw_incidents_observe(p->incidents, ev);
    if (p->detector) cw_detector_event(p->detector, ev, on_alert, p);
    write_event(p, ev);
}

/* After a record's events went through emit(): counted last, so that once
 * pipeline_events_total covers an event, its alerts and incident lines are
 * written (buffered) too. Per record rather than per event, with the
 * detection time measured around the whole record, to keep clock reads and
 * atomic updates off the per-event path. */
static void account(cw_pipeline *p, uint64_t events, int64_t t0)
{
    if (!events) return;
    if (p->detector) {
        cw_metric_add(cw_m.detect_ns_total, (uint64_t)(mono_ns() - t0));
        cw_metric_add(cw_m.detect_events_total, events);
    }
    atomic_fetch_add_explicit(&p->events, events, memory_order_relaxed);
    cw_metric_add(cw_m.pipeline_events_total, events);
}

static void handle_batch(cw_pipeline *p, const cw_rec_item *it)
{
    const Chainwatch__V1__EventBatch *b = it->batch;
    cw_event ev;
    uint64_t emitted = 0;
    int64_t t0 = mono_ns();
    if (b->n_events) cw_incidents_agent_batch(p->incidents, it->key);
    for (size_t i = 0; i < b->n_events; i++) {
        if (cw_event_from_agent(&ev, it->key, it->seq, (uint32_t)i, b->events[i],
                                it->time_ns) < 0) {
            char id[CW_EVENT_ID_MAX];
            snprintf(id, sizeof id, "%s:%llu:%zu", it->key, (unsigned long long)it->seq, i);
            bad_event(p, id, "no known payload");
            continue;
        }
        cw_event_bound_clock(&ev, it->time_ns, p->max_clock_ahead_ns);
        cw_enrich_agent_event(p->enrich, &ev);
        emit(p, &ev);
        emitted++;
    }
    account(p, emitted, t0);
}

static void handle_audit(cw_pipeline *p, const cw_rec_item *it)
{
    cw_event ev;
    if (cw_event_from_audit(&ev, it->key, it->audit, it->time_ns) < 0) {
        cw_spool_record rec = {.kind = it->kind, .offset = it->offset};
        bad_record(p, &rec, "audit event is not a JSON object");
        return;
    }
    cw_event_bound_clock(&ev, it->time_ns, p->max_clock_ahead_ns);
    int64_t t0 = mono_ns();
    cw_enrich_audit_event(p->enrich, &ev);
    emit(p, &ev);
    account(p, 1, t0);
}

/* Pipeline thread: one decoded record. Events point into the item (its
 * key, arena, JSON), which stays valid until it is released. */
static void handle_item(cw_pipeline *p, const cw_rec_item *it)
{
    atomic_fetch_add_explicit(&p->records, 1, memory_order_relaxed);
    if (p->outbox) p->replaying = it->end <= p->resume;
    if (it->kind == CW_REC_HELLO) cw_enrich_hello(p->enrich, it->key, it->hello);
    else if (it->kind == CW_REC_BATCH) handle_batch(p, it);
    else if (it->kind == CW_REC_AUDIT) handle_audit(p, it);
    if (p->outbox) sink_record_done(p, it->end);
    p->done_end = it->end;
}

/* Decoder thread: a record that does not decode is counted and skipped. */
static void on_bad_record(void *ud, const cw_spool_record *rec, const char *why)
{
    cw_pipeline *p = ud;
    atomic_fetch_add_explicit(&p->records, 1, memory_order_relaxed);
    bad_record(p, rec, why);
}

static void flush_outputs(cw_pipeline *p, int sync)
{
    cw_jsonl *outs[] = {p->events_out, p->alerts_out, p->incidents_out};
    for (int i = 0; i < 3; i++) {
        if (!outs[i]) continue;
        /* Errors are logged and counted by jsonl; the pipeline goes on. */
        if (sync) cw_jsonl_sync(outs[i]);
        else cw_jsonl_flush(outs[i]);
    }
}

/* Returns 1 when the commit covers everything processed, 0 when outputs
 * still in flight to the sink spool hold it back (commit again later). */
static int commit(cw_pipeline *p)
{
    flush_outputs(p, 1);
    /* Only what was processed (the decoder has read further ahead), and
     * with sinks only what has every output durable in the sink spool. */
    uint64_t end = p->done_end;
    if (p->outbox) {
        flush_incidents(p);
        cw_outbox_poll(p->outbox);
        if (!cw_outbox_idle(p->outbox)) end = cw_outbox_durable(p->outbox);
    }
    if (end && cw_spool_reader_commit_at(p->reader, end) < 0)
        cw_error("pipeline", "cannot save the spool cursor; records will be read again");
    cw_metric_set(cw_m.pipeline_lag_bytes, (int64_t)cw_spool_reader_lag(p->reader));
    return end == p->done_end;
}

/* The pipeline thread. */
static void *run(void *arg)
{
    cw_pipeline *p = arg;
    pthread_setname_np(pthread_self(), "cw-pipeline"); /* for top -H and the benchmarks */
    int64_t last_flush = mono_ns(), last_commit = last_flush;
    int dirty = 0;     /* records processed since the last commit */
    int unflushed = 0; /* records processed since the last write(2) */
    for (;;) {
        cw_rec_item *it;
        int r = cw_decoder_next(p->decoder, &it, READ_TIMEOUT_MS);
        if (r == 0) break; /* the spool is stopped and fully read */
        int64_t now;
        if (r == 1) {
            handle_item(p, it);
            cw_decoder_release(p->decoder, it);
            dirty = unflushed = 1;
            now = mono_ns();
        } else {
            /* Nothing new: make everything so far durable now. */
            now = mono_ns();
            if (dirty) {
                /* Outputs still on their way to the sink spool: commit
                 * again on the next idle turn. */
                dirty = !commit(p);
                unflushed = 0;
                last_commit = last_flush = now;
            } else {
                cw_metric_set(cw_m.pipeline_lag_bytes, (int64_t)cw_spool_reader_lag(p->reader));
            }
            continue;
        }
        if (p->outbox) cw_outbox_poll(p->outbox);
        if (now - last_commit >= COMMIT_EVERY_NS) {
            dirty = !commit(p);
            unflushed = 0;
            last_commit = last_flush = now;
        } else if (unflushed && now - last_flush >= FLUSH_EVERY_NS) {
            flush_outputs(p, 0);
            unflushed = 0;
            last_flush = now;
            cw_metric_set(cw_m.pipeline_lag_bytes, (int64_t)cw_spool_reader_lag(p->reader));
        }
    }
    /* Everything read is processed; with sinks, wait until its outputs are
     * durable (or cw_pipeline_stop_within gives up). */
    if (p->outbox) flush_incidents(p);
    if (p->outbox && cw_outbox_drain(p->outbox) < 0)
        cw_warn("pipeline", "stopping before every output reached the sink spool; "
                "the rest is processed again at the next start");
    commit(p);
    return NULL;
}

static int open_output(const char *path, cw_jsonl **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!path[0]) return 0;
    return cw_jsonl_open(out, path, err, errlen);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The configured rules directory, else the installed one, else the source
 * tree's. Returns 0, or -1 when there is none. */
int cw_pipeline_rules_dir(const cw_config *cfg, char *out, size_t size)
{
    const char *cands[] = {cfg->rules_dir, CW_INSTALLED_RULES_DIR, CW_SOURCE_DIR "/rules"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        if (!cands[i][0]) continue;
        /* A configured directory is used as given (validation checked it). */
        if (i == 0 || is_dir(cands[i])) {
            snprintf(out, size, "%s", cands[i]);
            return 0;
        }
    }
    out[0] = 0;
    return -1;
}

static int load_detector(cw_pipeline *p, char *err, size_t errlen)
{
    char msg[768] = "";
    cw_ruleset *rs = NULL;
    if (cw_ruleset_load(&rs, p->rules_dir, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "rules %s: %s", p->rules_dir, msg);
        return -1;
    }
    size_t n = cw_ruleset_count(rs);
    if (cw_detector_create(&p->detector, rs) < 0) {
        snprintf(err, errlen, "pipeline: out of memory");
        return -1;
    }
    if (n == 0)
        cw_warn("pipeline", "no rules in %s: detection is off until a reload finds some",
                p->rules_dir);
    else
        cw_info("pipeline", "loaded %zu rules from %s", n, p->rules_dir);
    return 0;
}

int cw_pipeline_reload_rules(cw_pipeline *p, char *err, size_t errlen)
{
    if (!p->detector) {
        snprintf(err, errlen, "detection is off (no rules directory)");
        return -1;
    }
    char msg[768] = "";
    cw_ruleset *rs = NULL;
    if (cw_ruleset_load(&rs, p->rules_dir, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "rules %s: %s (keeping the previous rules)", p->rules_dir, msg);
        return -1;
    }
    size_t n = cw_ruleset_count(rs);
    cw_detector_swap(p->detector, rs);
    cw_info("pipeline", "reloaded %zu rules from %s", n, p->rules_dir);
    return 0;
}

int cw_pipeline_create(cw_pipeline **out, const cw_config *cfg, cw_spool *spool, char *err,
                       size_t errlen)
{
    cw_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "pipeline: out of memory");
        return -1;
    }
    p->spool = spool;
    cw_buf_init(&p->line, LINE_MAX_BYTES);
    cw_buf_init(&p->out_events, CW_SPOOL_BODY_MAX);
    cw_buf_init(&p->out_lines, 0);
    cw_buf_init(&p->pb, 0);
    if (cw_latest_init(&p->incidents_pending, 4096) < 0) {
        snprintf(err, errlen, "pipeline: out of memory");
        goto fail;
    }
    cw_stored_packer_init(&p->packer);
    p->max_clock_ahead_ns = (int64_t)cfg->incident_max_clock_ahead_s * 1000000000;
    cw_enrich_opts eo = {.owner_labels = cfg->owner_labels};
    if (cw_enrich_create(&p->enrich, &eo) < 0) {
        snprintf(err, errlen, "pipeline: out of memory");
        goto fail;
    }
    if (open_output(cfg->events_out, &p->events_out, err, errlen) < 0 ||
        open_output(cfg->alerts_out, &p->alerts_out, err, errlen) < 0 ||
        open_output(cfg->incidents_out, &p->incidents_out, err, errlen) < 0)
        goto fail;
    cw_incident_opts io = {
        .link_window_ns = (int64_t)cfg->incident_link_window_s * 1000000000,
        .idle_close_ns = (int64_t)cfg->incident_idle_close_s * 1000000000,
        .max_incidents = cfg->incident_max_open,
        .max_alerts = cfg->incident_max_alerts,
        .enrich = p->enrich,
        .alerts_out = p->alerts_out,
        .incidents_out = p->incidents_out,
        /* Lines for the sink spool; only asked for when a sink is
         * configured, since building them costs even when unused. */
        .on_line = (cfg->pg_conninfo[0] || cfg->kafka_brokers[0]) ? on_incident_line : NULL,
        .ud = p,
    };
    if (cw_incidents_create(&p->incidents, &io) < 0) {
        snprintf(err, errlen, "pipeline: out of memory");
        goto fail;
    }
    if (cw_pipeline_rules_dir(cfg, p->rules_dir, sizeof p->rules_dir) < 0) {
        cw_warn("pipeline", "no rules directory (none configured, neither %s nor %s exists): "
                "detection is off", CW_INSTALLED_RULES_DIR, CW_SOURCE_DIR "/rules");
    } else if (load_detector(p, err, errlen) < 0) {
        goto fail;
    }
    int r = cw_spool_reader_open(spool, "pipeline", &p->reader);
    if (r < 0) {
        snprintf(err, errlen, "pipeline: cannot open spool reader (%d)", r);
        goto fail;
    }
    uint64_t arena = cfg->decode_arena_bytes ? cfg->decode_arena_bytes : DEFAULT_ARENA_BYTES;
    if (cw_decoder_create(&p->decoder, p->reader, (size_t)arena, on_bad_record, p) < 0) {
        snprintf(err, errlen, "pipeline: out of memory");
        goto fail;
    }
    *out = p;
    return 0;
fail:
    cw_pipeline_free(p);
    return -1;
}

int cw_pipeline_start(cw_pipeline *p, char *err, size_t errlen)
{
    if (cw_decoder_start(p->decoder) < 0) {
        snprintf(err, errlen, "pipeline: cannot start the decoder thread");
        return -1;
    }
    int r = pthread_create(&p->thread, NULL, run, p);
    if (r != 0) {
        cw_decoder_stop(p->decoder);
        snprintf(err, errlen, "pipeline: cannot start thread: %s", strerror(r));
        return -1;
    }
    p->started = 1;
    return 0;
}

int cw_pipeline_set_sink(cw_pipeline *p, cw_spool *sink_spool, uint64_t max_mem_bytes,
                         char *err, size_t errlen)
{
    int r = cw_outbox_create(&p->outbox, sink_spool, max_mem_bytes);
    if (r < 0) {
        snprintf(err, errlen, "pipeline: cannot attach the sink spool (%d)", r);
        return -1;
    }
    p->resume = cw_outbox_resume(p->outbox);
    if (p->resume)
        cw_info("pipeline", "outputs up to input spool offset %llu are already in the sink spool",
                (unsigned long long)p->resume);
    return 0;
}

void cw_pipeline_stop_within(cw_pipeline *p, unsigned sink_wait_ms)
{
    if (!p || !p->started) return;
    /* The decoder ends at the spool's end (after cw_spool_stop) or, if the
     * spool still runs, as soon as it has nothing to read; then the
     * pipeline thread finishes what was decoded and exits. */
    cw_decoder_stop(p->decoder);
    if (p->outbox) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += sink_wait_ms / 1000;
        ts.tv_nsec += (long)(sink_wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        if (pthread_timedjoin_np(p->thread, NULL, &ts) == 0) {
            p->started = 0;
            return;
        }
        /* The sink spool stays full (a sink is down): give up; what the
         * input cursor does not cover yet is processed again next start. */
        cw_warn("pipeline", "sink spool still full after %u ms; stopping anyway", sink_wait_ms);
        cw_outbox_abort(p->outbox);
    }
    pthread_join(p->thread, NULL);
    p->started = 0;
}

void cw_pipeline_stop(cw_pipeline *p)
{
    cw_pipeline_stop_within(p, 10000);
}

void cw_pipeline_free(cw_pipeline *p)
{
    if (!p) return;
    cw_pipeline_stop(p);
    /* Closing fsyncs: the last lines are durable before the process exits. */
    cw_jsonl_close(p->events_out);
    cw_jsonl_close(p->alerts_out);
    cw_jsonl_close(p->incidents_out);
    cw_detector_free(p->detector);
    cw_incidents_free(p->incidents);
    cw_enrich_free(p->enrich);
    cw_decoder_free(p->decoder);
    cw_outbox_free(p->outbox);
    cw_stored_packer_free(&p->packer);
    cw_buf_free(&p->pb);
    cw_buf_free(&p->out_events);
    cw_buf_free(&p->out_lines);
    cw_latest_free(&p->incidents_pending);
    cw_buf_free(&p->line);
    free(p);
}

void cw_pipeline_get_stats(const cw_pipeline *p, cw_pipeline_stats *st)
{
    st->records = atomic_load_explicit(&p->records, memory_order_relaxed);
    st->events = atomic_load_explicit(&p->events, memory_order_relaxed);
    st->bad_records = atomic_load_explicit(&p->bad_records, memory_order_relaxed);
    st->bad_events = atomic_load_explicit(&p->bad_events, memory_order_relaxed);
}
