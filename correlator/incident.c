/* incident: linking alerts into attack chains (see incident.h for the
 * policy). This file holds the state machine: the entity index, opening,
 * joining, merging, expiry and the bounds. The output objects are built in
 * incident_json.c; the link keys come from entity.c. */
#include "correlator/incident.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "correlator/entity.h"
#include "correlator/incident_int.h"

#define LINE_MAX_BYTES (4u * 1024 * 1024)
#define SUMMARY_MAX 512 /* bytes of an alert summary kept in a timeline */
#define FIELD_MAX 256   /* bytes of other strings kept in a timeline */

const char *cw_incident_severity_name(int sev)
{
    static const char *const names[] = {"info", "low", "medium", "high", "critical"};
    return sev >= 0 && sev <= CW_SEV_CRITICAL ? names[sev] : "unknown";
}

/* ---------------------------------------------------------------- ids */

static uint64_t fnv(uint64_t h, const char *s)
{
    if (!s) s = "";
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL; /* field separator */
}

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void make_alert_id(const cw_alert *a, char out[CW_INC_ID_LEN + 1])
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv(h, a->ev->id);
    h = fnv(h, a->rule->id);
    h = fnv(h, a->group_key);
    snprintf(out, CW_INC_ID_LEN + 1, "alr-%016" PRIx64, mix(h));
}

/* ---------------------------------------------------------------- sets */

static void strset_free(cw_strset *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static void strset_add(cw_strset *s, const char *v)
{
    if (!v || !v[0]) return;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], v) == 0) return;
    if (s->n >= CW_INCIDENT_SET_MAX) {
        s->dropped++;
        return;
    }
    if (s->n == s->alloc) {
        size_t na = s->alloc ? s->alloc * 2 : 4;
        char **nv = realloc(s->v, na * sizeof *nv);
        if (!nv) return;
        s->v = nv;
        s->alloc = na;
    }
    char *copy = strndup(v, FIELD_MAX);
    if (copy) s->v[s->n++] = copy;
}

static void strset_union(cw_strset *dst, const cw_strset *src)
{
    for (size_t i = 0; i < src->n; i++) strset_add(dst, src->v[i]);
    dst->dropped += src->dropped;
}

/* ---------------------------------------------------------------- recency list */

static void list_unlink(cw_inc *inc)
{
    inc->prev->next = inc->next;
    inc->next->prev = inc->prev;
    inc->prev = inc->next = inc;
}

static void list_front(cw_incidents *in, cw_inc *inc)
{
    if (inc->prev != inc) list_unlink(inc);
    inc->next = in->list.next;
    inc->prev = &in->list;
    in->list.next->prev = inc;
    in->list.next = inc;
}

/* ---------------------------------------------------------------- entities */

static void entity_detach(cw_inc_entity *e)
{
    cw_inc *inc = e->inc;
    if (!inc) return;
    if (e->iprev) e->iprev->inext = e->inext;
    else inc->entities = e->inext;
    if (e->inext) e->inext->iprev = e->iprev;
    e->iprev = e->inext = NULL;
    e->inc = NULL;
    inc->n_entities--;
}

static void entity_attach(cw_inc_entity *e, cw_inc *inc)
{
    e->inc = inc;
    e->iprev = NULL;
    e->inext = inc->entities;
    if (inc->entities) inc->entities->iprev = e;
    inc->entities = e;
    inc->n_entities++;
}

/* Called by cw_lru_insert for the least recently updated entity when the
 * index is full (pipeline thread). */
static void entity_evicted(cw_lru_node *n, void *ud)
{
    cw_incidents *in = ud;
    cw_inc_entity *e = cw_lru_entry(n, cw_inc_entity, node);
    entity_detach(e);
    free(e);
    in->st.entities_evicted++;
}

static void entity_free_cb(cw_lru_node *n, void *ud)
{
    (void)ud;
    free(cw_lru_entry(n, cw_inc_entity, node));
}

static void entity_remove(cw_incidents *in, cw_inc_entity *e)
{
    entity_detach(e);
    cw_lru_remove(&in->entities, &e->node);
    free(e);
}

/* |a - b| without signed overflow: event times come from agents and may be
 * anything an int64 holds. */
static uint64_t abs_diff(int64_t a, int64_t b)
{
    return a > b ? (uint64_t)a - (uint64_t)b : (uint64_t)b - (uint64_t)a;
}

