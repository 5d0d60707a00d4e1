/* ingest: the agent listener. Accepts agent connections on several libuv
 * loops (one thread each, all accepting on the same port through
 * SO_REUSEPORT), parses frames, validates them, appends accepted batches to
 * the spool and acknowledges them once durable.
 *
 * Life cycle, all on the main thread:
 *   cw_ingest_create()  binds the listeners (so a busy port fails early) and
 *                       registers a spool space listener: call it before
 *                       cw_spool_start();
 *   cw_ingest_start()   starts the loop threads;
 *   cw_ingest_stop()    graceful: stops accepting and reading, waits until
 *                       every batch handed to the spool is durable and acked,
 *                       closes connections, joins the threads. The spool must
 *                       still be running during the call.
 *   cw_ingest_free().
 */
#ifndef CW_INGEST_H
#define CW_INGEST_H

#include <stddef.h>

#include "common/config.h"
#include "server/registry.h"
#include "storage/spool.h"

typedef struct cw_ingest cw_ingest;

int cw_ingest_create(cw_ingest **out, const cw_config *cfg, cw_spool *spool, cw_registry *reg,
                     char *err, size_t errlen);
int cw_ingest_start(cw_ingest *in);
/* The port actually bound (useful with port 0). */
int cw_ingest_port(const cw_ingest *in);
void cw_ingest_stop(cw_ingest *in);
void cw_ingest_free(cw_ingest *in);

#endif
