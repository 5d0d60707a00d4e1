/* latest: the newest value per key, held until flushed. The pipeline keeps
 * incident states here between flushes to the sink spool: an incident that
 * changes a hundred times in a second is stored once with its final state
 * rather than a hundred times (each state is the whole incident, tens of KB
 * when it holds hundreds of alerts).
 *
 * Keys are short strings (at most CW_LATEST_KEY_MAX - 1 bytes); values are
 * copied. Entries keep the order in which their key first appeared. At most
 * `cap` keys: cw_latest_put() returns 1 when a new key does not fit, and the
 * caller flushes first. One thread only.
 */
#ifndef CW_LATEST_H
#define CW_LATEST_H

#include <stddef.h>
#include <stdint.h>

#define CW_LATEST_KEY_MAX 64

typedef struct cw_latest_ent {
    char key[CW_LATEST_KEY_MAX];
    uint8_t *data;
    size_t len;
} cw_latest_ent;

typedef struct cw_latest {
    cw_latest_ent *ents;
    size_t n, cap;
} cw_latest;

/* Returns 0, or -1 (out of memory). */
int cw_latest_init(cw_latest *l, size_t cap);
void cw_latest_free(cw_latest *l);

/* Replaces key's value, or adds the key. Returns 0, 1 (full: flush, then
 * put again), or -1 (key too long, out of memory; nothing changed). */
int cw_latest_put(cw_latest *l, const char *key, size_t key_len, const void *data, size_t len);

/* Forgets every entry (after the caller went through l->ents[0..n)). */
void cw_latest_clear(cw_latest *l);

#endif
