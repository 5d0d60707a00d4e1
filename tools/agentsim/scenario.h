/* scenario: loads a scenario file (JSON Lines, ../shared/scenarios/FORMAT.md)
 * into a list of timed items the replay delivers in order.
 *
 * Items are agent connections (`agent` lines), agent events (converted to
 * protobuf Events by eventjson) and Kubernetes audit events (`k8s_audit`:
 * cluster + the event object). `expect` lines are counted and otherwise
 * ignored: they are for the checker, not for the simulator.
 *
 * Checks beyond the per-type fields: `t` is a finite number >= 0 and never
 * decreases; `expect` lines come last; a host's `agent` line comes before any
 * other line of that host and only once; lines are at most 4 MiB. Every error
 * reads "<file>:<line>: <reason>".
 *
 * Loading reads the whole file with blocking stdio: call it before the loop
 * starts. The scenario owns everything it points to; sim_scenario_free()
 * releases it. Not thread-safe.
 */
#ifndef SIM_SCENARIO_H
#define SIM_SCENARIO_H

#include <jansson.h>
#include <stdio.h>

#include "chainwatch.pb-c.h"

#define SIM_SCENARIO_MAX_LINE (4u * 1024 * 1024)

/* Event payload cases run from 10 to 18; counts are indexed by case - 10. */
#define SIM_EV_FIRST CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC
#define SIM_EV_COUNT 9

typedef struct sim_host {
    char *name;    /* `host`: also the Hello hostname and node_name */
    char *cloud;   /* the rest as on the `agent` line; optional ones may be NULL */
    char *region;
    char *cluster; /* may be "" for a plain VM */
    char *ip;
    char *os;
    char *kernel;
    char *agent_version;
} sim_host;

enum sim_item_kind { SIM_ITEM_AGENT, SIM_ITEM_EVENT, SIM_ITEM_AUDIT };

typedef struct sim_item {
    enum sim_item_kind kind;
    int line;    /* 1-based line number in the file */
    double t;    /* seconds since the scenario start */
    /* Optional "clock_skew" (seconds, may be negative): how wrong the clock
     * of whoever stamped this line is, so its time is start + t +
     * clock_skew while it still happens (and is sent) at t. A project
     * extension of FORMAT.md (tests/scenarios/README.md). */
    double clock_skew;
    size_t host; /* AGENT, EVENT: index into sim_scenario.hosts */
    Chainwatch__V1__Event *event; /* EVENT: time_ns is left for the replay */
    char *cluster;                /* AUDIT: the cluster the audit event belongs to */
    json_t *audit;                /* AUDIT: the audit Event object (owned reference) */
} sim_item;

typedef struct sim_scenario {
    char *path;
    sim_item *items;
    size_t n_items;
    sim_host *hosts;
    size_t n_hosts;
    size_t n_events;                /* all agent events */
    size_t n_by_type[SIM_EV_COUNT]; /* agent events by payload case - SIM_EV_FIRST */
    size_t n_audit;
    size_t n_expect;
} sim_scenario;

/* Loads `path`. Returns 0, or -1 with "<path>:<line>: <reason>" in `err`. */
int sim_scenario_load(const char *path, sim_scenario *out, char *err, size_t errlen);
/* The same from an open stream; `name` is used in messages. */
int sim_scenario_load_file(FILE *f, const char *name, sim_scenario *out, char *err,
                           size_t errlen);
void sim_scenario_free(sim_scenario *s);

/* The index of host `name`, or -1. */
int sim_scenario_host(const sim_scenario *s, const char *name);

#endif
