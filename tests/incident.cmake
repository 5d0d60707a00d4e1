# Tests of the incident stage: alerts linked into attack chains by shared
# entities, merges, severity progression, event-time windows and bounds.
cw_unit_test(test_incident unit/test_incident.c)

# Scenario acceptance: every scenario's expect lines hold on the server's
# alerts-out/incidents-out (tests/integration/scenario_check.py), and the
# audit corpus samples raise their rule families.
cw_integration_test(it_detection integration/test_detection.py)