/* The open incident key links to at time t, or NULL. */
static cw_inc *entity_lookup(cw_incidents *in, const char *key, int64_t t)
{
    cw_lru_node *n = cw_lru_find(&in->entities, key, strlen(key), 0);
    if (!n) return NULL;
    cw_inc_entity *e = cw_lru_entry(n, cw_inc_entity, node);
    if (!e->inc || abs_diff(t, e->last_ns) > (uint64_t)in->o.link_window_ns) return NULL;
    return e->inc;
}

/* Points key at inc as of time t (a key already pointing at another live
 * incident is moved: the newest sighting decides). */
static void entity_set(cw_incidents *in, const char *key, cw_inc *inc, int64_t t)
{
    size_t len = strlen(key);
    cw_lru_node *n = cw_lru_find(&in->entities, key, len, 1);
    cw_inc_entity *e;
    if (n) {
        e = cw_lru_entry(n, cw_inc_entity, node);
        if (e->inc != inc) {
            entity_detach(e);
            entity_attach(e, inc);
        }
        if (t > e->last_ns) e->last_ns = t;
        return;
    }
    e = calloc(1, sizeof *e + len + 1);
    if (!e) return;
    char *k = (char *)(e + 1);
    memcpy(k, key, len + 1);
    e->node.key = k;
    e->node.key_len = len;
    e->node.cost = 1;
    e->last_ns = t;
    entity_attach(e, inc);
    cw_lru_insert(&in->entities, &e->node);
}

/* ---------------------------------------------------------------- host addresses */

typedef struct host_ip {
    cw_lru_node node;
    char *agent;
} host_ip;

static void host_ip_free(cw_lru_node *n, void *ud)
{
    (void)ud;
    host_ip *h = cw_lru_entry(n, host_ip, node);
    free(h->agent);
    free(h);
}

/* entity.c's resolver: the agent owning a host address. */
static const char *agent_by_ip(void *ud, const char *ip)
{
    cw_incidents *in = ud;
    cw_lru_node *n = cw_lru_find(&in->host_ips, ip, strlen(ip), 0);
    return n ? cw_lru_entry(n, host_ip, node)->agent : NULL;
}

/* Remembers the addresses of ev's agent (from its Hello). The newest
 * claimant of an address wins: addresses move between machines. */
static void learn_host_ips(cw_incidents *in, const char *agent_id)
{
    const cw_enrich_agent *a = cw_enrich_agent_get(in->o.enrich, agent_id);
    if (!a) return;
    for (size_t i = 0; i < a->n_ips && i < 16; i++) {
        const char *ip = a->ips[i];
        if (!ip || !ip[0]) continue;
        size_t len = strnlen(ip, 64);
        if (len >= 64) continue;
        cw_lru_node *n = cw_lru_find(&in->host_ips, ip, len, 1);
        if (n) {
            host_ip *h = cw_lru_entry(n, host_ip, node);
            if (strcmp(h->agent, agent_id) != 0) {
                char *na = strdup(agent_id);
                if (na) {
                    free(h->agent);
                    h->agent = na;
                }
            }
            continue;
        }
        host_ip *h = calloc(1, sizeof *h + len + 1);
        if (!h) return;
        h->agent = strdup(agent_id);
        if (!h->agent) {
            free(h);
            return;
        }
        memcpy(h + 1, ip, len + 1);
        h->node.key = (const char *)(h + 1);
        h->node.key_len = len;
        h->node.cost = 1;
        cw_lru_insert(&in->host_ips, &h->node);
    }
}

static void entity_ctx(cw_incidents *in, cw_entity_ctx *c)
{
    c->enrich = in->o.enrich;
    c->agent_by_ip = agent_by_ip;
    c->ud = in;
}

/* ---------------------------------------------------------------- output */

static void output(cw_incidents *in, int is_incident, const cw_buf *line)
{
    cw_jsonl *out = is_incident ? in->o.incidents_out : in->o.alerts_out;
    if (out) cw_jsonl_write(out, line->data, line->len);
    if (in->o.on_line) in->o.on_line(in->o.ud, is_incident, (const char *)line->data, line->len);
}

static void write_incident(cw_incidents *in, const cw_inc *inc)
{
    if (!in->o.incidents_out && !in->o.on_line) return;
    cw_buf_reset(&in->line);
    if (cw_inc_json(in, inc, &in->line) < 0) {
        cw_metric_add(cw_m.output_lines_dropped_total, 1);
        cw_warn("incident", "incident %s: JSON too large, line dropped", inc->id);
        return;
    }
    output(in, 1, &in->line);
}

