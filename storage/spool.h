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
 *   notify callback). A reader is used by one thread at a time. Reading and
 *   committing never block on disk writes: while the writer runs, it is the
 *   one that saves cursors.
 * - Space listeners and reader notify callbacks run on the writer thread
 *   (on the caller's thread for what cw_spool_stop() drains when the spool
 *   was never started); like done, they must be quick.
 *
 * Backpressure
 * - cw_spool_submit() returns CW_SPOOL_FULL, without queueing, when either
 *   the bytes queued in memory pass queue_max_bytes or the bytes on disk that
 *   some reader has not committed pass max_bytes. The caller keeps its data
 *   (and stops reading from its peers); every space listener is called once
 *   room is back below the low-water mark (3/4 of each limit). One request
 *   always fits into an empty queue, whatever its size.
 * - With no reader registered nothing is waiting for the data, so only the
 *   queue limit applies, and the oldest closed segments are deleted while
 *   the spool holds more than max_bytes (the segment being written is never
 *   deleted, so it can hold up to about segment_bytes more).
 *
 * On disk (data_dir/spool/; details in spool_seg.h and spool_hwm.h)
 * - Segments named %020llu.seg (the segment's first global offset), each a
 *   sequence of records: u32 little-endian body length, u32 CRC-32 of the rest,
 *   u8 kind, u8 agent-id length, u16 reserved, u64 seq, i64 time_ns,
 *   agent id bytes, body bytes. A torn or corrupt tail (crash mid-write) is
 *   truncated at open; everything before it was never acknowledged past it.
 *   A bad record in an older segment is logged and the rest of that segment
 *   skipped (readers jump over the gap); open never fails because of bad
 *   data, only because of I/O errors or lack of memory.
 * - A new segment starts once the current one has passed segment_bytes, and
 *   each segment starts with high-water-mark records listing every agent's
 *   highest stored batch seq, so deleting old segments never loses the
 *   de-duplication state.
 * - A failed write or fdatasync fails that group (CW_SPOOL_IO), truncates the
 *   segment back to its durable length and continues in a new segment.
 * - Readers' cursors in data_dir/spool/cursors/NAME (decimal global offset,
 *   written atomically). A closed segment is deleted once every registered
 *   reader's saved cursor is past it. A cursor before the oldest record or
 *   past the end (data lost or deleted by hand) is moved there with a warning.
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
    /* The sink spool (data_dir/out, written by the pipeline, read by the
     * Kafka and PostgreSQL sinks): key "pipeline", seq = the input spool
     * position through which every output is stored (storage/outrec.h). */
    CW_REC_OUT_EVENTS = 4,   /* body: enriched events (outrec.h) */
    CW_REC_OUT_ALERT = 5,    /* body: one alert as its JSON object */
    CW_REC_OUT_INCIDENT = 6, /* body: one incident state as its JSON object */
    CW_REC__LAST = CW_REC_OUT_INCIDENT
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

/* Opens or creates the spool (creating data_dir/spool and its cursors dir),
 * verifies every segment, recovers a torn tail, and rebuilds the per-agent
 * high-water marks. Does not start the writer. Returns 0, or a negative errno
 * with a message in err (-EBUSY: another process has this spool open). */
int cw_spool_open(cw_spool **out, const cw_spool_opts *opts, char *err, size_t errlen);

/* This spool's identity: 32 lowercase hex digits, random, made when the
 * spool directory is first opened and kept in data_dir/spool/id. A new or
 * wiped spool starts its offsets at 0 again; a consumer of positions (the
 * Kafka sink's cw-pos) must tell its positions from an earlier spool's.
 * Valid until cw_spool_close(). */
#define CW_SPOOL_ID_LEN 32
const char *cw_spool_id(const cw_spool *s);

/* Calls cb for every agent with at least one stored batch (before start).
 * cb runs under the spool's lock and must not call into the spool. */
