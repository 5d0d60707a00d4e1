/* config: chainwatchd's settings, from defaults, then the YAML file, then
 * command-line flags (later wins).
 *
 * One table in config.c (name, type, default, bounds, doc, flag) drives YAML
 * parsing, flag parsing, validation, `--help` and the documented example in
 * deploy/chainwatch.example.yaml. YAML keys are nested maps whose dotted path
 * is the table name ("ingest.max_frame_bytes" is `ingest: {max_frame_bytes:}`).
 * Unknown keys and bad values are errors that name file:line.
 *
 * Every YAML key can also be set with `--set KEY=VALUE`; the most common ones
 * have a flag of their own (`--agent-listen`). Byte sizes accept a plain
 * integer or a KiB/MiB/GiB/TiB suffix ("64MiB"); durations are integer
 * milliseconds. Listen addresses are literal IPs (no name lookups at start-up)
 * as HOST:PORT or [V6]:PORT; "localhost" means 127.0.0.1.
 *
 * A cw_config is a plain value: filled once at start-up on the main thread,
 * then only read (copies may be handed to other threads). Nothing here is
 * thread-safe and nothing here runs on a loop: reading the file and checking
 * paths block.
 */
#ifndef CW_CONFIG_H
#define CW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct sockaddr_storage;

#define CW_PATH_MAX 1024
#define CW_ADDR_MAX 256

typedef struct cw_config {
    /* Listeners: HOST:PORT ([v6]:PORT for IPv6). */
    char agent_listen[CW_ADDR_MAX];
    char http_listen[CW_ADDR_MAX];
    char data_dir[CW_PATH_MAX];
    char rules_dir[CW_PATH_MAX];
    /* JSON Lines outputs; empty = off. */
    char events_out[CW_PATH_MAX];
    char alerts_out[CW_PATH_MAX];
    char incidents_out[CW_PATH_MAX];
    char log_level[16];

    /* ingest.* */
    int ingest_threads;                 /* 0: one per CPU */
    uint32_t max_frame_bytes;           /* any frame after Hello */
    uint32_t max_hello_frame_bytes;     /* frames before Hello */
    uint32_t max_batch_events;
    uint64_t decode_arena_bytes;        /* decode memory per frame */
    uint64_t conn_inflight_bytes;       /* unacked bytes per connection before pausing it */
    uint64_t total_inflight_bytes;      /* unacked bytes over all connections */
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t max_connections;

    /* spool.* */
    uint64_t spool_segment_bytes;
    uint64_t spool_max_bytes;           /* unconsumed bytes on disk before backpressure */

    /* http.* */
    uint64_t http_max_body_bytes;
    uint32_t audit_dedupe_entries;      /* remembered auditID+stage pairs */

    /* enrich.* */
    char owner_labels[256];             /* comma-separated label keys, first present wins */

    /* incident.* (event time) */
    uint32_t incident_link_window_s;    /* alerts further apart than this do not link */
    uint32_t incident_idle_close_s;     /* an incident with no new alert this long closes */
    uint32_t incident_max_clock_ahead_s; /* event time past receipt + this moves no clock */
    uint32_t incident_max_open;
    uint32_t incident_max_alerts;       /* alert ids kept per incident */

    /* Sinks (storage/): empty conninfo / brokers = that sink is off. With
     * either on, the pipeline writes its outputs to the sink spool
     * (data_dir/out) and each sink delivers from there (storage/outrec.h). */
    char pg_conninfo[CW_PATH_MAX];      /* libpq conninfo string or URI */
    uint32_t pg_batch_rows;             /* events per COPY transaction, at most */
    uint32_t pg_partition_past_days;    /* partitions made for days >= today - this */
    uint32_t pg_partition_future_days;  /* partitions made for days <= today + this */
    char kafka_brokers[CW_PATH_MAX];    /* bootstrap.servers */
    char kafka_topic_events[256];
    char kafka_topic_alerts[256];
    char kafka_topic_incidents[256];
    uint32_t kafka_partitions;          /* for topics chainwatchd creates */
    uint32_t kafka_replication_factor;  /* for topics chainwatchd creates; 0: broker default */
    uint64_t kafka_max_value_bytes;     /* larger values are produced without payload */
    char kafka_properties[CW_PATH_MAX]; /* extra librdkafka properties, "k=v,k=v" */
    uint64_t sink_max_bytes;            /* undelivered sink spool bytes before the pipeline waits */
    uint32_t sink_drain_timeout_ms;     /* at shutdown, how long sinks may keep delivering */

    /* Only from the command line. */
    char config_file[CW_PATH_MAX];
    int check_config;
} cw_config;

/* The YAML file is read whole; anything larger is refused. */
#define CW_CONFIG_FILE_MAX (1024 * 1024)

/* Fills defaults. */
void cw_config_defaults(cw_config *c);

/* Fills defaults, then the --config file, then every other flag (flags win
 * over the file wherever they appear in argv), then runs cw_config_validate.
 * argv[0] is the program name. Returns 0 on success; 1 if --help (usage) or
 * --print-example-config (the example YAML) was written to stdout, in which
 * case the caller exits 0; or -1 with a message in err ("FILE:LINE: ..." for
 * file errors, "--flag: ..." for flag errors). */
int cw_config_load(cw_config *c, int argc, char **argv, char *err, size_t errlen);

/* Applies a YAML file / an in-memory YAML document on top of *c (call
 * cw_config_defaults first). `name` is the file name used in messages.
 * Returns 0 or -1 with "NAME:LINE: ..." in err; on error *c may hold some of
 * the document's values. The buffer need not be NUL-terminated. */
int cw_config_load_file(cw_config *c, const char *path, char *err, size_t errlen);
int cw_config_load_yaml_buffer(cw_config *c, const char *name, const char *buf, size_t len,
                               char *err, size_t errlen);

/* Sets one key by its dotted name ("ingest.max_frame_bytes"), as --set does.
 * Bounds are checked; cross-field rules are not (see cw_config_validate).
 * Returns 0 or -1 with "KEY: ..." in err. */
int cw_config_set(cw_config *c, const char *key, const char *value, char *err, size_t errlen);

/* Checks what single keys cannot: cross-field rules (hello frame <= frame,
 * handshake timeout < idle timeout, per-connection <= total in-flight bytes,
 * frame <= decode arena, spool segment <= spool max), every key's bounds,
 * addresses and the log level; and, touching the file system, that rules_dir
 * (when set) is a directory, that data_dir is a directory if it exists, and
 * that each output's directory exists. Returns 0 or -1 with a message in err. */
int cw_config_validate(const cw_config *c, char *err, size_t errlen);

/* Parses a listen address (HOST:PORT, [V6]:PORT, localhost:PORT; literal IPs
 * only, port 1..65535) into *out (which may be NULL to only check it).
 * Returns 0 or -1. */
int cw_config_parse_addr(const char *s, struct sockaddr_storage *out);

/* ingest_threads resolved: the configured count, or one per CPU (at most 64)
 * when it is 0. */
int cw_config_ingest_threads(const cw_config *c);

/* Writes `--help` text to `out`. */
void cw_config_usage(FILE *out);

/* Writes a complete, commented YAML config with every key at its default. */
void cw_config_write_example(FILE *out);

#endif
