/* spool_seg: the spool's on-disk record format, a buffered record reader
 * over one segment file, and the recovery scan of a segment.
 *
 * Record layout (all integers little-endian), CW_SPOOL_HDR = 28 bytes:
 *    0 u32 body length (<= CW_SPOOL_BODY_MAX)
 *    4 u32 CRC-32 (zlib crc32) of bytes 8.. to the end of the record
 *    8 u8  kind (enum cw_rec_kind)
 *    9 u8  key length
 *   10 u16 reserved, 0
 *   12 u64 seq (for CW_REC_HWM: number of entries in the body)
 *   20 i64 time_ns
 *   28 key bytes, then body bytes
 * A segment file is a plain sequence of records, the first being CW_REC_HWM
 * (see spool_hwm.h). Segment files are named by their first global offset,
 * "%020llu.seg".
 *
 * Everything here is plain data and file I/O with no shared state: a
 * cw_spool_seg_rd belongs to one thread.
 */
#ifndef CW_SPOOL_SEG_H
#define CW_SPOOL_SEG_H

#include <stddef.h>
#include <stdint.h>

#include "storage/spool.h"
#include "storage/spool_hwm.h"

#define CW_SPOOL_HDR 28
#define CW_SPOOL_SEG_NAME_LEN 24 /* 20 digits + ".seg" */

/* cw_spool_seg_next() results besides 1 (a record) and 0 (at the limit). */
#define CW_SPOOL_SEG_TORN (-61)    /* -ENODATA: record runs past the limit */
#define CW_SPOOL_SEG_CORRUPT (-74) /* -EBADMSG: bad length, kind or CRC */
#define CW_SPOOL_SEG_IO (-5)       /* -EIO: read failed */

typedef struct cw_spool_seg_rec {
    uint8_t kind;
    uint8_t key_len;
    const char *key;
    uint64_t seq;
    int64_t time_ns;
    const uint8_t *body;
    uint32_t body_len;
    uint64_t size; /* whole record, header included */
} cw_spool_seg_rec;

/* Encodes a record header, CRC included, for the given key and body. */
void cw_spool_seg_header(uint8_t hdr[CW_SPOOL_HDR], uint8_t kind, const char *key,
                         uint8_t key_len, uint64_t seq, int64_t time_ns, const uint8_t *body,
                         uint32_t body_len);

/* A read window over one file: bytes [off, off + len) of it are in buf. */
typedef struct cw_spool_seg_rd {
    int fd;
    uint8_t *buf;
    size_t alloc;
    uint64_t off;
    size_t len;
} cw_spool_seg_rd;

void cw_spool_seg_rd_init(cw_spool_seg_rd *rd);
/* Points the reader at another file (or -1), dropping the window. The fd
 * stays owned by the caller. */
void cw_spool_seg_rd_set_fd(cw_spool_seg_rd *rd, int fd);
void cw_spool_seg_rd_free(cw_spool_seg_rd *rd);

/* Decodes and verifies the record at file position `pos`, reading nothing at
 * or past `limit`. Returns 1 (rec filled; its pointers are valid until the
 * next call), 0 (pos == limit), CW_SPOOL_SEG_TORN, CW_SPOOL_SEG_CORRUPT or
 * CW_SPOOL_SEG_IO. */
int cw_spool_seg_next(cw_spool_seg_rd *rd, uint64_t pos, uint64_t limit, cw_spool_seg_rec *rec);

typedef struct cw_spool_seg_scan_result {
    uint64_t valid_len; /* bytes of whole, valid records from the start */
    uint64_t records;   /* how many, HWM records included */
    int stop;           /* 0 (clean end) or why the scan stopped early */
} cw_spool_seg_scan_result;

/* Reads and verifies the records of a segment file up to `limit` bytes,
 * merging batch seqs and HWM records into `hwm`. A record that does not
 * verify (or a malformed HWM body) ends the scan: valid_len tells where.
 * Returns 0, or -ENOMEM (res undefined). */
int cw_spool_seg_scan(int fd, uint64_t limit, cw_spool_hwm *hwm, cw_spool_seg_scan_result *res);

/* Writes "%020llu.seg" into name (CW_SPOOL_SEG_NAME_LEN + 1 bytes). */
void cw_spool_seg_name(char *name, uint64_t base);
/* Parses a segment file name; returns 0 and the base, or -1 if `name` is not
 * exactly 20 digits followed by ".seg". */
int cw_spool_seg_parse_name(const char *name, uint64_t *base);

/* A short text for a cw_spool_seg_next() error code. */
const char *cw_spool_seg_strerror(int code);

#endif
