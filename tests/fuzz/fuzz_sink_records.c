/* libFuzzer target: sink spool record bodies (storage/outrec.h), as the
 * sinks read them from disk: the entry parser, the StoredEvent scan and
 * COPY row building of the PostgreSQL sink, its alert and incident JSON
 * handling, and the Kafka sink's payload-less stub of an event
 * (storage/kafka_stub.h). Input: one byte of record kind (4 events, 5 alert, 6 incident,
 * others taken modulo 3), then the body. Nothing may crash, leak or read out
 * of bounds, whatever the bytes. Seeds: tests/fuzz/corpus/sink_records
 * (real records of a load run). */
#include <stddef.h>
#include <stdint.h>

#include "storage/kafka_stub.h"
#include "storage/outrec.h"
#include "storage/pg_txn.h"
#include "storage/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int kind = CW_REC_OUT_EVENTS + data[0] % 3;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    cw_pg_txn t;
    cw_pg_txn_init(&t);
    cw_buf stub;
    cw_buf_init(&stub, 0);
    if (kind == CW_REC_OUT_EVENTS) {
        size_t pos = 0;
        cw_outrec_event ev;
        while (cw_outrec_next(body, len, &pos, &ev) == 1) {
            if (cw_pg_txn_events_full(&t, 1000)) cw_pg_txn_reset(&t);
            cw_pg_txn_add_event(&t, &ev);
            cw_kafka_event_stub(ev.pb, ev.pb_len, ev.pb_len & 1, &stub);
        }
    } else if (kind == CW_REC_OUT_ALERT) {
        cw_pg_txn_add_alert(&t, body, len, 1714557700000000000LL);
    } else {
        cw_pg_txn_add_incident(&t, body, len, 1714557700000000000LL);
    }
    cw_pg_txn_free(&t);
    cw_buf_free(&stub);
    return 0;
}
