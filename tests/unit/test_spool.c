/* Unit tests: spool group commit, reading back, stop, backpressure, segment
 * roll and deletion, and a failing disk. Real files in a temporary dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "common/metrics.h"
#include "tests/unit/spool_testlib.h"

/* ---- group commit from two threads ------------------------------------ */

#define NPER 2000

typedef struct gate {
    treq q;
    pthread_mutex_t m;
    pthread_cond_t c;
    int open;
} gate;

/* Writer thread: holds the writer until the test opens the gate, so every
 * request submitted meanwhile queues up for the next group. */
static void gate_done(cw_spool_req *req)
{
    gate *g = req->user;
    pthread_mutex_lock(&g->m);
    while (!g->open) pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
}

typedef struct submitter {
    cw_spool *s;
    const char *key;
    treq *reqs;
    tracker *t;
    int failures;
} submitter;

static void *submit_main(void *arg)
{
    submitter *w = arg;
    for (int i = 0; i < NPER; i++) {
        treq_fill(&w->reqs[i], w->t, CW_REC_BATCH, w->key, (uint64_t)i + 1);
        if (cw_spool_submit(w->s, &w->reqs[i].req) != CW_SPOOL_OK) w->failures++;
    }
    return NULL;
}

static void group_commit_from_two_threads(void **state)
{
    cw_spool_opts o = test_opts(*state);
    cw_spool *s = open_spool(&o);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    assert_int_equal(cw_spool_start(s), 0);

    gate g = {.open = 0};
    pthread_mutex_init(&g.m, NULL);
    pthread_cond_init(&g.c, NULL);
    treq_fill(&g.q, NULL, CW_REC_HELLO, "gate", 0);
    g.q.req.done = gate_done;
    g.q.req.user = &g;
    uint64_t fsyncs0 = cw_metric_get(cw_m.spool_fsyncs_total);
    assert_int_equal(cw_spool_submit(s, &g.q.req), CW_SPOOL_OK);

    tracker t;
    tracker_init(&t);
    treq *ra = calloc(NPER, sizeof *ra), *rb = calloc(NPER, sizeof *rb);
    submitter wa = {s, "agent-a", ra, &t, 0}, wb = {s, "agent-b", rb, &t, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, submit_main, &wa);
    pthread_create(&tb, NULL, submit_main, &wb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(wa.failures + wb.failures, 0);
    pthread_mutex_lock(&g.m);
    g.open = 1;
    pthread_cond_broadcast(&g.c);
    pthread_mutex_unlock(&g.m);

    assert_int_equal(tracker_wait(&t, 2 * NPER), 0);
    assert_int_equal(t.ok, 2 * NPER);
    assert_int_equal(t.out_of_order, 0);
    uint64_t fsyncs = cw_metric_get(cw_m.spool_fsyncs_total) - fsyncs0;
    assert_true(fsyncs < 2 * NPER);
    assert_true(fsyncs <= 3); /* the gate's group, then the queued ones together */

    /* Everything reads back in order per agent, with the same content. */
    uint64_t next_a = 1, next_b = 1, last_off = 0;
    int n = 0;
    cw_spool_record rec;
    assert_int_equal(cw_spool_read(rd, &rec, 0), 1);
    assert_true(record_matches(&rec, CW_REC_HELLO, "gate", 0));
    while (cw_spool_read(rd, &rec, 0) == 1) {
        assert_true(rec.offset > last_off);
        last_off = rec.offset;
        if (rec.key_len == 7 && memcmp(rec.key, "agent-a", 7) == 0)
            assert_true(record_matches(&rec, CW_REC_BATCH, "agent-a", next_a++));
        else
            assert_true(record_matches(&rec, CW_REC_BATCH, "agent-b", next_b++));
        n++;
    }
    assert_int_equal(n, 2 * NPER);
    assert_int_equal(next_a, NPER + 1);
    assert_int_equal(next_b, NPER + 1);
    assert_true(cw_spool_reader_lag(rd) > last_off);
    assert_int_equal(cw_spool_reader_commit(rd), 0);
    assert_int_equal(cw_spool_reader_lag(rd), 0);

    cw_spool_close(s);
    free(ra);
    free(rb);
    tracker_destroy(&t);
    pthread_cond_destroy(&g.c);
    pthread_mutex_destroy(&g.m);
}

/* ---- stop ------------------------------------------------------------- */

typedef struct reader_ctx {
    cw_spool_reader *rd;
    int n, bad, last;
} reader_ctx;

static void *read_until_eof(void *arg)
{
    reader_ctx *c = arg;
    cw_spool_record rec;
    while ((c->last = cw_spool_read(c->rd, &rec, -1)) == 1) {
        if (!record_matches(&rec, CW_REC_BATCH, "stopper", (uint64_t)c->n + 1)) c->bad++;
        c->n++;
    }
    return NULL;
}

/* Runs on the spool's writer thread. */
static void count_notify(void *ud)
{
    atomic_fetch_add((_Atomic int *)ud, 1);
}

static void stop_drains_then_readers_reach_eof(void **state)
{
    cw_spool_opts o = test_opts(*state);
    cw_spool *s = open_spool(&o);
    reader_ctx c = {0};
    _Atomic int notified = 0;
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &c.rd), 0);
    cw_spool_reader_set_notify(c.rd, count_notify, &notified);
    assert_int_equal(cw_spool_start(s), 0);
    pthread_t th;
    pthread_create(&th, NULL, read_until_eof, &c);

    tracker t;
    tracker_init(&t);
    treq q[101];
    for (int i = 0; i < 100; i++) {
        treq_fill(&q[i], &t, CW_REC_BATCH, "stopper", (uint64_t)i + 1);
        assert_int_equal(cw_spool_submit(s, &q[i].req), CW_SPOOL_OK);
    }
    cw_spool_stop(s);
    /* Stop returns only once the queue is durable and every done ran. */
    assert_int_equal(t.done, 100);
    assert_int_equal(t.ok, 100);
    assert_int_equal(t.out_of_order, 0);
    assert_true(atomic_load(&notified) >= 1);
    treq_fill(&q[100], &t, CW_REC_BATCH, "stopper", 101);
    assert_int_equal(cw_spool_submit(s, &q[100].req), CW_SPOOL_STOPPED);

    pthread_join(th, NULL);
    assert_int_equal(c.n, 100);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.last, CW_SPOOL_EOF);
    cw_spool_close(s);
    assert_int_equal(t.done, 100); /* the refused request's done never ran */
    tracker_destroy(&t);
}

