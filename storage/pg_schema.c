/* pg_schema: versioned migrations of the sink's PostgreSQL schema. See
 * pg_schema.h for the contract. */
#include "storage/pg_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Version 1: the first schema. Times are timestamptz, days are UTC days.
 * Column lists follow the JSON objects the server writes (cw_event_to_json,
 * the alert and incident objects of scenarios/FORMAT.md); `body` holds the
 * whole object so nothing is lost that has no column of its own. */
static const char migration_1[] =
    /* Events, partitioned by day. The DEFAULT partition means an insert
     * never fails because nobody created the day's partition yet; the sink
     * calls chainwatch_ensure_partition() ahead of time so that normally
     * it stays empty. Indexes end with time so "recent events of X" reads
     * one index in order. */
    "CREATE TABLE events ("
    " id text NOT NULL,"
    " time timestamptz NOT NULL,"
    " type text NOT NULL,"
    " source text,"
    " host text, agent_id text, cluster text, cloud text, region text, node text,"
    " namespace text, pod text, pod_uid text, container_id text, owner text,"
    " body jsonb NOT NULL,"
    " PRIMARY KEY (id, time)"
    ") PARTITION BY RANGE (time);\n"
    "CREATE TABLE events_default PARTITION OF events DEFAULT;\n"
    "CREATE INDEX events_time_idx ON events (time);\n"
    "CREATE INDEX events_host_idx ON events (host, time);\n"
    "CREATE INDEX events_pod_idx ON events (cluster, namespace, pod, time);\n"
    "CREATE INDEX events_cluster_idx ON events (cluster, time);\n"
    "CREATE INDEX events_type_idx ON events (type, time);\n"

    /* Creates the partition of one UTC day unless it exists, moving rows of
     * that day out of the DEFAULT partition first (PostgreSQL refuses to
     * attach a partition whose range the DEFAULT partition still holds
     * rows of). An advisory lock makes concurrent callers wait for each
     * other, and the second finds the table there. Returns its name. */
    "CREATE FUNCTION chainwatch_ensure_partition(day date) RETURNS text\n"
    "LANGUAGE plpgsql AS $fn$\n"
    "DECLARE\n"
    "  part text := 'events_p' || to_char(day, 'YYYYMMDD');\n"
    "  lo timestamptz := day::timestamp AT TIME ZONE 'UTC';\n"
    "  hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';\n"
    "BEGIN\n"
    "  IF to_regclass(part) IS NOT NULL THEN RETURN part; END IF;\n"
    "  PERFORM pg_advisory_xact_lock(7167197331983433730);\n"
    "  IF to_regclass(part) IS NOT NULL THEN RETURN part; END IF;\n"
    "  EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS)', part);\n"
    "  EXECUTE format('WITH moved AS (DELETE FROM events_default"
    " WHERE time >= %L AND time < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',"
    " lo, hi, part);\n"
    "  EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',"
    " part, lo, hi);\n"
    "  RETURN part;\n"
    "END\n"
    "$fn$;\n"

    /* Alerts: one row per alert, keyed by its id (stable across replays,
     * so the sink upserts). incident is NULL until the alert joins one. */
    "CREATE TABLE alerts ("
    " id text PRIMARY KEY,"
    " rule text NOT NULL,"
    " title text,"
    " severity text,"
    " time timestamptz NOT NULL,"
    " host text, cluster text, namespace text, pod text, container_id text,"
    " tactic text, technique text, attack text, phase text, summary text,"
    " incident text,"
    " body jsonb NOT NULL"
    ");\n"
    "CREATE INDEX alerts_time_idx ON alerts (time);\n"
    "CREATE INDEX alerts_incident_idx ON alerts (incident);\n"
    "CREATE INDEX alerts_rule_idx ON alerts (rule, time);\n"

    /* Incidents: the latest state of each (the server writes every new
     * state; the sink upserts and sets updated_at). pods are
     * "namespace/name" as in the JSON object. */
    "CREATE TABLE incidents ("
    " id text PRIMARY KEY,"
    " severity text,"
    " status text,"
    " first_seen timestamptz,"
    " last_seen timestamptz,"
    " hosts text[] NOT NULL DEFAULT '{}',"
    " clusters text[] NOT NULL DEFAULT '{}',"
    " pods text[] NOT NULL DEFAULT '{}',"
    " tactics text[] NOT NULL DEFAULT '{}',"
    " techniques text[] NOT NULL DEFAULT '{}',"
    " phases text[] NOT NULL DEFAULT '{}',"
    " alert_count integer NOT NULL DEFAULT 0,"
    " body jsonb NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT now()"
    ");\n"
    "CREATE INDEX incidents_last_seen_idx ON incidents (last_seen);\n"

    /* Which alerts belong to which incident; no foreign keys so alerts
     * and incidents may arrive in either order. */
    "CREATE TABLE incident_alerts ("
    " incident_id text NOT NULL,"
    " alert_id text NOT NULL,"
    " PRIMARY KEY (incident_id, alert_id)"
    ");\n"
    "CREATE INDEX incident_alerts_alert_idx ON incident_alerts (alert_id);\n"

    /* Agents as last seen. ip is text, not inet: it is recorded as
     * reported and must never make the row fail. acked_seq is the highest
     * batch seq durably accepted from the agent. */
    "CREATE TABLE agents ("
    " agent_id text PRIMARY KEY,"
    " hostname text, cluster text, cloud text, region text, ip text, agent_version text,"
    " first_seen timestamptz,"
    " last_seen timestamptz,"
    " acked_seq bigint NOT NULL DEFAULT 0"
    ");\n";

