#include "correlator/rule_compile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "correlator/rule_cond.h"

/* Atom-level expression tree: selections expanded, ready for code and
 * trigger selection. */
enum xop { X_ATOM, X_AND, X_OR, X_NOT };
typedef struct xnode {
    enum xop op;
    uint32_t atom;
    struct xnode **kids;
    size_t n;
} xnode;

/* Per-bucket build state (heap arrays, moved into the pool at the end). */
typedef struct bbuild {
    cw_bfield *fields;
    size_t n_fields, cap_fields;
    cw_atom *atoms;
    size_t n_atoms, cap_atoms;
    uint32_t *hash; /* open addressing over HS atoms: atom id + 1, 0 = empty */
    size_t hash_cap;
    cw_crule **rules;
    xnode **trees;
    size_t n_rules, cap_rules;
} bbuild;

typedef struct cctx {
    cw_pool *pool;
    char *err;
    size_t errlen;
    bbuild b[CW_EV__COUNT];
} cctx;

static int fail(cctx *c, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(cctx *c, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cw_rule_verr(c->err, c->errlen, file, line, fmt, ap);
    va_end(ap);
    return -1;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *n = realloc(*arr, nc * elem);
    if (!n) return -1;
    *arr = n;
    *cap = nc;
    return 0;
}

/* --------------------------------------------------------------- atoms */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t atom_hash(const cw_atom *a)
{
    uint64_t h = fnv(0xcbf29ce484222325ULL, &a->field, sizeof a->field);
    h = fnv(h, &a->hs_flags, sizeof a->hs_flags);
    return fnv(h, a->regex, strlen(a->regex));
}

static int field_index(cctx *c, bbuild *b, const cw_fref *ref, uint32_t *out)
{
    for (size_t i = 0; i < b->n_fields; i++)
        if (cw_field_same(&b->fields[i].ref, ref)) {
            *out = (uint32_t)i;
            return 0;
        }
    if (grow((void **)&b->fields, &b->cap_fields, b->n_fields + 1, sizeof *b->fields) < 0)
        return -1;
    cw_bfield *f = &b->fields[b->n_fields];
    memset(f, 0, sizeof *f);
    f->ref = *ref;
    if (ref->label && !(f->ref.label = cw_pool_strdup(c->pool, ref->label))) return -1;
    *out = (uint32_t)b->n_fields++;
    return 0;
}

static int rehash(bbuild *b)
{
    size_t nc = b->hash_cap ? b->hash_cap * 2 : 256;
    uint32_t *h = calloc(nc, sizeof *h);
    if (!h) return -1;
    for (size_t i = 0; i < b->n_atoms; i++) {
        if (b->atoms[i].kind != CW_A_HS) continue;
        size_t j = atom_hash(&b->atoms[i]) & (nc - 1);
        while (h[j]) j = (j + 1) & (nc - 1);
        h[j] = (uint32_t)i + 1;
    }
    free(b->hash);
    b->hash = h;
    b->hash_cap = nc;
    return 0;
}

static int same_atom(const cw_atom *a, const cw_atom *x)
{
    if (a->kind != x->kind || a->field != x->field) return 0;
    switch (a->kind) {
    case CW_A_HS: return a->hs_flags == x->hs_flags && !strcmp(a->regex, x->regex);
    case CW_A_CIDR:
        return a->family == x->family && a->prefix == x->prefix && !memcmp(a->addr, x->addr, 16);
    case CW_A_NUM: return a->cmp == x->cmp && a->num == x->num;
    default: return 1;
    }
}

/* Adds atom (or finds an identical one); returns its id or -1. */
static int64_t add_atom(bbuild *b, const cw_atom *a)
{
    if (a->kind == CW_A_HS) {
        if (b->n_atoms * 2 >= b->hash_cap && rehash(b) < 0) return -1;
        size_t j = atom_hash(a) & (b->hash_cap - 1);
        for (; b->hash[j]; j = (j + 1) & (b->hash_cap - 1))
            if (same_atom(&b->atoms[b->hash[j] - 1], a)) return b->hash[j] - 1;
        b->hash[j] = (uint32_t)b->n_atoms + 1;
    } else {
        /* Few non-string atoms: a linear search is fine at load. */
        for (size_t i = 0; i < b->n_atoms; i++)
            if (same_atom(&b->atoms[i], a)) return (int64_t)i;
    }
    if (grow((void **)&b->atoms, &b->cap_atoms, b->n_atoms + 1, sizeof *b->atoms) < 0) return -1;
    b->atoms[b->n_atoms] = *a;
    return (int64_t)b->n_atoms++;
}

/* Sigma wildcard value -> Hyperscan expression. mods adds the implied
 * stars. Returns the expression, or NULL with *special set to CW_A_EXISTS
 * (the value matches any string) or CW_A_EMPTY (only ""). */
static char *glob_regex(cw_pool *pool, const char *v, unsigned mods, enum cw_atom_kind *special)
{
    size_t n = strlen(v);
    /* Tokens: -1 star, -2 any char, else a literal byte. */
    int *t = malloc((n + 2) * sizeof *t);
    if (!t) return NULL;
    size_t nt = 0;
    if (mods & (CW_MOD_CONTAINS | CW_MOD_ENDSWITH)) t[nt++] = -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '\\' && i + 1 < n && (v[i + 1] == '*' || v[i + 1] == '?' || v[i + 1] == '\\'))
            t[nt++] = (unsigned char)v[++i];
        else if (ch == '*') t[nt++] = -1;
        else if (ch == '?') t[nt++] = -2;
        else t[nt++] = ch;
    }
    if (mods & (CW_MOD_CONTAINS | CW_MOD_STARTSWITH)) t[nt++] = -1;
    size_t s = 0, e = nt;
    int star_start = 0, star_end = 0;
    while (s < e && t[s] == -1) s++, star_start = 1;
    while (e > s && t[e - 1] == -1) e--, star_end = 1;
    if (s == e) {
        free(t);
        *special = (star_start || star_end) ? CW_A_EXISTS : CW_A_EMPTY;
        return NULL;
    }
    char *r = cw_pool_alloc(pool, (e - s) * 4 + 8);
    if (!r) {
        free(t);
        return NULL;
    }
    char *p = r;
    if (!star_start) *p++ = '^';
    for (size_t i = s; i < e; i++) {
        if (t[i] == -1) p += sprintf(p, ".*");
        else if (t[i] == -2) *p++ = '.';
        else if ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
                 (t[i] >= '0' && t[i] <= '9'))
            *p++ = (char)t[i];
        else p += sprintf(p, "\\x%02x", (unsigned)t[i]);
    }
    if (!star_end) p += sprintf(p, "\\z");
    *p = 0;
    free(t);
    return r;
}

