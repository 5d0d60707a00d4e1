/* session: the agent protocol on top of frames (see proto/README.md).
 *
 * Hello registers the connection as the agent's current one and answers
 * with the durable high-water mark; batches are checked for sequence and
 * content, handed to the spool, and acknowledged (cumulatively) once the
 * spool says they are durable. All functions run on the connection's loop
 * thread; the only cross-thread state touched is the registry (under its
 * lock) and the spool (thread-safe submit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chainwatch.pb-c.h"
#include "common/log.h"
#include "server/ingest_int.h"

#define EC(x) CHAINWATCH__V1__ERROR_CODE__ERROR_##x

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cw_session_send_ack(cw_conn *c, uint64_t seq)
{
    Chainwatch__V1__Ack a = CHAINWATCH__V1__ACK__INIT;
    a.has_acked_seq = 1;
    a.acked_seq = seq;
    Chainwatch__V1__ServerFrame f = CHAINWATCH__V1__SERVER_FRAME__INIT;
    f.msg_case = CHAINWATCH__V1__SERVER_FRAME__MSG_ACK;
    f.ack = &a;
    cw_conn_send(c, &f);
}

/* Copies a peer string for display fields: bounded, printable ASCII only,
 * so logs and JSON built from it stay well-formed. */
static void copy_display(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    dst[i] = 0;
}

/* The body of a sub-message: in the canonical encoding an AgentFrame is
 * exactly <tag><varint length><message>, so the message bytes can be
 * spooled without re-encoding. Anything else (unknown fields, padding) is
 * re-packed from the decoded message. */
static uint8_t *sub_body(const uint8_t *frame, size_t len, uint8_t tag, const ProtobufCMessage *m,
                         size_t *out_len)
{
    if (len >= 2 && frame[0] == tag) {
        uint64_t n = 0;
        size_t i = 1;
        for (int shift = 0; i < len && i <= 10; i++, shift += 7) {
            n |= (uint64_t)(frame[i] & 0x7f) << shift;
            if (!(frame[i] & 0x80)) {
                i++;
                break;
            }
        }
        if (n == len - i) {
            uint8_t *p = malloc(n ? n : 1);
            if (p) memcpy(p, frame + i, n);
            *out_len = n;
            return p;
        }
    }
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = malloc(n ? n : 1);
    if (p) protobuf_c_message_pack(m, p);
    *out_len = n;
    return p;
}

static void on_spool_done(cw_spool_req *req)
{
    /* Spool writer thread: hand the record back to its loop. */
    cw_rec *r = req->user;
    r->msg.type = MSG_DONE;
    cw_mailbox_post(&r->conn->loop->mb, &r->msg);
}

static cw_rec *rec_new(cw_conn *c, uint8_t kind, uint64_t seq, uint8_t *body, size_t len,
                       uint32_t events)
{
    cw_rec *r = calloc(1, sizeof *r);
    if (!r) {
        free(body);
        return NULL;
    }
    r->conn = c;
    r->body = body;
    r->events = events;
    r->size = len + sizeof *r;
    r->req.kind = kind;
    r->req.key = c->agent->id;
    r->req.key_len = (uint8_t)strlen(c->agent->id);
    r->req.seq = seq;
    r->req.time_ns = wall_ns();
    r->req.body = body;
    r->req.body_len = (uint32_t)len;
    r->req.done = on_spool_done;
    r->req.user = r;
    return r;
}

static void rec_free(cw_rec *r)
{
    free(r->body);
    free(r);
}

/* Submits r. The caller holds the registry lock when order matters. */
static int submit(cw_conn *c, cw_rec *r)
{
    int rc = cw_spool_submit(c->loop->in->spool, &r->req);
    if (rc != CW_SPOOL_OK) return rc;
    cw_ingest *in = c->loop->in;
    c->outstanding++;
    c->inflight += r->size;
    int64_t total = atomic_fetch_add(&in->inflight, (int64_t)r->size) + (int64_t)r->size;
    cw_metric_add(cw_m.ingest_inflight_bytes, (int64_t)r->size);
    if (c->inflight > in->cfg.conn_inflight_bytes) cw_conn_pause(c, PAUSE_INFLIGHT);
    if (total > (int64_t)in->cfg.total_inflight_bytes) cw_conn_pause(c, PAUSE_GLOBAL);
    return 0;
}

