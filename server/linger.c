/* linger: lingering close of sockets. The contract is in linger.h. All
 * functions and callbacks run on the set's loop thread. */
#include "server/linger.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct cw_linger {
    uv_tcp_t tcp; /* first: a failed open frees the struct through it */
    uv_timer_t timer;
    cw_linger_set *set;
    uint64_t drained;
    int open_handles;
    cw_linger *prev, *next;
};

static void on_handle_closed(uv_handle_t *handle)
{
    cw_linger *l = handle->data;
    if (--l->open_handles > 0)
        return;
    cw_linger_set *s = l->set;
    free(l);
    s->pending--;
    if (s->on_closed)
        s->on_closed(s->ud);
}

static void end(cw_linger *l)
{
    cw_linger_set *s = l->set;
    if (l->prev)
        l->prev->next = l->next;
    else
        s->head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    s->active--;
    uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&l->timer, on_handle_closed);
}

static void on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    cw_linger *l = handle->data;
    /* One buffer for the whole set: what is read is thrown away at once. */
    *buf = uv_buf_init(l->set->buf, sizeof(l->set->buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    cw_linger *l = stream->data;
    if (nread > 0)
        l->drained += (uint64_t)nread;
    if (nread < 0 || l->drained > l->set->max_bytes)
        end(l); /* the peer closed (or failed), or sends too much */
}

static void on_timeout(uv_timer_t *t)
{
    end(t->data);
}

void cw_linger_set_init(cw_linger_set *s, uv_loop_t *loop, size_t max, uint64_t max_bytes,
                        uint64_t timeout_ms, void (*on_closed)(void *ud), void *ud)
{
    s->loop = loop;
    s->max = max;
    s->max_bytes = max_bytes;
    s->timeout_ms = timeout_ms;
    s->on_closed = on_closed;
    s->ud = ud;
    s->head = NULL;
    s->active = s->pending = 0;
}

void cw_linger_start(cw_linger_set *s, int fd)
{
    cw_linger *l = NULL;
    if (s->active >= s->max || !(l = calloc(1, sizeof(*l)))) {
        close(fd);
        return;
    }
    l->set = s;
    uv_tcp_init(s->loop, &l->tcp);
    l->tcp.data = l;
    if (uv_tcp_open(&l->tcp, fd) != 0) {
        close(fd);
        uv_close((uv_handle_t *)&l->tcp, (uv_close_cb)free); /* tcp is l's first member */
        return;
    }
    shutdown(fd, SHUT_WR); /* our side is done: FIN after what was written */
    uv_timer_init(s->loop, &l->timer);
    l->timer.data = l;
    l->open_handles = 2;
    l->next = s->head;
    if (s->head)
        s->head->prev = l;
    s->head = l;
    s->active++;
    s->pending++;
    uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    uv_timer_start(&l->timer, on_timeout, s->timeout_ms, 0);
}

void cw_linger_end_all(cw_linger_set *s)
{
    while (s->head)
        end(s->head);
}
