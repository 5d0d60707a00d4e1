/* replay: `agentsim replay`, which plays scenario files against a running
 * chainwatchd the way a fleet would: one agent connection per host, agent
 * events in batches over the agent protocol, Kubernetes audit events POSTed
 * to the audit webhook.
 *
 * Files are played one after another. For each, scenario_epoch is the wall
 * clock at its start; an item at `t` is delivered at start + t/speed and an
 * event carries time_ns = scenario_epoch + t. Consecutive events of one host
 * that are due together go out as one batch. With --speed 0 items go as
 * fast as possible in file order, and order across sources is kept strictly:
 * before an item of another source (another host, or the audit webhook) the
 * replay waits until everything sent so far is acked, i.e. durable on the
 * server. An audit POST always pauses the replay until it has succeeded.
 *
 * Agent ids are "<prefix><host>". The default prefix is unique per run
 * ("sim-<pid>-<time>-"), so reruns against the same data directory do not
 * collide with the seqs of earlier runs; with --agent-prefix '' the id is
 * the host name. A host that appears in several files keeps one agent id and
 * its seqs continue across files.
 *
 * Threads: one libuv loop on the main thread; audit POSTs run curl on the
 * loop's thread pool (see auditpost.h).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "acklog.h"
#include "addr.h"
#include "auditpost.h"
#include "cli.h"
#include "client.h"
#include "common/log.h"
#include "scenario.h"

#define BATCH_MAX 500
#define BATCH_BYTES (1u << 20)
#define AUDIT_MAX 500
#define POST_ATTEMPTS 5
#define SOURCE_NONE (-2)
#define SOURCE_AUDIT (-1)

enum phase {
    PH_RUN,       /* delivering items (or waiting on the timer for the next one) */
    PH_WAIT_ROOM, /* a host's client is over its limits */
    PH_WAIT_POST, /* an audit POST is in progress */
    PH_WAIT_ACKS, /* --speed 0: waiting for acks before switching source */
    PH_DRAIN,     /* file done: waiting for every batch to be acked */
    PH_CLOSING,   /* closing this file's clients */
    PH_DONE,
};

typedef struct seqent {
    char *agent_id;
    uint64_t next_seq;
} seqent;

typedef struct replay {
    uv_loop_t loop;
    uv_timer_t timer;      /* next item due, or a 0 ms kick to resume */
    uv_timer_t wait_timer; /* --timeout while waiting for acks or room */
    uv_signal_t sigint, sigterm;
    struct sockaddr_storage server;
    const char *http;
    double speed;
    uint64_t timeout_ms;
    const char *prefix;
    sim_acklog *acklog;
    sim_scenario *files;
    size_t n_files, file, files_done;
    /* The file being played. */
    sim_client **clients; /* by host index; NULL before the host's agent line */
    size_t open_clients;
    size_t pos;
    uint64_t start_ms;
    int64_t epoch_ns;
    int last_source;
    Chainwatch__V1__Event *pend[BATCH_MAX];
    size_t n_pend, pend_bytes, pend_host;
    enum phase phase;
    int aborted;
    /* Totals. */
    uint64_t events, audit, hosts, batches, acked_batches, lost_events;
    int post_failed, client_failed;
    size_t posting; /* audit events in the POST in progress */
    seqent *seqs;
    size_t n_seqs;
} replay;

static void advance(replay *r);

/* Loop thread. */
static void on_timer(uv_timer_t *t)
{
    advance(t->data);
}

/* Resumes the replay from a fresh loop iteration, never from inside a
 * client's callback (which may be walking its own queue). */
static void kick(replay *r)
{
    uv_timer_start(&r->timer, on_timer, 0, 0);
}

static int all_acked(const replay *r)
{
    const sim_scenario *s = &r->files[r->file];
    for (size_t i = 0; i < s->n_hosts; i++)
        if (r->clients[i] && !sim_client_failed(r->clients[i]) &&
            sim_client_unacked(r->clients[i]))
            return 0;
    return 1;
}

static size_t count_unacked(const replay *r)
{
    size_t n = 0;
    for (size_t i = 0; r->clients && i < r->files[r->file].n_hosts; i++)
        if (r->clients[i]) n += sim_client_unacked(r->clients[i]);
    return n;
}

static void close_file(replay *r);

/* Loop thread: --timeout passed while waiting. */
static void on_wait_timeout(uv_timer_t *t)
{
    replay *r = t->data;
    cw_error("agentsim", "%s: still %zu batches unacked after %llu s; giving up",
             r->files[r->file].path, count_unacked(r), (unsigned long long)r->timeout_ms / 1000);
    r->aborted = 1;
    close_file(r);
}

