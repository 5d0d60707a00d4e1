#include "correlator/rule_parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "correlator/tactics.h"

/* Aliases let a small file name the same node many times; this bounds how
 * many values one file may expand to. */
#define VALUE_BUDGET 200000

typedef struct pctx {
    cw_pool *pool;
    yaml_document_t *doc;
    const char *file;
    char *err;
    size_t errlen;
    size_t budget;
} pctx;

static int fail(pctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int cw_rule_verr(char *err, size_t errlen, const char *file, int line, const char *fmt,
                 va_list ap)
{
    int n = snprintf(err, errlen, "%s:%d: ", file, line);
    if (n < 0 || (size_t)n >= errlen) return -1;
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    return -1;
}

static int fail(pctx *c, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cw_rule_verr(c->err, c->errlen, c->file, line, fmt, ap);
    va_end(ap);
    return -1;
}

static int line_of(yaml_node_t *n)
{
    return n ? (int)n->start_mark.line + 1 : 0;
}

static yaml_node_t *node(pctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

static int is_null(yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* The text of a scalar node (pool copy), or NULL with err set. */
static const char *scalar(pctx *c, yaml_node_t *n, const char *what)
{
    if (!n || n->type != YAML_SCALAR_NODE) {
        fail(c, line_of(n), "%s must be a single value", what);
        return NULL;
    }
    size_t len = n->data.scalar.length;
    if (memchr(n->data.scalar.value, 0, len)) {
        fail(c, line_of(n), "%s contains a NUL byte", what);
        return NULL;
    }
    char *s = cw_pool_strndup(c->pool, (const char *)n->data.scalar.value, len);
    if (!s) fail(c, line_of(n), "out of memory");
    return s;
}

/* Value of `key` in mapping m, or NULL. */
static yaml_node_t *get(pctx *c, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
            return node(c, p->value);
    }
    return NULL;
}

/* Optional string key: *out = NULL when absent or null. */
static int opt_str(pctx *c, yaml_node_t *m, const char *key, const char **out)
{
    yaml_node_t *v = get(c, m, key);
    *out = NULL;
    if (!v || is_null(v)) return 0;
    *out = scalar(c, v, key);
    return *out ? 0 : -1;
}

static int parse_bool(pctx *c, yaml_node_t *v, const char *what, int *out)
{
    const char *s = scalar(c, v, what);
    if (!s) return -1;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "yes")) *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "no")) *out = 0;
    else return fail(c, line_of(v), "%s must be true or false, not '%s'", what, s);
    return 0;
}

/* A scalar or a list of scalars -> array of strings. */
static int str_list(pctx *c, yaml_node_t *v, const char *what, const char ***out, size_t *n,
                    int **lines)
{
    if (v && v->type == YAML_SCALAR_NODE && !is_null(v)) {
        *out = cw_pool_alloc(c->pool, sizeof **out);
        if (lines) *lines = cw_pool_alloc(c->pool, sizeof **lines);
        if (!*out || (lines && !*lines)) return fail(c, line_of(v), "out of memory");
        if (!((*out)[0] = scalar(c, v, what))) return -1;
        if (lines) (*lines)[0] = line_of(v);
        *n = 1;
        return 0;
    }
    if (!v || v->type != YAML_SEQUENCE_NODE ||
        v->data.sequence.items.top == v->data.sequence.items.start)
        return fail(c, line_of(v), "%s must be a non-empty list", what);
    size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    *out = cw_pool_alloc(c->pool, cnt * sizeof **out);
    if (lines) *lines = cw_pool_alloc(c->pool, cnt * sizeof **lines);
    if (!*out || (lines && !*lines)) return fail(c, line_of(v), "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = node(c, v->data.sequence.items.start[i]);
        if (!((*out)[i] = scalar(c, e, what))) return -1;
        if (lines) (*lines)[i] = line_of(e);
    }
    *n = cnt;
    return 0;
}

/* ------------------------------------------------------------ detection */

static const struct {
    const char *name;
    unsigned bit;
} modifiers[] = {
    {"contains", CW_MOD_CONTAINS}, {"startswith", CW_MOD_STARTSWITH},
    {"endswith", CW_MOD_ENDSWITH}, {"re", CW_MOD_RE},   {"all", CW_MOD_ALL},
    {"cidr", CW_MOD_CIDR},         {"exists", CW_MOD_EXISTS}, {"gt", CW_MOD_GT},
    {"gte", CW_MOD_GTE},           {"lt", CW_MOD_LT},   {"lte", CW_MOD_LTE},
    {"cased", CW_MOD_CASED},       {"i", CW_MOD_I},
};

