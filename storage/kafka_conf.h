/* kafka_conf: the librdkafka configurations of the Kafka sink
 * (storage/kafka_sink.h): the producer's tuned settings, and the consumer the
 * sink uses at session start to read every partition's newest message, both
 * with cfg->kafka_properties ("name=value,name=value") applied last. Plain
 * functions, any thread; each result is the caller's to destroy or hand to
 * rd_kafka_new.
 */
#ifndef CW_KAFKA_CONF_H
#define CW_KAFKA_CONF_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "common/config.h"

/* Returns 0, or -1 with "kafka.properties: NAME: reason" (or the failing
 * tuned setting) in err. */
int cw_kafka_producer_conf(const cw_config *cfg, rd_kafka_conf_t **out, char *err,
                           size_t errlen);
int cw_kafka_consumer_conf(const cw_config *cfg, rd_kafka_conf_t **out, char *err,
                           size_t errlen);

#endif
