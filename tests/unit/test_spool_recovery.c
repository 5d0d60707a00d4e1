/* Unit tests: what the spool finds after a restart or a crash — high-water
 * marks, reader cursors, torn tails, corrupt older segments, bad cursor
 * files — and the HWM record encoding. Real files in a temporary dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>

#include "storage/spool_hwm.h"
#include "tests/unit/spool_testlib.h"

typedef struct item {
    uint8_t kind;
    const char *key;
    uint64_t seq;
} item;

/* Starts a spool, writes items (one group each when `one_by_one`), stops it. */
static void write_items(cw_spool *s, const item *it, int n, int one_by_one)
{
    tracker t;
    tracker_init(&t);
    treq *q = calloc((size_t)n, sizeof *q);
    assert_int_equal(cw_spool_start(s), 0);
    for (int i = 0; i < n; i++) {
        treq_fill(&q[i], &t, it[i].kind, it[i].key, it[i].seq);
        assert_int_equal(cw_spool_submit(s, &q[i].req), CW_SPOOL_OK);
        if (one_by_one) assert_int_equal(tracker_wait(&t, i + 1), 0);
    }
    cw_spool_stop(s);
    assert_int_equal(t.ok, n);
    free(q);
    tracker_destroy(&t);
}

static void write_batches(const cw_spool_opts *o, const char *key, int from, int to)
{
    item *it = calloc((size_t)(to - from + 1), sizeof *it);
    for (int i = from; i <= to; i++) it[i - from] = (item){CW_REC_BATCH, key, (uint64_t)i};
    cw_spool *s = open_spool(o);
    write_items(s, it, to - from + 1, 1);
    cw_spool_close(s);
    free(it);
}

typedef struct marks {
    int n;
    char id[8][16];
    uint64_t seq[8];
} marks;

static void collect(const char *id, size_t len, uint64_t seq, void *ud)
{
    marks *m = ud;
    if (m->n < 8) {
        snprintf(m->id[m->n], sizeof m->id[0], "%.*s", (int)len, id);
        m->seq[m->n++] = seq;
    }
}

static uint64_t mark_of(cw_spool *s, const char *id, int *count)
{
    marks m = {0};
    cw_spool_foreach_hwm(s, collect, &m);
    if (count) *count = m.n;
    for (int i = 0; i < m.n; i++)
        if (strcmp(m.id[i], id) == 0) return m.seq[i];
    return 0;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Reads every record now durable; checks they are batches of `key` with
 * consecutive seqs starting at `first`. Returns how many. */
static int read_batches(cw_spool_reader *rd, const char *key, uint64_t first)
{
    cw_spool_record rec;
    int n = 0;
    while (cw_spool_read(rd, &rec, 0) == 1) {
        assert_true(record_matches(&rec, CW_REC_BATCH, key, first + (uint64_t)n));
        n++;
    }
    return n;
}

static void restart_restores_marks_and_cursor(void **state)
{
    const item it[] = {
        {CW_REC_HELLO, "a", 0}, {CW_REC_BATCH, "a", 1}, {CW_REC_BATCH, "a", 2},
        {CW_REC_BATCH, "b", 1}, {CW_REC_BATCH, "a", 3}, {CW_REC_AUDIT, "cluster", 77},
        {CW_REC_BATCH, "b", 2}, {CW_REC_BATCH, "a", 4}, {CW_REC_BATCH, "b", 3},
        {CW_REC_BATCH, "a", 5},
    };
    const int n = (int)(sizeof it / sizeof it[0]);
    cw_spool_opts o = test_opts(*state);
    cw_spool *s = open_spool(&o);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    write_items(s, it, n, 0);
    cw_spool_record rec;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(cw_spool_read(rd, &rec, 0), 1);
        assert_true(record_matches(&rec, it[i].kind, it[i].key, it[i].seq));
        if (i == 3) assert_int_equal(cw_spool_reader_commit(rd), 0); /* after 4 */
    }
    cw_spool_close(s);

    s = open_spool(&o);
    int count;
    assert_int_equal(mark_of(s, "a", &count), 5);
    assert_int_equal(mark_of(s, "b", NULL), 3);
    assert_int_equal(count, 2); /* hellos and audit events set no mark */
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    for (int i = 4; i < n; i++) { /* what was read but not committed comes again */
        assert_int_equal(cw_spool_read(rd, &rec, 0), 1);
        assert_true(record_matches(&rec, it[i].kind, it[i].key, it[i].seq));
    }
    assert_int_equal(cw_spool_read(rd, &rec, 0), -1);
    cw_spool_close(s);
}

