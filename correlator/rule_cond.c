#include "correlator/rule_cond.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

typedef struct lexer {
    const char *p;
    const char *tok; /* current token */
    size_t len;      /* 0 at the end */
    cw_pool *pool;
    const cw_rsel *sels;
    size_t n_sels;
    char *msg;
    size_t msglen;
    int depth;
} lexer;

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '*' || c == '-' || c == '.';
}

static void next(lexer *l)
{
    while (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r') l->p++;
    l->tok = l->p;
    if (!*l->p) l->len = 0;
    else if (*l->p == '(' || *l->p == ')') l->len = 1;
    else if (is_name_char(*l->p)) {
        const char *s = l->p;
        while (is_name_char(*s)) s++;
        l->len = (size_t)(s - l->p);
    } else l->len = 1; /* a stray character: reported by the parser */
    l->p += l->len;
}

static int is(lexer *l, const char *w)
{
    return l->len == strlen(w) && strncmp(l->tok, w, l->len) == 0;
}

static cw_cnode *err(lexer *l, const char *what)
{
    if (l->len)
        snprintf(l->msg, l->msglen, "condition: %s at '%.*s'", what, (int)l->len, l->tok);
    else
        snprintf(l->msg, l->msglen, "condition: %s at the end", what);
    return NULL;
}

static cw_cnode *mk(lexer *l, enum cw_cop op, size_t sel, cw_cnode *a, cw_cnode *b)
{
    cw_cnode *n = cw_pool_alloc(l->pool, sizeof *n);
    if (!n) {
        snprintf(l->msg, l->msglen, "out of memory");
        return NULL;
    }
    n->op = op;
    n->sel = sel;
    n->a = a;
    n->b = b;
    return n;
}

/* Glob with '*' only, against a NUL-terminated name: greedy with one
 * backtrack point, so linear in practice and never exponential. */
static int glob(const char *pat, size_t plen, const char *s)
{
    size_t pi = 0, star = (size_t)-1;
    const char *mark = NULL;
    while (*s) {
        if (pi < plen && pat[pi] == '*') {
            star = pi++;
            mark = s;
        } else if (pi < plen && pat[pi] == *s) {
            pi++;
            s++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            s = ++mark;
        } else {
            return 0;
        }
    }
    while (pi < plen && pat[pi] == '*') pi++;
    return pi == plen;
}

static cw_cnode *expr(lexer *l);

static cw_cnode *quant(lexer *l)
{
    int all = is(l, "all");
    next(l);
    if (!is(l, "of")) return err(l, "expected 'of'");
    next(l);
    if (!l->len || *l->tok == '(' || *l->tok == ')')
        return err(l, "expected a name pattern or 'them'");
    int them = is(l, "them");
    cw_cnode *acc = NULL;
    for (size_t i = 0; i < l->n_sels; i++) {
        const char *name = l->sels[i].name;
        if (them ? name[0] == '_' : !glob(l->tok, l->len, name)) continue;
        cw_cnode *s = mk(l, CW_C_SEL, i, NULL, NULL);
        if (!s) return NULL;
        acc = acc ? mk(l, all ? CW_C_AND : CW_C_OR, 0, acc, s) : s;
        if (!acc) return NULL;
    }
    if (!acc) return err(l, "no selection matches");
    next(l);
    return acc;
}

static cw_cnode *unary(lexer *l)
{
    if (++l->depth > CW_COND_MAX_DEPTH) return err(l, "nested too deeply");
    cw_cnode *r = NULL;
    if (is(l, "not")) {
        next(l);
        cw_cnode *a = unary(l);
        r = a ? mk(l, CW_C_NOT, 0, a, NULL) : NULL;
    } else if (is(l, "(")) {
        next(l);
        r = expr(l);
        if (r && !is(l, ")")) r = err(l, "expected ')'");
        else if (r) next(l);
    } else if (is(l, "1") || is(l, "any") || is(l, "all")) {
        r = quant(l);
    } else if (!l->len) {
        r = err(l, "expected a selection");
    } else if (is(l, "and") || is(l, "or") || is(l, ")") || is(l, "of") || is(l, "them") ||
               !is_name_char(*l->tok)) {
        r = err(l, "expected a selection");
    } else {
        for (size_t i = 0; i < l->n_sels && !r; i++)
            if (strlen(l->sels[i].name) == l->len && !strncmp(l->sels[i].name, l->tok, l->len))
                r = mk(l, CW_C_SEL, i, NULL, NULL);
        if (!r) return err(l, "unknown selection");
        next(l);
    }
    l->depth--;
    return r;
}

static cw_cnode *and_expr(lexer *l)
{
    cw_cnode *a = unary(l);
    while (a && is(l, "and")) {
        next(l);
        cw_cnode *b = unary(l);
        a = b ? mk(l, CW_C_AND, 0, a, b) : NULL;
    }
    return a;
}

static cw_cnode *expr(lexer *l)
{
    cw_cnode *a = and_expr(l);
    while (a && is(l, "or")) {
        next(l);
        cw_cnode *b = and_expr(l);
        a = b ? mk(l, CW_C_OR, 0, a, b) : NULL;
    }
    return a;
}

int cw_cond_parse(cw_pool *pool, const char *text, const cw_rsel *sels, size_t n_sels,
                  cw_cnode **out, char *msg, size_t msglen)
{
    lexer l = {.p = text, .pool = pool, .sels = sels, .n_sels = n_sels, .msg = msg,
               .msglen = msglen};
    next(&l);
    cw_cnode *n = expr(&l);
    if (n && l.len) n = err(&l, "unexpected token");
    if (!n) return -1;
    *out = n;
    return 0;
}