void cw_spool_foreach_hwm(cw_spool *s,
                          void (*cb)(const char *agent_id, size_t len, uint64_t seq, void *ud),
                          void *ud);

/* Adds a callback run (on the writer thread) when room returns after a
 * CW_SPOOL_FULL. Register before cw_spool_start(): -EBUSY after it, -ENOSPC
 * past CW_SPOOL_MAX_LISTENERS (16). */
int cw_spool_add_space_listener(cw_spool *s, void (*cb)(void *ud), void *ud);

/* Registers a reader named `name` (1..CW_SPOOL_READER_NAME_MAX letters,
 * digits, '-', '_'), resuming at its saved cursor, or at the oldest record if
 * it has none (or it is unreadable). Register every reader before
 * cw_spool_start(): segments are only deleted once all have read them.
 * Returns 0, -EINVAL (name), -EEXIST, -ENOSPC (too many) or -EBUSY (started).
 * The reader is freed by cw_spool_close(). */
int cw_spool_reader_open(cw_spool *s, const char *name, cw_spool_reader **out);

/* cb (may be NULL) is called on the writer thread after each group commit,
 * after the done callbacks, when new records may be readable. */
void cw_spool_reader_set_notify(cw_spool_reader *r, void (*cb)(void *ud), void *ud);

/* Starts the writer thread. 0, -EINVAL if started or stopped before, or a
 * negative errno from pthread_create. */
int cw_spool_start(cw_spool *s);

/* Thread-safe. CW_SPOOL_OK (queued; done will run), CW_SPOOL_FULL,
 * CW_SPOOL_STOPPED or CW_SPOOL_INVAL (kind, body over CW_SPOOL_BODY_MAX, NULL
 * key or body with a length; not queued, done will not run). Requests may be
 * submitted before cw_spool_start(); they are written once it runs. */
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
    uint64_t end;    /* global offset just past it: what to commit once it is processed */
} cw_spool_record;

/* Returns 1 with the next durable record (pointers valid until the next
 * call), 0 (CW_SPOOL_EOF) once the spool is stopped and everything is read,
 * or -1 (after timeout_ms; 0 = do not wait, < 0 = wait until a record or the
 * stop) when nothing new is durable yet. -1 also comes, at once, when a
 * segment cannot be read right now (an I/O error, logged): the record is
 * retried on the next call rather than skipped. Records that fail their
 * checksum are logged and skipped. */
int cw_spool_read(cw_spool_reader *r, cw_spool_record *rec, int timeout_ms);

/* Marks everything returned so far as processed: saves the cursor and lets
 * the spool delete segments every reader is past. While the writer runs, the
 * cursor is saved by the writer thread shortly after (this call does not
 * block on disk and returns 0); before start or after stop it is saved here,
 * and a failure is returned as a negative errno. Cheap enough to call every
 * few thousand records; what is read but not committed (or committed but not
 * yet saved at a crash) is read again after a restart. */
int cw_spool_reader_commit(cw_spool_reader *r);

/* Like cw_spool_reader_commit, but only up to `end` (a record's `end` from an
 * earlier read): for a reader whose records are processed by another thread,
 * behind the reads. Unlike the other reader calls it may be called from a
 * thread other than the reading one. Positions before the last commit are
 * ignored. */
int cw_spool_reader_commit_at(cw_spool_reader *r, uint64_t end);

/* Bytes durable but not yet committed by this reader. */
uint64_t cw_spool_reader_lag(cw_spool_reader *r);

/* Refuses new submits, writes and syncs what is queued, runs its done
 * callbacks, saves committed cursors, and stops the writer thread. Readers
 * then reach CW_SPOOL_EOF. Call from one thread; later calls do nothing. */
void cw_spool_stop(cw_spool *s);

/* Stops the spool if needed, saves cursors and frees everything, readers
 * included; no reader may be in use. */
void cw_spool_close(cw_spool *s);

#endif
