/* Small helpers shared by unit tests. */
#ifndef CW_TESTUTIL_H
#define CW_TESTUTIL_H

#include <stdio.h>

#include "common/buf.h"

/* Reads a whole file into a NUL-terminated malloc'ed buffer (len excludes
 * the NUL); NULL if it cannot be opened. */
static inline char *cw_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    cw_buf b;
    cw_buf_init(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) cw_buf_append(&b, chunk, n);
    fclose(f);
    cw_buf_append(&b, "", 1);
    *len = b.len - 1;
    return (char *)b.data;
}

#endif
