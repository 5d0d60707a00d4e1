#include "correlator/summary.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct out {
    char *p;
    size_t len;
} out;

static void put(out *o, const char *s, size_t n)
{
    size_t room = CW_SUMMARY_MAX - 1 - o->len;
    if (n > room) n = room;
    /* One line: control characters become spaces. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        o->p[o->len++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    o->p[o->len] = 0;
}

static void puts_(out *o, const char *s)
{
    if (s) put(o, s, strlen(s));
}

/* Appends the first value of field `name`; returns 1 if it had one. */
static int field(out *o, const cw_event *ev, cw_fvals *fv, const char *name, size_t max)
{
    cw_fref f;
    if (cw_field_lookup(name, ev->type, &f) < 0) return 0;
    cw_field_get(&f, ev, fv);
    if (!fv->present || !fv->n) return 0;
    put(o, fv->v[0].s, fv->v[0].len < max ? fv->v[0].len : max);
    return 1;
}

static void key_fields(out *o, const cw_event *ev, cw_fvals *fv)
{
    switch (ev->type) {
    case CW_EV_PROCESS_EXEC:
        field(o, ev, fv, "exe", 200);
        puts_(o, " `");
        field(o, ev, fv, "cmdline", 200);
        puts_(o, "`");
        break;
    case CW_EV_NET_CONNECT:
        field(o, ev, fv, "exe", 200);
        puts_(o, " -> ");
        field(o, ev, fv, "dst_ip", 64);
        puts_(o, ":");
        field(o, ev, fv, "dst_port", 8);
        break;
    case CW_EV_NET_LISTEN:
        field(o, ev, fv, "exe", 200);
        puts_(o, " listens on ");
        field(o, ev, fv, "ip", 64);
        puts_(o, ":");
        field(o, ev, fv, "port", 8);
        break;
    case CW_EV_DNS_QUERY:
        field(o, ev, fv, "exe", 200);
        puts_(o, " resolves ");
        field(o, ev, fv, "query", 200);
        break;
    case CW_EV_FILE_OP:
        field(o, ev, fv, "exe", 200);
        puts_(o, " ");
        field(o, ev, fv, "op", 16);
        puts_(o, " ");
        field(o, ev, fv, "path", 200);
        break;
    case CW_EV_LOGIN:
        field(o, ev, fv, "user", 64);
        puts_(o, "@");
        field(o, ev, fv, "src_ip", 64);
        puts_(o, " via ");
        field(o, ev, fv, "service", 32);
        break;
    case CW_EV_CONTAINER_START:
        field(o, ev, fv, "image", 200);
        puts_(o, " (");
        field(o, ev, fv, "name", 100);
        puts_(o, ")");
        break;
    case CW_EV_K8S_AUDIT:
        field(o, ev, fv, "verb", 32);
        puts_(o, " ");
        field(o, ev, fv, "resource", 64);
        if (ev->k8s.subresource) {
            puts_(o, "/");
            field(o, ev, fv, "subresource", 32);
        }
        puts_(o, " ");
        if (field(o, ev, fv, "namespace", 64)) puts_(o, "/");
        field(o, ev, fv, "name", 128);
        puts_(o, " by ");
        field(o, ev, fv, "user", 128);
        break;
    default:
        field(o, ev, fv, "container_id", 64);
        break;
    }
    /* Where: the cluster for API events, else the pod or the host. */
    const char *where = ev->type == CW_EV_K8S_AUDIT ? ev->cluster : *ev->pod ? ev->pod : ev->host;
    if (where && *where) {
        puts_(o, " on ");
        put(o, where, strnlen(where, 128));
    }
}

void cw_summary(char *buf, const char *title, const char *tmpl, const cw_event *ev,
                cw_fvals *fv, int64_t count, const char *timespan, const char *detail)
{
    out o = {buf, 0};
    buf[0] = 0;
    if (tmpl) {
        for (const char *p = tmpl; *p && o.len < CW_SUMMARY_MAX - 1;) {
            const char *close = *p == '{' ? strchr(p, '}') : NULL;
            if (!close || close - p > 64) {
                put(&o, p++, 1);
                continue;
            }
            char name[72];
            memcpy(name, p + 1, (size_t)(close - p - 1));
            name[close - p - 1] = 0;
            char num[24];
            if (!strcmp(name, "count") && count >= 0) {
                snprintf(num, sizeof num, "%" PRId64, count);
                puts_(&o, num);
            } else if (!strcmp(name, "timespan") && timespan) {
                puts_(&o, timespan);
            } else if (!strcmp(name, "title")) {
                puts_(&o, title);
            } else if (!field(&o, ev, fv, name, 256)) {
                puts_(&o, "?");
            }
            p = close + 1;
        }
        return;
    }
    puts_(&o, title);
    puts_(&o, ": ");
    if (detail) puts_(&o, detail);
    else key_fields(&o, ev, fv);
}
