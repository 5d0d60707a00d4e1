/* incident_int: the incident stage's internal state, shared by incident.c
 * (linking, merging, expiry) and incident_json.c (the output objects).
 * Not for other modules. Pipeline thread only. */
#ifndef CW_INCIDENT_INT_H
#define CW_INCIDENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "correlator/incident.h"
#include "correlator/lru.h"

#define CW_INC_ID_LEN 20 /* "inc-"/"alr-" + 16 hex */
#define CW_INC_MAX_TACTICS 16

enum cw_inc_status { CW_INC_OPEN, CW_INC_MERGED, CW_INC_CLOSED };

/* A bounded set of strings, in first-seen order. */
typedef struct cw_strset {
    char **v;
    size_t n, alloc;
    uint64_t dropped; /* additions refused at CW_INCIDENT_SET_MAX */
} cw_strset;

/* One alert as the incident remembers it: id and timeline entry. All
 * strings live in the same allocation, after the struct. */
typedef struct cw_inc_alert {
    int64_t time_ns;
    int severity;
    char id[CW_INC_ID_LEN + 1];
    const char *rule, *tactic, *technique, *phase, *host, *pod, *summary;
} cw_inc_alert;

/* A tactic the incident's alerts reached. first/last: event times of its
 * alerts above info (counted = there is one), for the severity policy. */
typedef struct cw_inc_tactic {
    char *name;
    int counted;
    int64_t first_ns, last_ns;
} cw_inc_tactic;

struct cw_inc_entity;

typedef struct cw_inc {
    char id[CW_INC_ID_LEN + 1];
    uint64_t seq; /* creation order, breaks first_seen ties */
    int64_t first_ns, last_ns;
    int severity;      /* as written: never lowered */
    int max_alert_sev; /* highest severity of its alerts */
    enum cw_inc_status status;
    char merged_into[CW_INC_ID_LEN + 1];
    cw_strset hosts, clusters, pods, techniques, phases;
    cw_inc_tactic tactics[CW_INC_MAX_TACTICS];
    size_t n_tactics;
    uint64_t alert_count, alerts_dropped;
    cw_inc_alert **alerts; /* sorted by time_ns, at most max_alerts */
    size_t n_alerts, alloc_alerts;
    struct cw_inc_entity *entities; /* keys pointing here (intrusive list) */
    size_t n_entities;
    struct cw_inc *prev, *next; /* recency: most recently updated first */
} cw_inc;

typedef struct cw_inc_entity {
    cw_lru_node node; /* key: the entity key, stored after the struct */
    cw_inc *inc;
    int64_t last_ns;
    struct cw_inc_entity *iprev, *inext;
} cw_inc_entity;

struct cw_incidents {
    cw_incident_opts o;
    cw_lru entities;      /* entity key -> cw_inc_entity */
    cw_lru host_ips;      /* monitored host address -> agent id */
    cw_inc list;          /* sentinel of the recency list */
    size_t n_open;
    uint64_t next_seq;
    int64_t now_ns; /* newest event time seen */
    cw_buf line;
    cw_incident_stats st;
};

/* incident_json.c */
int cw_inc_json(const cw_incidents *in, const cw_inc *inc, cw_buf *out);
int cw_inc_alert_json(const cw_alert *a, const char *alert_id, const char *incident_id,
                      cw_buf *out);

#endif
