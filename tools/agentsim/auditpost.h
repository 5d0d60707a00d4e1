/* auditpost: delivers one Kubernetes audit EventList to chainwatchd's audit
 * webhook (POST <base>/api/v1/k8s-audit/<cluster>), the way an API server's
 * webhook backend does, with retries.
 *
 * libcurl's easy interface blocks, so each attempt runs on libuv's thread
 * pool (uv_queue_work); the loop thread only starts attempts and gets the
 * result. A non-2xx status or a transport error is retried after 250 ms,
 * 500 ms, 1 s, ... up to `max_attempts` attempts; then the callback reports
 * failure. The simulator runs one POST at a time and pauses its replay until
 * the callback, which keeps audit events in order with agent events.
 *
 * Call curl_global_init() once before the first post.
 * Threads: start and callback on the loop thread; curl on a pool thread.
 */
#ifndef SIM_AUDITPOST_H
#define SIM_AUDITPOST_H

#include <stddef.h>
#include <uv.h>

/* Loop thread. `ok` is 1 on a 2xx answer; `status` is the last HTTP status
 * (0 if none); `why` says what went wrong on failure. */
typedef void (*sim_post_cb)(void *user, int ok, long status, const char *why);

/* Starts posting `body` (malloc'd JSON; ownership passes to the post) to
 * `base_url` + "/api/v1/k8s-audit/" + escaped `cluster`. Returns 0, or -1 when
 * out of memory (then `body` is freed and `cb` is not called). */
int sim_post_start(uv_loop_t *loop, const char *base_url, const char *cluster, char *body,
                   size_t len, int max_attempts, sim_post_cb cb, void *user);

#endif
