/* libFuzzer: arbitrary bytes as an audit webhook body through cw_audit_parse
 * (with the JSON repair pass and the parse budget), checking what the intake
 * relies on for every event it returns, and that cw_audit_tree_cost() really
 * bounds what jansson allocates. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/json_repair.h"

/* Counts jansson's heap as glibc would size the chunks (ASan's own sizes are
 * smaller), through jansson's allocation hooks. A header keeps each size. */
static size_t used, peak;

static size_t chunk(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

static void *count_malloc(size_t n)
{
    size_t *p = malloc(n + sizeof(size_t) * 2);
    if (!p)
        return NULL;
    p[0] = chunk(n);
    used += p[0];
    if (used > peak)
        peak = used;
    return p + 2;
}

static void count_free(void *q)
{
    if (!q)
        return;
    size_t *p = (size_t *)q - 2;
    used -= p[0];
    free(p);
}

static void check_cost(const char *s, size_t n)
{
    used = peak = 0;
    json_t *j = json_loadb(s, n, JSON_ALLOW_NUL, NULL);
    json_decref(j);
    if (peak > cw_audit_tree_cost(s, n))
        abort(); /* the estimate must be an upper bound */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        json_set_alloc_funcs(count_malloc, count_free);
        init = 1;
    }
    const char *body = (const char *)data;
    check_cost(body, size);

    cw_audit_batch b;
    char err[256];
    int rc = cw_audit_parse(body, size, &b, err, sizeof(err));
    if (rc == 0) {
        for (size_t i = 0; i < b.n_events; i++) {
            const cw_audit_event *ev = &b.events[i];
            /* The stored record must be one JSON object a reader can parse. */
            json_t *j = json_loadb(ev->json, ev->json_len, JSON_ALLOW_NUL, NULL);
            if (!json_is_object(j) || ev->json[ev->json_len] != '\0')
                abort();
            json_decref(j);
            if (ev->audit_id_len == 0 || ev->audit_id_len > CW_AUDIT_ID_MAX ||
                strlen(ev->audit_id) != ev->audit_id_len || ev->stage_len == 0 ||
                ev->stage_len > CW_AUDIT_STAGE_MAX || strlen(ev->stage) != ev->stage_len)
                abort();
        }
    } else {
        if (b.events || b.n_events || rc >= 0)
            abort();
        for (const char *p = err; *p; p++) /* safe to log and to echo in JSON */
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                abort();
    }
    cw_audit_batch_free(&b);
    size_t n = 0;
    char *fixed = cw_json_repair(body, size, &n);
    if (fixed) {
        if (n > 3 * size)
            abort();
        check_cost(fixed, n);
    }
    free(fixed);
    return 0;
}
