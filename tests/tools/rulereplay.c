/* rulereplay: loads a rule directory with the real detection engine and,
 * optionally, replays scenario files through enrichment and detection in
 * process, printing every alert and checking what the rules alone decide.
 *
 *   rulereplay RULES_DIR                      load only; prints the rule count
 *   rulereplay [-q] RULES_DIR SCENARIO...     replay and check the expects
 *   rulereplay --audit CLUSTER FILE.json...   (after RULES_DIR) one audit Event per file
 *
 * Why: rule authors need to know that the built-in rules compile and that
 * each acceptance scenario raises the tactics it lists, without starting
 * chainwatchd. Incidents are NOT formed here (that is correlator/incident*),
 * so from each `expect` line it checks only what alerts decide by
 * themselves: tactics, techniques, phases and min_severity of an `incident`
 * line against the union of all alerts, `max_severity` against every alert,
 * and `incident_count` with max 0 as "no alert above low" (the benign
 * scenarios' contract). Host/cluster/pod lists are checked against the
 * alerts' events the same way.
 *
 * Event time is 2026-01-01T00:00:00Z + t, as a replay with --speed 0 would
 * send it. Single-threaded; blocking stdio (a command-line tool).
 * Exit status: 0 ok, 1 an expect failed or a file did not load, 2 usage.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "correlator/detect.h"
#include "correlator/enrich.h"
#include "correlator/event.h"
#include "tools/agentsim/scenario.h"

#define EPOCH_NS 1767225600000000000LL /* 2026-01-01T00:00:00Z */
#define MAX_CLOCK_AHEAD_NS (300LL * 1000000000) /* incident.max_clock_ahead_s default */
#define MAX_SET 64

static const char *const sev_names[] = {"info", "low", "medium", "high", "critical"};

/* A small set of distinct strings (tactics, hosts, ...) seen in alerts. */
typedef struct strset {
    char *v[MAX_SET];
    size_t n;
} strset;

static void set_add(strset *s, const char *v)
{
    if (!v || !*v) return;
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], v)) return;
    if (s->n < MAX_SET) s->v[s->n++] = strdup(v);
}

static int set_has(const strset *s, const char *v)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], v)) return 1;
    return 0;
}

static void set_free(strset *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    s->n = 0;
}

typedef struct replay {
    int quiet;
    int line;
    double t;
    size_t n_alerts;
    int max_sev; /* -1: none */
    strset tactics, techniques, phases, hosts, clusters, pods;
} replay;

/* Pipeline thread (here: the only thread): one alert. */
static void on_alert(const cw_alert *a, void *ud)
{
    replay *r = ud;
    const cw_event *ev = a->ev;
    r->n_alerts++;
    if ((int)a->rule->severity > r->max_sev) r->max_sev = (int)a->rule->severity;
    set_add(&r->tactics, a->rule->tactic);
    set_add(&r->techniques, a->rule->technique);
    set_add(&r->phases, a->rule->phase);
    set_add(&r->hosts, ev->host);
    set_add(&r->clusters, ev->cluster);
    if (ev->namespace[0] && ev->pod[0]) {
        char pod[512];
        snprintf(pod, sizeof pod, "%s/%s", ev->namespace, ev->pod);
        set_add(&r->pods, pod);
    }
    if (!r->quiet)
        printf("  line %-4d t=%-7g %-8s %-20s %-42s %s%s%s  %s\n", r->line, r->t,
               sev_names[a->rule->severity], a->rule->tactic, a->rule->id,
               ev->host[0] ? ev->host : ev->cluster, ev->pod[0] ? " " : "", ev->pod,
               a->summary ? a->summary : "");
}

static int sev_of(const char *s)
{
    for (int i = 0; i < 5; i++)
        if (s && !strcmp(s, sev_names[i])) return i;
    return 99;
}

/* Checks that every string of the expect's array `key` is in `have`. */
static int need_all(json_t *e, const char *key, const strset *have, const char *path)
{
    json_t *arr = json_object_get(e, key);
    size_t i;
    json_t *v;
    int ok = 1;
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        if (s && !set_has(have, s)) {
            printf("FAIL %s: expected %s '%s' in some alert, none has it\n", path, key, s);
            ok = 0;
        }
    }
    return ok;
}

