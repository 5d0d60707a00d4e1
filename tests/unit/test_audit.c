/* Unit tests: audit webhook parsing (corpus, EventList, malformed input,
 * repairs, memory budget) and the de-duplication set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "tests/unit/testutil.h"
#include "server/audit.h"
#include "server/dedupe.h"

#define MAX_SAMPLES 16

typedef struct sample {
    char name[256];
    char *text;
    size_t len;
} sample;

static sample samples[MAX_SAMPLES];
static size_t n_samples;

static int load_corpus(void **state)
{
    (void)state;
    const char *shared = getenv("CW_SHARED");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/corpus/k8s-audit", shared ? shared : "../shared");
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) && n_samples < MAX_SAMPLES) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        sample *s = &samples[n_samples];
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        snprintf(s->name, sizeof(s->name), "%s", de->d_name);
        s->text = cw_test_read_file(path, &s->len);
        if (s->text)
            n_samples++;
    }
    closedir(d);
    return n_samples >= 5 ? 0 : -1;
}

static int free_corpus(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_samples; i++)
        free(samples[i].text);
    return 0;
}

/* The stored JSON must be the same event: equal as JSON values. */
static void assert_same_event(const cw_audit_event *ev, const char *orig, size_t orig_len)
{
    json_t *a = json_loadb(orig, orig_len, 0, NULL);
    json_t *b = json_loadb(ev->json, ev->json_len, 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(json_equal(a, b));
    assert_string_equal(ev->audit_id, json_string_value(json_object_get(a, "auditID")));
    assert_string_equal(ev->stage, json_string_value(json_object_get(a, "stage")));
    assert_null(memchr(ev->json, '\n', ev->json_len)); /* compact: one line */
    json_decref(a);
    json_decref(b);
}

static void parses_each_corpus_event(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_samples; i++) {
        cw_audit_batch b;
        char err[256] = "";
        int rc = cw_audit_parse(samples[i].text, samples[i].len, &b, err, sizeof(err));
        if (rc != 0)
            fail_msg("%s: %s", samples[i].name, err);
        assert_int_equal(b.n_events, 1);
        assert_int_equal(b.n_invalid, 0);
        assert_false(b.repaired);
        assert_same_event(&b.events[0], samples[i].text, samples[i].len);
        cw_audit_batch_free(&b);
    }
}

static void parses_corpus_wrapped_in_eventlist(void **state)
{
    (void)state;
    cw_buf body;
    cw_buf_init(&body, 0);
    cw_buf_printf(&body, "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\","
                         "\"metadata\":{},\"items\":[");
    for (size_t i = 0; i < n_samples; i++) {
        if (i)
            cw_buf_append(&body, ",", 1);
        cw_buf_append(&body, samples[i].text, samples[i].len);
    }
    cw_buf_printf(&body, "]}");
    cw_audit_batch b;
    char err[256] = "";
    assert_int_equal(cw_audit_parse((char *)body.data, body.len, &b, err, sizeof(err)), 0);
    assert_int_equal(b.n_events, n_samples);
    for (size_t i = 0; i < n_samples; i++)
        assert_same_event(&b.events[i], samples[i].text, samples[i].len);
    assert_true(b.mem_bytes >= body.len / 2);
    cw_audit_batch_free(&b);
    cw_buf_free(&body);
}

static int parse_str(const char *s, cw_audit_batch *b, char *err, size_t errlen)
{
    return cw_audit_parse(s, strlen(s), b, err, errlen);
}

