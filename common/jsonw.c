#include "common/jsonw.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char hexdigits[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence starting at s (at most n bytes), or 0
 * if it is not valid; *bad is then the number of bytes forming the maximal
 * invalid subpart (at least 1), replaced by a single U+FFFD as the Unicode
 * standard recommends. Table 3-7 of the standard lists the well-formed
 * byte sequences checked here. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;      /* no overlongs */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;      /* no overlongs */
        else if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < need && i < n; i++) {
        unsigned char b = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) break;
    }
    if (i == need) return need;
    *bad = i;
    return 0;
}

int cw_json_escape(cw_buf *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    /* Worst case: every byte becomes a 6-byte \u00XX escape or a 3-byte
     * U+FFFD; reserve for the common case and grow when needed. */
    if (cw_buf_append(out, "\"", 1) < 0) return -1;
    size_t i = 0;
    while (i < len) {
        /* Copy the longest run that needs no escaping in one append. */
        size_t run = i;
        while (run < len && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            if (cw_buf_append(out, s + i, run - i) < 0) return -1;
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            char esc[6];
            size_t n = 2;
            esc[0] = '\\';
            switch (c) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hexdigits[c >> 4];
                esc[5] = hexdigits[c & 15];
                n = 6;
            }
            if (cw_buf_append(out, esc, n) < 0) return -1;
            i++;
            continue;
        }
        size_t bad = 0;
        size_t n = utf8_seq(s + i, len - i, &bad);
        if (n) {
            if (cw_buf_append(out, s + i, n) < 0) return -1;
            i += n;
        } else {
            if (cw_buf_append(out, "\xEF\xBF\xBD", 3) < 0) return -1;
            i += bad;
        }
    }
    return cw_buf_append(out, "\"", 1);
}

size_t cw_json_format_time_ns(char *buf, size_t size, int64_t ns)
{
    /* Floor division so times before 1970 still get a positive fraction. */
    int64_t sec = ns / 1000000000;
    int64_t frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) memset(&tm, 0, sizeof tm);
    int year = tm.tm_year + 1900;
    if (year >= 0 && year <= 9999 && size > 30) {
        /* By hand: this runs for every event written (snprintf was a
         * visible share of the pipeline's time). */
        const struct {
            int v, digits;
            char after;
        } parts[] = {{year, 4, '-'},      {tm.tm_mon + 1, 2, '-'}, {tm.tm_mday, 2, 'T'},
                     {tm.tm_hour, 2, ':'}, {tm.tm_min, 2, ':'},     {tm.tm_sec, 2, '.'},
                     {(int)frac, 9, 'Z'}};
        char *p = buf;
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            int v = parts[i].v;
            for (int d = parts[i].digits - 1; d >= 0; d--, v /= 10) p[d] = (char)('0' + v % 10);
            p += parts[i].digits;
            *p++ = parts[i].after;
        }
        *p = '\0';
        return (size_t)(p - buf);
    }
    int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRId64 "Z", year,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    if (n < 0) return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

void cw_jsonw_init(cw_jsonw *w, cw_buf *out)
{
    w->out = out;
    w->depth = 0;
    w->err = 0;
    w->nonempty = 0;
    w->after_key = 0;
}

int cw_jsonw_error(const cw_jsonw *w)
{
    return w->err ? -1 : 0;
}

/* Writes the comma that separates this value from the previous member,
 * unless a key was just written. */
static int sep(cw_jsonw *w)
{
    if (w->err) return -1;
    if (w->after_key) {
        w->after_key = 0;
        return 0;
    }
    uint32_t bit = 1u << w->depth;
    if (w->nonempty & bit) {
        if (cw_buf_append(w->out, ",", 1) < 0) {
            w->err = 1;
            return -1;
        }
    }
    w->nonempty |= bit;
    return 0;
}

static void put(cw_jsonw *w, const char *s, size_t n)
{
    if (!w->err && cw_buf_append(w->out, s, n) < 0) w->err = 1;
}

static void open_(cw_jsonw *w, char c)
{
    if (sep(w) < 0) return;
    if (w->depth + 1 >= CW_JSONW_DEPTH) {
        w->err = 1;
        return;
    }
    put(w, &c, 1);
    w->depth++;
    w->nonempty &= ~(1u << w->depth);
}

static void close_(cw_jsonw *w, char c)
{
    if (w->err) return;
    if (w->depth == 0) {
        w->err = 1;
        return;
    }
    w->depth--;
    put(w, &c, 1);
}

void cw_jsonw_obj_open(cw_jsonw *w)
{
    open_(w, '{');
}

void cw_jsonw_obj_close(cw_jsonw *w)
{
    close_(w, '}');
}

void cw_jsonw_arr_open(cw_jsonw *w)
{
    open_(w, '[');
}

void cw_jsonw_arr_close(cw_jsonw *w)
{
    close_(w, ']');
}

void cw_jsonw_keyn(cw_jsonw *w, const char *key, size_t len)
{
    if (sep(w) < 0) return;
    if (cw_json_escape(w->out, key, len) < 0) w->err = 1;
    put(w, ":", 1);
    w->after_key = 1;
}

void cw_jsonw_key(cw_jsonw *w, const char *key)
{
    cw_jsonw_keyn(w, key, strlen(key));
}

void cw_jsonw_strn(cw_jsonw *w, const char *s, size_t len)
{
    if (sep(w) < 0) return;
    if (cw_json_escape(w->out, s, len) < 0) w->err = 1;
}

void cw_jsonw_str(cw_jsonw *w, const char *s)
{
    if (!s) cw_jsonw_null(w);
    else cw_jsonw_strn(w, s, strlen(s));
}

void cw_jsonw_str_or_null(cw_jsonw *w, const char *s)
{
    if (!s || !*s) cw_jsonw_null(w);
    else cw_jsonw_strn(w, s, strlen(s));
}

/* Decimal digits of v, without printf (a profile of the sink path showed
 * vfprintf among the pipeline's top costs). */
static void put_u64(cw_jsonw *w, uint64_t v, int neg)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do tmp[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    if (neg) tmp[--i] = '-';
    put(w, tmp + i, sizeof tmp - i);
}

void cw_jsonw_int(cw_jsonw *w, int64_t v)
{
    if (sep(w) < 0) return;
    put_u64(w, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, v < 0);
}

void cw_jsonw_uint(cw_jsonw *w, uint64_t v)
{
    if (sep(w) < 0) return;
    put_u64(w, v, 0);
}

void cw_jsonw_bool(cw_jsonw *w, int v)
{
    if (sep(w) < 0) return;
    if (v) put(w, "true", 4);
    else put(w, "false", 5);
}

void cw_jsonw_null(cw_jsonw *w)
{
    if (sep(w) < 0) return;
    put(w, "null", 4);
}

/* jansson dump callback: appends to the writer's buffer. */
static int dump_cb(const char *buffer, size_t size, void *data)
{
    cw_jsonw *w = data;
    return cw_buf_append(w->out, buffer, size) < 0 ? -1 : 0;
}

void cw_jsonw_json(cw_jsonw *w, const json_t *v)
{
    if (!v) {
        cw_jsonw_null(w);
        return;
    }
    if (sep(w) < 0) return;
    /* JSON_ENCODE_ANY: v may be a scalar. */
    if (json_dump_callback(v, dump_cb, w, JSON_COMPACT | JSON_ENCODE_ANY) < 0) w->err = 1;
}

void cw_jsonw_time_ns(cw_jsonw *w, int64_t ns)
{
    char t[64];
    size_t n = cw_json_format_time_ns(t, sizeof t, ns);
    cw_jsonw_strn(w, t, n);
}
