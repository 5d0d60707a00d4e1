/* summary: the one-line, bounded, human-readable text of an alert.
 *
 * A rule may give a template (chainwatch.summary) with {field} placeholders
 * (any field of rules/FIELDS.md for the event's type; first value) and, for
 * correlations, {count} and {timespan}. Without one the text is
 * "<title>: <key fields>" where the key fields depend on the event type:
 * exe and cmdline for process_exec, exe -> dst for net_connect, user@src
 * for login, "verb resource ns/name by user" for k8s_audit, and so on.
 * Threads: the caller's (pipeline thread); no state.
 */
#ifndef CW_SUMMARY_H
#define CW_SUMMARY_H

#include <stddef.h>
#include <stdint.h>

#include "correlator/event.h"
#include "correlator/fields.h"

#define CW_SUMMARY_MAX 512

/* Writes into buf[CW_SUMMARY_MAX]. `tmpl` may be NULL. `count` < 0 means
 * "not a correlation". `detail` (may be NULL) replaces the key fields in
 * the default text. */
void cw_summary(char *buf, const char *title, const char *tmpl, const cw_event *ev,
                cw_fvals *fv, int64_t count, const char *timespan, const char *detail);

#endif
