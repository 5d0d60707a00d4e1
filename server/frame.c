#include "server/frame.h"

void cw_framer_init(cw_framer *f, uint32_t max_frame)
{
    f->max_frame = max_frame;
    f->too_large = 0;
    cw_buf_init(&f->pending, 0);
}

void cw_framer_free(cw_framer *f)
{
    cw_buf_free(&f->pending);
}

/* Walks complete frames in [p, p+len). Returns the result code and sets
 * *used to the bytes consumed (frames handed out). */
static int walk(cw_framer *f, const uint8_t *p, size_t len, size_t *used, cw_frame_cb cb, void *ud)
{
    size_t off = 0;
    int rc = CW_FRAMER_OK;
    while (len - off >= CW_FRAME_HEADER) {
        uint32_t n = cw_frame_get_len(p + off);
        if (n > f->max_frame) {
            f->too_large = n;
            rc = CW_FRAMER_TOO_LARGE;
            break;
        }
        if (len - off - CW_FRAME_HEADER < n) break; /* incomplete */
        int r = cb(ud, p + off + CW_FRAME_HEADER, n);
        off += CW_FRAME_HEADER + (size_t)n;
        if (r == CW_FRAME_STOP) {
            rc = CW_FRAMER_STOPPED;
            break;
        }
        if (r != CW_FRAME_CONTINUE) {
            rc = CW_FRAMER_ABORTED;
            break;
        }
    }
    *used = off;
    return rc;
}

int cw_framer_feed(cw_framer *f, const uint8_t *data, size_t len, cw_frame_cb cb, void *ud)
{
    size_t used;
    int rc;
    if (f->pending.len == 0) {
        /* Common case: parse straight from the caller's read buffer, and
         * copy only the trailing partial frame (if any). */
        rc = walk(f, data, len, &used, cb, ud);
        if (rc == CW_FRAMER_OK || rc == CW_FRAMER_STOPPED) {
            if (cw_buf_append(&f->pending, data + used, len - used) < 0) return CW_FRAMER_NOMEM;
        }
        return rc;
    }
    /* A partial frame is pending: complete it with as few bytes as needed,
     * hand it out, then continue on the caller's buffer. */
    size_t take = 0;
    if (f->pending.len < CW_FRAME_HEADER) {
        take = CW_FRAME_HEADER - f->pending.len;
        if (take > len) take = len;
        if (cw_buf_append(&f->pending, data, take) < 0) return CW_FRAMER_NOMEM;
        if (f->pending.len < CW_FRAME_HEADER) return CW_FRAMER_OK;
    }
    uint32_t n = cw_frame_get_len(f->pending.data);
    if (n > f->max_frame) {
        f->too_large = n;
        return CW_FRAMER_TOO_LARGE;
    }
    size_t need = CW_FRAME_HEADER + (size_t)n - f->pending.len;
    size_t more = len - take < need ? len - take : need;
    if (cw_buf_append(&f->pending, data + take, more) < 0) return CW_FRAMER_NOMEM;
    take += more;
    if (f->pending.len < CW_FRAME_HEADER + (size_t)n) return CW_FRAMER_OK;
    int r = cb(ud, f->pending.data + CW_FRAME_HEADER, n);
    cw_buf_reset(&f->pending);
    if (r == CW_FRAME_STOP) {
        if (cw_buf_append(&f->pending, data + take, len - take) < 0) return CW_FRAMER_NOMEM;
        return CW_FRAMER_STOPPED;
    }
    if (r != CW_FRAME_CONTINUE) return CW_FRAMER_ABORTED;
    return cw_framer_feed(f, data + take, len - take, cb, ud);
}

int cw_framer_resume(cw_framer *f, cw_frame_cb cb, void *ud)
{
    size_t used;
    int rc = walk(f, f->pending.data, f->pending.len, &used, cb, ud);
    if (rc != CW_FRAMER_ABORTED) cw_buf_consume(&f->pending, used);
    return rc;
}
