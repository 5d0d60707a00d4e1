/* audit: parsing and de-duplication of Kubernetes audit webhook payloads.
 * The contract is in audit.h. */
#include "server/audit.h"

#include <jansson.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <pthread.h>
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

/* ---- parse memory budget ----------------------------------------------
 * jansson has no per-call allocator, only process-wide hooks. The hooks are
 * plain malloc/free, so memory allocated by one is freed correctly by the
 * other; they only count while this thread is inside cw_audit_parse()'s
 * json_loadb(), where jansson frees nothing it did not allocate in that call.
 */
static __thread struct {
    int active;
    int exceeded;
    size_t used;
    size_t limit;
} parse_mem;

static void *budget_malloc(size_t n)
{
    void *p = malloc(n);
    if (p && parse_mem.active) {
        size_t sz = malloc_usable_size(p);
        if (parse_mem.used + sz > parse_mem.limit) {
            free(p);
            parse_mem.exceeded = 1;
            return NULL;
        }
        parse_mem.used += sz;
    }
    return p;
}

static void budget_free(void *p)
{
    if (p && parse_mem.active) {
        size_t sz = malloc_usable_size(p);
        parse_mem.used = sz > parse_mem.used ? 0 : parse_mem.used - sz;
    }
    free(p);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void)
{
    json_set_alloc_funcs(budget_malloc, budget_free);
}

void cw_audit_global_init(void)
{
    pthread_once(&hooks_once, install_hooks);
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
    parse_mem.active = 1;
    parse_mem.exceeded = 0;
    parse_mem.used = 0;
    parse_mem.limit = len * CW_AUDIT_PARSE_MEM_FACTOR + (1u << 20);
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, e);
    parse_mem.active = 0;
    return root;
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

int cw_audit_parse(const char *body, size_t len, cw_audit_batch *out, char *err, size_t errlen)
{
    cw_audit_global_init();
    memset(out, 0, sizeof(*out));
    json_error_t e, e2;
    json_t *root = load(body, len, &e);
    if (!root && parse_mem.exceeded) {
        set_err(err, errlen, "JSON tree would exceed %d x the body size in memory",
                CW_AUDIT_PARSE_MEM_FACTOR);
        return CW_AUDIT_ETOOBIG;
    }
    if (!root) {
        enum json_error_code code = json_error_code(&e);
        if (code == json_error_invalid_utf8 || code == json_error_invalid_syntax ||
            code == json_error_numeric_overflow) {
            size_t fixed_len = 0;
            char *fixed = cw_json_repair(body, len, &fixed_len);
            if (fixed) {
                root = load(fixed, fixed_len, &e2);
                free(fixed);
                if (!root && parse_mem.exceeded) {
                    set_err(err, errlen, "JSON tree would exceed %d x the body size in memory",
                            CW_AUDIT_PARSE_MEM_FACTOR);
                    return CW_AUDIT_ETOOBIG;
                }
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
