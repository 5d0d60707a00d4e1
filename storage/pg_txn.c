/* pg_txn: builds one transaction of the PostgreSQL sink. See pg_txn.h.
 *
 * Typed columns come from the StoredEvent bytes, read by a scan of the top
 * level of the message that only records where fields 1-15 are: no
 * allocation, and the nested Event (field 20) and audit JSON (21), the bulk
 * of the bytes, are skipped by their length. protobuf-c would copy every
 * string and decode the nested event; jansson on the JSON body would build
 * a tree of the whole object. The body itself is copied as text, escaped
 * for COPY on the way, never parsed. */
#include "storage/pg_txn.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/jsonw.h"
#include "correlator/event.h"
#include "storage/pbwire.h"

#define NO_VALUE UINT32_MAX

void cw_pg_txn_init(cw_pg_txn *t)
{
    memset(t, 0, sizeof *t);
    cw_buf_init(&t->copy, 0);
    cw_buf_init(&t->params, 0);
    t->day_lo = INT32_MIN;
    t->day_hi = INT32_MAX;
}

void cw_pg_txn_set_window(cw_pg_txn *t, int32_t day_lo, int32_t day_hi)
{
    t->day_lo = day_lo;
    t->day_hi = day_hi;
}

void cw_pg_txn_reset(cw_pg_txn *t)
{
    /* Keep the memory of ordinary transactions for the next one, but give
     * back what an unusually large one took. */
    if (t->copy.alloc > 2 * (size_t)CW_PG_TXN_COPY_BYTES) cw_buf_free(&t->copy);
    if (t->params.alloc > 2 * (size_t)CW_PG_TXN_STMT_BYTES) cw_buf_free(&t->params);
    cw_buf_reset(&t->copy);
    cw_buf_reset(&t->params);
    t->n_stmts = t->n_events = t->n_alerts = t->n_incidents = t->n_days = 0;
    t->days_overflow = 0;
    t->n_unpartitioned = 0;
    t->n_truncated = 0;
    t->end = 0;
    t->skipped = 0;
}

void cw_pg_txn_free(cw_pg_txn *t)
{
    cw_buf_free(&t->copy);
    cw_buf_free(&t->params);
    free(t->stmts);
    memset(t, 0, sizeof *t);
}

int cw_pg_txn_empty(const cw_pg_txn *t)
{
    return t->n_events == 0 && t->n_stmts == 0;
}

int cw_pg_txn_events_full(const cw_pg_txn *t, uint32_t batch_rows)
{
    if (t->n_events == 0) return 0;
    return t->n_events >= batch_rows || t->copy.len >= CW_PG_TXN_COPY_BYTES || t->days_overflow;
}

int cw_pg_txn_stmts_full(const cw_pg_txn *t)
{
    if (t->n_stmts == 0) return 0;
    return t->n_stmts >= CW_PG_TXN_STMTS || t->params.len >= CW_PG_TXN_STMT_BYTES;
}

/* ---- Sanitizing text ------------------------------------------------ */

enum {
    ESC_COPY = 1, /* escape \ \t \n \r for COPY text format */
    ESC_JSON = 2, /* the text is JSON: "\u0000" becomes "\ufffd" */
};

/* Length of the valid UTF-8 sequence at s[0..n) (s[0] >= 0x80), or 0 if it
 * is not valid: the rules PostgreSQL applies (no overlong forms, no UTF-16
 * surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < need || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return need;
}

/* How much of s[0..n) put_text turns into at most `max` bytes of text,
 * cut between characters. */
static size_t fit_text(const char *str, size_t n, size_t max)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, out = 0;
    while (i < n) {
        size_t k = 1, w = 1;
        if (s[i] >= 0x80) {
            k = utf8_len(s + i, n - i);
            w = k ? k : 3;
            if (!k) k = 1;
        } else if (s[i] == 0) {
            w = 3;
        }
        if (out + w > max) break;
        out += w;
        i += k;
    }
    return i;
}

/* Appends s[0..n) to b as valid UTF-8 without NUL bytes (invalid bytes
 * and NUL bytes become U+FFFD), escaped per `mode`. Returns 0 or
 * -1 (out of memory; b then holds a partial value). */