static int check_expects(const char *path, replay *r)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char *buf = NULL;
    size_t cap = 0;
    int ok = 1;
    while (getline(&buf, &cap, f) > 0) {
        json_t *j = json_loads(buf, JSON_DECODE_ANY, NULL);
        const char *type = json_string_value(json_object_get(j, "type"));
        const char *what = json_string_value(json_object_get(j, "expect"));
        if (type && !strcmp(type, "expect") && what) {
            if (!strcmp(what, "incident")) {
                ok &= need_all(j, "tactics", &r->tactics, path);
                ok &= need_all(j, "techniques", &r->techniques, path);
                ok &= need_all(j, "phases", &r->phases, path);
                ok &= need_all(j, "hosts", &r->hosts, path);
                ok &= need_all(j, "clusters", &r->clusters, path);
                ok &= need_all(j, "pods", &r->pods, path);
                const char *min = json_string_value(json_object_get(j, "min_severity"));
                if (min && r->max_sev < sev_of(min)) {
                    printf("FAIL %s: min_severity %s, highest alert is %s\n", path, min,
                           r->max_sev < 0 ? "none" : sev_names[r->max_sev]);
                    ok = 0;
                }
            } else if (!strcmp(what, "max_severity")) {
                const char *max = json_string_value(json_object_get(j, "severity"));
                if (r->max_sev > sev_of(max)) {
                    printf("FAIL %s: max_severity %s, an alert is %s\n", path, max,
                           sev_names[r->max_sev]);
                    ok = 0;
                }
            } else if (!strcmp(what, "incident_count")) {
                json_t *max = json_object_get(j, "max");
                if (json_is_integer(max) && json_integer_value(max) == 0 &&
                    r->max_sev > CW_SEV_LOW) {
                    printf("FAIL %s: incident_count max 0, but an alert is %s\n", path,
                           sev_names[r->max_sev]);
                    ok = 0;
                }
            }
        }
        json_decref(j);
    }
    free(buf);
    fclose(f);
    return ok;
}

/* Sets the audit event's timestamps to the event time, as the replay does. */
static void stamp_audit(json_t *audit, int64_t ns)
{
    time_t s = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&s, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long long)(ns % 1000000000LL) / 1000);
    json_object_set_new(audit, "requestReceivedTimestamp", json_string(ts));
    json_object_set_new(audit, "stageTimestamp", json_string(ts));
}

static void hello(cw_enrich *en, const sim_host *h)
{
    Chainwatch__V1__Hello m = CHAINWATCH__V1__HELLO__INIT;
    char *ips[1] = {h->ip};
    m.agent_id = h->name;
    m.hostname = h->name;
    m.n_ip_addresses = h->ip ? 1 : 0;
    m.ip_addresses = ips;
    m.cloud = h->cloud;
    m.region = h->region;
    m.cluster = h->cluster;
    m.node_name = h->name;
    m.kernel = h->kernel;
    m.os = h->os;
    m.agent_version = h->agent_version;
    cw_enrich_hello(en, h->name, &m);
}

static int replay_file(cw_ruleset *rs, const char *path, int quiet)
{
    sim_scenario sc;
    char err[512];
    if (sim_scenario_load(path, &sc, err, sizeof err) < 0) {
        printf("FAIL %s\n", err);
        cw_ruleset_free(rs);
        return 0;
    }
    cw_enrich *en = NULL;
    cw_enrich_opts eo = {0};
    cw_detector *d = NULL;
    if (cw_enrich_create(&en, &eo) < 0 || cw_detector_create(&d, rs) < 0) {
        printf("FAIL %s: out of memory\n", path);
        cw_enrich_free(en);
        sim_scenario_free(&sc);
        return 0;
    }
    replay r = {.quiet = quiet, .max_sev = -1};
    printf("%s\n", path);
    uint64_t seq = 0;
    for (size_t i = 0; i < sc.n_items; i++) {
        sim_item *it = &sc.items[i];
        /* Sent (received) at t, stamped by a clock clock_skew off; the
         * clock bound is the server's default (incident.max_clock_ahead_s). */
        int64_t recv = EPOCH_NS + (int64_t)(it->t * 1e9);
        int64_t ns = EPOCH_NS + (int64_t)((it->t + it->clock_skew) * 1e9);
        cw_event ev;
        r.line = it->line;
        r.t = it->t;
        if (it->kind == SIM_ITEM_AGENT) {
            hello(en, &sc.hosts[it->host]);
        } else if (it->kind == SIM_ITEM_EVENT) {
            it->event->time_ns = ns;
            it->event->has_time_ns = 1;
            if (cw_event_from_agent(&ev, sc.hosts[it->host].name, ++seq, 0, it->event, recv) < 0)
                continue;
            cw_event_bound_clock(&ev, recv, MAX_CLOCK_AHEAD_NS);
            cw_enrich_agent_event(en, &ev);
            cw_detector_event(d, &ev, on_alert, &r);
        } else {
            stamp_audit(it->audit, ns);
            if (cw_event_from_audit(&ev, it->cluster, it->audit, recv) < 0) continue;
            cw_event_bound_clock(&ev, recv, MAX_CLOCK_AHEAD_NS);
            cw_enrich_audit_event(en, &ev);
            cw_detector_event(d, &ev, on_alert, &r);
        }
    }
    printf("  %zu alerts, highest %s\n", r.n_alerts, r.max_sev < 0 ? "none" : sev_names[r.max_sev]);
    int ok = check_expects(path, &r);
    cw_detector_free(d);
    cw_enrich_free(en);
    sim_scenario_free(&sc);
    set_free(&r.tactics);
    set_free(&r.techniques);
    set_free(&r.phases);
    set_free(&r.hosts);
    set_free(&r.clusters);
    set_free(&r.pods);
    return ok;
}

