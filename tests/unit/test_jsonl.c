/* Unit tests: the JSON Lines writer keeps whole lines and survives errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/metrics.h"
#include "storage/jsonl.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cw-jsonl-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static size_t slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
    return n;
}

static void appends_whole_lines(void **state)
{
    (void)state;
    char path[128], err[256], buf[4096];
    snprintf(path, sizeof path, "%s/events.jsonl", dir);
    cw_jsonl *j;
    umask(022);
    assert_int_equal(cw_jsonl_open(&j, path, err, sizeof err), 0);
    assert_int_equal(cw_jsonl_write(j, "{\"a\":1}", 7), 0);
    assert_int_equal(cw_jsonl_write(j, "{\"b\":2}", 7), 0);
    assert_int_equal(cw_jsonl_write(j, "{\"c\":\n3}", 8), -1); /* would be two lines */
    /* Buffered until flushed. */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(cw_jsonl_sync(j), 0);
    assert_int_equal(cw_jsonl_lines(j), 2);
    assert_int_equal(cw_jsonl_close(j), 0);
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\":1}\n{\"b\":2}\n");

    /* Reopening appends. */
    assert_int_equal(cw_jsonl_open(&j, path, err, sizeof err), 0);
    assert_int_equal(cw_jsonl_write(j, "{}", 2), 0);
    assert_int_equal(cw_jsonl_close(j), 0); /* close flushes */
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\":1}\n{\"b\":2}\n{}\n");

    /* Many lines: the automatic flush keeps memory bounded, all arrive. */
    assert_int_equal(cw_jsonl_open(&j, path, err, sizeof err), 0);
    char line[200];
    memset(line, 'x', sizeof line);
    line[0] = '"';
    line[sizeof line - 1] = '"';
    for (int i = 0; i < 5000; i++) assert_int_equal(cw_jsonl_write(j, line, sizeof line), 0);
    assert_int_equal(cw_jsonl_close(j), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 16 + 3 + 5000 * (sizeof line + 1));
}

static void torn_tail_removed_at_open(void **state)
{
    (void)state;
    char path[128], err[256], buf[256];
    snprintf(path, sizeof path, "%s/torn.jsonl", dir);
    FILE *f = fopen(path, "wb");
    fputs("{\"ok\":1}\n{\"torn\":", f);
    fclose(f);
    cw_jsonl *j;
    assert_int_equal(cw_jsonl_open(&j, path, err, sizeof err), 0);
    assert_int_equal(cw_jsonl_write(j, "{\"next\":2}", 10), 0);
    assert_int_equal(cw_jsonl_close(j), 0);
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"ok\":1}\n{\"next\":2}\n");

    /* A file that is all torn line. */
    f = fopen(path, "wb");
    fputs("garbage without newline", f);
    fclose(f);
    assert_int_equal(cw_jsonl_open(&j, path, err, sizeof err), 0);
    assert_int_equal(cw_jsonl_close(j), 0);
    assert_int_equal(slurp(path, buf, sizeof buf), 0);
}

static void write_errors_are_counted_not_fatal(void **state)
{
    (void)state;
    char err[256];
    cw_jsonl *j;
    /* /dev/full fails every write with ENOSPC. */
    if (cw_jsonl_open(&j, "/dev/full", err, sizeof err) < 0) skip();
    uint64_t errors = cw_metric_get(cw_m.output_write_errors_total);
    uint64_t dropped = cw_metric_get(cw_m.output_lines_dropped_total);
    assert_int_equal(cw_jsonl_write(j, "{}", 2), 0);
    assert_int_equal(cw_jsonl_write(j, "[]", 2), 0);
    assert_int_equal(cw_jsonl_flush(j), -1);
    assert_true(cw_metric_get(cw_m.output_write_errors_total) > errors);
    assert_int_equal(cw_metric_get(cw_m.output_lines_dropped_total), dropped + 2);
    assert_int_equal(cw_jsonl_lines(j), 0);
    /* The writer keeps working (and failing) without crashing. */
    assert_int_equal(cw_jsonl_write(j, "{}", 2), 0);
    cw_jsonl_close(j);

    assert_int_equal(cw_jsonl_open(&j, "/nonexistent/dir/x.jsonl", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/dir/x.jsonl"));
}

static void short_write_leaves_only_whole_lines(void **state)
{
    (void)state;
    char path[128], err[256], buf[1024];
    snprintf(path, sizeof path, "%s/short.jsonl", dir);
    cw_jsonl *j;
    assert_int_equal(cw_jsonl_open(&j, path, err, sizeof err), 0);
    /* A file size limit makes the kernel write part of the buffer, then
     * refuse the rest (EFBIG): the same shape as a disk filling up. */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 100;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    char line[30];
    memset(line, '1', sizeof line);
    uint64_t dropped = cw_metric_get(cw_m.output_lines_dropped_total);
    for (int i = 0; i < 10; i++) assert_int_equal(cw_jsonl_write(j, line, sizeof line), 0);
    int r = cw_jsonl_flush(j);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(r, -1);
    /* 100 bytes got through: three whole 31-byte lines and a piece. */
    assert_int_equal(cw_jsonl_lines(j), 3);
    assert_int_equal(cw_metric_get(cw_m.output_lines_dropped_total), dropped + 7);
    assert_int_equal(cw_jsonl_write(j, "{}", 2), 0); /* works again */
    assert_int_equal(cw_jsonl_close(j), 0);
    size_t n = slurp(path, buf, sizeof buf);
    assert_int_equal(n, 3 * 31 + 3);
    assert_memory_equal(buf + 93, "{}\n", 3);
    for (int i = 0; i < 3; i++) assert_int_equal(buf[i * 31 + 30], '\n');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(appends_whole_lines),
        cmocka_unit_test(torn_tail_removed_at_open),
        cmocka_unit_test(write_errors_are_counted_not_fatal),
        cmocka_unit_test(short_write_leaves_only_whole_lines),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
