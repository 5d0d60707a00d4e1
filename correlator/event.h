/* event: the normalized event every later stage (enrichment, detection,
 * outputs) works on, built from one agent Event or one Kubernetes audit
 * event, and its JSON form for the events-out file and the query API.
 *
 * Fast field access: the type is an enum, the context fields are plain
 * NUL-terminated strings (never NULL; "" means unknown), labels are an array,
 * and the type payload is the decoded protobuf message itself (agent events)
 * or the parsed jansson object plus pre-extracted fields (audit events). A
 * rule reads ev->agent.process_exec->exe or ev->k8s.verb directly; nothing is
 * parsed again after decode.
 *
 * Ownership: a cw_event owns nothing. Its strings point into the decoded
 * protobuf message (freed when the pipeline resets its decode arena after
 * the record), the audit json_t (released after the record), the record's
 * key copy, and the enrichment tables (which may evict or change an entry
 * while the next event is enriched). So an event and every pointer read from
 * it are valid until the next event is enriched or the arena is reset; a
 * stage that keeps anything longer (a detection window) copies it.
 *
 * Threads: used on the pipeline thread only.
 */
#ifndef CW_EVENT_H
#define CW_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "chainwatch.pb-c.h"
#include "common/buf.h"
#include "common/metrics.h" /* enum cw_source */

enum cw_event_type {
    CW_EV_PROCESS_EXEC,
    CW_EV_PROCESS_EXIT,
    CW_EV_NET_CONNECT,
    CW_EV_NET_LISTEN,
    CW_EV_DNS_QUERY,
    CW_EV_FILE_OP,
    CW_EV_LOGIN,
    CW_EV_CONTAINER_START,
    CW_EV_CONTAINER_STOP,
    CW_EV_K8S_AUDIT,
    CW_EV__COUNT
};

/* "process_exec", ... "k8s_audit": the names of scenarios/FORMAT.md. */
extern const char *const cw_event_type_names[CW_EV__COUNT];
/* "agent", "k8s_audit". */
extern const char *const cw_event_source_names[CW_SRC__COUNT];

typedef struct cw_label {
    const char *key;
    const char *value;
} cw_label;

/* "<agent_id>:<seq>:<index>" needs at most 255 + 1 + 20 + 1 + 10 bytes; an
 * audit id "<cluster>:<auditID>:<stage>" is bounded by shortening an
 * oversized auditID or stage (see event.c). */
#define CW_EVENT_ID_MAX 640

/* Fields of an audit event that rules use, extracted once at normalization.
 * Strings point into the json_t; NULL when absent. */
typedef struct cw_k8s_fields {
    const char *audit_id, *stage, *verb, *user, *user_agent, *request_uri;
    const char *resource, *subresource, *api_group, *obj_namespace, *name;
    const char *source_ip; /* the last sourceIPs entry: the only trustworthy one */
    const char *decision;  /* annotations["authorization.k8s.io/decision"] */
    json_t *groups;        /* user.groups array (borrowed) or NULL */
    int response_code;     /* responseStatus.code, or -1 when absent */
} cw_k8s_fields;

struct cw_enrich_pod;
struct cw_enrich_container;

typedef struct cw_event {
    char id[CW_EVENT_ID_MAX];
    int64_t time_ns; /* when it happened (agent clock or stageTimestamp) */
    /* How far this event may move the event-time clocks that expire windows
     * and close idle incidents: time_ns, or less when that is too far ahead
     * of when the server received it (cw_event_bound_clock). Matching and
     * linking use time_ns; only expiry uses this. */
    int64_t clock_ns;
    enum cw_event_type type;
    enum cw_source source;

    /* Context. Never NULL; "" when unknown. Filled by cw_event_from_*() as
     * far as the event itself says, then by enrichment. */
    const char *cluster, *cloud, *region, *host, *node, *agent_id;
    const char *container_id, *namespace, *pod, *pod_uid, *owner;
    const cw_label *labels;
    size_t n_labels;
    /* Enrichment's records for rules that want more (image, service
     * account, ownerReferences); NULL when unknown. Same lifetime. */
    const struct cw_enrich_pod *pod_info;
    const struct cw_enrich_container *container_info;

    /* Agent events: position in the stream, and the payload. */
    uint64_t seq;
    uint32_t index;
    const Chainwatch__V1__Event *pb;
    union {
        const void *payload;
        const Chainwatch__V1__ProcessExec *process_exec;
        const Chainwatch__V1__ProcessExit *process_exit;
        const Chainwatch__V1__NetConnect *net_connect;
        const Chainwatch__V1__NetListen *net_listen;
        const Chainwatch__V1__DnsQuery *dns_query;
        const Chainwatch__V1__FileOp *file_op;
        const Chainwatch__V1__Login *login;
        const Chainwatch__V1__ContainerStart *container_start;
        const Chainwatch__V1__ContainerStop *container_stop;
    } agent;

    /* Audit events: the whole event (borrowed) and the extracted fields. */
    json_t *audit;
    cw_k8s_fields k8s;
} cw_event;

/* Normalizes event number `index` of batch `seq` from agent `agent_id` (a
 * NUL-terminated copy the caller keeps alive). `recv_time_ns` (when the
 * server stored the batch) stands in for a missing event time. Returns 0, or
 * -1 if the event has no known payload (a newer agent's type): skip it. */
int cw_event_from_agent(cw_event *ev, const char *agent_id, uint64_t seq, uint32_t index,
                        const Chainwatch__V1__Event *pb, int64_t recv_time_ns);

/* Normalizes one audit.k8s.io Event object (borrowed: keep it alive as long
 * as ev) received for `cluster` (NUL-terminated, kept alive by the caller).
 * Time is stageTimestamp, else requestReceivedTimestamp, else recv_time_ns.
 * Returns 0, or -1 if `audit` is not a JSON object. */
int cw_event_from_audit(cw_event *ev, const char *cluster, json_t *audit, int64_t recv_time_ns);

/* An event's time comes from a clock the server does not control: a node's
 * clock that is days fast, or an agent on a compromised node lying on
 * purpose. If the newest event time seen were the clock of the shared
 * detection state, one such event would close every open incident as idle
 * and expire every correlation window in the fleet, and keep them expiring.
 * So an event may move those clocks at most to recv_ns + max_ahead_ns (its
 * receive time plus the clock skew tolerated); cw_event_from_*() leave
 * clock_ns = time_ns, the pipeline bounds it. A negative max_ahead_ns means
 * no bound. */
void cw_event_bound_clock(cw_event *ev, int64_t recv_ns, int64_t max_ahead_ns);

/* Appends ev as one JSON object, without a newline. Common fields first, at
 * the top level, always present (null when unknown, labels {} when none);
 * then the type's fields under the names of scenarios/FORMAT.md: fields the
 * format requires are always present (null if the agent left them out),
 * optional ones only when the agent sent them. Audit events carry the
 * original event under "audit" plus extracted fields. Returns 0, or -1 if
 * `out` hit its cap (out then holds a partial object: reset it). */
int cw_event_to_json(const cw_event *ev, cw_buf *out);

/* Value of label `key` on ev, or NULL. */
const char *cw_event_label(const cw_event *ev, const char *key);

/* Parses an RFC 3339 timestamp (as Kubernetes writes MicroTime/Time) into
 * ns since the Unix epoch. Returns 0 or -1. */
int cw_parse_rfc3339_ns(const char *s, int64_t *out);

#endif
