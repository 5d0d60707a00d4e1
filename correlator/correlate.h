/* correlate: Sigma correlation rules (event_count, value_count, temporal,
 * temporal_ordered) over the matches of detection rules, grouped by the
 * group-by fields, in EVENT time.
 *
 * Windows: each group keeps what its condition needs (the newest
 * threshold+1 match times; for value_count the newest threshold+1 distinct
 * values with their last time; for temporal the last time of each rule; for
 * temporal_ordered the start and end of the partial sequence). A match
 * older than the group's newest time minus the timespan is ignored, so
 * out-of-order events count only within the window, and events farther
 * apart than the timespan never combine. When the condition holds, the
 * correlation alerts once and the group starts over. Conditions are checked
 * at each match (lt/lte therefore hold from the first match on; use them
 * with care).
 *
 * Bounds: at most CW_CORR_MAX_GROUPS groups and CW_CORR_MAX_SLOTS stored
 * times per correlation rule. Groups are kept in update order; a group not
 * updated within the timespan of the correlation's newest event time is
 * dropped, and when a bound is hit the least recently updated group is
 * evicted first (its partial count is lost). Group keys longer than
 * CW_CORR_KEY_MAX are cut and suffixed with a hash of the whole.
 *
 * Ownership: the correlation lives in its rule set's pool; its group state
 * is heap memory freed by cw_corr_reset(). Threads: pipeline thread.
 */
#ifndef CW_CORRELATE_H
#define CW_CORRELATE_H

#include <stddef.h>
#include <stdint.h>

#include "correlator/alert.h"
#include "correlator/fields.h"
#include "correlator/pool.h"
#include "correlator/rule_compile.h"
#include "correlator/rule_parse.h"

#define CW_CORR_MAX_GROUPS 100000
#define CW_CORR_MAX_SLOTS (4u * 1024 * 1024)
#define CW_CORR_KEY_MAX 256
#define CW_CORR_MAX_THRESHOLD 10000

struct cw_cgroup;

typedef struct cw_corr {
    const cw_rule_ast *ast;
    const cw_rule_meta *meta;
    size_t n_refs;
    cw_crule **refs;
    /* group-by fields resolved per event type of the referenced rules:
     * gb[i * CW_EV__COUNT + type]. */
    cw_fref *gb;
    cw_fref vfield[CW_EV__COUNT]; /* value_count field */
    size_t slots_per_group;

    /* State (heap). */
    struct cw_cgroup **tab;
    size_t tab_cap, n_groups, n_slots;
    struct cw_cgroup *oldest, *newest;
    int64_t now_ns;
    uint64_t evicted;
} cw_corr;

/* Builds every correlation rule of `list`: resolves referenced rules (by id
 * or name; only detection rules), group-by fields for their event types,
 * and registers the correlation as a consumer of each referenced rule.
 * Returns 0 with *out / *n set, or -1 with err = "file:line: message". */
int cw_corr_build(cw_pool *pool, cw_rule_ast *list, cw_corr ***out, size_t *n, char *err,
                  size_t errlen);

/* Detection rule number `ref` of c matched ev: update the group; raises an
 * alert through cb when the condition holds. fv is scratch. */
void cw_corr_feed(cw_corr *c, size_t ref, const cw_event *ev, cw_fvals *fv, cw_alert_cb cb,
                  void *ud);

/* Drops all group state. */
void cw_corr_reset(cw_corr *c);

#endif
