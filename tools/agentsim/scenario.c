#include "scenario.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "eventjson.h"

/* About 31 years either way: event times stay within int64 nanoseconds and
 * after 1970 for any replay start after 2000. */
#define MAX_SKEW 1e9
/* Far above any real scenario, low enough that t * 1e9 fits in an int64. */
#define MAX_T 1e9
#define MAX_ITEMS (10u * 1000 * 1000)

typedef struct parser {
    const char *name;
    int line;
    char *err;
    size_t errlen;
    sim_scenario *s;
    double last_t;
    double skew; /* clock_skew of the line being parsed */
    int seen_expect;
    size_t items_alloc;
} parser;

static int fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, p->line);
    if (n < 0 || (size_t)n >= p->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int sim_scenario_host(const sim_scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_hosts; i++)
        if (strcmp(s->hosts[i].name, name) == 0) return (int)i;
    return -1;
}

static sim_item *new_item(parser *p)
{
    sim_scenario *s = p->s;
    if (s->n_items == p->items_alloc) {
        if (s->n_items >= MAX_ITEMS) {
            fail(p, "more than %u lines", MAX_ITEMS);
            return NULL;
        }
        size_t n = p->items_alloc ? p->items_alloc * 2 : 64;
        sim_item *items = realloc(s->items, n * sizeof *items);
        if (!items) {
            fail(p, "out of memory");
            return NULL;
        }
        s->items = items;
        p->items_alloc = n;
    }
    sim_item *it = &s->items[s->n_items++];
    memset(it, 0, sizeof *it);
    it->line = p->line;
    it->t = p->last_t;
    it->clock_skew = p->skew;
    return it;
}

/* A string field, copied; NULL when absent (an error if required). */
static int get_str(parser *p, json_t *o, const char *key, int required, char **out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = NULL;
        return required ? fail(p, "missing field \"%s\"", key) : 0;
    }
    if (!json_is_string(v)) return fail(p, "field \"%s\" must be a string", key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return fail(p, "field \"%s\" contains a NUL character", key);
    *out = strdup(json_string_value(v));
    return *out ? 0 : fail(p, "out of memory");
}

static void free_host(sim_host *h)
{
    free(h->name);
    free(h->cloud);
    free(h->region);
    free(h->cluster);
    free(h->ip);
    free(h->os);
    free(h->kernel);
    free(h->agent_version);
}

static int parse_agent(parser *p, json_t *o, const char *host)
{
    sim_scenario *s = p->s;
    if (sim_scenario_host(s, host) >= 0) return fail(p, "second agent line for host \"%s\"", host);
    sim_host h = {0};
    if (get_str(p, o, "host", 1, &h.name) || get_str(p, o, "cloud", 1, &h.cloud) ||
        get_str(p, o, "region", 1, &h.region) || get_str(p, o, "cluster", 1, &h.cluster) ||
        get_str(p, o, "ip", 1, &h.ip) || get_str(p, o, "os", 0, &h.os) ||
        get_str(p, o, "kernel", 0, &h.kernel) ||
        get_str(p, o, "agent_version", 0, &h.agent_version)) {
        free_host(&h);
        return -1;
    }
    /* Few hosts per scenario: grow one at a time. */
    sim_host *hosts = realloc(s->hosts, (s->n_hosts + 1) * sizeof *hosts);
    if (!hosts) {
        free_host(&h);
        return fail(p, "out of memory");
    }
    s->hosts = hosts;
    s->hosts[s->n_hosts] = h;
    sim_item *it = new_item(p);
    if (!it) return -1; /* the host stays registered and is freed with the scenario */
    it->kind = SIM_ITEM_AGENT;
    it->host = s->n_hosts++;
    return 0;
}

static int parse_audit(parser *p, json_t *o)
{
    char *cluster;
    if (get_str(p, o, "cluster", 1, &cluster)) return -1;
    if (!cluster[0]) {
        free(cluster);
        return fail(p, "field \"cluster\" must not be empty");
    }
    json_t *ev = json_object_get(o, "event");
    if (!json_is_object(ev)) {
        free(cluster);
        return fail(p, "field \"event\" must be an audit Event object");
    }
    sim_item *it = new_item(p);
    if (!it) {
        free(cluster);
        return -1;
    }
    it->kind = SIM_ITEM_AUDIT;
    it->cluster = cluster;
    it->audit = json_incref(ev);
    p->s->n_audit++;
    return 0;
}

