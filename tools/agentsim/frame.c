#include "frame.h"

#include <stdlib.h>

void sim_frame_put_prefix(uint8_t *out, uint32_t n)
{
    out[0] = (uint8_t)(n >> 24);
    out[1] = (uint8_t)(n >> 16);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
}

static uint32_t get_prefix(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

size_t sim_frame_agent_size(const Chainwatch__V1__AgentFrame *f)
{
    return chainwatch__v1__agent_frame__get_packed_size(f);
}

void sim_frame_agent_write(const Chainwatch__V1__AgentFrame *f, uint8_t *out, size_t payload)
{
    sim_frame_put_prefix(out, (uint32_t)payload);
    chainwatch__v1__agent_frame__pack(f, out + SIM_FRAME_PREFIX);
}

uint8_t *sim_frame_pack_agent(const Chainwatch__V1__AgentFrame *f, size_t max_frame, size_t *len)
{
    size_t n = chainwatch__v1__agent_frame__get_packed_size(f);
    if (n > max_frame || n > UINT32_MAX) return NULL;
    uint8_t *out = malloc(SIM_FRAME_PREFIX + n);
    if (!out) return NULL;
    sim_frame_put_prefix(out, (uint32_t)n);
    size_t w = chainwatch__v1__agent_frame__pack(f, out + SIM_FRAME_PREFIX);
    if (w != n) { /* cannot happen with protobuf-c, but never send a torn frame */
        free(out);
        return NULL;
    }
    *len = SIM_FRAME_PREFIX + n;
    return out;
}

void sim_frame_reader_init(sim_frame_reader *r, size_t max_frame)
{
    /* The partial buffer never needs more than one whole frame. */
    cw_buf_init(&r->partial, max_frame + SIM_FRAME_PREFIX);
    r->max_frame = max_frame;
}

void sim_frame_reader_reset(sim_frame_reader *r)
{
    cw_buf_reset(&r->partial);
}

void sim_frame_reader_free(sim_frame_reader *r)
{
    cw_buf_free(&r->partial);
}

int sim_frame_reader_feed(sim_frame_reader *r, const uint8_t *data, size_t n, sim_frame_cb cb,
                          void *user)
{
    while (n > 0) {
        if (r->partial.len == 0) {
            /* Fast path: hand whole frames straight from the input. */
            while (n >= SIM_FRAME_PREFIX) {
                uint32_t len = get_prefix(data);
                if (len > r->max_frame) return SIM_FRAME_ETOOBIG;
                if (n - SIM_FRAME_PREFIX < len) break;
                int rc = cb(user, data + SIM_FRAME_PREFIX, len);
                if (rc) return rc;
                data += SIM_FRAME_PREFIX + len;
                n -= SIM_FRAME_PREFIX + len;
            }
            if (n == 0) return 0;
            /* A partial frame, already checked against the limit if its
             * prefix is complete: keep it for the next read. */
            if (cw_buf_append(&r->partial, data, n) < 0) return -1;
            return 0;
        }
        /* Slow path: complete the buffered prefix, then the payload. */
        if (r->partial.len < SIM_FRAME_PREFIX) {
            size_t take = SIM_FRAME_PREFIX - r->partial.len;
            if (take > n) take = n;
            if (cw_buf_append(&r->partial, data, take) < 0) return -1;
            data += take;
            n -= take;
            if (r->partial.len < SIM_FRAME_PREFIX) return 0;
        }
        uint32_t len = get_prefix(r->partial.data);
        if (len > r->max_frame) return SIM_FRAME_ETOOBIG;
        size_t need = SIM_FRAME_PREFIX + (size_t)len - r->partial.len;
        size_t take = need < n ? need : n;
        if (cw_buf_append(&r->partial, data, take) < 0) return -1;
        data += take;
        n -= take;
        if (take < need) return 0;
        int rc = cb(user, r->partial.data + SIM_FRAME_PREFIX, len);
        cw_buf_reset(&r->partial);
        if (rc) return rc;
    }
    return 0;
}

Chainwatch__V1__ServerFrame *sim_frame_decode_server(cw_arena *arena, const uint8_t *payload,
                                                     size_t len)
{
    return chainwatch__v1__server_frame__unpack(&arena->pb, len, payload);
}
