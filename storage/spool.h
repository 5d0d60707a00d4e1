/* spool: the durable, append-only local log that every accepted input goes
 * through before it is acknowledged, and that every downstream consumer
 * (the enrichment/detection pipeline now; Kafka and PostgreSQL sinks later)
 * reads through its own persistent cursor.
 *
 * Threads and ownership
 * - cw_spool_submit() may be called from any thread. The request and the
 *   memory it points to stay owned by the caller, who must keep them alive
 *   until req->done runs. done runs on the spool's writer thread, after the
 *   record is written and fdatasync'ed (or failed); it must be quick and must
 *   not call back into the spool's submit path (post to a mailbox instead).
 * - One writer thread does group commit: it takes every queued request,
 *   writes them with one writev, makes them durable with one fdatasync, then
 *   runs their done callbacks in submission order. Records are stored in
 *   submission order.
 * - Readers are plain threads (or loops that read with timeout 0 and use the
 *   notify callback). A reader is used by one thread at a time.
 *
 * Backpressure
 * - cw_spool_submit() returns CW_SPOOL_FULL, without queueing, when either
 *   the bytes queued in memory pass queue_max_bytes or the bytes on disk that
 *   some reader has not committed pass max_bytes. The caller keeps its data
 *   (and stops reading from its peers); every space listener is called once
 *   room is back below the low-water mark (3/4 of each limit).
 *
 * On disk (data_dir/spool/)
 * - Segments named %020llu.seg (the segment's first global offset), each a
 *   sequence of records: u32 little-endian body length, u32 CRC-32 of the rest,
 *   u8 kind, u8 agent-id length, u16 reserved, u64 seq, i64 time_ns,
 *   agent id bytes, body bytes. A torn or corrupt tail (crash mid-write) is
 *   truncated at open; everything before it was never acknowledged past it.
 * - Each segment starts with a high-water-mark record listing every agent's
 *   highest stored batch seq, so deleting old segments never loses the
 *   de-duplication state.
 * - Readers' cursors in data_dir/spool/cursors/NAME (global offset, written
 *   atomically). A segment is deleted once every registered reader's
 *   committed cursor is past it.
 */
#ifndef CW_SPOOL_H
#define CW_SPOOL_H

#include <stddef.h>
#include <stdint.h>

enum cw_rec_kind {
    CW_REC_HWM = 0,   /* internal: never returned to readers */
    CW_REC_HELLO = 1, /* key: agent id; body: Hello message bytes */
    CW_REC_BATCH = 2, /* key: agent id; seq: batch seq; body: EventBatch message bytes */
    CW_REC_AUDIT = 3, /* key: cluster; body: one audit.k8s.io Event as JSON */
};

#define CW_SPOOL_OK 0
#define CW_SPOOL_FULL (-11)     /* -EAGAIN: retry after a space listener fires */
#define CW_SPOOL_STOPPED (-108) /* -ESHUTDOWN */
#define CW_SPOOL_IO (-5)        /* -EIO: write or fsync failed; record not stored */
#define CW_SPOOL_INVAL (-22)    /* -EINVAL: malformed request (kind, body too large) */
#define CW_SPOOL_EOF 0          /* cw_spool_read: stopped and fully read */

#define CW_SPOOL_KEY_MAX 255
/* Largest body a record may carry. Well above any frame or audit request we
 * accept; it bounds what a corrupt length field can make recovery allocate. */
#define CW_SPOOL_BODY_MAX (64u * 1024 * 1024)
/* Readers per spool, and the longest reader name. */
#define CW_SPOOL_MAX_READERS 16
#define CW_SPOOL_READER_NAME_MAX 64

typedef struct cw_spool cw_spool;
typedef struct cw_spool_reader cw_spool_reader;

typedef struct cw_spool_req {
    struct cw_spool_req *next; /* spool-internal */
    uint8_t kind;              /* enum cw_rec_kind, not CW_REC_HWM */
    uint8_t key_len;
    const char *key; /* agent id (HELLO, BATCH) or cluster (AUDIT) */
    uint64_t seq;
    int64_t time_ns; /* when the server received it */
    const uint8_t *body;
    uint32_t body_len;
    int status; /* set before done: CW_SPOOL_OK or CW_SPOOL_IO */
    void (*done)(struct cw_spool_req *req); /* writer thread */
    void *user;
} cw_spool_req;

typedef struct cw_spool_opts {
    const char *data_dir;      /* the spool lives in data_dir/spool */
    uint64_t segment_bytes;    /* roll to a new segment past this size */
    uint64_t max_bytes;        /* unread bytes on disk before CW_SPOOL_FULL */
    uint64_t queue_max_bytes;  /* queued, not yet written bytes before CW_SPOOL_FULL */
} cw_spool_opts;

/* Opens or creates the spool, recovers a torn tail, and rebuilds the
 * per-agent high-water marks. Does not start the writer. */
int cw_spool_open(cw_spool **out, const cw_spool_opts *opts, char *err, size_t errlen);

/* Calls cb for every agent with at least one stored batch (before start). */
void cw_spool_foreach_hwm(cw_spool *s,
                          void (*cb)(const char *agent_id, size_t len, uint64_t seq, void *ud),
                          void *ud);

/* Adds a callback run (on a spool thread) when room returns after a
 * CW_SPOOL_FULL. Register before cw_spool_start(). At most 16. */
int cw_spool_add_space_listener(cw_spool *s, void (*cb)(void *ud), void *ud);

/* Registers a reader named `name` (letters, digits, '-', '_'), resuming at its
 * saved cursor, or at the oldest record if it has none. Register every reader
 * before cw_spool_start(): segments are only deleted once all have read them. */
int cw_spool_reader_open(cw_spool *s, const char *name, cw_spool_reader **out);

/* Called on the writer thread after each group commit (may be NULL). */
void cw_spool_reader_set_notify(cw_spool_reader *r, void (*cb)(void *ud), void *ud);

int cw_spool_start(cw_spool *s);

/* Thread-safe. CW_SPOOL_OK (queued; done will run), CW_SPOOL_FULL or
 * CW_SPOOL_STOPPED (not queued; done will not run). */
int cw_spool_submit(cw_spool *s, cw_spool_req *req);

typedef struct cw_spool_record {
    uint8_t kind;
    uint8_t key_len;
    const char *key;
    uint64_t seq;
    int64_t time_ns;
    const uint8_t *body;
    uint32_t body_len;
    uint64_t offset; /* global offset of this record: a stable, unique id */
} cw_spool_record;

/* Returns 1 with the next durable record (pointers valid until the next
 * call), 0 (CW_SPOOL_EOF) once the spool is stopped and everything is read,
 * or -1 (after timeout_ms; 0 = do not wait) when nothing new is durable yet. */
int cw_spool_read(cw_spool_reader *r, cw_spool_record *rec, int timeout_ms);

/* Marks everything returned so far as processed: saves the cursor and lets
 * the spool delete segments every reader is past. Cheap enough to call every
 * few thousand records; what is read but not committed is read again after a
 * restart. */
int cw_spool_reader_commit(cw_spool_reader *r);

/* Bytes durable but not yet committed by this reader. */
uint64_t cw_spool_reader_lag(cw_spool_reader *r);

/* Refuses new submits, writes and syncs what is queued, runs its done
 * callbacks, and stops the writer thread. Readers then reach CW_SPOOL_EOF. */
void cw_spool_stop(cw_spool *s);

/* Frees everything; readers must be done. */
void cw_spool_close(cw_spool *s);

#endif
