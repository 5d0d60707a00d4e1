/* Tests of storage/pg_schema.c against a real PostgreSQL (PG_CONNINFO, see
 * tests/services/README.md). Each run works in databases of its own,
 * cw_test_<pid> and cw_test_<pid>_race, dropped at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/pg_schema.h"
#include "pg_testlib.h"

static const char *conninfo;

/* Connections still open, so that a failed test (cmocka jumps out of it)
 * does not leave them open for the group teardown's DROP DATABASE. */
static PGconn *conns[8];

/* A connection to database `db` (NULL: the one PG_CONNINFO names). A later
 * "dbname" in the arrays overrides the one inside the conninfo string. */
static PGconn *connect_to(const char *db)
{
    const char *keys[] = {"dbname", db ? "dbname" : NULL, NULL};
    const char *vals[] = {conninfo, db, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    size_t i = 0;
    while (i < 8 && conns[i]) i++;
    if (i == 8) fail_msg("too many connections open");
    conns[i] = c;
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect to %s: %s", db ? db : "PG_CONNINFO", PQerrorMessage(c));
    return c;
}

static void finish(PGconn *c)
{
    for (size_t i = 0; i < 8; i++)
        if (conns[i] == c) conns[i] = NULL;
    PQfinish(c);
}

static void finish_all(void)
{
    for (size_t i = 0; i < 8; i++)
        if (conns[i]) finish(conns[i]);
}

static void create_db(const char *name)
{
    PGconn *c = connect_to(NULL);
    char sql[128];
    must(c, "SET client_min_messages = warning"); /* no "does not exist, skipping" */
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    must(c, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    must(c, sql);
    finish(c);
}

static void drop_db(const char *name)
{
    PGconn *c = connect_to(NULL);
    char sql[128];
    must(c, "SET client_min_messages = warning"); /* no "does not exist, skipping" */
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    must(c, sql);
    finish(c);
}

static char db[64], db_race[64];

static int setup(void **state)
{
    (void)state;
    conninfo = getenv("PG_CONNINFO");
    if (!conninfo || !*conninfo) {
        fprintf(stderr, "PG_CONNINFO is not set: start tests/services/start.sh\n");
        return -1;
    }
    snprintf(db, sizeof db, "cw_test_%ld", (long)getpid());
    snprintf(db_race, sizeof db_race, "cw_test_%ld_race", (long)getpid());
    create_db(db);
    create_db(db_race);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    finish_all();
    if (!conninfo || !*conninfo) return 0;
    drop_db(db);
    drop_db(db_race);
    return 0;
}

/* Whether `table` has an index on exactly these columns, in this order
 * (comma-separated), and whether it is unique when `unique` is set. */
static int has_index(PGconn *c, const char *table, const char *cols, int unique)
{
    const char *params[] = {table, cols, unique ? "t" : "f"};
    PGresult *r = PQexecParams(
        c,
        "SELECT count(*) FROM ("
        " SELECT x.indexrelid, x.indisunique,"
        "  string_agg(a.attname, ',' ORDER BY k.ord) AS cols"
        " FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid"
        " CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum"
        " WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace"
        " GROUP BY x.indexrelid, x.indisunique) i"
        " WHERE i.cols = $2 AND (i.indisunique OR NOT $3::bool)",
        3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("index query: %s", PQresultErrorMessage(r));
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (n != 1) print_error("no index on %s(%s)%s\n", table, cols, unique ? " unique" : "");
    return n == 1;
}

/* Inserts one event row; returns the SQLSTATE ("00000" on success). */
static void insert_event(PGconn *c, const char *id, const char *time, char state[6])
{
    const char *params[] = {id, time};
    PGresult *r = PQexecParams(c,
                               "INSERT INTO events (id, time, type, source, host, cluster,"
                               " namespace, pod, body) VALUES ($1, $2, 'process_exec', 'agent',"
                               " 'node-1', 'prod', 'default', 'web-0', '{}')",
                               2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) strcpy(state, "00000");
    else snprintf(state, 6, "%s", PQresultErrorField(r, PG_DIAG_SQLSTATE));
    PQclear(r);
}

/* A fresh database migrates from 0 to the latest version and then has the
 * tables, partitioning and indexes the sink relies on. */
static void test_fresh_database(void **state)
{
    (void)state;
    PGconn *c = connect_to(db);
    char err[512] = "", v[256];
    int from = -1, to = -1;
    assert_int_equal(cw_pg_migrate(c, &from, &to, err, sizeof err), 0);
    assert_int_equal(from, 0);
    assert_int_equal(to, cw_pg_schema_latest());
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);

    snprintf(err, sizeof err, "%d", cw_pg_schema_latest());
    value(c, "SELECT count(*) FROM schema_migrations", v, sizeof v);
    assert_string_equal(v, err);
    value(c, "SELECT name FROM schema_migrations WHERE version = 1", v, sizeof v);
    assert_true(strlen(v) > 0);

    static const char *const tables[] = {"events", "alerts", "incidents", "incident_alerts",
                                         "agents", "schema_migrations"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM information_schema.tables"
                 " WHERE table_schema = current_schema() AND table_name = '%s'",
                 tables[i]);
        value(c, sql, v, sizeof v);
        if (strcmp(v, "1") != 0) fail_msg("table %s missing", tables[i]);
    }

    /* events: RANGE-partitioned on time, with a DEFAULT partition. */
    value(c,
          "SELECT p.partstrat::text || ':' || a.attname || ':'"
          " || coalesce(p.partdefid::regclass::text, '-')"
          " FROM pg_partitioned_table p JOIN pg_attribute a"
          " ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]"
          " WHERE p.partrelid = 'events'::regclass",
          v, sizeof v);
    assert_string_equal(v, "r:time:events_default");

    /* Column types a query API and dashboards depend on. */
    value(c,
          "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_name)"
          " FROM information_schema.columns WHERE table_schema = current_schema()"
          " AND table_name = 'events' AND column_name IN ('time', 'body', 'id', 'pod')",
          v, sizeof v);
    assert_string_equal(v, "body jsonb, id text, pod text, time timestamp with time zone");
    value(c,
          "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema()"
          " AND table_name = 'incidents' AND column_name = 'pods'",
          v, sizeof v);
    assert_string_equal(v, "ARRAY");

    assert_true(has_index(c, "events", "id,time", 1));
    assert_true(has_index(c, "events", "time", 0));
    assert_true(has_index(c, "events", "host,time", 0));
    assert_true(has_index(c, "events", "cluster,namespace,pod,time", 0));
    assert_true(has_index(c, "events", "cluster,time", 0));
    assert_true(has_index(c, "events", "type,time", 0));
    /* Partitions inherit them. */
    assert_true(has_index(c, "events_default", "id,time", 1));
    assert_true(has_index(c, "events_default", "cluster,namespace,pod,time", 0));
    assert_true(has_index(c, "alerts", "id", 1));
    assert_true(has_index(c, "alerts", "time", 0));
    assert_true(has_index(c, "alerts", "incident", 0));
    assert_true(has_index(c, "alerts", "rule,time", 0));
    assert_true(has_index(c, "incidents", "id", 1));
    assert_true(has_index(c, "incident_alerts", "incident_id,alert_id", 1));
    assert_true(has_index(c, "agents", "agent_id", 1));
    finish(c);
}

/* Replaying an event (same id, same time) never makes a second row, both in
 * the DEFAULT partition and in a day's own partition; creating a day's
 * partition moves that day's rows out of the DEFAULT one. */
static void test_events_unique_and_partitions(void **state)
{
    (void)state;
    PGconn *c = connect_to(db);
    char st[6], v[256];

    insert_event(c, "agent-1:7:0", "2026-03-01T10:00:00Z", st);
    assert_string_equal(st, "00000");
    insert_event(c, "agent-1:7:0", "2026-03-01T10:00:00Z", st);
    assert_string_equal(st, "23505"); /* unique_violation */
    /* The sink's form of the same insert: silently skipped. */
    PGresult *r = PQexec(c, "INSERT INTO events (id, time, type, body) VALUES"
                            " ('agent-1:7:0', '2026-03-01T10:00:00Z', 'process_exec', '{}')"
                            " ON CONFLICT DO NOTHING");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdTuples(r), "0");
    PQclear(r);
    value(c, "SELECT tableoid::regclass::text FROM events WHERE id = 'agent-1:7:0'", v, sizeof v);
    assert_string_equal(v, "events_default");

    /* The day's partition takes over the row already in the DEFAULT one,
     * and asking again is harmless. */
    value(c, "SELECT chainwatch_ensure_partition('2026-03-01')", v, sizeof v);
    assert_string_equal(v, "events_p20260301");
    value(c, "SELECT chainwatch_ensure_partition('2026-03-01')", v, sizeof v);
    assert_string_equal(v, "events_p20260301");
    value(c, "SELECT tableoid::regclass::text FROM events WHERE id = 'agent-1:7:0'", v, sizeof v);
    assert_string_equal(v, "events_p20260301");
    value(c, "SELECT count(*) FROM events_default", v, sizeof v);
    assert_string_equal(v, "0");

    /* UTC day bounds: 23:59:59Z is the same day, 00:00:00Z the next. */
    insert_event(c, "agent-1:8:0", "2026-03-01T23:59:59Z", st);
    assert_string_equal(st, "00000");
    insert_event(c, "agent-1:8:1", "2026-03-02T00:00:00Z", st);
    assert_string_equal(st, "00000");
    value(c, "SELECT string_agg(tableoid::regclass::text, ',' ORDER BY id) FROM events"
             " WHERE id LIKE 'agent-1:8:%'",
          v, sizeof v);
    assert_string_equal(v, "events_p20260301,events_default");

    /* The key holds in the day's partition too. */
    insert_event(c, "agent-1:7:0", "2026-03-01T10:00:00Z", st);
    assert_string_equal(st, "23505");
    assert_true(has_index(c, "events_p20260301", "id,time", 1));
    assert_true(has_index(c, "events_p20260301", "host,time", 0));
    value(c, "SELECT count(*) FROM events", v, sizeof v);
    assert_string_equal(v, "3");
    finish(c);
}

