/* rule_cond: Sigma condition expressions -> a tree over selection indexes.
 *
 * Grammar (precedence not > and > or, left to right):
 *   expr    := and ('or' and)*
 *   and     := unary ('and' unary)*
 *   unary   := 'not' unary | '(' expr ')' | quant | NAME
 *   quant   := ('1' | 'any' | 'all') 'of' (PATTERN | 'them')
 * PATTERN may use '*'; 'them' means every selection whose name does not
 * start with '_'. A quantifier over no selection is an error, as is an
 * unknown name. Nesting is bounded (CW_COND_MAX_DEPTH).
 *
 * Ownership: nodes live in the caller's pool. Threads: any; no state.
 */
#ifndef CW_RULE_COND_H
#define CW_RULE_COND_H

#include <stddef.h>

#include "correlator/pool.h"
#include "correlator/rule_parse.h"

#define CW_COND_MAX_DEPTH 64

enum cw_cop { CW_C_SEL, CW_C_AND, CW_C_OR, CW_C_NOT };

typedef struct cw_cnode {
    enum cw_cop op;
    size_t sel; /* CW_C_SEL: index into the rule's selections */
    struct cw_cnode *a, *b; /* b unused for NOT */
} cw_cnode;

/* Parses `text` against the selections. Returns 0 with *out set, or -1 with
 * `msg` saying what is wrong and naming the offending token. */
int cw_cond_parse(cw_pool *pool, const char *text, const cw_rsel *sels, size_t n_sels,
                  cw_cnode **out, char *msg, size_t msglen);

#endif
