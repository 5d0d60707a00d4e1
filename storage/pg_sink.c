/* pg_sink: the PostgreSQL sink. See pg_sink.h for the contract and
 * storage/README.md for the transaction shape.
 *
 * Thread model: everything below runs on the sink's own thread and loop,
 * except the public functions (main thread), on_notify (the sink spool's
 * writer thread: it only wakes the loop) and migrate_work (libuv's thread
 * pool, while the loop leaves the connection alone).
 *
 * One connection, one transaction at a time. The transaction (pg_txn.h) is
 * built from the spool while the previous one is not in flight, kept until
 * COMMIT is confirmed, and written again, unchanged, after any failure:
 *   [SELECT chainwatch_ensure_partition(day) for each new day, autocommit]
 *   BEGIN; COPY events FROM STDIN          (simple query; the COPY rows)
 *   pipeline: [BEGIN,] upserts of alerts and incidents in spool order,
 *             COMMIT, sync
 * If the COPY fails with unique_violation (rows of a replay that are
 * already stored), the transaction is rolled back and written once more
 * through a staging table: COPY cw_stage; INSERT INTO events SELECT * FROM
 * cw_stage ON CONFLICT DO NOTHING; the rest as above. Any other failure
 * drops the connection (the server rolls back) and reconnects with
 * backoff. */
#include "storage/pg_sink.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "common/log.h"
#include "common/metrics.h"
#include "storage/outrec.h"
#include "storage/pg_schema.h"
#include "storage/pg_txn.h"

#define MOD "pg_sink"
#define APP_NAME "chainwatchd-sink"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 10000 /* when the conninfo sets no connect_timeout */
#define TICK_MS 1000
/* COPY data is handed to libpq in pieces of this size, and no more while
 * libpq still has unsent output, so its buffer stays small. */
#define COPY_CHUNK (256u << 10)

enum conn_state { CS_DOWN, CS_CONNECTING, CS_MIGRATING, CS_READY };

/* Where the transaction in hand is. */
enum step {
    T_IDLE,           /* building; nothing sent */
    T_PARTITION,      /* next day to ensure, or on to T_BEGIN */
    T_PARTITION_WAIT, /* ensure_partition sent */
    T_BEGIN,          /* BEGIN; COPY to send (or straight to the pipeline) */
    T_BEGIN_WAIT,     /* waiting for COPY IN */
    T_COPY_DATA,      /* sending rows */
    T_COPY_END,       /* sending the end of the data */
    T_COPY_WAIT,      /* the COPY's result */
    T_ROLLBACK_WAIT,  /* after a unique_violation */
    T_STAGE_WAIT,     /* slow path: INSERT ... SELECT FROM cw_stage */
    T_PIPELINE,       /* upserts and COMMIT to send */
    T_PIPELINE_WAIT,  /* their results and the sync */
};

typedef struct pg_poll {
    uv_poll_t h;
    int fd, events;
} pg_poll;

struct cw_pg_sink {
    char *conninfo;
    uint32_t batch_rows;
    uint32_t past_days, future_days; /* the day-partition window around today */
    unsigned connect_timeout_ms;
    cw_spool_reader *reader;

    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t retry_timer, conn_timer, drain_timer, tick_timer;
    pthread_t thread;
    int started, joined;
    pthread_mutex_t wake_lock; /* guards wake_ok against on_notify */
    int wake_ok;
    atomic_int stop_req;
    atomic_uint drain_ms;

    PGconn *conn;
    enum conn_state cs;
    pg_poll *poll;
    int want_write; /* libpq has output it could not send yet */
    unsigned backoff_ms;
    /* Days whose partition exists, learned on this connection. */
    int32_t days_done[64];
    size_t n_days_done;

    uv_work_t work;
    PGcancel *cancel; /* of the connection the migration runs on */
    int work_rc;
    char work_err[256];

    /* The transaction in hand. */
    cw_pg_txn txn;
    enum step step;
    size_t copy_off;
    size_t part_day; /* index into txn.days of the day being ensured */
    int slow;        /* writing through the staging table */
    uint64_t dups;   /* rows of the txn found already stored (slow path) */
    PGresult *res;   /* result being collected: the first error or the last */
    int nulls;       /* consecutive NULL results in the pipeline */

    /* Reading. The current record may be split across transactions (more
     * events than batch_rows); its pointers stay valid until the next read. */
    cw_spool_record cur;
    int have_cur;
    size_t cur_pos;
    int eof;

    int stopping;  /* stop requested: drain */
    int finishing; /* closing down */
    cw_log_limit warn_limit;
};

static void drive(cw_pg_sink *p);
static void fail(cw_pg_sink *p, const char *what, PGresult *r);

