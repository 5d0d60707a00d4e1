/* config: one declarative table of settings, and everything generated from it.
 *
 * Each table row names a cw_config field (offset and size), its dotted YAML
 * key, its flag, its type, its default (as text, parsed like user input so the
 * example file and --help show exactly what the code uses), its bounds and a
 * one-line doc. Defaults, the YAML loader (config_yaml.c), flags, --set,
 * per-key checks in cw_config_validate, --help and the example YAML all walk
 * this table, so a new setting is one row plus a field.
 *
 * Runs on the main thread at start-up only; it blocks on file reads and stat.
 */
#include "common/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/config_internal.h"
#include "common/log.h"

enum ctype {
    T_STR,    /* free text (paths) */
    T_ADDR,   /* HOST:PORT, checked by cw_config_parse_addr */
    T_LEVEL,  /* log level name */
    T_LABELS, /* comma-separated label keys */
    T_BOOL,   /* int field, 0 or 1 */
    T_INT,    /* int field */
    T_UINT,   /* uint32_t or uint64_t field (by size) */
    T_SIZE,   /* like T_UINT, also takes KiB/MiB/GiB/TiB suffixes */
};

struct cw_config_entry {
    const char *name;    /* dotted YAML key; NULL: command line only */
    const char *flag;    /* long flag without "--"; NULL: only through --set */
    const char *metavar; /* the flag's value in --help; NULL: a switch */
    enum ctype type;
    size_t off, size;
    const char *def;
    uint64_t min, max; /* numeric types only */
    const char *doc;
};

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)
#define FIELD(f) offsetof(cw_config, f), sizeof(((cw_config *)0)->f)

/* Rows sharing a section must be adjacent: the example file opens a YAML
 * mapping per run of rows with the same prefix. */
