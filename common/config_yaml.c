/* config_yaml: the YAML half of config, reading a file (bounded to
 * CW_CONFIG_FILE_MAX) and applying its keys through config.c's table.
 *
 * The event API is used rather than the document API: it stops at the first
 * problem instead of building a tree of whatever the file holds, and it never
 * expands aliases (which are refused). Only known sections are descended into,
 * so nesting depth is bounded by the table, not by the input.
 *
 * Main thread, start-up only: reading the file blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "common/config.h"
#include "common/config_internal.h"

/* Longest dotted key built here; every real key is far shorter. */
#define KEY_MAX 64
/* Distinct keys and sections one file can name; unknown ones are errors. */
#define SEEN_MAX 128


struct yl {
    yaml_parser_t p;
    yaml_event_t ev;
    bool have_ev;
    const char *name, *buf;
    size_t len;
    cw_config *c;
    char *err;
    size_t errlen;
    char seen[SEEN_MAX][KEY_MAX]; /* keys and sections already given */
    size_t nseen;
};

static size_t ev_line(const struct yl *y)
{
    return y->ev.start_mark.line + 1;
}

static int next_event(struct yl *y)
{
    if (y->have_ev) yaml_event_delete(&y->ev);
    y->have_ev = false;
    if (yaml_parser_parse(&y->p, &y->ev)) {
        y->have_ev = true;
        if (y->ev.type == YAML_ALIAS_EVENT)
            return cw_config_fail(y->err, y->errlen, "%s:%zu: aliases are not supported", y->name,
                        ev_line(y));
        return 0;
    }
    if (y->p.error == YAML_MEMORY_ERROR)
        return cw_config_fail(y->err, y->errlen, "%s: out of memory", y->name);
    size_t line = y->p.problem_mark.line + 1;
    if (y->p.error == YAML_READER_ERROR) { /* no mark: count lines up to the offset */
        line = 1;
        for (size_t i = 0; i < y->p.problem_offset && i < y->len; i++)
            line += y->buf[i] == '\n';
    }
    const char *ctx = y->p.context ? y->p.context : "";
    return cw_config_fail(y->err, y->errlen, "%s:%zu: %s%s%s%s", y->name, line,
                y->p.problem ? y->p.problem : "invalid YAML", *ctx ? " (" : "", ctx,
                *ctx ? ")" : "");
}

static bool ev_is_null(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

static int yaml_leaf(struct yl *y, const struct cw_config_entry *e, const char *path)
{
    if (y->ev.type != YAML_SCALAR_EVENT)
        return cw_config_fail(y->err, y->errlen, "%s:%zu: %s: expected a single value, not a %s", y->name,
                    ev_line(y), path,
                    y->ev.type == YAML_SEQUENCE_START_EVENT ? "list" : "mapping");
    const char *v = (const char *)y->ev.data.scalar.value;
    size_t len = y->ev.data.scalar.length;
    if (cw_config_entry_is_text(e) && ev_is_null(&y->ev)) len = 0; /* `events_out:` means off */
    char msg[512];
    if (cw_config_set_entry(y->c, e, v, len, msg, sizeof msg) != 0)
        return cw_config_fail(y->err, y->errlen, "%s:%zu: %s", y->name, ev_line(y), msg);
    return 0;
}

static int yaml_map(struct yl *y, const char *prefix)
{
    char sh[80];
    for (;;) {
        if (next_event(y) != 0) return -1;
        if (y->ev.type == YAML_MAPPING_END_EVENT) return 0;
        if (y->ev.type != YAML_SCALAR_EVENT)
            return cw_config_fail(y->err, y->errlen, "%s:%zu: expected a key", y->name, ev_line(y));
        const char *k = (const char *)y->ev.data.scalar.value;
        size_t klen = y->ev.data.scalar.length;
        size_t line = ev_line(y);
        char path[KEY_MAX];
        int n = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
        /* A dot inside one key would let `ingest.threads:` at the top level
         * alias the nested key; only nesting spells a dotted path. */
        bool known = klen > 0 && !memchr(k, '.', klen) && !memchr(k, '\0', klen) && n >= 0 &&
                     (size_t)n < sizeof path;
        const struct cw_config_entry *e = known ? cw_config_find_entry(path) : NULL;
        bool section = known && !e && cw_config_is_section(path);
        if (!e && !section) {
            char full[KEY_MAX + 90];
            snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "",
                     cw_config_shown(k, klen, sh, sizeof sh));
            return cw_config_fail(y->err, y->errlen, "%s:%zu: unknown key '%s'", y->name, line, full);
        }
        for (size_t i = 0; i < y->nseen; i++)
            if (strcmp(y->seen[i], path) == 0)
                return cw_config_fail(y->err, y->errlen, "%s:%zu: duplicate key '%s'", y->name, line, path);
        if (y->nseen < sizeof y->seen / sizeof y->seen[0]) strcpy(y->seen[y->nseen++], path);
        if (next_event(y) != 0) return -1;
        if (e) {
            if (yaml_leaf(y, e, path) != 0) return -1;
        } else if (y->ev.type == YAML_MAPPING_START_EVENT) {
            if (yaml_map(y, path) != 0) return -1;
        } else if (!ev_is_null(&y->ev)) { /* `ingest:` alone is an empty section */
            return cw_config_fail(y->err, y->errlen, "%s:%zu: '%s' is a section: expected keys under it",
                        y->name, ev_line(y), path);
        }
    }
}