static const cw_pg_migration migrations[] = {
    {1, "events (partitioned by day), alerts, incidents, incident_alerts, agents", migration_1},
};

#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

/* Taken first in every migration transaction: it creates the bookkeeping
 * table if needed, under the lock, so concurrent first starts do not race
 * on creating it either. Notices ("already exists, skipping") are silenced
 * for this transaction only. The lock key literal is CW_PG_SCHEMA_LOCK. */
#define STR2(x) #x
#define STR(x) STR2(x)
static const char begin_sql[] =
    "BEGIN;"
    "SET LOCAL client_min_messages = warning;"
    "SELECT pg_advisory_xact_lock(" STR(CW_PG_SCHEMA_LOCK) ");"
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

const cw_pg_migration *cw_pg_schema_migrations(size_t *n)
{
    *n = N_MIGRATIONS;
    return migrations;
}

int cw_pg_schema_latest(void)
{
    return migrations[N_MIGRATIONS - 1].version;
}

/* Copies libpq's message for a failed call into err, without the trailing
 * newline libpq adds. */
static void set_err(char *err, size_t errlen, const char *what, PGconn *c, const PGresult *r)
{
    const char *m = r ? PQresultErrorMessage(r) : "";
    if (!m || !*m) m = PQerrorMessage(c);
    size_t len = strlen(m);
    while (len > 0 && (m[len - 1] == '\n' || m[len - 1] == ' ')) len--;
    snprintf(err, errlen, "%s: %.*s", what, (int)len, m);
}

/* Runs `sql`; 0 if every statement succeeded, else -1 with err set. */
static int exec(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : -1;
    if (rc < 0) set_err(err, errlen, what, c, r);
    PQclear(r);
    return rc;
}

/* The database's schema version, read inside the locked transaction. */
static int read_version(PGconn *c, int *version, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        set_err(err, errlen, "reading schema_migrations", c, r);
        PQclear(r);
        return -1;
    }
    char *end;
    long v = strtol(PQgetvalue(r, 0, 0), &end, 10);
    int ok = *end == '\0' && v >= 0 && v <= 1000000;
    PQclear(r);
    if (!ok) {
        snprintf(err, errlen, "schema_migrations holds an unreadable version");
        return -1;
    }
    *version = (int)v;
    return 0;
}

/* Applies migration m and records it, inside the open transaction. */
static int apply(PGconn *c, const cw_pg_migration *m, char *err, size_t errlen)
{
    char what[96];
    snprintf(what, sizeof what, "schema migration %d (%s)", m->version, m->name);
    if (exec(c, m->sql, what, err, errlen) < 0) return -1;
    char ver[16];
    snprintf(ver, sizeof ver, "%d", m->version);
    const char *params[2] = {ver, m->name};
    PGresult *r = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                               2, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0) set_err(err, errlen, what, c, r);
    PQclear(r);
    return rc;
}

/* The table must count 1, 2, 3 ...: migration N is found at index N-1. */
static int check_table(char *err, size_t errlen)
{
    for (size_t i = 0; i < N_MIGRATIONS; i++) {
        if (migrations[i].version != (int)i + 1) {
            snprintf(err, errlen, "schema migration table out of order at %zu", i);
            return -1;
        }
    }
    return 0;
}

int cw_pg_migrate(PGconn *conn, int *from, int *to, char *err, size_t errlen)
{
    int f = -1, t = -1, rc = -1;
    if (check_table(err, errlen) < 0) goto out;
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        snprintf(err, errlen, "schema migration needs an idle connection");
        goto out;
    }
    const int latest = cw_pg_schema_latest();
    /* One transaction per pass: lock, re-read the version (another server
     * may have moved it while we waited), then apply at most one
     * migration. The last pass finds nothing to do and commits only the
     * bookkeeping table's creation, if that was new. */
    for (;;) {
        int cur;
        if (exec(conn, begin_sql, "starting schema migration", err, errlen) < 0 ||
            read_version(conn, &cur, err, errlen) < 0)
            break;
        if (f < 0) f = cur;
        t = cur;
        if (cur > latest) {
            snprintf(err, errlen,
                     "database schema is at version %d, newer than this chainwatchd knows (%d);"
                     " upgrade chainwatchd",
                     cur, latest);
            break;
        }
        if (cur == latest) {
            rc = exec(conn, "COMMIT", "committing schema check", err, errlen);
            break;
        }
        const cw_pg_migration *m = &migrations[cur];
        if (apply(conn, m, err, errlen) < 0 ||
            exec(conn, "COMMIT", "committing schema migration", err, errlen) < 0)
            break;
        t = m->version;
    }
    /* On any error the transaction (if one is open) is rolled back so the
     * connection is handed back idle. */
    if (rc < 0 && PQtransactionStatus(conn) != PQTRANS_IDLE) PQclear(PQexec(conn, "ROLLBACK"));
out:
    if (from) *from = f < 0 ? 0 : f;
    if (to) *to = t < 0 ? 0 : t;
    return rc;
}
