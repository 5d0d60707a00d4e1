/* dedupe: a bounded set of recently stored keys, to drop redelivered items.
 *
 * Keys are CW_DEDUPE_KEY_LEN opaque bytes that must already be uniformly
 * distributed (a cryptographic digest): they pick hash buckets directly, so
 * keys a peer could choose freely would let it build long chains.
 *
 * The set remembers at most `capacity` keys and forgets the oldest first
 * (a FIFO ring). An entry is "pending" while a write of its item is under way
 * and "durable" once one succeeded. Only a durable entry makes a later copy a
 * duplicate. An entry whose writes all failed is forgotten, so a retry of the
 * item is stored. Refs stay safe across eviction: a ref to an evicted entry is
 * ignored.
 *
 * Single-threaded: a set belongs to one thread (the HTTP loop).
 * Errors: 0 or a negative errno.
 */
#ifndef CW_DEDUPE_H
#define CW_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

#define CW_DEDUPE_KEY_LEN 16

typedef struct cw_dedupe cw_dedupe;

typedef struct cw_dedupe_ref {
    uint32_t slot;
    uint32_t gen;
} cw_dedupe_ref;

enum { CW_DEDUPE_NEW = 0, CW_DEDUPE_PENDING = 1, CW_DEDUPE_DUPLICATE = 2 };

/* capacity: 1 .. 2^30 keys. */
int cw_dedupe_create(cw_dedupe **out, uint32_t capacity);
void cw_dedupe_free(cw_dedupe *d);
/* Looks `key` up. CW_DEDUPE_DUPLICATE: a write succeeded before, drop the
 * item. Otherwise starts a write of it (inserting the key, which may evict
 * the oldest entry), fills *ref and returns CW_DEDUPE_NEW, or
 * CW_DEDUPE_PENDING when another write of the same key is still under way.
 * Every begin that did not return DUPLICATE needs one cw_dedupe_end(). */
int cw_dedupe_begin(cw_dedupe *d, const uint8_t key[CW_DEDUPE_KEY_LEN], cw_dedupe_ref *ref);
/* Ends a write: stored=1 makes the key a duplicate from now on; stored=0
 * forgets it unless another write of it is pending or succeeded. */
void cw_dedupe_end(cw_dedupe *d, cw_dedupe_ref ref, int stored);
/* Keys remembered (pending or durable). */
size_t cw_dedupe_count(const cw_dedupe *d);

#endif
