/* frame: the agent protocol's framing (4-byte big-endian length + one
 * protobuf message), as the agent side sees it.
 *
 * sim_frame_pack_agent() encodes an AgentFrame into one malloc'd buffer that
 * already carries its length prefix, ready for uv_write. The reader splits a
 * byte stream into frames without trusting the peer: a length prefix above
 * the reader's limit is refused before anything is buffered, and a partial
 * frame is held in a buffer capped at that limit.
 *
 * Not thread-safe; a reader belongs to one connection on one loop thread.
 */
#ifndef SIM_FRAME_H
#define SIM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "chainwatch.pb-c.h"
#include "common/arena.h"
#include "common/buf.h"

#define SIM_FRAME_PREFIX 4
/* Protocol limits: max frame after Hello, and before it. */
#define SIM_FRAME_MAX (4u * 1024 * 1024)
#define SIM_FRAME_MAX_PRE_HELLO (64u * 1024)

/* Packs `f` as prefix + AgentFrame into a malloc'd buffer and stores its total
 * length in *len. Returns NULL when the encoding would exceed `max_frame`
 * bytes (not counting the prefix) or memory runs out. */
uint8_t *sim_frame_pack_agent(const Chainwatch__V1__AgentFrame *f, size_t max_frame, size_t *len);

/* For packing in place (a batch is packed straight into its queue entry):
 * the payload size of `f`, then the prefix + payload written to `out`, which
 * must hold SIM_FRAME_PREFIX + that size. */
size_t sim_frame_agent_size(const Chainwatch__V1__AgentFrame *f);
void sim_frame_agent_write(const Chainwatch__V1__AgentFrame *f, uint8_t *out, size_t payload);

/* Writes the 4-byte big-endian prefix for a payload of `n` bytes. */
void sim_frame_put_prefix(uint8_t *out, uint32_t n);

typedef struct sim_frame_reader {
    cw_buf partial;   /* bytes of an incomplete frame, prefix included */
    size_t max_frame; /* largest payload accepted */
} sim_frame_reader;

/* Called once per complete frame payload (prefix stripped). The payload is
 * only valid during the call. A non-zero return stops the reader and is
 * handed back by sim_frame_reader_feed(). */
typedef int (*sim_frame_cb)(void *user, const uint8_t *payload, size_t len);

void sim_frame_reader_init(sim_frame_reader *r, size_t max_frame);
void sim_frame_reader_reset(sim_frame_reader *r);
void sim_frame_reader_free(sim_frame_reader *r);
/* Feeds `n` received bytes. Returns 0, SIM_FRAME_ETOOBIG when a length prefix
 * exceeds the limit (the stream is then unusable), -1 when memory runs out,
 * or the first non-zero value returned by `cb`. */
#define SIM_FRAME_ETOOBIG (-2)
int sim_frame_reader_feed(sim_frame_reader *r, const uint8_t *data, size_t n, sim_frame_cb cb,
                          void *user);

/* Decodes a ServerFrame into `arena` (reset it after use). NULL when the bytes
 * are not a valid ServerFrame or decoding would pass the arena's limit. */
Chainwatch__V1__ServerFrame *sim_frame_decode_server(cw_arena *arena, const uint8_t *payload,
                                                     size_t len);

#endif