static const struct cw_config_entry table[] = {
    {NULL, "config", "FILE", T_STR, FIELD(config_file), "", 0, 0,
     "YAML config file; flags override its values wherever they appear."},
    {NULL, "check-config", NULL, T_BOOL, FIELD(check_config), "false", 0, 1,
     "Load and validate the configuration, then exit (0 if it is valid)."},
    {"agent_listen", "agent-listen", "HOST:PORT", T_ADDR, FIELD(agent_listen), "0.0.0.0:7400", 0,
     0, "Address agents connect to (length-prefixed protobuf frames over TCP)."},
    {"http_listen", "http-listen", "HOST:PORT", T_ADDR, FIELD(http_listen), "0.0.0.0:7480", 0, 0,
     "Address of the HTTP API (Kubernetes audit webhook, metrics)."},
    {"data_dir", "data-dir", "DIR", T_STR, FIELD(data_dir), "/var/lib/chainwatch", 0, 0,
     "Directory holding the spool and its reader cursors."},
    {"rules", "rules", "DIR", T_STR, FIELD(rules_dir), "", 0, 0,
     "Detection rules directory; empty: the built-in rules."},
    {"events_out", "events-out", "FILE", T_STR, FIELD(events_out), "", 0, 0,
     "Append enriched events to FILE as JSON Lines; empty: off."},
    {"alerts_out", "alerts-out", "FILE", T_STR, FIELD(alerts_out), "", 0, 0,
     "Append alerts to FILE as JSON Lines; empty: off."},
    {"incidents_out", "incidents-out", "FILE", T_STR, FIELD(incidents_out), "", 0, 0,
     "Append incidents to FILE as JSON Lines; empty: off."},
    {"log_level", "log-level", "LEVEL", T_LEVEL, FIELD(log_level), "info", 0, 0,
     "Least severe log level written: debug, info, warn or error."},
    {"ingest.threads", NULL, NULL, T_INT, FIELD(ingest_threads), "0", 0, 64,
     "Agent ingest loop threads; 0: one per CPU (at most 64)."},
    {"ingest.max_frame_bytes", NULL, NULL, T_SIZE, FIELD(max_frame_bytes), "4MiB", 1 * KiB,
     64 * MiB, "Largest frame an agent may send after its Hello."},
    {"ingest.max_hello_frame_bytes", NULL, NULL, T_SIZE, FIELD(max_hello_frame_bytes), "64KiB",
     1 * KiB, 64 * MiB, "Largest frame before Hello, from a peer not yet identified."},
    {"ingest.max_batch_events", NULL, NULL, T_UINT, FIELD(max_batch_events), "10000", 1, 1000000,
     "Most events one EventBatch may carry."},
    {"ingest.decode_arena_bytes", NULL, NULL, T_SIZE, FIELD(decode_arena_bytes), "64MiB", 1 * MiB,
     16 * GiB, "Memory for decoding one frame (decoded data can be ~44x the frame)."},
    {"ingest.conn_inflight_bytes", NULL, NULL, T_SIZE, FIELD(conn_inflight_bytes), "16MiB",
     64 * KiB, 64 * GiB, "Unacknowledged bytes per connection before reading from it pauses."},
    {"ingest.total_inflight_bytes", NULL, NULL, T_SIZE, FIELD(total_inflight_bytes), "256MiB",
     64 * KiB, 1 * TiB, "Unacknowledged bytes over all connections before every read pauses."},
    {"ingest.handshake_timeout_ms", NULL, NULL, T_UINT, FIELD(handshake_timeout_ms), "10000", 100,
     600000, "Milliseconds a new connection has to send its Hello."},
    {"ingest.idle_timeout_ms", NULL, NULL, T_UINT, FIELD(idle_timeout_ms), "90000", 1000,
     86400000, "Milliseconds of silence before an agent connection is closed."},
    {"ingest.max_connections", NULL, NULL, T_UINT, FIELD(max_connections), "20000", 1, 1000000,
     "Agent connections held at once; more are closed on accept."},
    {"spool.segment_bytes", NULL, NULL, T_SIZE, FIELD(spool_segment_bytes), "64MiB", 1 * MiB,
     4 * GiB, "Spool segment size; writing rolls to a new segment past it."},
    {"spool.max_bytes", NULL, NULL, T_SIZE, FIELD(spool_max_bytes), "8GiB", 16 * MiB, 64 * TiB,
     "Unread spool bytes on disk before intake pauses."},
    {"sink.max_bytes", NULL, NULL, T_SIZE, FIELD(sink_max_bytes), "8GiB", 16 * MiB, 64 * TiB,
     "Sink spool bytes not yet delivered to every sink before the pipeline waits (and so intake)."},
    {"sink.drain_timeout_ms", NULL, NULL, T_UINT, FIELD(sink_drain_timeout_ms), "10000", 0,
     600000, "At shutdown, milliseconds the sinks may keep delivering; the rest waits on disk."},
    {"pg.conninfo", "pg", "CONNINFO", T_STR, FIELD(pg_conninfo), "", 0, 0,
     "PostgreSQL sink: a libpq conninfo string or URI; empty: off."},
    {"pg.batch_rows", NULL, NULL, T_UINT, FIELD(pg_batch_rows), "10000", 1, 1000000,
     "Most events the PostgreSQL sink writes in one COPY transaction."},
    {"pg.partition_past_days", NULL, NULL, T_UINT, FIELD(pg_partition_past_days), "31", 0, 36500,
     "Day partitions of events are made for days back to this many before today (UTC); older"
     " events go to events_default."},
    {"pg.partition_future_days", NULL, NULL, T_UINT, FIELD(pg_partition_future_days), "1", 0,
     3650, "Day partitions of events are made up to this many days after today (UTC); later"
     " events (a wrong clock) go to events_default."},
    {"kafka.brokers", "kafka-brokers", "HOST:PORT[,...]", T_STR, FIELD(kafka_brokers), "", 0, 0,
     "Kafka sink: bootstrap brokers; empty: off."},
    {"kafka.topic_events", NULL, NULL, T_STR, FIELD(kafka_topic_events), "chainwatch.events", 0,
     0, "Topic of enriched events (StoredEvent protobuf, keyed by Pod else host)."},
    {"kafka.topic_alerts", NULL, NULL, T_STR, FIELD(kafka_topic_alerts), "chainwatch.alerts", 0,
     0, "Topic of alerts (JSON objects)."},
    {"kafka.topic_incidents", NULL, NULL, T_STR, FIELD(kafka_topic_incidents),
     "chainwatch.incidents", 0, 0, "Topic of incident states (JSON objects)."},
    {"kafka.partitions", NULL, NULL, T_UINT, FIELD(kafka_partitions), "6", 1, 10000,
     "Partitions of each topic chainwatchd creates (existing topics are left as they are)."},
    {"kafka.replication_factor", NULL, NULL, T_UINT, FIELD(kafka_replication_factor), "0", 0, 32,
     "Replication factor of topics chainwatchd creates; 0: the broker's default."},
    {"kafka.max_value_bytes", NULL, NULL, T_SIZE, FIELD(kafka_max_value_bytes), "900000",
     1 * KiB, 1 * GiB,
     "Largest message value produced. A larger event goes without its payload"
     " (StoredEvent.omitted_bytes), a larger alert or incident as a stub with its id; raise it"
     " together with the topics' max.message.bytes (the broker default is about 1 MB)."},
    {"kafka.properties", NULL, NULL, T_STR, FIELD(kafka_properties), "", 0, 0,
     "Extra librdkafka producer properties as name=value,name=value (override the tuned ones)."},
    {"http.max_body_bytes", NULL, NULL, T_SIZE, FIELD(http_max_body_bytes), "12MiB", 4 * KiB,
     1 * GiB, "Largest HTTP request body (an audit webhook batch), as Falco caps it."},
    {"http.audit_dedupe_entries", NULL, NULL, T_UINT, FIELD(audit_dedupe_entries), "100000", 1,
     10000000, "Recent audit auditID+stage pairs remembered to drop resent events."},
    {"enrich.owner_labels", NULL, NULL, T_LABELS, FIELD(owner_labels), "owner,team", 0, 0,
     "Comma-separated Pod label keys naming an owner; the first present wins."},
    {"incident.link_window_s", NULL, NULL, T_UINT, FIELD(incident_link_window_s), "21600", 60,
     30 * 86400, "Seconds (event time) within which alerts sharing an entity join one incident."},
    {"incident.max_clock_ahead_s", NULL, NULL, T_UINT, FIELD(incident_max_clock_ahead_s), "300",
     0, 31536000,
     "Seconds an event's time may be ahead of its receipt and still advance the event-time clock"
     " that expires windows and closes idle incidents (a fast or lying agent clock cannot close"
     " them all)."},
    {"incident.idle_close_s", NULL, NULL, T_UINT, FIELD(incident_idle_close_s), "86400", 60,
     90 * 86400, "Seconds (event time) without a new alert after which an incident closes."},
    {"incident.max_open", NULL, NULL, T_UINT, FIELD(incident_max_open), "10000", 1, 1000000,
     "Open incidents kept; past it the least recently updated one is closed."},
    {"incident.max_alerts", NULL, NULL, T_UINT, FIELD(incident_max_alerts), "200", 1, 100000,
     "Alert ids and timeline entries kept per incident; later ones are counted."},
};
#define NENTRIES (sizeof table / sizeof table[0])