static int parse_cidr(const char *v, cw_atom *a)
{
    char buf[64];
    const char *slash = strchr(v, '/');
    size_t l = slash ? (size_t)(slash - v) : strlen(v);
    if (l == 0 || l >= sizeof buf) return -1;
    memcpy(buf, v, l);
    buf[l] = 0;
    int max;
    if (inet_pton(AF_INET, buf, a->addr) == 1) a->family = 4, max = 32;
    else if (inet_pton(AF_INET6, buf, a->addr) == 1) a->family = 6, max = 128;
    else return -1;
    a->prefix = max;
    if (slash) {
        char *end;
        errno = 0;
        long p = strtol(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end || p < 0 || p > max) return -1;
        a->prefix = (int)p;
    }
    return 0;
}

int cw_atom_cidr_match(const cw_atom *a, const char *s, size_t len)
{
    char buf[64];
    unsigned char ip[16];
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (inet_pton(a->family == 4 ? AF_INET : AF_INET6, buf, ip) != 1) return 0;
    int full = a->prefix / 8, rest = a->prefix % 8;
    if (memcmp(ip, a->addr, (size_t)full) != 0) return 0;
    if (!rest) return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (ip[full] & mask) == (a->addr[full] & mask);
}

/* ------------------------------------------------------- expression tree */

