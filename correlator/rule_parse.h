/* rule_parse: rule files (YAML, Sigma detection and correlation syntax, plus
 * chainwatch mapping keys) -> rule ASTs. Checks everything that needs only
 * the text: known keys and modifiers, levels, tactic keys, technique ids,
 * timespans, correlation types. Field names and conditions are checked by
 * rule_compile, which knows the event type. Every error is
 * "file:line: what is wrong".
 *
 * Ownership: every AST node and string lives in the caller's pool.
 * Threads: any thread; no shared state.
 */
#ifndef CW_RULE_PARSE_H
#define CW_RULE_PARSE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "correlator/alert.h"
#include "correlator/event.h"
#include "correlator/pool.h"

/* Modifier bits of "field|mod|mod". */
enum {
    CW_MOD_CONTAINS = 1 << 0,
    CW_MOD_STARTSWITH = 1 << 1,
    CW_MOD_ENDSWITH = 1 << 2,
    CW_MOD_RE = 1 << 3,
    CW_MOD_ALL = 1 << 4,
    CW_MOD_CIDR = 1 << 5,
    CW_MOD_EXISTS = 1 << 6,
    CW_MOD_GT = 1 << 7,
    CW_MOD_GTE = 1 << 8,
    CW_MOD_LT = 1 << 9,
    CW_MOD_LTE = 1 << 10,
    CW_MOD_CASED = 1 << 11,
    CW_MOD_I = 1 << 12, /* re|i */
};
#define CW_MOD_NUMERIC (CW_MOD_GT | CW_MOD_GTE | CW_MOD_LT | CW_MOD_LTE)

typedef struct cw_rvalue {
    const char *s; /* NULL for YAML null */
    int line;
} cw_rvalue;

/* "field|mods: value or [values]" */
typedef struct cw_ritem {
    const char *field;
    unsigned mods;
    int line;
    cw_rvalue *vals;
    size_t n_vals;
} cw_ritem;

/* A map of items (AND). */
typedef struct cw_rmap {
    cw_ritem *items;
    size_t n_items;
} cw_rmap;

/* A named selection: one map, or a list of maps (OR). */
typedef struct cw_rsel {
    const char *name;
    int line;
    cw_rmap *maps;
    size_t n_maps;
} cw_rsel;

enum cw_corr_type { CW_CORR_NONE, CW_CORR_EVENT_COUNT, CW_CORR_VALUE_COUNT, CW_CORR_TEMPORAL,
                    CW_CORR_TEMPORAL_ORDERED };
enum cw_cmp { CW_CMP_NONE, CW_CMP_GT, CW_CMP_GTE, CW_CMP_LT, CW_CMP_LTE, CW_CMP_EQ };

struct cw_crule;

typedef struct cw_rule_ast {
    struct cw_rule_ast *next;
    struct cw_crule *crule; /* set by rule_compile for detection rules */
    const char *file; /* display name, as in error messages */
    int line;         /* of the document start */
    cw_rule_meta meta;
    const char *name; /* Sigma `name`, may be NULL; correlations reference id or name */
    int generate;     /* 0: only feeds correlations */
    const char *summary; /* chainwatch.summary template or NULL */

    /* Detection rules. */
    enum cw_event_type type;
    cw_rsel *sels;
    size_t n_sels;
    const char *condition;
    int cond_line;

    /* Correlation rules (corr != CW_CORR_NONE). */
    enum cw_corr_type corr;
    int corr_line;
    const char **refs;
    int *ref_lines;
    size_t n_refs;
    const char **group_by;
    size_t n_group_by;
    int group_line;
    int64_t timespan_ns;
    const char *timespan_text;
    enum cw_cmp cmp;
    int64_t threshold;
    const char *count_field; /* value_count */
    int cond_field_line;
} cw_rule_ast;

/* Parses every YAML document of the file at `path` (at most
 * CW_RULE_FILE_MAX bytes) into ASTs appended to *list (in file order).
 * `display` names the file in errors. Returns 0, or -1 with err set. */
/* Bounds that keep compiling (which recurses over the condition) cheap. */
#define CW_RULE_MAX_SELECTIONS 256
#define CW_RULE_MAX_CONDITION 4096
#define CW_RULE_FILE_MAX (1024 * 1024)
int cw_rule_parse_file(cw_pool *pool, const char *path, const char *display,
                       cw_rule_ast ***tail, char *err, size_t errlen);

/* The same on text in memory (tests, fuzzing). */
int cw_rule_parse_text(cw_pool *pool, const char *text, size_t len, const char *display,
                       cw_rule_ast ***tail, char *err, size_t errlen);

const char *cw_severity_name(enum cw_severity s);

/* Formats "FILE:LINE: message" into err, the form of every rule load
 * error (parser and compiler alike). Returns -1, for `return cw_rule_verr(...)`. */
int cw_rule_verr(char *err, size_t errlen, const char *file, int line, const char *fmt,
                 va_list ap) __attribute__((format(printf, 5, 0)));

#endif