static int popcount(unsigned x)
{
    return __builtin_popcount(x);
}

static int check_mods(pctx *c, cw_ritem *it)
{
    unsigned m = it->mods;
    unsigned pos = CW_MOD_CONTAINS | CW_MOD_STARTSWITH | CW_MOD_ENDSWITH;
    const char *f = it->field;
    if (popcount(m & pos) > 1)
        return fail(c, it->line, "%s: contains, startswith and endswith exclude each other", f);
    if ((m & CW_MOD_I) && !(m & CW_MOD_RE))
        return fail(c, it->line, "%s: modifier 'i' only applies to 're'", f);
    if ((m & CW_MOD_RE) && (m & ~(CW_MOD_RE | CW_MOD_I | CW_MOD_ALL)))
        return fail(c, it->line, "%s: 're' combines only with 'i' and 'all'", f);
    if ((m & CW_MOD_CIDR) && (m & ~CW_MOD_CIDR))
        return fail(c, it->line, "%s: 'cidr' combines with no other modifier", f);
    if ((m & CW_MOD_EXISTS) && (m & ~CW_MOD_EXISTS))
        return fail(c, it->line, "%s: 'exists' combines with no other modifier", f);
    if (m & CW_MOD_NUMERIC) {
        if (popcount(m & CW_MOD_NUMERIC) > 1 || (m & ~CW_MOD_NUMERIC))
            return fail(c, it->line, "%s: use one of gt, gte, lt, lte alone", f);
    }
    if (m & CW_MOD_EXISTS) {
        if (it->n_vals != 1 || !it->vals[0].s ||
            (strcmp(it->vals[0].s, "true") && strcmp(it->vals[0].s, "false")))
            return fail(c, it->line, "%s|exists needs exactly one value, true or false", f);
    }
    for (size_t i = 0; i < it->n_vals; i++) {
        if (it->vals[i].s) continue;
        if (m) return fail(c, it->vals[i].line, "%s: null cannot take modifiers", f);
    }
    if ((m & CW_MOD_ALL) && it->n_vals < 1)
        return fail(c, it->line, "%s|all needs values", f);
    return 0;
}

static int parse_item(pctx *c, yaml_node_t *k, yaml_node_t *v, cw_ritem *it)
{
    const char *key = scalar(c, k, "a detection key");
    if (!key) return -1;
    it->line = line_of(k);
    char *bar = strchr(key, '|');
    it->field = bar ? cw_pool_strndup(c->pool, key, (size_t)(bar - key)) : key;
    if (!it->field) return fail(c, it->line, "out of memory");
    if (!*it->field)
        return fail(c, it->line, "keyword searches ('%s') are not supported; name a field", key);
    while (bar) {
        const char *m = bar + 1;
        bar = strchr(m, '|');
        size_t ml = bar ? (size_t)(bar - m) : strlen(m);
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof modifiers / sizeof modifiers[0]; i++)
            if (strlen(modifiers[i].name) == ml && !strncmp(modifiers[i].name, m, ml))
                bit = modifiers[i].bit;
        if (!bit) return fail(c, it->line, "unknown modifier '%.*s' on %s", (int)ml, m, it->field);
        it->mods |= bit;
    }
    size_t cnt = 1;
    if (v && v->type == YAML_SEQUENCE_NODE)
        cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    else if (!v || v->type != YAML_SCALAR_NODE)
        return fail(c, line_of(v), "%s: value must be a value or a list of values", it->field);
    if (cnt == 0) return fail(c, line_of(v), "%s: empty list of values", it->field);
    if (cnt > c->budget) return fail(c, line_of(v), "too many values in one file");
    c->budget -= cnt;
    it->vals = cw_pool_alloc(c->pool, cnt * sizeof *it->vals);
    if (!it->vals) return fail(c, line_of(v), "out of memory");
    it->n_vals = cnt;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e =
            v->type == YAML_SEQUENCE_NODE ? node(c, v->data.sequence.items.start[i]) : v;
        it->vals[i].line = line_of(e);
        if (is_null(e)) continue;
        if (!(it->vals[i].s = scalar(c, e, it->field))) return -1;
    }
    return check_mods(c, it);
}

