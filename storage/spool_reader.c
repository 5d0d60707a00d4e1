/* spool_reader: spool readers and their persistent cursors.
 *
 * A reader reads segment files through its own fd and read window, without
 * the spool lock, up to r->limit: bytes below a segment's published end are
 * durable and never change, so only reaching that limit needs the lock (to
 * learn the new end, move to the next segment, or wait).
 *
 * Cursors are text files data_dir/spool/cursors/NAME holding a decimal
 * global offset, replaced atomically (write NAME.tmp, fsync, rename, fsync
 * the directory). While the writer thread runs, cw_spool_reader_commit()
 * only records the position and the writer saves it, so a reader on an event
 * loop never blocks on fsync; before start and after stop it saves on the
 * caller's thread. Segment deletion only trusts saved cursors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "storage/spool.h"
#include "storage/spool_impl.h"

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CW_SPOOL_READER_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* Returns 1 and the saved offset, or 0 if there is no usable cursor. */
static int load_cursor(cw_spool *s, const char *name, uint64_t *out)
{
    int fd = openat(s->cursor_dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            cw_warn(CW_SPOOL_LOG,
                    "reader %s: cursor unreadable (%s); starting at the oldest record", name,
                    strerror(errno));
        return 0;
    }
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    uint64_t v = 0;
    ssize_t i = 0;
    for (; i < n && buf[i] >= '0' && buf[i] <= '9' && i < 20; i++) {
        unsigned d = (unsigned)(buf[i] - '0');
        if (v > (UINT64_MAX - d) / 10) break;
        v = v * 10 + d;
    }
    if (i == 0 || !(n == i || (n == i + 1 && buf[i] == '\n'))) {
        cw_warn(CW_SPOOL_LOG, "reader %s: cursor file is malformed; starting at the oldest record",
                name);
        return 0;
    }
    *out = v;
    return 1;
}