static int put_text(cw_buf *b, const char *str, size_t n, int mode)
{
    /* Worst case 3 bytes per input byte (U+FFFD for a stray byte; "\u0000"
     * -> "\\ufffd" is 7 for 6). */
    if (n > (SIZE_MAX - 8) / 3 || cw_buf_reserve(b, 3 * n + 8) < 0) return -1;
    const unsigned char *s = (const unsigned char *)str;
    uint8_t *o = b->data + b->len;
    int after_bs = 0; /* JSON: the previous byte began an escape */
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_len(s + i, n - i);
            if (k == 0) {
                memcpy(o, "\xEF\xBF\xBD", 3);
                o += 3;
                i++;
            } else {
                memcpy(o, s + i, k);
                o += k;
                i += k;
            }
            after_bs = 0;
            continue;
        }
        i++;
        if (c == 0) { /* text cannot hold NUL */
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            after_bs = 0;
            continue;
        }
        if (c == '\\') {
            if ((mode & ESC_JSON) && !after_bs && n - i >= 5 && memcmp(s + i, "u0000", 5) == 0) {
                /* jsonb refuses \u0000 (text cannot hold NUL). */
                if (mode & ESC_COPY) *o++ = '\\';
                memcpy(o, "\\ufffd", 6);
                o += 6;
                i += 5;
                continue;
            }
            after_bs = !after_bs;
            if (mode & ESC_COPY) *o++ = '\\';
            *o++ = '\\';
            continue;
        }
        after_bs = 0;
        if (mode & ESC_COPY) {
            if (c == '\t' || c == '\n' || c == '\r') {
                *o++ = '\\';
                *o++ = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
                continue;
            }
        }
        *o++ = c;
    }
    b->len = (size_t)(o - b->data);
    return 0;
}

/* ---- Events --------------------------------------------------------- */

typedef struct pb_str {
    const char *s;
    size_t n;
} pb_str;

/* Records fields 1-15 of a StoredEvent (the strings; a later occurrence
 * wins, as in protobuf). Stops quietly at the first malformed field: what
 * was found before it is kept, the rest stays unknown (NULL). */
static void pb_scan(const uint8_t *p, size_t len, pb_str f[16])
{
    size_t pos = 0;
    cw_pbfield fl;
    while (cw_pbwire_next(p, len, &pos, &fl) > 0)
        if (fl.wire == 2 && fl.number >= 1 && fl.number <= 15)
            f[fl.number] = (pb_str){(const char *)fl.data, fl.len};
}

static void floor_div(int64_t a, int64_t b, int64_t *q, int64_t *r)
{
    *q = a / b;
    *r = a % b;
    if (*r < 0) {
        *r += b;
        *q -= 1;
    }
}

void cw_pg_format_day(int32_t day, char *buf, size_t size)
{
    time_t t = (time_t)day * 86400;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) memset(&tm, 0, sizeof tm);
    snprintf(buf, size, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* The event's time as the column stores it, microseconds truncated (the
 * column's precision), so the key (id, time) of an event is the same on
 * every replay and the UTC day computed here is the row's partition. */
static int put_time(cw_pg_txn *t, int64_t ns, int32_t *day)
{
    int64_t us, sub, sec, usec, d, daysec;
    floor_div(ns, 1000, &us, &sub);
    floor_div(us, 1000000, &sec, &usec);
    floor_div(sec, 86400, &d, &daysec);
    *day = (int32_t)d;
    time_t tt = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) memset(&tm, 0, sizeof tm);
    return cw_buf_printf(&t->copy, "%04d-%02d-%02d %02d:%02d:%02d.%06" PRId64 "+00",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, usec);
}

static void note_day(cw_pg_txn *t, int32_t day)
{
    for (size_t i = 0; i < t->n_days; i++)
        if (t->days[i] == day) return;
    if (t->n_days < CW_PG_TXN_DAYS) t->days[t->n_days++] = day;
    else t->days_overflow = 1; /* cannot happen: full before (see below) */
}