static int parse_map(pctx *c, yaml_node_t *m, cw_rmap *out)
{
    size_t cnt = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
    if (cnt == 0) return fail(c, line_of(m), "empty selection");
    if (cnt > c->budget) return fail(c, line_of(m), "too many values in one file");
    c->budget -= cnt;
    out->items = cw_pool_alloc(c->pool, cnt * sizeof *out->items);
    if (!out->items) return fail(c, line_of(m), "out of memory");
    out->n_items = cnt;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *p = &m->data.mapping.pairs.start[i];
        if (parse_item(c, node(c, p->key), node(c, p->value), &out->items[i]) < 0) return -1;
    }
    return 0;
}

static int parse_sel(pctx *c, const char *name, yaml_node_t *v, cw_rsel *s)
{
    s->name = name;
    s->line = line_of(v);
    if (v && v->type == YAML_MAPPING_NODE) {
        s->maps = cw_pool_alloc(c->pool, sizeof *s->maps);
        if (!s->maps) return fail(c, s->line, "out of memory");
        s->n_maps = 1;
        return parse_map(c, v, s->maps);
    }
    if (!v || v->type != YAML_SEQUENCE_NODE)
        return fail(c, s->line, "selection '%s' must be a map or a list of maps", name);
    size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (cnt == 0) return fail(c, s->line, "selection '%s' is empty", name);
    if (cnt > c->budget) return fail(c, s->line, "too many values in one file");
    c->budget -= cnt;
    s->maps = cw_pool_alloc(c->pool, cnt * sizeof *s->maps);
    if (!s->maps) return fail(c, s->line, "out of memory");
    s->n_maps = cnt;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = node(c, v->data.sequence.items.start[i]);
        if (!e || e->type != YAML_MAPPING_NODE)
            return fail(c, line_of(e),
                        "selection '%s': keyword lists are not supported; use a list of maps",
                        name);
        if (parse_map(c, e, &s->maps[i]) < 0) return -1;
    }
    return 0;
}

static int parse_detection(pctx *c, yaml_node_t *d, cw_rule_ast *r)
{
    if (d->type != YAML_MAPPING_NODE) return fail(c, line_of(d), "detection must be a map");
    size_t cnt = (size_t)(d->data.mapping.pairs.top - d->data.mapping.pairs.start);
    if (cnt > CW_RULE_MAX_SELECTIONS + 1)
        return fail(c, line_of(d), "more than %d selections", CW_RULE_MAX_SELECTIONS);
    r->sels = cw_pool_alloc(c->pool, (cnt ? cnt : 1) * sizeof *r->sels);
    if (!r->sels) return fail(c, line_of(d), "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *p = &d->data.mapping.pairs.start[i];
        yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        const char *name = scalar(c, k, "a selection name");
        if (!name) return -1;
        if (!strcmp(name, "condition")) {
            r->cond_line = line_of(v);
            if (v && v->type == YAML_SEQUENCE_NODE)
                return fail(c, line_of(v), "condition must be one expression (join with 'or')");
            if (!(r->condition = scalar(c, v, "condition"))) return -1;
            if (strlen(r->condition) > CW_RULE_MAX_CONDITION)
                return fail(c, line_of(v), "condition longer than %d characters",
                            CW_RULE_MAX_CONDITION);
            continue;
        }
        if (!strcmp(name, "timeframe"))
            return fail(c, line_of(k), "timeframe is not supported; use a correlation rule");
        for (size_t j = 0; j < r->n_sels; j++)
            if (!strcmp(r->sels[j].name, name))
                return fail(c, line_of(k), "duplicate selection '%s'", name);
        if (parse_sel(c, name, v, &r->sels[r->n_sels]) < 0) return -1;
        r->n_sels++;
    }
    if (!r->condition) return fail(c, line_of(d), "detection has no condition");
    if (!r->n_sels) return fail(c, line_of(d), "detection has no selection");
    return 0;
}

/* ------------------------------------------------------------ metadata */

