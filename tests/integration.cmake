# Integration tests: the real chainwatchd and agentsim on loopback.
cw_integration_test(it_protocol integration/test_protocol.py)
cw_integration_test(it_audit integration/test_audit.py)
cw_integration_test(it_scenarios integration/test_scenarios.py)
cw_integration_test(it_backpressure integration/test_backpressure.py)
