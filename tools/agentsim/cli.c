#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sim_cli_double(const char *cmd, const char *opt, const char *value, double min, double max,
                   double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "agentsim %s: --%s %s: expected a number from %g to %g\n", cmd, opt,
                value, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int sim_cli_u64(const char *cmd, const char *opt, const char *value, uint64_t min, uint64_t max,
                uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-' || v < min || v > max) {
        fprintf(stderr, "agentsim %s: --%s %s: expected a whole number from %llu to %llu\n", cmd,
                opt, value, (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

void sim_cli_default_prefix(char *out, size_t len)
{
    snprintf(out, len, "sim-%ld-%lld-", (long)getpid(), (long long)time(NULL));
}

int sim_cli_agent_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 255) return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~') return 0;
    return 1;
}
