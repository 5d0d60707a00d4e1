# Unit tests of storage/spool*.c: real files in a temporary directory.
cw_unit_test(test_spool unit/test_spool.c)
cw_unit_test(test_spool_recovery unit/test_spool_recovery.c)

# libFuzzer target for the segment recovery scan (clang, -DCW_FUZZ=ON). It is
# built from the few sources it needs so they carry the fuzzer's coverage
# instrumentation. The ctest entry replays the seed corpus plus a fixed number
# of mutations; run it longer by hand:
#   build-x/tests/fuzz_spool_scan -max_total_time=60 NEW_DIR tests/fuzz/corpus/spool_scan
if(CW_FUZZ)
  add_executable(fuzz_spool_scan fuzz/fuzz_spool_scan.c
    ${CMAKE_SOURCE_DIR}/storage/spool_seg.c
    ${CMAKE_SOURCE_DIR}/storage/spool_hwm.c
    ${CMAKE_SOURCE_DIR}/common/buf.c)
  target_include_directories(fuzz_spool_scan PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(fuzz_spool_scan PRIVATE -fsanitize=fuzzer,address)
  target_link_options(fuzz_spool_scan PRIVATE -fsanitize=fuzzer,address)
  target_link_libraries(fuzz_spool_scan PRIVATE PkgConfig::ZLIB)
  # libFuzzer adds what it finds to the first directory: keep that in the
  # build tree, never in the sources.
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_spool_scan_corpus)
  add_test(NAME fuzz_spool_scan
    COMMAND fuzz_spool_scan -runs=20000 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_spool_scan_corpus
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/spool_scan)
endif()