/* A record the spool refused stays with the connection, which stops reading
 * (and keeps later frames buffered) until the spool has room again. */
static int hold(cw_conn *c, cw_rec *r)
{
    c->pending = r;
    cw_conn_pause(c, PAUSE_SPOOL);
    return CW_FRAME_STOP;
}

static int on_hello(cw_conn *c, Chainwatch__V1__Hello *h, const uint8_t *frame, size_t len)
{
    cw_ingest *in = c->loop->in;
    if (c->agent) {
        cw_conn_reject(c, CW_REJ_BAD_HELLO, EC(BAD_HELLO), "second Hello on one connection");
        return CW_FRAME_ABORT;
    }
    size_t idlen = h->agent_id ? strlen(h->agent_id) : 0;
    if (idlen == 0 || idlen > CW_AGENT_ID_MAX || !h->hostname || !h->hostname[0]) {
        cw_conn_reject(c, CW_REJ_BAD_HELLO, EC(BAD_HELLO),
                       "Hello needs agent_id (1-%d bytes) and hostname", CW_AGENT_ID_MAX);
        return CW_FRAME_ABORT;
    }
    for (size_t i = 0; i < idlen; i++) {
        unsigned char ch = (unsigned char)h->agent_id[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            cw_conn_reject(c, CW_REJ_BAD_HELLO, EC(BAD_HELLO),
                           "agent_id must be printable ASCII without spaces");
            return CW_FRAME_ABORT;
        }
    }
    if (h->has_protocol_version && h->protocol_version > 1) {
        cw_conn_reject(c, CW_REJ_BAD_HELLO, EC(BAD_HELLO), "protocol version %u not supported",
                       h->protocol_version);
        return CW_FRAME_ABORT;
    }
    cw_registry *reg = in->reg;
    cw_registry_lock(reg);
    cw_agent *a = cw_registry_get(reg, h->agent_id, idlen, 1);
    if (!a) {
        cw_registry_unlock(reg);
        cw_conn_reject(c, CW_REJ_BAD_HELLO, EC(BAD_HELLO), "too many agents");
        return CW_FRAME_ABORT;
    }
    int old_loop = a->loop;
    uint64_t old_conn = a->conn_id;
    if (old_conn == CW_NO_CONN) cw_metric_add(cw_m.agents_connected, 1);
    a->loop = c->loop->index;
    a->conn_id = c->id;
    a->connected_ns = a->last_seen_ns = wall_ns();
    copy_display(a->hostname, sizeof a->hostname, h->hostname);
    copy_display(a->cluster, sizeof a->cluster, h->cluster);
    copy_display(a->cloud, sizeof a->cloud, h->cloud);
    copy_display(a->region, sizeof a->region, h->region);
    copy_display(a->agent_version, sizeof a->agent_version, h->agent_version);
    copy_display(a->ip, sizeof a->ip, h->n_ip_addresses ? h->ip_addresses[0] : "");
    uint64_t durable = a->durable;
    c->agent = a;
    /* The Hello goes into the spool before any batch of this connection, so
     * the pipeline always knows an agent's context before its events. */
    size_t blen;
    uint8_t *body = sub_body(frame, len, 0x0a, &h->base, &blen);
    cw_rec *r = body ? rec_new(c, CW_REC_HELLO, 0, body, blen, 0) : NULL;
    int rc = r ? submit(c, r) : CW_SPOOL_IO;
    cw_registry_unlock(reg);

    /* The same agent on another connection (a reconnect the old socket has
     * not noticed yet): that one goes. */
    if (old_conn != CW_NO_CONN) {
        cw_conn_msg *m = malloc(sizeof *m);
        if (m) {
            m->msg.type = MSG_SUPERSEDE;
            m->conn_id = old_conn;
            cw_mailbox_post(&in->loops[old_loop].mb, &m->msg);
        }
    }
    c->framer.max_frame = in->cfg.max_frame_bytes;
    cw_session_send_ack(c, durable);
    if (!r) {
        cw_conn_close(c);
        return CW_FRAME_ABORT;
    }
    if (rc == CW_SPOOL_FULL) return hold(c, r);
    if (rc != CW_SPOOL_OK) {
        rec_free(r);
        cw_conn_close(c);
        return CW_FRAME_ABORT;
    }
    return CW_FRAME_CONTINUE;
}

