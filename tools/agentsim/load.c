/* load: `agentsim load`, a synthetic fleet for throughput and latency runs.
 *
 * N agent connections on one libuv loop send batches drawn from a prebuilt
 * pool of realistic events (evpool.h) at a total target rate, paced by a
 * 10 ms timer: each tick hands the events due since the start, in batches of
 * up to --batch, round-robin to the agents that are connected and have room.
 * A backlog is capped at one second's worth: a run that cannot keep up shows
 * it as a lower achieved rate instead of a burst afterwards. With --rate 0
 * agents send full batches whenever they have room (write queue below 1 MiB,
 * under --max-unacked-mb and 65536 batches unacked), i.e. as fast as the
 * server takes them.
 *
 * Agents only generate while connected; unacked batches survive reconnects
 * (the client resends them), so a server killed and restarted mid-run still
 * ends with nothing unacked if it comes back in time. After --duration the
 * generator stops and waits up to --drain seconds for the outstanding acks.
 *
 * Ack latency is measured per batch from its first write to the Ack that
 * covers it (uv_hrtime, so across reconnects it includes the outage).
 *
 * Threads: one loop on the main thread. That is enough: measured with
 * bench/ingest.sh (Release, 2 vCPUs, 100 agents, --rate 0) the generator
 * needs ~0.45 us of CPU per event, a third of what chainwatchd spends, and
 * the run was bound by the machine's two cores, not by this loop.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "acklog.h"
#include "addr.h"
#include "cli.h"
#include "client.h"
#include "common/log.h"
#include "evpool.h"
#include "hist.h"

#define TICK_MS 10
#define MAX_BATCH 10000  /* the server's default per-batch limit */
#define FILL_BATCHES 32  /* --rate 0: batches per loop iteration */

typedef struct load {
    uv_loop_t loop;
    uv_timer_t tick;       /* pacing, and checking the drain */
    uv_idle_t fill_idle;   /* --rate 0: a round of sends per loop iteration */
    uv_timer_t stop_timer; /* end of --duration, then end of the drain */
    uv_signal_t sigint, sigterm;
    struct sockaddr_storage server;
    uint64_t n_agents, rate, batch, duration_s, drain_s, max_unacked_mb;
    const char *prefix;
    sim_client **agents;
    size_t open_agents;
    size_t rr; /* round-robin cursor */
    sim_evpool pool;
    Chainwatch__V1__Event **scratch;
    int producing, draining;
    uint64_t start_ns, end_ns; /* production window, uv_hrtime() */
    uint64_t produced;         /* events handed to clients (for pacing) */
    uint64_t events_sent, batches_sent, events_acked, batches_acked, reconnects;
    uint64_t unacked_at_end;
    int failed;
    sim_hist hist;
    sim_acklog *acklog;
} load;

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sends one batch of k pool events on `c`; returns 0 or a negative errno. */
static int send_batch(load *l, sim_client *c, size_t k)
{
    sim_evpool_take(&l->pool, l->scratch, k, wall_ns());
    int rc = sim_client_send(c, l->scratch, k);
    if (rc == 0) {
        l->events_sent += k;
        l->batches_sent++;
        l->produced += k;
    }
    return rc;
}

static int can_send(sim_client *c)
{
    return sim_client_ready(c) && sim_client_has_room(c);
}

static void on_fill(uv_idle_t *h);

/* --rate 0: asks for rounds of sends from the next loop iteration on. Sends
 * never start inside a client's callback: one read can carry hundreds of
 * Acks, and refilling on each would hold the loop for seconds. An idle
 * handle rather than a 0 ms timer: libuv 1.44 runs a timer re-armed with 0
 * inside its own callback again in the same iteration, starving I/O. */
static void kick_fill(load *l)
{
    if (l->producing) uv_idle_start(&l->fill_idle, on_fill);
}

/* Loop thread, --rate 0, once per iteration while active: one full batch per
 * agent with room, round-robin, at most FILL_BATCHES per iteration so that
 * timers and acks keep flowing; stops when no agent has room (their `room`
 * callbacks start it again). */
static void on_fill(uv_idle_t *h)
{
    load *l = h->data;
    size_t idle = 0;
    int budget = FILL_BATCHES;
    while (budget > 0 && l->producing && idle < l->n_agents) {
        sim_client *c = l->agents[l->rr];
        l->rr = (l->rr + 1) % l->n_agents;
        if (!can_send(c) || send_batch(l, c, l->batch) < 0) {
            idle++;
            continue;
        }
        idle = 0;
        budget--;
    }
    if (budget > 0 || !l->producing) uv_idle_stop(&l->fill_idle);
}

static void close_agents(load *l)
{
    l->draining = 0;
    uv_timer_stop(&l->tick);
    uv_timer_stop(&l->stop_timer);
    for (size_t i = 0; i < l->n_agents; i++) sim_client_close(l->agents[i]);
}

