/* audit: parsing of Kubernetes audit webhook payloads, and event keys.
 * The contract is in audit.h. */
#include "server/audit.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "server/json_repair.h"

int cw_audit_cluster_valid(const char *s, size_t len)
{
    if (len == 0 || len > CW_AUDIT_CLUSTER_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return 0;
    }
    return 1;
}

/* ---- parse memory estimate ---------------------------------------------
 * jansson (2.14) has no allocation limit, and failing its allocations from a
 * hook is not safe: it crashes on some out-of-memory paths inside nested
 * arrays (found by fuzzing). So the tree's cost is estimated from the tokens
 * before parsing. Costs are glibc chunk sizes of jansson's nodes: an object
 * with its first hash table, an array with its first table, a string node
 * with its copy, a number node, a pair, an array slot; the 4 x len term
 * covers string copies and the lexer's token buffer, which doubles as it
 * grows (old and new buffer live at once). Measured against jansson on
 * hostile shapes, the corpus and fuzzing inputs, the real peak stays below
 * 0.9 x the estimate; the fuzz target checks that it never passes it.
 */
size_t cw_audit_tree_cost(const char *s, size_t len)
{
    size_t cost = 4 * len + 1024;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
            cost += 80;
        } else if (c == '{') {
            cost += 256;
        } else if (c == '[') {
            cost += 128;
        } else if (c == ':' || c == ',') {
            cost += 24;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            cost += 40; /* one node per number token, however long */
            while (i + 1 < len && s[i + 1] != '\0' && strchr("0123456789+-.eE", s[i + 1]))
                i++;
        }
    }
    return cost;
}

static int over_budget(const char *body, size_t len)
{
    return cw_audit_tree_cost(body, len) >
           (uint64_t)len * CW_AUDIT_PARSE_MEM_FACTOR + CW_AUDIT_PARSE_MEM_BASE;
}

/* ---- parsing ------------------------------------------------------------ */

/* Error text may quote hostile input: keep it printable ASCII so it is safe
 * in a log line and in a JSON response. */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
}

static json_t *load(const char *body, size_t len, json_error_t *e)
{
    return json_loadb(body, len, JSON_ALLOW_NUL, e);
}

static int get_id(json_t *item, const char *name, size_t max, const char **s, size_t *n)
{
    json_t *v = json_object_get(item, name);
    if (!json_is_string(v))
        return -1;
    *s = json_string_value(v);
    *n = json_string_length(v);
    if (*n == 0 || *n > max || strlen(*s) != *n)
        return -1;
    return 0;
}

/* Temporary offsets of one event's strings in the batch buffer: the buffer
 * may move while it grows, so pointers are set only at the end. */
typedef struct ev_off {
    size_t json, json_len, id, id_len, stage, stage_len;
} ev_off;

static int add_event(cw_buf *data, ev_off *off, json_t *item, const char *id, size_t id_len,
                     const char *stage, size_t stage_len)
{
    const size_t flags = JSON_COMPACT;
    if (cw_buf_reserve(data, 256) != 0) /* also: never offset a NULL buffer */
        return -1;
    size_t avail = data->alloc - data->len;
    size_t n = json_dumpb(item, (char *)data->data + data->len, avail, flags);
    if (n == 0)
        return -1;
    if (n + 1 > avail) {
        if (cw_buf_reserve(data, n + 1) != 0)
            return -1;
        if (json_dumpb(item, (char *)data->data + data->len, n, flags) != n)
            return -1;
    }
    off->json = data->len;
    off->json_len = n;
    data->len += n;
    if (cw_buf_append(data, "", 1) != 0)
        return -1;
    off->id = data->len;
    off->id_len = id_len;
    if (cw_buf_append(data, id, id_len + 1) != 0)
        return -1;
    off->stage = data->len;
    off->stage_len = stage_len;
    if (cw_buf_append(data, stage, stage_len + 1) != 0)
        return -1;
    return 0;
}

static int is_list(json_t *root)
{
    json_t *kind = json_object_get(root, "kind");
    if (json_is_string(kind))
        return strcmp(json_string_value(kind), "EventList") == 0;
    return json_object_get(root, "items") != NULL;
}