static void torn_tail_garbage_is_truncated(void **state)
{
    cw_spool_opts o = test_opts(*state);
    write_batches(&o, "t", 1, 10);
    char path[1024];
    last_segment_path(*state, path, sizeof path);
    off_t good = file_size(path);
    FILE *f = fopen(path, "ab");
    for (int i = 0; i < 100; i++) fputc(i * 31, f);
    fclose(f);

    cw_spool *s = open_spool(&o);
    assert_int_equal(file_size(path), good);
    assert_int_equal(mark_of(s, "t", NULL), 10);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    assert_int_equal(read_batches(rd, "t", 1), 10);
    cw_spool_close(s);

    write_batches(&o, "t", 11, 12); /* appending works after recovery */
    s = open_spool(&o);
    assert_int_equal(mark_of(s, "t", NULL), 12);
    assert_int_equal(cw_spool_reader_open(s, "fresh", &rd), 0);
    assert_int_equal(read_batches(rd, "t", 1), 12);
    cw_spool_close(s);
}

static void record_cut_short_is_dropped(void **state)
{
    cw_spool_opts o = test_opts(*state);
    write_batches(&o, "t", 1, 10);
    char path[1024];
    last_segment_path(*state, path, sizeof path);
    assert_int_equal(truncate(path, file_size(path) - 5), 0);

    cw_spool *s = open_spool(&o);
    assert_int_equal(mark_of(s, "t", NULL), 9); /* batch 10 was never whole */
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    assert_int_equal(read_batches(rd, "t", 1), 9);
    cw_spool_close(s);

    write_batches(&o, "t", 10, 11); /* the agent resends 10 */
    s = open_spool(&o);
    assert_int_equal(mark_of(s, "t", NULL), 11);
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    assert_int_equal(read_batches(rd, "t", 1), 11);
    cw_spool_close(s);
}

static void garbage_only_segment_starts_empty(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/spool", (char *)*state);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/spool/00000000000000000000.seg", (char *)*state);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 5000; i++) fputc(0xff ^ i, f);
    fclose(f);
    /* Files that are not segments are left alone. */
    snprintf(path, sizeof path, "%s/spool/123.seg", (char *)*state);
    fclose(fopen(path, "wb"));

    cw_spool_opts o = test_opts(*state);
    cw_spool *s = open_spool(&o);
    int count;
    mark_of(s, "x", &count);
    assert_int_equal(count, 0);
    cw_spool_close(s);
    write_batches(&o, "x", 1, 3);
    s = open_spool(&o);
    assert_int_equal(mark_of(s, "x", NULL), 3);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    assert_int_equal(read_batches(rd, "x", 1), 3);
    cw_spool_close(s);
    assert_int_equal(file_size(path), 0);
}

static void corrupt_record_in_older_segment_skips_its_rest(void **state)
{
    cw_spool_opts o = test_opts(*state);
    o.segment_bytes = 1024;
    write_batches(&o, "c", 1, 40);
    assert_true(count_segments(*state) >= 3);
    char path[1024];
    snprintf(path, sizeof path, "%s/spool/00000000000000000000.seg", (char *)*state);
    off_t size = file_size(path);
    int fd = open(path, O_RDWR);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, size / 2), 1);
    byte ^= 0x55;
    assert_int_equal(pwrite(fd, &byte, 1, size / 2), 1);
    close(fd);

    cw_spool *s = open_spool(&o);
    assert_int_equal(file_size(path), size); /* only the last segment is truncated */
    assert_int_equal(mark_of(s, "c", NULL), 40);
    cw_spool_reader *rd;
    assert_int_equal(cw_spool_reader_open(s, "pipeline", &rd), 0);
    cw_spool_record rec;
    uint64_t prev = 0;
    int n = 0;
    while (cw_spool_read(rd, &rec, 0) == 1) {
        assert_true(rec.seq > prev);
        assert_true(record_matches(&rec, CW_REC_BATCH, "c", rec.seq));
        prev = rec.seq;
        n++;
    }
    assert_true(n > 0 && n < 40); /* the rest of the first segment is gone */
    assert_int_equal(prev, 40);
    cw_spool_close(s);
    write_batches(&o, "c", 41, 41);
    s = open_spool(&o);
    assert_int_equal(mark_of(s, "c", NULL), 41);
    cw_spool_close(s);
}

