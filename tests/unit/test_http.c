/* Component tests: the HTTP server (h2o) with the audit intake over a real
 * spool in a temporary directory, driven by libcurl and raw sockets on
 * 127.0.0.1 with a port picked by the kernel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "tests/unit/testutil.h"
#include "common/config.h"
#include "common/metrics.h"
#include "server/http.h"
#include "storage/spool.h"

#define MAX_SAMPLES 16
#define READ_WAIT_MS 10000 /* only keeps a broken build from hanging */

typedef struct sample {
    char name[256];
    char *text;
    size_t len;
    char audit_id[128];
} sample;

static sample samples[MAX_SAMPLES];
static size_t n_samples;

typedef struct fixture {
    char dir[64];
    cw_spool *spool;
    cw_spool_reader *reader;
    cw_http *http;
    int port;
} fixture;

/* ---- corpus ---------------------------------------------------------------- */

static void load_corpus(void)
{
    const char *shared = getenv("CW_SHARED");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/corpus/k8s-audit", shared ? shared : "../shared");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) && n_samples < MAX_SAMPLES) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        sample *s = &samples[n_samples];
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        snprintf(s->name, sizeof(s->name), "%s", de->d_name);
        s->text = cw_test_read_file(path, &s->len);
        assert_non_null(s->text);
        json_t *j = json_loadb(s->text, s->len, 0, NULL);
        assert_non_null(j);
        snprintf(s->audit_id, sizeof(s->audit_id), "%s",
                 json_string_value(json_object_get(j, "auditID")));
        json_decref(j);
        n_samples++;
    }
    closedir(d);
    assert_true(n_samples >= 5);
}

/* {"kind":"EventList",...,"items":[every sample]} */
static void corpus_eventlist(cw_buf *body)
{
    cw_buf_init(body, 0);
    cw_buf_printf(body, "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\","
                        "\"metadata\":{},\"items\":[");
    for (size_t i = 0; i < n_samples; i++) {
        if (i)
            cw_buf_append(body, ",", 1);
        cw_buf_append(body, samples[i].text, samples[i].len);
    }
    cw_buf_printf(body, "]}");
}

/* ---- fixture ---------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static fixture *start_server(uint64_t max_body, uint64_t spool_max, uint64_t queue_max)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/cw-http-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char err[256] = "";
    cw_spool_opts so = {.data_dir = f->dir,
                        .segment_bytes = 1 << 20,
                        .max_bytes = spool_max,
                        .queue_max_bytes = queue_max};
    if (cw_spool_open(&f->spool, &so, err, sizeof(err)) != 0)
        fail_msg("spool: %s", err);
    assert_int_equal(cw_spool_reader_open(f->spool, "test", &f->reader), 0);
    cw_config cfg;
    cw_config_defaults(&cfg);
    snprintf(cfg.http_listen, sizeof(cfg.http_listen), "127.0.0.1:0");
    cfg.http_max_body_bytes = max_body;
    cfg.audit_dedupe_entries = 1000;
    if (cw_http_create(&f->http, &cfg, f->spool, NULL, err, sizeof(err)) != 0)
        fail_msg("http create: %s", err);
    assert_int_equal(cw_spool_start(f->spool), 0);
    if (cw_http_start(f->http, err, sizeof(err)) != 0)
        fail_msg("http start: %s", err);
    f->port = cw_http_port(f->http);
    assert_true(f->port > 0);
    return f;
}

static void stop_server(fixture *f)
{
    assert_int_equal(cw_http_stop(f->http), 0); /* includes uv_loop_close() == 0 */
    cw_spool_stop(f->spool);
    cw_spool_close(f->spool);
    cw_http_free(f->http);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

static int setup_default(void **state)
{
    *state = start_server(256 * 1024, 64 << 20, 8 << 20);
    return 0;
}

static int teardown(void **state)
{
    stop_server(*state);
    return 0;
}

