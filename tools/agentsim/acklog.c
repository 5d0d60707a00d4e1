#include "acklog.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"

#define CHUNK (64 * 1024)
#define PENDING_CAP (64u << 20)

struct sim_acklog {
    uv_loop_t *loop;
    uv_file fd;
    char *path;
    cw_buf pending;  /* lines not yet handed to a write */
    cw_buf inflight; /* the bytes of the write in progress */
    uv_fs_t req;
    int writing;
    int error;
};

static void start_write(sim_acklog *l);

/* Loop thread: an asynchronous chunk write finished. */
static void on_written(uv_fs_t *req)
{
    sim_acklog *l = req->data;
    if (req->result < 0 || (size_t)req->result != l->inflight.len) {
        /* A short write to a regular file means a full disk; either way the
         * log is incomplete, which close() reports. */
        if (!l->error)
            cw_error("agentsim", "ack log %s: write failed: %s", l->path,
                     req->result < 0 ? uv_strerror((int)req->result) : "short write");
        l->error = 1;
    }
    uv_fs_req_cleanup(req);
    l->writing = 0;
    cw_buf_reset(&l->inflight);
    if (l->pending.len >= CHUNK) start_write(l);
}

static void start_write(sim_acklog *l)
{
    cw_buf t = l->inflight; /* swap: the empty in-flight buffer takes new lines */
    l->inflight = l->pending;
    l->pending = t;
    uv_buf_t buf = uv_buf_init((char *)l->inflight.data, (unsigned)l->inflight.len);
    l->req.data = l;
    l->writing = 1;
    if (uv_fs_write(l->loop, &l->req, l->fd, &buf, 1, -1, on_written) < 0) {
        l->writing = 0;
        l->error = 1;
        cw_buf_reset(&l->inflight);
    }
}

sim_acklog *sim_acklog_open(uv_loop_t *loop, const char *path, char *err, size_t errlen)
{
    sim_acklog *l = calloc(1, sizeof *l);
    if (!l || !(l->path = strdup(path))) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uv_fs_t req;
    /* Synchronous (no callback): called while parsing arguments. */
    int fd = uv_fs_open(loop, &req, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0) {
        snprintf(err, errlen, "ack log %s: %s", path, uv_strerror(fd));
        free(l->path);
        free(l);
        return NULL;
    }
    l->loop = loop;
    l->fd = fd;
    cw_buf_init(&l->pending, PENDING_CAP);
    cw_buf_init(&l->inflight, PENDING_CAP);
    return l;
}

void sim_acklog_batch(sim_acklog *l, const char *agent_id, uint64_t seq, uint32_t count)
{
    if (cw_buf_printf(&l->pending, "%s %llu %u\n", agent_id, (unsigned long long)seq, count) <
        0) {
        if (!l->error) cw_error("agentsim", "ack log %s: writer too slow, lines lost", l->path);
        l->error = 1;
        return;
    }
    if (!l->writing && l->pending.len >= CHUNK) start_write(l);
}

int sim_acklog_close(sim_acklog *l)
{
    if (!l) return 0;
    /* The loop has returned, so no write is in flight any more. */
    size_t off = 0;
    while (off < l->pending.len) {
        uv_fs_t req;
        uv_buf_t buf = uv_buf_init((char *)l->pending.data + off, (unsigned)(l->pending.len - off));
        int n = uv_fs_write(l->loop, &req, l->fd, &buf, 1, -1, NULL);
        uv_fs_req_cleanup(&req);
        if (n <= 0) {
            cw_error("agentsim", "ack log %s: write failed: %s", l->path,
                     n < 0 ? uv_strerror(n) : "no progress");
            l->error = 1;
            break;
        }
        off += (size_t)n;
    }
    uv_fs_t req;
    if (uv_fs_close(l->loop, &req, l->fd, NULL) < 0) l->error = 1;
    uv_fs_req_cleanup(&req);
    int rc = l->error ? -1 : 0;
    cw_buf_free(&l->pending);
    cw_buf_free(&l->inflight);
    free(l->path);
    free(l);
    return rc;
}
