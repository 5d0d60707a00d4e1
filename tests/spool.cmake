# Unit tests of storage/spool*.c: real files in a temporary directory.
cw_unit_test(test_spool unit/test_spool.c)
cw_unit_test(test_spool_recovery unit/test_spool_recovery.c)
