#include "common/metrics.h"

#include <stddef.h>
#include <string.h>

cw_metrics cw_m;

const char *const cw_reject_names[CW_REJ__COUNT] = {
    [CW_REJ_FRAME_TOO_LARGE] = "frame_too_large",
    [CW_REJ_DECODE] = "decode_error",
    [CW_REJ_NO_HELLO] = "no_hello",
    [CW_REJ_BAD_HELLO] = "bad_hello",
    [CW_REJ_SEQ_GAP] = "seq_gap",
    [CW_REJ_SEQ_REGRESSION] = "seq_regression",
    [CW_REJ_UNKNOWN_EVENT] = "unknown_event_type",
    [CW_REJ_BAD_EVENT] = "bad_event",
    [CW_REJ_TOO_MANY_EVENTS] = "too_many_events",
    [CW_REJ_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [CW_REJ_IDLE_TIMEOUT] = "idle_timeout",
};

const char *const cw_audit_reject_names[CW_AUDIT_REJ__COUNT] = {
    [CW_AUDIT_REJ_MALFORMED] = "malformed",
    [CW_AUDIT_REJ_TOO_LARGE] = "too_large",
    [CW_AUDIT_REJ_BAD_CLUSTER] = "bad_cluster",
    [CW_AUDIT_REJ_UNAVAILABLE] = "unavailable",
};

const char *const cw_sink_names[CW_SINK__COUNT] = {"kafka", "postgres"};
const char *const cw_sink_kind_names[CW_SINK_KIND__COUNT] = {"events", "alerts", "incidents"};

static int header(cw_buf *o, const char *name, const char *type, const char *help)
{
    return cw_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One unlabelled metric: its HELP/TYPE header and value line. */
static int scalar_u(cw_buf *o, const char *name, const char *type, const char *help,
                    unsigned long long v)
{
    return header(o, name, type, help) | cw_buf_printf(o, "%s %llu\n", name, v);
}

static int scalar_s(cw_buf *o, const char *name, const char *type, const char *help, long long v)
{
    return header(o, name, type, help) | cw_buf_printf(o, "%s %lld\n", name, v);
}

#define U(x) ((unsigned long long)cw_metric_get(x))
#define S(x) ((long long)cw_metric_get(x))

const char *const cw_severity_names[CW_METRIC_SEVERITIES] = {"info", "low", "medium", "high",
                                                              "critical"};

/* The alerts-by-rule table. The single writer fills a slot's id, then
 * publishes it by raising `used` with release order; readers take `used`
 * with acquire order and read only the slots below it, so they never see a
 * half-written id. Slots are never reused. */
typedef struct rule_slot {
    char id[CW_METRICS_RULE_ID_MAX];
    _Atomic uint64_t n;
} rule_slot;
static rule_slot rule_slots[CW_METRICS_MAX_RULES];
static _Atomic size_t rule_slots_used;
static _Atomic uint64_t rule_other;

void cw_metrics_alert_rule(const char *id)
{
    if (!id) id = "";
    size_t used = atomic_load_explicit(&rule_slots_used, memory_order_relaxed);
    size_t len = strnlen(id, CW_METRICS_RULE_ID_MAX - 1);
    for (size_t i = 0; i < used; i++) {
        if (strncmp(rule_slots[i].id, id, len) == 0 && rule_slots[i].id[len] == 0) {
            cw_metric_add(rule_slots[i].n, 1);
            return;
        }
    }
    if (used == CW_METRICS_MAX_RULES) {
        cw_metric_add(rule_other, 1);
        return;
    }
    memcpy(rule_slots[used].id, id, len);
    rule_slots[used].id[len] = 0;
    atomic_store_explicit(&rule_slots[used].n, 1, memory_order_relaxed);
    atomic_store_explicit(&rule_slots_used, used + 1, memory_order_release);
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static int label_value(cw_buf *o, const char *s)
{
    int r = 0;
    for (; *s && r == 0; s++) {
        if (*s == '\\') r = cw_buf_printf(o, "\\\\");
        else if (*s == '"') r = cw_buf_printf(o, "\\\"");
        else if (*s == '\n') r = cw_buf_printf(o, "\\n");
        else r = cw_buf_printf(o, "%c", *s);
    }
    return r;
}

static int render_detection(cw_buf *o)
{
    int r = 0;
    r |= header(o, "chainwatch_alerts_total", "counter", "Alerts raised, by severity.");
    for (int i = 0; i < CW_METRIC_SEVERITIES; i++)
        r |= cw_buf_printf(o, "chainwatch_alerts_total{severity=\"%s\"} %llu\n",
                           cw_severity_names[i], U(cw_m.alerts_total[i]));
    r |= header(o, "chainwatch_incidents_total", "counter",
                "Incidents opened, by the severity of the alert that opened them.");
    for (int i = 0; i < CW_METRIC_SEVERITIES; i++)
        r |= cw_buf_printf(o, "chainwatch_incidents_total{severity=\"%s\"} %llu\n",
                           cw_severity_names[i], U(cw_m.incidents_total[i]));
    r |= header(o, "chainwatch_detect_seconds_total", "counter",
                "Time spent enriching events and evaluating rules and incidents on them.");
    uint64_t ns = cw_metric_get(cw_m.detect_ns_total);
    r |= cw_buf_printf(o, "chainwatch_detect_seconds_total %llu.%09llu\n",
                       (unsigned long long)(ns / 1000000000u),
                       (unsigned long long)(ns % 1000000000u));
    r |= scalar_u(o, "chainwatch_detect_events_total", "counter",
                  "Events evaluated by the rules.", U(cw_m.detect_events_total));
    r |= header(o, "chainwatch_alerts_by_rule_total", "counter",
                "Alerts raised, by rule id (at most 2000 rules; the rest under _other).");
    size_t used = atomic_load_explicit(&rule_slots_used, memory_order_acquire);
    for (size_t i = 0; i < used; i++) {
        r |= cw_buf_printf(o, "chainwatch_alerts_by_rule_total{rule=\"");
        r |= label_value(o, rule_slots[i].id);
        r |= cw_buf_printf(o, "\"} %llu\n", U(rule_slots[i].n));
    }
    r |= cw_buf_printf(o, "chainwatch_alerts_by_rule_total{rule=\"_other\"} %llu\n",
                       U(rule_other));
    return r;
}

static int render_sinks(cw_buf *o)
{
    int r = 0;
    r |= header(o, "chainwatch_sink_delivered_total", "counter",
                "Records confirmed stored by a sink (delivery report, COMMIT), by kind.");
    for (int i = 0; i < CW_SINK__COUNT; i++)
        for (int k = 0; k < CW_SINK_KIND__COUNT; k++)
            r |= cw_buf_printf(o, "chainwatch_sink_delivered_total{sink=\"%s\",kind=\"%s\"} %llu\n",
                               cw_sink_names[i], cw_sink_kind_names[k],
                               U(cw_m.sink_delivered_total[i][k]));
    static const struct {
        const char *name, *type, *help;
        size_t off;
        int is_signed;
    } per_sink[] = {
        {"chainwatch_sink_duplicates_total", "counter",
         "Records replayed after a restart and found already stored (not stored again).",
         offsetof(cw_metrics, sink_duplicates_total), 0},
        {"chainwatch_sink_errors_total", "counter",
         "Failed deliveries, connections or queries of a sink (each retried).",
         offsetof(cw_metrics, sink_errors_total), 0},
        {"chainwatch_sink_up", "gauge", "1 while the sink is connected and delivering.",
         offsetof(cw_metrics, sink_up), 1},
        {"chainwatch_sink_lag_bytes", "gauge",
         "Sink spool bytes not yet confirmed stored by the sink.",
         offsetof(cw_metrics, sink_lag_bytes), 1},
    };
    for (size_t m = 0; m < sizeof per_sink / sizeof per_sink[0]; m++) {
        r |= header(o, per_sink[m].name, per_sink[m].type, per_sink[m].help);
        for (int i = 0; i < CW_SINK__COUNT; i++) {
            const char *base = (const char *)&cw_m + per_sink[m].off;
            long long v = per_sink[m].is_signed
                              ? (long long)atomic_load_explicit((_Atomic int64_t *)base + i,
                                                                memory_order_relaxed)
                              : (long long)atomic_load_explicit((_Atomic uint64_t *)base + i,
                                                                memory_order_relaxed);
            r |= cw_buf_printf(o, "%s{sink=\"%s\"} %lld\n", per_sink[m].name, cw_sink_names[i],
                               v);
        }
    }
    r |= scalar_u(o, "chainwatch_kafka_values_omitted_total", "counter",
                  "Kafka messages over kafka.max_value_bytes sent without their payload (events)"
                  " or as an id stub (alerts, incidents); PostgreSQL keeps them whole.",
                  U(cw_m.kafka_values_omitted_total));
    r |= scalar_u(o, "chainwatch_pg_columns_truncated_total", "counter",
                  "Event values (host, cluster, namespace, pod, ...) cut to 512 bytes in their"
                  " PostgreSQL column so that the row fits its indexes; body keeps them whole.",
                  U(cw_m.pg_columns_truncated_total));
    r |= scalar_u(o, "chainwatch_pg_events_unpartitioned_total", "counter",
                  "Events written to events_default because their day is outside the partition"
                  " window (pg.partition_past_days, pg.partition_future_days).",
                  U(cw_m.pg_events_unpartitioned_total));
    r |= scalar_u(o, "chainwatch_pipeline_sink_waits_total", "counter",
                  "Times the pipeline waited because the sink spool was full.",
                  U(cw_m.pipeline_sink_waits_total));
    return r;
}

int cw_metrics_render(cw_buf *o)
{
    int r = 0;
    static const char *const src[CW_SRC__COUNT] = {"agent", "k8s_audit"};
    r |= header(o, "chainwatch_events_received_total", "counter",
                "Events durably accepted into the spool, once each.");
    for (int i = 0; i < CW_SRC__COUNT; i++)
        r |= cw_buf_printf(o, "chainwatch_events_received_total{source=\"%s\"} %llu\n", src[i],
                           U(cw_m.events_received[i]));
    r |= scalar_u(o, "chainwatch_batches_accepted_total", "counter",
                  "Agent event batches durably accepted.", U(cw_m.batches_accepted));
    r |= scalar_u(o, "chainwatch_batches_duplicate_total", "counter",
                  "Resent agent batches that were already accepted (dropped and acked).",
                  U(cw_m.batches_duplicate));
    r |= header(o, "chainwatch_frames_rejected_total", "counter",
                "Agent frames rejected; each closes its connection.");
    for (int i = 0; i < CW_REJ__COUNT; i++)
        r |= cw_buf_printf(o, "chainwatch_frames_rejected_total{reason=\"%s\"} %llu\n",
                           cw_reject_names[i], U(cw_m.frames_rejected[i]));
    r |= scalar_s(o, "chainwatch_agents_connected", "gauge",
                  "Agents with an open connection.", S(cw_m.agents_connected));
    r |= scalar_u(o, "chainwatch_connections_total", "counter",
                  "Agent connections accepted.", U(cw_m.connections_total));
    r |= scalar_u(o, "chainwatch_ingest_pauses_total", "counter",
                  "Times an agent connection stopped reading because of backpressure.",
                  U(cw_m.ingest_pauses_total));
    r |= scalar_s(o, "chainwatch_ingest_inflight_bytes", "gauge",
                  "Bytes of accepted frames held in memory until durable.",
                  S(cw_m.ingest_inflight_bytes));
    r |= scalar_s(o, "chainwatch_spool_bytes", "gauge",
                  "Bytes in spool segments on disk.", S(cw_m.spool_bytes));
    r |= scalar_u(o, "chainwatch_spool_fsyncs_total", "counter",
                  "Group commits (one fsync each) of the spool.", U(cw_m.spool_fsyncs_total));
    r |= header(o, "chainwatch_audit_requests_rejected_total", "counter",
                "Kubernetes audit webhook requests refused.");
    for (int i = 0; i < CW_AUDIT_REJ__COUNT; i++)
        r |= cw_buf_printf(o, "chainwatch_audit_requests_rejected_total{reason=\"%s\"} %llu\n",
                           cw_audit_reject_names[i], U(cw_m.audit_requests_rejected[i]));
    r |= scalar_u(o, "chainwatch_audit_events_duplicate_total", "counter",
                  "Audit events dropped as redelivered (same cluster, auditID, stage and content).",
                  U(cw_m.audit_events_duplicate));
    r |= scalar_u(o, "chainwatch_audit_events_invalid_total", "counter",
                  "Audit events skipped for lacking a usable auditID or stage.",
                  U(cw_m.audit_events_invalid));
    r |= scalar_u(o, "chainwatch_pipeline_events_total", "counter",
                  "Events enriched and passed to the outputs.", U(cw_m.pipeline_events_total));
    r |= scalar_s(o, "chainwatch_pipeline_lag_bytes", "gauge",
                  "Spool bytes committed but not yet processed by the pipeline.",
                  S(cw_m.pipeline_lag_bytes));
    r |= scalar_u(o, "chainwatch_pipeline_bad_records_total", "counter",
                  "Spool records the pipeline could not decode or normalize (skipped).",
                  U(cw_m.pipeline_bad_records_total));
    r |= scalar_u(o, "chainwatch_output_write_errors_total", "counter",
                  "Failed writes or fsyncs of JSON Lines output files.",
                  U(cw_m.output_write_errors_total));
    r |= scalar_u(o, "chainwatch_output_lines_dropped_total", "counter",
                  "Output lines lost to write errors.", U(cw_m.output_lines_dropped_total));
    r |= render_detection(o);
    r |= render_sinks(o);
    return r ? -1 : 0;
}
