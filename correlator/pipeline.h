/* pipeline: the stage after the spool. One plain thread reads durable
 * records through the spool reader "pipeline", decodes them, normalizes them
 * into cw_events, enriches them (correlator/enrich.h), passes each to the
 * incident stage's context (cw_incidents_observe) and the rules
 * (correlator/detect.h), whose alerts become incidents
 * (correlator/incident.h, written to alerts-out and incidents-out), and
 * writes the event to the events-out JSON Lines file. An event is counted in
 * pipeline_events_total only after all of that, so a test that sees the
 * count can stop the server and read complete outputs.
 *
 * Rules come from cfg->rules_dir; when none is configured, from the
 * installed /usr/share/chainwatch/rules, else from the source tree's rules/
 * (CW_SOURCE_DIR, for a build run in place); with none of them detection is
 * off (logged). A rule that does not compile fails create (and so
 * --check-config); cw_pipeline_reload_rules() (SIGHUP) swaps in a new set.
 *
 * Life cycle, and why it is split:
 *   cw_pipeline_create()  opens the spool reader and the output files. The
 *                         spool only deletes segments every registered reader
 *                         has passed, so readers must be registered before
 *                         cw_spool_start(): call this before it.
 *   cw_pipeline_start()   starts the thread (after cw_spool_start() or before;
 *                         it just waits for records).
 *   cw_pipeline_stop()    call after cw_spool_stop(): the thread reads on until
 *                         CW_SPOOL_EOF, flushes and fsyncs the outputs, commits
 *                         the cursor and exits; this joins it.
 *   cw_pipeline_free()    closes the outputs; before cw_spool_close().
 *
 * Delivery: the spool cursor is committed only after the lines of every
 * record up to it have been written and fdatasync'ed (every second under
 * load, and whenever the spool runs dry), so events-out is at-least-once:
 * after a crash or power loss, up to about a second of lines may be written
 * again; after a clean stop nothing is. Lines are written (without fsync)
 * every ~100 ms so tail -f readers see them promptly. An output that fails
 * (disk full) loses lines, counted in cw_m.output_lines_dropped_total, but
 * never stops the pipeline, because a stuck pipeline would fill the spool
 * and stop ingestion.
 *
 * Records are untrusted even though ingest validated them: a record that does
 * not decode (or passes the decode memory bound) is logged, counted in
 * cw_m.pipeline_bad_records_total and skipped.
 *
 * Threads: create/start/stop/free on one control thread (main); everything
 * else runs on the pipeline thread.
 */
#ifndef CW_PIPELINE_H
#define CW_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "storage/spool.h"

typedef struct cw_pipeline cw_pipeline;

/* Reads events_out / alerts_out / incidents_out (empty = off),
 * decode_arena_bytes and owner_labels from cfg (copied). Returns 0, or -1
 * with a message in err. */
int cw_pipeline_create(cw_pipeline **out, const cw_config *cfg, cw_spool *spool, char *err,
                       size_t errlen);

/* Starts the pipeline thread. Returns 0, or -1 with a message in err. */
int cw_pipeline_start(cw_pipeline *p, char *err, size_t errlen);

/* After cw_spool_stop(): drains to the end, flushes, fsyncs, commits, joins.
 * Safe to call when the thread was never started. */
void cw_pipeline_stop(cw_pipeline *p);

/* With sinks: the pipeline also writes its outputs (enriched events,
 * alerts, incident states) to sink_spool (storage/outrec.h), holding at most
 * max_mem_bytes of copies in memory, and commits its input cursor only
 * past input records whose outputs are durable there. Call after create and
 * before cw_spool_start() of the sink spool. Returns 0, or -1 with err. */
int cw_pipeline_set_sink(cw_pipeline *p, cw_spool *sink_spool, uint64_t max_mem_bytes,
                         char *err, size_t errlen);

/* Like cw_pipeline_stop, but when the sink spool stays full (a sink is
 * down) gives up after sink_wait_ms: what is not durable there yet stays
 * uncommitted in the input spool and is processed again at the next start.
 * Call before cw_spool_stop() of the sink spool. */
void cw_pipeline_stop_within(cw_pipeline *p, unsigned sink_wait_ms);

/* Closes the outputs and frees p (stop it first). */
void cw_pipeline_free(cw_pipeline *p);

/* Loads the rules directory again on the calling thread (any thread; the
 * pipeline keeps running) and swaps the new set in: the next event uses it.
 * On error (a rule that does not compile) the running set stays and err
 * says "file:line: message". Returns 0 or -1. */
int cw_pipeline_reload_rules(cw_pipeline *p, char *err, size_t errlen);

typedef struct cw_pipeline_stats {
    uint64_t records;     /* spool records read */
    uint64_t events;      /* events enriched and passed on */
    uint64_t bad_records; /* records skipped as undecodable */
    uint64_t bad_events;  /* events skipped (no known payload, or too large to write) */
} cw_pipeline_stats;

/* Counters as of the last stop (or live, approximately, while running). */
void cw_pipeline_get_stats(const cw_pipeline *p, cw_pipeline_stats *st);

/* The rules directory in use: cfg->rules_dir, else the installed one, else
 * the source tree's. Returns 0, or -1 when there is none. */
int cw_pipeline_rules_dir(const cw_config *cfg, char *out, size_t size);

#endif
