/* audit_intake: takes a Kubernetes audit webhook POST from its body to its
 * response. One intake per HTTP loop. For each request it parses the body
 * (audit.h), drops redelivered events (dedupe.h), submits each new event to
 * the spool as a CW_REC_AUDIT record (key = cluster, seq 0, time_ns = receive
 * time), parks the request while the spool is full, and answers once every
 * submitted record is durable. Statuses, limits and backpressure are listed
 * in http.h, which is the only user.
 *
 * Metrics: counts malformed (400), too_large (413 from the parse budget; the
 * HTTP layer counts h2o's own 413s) and unavailable (503) requests,
 * duplicate and invalid events, and adds the stored events to
 * events_received{source="k8s_audit"} once they are durable.
 *
 * Memory: a request's batch and records live until its last done callback,
 * even if the client went away (cw_audit_intake_detach()).
 *
 * Threads: everything runs on the loop's thread, except the spool's done
 * callbacks (writer thread), which only post the request to the loop's
 * mailbox.
 */
#ifndef CW_AUDIT_INTAKE_H
#define CW_AUDIT_INTAKE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/mailbox.h"
#include "storage/spool.h"

typedef struct cw_audit_intake cw_audit_intake;
typedef struct cw_audit_req cw_audit_req; /* one POST in flight */

/* cw_msg.type of the messages the intake posts to its mailbox: hand them to
 * cw_audit_intake_on_msg(). */
#define CW_AUDIT_MSG 0x41554454

typedef struct cw_audit_intake_opts {
    uv_loop_t *loop;
    cw_mailbox *mailbox; /* the loop's; must stay open while requests are in flight */
    cw_spool *spool;
    uint32_t dedupe_entries;
    uint64_t inflight_max; /* bytes of parsed events waiting for the spool */
    uint32_t max_parked;
    uint32_t park_timeout_ms;
    /* Loop thread: sends the response for the request `conn` stands for.
     * `body` is JSON. Called exactly once per cw_audit_intake_post(), unless
     * cw_audit_intake_detach() came first. */
    void (*respond)(void *ud, void *conn, int status, const char *body, size_t len);
    void *ud;
} cw_audit_intake_opts;

int cw_audit_intake_create(cw_audit_intake **out, const cw_audit_intake_opts *opts);
/* After every request finished (cw_audit_intake_inflight() == 0). */
void cw_audit_intake_free(cw_audit_intake *in);
/* Handles one POST for a valid cluster name. respond() may run before this
 * returns; then the result is NULL. Otherwise the result identifies the
 * request until respond() runs, for cw_audit_intake_detach(). */
cw_audit_req *cw_audit_intake_post(cw_audit_intake *in, const char *cluster, size_t cluster_len,
                                   const char *body, size_t len, void *conn);
/* The client went away: finish the request's writes, but send nothing. */
void cw_audit_intake_detach(cw_audit_req *r);
/* A message of type CW_AUDIT_MSG arrived on the mailbox. */
void cw_audit_intake_on_msg(cw_audit_intake *in, cw_msg *msg);
/* The spool has room again: resume parked requests. */
void cw_audit_intake_on_space(cw_audit_intake *in);
/* Call about once a second: retries the oldest parked request and answers
 * those parked too long with 503. */
void cw_audit_intake_tick(cw_audit_intake *in);
/* From now on new requests get 503 and parked ones are given up (answered
 * 503 once what they already submitted is durable). */
void cw_audit_intake_stop(cw_audit_intake *in);
/* Requests not finished yet (answered or detached, and every write done). */
size_t cw_audit_intake_inflight(const cw_audit_intake *in);

#endif
