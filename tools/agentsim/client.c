#include "client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/arena.h"
#include "common/log.h"
#include "frame.h"

#define READ_BUF_SIZE (16 * 1024)
/* Server frames are small (Ack, Heartbeat, Error); a Command may carry up to
 * a frame's worth of payload, and decoding needs some room on top. */
#define DECODE_LIMIT (2 * SIM_FRAME_MAX)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

enum state {
    ST_IDLE,       /* created, not started */
    ST_WAIT,       /* disconnected, waiting for the tcp handle to close or the backoff */
    ST_CONNECTING, /* TCP connect in progress */
    ST_HELLO,      /* Hello sent, waiting for the server's first Ack */
    ST_READY,      /* batches flow */
    ST_FAILED,     /* stopped for good */
    ST_CLOSING,    /* sim_client_close() called */
};

/* One queued batch, encoded with its length prefix, until it is acked. At
 * most one write of it is in flight at a time: writes of a lost connection
 * are cancelled before its handle finishes closing, and the resend goes out
 * on the next connection only. */
typedef struct batch {
    struct batch *next;
    sim_client *c;
    uv_write_t req;
    uint64_t seq;
    uint64_t first_sent_ns;
    uint32_t nevents;
    unsigned writing : 1; /* uv_write in flight: free only in its callback */
    unsigned acked : 1;
    size_t len;
    uint8_t data[];
} batch;

/* A Hello or Heartbeat write; freed in its callback. */
typedef struct ctl_write {
    uv_write_t req;
    sim_client *c;
    uint8_t data[];
} ctl_write;

struct sim_client {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_timer_t timer;    /* reconnect backoff, or the handshake deadline */
    uv_timer_t hb_timer; /* heartbeat check */
    int handles;         /* open libuv handles; the client is freed at 0 after close */
    int tcp_open;        /* tcp initialised and its close not yet finished */
    int tcp_closing;
    enum state st;
    struct sockaddr_storage addr;
    sim_client_limits lim;
    sim_client_cbs cbs;
    void *user;
    char *agent_id;
    uint8_t *hello; /* the encoded Hello frame, sent on every connection */
    size_t hello_len;
    batch *head, *tail; /* unacked batches, in seq order */
    batch *send_next;   /* first batch not yet written on this connection */
    size_t unacked_bytes, unacked_n;
    uint64_t next_seq;
    uint64_t acked_seq;
    uint64_t max_written; /* highest seq ever handed to a connection */
    int want_room;
    uint64_t last_write_ms;
    uint64_t backoff_ms;
    unsigned failures; /* connection failures since the last answered Hello */
    uint32_t rng;
    sim_frame_reader reader;
    cw_arena arena;
    sim_client_stats stats;
    char rbuf[READ_BUF_SIZE];
};

static void start_connect(sim_client *c);
static void pump(sim_client *c);

/* Loop thread: the reconnect backoff passed. */
static void on_backoff_timer(uv_timer_t *t)
{
    start_connect(t->data);
}

/* ------------------------------------------------------------ lifecycle */