static void list_forms(void **state)
{
    (void)state;
    cw_audit_batch b;
    char err[256];
    /* items null (Go's empty slice) and missing items: empty lists. */
    assert_int_equal(parse_str("{\"kind\":\"EventList\",\"items\":null}", &b, err, 256), 0);
    assert_int_equal(b.n_events + b.n_invalid, 0);
    cw_audit_batch_free(&b);
    assert_int_equal(parse_str("{\"kind\":\"EventList\"}", &b, err, 256), 0);
    assert_int_equal(b.n_events + b.n_invalid, 0);
    cw_audit_batch_free(&b);
    /* No kind, but items: a list whose items carry no kind either. */
    assert_int_equal(parse_str("{\"items\":[{\"auditID\":\"a\",\"stage\":\"ResponseComplete\"},"
                               "{\"auditID\":\"b\",\"stage\":\"ResponseStarted\"}]}",
                               &b, err, 256),
                     0);
    assert_int_equal(b.n_events, 2);
    assert_string_equal(b.events[1].audit_id, "b");
    assert_string_equal(b.events[1].stage, "ResponseStarted");
    cw_audit_batch_free(&b);
}

static void skips_items_without_ids(void **state)
{
    (void)state;
    cw_audit_batch b;
    char err[256];
    const char *body = "{\"kind\":\"EventList\",\"items\":["
                       "{\"auditID\":\"ok-1\",\"stage\":\"ResponseComplete\"},"
                       "{\"stage\":\"ResponseComplete\"},"
                       "{\"auditID\":\"x\"},"
                       "{\"auditID\":17,\"stage\":\"ResponseComplete\"},"
                       "{\"auditID\":\"\",\"stage\":\"ResponseComplete\"},"
                       "{\"auditID\":\"n\\u0000ul\",\"stage\":\"ResponseComplete\"},"
                       "{\"auditID\":\"ok-2\",\"stage\":\"Panic\"}]}";
    assert_int_equal(parse_str(body, &b, err, 256), 0);
    assert_int_equal(b.n_events, 2);
    assert_int_equal(b.n_invalid, 5);
    assert_string_equal(b.events[0].audit_id, "ok-1");
    assert_string_equal(b.events[1].audit_id, "ok-2");
    cw_audit_batch_free(&b);
    /* A single Event without ids is skipped the same way. */
    assert_int_equal(parse_str("{\"kind\":\"Event\",\"verb\":\"get\"}", &b, err, 256), 0);
    assert_int_equal(b.n_events, 0);
    assert_int_equal(b.n_invalid, 1);
    cw_audit_batch_free(&b);
}

static void rejects_malformed_with_reason(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *reason;
    } cases[] = {
        {"", "invalid JSON at 1:"},
        {"{\"kind\":\"EventList\",\n \"items\":[", "invalid JSON at 2:"},
        {"{\"a\":1} trailing", "invalid JSON at 1:"},
        {"[{\"auditID\":\"a\",\"stage\":\"b\"}]", "not a JSON object"},
        {"\"EventList\"", "invalid JSON"}, /* jansson wants an object or array */
        {"{\"kind\":\"EventList\",\"items\":{}}", "\"items\" is not an array"},
        {"{\"items\":[{\"auditID\":\"a\",\"stage\":\"b\"},42]}", "items[1] is not an object"},
        {"{\"a\":tru}", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cw_audit_batch b;
        char err[256] = "";
        int rc = parse_str(cases[i].body, &b, err, sizeof(err));
        if (rc != CW_AUDIT_EMALFORMED || !strstr(err, cases[i].reason))
            fail_msg("case %zu: rc %d, err '%s', want '%s'", i, rc, err, cases[i].reason);
        assert_int_equal(b.n_events, 0);
        assert_null(b.events);
        cw_audit_batch_free(&b);
    }
}

static void rejects_too_deep(void **state)
{
    (void)state;
    size_t depth = 5000, k = 0;
    char *s = malloc(2 * depth + 16);
    k += (size_t)sprintf(s, "{\"a\":");
    for (size_t i = 0; i < depth; i++)
        s[k++] = '[';
    for (size_t i = 0; i < depth; i++)
        s[k++] = ']';
    s[k++] = '}';
    cw_audit_batch b;
    char err[256] = "";
    assert_int_equal(cw_audit_parse(s, k, &b, err, sizeof(err)), CW_AUDIT_EMALFORMED);
    assert_non_null(strstr(err, "depth"));
    free(s);
}

