/* http: chainwatchd's HTTP API, served by libh2o (HTTP/1.1) on a libuv loop
 * of its own, in a thread of its own. h2o stays inside http.c; the audit
 * webhook's logic is in audit.h.
 *
 * Routes
 *   GET  /healthz                    200 "ok\n"
 *   GET  /metrics                    200 Prometheus text (cw_metrics_render)
 *   GET  /api/v1/agents              200 JSON array: every known agent, its
 *        identity from Hello, connected or not, last seen, acked seq, events
 *   POST /api/v1/k8s-audit/{cluster} an audit.k8s.io Event or EventList;
 *        200 {"accepted":N,"duplicates":M,"invalid":K} once every accepted
 *        event is durable in the spool (CW_REC_AUDIT, key = cluster);
 *        400 {"error":...} bad cluster name or not an audit payload;
 *        413 body over http.max_body_bytes (refused by h2o from the
 *            Content-Length, before the body is read; the connection is then
 *            closed after draining what the client still sends, for at most
 *            2 s, so that it reads the 413 rather than a reset) or a JSON
 *            tree too large for the parse budget (see audit.h);
 *        503 {"error":...} + Retry-After when the spool stayed full, failed,
 *            or the server is stopping. Events of that request that were
 *            stored stay stored; the API server's retry is de-duplicated.
 *   Anything else: 404; a known path with another method: 405 with Allow.
 *   HEAD works wherever GET does. While stopping, every request gets 503.
 *   HTTP/1.1 only (no TLS yet; h2o refuses plaintext HTTP/2).
 *
 * Backpressure and limits
 * - When the spool says CW_SPOOL_FULL, the request is parked (FIFO) and
 *   resumed when the spool's space listener fires; new audit requests queue
 *   behind parked ones. At most CW_HTTP_MAX_PARKED requests park, for at most
 *   CW_HTTP_PARK_TIMEOUT_MS; past either, the request gets 503.
 * - Parsed events waiting for the spool are limited to
 *   max(CW_HTTP_INFLIGHT_BYTES, 2 x http.max_body_bytes) in total; a request
 *   arriving above that gets 503.
 * - Connections: min(1024, max(16, CW_HTTP_BODY_MEMORY / http.max_body_bytes)),
 *   because h2o buffers a whole request body per connection (HTTP/1.1 handles
 *   one request at a time; h2c upgrade is off). Past the limit, new
 *   connections are accepted and closed at once.
 * - Parsing runs on the loop thread (it is CPU work, not a blocking call);
 *   its memory is bounded by audit.h's parse budget.
 *
 * Life cycle, all on the main thread (the order matters, see below):
 *   cw_spool_open(); cw_http_create() binds the listener (a busy port fails
 *   here, with the reason) and registers a spool space listener, so it must
 *   come before cw_spool_start(); cw_spool_start(); cw_http_start() starts
 *   the thread. At shutdown: cw_http_stop() stops accepting, answers new
 *   requests with 503, lets every in-flight request finish (its spool writes
 *   complete and its response is sent), closes the connections and joins the
 *   thread; the spool must still be running during the call. Then
 *   cw_spool_stop(); cw_spool_close(); and only then cw_http_free(), since
 *   the spool may call the space listener until it is closed (after
 *   cw_http_stop() the listener does nothing).
 *
 * Threads: the public functions run on the main thread. Everything else runs
 * on the HTTP loop thread, except the spool callbacks (writer thread), which
 * only post to the loop's mailbox.
 */
#ifndef CW_HTTP_H
#define CW_HTTP_H

#include <stddef.h>

#include "common/config.h"
#include "server/registry.h"
#include "storage/spool.h"

#define CW_HTTP_MAX_PARKED 64
#define CW_HTTP_PARK_TIMEOUT_MS 15000
#define CW_HTTP_INFLIGHT_BYTES (256ull << 20)
#define CW_HTTP_BODY_MEMORY (1ull << 30)
#define CW_HTTP_RETRY_AFTER_S 5

typedef struct cw_http cw_http;

/* Binds cfg->http_listen (HOST:PORT as cw_config_parse_addr takes it; port 0
 * picks a free port, for tests) and registers the space listener on `spool`.
 * Returns 0, or -1 with a message in err (then call cw_http_free). */
int cw_http_create(cw_http **out, const cw_config *cfg, cw_spool *spool, cw_registry *reg,
                   char *err, size_t errlen);
/* Starts the loop thread. Returns 0 or -1 with a message in err. */
int cw_http_start(cw_http *h, char *err, size_t errlen);
/* The port actually bound. */
int cw_http_port(const cw_http *h);
/* Graceful stop (see above). Returns 0, or a negative libuv error if the
 * loop could not be closed cleanly (a handle was left open). Idempotent. */
int cw_http_stop(cw_http *h);
/* Frees everything; after cw_spool_close(), or when the spool was never
 * started. Safe on NULL and after a failed create or start. */
void cw_http_free(cw_http *h);

#endif
