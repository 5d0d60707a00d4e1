/* kafka_stub: what the Kafka sink sends in place of a value larger than
 * kafka.max_value_bytes (the broker refuses messages over its
 * max.message.bytes, about 1 MB by default, and a refused message would
 * stop the sink for good). One RequestResponse audit event of a large
 * ConfigMap is enough to get there.
 *
 * - An event: the StoredEvent without its payload (fields event and
 *   audit_json), every other field as it was, and omitted_bytes set to the
 *   size of the whole message. Consumers see the event, its type, time and
 *   context; PostgreSQL's events.body keeps it whole.
 * - An alert or incident state: {"id": ..., "omitted_bytes": N}.
 *
 * Pure functions; any thread. Input is the sink spool's, treated as hostile.
 */
#ifndef CW_KAFKA_STUB_H
#define CW_KAFKA_STUB_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Replaces out's content with the stub of StoredEvent pb[0..len); with
 * `minimal`, only id, time, type and source are kept (for the event whose
 * context alone is too large). Returns 0, or -1 (out of memory). A
 * malformed tail is left out too. */
int cw_kafka_event_stub(const uint8_t *pb, size_t len, int minimal, cw_buf *out);

/* Replaces out's content with {"id":<id>,"omitted_bytes":<bytes>}. Returns 0
 * or -1 (out of memory). */
int cw_kafka_json_stub(const char *id, size_t id_len, size_t bytes, cw_buf *out);

#endif