static void refuses_tree_over_memory_budget(void **state)
{
    (void)state;
    /* Empty objects cost ~70x their 3 bytes in jansson: over the budget. */
    size_t n = 200000, k = 0;
    char *s = malloc(3 * n + 64);
    k += (size_t)sprintf(s, "{\"kind\":\"EventList\",\"items\":[");
    for (size_t i = 0; i < n; i++) {
        memcpy(s + k, "{},", 3);
        k += 3;
    }
    s[k - 1] = ']';
    s[k++] = '}';
    cw_audit_batch b;
    char err[256] = "";
    assert_int_equal(cw_audit_parse(s, k, &b, err, sizeof(err)), CW_AUDIT_ETOOBIG);
    assert_non_null(strstr(err, "memory"));
    free(s);
}

static const char *stored_string(const cw_audit_event *ev, const char *key, json_t **hold)
{
    *hold = json_loadb(ev->json, ev->json_len, JSON_ALLOW_NUL, NULL);
    assert_non_null(*hold);
    json_t *v = json_object_get(json_object_get(*hold, "requestObject"), key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void repairs_what_go_emits(void **state)
{
    (void)state;
    cw_audit_batch b;
    char err[256] = "";
    json_t *j;
    /* Invalid UTF-8 from a client's raw patch body: becomes U+FFFD. */
    const char *bad_utf8 = "{\"auditID\":\"u\",\"stage\":\"ResponseComplete\","
                           "\"requestObject\":{\"s\":\"a\xff\xc3(b\"}}";
    assert_int_equal(parse_str(bad_utf8, &b, err, 256), 0);
    assert_true(b.repaired);
    assert_string_equal(stored_string(&b.events[0], "s", &j), "a\xEF\xBF\xBD\xEF\xBF\xBD(b");
    json_decref(j);
    cw_audit_batch_free(&b);
    /* Lone surrogate escapes: become U+FFFD; a proper pair survives. */
    const char *sur = "{\"auditID\":\"s\",\"stage\":\"ResponseComplete\","
                      "\"requestObject\":{\"s\":\"\\ud800x\\ud83d\\ude00\\udc00\"}}";
    assert_int_equal(parse_str(sur, &b, err, 256), 0);
    assert_string_equal(stored_string(&b.events[0], "s", &j),
                        "\xEF\xBF\xBDx\xF0\x9F\x98\x80\xEF\xBF\xBD");
    json_decref(j);
    cw_audit_batch_free(&b);
    /* Numbers jansson cannot hold: kept as strings with the same text. */
    const char *big = "{\"auditID\":\"n\",\"stage\":\"ResponseComplete\","
                      "\"requestObject\":{\"i\":123456789012345678901234567890,\"r\":-1e999,"
                      "\"ok\":42}}";
    assert_int_equal(parse_str(big, &b, err, 256), 0);
    assert_string_equal(stored_string(&b.events[0], "i", &j), "123456789012345678901234567890");
    json_decref(j);
    assert_string_equal(stored_string(&b.events[0], "r", &j), "-1e999");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "requestObject"), "ok")),
                     42);
    json_decref(j);
    cw_audit_batch_free(&b);
    /* NUL in a string and duplicate keys are accepted as they are. */
    const char *nul = "{\"auditID\":\"z\",\"stage\":\"ResponseComplete\","
                      "\"requestObject\":{\"s\":\"a\\u0000b\",\"d\":1,\"d\":2}}";
    assert_int_equal(parse_str(nul, &b, err, 256), 0);
    assert_false(b.repaired);
    assert_non_null(strstr(b.events[0].json, "\"a\\u0000b\""));
    assert_non_null(strstr(b.events[0].json, "\"d\":2"));
    cw_audit_batch_free(&b);
    /* Syntax errors are still errors, and the message quotes no raw bytes. */
    assert_int_equal(parse_str("{\"a\":\"\xff\" x}", &b, err, 256), CW_AUDIT_EMALFORMED);
    for (const char *p = err; *p; p++)
        assert_true(*p >= 0x20 && *p <= 0x7e);
}

