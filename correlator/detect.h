/* detect: the detection engine's public API. Loads a directory of rule
 * files (Sigma syntax, see rules/FIELDS.md and DETECTION.md), compiles them
 * once, and evaluates every event against them, raising cw_alerts.
 *
 * Loading reads every *.yml / *.yaml file of the directory (not
 * subdirectories), in name order; a file may hold several YAML documents,
 * one rule each. Any error fails the whole load with "file:line: message"
 * in err, so a bad reload can keep the old set.
 *
 * Ownership: cw_detector_create() and cw_detector_swap() take ownership of
 * the rule set. A rule set holds its correlations' window state, so it
 * belongs to one detector at a time. On swap the correlation state starts
 * empty: partial windows (e.g. 7 of 10 failed logins) are lost at a reload;
 * simple rules are unaffected.
 *
 * Threads: cw_ruleset_load/free/check_dir run on any thread (no shared
 * state). cw_detector_swap() may run on any thread, concurrently with
 * cw_detector_event() on the pipeline thread: it publishes the new set
 * through an atomic pointer; the pipeline thread adopts it before its next
 * event and frees the old set itself. A set swapped in and then replaced
 * before the pipeline adopted it is freed by the swapping thread. All other
 * calls (create, event, free) belong to the pipeline thread, and the
 * callback runs there, inside cw_detector_event().
 */
#ifndef CW_DETECT_H
#define CW_DETECT_H

#include <stddef.h>

#include "correlator/alert.h"
#include "correlator/event.h"

typedef struct cw_ruleset cw_ruleset;
typedef struct cw_detector cw_detector;

#define CW_RULES_MAX_FILES 10000
#define CW_RULES_MAX 100000

/* Compiles everything; err = "file:line: message". Returns 0 or -1. */
int cw_ruleset_load(cw_ruleset **out, const char *dir, char *err, size_t errlen);
/* The same from one YAML text in memory (tests, fuzzing); `name` stands
 * for the file name in errors. */
int cw_ruleset_load_text(cw_ruleset **out, const char *text, size_t len, const char *name,
                         char *err, size_t errlen);
void cw_ruleset_free(cw_ruleset *rs);
/* Rules of the set: detection and correlation rules. */
size_t cw_ruleset_count(const cw_ruleset *rs);
/* For --check-config: loads and frees. Returns 0 or -1 with err set. */
int cw_ruleset_check_dir(const char *dir, char *err, size_t errlen);

/* rs may be NULL (no rules until a swap). Returns 0 or -1 (out of memory;
 * rs is freed). */
int cw_detector_create(cw_detector **out, cw_ruleset *rs);
void cw_detector_swap(cw_detector *d, cw_ruleset *rs);
void cw_detector_event(cw_detector *d, const cw_event *ev, cw_alert_cb cb, void *ud);
void cw_detector_free(cw_detector *d);

#endif