/* Longest key or flag name handled; every real one is far shorter. */
#define KEY_MAX 64

int cw_config_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errlen > 0) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies hostile text into a short, printable form for messages, so a bad
 * value can neither flood the terminal nor inject control characters. */
const char *cw_config_shown(const char *v, size_t len, char *out, size_t outlen)
{
    size_t n = 0, lim = outlen - 4;
    for (size_t i = 0; i < len && n < lim; i++)
        out[n++] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
    if (len > lim) memcpy(out + n, "...", 3), n += 3;
    out[n] = '\0';
    return out;
}

const struct cw_config_entry *cw_config_find_entry(const char *name)
{
    for (size_t i = 0; i < NENTRIES; i++)
        if (table[i].name && strcmp(table[i].name, name) == 0) return &table[i];
    return NULL;
}

/* Whether `path` is a section: a strict dotted prefix of some key. */
bool cw_config_is_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < NENTRIES; i++)
        if (table[i].name && strncmp(table[i].name, path, n) == 0 && table[i].name[n] == '.')
            return true;
    return false;
}

static bool is_numeric(enum ctype t)
{
    return t == T_BOOL || t == T_INT || t == T_UINT || t == T_SIZE;
}

/* Formats a number as the user would write it: sizes with the largest exact
 * binary suffix, so bounds in messages can be pasted back as values. */