/* Required content per event type: what every consumer relies on. */
static const char *check_event(const Chainwatch__V1__Event *e)
{
    if (!e->has_time_ns || e->time_ns <= 0) return "event without time_ns";
    switch (e->payload_case) {
    case CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC:
        return e->process_exec->exe && e->process_exec->exe[0] ? NULL : "process_exec without exe";
    case CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXIT:
        return e->process_exit->has_pid ? NULL : "process_exit without pid";
    case CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT:
        return e->net_connect->dst_ip && e->net_connect->src_ip ? NULL
                                                                : "net_connect without addresses";
    case CHAINWATCH__V1__EVENT__PAYLOAD_NET_LISTEN:
        return e->net_listen->has_port ? NULL : "net_listen without port";
    case CHAINWATCH__V1__EVENT__PAYLOAD_DNS_QUERY:
        return e->dns_query->query ? NULL : "dns_query without query";
    case CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP:
        return e->file_op->path && e->file_op->op ? NULL : "file_op without op or path";
    case CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN:
        return e->login->user && e->login->has_success ? NULL : "login without user or success";
    case CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START:
        return e->container_start->container_id && e->container_start->container_id[0]
                   ? NULL
                   : "container_start without container_id";
    case CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_STOP:
        return e->container_stop->container_id ? NULL : "container_stop without container_id";
    default:
        return NULL; /* unknown types are reported separately */
    }
}

