# Tests of the incident stage: alerts linked into attack chains by shared
# entities, merges, severity progression, event-time windows and bounds.
cw_unit_test(test_incident unit/test_incident.c)