static const char *fmt_num(enum ctype t, uint64_t v, char *out, size_t outlen)
{
    static const struct {
        uint64_t mul;
        const char *sfx;
    } units[] = {{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}};
    if (t == T_SIZE && v != 0)
        for (size_t i = 0; i < 4; i++)
            if (v % units[i].mul == 0) {
                snprintf(out, outlen, "%llu%s", (unsigned long long)(v / units[i].mul),
                         units[i].sfx);
                return out;
            }
    snprintf(out, outlen, "%llu", (unsigned long long)v);
    return out;
}

/* Parses a decimal integer, optionally negative, optionally with a binary
 * suffix. Hand-written because strtoull accepts spaces, signs and wraps
 * negatives around. Returns 0, or -1 if it is not a number. */
static int parse_num(const char *s, size_t len, bool suffix, bool *neg, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    *neg = len > 0 && s[0] == '-';
    if (*neg) i++;
    if (i == len || s[i] < '0' || s[i] > '9') return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    if (i < len) {
        static const char *const sfx[] = {"KiB", "MiB", "GiB", "TiB"};
        uint64_t mul = KiB;
        size_t k = 0;
        while (k < 4 && !(len - i == 3 && memcmp(s + i, sfx[k], 3) == 0))
            k++, mul *= 1024;
        if (!suffix || k == 4 || v > UINT64_MAX / mul) return -1;
        v *= mul;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, size_t len, uint64_t *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == len && memcmp(s, yes[i], len) == 0) return *out = 1, 0;
        if (strlen(no[i]) == len && memcmp(s, no[i], len) == 0) return *out = 0, 0;
    }
    return -1;
}

static bool labels_ok(const char *s)
{
    if (*s == '\0') return true; /* no owner labels at all */
    for (const char *p = s;; p++) {
        bool end = *p == ',' || *p == '\0';
        if (end && (p == s || p[-1] == ',')) return false; /* empty item */
        if (*p == '\0') return true;
        if (!end && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || strchr("._-/", *p)))
            return false;
    }
}

/* Checks a NUL-terminated string value for its type. Shared by set and by
 * cw_config_validate, so values set in code get the same checks. */
static int check_string(const struct cw_config_entry *e, const char *s, char *err, size_t errlen)
{
    char sh[80];
    enum cw_log_level lvl;
    if (e->type == T_ADDR && cw_config_parse_addr(s, NULL) != 0)
        return cw_config_fail(err, errlen,
                    "%s: %s is not HOST:PORT or [V6]:PORT with a literal IP and port 1-65535",
                    e->name, cw_config_shown(s, strlen(s), sh, sizeof sh));
    if (e->type == T_LEVEL && cw_log_parse_level(s, &lvl) != 0)
        return cw_config_fail(err, errlen, "%s: %s is not one of debug, info, warn, error", e->name,
                    cw_config_shown(s, strlen(s), sh, sizeof sh));
    if (e->type == T_LABELS && !labels_ok(s))
        return cw_config_fail(err, errlen,
                    "%s: %s is not a comma-separated list of label keys "
                    "(letters, digits, '.', '_', '-', '/')",
                    e->name, cw_config_shown(s, strlen(s), sh, sizeof sh));
    return 0;
}

static int check_range(const struct cw_config_entry *e, const char *key, bool neg, uint64_t v,
                       char *err, size_t errlen)
{
    char a[32], b[32], x[32];
    /* Clamp to the field's width too, so a table row whose bounds are too
     * wide for its field still never stores a wrapped value. */
    uint64_t hi = e->max, wide = e->size == sizeof(uint32_t) ? UINT32_MAX : UINT64_MAX;
    if (e->type == T_INT || e->type == T_BOOL) wide = INT32_MAX;
    if (hi > wide) hi = wide;
    if (neg || v < e->min || v > hi)
        return cw_config_fail(err, errlen, "%s: %s%s is out of range [%s, %s]", key, neg ? "-" : "",
                    fmt_num(e->type, v, x, sizeof x), fmt_num(e->type, e->min, a, sizeof a),
                    fmt_num(e->type, hi, b, sizeof b));
    return 0;
}

static void store_num(cw_config *c, const struct cw_config_entry *e, uint64_t v)
{
    char *p = (char *)c + e->off;
    if (e->type == T_INT || e->type == T_BOOL) {
        int i = (int)v; /* bounds keep it far below INT_MAX */
        memcpy(p, &i, sizeof i);
    } else if (e->size == sizeof(uint32_t)) {
        uint32_t u = (uint32_t)v;
        memcpy(p, &u, sizeof u);
    } else {
        memcpy(p, &v, sizeof v);
    }
}

