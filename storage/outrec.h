/* outrec: the records of the sink spool, the second spool (data_dir/out)
 * that the pipeline writes and the Kafka and PostgreSQL sinks read, each
 * through its own cursor (storage/spool.h).
 *
 * Why a second spool: sinks need what only the pipeline knows (enriched
 * context, alerts, incidents), must not lose it while a broker or database
 * is down, and must not slow the pipeline while they catch up. The input
 * spool's pipeline cursor advances only once the outputs of what it covers
 * are durable here, so each stage's position survives a crash on its own.
 *
 * Records (all with key CW_OUTREC_KEY):
 *  - CW_REC_OUT_EVENTS: the enriched events of one input record, body as
 *    below. seq = the input spool position (the input record's `end`)
 *    through which every output is in this spool, or 0 if that is not yet
 *    true after this record (more records of the same input follow).
 *  - CW_REC_OUT_ALERT: one alert, body = its JSON object (scenarios/FORMAT.md,
 *    the alerts-out line without newline); seq as above.
 *  - CW_REC_OUT_INCIDENT: one state of an incident, body = its JSON object
 *    (the incidents-out line); seq as above.
 * The spool keeps the highest seq under CW_OUTREC_KEY as a high-water mark
 * (cw_spool_foreach_hwm), so after a crash the pipeline knows which input
 * records already have their outputs stored and does not store them twice.
 *
 * CW_REC_OUT_EVENTS body: a sequence of entries, all integers little-endian:
 *   u16 id_len, id bytes           the event id (never empty)
 *   u16 key_len, key bytes         partition key: "cluster/namespace/pod" when
 *                                  the event has a Pod, else the host
 *   i64 time_ns                    event time
 *   u32 pb_len, pb bytes           chainwatch.v1.StoredEvent (proto/)
 *   u32 json_len, json bytes       the event's JSON object (cw_event_to_json)
 *
 * Readers treat a body as hostile (it came from disk): cw_outrec_next()
 * checks every length against what is left and never reads past the body.
 */
#ifndef CW_OUTREC_H
#define CW_OUTREC_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define CW_OUTREC_KEY "pipeline"
#define CW_OUTREC_ID_MAX 65535u
#define CW_OUTREC_KEY_MAX 65535u

typedef struct cw_outrec_event {
    const char *id;
    uint16_t id_len;
    const char *key;
    uint16_t key_len;
    int64_t time_ns;
    const uint8_t *pb;
    uint32_t pb_len;
    const char *json;
    uint32_t json_len;
} cw_outrec_event;

/* Appends one entry to b. Returns 0, or -1 (b unchanged) when a field is
 * too long for its length prefix, the id is empty, or b hits its cap. */
int cw_outrec_append(cw_buf *b, const cw_outrec_event *ev);

/* Reads the entry at *pos of body[0..len) into ev (pointers into body) and
 * advances *pos. Returns 1, 0 at the end of the body, or -1 if the entry is
 * malformed (truncated, empty id): the rest of the body is unusable. */
int cw_outrec_next(const uint8_t *body, size_t len, size_t *pos, cw_outrec_event *ev);

#endif
