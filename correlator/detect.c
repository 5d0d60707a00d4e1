#include "correlator/detect.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "correlator/correlate.h"
#include "correlator/fields.h"
#include "correlator/pool.h"
#include "correlator/rule_compile.h"
#include "correlator/rule_parse.h"
#include "correlator/summary.h"

struct cw_ruleset {
    cw_pool pool;
    cw_rule_ast *list;
    size_t n_rules;
    cw_compiled comp;
    cw_corr **corrs;
    size_t n_corrs;
};

struct cw_detector {
    _Atomic(cw_ruleset *) pending;
    cw_ruleset *rs;
    hs_scratch_t *scratch;
    /* Per-event marks: an atom matched / a rule is a candidate iff its
     * stamp equals cur, so nothing is cleared between events. */
    uint32_t *atom_stamp, *rule_stamp, *matched, *cands;
    size_t cap_atoms, cap_rules;
    uint32_t cur;
    size_t n_matched;
    cw_fvals fv, fv2;
};

/* ---------------------------------------------------------------- load */

typedef struct idref {
    const cw_rule_ast *r;
    size_t order; /* load order */
} idref;

static int cmp_idref(const void *a, const void *b)
{
    const idref *x = a, *y = b;
    int c = strcmp(x->r->meta.id, y->r->meta.id);
    if (c) return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Rule ids are unique across the set; the later duplicate is reported. */
static int check_ids(cw_ruleset *rs, char *err, size_t errlen)
{
    size_t n = 0;
    for (cw_rule_ast *r = rs->list; r; r = r->next) n++;
    rs->n_rules = n;
    if (n > CW_RULES_MAX) {
        snprintf(err, errlen, "rules: more than %d rules", CW_RULES_MAX);
        return -1;
    }
    idref *v = malloc((n + 1) * sizeof *v);
    if (!v) {
        snprintf(err, errlen, "rules: out of memory");
        return -1;
    }
    size_t i = 0;
    for (cw_rule_ast *r = rs->list; r; r = r->next, i++) v[i] = (idref){r, i};
    qsort(v, n, sizeof *v, cmp_idref);
    int rc = 0;
    for (i = 1; i < n && rc == 0; i++)
        if (!strcmp(v[i - 1].r->meta.id, v[i].r->meta.id)) {
            snprintf(err, errlen, "%s:%d: duplicate id '%s' (first at %s:%d)", v[i].r->file,
                     v[i].r->line, v[i].r->meta.id, v[i - 1].r->file, v[i - 1].r->line);
            rc = -1;
        }
    free(v);
    return rc;
}

static int finish(cw_ruleset *rs, char *err, size_t errlen)
{
    if (check_ids(rs, err, errlen) < 0) return -1;
    if (cw_compile_rules(&rs->pool, rs->list, &rs->comp, err, errlen) < 0) return -1;
    return cw_corr_build(&rs->pool, rs->list, &rs->corrs, &rs->n_corrs, err, errlen);
}

static cw_ruleset *new_set(void)
{
    cw_ruleset *rs = calloc(1, sizeof *rs);
    if (rs) cw_pool_init(&rs->pool);
    return rs;
}

static int has_rule_ext(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && ((l > 4 && !strcmp(n + l - 4, ".yml")) ||
                           (l > 5 && !strcmp(n + l - 5, ".yaml")));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cw_ruleset_load(cw_ruleset **out, const char *dir, char *err, size_t errlen)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: cannot open rule directory: %s", dir, strerror(errno));
        return -1;
    }
    cw_ruleset *rs = new_set();
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = rs ? 0 : -1;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!has_rule_ext(e->d_name)) continue;
        if (n == CW_RULES_MAX_FILES) {
            snprintf(err, errlen, "%s: more than %d rule files", dir, CW_RULES_MAX_FILES);
            rc = -1;
            break;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = realloc(names, nc * sizeof *nn);
            if (!nn) {
                rc = -1;
                break;
            }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = cw_pool_strdup(&rs->pool, e->d_name))) rc = -1;
        else n++;
    }
    closedir(d);
    if (rc < 0 && !err[0]) snprintf(err, errlen, "%s: out of memory", dir);
    if (rc == 0) qsort(names, n, sizeof *names, cmp_str);
    cw_rule_ast **tail = rs ? &rs->list : NULL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t pl = strlen(dir) + strlen(names[i]) + 2;
        char *path = cw_pool_alloc(&rs->pool, pl);
        if (!path) {
            snprintf(err, errlen, "%s: out of memory", dir);
            rc = -1;
            break;
        }
        snprintf(path, pl, "%s/%s", dir, names[i]);
        rc = cw_rule_parse_file(&rs->pool, path, path, &tail, err, errlen);
    }
    free(names);
    if (rc == 0) rc = finish(rs, err, errlen);
    if (rc < 0) {
        cw_ruleset_free(rs);
        return -1;
    }
    *out = rs;
    return 0;
}