static xnode *xmk(cctx *c, enum xop op, size_t n)
{
    xnode *x = cw_pool_alloc(c->pool, sizeof *x);
    if (!x) return NULL;
    x->op = op;
    x->n = n;
    if (n && !(x->kids = cw_pool_alloc(c->pool, n * sizeof *x->kids))) return NULL;
    return x;
}

static xnode *xatom(cctx *c, bbuild *b, cw_atom *a)
{
    int64_t id = add_atom(b, a);
    if (id < 0) return NULL;
    xnode *x = xmk(c, X_ATOM, 0);
    if (x) x->atom = (uint32_t)id;
    return x;
}

static const char *kind_name(enum cw_fkind k)
{
    static const char *const n[] = {"str", "num", "bool", "list of str", "list of num"};
    return n[k];
}

/* One value of an item -> an atom node (NULL with err set on failure). */
static xnode *value_node(cctx *c, const cw_rule_ast *r, bbuild *b, const cw_ritem *it,
                         const cw_fref *ref, uint32_t fidx, const cw_rvalue *v)
{
    cw_atom a = {.field = fidx, .file = r->file, .line = v->line};
    enum cw_fkind kind = cw_field_kind(ref);
    unsigned m = it->mods;
    if (!v->s) {
        a.kind = CW_A_NULL;
    } else if (m & CW_MOD_EXISTS) {
        a.kind = CW_A_EXISTS;
        xnode *x = xatom(c, b, &a);
        if (!x || strcmp(v->s, "false")) return x;
        xnode *n = xmk(c, X_NOT, 1);
        if (n) n->kids[0] = x;
        return n;
    } else if (m & CW_MOD_NUMERIC) {
        if (kind != CW_FK_NUM && kind != CW_FK_NUM_LIST) {
            fail(c, r->file, v->line, "%s is %s: gt/gte/lt/lte need a numeric field", it->field,
                 kind_name(kind));
            return NULL;
        }
        char *end;
        errno = 0;
        long long x = strtoll(v->s, &end, 10);
        if (errno || end == v->s || *end) {
            fail(c, r->file, v->line, "%s: '%s' is not an integer", it->field, v->s);
            return NULL;
        }
        a.kind = CW_A_NUM;
        a.cmp = m & CW_MOD_NUMERIC;
        a.num = x;
    } else if (m & CW_MOD_CIDR) {
        if (kind != CW_FK_STR && kind != CW_FK_STR_LIST) {
            fail(c, r->file, v->line, "%s is %s: cidr needs an address field", it->field,
                 kind_name(kind));
            return NULL;
        }
        if (parse_cidr(v->s, &a) < 0) {
            fail(c, r->file, v->line, "%s: '%s' is not an IPv4 or IPv6 network", it->field, v->s);
            return NULL;
        }
        a.kind = CW_A_CIDR;
    } else if (m & CW_MOD_RE) {
        a.kind = CW_A_HS;
        a.regex = v->s;
        a.hs_flags = HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY;
        if (m & CW_MOD_I) a.hs_flags |= HS_FLAG_CASELESS;
        hs_expr_info_t *info = NULL;
        hs_compile_error_t *ce = NULL;
        if (hs_expression_info(a.regex, a.hs_flags, &info, &ce) != HS_SUCCESS) {
            fail(c, r->file, v->line, "%s|re: bad or unsupported regex '%s': %s", it->field, v->s,
                 ce && ce->message ? ce->message : "rejected by Hyperscan");
            hs_free_compile_error(ce);
            return NULL;
        }
        free(info);
    } else {
        const char *val = v->s;
        if (kind == CW_FK_BOOL && !(m & (CW_MOD_CONTAINS | CW_MOD_STARTSWITH | CW_MOD_ENDSWITH))) {
            if (!strcasecmp(val, "true") || !strcasecmp(val, "yes")) val = "true";
            else if (!strcasecmp(val, "false") || !strcasecmp(val, "no")) val = "false";
            else {
                fail(c, r->file, v->line, "%s is bool: '%s' is not true or false", it->field, val);
                return NULL;
            }
        }
        enum cw_atom_kind special = CW_A_HS;
        a.regex = glob_regex(c->pool, val, m, &special);
        if (!a.regex) {
            if (special == CW_A_HS) {
                fail(c, r->file, v->line, "out of memory");
                return NULL;
            }
            a.kind = special;
        } else {
            a.kind = CW_A_HS;
            a.hs_flags = HS_FLAG_SINGLEMATCH | HS_FLAG_DOTALL |
                         ((m & CW_MOD_CASED) ? 0 : HS_FLAG_CASELESS);
        }
    }
    xnode *x = xatom(c, b, &a);
    if (!x) fail(c, r->file, v->line, "out of memory");
    return x;
}

