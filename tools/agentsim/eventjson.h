/* eventjson: converts one scenario line (a JSON object, see
 * ../shared/scenarios/FORMAT.md) of an event type into the wire protocol's
 * Event message.
 *
 * Every field FORMAT.md defines for the type is mapped to the proto field of
 * the same name; proto2 presence flags (has_*) are set exactly for the fields
 * the line carries. Unknown fields are ignored so the format can grow.
 * Required fields, JSON types, value ranges and the closed value sets
 * (proto, direction, op, stdio kinds, method, restart, started_by) are
 * checked; the first problem is reported as a message naming the field.
 *
 * Events are heap-allocated with malloc and owned by the caller, who frees
 * them with sim_event_free(). time_ns is left at 0 (has_time_ns set) for the
 * replay to fill in. Pure functions: any thread.
 */
#ifndef SIM_EVENTJSON_H
#define SIM_EVENTJSON_H

#include <jansson.h>
#include <stddef.h>

#include "chainwatch.pb-c.h"

/* The Event payload case for a scenario `type`, or 0 (PAYLOAD__NOT_SET)
 * when the type is not an event type (agent, k8s_audit, expect, unknown). */
int sim_eventjson_case(const char *type);
/* The scenario type name of a payload case ("process_exec"), or "?". */
const char *sim_eventjson_name(int payload_case);

/* Converts `obj` (a line of type `payload_case`). Returns the event, or NULL
 * with a one-line reason in `err`. */
Chainwatch__V1__Event *sim_eventjson_parse(json_t *obj, int payload_case, char *err,
                                           size_t errlen);

void sim_event_free(Chainwatch__V1__Event *ev);

#endif
