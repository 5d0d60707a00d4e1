#include "correlator/correlate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "correlator/summary.h"

#define NONE INT64_MIN

typedef struct cw_cgroup {
    struct cw_cgroup *hnext, *older, *newer;
    uint64_t hash;
    int64_t max_t; /* newest match time in the group */
    size_t n;      /* used slots (event_count, value_count) */
    int64_t *t;    /* slots_per_group times */
    uint64_t *vh;  /* value_count: value hashes */
    char key[];
} cw_cgroup;

static int fail(char *err, size_t errlen, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t errlen, const char *file, int line, const char *fmt, ...)
{
    int n = snprintf(err, errlen, "%s:%d: ", file, line);
    if (n < 0 || (size_t)n >= errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static cw_crule *find_rule(cw_rule_ast *list, const char *ref, const cw_rule_ast **found)
{
    for (cw_rule_ast *r = list; r; r = r->next)
        if (!strcmp(r->meta.id, ref) || (r->name && !strcmp(r->name, ref))) {
            *found = r;
            return r->crule;
        }
    *found = NULL;
    return NULL;
}

static int add_consumer(cw_pool *pool, cw_crule *cr, cw_corr *c, size_t ref)
{
    cw_consumer *n = cw_pool_alloc(pool, (cr->n_consumers + 1) * sizeof *n);
    if (!n) return -1;
    if (cr->n_consumers) memcpy(n, cr->consumers, cr->n_consumers * sizeof *n);
    n[cr->n_consumers].corr = c;
    n[cr->n_consumers].ref = ref;
    cr->consumers = n;
    cr->n_consumers++;
    return 0;
}

static int build_one(cw_pool *pool, cw_rule_ast *list, cw_rule_ast *r, cw_corr *c, char *err,
                     size_t errlen)
{
    c->ast = r;
    c->meta = &r->meta;
    c->now_ns = NONE;
    c->n_refs = r->n_refs;
    c->refs = cw_pool_alloc(pool, r->n_refs * sizeof *c->refs);
    c->gb = cw_pool_alloc(pool, (r->n_group_by * CW_EV__COUNT + 1) * sizeof *c->gb);
    if (!c->refs || !c->gb) return fail(err, errlen, r->file, r->line, "out of memory");
    if ((r->corr == CW_CORR_EVENT_COUNT || r->corr == CW_CORR_VALUE_COUNT) &&
        r->threshold > CW_CORR_MAX_THRESHOLD)
        return fail(err, errlen, r->file, r->corr_line, "condition above %d is not supported",
                    CW_CORR_MAX_THRESHOLD);
    if (r->corr >= CW_CORR_TEMPORAL && r->cmp && r->threshold > (int64_t)r->n_refs)
        return fail(err, errlen, r->file, r->corr_line,
                    "condition asks for more rules than the correlation lists");
    for (size_t i = 0; i < r->n_refs; i++) {
        const cw_rule_ast *target;
        cw_crule *cr = find_rule(list, r->refs[i], &target);
        if (!target)
            return fail(err, errlen, r->file, r->ref_lines[i],
                        "correlation references unknown rule '%s'", r->refs[i]);
        if (!cr)
            return fail(err, errlen, r->file, r->ref_lines[i],
                        "'%s' is a correlation; only detection rules can be referenced",
                        r->refs[i]);
        c->refs[i] = cr;
        enum cw_event_type t = target->type;
        for (size_t g = 0; g < r->n_group_by; g++)
            if (cw_field_lookup(r->group_by[g], t, &c->gb[g * CW_EV__COUNT + t]) < 0)
                return fail(err, errlen, r->file, r->group_line,
                            "group-by field '%s' does not exist for %s (rule %s)", r->group_by[g],
                            cw_event_type_names[t], target->meta.id);
        if (r->count_field && cw_field_lookup(r->count_field, t, &c->vfield[t]) < 0)
            return fail(err, errlen, r->file, r->cond_field_line,
                        "field '%s' does not exist for %s (rule %s)", r->count_field,
                        cw_event_type_names[t], target->meta.id);
    }
    /* temporal_ordered: register later steps first, so one event that
     * matches two steps advances an existing sequence before it starts a
     * new one. */
    for (size_t k = 0; k < r->n_refs; k++) {
        size_t i = r->corr == CW_CORR_TEMPORAL_ORDERED ? r->n_refs - 1 - k : k;
        if (add_consumer(pool, c->refs[i], c, i) < 0)
            return fail(err, errlen, r->file, r->line, "out of memory");
    }
    switch (r->corr) {
    case CW_CORR_EVENT_COUNT:
    case CW_CORR_VALUE_COUNT: c->slots_per_group = (size_t)r->threshold + 1; break;
    case CW_CORR_TEMPORAL: c->slots_per_group = r->n_refs; break;
    default: c->slots_per_group = 2 * r->n_refs; break;
    }
    return 0;
}

int cw_corr_build(cw_pool *pool, cw_rule_ast *list, cw_corr ***out, size_t *n, char *err,
                  size_t errlen)
{
    size_t cnt = 0;
    for (cw_rule_ast *r = list; r; r = r->next) cnt += r->corr != CW_CORR_NONE;
    *n = 0;
    *out = cw_pool_alloc(pool, (cnt + 1) * sizeof **out);
    if (!*out) return fail(err, errlen, "rules", 0, "out of memory");
    for (cw_rule_ast *r = list; r; r = r->next) {
        if (r->corr == CW_CORR_NONE) continue;
        cw_corr *c = cw_pool_alloc(pool, sizeof *c);
        if (!c) return fail(err, errlen, r->file, r->line, "out of memory");
        (*out)[(*n)++] = c;
        if (build_one(pool, list, r, c, err, errlen) < 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- groups */

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static void unlink_lru(cw_corr *c, cw_cgroup *g)
{
    if (g->older) g->older->newer = g->newer;
    else c->oldest = g->newer;
    if (g->newer) g->newer->older = g->older;
    else c->newest = g->older;
    g->older = g->newer = NULL;
}

static void push_newest(cw_corr *c, cw_cgroup *g)
{
    g->older = c->newest;
    g->newer = NULL;
    if (c->newest) c->newest->newer = g;
    else c->oldest = g;
    c->newest = g;
}

static void drop(cw_corr *c, cw_cgroup *g)
{
    cw_cgroup **pp = &c->tab[g->hash & (c->tab_cap - 1)];
    while (*pp != g) pp = &(*pp)->hnext;
    *pp = g->hnext;
    unlink_lru(c, g);
    c->n_groups--;
    c->n_slots -= c->slots_per_group;
    free(g);
}

static void reset_group(cw_corr *c, cw_cgroup *g)
{
    g->n = 0;
    for (size_t i = 0; i < c->slots_per_group; i++) g->t[i] = NONE;
}

static cw_cgroup *get_group(cw_corr *c, const char *key, size_t klen)
{
    uint64_t h = hash_str(key, klen);
    if (c->tab_cap) {
        for (cw_cgroup *g = c->tab[h & (c->tab_cap - 1)]; g; g = g->hnext)
            if (g->hash == h && !strcmp(g->key, key)) {
                unlink_lru(c, g);
                push_newest(c, g);
                return g;
            }
    }
    while (c->oldest && (c->n_groups >= CW_CORR_MAX_GROUPS ||
                         c->n_slots + c->slots_per_group > CW_CORR_MAX_SLOTS)) {
        drop(c, c->oldest);
        c->evicted++;
    }
    if (c->n_groups + 1 > c->tab_cap) {
        size_t nc = c->tab_cap ? c->tab_cap * 2 : 64;
        cw_cgroup **nt = calloc(nc, sizeof *nt);
        if (!nt) return NULL;
        for (size_t i = 0; i < c->tab_cap; i++)
            for (cw_cgroup *g = c->tab[i], *nx; g; g = nx) {
                nx = g->hnext;
                g->hnext = nt[g->hash & (nc - 1)];
                nt[g->hash & (nc - 1)] = g;
            }
        free(c->tab);
        c->tab = nt;
        c->tab_cap = nc;
    }
    size_t slots = c->slots_per_group;
    size_t vh = c->ast->corr == CW_CORR_VALUE_COUNT ? slots : 0;
    size_t off = (sizeof(cw_cgroup) + klen + 1 + 7) & ~(size_t)7;
    cw_cgroup *g = malloc(off + (slots + vh) * 8);
    if (!g) return NULL;
    memset(g, 0, sizeof *g);
    memcpy(g->key, key, klen + 1);
    g->t = (int64_t *)((char *)g + off);
    g->vh = vh ? (uint64_t *)(g->t + slots) : NULL;
    g->hash = h;
    g->max_t = NONE;
    reset_group(c, g);
    g->hnext = c->tab[h & (c->tab_cap - 1)];
    c->tab[h & (c->tab_cap - 1)] = g;
    push_newest(c, g);
    c->n_groups++;
    c->n_slots += slots;
    return g;
}

void cw_corr_reset(cw_corr *c)
{
    for (cw_cgroup *g = c->oldest, *n; g; g = n) {
        n = g->newer;
        free(g);
    }
    free(c->tab);
    c->tab = NULL;
    c->tab_cap = c->n_groups = c->n_slots = 0;
    c->oldest = c->newest = NULL;
    c->now_ns = NONE;
}

/* ------------------------------------------------------------ matching */

static int holds(enum cw_cmp cmp, int64_t n, int64_t thr)
{
    switch (cmp) {
    case CW_CMP_GT: return n > thr;
    case CW_CMP_GTE: return n >= thr;
    case CW_CMP_LT: return n < thr;
    case CW_CMP_LTE: return n <= thr;
    case CW_CMP_EQ: return n == thr;
    default: return 0;
    }
}

static int64_t lower(int64_t t, int64_t span)
{
    return t == NONE || t < INT64_MIN + span ? INT64_MIN + 1 : t - span;
}

/* Returns the count to report when the condition holds, else -1. */
static int64_t event_count(cw_corr *c, cw_cgroup *g, int64_t t, int64_t lo)
{
    size_t k = c->slots_per_group;
    size_t drop = 0;
    while (drop < g->n && g->t[drop] < lo) drop++;
    if (drop) {
        memmove(g->t, g->t + drop, (g->n - drop) * sizeof *g->t);
        g->n -= drop;
    }
    if (g->n == k) { /* keep the newest k */
        if (t <= g->t[0]) return -1;
        memmove(g->t, g->t + 1, (g->n - 1) * sizeof *g->t);
        g->n--;
    }
    size_t i = g->n;
    while (i > 0 && g->t[i - 1] > t) {
        g->t[i] = g->t[i - 1];
        i--;
    }
    g->t[i] = t;
    g->n++;
    return holds(c->ast->cmp, (int64_t)g->n, c->ast->threshold) ? (int64_t)g->n : -1;
}

static int64_t value_count(cw_corr *c, cw_cgroup *g, int64_t t, int64_t lo, uint64_t vh)
{
    size_t j = 0;
    for (size_t i = 0; i < g->n; i++) /* expire, keeping order irrelevant */
        if (g->t[i] >= lo) {
            g->t[j] = g->t[i];
            g->vh[j++] = g->vh[i];
        }
    g->n = j;
    for (size_t i = 0; i < g->n; i++)
        if (g->vh[i] == vh) {
            if (t > g->t[i]) g->t[i] = t;
            return holds(c->ast->cmp, (int64_t)g->n, c->ast->threshold) ? (int64_t)g->n : -1;
        }
    if (g->n == c->slots_per_group) {
        size_t old = 0;
        for (size_t i = 1; i < g->n; i++)
            if (g->t[i] < g->t[old]) old = i;
        if (t <= g->t[old]) return -1;
        g->t[old] = t;
        g->vh[old] = vh;
    } else {
        g->t[g->n] = t;
        g->vh[g->n++] = vh;
    }
    return holds(c->ast->cmp, (int64_t)g->n, c->ast->threshold) ? (int64_t)g->n : -1;
}

static int64_t temporal(cw_corr *c, cw_cgroup *g, size_t ref, int64_t t, int64_t lo)
{
    if (t > g->t[ref]) g->t[ref] = t;
    int64_t n = 0;
    for (size_t i = 0; i < c->n_refs; i++) n += g->t[i] != NONE && g->t[i] >= lo;
    int ok = c->ast->cmp ? holds(c->ast->cmp, n, c->ast->threshold) : n == (int64_t)c->n_refs;
    return ok ? n : -1;
}

/* Slots: start of step i at t[2i], end at t[2i+1]. */
static int64_t ordered(cw_corr *c, cw_cgroup *g, size_t k, int64_t t)
{
    int64_t span = c->ast->timespan_ns;
    int64_t *st = g->t;
    if (k == 0) {
        st[0] = t;
        st[1] = t;
    } else {
        int64_t ps = st[2 * (k - 1)], pe = st[2 * (k - 1) + 1];
        if (ps == NONE || t < pe || t - ps > span) return -1;
        if (st[2 * k] == NONE || ps >= st[2 * k]) {
            st[2 * k] = ps;
            st[2 * k + 1] = t;
        }
    }
    return k == c->n_refs - 1 ? (int64_t)c->n_refs : -1;
}

static void group_key(cw_corr *c, const cw_event *ev, cw_fvals *fv, char *key, size_t *klen)
{
    size_t len = 0;
    char val[CW_CORR_KEY_MAX + 1];
    int cut = 0;
    for (size_t i = 0; i < c->ast->n_group_by; i++) {
        cw_field_first(&c->gb[i * CW_EV__COUNT + ev->type], ev, fv, val, sizeof val);
        size_t vl = strlen(val);
        if (i && len < CW_CORR_KEY_MAX) key[len++] = '|';
        if (vl > CW_CORR_KEY_MAX - len) vl = CW_CORR_KEY_MAX - len, cut = 1;
        memcpy(key + len, val, vl);
        len += vl;
    }
    key[len] = 0;
    if (cut) { /* keep distinct keys distinct: the prefix plus a hash of the rest */
        len = CW_CORR_KEY_MAX - 17;
        snprintf(key + len, 18, "~%016" PRIx64, hash_str(key, CW_CORR_KEY_MAX));
        len += 17;
    }
    *klen = len;
}

static void describe(cw_corr *c, int64_t count, const char *key, char *out, size_t n)
{
    const cw_rule_ast *r = c->ast;
    size_t len = 0;
#define ADD(...)                                                                                 \
    do {                                                                                         \
        if (len < n) {                                                                           \
            int w_ = snprintf(out + len, n - len, __VA_ARGS__);                                  \
            if (w_ > 0) len += (size_t)w_;                                                       \
        }                                                                                        \
    } while (0)
    if (r->corr == CW_CORR_EVENT_COUNT) ADD("%" PRId64 " matches of %s", count, r->refs[0]);
    else if (r->corr == CW_CORR_VALUE_COUNT)
        ADD("%" PRId64 " distinct %s in %s", count, r->count_field, r->refs[0]);
    for (size_t i = (r->corr <= CW_CORR_VALUE_COUNT); i < r->n_refs; i++)
        ADD("%s%s", i == 0 ? "" : r->corr == CW_CORR_TEMPORAL_ORDERED ? " then " : ", ",
            r->refs[i]);
    if (r->n_group_by) ADD(" for %s", key);
    ADD(" within %s", r->timespan_text);
#undef ADD
}

void cw_corr_feed(cw_corr *c, size_t ref, const cw_event *ev, cw_fvals *fv, cw_alert_cb cb,
                  void *ud)
{
    const cw_rule_ast *r = c->ast;
    int64_t t = ev->time_ns, span = r->timespan_ns;
    uint64_t vh = 0;
    if (r->corr == CW_CORR_VALUE_COUNT) {
        cw_field_get(&c->vfield[ev->type], ev, fv);
        if (!fv->present || !fv->n) return; /* nothing to count */
        vh = hash_str(fv->v[0].s, fv->v[0].len);
    }
    /* Groups are dropped by a clock that one event with a far-future time
     * cannot push ahead (cw_event_bound_clock); each group's own window
     * below is in plain event time. */
    if (ev->clock_ns > c->now_ns) c->now_ns = ev->clock_ns;
    int64_t horizon = lower(c->now_ns, span);
    while (c->oldest && c->oldest->max_t < horizon) drop(c, c->oldest);

    char key[CW_CORR_KEY_MAX + 1];
    size_t klen;
    group_key(c, ev, fv, key, &klen);
    cw_cgroup *g = get_group(c, key, klen);
    if (!g) return; /* out of memory: this match is lost */
    if (g->max_t != NONE && t < lower(g->max_t, span)) return; /* too old for the window */
    if (t > g->max_t) g->max_t = t;
    int64_t lo = lower(g->max_t, span), count;
    switch (r->corr) {
    case CW_CORR_EVENT_COUNT: count = event_count(c, g, t, lo); break;
    case CW_CORR_VALUE_COUNT: count = value_count(c, g, t, lo, vh); break;
    case CW_CORR_TEMPORAL: count = temporal(c, g, ref, t, lo); break;
    default: count = ordered(c, g, ref, t); break;
    }
    if (count < 0) return;
    reset_group(c, g);
    char detail[CW_SUMMARY_MAX], summary[CW_SUMMARY_MAX];
    describe(c, count, key, detail, sizeof detail);
    cw_summary(summary, r->meta.title, r->summary, ev, fv, count, r->timespan_text, detail);
    cw_alert a = {.rule = c->meta, .ev = ev, .time_ns = ev->time_ns, .summary = summary,
                  .group_key = key};
    cb(&a, ud);
}