static void wait_for(replay *r, enum phase ph)
{
    r->phase = ph;
    uv_timer_start(&r->wait_timer, on_wait_timeout, r->timeout_ms, 0);
}

/* ------------------------------------------------------------ client callbacks */

static void on_acked(void *user, sim_client *c, uint64_t seq, uint32_t n, uint64_t sent_ns)
{
    (void)sent_ns;
    replay *r = user;
    if (r->acklog) sim_acklog_batch(r->acklog, sim_client_agent_id(c), seq, n);
    if ((r->phase == PH_WAIT_ACKS || r->phase == PH_DRAIN) && all_acked(r)) kick(r);
}

static void on_room(void *user, sim_client *c)
{
    (void)c;
    replay *r = user;
    if (r->phase == PH_WAIT_ROOM) kick(r);
}

static void on_failed(void *user, sim_client *c)
{
    (void)c;
    replay *r = user;
    r->client_failed = 1;
    if (r->phase == PH_WAIT_ROOM || r->phase == PH_WAIT_ACKS || r->phase == PH_DRAIN) kick(r);
}

static seqent *seq_entry(replay *r, const char *agent_id)
{
    for (size_t i = 0; i < r->n_seqs; i++)
        if (strcmp(r->seqs[i].agent_id, agent_id) == 0) return &r->seqs[i];
    return NULL;
}

static void next_file(replay *r);

static void on_closed(void *user, sim_client *c)
{
    replay *r = user;
    const sim_client_stats *st = sim_client_get_stats(c);
    r->batches += st->batches_queued;
    r->acked_batches += st->batches_acked;
    /* Remember where this agent id's seqs are, for a later file. */
    seqent *e = seq_entry(r, sim_client_agent_id(c));
    if (!e) {
        seqent *seqs = realloc(r->seqs, (r->n_seqs + 1) * sizeof *seqs);
        char *id = strdup(sim_client_agent_id(c));
        if (seqs) r->seqs = seqs;
        if (seqs && id) {
            e = &r->seqs[r->n_seqs++];
            e->agent_id = id;
        } else {
            free(id);
        }
    }
    if (e) e->next_seq = sim_client_next_seq(c);
    if (--r->open_clients == 0 && r->phase == PH_CLOSING) next_file(r);
}

/* ------------------------------------------------------------ items */

static int add_client(replay *r, const sim_host *h, size_t idx)
{
    char id[512];
    snprintf(id, sizeof id, "%s%s", r->prefix, h->name);
    seqent *e = seq_entry(r, id);
    sim_hello hello = {.agent_id = id,
                       .hostname = h->name,
                       .ip = h->ip,
                       .cloud = h->cloud,
                       .region = h->region,
                       .cluster = h->cluster,
                       .node_name = h->name,
                       .kernel = h->kernel,
                       .agent_version = h->agent_version,
                       .os = h->os};
    static const sim_client_cbs cbs = {on_acked, on_room, on_failed, on_closed};
    sim_client *c = sim_client_new(&r->loop, (struct sockaddr *)&r->server, &hello,
                                   e ? e->next_seq : 1, NULL, &cbs, r);
    if (!c) {
        cw_error("agentsim", "cannot create the agent for host %s", h->name);
        return -1;
    }
    r->clients[idx] = c;
    r->open_clients++;
    r->hosts++;
    sim_client_start(c);
    return 0;
}

/* Sends the pending batch. Returns 1 when the host's client has no room
 * (the replay then waits for it), else 0. */
static int flush(replay *r)
{
    if (!r->n_pend) return 0;
    sim_client *c = r->clients[r->pend_host];
    if (!sim_client_failed(c) && !sim_client_has_room(c)) {
        wait_for(r, PH_WAIT_ROOM);
        return 1;
    }
    int rc = sim_client_send(c, r->pend, r->n_pend);
    if (rc < 0) {
        if (rc != -EPIPE)
            cw_error("agentsim", "agent %s: cannot queue %zu events: %s", sim_client_agent_id(c),
                     r->n_pend, strerror(-rc));
        r->lost_events += r->n_pend;
    } else {
        r->events += r->n_pend;
    }
    r->n_pend = r->pend_bytes = 0;
    return 0;
}

static void format_time(int64_t ns, char *out, size_t len)
{
    time_t sec = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ns % 1000000000 / 1000));
}

static int64_t event_time(const replay *r, double t)
{
    return r->epoch_ns + (int64_t)llround(t * 1e9);
}

