/* audit: parsing and de-duplication of Kubernetes audit webhook payloads.
 * The contract is in audit.h. */
#include "server/audit.h"

#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

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

/* ---- repairs for JSON that Go emits and jansson refuses ---------------- */

static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else
        return 0;
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

static int hex4(const char *s, size_t n, unsigned *out)
{
    if (n < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* 1 if the number token overflows the way jansson's lexer checks it
 * (strtoll for integers, strtod for reals). */
static int number_overflows(const char *tok, size_t n)
{
    char small[64];
    char *copy = n < sizeof(small) ? small : malloc(n + 1);
    if (!copy)
        return 0;
    memcpy(copy, tok, n);
    copy[n] = '\0';
    int integer = strpbrk(copy, ".eE") == NULL, over;
    errno = 0;
    if (integer) {
        (void)strtoll(copy, NULL, 10);
        over = errno == ERANGE;
    } else {
        double v = strtod(copy, NULL);
        over = errno == ERANGE && isinf(v);
    }
    if (copy != small)
        free(copy);
    return over;
}

/* Copies body into a new buffer, repairing invalid UTF-8 inside strings, lone
 * surrogate escapes and overflowing numbers (see audit.h). Returns the copy
 * (caller frees) or NULL when nothing needed repair or memory ran out. */
static char *repair(const char *in, size_t len, size_t *outlen)
{
    static const char fffd_utf8[] = "\xEF\xBF\xBD", fffd_esc[] = "\\uFFFD";
    /* Worst cases: one byte becomes three; a number gains two quotes. */
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t i = 0, o = 0;
    int in_str = 0, changed = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (!in_str) {
            if (c == '"') {
                in_str = 1;
                out[o++] = in[i++];
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                size_t j = i + 1;
                while (j < len && strchr("0123456789+-.eE", in[j]) && in[j] != '\0')
                    j++;
                int q = number_overflows(in + i, j - i);
                if (q)
                    out[o++] = '"';
                memcpy(out + o, in + i, j - i);
                o += j - i;
                if (q)
                    out[o++] = '"';
                changed |= q;
                i = j;
            } else
                out[o++] = in[i++];
            continue;
        }
        if (c == '"') {
            in_str = 0;
            out[o++] = in[i++];
        } else if (c == '\\' && i + 1 < len && in[i + 1] == 'u') {
            unsigned u, u2;
            if (hex4(in + i + 2, len - i - 2, &u) != 0) {
                out[o++] = in[i++]; /* let jansson report it */
                continue;
            }
            if (u >= 0xD800 && u <= 0xDBFF && i + 12 <= len && in[i + 6] == '\\' &&
                in[i + 7] == 'u' && hex4(in + i + 8, len - i - 8, &u2) == 0 && u2 >= 0xDC00 &&
                u2 <= 0xDFFF) {
                memcpy(out + o, in + i, 12); /* a proper pair */
                o += 12;
                i += 12;
            } else if (u >= 0xD800 && u <= 0xDFFF) {
                memcpy(out + o, fffd_esc, 6);
                o += 6;
                i += 6;
                changed = 1;
            } else {
                memcpy(out + o, in + i, 6);
                o += 6;
                i += 6;
            }
        } else if (c == '\\' && i + 1 < len) {
            out[o++] = in[i++];
            out[o++] = in[i++];
        } else if (c >= 0x80) {
            size_t n = utf8_valid_len((const unsigned char *)in + i, len - i);
            if (n) {
                memcpy(out + o, in + i, n);
                o += n;
                i += n;
            } else {
                memcpy(out + o, fffd_utf8, 3);
                o += 3;
                i++;
                changed = 1;
            }
        } else
            out[o++] = in[i++];
    }
    if (!changed) {
        free(out);
        return NULL;
    }
    *outlen = o;
    return out;
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
            char *fixed = repair(body, len, &fixed_len);
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

/* ---- de-duplication ------------------------------------------------------
 * A FIFO ring of `capacity` slots, each also on a hash chain found through
 * `buckets`. Keys are SHA-256 prefixes, so they are uniform whatever the
 * client chose: the first 4 bytes pick the bucket.
 */
#define NIL UINT32_MAX

typedef struct dd_slot {
    uint8_t key[CW_AUDIT_KEY_LEN];
    uint32_t next; /* hash chain */
    uint32_t gen;  /* bumped on every reuse, so stale refs are recognised */
    uint32_t pending;
    uint8_t used;
    uint8_t durable;
} dd_slot;

struct cw_audit_dedupe {
    dd_slot *slots;
    uint32_t *buckets;
    uint32_t cap, mask, head;
    size_t count;
    EVP_MD_CTX *md;
};

int cw_audit_dedupe_create(cw_audit_dedupe **out, uint32_t capacity)
{
    if (capacity == 0 || capacity > (1u << 30))
        return -22;
    cw_audit_dedupe *d = calloc(1, sizeof(*d));
    if (!d)
        return CW_AUDIT_ENOMEM;
    uint32_t nb = 1;
    while (nb < capacity)
        nb <<= 1;
    d->cap = capacity;
    d->mask = nb - 1;
    d->slots = calloc(capacity, sizeof(*d->slots));
    d->buckets = malloc((size_t)nb * sizeof(*d->buckets));
    d->md = EVP_MD_CTX_new();
    if (!d->slots || !d->buckets || !d->md) {
        cw_audit_dedupe_free(d);
        return CW_AUDIT_ENOMEM;
    }
    for (uint32_t i = 0; i < nb; i++)
        d->buckets[i] = NIL;
    *out = d;
    return 0;
}

void cw_audit_dedupe_free(cw_audit_dedupe *d)
{
    if (!d)
        return;
    EVP_MD_CTX_free(d->md);
    free(d->slots);
    free(d->buckets);
    free(d);
}

void cw_audit_dedupe_key(cw_audit_dedupe *d, const char *cluster, size_t cluster_len,
                         const cw_audit_event *ev, uint8_t key[CW_AUDIT_KEY_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    /* The NULs separate the fields, none of which can contain one. */
    if (EVP_DigestInit_ex(d->md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(d->md, cluster, cluster_len) != 1 ||
        EVP_DigestUpdate(d->md, "", 1) != 1 ||
        EVP_DigestUpdate(d->md, ev->audit_id, ev->audit_id_len + 1) != 1 ||
        EVP_DigestUpdate(d->md, ev->stage, ev->stage_len + 1) != 1 ||
        EVP_DigestUpdate(d->md, ev->json, ev->json_len) != 1 ||
        EVP_DigestFinal_ex(d->md, md, &mdlen) != 1 || mdlen < CW_AUDIT_KEY_LEN) {
        /* Only on a broken OpenSSL; a zero key just makes these events
         * collide with each other in the set. */
        memset(key, 0, CW_AUDIT_KEY_LEN);
        return;
    }
    memcpy(key, md, CW_AUDIT_KEY_LEN);
}

static uint32_t bucket_of(const cw_audit_dedupe *d, const uint8_t *key)
{
    uint32_t h;
    memcpy(&h, key, sizeof(h));
    return h & d->mask;
}

static uint32_t find(const cw_audit_dedupe *d, const uint8_t *key)
{
    for (uint32_t i = d->buckets[bucket_of(d, key)]; i != NIL; i = d->slots[i].next)
        if (memcmp(d->slots[i].key, key, CW_AUDIT_KEY_LEN) == 0)
            return i;
    return NIL;
}

static void unlink_slot(cw_audit_dedupe *d, uint32_t idx)
{
    dd_slot *s = &d->slots[idx];
    uint32_t *p = &d->buckets[bucket_of(d, s->key)];
    while (*p != idx)
        p = &d->slots[*p].next;
    *p = s->next;
    s->used = 0;
    s->gen++;
    d->count--;
}

int cw_audit_dedupe_begin(cw_audit_dedupe *d, const uint8_t key[CW_AUDIT_KEY_LEN],
                          cw_audit_ref *ref)
{
    uint32_t idx = find(d, key);
    if (idx != NIL) {
        dd_slot *s = &d->slots[idx];
        if (s->durable)
            return CW_AUDIT_DUPLICATE;
        s->pending++;
        *ref = (cw_audit_ref){idx, s->gen};
        return CW_AUDIT_PENDING;
    }
    idx = d->head;
    d->head = (d->head + 1) % d->cap;
    dd_slot *s = &d->slots[idx];
    if (s->used)
        unlink_slot(d, idx); /* the oldest entry goes */
    memcpy(s->key, key, CW_AUDIT_KEY_LEN);
    s->used = 1;
    s->durable = 0;
    s->pending = 1;
    uint32_t b = bucket_of(d, key);
    s->next = d->buckets[b];
    d->buckets[b] = idx;
    d->count++;
    *ref = (cw_audit_ref){idx, s->gen};
    return CW_AUDIT_NEW;
}

void cw_audit_dedupe_end(cw_audit_dedupe *d, cw_audit_ref ref, int stored)
{
    if (ref.slot >= d->cap)
        return;
    dd_slot *s = &d->slots[ref.slot];
    if (!s->used || s->gen != ref.gen)
        return; /* evicted meanwhile */
    if (s->pending)
        s->pending--;
    if (stored)
        s->durable = 1;
    else if (!s->durable && s->pending == 0)
        unlink_slot(d, ref.slot); /* let the API server's retry store it */
}

size_t cw_audit_dedupe_count(const cw_audit_dedupe *d)
{
    return d->count;
}
