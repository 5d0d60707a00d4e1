/* pg_schema: the PostgreSQL schema of the chainwatch sink, as an ordered
 * table of versioned migrations, and the function that applies them.
 *
 * Contract:
 *  - Migrations are numbered 1, 2, 3 ... with no gaps; a released migration
 *    is never edited, only followed by a new one. The version a database is
 *    at is max(version) of its schema_migrations table (0 when the table is
 *    absent or empty).
 *  - cw_pg_migrate() applies every migration above the database's version,
 *    in order, each in a transaction of its own together with its
 *    schema_migrations row, so a failure leaves the database at the last
 *    complete version and a later start resumes from there.
 *  - Every transaction first takes pg_advisory_xact_lock(CW_PG_SCHEMA_LOCK)
 *    and re-reads the version under it, so servers starting together
 *    against one database apply each migration exactly once; the others
 *    wait for the lock and then find nothing left to do.
 *  - A database at a version newer than this binary knows is refused with
 *    an error: an older chainwatchd must not write rows into a schema it
 *    does not understand.
 *
 * Schema v1 in brief (the SQL in pg_schema.c is the reference):
 *  - events: declaratively partitioned by RANGE (time), one partition per
 *    UTC day named events_pYYYYMMDD, plus events_default, a DEFAULT
 *    partition that catches rows for days that have no partition yet, so an
 *    insert never fails for lack of one. chainwatch_ensure_partition(day
 *    date) creates the day's partition (idempotent, safe to race) and moves
 *    any rows of that day already in events_default into it. The primary
 *    key is (id, time): PostgreSQL requires the partition key in every
 *    unique constraint of a partitioned table, and an event's id and time
 *    never change for a given event. Ids are stable across replays:
 *    "<agent_id>:<seq>:<index in batch>" for agent events and
 *    "<cluster>:<auditID>:<stage>" for Kubernetes audit events, so a replay
 *    of the spool hits the key (INSERT ... ON CONFLICT DO NOTHING) instead
 *    of duplicating rows.
 *  - alerts, incidents, incident_alerts, agents: plain tables keyed by id.
 *  - No CHECK constraints on enumerated values (severity, type ...) and no
 *    foreign keys between alerts and incidents: the sink must never lose a
 *    row the server produced because of write order or a new value; the
 *    producer validates, and `body` keeps the full JSON object.
 *
 * Threads: cw_pg_migrate() uses blocking libpq calls (PQexec). It is meant
 * for start-up on the main thread before any libuv loop runs, never on a
 * loop thread. The connection belongs to the caller and is left open, idle
 * and outside any transaction.
 */
#ifndef CW_PG_SCHEMA_H
#define CW_PG_SCHEMA_H

#include <stddef.h>

#include <libpq-fe.h>

/* Advisory lock key serializing schema changes: 0x6377000000000001, "cw"
 * in its high bytes, so it is unlikely to clash with other users of
 * advisory locks in a shared database. Decimal, because it is also pasted
 * into SQL text. chainwatch_ensure_partition() uses the next key. */
#define CW_PG_SCHEMA_LOCK 7167197331983433729

typedef struct cw_pg_migration {
    int version;      /* 1, 2, 3 ...: strictly increasing by one */
    const char *name; /* short description, stored in schema_migrations */
    const char *sql;  /* one or more statements, run in one transaction */
} cw_pg_migration;

/* The migrations this binary knows, in order; *n receives their count. */
const cw_pg_migration *cw_pg_schema_migrations(size_t *n);

/* The newest schema version this binary knows. */
int cw_pg_schema_latest(void);

/* Brings the database on `conn` (connected, idle) up to
 * cw_pg_schema_latest(). *from receives the version found, *to the version
 * left (equal when nothing was pending; either pointer may be NULL).
 * Returns 0, or -1 with a message in err (then *to is the version the
 * database was left at, which may be above *from if a later migration
 * failed). Blocking: start-up only, see above. */
int cw_pg_migrate(PGconn *conn, int *from, int *to, char *err, size_t errlen);

#endif
