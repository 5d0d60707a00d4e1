/* log: one-line, leveled log messages to stderr.
 *
 * Thread-safe (each line is a single write(2)). Lines look like
 *   2026-11-28T12:00:00.123Z warn ingest: agent node-a: frame too large (9000000 > 4194304)
 * The level threshold is process-wide and set once at start-up.
 */
#ifndef CW_LOG_H
#define CW_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum cw_log_level { CW_LOG_DEBUG, CW_LOG_INFO, CW_LOG_WARN, CW_LOG_ERROR };

void cw_log_set_level(enum cw_log_level level);
/* Parses "debug", "info", "warn", "error"; returns 0 or -1. */
int cw_log_parse_level(const char *s, enum cw_log_level *out);
void cw_log(enum cw_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Rate limit for one kind of log line, so a misbehaving peer cannot flood
 * the log: at most one line per second; the next line that passes says how
 * many were suppressed. Owned by one thread (no locking). */
typedef struct cw_log_limit {
    int logged;
    uint64_t last_ms, suppressed;
} cw_log_limit;

void cw_vlog_limited(cw_log_limit *l, uint64_t now_ms, enum cw_log_level level,
                     const char *module, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

#define cw_debug(mod, ...) cw_log(CW_LOG_DEBUG, mod, __VA_ARGS__)
#define cw_info(mod, ...) cw_log(CW_LOG_INFO, mod, __VA_ARGS__)
#define cw_warn(mod, ...) cw_log(CW_LOG_WARN, mod, __VA_ARGS__)
#define cw_error(mod, ...) cw_log(CW_LOG_ERROR, mod, __VA_ARGS__)

#endif
