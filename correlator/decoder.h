/* decoder: reads the spool and decodes records one step ahead of the
 * pipeline thread, on a thread of its own, so that protobuf and JSON decoding
 * (a quarter of the pipeline's work) overlaps enrichment, detection and
 * incidents instead of adding to them.
 *
 * A fixed ring of CW_DECODER_SLOTS items passes between the two threads:
 * the decoder fills a free slot (decoded messages live in the slot's own
 * bounded arena), the consumer takes it with cw_decoder_next(), processes
 * it, and hands it back with cw_decoder_release(). Memory is therefore
 * bounded by the slots' arenas, and a slow consumer stops the decoder, which
 * stops reading the spool (the spool absorbs, then pushes back on ingest).
 *
 * Records that do not decode are reported through the `bad` callback (on the
 * decoder thread) and skipped. Each item carries its spool `end`, which the
 * consumer commits once the item's outputs are durable.
 *
 * Threads: create/start/stop/free on the control thread; the decoder thread
 * owns the spool reader's read side; next/release on one consumer thread.
 */
#ifndef CW_DECODER_H
#define CW_DECODER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "chainwatch.pb-c.h"
#include "common/arena.h"
#include "storage/spool.h"

#define CW_DECODER_SLOTS 4

typedef struct cw_rec_item {
    uint8_t kind; /* CW_REC_HELLO, CW_REC_BATCH or CW_REC_AUDIT */
    char key[CW_SPOOL_KEY_MAX + 1]; /* agent id or cluster, NUL-terminated */
    uint64_t seq, offset, end;
    int64_t time_ns;
    Chainwatch__V1__Hello *hello;      /* CW_REC_HELLO, in arena */
    Chainwatch__V1__EventBatch *batch; /* CW_REC_BATCH, in arena */
    json_t *audit;                     /* CW_REC_AUDIT, released by cw_decoder_release */
    cw_arena arena;
} cw_rec_item;

typedef struct cw_decoder cw_decoder;

typedef void (*cw_decoder_bad_cb)(void *ud, const cw_spool_record *rec, const char *why);

int cw_decoder_create(cw_decoder **out, cw_spool_reader *reader, size_t arena_bytes,
                      cw_decoder_bad_cb bad, void *ud);
int cw_decoder_start(cw_decoder *d);
/* Consumer: 1 with the next item, 0 once the spool is stopped (or the decoder
 * asked to stop) and every item was taken, -1 after timeout_ms without one. */
int cw_decoder_next(cw_decoder *d, cw_rec_item **item, int timeout_ms);
void cw_decoder_release(cw_decoder *d, cw_rec_item *item);
/* Asks the decoder to stop once the spool has nothing more to read now
 * (without waiting for cw_spool_stop), and joins it. */
void cw_decoder_stop(cw_decoder *d);
void cw_decoder_free(cw_decoder *d);

#endif
