# Tests of the HTTP side: audit webhook parsing and de-duplication (unit), and
# the HTTP server with the audit intake over a real spool (component, libcurl).
cw_unit_test(test_audit unit/test_audit.c)
cw_unit_test(test_http unit/test_http.c)
target_link_libraries(test_http PRIVATE PkgConfig::CURL)
# See lsan-h2o.supp: h2o loses a few pooled chunks when its thread ends.
set_tests_properties(test_http PROPERTIES ENVIRONMENT
  "CW_SHARED=${CMAKE_SOURCE_DIR}/../shared;LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/lsan-h2o.supp")
