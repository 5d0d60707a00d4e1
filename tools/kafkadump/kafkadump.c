/* kafkadump: prints what a topic holds, one JSON object per message, so
 * tests (and people) can check what the Kafka sink delivered.
 *
 *   kafkadump --brokers HOST:PORT[,...] --topic T [--timeout-ms N]
 *             [--values-out FILE [--delimiter D]]
 *   {"partition":0,"offset":12,"key":"...","id":"<cw-id>","pos":"<cw-pos>",
 *    "value":{...},"value_len":345}
 *
 * Reads every partition from its low watermark up to the high watermark
 * taken at start (messages produced meanwhile are not printed), commits
 * nothing. "value" is printed when the value is a JSON object (alerts,
 * incidents); otherwise, if it decodes as a StoredEvent (events), its
 * "type" and "host" are printed instead. Exit status 0 when every partition
 * was read to its end, 2 for usage errors, 1 for broker errors or when
 * --timeout-ms (default 30000) passes first.
 *
 * --values-out writes every value as it is, each followed by the delimiter
 * (default "\n"), in partition-interleaved order: the input of kcat -P -D
 * for the sink benchmark (bench/sinks.sh).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "chainwatch.pb-c.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void usage(void)
{
    fprintf(stderr, "usage: kafkadump --brokers HOST:PORT[,...] --topic TOPIC [--timeout-ms N]\n"
                    "                 [--values-out FILE [--delimiter D]]\n");
}

/* A JSON string of bytes that may not be UTF-8: invalid input falls back
 * to a lossy copy with '?' for every byte outside printable ASCII. */
static json_t *bytes_str(const void *p, size_t n)
{
    if (!p) return json_null();
    json_t *s = json_stringn(p, n);
    if (s) return s;
    char *b = malloc(n + 1);
    if (!b) return json_null();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = ((const unsigned char *)p)[i];
        b[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    s = json_stringn(b, n);
    free(b);
    return s;
}

static json_t *header(const rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *h;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &n))
        return json_null();
    return bytes_str(v, n);
}

static FILE *values_out;
static const char *delimiter = "\n";

static void print_message(const rd_kafka_message_t *m)
{
    if (values_out) {
        fwrite(m->payload, 1, m->len, values_out);
        fputs(delimiter, values_out);
    }
    json_t *o = json_object();
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    json_object_set_new(o, "key", bytes_str(m->key, m->key_len));
    json_object_set_new(o, "id", header(m, "cw-id"));
    json_object_set_new(o, "pos", header(m, "cw-pos"));
    json_t *v = m->len ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    if (v && json_is_object(v)) {
        json_object_set_new(o, "value", v);
    } else {
        json_decref(v);
        Chainwatch__V1__StoredEvent *se =
            m->len ? chainwatch__v1__stored_event__unpack(NULL, m->len, m->payload) : NULL;
        if (se) {
            if (se->type) json_object_set_new(o, "type", json_string(se->type));
            if (se->host) json_object_set_new(o, "host", json_string(se->host));
            if (se->has_omitted_bytes)
                json_object_set_new(o, "omitted_bytes", json_integer(se->omitted_bytes));
            chainwatch__v1__stored_event__free_unpacked(se, NULL);
        }
    }
    json_object_set_new(o, "value_len", json_integer((json_int_t)m->len));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(o);
}

static int set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char e[512];
    if (rd_kafka_conf_set(c, k, v, e, sizeof e) == RD_KAFKA_CONF_OK) return 0;
    fprintf(stderr, "kafkadump: %s: %s\n", k, e);
    return -1;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL;
    long timeout_ms = 30000;
    static const struct option opts[] = {{"brokers", required_argument, NULL, 'b'},
                                         {"topic", required_argument, NULL, 't'},
                                         {"timeout-ms", required_argument, NULL, 'T'},
                                         {"values-out", required_argument, NULL, 'o'},
                                         {"delimiter", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "b:t:T:o:d:h", opts, NULL)) != -1;) {
        char *end;
        switch (c) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 'o':
            values_out = fopen(optarg, "wb");
            if (!values_out) {
                perror(optarg);
                return 2;
            }
            break;
        case 'd': delimiter = optarg; break;
        case 'T':
            timeout_ms = strtol(optarg, &end, 10);
            if (*end || timeout_ms <= 0) {
                usage();
                return 2;
            }
            break;
        default: usage(); return 2;
        }
    }
    if (!brokers || !topic || !*topic || optind != argc) {
        usage();
        return 2;
    }
    uint64_t until = now_ms() + (uint64_t)timeout_ms;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", brokers) || set(conf, "group.id", "chainwatch-kafkadump") ||
        set(conf, "enable.auto.commit", "false") || set(conf, "enable.partition.eof", "true") ||
        set(conf, "isolation.level", "read_uncommitted") || set(conf, "log_level", "3")) {
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    char e[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk) {
        fprintf(stderr, "kafkadump: %s\n", e);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    int status = 1;
    int64_t *hi = NULL;
    int nparts = 0, pending = 0;
    rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new(16);

    /* All topics, not just ours: asking for one topic by name would make a
     * broker with auto.create.topics.enable create it. */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, (int)timeout_ms);
    if (err) {
        fprintf(stderr, "kafkadump: %s: metadata: %s\n", brokers, rd_kafka_err2str(err));
        goto out;
    }
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0) nparts = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    if (nparts <= 0) {
        fprintf(stderr, "kafkadump: %s: no topic %s\n", brokers, topic);
        goto out;
    }
    hi = calloc((size_t)nparts, sizeof *hi);
    for (int p = 0; p < nparts; p++) {
        int64_t lo;
        int left = (int)(until > now_ms() ? until - now_ms() : 1);
        err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], left);
        if (err) {
            fprintf(stderr, "kafkadump: %s [%d]: watermarks: %s\n", topic, p,
                    rd_kafka_err2str(err));
            goto out;
        }
        if (hi[p] > lo) {
            rd_kafka_topic_partition_list_add(pl, topic, p)->offset = lo;
            pending++;
        }
    }
    if (pending && (err = rd_kafka_assign(rk, pl))) {
        fprintf(stderr, "kafkadump: assign: %s\n", rd_kafka_err2str(err));
        goto out;
    }
    while (pending > 0) {
        if (now_ms() >= until) {
            fprintf(stderr, "kafkadump: timed out with %d partitions unread\n", pending);
            goto out;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        int p = m->partition;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "kafkadump: %s\n", rd_kafka_message_errstr(m));
        } else if (p >= 0 && p < nparts && hi[p] >= 0) {
            if (!m->err && m->offset < hi[p]) print_message(m);
            /* Done once the last message present at start was printed, or
             * the end came first (what remained was deleted meanwhile). */
            if (m->err || m->offset >= hi[p] - 1) {
                hi[p] = -1;
                pending--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    status = 0;
out:
    fflush(stdout);
    if (values_out && fclose(values_out) != 0) {
        perror("kafkadump: --values-out");
        status = 1;
    }
    free(hi);
    rd_kafka_topic_partition_list_destroy(pl);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return status;
}
