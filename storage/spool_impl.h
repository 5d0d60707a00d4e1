/* spool_impl: the spool's internal state, shared by spool.c (open/recovery,
 * queue, writer thread, segment deletion) and spool_reader.c (readers and
 * their cursor files). Not for use outside storage/spool*.c.
 *
 * Locking: one mutex, s->lock, guards every field marked "lock" below. The
 * writer thread owns the fields marked "writer" and touches them without the
 * lock; a reader's thread owns the fields marked "reader" likewise. Disk I/O
 * never happens under the lock, except for the short scan-free steps in
 * cw_spool_open() and cw_spool_close(), which run before and after any
 * other thread uses the spool.
 */
#ifndef CW_SPOOL_IMPL_H
#define CW_SPOOL_IMPL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/uio.h>

#include "storage/spool.h"
#include "storage/spool_hwm.h"
#include "storage/spool_seg.h"

#define CW_SPOOL_LOG "spool"
#define CW_SPOOL_MAX_LISTENERS 16
#define CW_SPOOL_WS_IOV 1024 /* Linux IOV_MAX */

typedef struct cw_spool_cb {
    void (*cb)(void *ud);
    void *ud;
} cw_spool_cb;

/* One segment file, as known to readers and to deletion. Bytes [base, end)
 * of the global offset space are durable, verified records; end only grows,
 * and only for the last segment. */
typedef struct cw_spool_segment {
    uint64_t base;
    uint64_t end;
    uint64_t file_bytes; /* size on disk, for spool_bytes */
} cw_spool_segment;

struct cw_spool_reader {
    cw_spool *s;
    char name[CW_SPOOL_READER_NAME_MAX + 1];
    /* reader */
    uint64_t pos;      /* global offset of the next record to read */
    uint64_t limit;    /* pos may advance up to here without the lock */
    uint64_t seg_base; /* segment that fd is open on */
    int fd;
    cw_spool_seg_rd rd;
    /* lock */
    uint64_t committed; /* everything below was processed */
    uint64_t saved;     /* the value in the cursor file */
    int dirty;          /* committed != saved, the writer will save it */
    void (*notify)(void *ud);
    void *notify_ud;
};

/* Writes of one run: records become iovecs over their header, key and body,
 * flushed with pwritev whenever the arrays fill. */
typedef struct cw_spool_ws {
    struct iovec iov[CW_SPOOL_WS_IOV];
    uint8_t hdr[CW_SPOOL_WS_IOV / 2][CW_SPOOL_HDR];
    int niov, nhdr;
    uint64_t off;   /* file offset where iov[0] goes */
    uint64_t total; /* bytes added in this run */
    int err;        /* errno of the first failure */
} cw_spool_ws;

struct cw_spool {
    cw_spool_opts opts;
    char *dir;        /* data_dir/spool */
    char *cursor_dir; /* data_dir/spool/cursors */
    int dirfd, cursor_dirfd;
    char id[CW_SPOOL_ID_LEN + 1]; /* data_dir/spool/id: see cw_spool_id() */

    pthread_mutex_t lock;
    pthread_cond_t writer_cv; /* the writer waits for requests or cursors */
    pthread_cond_t read_cv;   /* readers wait for durable data or the stop */
    pthread_t thread;

    /* lock */
    int started, writer_active, stopping, stopped;
    cw_spool_req *head, *tail;
    uint64_t queued_bytes; /* submitted, not yet durable (or failed) */
    int refused;           /* a submit got CW_SPOOL_FULL since room last returned */
    int cursors_dirty;
    cw_spool_segment *segs; /* sorted by base; never empty after open */
    size_t nsegs, segs_alloc;
    uint64_t durable_end; /* end of the last segment */
    uint64_t disk_bytes;  /* sum of file_bytes */
    cw_spool_hwm hwm;     /* mutated by the writer under the lock */
    cw_spool_reader *readers[CW_SPOOL_MAX_READERS];
    size_t nreaders; /* fixed once started */

    /* Fixed once started. */
    cw_spool_cb listeners[CW_SPOOL_MAX_LISTENERS];
    size_t nlisteners;

    /* writer */
    int wfd;          /* the segment being appended to */
    uint64_t wbase;   /* its base */
    uint64_t wlen;    /* its durable length */
    int wpublished;   /* it is the last entry of segs */
    int need_roll;    /* start a new segment before the next write */
    int need_truncate; /* wfd still has bytes past wlen from a failed write */
    cw_spool_ws ws;
    cw_buf hwm_body;
};

/* spool_reader.c: persists the cursors marked dirty (writer thread). */
void cw_spool_save_dirty_cursors(cw_spool *s);
/* spool_reader.c: frees a reader (cw_spool_close). */
void cw_spool_reader_free(cw_spool_reader *r);

#endif