static void write_cursor(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/spool/cursors/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void bad_cursors_are_clamped(void **state)
{
    cw_spool_opts o = test_opts(*state);
    o.segment_bytes = 1024;
    o.max_bytes = 2048; /* no readers: old segments are deleted */
    write_batches(&o, "k", 1, 40);
    write_cursor(*state, "ahead", "99999999\n");
    write_cursor(*state, "behind", "0\n");
    write_cursor(*state, "garbage", "12x\n");

    cw_spool *s = open_spool(&o);
    cw_spool_reader *ahead, *behind, *garbage;
    assert_int_equal(cw_spool_reader_open(s, "ahead", &ahead), 0);
    assert_int_equal(cw_spool_reader_open(s, "behind", &behind), 0);
    assert_int_equal(cw_spool_reader_open(s, "garbage", &garbage), 0);
    cw_spool_record rec;
    assert_int_equal(cw_spool_read(ahead, &rec, 0), -1); /* at the end */
    assert_int_equal(cw_spool_read(behind, &rec, 0), 1); /* at the oldest left */
    uint64_t oldest = rec.seq;
    assert_true(oldest > 1 && oldest < 40);
    assert_int_equal(read_batches(behind, "k", oldest + 1), (int)(40 - oldest));
    assert_int_equal(read_batches(garbage, "k", oldest), (int)(40 - oldest + 1));
    assert_int_equal(cw_spool_reader_commit(ahead), 0);
    cw_spool_close(s);
}

static void second_open_of_the_same_spool_is_refused(void **state)
{
    cw_spool_opts o = test_opts(*state);
    cw_spool *s = open_spool(&o), *s2 = NULL;
    char err[256] = "";
    assert_int_equal(cw_spool_open(&s2, &o, err, sizeof err), -EBUSY);
    assert_null(s2);
    assert_non_null(strstr(err, "in use"));
    cw_spool_close(s);
    s = open_spool(&o); /* the lock went with the first spool */
    cw_spool_close(s);
}

static void hwm_encoding_round_trips_in_chunks(void **state)
{
    (void)state;
    cw_spool_hwm a, b;
    cw_spool_hwm_init(&a);
    cw_spool_hwm_init(&b);
    char id[256];
    for (int i = 0; i < 6000; i++) {
        int len = snprintf(id, sizeof id, "%0200d", i);
        assert_int_equal(cw_spool_hwm_update(&a, id, (size_t)len, (uint64_t)i + 1), 0);
        assert_int_equal(cw_spool_hwm_update(&a, id, (size_t)len, 1), 0); /* keeps the max */
    }
    assert_int_equal(a.n, 6000);
    cw_buf body;
    cw_buf_init(&body, 0);
    size_t slot = 0;
    int chunks = 0;
    while (slot < a.cap) {
        uint64_t count;
        cw_buf_reset(&body);
        assert_int_equal(cw_spool_hwm_encode(&a, &slot, &body, &count), 0);
        assert_true(body.len <= CW_SPOOL_HWM_CHUNK);
        assert_int_equal(cw_spool_hwm_apply(&b, body.data, body.len, count), 0);
        chunks++;
    }
    assert_true(chunks >= 2); /* 6000 x 209 bytes do not fit one chunk */
    assert_int_equal(b.n, 6000);
    for (int i = 0; i < 6000; i++) {
        int len = snprintf(id, sizeof id, "%0200d", i);
        assert_int_equal(cw_spool_hwm_get(&b, id, (size_t)len), (uint64_t)i + 1);
    }
    /* Malformed bodies change nothing. */
    const uint8_t bad1[] = {3, 'a', 'b', 'c', 1, 0, 0};           /* cut short */
    const uint8_t bad2[] = {1, 'z', 0, 0, 0, 0, 0, 0, 0, 0};      /* seq 0 */
    const uint8_t good[] = {1, 'z', 5, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(cw_spool_hwm_apply(&b, bad1, sizeof bad1, 1), -EINVAL);
    assert_int_equal(cw_spool_hwm_apply(&b, bad2, sizeof bad2, 1), -EINVAL);
    assert_int_equal(cw_spool_hwm_apply(&b, good, sizeof good, 2), -EINVAL); /* count */
    assert_int_equal(b.n, 6000);
    assert_int_equal(cw_spool_hwm_apply(&b, good, sizeof good, 1), 0);
    assert_int_equal(cw_spool_hwm_get(&b, "z", 1), 5);
    cw_buf_free(&body);
    cw_spool_hwm_free(&a);
    cw_spool_hwm_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(restart_restores_marks_and_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_tail_garbage_is_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(record_cut_short_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_only_segment_starts_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_record_in_older_segment_skips_its_rest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_cursors_are_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(second_open_of_the_same_spool_is_refused, setup, teardown),
        cmocka_unit_test(hwm_encoding_round_trips_in_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
