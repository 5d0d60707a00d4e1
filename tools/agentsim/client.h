/* client: one simulated agent's connection to chainwatchd's agent port.
 *
 * Speaks the real protocol (proto/chainwatch.proto): Hello first, then waits
 * for the server's Ack{acked_seq}; drops the queued batches with seq <= that
 * (they are durable, reported as acked), (re)sends the rest in order, then new
 * ones. Every batch stays in a bounded queue, encoded, until a cumulative Ack
 * covers it, so a lost connection loses nothing: the client reconnects with
 * exponential backoff (100 ms doubling to 5 s, with jitter) and resends.
 * Batch seqs start at `first_seq` (1 for an agent id the server has never
 * seen) and grow by one per batch. A Heartbeat goes out when the connection
 * has been idle for half the heartbeat interval, checked every interval
 * (default 30 s), so the gap never exceeds 1.5 intervals (< the server's 90 s).
 *
 * Backpressure: at most `write_high_water` bytes are handed to libuv's write
 * queue; the rest wait in the client's queue. sim_client_has_room() turns
 * false when unacked bytes or batches reach their limits, or when batches are
 * waiting for the socket; the `room` callback says when it is true again.
 *
 * Errors from the server are logged with their code and message. Codes that
 * would repeat on every reconnect (bad hello, seq gap/regression, bad or
 * unknown event, too many events, frame too large, decode error, superseded)
 * stop the client for good (`failed`); the others (timeouts, shutting down)
 * and lost connections lead to a reconnect. An Ack above the highest seq
 * ever written for this agent id (first_seq - 1 before the first write) is
 * also fatal: the server holds batches this agent never sent, i.e. the agent
 * id was used before (an earlier run), and new batches would be silently
 * dropped as duplicates.
 *
 * Threads: everything, callbacks included, runs on the loop thread of `loop`.
 * Ownership: the client copies the Hello strings; sim_client_close() releases
 * everything once libuv has closed its handles, then calls `closed`.
 */
#ifndef SIM_CLIENT_H
#define SIM_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "chainwatch.pb-c.h"

typedef struct sim_client sim_client;

typedef struct sim_hello {
    const char *agent_id; /* required */
    const char *hostname; /* required */
    const char *ip;       /* optional: ip_addresses = [ip] */
    const char *cloud, *region, *cluster, *node_name, *kernel, *agent_version, *os;
} sim_hello;

typedef struct sim_client_limits {
    size_t max_unacked_bytes;      /* encoded bytes awaiting an Ack; 0: 32 MiB */
    size_t max_unacked_batches;    /* 0: 65536 */
    size_t write_high_water;       /* bytes in libuv's write queue; 0: 1 MiB */
    uint64_t heartbeat_ms;         /* 0: 30000 */
    uint64_t handshake_timeout_ms; /* connect + Hello answered; 0: 10000 */
} sim_client_limits;

typedef struct sim_client_cbs {
    /* Batch `seq` of `nevents` events is durable. `first_sent_ns` is the
     * uv_hrtime() of its first write (0 if it was never written on this
     * client, i.e. the server already had it). */
    void (*acked)(void *user, sim_client *c, uint64_t seq, uint32_t nevents,
                  uint64_t first_sent_ns);
    /* sim_client_has_room() returned 0 earlier and is now 1. */
    void (*room)(void *user, sim_client *c);
    /* The client stopped for good; it keeps its queue for counting. */
    void (*failed)(void *user, sim_client *c);
    /* After sim_client_close(): the last call before the client is freed. */
    void (*closed)(void *user, sim_client *c);
} sim_client_cbs;

typedef struct sim_client_stats {
    uint64_t batches_queued;
    uint64_t batches_acked;
    uint64_t events_queued;
    uint64_t events_acked;
    uint64_t connects;   /* Hellos answered */
    uint64_t reconnects; /* connections lost after a Hello was answered */
} sim_client_stats;

/* Creates a client (not yet connecting). `server` is copied. Returns NULL
 * when memory runs out or the Hello is invalid (no agent_id or hostname). */
sim_client *sim_client_new(uv_loop_t *loop, const struct sockaddr *server,
                           const sim_hello *hello, uint64_t first_seq,
                           const sim_client_limits *limits, const sim_client_cbs *cbs,
                           void *user);
/* Starts connecting; from then on the client keeps itself connected. */
int sim_client_start(sim_client *c);

/* Queues one batch of `n` events (the caller keeps the events; they are
 * encoded now) under the next seq, and sends it when connected. Returns 0,
 * -EMSGSIZE when the batch would exceed the 4 MiB frame limit, -ENOBUFS when
 * the unacked limits are reached, -EPIPE after failure or close, -ENOMEM. */
int sim_client_send(sim_client *c, Chainwatch__V1__Event *const *events, size_t n);

/* 1 when a batch may be queued now without passing a limit (see above). A 0
 * arms the `room` callback. */
int sim_client_has_room(sim_client *c);
/* 1 when connected and the Hello has been answered. */
int sim_client_ready(const sim_client *c);
int sim_client_failed(const sim_client *c);
size_t sim_client_unacked(const sim_client *c);
/* The seq the next batch will get. */
uint64_t sim_client_next_seq(const sim_client *c);
const char *sim_client_agent_id(const sim_client *c);
const sim_client_stats *sim_client_get_stats(const sim_client *c);

/* Disconnects and frees the client asynchronously; see `closed`. */
void sim_client_close(sim_client *c);

#endif
