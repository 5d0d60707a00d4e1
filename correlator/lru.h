/* lru: a string-keyed hash table with a recency list and hard bounds, for
 * the enrichment context (agents, containers, pods and their indexes).
 *
 * Entries are intrusive: a caller's struct embeds a cw_lru_node and owns the
 * key bytes (the node points at them). cw_lru_insert() evicts the least
 * recently used entries while the table is over max_count entries or
 * max_cost cost units (the caller's estimate of an entry's bytes), calling
 * the evict callback, which must free the entry. Lookups with touch move the
 * entry to the front. Keys come from agents and API servers, so buckets are
 * chosen with SipHash-1-3 under a random key per table: a peer cannot build
 * colliding keys to make lookups linear.
 *
 * Single-threaded (the pipeline thread); not locked.
 */
#ifndef CW_LRU_H
#define CW_LRU_H

#include <stddef.h>
#include <stdint.h>

typedef struct cw_lru_node {
    struct cw_lru_node *hnext;       /* bucket chain */
    struct cw_lru_node *prev, *next; /* recency list, most recent first */
    uint64_t hash;
    const char *key; /* owned by the entry */
    size_t key_len;
    size_t cost;
} cw_lru_node;

typedef struct cw_lru {
    cw_lru_node **buckets;
    size_t nbuckets; /* power of two */
    cw_lru_node list; /* sentinel: list.next is the most recent */
    size_t count, cost;
    size_t max_count, max_cost; /* 0: unbounded */
    uint64_t k0, k1;            /* SipHash key */
    uint64_t evictions;
    /* Called for entries evicted by cw_lru_insert() (already unlinked); frees them. */
    void (*evict)(cw_lru_node *n, void *ud);
    void *ud;
} cw_lru;

/* Returns 0 or -1 (out of memory). */
int cw_lru_init(cw_lru *l, size_t max_count, size_t max_cost,
                void (*evict)(cw_lru_node *n, void *ud), void *ud);
/* Calls free_cb (may be NULL) on every entry, then frees the table. */
void cw_lru_destroy(cw_lru *l, void (*free_cb)(cw_lru_node *n, void *ud));

/* Returns the entry with this key or NULL; touch moves it to the front. */
cw_lru_node *cw_lru_find(cw_lru *l, const char *key, size_t len, int touch);

/* Links n (key, key_len and cost set by the caller; the key must not be in
 * the table) at the front, then evicts old entries while over a bound. n
 * itself is never evicted by its own insertion. */
void cw_lru_insert(cw_lru *l, cw_lru_node *n);

/* Unlinks n; the caller frees it. */
void cw_lru_remove(cw_lru *l, cw_lru_node *n);

/* Updates n's cost after its contents changed, evicting others if needed. */
void cw_lru_set_cost(cw_lru *l, cw_lru_node *n, size_t cost);

/* Least recently used entry, or NULL when empty. */
cw_lru_node *cw_lru_oldest(cw_lru *l);

#define cw_lru_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

#endif
