/* registry: every agent the server knows, with its delivery state.
 *
 * Shared by all ingest loops (and read by the HTTP API), so every call takes
 * the registry's mutex; calls are short and never block on I/O. Agents are
 * never removed while the process runs (a disconnected agent keeps its
 * high-water marks); the count is bounded by max_agents, past which new
 * agent ids are refused (existing ones still connect).
 *
 * Per agent:
 * - accepted: highest batch seq handed to the spool (durable or in flight);
 * - durable:  highest batch seq the spool has made durable (what we ack);
 * - the connection currently speaking for it (loop index + connection id),
 *   so acks for batches a previous connection submitted reach the new one.
 */
#ifndef CW_REGISTRY_H
#define CW_REGISTRY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define CW_AGENT_ID_MAX 255
#define CW_NO_CONN UINT64_MAX

typedef struct cw_agent {
    char id[CW_AGENT_ID_MAX + 1];
    char hostname[256];
    char cluster[128];
    char cloud[64];
    char region[64];
    char agent_version[64];
    char ip[64];
    uint64_t accepted;
    uint64_t durable;
    int loop;          /* current connection's ingest loop, -1 if none */
    uint64_t conn_id;  /* current connection, CW_NO_CONN if none */
    int64_t last_seen_ns;
    int64_t connected_ns;
    uint64_t events;   /* events durably accepted from this agent */
    uint64_t batches;
    struct cw_agent *hnext;
} cw_agent;

typedef struct cw_registry {
    pthread_mutex_t lock;
    cw_agent **buckets;
    size_t nbuckets;
    size_t count;
    size_t max_agents;
} cw_registry;

int cw_registry_init(cw_registry *r, size_t max_agents);
void cw_registry_destroy(cw_registry *r);

/* Lock/unlock around the calls below that say "locked". */
static inline void cw_registry_lock(cw_registry *r)
{
    pthread_mutex_lock(&r->lock);
}
static inline void cw_registry_unlock(cw_registry *r)
{
    pthread_mutex_unlock(&r->lock);
}

/* Locked. Finds an agent, or creates it (accepted = durable = 0) when
 * `create` is set. NULL when absent (or the registry is full). */
cw_agent *cw_registry_get(cw_registry *r, const char *id, size_t len, int create);

/* Before any loop runs: restores an agent's high-water mark from the spool. */
void cw_registry_restore_hwm(const char *id, size_t len, uint64_t seq, void *registry);

/* Appends a JSON array of all agents (for the query API). */
int cw_registry_to_json(cw_registry *r, cw_buf *out);

#endif
