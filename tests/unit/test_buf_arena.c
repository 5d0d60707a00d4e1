/* Unit tests: cw_buf bounds and cw_arena limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"

static void buf_respects_cap(void **state)
{
    (void)state;
    cw_buf b;
    cw_buf_init(&b, 10);
    assert_int_equal(cw_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(cw_buf_append(&b, "x", 1), -1); /* would pass the cap */
    assert_int_equal(b.len, 10);
    cw_buf_consume(&b, 4);
    assert_memory_equal(b.data, "456789", 6);
    assert_int_equal(cw_buf_printf(&b, "%d", 42), 0);
    assert_memory_equal(b.data, "45678942", 8);
    cw_buf_free(&b);
}

static void arena_refuses_past_limit_and_resets(void **state)
{
    (void)state;
    cw_arena a;
    cw_arena_init(&a, 100 * 1024);
    void *p = cw_arena_alloc(&a, 60 * 1024);
    assert_non_null(p);
    memset(p, 1, 60 * 1024);
    assert_null(cw_arena_alloc(&a, 60 * 1024)); /* 120 KiB > limit */
    assert_true(a.exhausted);
    cw_arena_reset(&a);
    assert_false(a.exhausted);
    assert_non_null(cw_arena_alloc(&a, 60 * 1024)); /* room again after reset */
    assert_null(cw_arena_alloc(&a, SIZE_MAX - 8)); /* no overflow on huge sizes */
    cw_arena_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_respects_cap),
        cmocka_unit_test(arena_refuses_past_limit_and_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