/* ---- client helpers ---------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    cw_buf_append(ud, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    cw_buf_append(ud, p, size * n);
    return size * n;
}

/* Returns the status; the body (NUL-terminated) and headers in the bufs. */
static long request(int port, const char *method, const char *path, const char *body,
                    size_t len, cw_buf *out, cw_buf *headers)
{
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    cw_buf_init(out, 0);
    if (headers)
        cw_buf_init(headers, 0);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (headers) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, headers);
    }
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
        !(strcmp(method, "POST") == 0 && body))
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    long status = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        print_message("curl %s %s: %s\n", method, path, curl_easy_strerror(rc));
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    cw_buf_append(out, "", 1);
    out->len--;
    return status;
}

static long post(fixture *f, const char *path, const char *body, size_t len, cw_buf *out)
{
    return request(f->port, "POST", path, body, len, out, NULL);
}

/* The value of one exact series line ("name{labels} value") in /metrics. */
static long long metric(fixture *f, const char *series)
{
    cw_buf out;
    assert_int_equal(request(f->port, "GET", "/metrics", NULL, 0, &out, NULL), 200);
    char want[256];
    snprintf(want, sizeof(want), "\n%s ", series);
    char *p = strstr((char *)out.data, want);
    if (!p)
        fail_msg("series %s not in /metrics", series);
    long long v = strtoll(p + strlen(want), NULL, 10);
    cw_buf_free(&out);
    return v;
}