/* Loop thread: the audit POST finished. */
static void on_posted(void *user, int ok, long status, const char *why)
{
    replay *r = user;
    (void)status;
    if (ok) {
        r->audit += r->posting;
    } else {
        cw_error("agentsim", "%s: audit POST failed: %s", r->files[r->file].path, why);
        r->post_failed = 1;
        r->aborted = 1;
    }
    r->phase = PH_RUN;
    kick(r);
}

static uint64_t due_ms(const replay *r, double t)
{
    return r->start_ms + (uint64_t)(t * 1000.0 / r->speed);
}

/* Posts the run of audit items from `pos` with the same cluster (and, at a
 * finite speed, already due) as one EventList. */
static void post_audit(replay *r)
{
    sim_scenario *s = &r->files[r->file];
    const char *cluster = s->items[r->pos].cluster;
    json_t *items = json_array();
    size_t k = 0;
    for (; r->pos < s->n_items && k < AUDIT_MAX; r->pos++, k++) {
        sim_item *it = &s->items[r->pos];
        if (it->kind != SIM_ITEM_AUDIT || strcmp(it->cluster, cluster) != 0) break;
        if (k && r->speed > 0 && due_ms(r, it->t) > uv_now(&r->loop)) break;
        char ts[64];
        format_time(event_time(r, it->t + it->clock_skew), ts, sizeof ts);
        json_object_set_new(it->audit, "requestReceivedTimestamp", json_string(ts));
        json_object_set_new(it->audit, "stageTimestamp", json_string(ts));
        json_array_append(items, it->audit);
    }
    json_t *list = json_pack("{s:s, s:s, s:{}, s:o}", "kind", "EventList", "apiVersion",
                             "audit.k8s.io/v1", "metadata", "items", items);
    char *body = list ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    r->phase = PH_WAIT_POST;
    r->posting = k;
    if (!body || sim_post_start(&r->loop, r->http, cluster, body, strlen(body), POST_ATTEMPTS,
                                on_posted, r) < 0) {
        on_posted(r, 0, 0, "out of memory");
    }
}

/* Delivers every item that is due, then arms the timer for the next. */
static void advance(replay *r)
{
    sim_scenario *s = &r->files[r->file];
    switch (r->phase) {
    case PH_RUN: break;
    case PH_WAIT_ROOM: {
        sim_client *c = r->clients[r->pend_host];
        if (!sim_client_failed(c) && !sim_client_has_room(c)) return;
        break;
    }
    case PH_WAIT_ACKS:
        if (!all_acked(r)) return;
        break;
    case PH_DRAIN:
        if (!all_acked(r)) return;
        uv_timer_stop(&r->wait_timer);
        close_file(r);
        return;
    default: return; /* resumed by the POST's callback, or closing */
    }
    uv_timer_stop(&r->wait_timer);
    r->phase = PH_RUN;
    while (r->pos < s->n_items && !r->aborted) {
        sim_item *it = &s->items[r->pos];
        if (r->speed > 0) {
            uint64_t due = due_ms(r, it->t), now = uv_now(&r->loop);
            if (due > now) {
                if (flush(r)) return;
                uv_timer_start(&r->timer, on_timer, due - now, 0);
                return;
            }
        }
        if (it->kind == SIM_ITEM_AGENT) {
            if (add_client(r, &s->hosts[it->host], it->host) < 0) r->aborted = 1;
            r->pos++;
            continue;
        }
        int source = it->kind == SIM_ITEM_AUDIT ? SOURCE_AUDIT : (int)it->host;
        if (source != r->last_source) {
            if (flush(r)) return;
            if (r->speed == 0 && r->last_source != SOURCE_NONE && !all_acked(r)) {
                wait_for(r, PH_WAIT_ACKS);
                return;
            }
            r->last_source = source;
        }
        if (it->kind == SIM_ITEM_AUDIT) {
            post_audit(r);
            return;
        }
        size_t size = chainwatch__v1__event__get_packed_size(it->event) + 16;
        if (r->n_pend == BATCH_MAX || r->pend_bytes + size > BATCH_BYTES) {
            if (flush(r)) return;
        }
        it->event->time_ns = event_time(r, it->t + it->clock_skew);
        r->pend[r->n_pend++] = it->event;
        r->pend_bytes += size;
        r->pend_host = it->host;
        r->pos++;
    }
    if (flush(r)) return;
    wait_for(r, PH_DRAIN);
    kick(r);
}

/* ------------------------------------------------------------ files */

