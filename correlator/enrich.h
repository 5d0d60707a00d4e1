/* enrich: the context that turns a bare event into "this process ran in pod
 * shop/checkout-abc (team trade) on node-1 of cluster prod-sh in
 * tencent/ap-shanghai".
 *
 * State, all in memory and bounded:
 * - agents, from CW_REC_HELLO records: agent_id -> host, cloud, region,
 *   cluster, node, addresses; plus cluster -> cloud/region so audit events
 *   (which only name their cluster) get them too.
 * - containers, from container_start/container_stop events, keyed by agent
 *   and container id (an agent cannot overwrite another host's containers):
 *   name, image, pod uid. A stopped container is kept for `stopped_grace_ns`
 *   of that agent's event time, so late events still resolve, then dropped.
 * - pods, keyed by cluster and uid, merged from container_start (what the
 *   node says) and from audit pod create/update/patch (what the API server
 *   says; its fields win over the agent's): name, namespace, labels, service
 *   account, pod IP, node, controller ownerReference; indexed by
 *   namespace/name and by pod IP as well.
 * Every table has a count and a byte bound and evicts the least recently
 * used entry first (a lookup by an event counts as a use). Eviction only
 * loses context: later events of that container/pod carry its container_id
 * but empty pod fields.
 *
 * Owner: the value of the first label present among opts.owner_labels.
 *
 * Known limit: the state is not persisted. After a restart, containers that
 * started before it resolve only once their pod is seen again (an audit
 * event or a new container_start).
 *
 * Threads: single-threaded, used by the pipeline thread only. Pointers it
 * puts into events, and the structs below, stay valid until the next call
 * into this module.
 */
#ifndef CW_ENRICH_H
#define CW_ENRICH_H

#include <stddef.h>
#include <stdint.h>

#include "chainwatch.pb-c.h"
#include "correlator/event.h"
#include "correlator/lru.h"

#define CW_ENRICH_DEFAULT_OWNER_LABELS "owner,team"
#define CW_ENRICH_DEFAULT_MAX_AGENTS 65536
#define CW_ENRICH_DEFAULT_MAX_CONTAINERS (1024 * 1024)
#define CW_ENRICH_DEFAULT_MAX_PODS (1024 * 1024)
/* Byte bound per table (containers, pods), on top of the count bound. */
#define CW_ENRICH_DEFAULT_MAX_TABLE_BYTES (256u * 1024 * 1024)
#define CW_ENRICH_DEFAULT_STOPPED_GRACE_NS (600LL * 1000000000LL) /* 10 min */

typedef struct cw_enrich_opts {
    const char *owner_labels; /* comma-separated; NULL or "" = "owner,team" */
    size_t max_agents;        /* 0 = default */
    size_t max_containers;    /* 0 = default */
    size_t max_pods;          /* 0 = default */
    size_t max_table_bytes;   /* 0 = default */
    int64_t stopped_grace_ns; /* 0 = default; <0 = drop at once */
} cw_enrich_opts;

typedef struct cw_enrich_agent {
    cw_lru_node node; /* key: agent id */
    char *host, *cloud, *region, *cluster, *node_name;
    char *os, *kernel, *agent_version;
    char **ips;
    size_t n_ips;
    int64_t last_time_ns; /* newest event time seen from this agent */
} cw_enrich_agent;

struct cw_enrich_ix;

typedef struct cw_enrich_pod {
    cw_lru_node node; /* key: cluster "\0" uid */
    char *cluster, *uid, *name, *namespace, *service_account, *pod_ip, *node_name;
    char *controller_kind, *controller_name; /* controller ownerReference, "" if none */
    cw_label *labels;
    size_t n_labels;
    const char *owner; /* a label value, or "" */
    int from_audit;    /* the API server described it: agents only fill gaps */
    struct cw_enrich_ix *name_ix, *ip_ix;
} cw_enrich_pod;

typedef struct cw_enrich_container {
    cw_lru_node node; /* key: agent id "\0" container id */
    char *agent_id, *container_id, *cluster, *pod_uid, *name, *image;
    int stopped;
    int64_t stopped_at_ns; /* event time of its container_stop */
    struct cw_enrich_container *sprev, *snext; /* stopped list, oldest first */
} cw_enrich_container;

typedef struct cw_enrich_stats {
    size_t agents, containers, pods;
    uint64_t agent_evictions, container_evictions, pod_evictions;
    uint64_t containers_expired; /* stopped and past the grace period */
} cw_enrich_stats;

typedef struct cw_enrich cw_enrich;

/* Returns 0 or -1 (out of memory). */
int cw_enrich_create(cw_enrich **out, const cw_enrich_opts *opts);
void cw_enrich_free(cw_enrich *e);

/* Records (or replaces) what an agent's Hello says about its host. */
void cw_enrich_hello(cw_enrich *e, const char *agent_id, const Chainwatch__V1__Hello *h);

/* Learns from ev (container_start/stop) and fills its context fields.
 * ev comes from cw_event_from_agent(). */
void cw_enrich_agent_event(cw_enrich *e, cw_event *ev);

/* Learns pods from audit pod writes and fills ev's cloud/region and, for
 * pod events, the pod's uid, labels, owner and node. */
void cw_enrich_audit_event(cw_enrich *e, cw_event *ev);

/* Lookups for later stages; NULL when unknown. No recency update. */
const cw_enrich_agent *cw_enrich_agent_get(cw_enrich *e, const char *agent_id);
const cw_enrich_pod *cw_enrich_pod_by_uid(cw_enrich *e, const char *cluster, const char *uid);
const cw_enrich_pod *cw_enrich_pod_by_name(cw_enrich *e, const char *cluster, const char *ns,
                                           const char *name);
const cw_enrich_pod *cw_enrich_pod_by_ip(cw_enrich *e, const char *cluster, const char *ip);
const cw_enrich_container *cw_enrich_container_get(cw_enrich *e, const char *agent_id,
                                                   const char *container_id);

void cw_enrich_get_stats(const cw_enrich *e, cw_enrich_stats *st);

#endif