/* Loop thread: every TICK_MS while producing or draining. */
static void on_tick(uv_timer_t *t)
{
    load *l = t->data;
    if (l->draining) {
        for (size_t i = 0; i < l->n_agents; i++)
            if (!sim_client_failed(l->agents[i]) && sim_client_unacked(l->agents[i])) return;
        close_agents(l);
        return;
    }
    if (!l->producing) return;
    if (l->rate == 0) {
        kick_fill(l);
        return;
    }
    double elapsed = (double)(uv_hrtime() - l->start_ns) / 1e9;
    uint64_t target = (uint64_t)(elapsed * (double)l->rate);
    if (target > l->produced + l->rate) l->produced = target - l->rate; /* cap the backlog */
    uint64_t due = target > l->produced ? target - l->produced : 0;
    size_t idle = 0;
    while (due > 0 && idle < l->n_agents) {
        sim_client *c = l->agents[l->rr];
        l->rr = (l->rr + 1) % l->n_agents;
        size_t k = due < l->batch ? (size_t)due : (size_t)l->batch;
        if (!can_send(c) || send_batch(l, c, k) < 0) {
            idle++;
            continue;
        }
        idle = 0;
        due -= k;
    }
}

/* Client callbacks, all on the loop thread. */
static void on_acked(void *user, sim_client *c, uint64_t seq, uint32_t n, uint64_t sent_ns)
{
    load *l = user;
    if (sent_ns) sim_hist_add(&l->hist, (uv_hrtime() - sent_ns) / 1000);
    l->events_acked += n;
    l->batches_acked++;
    if (l->acklog) sim_acklog_batch(l->acklog, sim_client_agent_id(c), seq, n);
}

static void on_room(void *user, sim_client *c)
{
    (void)c;
    load *l = user;
    if (l->rate == 0) kick_fill(l);
}

static void on_failed(void *user, sim_client *c)
{
    (void)c;
    load *l = user;
    l->failed = 1;
}

static void close_timers(load *l)
{
    uv_close((uv_handle_t *)&l->tick, NULL);
    uv_close((uv_handle_t *)&l->fill_idle, NULL);
    uv_close((uv_handle_t *)&l->stop_timer, NULL);
    uv_close((uv_handle_t *)&l->sigint, NULL);
    uv_close((uv_handle_t *)&l->sigterm, NULL);
}

static void on_closed(void *user, sim_client *c)
{
    load *l = user;
    l->unacked_at_end += sim_client_unacked(c);
    l->reconnects += sim_client_get_stats(c)->reconnects;
    if (--l->open_agents == 0) close_timers(l);
}

/* Loop thread: the drain deadline passed with batches still unacked. */
static void on_drain_timeout(uv_timer_t *t)
{
    load *l = t->data;
    cw_error("agentsim", "load: batches still unacked %llu s after the end; giving up",
             (unsigned long long)l->drain_s);
    close_agents(l);
}

/* Loop thread: --duration is over. */
static void on_duration(uv_timer_t *t)
{
    load *l = t->data;
    l->producing = 0;
    uv_idle_stop(&l->fill_idle);
    l->end_ns = uv_hrtime();
    l->draining = 1;
    uv_timer_start(&l->stop_timer, on_drain_timeout, l->drain_s * 1000, 0);
}

/* Loop thread: SIGINT or SIGTERM ends the load early, as if --duration had
 * passed (the summary still prints); a second one stops waiting for acks. */
static void on_signal(uv_signal_t *h, int signum)
{
    load *l = h->data;
    cw_warn("agentsim", "load interrupted by signal %d", signum);
    if (l->producing)
        on_duration(&l->stop_timer);
    else if (l->draining)
        close_agents(l);
}

static int start_agents(load *l)
{
    static const sim_client_cbs cbs = {on_acked, on_room, on_failed, on_closed};
    l->agents = calloc(l->n_agents, sizeof *l->agents);
    if (!l->agents) return -1;
    for (size_t i = 0; i < l->n_agents; i++) {
        char id[160], host[32], ip[32];
        snprintf(host, sizeof host, "load-%05zu", i);
        snprintf(id, sizeof id, "%s%s", l->prefix, host);
        snprintf(ip, sizeof ip, "10.200.%zu.%zu", i / 250, i % 250 + 1);
        sim_hello h = {.agent_id = id,
                       .hostname = host,
                       .ip = ip,
                       .cloud = "aws",
                       .region = "us-east-1",
                       .cluster = "load",
                       .node_name = host,
                       .kernel = "6.1.0-18-amd64",
                       .agent_version = "agentsim",
                       .os = "linux"};
        sim_client_limits lim = {.max_unacked_bytes = (size_t)l->max_unacked_mb << 20};
        l->agents[i] =
            sim_client_new(&l->loop, (struct sockaddr *)&l->server, &h, 1, &lim, &cbs, l);
        if (!l->agents[i]) return -1;
        l->open_agents++;
        sim_client_start(l->agents[i]);
    }
    return 0;
}

