/* alert: what a detection rule raises, handed to the incident stage.
 *
 * Ownership: cw_rule_meta is immutable and owned by its rule set (it lives
 * as long as the set). A cw_alert, its event and its strings are valid only
 * during the callback that receives it; copy what you keep.
 *
 * Threads: alerts are produced and consumed on the pipeline thread.
 */
#ifndef CW_ALERT_H
#define CW_ALERT_H

#include <stdint.h>

#include "correlator/event.h"

enum cw_severity { CW_SEV_INFO, CW_SEV_LOW, CW_SEV_MEDIUM, CW_SEV_HIGH, CW_SEV_CRITICAL };

typedef struct cw_rule_meta { /* immutable; lives as long as its rule set */
    const char *id, *title;
    enum cw_severity severity;
    const char *tactic;    /* key, e.g. "execution" */
    const char *technique; /* "MS-TA9006" or NULL */
    const char *attack;    /* "T1059.004" or NULL */
    const char *phase;     /* "pre" | "mid" | "post" */
} cw_rule_meta;

typedef struct cw_alert {
    const cw_rule_meta *rule;
    /* the event that fired it (for correlations: the last one); valid during the callback only */
    const cw_event *ev;
    int64_t time_ns;     /* == ev->time_ns */
    const char *summary; /* one line, human readable; valid during callback */
    const char *group_key; /* correlation rules: the group-by values joined by '|', else NULL */
} cw_alert;

/* Pipeline thread. */
typedef void (*cw_alert_cb)(const cw_alert *a, void *ud);

#endif