static int yaml_stream(struct yl *y)
{
    if (next_event(y) != 0) return -1; /* STREAM_START */
    if (next_event(y) != 0) return -1;
    if (y->ev.type == YAML_STREAM_END_EVENT) return 0; /* empty file: all defaults */
    if (next_event(y) != 0) return -1;                 /* after DOCUMENT_START */
    if (y->ev.type == YAML_MAPPING_START_EVENT) {
        if (yaml_map(y, "") != 0) return -1;
    } else if (!ev_is_null(&y->ev)) {
        return cw_config_fail(y->err, y->errlen, "%s:%zu: expected a mapping of keys at the top level",
                    y->name, ev_line(y));
    }
    if (next_event(y) != 0) return -1; /* DOCUMENT_END */
    if (next_event(y) != 0) return -1;
    if (y->ev.type != YAML_STREAM_END_EVENT)
        return cw_config_fail(y->err, y->errlen, "%s:%zu: only one YAML document is allowed", y->name,
                    ev_line(y));
    return 0;
}

int cw_config_load_yaml_buffer(cw_config *c, const char *name, const char *buf, size_t len,
                               char *err, size_t errlen)
{
    if (len > CW_CONFIG_FILE_MAX)
        return cw_config_fail(err, errlen, "%s: larger than %u bytes", name, CW_CONFIG_FILE_MAX);
    struct yl *y = calloc(1, sizeof *y);
    if (!y) return cw_config_fail(err, errlen, "%s: out of memory", name);
    y->name = name, y->buf = buf, y->len = len, y->c = c, y->err = err, y->errlen = errlen;
    int rc = -1;
    if (!yaml_parser_initialize(&y->p)) {
        cw_config_fail(err, errlen, "%s: out of memory", name);
    } else {
        yaml_parser_set_input_string(&y->p, (const unsigned char *)buf, len);
        rc = yaml_stream(y);
        if (y->have_ev) yaml_event_delete(&y->ev);
        yaml_parser_delete(&y->p);
    }
    free(y);
    return rc;
}

int cw_config_load_file(cw_config *c, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cw_config_fail(err, errlen, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cw_config_fail(err, errlen, "%s: not a regular file", path);
    }
    /* Read one byte past the limit: the file may have grown since fstat. */
    char *buf = malloc(CW_CONFIG_FILE_MAX + 1);
    if (!buf) {
        close(fd);
        return cw_config_fail(err, errlen, "%s: out of memory", path);
    }
    size_t len = 0;
    while (len < CW_CONFIG_FILE_MAX + 1) {
        ssize_t r = read(fd, buf + len, CW_CONFIG_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return cw_config_fail(err, errlen, "%s: %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    int rc = cw_config_load_yaml_buffer(c, path, buf, len, err, errlen);
    free(buf);
    return rc;
}

