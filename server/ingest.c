/* ingest: loop threads, listeners and shutdown for agent connections.
 *
 * Thread model: cfg.ingest_threads loops (default: one per CPU), each with
 * its own listening socket on the same port (SO_REUSEPORT, made by hand
 * because libuv 1.44 has no UV_TCP_REUSEPORT), so the kernel spreads
 * connections across loops and no connection ever moves between threads.
 * Loops share only the registry (mutex), the spool (thread-safe submit) and
 * atomic counters; everything else crosses threads as mailbox messages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "server/ingest_int.h"

#define SWEEP_MS 100
#define LOG_BUDGET 20 /* rejection log lines per second per loop */

static void try_finish(cw_ingest_loop *l);

static void on_connection(uv_stream_t *server, int status)
{
    cw_ingest_loop *l = server->data;
    if (status < 0) {
        cw_warn("ingest", "accept: %s", uv_strerror(status));
        return;
    }
    cw_conn_accept(l);
}

/* Loop thread: the spool has room again; retry held records in order of
 * the connection list (each connection holds at most one). */
static void on_space(cw_ingest_loop *l)
{
    atomic_store(&l->space_posted, 0);
    for (cw_conn *c = l->conns; c; c = c->next) {
        if (!c->pending || c->closing) continue;
        int rc = cw_session_retry_pending(c);
        if (rc == 1) break; /* full again: wait for the next signal */
        if (rc == 0) cw_conn_unpause(c, PAUSE_SPOOL);
    }
}

static void on_mail(cw_mailbox *mb, cw_msg *m)
{
    cw_ingest_loop *l = mb->data;
    switch (m->type) {
    case MSG_DONE: {
        cw_rec *r = (cw_rec *)((char *)m - offsetof(cw_rec, msg));
        cw_session_on_done(l, r);
        if (l->stopping) try_finish(l);
        break;
    }
    case MSG_ACK: {
        cw_conn_msg *cm = (cw_conn_msg *)m;
        cw_conn *c = cw_conn_find(l, cm->conn_id);
        if (c && !c->closing) cw_session_send_ack(c, cm->seq);
        free(cm);
        break;
    }
    case MSG_SUPERSEDE: {
        cw_conn_msg *cm = (cw_conn_msg *)m;
        cw_conn *c = cw_conn_find(l, cm->conn_id);
        if (c && !c->closing)
            cw_conn_reject(c, -1, CHAINWATCH__V1__ERROR_CODE__ERROR_SUPERSEDED,
                           "the same agent_id connected again");
        free(cm);
        break;
    }
    case MSG_SPACE:
        on_space(l);
        break;
    case MSG_CLOSE:
        cw_mailbox_close(&l->mb, NULL);
        break;
    case MSG_STOP: {
        l->stopping = 1;
        if (!uv_is_closing((uv_handle_t *)&l->listener))
            uv_close((uv_handle_t *)&l->listener, NULL);
        for (cw_conn *c = l->conns; c; c = c->next) {
            cw_session_drop_pending(c); /* never accepted: the agent resends it */
            cw_conn_pause(c, PAUSE_STOPPING);
        }
        try_finish(l);
        break;
    }
    }
}

/* During shutdown: once no connection of this loop waits for the spool,
 * close them all (their last acks are flushed by the transport's close)
 * and the loop's own handles, which ends uv_run. */
static void try_finish(cw_ingest_loop *l)
{
    if (uv_is_closing((uv_handle_t *)&l->sweep)) return; /* already drained */
    for (cw_conn *c = l->conns; c; c = c->next)
        if (c->outstanding > 0) return;
    for (cw_conn *c = l->conns; c; c = c->next) cw_conn_close(c);
    uv_close((uv_handle_t *)&l->sweep, NULL);
    /* The mailbox stays open: other loops may still route acks here until
     * every loop has drained (cw_ingest_stop then sends MSG_CLOSE). */
    cw_ingest *in = l->in;
    pthread_mutex_lock(&in->stop_lock);
    in->drained++;
    pthread_cond_signal(&in->stop_cond);
    pthread_mutex_unlock(&in->stop_lock);
}

