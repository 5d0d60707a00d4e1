/* conn: one agent connection's I/O on its ingest loop: accept, reads into
 * the framer, frame writes, pause/resume, rejection and close. Protocol
 * decisions live in session.c. Every function here runs on the connection's
 * loop thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chainwatch.pb-c.h"
#include "common/log.h"
#include "server/ingest_int.h"

#define WRITE_HIGH (1024 * 1024) /* stop reading a peer that does not read our acks */
#define WRITE_LOW (256 * 1024)

uint64_t cw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------- plain TCP */

typedef struct {
    uv_write_t req;
    uint8_t *buf;
} tcp_write_req;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    cw_conn *c = h->data;
    buf->base = (char *)c->loop->readbuf;
    buf->len = sizeof c->loop->readbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    cw_conn *c = s->data;
    if (nread == 0) return; /* EAGAIN: nothing to do */
    cw_conn_on_bytes(c, (const uint8_t *)buf->base, nread);
}

static int tcp_read_start(cw_conn *c)
{
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int tcp_read_stop(cw_conn *c)
{
    return uv_read_stop((uv_stream_t *)&c->tcp);
}

static void on_write(uv_write_t *req, int status)
{
    tcp_write_req *w = (tcp_write_req *)req;
    cw_conn *c = req->handle->data;
    free(w->buf);
    free(w);
    if (status < 0 || c->closing) return;
    if ((c->pause & PAUSE_WRITE) && c->tp->write_queue(c) < WRITE_LOW)
        cw_conn_unpause(c, PAUSE_WRITE);
}

static int tcp_write(cw_conn *c, uint8_t *buf, size_t len)
{
    tcp_write_req *w = malloc(sizeof *w);
    if (!w) {
        free(buf);
        return UV_ENOMEM;
    }
    w->buf = buf;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(buf);
        free(w);
    }
    return rc;
}

static size_t tcp_write_queue(cw_conn *c)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
}

