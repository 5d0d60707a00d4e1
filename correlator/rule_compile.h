/* rule_compile: rule ASTs -> the compiled form the detector evaluates.
 *
 * Rules are grouped by event type into buckets. Every predicate of every
 * rule on a field is an "atom"; identical atoms are shared. All string
 * atoms (equals, wildcards, contains, startswith, endswith, re) of one
 * (event type, field) go into ONE Hyperscan database, so an event costs one
 * scan per field whatever the number of rules. Other atoms (cidr, numeric
 * comparisons, exists, null) are evaluated directly. A rule's condition
 * becomes postfix code over atom bits.
 *
 * Triggers: a rule is evaluated only when one of its trigger atoms matched.
 * The trigger set is chosen so the condition cannot be true unless one of
 * them is (for `a and b`, the side whose atoms are shared by the fewest
 * rules; for `a or b`, both sides). Rules with no such set (a condition
 * like `not filter`) are evaluated for every event of their type. This
 * keeps per-event cost nearly flat as rules grow.
 *
 * Ownership: everything lives in the rule set's pool, except Hyperscan
 * databases (freed by cw_compiled_free).
 * Threads: compiling is single-threaded; the result is read-only.
 */
#ifndef CW_RULE_COMPILE_H
#define CW_RULE_COMPILE_H

#include <hs.h>
#include <stddef.h>
#include <stdint.h>

#include "correlator/alert.h"
#include "correlator/fields.h"
#include "correlator/pool.h"
#include "correlator/rule_parse.h"

enum cw_atom_kind { CW_A_HS, CW_A_CIDR, CW_A_NUM, CW_A_EXISTS, CW_A_NULL, CW_A_EMPTY };

typedef struct cw_atom {
    enum cw_atom_kind kind;
    uint32_t field;    /* index into the bucket's fields */
    uint32_t refcount; /* rules using it (trigger choice) */
    /* CW_A_HS: the Hyperscan expression and flags (load time only). */
    const char *regex;
    unsigned hs_flags;
    const char *file;  /* for errors */
    int line;
    /* CW_A_CIDR */
    int family;        /* 4 or 6 */
    unsigned char addr[16];
    int prefix;
    /* CW_A_NUM */
    unsigned cmp;      /* CW_MOD_GT ... */
    int64_t num;
} cw_atom;

typedef struct cw_bfield {
    cw_fref ref;
    hs_database_t *db;   /* NULL if the field has no string atoms */
    uint32_t *direct;    /* atom ids evaluated without Hyperscan */
    size_t n_direct;
} cw_bfield;

struct cw_corr;

/* A correlation that consumes a detection rule, at position `ref`. */
typedef struct cw_consumer {
    struct cw_corr *corr;
    size_t ref;
} cw_consumer;

/* Postfix code: op in the top 2 bits, argument below. */
#define CW_OP_ATOM 0u
#define CW_OP_AND (1u << 30)
#define CW_OP_OR (2u << 30)
#define CW_OP_NOT (3u << 30)
#define CW_OP_MASK (3u << 30)
#define CW_CODE_MAX_STACK 256

typedef struct cw_crule {
    const cw_rule_ast *ast;
    const cw_rule_meta *meta;
    uint32_t index; /* within its bucket */
    uint32_t *code;
    size_t n_code;
    cw_consumer *consumers;
    size_t n_consumers;
} cw_crule;

typedef struct cw_bucket {
    cw_bfield *fields;
    size_t n_fields;
    cw_atom *atoms;
    size_t n_atoms;
    cw_crule **rules;
    size_t n_rules;
    uint32_t *trig_off; /* atom a triggers rules trig[trig_off[a] .. trig_off[a+1]) */
    uint32_t *trig;
    uint32_t *always;   /* rules evaluated for every event */
    size_t n_always;
} cw_bucket;

typedef struct cw_compiled {
    cw_bucket buckets[CW_EV__COUNT];
    size_t max_atoms, max_rules; /* over all buckets: runtime scratch sizes */
} cw_compiled;

/* Compiles the detection rules (corr == CW_CORR_NONE) of `list` into c
 * (zeroed by the caller); crules[i] gets the compiled rule of the i-th
 * detection rule. Returns 0 or -1 with err = "file:line: message". */
int cw_compile_rules(cw_pool *pool, cw_rule_ast *list, cw_compiled *c, char *err, size_t errlen);

void cw_compiled_free(cw_compiled *c);

/* Evaluates postfix code over the atom bits (atom set iff
 * stamp[atom] == cur). */
int cw_code_eval(const uint32_t *code, size_t n, const uint32_t *stamp, uint32_t cur);

/* 1 if s (not NUL-terminated) is an address inside the atom's prefix. */
int cw_atom_cidr_match(const cw_atom *a, const char *s, size_t len);

#endif
