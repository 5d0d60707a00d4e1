/* spool: open and recovery, the submit queue with its backpressure, the
 * group-commit writer thread, segment roll and deletion, stop and close.
 * Readers and cursor files are in spool_reader.c; the record format and the
 * recovery scan of one file in spool_seg.c; see spool_impl.h for locking.
 *
 * Decisions beyond spool.h:
 * - A failed write or fdatasync fails every request of the group that was
 *   not yet durable (CW_SPOOL_IO), truncates the segment back to its last
 *   durable length, and makes the next write start a new segment: after a
 *   failed fsync the kernel may have dropped the dirty pages, so the writer
 *   no longer trusts that file's page cache. If even the truncate fails,
 *   nothing is written until a retry of it succeeds.
 * - Segments roll once the active one has passed segment_bytes, so a segment
 *   exceeds it by at most one record. A group crossing the boundary is
 *   written as one run (one writev + fdatasync) per segment.
 * - With readers, a closed segment is deleted once every reader's saved
 *   cursor is at or past its end. With no readers at all, the oldest closed
 *   segments are deleted while the spool holds more than max_bytes (the
 *   active segment is never deleted), and only queue_max_bytes pushes back.
 */
#include "storage/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "storage/spool_impl.h"

static uint64_t rec_size(const cw_spool_req *r)
{
    return (uint64_t)CW_SPOOL_HDR + r->key_len + r->body_len;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int segs_reserve(cw_spool *s, size_t n)
{
    if (n <= s->segs_alloc) return 0;
    size_t na = s->segs_alloc ? s->segs_alloc * 2 : 16;
    while (na < n) na *= 2;
    cw_spool_segment *p = realloc(s->segs, na * sizeof *p);
    if (!p) return -ENOMEM;
    s->segs = p;
    s->segs_alloc = na;
    return 0;
}

/* ---- open and recovery ---------------------------------------------- */

static int mkdir_ok(const char *path)
{
    return mkdir(path, 0750) == 0 || errno == EEXIST ? 0 : -errno;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment files' bases in ascending order. */
static int list_segments(cw_spool *s, uint64_t **out, size_t *n)
{
    DIR *d = opendir(s->dir);
    if (!d) return -errno;
    uint64_t *v = NULL;
    size_t len = 0, alloc = 0;
    int ret = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t base;
        if (cw_spool_seg_parse_name(e->d_name, &base) < 0) continue;
        if (len == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            uint64_t *p = realloc(v, alloc * sizeof *v);
            if (!p) {
                ret = -ENOMEM;
                break;
            }
            v = p;
        }
        v[len++] = base;
    }
    closedir(d);
    if (ret < 0) {
        free(v);
        return ret;
    }
    if (len) qsort(v, len, sizeof *v, cmp_u64);
    *out = v;
    *n = len;
    return 0;
}

static int create_segment(cw_spool *s, uint64_t base)
{
    char name[CW_SPOOL_SEG_NAME_LEN + 1];
    cw_spool_seg_name(name, base);
    int fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    /* The new name must be durable before anything in the file is acked. */
    if (fsync(s->dirfd) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* Verifies segment i (of the sorted bases), truncates a torn tail of the
 * last one, merges its marks into the HWM map and records it in s->segs. */
static int recover_segment(cw_spool *s, const uint64_t *bases, size_t i, size_t n, char *err,
                           size_t errlen)
{
    int last = i == n - 1;
    char name[CW_SPOOL_SEG_NAME_LEN + 1];
    cw_spool_seg_name(name, bases[i]);
    int fd = openat(s->dirfd, name, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "spool: %s/%s: %s", s->dir, name, strerror(errno));
        if (fd >= 0) close(fd);
        return -EIO;
    }
    uint64_t size = (uint64_t)st.st_size, limit = size;
    /* A segment may not reach into the next one's offsets. */
    if (!last && bases[i + 1] - bases[i] < limit) limit = bases[i + 1] - bases[i];
    cw_spool_seg_scan_result res;
    if (cw_spool_seg_scan(fd, limit, &s->hwm, &res) < 0) {
        snprintf(err, errlen, "spool: out of memory scanning %s", name);
        close(fd);
        return -ENOMEM;
    }
    if (res.stop == CW_SPOOL_SEG_IO) {
        /* Never truncate what could not be read: it may be fine. */
        snprintf(err, errlen, "spool: %s/%s: read error", s->dir, name);
        close(fd);
        return -EIO;
    }
    if (last) {
        if (res.valid_len < size) {
            cw_warn(CW_SPOOL_LOG,
                    "segment %s: truncating %llu bytes of torn or corrupt tail at byte %llu (%s)",
                    name, (unsigned long long)(size - res.valid_len),
                    (unsigned long long)res.valid_len,
                    res.stop ? cw_spool_seg_strerror(res.stop) : "overlap");
            if (ftruncate(fd, (off_t)res.valid_len) != 0 || fdatasync(fd) != 0) {
                snprintf(err, errlen, "spool: truncate %s: %s", name, strerror(errno));
                close(fd);
                return -EIO;
            }
            size = res.valid_len;
        }
        s->wfd = fd;
        s->wbase = bases[i];
        s->wlen = res.valid_len;
        s->wpublished = 1;
    } else {
        if (res.valid_len < size)
            cw_error(CW_SPOOL_LOG,
                     "segment %s: %s at byte %llu; skipping the remaining %llu bytes of it",
                     name, res.stop ? cw_spool_seg_strerror(res.stop) : "overlaps the next segment",
                     (unsigned long long)res.valid_len,
                     (unsigned long long)(size - res.valid_len));
        close(fd);
    }
    s->segs[s->nsegs++] = (cw_spool_segment){bases[i], bases[i] + res.valid_len, size};
    s->disk_bytes += size;
    return 0;
}

static int recover(cw_spool *s, char *err, size_t errlen)
{
    uint64_t *bases = NULL;
    size_t n = 0;
    int r = list_segments(s, &bases, &n);
    if (r < 0) {
        snprintf(err, errlen, "spool: list %s: %s", s->dir, strerror(-r));
        return r;
    }
    if (segs_reserve(s, n + 1) < 0) {
        free(bases);
        snprintf(err, errlen, "spool: out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n && r == 0; i++) r = recover_segment(s, bases, i, n, err, errlen);
    free(bases);
    if (r < 0) return r;
    if (n == 0) {
        int fd = create_segment(s, 0);
        if (fd < 0) {
            snprintf(err, errlen, "spool: create first segment in %s: %s", s->dir, strerror(-fd));
            return fd;
        }
        s->wfd = fd;
        s->wbase = s->wlen = 0;
        s->wpublished = 1;
        s->segs[s->nsegs++] = (cw_spool_segment){0, 0, 0};
    }
    s->durable_end = s->segs[s->nsegs - 1].end;
    return 0;
}

static void destroy(cw_spool *s)
{
    for (size_t i = 0; i < s->nreaders; i++) cw_spool_reader_free(s->readers[i]);
    if (s->wfd >= 0) close(s->wfd);
    if (s->dirfd >= 0) close(s->dirfd);
    if (s->cursor_dirfd >= 0) close(s->cursor_dirfd);
    cw_spool_hwm_free(&s->hwm);
    cw_buf_free(&s->hwm_body);
    free(s->segs);
    free(s->dir);
    free(s->cursor_dir);
    pthread_cond_destroy(&s->read_cv);
    pthread_cond_destroy(&s->writer_cv);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Reads data_dir/spool/id, or makes it (written to a temporary file,
 * fsync'ed and renamed, so a crash leaves either no id or a whole one). */
static int load_id(cw_spool *s, char *err, size_t errlen)
{
    int fd = openat(s->dirfd, "id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, s->id, CW_SPOOL_ID_LEN);
        close(fd);
        int ok = n == CW_SPOOL_ID_LEN;
        for (int i = 0; ok && i < CW_SPOOL_ID_LEN; i++)
            ok = (s->id[i] >= '0' && s->id[i] <= '9') || (s->id[i] >= 'a' && s->id[i] <= 'f');
        s->id[CW_SPOOL_ID_LEN] = '\0';
        if (ok) return 0;
        cw_warn(CW_SPOOL_LOG, "%s/id is unreadable; giving the spool a new identity", s->dir);
    } else if (errno != ENOENT) {
        snprintf(err, errlen, "spool: %s/id: %s", s->dir, strerror(errno));
        return -errno;
    }
    uint8_t rnd[CW_SPOOL_ID_LEN / 2];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(err, errlen, "spool: getrandom: %s", strerror(errno));
        return -EIO;
    }
    for (size_t i = 0; i < sizeof rnd; i++) {
        s->id[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
        s->id[2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
    }
    s->id[CW_SPOOL_ID_LEN] = '\0';
    fd = openat(s->dirfd, "id.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int r = 0;
    if (fd < 0 || write(fd, s->id, CW_SPOOL_ID_LEN) != CW_SPOOL_ID_LEN || fsync(fd) != 0)
        r = errno ? -errno : -EIO;
    if (fd >= 0) close(fd);
    if (r == 0 && (renameat(s->dirfd, "id.tmp", s->dirfd, "id") != 0 || fsync(s->dirfd) != 0))
        r = -errno;
    if (r < 0) snprintf(err, errlen, "spool: write %s/id: %s", s->dir, strerror(-r));
    return r;
}

const char *cw_spool_id(const cw_spool *s)
{
    return s->id;
}

int cw_spool_open(cw_spool **out, const cw_spool_opts *opts, char *err, size_t errlen)
{
    *out = NULL;
    if (!opts->data_dir || !*opts->data_dir || !opts->segment_bytes || !opts->max_bytes ||
        !opts->queue_max_bytes) {
        snprintf(err, errlen, "spool: data_dir and non-zero sizes are required");
        return -EINVAL;
    }
    cw_spool *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "spool: out of memory");
        return -ENOMEM;
    }
    s->opts = *opts;
    s->opts.data_dir = NULL; /* not kept: the caller's string */
    s->dirfd = s->cursor_dirfd = s->wfd = -1;
    cw_spool_hwm_init(&s->hwm);
    cw_buf_init(&s->hwm_body, 0);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->writer_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* reader timeouts */
    pthread_cond_init(&s->read_cv, &ca);
    pthread_condattr_destroy(&ca);

    int r = -ENOMEM;
    s->dir = path_join(opts->data_dir, "spool");
    s->cursor_dir = s->dir ? path_join(s->dir, "cursors") : NULL;
    if (!s->cursor_dir) {
        snprintf(err, errlen, "spool: out of memory");
        goto fail;
    }
    const char *dirs[] = {opts->data_dir, s->dir, s->cursor_dir};
    for (int i = 0; i < 3; i++) {
        if ((r = mkdir_ok(dirs[i])) < 0) {
            snprintf(err, errlen, "spool: mkdir %s: %s", dirs[i], strerror(-r));
            goto fail;
        }
    }
    s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    s->cursor_dirfd = open(s->cursor_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0 || s->cursor_dirfd < 0) {
        r = -errno;
        snprintf(err, errlen, "spool: open %s: %s", s->dir, strerror(errno));
        goto fail;
    }
    /* Two servers appending to one spool would interleave records: refuse
     * the second. The lock goes away with the process. */
    if (flock(s->dirfd, LOCK_EX | LOCK_NB) != 0) {
        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(err, errlen, "spool: %s is in use by another process", s->dir);
        goto fail;
    }
    if ((r = load_id(s, err, errlen)) < 0) goto fail;
    if ((r = recover(s, err, errlen)) < 0) goto fail;
    cw_metric_add(cw_m.spool_bytes, (int64_t)s->disk_bytes);
    cw_info(CW_SPOOL_LOG, "opened %s: %zu segments, %llu bytes, offsets %llu..%llu, %zu agents",
            s->dir, s->nsegs, (unsigned long long)s->disk_bytes,
            (unsigned long long)s->segs[0].base, (unsigned long long)s->durable_end,
            s->hwm.n);
    *out = s;
    return 0;
fail:
    destroy(s);
    return r;
}

void cw_spool_foreach_hwm(cw_spool *s,
                          void (*cb)(const char *agent_id, size_t len, uint64_t seq, void *ud),
                          void *ud)
{
    pthread_mutex_lock(&s->lock);
    cw_spool_hwm_foreach(&s->hwm, cb, ud);
    pthread_mutex_unlock(&s->lock);
}

int cw_spool_add_space_listener(cw_spool *s, void (*cb)(void *ud), void *ud)
{
    pthread_mutex_lock(&s->lock);
    int r = 0;
    if (s->started)
        r = -EBUSY;
    else if (s->nlisteners == CW_SPOOL_MAX_LISTENERS)
        r = -ENOSPC;
    else
        s->listeners[s->nlisteners++] = (cw_spool_cb){cb, ud};
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ---- backpressure ------------------------------------------------------ */

/* Bytes durable but not committed by the slowest reader (lock held). */
static uint64_t max_lag(const cw_spool *s)
{
    uint64_t lag = 0;
    for (size_t i = 0; i < s->nreaders; i++) {
        uint64_t c = s->readers[i]->committed;
        if (s->durable_end > c && s->durable_end - c > lag) lag = s->durable_end - c;
    }
    return lag;
}

int cw_spool_submit(cw_spool *s, cw_spool_req *req)
{
    if (req->kind == CW_REC_HWM || req->kind > CW_REC__LAST || req->body_len > CW_SPOOL_BODY_MAX ||
        (req->key_len && !req->key) || (req->body_len && !req->body))
        return CW_SPOOL_INVAL;
    uint64_t size = rec_size(req);
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return CW_SPOOL_STOPPED;
    }
    /* One request always fits in an empty queue, so a record larger than
     * the whole limit cannot be refused forever. */
    if ((s->queued_bytes && s->queued_bytes + size > s->opts.queue_max_bytes) ||
        max_lag(s) > s->opts.max_bytes) {
        s->refused = 1;
        pthread_mutex_unlock(&s->lock);
        return CW_SPOOL_FULL;
    }
    req->next = NULL;
    if (s->tail)
        s->tail->next = req;
    else
        s->head = req;
    s->tail = req;
    s->queued_bytes += size;
    pthread_cond_signal(&s->writer_cv);
    pthread_mutex_unlock(&s->lock);
    return CW_SPOOL_OK;
}

/* ---- writer: runs of records into one segment ------------------------- */

/* Writes what the iovec arrays hold at ws->off, resuming after partial
 * writes. */
static void ws_flush(cw_spool *s)
{
    cw_spool_ws *ws = &s->ws;
    struct iovec *iov = ws->iov;
    int n = ws->niov;
    while (n > 0 && !ws->err) {
        ssize_t w = pwritev(s->wfd, iov, n, (off_t)ws->off);
        if (w <= 0) {
            if (w == 0) ws->err = EIO; /* no progress: never spin */
            else if (errno != EINTR) ws->err = errno;
            continue;
        }
        ws->off += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    ws->niov = ws->nhdr = 0;
}

static void ws_add(cw_spool *s, uint8_t kind, const char *key, uint8_t key_len, uint64_t seq,
                   int64_t time_ns, const uint8_t *body, uint32_t body_len)
{
    cw_spool_ws *ws = &s->ws;
    if (ws->niov + 3 > CW_SPOOL_WS_IOV || ws->nhdr == CW_SPOOL_WS_IOV / 2) ws_flush(s);
    uint8_t *h = ws->hdr[ws->nhdr++];
    cw_spool_seg_header(h, kind, key, key_len, seq, time_ns, body, body_len);
    ws->iov[ws->niov++] = (struct iovec){h, CW_SPOOL_HDR};
    if (key_len) ws->iov[ws->niov++] = (struct iovec){(void *)key, key_len};
    if (body_len) ws->iov[ws->niov++] = (struct iovec){(void *)body, body_len};
    ws->total += (uint64_t)CW_SPOOL_HDR + key_len + body_len;
}

/* Every segment begins with the marks of all agents, so deleting older
 * segments never loses them. The map is only mutated by this thread, so it
 * is read here without the lock. */
static void ws_add_hwm(cw_spool *s)
{
    size_t slot = 0;
    int64_t t = now_ns();
    for (int first = 1;; first = 0) {
        uint64_t count;
        cw_buf_reset(&s->hwm_body);
        if (cw_spool_hwm_encode(&s->hwm, &slot, &s->hwm_body, &count) < 0) {
            s->ws.err = ENOMEM;
            return;
        }
        if (!first && count == 0) return;
        ws_add(s, CW_REC_HWM, NULL, 0, count, t, s->hwm_body.data, (uint32_t)s->hwm_body.len);
        ws_flush(s); /* hwm_body is reused for the next chunk */
        if (slot >= s->hwm.cap) return;
    }
}

/* Starts a new segment at the durable end. */
static int roll(cw_spool *s)
{
    pthread_mutex_lock(&s->lock);
    int r = segs_reserve(s, s->nsegs + 1); /* publishing must not fail later */
    pthread_mutex_unlock(&s->lock);
    if (r < 0) return r;
    uint64_t base = s->wbase + s->wlen;
    int fd = create_segment(s, base);
    if (fd < 0) return fd;
    close(s->wfd);
    s->wfd = fd;
    s->wbase = base;
    s->wlen = 0;
    s->wpublished = 0;
    s->need_roll = 0;
    return 0;
}

static int prepare_segment(cw_spool *s)
{
    if (s->need_truncate) {
        if (ftruncate(s->wfd, (off_t)s->wlen) != 0) return -errno;
        s->need_truncate = 0;
        s->need_roll = 1;
    }
    if (s->wlen > 0 && (s->need_roll || s->wlen >= s->opts.segment_bytes)) return roll(s);
    s->need_roll = 0;
    return 0;
}

/* Makes a durable run visible: segment table, durable end, marks. */
static void publish(cw_spool *s, cw_spool_req *from, cw_spool_req *to, uint64_t bytes)
{
    pthread_mutex_lock(&s->lock);
    s->wlen += bytes;
    if (!s->wpublished) {
        s->segs[s->nsegs++] = (cw_spool_segment){s->wbase, s->wbase, 0};
        s->wpublished = 1;
    }
    cw_spool_segment *g = &s->segs[s->nsegs - 1];
    g->end = s->wbase + s->wlen;
    g->file_bytes = s->wlen;
    s->durable_end = g->end;
    s->disk_bytes += bytes;
    for (cw_spool_req *r = from; r != to; r = r->next) {
        if ((r->kind == CW_REC_BATCH || r->kind >= CW_REC_OUT_EVENTS) &&
            cw_spool_hwm_update(&s->hwm, r->key, r->key_len, r->seq) < 0)
            cw_error(CW_SPOOL_LOG, "out of memory for the high-water mark of an agent");
    }
    pthread_cond_broadcast(&s->read_cv);
    pthread_mutex_unlock(&s->lock);
    cw_metric_add(cw_m.spool_bytes, (int64_t)bytes);
}

static void notify_readers(cw_spool *s)
{
    cw_spool_cb n[CW_SPOOL_MAX_READERS];
    size_t k = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nreaders; i++)
        if (s->readers[i]->notify)
            n[k++] = (cw_spool_cb){s->readers[i]->notify, s->readers[i]->notify_ud};
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < k; i++) n[i].cb(n[i].ud);
}

/* Writes one run into the current segment: records from `from` until the
 * segment passes segment_bytes. Returns the first request not in the run. On
 * failure sets *err and writes nothing durable. */
static cw_spool_req *write_run(cw_spool *s, cw_spool_req *from, int *err)
{
    cw_spool_ws *ws = &s->ws;
    int r = prepare_segment(s);
    if (r < 0) {
        cw_error(CW_SPOOL_LOG, "cannot prepare segment at offset %llu: %s",
                 (unsigned long long)(s->wbase + s->wlen), strerror(-r));
        *err = -r;
        return from;
    }
    ws->niov = ws->nhdr = 0;
    ws->off = s->wlen;
    ws->total = 0;
    ws->err = 0;
    if (s->wlen == 0) ws_add_hwm(s);
    cw_spool_req *q = from;
    do {
        ws_add(s, q->kind, q->key, q->key_len, q->seq, q->time_ns, q->body, q->body_len);
        q = q->next;
    } while (q && s->wlen + ws->total < s->opts.segment_bytes);
    ws_flush(s);
    if (!ws->err && fdatasync(s->wfd) != 0) ws->err = errno;
    if (ws->err) {
        cw_error(CW_SPOOL_LOG, "write to segment at offset %llu failed: %s",
                 (unsigned long long)s->wbase, strerror(ws->err));
        /* Take back whatever part reached the file, so it can never be
         * mistaken for acknowledged data. */
        if (ftruncate(s->wfd, (off_t)s->wlen) != 0) {
            cw_error(CW_SPOOL_LOG, "truncate after failed write: %s", strerror(errno));
            s->need_truncate = 1;
        } else {
            s->need_roll = 1;
        }
        *err = ws->err;
        return from;
    }
    cw_metric_add(cw_m.spool_fsyncs_total, 1);
    publish(s, from, q, ws->total);
    return q;
}

/* Runs the done callbacks of [from, to) with status st, in order. */
static void finish(cw_spool_req *from, cw_spool_req *to, int st)
{
    while (from != to) {
        cw_spool_req *next = from->next; /* done may free the request */
        from->status = st;
        from->done(from);
        from = next;
    }
}

static void write_group(cw_spool *s, cw_spool_req *head)
{
    uint64_t bytes = 0;
    for (cw_spool_req *r = head; r; r = r->next) bytes += rec_size(r);
    cw_spool_req *q = head;
    while (q) {
        int err = 0;
        cw_spool_req *next = write_run(s, q, &err);
        if (err) {
            finish(q, NULL, CW_SPOOL_IO);
            break;
        }
        finish(q, next, CW_SPOOL_OK);
        notify_readers(s);
        q = next;
    }
    pthread_mutex_lock(&s->lock);
    s->queued_bytes -= bytes;
    pthread_mutex_unlock(&s->lock);
}

/* ---- writer: deletion, space listeners, the thread -------------------- */

/* Unlinks the closed segments nobody needs any more and calls the space
 * listeners if a refused submit now has room. */
static void maintain(cw_spool *s)
{
    uint64_t doomed[64];
    size_t nd = 0;
    uint64_t freed = 0;
    int fire = 0;
    pthread_mutex_lock(&s->lock);
    uint64_t min_saved = UINT64_MAX;
    for (size_t i = 0; i < s->nreaders; i++)
        if (s->readers[i]->saved < min_saved) min_saved = s->readers[i]->saved;
    while (s->nsegs > 1 && nd < 64 &&
           (s->nreaders ? s->segs[0].end <= min_saved : s->disk_bytes > s->opts.max_bytes)) {
        doomed[nd++] = s->segs[0].base;
        freed += s->segs[0].file_bytes;
        s->disk_bytes -= s->segs[0].file_bytes;
        memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof *s->segs);
        s->nsegs--;
    }
    if (s->refused && s->queued_bytes <= s->opts.queue_max_bytes / 4 * 3 &&
        max_lag(s) <= s->opts.max_bytes / 4 * 3) {
        s->refused = 0;
        fire = 1;
    }
    pthread_mutex_unlock(&s->lock);
    /* Readers never open a segment that is out of the table, and one that
     * still has it open can finish with it: unlinking is safe here. */
    for (size_t i = 0; i < nd; i++) {
        char name[CW_SPOOL_SEG_NAME_LEN + 1];
        cw_spool_seg_name(name, doomed[i]);
        if (unlinkat(s->dirfd, name, 0) != 0)
            cw_error(CW_SPOOL_LOG, "unlink %s: %s", name, strerror(errno));
        else
            cw_debug(CW_SPOOL_LOG, "deleted segment %s", name);
    }
    cw_metric_add(cw_m.spool_bytes, -(int64_t)freed);
    if (fire)
        for (size_t i = 0; i < s->nlisteners; i++) s->listeners[i].cb(s->listeners[i].ud);
}

static void writer_run(cw_spool *s)
{
    maintain(s); /* cursors loaded at open may already be past old segments */
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->cursors_dirty && !s->stopping)
            pthread_cond_wait(&s->writer_cv, &s->lock);
        if (!s->head && !s->cursors_dirty) break; /* stopping and drained */
        cw_spool_req *group = s->head;
        s->head = s->tail = NULL;
        int cursors = s->cursors_dirty;
        s->cursors_dirty = 0;
        pthread_mutex_unlock(&s->lock);
        if (cursors) cw_spool_save_dirty_cursors(s);
        if (group) write_group(s, group);
        maintain(s);
        pthread_mutex_lock(&s->lock);
    }
    s->writer_active = 0;
    pthread_mutex_unlock(&s->lock);
}

static void *writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "cw-spool"); /* for top -H and the benchmarks */
    writer_run(arg);
    return NULL;
}

int cw_spool_start(cw_spool *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->started || s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return -EINVAL;
    }
    s->started = s->writer_active = 1;
    pthread_mutex_unlock(&s->lock);
    int r = pthread_create(&s->thread, NULL, writer_main, s);
    if (r != 0) {
        pthread_mutex_lock(&s->lock);
        s->started = s->writer_active = 0;
        pthread_mutex_unlock(&s->lock);
        return -r;
    }
    return 0;
}

void cw_spool_stop(cw_spool *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->stopping = 1;
    int started = s->started;
    if (!started) s->writer_active = 1; /* drain here, on the caller's thread */
    pthread_cond_signal(&s->writer_cv);
    pthread_mutex_unlock(&s->lock);
    if (started)
        pthread_join(s->thread, NULL);
    else
        writer_run(s);
    pthread_mutex_lock(&s->lock);
    s->stopped = 1;
    pthread_cond_broadcast(&s->read_cv);
    pthread_mutex_unlock(&s->lock);
}

void cw_spool_close(cw_spool *s)
{
    if (!s) return;
    cw_spool_stop(s);
    cw_spool_save_dirty_cursors(s);
    cw_metric_add(cw_m.spool_bytes, -(int64_t)s->disk_bytes);
    destroy(s);
}
