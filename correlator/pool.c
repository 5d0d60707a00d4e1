#include "correlator/pool.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK_BYTES (64 * 1024)

struct cw_pool_block {
    cw_pool_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void cw_pool_init(cw_pool *p)
{
    p->head = NULL;
    p->total = 0;
}

void cw_pool_free(cw_pool *p)
{
    cw_pool_block *b = p->head;
    while (b) {
        cw_pool_block *n = b->next;
        free(b);
        b = n;
    }
    p->head = NULL;
    p->total = 0;
}

void *cw_pool_alloc(cw_pool *p, size_t n)
{
    if (n > ((size_t)1 << 40)) return NULL;
    n = (n + 15) & ~(size_t)15;
    cw_pool_block *b = p->head;
    if (!b || b->size - b->used < n) {
        size_t sz = n > BLOCK_BYTES ? n : BLOCK_BYTES;
        b = malloc(sizeof *b + sz);
        if (!b) return NULL;
        b->size = sz;
        b->used = 0;
        b->next = p->head;
        p->head = b;
    }
    void *r = b->data + b->used;
    b->used += n;
    p->total += n;
    memset(r, 0, n);
    return r;
}

char *cw_pool_strndup(cw_pool *p, const char *s, size_t n)
{
    char *r = cw_pool_alloc(p, n + 1);
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

char *cw_pool_strdup(cw_pool *p, const char *s)
{
    return s ? cw_pool_strndup(p, s, strlen(s)) : NULL;
}
