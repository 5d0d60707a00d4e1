#include "storage/jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"

#define FLUSH_AT (256 * 1024)
#define TAIL_CHUNK 4096

struct cw_jsonl {
    int fd;
    cw_buf buf;
    size_t pending_lines; /* lines in buf */
    uint64_t lines;       /* written since open */
    int failing;          /* the last write failed: log again only after a success */
    int regular;          /* a regular file: pipes and ttys (/dev/stdout) cannot fsync */
    char path[];
};

/* Removes a torn last line (a crash during a write) so that new lines do not
 * get glued onto it. Returns 0 or -1 with errno. */
static int trim_torn_tail(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) < 0) return -1;
    off_t end = st.st_size;
    if (end == 0) return 0;
    char chunk[TAIL_CHUNK];
    off_t pos = end;
    while (pos > 0) {
        size_t n = pos > TAIL_CHUNK ? TAIL_CHUNK : (size_t)pos;
        ssize_t r = pread(fd, chunk, n, pos - (off_t)n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if ((size_t)r != n) {
            errno = EIO;
            return -1;
        }
        for (size_t i = n; i > 0; i--) {
            if (chunk[i - 1] == '\n') {
                off_t keep = pos - (off_t)n + (off_t)i;
                if (keep == end) return 0;
                cw_warn("jsonl", "%s: removing a torn last line (%lld bytes)", path,
                        (long long)(end - keep));
                return ftruncate(fd, keep);
            }
        }
        pos -= (off_t)n;
    }
    cw_warn("jsonl", "%s: removing a torn last line (%lld bytes)", path, (long long)end);
    return ftruncate(fd, 0);
}

int cw_jsonl_open(cw_jsonl **out, const char *path, char *err, size_t errlen)
{
    size_t plen = strlen(path);
    cw_jsonl *j = calloc(1, sizeof *j + plen + 1);
    if (!j) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    memcpy(j->path, path, plen + 1);
    /* O_RDWR rather than O_WRONLY: the torn-tail check reads the end. */
    j->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (j->fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(j);
        return -1;
    }
    if (trim_torn_tail(j->fd, path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(j->fd);
        free(j);
        return -1;
    }
    struct stat st;
    j->regular = fstat(j->fd, &st) == 0 && S_ISREG(st.st_mode);
    cw_buf_init(&j->buf, 0);
    *out = j;
    return 0;
}

static void count_lines(const uint8_t *p, size_t n, uint64_t *lines)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n') (*lines)++;
}

static void report(cw_jsonl *j, const char *what, int e)
{
    cw_metric_add(cw_m.output_write_errors_total, 1);
    if (!j->failing)
        cw_error("jsonl", "%s: %s failed: %s (dropping lines until it works again)", j->path,
                 what, strerror(e));
    j->failing = 1;
}

int cw_jsonl_flush(cw_jsonl *j)
{
    size_t off = 0, len = j->buf.len;
    while (off < len) {
        ssize_t n = write(j->fd, j->buf.data + off, len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        int e = n < 0 ? errno : EIO;
        /* Part of the buffer reached the file. Keep its whole lines and cut
         * the partial one: with O_APPEND our offset is the end of what we
         * just wrote. */
        size_t keep = off;
        while (keep > 0 && j->buf.data[keep - 1] != '\n') keep--;
        if (off > keep) {
            off_t end = lseek(j->fd, 0, SEEK_CUR);
            if (end < 0 || ftruncate(j->fd, end - (off_t)(off - keep)) < 0)
                cw_error("jsonl", "%s: cannot remove a partial line: %s", j->path,
                         strerror(errno));
        }
        uint64_t kept = 0, dropped = 0;
        count_lines(j->buf.data, keep, &kept);
        count_lines(j->buf.data + keep, len - keep, &dropped);
        j->lines += kept;
        cw_metric_add(cw_m.output_lines_dropped_total, dropped);
        report(j, "write", e);
        cw_buf_reset(&j->buf);
        j->pending_lines = 0;
        return -1;
    }
    j->lines += j->pending_lines;
    j->pending_lines = 0;
    cw_buf_reset(&j->buf);
    if (len) j->failing = 0;
    return 0;
}

int cw_jsonl_write(cw_jsonl *j, const void *line, size_t len)
{
    if (memchr(line, '\n', len)) return -1;
    if (cw_buf_reserve(&j->buf, len + 1) < 0) {
        /* Out of memory: make room by flushing, then try once more. */
        if (cw_jsonl_flush(j) < 0 || cw_buf_reserve(&j->buf, len + 1) < 0) {
            cw_metric_add(cw_m.output_lines_dropped_total, 1);
            report(j, "buffer", ENOMEM);
            return -1;
        }
    }
    cw_buf_append(&j->buf, line, len);
    cw_buf_append(&j->buf, "\n", 1);
    j->pending_lines++;
    if (j->buf.len >= FLUSH_AT) return cw_jsonl_flush(j);
    return 0;
}

int cw_jsonl_sync(cw_jsonl *j)
{
    int r = cw_jsonl_flush(j);
    while (j->regular && fdatasync(j->fd) < 0) {
        if (errno == EINTR) continue;
        report(j, "fdatasync", errno);
        return -1;
    }
    return r;
}

int cw_jsonl_close(cw_jsonl *j)
{
    if (!j) return 0;
    int r = cw_jsonl_flush(j);
    while (j->regular && fsync(j->fd) < 0) {
        if (errno == EINTR) continue;
        report(j, "fsync", errno);
        r = -1;
        break;
    }
    if (close(j->fd) < 0 && errno != EINTR) r = -1;
    cw_buf_free(&j->buf);
    free(j);
    return r;
}

uint64_t cw_jsonl_lines(const cw_jsonl *j)
{
    return j->lines;
}

const char *cw_jsonl_path(const cw_jsonl *j)
{
    return j->path;
}