static void report(const load *l)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double dur = (double)(l->end_ns - l->start_ns) / 1e9;
    double eps = dur > 0 ? (double)l->events_acked / dur : 0;
    double p50 = (double)sim_hist_quantile(&l->hist, 0.50) / 1000;
    double p99 = (double)sim_hist_quantile(&l->hist, 0.99) / 1000;
    double p999 = (double)sim_hist_quantile(&l->hist, 0.999) / 1000;
    double max = (double)l->hist.max / 1000;
    printf("agents=%llu\nduration_s=%.2f\nevents_per_s=%.0f\nevents_sent=%llu\n"
           "events_acked=%llu\nbatches_sent=%llu\nbatches_acked=%llu\nbatches_unacked=%llu\n"
           "ack_latency_p50_ms=%.2f\nack_latency_p99_ms=%.2f\nack_latency_p999_ms=%.2f\n"
           "ack_latency_max_ms=%.2f\nreconnects=%llu\ncpu_s=%.2f\n",
           (unsigned long long)l->n_agents, dur, eps, (unsigned long long)l->events_sent,
           (unsigned long long)l->events_acked, (unsigned long long)l->batches_sent,
           (unsigned long long)l->batches_acked, (unsigned long long)l->unacked_at_end, p50, p99,
           p999, max, (unsigned long long)l->reconnects, cpu);
    printf("load: %llu agents for %.1f s: %.0f events/s acked (%llu sent, %llu acked, %llu "
           "batches unacked); ack latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; "
           "agentsim cpu %.2f s\n",
           (unsigned long long)l->n_agents, dur, eps, (unsigned long long)l->events_sent,
           (unsigned long long)l->events_acked, (unsigned long long)l->unacked_at_end, p50, p99,
           p999, cpu);
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: agentsim load --server HOST:PORT [--agents N] [--rate EPS] [--duration S]\n"
            "                     [--batch N] [--drain S] [--max-unacked-mb M]\n"
            "                     [--agent-prefix P] [--ack-log FILE] [--log-level L]\n"
            "\n"
            "N agents send a realistic mix of events (mostly process_exec, then net_connect,\n"
            "dns_query, file_op, some login and container_start) to chainwatchd for S seconds,\n"
            "then wait for every batch to be acked.\n"
            "\n"
            "  --server HOST:PORT  chainwatchd's agent listener (required)\n"
            "  --agents N          concurrent agent connections (default 10)\n"
            "  --rate EPS          total events per second (default 10000); 0 = as fast as\n"
            "                      the server takes them\n"
            "  --duration S        seconds of load (default 10)\n"
            "  --batch N           events per batch, at most (default 500, max 10000)\n"
            "  --drain S           how long to wait for outstanding acks (default 30)\n"
            "  --max-unacked-mb M  per agent: stop sending while M MiB are unacked (default 32)\n"
            "  --agent-prefix P    agent id = P + \"load-NNNNN\" (default \"sim-<pid>-<time>-\")\n"
            "  --ack-log FILE      one line per acked batch: \"<agent_id> <seq> <count>\",\n"
            "                      i.e. events <agent_id>:<seq>:0 .. <agent_id>:<seq>:<count-1>\n"
            "                      are stored\n"
            "  --log-level L       debug, info, warn (default), error\n"
            "\n"
            "Prints key=value lines (agents, duration_s, events_per_s = acked events /\n"
            "duration, events_sent, events_acked, batches_sent, batches_acked,\n"
            "batches_unacked, ack_latency_p50_ms, _p99_ms, _p999_ms, _max_ms, reconnects,\n"
            "cpu_s = this process's user+system CPU) and one summary line.\n"
            "Exit status: 0 when every batch was acked, 1 otherwise, 2 on bad arguments.\n");
}

