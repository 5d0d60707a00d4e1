# Ingest: framing units; the server-level tests are integration tests.
cw_unit_test(test_frame unit/test_frame.c)

if(CW_FUZZ)
  add_executable(fuzz_frame fuzz/fuzz_frame.c)
  target_compile_options(fuzz_frame PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_frame PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_frame PRIVATE cw_core)
endif()