static void on_sweep(uv_timer_t *t)
{
    cw_ingest_loop *l = t->data;
    cw_ingest *in = l->in;
    /* Resume connections paused for the global in-flight limit once the
     * total is back under 3/4 of it. */
    int64_t total = atomic_load(&in->inflight);
    if (total <= (int64_t)(in->cfg.total_inflight_bytes / 4 * 3)) {
        for (cw_conn *c = l->conns; c; c = c->next)
            if (c->pause & PAUSE_GLOBAL) cw_conn_unpause(c, PAUSE_GLOBAL);
    }
    if (++l->ticks % (1000 / SWEEP_MS)) return;

    /* Once a second: timeouts and the rejection-log budget. */
    if (l->log_suppressed) {
        cw_warn("ingest", "%u more rejections not logged in the last second", l->log_suppressed);
        l->log_suppressed = 0;
    }
    l->log_budget = LOG_BUDGET;
    uint64_t now = cw_now_ms();
    cw_conn *next;
    for (cw_conn *c = l->conns; c; c = next) {
        next = c->next;
        if (c->closing) continue;
        if (!c->agent && now - c->created_ms > in->cfg.handshake_timeout_ms)
            cw_conn_reject(c, CW_REJ_HANDSHAKE_TIMEOUT,
                           CHAINWATCH__V1__ERROR_CODE__ERROR_HANDSHAKE_TIMEOUT,
                           "no Hello within %u ms", in->cfg.handshake_timeout_ms);
        /* A connection we paused is idle by our doing, not the agent's. */
        else if (!c->pause && now - c->active_ms > in->cfg.idle_timeout_ms)
            cw_conn_reject(c, CW_REJ_IDLE_TIMEOUT, CHAINWATCH__V1__ERROR_CODE__ERROR_IDLE_TIMEOUT,
                           "nothing received for %u ms", in->cfg.idle_timeout_ms);
    }
}

static void loop_main(void *arg)
{
    cw_ingest_loop *l = arg;
    pthread_setname_np(pthread_self(), "cw-ingest"); /* for top -H and the benchmarks */
    uv_run(&l->loop, UV_RUN_DEFAULT);
}

/* Spool thread: post one MSG_SPACE per loop (coalesced). */
static void on_spool_space(void *ud)
{
    cw_ingest *in = ud;
    /* post_lock keeps this from racing with the mailboxes' close. */
    pthread_mutex_lock(&in->stop_lock);
    for (int i = 0; i < in->nloops && !in->closed; i++) {
        cw_ingest_loop *l = &in->loops[i];
        if (atomic_exchange(&l->space_posted, 1) == 0) {
            l->space_msg.type = MSG_SPACE;
            cw_mailbox_post(&l->mb, &l->space_msg);
        }
    }
    pthread_mutex_unlock(&in->stop_lock);
}

static int make_listener(cw_ingest_loop *l, const struct sockaddr_storage *ss, char *err,
                         size_t errlen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (const struct sockaddr *)ss,
             ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in)) < 0) {
        snprintf(err, errlen, "agent listener %s: %s", l->in->cfg.agent_listen, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    uv_tcp_init(&l->loop, &l->listener);
    l->listener.data = l;
    int rc = uv_tcp_open(&l->listener, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&l->listener, 1024, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "agent listener %s: %s", l->in->cfg.agent_listen, uv_strerror(rc));
        return -1;
    }
    return 0;
}