static uint64_t load_num(const cw_config *c, const struct cw_config_entry *e, bool *neg)
{
    const char *p = (const char *)c + e->off;
    *neg = false;
    if (e->type == T_INT || e->type == T_BOOL) {
        int i;
        memcpy(&i, p, sizeof i);
        *neg = i < 0;
        return *neg ? (uint64_t)(-(int64_t)i) : (uint64_t)i;
    }
    if (e->size == sizeof(uint32_t)) {
        uint32_t u;
        memcpy(&u, p, sizeof u);
        return u;
    }
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Parses `v` (len bytes, not necessarily terminated) into e's field. `key`
 * names the setting in messages (the YAML key, or the flag). On error the
 * field is unchanged. */
static int set_value(cw_config *c, const struct cw_config_entry *e, const char *key, const char *v,
                     size_t len, char *err, size_t errlen)
{
    char sh[80];
    if (memchr(v, '\0', len)) return cw_config_fail(err, errlen, "%s: value contains a NUL byte", key);
    if (!is_numeric(e->type)) {
        char tmp[CW_PATH_MAX]; /* checked before the field is touched */
        if (len >= e->size || len >= sizeof tmp)
            return cw_config_fail(err, errlen, "%s: value is too long (%zu bytes, at most %zu)", key, len,
                        e->size - 1);
        memcpy(tmp, v, len);
        tmp[len] = '\0';
        struct cw_config_entry named = *e;
        named.name = key;
        if (check_string(&named, tmp, err, errlen) != 0) return -1;
        memset((char *)c + e->off, 0, e->size);
        memcpy((char *)c + e->off, tmp, len);
        return 0;
    }
    bool neg = false;
    uint64_t n;
    if (len == 0) return cw_config_fail(err, errlen, "%s: needs a value", key);
    if (e->type == T_BOOL) {
        if (parse_bool(v, len, &n) != 0)
            return cw_config_fail(err, errlen, "%s: %s is not true or false", key,
                        cw_config_shown(v, len, sh, sizeof sh));
    } else if (parse_num(v, len, e->type == T_SIZE, &neg, &n) != 0) {
        return cw_config_fail(err, errlen, "%s: %s is not a number%s", key,
                    cw_config_shown(v, len, sh, sizeof sh),
                    e->type == T_SIZE ? " (bytes, optionally with KiB/MiB/GiB/TiB)" : "");
    }
    if (check_range(e, key, neg, n, err, errlen) != 0) return -1;
    store_num(c, e, n);
    return 0;
}

int cw_config_set_entry(cw_config *c, const struct cw_config_entry *e, const char *v, size_t len,
                        char *err, size_t errlen)
{
    return set_value(c, e, e->name, v, len, err, errlen);
}

bool cw_config_entry_is_text(const struct cw_config_entry *e)
{
    return !is_numeric(e->type);
}

void cw_config_defaults(cw_config *c)
{
    /* Zero first so padding and string tails are deterministic: two configs
     * with the same settings compare equal with memcmp. */
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NENTRIES; i++) {
        const struct cw_config_entry *e = &table[i];
        char err[256];
        /* A default that does not parse is a bug in the table; the unit tests
         * load the defaults and would fail on it. */
        int rc = set_value(c, e, e->name ? e->name : e->flag, e->def, strlen(e->def), err,
                           sizeof err);
        (void)rc;
    }
}

int cw_config_set(cw_config *c, const char *key, const char *value, char *err, size_t errlen)
{
    char sh[80];
    const struct cw_config_entry *e = cw_config_find_entry(key);
    if (!e)
        return cw_config_fail(err, errlen, "unknown key '%s'",
                    cw_config_shown(key, strlen(key), sh, sizeof sh));
    return set_value(c, e, e->name, value, strlen(value), err, errlen);
}

