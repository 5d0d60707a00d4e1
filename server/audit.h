/* audit: the Kubernetes audit webhook's logic, free of any HTTP library:
 * validating the cluster name, parsing a POSTed body into events, and
 * remembering which events were already stored (de-duplication).
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
 *   no usable "auditID" or "stage" string is skipped and counted in
 *   n_invalid: the API server retries a refused batch forever, so refusing
 *   the batch for one odd event would stall every later event of the cluster.
 * - For the same reason, JSON that Go's encoder can emit but jansson refuses
 *   is repaired rather than refused: the API server embeds a client's raw
 *   patch document in requestObject, so an attacker controls those bytes.
 *   Invalid UTF-8 becomes U+FFFD, lone surrogate escapes become \uFFFD,
 *   numbers too large for jansson become strings holding the same digits.
 *   "\u0000" in strings is allowed; duplicate keys are allowed (the last one
 *   wins), because the stored record is jansson's own re-serialisation, so
 *   every later reader sees exactly the value de-duplication saw.
 * - Memory: jansson's tree can take ~70x the body for hostile shapes
 *   ([{},{},...]); real events take 7-9x. Parsing runs under a per-thread
 *   allocation budget (CW_AUDIT_PARSE_MEM_FACTOR x body + 1 MiB); past it the
 *   parse fails with CW_AUDIT_ETOOBIG (HTTP 413). Nesting is limited by
 *   jansson itself (2048 levels, a fixed compile-time limit): deeper input is
 *   CW_AUDIT_EMALFORMED.
 * - Each accepted event is re-serialised compactly (JSON_COMPACT) into one
 *   buffer owned by the batch.
 *
 * De-duplication (cw_audit_dedupe_*)
 * - The API server redelivers a whole batch when it saw an error or a
 *   timeout, so events are remembered by a key and a redelivered event is
 *   dropped. The key is a SHA-256 digest of (cluster, auditID, stage, the
 *   event's compact JSON). The content is part of the key on purpose: a
 *   client may choose its own auditID (the Audit-ID request header), so an
 *   attacker reusing a benign request's auditID must not get their event
 *   dropped as a "duplicate". Redelivered events are byte-identical.
 * - Bounded: `capacity` keys, the oldest forgotten first (FIFO ring).
 * - An entry is pending while its record is being written and durable once
 *   stored. Only durable entries make a later copy a duplicate; an entry whose
 *   write failed is forgotten, so the API server's retry stores it. A copy
 *   that arrives while the first is still pending is stored again: a rare
 *   double store is preferred to a lost event.
 *
 * Threads: cw_audit_parse() may run on any thread (the allocation budget is
 * thread-local). A dedupe set belongs to one thread (the HTTP loop).
 * Errors: 0 or a negative CW_AUDIT_E* code.
 */
#ifndef CW_AUDIT_H
#define CW_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#define CW_AUDIT_EMALFORMED (-22) /* -EINVAL: HTTP 400 */
#define CW_AUDIT_ETOOBIG (-7)     /* -E2BIG: HTTP 413 */
#define CW_AUDIT_ENOMEM (-12)     /* -ENOMEM: HTTP 503 */

#define CW_AUDIT_CLUSTER_MAX 63
#define CW_AUDIT_ID_MAX 128   /* UIDs are 36 bytes; a client-chosen Audit-ID can be longer */
#define CW_AUDIT_STAGE_MAX 64
#define CW_AUDIT_PARSE_MEM_FACTOR 24

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

/* Installs jansson allocation hooks that enforce the parse budget (plain
 * malloc/free wrappers, so other jansson users are unaffected). Process-wide
 * and idempotent; call it on the main thread before other threads use
 * jansson. cw_audit_parse() calls it too, for tests and tools. */
void cw_audit_global_init(void);

/* Parses `body` (len bytes, need not be NUL-terminated) into *out. On error
 * returns a negative CW_AUDIT_E* code with a one-line reason in err
 * (printable ASCII, with line:column for JSON syntax errors) and leaves *out
 * empty. cw_audit_batch_free() is safe on an empty batch. */
int cw_audit_parse(const char *body, size_t len, cw_audit_batch *out, char *err, size_t errlen);
void cw_audit_batch_free(cw_audit_batch *b);

#define CW_AUDIT_KEY_LEN 16

typedef struct cw_audit_dedupe cw_audit_dedupe;

/* Identifies an entry across evictions (a stale ref is ignored). */
typedef struct cw_audit_ref {
    uint32_t slot;
    uint32_t gen;
} cw_audit_ref;

enum { CW_AUDIT_NEW = 0, CW_AUDIT_PENDING = 1, CW_AUDIT_DUPLICATE = 2 };

int cw_audit_dedupe_create(cw_audit_dedupe **out, uint32_t capacity);
void cw_audit_dedupe_free(cw_audit_dedupe *d);
/* Computes the key of `ev` received for `cluster`. */
void cw_audit_dedupe_key(cw_audit_dedupe *d, const char *cluster, size_t cluster_len,
                         const cw_audit_event *ev, uint8_t key[CW_AUDIT_KEY_LEN]);
/* Looks `key` up: CW_AUDIT_DUPLICATE (stored before: drop it), else starts a
 * write of it (inserting it, evicting the oldest entry if full), fills *ref
 * and returns CW_AUDIT_NEW or CW_AUDIT_PENDING (another write of the same
 * key is under way). Every begin that did not return DUPLICATE needs one
 * cw_audit_dedupe_end(). */
int cw_audit_dedupe_begin(cw_audit_dedupe *d, const uint8_t key[CW_AUDIT_KEY_LEN],
                          cw_audit_ref *ref);
/* Ends a write: stored=1 makes the key a duplicate from now on; stored=0
 * forgets it unless another write of it is pending or succeeded. */
void cw_audit_dedupe_end(cw_audit_dedupe *d, cw_audit_ref ref, int stored);
/* Number of keys remembered (pending or durable). */
size_t cw_audit_dedupe_count(const cw_audit_dedupe *d);

#endif
