/* log: one-line, leveled log messages to stderr.
 *
 * Thread-safe (each line is a single write(2)). Lines look like
 *   2026-11-28T12:00:00.123Z warn ingest: agent node-a: frame too large (9000000 > 4194304)
 * The level threshold is process-wide and set once at start-up.
 */
#ifndef CW_LOG_H
#define CW_LOG_H

enum cw_log_level { CW_LOG_DEBUG, CW_LOG_INFO, CW_LOG_WARN, CW_LOG_ERROR };

void cw_log_set_level(enum cw_log_level level);
/* Parses "debug", "info", "warn", "error"; returns 0 or -1. */
int cw_log_parse_level(const char *s, enum cw_log_level *out);
void cw_log(enum cw_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define cw_debug(mod, ...) cw_log(CW_LOG_DEBUG, mod, __VA_ARGS__)
#define cw_info(mod, ...) cw_log(CW_LOG_INFO, mod, __VA_ARGS__)
#define cw_warn(mod, ...) cw_log(CW_LOG_WARN, mod, __VA_ARGS__)
#define cw_error(mod, ...) cw_log(CW_LOG_ERROR, mod, __VA_ARGS__)

#endif