int cw_ruleset_load_text(cw_ruleset **out, const char *text, size_t len, const char *name,
                         char *err, size_t errlen)
{
    *out = NULL;
    cw_ruleset *rs = new_set();
    if (!rs) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    cw_rule_ast **tail = &rs->list;
    if (cw_rule_parse_text(&rs->pool, text, len, name, &tail, err, errlen) < 0 ||
        finish(rs, err, errlen) < 0) {
        cw_ruleset_free(rs);
        return -1;
    }
    *out = rs;
    return 0;
}

void cw_ruleset_free(cw_ruleset *rs)
{
    if (!rs) return;
    for (size_t i = 0; i < rs->n_corrs; i++)
        if (rs->corrs[i]) cw_corr_reset(rs->corrs[i]);
    cw_compiled_free(&rs->comp);
    cw_pool_free(&rs->pool);
    free(rs);
}

size_t cw_ruleset_count(const cw_ruleset *rs)
{
    return rs ? rs->n_rules : 0;
}

int cw_ruleset_check_dir(const char *dir, char *err, size_t errlen)
{
    cw_ruleset *rs;
    if (cw_ruleset_load(&rs, dir, err, errlen) < 0) return -1;
    cw_ruleset_free(rs);
    return 0;
}

/* ------------------------------------------------------------ detector */

/* Pipeline thread: makes rs the current set (scratch and mark arrays sized
 * for it). Returns 0, or -1 if memory ran out (the caller keeps the old
 * set). */
static int adopt(cw_detector *d, cw_ruleset *rs)
{
    const cw_compiled *c = &rs->comp;
    for (int t = 0; t < CW_EV__COUNT; t++)
        for (size_t f = 0; f < c->buckets[t].n_fields; f++) {
            hs_database_t *db = c->buckets[t].fields[f].db;
            if (db && hs_alloc_scratch(db, &d->scratch) != HS_SUCCESS) return -1;
        }
    if (c->max_atoms > d->cap_atoms) {
        uint32_t *a = calloc(c->max_atoms, sizeof *a), *m = calloc(c->max_atoms, sizeof *m);
        if (!a || !m) {
            free(a);
            free(m);
            return -1;
        }
        free(d->atom_stamp);
        free(d->matched);
        d->atom_stamp = a;
        d->matched = m;
        d->cap_atoms = c->max_atoms;
    }
    if (c->max_rules > d->cap_rules) {
        uint32_t *r = calloc(c->max_rules, sizeof *r), *k = calloc(c->max_rules, sizeof *k);
        if (!r || !k) {
            free(r);
            free(k);
            return -1;
        }
        free(d->rule_stamp);
        free(d->cands);
        d->rule_stamp = r;
        d->cands = k;
        d->cap_rules = c->max_rules;
    }
    /* New arrays start at 0 and old ones hold stale stamps: start over. */
    if (d->atom_stamp) memset(d->atom_stamp, 0, d->cap_atoms * sizeof *d->atom_stamp);
    if (d->rule_stamp) memset(d->rule_stamp, 0, d->cap_rules * sizeof *d->rule_stamp);
    d->cur = 0;
    cw_ruleset_free(d->rs);
    d->rs = rs;
    return 0;
}

int cw_detector_create(cw_detector **out, cw_ruleset *rs)
{
    *out = NULL;
    cw_detector *d = calloc(1, sizeof *d);
    if (!d) {
        cw_ruleset_free(rs);
        return -1;
    }
    atomic_init(&d->pending, NULL);
    cw_fvals_init(&d->fv);
    cw_fvals_init(&d->fv2);
    if (rs && adopt(d, rs) < 0) {
        cw_ruleset_free(rs);
        cw_detector_free(d);
        return -1;
    }
    *out = d;
    return 0;
}

void cw_detector_swap(cw_detector *d, cw_ruleset *rs)
{
    cw_ruleset *old = atomic_exchange_explicit(&d->pending, rs, memory_order_acq_rel);
    /* Never adopted, so no other thread can be using it. */
    cw_ruleset_free(old);
}

void cw_detector_free(cw_detector *d)
{
    if (!d) return;
    cw_ruleset_free(atomic_exchange(&d->pending, NULL));
    cw_ruleset_free(d->rs);
    if (d->scratch) hs_free_scratch(d->scratch);
    free(d->atom_stamp);
    free(d->rule_stamp);
    free(d->matched);
    free(d->cands);
    cw_fvals_free(&d->fv);
    cw_fvals_free(&d->fv2);
    free(d);
}

static void mark(cw_detector *d, uint32_t atom)
{
    if (d->atom_stamp[atom] != d->cur) {
        d->atom_stamp[atom] = d->cur;
        d->matched[d->n_matched++] = atom;
    }
}

