# Ingest: framing units; the server-level tests are integration tests.
cw_unit_test(test_frame unit/test_frame.c)
