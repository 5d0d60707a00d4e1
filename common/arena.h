/* arena: a bounded bump allocator, used as the protobuf-c allocator so that
 * decoding one frame can never take more than `limit` bytes, whatever the
 * peer sent (protobuf-c can otherwise be made to allocate ~44x the input).
 *
 * Owned by one thread (one per ingest loop). cw_arena_reset() frees every
 * allocation at once; call it after each frame is handled. Chunks are kept
 * for reuse up to `keep` bytes so steady state does no malloc.
 */
#ifndef CW_ARENA_H
#define CW_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct cw_arena_chunk cw_arena_chunk;

typedef struct cw_arena {
    ProtobufCAllocator pb; /* pass &arena->pb to *__unpack() */
    cw_arena_chunk *chunks;
    size_t used;  /* bytes handed out since the last reset */
    size_t limit; /* hard cap on `used` */
    int exhausted; /* set when an allocation was refused */
} cw_arena;

void cw_arena_init(cw_arena *a, size_t limit);
void *cw_arena_alloc(cw_arena *a, size_t n);
void cw_arena_reset(cw_arena *a);
void cw_arena_destroy(cw_arena *a);

#endif