static int save_cursor(cw_spool *s, const char *name, uint64_t v)
{
    char tmp[CW_SPOOL_READER_NAME_MAX + 8], line[32];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int len = snprintf(line, sizeof line, "%llu\n", (unsigned long long)v);
    int fd = openat(s->cursor_dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    int r = 0;
    if (write(fd, line, (size_t)len) != len || fsync(fd) != 0) r = errno ? -errno : -EIO;
    if (close(fd) != 0 && r == 0) r = -errno;
    if (r == 0 && renameat(s->cursor_dirfd, tmp, s->cursor_dirfd, name) != 0) r = -errno;
    if (r == 0 && fsync(s->cursor_dirfd) != 0) r = -errno;
    if (r < 0) cw_error(CW_SPOOL_LOG, "reader %s: cannot save cursor: %s", name, strerror(-r));
    return r;
}

void cw_spool_save_dirty_cursors(cw_spool *s)
{
    for (size_t i = 0; i < s->nreaders; i++) {
        cw_spool_reader *r = s->readers[i];
        pthread_mutex_lock(&s->lock);
        int dirty = r->dirty;
        uint64_t v = r->committed;
        r->dirty = 0;
        pthread_mutex_unlock(&s->lock);
        if (!dirty) continue;
        int rc = save_cursor(s, r->name, v);
        pthread_mutex_lock(&s->lock);
        if (rc == 0 && v > r->saved) r->saved = v;
        pthread_mutex_unlock(&s->lock);
    }
}

int cw_spool_reader_open(cw_spool *s, const char *name, cw_spool_reader **out)
{
    *out = NULL;
    if (!valid_name(name)) return -EINVAL;
    uint64_t cur = 0;
    int have = load_cursor(s, name, &cur);
    cw_spool_reader *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->s = s;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->fd = -1;
    cw_spool_seg_rd_init(&r->rd);

    pthread_mutex_lock(&s->lock);
    int ret = 0;
    if (s->started || s->stopping)
        ret = -EBUSY;
    else if (s->nreaders == CW_SPOOL_MAX_READERS)
        ret = -ENOSPC;
    for (size_t i = 0; i < s->nreaders && !ret; i++)
        if (strcmp(s->readers[i]->name, name) == 0) ret = -EEXIST;
    if (ret) {
        pthread_mutex_unlock(&s->lock);
        free(r);
        return ret;
    }
    uint64_t oldest = s->segs[0].base, end = s->durable_end;
    if (!have) {
        cur = oldest;
    } else if (cur < oldest) {
        cw_warn(CW_SPOOL_LOG,
                "reader %s: cursor %llu is before the oldest record (%llu); those records are gone",
                name, (unsigned long long)cur, (unsigned long long)oldest);
        cur = oldest;
    } else if (cur > end) {
        cw_warn(CW_SPOOL_LOG,
                "reader %s: cursor %llu is past the end of the spool (%llu); resuming at the end",
                name, (unsigned long long)cur, (unsigned long long)end);
        cur = end;
    }
    r->pos = r->limit = r->committed = r->saved = cur;
    s->readers[s->nreaders++] = r;
    pthread_mutex_unlock(&s->lock);
    *out = r;
    return 0;
}

void cw_spool_reader_set_notify(cw_spool_reader *r, void (*cb)(void *ud), void *ud)
{
    pthread_mutex_lock(&r->s->lock);
    r->notify = cb;
    r->notify_ud = ud;
    pthread_mutex_unlock(&r->s->lock);
}

void cw_spool_reader_free(cw_spool_reader *r)
{
    if (r->fd >= 0) close(r->fd);
    cw_spool_seg_rd_free(&r->rd);
    free(r);
}

/* Finds where reading at *pos continues (lock held): the index of the
 * segment holding *pos, moving *pos forward over gaps (corrupt regions that
 * recovery skipped) and empty segments; or the last segment, with *pos at
 * its end, when nothing durable is left. */
static size_t locate(const cw_spool *s, uint64_t *pos)
{
    size_t lo = 0, hi = s->nsegs;
    while (lo < hi) { /* first segment starting after *pos */
        size_t mid = lo + (hi - lo) / 2;
        if (s->segs[mid].base <= *pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t i = lo ? lo - 1 : 0;
    if (*pos < s->segs[i].base) *pos = s->segs[i].base;
    while (*pos >= s->segs[i].end && i + 1 < s->nsegs) *pos = s->segs[++i].base;
    return i;
}

/* Opens the segment at `base` for this reader. 0, or -1 to retry later. */
static int switch_segment(cw_spool_reader *r, uint64_t base)
{
    char name[CW_SPOOL_SEG_NAME_LEN + 1];
    cw_spool_seg_name(name, base);
    int fd = openat(r->s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cw_error(CW_SPOOL_LOG, "reader %s: open segment %s: %s", r->name, name, strerror(errno));
        return errno == ENOENT ? 1 : -1;
    }
    if (r->fd >= 0) close(r->fd);
    r->fd = fd;
    r->seg_base = base;
    cw_spool_seg_rd_set_fd(&r->rd, fd);
    return 0;
}

int cw_spool_read(cw_spool_reader *r, cw_spool_record *rec, int timeout_ms)
{
    cw_spool *s = r->s;
    struct timespec deadline = {0, 0};
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    int timed_out = 0;
    for (;;) {
        if (r->pos < r->limit) {
            cw_spool_seg_rec sr;
            uint64_t at = r->pos;
            int rc = cw_spool_seg_next(&r->rd, at - r->seg_base, r->limit - r->seg_base, &sr);
            if (rc == 1) {
                r->pos += sr.size;
                if (sr.kind == CW_REC_HWM) continue;
                *rec = (cw_spool_record){sr.kind, sr.key_len, sr.key, sr.seq, sr.time_ns,
                                         sr.body, sr.body_len, at, r->pos};
                return 1;
            }
            cw_error(CW_SPOOL_LOG, "reader %s: record at offset %llu: %s", r->name,
                     (unsigned long long)at, cw_spool_seg_strerror(rc));
            /* A read error may pass: try again later rather than lose data.
             * Bad bytes in durable data will not: skip what is known. */
            if (rc == CW_SPOOL_SEG_IO) return -1;
            cw_error(CW_SPOOL_LOG, "reader %s: skipping %llu bytes", r->name,
                     (unsigned long long)(r->limit - at));
            r->pos = r->limit;
            continue;
        }
        pthread_mutex_lock(&s->lock);
        uint64_t pos = r->pos;
        size_t i = locate(s, &pos);
        cw_spool_segment g = s->segs[i];
        if (pos < g.end) {
            pthread_mutex_unlock(&s->lock);
            /* Segments at or after our position are never deleted: every
             * cursor of ours is at or before it. */
            if (r->fd < 0 || r->seg_base != g.base) {
                int sw = switch_segment(r, g.base);
                if (sw < 0) return -1;
                if (sw > 0) { /* the file is gone: nothing to do but skip it */
                    r->pos = r->limit = g.end;
                    continue;
                }
            }
            r->pos = pos;
            r->limit = g.end;
            continue;
        }
        r->pos = pos;
        if (s->stopped) {
            pthread_mutex_unlock(&s->lock);
            return CW_SPOOL_EOF;
        }
        if (timeout_ms == 0 || timed_out) {
            pthread_mutex_unlock(&s->lock);
            return -1;
        }
        if (timeout_ms < 0)
            pthread_cond_wait(&s->read_cv, &s->lock);
        else if (pthread_cond_timedwait(&s->read_cv, &s->lock, &deadline) == ETIMEDOUT)
            timed_out = 1;
        pthread_mutex_unlock(&s->lock);
    }
}

/* Commits up to v (a record boundary at or before the read position). */
static int commit_to(cw_spool_reader *r, uint64_t v)
{
    cw_spool *s = r->s;
    pthread_mutex_lock(&s->lock);
    if (v <= r->committed && r->saved == r->committed) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    if (v > r->committed) r->committed = v;
    v = r->committed;
    if (s->writer_active) {
        r->dirty = 1;
        s->cursors_dirty = 1;
        pthread_cond_signal(&s->writer_cv);
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    pthread_mutex_unlock(&s->lock);
    int rc = save_cursor(s, r->name, v);
    pthread_mutex_lock(&s->lock);
    if (rc == 0 && v > r->saved) r->saved = v;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int cw_spool_reader_commit(cw_spool_reader *r)
{
    /* r->pos belongs to the reading thread, which is the caller here. */
    return commit_to(r, r->pos);
}

int cw_spool_reader_commit_at(cw_spool_reader *r, uint64_t end)
{
    return commit_to(r, end);
}

uint64_t cw_spool_reader_lag(cw_spool_reader *r)
{
    pthread_mutex_lock(&r->s->lock);
    uint64_t lag = r->s->durable_end - r->committed;
    pthread_mutex_unlock(&r->s->lock);
    return lag;
}