static xnode *item_node(cctx *c, const cw_rule_ast *r, bbuild *b, const cw_ritem *it)
{
    cw_fref ref;
    if (cw_field_lookup(it->field, r->type, &ref) < 0) {
        fail(c, r->file, it->line, "unknown field '%s' for logsource %s (see rules/FIELDS.md)",
             it->field, cw_event_type_names[r->type]);
        return NULL;
    }
    uint32_t fidx;
    if (field_index(c, b, &ref, &fidx) < 0) {
        fail(c, r->file, it->line, "out of memory");
        return NULL;
    }
    if (it->n_vals == 1) return value_node(c, r, b, it, &ref, fidx, &it->vals[0]);
    xnode *x = xmk(c, (it->mods & CW_MOD_ALL) ? X_AND : X_OR, it->n_vals);
    if (!x) {
        fail(c, r->file, it->line, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < it->n_vals; i++)
        if (!(x->kids[i] = value_node(c, r, b, it, &ref, fidx, &it->vals[i]))) return NULL;
    return x;
}

static xnode *sel_node(cctx *c, const cw_rule_ast *r, bbuild *b, const cw_rsel *s)
{
    xnode *ors = xmk(c, X_OR, s->n_maps);
    if (!ors) goto oom;
    for (size_t i = 0; i < s->n_maps; i++) {
        const cw_rmap *m = &s->maps[i];
        xnode *ands = xmk(c, X_AND, m->n_items);
        if (!ands) goto oom;
        for (size_t j = 0; j < m->n_items; j++)
            if (!(ands->kids[j] = item_node(c, r, b, &m->items[j]))) return NULL;
        ors->kids[i] = ands;
    }
    return ors;
oom:
    fail(c, r->file, s->line, "out of memory");
    return NULL;
}

/* Selections are compiled once per rule and shared by every reference. */
static xnode *cond_node(cctx *c, const cw_rule_ast *r, xnode **sels, const cw_cnode *n)
{
    if (n->op == CW_C_SEL) return sels[n->sel];
    xnode *x = xmk(c, n->op == CW_C_NOT ? X_NOT : n->op == CW_C_AND ? X_AND : X_OR,
                   n->op == CW_C_NOT ? 1 : 2);
    if (!x) {
        fail(c, r->file, r->cond_line, "out of memory");
        return NULL;
    }
    if (!(x->kids[0] = cond_node(c, r, sels, n->a))) return NULL;
    if (n->op != CW_C_NOT && !(x->kids[1] = cond_node(c, r, sels, n->b))) return NULL;
    return x;
}

/* ------------------------------------------------------ triggers, code */

/* Cost of the cheapest trigger set of x (sum of atom refcounts), or -1 if
 * x can be true with none of its atoms set. */
static int64_t trig_cost(const bbuild *b, const xnode *x)
{
    switch (x->op) {
    case X_ATOM: return b->atoms[x->atom].refcount;
    case X_NOT: return -1;
    case X_OR: {
        int64_t sum = 0;
        for (size_t i = 0; i < x->n; i++) {
            int64_t k = trig_cost(b, x->kids[i]);
            if (k < 0) return -1;
            sum += k;
        }
        return sum;
    }
    case X_AND: {
        int64_t best = -1;
        for (size_t i = 0; i < x->n; i++) {
            int64_t k = trig_cost(b, x->kids[i]);
            if (k >= 0 && (best < 0 || k < best)) best = k;
        }
        return best;
    }
    }
    return -1;
}

static int trig_collect(const bbuild *b, const xnode *x, uint32_t **v, size_t *n, size_t *cap)
{
    if (x->op == X_ATOM) {
        for (size_t i = 0; i < *n; i++)
            if ((*v)[i] == x->atom) return 0;
        if (grow((void **)v, cap, *n + 1, sizeof **v) < 0) return -1;
        (*v)[(*n)++] = x->atom;
        return 0;
    }
    if (x->op == X_OR) {
        for (size_t i = 0; i < x->n; i++)
            if (trig_collect(b, x->kids[i], v, n, cap) < 0) return -1;
        return 0;
    }
    /* X_AND: the cheapest side. */
    size_t bi = 0;
    int64_t best = -1;
    for (size_t i = 0; i < x->n; i++) {
        int64_t k = trig_cost(b, x->kids[i]);
        if (k >= 0 && (best < 0 || k < best)) best = k, bi = i;
    }
    return trig_collect(b, x->kids[bi], v, n, cap);
}

static void count_refs(bbuild *b, const xnode *x)
{
    if (x->op == X_ATOM) b->atoms[x->atom].refcount++;
    for (size_t i = 0; i < x->n; i++) count_refs(b, x->kids[i]);
}

static size_t code_len(const xnode *x)
{
    size_t n = 1;
    for (size_t i = 0; i < x->n; i++) n += code_len(x->kids[i]);
    return n;
}

static void emit(const xnode *x, uint32_t *code, size_t *pos)
{
    for (size_t i = 0; i < x->n; i++) emit(x->kids[i], code, pos);
    switch (x->op) {
    case X_ATOM: code[(*pos)++] = CW_OP_ATOM | x->atom; break;
    case X_NOT: code[(*pos)++] = CW_OP_NOT; break;
    case X_AND: code[(*pos)++] = CW_OP_AND | (uint32_t)x->n; break;
    case X_OR: code[(*pos)++] = CW_OP_OR | (uint32_t)x->n; break;
    }
}

/* Maximum stack depth the code needs; SIZE_MAX if malformed. */
static size_t code_depth(const uint32_t *code, size_t n)
{
    size_t d = 0, max = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t op = code[i] & CW_OP_MASK, arg = code[i] & ~CW_OP_MASK;
        if (op == CW_OP_ATOM) d++;
        else if (op != CW_OP_NOT) {
            if (arg == 0 || arg > d) return SIZE_MAX;
            d -= arg - 1;
        }
        if (d > max) max = d;
    }
    return max;
}