int cw_ingest_create(cw_ingest **out, const cw_config *cfg, cw_spool *spool, cw_registry *reg,
                     char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (cw_config_parse_addr(cfg->agent_listen, &ss) < 0) {
        snprintf(err, errlen, "agent_listen: '%s' is not HOST:PORT", cfg->agent_listen);
        return -1;
    }
    cw_ingest *in = calloc(1, sizeof *in);
    if (!in) return -1;
    in->cfg = *cfg;
    pthread_mutex_init(&in->stop_lock, NULL);
    pthread_cond_init(&in->stop_cond, NULL);
    in->spool = spool;
    in->reg = reg;
    in->nloops = cw_config_ingest_threads(cfg);
    in->loops = calloc((size_t)in->nloops, sizeof *in->loops);
    if (!in->loops) {
        free(in);
        return -1;
    }
    *out = in;
    for (int i = 0; i < in->nloops; i++) {
        cw_ingest_loop *l = &in->loops[i];
        l->in = in;
        l->index = i;
        uv_loop_init(&l->loop);
        in->ninit = i + 1;
        uint32_t n = cfg->max_connections;
        l->slots = calloc(n, sizeof *l->slots);
        l->free_slots = malloc(n * sizeof *l->free_slots);
        if (!l->slots || !l->free_slots) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (uint32_t s = 0; s < n; s++) l->free_slots[s] = n - 1 - s;
        l->nfree = n;
        l->log_budget = LOG_BUDGET;
        cw_arena_init(&l->arena, cfg->decode_arena_bytes);
        cw_mailbox_init(&l->loop, &l->mb, on_mail, l);
        uv_timer_init(&l->loop, &l->sweep);
        l->sweep.data = l;
        if (i > 0 && ((struct sockaddr_in *)&ss)->sin_port == 0) {
            /* Port 0: every loop must share the port the first one got. */
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)in->port);
        }
        if (make_listener(l, &ss, err, errlen) < 0) return -1;
        if (i == 0) {
            struct sockaddr_storage bound;
            int len = sizeof bound;
            uv_tcp_getsockname(&l->listener, (struct sockaddr *)&bound, &len);
            in->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        }
    }
    return cw_spool_add_space_listener(spool, on_spool_space, in) < 0 ? -1 : 0;
}

int cw_ingest_port(const cw_ingest *in)
{
    return in->port;
}

int cw_ingest_start(cw_ingest *in)
{
    for (int i = 0; i < in->nloops; i++) {
        cw_ingest_loop *l = &in->loops[i];
        uv_timer_start(&l->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
        if (uv_thread_create(&l->thread, loop_main, l) != 0) return -1;
        in->started = 1;
    }
    cw_info("ingest", "listening for agents on %s (port %d) with %d loop threads",
            in->cfg.agent_listen, in->port, in->nloops);
    return 0;
}

void cw_ingest_stop(cw_ingest *in)
{
    if (!in->started) return;
    /* Phase 1: every loop stops reading and waits for its batches to be
     * durable and acked, then closes its connections. */
    for (int i = 0; i < in->nloops; i++) {
        in->loops[i].stop_msg.type = MSG_STOP;
        cw_mailbox_post(&in->loops[i].mb, &in->loops[i].stop_msg);
    }
    pthread_mutex_lock(&in->stop_lock);
    while (in->drained < in->nloops) pthread_cond_wait(&in->stop_cond, &in->stop_lock);
    /* Phase 2: nothing posts across loops any more; close the mailboxes. */
    in->closed = 1;
    pthread_mutex_unlock(&in->stop_lock);
    for (int i = 0; i < in->nloops; i++) {
        in->loops[i].close_msg.type = MSG_CLOSE;
        cw_mailbox_post(&in->loops[i].mb, &in->loops[i].close_msg);
    }
    for (int i = 0; i < in->nloops; i++) uv_thread_join(&in->loops[i].thread);
    in->started = 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

void cw_ingest_free(cw_ingest *in)
{
    if (!in) return;
    for (int i = 0; i < in->ninit; i++) {
        cw_ingest_loop *l = &in->loops[i];
        /* After a stop only closed handles remain; after a failed create,
         * handles that never ran still need closing. */
        uv_walk(&l->loop, close_any, NULL);
        uv_run(&l->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&l->loop) != 0) cw_warn("ingest", "loop %d: handles left open", i);
        cw_arena_destroy(&l->arena);
        free(l->slots);
        free(l->free_slots);
    }
    pthread_mutex_destroy(&in->stop_lock);
    pthread_cond_destroy(&in->stop_cond);
    free(in->loops);
    free(in);
}
