/* Helpers shared by the spool unit tests: a temporary data dir, requests
 * with owned memory, and a tracker to wait for their done callbacks. Include
 * after cmocka.h. */
#ifndef CW_SPOOL_TESTLIB_H
#define CW_SPOOL_TESTLIB_H

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/spool.h"

typedef struct tracker {
    pthread_mutex_t m;
    pthread_cond_t c;
    int done, ok, io;
    /* Done callbacks must come in submission order: the last seq seen per
     * key (up to 4 keys), and how often a seq went backwards. */
    char keys[4][64];
    uint64_t last[4];
    int out_of_order;
} tracker;

typedef struct treq {
    cw_spool_req req;
    tracker *t;
    char key[64];
    uint8_t body[512];
} treq;

static void tracker_init(tracker *t)
{
    pthread_mutex_init(&t->m, NULL);
    pthread_cond_init(&t->c, NULL);
    t->done = t->ok = t->io = t->out_of_order = 0;
    memset(t->keys, 0, sizeof t->keys);
    memset(t->last, 0, sizeof t->last);
}

static void tracker_destroy(tracker *t)
{
    pthread_cond_destroy(&t->c);
    pthread_mutex_destroy(&t->m);
}

/* Runs on the spool's writer thread. */
static void treq_done(cw_spool_req *req)
{
    treq *q = req->user;
    tracker *t = q->t;
    pthread_mutex_lock(&t->m);
    t->done++;
    if (req->status == CW_SPOOL_OK) t->ok++;
    if (req->status == CW_SPOOL_IO) t->io++;
    for (int i = 0; i < 4; i++) {
        if (!t->keys[i][0]) snprintf(t->keys[i], sizeof t->keys[i], "%s", q->key);
        if (strcmp(t->keys[i], q->key) == 0) {
            if (req->seq < t->last[i]) t->out_of_order++;
            t->last[i] = req->seq;
            break;
        }
    }
    pthread_cond_broadcast(&t->c);
    pthread_mutex_unlock(&t->m);
}

/* Waits until n requests are done. The generous bound only keeps a broken
 * build from hanging the test run; it is not a timing assertion. */
static int tracker_wait(tracker *t, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    pthread_mutex_lock(&t->m);
    int r = 0;
    while (t->done < n && r == 0) r = pthread_cond_timedwait(&t->c, &t->m, &dl);
    int done = t->done;
    pthread_mutex_unlock(&t->m);
    return done >= n ? 0 : -1;
}

/* Fills a request whose body is a deterministic function of (key, seq) and
 * whose length varies with seq. */
static void treq_fill(treq *q, tracker *t, uint8_t kind, const char *key, uint64_t seq)
{
    memset(&q->req, 0, sizeof q->req);
    q->t = t;
    snprintf(q->key, sizeof q->key, "%s", key);
    size_t len = 16 + (size_t)(seq * 37 % 200);
    for (size_t i = 0; i < len; i++) q->body[i] = (uint8_t)(key[0] + seq * 7 + i);
    q->req.kind = kind;
    q->req.key = q->key;
    q->req.key_len = (uint8_t)strlen(q->key);
    q->req.seq = seq;
    q->req.time_ns = (int64_t)seq * 1000;
    q->req.body = q->body;
    q->req.body_len = (uint32_t)len;
    q->req.done = treq_done;
    q->req.user = q;
}

/* Checks that a record read back is the one treq_fill made for (key, seq). */
static int record_matches(const cw_spool_record *r, uint8_t kind, const char *key, uint64_t seq)
{
    treq want;
    treq_fill(&want, NULL, kind, key, seq);
    return r->kind == kind && r->key_len == want.req.key_len &&
           memcmp(r->key, key, r->key_len) == 0 && r->seq == seq &&
           r->time_ns == want.req.time_ns && r->body_len == want.req.body_len &&
           memcmp(r->body, want.body, r->body_len) == 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *p = malloc(strlen(base) + 32);
    sprintf(p, "%s/cw-spool-XXXXXX", base);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static void remove_tmpdir(char *p)
{
    nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(p);
}

/* Number of segment files in dir/spool. */
static int count_segments(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/spool", dir);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strlen(e->d_name) == 24 && strcmp(e->d_name + 20, ".seg") == 0) n++;
    closedir(d);
    return n;
}

/* Path of the newest segment file in dir/spool. */
static void last_segment_path(const char *dir, char *out, size_t outlen)
{
    char path[900];
    snprintf(path, sizeof path, "%s/spool", dir);
    DIR *d = opendir(path);
    char best[32] = "";
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strlen(e->d_name) == 24 && strcmp(e->d_name + 20, ".seg") == 0 &&
            strcmp(e->d_name, best) > 0)
            memcpy(best, e->d_name, 25); /* checked: 24 characters and the NUL */
    if (d) closedir(d);
    snprintf(out, outlen, "%s/%s", path, best);
}

static cw_spool_opts test_opts(const char *dir)
{
    cw_spool_opts o = {
        .data_dir = dir,
        .segment_bytes = 1 << 20,
        .max_bytes = 64 << 20,
        .queue_max_bytes = 16 << 20,
    };
    return o;
}

/* cmocka group fixtures: a fresh temporary data dir per test. */
static inline int setup(void **state)
{
    *state = make_tmpdir();
    return *state ? 0 : -1;
}

static inline int teardown(void **state)
{
    remove_tmpdir(*state);
    return 0;
}

/* Opens a spool and fails the test (with the reason) if it cannot. */
static inline cw_spool *open_spool(const cw_spool_opts *o)
{
    char err[256] = "";
    cw_spool *s = NULL;
    int r = cw_spool_open(&s, o, err, sizeof err);
    if (r != 0) fprintf(stderr, "open: %s\n", err);
    assert_int_equal(r, 0);
    return s;
}

#endif
