/* libFuzzer: arbitrary bytes through the framer and the AgentFrame decoder
 * with the bounded arena, as an ingest loop does with a peer's stream. */
#include <stddef.h>
#include <stdint.h>

#include "chainwatch.pb-c.h"
#include "common/arena.h"
#include "server/frame.h"

static cw_arena arena;
size_t sink; /* keeps the reads above from being optimised away */

static int on_frame(void *ud, const uint8_t *frame, size_t len)
{
    (void)ud;
    Chainwatch__V1__AgentFrame *f = chainwatch__v1__agent_frame__unpack(&arena.pb, len, frame);
    if (f && f->msg_case == CHAINWATCH__V1__AGENT_FRAME__MSG_BATCH) {
        /* Touch what validation touches. */
        size_t n = 0;
        for (size_t i = 0; i < f->batch->n_events; i++) n += f->batch->events[i]->payload_case;
        sink = n;
    }
    cw_arena_reset(&arena);
    return CW_FRAME_CONTINUE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        cw_arena_init(&arena, 8 * 1024 * 1024);
        init = 1;
    }
    cw_framer f;
    cw_framer_init(&f, 1 << 20);
    /* Split the input in two reads at a data-dependent point. */
    size_t cut = size ? data[0] % (size + 1) : 0;
    if (cw_framer_feed(&f, data, cut, on_frame, NULL) == CW_FRAMER_OK)
        cw_framer_feed(&f, data + cut, size - cut, on_frame, NULL);
    cw_framer_free(&f);
    return 0;
}
