# Tests of the PostgreSQL sink (storage/pg_*.c) against the real PostgreSQL of
# tests/services (start.sh). Registered only when CW_SERVICES=1 at configure
# time, like tests/services.cmake; at run time they read PG_CONNINFO from the
# environment (scripts/test.sh exports it to ctest) and work in databases of
# their own, which they drop.
if("$ENV{CW_SERVICES}")
  cw_unit_test(test_pg_schema unit/test_pg_schema.c)
  # cw_unit_test sets ENVIRONMENT; keep its value and pass PG_CONNINFO on
  # only if ctest's environment lacks it (a configure-time value is a
  # convenience for running ctest by hand).
  if(DEFINED ENV{PG_CONNINFO})
    set_property(TEST test_pg_schema APPEND PROPERTY ENVIRONMENT "PG_CONNINFO=$ENV{PG_CONNINFO}")
  endif()
  set_tests_properties(test_pg_schema PROPERTIES TIMEOUT 120)
endif()

# The PostgreSQL sink (storage/pg_sink.c) end to end: spool records in,
# rows checked with a blocking connection; includes connection kills and an
# unreachable server, so it takes a while.
if("$ENV{CW_SERVICES}")
  cw_unit_test(test_pg_sink unit/test_pg_sink.c)
  if(DEFINED ENV{PG_CONNINFO})
    set_property(TEST test_pg_sink APPEND PROPERTY ENVIRONMENT "PG_CONNINFO=$ENV{PG_CONNINFO}")
  endif()
  set_tests_properties(test_pg_sink PROPERTIES TIMEOUT 300)
endif()

# libFuzzer target: sink spool record bodies through the entry parser and
# the PostgreSQL sink's row and statement building (no database needed).
if(CW_FUZZ)
  add_executable(fuzz_sink_records fuzz/fuzz_sink_records.c)
  target_compile_options(fuzz_sink_records PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_sink_records PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_sink_records PRIVATE cw_core)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_sink_records_corpus)
  add_test(NAME fuzz_sink_records_smoke
    COMMAND fuzz_sink_records -runs=20000 -seed=1 -max_len=131072
      ${CMAKE_CURRENT_BINARY_DIR}/fuzz_sink_records_corpus
      ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/sink_records)
endif()
