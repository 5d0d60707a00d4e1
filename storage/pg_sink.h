/* pg_sink: delivers the sink spool (storage/outrec.h) to PostgreSQL with
 * libpq, exactly once, surviving database outages and server crashes.
 *
 * Contract
 * - Reads the sink spool through its own reader "pg". Applies the schema
 *   migrations (storage/pg_schema.h) after every (re)connect before
 *   writing. Events are written with COPY in transactions of at most
 *   cfg->pg_batch_rows events (typed columns plus the JSON object as
 *   `body`), together with the alerts (upserted by id, with their
 *   incident_alerts rows) and incident states (upserted by id; a later state
 *   replaces the row, updated_at set) of the same records, in spool order.
 * - The cursor advances (cw_spool_reader_commit_at) only after COMMIT
 *   succeeded. Rows are keyed by stable ids (events: (id, time)), so what a
 *   crash makes the sink write again is found by the keys and not stored
 *   twice (counted in cw_m.sink_duplicates_total).
 * - The day partitions of events (chainwatch_ensure_partition) are created
 *   ahead of the rows that need them, for days within
 *   cfg->pg_partition_past_days / _future_days of today (this server's UTC
 *   clock); events of other days go to events_default
 *   (cw_m.pg_events_unpartitioned_total), so no agent clock decides how many
 *   tables there are.
 * - Runs on a thread of its own with its own libuv loop; libpq is used
 *   non-blocking only on it (PQconnectStart/PQconnectPoll, PQsendQuery,
 *   non-blocking COPY, uv_poll on PQsocket, the traps of
 *   shared/design/ENGINEERING.md handled: libpq closing its socket on
 *   connection loss). Blocking work (migrations) runs on libuv's thread
 *   pool. A lost connection is retried with backoff (0.1 s doubling to 5 s)
 *   and the unconfirmed transaction is written again; meanwhile the sink
 *   spool absorbs, up to sink.max_bytes, then backpressure reaches intake.
 * - Metrics: cw_m.sink_*[CW_SINK_PG].
 *
 * Life cycle (main thread): create (registers the reader: before
 * cw_spool_start of the sink spool) -> start -> ... -> cw_spool_stop(sink
 * spool) -> stop(drain_ms): writes until the reader reaches the end or
 * drain_ms passes, whichever is first, joins -> free. What was not
 * committed stays in the sink spool for the next start.
 */
#ifndef CW_PG_SINK_H
#define CW_PG_SINK_H

#include <stddef.h>

#include "common/config.h"
#include "storage/spool.h"

typedef struct cw_pg_sink cw_pg_sink;

/* Checks cfg->pg_conninfo parses (PQconninfoParse) and registers the spool
 * reader. Does not connect. Returns 0, or -1 with a message in err. */
int cw_pg_sink_create(cw_pg_sink **out, const cw_config *cfg, cw_spool *sink_spool, char *err,
                      size_t errlen);

/* Starts the sink's thread. Returns 0, or -1 with a message in err. */
int cw_pg_sink_start(cw_pg_sink *p, char *err, size_t errlen);

/* See the life cycle above. Safe on a sink that was never started. */
void cw_pg_sink_stop(cw_pg_sink *p, unsigned drain_ms);

void cw_pg_sink_free(cw_pg_sink *p);

/* --check-config: connects (blocking, at most timeout_ms) and checks the
 * schema is not newer than this binary knows. Main thread only. Returns 0,
 * or -1 with a message in err. */
int cw_pg_sink_check(const cw_config *cfg, unsigned timeout_ms, char *err, size_t errlen);

#endif
