/* jsonw: a small streaming JSON writer that appends compact JSON text to a
 * cw_buf, for output lines built from untrusted strings.
 *
 * Strings are written as given when they are valid UTF-8; every byte sequence
 * that is not valid UTF-8 (stray continuation bytes, overlong forms, UTF-16
 * surrogates, code points above U+10FFFF, truncated sequences) becomes U+FFFD,
 * and control characters are escaped, so the output is always valid JSON
 * whatever an agent or API server sent. jansson cannot do this itself: it
 * refuses invalid UTF-8 instead of repairing it.
 *
 * The writer tracks commas for nesting up to CW_JSONW_DEPTH levels. Errors
 * (the buffer's cap reached, out of memory, nesting too deep) are sticky:
 * later calls do nothing and cw_jsonw_error() reports them, so callers can
 * write a whole object and check once. Not thread-safe; owned by the caller.
 */
#ifndef CW_JSONW_H
#define CW_JSONW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define CW_JSONW_DEPTH 32

typedef struct cw_jsonw {
    cw_buf *out;
    int depth;
    int err;
    /* Bit d: the container at depth d already holds a member. */
    uint32_t nonempty;
    /* A key was just written: the next value needs no comma. */
    int after_key;
} cw_jsonw;

void cw_jsonw_init(cw_jsonw *w, cw_buf *out);
/* 0, or -1 if any call since init failed. */
int cw_jsonw_error(const cw_jsonw *w);

void cw_jsonw_obj_open(cw_jsonw *w);
void cw_jsonw_obj_close(cw_jsonw *w);
void cw_jsonw_arr_open(cw_jsonw *w);
void cw_jsonw_arr_close(cw_jsonw *w);

/* Object member name; sanitized like any string. */
void cw_jsonw_key(cw_jsonw *w, const char *key);
void cw_jsonw_keyn(cw_jsonw *w, const char *key, size_t len);

/* String values; NULL writes null. */
void cw_jsonw_str(cw_jsonw *w, const char *s);
void cw_jsonw_strn(cw_jsonw *w, const char *s, size_t len);
/* Like cw_jsonw_str, but NULL and "" both write null: for "unknown". */
void cw_jsonw_str_or_null(cw_jsonw *w, const char *s);
void cw_jsonw_int(cw_jsonw *w, int64_t v);
void cw_jsonw_uint(cw_jsonw *w, uint64_t v);
void cw_jsonw_bool(cw_jsonw *w, int v);
void cw_jsonw_null(cw_jsonw *w);
/* A jansson value, serialized compactly (jansson output is valid JSON). */
void cw_jsonw_json(cw_jsonw *w, const json_t *v);
/* ns since the Unix epoch as an RFC 3339 UTC string with nanoseconds,
 * e.g. "2024-05-01T10:00:00.004000000Z". */
void cw_jsonw_time_ns(cw_jsonw *w, int64_t ns);

/* Appends s as a quoted, escaped JSON string (the primitive behind
 * cw_jsonw_strn). Returns 0 or -1 (cap or memory); on -1 `out` may hold a
 * partial string. */
int cw_json_escape(cw_buf *out, const char *s, size_t len);

/* Formats ns since the Unix epoch as RFC 3339 UTC with nanoseconds into buf
 * (at least 40 bytes). Returns the length. */
size_t cw_json_format_time_ns(char *buf, size_t size, int64_t ns);

#endif