int cw_pg_txn_add_event(cw_pg_txn *t, const cw_outrec_event *ev)
{
    /* StoredEvent field numbers of the typed columns after id and time. */
    static const uint8_t cols[] = {3, 4, 8, 10, 5, 6, 7, 9, 12, 13, 14, 11, 15};
    pb_str f[16];
    memset(f, 0, sizeof f);
    pb_scan(ev->pb, ev->pb_len, f);
    size_t mark = t->copy.len;
    int32_t day;
    if (put_text(&t->copy, ev->id, ev->id_len, ESC_COPY) < 0 ||
        cw_buf_append(&t->copy, "\t", 1) < 0 || put_time(t, ev->time_ns, &day) < 0)
        goto oom;
    for (size_t i = 0; i < sizeof cols; i++) {
        const pb_str *s = &f[cols[i]];
        if (cw_buf_append(&t->copy, "\t", 1) < 0) goto oom;
        /* Empty means unknown: NULL, except type, which is NOT NULL. */
        size_t n = s->n;
        if (n > CW_PG_COLUMN_MAX / 3 && (n = fit_text(s->s, n, CW_PG_COLUMN_MAX)) < s->n)
            t->n_truncated++;
        if (s->n == 0 && cols[i] != 3) {
            if (cw_buf_append(&t->copy, "\\N", 2) < 0) goto oom;
        } else if (put_text(&t->copy, s->s, n, ESC_COPY) < 0) {
            goto oom;
        }
    }
    if (cw_buf_append(&t->copy, "\t", 1) < 0) goto oom;
    if (ev->json_len == 0) {
        if (cw_buf_append(&t->copy, "{}", 2) < 0) goto oom;
    } else if (put_text(&t->copy, ev->json, ev->json_len, ESC_COPY | ESC_JSON) < 0) {
        goto oom;
    }
    if (cw_buf_append(&t->copy, "\n", 1) < 0) goto oom;
    if (day >= t->day_lo && day <= t->day_hi) {
        note_day(t, day);
    } else if (t->n_unpartitioned++ == 0) {
        t->unpartitioned_ns = ev->time_ns;
    }
    /* Keep room for every event's day: a transaction spanning many days
     * (a replay of old data) is closed early instead. */
    if (t->n_days >= CW_PG_TXN_DAYS) t->days_overflow = 1;
    t->n_events++;
    return 0;
oom:
    t->copy.len = mark;
    return -1;
}

/* ---- Alerts and incidents ------------------------------------------- */

/* Appends a NUL-terminated value to t->params; *off receives its offset. */
static int param_text(cw_pg_txn *t, const char *s, size_t n, int mode, uint32_t *off)
{
    if (t->params.len >= NO_VALUE - 1) return -1;
    *off = (uint32_t)t->params.len;
    if (put_text(&t->params, s, n, mode) < 0 || cw_buf_append(&t->params, "", 1) < 0) return -1;
    return 0;
}

/* A string member as a parameter: NULL when absent, not a string or "". */
static int param_str(cw_pg_txn *t, json_t *o, const char *key, uint32_t *off)
{
    json_t *v = json_object_get(o, key);
    *off = NO_VALUE;
    if (!json_is_string(v) || json_string_length(v) == 0) return 0;
    return param_text(t, json_string_value(v), json_string_length(v), 0, off);
}

/* A timestamp member, checked and rewritten in one form PostgreSQL reads;
 * `fallback` (ns) when absent or unreadable if fallback_ok, else NULL. */
static int param_time(cw_pg_txn *t, json_t *o, const char *key, int fallback_ok,
                      int64_t fallback, uint32_t *off)
{
    json_t *v = json_object_get(o, key);
    int64_t ns;
    *off = NO_VALUE;
    if (!json_is_string(v) || cw_parse_rfc3339_ns(json_string_value(v), &ns) < 0) {
        if (!fallback_ok) return 0;
        ns = fallback;
    }
    char buf[64];
    size_t n = cw_json_format_time_ns(buf, sizeof buf, ns);
    return param_text(t, buf, n, 0, off);
}

/* A text[] literal of the strings of an array member ("{}" if absent);
 * with `ids`, elements may also be objects whose "id" is taken. */