/* Migrating an up-to-date database does nothing; a database newer than
 * this binary is refused, clearly, and left as it was. */
static void test_rerun_and_newer(void **state)
{
    (void)state;
    PGconn *c = connect_to(db);
    char err[512] = "", v[64];
    int from = -1, to = -1;
    int latest = cw_pg_schema_latest();
    assert_int_equal(cw_pg_migrate(c, &from, &to, err, sizeof err), 0);
    assert_int_equal(from, latest);
    assert_int_equal(to, latest);

    must(c, "INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')");
    from = to = -1;
    assert_int_equal(cw_pg_migrate(c, &from, &to, err, sizeof err), -1);
    assert_int_equal(from, 999);
    assert_non_null(strstr(err, "version 999"));
    assert_non_null(strstr(err, "newer than this chainwatchd knows"));
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    value(c, "SELECT count(*) FROM schema_migrations", v, sizeof v);
    snprintf(err, sizeof err, "%d", latest + 1);
    assert_string_equal(v, err);
    finish(c);
}

/* Two servers starting together against an empty database: both succeed,
 * each migration is applied once. */
struct racer {
    PGconn *c;
    int rc, from, to;
    char err[512];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    r->rc = cw_pg_migrate(r->c, &r->from, &r->to, r->err, sizeof r->err);
    return NULL;
}

static void test_concurrent_start(void **state)
{
    (void)state;
    struct racer rs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        rs[i].c = connect_to(db_race);
    }
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    int latest = cw_pg_schema_latest();
    for (int i = 0; i < 2; i++) {
        if (rs[i].rc != 0) fail_msg("racer %d: %s", i, rs[i].err);
        assert_int_equal(rs[i].to, latest);
    }
    /* Exactly one of them found the empty database. */
    assert_true((rs[0].from == 0) != (rs[1].from == 0));
    char v[32], want[32];
    value(rs[0].c, "SELECT count(*) FROM schema_migrations", v, sizeof v);
    snprintf(want, sizeof want, "%d", latest);
    assert_string_equal(v, want);
    for (int i = 0; i < 2; i++) finish(rs[i].c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_database),
        cmocka_unit_test(test_events_unique_and_partitions),
        cmocka_unit_test(test_rerun_and_newer),
        cmocka_unit_test(test_concurrent_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
