#include "storage/spool_seg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* Reads happen in windows of this size so that a run of small records costs
 * one pread, not two per record. */
#define WINDOW (256u * 1024)

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void cw_spool_seg_header(uint8_t hdr[CW_SPOOL_HDR], uint8_t kind, const char *key,
                         uint8_t key_len, uint64_t seq, int64_t time_ns, const uint8_t *body,
                         uint32_t body_len)
{
    put_u32(hdr, body_len);
    hdr[8] = kind;
    hdr[9] = key_len;
    hdr[10] = hdr[11] = 0;
    put_u64(hdr + 12, seq);
    put_u64(hdr + 20, (uint64_t)time_ns);
    uLong crc = crc32(0L, hdr + 8, CW_SPOOL_HDR - 8);
    if (key_len) crc = crc32(crc, (const Bytef *)key, key_len);
    if (body_len) crc = crc32(crc, body, body_len);
    put_u32(hdr + 4, (uint32_t)crc);
}

void cw_spool_seg_rd_init(cw_spool_seg_rd *rd)
{
    memset(rd, 0, sizeof *rd);
    rd->fd = -1;
}

void cw_spool_seg_rd_set_fd(cw_spool_seg_rd *rd, int fd)
{
    rd->fd = fd;
    rd->off = 0;
    rd->len = 0;
}

void cw_spool_seg_rd_free(cw_spool_seg_rd *rd)
{
    free(rd->buf);
    cw_spool_seg_rd_init(rd);
}

/* Makes bytes [pos, pos + n) of the file available in the window. The caller
 * guarantees pos <= limit. Bytes at or past `limit` are never read: past the
 * durable end they may still change (a failed write is truncated and written
 * again), so they must not be cached. */
static int ensure(cw_spool_seg_rd *rd, uint64_t pos, uint64_t n, uint64_t limit)
{
    if (n > limit - pos) return CW_SPOOL_SEG_TORN;
    if (rd->len && pos >= rd->off && pos - rd->off + n <= rd->len) return 0;
    uint64_t want = n < WINDOW ? WINDOW : n;
    if (want > limit - pos) want = limit - pos;
    if (want > rd->alloc) {
        /* Bounded: n is at most a header, a key and CW_SPOOL_BODY_MAX. */
        uint8_t *p = realloc(rd->buf, (size_t)want);
        if (!p) return CW_SPOOL_SEG_IO;
        rd->buf = p;
        rd->alloc = (size_t)want;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(rd->fd, rd->buf + got, (size_t)want - got, (off_t)(pos + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rd->len = 0;
            return CW_SPOOL_SEG_IO;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    rd->off = pos;
    rd->len = got;
    /* The file is shorter than the caller believed: treat it like a record
     * cut short, which is what it is. */
    return got < n ? CW_SPOOL_SEG_TORN : 0;
}

int cw_spool_seg_next(cw_spool_seg_rd *rd, uint64_t pos, uint64_t limit, cw_spool_seg_rec *rec)
{
    if (pos >= limit) return 0;
    int r = ensure(rd, pos, CW_SPOOL_HDR, limit);
    if (r < 0) return r;
    const uint8_t *h = rd->buf + (pos - rd->off);
    uint32_t body_len = get_u32(h);
    uint32_t crc = get_u32(h + 4);
    uint8_t kind = h[8], key_len = h[9];
    if (body_len > CW_SPOOL_BODY_MAX || kind > CW_REC__LAST || h[10] || h[11])
        return CW_SPOOL_SEG_CORRUPT;
    uint64_t size = (uint64_t)CW_SPOOL_HDR + key_len + body_len;
    r = ensure(rd, pos, size, limit);
    if (r < 0) return r;
    h = rd->buf + (pos - rd->off);
    if ((uint32_t)crc32(0L, h + 8, (uInt)(size - 8)) != crc) return CW_SPOOL_SEG_CORRUPT;
    rec->kind = kind;
    rec->key_len = key_len;
    rec->key = (const char *)h + CW_SPOOL_HDR;
    rec->seq = get_u64(h + 12);
    rec->time_ns = (int64_t)get_u64(h + 20);
    rec->body = h + CW_SPOOL_HDR + key_len;
    rec->body_len = body_len;
    rec->size = size;
    return 1;
}

int cw_spool_seg_scan(int fd, uint64_t limit, cw_spool_hwm *hwm, cw_spool_seg_scan_result *res)
{
    cw_spool_seg_rd rd;
    cw_spool_seg_rd_init(&rd);
    cw_spool_seg_rd_set_fd(&rd, fd);
    memset(res, 0, sizeof *res);
    uint64_t pos = 0;
    int ret = 0;
    for (;;) {
        cw_spool_seg_rec rec;
        int r = cw_spool_seg_next(&rd, pos, limit, &rec);
        if (r == 0) break;
        if (r < 0) {
            res->stop = r;
            break;
        }
        if (rec.kind == CW_REC_HWM) {
            r = cw_spool_hwm_apply(hwm, rec.body, rec.body_len, rec.seq);
            if (r == -EINVAL) {
                res->stop = CW_SPOOL_SEG_CORRUPT;
                break;
            }
        } else if (rec.kind == CW_REC_BATCH || rec.kind >= CW_REC_OUT_EVENTS) {
            r = cw_spool_hwm_update(hwm, rec.key, rec.key_len, rec.seq);
        }
        if (r < 0) {
            ret = r;
            break;
        }
        pos += rec.size;
        res->records++;
    }
    res->valid_len = pos;
    cw_spool_seg_rd_free(&rd);
    return ret;
}

void cw_spool_seg_name(char *name, uint64_t base)
{
    snprintf(name, CW_SPOOL_SEG_NAME_LEN + 1, "%020llu.seg", (unsigned long long)base);
}

int cw_spool_seg_parse_name(const char *name, uint64_t *base)
{
    if (strlen(name) != CW_SPOOL_SEG_NAME_LEN || strcmp(name + 20, ".seg") != 0) return -1;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *base = v;
    return 0;
}

const char *cw_spool_seg_strerror(int code)
{
    switch (code) {
    case CW_SPOOL_SEG_TORN: return "record cut short";
    case CW_SPOOL_SEG_CORRUPT: return "bad length, kind or checksum";
    case CW_SPOOL_SEG_IO: return "read error";
    default: return "ok";
    }
}
