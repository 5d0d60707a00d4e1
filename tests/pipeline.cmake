# Tests of the pipeline stage: event normalization and JSON, enrichment,
# JSON Lines output, and the spool -> events-out component.
cw_unit_test(test_event unit/test_event.c)
cw_unit_test(test_enrich unit/test_enrich.c)
cw_unit_test(test_jsonl unit/test_jsonl.c)
cw_unit_test(test_pipeline unit/test_pipeline.c)
