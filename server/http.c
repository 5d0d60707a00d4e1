/* http: the HTTP API on libh2o. The contract is in http.h.
 *
 * Structure: one libuv loop in one thread runs h2o (one h2o_context_t) with
 * a single handler on "/" that routes by path. The audit route hands the
 * body to the audit intake (audit_intake.h), which answers later through
 * on_audit_respond(). Connections are our own uv_tcp_t handles wrapped into
 * h2o sockets, so we can count them, refuse past the limit, and end them at
 * shutdown with shutdown(2) (h2o 2.2.5 offers no way to close an idle
 * HTTP/1.1 keep-alive connection from outside).
 *
 * Shutdown, on the loop thread, in order: stop accepting; tell the intake
 * to refuse new requests and give up parked ones; end lingering closes;
 * wait until every audit request is finished (its writes durable, its
 * response handed to h2o); shutdown(SHUT_RD) every connection so h2o sees
 * EOF and closes it after writing what it has (SHUT_RDWR after a grace
 * period for peers that do not read); once no connection is left, close the
 * timers and the mailbox and dispose the h2o context. The loop then runs out
 * of handles and the thread returns.
 *
 * h2o 2.2.5 facts this relies on (checked on loopback): an HTTP/1.1 request
 * whose handler returns without responding stays open until we respond,
 * even if the client left (h2o notices only when writing); errors h2o sends
 * before any handler ran (the early 413) go through the host's fallback
 * path; h2o_mem_alloc_shared() objects in a request's pool are disposed with
 * the request; plaintext HTTP/2 (prior knowledge) is not accepted.
 */
#include "server/http.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define H2O_USE_LIBUV 1
#include <h2o.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"
#include "server/audit.h"
#include "server/audit_intake.h"
#include "server/linger.h"

#define AUDIT_PREFIX "/api/v1/k8s-audit"
#define TICK_MS 1000
#define SHUTDOWN_GRACE_MS 2000
#define MAX_CONNECTIONS 1024
#define MIN_CONNECTIONS 16
/* Lingering close after h2o's early 413 (see on_setup_ostream). */
#define LINGER_MS 2000
#define LINGER_MAX 64
#define LINGER_MIN_BYTES (64u << 20)

enum { MSG_STOP = 1, MSG_SPACE = 2 };
enum { RL_CONN, RL_TOO_LARGE, RL_BAD_CLUSTER, RL__COUNT };

typedef struct http_conn {
    uv_tcp_t tcp; /* first: h2o's close callback hands us this handle */
    cw_http *h;
    h2o_socket_t *sock;
    int linger_fd; /* after h2o's 413: a dup of the socket (see on_setup_ostream) */
    struct http_conn *prev, *next;
} http_conn;

typedef struct route_handler {
    h2o_handler_t super;
    cw_http *h;
} route_handler;

typedef struct count_filter {
    h2o_filter_t super;
    cw_http *h;
} count_filter;

/* Allocated in an h2o request's pool, so it lives exactly as long as the
 * request: its dispose callback tells the intake when the client is gone. */
typedef struct req_link {
    h2o_req_t *req;
    cw_audit_req *ar;
} req_link;

struct cw_http {
    cw_config cfg;
    cw_spool *spool;
    int port;
    size_t max_conns;

    uv_loop_t loop;
    int loop_inited;
    uv_thread_t thread;
    int started, stopped, stop_rc;
    uv_tcp_t listener;
    uv_timer_t tick;  /* parked audit requests */
    uv_timer_t grace; /* shutdown: ends connections that outlive SHUT_RD */
    cw_mailbox mb;
    cw_msg stop_msg, space_msg;
    /* Guards posting from the spool's space listener against the mailbox's
     * close: after teardown the listener must do nothing. */
    pthread_mutex_t post_lock;
    int mb_open, space_posted;

    h2o_globalconf_t conf;
    int conf_inited;
    h2o_context_t ctx;
    int ctx_inited;
    h2o_accept_ctx_t actx;

