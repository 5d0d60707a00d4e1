#include "storage/spool_hwm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct cw_spool_hwm_ent {
    uint64_t seq; /* 0: empty slot */
    uint64_t hash;
    char *id; /* len bytes, owned by the map */
    uint8_t len;
};

/* FNV-1a. Agent ids come from peers, so an adversary could aim for
 * collisions; the table is bounded by the number of agents and probing stays
 * linear in the worst case, which is acceptable for a map that is only
 * touched once per durable batch group. */
static uint64_t hash_id(const char *id, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)id[i];
        h *= 1099511628211ull;
    }
    return h;
}

void cw_spool_hwm_init(cw_spool_hwm *h)
{
    h->tab = NULL;
    h->cap = h->n = 0;
}

void cw_spool_hwm_free(cw_spool_hwm *h)
{
    for (size_t i = 0; i < h->cap; i++)
        if (h->tab[i].seq) free(h->tab[i].id);
    free(h->tab);
    cw_spool_hwm_init(h);
}

static struct cw_spool_hwm_ent *find(const cw_spool_hwm *h, const char *id, size_t len,
                                     uint64_t hash)
{
    size_t mask = h->cap - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        struct cw_spool_hwm_ent *e = &h->tab[i];
        if (e->seq == 0) return e;
        if (e->hash == hash && e->len == len && memcmp(e->id, id, len) == 0) return e;
    }
}

static int grow(cw_spool_hwm *h)
{
    size_t ncap = h->cap ? h->cap * 2 : 64;
    struct cw_spool_hwm_ent *nt = calloc(ncap, sizeof *nt);
    if (!nt) return -ENOMEM;
    cw_spool_hwm old = *h;
    h->tab = nt;
    h->cap = ncap;
    for (size_t i = 0; i < old.cap; i++) {
        struct cw_spool_hwm_ent *e = &old.tab[i];
        if (e->seq) *find(h, e->id, e->len, e->hash) = *e;
    }
    free(old.tab);
    return 0;
}

int cw_spool_hwm_update(cw_spool_hwm *h, const char *id, size_t len, uint64_t seq)
{
    if (len == 0 || len > 255 || seq == 0) return 0; /* nothing to remember */
    uint64_t hash = hash_id(id, len);
    if (h->cap) {
        struct cw_spool_hwm_ent *e = find(h, id, len, hash);
        if (e->seq) {
            if (seq > e->seq) e->seq = seq;
            return 0;
        }
    }
    /* Keep the load under 3/4 so probes stay short and a free slot exists. */
    if ((h->n + 1) * 4 > h->cap * 3 && grow(h) < 0) return -ENOMEM;
    char *copy = malloc(len);
    if (!copy) return -ENOMEM;
    memcpy(copy, id, len);
    struct cw_spool_hwm_ent *e = find(h, id, len, hash);
    e->seq = seq;
    e->hash = hash;
    e->id = copy;
    e->len = (uint8_t)len;
    h->n++;
    return 0;
}

uint64_t cw_spool_hwm_get(const cw_spool_hwm *h, const char *id, size_t len)
{
    if (!h->cap || len == 0 || len > 255) return 0;
    return find(h, id, len, hash_id(id, len))->seq;
}

void cw_spool_hwm_foreach(const cw_spool_hwm *h,
                          void (*cb)(const char *id, size_t len, uint64_t seq, void *ud),
                          void *ud)
{
    for (size_t i = 0; i < h->cap; i++)
        if (h->tab[i].seq) cb(h->tab[i].id, h->tab[i].len, h->tab[i].seq, ud);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

int cw_spool_hwm_encode(const cw_spool_hwm *h, size_t *slot, cw_buf *out, uint64_t *count)
{
    size_t start = out->len;
    uint64_t n = 0;
    for (; *slot < h->cap; (*slot)++) {
        const struct cw_spool_hwm_ent *e = &h->tab[*slot];
        if (!e->seq) continue;
        size_t sz = 1 + (size_t)e->len + 8;
        if (out->len - start + sz > CW_SPOOL_HWM_CHUNK) break;
        uint8_t tmp[1 + 255 + 8];
        tmp[0] = e->len;
        memcpy(tmp + 1, e->id, e->len);
        put_u64(tmp + 1 + e->len, e->seq);
        if (cw_buf_append(out, tmp, sz) < 0) {
            out->len = start;
            return -ENOMEM;
        }
        n++;
    }
    *count = n;
    return 0;
}

int cw_spool_hwm_apply(cw_spool_hwm *h, const uint8_t *body, size_t len, uint64_t count)
{
    /* Validate everything first so a malformed record changes nothing. */
    uint64_t n = 0;
    size_t p = 0;
    while (p < len) {
        size_t klen = body[p];
        if (klen == 0 || len - p < 1 + klen + 8) return -EINVAL;
        if (get_u64(body + p + 1 + klen) == 0) return -EINVAL;
        p += 1 + klen + 8;
        n++;
    }
    if (n != count) return -EINVAL;
    for (p = 0; p < len;) {
        size_t klen = body[p];
        int r = cw_spool_hwm_update(h, (const char *)body + p + 1, klen,
                                    get_u64(body + p + 1 + klen));
        if (r < 0) return r;
        p += 1 + klen + 8;
    }
    return 0;
}