/* ---- Logging -------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void warnf(cw_pg_sink *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cw_vlog_limited(&p->warn_limit, uv_now(&p->loop), CW_LOG_WARN, MOD, fmt, ap);
    va_end(ap);
}

/* libpq's message without its trailing newline, into buf. */
static const char *pq_msg(PGconn *c, const PGresult *r, char *buf, size_t size)
{
    const char *m = r ? PQresultErrorMessage(r) : NULL;
    if ((!m || !*m) && c) m = PQerrorMessage(c);
    if (!m) m = "";
    /* One log line: libpq's messages span several, indented with tabs. */
    size_t o = 0;
    for (const char *q = m; *q && o + 1 < size; q++) {
        char ch = *q == '\n' || *q == '\t' ? ' ' : *q;
        if (ch == ' ' && (o == 0 || buf[o - 1] == ' ')) continue;
        buf[o++] = ch;
    }
    while (o > 0 && buf[o - 1] == ' ') o--;
    buf[o] = '\0';
    return buf;
}

/* Notices ("relation already exists, skipping" ...) would go to stderr. */
static void on_notice(void *arg, const PGresult *r)
{
    (void)arg;
    char buf[256];
    cw_debug(MOD, "server: %s", pq_msg(NULL, r, buf, sizeof buf));
}

/* ---- Poll handle ---------------------------------------------------- */

static void free_handle(uv_handle_t *h)
{
    free(h->data);
}

/* Closes the poll handle of the current socket. Called before anything
 * else once libpq may have closed or replaced that socket: libuv must
 * never be asked to watch a closed descriptor again. */
static void close_poll(cw_pg_sink *p)
{
    if (!p->poll) return;
    uv_poll_stop(&p->poll->h);
    uv_close((uv_handle_t *)&p->poll->h, free_handle);
    p->poll = NULL;
}

static void on_poll(uv_poll_t *h, int status, int events);

static int open_poll(cw_pg_sink *p, int fd, int events)
{
    pg_poll *pp = calloc(1, sizeof *pp);
    if (!pp) return -ENOMEM;
    int rc = uv_poll_init(&p->loop, &pp->h, fd);
    if (rc < 0) {
        free(pp);
        return rc;
    }
    pp->h.data = pp;
    pp->fd = fd;
    p->poll = pp;
    rc = uv_poll_start(&pp->h, events, on_poll);
    if (rc < 0) {
        close_poll(p);
        return rc;
    }
    pp->events = events;
    return 0;
}

/* Whether the connection is gone (libpq may have closed its socket). */
static int conn_lost(cw_pg_sink *p)
{
    return !p->conn || PQstatus(p->conn) == CONNECTION_BAD || PQsocket(p->conn) < 0 ||
           !p->poll || PQsocket(p->conn) != p->poll->fd;
}

/* Watches for input always (results, or the server going away) and for
 * room to write while libpq holds unsent output (level-triggered: never
 * leave UV_WRITABLE armed with nothing to write). */
static int arm(cw_pg_sink *p)
{
    if (conn_lost(p)) {
        fail(p, "connection lost", NULL);
        return -1;
    }
    int ev = UV_READABLE | (p->want_write ? UV_WRITABLE : 0);
    if (ev == p->poll->events) return 0;
    int rc = uv_poll_start(&p->poll->h, ev, on_poll);
    if (rc < 0) {
        warnf(p, "poll: %s", uv_strerror(rc));
        fail(p, "poll", NULL);
        return -1;
    }
    p->poll->events = ev;
    return 0;
}

/* ---- Connection ----------------------------------------------------- */

static void reset_txn_state(cw_pg_sink *p)
{
    PQclear(p->res);
    p->res = NULL;
    p->want_write = 0;
    p->nulls = 0;
    /* What was sent is void; the transaction starts over, with every day
     * asked again (the cache is per connection). */
    if (p->step != T_IDLE) p->step = T_PARTITION;
    p->part_day = 0;
}

static void drop_conn(cw_pg_sink *p)
{
    close_poll(p);
    if (p->conn) PQfinish(p->conn);
    p->conn = NULL;
    p->cs = CS_DOWN;
    p->n_days_done = 0;
    uv_timer_stop(&p->conn_timer);
    cw_metric_set(cw_m.sink_up[CW_SINK_PG], 0);
    reset_txn_state(p);
}

static void on_retry(uv_timer_t *t);

/* Every failure: counted, logged (rate-limited), the connection dropped
 * and a new one tried after the backoff. */