/* ---------------------------------------------------------------- incidents */

static void inc_free(cw_inc *inc)
{
    cw_strset *sets[] = {&inc->hosts, &inc->clusters, &inc->pods, &inc->techniques, &inc->phases};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) strset_free(sets[i]);
    for (size_t i = 0; i < inc->n_tactics; i++) free(inc->tactics[i].name);
    for (size_t i = 0; i < inc->n_alerts; i++) free(inc->alerts[i]);
    free(inc->alerts);
    free(inc);
}

/* Forgets inc (already written in its final state): its keys, its memory. */
static void inc_destroy(cw_incidents *in, cw_inc *inc)
{
    while (inc->entities) entity_remove(in, inc->entities);
    list_unlink(inc);
    in->n_open--;
    inc_free(inc);
}

static void inc_close(cw_incidents *in, cw_inc *inc)
{
    inc->status = CW_INC_CLOSED;
    write_incident(in, inc);
    inc_destroy(in, inc);
}

/* Expiry in event time: entities past the link window (approximately: the
 * index is ordered by update, lookups check the window exactly) and
 * incidents idle past idle_close. */
static void advance(cw_incidents *in, int64_t t)
{
    if (t <= in->now_ns) return;
    in->now_ns = t;
    cw_lru_node *n;
    while ((n = cw_lru_oldest(&in->entities))) {
        cw_inc_entity *e = cw_lru_entry(n, cw_inc_entity, node);
        if (e->last_ns >= in->now_ns ||
            abs_diff(in->now_ns, e->last_ns) <= (uint64_t)in->o.link_window_ns)
            break;
        entity_remove(in, e);
    }
    while (in->list.prev != &in->list) {
        cw_inc *inc = in->list.prev;
        if (inc->last_ns >= in->now_ns ||
            abs_diff(in->now_ns, inc->last_ns) <= (uint64_t)in->o.idle_close_ns)
            break;
        in->st.closed_idle++;
        inc_close(in, inc);
    }
}

static cw_inc_tactic *tactic_slot(cw_inc *inc, const char *name)
{
    for (size_t i = 0; i < inc->n_tactics; i++)
        if (strcmp(inc->tactics[i].name, name) == 0) return &inc->tactics[i];
    if (inc->n_tactics >= CW_INC_MAX_TACTICS) return NULL;
    char *copy = strndup(name, 64);
    if (!copy) return NULL;
    cw_inc_tactic *t = &inc->tactics[inc->n_tactics++];
    t->name = copy;
    t->counted = 0;
    t->first_ns = INT64_MAX;
    t->last_ns = INT64_MIN;
    return t;
}

static void tactic_note(cw_inc *inc, const char *name, int counted, int64_t first, int64_t last)
{
    if (!name || !name[0]) return;
    cw_inc_tactic *t = tactic_slot(inc, name);
    if (!t || !counted) return;
    t->counted = 1;
    if (first < t->first_ns) t->first_ns = first;
    if (last > t->last_ns) t->last_ns = last;
}

static const cw_inc_tactic *tactic_find(const cw_inc *inc, const char *name)
{
    for (size_t i = 0; i < inc->n_tactics; i++)
        if (inc->tactics[i].counted && strcmp(inc->tactics[i].name, name) == 0)
            return &inc->tactics[i];
    return NULL;
}

/* The severity policy of incident.h. */
static void recompute_severity(cw_inc *inc)
{
    int sev = inc->max_alert_sev;
    size_t counted = 0;
    for (size_t i = 0; i < inc->n_tactics; i++) counted += inc->tactics[i].counted;
    if (counted >= 3 && sev < CW_SEV_HIGH) sev = CW_SEV_HIGH;
    if (counted >= 4) sev = CW_SEV_CRITICAL;
    const cw_inc_tactic *exec = tactic_find(inc, "execution");
    static const char *const after_exec[] = {"privilege-escalation", "lateral-movement", "impact"};
    for (size_t i = 0; exec && i < 3; i++) {
        const cw_inc_tactic *t = tactic_find(inc, after_exec[i]);
        if (t && t->last_ns >= exec->first_ns) sev = CW_SEV_CRITICAL;
    }
    if (sev > inc->severity) inc->severity = sev;
}