static int parse_args(load *l, int argc, char **argv, const char **server, const char **acklog)
{
    static const struct option opts[] = {{"server", required_argument, NULL, 's'},
                                         {"agents", required_argument, NULL, 'n'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"drain", required_argument, NULL, 'D'},
                                         {"max-unacked-mb", required_argument, NULL, 'm'},
                                         {"agent-prefix", required_argument, NULL, 'p'},
                                         {"ack-log", required_argument, NULL, 'a'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    enum cw_log_level level = CW_LOG_WARN;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': *server = optarg; break;
        case 'n':
            if (sim_cli_u64("load", "agents", optarg, 1, 100000, &l->n_agents)) return 2;
            break;
        case 'r':
            if (sim_cli_u64("load", "rate", optarg, 0, 100000000, &l->rate)) return 2;
            break;
        case 'd':
            if (sim_cli_u64("load", "duration", optarg, 1, 86400, &l->duration_s)) return 2;
            break;
        case 'b':
            if (sim_cli_u64("load", "batch", optarg, 1, MAX_BATCH, &l->batch)) return 2;
            break;
        case 'D':
            if (sim_cli_u64("load", "drain", optarg, 1, 3600, &l->drain_s)) return 2;
            break;
        case 'm':
            if (sim_cli_u64("load", "max-unacked-mb", optarg, 1, 4096, &l->max_unacked_mb))
                return 2;
            break;
        case 'p': l->prefix = optarg; break;
        case 'a': *acklog = optarg; break;
        case 'l':
            if (cw_log_parse_level(optarg, &level)) {
                fprintf(stderr, "agentsim load: --log-level %s: expected debug, info, warn or "
                                "error\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    cw_log_set_level(level);
    if (optind < argc) {
        fprintf(stderr, "agentsim load: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!*server) {
        fprintf(stderr, "agentsim load: --server HOST:PORT is required\n");
        return 2;
    }
    char err[600];
    if (sim_addr_parse(*server, &l->server, err, sizeof err)) {
        fprintf(stderr, "agentsim load: --server %s\n", err);
        return 2;
    }
    if (strlen(l->prefix) > 100 || (l->prefix[0] && !sim_cli_agent_id_ok(l->prefix))) {
        fprintf(stderr, "agentsim load: --agent-prefix must be printable ASCII without spaces, "
                        "at most 100 bytes\n");
        return 2;
    }
    return -1; /* go on */
}

int sim_load_main(int argc, char **argv)
{
    load *l = calloc(1, sizeof *l);
    if (!l) return 1;
    char prefix[128], err[600];
    sim_cli_default_prefix(prefix, sizeof prefix);
    l->prefix = prefix;
    l->n_agents = 10;
    l->rate = 10000;
    l->duration_s = 10;
    l->batch = 500;
    l->drain_s = 30;
    l->max_unacked_mb = 32;
    const char *server = NULL, *acklog = NULL;
    int rc = parse_args(l, argc, argv, &server, &acklog);
    if (rc >= 0) goto out;
    rc = 1;
    /* The pool is larger than a batch so a batch never holds one event twice. */
    size_t pool_n = l->batch * 2 > 8192 ? l->batch * 2 : 8192;
    l->scratch = calloc(l->batch, sizeof *l->scratch);
    if (!l->scratch || sim_evpool_build(&l->pool, pool_n, (uint32_t)getpid()) < 0) {
        fprintf(stderr, "agentsim load: out of memory\n");
        goto out;
    }
    if (uv_loop_init(&l->loop) < 0) goto out;
    if (acklog && !(l->acklog = sim_acklog_open(&l->loop, acklog, err, sizeof err))) {
        fprintf(stderr, "agentsim load: %s\n", err);
        rc = 2;
        uv_loop_close(&l->loop);
        goto out;
    }
    uv_timer_init(&l->loop, &l->tick);
    uv_idle_init(&l->loop, &l->fill_idle);
    uv_timer_init(&l->loop, &l->stop_timer);
    uv_signal_init(&l->loop, &l->sigint);
    uv_signal_init(&l->loop, &l->sigterm);
    l->tick.data = l->fill_idle.data = l->stop_timer.data = l->sigint.data = l->sigterm.data = l;
    uv_signal_start(&l->sigint, on_signal, SIGINT);
    uv_signal_start(&l->sigterm, on_signal, SIGTERM);
    if (start_agents(l) < 0) {
        fprintf(stderr, "agentsim load: cannot create the agents\n");
        l->failed = 1;
        for (size_t i = 0; l->agents && i < l->n_agents && l->agents[i]; i++)
            sim_client_close(l->agents[i]);
        if (!l->open_agents) close_timers(l);
    } else {
        l->producing = 1;
        uv_update_time(&l->loop);
        l->start_ns = l->end_ns = uv_hrtime();
        uv_timer_start(&l->tick, on_tick, TICK_MS, TICK_MS);
        uv_timer_start(&l->stop_timer, on_duration, l->duration_s * 1000, 0);
    }
    uv_run(&l->loop, UV_RUN_DEFAULT);
    int loop_rc = uv_loop_close(&l->loop);
    int log_rc = sim_acklog_close(l->acklog);
    if (!l->failed || l->batches_sent) report(l);
    rc = (l->unacked_at_end || l->failed || loop_rc || log_rc) ? 1 : 0;
out:
    sim_evpool_free(&l->pool);
    free(l->scratch);
    free(l->agents);
    free(l);
    return rc;
}