static int parse_logsource(pctx *c, yaml_node_t *ls, cw_rule_ast *r)
{
    if (!ls) return fail(c, r->line, "rule has no logsource");
    if (ls->type != YAML_MAPPING_NODE) return fail(c, line_of(ls), "logsource must be a map");
    const char *product, *category, *service;
    if (opt_str(c, ls, "product", &product) < 0 || opt_str(c, ls, "category", &category) < 0 ||
        opt_str(c, ls, "service", &service) < 0)
        return -1;
    if (category) {
        for (int t = 0; t < CW_EV__COUNT; t++)
            if (!strcmp(cw_event_type_names[t], category)) {
                r->type = (enum cw_event_type)t;
                return 0;
            }
        return fail(c, line_of(ls), "logsource category '%s' is not an event type", category);
    }
    if (product && !strcmp(product, "kubernetes") && service && !strcmp(service, "audit")) {
        r->type = CW_EV_K8S_AUDIT;
        return 0;
    }
    return fail(c, line_of(ls),
                "logsource needs a category (an event type) or product kubernetes, service audit");
}

static int parse_level(pctx *c, yaml_node_t *v, cw_rule_ast *r)
{
    static const char *const names[] = {"informational", "low", "medium", "high", "critical"};
    if (!v) return fail(c, r->line, "rule has no level");
    const char *s = scalar(c, v, "level");
    if (!s) return -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            r->meta.severity = (enum cw_severity)i;
            return 0;
        }
    return fail(c, line_of(v), "level '%s' is not informational, low, medium, high or critical", s);
}

const char *cw_severity_name(enum cw_severity s)
{
    static const char *const names[] = {"info", "low", "medium", "high", "critical"};
    return (unsigned)s < 5 ? names[s] : "unknown";
}

/* Tactic and ATT&CK id from Sigma tags when the chainwatch block lacks
 * them, so plain Sigma rules load. */
static void from_tags(pctx *c, yaml_node_t *tags, cw_rule_ast *r)
{
    if (!tags || tags->type != YAML_SEQUENCE_NODE) return;
    for (yaml_node_item_t *i = tags->data.sequence.items.start; i < tags->data.sequence.items.top;
         i++) {
        yaml_node_t *t = node(c, *i);
        if (!t || t->type != YAML_SCALAR_NODE) continue;
        const char *s = (const char *)t->data.scalar.value;
        if (strncmp(s, "attack.", 7) != 0) continue;
        s += 7;
        if ((s[0] == 't' || s[0] == 'T') && s[1] >= '0' && s[1] <= '9') {
            if (!r->meta.attack) {
                char *a = cw_pool_strdup(c->pool, s);
                if (a) {
                    for (char *p = a; *p; p++)
                        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
                    r->meta.attack = a;
                }
            }
        } else if (!r->meta.tactic) {
            char *k = cw_pool_strdup(c->pool, s);
            if (!k) continue;
            for (char *p = k; *p; p++)
                if (*p == '_') *p = '-';
            if (cw_tactic_phase(k)) r->meta.tactic = k;
        }
    }
}

static int parse_mapping(pctx *c, yaml_node_t *doc, cw_rule_ast *r)
{
    yaml_node_t *cw = get(c, doc, "chainwatch");
    const char *tactic = NULL, *phase = NULL;
    if (cw) {
        if (cw->type != YAML_MAPPING_NODE) return fail(c, line_of(cw), "chainwatch must be a map");
        for (yaml_node_pair_t *p = cw->data.mapping.pairs.start; p < cw->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = node(c, p->key);
            const char *ks =
                k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
            if (strcmp(ks, "tactic") && strcmp(ks, "technique") && strcmp(ks, "attack") &&
                strcmp(ks, "phase") && strcmp(ks, "summary"))
                return fail(c, line_of(k), "unknown key chainwatch.%s", ks);
        }
        if (opt_str(c, cw, "tactic", &tactic) < 0 ||
            opt_str(c, cw, "technique", &r->meta.technique) < 0 ||
            opt_str(c, cw, "attack", &r->meta.attack) < 0 || opt_str(c, cw, "phase", &phase) < 0 ||
            opt_str(c, cw, "summary", &r->summary) < 0)
            return -1;
        int tl = line_of(get(c, cw, "tactic"));
        if (tactic && !cw_tactic_phase(tactic))
            return fail(c, tl, "unknown tactic '%s' (see k8s-threat-matrix.yaml tactics[].key)",
                        tactic);
        if (r->meta.technique && !cw_tactic_valid_technique(r->meta.technique))
            return fail(c, line_of(get(c, cw, "technique")),
                        "technique '%s' is not a Microsoft id like MS-TA9006", r->meta.technique);
        if (phase && !cw_tactic_valid_phase(phase))
            return fail(c, line_of(get(c, cw, "phase")), "phase '%s' is not pre, mid or post",
                        phase);
    }
    r->meta.tactic = tactic;
    from_tags(c, get(c, doc, "tags"), r);
    if (!r->meta.tactic)
        return fail(c, line_of(cw ? cw : doc),
                    "rule has no chainwatch.tactic (nor an attack.<tactic> tag)");
    r->meta.phase = phase ? phase : cw_tactic_phase(r->meta.tactic);
    return 0;
}