static void start_file(replay *r)
{
    sim_scenario *s = &r->files[r->file];
    r->clients = calloc(s->n_hosts ? s->n_hosts : 1, sizeof *r->clients);
    if (!r->clients) {
        cw_error("agentsim", "out of memory");
        r->aborted = 1;
        next_file(r);
        return;
    }
    cw_info("agentsim", "replaying %s: %zu hosts, %zu events, %zu audit events", s->path,
            s->n_hosts, s->n_events, s->n_audit);
    r->pos = 0;
    r->n_pend = r->pend_bytes = 0;
    r->last_source = SOURCE_NONE;
    uv_update_time(&r->loop);
    r->start_ms = uv_now(&r->loop);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->epoch_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    r->phase = PH_RUN;
    kick(r);
}

static void close_file(replay *r)
{
    r->phase = PH_CLOSING;
    uv_timer_stop(&r->timer);
    uv_timer_stop(&r->wait_timer);
    r->lost_events += r->n_pend;
    r->n_pend = 0;
    if (!r->aborted) r->files_done++;
    if (r->open_clients == 0) {
        next_file(r);
        return;
    }
    for (size_t i = 0; i < r->files[r->file].n_hosts; i++)
        if (r->clients[i]) sim_client_close(r->clients[i]);
}

static void next_file(replay *r)
{
    free(r->clients);
    r->clients = NULL;
    if (!r->aborted && ++r->file < r->n_files) {
        start_file(r);
        return;
    }
    r->phase = PH_DONE;
    uv_close((uv_handle_t *)&r->timer, NULL);
    uv_close((uv_handle_t *)&r->wait_timer, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
}

/* Loop thread: SIGINT or SIGTERM stops the replay; the summary still prints.
 * A POST in progress is let finish (its callback sees `aborted`). */
static void on_signal(uv_signal_t *h, int signum)
{
    replay *r = h->data;
    cw_warn("agentsim", "replay interrupted by signal %d", signum);
    r->aborted = 1;
    if (r->phase != PH_WAIT_POST && r->phase != PH_CLOSING && r->phase != PH_DONE) close_file(r);
}

/* ------------------------------------------------------------ command */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: agentsim replay --server HOST:PORT [--http URL] [--speed N] [--timeout S]\n"
            "                       [--agent-prefix P] [--ack-log FILE] [--log-level L] FILE...\n"
            "\n"
            "Replays scenario files (JSON Lines, see shared/scenarios/FORMAT.md), one after\n"
            "another, against a running chainwatchd: one agent connection per host, events\n"
            "with time = replay start + t, audit events POSTed to URL/api/v1/k8s-audit/CLUSTER.\n"
            "\n"
            "  --server HOST:PORT  chainwatchd's agent listener (required)\n"
            "  --http URL          chainwatchd's HTTP base URL, e.g. http://127.0.0.1:7480;\n"
            "                      required when a file has k8s_audit lines\n"
            "  --speed N           N times real time (default 1); 0 = as fast as possible,\n"
            "                      in strict order: everything sent is acked before a line\n"
            "                      of another host or an audit POST goes out\n"
            "  --timeout S         how long to wait for acks before giving up (default 60)\n"
            "  --agent-prefix P    agent id = P + host (default \"sim-<pid>-<time>-\", unique\n"
            "                      per run; '' makes the agent id the host name). A host in\n"
            "                      several files keeps its agent id and its seqs go on\n"
            "  --ack-log FILE      write one line per acked batch: \"<agent_id> <seq> <count>\",\n"
            "                      i.e. events <agent_id>:<seq>:0 .. <agent_id>:<seq>:<count-1>\n"
            "                      are stored\n"
            "  --log-level L       debug, info, warn (default), error\n"
            "\n"
            "Prints \"replayed F files: E events (A audit) to H hosts; acked X/Y batches\".\n"
            "Exit status: 0 when every batch was acked and every POST got a 2xx answer,\n"
            "1 otherwise, 2 on bad arguments or an invalid scenario file. A failed POST is\n"
            "retried 4 times (after 0.25, 0.5, 1, 2 s) before the replay stops.\n");
}