static int param_array(cw_pg_txn *t, json_t *o, const char *key, int ids, uint32_t *off)
{
    json_t *a = json_object_get(o, key);
    if (t->params.len >= NO_VALUE - 1) return -1;
    *off = (uint32_t)t->params.len;
    if (cw_buf_append(&t->params, "{", 1) < 0) return -1;
    int first = 1;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        if (ids && json_is_object(e)) e = json_object_get(e, "id");
        if (!json_is_string(e)) continue;
        const char *s = json_string_value(e), *end = s + json_string_length(e);
        if (cw_buf_append(&t->params, first ? "\"" : ",\"", first ? 1 : 2) < 0) return -1;
        first = 0;
        /* Inside a quoted element only " and \ need a backslash. */
        for (const char *p = s; p < end; p++) {
            const char *run = p;
            while (p < end && *p != '"' && *p != '\\') p++;
            if (put_text(&t->params, run, (size_t)(p - run), 0) < 0) return -1;
            if (p == end) break;
            char esc[2] = {'\\', *p};
            if (cw_buf_append(&t->params, esc, 2) < 0) return -1;
        }
        if (cw_buf_append(&t->params, "\"", 1) < 0) return -1;
    }
    return cw_buf_append(&t->params, "}", 2); /* with the NUL */
}

static cw_pg_stmt *new_stmt(cw_pg_txn *t)
{
    if (t->n_stmts == t->stmts_alloc) {
        size_t n = t->stmts_alloc ? t->stmts_alloc * 2 : 64;
        cw_pg_stmt *s = realloc(t->stmts, n * sizeof *s);
        if (!s) return NULL;
        t->stmts = s;
        t->stmts_alloc = n;
    }
    cw_pg_stmt *s = &t->stmts[t->n_stmts];
    memset(s, 0, sizeof *s);
    return s;
}

/* Parses a record body as a JSON object with a non-empty string id. NUL
 * escapes are accepted (the body param sanitizes them). */
static json_t *load_object(const uint8_t *body, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)body, len, JSON_ALLOW_NUL, &jerr);
    json_t *id = json_object_get(o, "id");
    if (!json_is_object(o) || !json_is_string(id) || !*json_string_value(id)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int cw_pg_txn_add_alert(cw_pg_txn *t, const uint8_t *body, size_t len, int64_t rec_time_ns)
{
    json_t *o = load_object(body, len);
    if (!o) return 1;
    cw_pg_stmt *s = new_stmt(t);
    size_t mark = t->params.len;
    int rc = -1;
    if (!s) goto out;
    s->kind = CW_PG_STMT_ALERT;
    s->nparams = CW_PG_ALERT_PARAMS;
    uint32_t *v = s->off;
    /* $1 id .. $17 body, the column order of the alerts table. */
    static const char *const strs[] = {"id",           "rule",   "title",     "severity",
                                       NULL,           "host",   "cluster",   "namespace",
                                       "pod",          "container_id", "tactic", "technique",
                                       "attack",       "phase",  "summary",   "incident"};
    for (size_t i = 0; i < 16; i++) {
        int r = strs[i] ? param_str(t, o, strs[i], &v[i])
                        : param_time(t, o, "time", 1, rec_time_ns, &v[i]);
        if (r < 0) goto out;
    }
    /* rule is NOT NULL: an alert without one is still stored. */
    if (v[1] == NO_VALUE && param_text(t, "", 0, 0, &v[1]) < 0) goto out;
    if (param_text(t, (const char *)body, len, ESC_JSON, &v[16]) < 0) goto out;
    t->n_stmts++;
    t->n_alerts++;
    rc = 0;
out:
    if (rc < 0) t->params.len = mark;
    json_decref(o);
    return rc;
}

int cw_pg_txn_add_incident(cw_pg_txn *t, const uint8_t *body, size_t len, int64_t rec_time_ns)
{
    (void)rec_time_ns; /* first_seen / last_seen are nullable */
    json_t *o = load_object(body, len);
    if (!o) return 1;
    cw_pg_stmt *s = new_stmt(t);
    size_t mark = t->params.len;
    int rc = -1;
    if (!s) goto out;
    s->kind = CW_PG_STMT_INCIDENT;
    s->nparams = CW_PG_INCIDENT_PARAMS;
    uint32_t *v = s->off;
    static const char *const arrays[] = {"hosts", "clusters", "pods", "tactics", "techniques",
                                         "phases"};
    if (param_str(t, o, "id", &v[0]) < 0 || param_str(t, o, "severity", &v[1]) < 0 ||
        param_str(t, o, "status", &v[2]) < 0 || param_time(t, o, "first_seen", 0, 0, &v[3]) < 0 ||
        param_time(t, o, "last_seen", 0, 0, &v[4]) < 0)
        goto out;
    for (size_t i = 0; i < 6; i++)
        if (param_array(t, o, arrays[i], 0, &v[5 + i]) < 0) goto out;
    json_t *cnt = json_object_get(o, "alert_count");
    json_int_t n = json_is_integer(cnt) ? json_integer_value(cnt)
                                        : (json_int_t)json_array_size(json_object_get(o, "alerts"));
    if (n < 0) n = 0;
    if (n > INT32_MAX) n = INT32_MAX;
    char num[24];
    int nl = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, n);
    if (param_text(t, num, (size_t)nl, 0, &v[11]) < 0 ||
        param_text(t, (const char *)body, len, ESC_JSON, &v[12]) < 0 ||
        param_array(t, o, "alerts", 1, &v[13]) < 0)
        goto out;
    t->n_stmts++;
    t->n_incidents++;
    rc = 0;
out:
    if (rc < 0) t->params.len = mark;
    json_decref(o);
    return rc;
}

