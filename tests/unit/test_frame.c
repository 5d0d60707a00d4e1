/* Unit tests: the incremental framer - partial frames, many frames per
 * read, the max-size boundary, STOP/resume and abort. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "server/frame.h"

typedef struct {
    int n;
    size_t lens[64];
    uint8_t first[64];
    int stop_at;  /* return STOP on this frame number (1-based), 0: never */
    int abort_at;
} seen;

static int on_frame(void *ud, const uint8_t *frame, size_t len)
{
    seen *s = ud;
    s->lens[s->n] = len;
    s->first[s->n] = len ? frame[0] : 0;
    s->n++;
    if (s->n == s->abort_at) return CW_FRAME_ABORT;
    if (s->n == s->stop_at) return CW_FRAME_STOP;
    return CW_FRAME_CONTINUE;
}

/* Builds frames of the given sizes; the payload's bytes equal the frame index. */
static size_t build(uint8_t *out, const size_t *sizes, int n)
{
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cw_frame_put_len(out + off, (uint32_t)sizes[i]);
        memset(out + off + 4, i + 1, sizes[i]);
        off += 4 + sizes[i];
    }
    return off;
}

static void many_frames_in_one_read(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t sizes[] = {10, 0, 200, 1};
    size_t n = build(buf, sizes, 4);
    cw_framer f;
    cw_framer_init(&f, 1000);
    seen s = {0};
    assert_int_equal(cw_framer_feed(&f, buf, n, on_frame, &s), CW_FRAMER_OK);
    assert_int_equal(s.n, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(s.lens[i], sizes[i]);
    assert_int_equal(s.first[2], 3);
    assert_int_equal(f.pending.len, 0);
    cw_framer_free(&f);
}

static void every_split_point_gives_same_frames(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t sizes[] = {7, 300, 0, 33};
    size_t n = build(buf, sizes, 4);
    /* Feed in two pieces split at every position, then byte by byte. */
    for (size_t cut = 0; cut <= n; cut++) {
        cw_framer f;
        cw_framer_init(&f, 1000);
        seen s = {0};
        assert_int_equal(cw_framer_feed(&f, buf, cut, on_frame, &s), CW_FRAMER_OK);
        assert_int_equal(cw_framer_feed(&f, buf + cut, n - cut, on_frame, &s), CW_FRAMER_OK);
        assert_int_equal(s.n, 4);
        for (int i = 0; i < 4; i++) assert_int_equal(s.lens[i], sizes[i]);
        assert_int_equal(s.first[1], 2);
        cw_framer_free(&f);
    }
    cw_framer f;
    cw_framer_init(&f, 1000);
    seen s = {0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cw_framer_feed(&f, buf + i, 1, on_frame, &s), CW_FRAMER_OK);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.lens[3], 33);
    cw_framer_free(&f);
}

static void max_size_boundary(void **state)
{
    (void)state;
    static uint8_t buf[2 * 1024];
    size_t ok[] = {1000};
    size_t n = build(buf, ok, 1);
    cw_framer f;
    cw_framer_init(&f, 1000);
    seen s = {0};
    assert_int_equal(cw_framer_feed(&f, buf, n, on_frame, &s), CW_FRAMER_OK);
    assert_int_equal(s.n, 1); /* exactly the limit is fine */
    /* One over: refused as soon as the header is complete, nothing buffered. */
    size_t big[] = {1001};
    n = build(buf, big, 1);
    assert_int_equal(cw_framer_feed(&f, buf, 3, on_frame, &s), CW_FRAMER_OK);
    assert_int_equal(cw_framer_feed(&f, buf + 3, 1, on_frame, &s), CW_FRAMER_TOO_LARGE);
    assert_int_equal(f.too_large, 1001);
    assert_int_equal(s.n, 1);
    cw_framer_free(&f);
    /* A huge announced length is refused without allocating it. */
    cw_framer_init(&f, 1000);
    uint8_t hdr[4] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(cw_framer_feed(&f, hdr, 4, on_frame, &s), CW_FRAMER_TOO_LARGE);
    assert_true(f.pending.alloc < 1024);
    cw_framer_free(&f);
}

static void limit_can_change_between_frames(void **state)
{
    (void)state;
    /* The server raises the limit after Hello: the next header sees it. */
    uint8_t buf[1024];
    size_t sizes[] = {10, 500};
    size_t n = build(buf, sizes, 2);
    cw_framer f;
    cw_framer_init(&f, 100);
    seen s = {0};
    assert_int_equal(cw_framer_feed(&f, buf, n, on_frame, &s), CW_FRAMER_TOO_LARGE);
    assert_int_equal(s.n, 1);
    cw_framer_free(&f);
    cw_framer_init(&f, 100);
    memset(&s, 0, sizeof s);
    assert_int_equal(cw_framer_feed(&f, buf, 14, on_frame, &s), CW_FRAMER_OK);
    f.max_frame = 1000;
    assert_int_equal(cw_framer_feed(&f, buf + 14, n - 14, on_frame, &s), CW_FRAMER_OK);
    assert_int_equal(s.n, 2);
    cw_framer_free(&f);
}

static void stop_keeps_the_rest_and_resume_continues(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t sizes[] = {5, 6, 7, 8};
    size_t n = build(buf, sizes, 4);
    cw_framer f;
    cw_framer_init(&f, 100);
    seen s = {.stop_at = 2};
    /* Feed all but the last 3 bytes: frames 3 and the partial 4th stay. */
    assert_int_equal(cw_framer_feed(&f, buf, n - 3, on_frame, &s), CW_FRAMER_STOPPED);
    assert_int_equal(s.n, 2);
    s.stop_at = 0;
    assert_int_equal(cw_framer_resume(&f, on_frame, &s), CW_FRAMER_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(cw_framer_feed(&f, buf + n - 3, 3, on_frame, &s), CW_FRAMER_OK);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.lens[3], 8);
    assert_int_equal(s.first[3], 4);
    cw_framer_free(&f);
}

static void abort_stops_at_once(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t sizes[] = {5, 6, 7};
    size_t n = build(buf, sizes, 3);
    cw_framer f;
    cw_framer_init(&f, 100);
    seen s = {.abort_at = 1};
    assert_int_equal(cw_framer_feed(&f, buf, n, on_frame, &s), CW_FRAMER_ABORTED);
    assert_int_equal(s.n, 1);
    cw_framer_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_frames_in_one_read),
        cmocka_unit_test(every_split_point_gives_same_frames),
        cmocka_unit_test(max_size_boundary),
        cmocka_unit_test(limit_can_change_between_frames),
        cmocka_unit_test(stop_keeps_the_rest_and_resume_continues),
        cmocka_unit_test(abort_stops_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