static const char *str_or(const char *s, const char *dflt)
{
    return s && s[0] ? s : dflt;
}

/* Copies what the timeline needs from the alert into one allocation. */
static cw_inc_alert *alert_record(const cw_alert *a, const char *id)
{
    const cw_event *ev = a->ev;
    char pod[FIELD_MAX * 2 + 2] = "";
    if (ev->pod[0]) snprintf(pod, sizeof pod, "%.*s/%.*s", FIELD_MAX, ev->namespace, FIELD_MAX,
                             ev->pod);
    const char *src[7] = {a->rule->id, a->rule->tactic, a->rule->technique, a->rule->phase,
                          str_or(ev->host, ev->agent_id), pod, a->summary};
    size_t lens[7], total = 0;
    for (int i = 0; i < 7; i++) {
        lens[i] = src[i] ? strnlen(src[i], i == 6 ? SUMMARY_MAX : FIELD_MAX * 2 + 1) : 0;
        total += lens[i] + 1;
    }
    cw_inc_alert *r = calloc(1, sizeof *r + total);
    if (!r) return NULL;
    r->time_ns = a->time_ns;
    r->severity = (int)a->rule->severity;
    snprintf(r->id, sizeof r->id, "%s", id);
    char *p = (char *)(r + 1);
    const char **dst[7] = {&r->rule, &r->tactic, &r->technique, &r->phase,
                           &r->host, &r->pod,    &r->summary};
    for (int i = 0; i < 7; i++) {
        memcpy(p, src[i] ? src[i] : "", lens[i]);
        p[lens[i]] = 0;
        *dst[i] = p;
        p += lens[i] + 1;
    }
    return r;
}

/* Inserts r in time order, dropping the earliest beyond max_alerts. */
static void timeline_insert(cw_incidents *in, cw_inc *inc, cw_inc_alert *r)
{
    if (inc->n_alerts == inc->alloc_alerts) {
        size_t na = inc->alloc_alerts ? inc->alloc_alerts * 2 : 8;
        if (na > in->o.max_alerts + 1) na = in->o.max_alerts + 1;
        cw_inc_alert **nv = realloc(inc->alerts, na * sizeof *nv);
        if (!nv) {
            free(r);
            inc->alerts_dropped++;
            return;
        }
        inc->alerts = nv;
        inc->alloc_alerts = na;
    }
    size_t i = inc->n_alerts;
    while (i > 0 && inc->alerts[i - 1]->time_ns > r->time_ns) i--;
    memmove(inc->alerts + i + 1, inc->alerts + i, (inc->n_alerts - i) * sizeof *inc->alerts);
    inc->alerts[i] = r;
    inc->n_alerts++;
    if (inc->n_alerts > in->o.max_alerts) {
        free(inc->alerts[0]);
        memmove(inc->alerts, inc->alerts + 1, (inc->n_alerts - 1) * sizeof *inc->alerts);
        inc->n_alerts--;
        inc->alerts_dropped++;
    }
}

static cw_inc *inc_new(cw_incidents *in, const char *first_alert_id, int64_t t)
{
    if (in->n_open >= in->o.max_incidents && in->list.prev != &in->list) {
        in->st.evicted++;
        inc_close(in, in->list.prev);
    }
    cw_inc *inc = calloc(1, sizeof *inc);
    if (!inc) return NULL;
    uint64_t h = fnv(0xcbf29ce484222325ULL, "incident");
    snprintf(inc->id, sizeof inc->id, "inc-%016" PRIx64, mix(fnv(h, first_alert_id)));
    inc->seq = in->next_seq++;
    inc->first_ns = inc->last_ns = t;
    inc->prev = inc->next = inc;
    list_front(in, inc);
    in->n_open++;
    in->st.opened++;
    return inc;
}

/* Moves everything of `from` into `to`; `from` is written once more as
 * merged and freed. */
