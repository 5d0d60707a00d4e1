/* latest: the newest value per key, in first-seen order, bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "correlator/latest.h"

static void newest_value_wins_in_first_seen_order(void **state)
{
    (void)state;
    cw_latest l;
    assert_int_equal(cw_latest_init(&l, 4), 0);
    assert_int_equal(cw_latest_put(&l, "inc-a", 5, "a1", 2), 0);
    assert_int_equal(cw_latest_put(&l, "inc-b", 5, "b1", 2), 0);
    assert_int_equal(cw_latest_put(&l, "inc-a", 5, "a2-longer", 9), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ents[0].key, "inc-a");
    assert_int_equal(l.ents[0].len, 9);
    assert_memory_equal(l.ents[0].data, "a2-longer", 9);
    assert_string_equal(l.ents[1].key, "inc-b");
    /* A key that is a prefix of another is a different key. */
    assert_int_equal(cw_latest_put(&l, "inc", 3, "x", 1), 0);
    assert_int_equal(l.n, 3);
    cw_latest_clear(&l);
    assert_int_equal(l.n, 0);
    cw_latest_free(&l);
}

static void full_and_bad_keys_are_refused(void **state)
{
    (void)state;
    cw_latest l;
    assert_int_equal(cw_latest_init(&l, 2), 0);
    assert_int_equal(cw_latest_put(&l, "k1", 2, "1", 1), 0);
    assert_int_equal(cw_latest_put(&l, "k2", 2, "2", 1), 0);
    assert_int_equal(cw_latest_put(&l, "k3", 2, "3", 1), 1); /* full: flush first */
    assert_int_equal(cw_latest_put(&l, "k2", 2, "22", 2), 0); /* an existing key still fits */
    char long_key[CW_LATEST_KEY_MAX + 1];
    memset(long_key, 'x', sizeof long_key);
    assert_int_equal(cw_latest_put(&l, long_key, CW_LATEST_KEY_MAX, "v", 1), -1);
    assert_int_equal(cw_latest_put(&l, "", 0, "v", 1), -1);
    assert_int_equal(l.n, 2);
    cw_latest_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(newest_value_wins_in_first_seen_order),
        cmocka_unit_test(full_and_bad_keys_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
