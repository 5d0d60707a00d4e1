/* spool_hwm: the spool's per-agent high-water marks (agent id -> highest
 * stored batch seq) and their on-disk encoding in CW_REC_HWM records.
 *
 * A small open-addressing hash table (linear probing, power-of-two size,
 * grown at 3/4 load), bounded by the number of distinct agents that ever
 * stored a batch. It has no lock: the spool serialises access.
 *
 * CW_REC_HWM body encoding: a sequence of entries, each
 *   u8 id length (1..255), id bytes, u64 little-endian seq (>= 1)
 * and the record header's seq field holds the number of entries. A large
 * map is written as several HWM records (each body at most
 * CW_SPOOL_HWM_CHUNK bytes); applying them merges by maximum, so their order
 * and any repetition do not matter.
 */
#ifndef CW_SPOOL_HWM_H
#define CW_SPOOL_HWM_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define CW_SPOOL_HWM_CHUNK (1u << 20)

struct cw_spool_hwm_ent;

typedef struct cw_spool_hwm {
    struct cw_spool_hwm_ent *tab;
    size_t cap; /* slots, 0 or a power of two */
    size_t n;   /* used slots */
} cw_spool_hwm;

void cw_spool_hwm_init(cw_spool_hwm *h);
void cw_spool_hwm_free(cw_spool_hwm *h);

/* Raises the mark of `id` to `seq` (keeps the maximum). Ids must be 1..255
 * bytes. Returns 0, or -ENOMEM (the map is unchanged). */
int cw_spool_hwm_update(cw_spool_hwm *h, const char *id, size_t len, uint64_t seq);

/* The mark of `id`, 0 if it has none. */
uint64_t cw_spool_hwm_get(const cw_spool_hwm *h, const char *id, size_t len);

void cw_spool_hwm_foreach(const cw_spool_hwm *h,
                          void (*cb)(const char *id, size_t len, uint64_t seq, void *ud),
                          void *ud);

/* Appends to `out` the body of one HWM record, starting at table slot
 * *slot, stopping before the body would pass CW_SPOOL_HWM_CHUNK bytes.
 * Sets *count to the number of entries written and advances *slot; the map
 * is fully encoded once *slot == h->cap. Returns 0 or -ENOMEM. */
int cw_spool_hwm_encode(const cw_spool_hwm *h, size_t *slot, cw_buf *out, uint64_t *count);

/* Checks that `body` is a well-formed HWM body with exactly `count` entries,
 * then merges it into `h`. Returns 0, -EINVAL (malformed; `h` unchanged) or
 * -ENOMEM. */
int cw_spool_hwm_apply(cw_spool_hwm *h, const uint8_t *body, size_t len, uint64_t count);

#endif