static void maybe_free(sim_client *c)
{
    if (c->handles > 0 || c->st != ST_CLOSING) return;
    if (c->cbs.closed) c->cbs.closed(c->user, c);
    for (batch *b = c->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    sim_frame_reader_free(&c->reader);
    cw_arena_destroy(&c->arena);
    free(c->hello);
    free(c->agent_id);
    free(c);
}

/* Loop thread: a timer handle finished closing. */
static void on_timer_closed(uv_handle_t *h)
{
    sim_client *c = h->data;
    c->handles--;
    maybe_free(c);
}

/* Loop thread: the connection's handle finished closing; every write on it
 * has called back (with UV_ECANCELED if unsent) by now. */
static void on_tcp_closed(uv_handle_t *h)
{
    sim_client *c = h->data;
    c->handles--;
    c->tcp_open = 0;
    c->tcp_closing = 0;
    c->send_next = NULL;
    sim_frame_reader_reset(&c->reader);
    cw_arena_reset(&c->arena);
    if (c->st == ST_WAIT) {
        /* Exponential backoff with +-25 % jitter, so that a fleet of agents
         * does not reconnect in lock-step after a server restart. */
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 17;
        c->rng ^= c->rng << 5;
        uint64_t d = c->backoff_ms * 3 / 4 + c->rng % (c->backoff_ms / 2 + 1);
        c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
        uv_timer_start(&c->timer, on_backoff_timer, d, 0);
    }
    maybe_free(c);
}

static void close_tcp(sim_client *c)
{
    if (!c->tcp_open || c->tcp_closing) return;
    c->tcp_closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

/* The connection is gone or unusable: close it and reconnect later. */
static void lost(sim_client *c, const char *why)
{
    if (c->st != ST_CONNECTING && c->st != ST_HELLO && c->st != ST_READY) return;
    if (c->st == ST_READY) c->stats.reconnects++;
    /* One warning per outage; the retries that follow are debug noise. */
    if (c->failures++ == 0)
        cw_warn("agentsim", "agent %s: %s; reconnecting (%zu batches unacked)", c->agent_id, why,
                c->unacked_n);
    else
        cw_debug("agentsim", "agent %s: %s", c->agent_id, why);
    c->st = ST_WAIT;
    uv_timer_stop(&c->timer);
    close_tcp(c);
}

static void fail(sim_client *c, const char *why)
{
    if (c->st == ST_FAILED || c->st == ST_CLOSING) return;
    cw_error("agentsim", "agent %s: %s; giving up (%zu batches unacked)", c->agent_id, why,
             c->unacked_n);
    c->st = ST_FAILED;
    uv_timer_stop(&c->timer);
    uv_timer_stop(&c->hb_timer);
    close_tcp(c);
    if (c->cbs.failed) c->cbs.failed(c->user, c);
}

/* ------------------------------------------------------------ writing */

/* Loop thread: a Hello or Heartbeat write finished. */
static void on_ctl_written(uv_write_t *req, int status)
{
    ctl_write *w = (ctl_write *)req;
    sim_client *c = w->c;
    free(w);
    if (status < 0 && status != UV_ECANCELED) lost(c, uv_strerror(status));
}

static void write_ctl(sim_client *c, const uint8_t *data, size_t len)
{
    ctl_write *w = malloc(sizeof *w + len);
    if (!w) {
        lost(c, "out of memory");
        return;
    }
    w->c = c;
    memcpy(w->data, data, len);
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_ctl_written);
    if (rc < 0) {
        free(w);
        lost(c, uv_strerror(rc));
        return;
    }
    c->last_write_ms = uv_now(c->loop);
}

static int room_now(const sim_client *c)
{
    if (c->st == ST_FAILED || c->st == ST_CLOSING) return 0;
    if (c->unacked_bytes >= c->lim.max_unacked_bytes || c->unacked_n >= c->lim.max_unacked_batches)
        return 0;
    if (c->st != ST_READY) return 1;
    return !c->send_next && uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) <
                                c->lim.write_high_water;
}

static void check_room(sim_client *c)
{
    if (c->want_room && room_now(c)) {
        c->want_room = 0;
        if (c->cbs.room) c->cbs.room(c->user, c);
    }
}

/* Loop thread: a batch write finished (UV_ECANCELED when its connection was
 * closed first; the batch is then resent on the next connection). */
static void on_batch_written(uv_write_t *req, int status)
{
    batch *b = (batch *)((char *)req - offsetof(batch, req));
    sim_client *c = b->c;
    b->writing = 0;
    if (b->acked) free(b); /* acked while its write was still in flight */
    if (status == UV_ECANCELED) return;
    if (status < 0) {
        lost(c, uv_strerror(status));
        return;
    }
    pump(c);
    check_room(c);
}

/* Hands queued batches to libuv until its write queue reaches the high-water
 * mark; on_batch_written() calls back here as the queue drains. */
static void pump(sim_client *c)
{
    while (c->st == ST_READY && c->send_next &&
           uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < c->lim.write_high_water) {
        batch *b = c->send_next;
        c->send_next = b->next;
        uv_buf_t buf = uv_buf_init((char *)b->data, (unsigned)b->len);
        int rc = uv_write(&b->req, (uv_stream_t *)&c->tcp, &buf, 1, on_batch_written);
        if (rc < 0) {
            lost(c, uv_strerror(rc));
            return;
        }
        b->writing = 1;
        if (b->seq > c->max_written) c->max_written = b->seq;
        if (!b->first_sent_ns) b->first_sent_ns = uv_hrtime();
        c->last_write_ms = uv_now(c->loop);
    }
}