static void fail(cw_pg_sink *p, const char *what, PGresult *r)
{
    char buf[512];
    pq_msg(p->conn, r, buf, sizeof buf);
    warnf(p, "postgres: %s%s%s; retrying in %u ms", what, *buf ? ": " : "", buf, p->backoff_ms);
    PQclear(r);
    cw_metric_add(cw_m.sink_errors_total[CW_SINK_PG], 1);
    drop_conn(p);
    if (p->finishing) return;
    uv_timer_start(&p->retry_timer, on_retry, p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

/* Hands what libpq buffered to the socket; remembers whether some is left. */
static int flush_out(cw_pg_sink *p)
{
    int rc = PQflush(p->conn);
    if (rc < 0) {
        fail(p, "send", NULL);
        return -1;
    }
    p->want_write = rc == 1;
    return 0;
}

static void on_conn_timeout(uv_timer_t *t)
{
    cw_pg_sink *p = t->data;
    if (p->cs != CS_CONNECTING) return;
    char what[64];
    snprintf(what, sizeof what, "connect timed out after %u ms", p->connect_timeout_ms);
    /* libpq's own message would be stale or empty here. */
    PQfinish(p->conn);
    p->conn = NULL;
    fail(p, what, NULL);
}

static void finish_shutdown(cw_pg_sink *p);

/* Thread pool: applies the migrations with blocking calls (pg_schema.h) on
 * the freshly connected connection, which the loop does not touch until
 * migrate_done. A statement timeout bounds a wait for another server's
 * migration; keepalives (see the connection parameters) a dead peer. */
static void migrate_work(uv_work_t *w)
{
    cw_pg_sink *p = w->data;
    PQclear(PQexec(p->conn, "SET statement_timeout = '120s'"));
    int from = 0, to = 0;
    p->work_rc = cw_pg_migrate(p->conn, &from, &to, p->work_err, sizeof p->work_err);
    PQclear(PQexec(p->conn, "RESET statement_timeout"));
    if (p->work_rc == 0 && from != to)
        cw_info(MOD, "postgres: schema migrated from version %d to %d", from, to);
}

static void migrate_done(uv_work_t *w, int status)
{
    cw_pg_sink *p = w->data;
    (void)status; /* never cancelled: the work is queued only when it can run */
    PQfreeCancel(p->cancel);
    p->cancel = NULL;
    if (p->finishing) {
        finish_shutdown(p);
        return;
    }
    if (p->work_rc < 0) {
        char what[300];
        snprintf(what, sizeof what, "schema: %s", p->work_err);
        fail(p, what, NULL);
        return;
    }
    if (PQstatus(p->conn) != CONNECTION_OK || PQsocket(p->conn) < 0 ||
        PQsetnonblocking(p->conn, 1) < 0) {
        fail(p, "after migration", NULL);
        return;
    }
    int rc = open_poll(p, PQsocket(p->conn), UV_READABLE);
    if (rc < 0) {
        warnf(p, "poll: %s", uv_strerror(rc));
        fail(p, "poll", NULL);
        return;
    }
    p->cs = CS_READY;
    cw_metric_set(cw_m.sink_up[CW_SINK_PG], 1);
    cw_info(MOD, "postgres: connected to %s:%s/%s", PQhost(p->conn), PQport(p->conn),
            PQdb(p->conn));
    drive(p);
}

static void connect_step(cw_pg_sink *p)
{
    PostgresPollingStatusType st = PQconnectPoll(p->conn);
    /* The socket may be another one now (next address) or closed: always
     * start over with a fresh poll handle. */
    close_poll(p);
    if (st == PGRES_POLLING_FAILED) {
        fail(p, "connect", NULL);
        return;
    }
    if (st == PGRES_POLLING_OK) {
        uv_timer_stop(&p->conn_timer);
        p->cs = CS_MIGRATING;
        p->cancel = PQgetCancel(p->conn);
        p->work.data = p;
        int rc = uv_queue_work(&p->loop, &p->work, migrate_work, migrate_done);
        if (rc < 0) {
            PQfreeCancel(p->cancel);
            p->cancel = NULL;
            fail(p, "queue migration", NULL);
        }
        return;
    }
    int fd = PQsocket(p->conn);
    int rc = fd < 0 ? -EBADF
                    : open_poll(p, fd, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE);
    if (rc < 0) fail(p, "connect", NULL);
}

static void connect_start(cw_pg_sink *p)
{
    /* Ours first: a later key wins, and the conninfo string, expanded in
     * place of dbname, may override any of them. */
    const char *keys[] = {"application_name", "keepalives", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                          "dbname", NULL};
    const char *vals[] = {APP_NAME, "1", "10", "5", "3", "30000", p->conninfo, NULL};
    p->conn = PQconnectStartParams(keys, vals, 1);
    if (!p->conn || PQstatus(p->conn) == CONNECTION_BAD) {
        fail(p, "connect", NULL);
        return;
    }
    PQsetNoticeReceiver(p->conn, on_notice, p);
    p->cs = CS_CONNECTING;
    uv_timer_start(&p->conn_timer, on_conn_timeout, p->connect_timeout_ms, 0);
    int fd = PQsocket(p->conn);
    int rc = fd < 0 ? -EBADF : open_poll(p, fd, UV_WRITABLE);
    if (rc < 0) fail(p, "connect", NULL);
}

static void on_retry(uv_timer_t *t)
{
    cw_pg_sink *p = t->data;
    if (p->cs == CS_DOWN && !p->finishing) connect_start(p);
}

/* ---- Reading the spool ---------------------------------------------- */

static void record_done(cw_pg_sink *p)
{
    p->txn.end = p->cur.end;
    p->have_cur = 0;
}

/* UTC days since 1970-01-01 of a time in seconds, rounding down. */
static int32_t utc_day(int64_t sec)
{
    return (int32_t)(sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400));
}

/* Adds records to the transaction until it is full or nothing more is
 * readable now. */
static void fill(cw_pg_sink *p)
{
    cw_pg_txn *t = &p->txn;
    /* A new transaction takes today's partition window (the wall clock of
     * this server, not of the agents). A kept one keeps its own. */
    if (cw_pg_txn_empty(t) && t->end == 0) {
        int32_t today = utc_day((int64_t)time(NULL));
        cw_pg_txn_set_window(t, today - (int32_t)p->past_days, today + (int32_t)p->future_days);
    }
    for (;;) {
        if (!p->have_cur) {
            if (p->eof) return;
            int rc = cw_spool_read(p->reader, &p->cur, 0);
            if (rc == CW_SPOOL_EOF) p->eof = 1;
            if (rc <= 0) return;
            p->have_cur = 1;
            p->cur_pos = 0;
        }
        const cw_spool_record *r = &p->cur;
        switch (r->kind) {
        case CW_REC_OUT_EVENTS:
            for (;;) {
                if (cw_pg_txn_events_full(t, p->batch_rows)) return;
                cw_outrec_event ev;
                size_t pos = p->cur_pos;
                int n = cw_outrec_next(r->body, r->body_len, &pos, &ev);
                if (n < 0)
                    warnf(p, "sink spool record at %llu: malformed events, rest skipped",
                          (unsigned long long)r->offset);
                if (n <= 0) break;
                if (cw_pg_txn_add_event(t, &ev) < 0) {
                    warnf(p, "out of memory building a transaction");
                    return; /* retried with the entry not consumed */
                }
                p->cur_pos = pos;
            }
            break;
        case CW_REC_OUT_ALERT:
        case CW_REC_OUT_INCIDENT: {
            if (cw_pg_txn_stmts_full(t)) return;
            int rc = r->kind == CW_REC_OUT_ALERT
                         ? cw_pg_txn_add_alert(t, r->body, r->body_len, r->time_ns)
                         : cw_pg_txn_add_incident(t, r->body, r->body_len, r->time_ns);
            if (rc < 0) {
                warnf(p, "out of memory building a transaction");
                return;
            }
            if (rc > 0) {
                warnf(p, "sink spool record at %llu: not a JSON object with an id, skipped",
                      (unsigned long long)r->offset);
                t->skipped++;
            }
            break;
        }
        default:
            t->skipped++; /* not ours to write */
            break;
        }
        record_done(p);
    }
}

static void update_lag(cw_pg_sink *p)
{
    cw_metric_set(cw_m.sink_lag_bytes[CW_SINK_PG], (int64_t)cw_spool_reader_lag(p->reader));
}

/* The transaction is durable: move the cursor past its whole records. */
static void committed(cw_pg_sink *p)
{
    cw_pg_txn *t = &p->txn;
    int rc = t->end ? cw_spool_reader_commit_at(p->reader, t->end) : 0;
    if (rc < 0) warnf(p, "saving the cursor: %s", strerror(-rc)); /* replayed: harmless */
    uint64_t dups = p->dups > t->n_events ? t->n_events : p->dups;
    cw_metric_add(cw_m.sink_delivered_total[CW_SINK_PG][CW_SINK_EVENTS], t->n_events - dups);
    cw_metric_add(cw_m.sink_delivered_total[CW_SINK_PG][CW_SINK_ALERTS], t->n_alerts);
    cw_metric_add(cw_m.sink_delivered_total[CW_SINK_PG][CW_SINK_INCIDENTS], t->n_incidents);
    if (dups) cw_metric_add(cw_m.sink_duplicates_total[CW_SINK_PG], dups);
    if (t->n_truncated) {
        cw_metric_add(cw_m.pg_columns_truncated_total, t->n_truncated);
        warnf(p, "%zu event column values over %u bytes cut in their columns (whole in body)",
              t->n_truncated, CW_PG_COLUMN_MAX);
    }
    if (t->n_unpartitioned) {
        cw_metric_add(cw_m.pg_events_unpartitioned_total, t->n_unpartitioned);
        char day[16];
        cw_pg_format_day(utc_day(t->unpartitioned_ns / 1000000000), day, sizeof day);
        warnf(p,
              "%zu events dated outside the partition window (e.g. %s; pg.partition_past_days,"
              " pg.partition_future_days) stored in events_default",
              t->n_unpartitioned, day);
    }
    /* Stay on the slow path while it keeps finding what a replay already
     * stored; the first transaction without any goes back to plain COPY. */
    if (p->slow && dups == 0) p->slow = 0;
    p->dups = 0;
    cw_pg_txn_reset(t);
    p->step = T_IDLE;
    update_lag(p);
}

/* ---- Writing -------------------------------------------------------- */

/* Collects the results of the query sent last until libpq's NULL: 1 with
 * p->res (the first error, else the last result; caller owns it), 0 if more
 * input is needed, 2 when a COPY IN starts (with copy_in). */
static int collect(cw_pg_sink *p, int copy_in)
{
    while (!PQisBusy(p->conn)) {
        PGresult *r = PQgetResult(p->conn);
        if (!r) return 1;
        ExecStatusType st = PQresultStatus(r);
        if (copy_in && st == PGRES_COPY_IN) {
            PQclear(r);
            return 2;
        }
        if (p->res && PQresultStatus(p->res) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(p->res);
            p->res = r;
        }
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) return 1;
    }
    return 0;
}

