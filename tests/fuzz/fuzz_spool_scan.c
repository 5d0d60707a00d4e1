/* libFuzzer target: arbitrary bytes as a spool segment file, through the
 * recovery scan (record framing, lengths, checksums, HWM bodies).
 *
 * The first input byte picks a mode. Odd: the rest is used as is. Even: the
 * CRC field of every record the bytes frame is recomputed first, so that
 * mutations get past the checksum into lengths, kinds and HWM bodies.
 *
 * Checked beyond "no crash": the valid prefix lies inside the input, and
 * scanning only that prefix again ends cleanly with the same records and the
 * same high-water marks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "storage/spool_seg.h"

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fix_crcs(uint8_t *d, size_t n)
{
    size_t p = 0;
    while (n - p >= CW_SPOOL_HDR) {
        uint64_t size = (uint64_t)CW_SPOOL_HDR + d[p + 9] + get_u32(d + p);
        if (size > n - p) return;
        uint32_t crc = (uint32_t)crc32(0L, d + p + 8, (uInt)(size - 8));
        for (int i = 0; i < 4; i++) d[p + 4 + i] = (uint8_t)(crc >> (8 * i));
        p += size;
    }
}

typedef struct pair {
    uint64_t sum, n;
} pair;

static void fold(const char *id, size_t len, uint64_t seq, void *ud)
{
    pair *p = ud;
    uint64_t h = seq;
    for (size_t i = 0; i < len; i++) h = h * 131 + (uint8_t)id[i];
    p->sum += h; /* order-independent digest of the map */
    p->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0) fd = memfd_create("segment", 0);
    if (fd < 0 || size == 0) return 0;
    uint8_t *d = malloc(size);
    if (!d) return 0;
    memcpy(d, data + 1, size - 1);
    size_t n = size - 1;
    if (!(data[0] & 1)) fix_crcs(d, n);
    if (ftruncate(fd, 0) != 0 || (n && pwrite(fd, d, n, 0) != (ssize_t)n)) abort();

    cw_spool_hwm a, b;
    cw_spool_hwm_init(&a);
    cw_spool_hwm_init(&b);
    cw_spool_seg_scan_result r1, r2;
    if (cw_spool_seg_scan(fd, n, &a, &r1) == 0) {
        if (r1.valid_len > n || (r1.valid_len < n) != (r1.stop != 0)) abort();
        if (cw_spool_seg_scan(fd, r1.valid_len, &b, &r2) != 0) abort();
        if (r2.stop != 0 || r2.valid_len != r1.valid_len || r2.records != r1.records) abort();
        pair pa = {0, 0}, pb = {0, 0};
        cw_spool_hwm_foreach(&a, fold, &pa);
        cw_spool_hwm_foreach(&b, fold, &pb);
        if (pa.sum != pb.sum || pa.n != pb.n) abort();
    }
    cw_spool_hwm_free(&a);
    cw_spool_hwm_free(&b);
    free(d);
    return 0;
}
