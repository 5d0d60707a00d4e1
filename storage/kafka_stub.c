/* kafka_stub: values sent in place of ones too large for Kafka. See
 * kafka_stub.h. */
#include "storage/kafka_stub.h"

#include "common/jsonw.h"
#include "storage/pbwire.h"

/* StoredEvent field numbers (proto/chainwatch.proto). */
#define F_EVENT 20
#define F_AUDIT_JSON 21
#define F_OMITTED_BYTES 22
#define F_LAST_MINIMAL 4 /* id, time_ns, type, source */

int cw_kafka_event_stub(const uint8_t *pb, size_t len, int minimal, cw_buf *out)
{
    cw_buf_reset(out);
    size_t pos = 0;
    cw_pbfield f;
    while (cw_pbwire_next(pb, len, &pos, &f) > 0) {
        if (f.number == F_EVENT || f.number == F_AUDIT_JSON || f.number == F_OMITTED_BYTES ||
            (minimal && f.number > F_LAST_MINIMAL))
            continue;
        if (cw_buf_append(out, f.start, f.size) < 0) return -1;
    }
    uint8_t v[20];
    size_t n = cw_pbwire_put_varint(v, F_OMITTED_BYTES << 3); /* the tag; wire type 0 */
    n += cw_pbwire_put_varint(v + n, len > UINT32_MAX ? UINT32_MAX : len);
    return cw_buf_append(out, v, n);
}

int cw_kafka_json_stub(const char *id, size_t id_len, size_t bytes, cw_buf *out)
{
    cw_buf_reset(out);
    cw_jsonw w;
    cw_jsonw_init(&w, out);
    cw_jsonw_obj_open(&w);
    cw_jsonw_key(&w, "id");
    cw_jsonw_strn(&w, id, id_len);
    cw_jsonw_key(&w, "omitted_bytes");
    cw_jsonw_uint(&w, bytes);
    cw_jsonw_obj_close(&w);
    return cw_jsonw_error(&w) ? -1 : 0;
}