static void cluster_names(void **state)
{
    (void)state;
    assert_true(cw_audit_cluster_valid("prod-eu.1_a", 11));
    assert_true(cw_audit_cluster_valid("a", 1));
    char long63[64];
    memset(long63, 'a', 63);
    assert_true(cw_audit_cluster_valid(long63, 63));
    assert_false(cw_audit_cluster_valid("", 0));
    assert_false(cw_audit_cluster_valid("Prod", 4));
    assert_false(cw_audit_cluster_valid("a/b", 3));
    assert_false(cw_audit_cluster_valid("a b", 3));
    assert_false(cw_audit_cluster_valid("a%2f", 4));
    char long64[65];
    memset(long64, 'a', 64);
    assert_false(cw_audit_cluster_valid(long64, 64));
}

static void key_of(const char *cluster, const char *id, const char *json,
                   uint8_t key[CW_DEDUPE_KEY_LEN])
{
    cw_audit_event ev = {.json = json,
                         .json_len = strlen(json),
                         .audit_id = id,
                         .audit_id_len = strlen(id),
                         .stage = "ResponseComplete",
                         .stage_len = 16};
    cw_audit_event_key(cluster, strlen(cluster), &ev, key);
}

static void dedupe_evicts_oldest_when_full(void **state)
{
    (void)state;
    cw_dedupe *d;
    assert_int_equal(cw_dedupe_create(&d, 3), 0);
    uint8_t k[4][CW_DEDUPE_KEY_LEN];
    cw_dedupe_ref r;
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof(id), "id-%d", i);
        key_of("c1", id, "{}", k[i]);
        assert_int_equal(cw_dedupe_begin(d, k[i], &r), CW_DEDUPE_NEW);
        cw_dedupe_end(d, r, 1);
    }
    assert_int_equal(cw_dedupe_count(d), 3);
    /* k[0] was evicted by k[3]: it is new again (and evicts k[1]). */
    assert_int_equal(cw_dedupe_begin(d, k[2], &r), CW_DEDUPE_DUPLICATE);
    assert_int_equal(cw_dedupe_begin(d, k[3], &r), CW_DEDUPE_DUPLICATE);
    assert_int_equal(cw_dedupe_begin(d, k[0], &r), CW_DEDUPE_NEW);
    cw_dedupe_end(d, r, 1);
    assert_int_equal(cw_dedupe_begin(d, k[1], &r), CW_DEDUPE_NEW);
    cw_dedupe_end(d, r, 1);
    assert_int_equal(cw_dedupe_begin(d, k[2], &r), CW_DEDUPE_NEW); /* evicted by k[1] */
    cw_dedupe_end(d, r, 1);
    assert_int_equal(cw_dedupe_count(d), 3);
    cw_dedupe_free(d);
}