/* Alerts are upserted by id. An alert that joined an incident keeps that
 * incident even if an older copy of it (from a replay) says null; the
 * incident_alerts row is added when it names one. The CTE's INSERT runs
 * whether or not the outer statement reads it. */
static const char alert_sql[] =
    "WITH a AS (INSERT INTO alerts (id, rule, title, severity, time, host, cluster, namespace,"
    " pod, container_id, tactic, technique, attack, phase, summary, incident, body)"
    " VALUES ($1, $2, $3, $4, $5::timestamptz, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
    " $16::text, $17::jsonb)"
    " ON CONFLICT (id) DO UPDATE SET rule = EXCLUDED.rule, title = EXCLUDED.title,"
    " severity = EXCLUDED.severity, time = EXCLUDED.time, host = EXCLUDED.host,"
    " cluster = EXCLUDED.cluster, namespace = EXCLUDED.namespace, pod = EXCLUDED.pod,"
    " container_id = EXCLUDED.container_id, tactic = EXCLUDED.tactic,"
    " technique = EXCLUDED.technique, attack = EXCLUDED.attack, phase = EXCLUDED.phase,"
    " summary = EXCLUDED.summary, incident = coalesce(EXCLUDED.incident, alerts.incident),"
    " body = EXCLUDED.body)"
    " INSERT INTO incident_alerts (incident_id, alert_id)"
    " SELECT $16::text, $1 WHERE $16::text IS NOT NULL ON CONFLICT DO NOTHING";

/* Incident states arrive in order, so the last upsert is the latest state.
 * Its alerts (ids, or objects with an id) get incident_alerts rows. */
static const char incident_sql[] =
    "WITH i AS (INSERT INTO incidents (id, severity, status, first_seen, last_seen, hosts,"
    " clusters, pods, tactics, techniques, phases, alert_count, body, updated_at)"
    " VALUES ($1, $2, $3, $4::timestamptz, $5::timestamptz, $6::text[], $7::text[], $8::text[],"
    " $9::text[], $10::text[], $11::text[], $12::integer, $13::jsonb, now())"
    " ON CONFLICT (id) DO UPDATE SET severity = EXCLUDED.severity, status = EXCLUDED.status,"
    " first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen,"
    " hosts = EXCLUDED.hosts, clusters = EXCLUDED.clusters, pods = EXCLUDED.pods,"
    " tactics = EXCLUDED.tactics, techniques = EXCLUDED.techniques, phases = EXCLUDED.phases,"
    " alert_count = EXCLUDED.alert_count, body = EXCLUDED.body, updated_at = now())"
    " INSERT INTO incident_alerts (incident_id, alert_id)"
    " SELECT $1, a FROM unnest($14::text[]) AS a ON CONFLICT DO NOTHING";

const char *cw_pg_stmt_sql(uint8_t kind)
{
    return kind == CW_PG_STMT_ALERT ? alert_sql : incident_sql;
}

void cw_pg_txn_values(const cw_pg_txn *t, const cw_pg_stmt *s, const char **values)
{
    for (size_t i = 0; i < s->nparams; i++)
        values[i] = s->off[i] == NO_VALUE ? NULL : (const char *)t->params.data + s->off[i];
}