    cw_audit_intake *intake;
    http_conn *conns;
    size_t nconn;
    cw_linger_set lingers;
    int stopping, conns_shut;
    cw_log_limit rl[RL__COUNT];
    cw_registry *reg; /* may be NULL (tests): /api/v1/agents is then 404 */
};

/* Loop thread. At most one line per second per reason. */
static void rl_warn(cw_http *h, int which, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rl_warn(cw_http *h, int which, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cw_vlog_limited(&h->rl[which], uv_now(&h->loop), CW_LOG_WARN, "http", fmt, ap);
    va_end(ap);
}

/* ---- responses ------------------------------------------------------------ */

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static void send_response(h2o_req_t *req, int status, const char *ctype, const char *body,
                          size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                   strlen(ctype));
    if (status == 503)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                       H2O_STRLIT(H2O_TO_STR(CW_HTTP_RETRY_AFTER_S)));
    h2o_send_inline(req, body, len); /* copies body; HEAD gets no body */
}

static void send_text(h2o_req_t *req, int status, const char *text)
{
    send_response(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

static void send_405(h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    send_text(req, 405, "method not allowed\n");
}

/* Loop thread: the intake's answer to a request it was given. */
static void on_audit_respond(void *ud, void *conn, int status, const char *body, size_t len)
{
    cw_http *h = ud;
    req_link *l = conn;
    h2o_req_t *req = l->req;
    /* Unlink first: sending may dispose the request (and l) at once. */
    l->ar = NULL;
    l->req = NULL;
    if (h->stopping)
        req->http1_is_persistent = 0;
    send_response(req, status, "application/json", body, len);
}

/* Loop thread: the request's pool is being freed (response done or client
 * gone). */
static void on_link_dispose(void *p)
{
    req_link *l = p;
    if (l->ar)
        cw_audit_intake_detach(l->ar);
}

/* ---- routes ---------------------------------------------------------------- */

static int iov_is(h2o_iovec_t v, const char *s)
{
    return h2o_memis(v.base, v.len, s, strlen(s));
}

static int method_is_get(h2o_req_t *req)
{
    return iov_is(req->method, "GET") || iov_is(req->method, "HEAD");
}

static void serve_metrics(h2o_req_t *req)
{
    cw_buf b;
    cw_buf_init(&b, 0);
    if (cw_metrics_render(&b) == 0)
        send_response(req, 200, "text/plain; version=0.0.4; charset=utf-8", (char *)b.data,
                      b.len);
    else
        send_text(req, 500, "metrics unavailable\n");
    cw_buf_free(&b);
}

static void serve_agents(cw_http *h, h2o_req_t *req)
{
    cw_buf b;
    cw_buf_init(&b, 0);
    if (cw_registry_to_json(h->reg, &b) == 0)
        send_response(req, 200, "application/json", (char *)b.data, b.len);
    else
        send_text(req, 500, "agents unavailable\n");
    cw_buf_free(&b);
}

static void serve_audit(cw_http *h, h2o_req_t *req, const char *cluster, size_t cluster_len)
{
    if (!iov_is(req->method, "POST")) {
        send_405(req, "POST");
        return;
    }
    if (!cw_audit_cluster_valid(cluster, cluster_len)) {
        cw_metric_add(cw_m.audit_requests_rejected[CW_AUDIT_REJ_BAD_CLUSTER], 1);
        rl_warn(h, RL_BAD_CLUSTER, "audit POST with an invalid cluster name (%zu bytes)",
                cluster_len);
        static const char body[] =
            "{\"error\":\"the path must be /api/v1/k8s-audit/CLUSTER, CLUSTER being 1-63 "
            "characters of a-z, 0-9, '.', '-', '_'\"}";
        send_response(req, 400, "application/json", body, sizeof(body) - 1);
        return;
    }
    req_link *l = h2o_mem_alloc_shared(&req->pool, sizeof(*l), on_link_dispose);
    l->req = req;
    l->ar = NULL;
    cw_audit_req *ar = cw_audit_intake_post(h->intake, cluster, cluster_len, req->entity.base,
                                            req->entity.base ? req->entity.len : 0, l);
    if (ar)
        l->ar = ar; /* answered later, through on_audit_respond() */
}

/* Loop thread: h2o calls this for every request (all paths map to "/"). */
static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    cw_http *h = ((route_handler *)self)->h;
    h2o_iovec_t p = req->path_normalized;
    size_t pl = strlen(AUDIT_PREFIX);
    if (p.len >= pl && memcmp(p.base, AUDIT_PREFIX, pl) == 0 &&
        (p.len == pl || p.base[pl] == '/')) {
        /* While stopping, the intake answers 503 (and counts it). */
        size_t off = p.len == pl ? pl : pl + 1;
        serve_audit(h, req, p.base + off, p.len - off);
        return 0;
    }
    if (h->stopping) {
        req->http1_is_persistent = 0;
        send_text(req, 503, "shutting down\n");
        return 0;
    }
    if (iov_is(p, "/healthz") || iov_is(p, "/metrics")) {
        if (!method_is_get(req))
            send_405(req, "GET, HEAD");
        else if (iov_is(p, "/healthz"))
            send_text(req, 200, "ok\n");
        else
            serve_metrics(req);
        return 0;
    }
    if (h->reg && iov_is(p, "/api/v1/agents")) {
        if (!method_is_get(req))
            send_405(req, "GET, HEAD");
        else
            serve_agents(h, req);
        return 0;
    }
    send_text(req, 404, "not found\n");
    return 0;
}

/* Loop thread: runs as each response starts on the fallback path, where h2o
 * puts the errors it sends before any handler ran: there a 413 is a body
 * refused for passing max_request_entity_size. */
static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    cw_http *h = ((count_filter *)self)->h;
    if (req->res.status == 413) {
        cw_metric_add(cw_m.audit_requests_rejected[CW_AUDIT_REJ_TOO_LARGE], 1);
        rl_warn(h, RL_TOO_LARGE, "refused a request body over %llu bytes (http.max_body_bytes)",
                (unsigned long long)h->cfg.http_max_body_bytes);
        /* h2o closes the connection after this response while the client
         * may still be sending the body; closing with unread data would
         * reset the connection and the client would lose the 413. Keep a
         * dup of the socket, so that when h2o has closed its descriptor the
         * socket lives on for a lingering close (linger.h). */
        h2o_socket_t *sock = req->conn->callbacks->get_socket
                                 ? req->conn->callbacks->get_socket(req->conn)
                                 : NULL;
        for (http_conn *c = h->conns; sock && c; c = c->next) {
            uv_os_fd_t fd;
            if (c->sock == sock && c->linger_fd < 0 &&
                uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
                c->linger_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        }
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- connections and shutdown -------------------------------------------- */

static void maybe_finish(cw_http *h);

/* Loop thread: a lingering close ended (see the 413 filter). */
static void on_linger_closed(void *ud)
{
    maybe_finish(ud);
}

static void teardown(cw_http *h);
static void shutdown_conns(cw_http *h, int how);

/* Loop thread: connections still open SHUTDOWN_GRACE_MS after their read
 * side was shut are waiting on a peer that does not read; make their writes
 * fail so h2o closes them. */
static void on_grace(uv_timer_t *t)
{
    cw_http *h = t->data;
    if (h->nconn)
        cw_warn("http", "closing %zu connection(s) that did not finish within %d ms", h->nconn,
                SHUTDOWN_GRACE_MS);
    shutdown_conns(h, SHUT_RDWR);
}

static void shutdown_conns(cw_http *h, int how)
{
    for (http_conn *c = h->conns; c; c = c->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            shutdown(fd, how);
    }
}

/* Loop thread: moves the shutdown along as far as it can go now. */
static void maybe_finish(cw_http *h)
{
    if (!h->stopping || !h->ctx_inited || cw_audit_intake_inflight(h->intake) > 0)
        return;
    if (!h->conns_shut) {
        h->conns_shut = 1;
        shutdown_conns(h, SHUT_RD);
        if (h->nconn > 0)
            uv_timer_start(&h->grace, on_grace, SHUTDOWN_GRACE_MS, 0);
    }
    if (h->nconn == 0 && h->lingers.pending == 0)
        teardown(h);
}

/* Loop thread: the last step of a stop; nothing is in flight any more. */
static void teardown(cw_http *h)
{
    /* First: h2o_context_dispose() runs the loop itself (seen), and close
     * callbacks run there call maybe_finish() again. */
    h->ctx_inited = 0;
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_close((uv_handle_t *)&h->grace, NULL);
    pthread_mutex_lock(&h->post_lock);
    h->mb_open = 0;
    pthread_mutex_unlock(&h->post_lock);
    cw_mailbox_close(&h->mb, NULL);
    h2o_context_dispose(&h->ctx);
}

/* Loop thread: h2o closed a connection's socket. */
static void on_conn_closed(uv_handle_t *handle)
{
    http_conn *c = (http_conn *)handle;
    cw_http *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconn--;
    int lfd = c->linger_fd;
    free(c);
    if (lfd >= 0 && h->stopping)
        close(lfd);
    else if (lfd >= 0)
        cw_linger_start(&h->lingers, lfd);
    maybe_finish(h);
}

/* Loop thread: a connection is waiting on the listener. */
static void on_connection(uv_stream_t *server, int status)
{
    cw_http *h = server->data;
    if (status < 0) {
        rl_warn(h, RL_CONN, "accept: %s", uv_strerror(status));
        return;
    }
    http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        rl_warn(h, RL_CONN, "accept: out of memory");
        return;
    }
    c->h = h;
    c->linger_fd = -1;
    uv_tcp_init(&h->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    if (h->stopping || h->nconn >= h->max_conns) {
        /* Accept and close at once: leaving it in the backlog would stall
         * the listener. */
        rl_warn(h, RL_CONN, "refusing a connection: %zu open, limit %zu", h->nconn,
                h->max_conns);
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconn++;
    c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&h->actx, c->sock);
}

static void begin_stop(cw_http *h)
{
    h->stopping = 1;
    uv_close((uv_handle_t *)&h->listener, NULL);
    cw_audit_intake_stop(h->intake);
    cw_linger_end_all(&h->lingers);
    /* No h2o_context_request_shutdown(): it only matters for HTTP/2 (which
     * is off) and it arms a timer that makes h2o_context_dispose() abort if
     * it runs within the next second. Connections end through shutdown(2). */
    maybe_finish(h);
}

/* Loop thread: messages from the main thread (stop), the spool's space
 * listener and the intake's done callbacks. */
static void on_mail(cw_mailbox *mb, cw_msg *msg)
{
    cw_http *h = mb->data;
    switch (msg->type) {
    case CW_AUDIT_MSG:
        cw_audit_intake_on_msg(h->intake, msg);
        break;
    case MSG_SPACE:
        pthread_mutex_lock(&h->post_lock);
        h->space_posted = 0;
        pthread_mutex_unlock(&h->post_lock);
        cw_audit_intake_on_space(h->intake);
        break;
    case MSG_STOP:
        begin_stop(h);
        break;
    }
    maybe_finish(h);
}

/* Loop thread, once a second. */
static void on_tick(uv_timer_t *t)
{
    cw_http *h = t->data;
    cw_audit_intake_tick(h->intake);
    maybe_finish(h);
}

/* Spool thread: room is back. Posts one coalesced message to the loop. */
static void on_spool_space(void *ud)
{
    cw_http *h = ud;
    pthread_mutex_lock(&h->post_lock);
    if (h->mb_open && !h->space_posted) {
        h->space_posted = 1;
        cw_mailbox_post(&h->mb, &h->space_msg);
    }
    pthread_mutex_unlock(&h->post_lock);
}

static void loop_main(void *arg)
{
    cw_http *h = arg;
    pthread_setname_np(pthread_self(), "cw-http"); /* for top -H and the benchmarks */
    uv_run(&h->loop, UV_RUN_DEFAULT);
    /* h2o keeps freed socket buffers in a thread-local free list: hand them
     * back before the thread ends. (Its memory-pool free list is static in
     * libh2o and cannot be emptied: see __lsan_default_suppressions.) */
    h2o_mem_recycle_t *a = &h2o_socket_buffer_prototype.allocator;
    while (a->cnt > 0)
        free(h2o_mem_alloc_recycle(a, 1));
}

/* libh2o 2.2.5 keeps freed request-pool chunks in a thread-local free list
 * (static in its memory.c, with nothing to empty it), so up to 16 chunks of
 * 4 KiB are lost each time an HTTP loop thread ends. Under AddressSanitizer
 * that is reported as a leak at exit; this tells LeakSanitizer to ignore it
 * in every program that links this module, and nothing else. */
#if defined(__SANITIZE_ADDRESS__)
#define CW_HTTP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CW_HTTP_ASAN 1
#endif
#endif
#ifdef CW_HTTP_ASAN
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\n";
}
#endif

/* ---- life cycle (main thread) --------------------------------------------- */

/* cw_config_parse_addr takes ports 1-65535; tests ask for port 0. */
static int parse_listen(const char *s, struct sockaddr_storage *ss)
{
    if (cw_config_parse_addr(s, ss) == 0)
        return 0;
    size_t n = strlen(s);
    char tmp[CW_ADDR_MAX];
    if (n < 2 || n >= sizeof(tmp) || strcmp(s + n - 2, ":0") != 0)
        return -1;
    memcpy(tmp, s, n + 1);
    tmp[n - 1] = '1';
    if (cw_config_parse_addr(tmp, ss) != 0)
        return -1;
    ((struct sockaddr_in *)ss)->sin_port = 0; /* same offset in sockaddr_in6 */
    return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int setup_h2o(cw_http *h)
{
    h2o_config_init(&h->conf);
    h->conf_inited = 1;
    /* h2o's default is 1 GiB. With a Content-Length over the limit h2o
     * answers 413 before reading the body; a chunked body is cut off when
     * it passes the limit. */
    h->conf.max_request_entity_size = h->cfg.http_max_body_bytes;
    /* HTTP/1.1 only: one request at a time per connection keeps the body
     * memory bound per connection (see http.h). */
    h->conf.http1.upgrade_to_http2 = 0;
    h->conf.server_name = h2o_iovec_init(H2O_STRLIT("chainwatchd"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&h->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    route_handler *rh = (route_handler *)h2o_create_handler(path, sizeof(*rh));
    rh->super.on_req = on_req;
    rh->h = h;
    count_filter *cf = (count_filter *)h2o_create_filter(&host->fallback_path, sizeof(*cf));
    cf->super.on_setup_ostream = on_setup_ostream;
    cf->h = h;
    h2o_context_init(&h->ctx, &h->loop, &h->conf);
    h->ctx_inited = 1;
    h->actx.ctx = &h->ctx;
    h->actx.hosts = h->conf.hosts;
    return 0;
}

int cw_http_create(cw_http **out, const cw_config *cfg, cw_spool *spool, cw_registry *reg,
                   char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    *out = NULL;
    if (parse_listen(cfg->http_listen, &ss) != 0)
        return fail(err, errlen, "http_listen: '%s' is not HOST:PORT", cfg->http_listen);
    cw_http *h = calloc(1, sizeof(*h));
    if (!h)
        return fail(err, errlen, "http: out of memory");
    *out = h;
    h->cfg = *cfg;
    h->spool = spool;
    h->reg = reg;
    pthread_mutex_init(&h->post_lock, NULL);
    uint64_t body_max = cfg->http_max_body_bytes ? cfg->http_max_body_bytes : 1;
    uint64_t conns = CW_HTTP_BODY_MEMORY / body_max;
    h->max_conns = conns > MAX_CONNECTIONS ? MAX_CONNECTIONS
                   : conns < MIN_CONNECTIONS ? MIN_CONNECTIONS
                                             : (size_t)conns;
    int rc = uv_loop_init(&h->loop);
    if (rc != 0)
        return fail(err, errlen, "http: loop: %s", uv_strerror(rc));
    h->loop_inited = 1;
    cw_mailbox_init(&h->loop, &h->mb, on_mail, h);
    h->mb_open = 1;
    h->stop_msg.type = MSG_STOP;
    h->space_msg.type = MSG_SPACE;
    uv_timer_init(&h->loop, &h->tick);
    uv_timer_init(&h->loop, &h->grace);
    h->tick.data = h->grace.data = h;
    uint64_t drain = 8 * cfg->http_max_body_bytes;
    cw_linger_set_init(&h->lingers, &h->loop, LINGER_MAX,
                       drain > LINGER_MIN_BYTES ? drain : LINGER_MIN_BYTES, LINGER_MS,
                       on_linger_closed, h);

    uint64_t inflight = 2 * cfg->http_max_body_bytes;
    cw_audit_intake_opts io = {
        .loop = &h->loop,
        .mailbox = &h->mb,
        .spool = spool,
        .dedupe_entries = cfg->audit_dedupe_entries,
        .inflight_max = inflight > CW_HTTP_INFLIGHT_BYTES ? inflight : CW_HTTP_INFLIGHT_BYTES,
        .max_parked = CW_HTTP_MAX_PARKED,
        .park_timeout_ms = CW_HTTP_PARK_TIMEOUT_MS,
        .respond = on_audit_respond,
        .ud = h,
    };
    rc = cw_audit_intake_create(&h->intake, &io);
    if (rc != 0)
        return fail(err, errlen, "http: audit intake: %s", strerror(-rc));
    setup_h2o(h);

    uv_tcp_init(&h->loop, &h->listener);
    h->listener.data = h;
    rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->listener, 511, on_connection);
    if (rc != 0)
        return fail(err, errlen, "http listener %s: %s", cfg->http_listen, uv_strerror(rc));
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &blen);
    h->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (cw_spool_add_space_listener(spool, on_spool_space, h) < 0)
        return fail(err, errlen, "http: cannot register a spool space listener");
    return 0;
}

int cw_http_start(cw_http *h, char *err, size_t errlen)
{
    uv_timer_start(&h->tick, on_tick, TICK_MS, TICK_MS);
    if (uv_thread_create(&h->thread, loop_main, h) != 0)
        return fail(err, errlen, "http: cannot start the loop thread");
    h->started = 1;
    cw_info("http", "listening on %s (port %d), body limit %llu bytes, %zu connections",
            h->cfg.http_listen, h->port, (unsigned long long)h->cfg.http_max_body_bytes,
            h->max_conns);
    return 0;
}

int cw_http_port(const cw_http *h)
{
    return h->port;
}

static void log_open_handle(uv_handle_t *handle, void *arg)
{
    (void)arg;
    cw_error("http", "handle left open at stop: %s%s", uv_handle_type_name(handle->type),
             uv_is_closing(handle) ? " (closing)" : "");
}

int cw_http_stop(cw_http *h)
{
    if (!h || !h->started || h->stopped)
        return h ? h->stop_rc : 0;
    /* The mailbox stays open until the loop has processed MSG_STOP. */
    cw_mailbox_post(&h->mb, &h->stop_msg);
    uv_thread_join(&h->thread);
    h->stopped = 1;
    h->stop_rc = uv_loop_close(&h->loop);
    if (h->stop_rc != 0)
        uv_walk(&h->loop, log_open_handle, NULL);
    else
        h->loop_inited = 0;
    cw_info("http", "stopped");
    return h->stop_rc;
}

static void close_any(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

void cw_http_free(cw_http *h)
{
    if (!h)
        return;
    if (h->started && !h->stopped)
        cw_http_stop(h);
    pthread_mutex_lock(&h->post_lock);
    h->mb_open = 0; /* the space listener must do nothing from now on */
    pthread_mutex_unlock(&h->post_lock);
    if (h->loop_inited) {
        /* Never started, or a failed create: h2o closes its own handles,
         * then the rest are closed here. */
        if (h->ctx_inited)
            h2o_context_dispose(&h->ctx);
        uv_walk(&h->loop, close_any, NULL);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&h->loop) != 0)
            cw_error("http", "loop: handles left open");
    }
    if (h->conf_inited)
        h2o_config_dispose(&h->conf);
    cw_audit_intake_free(h->intake);
    pthread_mutex_destroy(&h->post_lock);
    free(h);
}