static PGresult *take_res(cw_pg_sink *p)
{
    PGresult *r = p->res;
    p->res = NULL;
    return r;
}

static int res_ok(const PGresult *r)
{
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static int day_done(const cw_pg_sink *p, int32_t day)
{
    for (size_t i = 0; i < p->n_days_done; i++)
        if (p->days_done[i] == day) return 1;
    return 0;
}

static void add_day_done(cw_pg_sink *p, int32_t day)
{
    size_t cap = sizeof p->days_done / sizeof p->days_done[0];
    if (p->n_days_done == cap) { /* forget the oldest: asked again, harmless */
        memmove(p->days_done, p->days_done + 1, (cap - 1) * sizeof p->days_done[0]);
        p->n_days_done--;
    }
    p->days_done[p->n_days_done++] = day;
}

static int send_query(cw_pg_sink *p, const char *sql, enum step next)
{
    if (!PQsendQuery(p->conn, sql)) {
        fail(p, "send", NULL);
        return -1;
    }
    p->step = next;
    return flush_out(p) < 0 ? -1 : 1;
}

static const char fast_begin_sql[] = "BEGIN; COPY events (" CW_PG_EVENT_COLS ") FROM STDIN";
/* The staging table lives for the session; ON COMMIT DELETE ROWS empties
 * it at every commit and a rollback takes its rows with it. */
static const char slow_begin_sql[] =
    "BEGIN; SET LOCAL client_min_messages = warning;"
    " CREATE TEMP TABLE IF NOT EXISTS cw_stage (LIKE events) ON COMMIT DELETE ROWS;"
    " COPY cw_stage (" CW_PG_EVENT_COLS ") FROM STDIN";
static const char stage_insert_sql[] =
    "INSERT INTO events (" CW_PG_EVENT_COLS ") SELECT " CW_PG_EVENT_COLS
    " FROM cw_stage ON CONFLICT DO NOTHING";

static int send_pipeline(cw_pg_sink *p)
{
    cw_pg_txn *t = &p->txn;
    PGconn *c = p->conn;
    if (!PQenterPipelineMode(c)) goto err;
    if (t->n_events == 0 && !PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
        goto err;
    for (size_t i = 0; i < t->n_stmts; i++) {
        const cw_pg_stmt *s = &t->stmts[i];
        const char *vals[CW_PG_MAX_PARAMS];
        cw_pg_txn_values(t, s, vals);
        if (!PQsendQueryParams(c, cw_pg_stmt_sql(s->kind), s->nparams, NULL, vals, NULL, NULL,
                               0))
            goto err;
    }
    if (!PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(c))
        goto err;
    p->nulls = 0;
    p->step = T_PIPELINE_WAIT;
    return flush_out(p) < 0 ? -1 : 1;
err:
    fail(p, "send", NULL);
    return -1;
}

/* Reads the pipeline's results up to its sync. */
static int pipeline_wait(cw_pg_sink *p)
{
    int synced = 0;
    while (!synced && !PQisBusy(p->conn)) {
        PGresult *r = PQgetResult(p->conn);
        if (!r) {
            /* One NULL ends each query's results; two in a row mean the
             * next ones have not arrived. */
            if (++p->nulls >= 2) {
                p->nulls = 0;
                break;
            }
            continue;
        }
        p->nulls = 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) synced = 1;
        if (st == PGRES_FATAL_ERROR && !p->res) p->res = r;
        else PQclear(r);
    }
    if (!synced) return conn_lost(p) ? (fail(p, "connection lost", NULL), -1) : 0;
    PGresult *err = take_res(p);
    if (err) {
        fail(p, "transaction", err);
        return -1;
    }
    if (!PQexitPipelineMode(p->conn) || PQtransactionStatus(p->conn) != PQTRANS_IDLE) {
        fail(p, "commit", NULL);
        return -1;
    }
    p->backoff_ms = BACKOFF_MIN_MS; /* the database works again */
    committed(p);
    return 1;
}

/* One step of the transaction in hand. 1: go on, 0: wait for I/O, -1:
 * failed (the connection is gone). */
static int step(cw_pg_sink *p)
{
    cw_pg_txn *t = &p->txn;
    int rc;
    switch (p->step) {
    case T_IDLE:
        fill(p);
        if (cw_pg_txn_empty(t)) {
            if (t->end) committed(p); /* only records with nothing to write */
            return 0;
        }
        p->step = T_PARTITION;
        p->part_day = 0;
        return 1;
    case T_PARTITION:
        while (p->part_day < t->n_days && day_done(p, t->days[p->part_day])) p->part_day++;
        if (p->part_day == t->n_days) {
            p->step = T_BEGIN;
            return 1;
        }
        char day[16];
        cw_pg_format_day(t->days[p->part_day], day, sizeof day);
        const char *vals[1] = {day};
        if (!PQsendQueryParams(p->conn, "SELECT chainwatch_ensure_partition($1::date)", 1, NULL,
                               vals, NULL, NULL, 0)) {
            fail(p, "send", NULL);
            return -1;
        }
        p->step = T_PARTITION_WAIT;
        return flush_out(p) < 0 ? -1 : 1;
    case T_PARTITION_WAIT:
        if ((rc = collect(p, 0)) == 0) return 0;
        if (!res_ok(p->res)) {
            fail(p, "ensuring a partition", take_res(p));
            return -1;
        }
        PQclear(take_res(p));
        add_day_done(p, t->days[p->part_day]);
        p->step = T_PARTITION;
        return 1;
    case T_BEGIN:
        if (t->n_events == 0) {
            p->step = T_PIPELINE;
            return 1;
        }
        p->dups = 0;
        return send_query(p, p->slow ? slow_begin_sql : fast_begin_sql, T_BEGIN_WAIT);
    case T_BEGIN_WAIT:
        if ((rc = collect(p, 1)) == 0) return 0;
        if (rc == 1) { /* ended without COPY IN */
            fail(p, "starting COPY", take_res(p));
            return -1;
        }
        PQclear(take_res(p)); /* BEGIN's */
        p->copy_off = 0;
        p->step = T_COPY_DATA;
        return 1;
    case T_COPY_DATA:
        while (p->copy_off < t->copy.len) {
            if (p->want_write) return 0;
            size_t n = t->copy.len - p->copy_off;
            if (n > COPY_CHUNK) n = COPY_CHUNK;
            rc = PQputCopyData(p->conn, (const char *)t->copy.data + p->copy_off, (int)n);
            if (rc < 0) {
                fail(p, "COPY", NULL);
                return -1;
            }
            if (rc == 0) {
                p->want_write = 1;
                return 0;
            }
            p->copy_off += n;
            if (flush_out(p) < 0) return -1;
        }
        p->step = T_COPY_END;
        return 1;
    case T_COPY_END:
        rc = PQputCopyEnd(p->conn, NULL);
        if (rc < 0) {
            fail(p, "COPY", NULL);
            return -1;
        }
        if (rc == 0) {
            p->want_write = 1;
            return 0;
        }
        p->step = T_COPY_WAIT;
        return flush_out(p) < 0 ? -1 : 1;
    case T_COPY_WAIT: {
        if ((rc = collect(p, 0)) == 0) return 0;
        PGresult *r = take_res(p);
        if (res_ok(r)) {
            PQclear(r);
            if (p->slow) return send_query(p, stage_insert_sql, T_STAGE_WAIT);
            p->step = T_PIPELINE;
            return 1;
        }
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (!p->slow && state && strcmp(state, "23505") == 0) {
            /* A replay: some rows are stored already. Write it again
             * through the staging table. Not a failure. */
            PQclear(r);
            cw_debug(MOD, "unique_violation: rewriting %zu events through cw_stage",
                     t->n_events);
            return send_query(p, "ROLLBACK", T_ROLLBACK_WAIT);
        }
        fail(p, "COPY", r);
        return -1;
    }
    case T_ROLLBACK_WAIT:
        if ((rc = collect(p, 0)) == 0) return 0;
        if (!res_ok(p->res)) {
            fail(p, "ROLLBACK", take_res(p));
            return -1;
        }
        PQclear(take_res(p));
        p->slow = 1;
        p->step = T_BEGIN;
        return 1;
    case T_STAGE_WAIT: {
        if ((rc = collect(p, 0)) == 0) return 0;
        PGresult *r = take_res(p);
        if (!res_ok(r)) {
            fail(p, "INSERT from cw_stage", r);
            return -1;
        }
        unsigned long long inserted = strtoull(PQcmdTuples(r), NULL, 10);
        PQclear(r);
        p->dups = inserted < t->n_events ? t->n_events - inserted : 0;
        p->step = T_PIPELINE;
        return 1;
    }
    case T_PIPELINE:
        return send_pipeline(p);
    case T_PIPELINE_WAIT:
        return pipeline_wait(p);
    }
    return 0;
}

static void begin_shutdown(cw_pg_sink *p);

static void maybe_finish(cw_pg_sink *p)
{
    if (p->stopping && !p->finishing && p->eof && !p->have_cur && p->step == T_IDLE &&
        cw_pg_txn_empty(&p->txn) && p->txn.end == 0)
        begin_shutdown(p);
}

/* Runs the transaction as far as it can go without waiting. */
static void drive(cw_pg_sink *p)
{
    if (p->finishing) return;
    if (p->cs != CS_READY) {
        /* Build the next transaction meanwhile (or commit records that need
         * no database); the one in hand waits for the connection. */
        if (p->step == T_IDLE) {
            fill(p);
            if (cw_pg_txn_empty(&p->txn) && p->txn.end) committed(p);
        }
        maybe_finish(p);
        return;
    }
    int rc;
    while ((rc = step(p)) > 0) {
    }
    if (rc == 0 && p->cs == CS_READY) {
        if (arm(p) < 0) return;
    }
    maybe_finish(p);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    cw_pg_sink *p = h->loop->data;
    /* libuv reports POLLERR (a refused connect, a reset) as UV_EBADF; let
     * libpq look at the socket and tell what happened (and while
     * connecting, try the next address). */
    if (p->cs == CS_CONNECTING) {
        connect_step(p);
        return;
    }
    if (p->cs != CS_READY) return;
    if (status < 0) {
        PQconsumeInput(p->conn);
        fail(p, "connection lost", NULL);
        return;
    }
    if ((events & UV_READABLE) && !PQconsumeInput(p->conn)) {
        fail(p, "receive", NULL);
        return;
    }
    if ((events & UV_WRITABLE) && flush_out(p) < 0) return;
    if (conn_lost(p)) {
        fail(p, "connection lost", NULL);
        return;
    }
    drive(p);
}

/* ---- Life cycle on the loop ----------------------------------------- */

static void on_notify(void *ud)
{
    cw_pg_sink *p = ud;
    pthread_mutex_lock(&p->wake_lock);
    if (p->wake_ok) uv_async_send(&p->wake);
    pthread_mutex_unlock(&p->wake_lock);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Closes everything; uv_run returns once the close callbacks ran. */
static void finish_shutdown(cw_pg_sink *p)
{
    drop_conn(p);
    pthread_mutex_lock(&p->wake_lock);
    p->wake_ok = 0;
    pthread_mutex_unlock(&p->wake_lock);
    cw_spool_reader_set_notify(p->reader, NULL, NULL);
    close_handle((uv_handle_t *)&p->wake);
    close_handle((uv_handle_t *)&p->retry_timer);
    close_handle((uv_handle_t *)&p->conn_timer);
    close_handle((uv_handle_t *)&p->drain_timer);
    close_handle((uv_handle_t *)&p->tick_timer);
    update_lag(p);
}

static void begin_shutdown(cw_pg_sink *p)
{
    if (p->finishing) return;
    p->finishing = 1;
    if (p->cs == CS_MIGRATING) {
        /* The migration holds the connection on the thread pool: ask the
         * server to cancel it; migrate_done finishes the shutdown. */
        char buf[256];
        if (p->cancel) PQcancel(p->cancel, buf, sizeof buf);
        return;
    }
    finish_shutdown(p);
}

static void on_drain_timeout(uv_timer_t *t)
{
    cw_pg_sink *p = t->data;
    if (!p->eof || !cw_pg_txn_empty(&p->txn) || p->have_cur)
        cw_warn(MOD, "drain timeout: what is not committed stays in the sink spool");
    begin_shutdown(p);
}

static void on_wake(uv_async_t *a)
{
    cw_pg_sink *p = a->data;
    if (atomic_load(&p->stop_req) && !p->stopping) {
        p->stopping = 1;
        unsigned ms = atomic_load(&p->drain_ms);
        if (ms == 0) {
            begin_shutdown(p);
            return;
        }
        uv_timer_start(&p->drain_timer, on_drain_timeout, ms, 0);
    }
    /* New records (or the stop): the lag is not 0 until they committed,
     * whether or not the database is there. */
    update_lag(p);
    drive(p);
}

static void on_tick(uv_timer_t *t)
{
    cw_pg_sink *p = t->data;
    update_lag(p);
    /* A notify may have been missed (or a read failed for a while). */
    if (p->step == T_IDLE) drive(p);
}

static void *thread_main(void *arg)
{
    cw_pg_sink *p = arg;
    uv_run(&p->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&p->loop);
    if (rc != 0) cw_error(MOD, "loop close: %s", uv_strerror(rc));
    return NULL;
}

/* ---- Public --------------------------------------------------------- */

/* connect_timeout of the conninfo, in ms (libpq reads it as seconds, at
 * least 2); CONNECT_TIMEOUT_MS when absent. */
static unsigned connect_timeout_of(PQconninfoOption *opts)
{
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "connect_timeout") != 0 || !o->val || !*o->val) continue;
        long s = strtol(o->val, NULL, 10);
        if (s <= 0) break;
        if (s < 2) s = 2;
        if (s > 3600) s = 3600;
        return (unsigned)s * 1000;
    }
    return CONNECT_TIMEOUT_MS;
}