int cw_config_parse_addr(const char *s, struct sockaddr_storage *out)
{
    char host[CW_ADDR_MAX];
    const char *port;
    bool v6 = s[0] == '[';
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof host) return -1;
    if (v6) {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        port = rb + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s) return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        if (strchr(host, ':')) return -1; /* IPv6 needs brackets */
        port = colon + 1;
    }
    bool neg;
    uint64_t p;
    if (parse_num(port, strlen(port), false, &neg, &p) != 0 || neg || p < 1 || p > 65535)
        return -1;
    if (!v6 && strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int rc = v6 ? uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)&ss)
                : uv_ip4_addr(host, (int)p, (struct sockaddr_in *)&ss);
    if (rc != 0) return -1;
    if (out) *out = ss;
    return 0;
}

int cw_config_ingest_threads(const cw_config *c)
{
    if (c->ingest_threads > 0) return c->ingest_threads;
    unsigned n = uv_available_parallelism();
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* ---- Validation ---------------------------------------------------------- */

static uint64_t num_of(const cw_config *c, const char *name)
{
    bool neg;
    return load_num(c, cw_config_find_entry(name), &neg);
}

/* The directory a file would be created in. */
static void dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, outlen, ".");
    else if (slash == path) snprintf(out, outlen, "/");
    else snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