static long long json_int(const char *body, const char *key)
{
    json_t *j = json_loads(body, 0, NULL);
    if (!j)
        fail_msg("response is not JSON: %s", body);
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("response has no integer %s: %s", key, body);
    long long n = json_integer_value(v);
    json_decref(j);
    return n;
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void raw_send(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads until the peer closes (or n bytes). */
static size_t raw_read_all(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got + 1 < n) {
        ssize_t r = recv(fd, buf + got, n - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

/* Reads n records (waiting for each) and checks key and body. */
static void expect_records(fixture *f, const char *cluster, size_t n, const char **ids)
{
    for (size_t i = 0; i < n; i++) {
        cw_spool_record rec;
        assert_int_equal(cw_spool_read(f->reader, &rec, READ_WAIT_MS), 1);
        assert_int_equal(rec.kind, CW_REC_AUDIT);
        assert_int_equal(rec.key_len, strlen(cluster));
        assert_memory_equal(rec.key, cluster, rec.key_len);
        assert_int_equal(rec.seq, 0);
        assert_true(rec.time_ns > 0);
        json_t *j = json_loadb((const char *)rec.body, rec.body_len, 0, NULL);
        assert_non_null(j);
        if (ids)
            assert_string_equal(json_string_value(json_object_get(j, "auditID")), ids[i]);
        json_decref(j);
    }
    assert_int_equal(cw_spool_reader_commit(f->reader), 0);
}

static void expect_no_record(fixture *f)
{
    cw_spool_record rec;
    assert_int_equal(cw_spool_read(f->reader, &rec, 0), -1);
}

/* ---- tests ------------------------------------------------------------------ */

static void health_metrics_and_routing(void **state)
{
    fixture *f = *state;
    cw_buf out, hdr;
    assert_int_equal(request(f->port, "GET", "/healthz", NULL, 0, &out, NULL), 200);
    assert_string_equal((char *)out.data, "ok\n");
    cw_buf_free(&out);
    assert_int_equal(request(f->port, "HEAD", "/healthz", NULL, 0, &out, NULL), 200);
    assert_int_equal(out.len, 0);
    cw_buf_free(&out);
    assert_int_equal(request(f->port, "GET", "/metrics", NULL, 0, &out, &hdr), 200);
    assert_non_null(strstr((char *)hdr.data, "text/plain; version=0.0.4"));
    assert_non_null(
        strstr((char *)out.data, "chainwatch_events_received_total{source=\"k8s_audit\"} "));
    cw_buf_free(&out);
    cw_buf_free(&hdr);
    assert_int_equal(request(f->port, "POST", "/healthz", "x", 1, &out, &hdr), 405);
    assert_non_null(strstr((char *)hdr.data, "allow: GET, HEAD"));
    cw_buf_free(&out);
    cw_buf_free(&hdr);
    assert_int_equal(request(f->port, "GET", "/api/v1/k8s-audit/prod", NULL, 0, &out, &hdr),
                     405);
    assert_non_null(strstr((char *)hdr.data, "allow: POST"));
    cw_buf_free(&out);
    cw_buf_free(&hdr);
    assert_int_equal(request(f->port, "GET", "/nope", NULL, 0, &out, NULL), 404);
    cw_buf_free(&out);
    assert_int_equal(request(f->port, "GET", "/api/v1/k8s-auditx/prod", NULL, 0, &out, NULL),
                     404);
    cw_buf_free(&out);
}

static void accepts_corpus_and_dedupes_redelivery(void **state)
{
    fixture *f = *state;
    const char *series = "chainwatch_events_received_total{source=\"k8s_audit\"}";
    long long received0 = metric(f, series);
    long long dup0 = metric(f, "chainwatch_audit_events_duplicate_total");
    cw_buf body, out;
    corpus_eventlist(&body);
    const char *ids[MAX_SAMPLES];
    for (size_t i = 0; i < n_samples; i++)
        ids[i] = samples[i].audit_id;

    assert_int_equal(post(f, "/api/v1/k8s-audit/prod-eu.1", (char *)body.data, body.len, &out),
                     200);
    assert_int_equal(json_int((char *)out.data, "accepted"), (long long)n_samples);
    assert_int_equal(json_int((char *)out.data, "duplicates"), 0);
    cw_buf_free(&out);
    /* Durable before the answer: every record is readable now. */
    expect_records(f, "prod-eu.1", n_samples, ids);
    assert_int_equal(metric(f, series) - received0, (long long)n_samples);

    /* The API server's retry: all duplicates, nothing new stored. */
    assert_int_equal(post(f, "/api/v1/k8s-audit/prod-eu.1", (char *)body.data, body.len, &out),
                     200);
    assert_int_equal(json_int((char *)out.data, "accepted"), 0);
    assert_int_equal(json_int((char *)out.data, "duplicates"), (long long)n_samples);
    cw_buf_free(&out);
    expect_no_record(f);
    assert_int_equal(metric(f, series) - received0, (long long)n_samples);
    assert_int_equal(metric(f, "chainwatch_audit_events_duplicate_total") - dup0,
                     (long long)n_samples);

    /* The same events from another cluster are different events. */
    for (size_t i = 0; i < n_samples; i++) {
        assert_int_equal(post(f, "/api/v1/k8s-audit/staging", samples[i].text, samples[i].len,
                              &out),
                         200);
        assert_int_equal(json_int((char *)out.data, "accepted"), 1);
        cw_buf_free(&out);
        expect_records(f, "staging", 1, &ids[i]);
    }
    assert_int_equal(metric(f, series) - received0, 2 * (long long)n_samples);
    cw_buf_free(&body);
}

static void skips_invalid_items_accepts_rest(void **state)
{
    fixture *f = *state;
    long long inv0 = metric(f, "chainwatch_audit_events_invalid_total");
    const char *body = "{\"kind\":\"EventList\",\"items\":["
                       "{\"auditID\":\"11111111-aaaa\",\"stage\":\"ResponseComplete\"},"
                       "{\"stage\":\"ResponseComplete\"}]}";
    cw_buf out;
    assert_int_equal(post(f, "/api/v1/k8s-audit/c1", body, strlen(body), &out), 200);
    assert_int_equal(json_int((char *)out.data, "accepted"), 1);
    assert_int_equal(json_int((char *)out.data, "invalid"), 1);
    cw_buf_free(&out);
    const char *id = "11111111-aaaa";
    expect_records(f, "c1", 1, &id);
    assert_int_equal(metric(f, "chainwatch_audit_events_invalid_total") - inv0, 1);
}

static void rejects_malformed_and_bad_cluster(void **state)
{
    fixture *f = *state;
    const char *malformed = "chainwatch_audit_requests_rejected_total{reason=\"malformed\"}";
    const char *bad_cluster = "chainwatch_audit_requests_rejected_total{reason=\"bad_cluster\"}";
    long long m0 = metric(f, malformed), b0 = metric(f, bad_cluster);
    cw_buf out;
    const char *bodies[] = {"{\"kind\":\"EventList\",\n\"items\":[", "[1,2]",
                            "{\"kind\":\"EventList\",\"items\":\"x\"}", "{\"items\":[7]}", ""};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_int_equal(post(f, "/api/v1/k8s-audit/c1", bodies[i], strlen(bodies[i]), &out),
                         400);
        json_t *j = json_loads((char *)out.data, 0, NULL);
        assert_non_null(j);
        assert_true(json_is_string(json_object_get(j, "error")));
        json_decref(j);
        if (i == 0) /* a syntax error names line:column */
            assert_non_null(strstr((char *)out.data, "invalid JSON at 2:"));
        cw_buf_free(&out);
    }
    const char *good = samples[0].text;
    static const char too_long[] = /* 64 characters */
        "/api/v1/k8s-audit/0123456789012345678901234567890123456789012345678901234567890123";
    const char *paths[] = {"/api/v1/k8s-audit/",    "/api/v1/k8s-audit",
                           "/api/v1/k8s-audit/Prod", "/api/v1/k8s-audit/a/b",
                           "/api/v1/k8s-audit/a%20b", too_long};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        long st = post(f, paths[i], good, strlen(good), &out);
        if (st != 400)
            fail_msg("%s: status %ld", paths[i], st);
        cw_buf_free(&out);
    }
    expect_no_record(f);
    assert_int_equal(metric(f, malformed) - m0, 5);
    assert_int_equal(metric(f, bad_cluster) - b0, 6);
}

static void refuses_oversize_bodies_early(void **state)
{
    fixture *f = *state;
    const char *too_large = "chainwatch_audit_requests_rejected_total{reason=\"too_large\"}";
    long long t0 = metric(f, too_large);
    /* Only the headers: h2o must answer from Content-Length alone. */
    int fd = raw_connect(f->port);
    raw_send(fd, "POST /api/v1/k8s-audit/c1 HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n");
    char resp[4096];
    raw_read_all(fd, resp, sizeof(resp));
    close(fd);
    assert_memory_equal(resp, "HTTP/1.1 413 ", 13);
    /* Clients like Go's send the whole body without waiting: they must still
     * get the 413, not a connection reset. */
    size_t blen = 2 << 20;
    char *blob = malloc(blen);
    memset(blob, 'x', blen);
    for (int i = 0; i < 5; i++) {
        fd = raw_connect(f->port);
        char head[256];
        snprintf(head, sizeof(head),
                 "POST /api/v1/k8s-audit/c1 HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                 blen);
        raw_send(fd, head);
        for (size_t off = 0; off < blen;) {
            ssize_t w = send(fd, blob + off, blen - off, MSG_NOSIGNAL);
            if (w <= 0)
                fail_msg("send #%d failed after %zu bytes: %s", i, off, strerror(errno));
            off += (size_t)w;
        }
        size_t got = raw_read_all(fd, resp, sizeof(resp));
        close(fd);
        if (got < 13 || memcmp(resp, "HTTP/1.1 413 ", 13) != 0)
            fail_msg("try %d: got %zu bytes: %.40s", i, got, resp);
    }
    free(blob);
    /* curl (it waits for 100-continue before sending a large body). */
    size_t n = 300 * 1024;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    cw_buf out;
    assert_int_equal(post(f, "/api/v1/k8s-audit/c1", big, n, &out), 413);
    cw_buf_free(&out);
    free(big);
    expect_no_record(f);
    assert_int_equal(metric(f, too_large) - t0, 7);
    /* The server is still fine. */
    assert_int_equal(request(f->port, "GET", "/healthz", NULL, 0, &out, NULL), 200);
    cw_buf_free(&out);
}

/* Chunked bodies (no Content-Length) are accepted, and cut off with 413 once
 * they pass the limit. */
static void chunked_bodies(void **state)
{
    fixture *f = *state;
    char resp[4096];
    int fd = raw_connect(f->port);
    raw_send(fd, "POST /api/v1/k8s-audit/chunky HTTP/1.1\r\nHost: x\r\n"
                 "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    char size[32];
    for (size_t off = 0; off < samples[0].len; off += 100) {
        size_t n = samples[0].len - off < 100 ? samples[0].len - off : 100;
        snprintf(size, sizeof(size), "%zx\r\n", n);
        raw_send(fd, size);
        assert_int_equal(send(fd, samples[0].text + off, n, MSG_NOSIGNAL), (ssize_t)n);
        raw_send(fd, "\r\n");
    }
    raw_send(fd, "0\r\n\r\n");
    raw_read_all(fd, resp, sizeof(resp));
    close(fd);
    assert_memory_equal(resp, "HTTP/1.1 200 ", 13);
    assert_non_null(strstr(resp, "\"accepted\":1"));
    const char *id = samples[0].audit_id;
    expect_records(f, "chunky", 1, &id);

    /* 300 KiB in 1 KiB chunks against a 256 KiB limit. */
    const char *too_large = "chainwatch_audit_requests_rejected_total{reason=\"too_large\"}";
    long long t0 = metric(f, too_large);
    fd = raw_connect(f->port);
    raw_send(fd, "POST /api/v1/k8s-audit/chunky HTTP/1.1\r\nHost: x\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    char chunk[1024 + 16];
    int n = snprintf(chunk, sizeof(chunk), "400\r\n");
    memset(chunk + n, ' ', 1024);
    memcpy(chunk + n + 1024, "\r\n", 2);
    for (int i = 0; i < 300; i++)
        if (send(fd, chunk, (size_t)n + 1026, MSG_NOSIGNAL) <= 0)
            break; /* the server may stop reading once it refused */
    raw_read_all(fd, resp, sizeof(resp));
    close(fd);
    assert_memory_equal(resp, "HTTP/1.1 413 ", 13);
    expect_no_record(f);
    assert_int_equal(metric(f, too_large) - t0, 1);
}

/* The spool is kept tiny and the test drains it only while the POST is in
 * flight: the request must park on CW_SPOOL_FULL and resume when the space
 * listener fires, instead of failing with 503. */
typedef struct post_job {
    fixture *f;
    const char *path;
    cw_buf body, out;
    long status;
} post_job;

static void *post_thread(void *arg)
{
    post_job *j = arg;
    j->status = post(j->f, j->path, (char *)j->body.data, j->body.len, &j->out);
    return NULL;
}

static int setup_tiny_spool(void **state)
{
    /* 16 MiB is the smallest unread-bytes limit worth having; the queue limit
     * of 8 KiB is what fills first. */
    *state = start_server(1 << 20, 16 << 20, 8 * 1024);
    return 0;
}

static void parks_while_spool_full(void **state)
{
    fixture *f = *state;
    post_job j = {.f = f, .path = "/api/v1/k8s-audit/big"};
    size_t n = 200;
    cw_buf_init(&j.body, 0);
    cw_buf_printf(&j.body, "{\"kind\":\"EventList\",\"items\":[");
    char pad[2001];
    memset(pad, 'p', 2000);
    pad[2000] = '\0';
    for (size_t i = 0; i < n; i++)
        cw_buf_printf(&j.body,
                      "%s{\"auditID\":\"id-%zu\",\"stage\":\"ResponseComplete\",\"pad\":\"%s\"}",
                      i ? "," : "", i, pad);
    cw_buf_printf(&j.body, "]}");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, post_thread, &j), 0);
    /* Each record is 2 KiB; an 8 KiB queue takes a few at a time. */
    for (size_t i = 0; i < n; i++) {
        cw_spool_record rec;
        assert_int_equal(cw_spool_read(f->reader, &rec, READ_WAIT_MS), 1);
        char want[32];
        snprintf(want, sizeof(want), "\"id-%zu\"", i);
        assert_non_null(memmem(rec.body, rec.body_len, want, strlen(want)));
        cw_spool_reader_commit(f->reader);
    }
    pthread_join(t, NULL);
    assert_int_equal(j.status, 200);
    assert_int_equal(json_int((char *)j.out.data, "accepted"), (long long)n);
    cw_buf_free(&j.out);
    cw_buf_free(&j.body);
    expect_no_record(f);
}

/* A client that gives up before the answer: its events are still stored and
 * the server frees the request once they are. */
static void client_gone_still_stores(void **state)
{
    fixture *f = *state;
    cw_buf body;
    corpus_eventlist(&body);
    int fd = raw_connect(f->port);
    char head[256];
    snprintf(head, sizeof(head),
             "POST /api/v1/k8s-audit/gone HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             body.len);
    raw_send(fd, head);
    assert_int_equal(send(fd, body.data, body.len, MSG_NOSIGNAL), (ssize_t)body.len);
    close(fd);
    expect_records(f, "gone", n_samples, NULL);
    cw_buf_free(&body);
    /* Still serving. */
    cw_buf out;
    assert_int_equal(request(f->port, "GET", "/healthz", NULL, 0, &out, NULL), 200);
    cw_buf_free(&out);
}

static void busy_port_fails_create(void **state)
{
    fixture *f = *state;
    cw_config cfg;
    cw_config_defaults(&cfg);
    snprintf(cfg.http_listen, sizeof(cfg.http_listen), "127.0.0.1:%d", f->port);
    cw_http *h2 = NULL;
    char err[256] = "";
    assert_int_equal(cw_http_create(&h2, &cfg, f->spool, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "address already in use"));
    cw_http_free(h2);
}

static void limits_connections(void **state)
{
    fixture *f = *state; /* 64 MiB bodies: 1 GiB / 64 MiB = 16 connections */
    int fds[16];
    char resp[1024];
    for (int i = 0; i < 16; i++) {
        fds[i] = raw_connect(f->port);
        raw_send(fds[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        ssize_t r = recv(fds[i], resp, sizeof(resp) - 1, 0);
        assert_true(r > 12);
        assert_memory_equal(resp, "HTTP/1.1 200", 12);
    }
    /* The 17th is accepted and closed at once. */
    int extra = raw_connect(f->port);
    send(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35, MSG_NOSIGNAL);
    assert_true(recv(extra, resp, sizeof(resp), 0) <= 0);
    close(extra);
    for (int i = 0; i < 16; i++)
        close(fds[i]);
}

static int setup_huge_body(void **state)
{
    *state = start_server(64 << 20, 64 << 20, 8 << 20);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    load_corpus();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(health_metrics_and_routing, setup_default, teardown),
        cmocka_unit_test_setup_teardown(accepts_corpus_and_dedupes_redelivery, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(skips_invalid_items_accepts_rest, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(rejects_malformed_and_bad_cluster, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(refuses_oversize_bodies_early, setup_default, teardown),
        cmocka_unit_test_setup_teardown(chunked_bodies, setup_default, teardown),
        cmocka_unit_test_setup_teardown(parks_while_spool_full, setup_tiny_spool, teardown),
        cmocka_unit_test_setup_teardown(client_gone_still_stores, setup_default, teardown),
        cmocka_unit_test_setup_teardown(busy_port_fails_create, setup_default, teardown),
        cmocka_unit_test_setup_teardown(limits_connections, setup_huge_body, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (size_t i = 0; i < n_samples; i++)
        free(samples[i].text);
    curl_global_cleanup();
    return rc;
}
