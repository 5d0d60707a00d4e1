/* chainwatchd: wires the pipeline stages together and runs until SIGTERM.
 *
 * Threads: the main thread runs a small libuv loop for signals; ingest runs
 * cfg.ingest_threads loops; HTTP runs one loop; the spool has a writer
 * thread; the pipeline (enrichment, outputs) has one thread. With a Kafka or
 * PostgreSQL sink configured there is a second spool, the sink spool
 * (data_dir/out, its own writer thread), which the pipeline writes and each
 * sink reads on a thread and loop of its own. Start order is consumers
 * first (spool readers and listeners must register before the spool
 * starts), stop order is producers first, so nothing accepted is left
 * behind:
 *   HTTP and ingest stop (each waits until what it accepted is durable and
 *   acknowledged) -> spool stops (drains) -> pipeline reads to the end and
 *   waits until its outputs are in the sink spool -> sink spool stops ->
 *   sinks deliver what they can within sink.drain_timeout_ms; the rest
 *   waits on disk for the next start.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "common/config.h"
#include "common/log.h"
#include "correlator/detect.h"
#include "correlator/pipeline.h"
#include "server/http.h"
#include "server/ingest.h"
#include "server/registry.h"
#include "storage/kafka_sink.h"
#include "storage/pg_sink.h"
#include "storage/spool.h"

#define MAX_AGENTS 200000
/* Copies of sink spool records the pipeline may hold while they are written. */
#define SINK_OUTBOX_BYTES (64u * 1024 * 1024)
/* --check-config: how long a sink may take to answer. */
#define CHECK_TIMEOUT_MS 5000