/* ---- backpressure ----------------------------------------------------- */

typedef struct listener {
    pthread_mutex_t m;
    pthread_cond_t c;
    int calls;
} listener;

/* Runs on the spool's writer thread. */
static void on_space(void *ud)
{
    listener *l = ud;
    pthread_mutex_lock(&l->m);
    l->calls++;
    pthread_cond_broadcast(&l->c);
    pthread_mutex_unlock(&l->m);
}

static int listener_wait(listener *l)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60; /* only against hanging forever */
    pthread_mutex_lock(&l->m);
    while (l->calls == 0 && pthread_cond_timedwait(&l->c, &l->m, &dl) == 0) {
    }
    int calls = l->calls;
    pthread_mutex_unlock(&l->m);
    return calls;
}

static void full_until_reader_commits(void **state)
{
    cw_spool_opts o = test_opts(*state);
    o.max_bytes = 4096;
    cw_spool *s = open_spool(&o);
    listener l = {.calls = 0};
    pthread_mutex_init(&l.m, NULL);
    pthread_cond_init(&l.c, NULL);
    assert_int_equal(cw_spool_add_space_listener(s, on_space, &l), 0);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "slow", &rd), 0);
    assert_int_equal(cw_spool_start(s), 0);

    tracker t;
    tracker_init(&t);
    treq *q = calloc(200, sizeof *q);
    int i = 0, r = CW_SPOOL_OK;
    for (; i < 200; i++) {
        treq_fill(&q[i], &t, CW_REC_BATCH, "busy", (uint64_t)i + 1);
        r = cw_spool_submit(s, &q[i].req);
        if (r != CW_SPOOL_OK) break;
        assert_int_equal(tracker_wait(&t, i + 1), 0);
    }
    assert_int_equal(r, CW_SPOOL_FULL);
    assert_true(cw_spool_reader_lag(rd) > 4096);
    assert_int_equal(l.calls, 0);

    /* The reader catches up and commits: room returns, the listener fires. */
    cw_spool_record rec;
    int n = 0;
    while (cw_spool_read(rd, &rec, 0) == 1) n++;
    assert_int_equal(n, i);
    assert_int_equal(cw_spool_reader_commit(rd), 0);
    assert_int_equal(listener_wait(&l), 1);
    assert_int_equal(cw_spool_reader_lag(rd), 0);
    assert_int_equal(cw_spool_submit(s, &q[i].req), CW_SPOOL_OK);
    assert_int_equal(tracker_wait(&t, i + 1), 0);
    assert_int_equal(t.ok, i + 1);

    cw_spool_close(s);
    free(q);
    tracker_destroy(&t);
    pthread_cond_destroy(&l.c);
    pthread_mutex_destroy(&l.m);
}

