/* json_repair: makes Go-emitted JSON acceptable to jansson. The contract is
 * in json_repair.h. The scan tracks only whether it is inside a string: the
 * input already parsed as far as Go is concerned, so that is enough to tell
 * number tokens and string bytes apart. */
#include "server/json_repair.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else
        return 0;
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

static int hex4(const char *s, size_t n, unsigned *out)
{
    if (n < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* 1 if the number token overflows the way jansson's lexer checks it
 * (strtoll for integers, strtod for reals). */
static int number_overflows(const char *tok, size_t n)
{
    char small[64];
    char *copy = n < sizeof(small) ? small : malloc(n + 1);
    if (!copy)
        return 0;
    memcpy(copy, tok, n);
    copy[n] = '\0';
    int integer = strpbrk(copy, ".eE") == NULL, over;
    errno = 0;
    if (integer) {
        (void)strtoll(copy, NULL, 10);
        over = errno == ERANGE;
    } else {
        double v = strtod(copy, NULL);
        over = errno == ERANGE && isinf(v);
    }
    if (copy != small)
        free(copy);
    return over;
}

char *cw_json_repair(const char *in, size_t len, size_t *outlen)
{
    static const char fffd_utf8[] = "\xEF\xBF\xBD", fffd_esc[] = "\\uFFFD";
    /* Worst cases: one byte becomes three; a number gains two quotes. */
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t i = 0, o = 0;
    int in_str = 0, changed = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (!in_str) {
            if (c == '"') {
                in_str = 1;
                out[o++] = in[i++];
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                size_t j = i + 1;
                while (j < len && strchr("0123456789+-.eE", in[j]) && in[j] != '\0')
                    j++;
                int q = number_overflows(in + i, j - i);
                if (q)
                    out[o++] = '"';
                memcpy(out + o, in + i, j - i);
                o += j - i;
                if (q)
                    out[o++] = '"';
                changed |= q;
                i = j;
            } else
                out[o++] = in[i++];
            continue;
        }
        if (c == '"') {
            in_str = 0;
            out[o++] = in[i++];
        } else if (c == '\\' && i + 1 < len && in[i + 1] == 'u') {
            unsigned u, u2;
            if (hex4(in + i + 2, len - i - 2, &u) != 0) {
                out[o++] = in[i++]; /* let jansson report it */
                continue;
            }
            if (u >= 0xD800 && u <= 0xDBFF && i + 12 <= len && in[i + 6] == '\\' &&
                in[i + 7] == 'u' && hex4(in + i + 8, len - i - 8, &u2) == 0 && u2 >= 0xDC00 &&
                u2 <= 0xDFFF) {
                memcpy(out + o, in + i, 12); /* a proper pair */
                o += 12;
                i += 12;
            } else if (u >= 0xD800 && u <= 0xDFFF) {
                memcpy(out + o, fffd_esc, 6);
                o += 6;
                i += 6;
                changed = 1;
            } else {
                memcpy(out + o, in + i, 6);
                o += 6;
                i += 6;
            }
        } else if (c == '\\' && i + 1 < len) {
            out[o++] = in[i++];
            out[o++] = in[i++];
        } else if (c >= 0x80) {
            size_t n = utf8_valid_len((const unsigned char *)in + i, len - i);
            if (n) {
                memcpy(out + o, in + i, n);
                o += n;
                i += n;
            } else {
                memcpy(out + o, fffd_utf8, 3);
                o += 3;
                i++;
                changed = 1;
            }
        } else
            out[o++] = in[i++];
    }
    if (!changed) {
        free(out);
        return NULL;
    }
    *outlen = o;
    return out;
}