static int check_paths(const cw_config *c, char *err, size_t errlen)
{
    struct stat st;
    if (c->data_dir[0] == '\0') return cw_config_fail(err, errlen, "data_dir: must not be empty");
    if (stat(c->data_dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return cw_config_fail(err, errlen, "data_dir: %s is not a directory", c->data_dir);
    if (c->rules_dir[0] != '\0') {
        if (stat(c->rules_dir, &st) != 0)
            return cw_config_fail(err, errlen, "rules: %s: %s", c->rules_dir, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return cw_config_fail(err, errlen, "rules: %s is not a directory", c->rules_dir);
    }
    const struct {
        const char *key, *path;
    } outs[] = {{"events_out", c->events_out},
                {"alerts_out", c->alerts_out},
                {"incidents_out", c->incidents_out}};
    for (size_t i = 0; i < 3; i++) {
        char dir[CW_PATH_MAX];
        if (outs[i].path[0] == '\0') continue;
        if (stat(outs[i].path, &st) == 0 && S_ISDIR(st.st_mode))
            return cw_config_fail(err, errlen, "%s: %s is a directory", outs[i].key, outs[i].path);
        dir_of(outs[i].path, dir, sizeof dir);
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return cw_config_fail(err, errlen, "%s: directory %s does not exist", outs[i].key, dir);
    }
    return 0;
}

int cw_config_validate(const cw_config *c, char *err, size_t errlen)
{
    /* Per key first, so a config built in code gets the checks a file gets. */
    for (size_t i = 0; i < NENTRIES; i++) {
        const struct cw_config_entry *e = &table[i];
        const char *key = e->name ? e->name : e->flag;
        const char *s = (const char *)c + e->off;
        bool neg;
        if (is_numeric(e->type)) {
            uint64_t v = load_num(c, e, &neg);
            if (check_range(e, key, neg, v, err, errlen) != 0) return -1;
        } else if (!memchr(s, '\0', e->size)) {
            return cw_config_fail(err, errlen, "%s: not NUL-terminated", key);
        } else if (check_string(e, s, err, errlen) != 0) {
            return -1;
        }
    }
    static const struct {
        const char *small, *big;
        bool strict;
    } order[] = {
        {"ingest.max_hello_frame_bytes", "ingest.max_frame_bytes", false},
        {"ingest.max_frame_bytes", "ingest.decode_arena_bytes", false},
        {"ingest.handshake_timeout_ms", "ingest.idle_timeout_ms", true},
        {"ingest.conn_inflight_bytes", "ingest.total_inflight_bytes", false},
        {"spool.segment_bytes", "spool.max_bytes", false},
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        uint64_t a = num_of(c, order[i].small), b = num_of(c, order[i].big);
        if (a > b || (order[i].strict && a == b))
            return cw_config_fail(err, errlen, "%s (%llu) must be %s %s (%llu)", order[i].small,
                        (unsigned long long)a, order[i].strict ? "less than" : "at most",
                        order[i].big, (unsigned long long)b);
    }
    return check_paths(c, err, errlen);
}

/* ---- Command line -------------------------------------------------------- */

enum flag_kind { FL_ENTRY, FL_SET, FL_HELP, FL_EXAMPLE };

struct flag {
    enum flag_kind kind;
    const struct cw_config_entry *e; /* FL_ENTRY */
    const char *value;     /* FL_ENTRY, FL_SET */
    char name[KEY_MAX];    /* "--agent-listen", for messages */
};

/* Reads the flag at argv[*i] (and its value, which may be the next argument)
 * and advances *i past it. */
static int next_flag(int argc, char **argv, int *i, struct flag *f, char *err, size_t errlen)
{
    char sh[80];
    const char *a = argv[(*i)++];
    memset(f, 0, sizeof *f);
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return f->kind = FL_HELP, 0;
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
        return cw_config_fail(err, errlen, "unexpected argument '%s' (see --help)",
                    cw_config_shown(a, strlen(a), sh, sizeof sh));
    const char *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    snprintf(f->name, sizeof f->name, "%.*s", (int)n, a);
    bool takes_value = true;
    if (strcmp(f->name, "--set") == 0) {
        f->kind = FL_SET;
    } else if (strcmp(f->name, "--print-example-config") == 0) {
        f->kind = FL_EXAMPLE;
        takes_value = false;
    } else {
        for (size_t k = 0; k < NENTRIES && !f->e; k++)
            if (table[k].flag && strlen(table[k].flag) == n - 2 &&
                memcmp(table[k].flag, a + 2, n - 2) == 0)
                f->e = &table[k];
        if (!f->e)
            return cw_config_fail(err, errlen, "unknown flag '%s' (see --help)",
                        cw_config_shown(a, n, sh, sizeof sh));
        f->kind = FL_ENTRY;
        takes_value = f->e->metavar != NULL;
    }
    if (eq) {
        if (!takes_value && f->kind != FL_ENTRY)
            return cw_config_fail(err, errlen, "%s takes no value", f->name);
        f->value = eq + 1;
    } else if (!takes_value) {
        f->value = "true"; /* a switch: --check-config */
    } else if (*i < argc) {
        f->value = argv[(*i)++];
    } else {
        return cw_config_fail(err, errlen, "%s needs a value", f->name);
    }
    return 0;
}

static int apply_flag(cw_config *c, const struct flag *f, char *err, size_t errlen)
{
    char msg[512], sh[80];
    if (f->kind == FL_SET) {
        const char *eq = strchr(f->value, '=');
        if (!eq) return cw_config_fail(err, errlen, "--set: expected KEY=VALUE, got '%s'",
                             cw_config_shown(f->value, strlen(f->value), sh, sizeof sh));
        char key[KEY_MAX];
        size_t klen = (size_t)(eq - f->value);
        const struct cw_config_entry *e = NULL;
        if (klen < sizeof key) {
            memcpy(key, f->value, klen);
            key[klen] = '\0';
            e = cw_config_find_entry(key);
        }
        if (!e)
            return cw_config_fail(err, errlen, "--set: unknown key '%s' (see --help)",
                        cw_config_shown(f->value, klen, sh, sizeof sh));
        if (set_value(c, e, e->name, eq + 1, strlen(eq + 1), msg, sizeof msg) != 0)
            return cw_config_fail(err, errlen, "--set: %s", msg);
        return 0;
    }
    if (set_value(c, f->e, f->name, f->value, strlen(f->value), msg, sizeof msg) != 0)
        return cw_config_fail(err, errlen, "%s", msg);
    return 0;
}

int cw_config_load(cw_config *c, int argc, char **argv, char *err, size_t errlen)
{
    struct flag f;
    cw_config_defaults(c);
    /* Pass 1: only --config, --help and --print-example-config act, so the
     * file can be read before any flag is applied on top of it. */
    bool help = false, example = false;
    for (int i = 1; i < argc;) {
        if (next_flag(argc, argv, &i, &f, err, errlen) != 0) return -1;
        help |= f.kind == FL_HELP;
        example |= f.kind == FL_EXAMPLE;
        if (f.kind == FL_ENTRY && f.e->off == offsetof(cw_config, config_file) &&
            apply_flag(c, &f, err, errlen) != 0)
            return -1;
    }
    if (help) {
        cw_config_usage(stdout);
        return 1;
    }
    if (example) {
        cw_config_write_example(stdout);
        return 1;
    }
    if (c->config_file[0] && cw_config_load_file(c, c->config_file, err, errlen) != 0) return -1;
    /* Pass 2: every other flag, in order, over the file's values. */
    for (int i = 1; i < argc;) {
        if (next_flag(argc, argv, &i, &f, err, errlen) != 0) return -1;
        if ((f.kind == FL_ENTRY || f.kind == FL_SET) && apply_flag(c, &f, err, errlen) != 0)
            return -1;
    }
    return cw_config_validate(c, err, errlen);
}

/* ---- Generated text ------------------------------------------------------ */

static const char *type_hint(const struct cw_config_entry *e, char *out, size_t outlen)
{
    char a[32], b[32];
    switch (e->type) {
    case T_ADDR: return "HOST:PORT";
    case T_LEVEL: return "debug|info|warn|error";
    case T_LABELS: return "label keys, comma-separated";
    case T_BOOL: return "true|false";
    case T_STR: return "path";
    default: break;
    }
    snprintf(out, outlen, "%s, %s..%s", e->type == T_SIZE ? "bytes" : "integer",
             fmt_num(e->type, e->min, a, sizeof a), fmt_num(e->type, e->max, b, sizeof b));
    return out;
}

void cw_config_usage(FILE *out)
{
    char lhs[96], hint[96];
    fprintf(out, "Usage: chainwatchd [OPTION]...\n"
                 "Ingests agent events and Kubernetes audit logs; see deploy/"
                 "chainwatch.example.yaml.\n\nOptions (they override the config file):\n");
    for (size_t i = 0; i < NENTRIES; i++) {
        const struct cw_config_entry *e = &table[i];
        if (!e->flag) continue;
        snprintf(lhs, sizeof lhs, "--%s%s%s", e->flag, e->metavar ? " " : "",
                 e->metavar ? e->metavar : "");
        fprintf(out, "  %-28s %s\n", lhs, e->doc);
        if (e->name) fprintf(out, "  %-28s (key %s, default \"%s\")\n", "", e->name, e->def);
    }
    fprintf(out, "  %-28s %s\n", "--set KEY=VALUE", "Set any config key below; may be repeated.");
    fprintf(out, "  %-28s %s\n", "--print-example-config",
            "Write a commented YAML config with every default to stdout, then exit.");
    fprintf(out, "  %-28s %s\n", "-h, --help", "Show this help, then exit.");
    fprintf(out, "Flags also take --flag=VALUE. Later flags win over earlier ones.\n\n"
                 "Config keys (YAML nested maps: ingest.threads is ingest: {threads: N}):\n");
    for (size_t i = 0; i < NENTRIES; i++) {
        const struct cw_config_entry *e = &table[i];
        if (!e->name) continue;
        fprintf(out, "  %-30s default %-14s (%s)\n      %s\n", e->name,
                *e->def ? e->def : "\"\"", type_hint(e, hint, sizeof hint), e->doc);
    }
}

/* Writes a YAML double-quoted scalar. */
static void put_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

void cw_config_write_example(FILE *out)
{
    char hint[96];
    const char *section = "";
    size_t seclen = 0;
    fprintf(out, "# chainwatchd configuration: every key, at its default.\n"
                 "# Written by `chainwatchd --print-example-config`; a unit test keeps\n"
                 "# deploy/chainwatch.example.yaml equal to it.\n"
                 "# Sizes are bytes, optionally with a KiB/MiB/GiB/TiB suffix; durations are\n"
                 "# milliseconds. Command-line flags and --set KEY=VALUE override this file.\n");
    for (size_t i = 0; i < NENTRIES; i++) {
        const struct cw_config_entry *e = &table[i];
        if (!e->name) continue;
        const char *dot = strrchr(e->name, '.');
        size_t n = dot ? (size_t)(dot - e->name) : 0;
        const char *indent = n ? "  " : "";
        bool opens = n != seclen || strncmp(section, e->name, n) != 0;
        if (opens) {
            section = e->name, seclen = n;
            if (n) fprintf(out, "\n%.*s:\n", (int)n, e->name);
        }
        fprintf(out, "%s%s# %s\n%s# (%s)\n%s%s: ", opens && n ? "" : "\n", indent, e->doc,
                indent, type_hint(e, hint, sizeof hint), indent, dot ? dot + 1 : e->name);
        if (is_numeric(e->type)) fputs(e->def, out);
        else put_quoted(out, e->def);
        fputc('\n', out);
    }
}