static int build(json_t *root, cw_audit_batch *out, char *err, size_t errlen)
{
    json_t *items = NULL;
    size_t n_items = 1;
    if (!json_is_object(root)) {
        set_err(err, errlen, "body is not a JSON object (an audit Event or EventList)");
        return CW_AUDIT_EMALFORMED;
    }
    if (is_list(root)) {
        items = json_object_get(root, "items");
        if (items && !json_is_null(items) && !json_is_array(items)) {
            set_err(err, errlen, "\"items\" is not an array");
            return CW_AUDIT_EMALFORMED;
        }
        n_items = json_is_array(items) ? json_array_size(items) : 0;
    }
    for (size_t i = 0; items && i < n_items; i++) {
        if (!json_is_object(json_array_get(items, i))) {
            set_err(err, errlen, "items[%zu] is not an object", i);
            return CW_AUDIT_EMALFORMED;
        }
    }

    cw_buf data;
    cw_buf_init(&data, 0);
    ev_off *offs = calloc(n_items ? n_items : 1, sizeof(*offs));
    if (!offs)
        goto oom;
    size_t n = 0;
    for (size_t i = 0; i < n_items; i++) {
        json_t *item = items ? json_array_get(items, i) : root;
        const char *id, *stage;
        size_t id_len, stage_len;
        if (get_id(item, "auditID", CW_AUDIT_ID_MAX, &id, &id_len) != 0 ||
            get_id(item, "stage", CW_AUDIT_STAGE_MAX, &stage, &stage_len) != 0) {
            out->n_invalid++;
            continue;
        }
        if (add_event(&data, &offs[n], item, id, id_len, stage, stage_len) != 0)
            goto oom;
        n++;
    }
    out->events = calloc(n ? n : 1, sizeof(*out->events));
    if (!out->events)
        goto oom;
    char *base = (char *)data.data;
    for (size_t i = 0; i < n; i++) {
        cw_audit_event *ev = &out->events[i];
        ev->json = base + offs[i].json;
        ev->json_len = offs[i].json_len;
        ev->audit_id = base + offs[i].id;
        ev->audit_id_len = offs[i].id_len;
        ev->stage = base + offs[i].stage;
        ev->stage_len = offs[i].stage_len;
    }
    free(offs);
    out->n_events = n;
    out->data = base;
    out->mem_bytes = data.alloc + (n ? n : 1) * sizeof(*out->events);
    return 0;
oom:
    free(offs);
    cw_buf_free(&data);
    out->n_invalid = 0;
    set_err(err, errlen, "out of memory while storing events");
    return CW_AUDIT_ENOMEM;
}

static int too_big(char *err, size_t errlen)
{
    set_err(err, errlen, "JSON tree would take over %d x the body size in memory",
            CW_AUDIT_PARSE_MEM_FACTOR);
    return CW_AUDIT_ETOOBIG;
}

int cw_audit_parse(const char *body, size_t len, cw_audit_batch *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (over_budget(body, len))
        return too_big(err, errlen);
    json_error_t e, e2;
    json_t *root = load(body, len, &e);
    if (!root) {
        enum json_error_code code = json_error_code(&e);
        if (code == json_error_invalid_utf8 || code == json_error_invalid_syntax ||
            code == json_error_numeric_overflow) {
            size_t fixed_len = 0;
            char *fixed = cw_json_repair(body, len, &fixed_len);
            if (fixed && over_budget(fixed, fixed_len)) {
                free(fixed);
                return too_big(err, errlen);
            }
            if (fixed) {
                root = load(fixed, fixed_len, &e2);
                free(fixed);
                out->repaired = root != NULL;
            }
        }
        if (!root) {
            /* Report the first error: its position refers to the bytes sent. */
            set_err(err, errlen, "invalid JSON at %d:%d: %s", e.line, e.column, e.text);
            return code == json_error_out_of_memory ? CW_AUDIT_ENOMEM : CW_AUDIT_EMALFORMED;
        }
    }
    int repaired = out->repaired;
    int rc = build(root, out, err, errlen);
    json_decref(root);
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->repaired = repaired;
    return 0;
}

void cw_audit_batch_free(cw_audit_batch *b)
{
    free(b->events);
    free(b->data);
    memset(b, 0, sizeof(*b));
}


void cw_audit_event_key(const char *cluster, size_t cluster_len, const cw_audit_event *ev,
                        uint8_t key[CW_DEDUPE_KEY_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    /* The NULs separate the fields, none of which can contain one. */
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, cluster, cluster_len) != 1 || EVP_DigestUpdate(ctx, "", 1) != 1 ||
        EVP_DigestUpdate(ctx, ev->audit_id, ev->audit_id_len + 1) != 1 ||
        EVP_DigestUpdate(ctx, ev->stage, ev->stage_len + 1) != 1 ||
        EVP_DigestUpdate(ctx, ev->json, ev->json_len) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen < CW_DEDUPE_KEY_LEN) {
        /* Only when out of memory: a zero key makes such events collide with
         * each other, so some may be dropped as duplicates; log it. */
        cw_error("audit", "SHA-256 failed; de-duplication keys are degraded");
        memset(md, 0, CW_DEDUPE_KEY_LEN);
    }
    EVP_MD_CTX_free(ctx);
    memcpy(key, md, CW_DEDUPE_KEY_LEN);
}