static void on_signal(uv_signal_t *s, int signum)
{
    if (signum == SIGHUP) {
        /* This loop only handles signals, so compiling rules here blocks
         * nothing else; a bad rule file keeps the running rules. */
        char err[1024];
        if (cw_pipeline_reload_rules(s->data, err, sizeof err) < 0)
            cw_error("main", "SIGHUP: rules not reloaded: %s", err);
        return;
    }
    cw_info("main", "%s: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_stop(s->loop);
}

static int mkdir_p(const char *path)
{
    char tmp[CW_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0750) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

int main(int argc, char **argv)
{
    /* A peer vanishing mid-write must not kill the server. */
    signal(SIGPIPE, SIG_IGN);

    static cw_config cfg;
    char err[1024] = "";
    int rc = cw_config_load(&cfg, argc, argv, err, sizeof err);
    if (rc == 1) return 0; /* --help */
    if (rc < 0 || cw_config_validate(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "chainwatchd: %s\n", err);
        return 2;
    }
    enum cw_log_level level;
    if (cw_log_parse_level(cfg.log_level, &level) == 0) cw_log_set_level(level);

    /* --check-config checks without touching a running server's data dir
     * or ports: the config was validated above. */
    if (cfg.check_config) {
        char dir[CW_PATH_MAX];
        if (cw_pipeline_rules_dir(&cfg, dir, sizeof dir) == 0 &&
            cw_ruleset_check_dir(dir, err, sizeof err) < 0) {
            fprintf(stderr, "chainwatchd: rules %s: %s\n", dir, err);
            return 1;
        }
        /* Configured sinks must be reachable now; otherwise the server
         * would start and only queue on disk. */
        if ((cfg.kafka_brokers[0] &&
             cw_kafka_sink_check(&cfg, CHECK_TIMEOUT_MS, err, sizeof err) < 0) ||
            (cfg.pg_conninfo[0] && cw_pg_sink_check(&cfg, CHECK_TIMEOUT_MS, err, sizeof err) < 0)) {
            fprintf(stderr, "chainwatchd: %s\n", err);
            return 1;
        }
        printf("chainwatchd: configuration OK\n");
        return 0;
    }

    if (mkdir_p(cfg.data_dir) < 0) {
        fprintf(stderr, "chainwatchd: data dir %s: %s\n", cfg.data_dir, strerror(errno));
        return 1;
    }

    static cw_registry reg;
    cw_registry_init(&reg, MAX_AGENTS);
    cw_spool *spool = NULL, *sink_spool = NULL;
    cw_kafka_sink *kafka = NULL;
    cw_pg_sink *pg = NULL;
    cw_pipeline *pipeline = NULL;
    int sinks = cfg.kafka_brokers[0] || cfg.pg_conninfo[0];
    char sink_dir[CW_PATH_MAX + 8];
    snprintf(sink_dir, sizeof sink_dir, "%s/out", cfg.data_dir);
    cw_spool_opts sso = {
        .data_dir = sink_dir,
        .segment_bytes = cfg.spool_segment_bytes,
        .max_bytes = cfg.sink_max_bytes,
        .queue_max_bytes = SINK_OUTBOX_BYTES,
    };
    cw_ingest *ingest = NULL;
    cw_http *http = NULL;
    cw_spool_opts so = {
        .data_dir = cfg.data_dir,
        .segment_bytes = cfg.spool_segment_bytes,
        .max_bytes = cfg.spool_max_bytes,
        .queue_max_bytes = cfg.total_inflight_bytes,
    };
    int status = 1;
    if (cw_spool_open(&spool, &so, err, sizeof err) < 0) goto fail;
    cw_spool_foreach_hwm(spool, cw_registry_restore_hwm, &reg);
    if (cw_pipeline_create(&pipeline, &cfg, spool, err, sizeof err) < 0) goto fail;
    if (sinks) {
        if (mkdir_p(sink_dir) < 0) {
            snprintf(err, sizeof err, "sink spool dir %.900s: %s", sink_dir, strerror(errno));
            goto fail;
        }
        if (cw_spool_open(&sink_spool, &sso, err, sizeof err) < 0 ||
            cw_pipeline_set_sink(pipeline, sink_spool, SINK_OUTBOX_BYTES, err, sizeof err) < 0 ||
            (cfg.kafka_brokers[0] &&
             cw_kafka_sink_create(&kafka, &cfg, sink_spool, err, sizeof err) < 0) ||
            (cfg.pg_conninfo[0] && cw_pg_sink_create(&pg, &cfg, sink_spool, err, sizeof err) < 0))
            goto fail;
    }
    if (cw_ingest_create(&ingest, &cfg, spool, &reg, err, sizeof err) < 0) goto fail;
    if (cw_http_create(&http, &cfg, spool, &reg, err, sizeof err) < 0) goto fail;

    if (cw_spool_start(spool) < 0 || (sink_spool && cw_spool_start(sink_spool) < 0) ||
        (kafka && cw_kafka_sink_start(kafka, err, sizeof err) < 0) ||
        (pg && cw_pg_sink_start(pg, err, sizeof err) < 0) ||
        cw_pipeline_start(pipeline, err, sizeof err) < 0 ||
        cw_ingest_start(ingest) < 0 || cw_http_start(http, err, sizeof err) < 0) {
        if (!err[0]) snprintf(err, sizeof err, "failed to start threads");
        goto fail_started;
    }
    cw_info("main", "chainwatchd ready: agents on %s, HTTP on %s, data in %s", cfg.agent_listen,
            cfg.http_listen, cfg.data_dir);

    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_signal_t sigs[3];
    const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, &sigs[i]);
        sigs[i].data = pipeline;
        uv_signal_start(&sigs[i], on_signal, signums[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)&sigs[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    status = 0;

fail_started:
    if (status) fprintf(stderr, "chainwatchd: %s\n", err);
    cw_http_stop(http);
    cw_ingest_stop(ingest);
    cw_spool_stop(spool);
    cw_pipeline_stop_within(pipeline, cfg.sink_drain_timeout_ms);
    if (sink_spool) cw_spool_stop(sink_spool);
    cw_kafka_sink_stop(kafka, cfg.sink_drain_timeout_ms);
    cw_pg_sink_stop(pg, cfg.sink_drain_timeout_ms);
    cw_info("main", "stopped cleanly");
    goto done;
fail:
    fprintf(stderr, "chainwatchd: %s\n", err);
done:
    /* The spool may call its space listeners (ingest, HTTP) until it is
     * closed, so those go last. */
    cw_kafka_sink_free(kafka);
    cw_pg_sink_free(pg);
    if (sink_spool) cw_spool_stop(sink_spool); /* before the outbox goes */
    cw_pipeline_free(pipeline);
    if (sink_spool) cw_spool_close(sink_spool);
    if (spool) cw_spool_close(spool);
    cw_http_free(http);
    cw_ingest_free(ingest);
    cw_registry_destroy(&reg);
    return status;
}