static int parse_event(parser *p, json_t *o, int payload_case, const char *host)
{
    sim_scenario *s = p->s;
    int h = sim_scenario_host(s, host);
    if (h < 0) return fail(p, "host \"%s\" has no agent line before this one", host);
    char why[256];
    Chainwatch__V1__Event *ev = sim_eventjson_parse(o, payload_case, why, sizeof why);
    if (!ev) return fail(p, "%s: %s", sim_eventjson_name(payload_case), why);
    sim_item *it = new_item(p);
    if (!it) {
        sim_event_free(ev);
        return -1;
    }
    it->kind = SIM_ITEM_EVENT;
    it->host = (size_t)h;
    it->event = ev;
    s->n_events++;
    s->n_by_type[payload_case - SIM_EV_FIRST]++;
    return 0;
}

/* Any line but an expect line: checks t, then dispatches on the type. */
static int parse_timed(parser *p, json_t *o, const char *type)
{
    json_t *t = json_object_get(o, "t");
    double tv = json_number_value(t);
    if (!json_is_number(t) || !isfinite(tv) || tv < 0 || tv > MAX_T)
        return fail(p, "field \"t\" must be a number of seconds between 0 and %g", MAX_T);
    if (tv < p->last_t) return fail(p, "t goes backwards (%g after %g)", tv, p->last_t);
    p->last_t = tv;
    json_t *skew = json_object_get(o, "clock_skew");
    double sv = json_number_value(skew);
    if (skew && (!json_is_number(skew) || !isfinite(sv) || fabs(sv) > MAX_SKEW))
        return fail(p, "field \"clock_skew\" must be a number of seconds within +-%g", MAX_SKEW);
    p->skew = sv;
    if (strcmp(type, "k8s_audit") == 0) return parse_audit(p, o);
    int payload_case = sim_eventjson_case(type);
    int is_agent = strcmp(type, "agent") == 0;
    if (!is_agent && !payload_case) return fail(p, "unknown type \"%s\"", type);
    const char *host = json_string_value(json_object_get(o, "host"));
    if (!host) return fail(p, "missing field \"host\" (a string)");
    return is_agent ? parse_agent(p, o, host) : parse_event(p, o, payload_case, host);
}

static int parse_line(parser *p, const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)line[i])) i++;
    if (i == len || line[i] == '#') return 0; /* blank line or comment */

    json_error_t jerr;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) return fail(p, "invalid JSON at column %d: %s", jerr.column, jerr.text);
    int rc = -1;
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!json_is_object(o)) {
        fail(p, "a line must be a JSON object");
    } else if (!type) {
        fail(p, "missing field \"type\" (a string)");
    } else if (strcmp(type, "expect") == 0) {
        /* For the checker; the simulator only counts them. */
        p->s->n_expect++;
        p->seen_expect = 1;
        rc = 0;
    } else if (p->seen_expect) {
        fail(p, "only expect lines may follow an expect line");
    } else {
        rc = parse_timed(p, o, type);
    }
    json_decref(o);
    return rc;
}

int sim_scenario_load_file(FILE *f, const char *name, sim_scenario *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof *out);
    parser p = {.name = name, .err = err, .errlen = errlen, .s = out};
    out->path = strdup(name);
    if (!out->path) return fail(&p, "out of memory");
    /* Lines are read byte by byte into a capped buffer, so neither a huge
     * line nor an embedded NUL can slip past the checks. */
    cw_buf line;
    cw_buf_init(&line, SIM_SCENARIO_MAX_LINE);
    int rc = 0, c;
    p.line = 1;
    do {
        c = getc(f);
        if (c != '\n' && c != EOF) {
            unsigned char ch = (unsigned char)c;
            if (cw_buf_append(&line, &ch, 1) < 0) {
                rc = fail(&p, "line longer than %u bytes", SIM_SCENARIO_MAX_LINE);
                break;
            }
            continue;
        }
        if (c == EOF && ferror(f)) {
            rc = fail(&p, "read error: %s", strerror(errno));
            break;
        }
        if (line.len && memchr(line.data, 0, line.len)) {
            rc = fail(&p, "NUL byte in line");
            break;
        }
        if ((rc = parse_line(&p, (const char *)line.data, line.len)) < 0) break;
        cw_buf_reset(&line);
        p.line++;
    } while (c != EOF);
    cw_buf_free(&line);
    if (rc < 0) sim_scenario_free(out);
    return rc;
}

int sim_scenario_load(const char *path, sim_scenario *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        memset(out, 0, sizeof *out);
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = sim_scenario_load_file(f, path, out, err, errlen);
    fclose(f);
    return rc;
}

void sim_scenario_free(sim_scenario *s)
{
    for (size_t i = 0; i < s->n_items; i++) {
        sim_event_free(s->items[i].event);
        free(s->items[i].cluster);
        json_decref(s->items[i].audit);
    }
    for (size_t i = 0; i < s->n_hosts; i++) free_host(&s->hosts[i]);
    free(s->items);
    free(s->hosts);
    free(s->path);
    memset(s, 0, sizeof *s);
}
