# Tests of the HTTP side: audit webhook parsing/de-duplication (unit) and the
# HTTP server against a real spool (component).
cw_unit_test(test_audit unit/test_audit.c)