static int on_batch(cw_conn *c, Chainwatch__V1__EventBatch *b, const uint8_t *frame, size_t len)
{
    cw_ingest *in = c->loop->in;
    if (!b->has_seq || b->seq == 0) {
        cw_conn_reject(c, CW_REJ_BAD_EVENT, EC(BAD_EVENT), "batch without seq");
        return CW_FRAME_ABORT;
    }
    if (b->n_events > in->cfg.max_batch_events) {
        cw_conn_reject(c, CW_REJ_TOO_MANY_EVENTS, EC(TOO_MANY_EVENTS),
                       "batch of %zu events over the limit of %u", b->n_events,
                       in->cfg.max_batch_events);
        return CW_FRAME_ABORT;
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const Chainwatch__V1__Event *e = b->events[i];
        if (e->payload_case == CHAINWATCH__V1__EVENT__PAYLOAD__NOT_SET) {
            cw_conn_reject(c, CW_REJ_UNKNOWN_EVENT, EC(UNKNOWN_EVENT),
                           "batch %llu event %zu has no known type", (unsigned long long)b->seq,
                           i);
            return CW_FRAME_ABORT;
        }
        const char *why = check_event(e);
        if (why) {
            cw_conn_reject(c, CW_REJ_BAD_EVENT, EC(BAD_EVENT), "batch %llu event %zu: %s",
                           (unsigned long long)b->seq, i, why);
            return CW_FRAME_ABORT;
        }
    }
    if (b->seq <= c->last_seq) {
        cw_conn_reject(c, CW_REJ_SEQ_REGRESSION, EC(SEQ_REGRESSION),
                       "batch seq %llu after %llu on this connection",
                       (unsigned long long)b->seq, (unsigned long long)c->last_seq);
        return CW_FRAME_ABORT;
    }
    c->last_seq = b->seq;

    cw_registry *reg = in->reg;
    cw_registry_lock(reg);
    cw_agent *a = c->agent;
    a->last_seen_ns = wall_ns();
    if (a->conn_id != c->id) {
        /* Superseded by a newer connection: that one speaks for the agent. */
        cw_registry_unlock(reg);
        cw_conn_close(c);
        return CW_FRAME_ABORT;
    }
    if (b->seq <= a->accepted) {
        /* A resend of something already accepted: drop it; the ack comes
         * now if it is durable, or when it becomes durable. */
        uint64_t durable = a->durable;
        cw_registry_unlock(reg);
        cw_metric_add(cw_m.batches_duplicate, 1);
        if (b->seq <= durable) cw_session_send_ack(c, durable);
        return CW_FRAME_CONTINUE;
    }
    if (b->seq > a->accepted + 1) {
        uint64_t expected = a->accepted + 1;
        cw_registry_unlock(reg);
        cw_conn_reject(c, CW_REJ_SEQ_GAP, EC(SEQ_GAP), "batch seq %llu, expected %llu",
                       (unsigned long long)b->seq, (unsigned long long)expected);
        return CW_FRAME_ABORT;
    }
    size_t blen;
    uint8_t *body = sub_body(frame, len, 0x12, &b->base, &blen);
    cw_rec *r = body ? rec_new(c, CW_REC_BATCH, b->seq, body, blen, (uint32_t)b->n_events) : NULL;
    if (!r) {
        cw_registry_unlock(reg);
        cw_conn_close(c);
        return CW_FRAME_ABORT;
    }
    /* Submitting under the registry lock keeps each agent's batches in seq
     * order in the spool even if two connections race. */
    int rc = submit(c, r);
    if (rc == CW_SPOOL_OK) a->accepted = b->seq;
    cw_registry_unlock(reg);
    if (rc == CW_SPOOL_FULL) return hold(c, r);
    if (rc != CW_SPOOL_OK) {
        rec_free(r);
        cw_conn_close(c);
        return CW_FRAME_ABORT;
    }
    return CW_FRAME_CONTINUE;
}

int cw_session_retry_pending(cw_conn *c)
{
    cw_rec *r = c->pending;
    if (!r) return 0;
    cw_registry *reg = c->loop->in->reg;
    cw_registry_lock(reg);
    cw_agent *a = c->agent;
    if (a->conn_id != c->id ||
        (r->req.kind == CW_REC_BATCH && r->req.seq != a->accepted + 1)) {
        /* Someone else speaks for this agent now; let the agent resend. */
        cw_registry_unlock(reg);
        cw_conn_close(c);
        return -1;
    }
    int rc = submit(c, r);
    if (rc == CW_SPOOL_OK && r->req.kind == CW_REC_BATCH) a->accepted = r->req.seq;
    cw_registry_unlock(reg);
    if (rc == CW_SPOOL_FULL) return 1;
    c->pending = NULL;
    if (rc != CW_SPOOL_OK) {
        rec_free(r);
        cw_conn_close(c);
        return -1;
    }
    return 0;
}

void cw_session_drop_pending(cw_conn *c)
{
    if (c->pending) {
        rec_free(c->pending);
        c->pending = NULL;
    }
}

static void route_ack(cw_ingest_loop *l, int loop, uint64_t conn_id, uint64_t seq)
{
    if (conn_id == CW_NO_CONN) return;
    if (loop == l->index) {
        cw_conn *c = cw_conn_find(l, conn_id);
        if (c && !c->closing) cw_session_send_ack(c, seq);
        return;
    }
    cw_conn_msg *m = malloc(sizeof *m);
    if (!m) return;
    m->msg.type = MSG_ACK;
    m->conn_id = conn_id;
    m->seq = seq;
    cw_mailbox_post(&l->in->loops[loop].mb, &m->msg);
}