/* Loop thread: checks for idleness every heartbeat interval. */
static void on_heartbeat_timer(uv_timer_t *t)
{
    sim_client *c = t->data;
    if (c->st != ST_READY) return;
    if (uv_now(c->loop) - c->last_write_ms < c->lim.heartbeat_ms / 2) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    Chainwatch__V1__Heartbeat hb = CHAINWATCH__V1__HEARTBEAT__INIT;
    hb.has_time_ns = 1;
    hb.time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    Chainwatch__V1__AgentFrame f = CHAINWATCH__V1__AGENT_FRAME__INIT;
    f.msg_case = CHAINWATCH__V1__AGENT_FRAME__MSG_HEARTBEAT;
    f.heartbeat = &hb;
    uint8_t buf[64];
    size_t n = sim_frame_agent_size(&f);
    if (n + SIM_FRAME_PREFIX > sizeof buf) return; /* cannot happen: a varint or two */
    sim_frame_agent_write(&f, buf, n);
    write_ctl(c, buf, n + SIM_FRAME_PREFIX);
}

/* ------------------------------------------------------------ reading */

/* Drops every queued batch with seq <= acked: the server has it durably. */
static void ack_upto(sim_client *c, uint64_t acked)
{
    if (acked > c->acked_seq) c->acked_seq = acked;
    while (c->head && c->head->seq <= acked) {
        batch *b = c->head;
        c->head = b->next;
        if (!c->head) c->tail = NULL;
        if (c->send_next == b) c->send_next = c->head;
        c->unacked_bytes -= b->len;
        c->unacked_n--;
        c->stats.batches_acked++;
        c->stats.events_acked += b->nevents;
        if (c->cbs.acked) c->cbs.acked(c->user, c, b->seq, b->nevents, b->first_sent_ns);
        if (b->writing)
            b->acked = 1;
        else
            free(b);
    }
}

static int handle_ack(sim_client *c, uint64_t acked)
{
    if (acked > c->max_written) {
        /* The server holds batches this agent never wrote: the agent id was
         * used before (by an earlier run). Our batches would be dropped as
         * duplicates, so stop rather than report them as stored. */
        char why[256];
        snprintf(why, sizeof why,
                 "server already holds seq %llu for this agent id, but only seqs up to %llu "
                 "were sent (agent id reused? pick a fresh --agent-prefix)",
                 (unsigned long long)acked, (unsigned long long)c->max_written);
        fail(c, why);
        return 1;
    }
    if (c->st == ST_HELLO) {
        /* The answer to Hello: resend everything after what it holds. */
        uv_timer_stop(&c->timer);
        c->st = ST_READY;
        c->stats.connects++;
        c->backoff_ms = BACKOFF_MIN_MS;
        ack_upto(c, acked);
        if (c->failures)
            cw_info("agentsim", "agent %s: connected again; server holds seq %llu, resending %zu "
                    "batches", c->agent_id, (unsigned long long)acked, c->unacked_n);
        c->failures = 0;
        c->send_next = c->head;
        pump(c);
        check_room(c);
        return 0;
    }
    if (c->st != ST_READY) return 0;
    if (acked < c->acked_seq) {
        cw_warn("agentsim", "agent %s: Ack went backwards (%llu after %llu); ignored", c->agent_id,
                (unsigned long long)acked, (unsigned long long)c->acked_seq);
        return 0;
    }
    ack_upto(c, acked);
    check_room(c);
    return 0;
}

static int fatal_code(int code)
{
    switch (code) {
    case CHAINWATCH__V1__ERROR_CODE__ERROR_HANDSHAKE_TIMEOUT:
    case CHAINWATCH__V1__ERROR_CODE__ERROR_IDLE_TIMEOUT:
    case CHAINWATCH__V1__ERROR_CODE__ERROR_SHUTTING_DOWN:
    case CHAINWATCH__V1__ERROR_CODE__ERROR_UNSPECIFIED: return 0;
    default: return 1; /* the same request would fail the same way again */
    }
}

static int handle_error(sim_client *c, const Chainwatch__V1__Error *e)
{
    int code = e->has_code ? (int)e->code : 0;
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&chainwatch__v1__error_code__descriptor, code);
    char why[600];
    snprintf(why, sizeof why, "server error %s (%d): %.500s", v ? v->name : "?", code,
             e->message ? e->message : "");
    if (fatal_code(code))
        fail(c, why);
    else
        lost(c, why);
    return 1; /* the server closes after an Error: read no further */
}

