/* incident_json: the alert and incident objects of alerts-out and
 * incidents-out, exactly the fields "What the checker reads" in
 * ../shared/scenarios/FORMAT.md lists, plus:
 *   alert:    event_id, agent_id, group_key (correlations);
 *   incident: merged_into (status "merged"), alerts_dropped, truncated,
 *             timeline [{time, phase, tactic, technique, rule, host, pod,
 *             summary, alert, severity}] in event-time order.
 * Strings from agents and API servers go through cw_jsonw, so the output is
 * valid JSON whatever they contain. Pipeline thread. */
#include <string.h>

#include "common/jsonw.h"
#include "correlator/incident_int.h"

static void strset_json(cw_jsonw *w, const char *key, const cw_strset *s)
{
    cw_jsonw_key(w, key);
    cw_jsonw_arr_open(w);
    for (size_t i = 0; i < s->n; i++) cw_jsonw_str(w, s->v[i]);
    cw_jsonw_arr_close(w);
}

static const char *const status_names[] = {"open", "merged", "closed"};

int cw_inc_json(const cw_incidents *in, const cw_inc *inc, cw_buf *out)
{
    (void)in;
    cw_jsonw w;
    cw_jsonw_init(&w, out);
    cw_jsonw_obj_open(&w);
    cw_jsonw_key(&w, "id");
    cw_jsonw_str(&w, inc->id);
    cw_jsonw_key(&w, "severity");
    cw_jsonw_str(&w, cw_incident_severity_name(inc->severity));
    cw_jsonw_key(&w, "status");
    cw_jsonw_str(&w, status_names[inc->status]);
    if (inc->status == CW_INC_MERGED) {
        cw_jsonw_key(&w, "merged_into");
        cw_jsonw_str(&w, inc->merged_into);
    }
    cw_jsonw_key(&w, "first_seen");
    cw_jsonw_time_ns(&w, inc->first_ns);
    cw_jsonw_key(&w, "last_seen");
    cw_jsonw_time_ns(&w, inc->last_ns);
    strset_json(&w, "hosts", &inc->hosts);
    strset_json(&w, "clusters", &inc->clusters);
    strset_json(&w, "pods", &inc->pods);
    cw_jsonw_key(&w, "tactics");
    cw_jsonw_arr_open(&w);
    for (size_t i = 0; i < inc->n_tactics; i++) cw_jsonw_str(&w, inc->tactics[i].name);
    cw_jsonw_arr_close(&w);
    strset_json(&w, "techniques", &inc->techniques);
    strset_json(&w, "phases", &inc->phases);
    cw_jsonw_key(&w, "alert_count");
    cw_jsonw_uint(&w, inc->alert_count);
    cw_jsonw_key(&w, "alerts_dropped");
    cw_jsonw_uint(&w, inc->alerts_dropped);
    cw_jsonw_key(&w, "alerts");
    cw_jsonw_arr_open(&w);
    for (size_t i = 0; i < inc->n_alerts; i++) cw_jsonw_str(&w, inc->alerts[i]->id);
    cw_jsonw_arr_close(&w);
    uint64_t truncated = inc->hosts.dropped + inc->clusters.dropped + inc->pods.dropped +
                         inc->techniques.dropped + inc->phases.dropped;
    if (truncated) {
        cw_jsonw_key(&w, "truncated");
        cw_jsonw_uint(&w, truncated);
    }
    cw_jsonw_key(&w, "timeline");
    cw_jsonw_arr_open(&w);
    for (size_t i = 0; i < inc->n_alerts; i++) {
        const cw_inc_alert *a = inc->alerts[i];
        cw_jsonw_obj_open(&w);
        cw_jsonw_key(&w, "time");
        cw_jsonw_time_ns(&w, a->time_ns);
        cw_jsonw_key(&w, "phase");
        cw_jsonw_str_or_null(&w, a->phase);
        cw_jsonw_key(&w, "tactic");
        cw_jsonw_str_or_null(&w, a->tactic);
        cw_jsonw_key(&w, "technique");
        cw_jsonw_str_or_null(&w, a->technique);
        cw_jsonw_key(&w, "rule");
        cw_jsonw_str(&w, a->rule);
        cw_jsonw_key(&w, "severity");
        cw_jsonw_str(&w, cw_incident_severity_name(a->severity));
        cw_jsonw_key(&w, "host");
        cw_jsonw_str_or_null(&w, a->host);
        cw_jsonw_key(&w, "pod");
        cw_jsonw_str_or_null(&w, a->pod);
        cw_jsonw_key(&w, "summary");
        cw_jsonw_str(&w, a->summary);
        cw_jsonw_key(&w, "alert");
        cw_jsonw_str(&w, a->id);
        cw_jsonw_obj_close(&w);
    }
    cw_jsonw_arr_close(&w);
    cw_jsonw_obj_close(&w);
    return cw_jsonw_error(&w);
}

int cw_inc_alert_json(const cw_alert *a, const char *alert_id, const char *incident_id,
                      cw_buf *out)
{
    const cw_event *ev = a->ev;
    const cw_rule_meta *r = a->rule;
    cw_jsonw w;
    cw_jsonw_init(&w, out);
    cw_jsonw_obj_open(&w);
    cw_jsonw_key(&w, "id");
    cw_jsonw_str(&w, alert_id);
    cw_jsonw_key(&w, "rule");
    cw_jsonw_str(&w, r->id);
    cw_jsonw_key(&w, "title");
    cw_jsonw_str(&w, r->title);
    cw_jsonw_key(&w, "severity");
    cw_jsonw_str(&w, cw_incident_severity_name((int)r->severity));
    cw_jsonw_key(&w, "time");
    cw_jsonw_time_ns(&w, a->time_ns);
    cw_jsonw_key(&w, "host");
    cw_jsonw_str_or_null(&w, ev->host[0] ? ev->host : ev->agent_id);
    cw_jsonw_key(&w, "cluster");
    cw_jsonw_str_or_null(&w, ev->cluster);
    cw_jsonw_key(&w, "namespace");
    cw_jsonw_str_or_null(&w, ev->namespace);
    cw_jsonw_key(&w, "pod");
    cw_jsonw_str_or_null(&w, ev->pod);
    cw_jsonw_key(&w, "container_id");
    cw_jsonw_str_or_null(&w, ev->container_id);
    cw_jsonw_key(&w, "tactic");
    cw_jsonw_str_or_null(&w, r->tactic);
    cw_jsonw_key(&w, "technique");
    cw_jsonw_str_or_null(&w, r->technique);
    cw_jsonw_key(&w, "attack");
    cw_jsonw_str_or_null(&w, r->attack);
    cw_jsonw_key(&w, "phase");
    cw_jsonw_str_or_null(&w, r->phase);
    cw_jsonw_key(&w, "summary");
    cw_jsonw_str(&w, a->summary ? a->summary : r->title);
    cw_jsonw_key(&w, "incident");
    cw_jsonw_str_or_null(&w, incident_id);
    cw_jsonw_key(&w, "event_id");
    cw_jsonw_str(&w, ev->id);
    cw_jsonw_key(&w, "agent_id");
    cw_jsonw_str_or_null(&w, ev->agent_id);
    if (a->group_key) {
        cw_jsonw_key(&w, "group_key");
        cw_jsonw_str(&w, a->group_key);
    }
    cw_jsonw_obj_close(&w);
    return cw_jsonw_error(&w);
}
