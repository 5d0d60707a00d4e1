# Real PostgreSQL, Redis and Kafka (tests/services/start.sh). Tests that need
# them are registered only when the environment says they can be started:
# CW_SERVICES=1 at configure time (scripts/test.sh sets it and exports
# PG_CONNINFO, KAFKA_BROKERS and REDIS_URL to ctest). Other areas guard
# their service tests the same way, in their own fragments.
if("$ENV{CW_SERVICES}")
  # start.sh/stop.sh themselves, on their own free ports and directory.
  cw_integration_test(it_services integration/test_services.py)
endif()