int cw_pg_sink_create(cw_pg_sink **out, const cw_config *cfg, cw_spool *sink_spool, char *err,
                      size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->pg_conninfo, &perr);
    if (!opts) {
        snprintf(err, errlen, "postgres: pg.conninfo: %s", perr ? perr : "out of memory");
        PQfreemem(perr);
        return -1;
    }
    cw_pg_sink *p = calloc(1, sizeof *p);
    if (!p || !(p->conninfo = strdup(cfg->pg_conninfo))) {
        PQconninfoFree(opts);
        free(p);
        snprintf(err, errlen, "postgres: out of memory");
        return -1;
    }
    p->connect_timeout_ms = connect_timeout_of(opts);
    PQconninfoFree(opts);
    p->batch_rows = cfg->pg_batch_rows ? cfg->pg_batch_rows : 1;
    p->past_days = cfg->pg_partition_past_days;
    p->future_days = cfg->pg_partition_future_days;
    p->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_init(&p->wake_lock, NULL);
    cw_pg_txn_init(&p->txn);
    int rc = cw_spool_reader_open(sink_spool, "pg", &p->reader);
    if (rc < 0) {
        snprintf(err, errlen, "postgres: sink spool reader: %s", strerror(-rc));
        cw_pg_sink_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

int cw_pg_sink_start(cw_pg_sink *p, char *err, size_t errlen)
{
    if (p->started) {
        snprintf(err, errlen, "postgres: sink already started");
        return -1;
    }
    int rc = uv_loop_init(&p->loop);
    if (rc < 0) {
        snprintf(err, errlen, "postgres: loop: %s", uv_strerror(rc));
        return -1;
    }
    p->loop.data = p;
    uv_async_init(&p->loop, &p->wake, on_wake);
    p->wake.data = p;
    uv_timer_t *timers[] = {&p->retry_timer, &p->conn_timer, &p->drain_timer, &p->tick_timer};
    for (size_t i = 0; i < 4; i++) {
        uv_timer_init(&p->loop, timers[i]);
        timers[i]->data = p;
    }
    p->wake_ok = 1;
    cw_spool_reader_set_notify(p->reader, on_notify, p);
    uv_timer_start(&p->retry_timer, on_retry, 0, 0); /* connect at once */
    uv_timer_start(&p->tick_timer, on_tick, TICK_MS, TICK_MS);
    rc = pthread_create(&p->thread, NULL, thread_main, p);
    if (rc == 0) pthread_setname_np(p->thread, "cw-pg"); /* for top -H and the benchmarks */
    if (rc != 0) {
        snprintf(err, errlen, "postgres: thread: %s", strerror(rc));
        /* Nothing ran on the loop: close it here. */
        p->finishing = 1;
        finish_shutdown(p);
        uv_run(&p->loop, UV_RUN_DEFAULT);
        uv_loop_close(&p->loop);
        return -1;
    }
    p->started = 1;
    return 0;
}

void cw_pg_sink_stop(cw_pg_sink *p, unsigned drain_ms)
{
    if (!p || !p->started || p->joined) return;
    atomic_store(&p->drain_ms, drain_ms);
    atomic_store(&p->stop_req, 1);
    uv_async_send(&p->wake);
    pthread_join(p->thread, NULL);
    p->joined = 1;
}

void cw_pg_sink_free(cw_pg_sink *p)
{
    if (!p) return;
    cw_pg_sink_stop(p, 0);
    cw_pg_txn_free(&p->txn);
    pthread_mutex_destroy(&p->wake_lock);
    free(p->conninfo);
    free(p);
}

int cw_pg_sink_check(const cw_config *cfg, unsigned timeout_ms, char *err, size_t errlen)
{
    char secs[16];
    unsigned s = (timeout_ms + 999) / 1000;
    snprintf(secs, sizeof secs, "%u", s < 2 ? 2 : s);
    const char *keys[] = {"application_name", "dbname", "connect_timeout", NULL};
    const char *vals[] = {"chainwatchd-check", cfg->pg_conninfo, secs, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    char buf[512];
    int rc = -1;
    if (!c || PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "postgres: %s", c ? pq_msg(c, NULL, buf, sizeof buf) : "no memory");
        goto out;
    }
    PQsetNoticeReceiver(c, on_notice, NULL);
    snprintf(buf, sizeof buf, "SET statement_timeout = %u", timeout_ms ? timeout_ms : 1);
    PQclear(PQexec(c, buf));
    /* Version 0 when the table is absent (a new database). */
    PGresult *r = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    int exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                 strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && exists) {
        PQclear(r);
        r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, errlen, "postgres: reading the schema version: %s",
                 pq_msg(c, r, buf, sizeof buf));
        PQclear(r);
        goto out;
    }
    int v = exists ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    if (v > cw_pg_schema_latest()) {
        snprintf(err, errlen,
                 "postgres: database schema is at version %d, newer than this chainwatchd"
                 " knows (%d)",
                 v, cw_pg_schema_latest());
        goto out;
    }
    rc = 0;
out:
    PQfinish(c);
    return rc;
}
