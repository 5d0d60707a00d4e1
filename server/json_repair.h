/* json_repair: rewrites JSON that Go's encoder can emit but jansson refuses,
 * so that one hostile event cannot make a whole audit batch unparseable.
 *
 * The Kubernetes API server copies a client's raw patch document into an
 * audit event's requestObject, and Go passes through bytes that jansson
 * rejects. The repair, done only after jansson refused a body:
 * - invalid UTF-8 inside strings becomes U+FFFD (as Go's own decoder does);
 * - a \u escape of a lone UTF-16 surrogate becomes \uFFFD;
 * - a number jansson cannot hold (an integer outside int64, a real that
 *   overflows a double) becomes a string with the same digits.
 * Anything else is copied unchanged, so syntax errors stay errors.
 *
 * Pure function, any thread.
 */
#ifndef CW_JSON_REPAIR_H
#define CW_JSON_REPAIR_H

#include <stddef.h>

/* Returns a repaired copy of in[0..len) (malloc'ed, at most 3 x len bytes,
 * caller frees) with its length in *outlen, or NULL when nothing needed
 * repair or memory ran out. */
char *cw_json_repair(const char *in, size_t len, size_t *outlen);

#endif
