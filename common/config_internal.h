/* config_internal: what config.c shares with config_yaml.c and nothing else.
 *
 * The settings table lives in config.c; the YAML loader finds rows by their
 * dotted key and stores values through the same parser that flags use, so a
 * value means the same thing wherever it is written. Main thread only.
 */
#ifndef CW_CONFIG_INTERNAL_H
#define CW_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

struct cw_config_entry;

/* The row for a dotted YAML key, or NULL. */
const struct cw_config_entry *cw_config_find_entry(const char *name);

/* Whether `path` is a section: a strict dotted prefix of some key ("ingest"). */
bool cw_config_is_section(const char *path);

/* Whether the row holds text (an empty YAML value then means ""). */
bool cw_config_entry_is_text(const struct cw_config_entry *e);

/* Parses len bytes of v into the row's field, checking type and bounds.
 * Returns 0, or -1 with "KEY: problem" in err and the field unchanged. */
int cw_config_set_entry(cw_config *c, const struct cw_config_entry *e, const char *v, size_t len,
                        char *err, size_t errlen);

/* Formats a message into err (when errlen > 0) and returns -1. */
int cw_config_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies hostile text into out as a short, printable string for messages. */
const char *cw_config_shown(const char *v, size_t len, char *out, size_t outlen);

#endif