/* Loop thread (from on_read): one complete ServerFrame payload. */
static int on_frame(void *user, const uint8_t *payload, size_t len)
{
    sim_client *c = user;
    Chainwatch__V1__ServerFrame *f = sim_frame_decode_server(&c->arena, payload, len);
    int rc = 0;
    if (!f) {
        lost(c, "undecodable frame from the server");
        rc = 1;
    } else if (f->msg_case == CHAINWATCH__V1__SERVER_FRAME__MSG_ACK) {
        rc = handle_ack(c, f->ack->has_acked_seq ? f->ack->acked_seq : 0);
    } else if (f->msg_case == CHAINWATCH__V1__SERVER_FRAME__MSG_ERROR) {
        rc = handle_error(c, f->error);
    } /* Heartbeats need no answer; Commands are reserved: both ignored. */
    cw_arena_reset(&c->arena);
    return rc;
}

/* Loop thread. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    sim_client *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

/* Loop thread. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sim_client *c = s->data;
    if (nread == 0) return; /* EAGAIN, not end of stream */
    if (nread < 0) {
        lost(c, nread == UV_EOF ? "server closed the connection" : uv_strerror((int)nread));
        return;
    }
    if (c->st != ST_HELLO && c->st != ST_READY) return;
    int rc = sim_frame_reader_feed(&c->reader, (const uint8_t *)buf->base, (size_t)nread,
                                   on_frame, c);
    if (rc == SIM_FRAME_ETOOBIG)
        lost(c, "frame from the server over the 4 MiB limit");
    else if (rc == -1)
        lost(c, "out of memory");
}

/* ------------------------------------------------------------ connecting */

/* Loop thread: the handshake deadline passed. */
static void on_handshake_timeout(uv_timer_t *t)
{
    sim_client *c = t->data;
    lost(c, c->st == ST_CONNECTING ? "connect timed out" : "no answer to Hello");
}

/* Loop thread. */
static void on_connect(uv_connect_t *req, int status)
{
    sim_client *c = req->data;
    if (status == UV_ECANCELED || c->st != ST_CONNECTING) return;
    if (status < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(status));
        lost(c, why);
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        lost(c, uv_strerror(rc));
        return;
    }
    c->st = ST_HELLO;
    write_ctl(c, c->hello, c->hello_len);
}

static void start_connect(sim_client *c)
{
    if (c->st != ST_WAIT && c->st != ST_IDLE) return;
    int rc = uv_tcp_init(c->loop, &c->tcp);
    if (rc < 0) {
        fail(c, uv_strerror(rc));
        return;
    }
    c->handles++;
    c->tcp_open = 1;
    c->tcp.data = c;
    c->connect_req.data = c;
    c->st = ST_CONNECTING;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_handshake_timeout, c->lim.handshake_timeout_ms, 0);
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&c->addr, on_connect);
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(rc));
        lost(c, why);
    }
}

/* ------------------------------------------------------------ public API */

static uint8_t *pack_hello(const sim_hello *h, size_t *len)
{
    Chainwatch__V1__Hello m = CHAINWATCH__V1__HELLO__INIT;
    char *ips[1] = {(char *)h->ip};
    m.has_protocol_version = 1;
    m.protocol_version = 1;
    m.agent_id = (char *)h->agent_id;
    m.hostname = (char *)h->hostname;
    m.n_ip_addresses = h->ip ? 1 : 0;
    m.ip_addresses = ips;
    m.cloud = (char *)h->cloud;
    m.region = (char *)h->region;
    m.cluster = (char *)h->cluster;
    m.node_name = (char *)(h->node_name ? h->node_name : h->hostname);
    m.kernel = (char *)h->kernel;
    m.agent_version = (char *)h->agent_version;
    m.os = (char *)h->os;
    Chainwatch__V1__AgentFrame f = CHAINWATCH__V1__AGENT_FRAME__INIT;
    f.msg_case = CHAINWATCH__V1__AGENT_FRAME__MSG_HELLO;
    f.hello = &m;
    return sim_frame_pack_agent(&f, SIM_FRAME_MAX_PRE_HELLO, len);
}

