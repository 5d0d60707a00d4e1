/* outrec: the sink spool's event-batch body. See outrec.h. */
#include "storage/outrec.h"

#include <string.h>

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int cw_outrec_append(cw_buf *b, const cw_outrec_event *ev)
{
    if (ev->id_len == 0) return -1;
    size_t need = 2 + (size_t)ev->id_len + 2 + ev->key_len + 8 + 4 + ev->pb_len + 4 + ev->json_len;
    if (cw_buf_reserve(b, need) < 0) return -1;
    uint8_t *p = b->data + b->len;
    put_le(p, ev->id_len, 2), p += 2;
    memcpy(p, ev->id, ev->id_len), p += ev->id_len;
    put_le(p, ev->key_len, 2), p += 2;
    if (ev->key_len) memcpy(p, ev->key, ev->key_len), p += ev->key_len;
    put_le(p, (uint64_t)ev->time_ns, 8), p += 8;
    put_le(p, ev->pb_len, 4), p += 4;
    if (ev->pb_len) memcpy(p, ev->pb, ev->pb_len), p += ev->pb_len;
    put_le(p, ev->json_len, 4), p += 4;
    if (ev->json_len) memcpy(p, ev->json, ev->json_len), p += ev->json_len;
    b->len += need;
    return 0;
}

/* Takes an n-byte little-endian integer at *pos, if that many are left. */
static int take(const uint8_t *body, size_t len, size_t *pos, int n, uint64_t *v)
{
    if (len - *pos < (size_t)n) return -1;
    *v = get_le(body + *pos, n);
    *pos += (size_t)n;
    return 0;
}

/* Takes a field of `flen` bytes at *pos, if that many are left. */
static int span(const uint8_t *body, size_t len, size_t *pos, uint64_t flen, const uint8_t **out)
{
    if (len - *pos < flen) return -1;
    *out = body + *pos;
    *pos += (size_t)flen;
    return 0;
}

int cw_outrec_next(const uint8_t *body, size_t len, size_t *pos, cw_outrec_event *ev)
{
    if (*pos >= len) return 0;
    size_t p = *pos;
    uint64_t id_len, key_len, t, pb_len, json_len;
    const uint8_t *id, *key, *pb, *json;
    if (take(body, len, &p, 2, &id_len) < 0 || id_len == 0 ||
        span(body, len, &p, id_len, &id) < 0 || take(body, len, &p, 2, &key_len) < 0 ||
        span(body, len, &p, key_len, &key) < 0 || take(body, len, &p, 8, &t) < 0 ||
        take(body, len, &p, 4, &pb_len) < 0 || span(body, len, &p, pb_len, &pb) < 0 ||
        take(body, len, &p, 4, &json_len) < 0 || span(body, len, &p, json_len, &json) < 0)
        return -1;
    ev->id = (const char *)id;
    ev->id_len = (uint16_t)id_len;
    ev->key = (const char *)key;
    ev->key_len = (uint16_t)key_len;
    ev->time_ns = (int64_t)t;
    ev->pb = pb;
    ev->pb_len = (uint32_t)pb_len;
    ev->json = (const char *)json;
    ev->json_len = (uint32_t)json_len;
    *pos = p;
    return 1;
}
