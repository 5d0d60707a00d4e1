# End-to-end tests of the Kafka and PostgreSQL sinks: the real chainwatchd
# and agentsim against the real services of tests/services (start.sh).
# Registered only when CW_SERVICES=1 at configure time; at run time they
# read PG_CONNINFO and KAFKA_BROKERS from the environment (scripts/test.sh
# exports them) and work in databases and topics of their own.
if("$ENV{CW_SERVICES}")
  cw_integration_test(it_sinks integration/test_sinks.py)
  cw_integration_test(it_sink_backpressure integration/test_sink_backpressure.py)
  # Stops and restarts the shared broker and database: nothing else may run
  # meanwhile.
  cw_integration_test(it_sink_outages integration/test_sink_outages.py)
  set_tests_properties(it_sink_outages PROPERTIES RUN_SERIAL TRUE TIMEOUT 1200)
endif()
