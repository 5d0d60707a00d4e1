#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int g_level = CW_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void cw_log_set_level(enum cw_log_level level)
{
    g_level = level;
}

int cw_log_parse_level(const char *s, enum cw_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum cw_log_level)i;
            return 0;
        }
    }
    return -1;
}

void cw_log(enum cw_log_level level, const char *module, const char *fmt, ...)
{
    if ((int)level < g_level) return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], module);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2; /* truncated: keep it one line */
    line[len++] = '\n';
    /* One write per line so lines from different threads never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void cw_vlog_limited(cw_log_limit *l, uint64_t now_ms, enum cw_log_level level,
                     const char *module, const char *fmt, va_list ap)
{
    if (l->logged && now_ms - l->last_ms < 1000) {
        l->suppressed++;
        return;
    }
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (l->suppressed)
        cw_log(level, module, "%s (%llu similar suppressed)", msg,
               (unsigned long long)l->suppressed);
    else
        cw_log(level, module, "%s", msg);
    l->logged = 1;
    l->last_ms = now_ms;
    l->suppressed = 0;
}
