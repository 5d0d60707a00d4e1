#include "hist.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < 64) return (unsigned)v;
    unsigned e = 63 - (unsigned)__builtin_clzll(v); /* >= 6 */
    if (e > 40) return SIM_HIST_BUCKETS - 1;
    return 64 + (e - 6) * 32 + (unsigned)((v >> (e - 5)) & 31);
}

/* The smallest value of bucket i and the width of the bucket. */
static void bucket_range(unsigned i, uint64_t *lo, uint64_t *width)
{
    if (i < 64) {
        *lo = i;
        *width = 1;
        return;
    }
    unsigned e = (i - 64) / 32 + 6, m = (i - 64) % 32;
    *width = (uint64_t)1 << (e - 5);
    *lo = ((uint64_t)1 << e) + m * *width;
}

void sim_hist_add(sim_hist *h, uint64_t us)
{
    h->buckets[bucket_of(us)]++;
    h->count++;
    if (us > h->max) h->max = us;
}

uint64_t sim_hist_quantile(const sim_hist *h, double q)
{
    if (!h->count) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count) rank = h->count - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SIM_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen > rank) {
            uint64_t lo, w;
            bucket_range(i, &lo, &w);
            uint64_t mid = lo + w / 2;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
