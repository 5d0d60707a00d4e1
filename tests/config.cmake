# Tests of common/config (settings table, YAML loader, flags, example file).
cw_unit_test(test_config unit/test_config.c)

# deploy/chainwatch.example.yaml is generated from the settings table; the
# unit test fails when it is stale. Regenerate it with
#   cmake --build BUILD --target update-example-config
add_executable(cw_print_example_config EXCLUDE_FROM_ALL tools/print_example_config.c)
target_link_libraries(cw_print_example_config PRIVATE cw_core)
add_custom_target(update-example-config
  COMMAND sh -c "$<TARGET_FILE:cw_print_example_config> > ${CMAKE_SOURCE_DIR}/deploy/chainwatch.example.yaml"
  DEPENDS cw_print_example_config
  COMMENT "Writing deploy/chainwatch.example.yaml"
  VERBATIM)

# libFuzzer target for the YAML loader. config*.c and log.c are compiled into
# it (rather than linked from cw_core) so they get coverage instrumentation.
# A longer run, with a scratch corpus outside the source tree:
#   mkdir -p /tmp/cfg && cp deploy/chainwatch.example.yaml /tmp/cfg/ &&
#   BUILD/tests/fuzz_config -max_total_time=60 -max_len=8192 /tmp/cfg
if(CW_FUZZ)
  add_executable(fuzz_config fuzz/fuzz_config.c
    ${CMAKE_SOURCE_DIR}/common/config.c ${CMAKE_SOURCE_DIR}/common/config_yaml.c
    ${CMAKE_SOURCE_DIR}/common/log.c)
  target_include_directories(fuzz_config PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(fuzz_config PRIVATE -fsanitize=fuzzer,address)
  target_link_options(fuzz_config PRIVATE -fsanitize=fuzzer,address)
  target_link_libraries(fuzz_config PRIVATE PkgConfig::YAML PkgConfig::UV)
  # A short deterministic smoke run seeded with the example file; it writes
  # no corpus (crash artifacts, if any, land in the build directory).
  add_test(NAME fuzz_config_smoke
    COMMAND fuzz_config -runs=20000 -seed=1 -max_len=8192
      -seed_inputs=${CMAKE_SOURCE_DIR}/deploy/chainwatch.example.yaml)
endif()