int cw_code_eval(const uint32_t *code, size_t n, const uint32_t *stamp, uint32_t cur)
{
    unsigned char st[CW_CODE_MAX_STACK];
    size_t sp = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t op = code[i] & CW_OP_MASK, arg = code[i] & ~CW_OP_MASK;
        if (op == CW_OP_ATOM) {
            st[sp++] = stamp[arg] == cur;
        } else if (op == CW_OP_NOT) {
            st[sp - 1] = !st[sp - 1];
        } else {
            int v = op == CW_OP_AND;
            for (uint32_t k = 0; k < arg; k++) {
                if (op == CW_OP_AND) v &= st[sp - 1 - k];
                else v |= st[sp - 1 - k];
            }
            sp -= arg;
            st[sp++] = (unsigned char)v;
        }
    }
    return sp ? st[sp - 1] : 0;
}

/* ------------------------------------------------------------ buckets */

static int compile_rule(cctx *c, cw_rule_ast *r)
{
    bbuild *b = &c->b[r->type];
    xnode **sels = cw_pool_alloc(c->pool, r->n_sels * sizeof *sels);
    if (!sels) return fail(c, r->file, r->line, "out of memory");
    char msg[256];
    cw_cnode *cond;
    if (cw_cond_parse(c->pool, r->condition, r->sels, r->n_sels, &cond, msg, sizeof msg) < 0)
        return fail(c, r->file, r->cond_line, "%s", msg);
    /* Compile only the selections the condition uses, each once. */
    for (size_t i = 0; i < r->n_sels; i++)
        if (!(sels[i] = sel_node(c, r, b, &r->sels[i]))) return -1;
    xnode *tree = cond_node(c, r, sels, cond);
    if (!tree) return -1;
    cw_crule *cr = cw_pool_alloc(c->pool, sizeof *cr);
    if (!cr) return fail(c, r->file, r->line, "out of memory");
    cr->ast = r;
    cr->meta = &r->meta;
    cr->n_code = code_len(tree);
    if (cr->n_code > 1u << 20) return fail(c, r->file, r->cond_line, "condition too large");
    cr->code = cw_pool_alloc(c->pool, cr->n_code * sizeof *cr->code);
    if (!cr->code) return fail(c, r->file, r->line, "out of memory");
    size_t pos = 0;
    emit(tree, cr->code, &pos);
    if (code_depth(cr->code, cr->n_code) > CW_CODE_MAX_STACK)
        return fail(c, r->file, r->cond_line, "condition nests too deeply");
    if (grow((void **)&b->rules, &b->cap_rules, b->n_rules + 1, sizeof *b->rules) < 0 ||
        !(b->trees = realloc(b->trees, b->cap_rules * sizeof *b->trees)))
        return fail(c, r->file, r->line, "out of memory");
    cr->index = (uint32_t)b->n_rules;
    b->rules[b->n_rules] = cr;
    b->trees[b->n_rules++] = tree;
    r->crule = cr;
    return 0;
}

