/* libFuzzer target for what the pipeline does with a spool record body:
 * decode (protobuf-c into the bounded arena, or jansson for audit JSON),
 * normalize, enrich, write JSON. The output must always be valid JSON;
 * jansson parses it back and the target aborts if it does not.
 *
 * Input: if it starts with '{' it is an audit event body (so the corpus's
 * audit samples work as seeds as they are); otherwise byte 0 picks the record
 * kind (even: EventBatch, odd: Hello) and which of four agent ids sent it,
 * and the rest is the body. Enrichment state persists across inputs, with
 * small table bounds, so eviction and expiry paths run too.
 *
 *   BUILD/tests/fuzz_event_decode -max_total_time=60 -max_len=65536 \
 *       CORPUS_DIR tests/fuzz/corpus/event_decode ../shared/corpus/k8s-audit
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chainwatch.pb-c.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "correlator/enrich.h"
#include "correlator/event.h"

static cw_arena arena;
static cw_enrich *enrich;
static cw_buf out;

static void check_json(const cw_event *ev)
{
    cw_buf_reset(&out);
    if (cw_event_to_json(ev, &out) < 0) return; /* over the cap: refused, fine */
    if (memchr(out.data, '\n', out.len)) abort();
    json_t *j = json_loadb((const char *)out.data, out.len, 0, NULL);
    if (!j) abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!enrich) {
        cw_log_set_level(CW_LOG_ERROR);
        cw_arena_init(&arena, 4 * 1024 * 1024);
        cw_buf_init(&out, 16 * 1024 * 1024);
        cw_enrich_opts o = {.max_agents = 4, .max_containers = 64, .max_pods = 16,
                            .stopped_grace_ns = 1000};
        if (cw_enrich_create(&enrich, &o) < 0) abort();
    }
    if (size < 1) return 0;
    cw_event ev;
    if (data[0] == '{') {
        json_t *j = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
        if (j && cw_event_from_audit(&ev, "fuzz-cluster", j, 1) == 0) {
            cw_enrich_audit_event(enrich, &ev);
            check_json(&ev);
        }
        json_decref(j);
        return 0;
    }
    static const char *const agents[] = {"ag-1", "ag-2", "ag-\xff", ""};
    const char *agent = agents[(data[0] >> 1) & 3];
    if (data[0] & 1) {
        Chainwatch__V1__Hello *h = chainwatch__v1__hello__unpack(&arena.pb, size - 1, data + 1);
        if (h) cw_enrich_hello(enrich, agent, h);
    } else {
        Chainwatch__V1__EventBatch *b =
            chainwatch__v1__event_batch__unpack(&arena.pb, size - 1, data + 1);
        for (size_t i = 0; b && i < b->n_events; i++) {
            if (cw_event_from_agent(&ev, agent, b->seq, (uint32_t)i, b->events[i], 1) < 0)
                continue;
            cw_enrich_agent_event(enrich, &ev);
            check_json(&ev);
        }
    }
    cw_arena_reset(&arena);
    return 0;
}
