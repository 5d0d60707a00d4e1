# Tests of the detection engine: rules on real events, correlations in event
# time, load errors with file:line, reload while evaluating.
cw_unit_test(test_detect unit/test_detect.c)
cw_unit_test(test_detect_corr unit/test_detect_corr.c)
cw_unit_test(test_detect_load unit/test_detect_load.c)
target_compile_definitions(test_detect_load PRIVATE CW_TEST_RULES="${CMAKE_CURRENT_SOURCE_DIR}/rules")

# libFuzzer target: rule YAML -> load -> evaluate; a short deterministic
# smoke run from the seeds under ctest.
if(CW_FUZZ)
  add_executable(fuzz_rules fuzz/fuzz_rules.c)
  target_compile_options(fuzz_rules PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_rules PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_rules PRIVATE cw_core)
  # -seed_inputs, not a corpus directory: libFuzzer writes into the latter.
  add_test(NAME fuzz_rules_smoke
    COMMAND fuzz_rules -runs=20000 -seed=1 -max_len=8192
      -dict=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/rules.dict
      -seed_inputs=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/rules/ssh.yml,${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/rules/exec.yaml)
endif()
