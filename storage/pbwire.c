/* pbwire: top-level protobuf wire walking. See pbwire.h. */
#include "storage/pbwire.h"

static int varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *pos < len; shift += 7) {
        uint8_t b = p[(*pos)++];
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

int cw_pbwire_next(const uint8_t *p, size_t len, size_t *pos, cw_pbfield *f)
{
    if (*pos >= len) return 0;
    size_t at = *pos, q = at;
    uint64_t key, v;
    if (varint(p, len, &q, &key) < 0) return -1;
    f->number = key >> 3;
    f->wire = (unsigned)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0:
        if (varint(p, len, &q, &v) < 0) return -1;
        break;
    case 1:
        if (len - q < 8) return -1;
        q += 8;
        break;
    case 5:
        if (len - q < 4) return -1;
        q += 4;
        break;
    case 2:
        if (varint(p, len, &q, &v) < 0 || v > len - q) return -1;
        f->data = p + q;
        f->len = (size_t)v;
        q += (size_t)v;
        break;
    default:
        return -1;
    }
    f->start = p + at;
    f->size = q - at;
    *pos = q;
    return 1;
}

size_t cw_pbwire_put_varint(uint8_t out[10], uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}
