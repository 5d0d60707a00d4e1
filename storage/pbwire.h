/* pbwire: walks the top-level fields of a protobuf message in its wire
 * form, without unpacking it: no allocation, nested messages skipped by
 * their length. The sinks use it to read a StoredEvent's typed fields
 * (pg_txn) and to copy one without its payload (kafka_sink).
 *
 * Input is treated as hostile: every length is checked against the end of
 * the buffer; a malformed field ends the walk (-1) with what came before it
 * already returned. Pure functions; any thread.
 */
#ifndef CW_PBWIRE_H
#define CW_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

typedef struct cw_pbfield {
    uint64_t number;      /* field number */
    unsigned wire;        /* wire type: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit */
    const uint8_t *start; /* the whole field, tag included ... */
    size_t size;          /* ... and its size */
    const uint8_t *data;  /* wire type 2: the payload and its length; else NULL, 0 */
    size_t len;
} cw_pbfield;

/* The field at *pos of p[0..len): 1 (f filled, *pos past it), 0 at the end,
 * -1 malformed (groups, unknown wire types, lengths past the end). */
int cw_pbwire_next(const uint8_t *p, size_t len, size_t *pos, cw_pbfield *f);

/* Writes the varint encoding of v to out[0..10); returns its length. */
size_t cw_pbwire_put_varint(uint8_t out[10], uint64_t v);

#endif
