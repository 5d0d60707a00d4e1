/* frame: incremental parser for the length-prefixed wire framing.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes. The
 * framer is fed whatever a read returned (partial frames, many frames, any
 * split) and calls back once per complete frame. The length is checked
 * against `max_frame` as soon as the 4 header bytes are in, before anything
 * is buffered, so a peer can never make us hold more than
 * max_frame + one read of bytes.
 *
 * Owned by one connection on one loop thread; not thread-safe. Frames passed
 * to the callback point into the caller's buffer or the framer's own and are
 * only valid during the call.
 */
#ifndef CW_FRAME_H
#define CW_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define CW_FRAME_HEADER 4

/* Callback results. */
#define CW_FRAME_CONTINUE 0
#define CW_FRAME_STOP 1 /* keep the rest buffered; call cw_framer_resume() later */
#define CW_FRAME_ABORT -1 /* the connection is going away; drop everything */

/* cw_framer_feed / cw_framer_resume results. */
#define CW_FRAMER_OK 0
#define CW_FRAMER_STOPPED 1
#define CW_FRAMER_ABORTED (-1)
#define CW_FRAMER_TOO_LARGE (-2) /* a header announced more than max_frame */
#define CW_FRAMER_NOMEM (-3)

typedef int (*cw_frame_cb)(void *ud, const uint8_t *frame, size_t len);

typedef struct cw_framer {
    uint32_t max_frame; /* may be changed between frames (e.g. after Hello) */
    uint32_t too_large; /* the announced length when CW_FRAMER_TOO_LARGE was returned */
    cw_buf pending;     /* bytes not yet handed out: a partial frame, or frames held by STOP */
} cw_framer;

void cw_framer_init(cw_framer *f, uint32_t max_frame);
void cw_framer_free(cw_framer *f);

/* Hands every complete frame in pending+data to cb. Must not be called while
 * stopped (pending frames first: cw_framer_resume). */
int cw_framer_feed(cw_framer *f, const uint8_t *data, size_t len, cw_frame_cb cb, void *ud);

/* Continues with frames kept by an earlier CW_FRAME_STOP. */
int cw_framer_resume(cw_framer *f, cw_frame_cb cb, void *ud);

/* Encodes a 4-byte big-endian length. */
static inline void cw_frame_put_len(uint8_t *p, uint32_t n)
{
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
}

static inline uint32_t cw_frame_get_len(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

#endif
