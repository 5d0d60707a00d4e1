/* evpool: a pool of varied, realistic agent events for the load generator.
 *
 * Built once (deterministically from a seed): mostly process_exec with argv,
 * parent and container, then net_connect, dns_query, file_op, process_exit,
 * and a few net_listen, login, container_start and container_stop, drawn
 * from tables of plausible binaries, command lines, addresses, names and
 * paths. Every event carries the fields the server requires for its type.
 * The generator reuses the events, changing only time_ns, so producing an
 * event costs an assignment and its share of one protobuf-c pack.
 *
 * Not thread-safe: one pool per loop. The pool owns its events.
 */
#ifndef SIM_EVPOOL_H
#define SIM_EVPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "chainwatch.pb-c.h"

typedef struct sim_evpool {
    Chainwatch__V1__Event **events;
    size_t n;
    size_t next; /* cursor for sim_evpool_take() */
} sim_evpool;

/* Builds `n` events. Returns 0 or -1 (out of memory). */
int sim_evpool_build(sim_evpool *p, size_t n, uint32_t seed);
/* Points out[0..k) at the next k pool events (k <= n, so they are distinct)
 * and stamps them with time_ns = t0 + i. */
void sim_evpool_take(sim_evpool *p, Chainwatch__V1__Event **out, size_t k, int64_t t0);
void sim_evpool_free(sim_evpool *p);

#endif
