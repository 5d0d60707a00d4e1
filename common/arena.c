#include "common/arena.h"

#include <stdint.h>
#include <stdlib.h>

#define CHUNK_MIN (64 * 1024)

struct cw_arena_chunk {
    cw_arena_chunk *next;
    size_t size, off;
    max_align_t data[];
};

static void *pb_alloc(void *data, size_t n)
{
    return cw_arena_alloc(data, n);
}

static void pb_free(void *data, void *p)
{
    /* Freed all at once by cw_arena_reset(). */
    (void)data;
    (void)p;
}

void cw_arena_init(cw_arena *a, size_t limit)
{
    a->pb.alloc = pb_alloc;
    a->pb.free = pb_free;
    a->pb.allocator_data = a;
    a->chunks = NULL;
    a->used = 0;
    a->limit = limit;
    a->exhausted = 0;
}

void *cw_arena_alloc(cw_arena *a, size_t n)
{
    if (n > a->limit) { /* also keeps the rounding below from overflowing */
        a->exhausted = 1;
        return NULL;
    }
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (n == 0) n = sizeof(max_align_t);
    if (n > a->limit || a->used > a->limit - n) {
        a->exhausted = 1;
        return NULL;
    }
    cw_arena_chunk *c = a->chunks;
    if (!c || c->size - c->off < n) {
        /* Look for a kept chunk with room before allocating a new one. */
        cw_arena_chunk **pp = &a->chunks;
        for (c = a->chunks; c; pp = &c->next, c = c->next)
            if (c->size - c->off >= n) break;
        if (c) {
            *pp = c->next; /* move it to the front */
            c->next = a->chunks;
            a->chunks = c;
        } else {
            size_t size = n > CHUNK_MIN ? n : CHUNK_MIN;
            c = malloc(sizeof *c + size);
            if (!c) {
                a->exhausted = 1;
                return NULL;
            }
            c->size = size;
            c->off = 0;
            c->next = a->chunks;
            a->chunks = c;
        }
    }
    void *p = (uint8_t *)c->data + c->off;
    c->off += n;
    a->used += n;
    return p;
}

void cw_arena_reset(cw_arena *a)
{
    /* Keep the chunks for the next frame, but give memory back after an
     * unusually large frame so one big frame does not pin it forever. */
    size_t kept = 0;
    cw_arena_chunk **pp = &a->chunks;
    while (*pp) {
        cw_arena_chunk *c = *pp;
        if (kept + c->size > 4 * 1024 * 1024) {
            *pp = c->next;
            free(c);
            continue;
        }
        kept += c->size;
        c->off = 0;
        pp = &c->next;
    }
    a->used = 0;
    a->exhausted = 0;
}

void cw_arena_destroy(cw_arena *a)
{
    while (a->chunks) {
        cw_arena_chunk *c = a->chunks;
        a->chunks = c->next;
        free(c);
    }
    a->used = 0;
}
