# Tests of the HTTP side: audit webhook parsing and de-duplication (unit), and
# the HTTP server with the audit intake over a real spool (component, libcurl).
cw_unit_test(test_audit unit/test_audit.c)
cw_unit_test(test_http unit/test_http.c)
target_link_libraries(test_http PRIVATE PkgConfig::CURL)

# libFuzzer target for the audit body parser (clang, -DCW_FUZZ=ON), seeded
# with the shared corpus; it also checks that the parse-memory estimate
# bounds what jansson allocates. The ctest entry runs a fixed number of
# inputs; run it longer by hand:
#   build-x/tests/fuzz_audit -max_total_time=60 -dict=tests/fuzz/audit.dict NEW_DIR \
#     ../shared/corpus/k8s-audit
if(CW_FUZZ)
  add_executable(fuzz_audit fuzz/fuzz_audit.c)
  target_compile_options(fuzz_audit PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_audit PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_audit PRIVATE cw_core)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_audit_corpus)
  add_test(NAME fuzz_audit
    COMMAND fuzz_audit -runs=20000 -seed=1 -max_len=65536
            -dict=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/audit.dict
            ${CMAKE_CURRENT_BINARY_DIR}/fuzz_audit_corpus
            ${CMAKE_SOURCE_DIR}/../shared/corpus/k8s-audit)
endif()
