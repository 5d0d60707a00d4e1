/* acklog: the --ack-log file, one line per acked batch:
 *
 *     <agent_id> <seq> <count>\n
 *
 * meaning events "<agent_id>:<seq>:0" .. "<agent_id>:<seq>:<count-1>" are
 * durably stored by the server (event ids as the server assigns them). Agent
 * ids never contain whitespace (the simulator checks). Lines are in ack order
 * per agent; agents interleave.
 *
 * Writes are asynchronous (uv_fs_write) in chunks of 64 KiB while the loop
 * runs; sim_acklog_close() writes the rest synchronously and must be called
 * after uv_run() has returned. Pending bytes are capped at 64 MiB: past that
 * (a stalled disk) lines are dropped and close reports the error.
 * Threads: the loop thread only.
 */
#ifndef SIM_ACKLOG_H
#define SIM_ACKLOG_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sim_acklog sim_acklog;

/* Creates or truncates `path`. NULL with a reason in `err` on failure. */
sim_acklog *sim_acklog_open(uv_loop_t *loop, const char *path, char *err, size_t errlen);
void sim_acklog_batch(sim_acklog *l, const char *agent_id, uint64_t seq, uint32_t count);
/* Flushes, closes and frees. Returns 0, or -1 if any line was lost. */
int sim_acklog_close(sim_acklog *l);

#endif