sim_client *sim_client_new(uv_loop_t *loop, const struct sockaddr *server,
                           const sim_hello *hello, uint64_t first_seq,
                           const sim_client_limits *limits, const sim_client_cbs *cbs,
                           void *user)
{
    if (!hello->agent_id || !hello->agent_id[0] || !hello->hostname || !hello->hostname[0])
        return NULL;
    sim_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->agent_id = strdup(hello->agent_id);
    c->hello = pack_hello(hello, &c->hello_len);
    if (!c->agent_id || !c->hello) {
        free(c->agent_id);
        free(c->hello);
        free(c);
        return NULL;
    }
    c->loop = loop;
    memcpy(&c->addr, server,
           server->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                         : sizeof(struct sockaddr_in));
    if (limits) c->lim = *limits;
    if (!c->lim.max_unacked_bytes) c->lim.max_unacked_bytes = 32u << 20;
    if (!c->lim.max_unacked_batches) c->lim.max_unacked_batches = 65536;
    if (!c->lim.write_high_water) c->lim.write_high_water = 1u << 20;
    if (!c->lim.heartbeat_ms) c->lim.heartbeat_ms = 30000;
    if (!c->lim.handshake_timeout_ms) c->lim.handshake_timeout_ms = 10000;
    if (cbs) c->cbs = *cbs;
    c->user = user;
    c->next_seq = first_seq ? first_seq : 1;
    /* Seqs below first_seq were written by this agent id's earlier clients. */
    c->acked_seq = c->max_written = c->next_seq - 1;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->rng = (uint32_t)(uintptr_t)c ^ (uint32_t)uv_hrtime() ^ 0x9e3779b9u;
    if (!c->rng) c->rng = 1;
    sim_frame_reader_init(&c->reader, SIM_FRAME_MAX);
    cw_arena_init(&c->arena, DECODE_LIMIT);
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->hb_timer);
    c->timer.data = c->hb_timer.data = c;
    c->handles = 2;
    return c;
}

int sim_client_start(sim_client *c)
{
    if (c->st != ST_IDLE) return -EINVAL;
    uv_timer_start(&c->hb_timer, on_heartbeat_timer, c->lim.heartbeat_ms, c->lim.heartbeat_ms);
    start_connect(c);
    return 0;
}

int sim_client_send(sim_client *c, Chainwatch__V1__Event *const *events, size_t n)
{
    if (c->st == ST_FAILED || c->st == ST_CLOSING) return -EPIPE;
    if (c->unacked_bytes >= c->lim.max_unacked_bytes || c->unacked_n >= c->lim.max_unacked_batches)
        return -ENOBUFS;
    Chainwatch__V1__EventBatch eb = CHAINWATCH__V1__EVENT_BATCH__INIT;
    eb.has_seq = 1;
    eb.seq = c->next_seq;
    eb.n_events = n;
    eb.events = (Chainwatch__V1__Event **)events;
    Chainwatch__V1__AgentFrame f = CHAINWATCH__V1__AGENT_FRAME__INIT;
    f.msg_case = CHAINWATCH__V1__AGENT_FRAME__MSG_BATCH;
    f.batch = &eb;
    size_t size = sim_frame_agent_size(&f);
    if (size > SIM_FRAME_MAX) return -EMSGSIZE;
    batch *b = malloc(sizeof *b + SIM_FRAME_PREFIX + size);
    if (!b) return -ENOMEM;
    memset(b, 0, sizeof *b);
    b->c = c;
    b->seq = c->next_seq++;
    b->nevents = (uint32_t)n;
    b->len = SIM_FRAME_PREFIX + size;
    sim_frame_agent_write(&f, b->data, size);
    if (c->tail)
        c->tail->next = b;
    else
        c->head = b;
    c->tail = b;
    if (c->st == ST_READY && !c->send_next) c->send_next = b;
    c->unacked_bytes += b->len;
    c->unacked_n++;
    c->stats.batches_queued++;
    c->stats.events_queued += n;
    pump(c);
    return 0;
}

int sim_client_has_room(sim_client *c)
{
    int room = room_now(c);
    if (!room) c->want_room = 1;
    return room;
}

int sim_client_ready(const sim_client *c)
{
    return c->st == ST_READY;
}

int sim_client_failed(const sim_client *c)
{
    return c->st == ST_FAILED;
}

size_t sim_client_unacked(const sim_client *c)
{
    return c->unacked_n;
}

uint64_t sim_client_next_seq(const sim_client *c)
{
    return c->next_seq;
}

const char *sim_client_agent_id(const sim_client *c)
{
    return c->agent_id;
}

const sim_client_stats *sim_client_get_stats(const sim_client *c)
{
    return &c->stats;
}

void sim_client_close(sim_client *c)
{
    if (c->st == ST_CLOSING) return;
    c->st = ST_CLOSING;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->hb_timer, on_timer_closed);
    close_tcp(c);
}
