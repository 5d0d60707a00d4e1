# Unit tests of common/.
cw_unit_test(test_buf_arena unit/test_buf_arena.c)
