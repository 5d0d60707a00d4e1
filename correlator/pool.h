/* pool: a bump allocator for a rule set's load-time data (rule text, AST,
 * compiled tables) that is freed all at once with the set. Allocations are
 * never freed one by one. Not thread-safe: one owner at a time.
 */
#ifndef CW_POOL_H
#define CW_POOL_H

#include <stddef.h>

typedef struct cw_pool_block cw_pool_block;
typedef struct cw_pool {
    cw_pool_block *head;
    size_t total; /* bytes handed out, for the load bound */
} cw_pool;

void cw_pool_init(cw_pool *p);
void cw_pool_free(cw_pool *p);
/* Zeroed memory, 16-aligned; NULL on out of memory. */
void *cw_pool_alloc(cw_pool *p, size_t n);
char *cw_pool_strndup(cw_pool *p, const char *s, size_t n);
char *cw_pool_strdup(cw_pool *p, const char *s);

#endif
