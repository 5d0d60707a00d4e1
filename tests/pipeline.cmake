# Tests of the pipeline stage: event normalization and JSON, enrichment,
# JSON Lines output, and the spool -> events-out component.
cw_unit_test(test_event unit/test_event.c)
cw_unit_test(test_enrich unit/test_enrich.c)
cw_unit_test(test_jsonl unit/test_jsonl.c)
cw_unit_test(test_pipeline unit/test_pipeline.c)
cw_unit_test(test_latest unit/test_latest.c)

# libFuzzer target: spool record bodies -> decode -> normalize -> enrich ->
# JSON, which must parse back. The smoke test is a short deterministic run
# from the seeds; for a longer one see the header of fuzz_event_decode.c.
if(CW_FUZZ)
  add_executable(fuzz_event_decode fuzz/fuzz_event_decode.c)
  target_compile_options(fuzz_event_decode PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_event_decode PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_event_decode PRIVATE cw_core)
  set(CW_EVENT_SEEDS
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/event_decode/batch.bin
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/event_decode/hello.bin
    ${CMAKE_SOURCE_DIR}/../shared/corpus/k8s-audit/create-privileged-pod.json
    ${CMAKE_SOURCE_DIR}/../shared/corpus/k8s-audit/exec-into-pod.json)
  list(JOIN CW_EVENT_SEEDS "," CW_EVENT_SEEDS_ARG)
  add_test(NAME fuzz_event_decode_smoke
    COMMAND fuzz_event_decode -runs=20000 -seed=1 -max_len=65536
      -seed_inputs=${CW_EVENT_SEEDS_ARG})
endif()