static void on_closed(uv_handle_t *h)
{
    cw_conn *c = h->data;
    c->closed = 1;
    cw_conn_maybe_free(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    uv_close((uv_handle_t *)req->handle, on_closed);
    free(req);
}

static void tcp_close(cw_conn *c)
{
    /* Shut down the write side first so an Error frame or final Ack already
     * queued reaches the peer; uv_shutdown waits for queued writes. */
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(req);
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

const cw_transport cw_transport_tcp = {
    .name = "tcp",
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .write = tcp_write,
    .write_queue = tcp_write_queue,
    .close = tcp_close,
};

/* ---------------------------------------------------------- connections */

static void list_remove(cw_ingest_loop *l, cw_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (l->conns == c)
        l->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

void cw_conn_accept(cw_ingest_loop *l)
{
    cw_ingest *in = l->in;
    cw_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->loop = l;
    c->tp = &cw_transport_tcp;
    uv_tcp_init(&l->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept((uv_stream_t *)&l->listener, (uv_stream_t *)&c->tcp) < 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    /* Over the connection limit (or out of slots): refuse by closing. */
    if (l->nfree == 0 ||
        atomic_fetch_add(&in->nconns, 1) >= (int64_t)in->cfg.max_connections) {
        if (l->nfree) atomic_fetch_sub(&in->nconns, 1);
        cw_warn("ingest", "%s: connection refused: max_connections (%u) reached", c->peer,
                in->cfg.max_connections);
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uint32_t slot = l->free_slots[--l->nfree];
    /* Unique across loops too: the registry compares ids from every loop. */
    c->id = (++l->next_id << 32) | ((uint64_t)l->index << 24) | slot;
    l->slots[slot] = c;
    c->next = l->conns;
    if (l->conns) l->conns->prev = c;
    l->conns = c;
    cw_framer_init(&c->framer, in->cfg.max_hello_frame_bytes);
    c->created_ms = c->active_ms = cw_now_ms();
    cw_metric_add(cw_m.connections_total, 1);
    if (l->stopping) {
        cw_conn_close(c);
        return;
    }
    c->reading = c->tp->read_start(c) == 0;
}

cw_conn *cw_conn_find(cw_ingest_loop *l, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & 0xffffff);
    if (slot >= l->in->cfg.max_connections) return NULL;
    cw_conn *c = l->slots[slot];
    return c && c->id == id ? c : NULL;
}

void cw_conn_on_bytes(cw_conn *c, const uint8_t *data, ssize_t nread)
{
    if (c->closing) return;
    if (nread < 0) {
        if (nread != UV_EOF && nread != UV_ECONNRESET)
            cw_debug("ingest", "%s: read error: %s", c->peer, uv_strerror((int)nread));
        cw_conn_close(c);
        return;
    }
    c->active_ms = cw_now_ms();
    int rc = cw_framer_feed(&c->framer, data, (size_t)nread, cw_session_on_frame, c);
    if (rc == CW_FRAMER_TOO_LARGE)
        cw_conn_reject(c, CW_REJ_FRAME_TOO_LARGE, CHAINWATCH__V1__ERROR_CODE__ERROR_FRAME_TOO_LARGE,
                       "frame of %u bytes over the %s limit of %u", c->framer.too_large,
                       c->agent ? "frame" : "pre-hello frame", c->framer.max_frame);
    else if (rc == CW_FRAMER_NOMEM)
        cw_conn_close(c);
}

void cw_conn_send(cw_conn *c, const void *server_frame)
{
    const ProtobufCMessage *m = server_frame;
    if (c->closed) return;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(CW_FRAME_HEADER + n);
    if (!buf) return;
    cw_frame_put_len(buf, (uint32_t)n);
    protobuf_c_message_pack(m, buf + CW_FRAME_HEADER);
    if (c->tp->write(c, buf, CW_FRAME_HEADER + n) < 0) return;
    if (!(c->pause & PAUSE_WRITE) && c->tp->write_queue(c) > WRITE_HIGH)
        cw_conn_pause(c, PAUSE_WRITE);
}

void cw_conn_pause(cw_conn *c, unsigned reason)
{
    if (c->pause == 0 && reason != PAUSE_STOPPING) cw_metric_add(cw_m.ingest_pauses_total, 1);
    c->pause |= reason;
    if (c->reading) {
        c->tp->read_stop(c);
        c->reading = 0;
    }
}

void cw_conn_unpause(cw_conn *c, unsigned reason)
{
    c->pause &= ~reason;
    if (c->pause || c->closing) return;
    /* Frames held back by a STOP come first; they may pause us again. */
    if (c->framer.pending.len >= CW_FRAME_HEADER) {
        int rc = cw_framer_resume(&c->framer, cw_session_on_frame, c);
        if (rc == CW_FRAMER_TOO_LARGE) {
            cw_conn_reject(c, CW_REJ_FRAME_TOO_LARGE,
                           CHAINWATCH__V1__ERROR_CODE__ERROR_FRAME_TOO_LARGE,
                           "frame of %u bytes over the limit of %u", c->framer.too_large,
                           c->framer.max_frame);
            return;
        }
        if (c->pause || c->closing) return;
    }
    if (!c->reading) c->reading = c->tp->read_start(c) == 0;
}

void cw_conn_reject(cw_conn *c, int reason, int code, const char *fmt, ...)
{
    if (c->closing) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (reason >= 0) cw_metric_add(cw_m.frames_rejected[reason], 1);
    cw_ingest_loop *l = c->loop;
    /* One line per rejection, but a flood of bad peers must not flood the
     * log: a budget per second per loop, refilled by the sweep timer. */
    if (l->log_budget > 0) {
        l->log_budget--;
        cw_warn("ingest", "%s agent=%s: rejected (%s): %s", c->peer,
                c->agent ? c->agent->id : "-", reason >= 0 ? cw_reject_names[reason] : "closed", msg);
    } else {
        l->log_suppressed++;
    }
    Chainwatch__V1__Error e = CHAINWATCH__V1__ERROR__INIT;
    e.has_code = 1;
    e.code = (Chainwatch__V1__ErrorCode)code;
    e.message = msg;
    Chainwatch__V1__ServerFrame f = CHAINWATCH__V1__SERVER_FRAME__INIT;
    f.msg_case = CHAINWATCH__V1__SERVER_FRAME__MSG_ERROR;
    f.error = &e;
    cw_conn_send(c, &f);
    cw_conn_close(c);
}

void cw_conn_close(cw_conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    if (c->reading) {
        c->tp->read_stop(c);
        c->reading = 0;
    }
    cw_session_drop_pending(c);
    if (c->agent) {
        cw_registry *reg = c->loop->in->reg;
        cw_registry_lock(reg);
        if (c->agent->conn_id == c->id) {
            c->agent->conn_id = CW_NO_CONN;
            c->agent->loop = -1;
            cw_metric_add(cw_m.agents_connected, -1);
        }
        cw_registry_unlock(reg);
    }
    c->tp->close(c);
}

void cw_conn_maybe_free(cw_conn *c)
{
    /* A connection lives until libuv released its handle and the spool has
     * answered every record it submitted (their done messages point at it). */
    if (!c->closed || c->outstanding > 0) return;
    cw_ingest_loop *l = c->loop;
    if (c->id) {
        uint32_t slot = (uint32_t)(c->id & 0xffffff);
        l->slots[slot] = NULL;
        l->free_slots[l->nfree++] = slot;
        list_remove(l, c);
        atomic_fetch_sub(&l->in->nconns, 1);
    }
    cw_framer_free(&c->framer);
    free(c);
}