static void dedupe_key_covers_cluster_and_content(void **state)
{
    (void)state;
    cw_dedupe *d;
    assert_int_equal(cw_dedupe_create(&d, 16), 0);
    uint8_t a[CW_DEDUPE_KEY_LEN], b[CW_DEDUPE_KEY_LEN], c[CW_DEDUPE_KEY_LEN], a2[CW_DEDUPE_KEY_LEN];
    key_of("c1", "same-id", "{\"verb\":\"get\"}", a);
    key_of("c1", "same-id", "{\"verb\":\"get\"}", a2);
    key_of("c2", "same-id", "{\"verb\":\"get\"}", b);
    key_of("c1", "same-id", "{\"verb\":\"delete\"}", c); /* reused Audit-ID */
    assert_memory_equal(a, a2, CW_DEDUPE_KEY_LEN);
    cw_dedupe_ref r;
    assert_int_equal(cw_dedupe_begin(d, a, &r), CW_DEDUPE_NEW);
    cw_dedupe_end(d, r, 1);
    assert_int_equal(cw_dedupe_begin(d, a2, &r), CW_DEDUPE_DUPLICATE);
    assert_int_equal(cw_dedupe_begin(d, b, &r), CW_DEDUPE_NEW);
    cw_dedupe_end(d, r, 1);
    assert_int_equal(cw_dedupe_begin(d, c, &r), CW_DEDUPE_NEW);
    cw_dedupe_end(d, r, 1);
    cw_dedupe_free(d);
}

static void dedupe_forgets_failed_writes(void **state)
{
    (void)state;
    cw_dedupe *d;
    assert_int_equal(cw_dedupe_create(&d, 2), 0);
    uint8_t k[CW_DEDUPE_KEY_LEN], o[CW_DEDUPE_KEY_LEN];
    key_of("c", "k", "{}", k);
    key_of("c", "o", "{}", o);
    cw_dedupe_ref r1, r2, r3;
    /* Two writes of one key; the first fails, the second succeeds. */
    assert_int_equal(cw_dedupe_begin(d, k, &r1), CW_DEDUPE_NEW);
    assert_int_equal(cw_dedupe_begin(d, k, &r2), CW_DEDUPE_PENDING);
    cw_dedupe_end(d, r1, 0);
    assert_int_equal(cw_dedupe_count(d), 1); /* still pending */
    cw_dedupe_end(d, r2, 1);
    assert_int_equal(cw_dedupe_begin(d, k, &r3), CW_DEDUPE_DUPLICATE);
    /* A lone failed write is forgotten, so a retry is stored. */
    assert_int_equal(cw_dedupe_begin(d, o, &r1), CW_DEDUPE_NEW);
    cw_dedupe_end(d, r1, 0);
    assert_int_equal(cw_dedupe_count(d), 1);
    assert_int_equal(cw_dedupe_begin(d, o, &r1), CW_DEDUPE_NEW);
    /* Evicted while pending: the stale ref must not touch the new owner. */
    uint8_t x[CW_DEDUPE_KEY_LEN], y[CW_DEDUPE_KEY_LEN];
    key_of("c", "x", "{}", x);
    key_of("c", "y", "{}", y);
    assert_int_equal(cw_dedupe_begin(d, x, &r2), CW_DEDUPE_NEW);
    cw_dedupe_end(d, r2, 1);
    assert_int_equal(cw_dedupe_begin(d, y, &r3), CW_DEDUPE_NEW); /* evicts o */
    cw_dedupe_end(d, r3, 1);
    cw_dedupe_end(d, r1, 0); /* stale */
    assert_int_equal(cw_dedupe_count(d), 2);
    assert_int_equal(cw_dedupe_begin(d, y, &r3), CW_DEDUPE_DUPLICATE);
    cw_dedupe_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_each_corpus_event),
        cmocka_unit_test(parses_corpus_wrapped_in_eventlist),
        cmocka_unit_test(list_forms),
        cmocka_unit_test(skips_items_without_ids),
        cmocka_unit_test(rejects_malformed_with_reason),
        cmocka_unit_test(rejects_too_deep),
        cmocka_unit_test(refuses_tree_over_memory_budget),
        cmocka_unit_test(repairs_what_go_emits),
        cmocka_unit_test(cluster_names),
        cmocka_unit_test(dedupe_evicts_oldest_when_full),
        cmocka_unit_test(dedupe_key_covers_cluster_and_content),
        cmocka_unit_test(dedupe_forgets_failed_writes),
    };
    return cmocka_run_group_tests(tests, load_corpus, free_corpus);
}
