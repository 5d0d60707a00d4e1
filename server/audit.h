/* audit: the Kubernetes audit webhook's payload: validating the cluster
 * name, parsing a POSTed body into events, and the de-duplication key of an
 * event. audit_intake.h takes a request through the spool to its response.
 *
 * Parsing (cw_audit_parse)
 * - The body is an audit.k8s.io EventList ({"kind":"EventList","items":[...]})
 *   or a single Event object; both are accepted (see
 *   shared/reference/k8s-audit.md). A list is recognised by kind "EventList",
 *   or, when kind is absent, by an "items" member. "items": null is an empty
 *   list (Go marshals an empty slice that way).
 * - The whole request is refused (CW_AUDIT_EMALFORMED, HTTP 400) only when it
 *   is structurally not an audit payload: not JSON, not an object, "items"
 *   not an array, an item not an object. An item that is an object but has
 *   no usable "auditID" or "stage" string (non-empty, no NUL, at most
 *   CW_AUDIT_ID_MAX / CW_AUDIT_STAGE_MAX bytes) is skipped and counted in
 *   n_invalid: the API server retries a refused batch forever, so refusing
 *   the batch for one odd event would stall every later event of the cluster.
 * - For the same reason, JSON that Go's encoder can emit but jansson refuses
 *   (the API server embeds a client's raw patch document in requestObject)
 *   is repaired rather than refused: see json_repair.h.
 *   "\u0000" in strings is allowed; duplicate keys are allowed (the last one
 *   wins), because the stored record is jansson's own re-serialisation, so
 *   every later reader sees exactly the value de-duplication saw.
 * - Memory: jansson's tree can take ~70x the body for hostile shapes
 *   ([{},{},...]); real events take 7-9x. Before parsing, the tree's size is
 *   estimated from the tokens (cw_audit_tree_cost, an upper bound; real
 *   events come to 13-16x the body); past CW_AUDIT_PARSE_MEM_FACTOR x body +
 *   1 MiB the body is refused with CW_AUDIT_ETOOBIG (HTTP 413; only a
 *   hostile raw patch can get there from a real API server, and its
 *   operator can turn on --audit-webhook-truncate-enabled). Nesting is
 *   limited by jansson itself (2048 levels, a fixed compile-time limit):
 *   deeper input is CW_AUDIT_EMALFORMED.
 * - Each accepted event is re-serialised compactly (JSON_COMPACT) into one
 *   buffer owned by the batch.
 *
 * De-duplication
 * - The API server redelivers a whole batch after an error or a timeout, so
 *   stored events are remembered (dedupe.h) and a redelivered event is
 *   dropped. The key (cw_audit_event_key) is a SHA-256 digest of (cluster,
 *   auditID, stage, the event's compact JSON). The content is part of the key
 *   on purpose: a client may choose its own auditID (the Audit-ID request
 *   header), so an attacker reusing a benign request's auditID must not get
 *   their event dropped as a "duplicate". Redelivered events are
 *   byte-identical, so they still match.
 *
 * Threads: everything here may run on any thread.
 * Errors: 0 or a negative CW_AUDIT_E* code.
 */
#ifndef CW_AUDIT_H
#define CW_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "server/dedupe.h"

#define CW_AUDIT_EMALFORMED (-22) /* -EINVAL: HTTP 400 */
#define CW_AUDIT_ETOOBIG (-7)     /* -E2BIG: HTTP 413 */
#define CW_AUDIT_ENOMEM (-12)     /* -ENOMEM: HTTP 503 */

#define CW_AUDIT_CLUSTER_MAX 63
#define CW_AUDIT_ID_MAX 128   /* UIDs are 36 bytes; a client-chosen Audit-ID can be longer */
#define CW_AUDIT_STAGE_MAX 64
/* Parse budget: FACTOR x body + BASE bytes of estimated jansson memory. */
#define CW_AUDIT_PARSE_MEM_FACTOR 24
#define CW_AUDIT_PARSE_MEM_BASE (1u << 20)

typedef struct cw_audit_event {
    const char *json; /* compact JSON of the event, NUL-terminated */
    size_t json_len;
    const char *audit_id; /* NUL-terminated, no embedded NUL */
    size_t audit_id_len;
    const char *stage;
    size_t stage_len;
} cw_audit_event;

typedef struct cw_audit_batch {
    cw_audit_event *events;
    size_t n_events;
    size_t n_invalid;  /* items skipped: no usable auditID or stage */
    int repaired;      /* the body needed repairs (see above) to parse */
    size_t mem_bytes;  /* heap held by this batch */
    char *data;        /* backing store of every string above */
} cw_audit_batch;

/* 1 if `s` (len bytes) is a valid cluster name: 1-63 of [a-z0-9._-]. */
int cw_audit_cluster_valid(const char *s, size_t len);

/* An upper bound of the heap jansson takes to parse s[0..len) (see above). */
size_t cw_audit_tree_cost(const char *s, size_t len);

/* Parses `body` (len bytes, need not be NUL-terminated) into *out. On error
 * returns a negative CW_AUDIT_E* code with a one-line reason in err
 * (printable ASCII, with line:column for JSON syntax errors) and leaves *out
 * empty. cw_audit_batch_free() is safe on an empty batch. */
int cw_audit_parse(const char *body, size_t len, cw_audit_batch *out, char *err, size_t errlen);
void cw_audit_batch_free(cw_audit_batch *b);

/* The de-duplication key of `ev` received for `cluster` (see above). */
void cw_audit_event_key(const char *cluster, size_t cluster_len, const cw_audit_event *ev,
                        uint8_t key[CW_DEDUPE_KEY_LEN]);

#endif