/* One bare audit Event per file (the corpus format), for `--audit`. */
static int replay_audit_files(cw_ruleset *rs, const char *cluster, char **files, int n)
{
    cw_detector *d = NULL;
    cw_enrich *en = NULL;
    cw_enrich_opts eo = {0};
    if (cw_detector_create(&d, rs) < 0 || cw_enrich_create(&en, &eo) < 0) {
        cw_detector_free(d);
        return 0;
    }
    int ok = 1;
    for (int i = 0; i < n; i++) {
        json_error_t je;
        json_t *j = json_load_file(files[i], 0, &je);
        replay r = {.max_sev = -1};
        printf("%s\n", files[i]);
        cw_event ev;
        if (!j || cw_event_from_audit(&ev, cluster, j, EPOCH_NS) < 0) {
            printf("FAIL %s: %s\n", files[i], j ? "not an object" : je.text);
            ok = 0;
        } else {
            cw_enrich_audit_event(en, &ev);
            cw_detector_event(d, &ev, on_alert, &r);
            if (!r.n_alerts) {
                printf("FAIL %s: no alert\n", files[i]);
                ok = 0;
            }
        }
        set_free(&r.tactics);
        set_free(&r.techniques);
        set_free(&r.phases);
        set_free(&r.hosts);
        set_free(&r.clusters);
        set_free(&r.pods);
        json_decref(j);
    }
    cw_detector_free(d);
    cw_enrich_free(en);
    return ok;
}

int main(int argc, char **argv)
{
    int quiet = 0, a = 1;
    if (a < argc && !strcmp(argv[a], "-q")) quiet = 1, a++;
    if (a >= argc) {
        fprintf(stderr, "usage: rulereplay [-q] RULES_DIR [SCENARIO.jsonl...]\n"
                        "       rulereplay RULES_DIR --audit CLUSTER EVENT.json...\n");
        return 2;
    }
    const char *dir = argv[a++];
    char err[1024];
    cw_ruleset *rs = NULL;
    if (cw_ruleset_load(&rs, dir, err, sizeof err) < 0) {
        printf("FAIL rules: %s\n", err);
        return 1;
    }
    printf("%s: %zu rules loaded\n", dir, cw_ruleset_count(rs));
    if (a < argc && !strcmp(argv[a], "--audit")) {
        if (a + 1 >= argc) return 2;
        return replay_audit_files(rs, argv[a + 1], argv + a + 2, argc - a - 2) ? 0 : 1;
    }
    if (a >= argc) {
        cw_ruleset_free(rs);
        return 0;
    }
    int ok = 1;
    for (; a < argc; a++) {
        /* A rule set carries correlation state: each scenario gets a fresh one. */
        if (!rs && cw_ruleset_load(&rs, dir, err, sizeof err) < 0) {
            printf("FAIL rules: %s\n", err);
            return 1;
        }
        ok &= replay_file(rs, argv[a], quiet);
        rs = NULL;
    }
    printf(ok ? "ok\n" : "FAILED\n");
    return ok ? 0 : 1;
}
