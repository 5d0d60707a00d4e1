/* Unit tests of the load generator's parts: the event pool (a realistic mix,
 * every event complete for its type), the latency histogram, and the ack
 * log (every acked batch written, in order, through asynchronous writes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "acklog.h"
#include "evpool.h"
#include "hist.h"
#include "scenario.h"

/* The fields FORMAT.md requires per type (and the server checks). */
static int complete(const Chainwatch__V1__Event *e)
{
    switch (e->payload_case) {
    case CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC: {
        const Chainwatch__V1__ProcessExec *m = e->process_exec;
        return m->has_pid && m->has_ppid && m->exe && m->exe[0] == '/' && m->n_argv > 0 &&
               m->has_uid;
    }
    case CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXIT: return e->process_exit->has_pid;
    case CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT: {
        const Chainwatch__V1__NetConnect *m = e->net_connect;
        return m->has_pid && m->exe && m->proto && m->direction && m->src_ip && m->has_src_port &&
               m->dst_ip && m->has_dst_port;
    }
    case CHAINWATCH__V1__EVENT__PAYLOAD_NET_LISTEN: {
        const Chainwatch__V1__NetListen *m = e->net_listen;
        return m->has_pid && m->exe && m->proto && m->ip && m->has_port;
    }
    case CHAINWATCH__V1__EVENT__PAYLOAD_DNS_QUERY:
        return e->dns_query->has_pid && e->dns_query->exe && e->dns_query->query;
    case CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP:
        return e->file_op->has_pid && e->file_op->exe && e->file_op->op && e->file_op->path;
    case CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN: {
        const Chainwatch__V1__Login *m = e->login;
        return m->user && m->src_ip && m->service && m->method && m->has_success;
    }
    case CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START:
        return e->container_start->container_id && strlen(e->container_start->container_id) == 64;
    case CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_STOP:
        return e->container_stop->container_id != NULL;
    default: return 0;
    }
}

static void pool_is_a_complete_realistic_mix(void **state)
{
    (void)state;
    sim_evpool p;
    assert_int_equal(sim_evpool_build(&p, 20000, 12345), 0);
    assert_int_equal(p.n, 20000);
    size_t by_type[SIM_EV_COUNT] = {0}, in_container = 0, execs = 0;
    for (size_t i = 0; i < p.n; i++) {
        const Chainwatch__V1__Event *e = p.events[i];
        if (!complete(e)) fail_msg("event %zu (type %d) misses a required field", i,
                                   (int)e->payload_case);
        by_type[e->payload_case - SIM_EV_FIRST]++;
        if (e->payload_case == CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC) {
            execs++;
            if (e->process_exec->container_id) in_container++;
            assert_non_null(e->process_exec->parent_exe);
        }
    }
    /* Every type occurs; process_exec dominates. */
    for (int t = 0; t < SIM_EV_COUNT; t++) assert_true(by_type[t] > 0);
    size_t exec = by_type[CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC - SIM_EV_FIRST];
    for (int t = 0; t < SIM_EV_COUNT; t++) assert_true(by_type[t] <= exec);
    assert_true(exec > p.n / 3);
    assert_true(in_container > execs / 2 && in_container < execs);

    /* take(): distinct events within a batch, consecutive times, wraps around. */
    Chainwatch__V1__Event *out[3];
    p.next = p.n - 2;
    sim_evpool_take(&p, out, 3, 1000);
    assert_ptr_equal(out[0], p.events[p.n - 2]);
    assert_ptr_equal(out[2], p.events[0]);
    assert_int_equal(out[1]->time_ns, 1001);
    assert_int_equal(out[2]->time_ns, 1002);
    sim_evpool_free(&p);
}

static void hist_quantiles_are_close(void **state)
{
    (void)state;
    sim_hist *h = calloc(1, sizeof *h);
    assert_int_equal(sim_hist_quantile(h, 0.5), 0);
    for (uint64_t v = 1; v <= 100000; v++) sim_hist_add(h, v);
    uint64_t p50 = sim_hist_quantile(h, 0.5), p99 = sim_hist_quantile(h, 0.99),
             p999 = sim_hist_quantile(h, 0.999);
    assert_true(p50 > 48500 && p50 < 51500);
    assert_true(p99 > 96000 && p99 < 102000);
    assert_true(p999 > 97000 && p999 <= 100000);
    assert_int_equal(h->max, 100000);
    /* Small values are exact. */
    memset(h, 0, sizeof *h);
    for (int i = 0; i < 10; i++) sim_hist_add(h, 7);
    assert_int_equal(sim_hist_quantile(h, 0.99), 7);
    free(h);
}

static void acklog_writes_every_batch(void **state)
{
    (void)state;
    char path[] = "/tmp/test_agentsim_acklog.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256];
    sim_acklog *l = sim_acklog_open(&loop, path, err, sizeof err);
    assert_non_null(l);
    /* Enough lines to need several asynchronous chunk writes. */
    for (uint64_t seq = 1; seq <= 20000; seq++) sim_acklog_batch(l, "sim-1-2-node-a", seq, 500);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    sim_acklog_batch(l, "sim-1-2-node-b", 1, 3);
    assert_int_equal(sim_acklog_close(l), 0);
    /* An unwritable path is a clear error. */
    assert_null(sim_acklog_open(&loop, "/nonexistent-dir/x", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir/x"));
    assert_int_equal(uv_loop_close(&loop), 0);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[128], agent[64];
    unsigned long long seq, want = 1;
    unsigned count;
    while (fgets(line, sizeof line, f) && want <= 20000) {
        assert_int_equal(sscanf(line, "%63s %llu %u", agent, &seq, &count), 3);
        assert_string_equal(agent, "sim-1-2-node-a");
        assert_int_equal(seq, want++);
        assert_int_equal(count, 500);
    }
    assert_int_equal(want, 20001);
    assert_string_equal(line, "sim-1-2-node-b 1 3\n");
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pool_is_a_complete_realistic_mix),
        cmocka_unit_test(hist_quantiles_are_close),
        cmocka_unit_test(acklog_writes_every_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
