/* Helpers shared by the PostgreSQL unit tests (blocking libpq, which is
 * fine in a test): run a statement or fail, read one value. Include after
 * cmocka.h. */
#ifndef CW_PG_TESTLIB_H
#define CW_PG_TESTLIB_H

#include <libpq-fe.h>
#include <stdio.h>

static inline void must(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* The single value of a one-row, one-column query ("NULL" for NULL). */
static inline void value(PGconn *c, const char *sql, char *out, size_t size)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s (%d rows)", sql, PQresultErrorMessage(r), PQntuples(r));
    snprintf(out, size, "%s", PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0));
    PQclear(r);
}

#endif
