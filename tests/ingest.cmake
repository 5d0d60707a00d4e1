# Ingest: framing units; the server-level tests are integration tests.
cw_unit_test(test_frame unit/test_frame.c)

if(CW_FUZZ)
  add_executable(fuzz_frame fuzz/fuzz_frame.c)
  target_compile_options(fuzz_frame PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_frame PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_frame PRIVATE cw_core)
endif()
if(CW_FUZZ)
  # Replays the committed seeds plus a bounded number of fresh mutations.
  # -seed_inputs (not a corpus dir) so nothing is written into the sources.
  add_test(NAME fuzz_frame_smoke COMMAND fuzz_frame -runs=20000 -seed=1
    -seed_inputs=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/frame/hello_batch,${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/frame/heartbeat)
endif()