static void full_while_queue_is_full(void **state)
{
    cw_spool_opts o = test_opts(*state);
    o.queue_max_bytes = 1000;
    cw_spool *s = open_spool(&o);
    listener l = {.calls = 0};
    pthread_mutex_init(&l.m, NULL);
    pthread_cond_init(&l.c, NULL);
    assert_int_equal(cw_spool_add_space_listener(s, on_space, &l), 0);

    /* Not started yet: requests stay queued, so the queue limit is hit. */
    tracker t;
    tracker_init(&t);
    treq q[32];
    int i = 0, r = CW_SPOOL_OK;
    for (; i < 31; i++) {
        treq_fill(&q[i], &t, CW_REC_AUDIT, "cluster-1", (uint64_t)i + 1);
        if ((r = cw_spool_submit(s, &q[i].req)) != CW_SPOOL_OK) break;
    }
    assert_int_equal(r, CW_SPOOL_FULL);
    assert_true(i > 1 && i < 31);
    assert_int_equal(cw_spool_start(s), 0);
    assert_int_equal(listener_wait(&l), 1);
    assert_int_equal(tracker_wait(&t, i), 0);
    assert_int_equal(t.ok, i);
    assert_int_equal(cw_spool_submit(s, &q[i].req), CW_SPOOL_OK);
    cw_spool_close(s);
    assert_int_equal(t.ok, i + 1);
    tracker_destroy(&t);
    pthread_cond_destroy(&l.c);
    pthread_mutex_destroy(&l.m);
}

static void rejects_malformed_requests(void **state)
{
    cw_spool_opts o = test_opts(*state);
    cw_spool *s = open_spool(&o);
    treq q;
    treq_fill(&q, NULL, CW_REC_HWM, "x", 1);
    assert_int_equal(cw_spool_submit(s, &q.req), CW_SPOOL_INVAL);
    treq_fill(&q, NULL, 9, "x", 1);
    assert_int_equal(cw_spool_submit(s, &q.req), CW_SPOOL_INVAL);
    treq_fill(&q, NULL, CW_REC_BATCH, "x", 1);
    q.req.body_len = CW_SPOOL_BODY_MAX + 1;
    assert_int_equal(cw_spool_submit(s, &q.req), CW_SPOOL_INVAL);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "bad/name", &rd), -EINVAL);
    assert_int_equal(cw_spool_reader_open(s, "", &rd), -EINVAL);
    assert_int_equal(cw_spool_reader_open(s, "ok", &rd), 0);
    assert_int_equal(cw_spool_reader_open(s, "ok", &rd), -EEXIST);
    cw_spool_close(s);
}

