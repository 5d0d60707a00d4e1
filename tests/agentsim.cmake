# Unit tests of tools/agentsim (the agent simulator). The simulator's modules
# are not part of cw_core, so each test compiles the ones it exercises.
set(CW_AGENTSIM_DIR ${CMAKE_SOURCE_DIR}/tools/agentsim)

cw_unit_test(test_agentsim_scenario unit/test_agentsim_scenario.c
  ${CW_AGENTSIM_DIR}/scenario.c ${CW_AGENTSIM_DIR}/eventjson.c)
target_include_directories(test_agentsim_scenario PRIVATE ${CW_AGENTSIM_DIR})

cw_unit_test(test_agentsim_frame unit/test_agentsim_frame.c
  ${CW_AGENTSIM_DIR}/frame.c ${CW_AGENTSIM_DIR}/evpool.c ${CW_AGENTSIM_DIR}/eventjson.c)
target_include_directories(test_agentsim_frame PRIVATE ${CW_AGENTSIM_DIR})

cw_unit_test(test_agentsim_load unit/test_agentsim_load.c ${CW_AGENTSIM_DIR}/evpool.c
  ${CW_AGENTSIM_DIR}/eventjson.c ${CW_AGENTSIM_DIR}/hist.c ${CW_AGENTSIM_DIR}/acklog.c)
target_include_directories(test_agentsim_load PRIVATE ${CW_AGENTSIM_DIR})

# agentsim against a real chainwatchd (ack log vs stored events, crash and
# restart mid-load, reused agent ids, argument errors).
cw_integration_test(it_agentsim integration/test_agentsim.py)