/* "30s", "5m", "2h", "1d" -> ns. */
static int parse_timespan(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0 || end[0] == 0 || end[1] != 0) return -1;
    int64_t unit;
    switch (*end) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return -1;
    }
    if (v > 365LL * 86400 / unit) return -1;
    *out = (int64_t)v * unit * 1000000000LL;
    return 0;
}

static int parse_correlation(pctx *c, yaml_node_t *co, cw_rule_ast *r)
{
    r->corr_line = line_of(co);
    if (co->type != YAML_MAPPING_NODE) return fail(c, r->corr_line, "correlation must be a map");
    static const char *const types[] = {NULL, "event_count", "value_count", "temporal",
                                        "temporal_ordered"};
    yaml_node_t *tn = get(c, co, "type");
    const char *t = tn ? scalar(c, tn, "correlation.type") : NULL;
    if (!tn) return fail(c, r->corr_line, "correlation has no type");
    if (!t) return -1;
    for (int i = 1; i < 5; i++)
        if (!strcmp(t, types[i])) r->corr = (enum cw_corr_type)i;
    if (!r->corr)
        return fail(c, line_of(tn), "correlation type '%s' is not event_count, value_count, "
                    "temporal or temporal_ordered", t);
    yaml_node_t *rules = get(c, co, "rules");
    if (!rules) return fail(c, r->corr_line, "correlation has no rules");
    if (str_list(c, rules, "correlation.rules", &r->refs, &r->n_refs, &r->ref_lines) < 0) return -1;
    if (r->corr >= CW_CORR_TEMPORAL && r->n_refs < 2)
        return fail(c, line_of(rules), "%s needs at least two rules", t);
    yaml_node_t *gb = get(c, co, "group-by");
    if (gb) {
        r->group_line = line_of(gb);
        if (str_list(c, gb, "group-by", &r->group_by, &r->n_group_by, NULL) < 0) return -1;
        if (r->n_group_by > 16) return fail(c, r->group_line, "group-by: at most 16 fields");
    }
    yaml_node_t *ts = get(c, co, "timespan");
    if (!ts) return fail(c, r->corr_line, "correlation has no timespan");
    if (!(r->timespan_text = scalar(c, ts, "timespan"))) return -1;
    if (parse_timespan(r->timespan_text, &r->timespan_ns) < 0)
        return fail(c, line_of(ts), "timespan '%s' is not like 30s, 5m, 2h or 1d (max 365d)",
                    r->timespan_text);
    yaml_node_t *cond = get(c, co, "condition");
    if (!cond) {
        if (r->corr <= CW_CORR_VALUE_COUNT) return fail(c, r->corr_line, "%s needs a condition", t);
        return 0; /* temporal: all rules */
    }
    if (cond->type != YAML_MAPPING_NODE)
        return fail(c, line_of(cond), "condition must be a map like {gte: 10}");
    static const char *const ops[] = {NULL, "gt", "gte", "lt", "lte", "eq"};
    for (yaml_node_pair_t *p = cond->data.mapping.pairs.start; p < cond->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        const char *ks = scalar(c, k, "condition key");
        if (!ks) return -1;
        if (!strcmp(ks, "field")) {
            r->cond_field_line = line_of(k);
            if (!(r->count_field = scalar(c, v, "condition.field"))) return -1;
            continue;
        }
        int op = 0;
        for (int i = 1; i < 6; i++)
            if (!strcmp(ks, ops[i])) op = i;
        if (!op)
            return fail(c, line_of(k), "unknown condition '%s' (gt, gte, lt, lte, eq, field)",
                        ks);
        if (r->cmp) return fail(c, line_of(k), "condition has more than one comparison");
        const char *vs = scalar(c, v, "condition value");
        if (!vs) return -1;
        char *end;
        errno = 0;
        long long x = strtoll(vs, &end, 10);
        if (errno || end == vs || *end || x < 0 || x > 1000000)
            return fail(c, line_of(v), "condition value '%s' is not a count 0..1000000", vs);
        r->cmp = (enum cw_cmp)op;
        r->threshold = x;
    }
    if (!r->cmp) return fail(c, line_of(cond), "condition has no comparison");
    if (r->corr == CW_CORR_VALUE_COUNT && !r->count_field)
        return fail(c, line_of(cond), "value_count needs condition.field");
    if (r->corr != CW_CORR_VALUE_COUNT && r->count_field)
        return fail(c, r->cond_field_line, "condition.field only applies to value_count");
    return 0;
}

