/* latest: newest value per key. See latest.h. A linear scan finds keys:
 * between two flushes (a second apart) only the incidents that changed are
 * here, a handful even under load, and at most `cap`. */
#include "correlator/latest.h"

#include <stdlib.h>
#include <string.h>

int cw_latest_init(cw_latest *l, size_t cap)
{
    l->ents = calloc(cap ? cap : 1, sizeof *l->ents);
    l->n = 0;
    l->cap = cap;
    return l->ents ? 0 : -1;
}

void cw_latest_free(cw_latest *l)
{
    cw_latest_clear(l);
    free(l->ents);
    l->ents = NULL;
}

int cw_latest_put(cw_latest *l, const char *key, size_t key_len, const void *data, size_t len)
{
    if (key_len == 0 || key_len >= CW_LATEST_KEY_MAX) return -1;
    cw_latest_ent *e = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (strncmp(l->ents[i].key, key, key_len) == 0 && l->ents[i].key[key_len] == 0) {
            e = &l->ents[i];
            break;
        }
    }
    if (!e && l->n == l->cap) return 1;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return -1;
    memcpy(copy, data, len);
    if (!e) {
        e = &l->ents[l->n++];
        memcpy(e->key, key, key_len);
        e->key[key_len] = 0;
    } else {
        free(e->data);
    }
    e->data = copy;
    e->len = len;
    return 0;
}

void cw_latest_clear(cw_latest *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->ents[i].data);
    l->n = 0;
}