static void inc_merge(cw_incidents *in, cw_inc *to, cw_inc *from)
{
    from->status = CW_INC_MERGED;
    snprintf(from->merged_into, sizeof from->merged_into, "%s", to->id);
    write_incident(in, from);

    if (from->first_ns < to->first_ns) to->first_ns = from->first_ns;
    if (from->last_ns > to->last_ns) to->last_ns = from->last_ns;
    strset_union(&to->hosts, &from->hosts);
    strset_union(&to->clusters, &from->clusters);
    strset_union(&to->pods, &from->pods);
    strset_union(&to->techniques, &from->techniques);
    strset_union(&to->phases, &from->phases);
    for (size_t i = 0; i < from->n_tactics; i++) {
        const cw_inc_tactic *t = &from->tactics[i];
        tactic_note(to, t->name, t->counted, t->first_ns, t->last_ns);
    }
    to->alert_count += from->alert_count;
    to->alerts_dropped += from->alerts_dropped;
    for (size_t i = 0; i < from->n_alerts; i++) {
        timeline_insert(in, to, from->alerts[i]);
        from->alerts[i] = NULL;
    }
    from->n_alerts = 0;
    if (from->max_alert_sev > to->max_alert_sev) to->max_alert_sev = from->max_alert_sev;
    if (from->severity > to->severity) to->severity = from->severity;
    while (from->entities) {
        cw_inc_entity *e = from->entities;
        entity_detach(e);
        entity_attach(e, to);
    }
    in->st.merged++;
    inc_destroy(in, from);
}

static void inc_add_alert(cw_incidents *in, cw_inc *inc, const cw_alert *a, const char *id)
{
    const cw_event *ev = a->ev;
    const cw_rule_meta *r = a->rule;
    if (a->time_ns < inc->first_ns) inc->first_ns = a->time_ns;
    if (a->time_ns > inc->last_ns) inc->last_ns = a->time_ns;
    strset_add(&inc->hosts, str_or(ev->host, ev->agent_id));
    strset_add(&inc->clusters, ev->cluster);
    if (ev->pod[0] && ev->namespace[0]) {
        char pod[FIELD_MAX * 2 + 2];
        snprintf(pod, sizeof pod, "%.*s/%.*s", FIELD_MAX, ev->namespace, FIELD_MAX, ev->pod);
        strset_add(&inc->pods, pod);
    }
    strset_add(&inc->techniques, r->technique);
    strset_add(&inc->phases, r->phase);
    int counted = r->severity > CW_SEV_INFO;
    tactic_note(inc, r->tactic, counted, a->time_ns, a->time_ns);
    if ((int)r->severity > inc->max_alert_sev) inc->max_alert_sev = (int)r->severity;
    inc->alert_count++;
    cw_inc_alert *rec = alert_record(a, id);
    if (rec) timeline_insert(in, inc, rec);
    else inc->alerts_dropped++;
    recompute_severity(inc);
    list_front(in, inc);
}

/* ---------------------------------------------------------------- API */

void cw_incidents_observe(cw_incidents *in, const cw_event *ev)
{
    advance(in, ev->clock_ns);
    if (in->n_open == 0 || (ev->type != CW_EV_K8S_AUDIT && ev->type != CW_EV_LOGIN)) return;
    cw_entity_ctx c;
    entity_ctx(in, &c);
    cw_entity_keys actors, targets;
    if (!cw_entity_relation(&c, ev, &actors, &targets)) return;
    cw_inc *inc = NULL;
    for (size_t i = 0; i < actors.n && !inc; i++) inc = entity_lookup(in, actors.k[i], ev->time_ns);
    if (!inc) return;
    /* The target joins the actor's incident; a target already in another
     * live incident stays there (only an alert merges incidents). */
    for (size_t i = 0; i < targets.n; i++) {
        cw_inc *cur = entity_lookup(in, targets.k[i], ev->time_ns);
        if (!cur || cur == inc) entity_set(in, targets.k[i], inc, ev->time_ns);
    }
}

void cw_incidents_agent_batch(cw_incidents *in, const char *agent_id)
{
    if (in->o.enrich && agent_id && agent_id[0]) learn_host_ips(in, agent_id);
}

static int older(const cw_inc *a, const cw_inc *b)
{
    return a->first_ns < b->first_ns || (a->first_ns == b->first_ns && a->seq < b->seq);
}