/* ------------------------------------------------------------ documents */

static int parse_doc(pctx *c, yaml_node_t *doc, cw_rule_ast *r)
{
    r->line = line_of(doc);
    r->generate = 1;
    if (doc->type != YAML_MAPPING_NODE) return fail(c, r->line, "a rule must be a YAML map");
    for (yaml_node_pair_t *p = doc->data.mapping.pairs.start; p < doc->data.mapping.pairs.top; p++)
        for (yaml_node_pair_t *q = doc->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *a = node(c, p->key), *b = node(c, q->key);
            if (a && b && a->type == YAML_SCALAR_NODE && b->type == YAML_SCALAR_NODE &&
                !strcmp((const char *)a->data.scalar.value, (const char *)b->data.scalar.value))
                return fail(c, line_of(a), "duplicate key '%s'",
                            (const char *)a->data.scalar.value);
        }
    yaml_node_t *idn = get(c, doc, "id"), *title = get(c, doc, "title");
    if (!idn) return fail(c, r->line, "rule has no id");
    if (!(r->meta.id = scalar(c, idn, "id"))) return -1;
    if (!*r->meta.id || strlen(r->meta.id) > 200)
        return fail(c, line_of(idn), "id must be 1..200 characters");
    if (!title) return fail(c, r->line, "rule %s has no title", r->meta.id);
    if (!(r->meta.title = scalar(c, title, "title"))) return -1;
    if (opt_str(c, doc, "name", &r->name) < 0) return -1;
    if (parse_level(c, get(c, doc, "level"), r) < 0) return -1;
    yaml_node_t *gen = get(c, doc, "generate");
    if (gen && parse_bool(c, gen, "generate", &r->generate) < 0) return -1;
    if (parse_mapping(c, doc, r) < 0) return -1;
    yaml_node_t *det = get(c, doc, "detection"), *co = get(c, doc, "correlation");
    if (det && co) return fail(c, line_of(co), "a rule has either detection or correlation");
    if (co) return parse_correlation(c, co, r);
    if (!det) return fail(c, r->line, "rule %s has neither detection nor correlation", r->meta.id);
    if (parse_logsource(c, get(c, doc, "logsource"), r) < 0) return -1;
    return parse_detection(c, det, r);
}

int cw_rule_parse_text(cw_pool *pool, const char *text, size_t len, const char *display,
                       cw_rule_ast ***tail, char *err, size_t errlen)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", display);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    pctx c = {.pool = pool, .file = display, .err = err, .errlen = errlen, .budget = VALUE_BUDGET};
    int rc = 0;
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc)) {
            yaml_mark_t m = parser.problem_mark;
            rc = fail(&c, (int)m.line + 1, "YAML: %s%s%s",
                      parser.problem ? parser.problem : "error",
                      parser.context ? " " : "", parser.context ? parser.context : "");
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) {
            yaml_document_delete(&doc);
            break;
        }
        c.doc = &doc;
        cw_rule_ast *r = cw_pool_alloc(pool, sizeof *r);
        if (!r) rc = fail(&c, line_of(root), "out of memory");
        else {
            r->file = display;
            rc = parse_doc(&c, root, r);
        }
        yaml_document_delete(&doc);
        if (rc < 0) break;
        **tail = r;
        *tail = &r->next;
    }
    yaml_parser_delete(&parser);
    return rc;
}

int cw_rule_parse_file(cw_pool *pool, const char *path, const char *display,
                       cw_rule_ast ***tail, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", display, strerror(errno));
        return -1;
    }
    char *buf = malloc(CW_RULE_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, CW_RULE_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    int rc = -1;
    if (!buf) snprintf(err, errlen, "%s: out of memory", display);
    else if (bad) snprintf(err, errlen, "%s: read error", display);
    else if (n > CW_RULE_FILE_MAX)
        snprintf(err, errlen, "%s: larger than %d bytes", display, CW_RULE_FILE_MAX);
    else rc = cw_rule_parse_text(pool, buf, n, display, tail, err, errlen);
    free(buf);
    return rc;
}
