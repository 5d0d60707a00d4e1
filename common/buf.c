#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cw_buf_init(cw_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = b->alloc = 0;
    b->cap = cap;
}

void cw_buf_free(cw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

int cw_buf_reserve(cw_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len) return -1;
    size_t need = b->len + extra;
    if (b->cap && need > b->cap) return -1;
    if (need <= b->alloc) return 0;
    size_t n = b->alloc ? b->alloc : 256;
    while (n < need) n *= 2;
    if (b->cap && n > b->cap) n = b->cap;
    uint8_t *p = realloc(b->data, n);
    if (!p) return -1;
    b->data = p;
    b->alloc = n;
    return 0;
}

int cw_buf_append_slow(cw_buf *b, const void *p, size_t n)
{
    if (cw_buf_reserve(b, n) < 0) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int cw_buf_printf(cw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || cw_buf_reserve(b, (size_t)n + 1) < 0) return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void cw_buf_consume(cw_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
