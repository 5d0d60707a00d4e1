#include "correlator/lru.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                  \
    } while (0)

/* SipHash-1-3 (one compression round, three finalization rounds): keyed, so
 * bucket collisions cannot be precomputed, and cheap enough for short keys.
 * OpenSSL offers SipHash only through EVP_MAC, whose per-call setup costs
 * more than hashing a container id. */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t blocks = len / 8;
    for (size_t i = 0; i < blocks; i++, p += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--) m = (m << 8) | p[j];
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; j < (len & 7); j++) b |= (uint64_t)p[j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

int cw_lru_init(cw_lru *l, size_t max_count, size_t max_cost,
                void (*evict)(cw_lru_node *n, void *ud), void *ud)
{
    memset(l, 0, sizeof *l);
    l->nbuckets = 64;
    l->buckets = calloc(l->nbuckets, sizeof *l->buckets);
    if (!l->buckets) return -1;
    l->list.next = l->list.prev = &l->list;
    l->max_count = max_count;
    l->max_cost = max_cost;
    l->evict = evict;
    l->ud = ud;
    uint64_t k[2];
    if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        /* Early boot without entropy: a weaker key still beats none. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)l;
        k[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&k;
    }
    l->k0 = k[0];
    l->k1 = k[1];
    return 0;
}

void cw_lru_destroy(cw_lru *l, void (*free_cb)(cw_lru_node *n, void *ud))
{
    cw_lru_node *n = l->list.next;
    while (n != &l->list) {
        cw_lru_node *next = n->next;
        if (free_cb) free_cb(n, l->ud);
        n = next;
    }
    free(l->buckets);
    l->buckets = NULL;
    l->count = l->cost = 0;
    l->list.next = l->list.prev = &l->list;
}

static void list_unlink(cw_lru_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
}

static void list_push_front(cw_lru *l, cw_lru_node *n)
{
    n->next = l->list.next;
    n->prev = &l->list;
    l->list.next->prev = n;
    l->list.next = n;
}

cw_lru_node *cw_lru_find(cw_lru *l, const char *key, size_t len, int touch)
{
    uint64_t h = siphash13(l->k0, l->k1, key, len);
    for (cw_lru_node *n = l->buckets[h & (l->nbuckets - 1)]; n; n = n->hnext) {
        if (n->hash == h && n->key_len == len && memcmp(n->key, key, len) == 0) {
            if (touch && l->list.next != n) {
                list_unlink(n);
                list_push_front(l, n);
            }
            return n;
        }
    }
    return NULL;
}

/* Doubles the bucket array when the load passes 1. Failure to grow only
 * makes chains longer, so it is not an error. */
static void maybe_grow(cw_lru *l)
{
    if (l->count <= l->nbuckets || l->nbuckets > SIZE_MAX / 4 / sizeof *l->buckets) return;
    size_t nb = l->nbuckets * 2;
    cw_lru_node **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        cw_lru_node *n = l->buckets[i];
        while (n) {
            cw_lru_node *next = n->hnext;
            size_t j = n->hash & (nb - 1);
            n->hnext = b[j];
            b[j] = n;
            n = next;
        }
    }
    free(l->buckets);
    l->buckets = b;
    l->nbuckets = nb;
}

static void unlink_node(cw_lru *l, cw_lru_node *n)
{
    cw_lru_node **pp = &l->buckets[n->hash & (l->nbuckets - 1)];
    while (*pp && *pp != n) pp = &(*pp)->hnext;
    if (*pp) *pp = n->hnext;
    list_unlink(n);
    l->count--;
    l->cost -= n->cost;
}

/* Evicts from the old end while over a bound, sparing `keep`. */
static void enforce(cw_lru *l, cw_lru_node *keep)
{
    while ((l->max_count && l->count > l->max_count) || (l->max_cost && l->cost > l->max_cost)) {
        cw_lru_node *victim = l->list.prev;
        if (victim == keep) victim = victim->prev;
        if (victim == &l->list) break;
        unlink_node(l, victim);
        l->evictions++;
        if (l->evict) l->evict(victim, l->ud);
    }
}

void cw_lru_insert(cw_lru *l, cw_lru_node *n)
{
    n->hash = siphash13(l->k0, l->k1, n->key, n->key_len);
    size_t i = n->hash & (l->nbuckets - 1);
    n->hnext = l->buckets[i];
    l->buckets[i] = n;
    list_push_front(l, n);
    l->count++;
    l->cost += n->cost;
    maybe_grow(l);
    enforce(l, n);
}

void cw_lru_remove(cw_lru *l, cw_lru_node *n)
{
    unlink_node(l, n);
}

void cw_lru_set_cost(cw_lru *l, cw_lru_node *n, size_t cost)
{
    l->cost = l->cost - n->cost + cost;
    n->cost = cost;
    enforce(l, n);
}

cw_lru_node *cw_lru_oldest(cw_lru *l)
{
    return l->list.prev == &l->list ? NULL : l->list.prev;
}
