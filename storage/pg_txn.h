/* pg_txn: one transaction of the PostgreSQL sink (storage/pg_sink.h), built
 * from sink spool records and kept until COMMIT so that it can be written
 * again, unchanged, after a failure or a lost connection.
 *
 * What it holds is already in wire form: the events as the text-format COPY
 * data of `events`, the alerts and incident states as the parameters of
 * their upserts (in spool order), and the UTC days the events fall on (for
 * chainwatch_ensure_partition). Nothing points into spool records, whose
 * memory dies at the next read.
 *
 * Everything a record carries came from disk and is treated as hostile:
 * strings are made valid UTF-8 without NUL bytes, "\u0000" in JSON (which
 * jsonb refuses) becomes "\ufffd", so that no record can make the
 * transaction fail for good and stop the sink.
 *
 * Owned by the sink's loop thread; not thread-safe.
 */
#ifndef CW_PG_TXN_H
#define CW_PG_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "storage/outrec.h"

/* Bounds of one transaction, besides cfg->pg_batch_rows events: what the
 * sink holds in memory until COMMIT. A single event or statement larger
 * than these is still taken (alone), never refused. */
#define CW_PG_TXN_COPY_BYTES (32u << 20)
#define CW_PG_TXN_STMTS 2000u
#define CW_PG_TXN_STMT_BYTES (16u << 20)
#define CW_PG_TXN_DAYS 32u
/* Most bytes of a typed event column (host, cluster, namespace, pod, ...):
 * several of them share one index entry, which PostgreSQL refuses past
 * 2704 bytes, and a refused row would stop the sink for good. No real name
 * comes near it (Kubernetes and DNS names stop at 253); a longer value is
 * cut between characters in its column and kept whole in `body`. */
#define CW_PG_COLUMN_MAX 512u

/* Column list of the COPY, in the order of the rows' fields. */
#define CW_PG_EVENT_COLS                                                                           \
    "id, time, type, source, host, agent_id, cluster, cloud, region, node, namespace, pod,"        \
    " pod_uid, container_id, owner, body"

enum cw_pg_stmt_kind { CW_PG_STMT_ALERT, CW_PG_STMT_INCIDENT };

#define CW_PG_ALERT_PARAMS 17
#define CW_PG_INCIDENT_PARAMS 14
#define CW_PG_MAX_PARAMS 17

typedef struct cw_pg_stmt {
    uint8_t kind;    /* enum cw_pg_stmt_kind */
    uint8_t nparams; /* CW_PG_ALERT_PARAMS or CW_PG_INCIDENT_PARAMS */
    /* Offsets of NUL-terminated values in cw_pg_txn.params; UINT32_MAX: NULL. */
    uint32_t off[CW_PG_MAX_PARAMS];
} cw_pg_stmt;

typedef struct cw_pg_txn {
    cw_buf copy;   /* COPY text rows */
    cw_buf params; /* parameter values of stmts */
    cw_pg_stmt *stmts;
    size_t n_stmts, stmts_alloc;
    size_t n_events, n_alerts, n_incidents;
    int32_t days[CW_PG_TXN_DAYS]; /* UTC days (since 1970-01-01) of the events */
    size_t n_days;
    /* Days that may get a partition (cw_pg_txn_set_window); events of other
     * days are not noted in days[] and land in events_default. */
    int32_t day_lo, day_hi;
    size_t n_unpartitioned; /* events of the txn outside [day_lo, day_hi] */
    size_t n_truncated;     /* typed column values cut to CW_PG_COLUMN_MAX */
    int64_t unpartitioned_ns; /* the time of one of them, for the log */
    int days_overflow; /* more days than fit: the txn is full */
    uint64_t end;      /* end of the last whole record in the txn; 0: none */
    size_t skipped;    /* records in the txn that hold nothing to write */
} cw_pg_txn;

void cw_pg_txn_init(cw_pg_txn *t);
void cw_pg_txn_reset(cw_pg_txn *t);
void cw_pg_txn_free(cw_pg_txn *t);

/* Sets the days whose partitions the txn asks for (UTC days since
 * 1970-01-01, inclusive). An agent's clock is not trusted to choose how many
 * tables the database gets: a wrong or hostile clock would otherwise make
 * one partition per distinct day it claims. Init sets no bound; reset keeps
 * the window. Set it only on an empty txn. */
void cw_pg_txn_set_window(cw_pg_txn *t, int32_t day_lo, int32_t day_hi);

/* Whether nothing is to be written (possibly skipped records to commit). */
int cw_pg_txn_empty(const cw_pg_txn *t);
/* Whether another event (statement) would pass the bounds; an empty txn is
 * never full. */
int cw_pg_txn_events_full(const cw_pg_txn *t, uint32_t batch_rows);
int cw_pg_txn_stmts_full(const cw_pg_txn *t);

/* Appends one COPY row. Typed columns come from the StoredEvent bytes
 * (scanned, not unpacked: see pg_txn.c), id and time from the entry.
 * Returns 0 or -1 (out of memory). */
int cw_pg_txn_add_event(cw_pg_txn *t, const cw_outrec_event *ev);

/* Appends the upsert of one alert / incident state from its JSON object.
 * rec_time_ns stands in for a missing or unreadable time. Returns 0, -1
 * (out of memory) or 1 (not a JSON object with an id: nothing added). */
int cw_pg_txn_add_alert(cw_pg_txn *t, const uint8_t *body, size_t len, int64_t rec_time_ns);
int cw_pg_txn_add_incident(cw_pg_txn *t, const uint8_t *body, size_t len, int64_t rec_time_ns);

/* The SQL of a statement kind (parameters as cw_pg_txn_values fills). */
const char *cw_pg_stmt_sql(uint8_t kind);
/* Fills values[0..nparams) with pointers into t->params (NULL for NULL). */
void cw_pg_txn_values(const cw_pg_txn *t, const cw_pg_stmt *s, const char **values);

/* "YYYY-MM-DD" of UTC day `day` into buf (at least 16 bytes). */
void cw_pg_format_day(int32_t day, char *buf, size_t size);

#endif
