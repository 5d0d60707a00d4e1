/* metrics: process-wide counters and gauges, rendered as Prometheus text.
 *
 * Every field is a C11 atomic, updated with relaxed ordering from any thread;
 * nothing here locks. Labels are closed enums so rendering allocates nothing
 * per label and a peer can never create new series. Add a metric by adding a
 * field here and a line in cw_metrics_render().
 */
#ifndef CW_METRICS_H
#define CW_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/buf.h"

enum cw_source { CW_SRC_AGENT, CW_SRC_K8S_AUDIT, CW_SRC__COUNT };

/* Why an agent frame (and with it the connection) was rejected. Keep in step
 * with cw_reject_names in metrics.c and ErrorCode in proto/chainwatch.proto. */
enum cw_reject {
    CW_REJ_FRAME_TOO_LARGE,
    CW_REJ_DECODE,
    CW_REJ_NO_HELLO,
    CW_REJ_BAD_HELLO,
    CW_REJ_SEQ_GAP,
    CW_REJ_SEQ_REGRESSION,
    CW_REJ_UNKNOWN_EVENT,
    CW_REJ_BAD_EVENT,
    CW_REJ_TOO_MANY_EVENTS,
    CW_REJ_HANDSHAKE_TIMEOUT,
    CW_REJ_IDLE_TIMEOUT,
    CW_REJ__COUNT
};
extern const char *const cw_reject_names[CW_REJ__COUNT];

/* Why an audit webhook request was refused. */
enum cw_audit_reject {
    CW_AUDIT_REJ_MALFORMED,  /* 400: not JSON, not an Event/EventList */
    CW_AUDIT_REJ_TOO_LARGE,  /* 413: body over http.max_body_bytes */
    CW_AUDIT_REJ_BAD_CLUSTER, /* 400: cluster name missing or invalid */
    CW_AUDIT_REJ_UNAVAILABLE, /* 503: spool full or shutting down */
    CW_AUDIT_REJ__COUNT
};
extern const char *const cw_audit_reject_names[CW_AUDIT_REJ__COUNT];

/* Sinks (storage/kafka_sink.h, storage/pg_sink.h) and what they deliver. */
enum cw_sink { CW_SINK_KAFKA, CW_SINK_PG, CW_SINK__COUNT };
extern const char *const cw_sink_names[CW_SINK__COUNT];
enum cw_sink_kind { CW_SINK_EVENTS, CW_SINK_ALERTS, CW_SINK_INCIDENTS, CW_SINK_KIND__COUNT };
extern const char *const cw_sink_kind_names[CW_SINK_KIND__COUNT];

/* Severities, in the order of enum cw_severity (correlator/alert.h). */
#define CW_METRIC_SEVERITIES 5
extern const char *const cw_severity_names[CW_METRIC_SEVERITIES];

/* Alerts by rule: rule ids come from our own rule files, not from peers, so
 * they may be labels; still the table is capped, and alerts of rules beyond
 * the cap are counted under rule="_other". */
#define CW_METRICS_MAX_RULES 2000
#define CW_METRICS_RULE_ID_MAX 128

typedef struct cw_metrics {
    /* Events durably accepted into the spool, once each. */
    _Atomic uint64_t events_received[CW_SRC__COUNT];
    _Atomic uint64_t batches_accepted;
    /* Batches an agent resent that were already accepted (dropped, acked). */
    _Atomic uint64_t batches_duplicate;
    _Atomic uint64_t frames_rejected[CW_REJ__COUNT];
    _Atomic int64_t agents_connected;
    _Atomic uint64_t connections_total;
    /* Times an ingest connection stopped reading because of backpressure. */
    _Atomic uint64_t ingest_pauses_total;
    /* Bytes of accepted frames not yet durable (held in memory). */
    _Atomic int64_t ingest_inflight_bytes;
    /* Bytes on disk in spool segments. */
    _Atomic int64_t spool_bytes;
    _Atomic uint64_t spool_fsyncs_total;
    _Atomic uint64_t audit_requests_rejected[CW_AUDIT_REJ__COUNT];
    _Atomic uint64_t audit_events_duplicate;
    /* Audit events skipped because they lack a usable auditID or stage (the
     * rest of their request is still accepted). */
    _Atomic uint64_t audit_events_invalid;
    /* Events the pipeline (enrichment, outputs) has processed. */
    _Atomic uint64_t pipeline_events_total;
    /* Spool bytes committed but not yet read by the pipeline. */
    _Atomic int64_t pipeline_lag_bytes;
    /* Spool records the pipeline could not decode or normalize (skipped). */
    _Atomic uint64_t pipeline_bad_records_total;
    /* Failed writes/fsyncs of JSON Lines outputs, and the lines they lost. */
    _Atomic uint64_t output_write_errors_total;
    _Atomic uint64_t output_lines_dropped_total;
    /* Detection: alerts raised and incidents opened, by severity (index =
     * enum cw_severity of correlator/alert.h: info, low, medium, high,
     * critical); time spent in rule evaluation and the events evaluated. */
    _Atomic uint64_t alerts_total[CW_METRIC_SEVERITIES];
    _Atomic uint64_t incidents_total[CW_METRIC_SEVERITIES];
    _Atomic uint64_t detect_ns_total;
    _Atomic uint64_t detect_events_total;

    /* Sinks. delivered: confirmed by the store (delivery report, COMMIT);
     * duplicates: replayed after a crash and found already stored (not
     * stored again); errors: failed deliveries, connections and queries,
     * each retried; up: 1 while connected and writing; lag: sink spool bytes
     * not yet confirmed by that sink. */
    _Atomic uint64_t sink_delivered_total[CW_SINK__COUNT][CW_SINK_KIND__COUNT];
    _Atomic uint64_t sink_duplicates_total[CW_SINK__COUNT];
    _Atomic uint64_t sink_errors_total[CW_SINK__COUNT];
    _Atomic int64_t sink_up[CW_SINK__COUNT];
    _Atomic int64_t sink_lag_bytes[CW_SINK__COUNT];
    /* Events the PostgreSQL sink wrote outside the day-partition window
     * (pg.partition_past_days / future_days): into events_default. */
    _Atomic uint64_t pg_events_unpartitioned_total;
    /* Typed event column values cut to CW_PG_COLUMN_MAX (body keeps them). */
    _Atomic uint64_t pg_columns_truncated_total;
    /* Kafka values over kafka.max_value_bytes sent as stubs (kafka_stub.h). */
    _Atomic uint64_t kafka_values_omitted_total;
    /* Times the pipeline waited because the sink spool was full. */
    _Atomic uint64_t pipeline_sink_waits_total;
} cw_metrics;

extern cw_metrics cw_m;

#define cw_metric_add(field, n) atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)
#define cw_metric_set(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)
#define cw_metric_get(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* Counts one alert of rule `id` (truncated to CW_METRICS_RULE_ID_MAX - 1
 * bytes). One writer only: the pipeline thread. Rendering may run on any
 * thread at the same time. */
void cw_metrics_alert_rule(const char *id);

/* Appends the Prometheus text exposition of every metric to `out`. */
int cw_metrics_render(cw_buf *out);

#endif
