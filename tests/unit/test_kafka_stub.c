/* Unit tests: the values the Kafka sink sends in place of ones over
 * kafka.max_value_bytes (storage/kafka_stub.h), read back with protobuf-c
 * and jansson as a consumer would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "chainwatch.pb-c.h"
#include "storage/kafka_stub.h"

/* A StoredEvent with context, labels and a large audit payload. */
static uint8_t *packed_event(size_t *len, size_t payload)
{
    Chainwatch__V1__StoredEvent se = CHAINWATCH__V1__STORED_EVENT__INIT;
    Chainwatch__V1__Label lab = CHAINWATCH__V1__LABEL__INIT;
    Chainwatch__V1__Label *labs[1] = {&lab};
    lab.key = "app";
    lab.value = "shop";
    se.id = "prod:a-1:ResponseComplete";
    se.has_time_ns = 1;
    se.time_ns = 1764669600000000000LL;
    se.type = "k8s_audit";
    se.source = "k8s_audit";
    se.cluster = "prod";
    se.namespace_ = "app";
    se.pod = "web-1";
    se.n_labels = 1;
    se.labels = labs;
    char *big = malloc(payload + 1);
    memset(big, 'x', payload);
    big[payload] = 0;
    se.audit_json = big;
    *len = chainwatch__v1__stored_event__get_packed_size(&se);
    uint8_t *pb = malloc(*len);
    chainwatch__v1__stored_event__pack(&se, pb);
    free(big);
    return pb;
}

static void event_stub_keeps_context_not_payload(void **state)
{
    (void)state;
    size_t len;
    uint8_t *pb = packed_event(&len, 2000000);
    cw_buf out;
    cw_buf_init(&out, 0);
    assert_int_equal(cw_kafka_event_stub(pb, len, 0, &out), 0);
    assert_true(out.len < 200);
    Chainwatch__V1__StoredEvent *se = chainwatch__v1__stored_event__unpack(NULL, out.len, out.data);
    assert_non_null(se);
    assert_string_equal(se->id, "prod:a-1:ResponseComplete");
    assert_int_equal(se->time_ns, 1764669600000000000LL);
    assert_string_equal(se->type, "k8s_audit");
    assert_string_equal(se->pod, "web-1");
    assert_int_equal(se->n_labels, 1);
    assert_null(se->audit_json);
    assert_null(se->event);
    assert_true(se->has_omitted_bytes);
    assert_int_equal(se->omitted_bytes, len);
    chainwatch__v1__stored_event__free_unpacked(se, NULL);

    /* Minimal: id, time, type and source only. */
    assert_int_equal(cw_kafka_event_stub(pb, len, 1, &out), 0);
    se = chainwatch__v1__stored_event__unpack(NULL, out.len, out.data);
    assert_non_null(se);
    assert_string_equal(se->type, "k8s_audit");
    assert_null(se->pod);
    assert_int_equal(se->n_labels, 0);
    assert_int_equal(se->omitted_bytes, len);
    chainwatch__v1__stored_event__free_unpacked(se, NULL);

    /* A stub of a stub replaces omitted_bytes rather than repeating it. */
    cw_buf again;
    cw_buf_init(&again, 0);
    assert_int_equal(cw_kafka_event_stub(out.data, out.len, 0, &again), 0);
    se = chainwatch__v1__stored_event__unpack(NULL, again.len, again.data);
    assert_non_null(se);
    assert_int_equal(se->omitted_bytes, out.len);
    chainwatch__v1__stored_event__free_unpacked(se, NULL);
    cw_buf_free(&again);

    /* Malformed after the id: what came before is kept. */
    uint8_t bad[64];
    size_t n = 2 + strlen("prod:a-1:ResponseComplete");
    memcpy(bad, pb, n);
    bad[n] = 0x0f; /* wire type 7: invalid */
    assert_int_equal(cw_kafka_event_stub(bad, n + 1, 0, &out), 0);
    se = chainwatch__v1__stored_event__unpack(NULL, out.len, out.data);
    assert_non_null(se);
    assert_string_equal(se->id, "prod:a-1:ResponseComplete");
    chainwatch__v1__stored_event__free_unpacked(se, NULL);
    cw_buf_free(&out);
    free(pb);
}

static void json_stub_names_the_id(void **state)
{
    (void)state;
    cw_buf out;
    cw_buf_init(&out, 0);
    assert_int_equal(cw_kafka_json_stub("inc-\"1\"", 7, 3000000, &out), 0);
    json_error_t je;
    json_t *o = json_loadb((const char *)out.data, out.len, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "inc-\"1\"");
    assert_int_equal(json_integer_value(json_object_get(o, "omitted_bytes")), 3000000);
    json_decref(o);
    cw_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_stub_keeps_context_not_payload),
        cmocka_unit_test(json_stub_names_the_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
