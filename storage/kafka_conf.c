/* kafka_conf: librdkafka configurations of the Kafka sink. See kafka_conf.h. */
#include "storage/kafka_conf.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "common/log.h"

#define MOD "kafka"

/* librdkafka's own threads call this; cw_log is thread-safe. */
static void on_rd_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* librdkafka says LOG_ERR for every refused connection; ours are
     * retried forever, so that is a warning here. */
    enum cw_log_level l = level <= LOG_CRIT      ? CW_LOG_ERROR
                          : level <= LOG_WARNING ? CW_LOG_WARN
                          : level <= LOG_INFO    ? CW_LOG_INFO
                                                 : CW_LOG_DEBUG;
    cw_log(l, MOD, "%s: %s", fac, buf);
}

static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v, char *err, size_t errlen)
{
    char e[512];
    if (rd_kafka_conf_set(c, k, v, e, sizeof e) == RD_KAFKA_CONF_OK) return 0;
    snprintf(err, errlen, "kafka: %s=%s: %s", k, v, e);
    return -1;
}

/* Applies "k=v,k=v" (spaces around items ignored, empty items skipped).
 * Values cannot contain commas; no librdkafka property we know needs one. */
static int apply_properties(rd_kafka_conf_t *c, const char *props, char *err, size_t errlen)
{
    char buf[CW_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", props);
    char *save = NULL;
    for (char *it = strtok_r(buf, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        while (*it == ' ' || *it == '\t') it++;
        char *end = it + strlen(it);
        while (end > it && (end[-1] == ' ' || end[-1] == '\t')) *--end = 0;
        if (!*it) continue;
        char *eq = strchr(it, '=');
        if (!eq || eq == it) {
            snprintf(err, errlen, "kafka.properties: \"%s\": expected name=value", it);
            return -1;
        }
        *eq = 0;
        char e[512];
        if (rd_kafka_conf_set(c, it, eq + 1, e, sizeof e) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka.properties: %s: %s", it, e);
            return -1;
        }
    }
    return 0;
}

/* The producer settings, and why:
 * - enable.idempotence: no duplicates or reordering from internal retries;
 *   implies acks=all and at most 5 requests in flight per broker.
 * - message.timeout.ms=0: retry forever; a broker outage is backpressure
 *   (the spool grows), never a dropped message.
 * - enable.gapless.guarantee: a batch that fails for good (say, the broker
 *   refuses it) raises a fatal error instead of letting later messages of
 *   the partition through, so every partition always holds a prefix of
 *   what we produced to it: the dedupe rule at the top of this file
 *   depends on that. The fatal error replaces the producer.
 * - compression zstd level 1: on our event JSON and StoredEvent protobufs
 *   (measured on the scenario corpus, 256 KiB chunks) zstd -1 leaves 12 %
 *   of the bytes, lz4 19 %, zstd -3 12 % at about twice zstd -1's CPU. The
 *   broker's disk and network (retention of every event) cost more than
 *   the sink thread's CPU, and level 1 keeps that CPU close to lz4's.
 * - linger.ms=25: batches of hundreds of events per partition instead of a
 *   request per handful, for at most 25 ms added latency (alerts included:
 *   Kafka is not the paging path; notify/ is).
 * - batch.num.messages 20000, batch.size 1000000 (the ceiling set by
 *   message.max.bytes): let linger, not a count, close batches.
 * - queue.buffering.max.messages 100000, .kbytes 65536: the producer queue
 *   is bounded at 64 MiB (the default is 1 GiB); past it produce returns
 *   QUEUE_FULL and the sink stops reading the spool.
 * Then kafka.properties, so an operator can override any of them. */
int cw_kafka_producer_conf(const cw_config *cfg, rd_kafka_conf_t **out, char *err,
                               size_t errlen)
{
    static const char *const tuned[][2] = {
        {"enable.idempotence", "true"},
        {"message.timeout.ms", "0"},
        {"enable.gapless.guarantee", "true"},
        {"compression.codec", "zstd"},
        {"compression.level", "1"},
        {"linger.ms", "25"},
        {"batch.num.messages", "20000"},
        {"batch.size", "1000000"},
        {"queue.buffering.max.messages", "100000"},
        {"queue.buffering.max.kbytes", "65536"},
        {"socket.keepalive.enable", "true"},
        {"reconnect.backoff.max.ms", "5000"},
    };
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (conf_set(c, "bootstrap.servers", cfg->kafka_brokers, err, errlen) < 0) goto fail;
    for (size_t i = 0; i < sizeof tuned / sizeof tuned[0]; i++)
        if (conf_set(c, tuned[i][0], tuned[i][1], err, errlen) < 0) goto fail;
    /* Room for kafka.max_value_bytes plus key, headers and framing when it
     * was raised past what the default (1000000) carries. */
    if (cfg->kafka_max_value_bytes > 900000) {
        char v[24];
        uint64_t m = cfg->kafka_max_value_bytes + 100000;
        snprintf(v, sizeof v, "%llu", (unsigned long long)(m > 1000000000 ? 1000000000 : m));
        if (conf_set(c, "message.max.bytes", v, err, errlen) < 0) goto fail;
    }
    if (apply_properties(c, cfg->kafka_properties, err, errlen) < 0) goto fail;
    rd_kafka_conf_set_log_cb(c, on_rd_log);
    *out = c;
    return 0;
fail:
    rd_kafka_conf_destroy(c);
    return -1;
}

/* The set-up scan's consumer: the same brokers and properties (security
 * settings live there), reading whatever is stored, committing nothing. The
 * group id is only needed for assign(); the group is never joined. */
int cw_kafka_consumer_conf(const cw_config *cfg, rd_kafka_conf_t **out, char *err,
                               size_t errlen)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (conf_set(c, "bootstrap.servers", cfg->kafka_brokers, err, errlen) < 0 ||
        apply_properties(c, cfg->kafka_properties, err, errlen) < 0 ||
        conf_set(c, "group.id", "chainwatch-kafka-sink-scan", err, errlen) < 0 ||
        conf_set(c, "enable.auto.commit", "false", err, errlen) < 0 ||
        conf_set(c, "enable.partition.eof", "true", err, errlen) < 0 ||
        conf_set(c, "isolation.level", "read_uncommitted", err, errlen) < 0) {
        rd_kafka_conf_destroy(c);
        return -1;
    }
    rd_kafka_conf_set_log_cb(c, on_rd_log);
    *out = c;
    return 0;
}

