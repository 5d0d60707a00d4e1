/* hist: a fixed-size latency histogram (log-linear buckets, ~3 % precision)
 * for ack latencies in microseconds. Constant memory whatever the run length.
 * Not thread-safe; one per loop.
 */
#ifndef SIM_HIST_H
#define SIM_HIST_H

#include <stdint.h>

/* 64 exact buckets, then 32 per power of two up to 2^40 us (12 days). */
#define SIM_HIST_BUCKETS (64 + 35 * 32)

typedef struct sim_hist {
    uint64_t count;
    uint64_t max;
    uint64_t buckets[SIM_HIST_BUCKETS];
} sim_hist;

void sim_hist_add(sim_hist *h, uint64_t us);
/* The value at quantile q (0..1), as the middle of its bucket; 0 if empty. */
uint64_t sim_hist_quantile(const sim_hist *h, double q);

#endif
