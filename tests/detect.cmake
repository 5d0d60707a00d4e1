# Tests of the detection engine: rules on real events, correlations in event
# time, load errors with file:line, reload while evaluating.
cw_unit_test(test_detect unit/test_detect.c)
cw_unit_test(test_detect_corr unit/test_detect_corr.c)
cw_unit_test(test_detect_load unit/test_detect_load.c)
target_compile_definitions(test_detect_load PRIVATE CW_TEST_RULES="${CMAKE_CURRENT_SOURCE_DIR}/rules")
