/* config: chainwatchd's settings, from defaults, then the YAML file, then
 * command-line flags (later wins).
 *
 * One table in config.c (name, type, default, bounds, doc, flag) drives YAML
 * parsing, flag parsing, validation, `--help` and the documented example in
 * deploy/chainwatch.example.yaml. YAML keys are nested maps whose dotted path
 * is the table name ("ingest.max_frame_bytes" is `ingest: {max_frame_bytes:}`).
 * Unknown keys and bad values are errors that name file:line.
 *
 * A cw_config is a plain value: filled once at start-up on the main thread,
 * then only read (copies may be handed to other threads).
 */
#ifndef CW_CONFIG_H
#define CW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

    /* Only from the command line. */
    char config_file[CW_PATH_MAX];
    int check_config;
} cw_config;

/* Fills defaults. */
void cw_config_defaults(cw_config *c);

/* Parses argv (and the --config file it names, flags overriding the file).
 * Returns 0 on success, 1 if --help was printed (caller exits 0), or -1 with
 * a message in err ("file:line: ..." for file errors). */
int cw_config_load(cw_config *c, int argc, char **argv, char *err, size_t errlen);

/* Checks cross-field rules and that paths/addresses are usable.
 * Returns 0 or -1 with a message in err. */
int cw_config_validate(const cw_config *c, char *err, size_t errlen);

/* Writes `--help` text to `out`. */
void cw_config_usage(FILE *out);

/* Writes a complete, commented YAML config with every key at its default. */
void cw_config_write_example(FILE *out);

#endif