void cw_session_on_done(cw_ingest_loop *l, cw_rec *r)
{
    cw_conn *c = r->conn;
    cw_ingest *in = l->in;
    cw_registry *reg = in->reg;
    cw_agent *a = c->agent;
    if (r->req.status == CW_SPOOL_OK) {
        if (r->req.kind == CW_REC_BATCH) {
            cw_registry_lock(reg);
            if (r->req.seq > a->durable) a->durable = r->req.seq;
            a->events += r->events;
            a->batches++;
            int loop = a->loop;
            uint64_t conn_id = a->conn_id, durable = a->durable;
            cw_registry_unlock(reg);
            cw_metric_add(cw_m.events_received[CW_SRC_AGENT], r->events);
            cw_metric_add(cw_m.batches_accepted, 1);
            route_ack(l, loop, conn_id, durable);
        }
    } else {
        /* Not durable: forget it was accepted so the agent's resend after
         * reconnecting is taken, and drop the connection to make it resend. */
        cw_registry_lock(reg);
        if (r->req.kind == CW_REC_BATCH && a->accepted >= r->req.seq) a->accepted = a->durable;
        cw_registry_unlock(reg);
        cw_error("ingest", "agent %s: spool write failed; closing so the agent resends", a->id);
        cw_conn_close(c);
    }
    c->outstanding--;
    c->inflight -= r->size;
    atomic_fetch_sub(&in->inflight, (int64_t)r->size);
    cw_metric_add(cw_m.ingest_inflight_bytes, -(int64_t)r->size);
    rec_free(r);
    if (c->closed) {
        cw_conn_maybe_free(c);
        return;
    }
    if ((c->pause & PAUSE_INFLIGHT) && c->inflight <= in->cfg.conn_inflight_bytes / 2)
        cw_conn_unpause(c, PAUSE_INFLIGHT);
}

int cw_session_on_frame(void *conn, const uint8_t *frame, size_t len)
{
    cw_conn *c = conn;
    cw_ingest_loop *l = c->loop;
    if (c->closing) return CW_FRAME_ABORT;
    Chainwatch__V1__AgentFrame *f =
        chainwatch__v1__agent_frame__unpack(&l->arena.pb, len, frame);
    int rc = CW_FRAME_CONTINUE;
    if (!f) {
        cw_conn_reject(c, CW_REJ_DECODE, EC(DECODE), "%s",
                       l->arena.exhausted ? "frame needs more than the decode memory limit"
                                          : "not a valid AgentFrame");
        rc = CW_FRAME_ABORT;
    } else if (f->msg_case == CHAINWATCH__V1__AGENT_FRAME__MSG_HELLO) {
        rc = on_hello(c, f->hello, frame, len);
    } else if (!c->agent && f->msg_case != CHAINWATCH__V1__AGENT_FRAME__MSG__NOT_SET) {
        cw_conn_reject(c, CW_REJ_NO_HELLO, EC(NO_HELLO), "first frame must be Hello");
        rc = CW_FRAME_ABORT;
    } else if (f->msg_case == CHAINWATCH__V1__AGENT_FRAME__MSG_BATCH) {
        rc = on_batch(c, f->batch, frame, len);
    } else if (f->msg_case == CHAINWATCH__V1__AGENT_FRAME__MSG_HEARTBEAT) {
        Chainwatch__V1__Heartbeat hb = CHAINWATCH__V1__HEARTBEAT__INIT;
        hb.has_time_ns = 1;
        hb.time_ns = wall_ns();
        Chainwatch__V1__ServerFrame out = CHAINWATCH__V1__SERVER_FRAME__INIT;
        out.msg_case = CHAINWATCH__V1__SERVER_FRAME__MSG_HEARTBEAT;
        out.heartbeat = &hb;
        cw_conn_send(c, &out);
    } else {
        cw_conn_reject(c, CW_REJ_DECODE, EC(DECODE), "empty or unknown frame");
        rc = CW_FRAME_ABORT;
    }
    /* Decoded messages live in the loop's arena, valid for this frame only. */
    cw_arena_reset(&l->arena);
    return rc;
}
