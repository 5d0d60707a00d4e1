/* outbox: the pipeline's side of the sink spool (storage/outrec.h). The
 * pipeline thread puts records here; the outbox copies them, submits them to
 * the sink spool, and tells which input spool position has every output
 * durable, so the pipeline commits its input cursor no further than that.
 *
 * Contract
 * - cw_outbox_put() is called on the pipeline thread only. It blocks that
 *   thread (never a loop) while the copies in memory reach max_bytes or the
 *   sink spool is full (a sink is behind or down): that is how a sink's
 *   backpressure reaches the pipeline, then the input spool, then intake.
 *   Each wait is counted in cw_m.pipeline_sink_waits_total.
 * - A record whose write fails (CW_SPOOL_IO) is submitted again by the next
 *   put/poll, so it is stored once; it may then follow records put after it.
 * - `seq` of a record is 0, or the input spool position through which every
 *   output is put once this record is durable. cw_outbox_durable() returns
 *   the highest such seq whose record and every record before it are
 *   durable; cw_outbox_idle() says nothing is in flight.
 * - cw_outbox_resume() is the highest seq the sink spool held when it was
 *   opened: the pipeline does not put the outputs of input records at or
 *   before it again (they were stored before a crash).
 * - cw_outbox_abort() (any thread) makes waiting puts and cw_outbox_drain()
 *   give up: used at shutdown when the sink spool stays full.
 *
 * Threads: create before cw_spool_start() of the sink spool (it registers a
 * space listener), on the main thread; put/poll/drain on the pipeline
 * thread; done callbacks on the sink spool's writer thread.
 */
#ifndef CW_OUTBOX_H
#define CW_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "storage/spool.h"

typedef struct cw_outbox cw_outbox;

/* Returns 0, or a negative errno. */
int cw_outbox_create(cw_outbox **out, cw_spool *sink_spool, uint64_t max_bytes);

/* Copies body and queues it. Returns 0, or -1 once aborted or when the sink
 * spool refuses the record for good (stopped, invalid): not stored. */
int cw_outbox_put(cw_outbox *o, uint8_t kind, const void *body, size_t len, uint64_t seq);

/* Frees what became durable and resubmits what failed. Cheap; call often. */
void cw_outbox_poll(cw_outbox *o);

uint64_t cw_outbox_durable(cw_outbox *o);
int cw_outbox_idle(cw_outbox *o);
uint64_t cw_outbox_resume(const cw_outbox *o);

/* Waits until everything put is durable. Returns 0, or -1 if aborted. */
int cw_outbox_drain(cw_outbox *o);

void cw_outbox_abort(cw_outbox *o);

/* After the pipeline thread stopped: frees what is left. */
void cw_outbox_free(cw_outbox *o);

#endif
