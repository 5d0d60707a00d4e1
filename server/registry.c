#include "server/registry.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* FNV-1a: agent ids are short and come from authenticated-by-handshake
 * agents, so a simple hash with a bounded table is enough. */
static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

int cw_registry_init(cw_registry *r, size_t max_agents)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->max_agents = max_agents;
    r->nbuckets = 1024;
    while (r->nbuckets < max_agents / 2 && r->nbuckets < (1u << 20)) r->nbuckets *= 2;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    return r->buckets ? 0 : -1;
}

void cw_registry_destroy(cw_registry *r)
{
    for (size_t i = 0; i < r->nbuckets; i++) {
        cw_agent *a = r->buckets[i];
        while (a) {
            cw_agent *n = a->hnext;
            free(a);
            a = n;
        }
    }
    free(r->buckets);
    r->buckets = NULL;
    pthread_mutex_destroy(&r->lock);
}

cw_agent *cw_registry_get(cw_registry *r, const char *id, size_t len, int create)
{
    if (len == 0 || len > CW_AGENT_ID_MAX) return NULL;
    size_t b = hash_id(id, len) & (r->nbuckets - 1);
    for (cw_agent *a = r->buckets[b]; a; a = a->hnext)
        if (strlen(a->id) == len && memcmp(a->id, id, len) == 0) return a;
    if (!create || r->count >= r->max_agents) return NULL;
    cw_agent *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    memcpy(a->id, id, len);
    a->loop = -1;
    a->conn_id = CW_NO_CONN;
    a->hnext = r->buckets[b];
    r->buckets[b] = a;
    r->count++;
    return a;
}

void cw_registry_restore_hwm(const char *id, size_t len, uint64_t seq, void *registry)
{
    cw_registry *r = registry;
    cw_registry_lock(r);
    cw_agent *a = cw_registry_get(r, id, len, 1);
    if (a && seq > a->durable) a->accepted = a->durable = seq;
    cw_registry_unlock(r);
}

int cw_registry_to_json(cw_registry *r, cw_buf *out)
{
    json_t *arr = json_array();
    cw_registry_lock(r);
    for (size_t i = 0; i < r->nbuckets; i++) {
        for (cw_agent *a = r->buckets[i]; a; a = a->hnext) {
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I}",
                               "agent_id", a->id, "hostname", a->hostname, "ip", a->ip,
                               "cluster", a->cluster, "cloud", a->cloud, "region", a->region,
                               "agent_version", a->agent_version, "connected",
                               a->conn_id != CW_NO_CONN, "acked_seq", (json_int_t)a->durable,
                               "events", (json_int_t)a->events, "last_seen_ns",
                               (json_int_t)a->last_seen_ns, "connected_ns",
                               (json_int_t)a->connected_ns));
        }
    }
    cw_registry_unlock(r);
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!s) return -1;
    int rc = cw_buf_append(out, s, strlen(s));
    free(s);
    return rc;
}
