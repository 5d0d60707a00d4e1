# Built-in rules (rules/*.yml): they must load with the real engine, every
# shared and project scenario must raise the tactics its expect lines list
# (and benign ones nothing above low), and every k8s-audit corpus sample must
# raise an alert. rulereplay runs enrichment + detection in process; incident
# grouping is tested with the server, not here.
add_executable(rulereplay tools/rulereplay.c
  ${CMAKE_SOURCE_DIR}/tools/agentsim/scenario.c
  ${CMAKE_SOURCE_DIR}/tools/agentsim/eventjson.c)
target_include_directories(rulereplay PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(rulereplay PRIVATE cw_core)

set(CW_RULES_DIR ${CMAKE_SOURCE_DIR}/rules)
add_test(NAME rules_load COMMAND rulereplay ${CW_RULES_DIR})
file(GLOB CW_PROJECT_SCENARIOS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/scenarios/*.jsonl)
file(GLOB CW_SHARED_SCENARIOS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/../shared/scenarios/*.jsonl)
add_test(NAME rules_scenarios
  COMMAND rulereplay -q ${CW_RULES_DIR} ${CW_SHARED_SCENARIOS} ${CW_PROJECT_SCENARIOS})
file(GLOB CW_AUDIT_CORPUS ${CMAKE_SOURCE_DIR}/../shared/corpus/k8s-audit/*.json)
add_test(NAME rules_audit_corpus COMMAND rulereplay ${CW_RULES_DIR} --audit corpus ${CW_AUDIT_CORPUS})