static int build_db(cctx *c, bbuild *b, uint32_t f, cw_bucket *out)
{
    size_t n = 0, nd = 0;
    for (size_t i = 0; i < b->n_atoms; i++)
        if (b->atoms[i].field == f) {
            if (b->atoms[i].kind == CW_A_HS) n++;
            else nd++;
        }
    cw_bfield *bf = &out->fields[f];
    if (nd) {
        bf->direct = cw_pool_alloc(c->pool, nd * sizeof *bf->direct);
        if (!bf->direct) return fail(c, "rules", 0, "out of memory");
        for (size_t i = 0; i < b->n_atoms; i++)
            if (b->atoms[i].field == f && b->atoms[i].kind != CW_A_HS)
                bf->direct[bf->n_direct++] = (uint32_t)i;
    }
    if (!n) return 0;
    const char **ex = malloc(n * sizeof *ex);
    unsigned *fl = malloc(n * sizeof *fl), *ids = malloc(n * sizeof *ids);
    size_t *ix = malloc(n * sizeof *ix);
    int rc = 0;
    if (!ex || !fl || !ids || !ix) {
        rc = fail(c, "rules", 0, "out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < b->n_atoms; i++)
        if (b->atoms[i].field == f && b->atoms[i].kind == CW_A_HS) {
            ex[k] = b->atoms[i].regex;
            fl[k] = b->atoms[i].hs_flags;
            ids[k] = (unsigned)i;
            ix[k++] = i;
        }
    hs_compile_error_t *ce = NULL;
    if (hs_compile_multi(ex, fl, ids, (unsigned)n, HS_MODE_BLOCK, NULL, &bf->db, &ce) !=
        HS_SUCCESS) {
        const cw_atom *a = ce && ce->expression >= 0 && (size_t)ce->expression < n
                               ? &b->atoms[ix[ce->expression]] : &b->atoms[ix[0]];
        rc = fail(c, a->file, a->line, "%s: pattern '%s' rejected by Hyperscan: %s",
                  cw_field_name(&bf->ref), a->regex, ce && ce->message ? ce->message : "?");
        hs_free_compile_error(ce);
        bf->db = NULL;
    }
out:
    free(ex);
    free(fl);
    free(ids);
    free(ix);
    return rc;
}

static int finish_bucket(cctx *c, bbuild *b, cw_bucket *out)
{
    if (!b->n_rules) return 0;
    for (size_t i = 0; i < b->n_rules; i++) count_refs(b, b->trees[i]);
    out->n_fields = b->n_fields;
    out->n_atoms = b->n_atoms;
    out->n_rules = b->n_rules;
    out->fields = cw_pool_alloc(c->pool, (b->n_fields + 1) * sizeof *out->fields);
    out->atoms = cw_pool_alloc(c->pool, (b->n_atoms + 1) * sizeof *out->atoms);
    out->rules = cw_pool_alloc(c->pool, b->n_rules * sizeof *out->rules);
    out->trig_off = cw_pool_alloc(c->pool, (b->n_atoms + 1) * sizeof *out->trig_off);
    out->always = cw_pool_alloc(c->pool, b->n_rules * sizeof *out->always);
    if (!out->fields || !out->atoms || !out->rules || !out->trig_off || !out->always)
        return fail(c, "rules", 0, "out of memory");
    memcpy(out->fields, b->fields, b->n_fields * sizeof *out->fields);
    memcpy(out->atoms, b->atoms, b->n_atoms * sizeof *out->atoms);
    memcpy(out->rules, b->rules, b->n_rules * sizeof *out->rules);

    /* Trigger sets: first the per-rule sets, then a CSR index by atom. */
    uint32_t **sets = calloc(b->n_rules, sizeof *sets);
    size_t *ns = calloc(b->n_rules, sizeof *ns), total = 0;
    int rc = 0;
    if (!sets || !ns) {
        rc = fail(c, "rules", 0, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->n_rules; i++) {
        if (trig_cost(b, b->trees[i]) < 0) {
            out->always[out->n_always++] = (uint32_t)i;
            continue;
        }
        size_t cap = 0;
        if (trig_collect(b, b->trees[i], &sets[i], &ns[i], &cap) < 0) {
            rc = fail(c, "rules", 0, "out of memory");
            goto out;
        }
        total += ns[i];
    }
    out->trig = cw_pool_alloc(c->pool, (total + 1) * sizeof *out->trig);
    if (!out->trig) {
        rc = fail(c, "rules", 0, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->n_rules; i++)
        for (size_t j = 0; j < ns[i]; j++) out->trig_off[sets[i][j] + 1]++;
    for (size_t a = 0; a < b->n_atoms; a++) out->trig_off[a + 1] += out->trig_off[a];
    {
        uint32_t *fill = calloc(b->n_atoms + 1, sizeof *fill);
        if (!fill) {
            rc = fail(c, "rules", 0, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < b->n_rules; i++)
            for (size_t j = 0; j < ns[i]; j++) {
                uint32_t a = sets[i][j];
                out->trig[out->trig_off[a] + fill[a]++] = (uint32_t)i;
            }
        free(fill);
    }
    for (uint32_t f = 0; f < b->n_fields && rc == 0; f++) rc = build_db(c, b, f, out);
out:
    if (sets)
        for (size_t i = 0; i < b->n_rules; i++) free(sets[i]);
    free(sets);
    free(ns);
    return rc;
}

static void free_build(bbuild *b)
{
    free(b->fields);
    free(b->atoms);
    free(b->hash);
    free(b->rules);
    free(b->trees);
    memset(b, 0, sizeof *b);
}

int cw_compile_rules(cw_pool *pool, cw_rule_ast *list, cw_compiled *c, char *err, size_t errlen)
{
    cctx cx = {.pool = pool, .err = err, .errlen = errlen};
    int rc = 0;
    for (cw_rule_ast *r = list; r && rc == 0; r = r->next)
        if (r->corr == CW_CORR_NONE) rc = compile_rule(&cx, r);
    for (int t = 0; t < CW_EV__COUNT; t++) {
        if (rc == 0) rc = finish_bucket(&cx, &cx.b[t], &c->buckets[t]);
        if (c->buckets[t].n_atoms > c->max_atoms) c->max_atoms = c->buckets[t].n_atoms;
        if (c->buckets[t].n_rules > c->max_rules) c->max_rules = c->buckets[t].n_rules;
        free_build(&cx.b[t]);
    }
    if (rc < 0) cw_compiled_free(c);
    return rc;
}

void cw_compiled_free(cw_compiled *c)
{
    for (int t = 0; t < CW_EV__COUNT; t++) {
        cw_bucket *b = &c->buckets[t];
        for (size_t f = 0; f < b->n_fields; f++) {
            if (b->fields && b->fields[f].db) hs_free_database(b->fields[f].db);
            if (b->fields) b->fields[f].db = NULL;
        }
    }
}