/* Pipeline thread, inside hs_scan(). */
static int on_match(unsigned id, unsigned long long from, unsigned long long to,
                    unsigned flags, void *ctx)
{
    (void)from;
    (void)to;
    (void)flags;
    mark(ctx, id);
    return 0;
}

static int direct(const cw_atom *a, const cw_fvals *fv)
{
    switch (a->kind) {
    case CW_A_EXISTS: return fv->present;
    case CW_A_NULL:
        for (size_t i = 0; fv->present && i < fv->n; i++)
            if (fv->v[i].len) return 0;
        return 1;
    case CW_A_EMPTY:
        for (size_t i = 0; fv->present && i < fv->n; i++)
            if (!fv->v[i].len) return 1;
        return 0;
    case CW_A_NUM:
        for (size_t i = 0; fv->present && i < fv->n; i++) {
            if (!fv->v[i].has_num) continue;
            int64_t x = fv->v[i].num;
            if ((a->cmp == CW_MOD_GT && x > a->num) || (a->cmp == CW_MOD_GTE && x >= a->num) ||
                (a->cmp == CW_MOD_LT && x < a->num) || (a->cmp == CW_MOD_LTE && x <= a->num))
                return 1;
        }
        return 0;
    case CW_A_CIDR:
        for (size_t i = 0; fv->present && i < fv->n; i++)
            if (cw_atom_cidr_match(a, fv->v[i].s, fv->v[i].len)) return 1;
        return 0;
    default: return 0;
    }
}

static void candidate(cw_detector *d, uint32_t r, size_t *n)
{
    if (d->rule_stamp[r] != d->cur) {
        d->rule_stamp[r] = d->cur;
        d->cands[(*n)++] = r;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void fire(cw_detector *d, const cw_crule *cr, const cw_event *ev, cw_alert_cb cb,
                 void *ud)
{
    if (cr->ast->generate) {
        char summary[CW_SUMMARY_MAX];
        cw_summary(summary, cr->meta->title, cr->ast->summary, ev, &d->fv, -1, NULL, NULL);
        cw_alert a = {.rule = cr->meta, .ev = ev, .time_ns = ev->time_ns, .summary = summary,
                      .group_key = NULL};
        cb(&a, ud);
    }
    for (size_t i = 0; i < cr->n_consumers; i++)
        cw_corr_feed(cr->consumers[i].corr, cr->consumers[i].ref, ev, &d->fv2, cb, ud);
}

void cw_detector_event(cw_detector *d, const cw_event *ev, cw_alert_cb cb, void *ud)
{
    cw_ruleset *next = atomic_exchange_explicit(&d->pending, NULL, memory_order_acq_rel);
    if (next && adopt(d, next) < 0) {
        cw_error("detect", "out of memory adopting the new rule set; keeping the old one");
        cw_ruleset_free(next);
    }
    if (!d->rs || (unsigned)ev->type >= CW_EV__COUNT) return;
    const cw_bucket *b = &d->rs->comp.buckets[ev->type];
    if (!b->n_rules) return;
    if (++d->cur == 0) { /* wrapped: old marks could collide */
        memset(d->atom_stamp, 0, d->cap_atoms * sizeof *d->atom_stamp);
        memset(d->rule_stamp, 0, d->cap_rules * sizeof *d->rule_stamp);
        d->cur = 1;
    }
    d->n_matched = 0;
    for (size_t f = 0; f < b->n_fields; f++) {
        const cw_bfield *bf = &b->fields[f];
        cw_field_get(&bf->ref, ev, &d->fv);
        if (bf->db && d->fv.present)
            for (size_t i = 0; i < d->fv.n; i++)
                hs_scan(bf->db, d->fv.v[i].s, (unsigned)d->fv.v[i].len, 0, d->scratch, on_match, d);
        for (size_t i = 0; i < bf->n_direct; i++)
            if (direct(&b->atoms[bf->direct[i]], &d->fv)) mark(d, bf->direct[i]);
    }
    size_t n = 0;
    for (size_t i = 0; i < d->n_matched; i++) {
        uint32_t a = d->matched[i];
        for (uint32_t k = b->trig_off[a]; k < b->trig_off[a + 1]; k++) candidate(d, b->trig[k], &n);
    }
    for (size_t i = 0; i < b->n_always; i++) candidate(d, b->always[i], &n);
    /* Rule order = load order, so alerts come out deterministically. */
    if (n > 1) qsort(d->cands, n, sizeof *d->cands, cmp_u32);
    for (size_t i = 0; i < n; i++) {
        const cw_crule *cr = b->rules[d->cands[i]];
        if (cw_code_eval(cr->code, cr->n_code, d->atom_stamp, d->cur)) fire(d, cr, ev, cb, ud);
    }
}