void cw_incidents_alert(cw_incidents *in, const cw_alert *a)
{
    if (!a || !a->rule || !a->ev) return;
    /* The triggering event's bounded clock, not the alert's time: see
     * cw_event_bound_clock. */
    advance(in, a->ev->clock_ns < a->time_ns ? a->ev->clock_ns : a->time_ns);
    char alert_id[CW_INC_ID_LEN + 1];
    make_alert_id(a, alert_id);
    in->st.alerts++;
    int sev = (int)a->rule->severity;
    if (sev >= 0 && sev <= CW_SEV_CRITICAL) cw_metric_add(cw_m.alerts_total[sev], 1);
    cw_metrics_alert_rule(a->rule->id);

    cw_entity_ctx c;
    entity_ctx(in, &c);
    cw_entity_keys keys;
    cw_entity_keys_of(&c, a->ev, &keys);
    cw_inc *found[CW_ENTITY_MAX_KEYS];
    size_t n_found = 0;
    for (size_t i = 0; i < keys.n; i++) {
        cw_inc *inc = entity_lookup(in, keys.k[i], a->time_ns);
        if (!inc) continue;
        size_t j = 0;
        while (j < n_found && found[j] != inc) j++;
        if (j == n_found) found[n_found++] = inc;
    }

    cw_inc *inc = NULL;
    if (n_found > 0) {
        inc = found[0];
        for (size_t i = 1; i < n_found; i++)
            if (older(found[i], inc)) inc = found[i];
        for (size_t i = 0; i < n_found; i++)
            if (found[i] != inc) inc_merge(in, inc, found[i]);
    } else if (sev >= in->o.open_severity) {
        inc = inc_new(in, alert_id, a->time_ns);
        if (inc) cw_metric_add(cw_m.incidents_total[sev], 1);
    }

    if (inc) {
        inc_add_alert(in, inc, a, alert_id);
        for (size_t i = 0; i < keys.n; i++) entity_set(in, keys.k[i], inc, a->time_ns);
    } else {
        in->st.alerts_unassigned++;
    }

    if (in->o.alerts_out || in->o.on_line) {
        cw_buf_reset(&in->line);
        if (cw_inc_alert_json(a, alert_id, inc ? inc->id : NULL, &in->line) < 0)
            cw_metric_add(cw_m.output_lines_dropped_total, 1);
        else
            output(in, 0, &in->line);
    }
    if (inc) write_incident(in, inc);
}

int cw_incidents_create(cw_incidents **out, const cw_incident_opts *o)
{
    cw_incidents *in = calloc(1, sizeof *in);
    if (!in) return -1;
    if (o) in->o = *o;
    if (in->o.link_window_ns <= 0) in->o.link_window_ns = CW_INCIDENT_DEFAULT_LINK_WINDOW_NS;
    if (in->o.idle_close_ns <= 0) in->o.idle_close_ns = CW_INCIDENT_DEFAULT_IDLE_CLOSE_NS;
    if (!in->o.max_incidents) in->o.max_incidents = CW_INCIDENT_DEFAULT_MAX_INCIDENTS;
    if (!in->o.max_entities) in->o.max_entities = CW_INCIDENT_DEFAULT_MAX_ENTITIES;
    if (!in->o.max_alerts) in->o.max_alerts = CW_INCIDENT_DEFAULT_MAX_ALERTS;
    if (!in->o.max_host_ips) in->o.max_host_ips = CW_INCIDENT_DEFAULT_MAX_HOST_IPS;
    if (in->o.open_severity <= CW_SEV_INFO || in->o.open_severity > CW_SEV_CRITICAL)
        in->o.open_severity = CW_SEV_MEDIUM;
    in->list.prev = in->list.next = &in->list;
    in->now_ns = INT64_MIN;
    cw_buf_init(&in->line, LINE_MAX_BYTES);
    if (cw_lru_init(&in->entities, in->o.max_entities, 0, entity_evicted, in) < 0) {
        free(in);
        return -1;
    }
    if (cw_lru_init(&in->host_ips, in->o.max_host_ips, 0, host_ip_free, NULL) < 0) {
        cw_lru_destroy(&in->entities, NULL);
        free(in);
        return -1;
    }
    *out = in;
    return 0;
}

void cw_incidents_free(cw_incidents *in)
{
    if (!in) return;
    while (in->list.next != &in->list) {
        cw_inc *inc = in->list.next;
        /* Entities are freed by the table below; just cut the links. */
        inc->entities = NULL;
        list_unlink(inc);
        inc_free(inc);
    }
    cw_lru_destroy(&in->entities, entity_free_cb);
    cw_lru_destroy(&in->host_ips, host_ip_free);
    cw_buf_free(&in->line);
    free(in);
}

void cw_incidents_get_stats(const cw_incidents *in, cw_incident_stats *st)
{
    *st = in->st;
    st->open = in->n_open;
    st->entities = in->entities.count;
    st->host_ips = in->host_ips.count;
}
