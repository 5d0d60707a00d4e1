/* stored_event: an enriched cw_event as the chainwatch.v1.StoredEvent
 * protobuf (proto/chainwatch.proto), the form the sinks store and publish
 * (the value of a record on the Kafka events topic).
 *
 * The agent's own Event message is embedded as it was received; an audit
 * event carries its audit.k8s.io object as compact JSON. Empty context
 * fields are left out.
 *
 * Threads: a packer is used by one thread (the pipeline's).
 */
#ifndef CW_STORED_EVENT_H
#define CW_STORED_EVENT_H

#include "common/buf.h"
#include "correlator/event.h"

typedef struct cw_stored_packer {
    Chainwatch__V1__Label *labels;
    Chainwatch__V1__Label **label_ptrs;
    size_t cap;
} cw_stored_packer;

void cw_stored_packer_init(cw_stored_packer *pk);
void cw_stored_packer_free(cw_stored_packer *pk);

/* Appends the packed StoredEvent of ev to out. Returns 0, or -1 (out of
 * memory, out's cap). */
int cw_stored_event_pack(cw_stored_packer *pk, const cw_event *ev, cw_buf *out);

/* The Kafka partition key of ev: "cluster/namespace/pod" when it has a Pod,
 * else the host (else the agent id). Writes at most size-1 bytes plus NUL and
 * returns the length. */
size_t cw_stored_event_key(const cw_event *ev, char *out, size_t size);

#endif
