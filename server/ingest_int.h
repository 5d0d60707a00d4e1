/* Internal to the ingest module (ingest.c, conn.c, session.c): the loop and
 * connection structures. Everything here is owned by one ingest loop thread,
 * except where a field says otherwise.
 */
#ifndef CW_INGEST_INT_H
#define CW_INGEST_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "common/arena.h"
#include "common/config.h"
#include "common/mailbox.h"
#include "common/metrics.h"
#include "server/frame.h"
#include "server/ingest.h"
#include "server/registry.h"
#include "server/transport.h"
#include "chainwatch.pb-c.h"
#include "storage/spool.h"

typedef struct cw_ingest_loop cw_ingest_loop;
typedef struct cw_conn cw_conn;

/* Why a connection is not reading; it reads only when the mask is zero. */
enum {
    PAUSE_INFLIGHT = 1, /* this connection has too many bytes awaiting durability */
    PAUSE_GLOBAL = 2,   /* all connections together have too many */
    PAUSE_SPOOL = 4,    /* the spool refused a record; it is held in `pending` */
    PAUSE_WRITE = 8,    /* the peer is not reading our acks */
    PAUSE_STOPPING = 16 /* the server is shutting down */
};

/* Mailbox message types. */
enum { MSG_DONE = 1, MSG_ACK, MSG_SUPERSEDE, MSG_SPACE, MSG_STOP, MSG_CLOSE };

/* A record handed to the spool. The spool's done callback (writer thread)
 * posts `msg` to the owning loop, which then acks and frees it. */
typedef struct cw_rec {
    cw_spool_req req;
    cw_msg msg;
    cw_conn *conn;
    uint32_t events;
    size_t size; /* bytes counted as in flight */
    uint8_t *body; /* owned copy of the record body */
} cw_rec;

/* Loop-to-loop messages about a connection, identified by id because the
 * connection may be gone when the message arrives. */
typedef struct cw_conn_msg {
    cw_msg msg;
    uint64_t conn_id;
    uint64_t seq;
} cw_conn_msg;

struct cw_conn {
    cw_ingest_loop *loop;
    uv_tcp_t tcp;
    const cw_transport *tp;
    uint64_t id; /* (counter << 32) | (loop index << 24) | slot */
    cw_conn *prev, *next;
    char peer[64];
    cw_framer framer;
    cw_agent *agent; /* registry entry, set by Hello; registry entries are never freed */
    uint64_t last_seq; /* last batch seq on this connection */
    unsigned pause;
    int reading;
    int closing;  /* close started: no more frames */
    int closed;   /* libuv released the handle */
    int outstanding; /* cw_recs submitted, done not yet handled */
    uint64_t inflight;
    cw_rec *pending; /* refused by a full spool, retried on MSG_SPACE */
    uint64_t created_ms, active_ms;
};

struct cw_ingest_loop {
    cw_ingest *in;
    int index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_tcp_t listener;
    uv_timer_t sweep;
    unsigned ticks;
    cw_mailbox mb;
    cw_arena arena;
    cw_conn **slots;
    uint32_t *free_slots;
    uint32_t nfree;
    uint64_t next_id;
    cw_conn *conns;
    int stopping;
    uint32_t log_budget; /* rejection log lines left this second */
    uint32_t log_suppressed;
    cw_msg stop_msg, close_msg, space_msg;
    atomic_int space_posted;
    uint8_t readbuf[64 * 1024]; /* one read buffer per loop: reads are handled synchronously */
};

struct cw_ingest {
    cw_config cfg;
    cw_spool *spool;
    cw_registry *reg;
    int nloops;
    int ninit; /* loops whose uv_loop_init ran */
    int port;
    cw_ingest_loop *loops;
    _Atomic int64_t nconns;
    _Atomic int64_t inflight; /* bytes over all connections */
    int started;
    /* Shutdown hand-shake between cw_ingest_stop() and the loops. */
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    int drained; /* loops that finished draining */
    int closed;  /* mailboxes closing: nobody may post any more */
};

/* conn.c */
void cw_conn_accept(cw_ingest_loop *l);
cw_conn *cw_conn_find(cw_ingest_loop *l, uint64_t id);
void cw_conn_send(cw_conn *c, const void *server_frame);
void cw_conn_pause(cw_conn *c, unsigned reason);
void cw_conn_unpause(cw_conn *c, unsigned reason);
/* Sends an Error frame (code from ErrorCode), counts (reason >= 0: an
 * enum cw_reject; -1: not a rejection, not counted) and logs it, then
 * closes once the frame is written. */
void cw_conn_reject(cw_conn *c, int reason, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Closes after pending writes are flushed. */
void cw_conn_close(cw_conn *c);
void cw_conn_maybe_free(cw_conn *c);
uint64_t cw_now_ms(void);

/* session.c: the protocol on top of frames. */
int cw_session_on_frame(void *conn, const uint8_t *frame, size_t len);
void cw_session_on_done(cw_ingest_loop *l, cw_rec *r);
void cw_session_send_ack(cw_conn *c, uint64_t seq);
/* Retries a record the spool refused; returns 0 when it went in. */
int cw_session_retry_pending(cw_conn *c);
void cw_session_drop_pending(cw_conn *c);

#endif
