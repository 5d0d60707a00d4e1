/* incident: groups alerts into attack chains and writes alerts-out and
 * incidents-out.
 *
 * An incident is one attack: alerts linked by a shared SPECIFIC entity
 * (correlator/entity.h: the same Pod, container, host, workload, service
 * account or API identity, a Pod IP or monitored host's address resolved to
 * that Pod/host, a public IP, domain, file hash or SSH key) whose last
 * sighting is within opts.link_window of the alert, in event time. Relations
 * seen on ordinary events (cw_incidents_observe) pull targets into an open
 * incident before they raise alerts: an API identity in an incident that
 * creates or execs into a Pod adds that Pod; a host in an incident that
 * logs into another monitored host over SSH adds that host.
 *
 * Opening: only an alert of severity >= opts.open_severity (default medium)
 * opens an incident. Lower alerts join an incident they link to and
 * otherwise stay alone (their "incident" is null), so a healthy fleet whose
 * rules raise at most low alerts opens none.
 *
 * Merging: an alert that links to several open incidents merges them into
 * the one that started first (ties: created first). Its id survives; each
 * absorbed incident gets a last line with status "merged" and
 * "merged_into": <survivor id>, and is then gone. A consumer that takes the
 * last line per id must therefore skip status "merged" when counting
 * incidents (open and closed ones count).
 *
 * Severity (recomputed on every change, never lower than before):
 *   - the highest severity of its alerts;
 *   - at least high when its alerts (info excluded) span >= 3 distinct tactics;
 *   - critical when they span >= 4 tactics, or when an alert of tactic
 *     privilege-escalation, lateral-movement or impact happened (event
 *     time) at or after the incident's first execution alert: the attacker
 *     ran code and then escalated, spread or did damage.
 *
 * Windows and bounds (event time throughout). "Now", which expires entities
 * and closes idle incidents, is the newest event clock seen (cw_event.clock_ns):
 * the event's time, but never more than incident.max_clock_ahead_s (5 min)
 * past when the server received it. So an agent whose clock runs days ahead,
 * or lies, cannot close every incident in the fleet or expire its links;
 * links themselves compare the events' own times:
 *   link_window   (2 h)  an entity links only within this of its last sighting;
 *   idle_close    (24 h) an incident with no alert for this long is closed
 *                        (a last line with status "closed") and forgotten;
 *   max_incidents (10000) open incidents; a new one closes the least
 *                        recently updated first;
 *   max_entities  (1M)   link keys; the least recently updated is forgotten;
 *   max_alerts    (200)  alert ids and timeline entries kept per incident;
 *                        older ones are dropped and counted (alerts_dropped);
 *   per incident at most 256 hosts, pods, clusters, techniques (overflow
 *   counted in "truncated").
 *
 * Ids: alert "alr-" + 16 hex of a hash of (event id, rule id, group key);
 * incident "inc-" + 16 hex of a hash of its first alert id. Both are
 * deterministic, so replaying the same events (at-least-once redelivery
 * after a crash) yields the same ids and consumers can de-duplicate.
 *
 * Threads: everything runs on the pipeline thread; not locked.
 */
#ifndef CW_INCIDENT_H
#define CW_INCIDENT_H

#include <stddef.h>
#include <stdint.h>

#include "correlator/alert.h"
#include "correlator/enrich.h"
#include "correlator/event.h"
#include "storage/jsonl.h"

#define CW_INCIDENT_DEFAULT_LINK_WINDOW_NS (2LL * 3600 * 1000000000LL)
#define CW_INCIDENT_DEFAULT_IDLE_CLOSE_NS (24LL * 3600 * 1000000000LL)
#define CW_INCIDENT_DEFAULT_MAX_INCIDENTS 10000
#define CW_INCIDENT_DEFAULT_MAX_ENTITIES (1024 * 1024)
#define CW_INCIDENT_DEFAULT_MAX_ALERTS 200
#define CW_INCIDENT_DEFAULT_MAX_HOST_IPS 262144
#define CW_INCIDENT_SET_MAX 256

typedef struct cw_incident_opts {
    int64_t link_window_ns;      /* 0 = default */
    int64_t idle_close_ns;       /* 0 = default */
    size_t max_incidents;        /* 0 = default */
    size_t max_entities;         /* 0 = default */
    size_t max_alerts;           /* 0 = default; per incident */
    size_t max_host_ips;         /* 0 = default; monitored host addresses remembered */
    int open_severity;           /* enum cw_severity; 0 (info) = default medium */
    cw_enrich *enrich;           /* agents' addresses, Pod IPs; may be NULL */
    cw_jsonl *alerts_out;        /* may be NULL */
    cw_jsonl *incidents_out;     /* may be NULL */
    /* Optional: every line written (or that would be), for tests and the
     * query API. Runs on the pipeline thread; the line is valid during the
     * call only. */
    void (*on_line)(void *ud, int is_incident, const char *line, size_t len);
    void *ud;
} cw_incident_opts;

typedef struct cw_incidents cw_incidents;

typedef struct cw_incident_stats {
    size_t open, entities, host_ips;
    uint64_t opened, merged, closed_idle, evicted, alerts, alerts_unassigned;
    uint64_t entities_evicted;
} cw_incident_stats;

/* Returns 0 or -1 (out of memory). Outputs stay owned by the caller. */
int cw_incidents_create(cw_incidents **out, const cw_incident_opts *o);
/* Frees everything; writes nothing (open incidents stay open in the file). */
void cw_incidents_free(cw_incidents *in);

/* Every event passes here too (for entity context: pod IPs, audit-created
 * pods, SSH logins between hosts). */
void cw_incidents_observe(cw_incidents *in, const cw_event *ev);

/* Before the events of an agent batch: learns the agent's host addresses
 * (from enrichment) so that a login from one of them on another host links
 * the two. Once per batch rather than per event: every event of a batch is
 * the same agent's. */
void cw_incidents_agent_batch(cw_incidents *in, const char *agent_id);

/* Each alert: assigns it to an incident (new or merged), writes the alert
 * JSON line and the incident's new state to the outputs. */
void cw_incidents_alert(cw_incidents *in, const cw_alert *a);

void cw_incidents_get_stats(const cw_incidents *in, cw_incident_stats *st);

/* "info" .. "critical"; "unknown" out of range. */
const char *cw_incident_severity_name(int sev);

#endif
