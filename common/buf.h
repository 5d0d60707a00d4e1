/* buf: a growable byte buffer with an optional hard cap.
 *
 * Owned by whoever declares it; not thread-safe. Appends fail with -1 (and
 * leave the buffer unchanged) when growing would pass `cap` (0 = no cap) or
 * memory runs out, so callers handling peer input can bound what a peer makes
 * them hold.
 */
#ifndef CW_BUF_H
#define CW_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct cw_buf {
    uint8_t *data;
    size_t len;
    size_t alloc;
    size_t cap; /* 0: unbounded */
} cw_buf;

void cw_buf_init(cw_buf *b, size_t cap);
void cw_buf_free(cw_buf *b);
int cw_buf_reserve(cw_buf *b, size_t extra);
int cw_buf_append_slow(cw_buf *b, const void *p, size_t n);
/* Inline for the common case of room already there: JSON writers append
 * many pieces of a few bytes each. */
static inline int cw_buf_append(cw_buf *b, const void *p, size_t n)
{
    if (n <= b->alloc - b->len) {
        if (n) memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
    }
    return cw_buf_append_slow(b, p, n);
}
int cw_buf_printf(cw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void cw_buf_consume(cw_buf *b, size_t n);
static inline void cw_buf_reset(cw_buf *b)
{
    b->len = 0;
}

#endif
