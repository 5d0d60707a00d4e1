#include "auditpost.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define BACKOFF_FIRST_MS 250

typedef struct post {
    uv_loop_t *loop;
    uv_work_t work;
    uv_timer_t timer; /* backoff between attempts */
    char *url;
    char *body;
    size_t len;
    int attempts, max_attempts;
    sim_post_cb cb;
    void *user;
    /* Results of the last attempt, written on the pool thread and read on
     * the loop thread after uv_queue_work's completion (which orders them). */
    long status;
    char why[CURL_ERROR_SIZE + 64];
    char reply[256]; /* start of the response body, for error messages */
    size_t reply_len;
} post;

/* Pool thread: keeps the first bytes of the answer, discards the rest. */
static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    post *p = user;
    size_t len = size * n, room = sizeof p->reply - 1 - p->reply_len;
    memcpy(p->reply + p->reply_len, data, len < room ? len : room);
    p->reply_len += len < room ? len : room;
    p->reply[p->reply_len] = 0;
    return len;
}

/* Pool thread: one blocking attempt. */
static void do_post(uv_work_t *w)
{
    post *p = w->data;
    p->status = 0;
    p->why[0] = 0;
    p->reply_len = 0;
    p->reply[0] = 0;
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(p->why, sizeof p->why, "curl_easy_init failed");
        return;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, p->url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in a pool thread */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        snprintf(p->why, sizeof p->why, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &p->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
}

/* Loop thread: the post is over; the timer is closed before freeing. */
static void on_timer_closed(uv_handle_t *h)
{
    post *p = h->data;
    free(p->url);
    free(p->body);
    free(p);
}

static void after_post(uv_work_t *w, int status);

/* Loop thread: the backoff passed. */
static void on_retry(uv_timer_t *t)
{
    post *p = t->data;
    if (uv_queue_work(p->loop, &p->work, do_post, after_post) < 0) {
        p->cb(p->user, 0, 0, "cannot queue the request");
        uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    }
}

/* Loop thread: an attempt finished. */
static void after_post(uv_work_t *w, int status)
{
    post *p = w->data;
    p->attempts++;
    int ok = status == 0 && p->status >= 200 && p->status < 300;
    if (!ok && !p->why[0])
        snprintf(p->why, sizeof p->why, "HTTP %ld: %.200s", p->status, p->reply);
    if (!ok && p->attempts < p->max_attempts) {
        uint64_t delay = (uint64_t)BACKOFF_FIRST_MS << (p->attempts - 1);
        cw_warn("agentsim", "POST %s: %s; retrying in %llu ms", p->url, p->why,
                (unsigned long long)delay);
        uv_timer_start(&p->timer, on_retry, delay, 0);
        return;
    }
    p->cb(p->user, ok, p->status, ok ? "" : p->why);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

int sim_post_start(uv_loop_t *loop, const char *base_url, const char *cluster, char *body,
                   size_t len, int max_attempts, sim_post_cb cb, void *user)
{
    post *p = calloc(1, sizeof *p);
    char *esc = curl_easy_escape(NULL, cluster, 0);
    size_t base = strlen(base_url);
    while (base && base_url[base - 1] == '/') base--; /* "http://h:1/" works too */
    size_t n = base + strlen("/api/v1/k8s-audit/") + (esc ? strlen(esc) : 0) + 1;
    if (!p || !esc || !(p->url = malloc(n))) {
        curl_free(esc);
        free(p);
        free(body);
        return -1;
    }
    snprintf(p->url, n, "%.*s/api/v1/k8s-audit/%s", (int)base, base_url, esc);
    curl_free(esc);
    p->loop = loop;
    p->body = body;
    p->len = len;
    p->max_attempts = max_attempts > 0 ? max_attempts : 1;
    p->cb = cb;
    p->user = user;
    p->work.data = p;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_retry, 0, 0); /* first attempt right away */
    return 0;
}
