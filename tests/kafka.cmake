# Tests of the Kafka sink (storage/kafka_sink.c). The unit test runs against
# librdkafka's mock cluster and needs nothing else. The same binary with
# --real-broker runs against the Kafka of tests/services (start.sh), only
# when CW_SERVICES=1 at configure time, like tests/pg.cmake; it reads
# KAFKA_BROKERS from the environment and works on topics of its own
# (cwtest-<pid>-<time>-...), which it deletes.
cw_unit_test(test_kafka_sink unit/test_kafka_sink.c)
cw_unit_test(test_kafka_stub unit/test_kafka_stub.c)
set_tests_properties(test_kafka_sink PROPERTIES TIMEOUT 300)

if("$ENV{CW_SERVICES}")
  add_test(NAME test_kafka_sink_broker COMMAND test_kafka_sink --real-broker)
  set_tests_properties(test_kafka_sink_broker PROPERTIES TIMEOUT 300
    ENVIRONMENT "CW_SHARED=${CMAKE_SOURCE_DIR}/../shared")
  # Pass KAFKA_BROKERS on only if ctest's environment lacks it (a
  # configure-time value is a convenience for running ctest by hand).
  if(DEFINED ENV{KAFKA_BROKERS})
    set_property(TEST test_kafka_sink_broker APPEND PROPERTY ENVIRONMENT
      "KAFKA_BROKERS=$ENV{KAFKA_BROKERS}")
  endif()
endif()
