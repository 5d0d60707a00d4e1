/* dedupe: a bounded set of keys with FIFO eviction. The contract is in
 * dedupe.h.
 *
 * Layout: a ring of `capacity` slots, each also on a hash chain found through
 * `buckets` (a power of two >= capacity). Keys are uniform, so their first
 * four bytes pick the bucket.
 */
#include "server/dedupe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

typedef struct dd_slot {
    uint8_t key[CW_DEDUPE_KEY_LEN];
    uint32_t next; /* hash chain */
    uint32_t gen;  /* bumped on every reuse, so stale refs are recognised */
    uint32_t pending;
    uint8_t used;
    uint8_t durable;
} dd_slot;

struct cw_dedupe {
    dd_slot *slots;
    uint32_t *buckets;
    uint32_t cap, mask, head;
    size_t count;
};

int cw_dedupe_create(cw_dedupe **out, uint32_t capacity)
{
    if (capacity == 0 || capacity > (1u << 30))
        return -EINVAL;
    cw_dedupe *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    uint32_t nb = 1;
    while (nb < capacity)
        nb <<= 1;
    d->cap = capacity;
    d->mask = nb - 1;
    d->slots = calloc(capacity, sizeof(*d->slots));
    d->buckets = malloc((size_t)nb * sizeof(*d->buckets));
    if (!d->slots || !d->buckets) {
        cw_dedupe_free(d);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nb; i++)
        d->buckets[i] = NIL;
    *out = d;
    return 0;
}

void cw_dedupe_free(cw_dedupe *d)
{
    if (!d)
        return;
    free(d->slots);
    free(d->buckets);
    free(d);
}

static uint32_t bucket_of(const cw_dedupe *d, const uint8_t *key)
{
    uint32_t h;
    memcpy(&h, key, sizeof(h));
    return h & d->mask;
}

static uint32_t find(const cw_dedupe *d, const uint8_t *key)
{
    for (uint32_t i = d->buckets[bucket_of(d, key)]; i != NIL; i = d->slots[i].next)
        if (memcmp(d->slots[i].key, key, CW_DEDUPE_KEY_LEN) == 0)
            return i;
    return NIL;
}

static void unlink_slot(cw_dedupe *d, uint32_t idx)
{
    dd_slot *s = &d->slots[idx];
    uint32_t *p = &d->buckets[bucket_of(d, s->key)];
    while (*p != idx)
        p = &d->slots[*p].next;
    *p = s->next;
    s->used = 0;
    s->gen++;
    d->count--;
}

int cw_dedupe_begin(cw_dedupe *d, const uint8_t key[CW_DEDUPE_KEY_LEN],
                          cw_dedupe_ref *ref)
{
    uint32_t idx = find(d, key);
    if (idx != NIL) {
        dd_slot *s = &d->slots[idx];
        if (s->durable)
            return CW_DEDUPE_DUPLICATE;
        s->pending++;
        *ref = (cw_dedupe_ref){idx, s->gen};
        return CW_DEDUPE_PENDING;
    }
    idx = d->head;
    d->head = (d->head + 1) % d->cap;
    dd_slot *s = &d->slots[idx];
    if (s->used)
        unlink_slot(d, idx); /* the oldest entry goes */
    memcpy(s->key, key, CW_DEDUPE_KEY_LEN);
    s->used = 1;
    s->durable = 0;
    s->pending = 1;
    uint32_t b = bucket_of(d, key);
    s->next = d->buckets[b];
    d->buckets[b] = idx;
    d->count++;
    *ref = (cw_dedupe_ref){idx, s->gen};
    return CW_DEDUPE_NEW;
}

void cw_dedupe_end(cw_dedupe *d, cw_dedupe_ref ref, int stored)
{
    if (ref.slot >= d->cap)
        return;
    dd_slot *s = &d->slots[ref.slot];
    if (!s->used || s->gen != ref.gen)
        return; /* evicted meanwhile */
    if (s->pending)
        s->pending--;
    if (stored)
        s->durable = 1;
    else if (!s->durable && s->pending == 0)
        unlink_slot(d, ref.slot); /* let the API server's retry store it */
}

size_t cw_dedupe_count(const cw_dedupe *d)
{
    return d->count;
}
