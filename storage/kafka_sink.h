/* kafka_sink: delivers the sink spool (storage/outrec.h) to Kafka with
 * librdkafka, exactly once, surviving broker outages and server crashes.
 *
 * Contract
 * - Reads the sink spool through its own reader "kafka". Events go to
 *   cfg->kafka_topic_events, value = the StoredEvent protobuf bytes, key =
 *   the entry's partition key (one Pod's events, else one host's, stay in
 *   order on one partition); alerts and incidents go to their topics, value
 *   = the JSON object, key = the alert / incident id. Every message carries
 *   headers "cw-id" (event / alert / incident id) and "cw-pos" (its place
 *   in the sink spool, "<record offset>.<index>", decimal) so a consumer can
 *   tell one event from another and the sink can find what it already
 *   delivered.
 * - Producer: enable.idempotence=true (so acks=all, ordered retries),
 *   compression, linger and batch sizes tuned (values and why in
 *   kafka_sink.c); message.timeout.ms=0 so nothing is dropped while the
 *   broker is away; then cfg->kafka_properties ("k=v,k=v") applied last.
 * - The cursor advances (cw_spool_reader_commit_at) only past records every
 *   message of which has a successful delivery report. A restart resumes at
 *   the cursor; messages produced but not yet confirmed before a crash are
 *   found on the topic at start (the newest cw-pos of every partition) and
 *   not produced again, so a consumer sees each record once.
 * - Topics are created if missing (admin API) with cfg->kafka_partitions and
 *   cfg->kafka_replication_factor.
 * - Runs on a thread of its own with its own libuv loop; the producer's
 *   queue event fd is polled by that loop, and delivery reports are served
 *   there. Nothing on that loop blocks. RD_KAFKA_RESP_ERR__QUEUE_FULL stops
 *   reading the spool until reports free room. When the spool reader is
 *   behind, the sink spool grows up to sink.max_bytes and then the pipeline
 *   (and so intake) waits: backpressure, never loss.
 * - Metrics: cw_m.sink_*[CW_SINK_KAFKA].
 *
 * Life cycle (main thread): create (registers the reader: before
 * cw_spool_start of the sink spool) -> start -> ... -> cw_spool_stop(sink
 * spool) -> stop(drain_ms): delivers until the reader reaches the end or
 * drain_ms passes, whichever is first, commits what was confirmed, joins
 * -> free. Whatever was not confirmed stays in the sink spool for the next
 * start.
 */
#ifndef CW_KAFKA_SINK_H
#define CW_KAFKA_SINK_H

#include <stddef.h>

#include "common/config.h"
#include "storage/spool.h"

typedef struct cw_kafka_sink cw_kafka_sink;

/* Builds the producer configuration from cfg (an unknown or bad
 * kafka.properties entry fails here with its name) and registers the spool
 * reader. Does not connect. Returns 0, or -1 with a message in err. */
int cw_kafka_sink_create(cw_kafka_sink **out, const cw_config *cfg, cw_spool *sink_spool,
                         char *err, size_t errlen);

/* Starts the sink's thread. Returns 0, or -1 with a message in err. */
int cw_kafka_sink_start(cw_kafka_sink *k, char *err, size_t errlen);

/* See the life cycle above. Safe on a sink that was never started. */
void cw_kafka_sink_stop(cw_kafka_sink *k, unsigned drain_ms);

void cw_kafka_sink_free(cw_kafka_sink *k);

/* --check-config: the properties are valid and a broker of cfg->kafka_brokers
 * answers a metadata request within timeout_ms. Blocks (main thread only).
 * Returns 0, or -1 with a message in err. */
int cw_kafka_sink_check(const cw_config *cfg, unsigned timeout_ms, char *err, size_t errlen);

#endif