int sim_replay_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'},   {"http", required_argument, NULL, 'H'},
        {"speed", required_argument, NULL, 'x'},    {"timeout", required_argument, NULL, 't'},
        {"agent-prefix", required_argument, NULL, 'p'},
        {"ack-log", required_argument, NULL, 'a'},  {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    replay *r = calloc(1, sizeof *r);
    if (!r) return 1;
    const char *server = NULL, *acklog = NULL;
    char prefix[128];
    uint64_t timeout_s = 60;
    sim_cli_default_prefix(prefix, sizeof prefix);
    r->prefix = prefix;
    r->speed = 1;
    enum cw_log_level level = CW_LOG_WARN;
    int c, rc = 2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 'H': r->http = optarg; break;
        case 'x':
            if (sim_cli_double("replay", "speed", optarg, 0, 1e6, &r->speed)) goto out;
            break;
        case 't':
            if (sim_cli_u64("replay", "timeout", optarg, 1, 86400, &timeout_s)) goto out;
            break;
        case 'p': r->prefix = optarg; break;
        case 'a': acklog = optarg; break;
        case 'l':
            if (cw_log_parse_level(optarg, &level)) {
                fprintf(stderr, "agentsim replay: --log-level %s: expected debug, info, warn "
                                "or error\n", optarg);
                goto out;
            }
            break;
        case 'h': usage(stdout); rc = 0; goto out;
        default: usage(stderr); goto out;
        }
    }
    cw_log_set_level(level);
    r->timeout_ms = timeout_s * 1000;
    char err[600];
    if (!server) {
        fprintf(stderr, "agentsim replay: --server HOST:PORT is required\n");
        goto out;
    }
    if (optind >= argc) {
        fprintf(stderr, "agentsim replay: no scenario file given\n");
        goto out;
    }
    if (sim_addr_parse(server, &r->server, err, sizeof err)) {
        fprintf(stderr, "agentsim replay: --server %s\n", err);
        goto out;
    }
    if (strlen(r->prefix) > 100 || (r->prefix[0] && !sim_cli_agent_id_ok(r->prefix))) {
        fprintf(stderr, "agentsim replay: --agent-prefix must be printable ASCII without "
                        "spaces, at most 100 bytes\n");
        goto out;
    }
    /* Load and check every file first: a typo in the last file should not
     * surface after the first ones were sent. */
    r->n_files = (size_t)(argc - optind);
    r->files = calloc(r->n_files, sizeof *r->files);
    if (!r->files) goto out;
    for (size_t i = 0; i < r->n_files; i++) {
        sim_scenario *s = &r->files[i];
        if (sim_scenario_load(argv[optind + (int)i], s, err, sizeof err)) {
            fprintf(stderr, "agentsim replay: %s\n", err);
            goto out;
        }
        if (s->n_audit && !r->http) {
            fprintf(stderr, "agentsim replay: %s has k8s_audit lines: --http URL is required\n",
                    s->path);
            goto out;
        }
        for (size_t h = 0; h < s->n_hosts; h++) {
            char id[512];
            snprintf(id, sizeof id, "%s%s", r->prefix, s->hosts[h].name);
            if (!sim_cli_agent_id_ok(id)) {
                fprintf(stderr, "agentsim replay: %s: host \"%s\" does not make a usable agent "
                                "id (printable ASCII, no spaces, at most 255 bytes)\n",
                        s->path, s->hosts[h].name);
                goto out;
            }
        }
    }
    if (uv_loop_init(&r->loop) < 0) goto out;
    if (acklog && !(r->acklog = sim_acklog_open(&r->loop, acklog, err, sizeof err))) {
        fprintf(stderr, "agentsim replay: %s\n", err);
        uv_loop_close(&r->loop);
        goto out;
    }
    uv_timer_init(&r->loop, &r->timer);
    uv_timer_init(&r->loop, &r->wait_timer);
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    r->timer.data = r->wait_timer.data = r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    start_file(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    int loop_rc = uv_loop_close(&r->loop);
    int log_rc = sim_acklog_close(r->acklog);
    printf("replayed %zu files: %llu events (%llu audit) to %llu hosts; acked %llu/%llu "
           "batches\n",
           r->files_done, (unsigned long long)r->events, (unsigned long long)r->audit,
           (unsigned long long)r->hosts, (unsigned long long)r->acked_batches,
           (unsigned long long)r->batches);
    if (r->lost_events)
        printf("%llu events could not be queued\n", (unsigned long long)r->lost_events);
    rc = (r->aborted || r->post_failed || r->client_failed || r->lost_events || log_rc ||
          loop_rc || r->acked_batches != r->batches || r->files_done != r->n_files)
             ? 1
             : 0;
out:
    for (size_t i = 0; r->files && i < r->n_files; i++) sim_scenario_free(&r->files[i]);
    free(r->files);
    for (size_t i = 0; i < r->n_seqs; i++) free(r->seqs[i].agent_id);
    free(r->seqs);
    free(r);
    return rc;
}
