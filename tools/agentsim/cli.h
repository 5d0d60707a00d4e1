/* cli: command-line helpers shared by the agentsim subcommands: number
 * parsing with range checks, the default agent-id prefix, agent-id checks.
 * Errors go to stderr as "agentsim <cmd>: ..." so a bad argument is named.
 * Main thread, before any loop runs.
 */
#ifndef SIM_CLI_H
#define SIM_CLI_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0, or -1 after printing why `value` is not valid for --`opt`. */
int sim_cli_double(const char *cmd, const char *opt, const char *value, double min, double max,
                   double *out);
int sim_cli_u64(const char *cmd, const char *opt, const char *value, uint64_t min, uint64_t max,
                uint64_t *out);

/* "sim-<pid>-<unix seconds>-": unique per run, so that a rerun against the
 * same server data directory starts fresh agent ids (seq 1) instead of
 * colliding with the seqs an earlier run left there. */
void sim_cli_default_prefix(char *out, size_t len);

/* 1 when `id` is usable as an agent id here: 1..255 bytes, printable ASCII,
 * no whitespace (the ack log is space-separated). */
int sim_cli_agent_id_ok(const char *id);

#endif