/* A spool keeps its identity across reopens; a wiped one gets a new one. */
static void identity_survives_reopen_and_not_a_wipe(void **state)
{
    cw_spool_opts o = test_opts(*state);
    cw_spool *s = open_spool(&o);
    char id[CW_SPOOL_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", cw_spool_id(s));
    assert_int_equal(strlen(id), CW_SPOOL_ID_LEN);
    assert_int_equal(strspn(id, "0123456789abcdef"), CW_SPOOL_ID_LEN);
    cw_spool_close(s);
    s = open_spool(&o);
    assert_string_equal(cw_spool_id(s), id);
    cw_spool_close(s);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/spool'", (const char *)*state);
    assert_int_equal(system(cmd), 0);
    s = open_spool(&o);
    assert_string_not_equal(cw_spool_id(s), id);
    cw_spool_close(s);
}

/* ---- segment roll and deletion --------------------------------------- */

static void hwm_of(const char *id, size_t len, uint64_t seq, void *ud)
{
    uint64_t *m = ud; /* m[0]: agent x, m[1]: agent y, m[2]: others */
    if (len == 1 && id[0] == 'x')
        m[0] = seq;
    else if (len == 1 && id[0] == 'y')
        m[1] = seq;
    else
        m[2]++;
}

static void segments_roll_and_are_deleted_once_read(void **state)
{
    cw_spool_opts o = test_opts(*state);
    o.segment_bytes = 1024;
    cw_spool *s = open_spool(&o);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    assert_int_equal(cw_spool_start(s), 0);
    tracker t;
    tracker_init(&t);
    treq *q = calloc(90, sizeof *q);
    /* Agent x's batches all land in segments that get deleted. */
    for (int i = 0; i < 90; i++) {
        uint64_t seq = i < 30 ? (uint64_t)i + 1 : (uint64_t)i - 29;
        treq_fill(&q[i], &t, CW_REC_BATCH, i < 30 ? "x" : "y", seq);
        assert_int_equal(cw_spool_submit(s, &q[i].req), CW_SPOOL_OK);
        assert_int_equal(tracker_wait(&t, i + 1), 0); /* one group each */
    }
    assert_true(count_segments(*state) > 5);
    cw_spool_record rec;
    for (int i = 0; i < 90; i++) {
        assert_int_equal(cw_spool_read(rd, &rec, 0), 1);
        assert_true(record_matches(&rec, CW_REC_BATCH, i < 30 ? "x" : "y",
                                   i < 30 ? (uint64_t)i + 1 : (uint64_t)i - 29));
    }
    assert_int_equal(cw_spool_read(rd, &rec, 0), -1);
    assert_int_equal(cw_spool_reader_commit(rd), 0);
    cw_spool_stop(s); /* the writer saves the cursor and deletes on its way out */
    assert_int_equal(count_segments(*state), 1);
    cw_spool_close(s);
    assert_int_equal(cw_metric_get(cw_m.spool_bytes), 0);

    s = open_spool(&o);
    uint64_t m[3] = {0, 0, 0};
    cw_spool_foreach_hwm(s, hwm_of, m);
    assert_int_equal(m[0], 30);
    assert_int_equal(m[1], 60);
    assert_int_equal(m[2], 0);
    char path[1024];
    struct stat st;
    last_segment_path(*state, path, sizeof path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(cw_metric_get(cw_m.spool_bytes), st.st_size);
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    assert_int_equal(cw_spool_read(rd, &rec, 0), -1); /* all read before */
    cw_spool_close(s);
    free(q);
    tracker_destroy(&t);
}

static void without_readers_spool_keeps_max_bytes(void **state)
{
    cw_spool_opts o = test_opts(*state);
    o.segment_bytes = 1024;
    o.max_bytes = 4096;
    cw_spool *s = open_spool(&o);
    assert_int_equal(cw_spool_start(s), 0);
    tracker t;
    tracker_init(&t);
    treq *q = calloc(100, sizeof *q);
    for (int i = 0; i < 100; i++) {
        treq_fill(&q[i], &t, CW_REC_BATCH, "x", (uint64_t)i + 1);
        assert_int_equal(cw_spool_submit(s, &q[i].req), CW_SPOOL_OK);
        assert_int_equal(tracker_wait(&t, i + 1), 0);
    }
    cw_spool_close(s);
    assert_true(count_segments(*state) >= 1);
    s = open_spool(&o);
    assert_true(cw_metric_get(cw_m.spool_bytes) <= 4096);
    uint64_t m[3] = {0, 0, 0};
    cw_spool_foreach_hwm(s, hwm_of, m);
    assert_int_equal(m[0], 100);
    cw_spool_close(s);
    free(q);
    tracker_destroy(&t);
}

/* ---- a failing disk ---------------------------------------------------- */

static void failed_write_is_reported_and_not_stored(void **state)
{
    cw_spool_opts o = test_opts(*state);
    cw_spool *s = open_spool(&o);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    assert_int_equal(cw_spool_start(s), 0);

    /* Writes past 8 KiB of a file fail (EFBIG): the segment cannot grow. */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 8192;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    tracker t;
    tracker_init(&t);
    treq *q = calloc(200, sizeof *q);
    int i = 0, failed = -1;
    for (; i < 200 && failed < 0; i++) {
        treq_fill(&q[i], &t, CW_REC_BATCH, "f", (uint64_t)i + 1);
        assert_int_equal(cw_spool_submit(s, &q[i].req), CW_SPOOL_OK);
        assert_int_equal(tracker_wait(&t, i + 1), 0);
        if (q[i].req.status == CW_SPOOL_IO) failed = i;
    }
    assert_true(failed > 0);
    /* The writer moves on to a new segment, where writing works again. */
    treq_fill(&q[i], &t, CW_REC_BATCH, "f", (uint64_t)failed + 1);
    assert_int_equal(cw_spool_submit(s, &q[i].req), CW_SPOOL_OK);
    assert_int_equal(tracker_wait(&t, i + 1), 0);
    assert_int_equal(q[i].req.status, CW_SPOOL_OK);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(count_segments(*state), 2);

    /* Readers see every acknowledged record and nothing of the failed one. */
    cw_spool_record rec;
    for (int k = 0; k <= failed; k++) {
        assert_int_equal(cw_spool_read(rd, &rec, 0), 1);
        assert_true(record_matches(&rec, CW_REC_BATCH, "f", (uint64_t)k + 1));
    }
    assert_int_equal(cw_spool_read(rd, &rec, 0), -1);
    cw_spool_close(s);

    s = open_spool(&o);
    uint64_t m[3] = {0, 0, 0};
    cw_spool_foreach_hwm(s, hwm_of, m);
    assert_int_equal(m[2], 1); /* only agent "f" */
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    for (int k = 0; k <= failed; k++) {
        assert_int_equal(cw_spool_read(rd, &rec, 0), 1);
        assert_true(record_matches(&rec, CW_REC_BATCH, "f", (uint64_t)k + 1));
    }
    assert_int_equal(cw_spool_read(rd, &rec, 0), -1);
    cw_spool_close(s);
    free(q);
    tracker_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(group_commit_from_two_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_drains_then_readers_reach_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(full_until_reader_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(full_while_queue_is_full, setup, teardown),
        cmocka_unit_test_setup_teardown(rejects_malformed_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(identity_survives_reopen_and_not_a_wipe, setup, teardown),
        cmocka_unit_test_setup_teardown(segments_roll_and_are_deleted_once_read, setup, teardown),
        cmocka_unit_test_setup_teardown(without_readers_spool_keeps_max_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_is_reported_and_not_stored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
