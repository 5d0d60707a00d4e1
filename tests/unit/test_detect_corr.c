/* Unit tests: correlation rules in event time (event_count, value_count,
 * temporal, temporal_ordered), windows, out-of-order events, expiry. */
#include "detect_testlib.h"

#include "correlator/correlate.h"

#define CW_CORR_MAX_GROUPS_TEST (CW_CORR_MAX_GROUPS + 10)

static const char *base =
    "title: SSH login failed\nid: ssh-fail\nlevel: low\ngenerate: false\n"
    "logsource: {product: linux, category: login}\nchainwatch: {tactic: credential-access}\n"
    "detection: {s: {service: sshd, success: false}, condition: s}\n---\n"
    "title: SSH login ok\nid: ssh-ok\nlevel: low\ngenerate: false\n"
    "logsource: {product: linux, category: login}\nchainwatch: {tactic: initial-access}\n"
    "detection: {s: {service: sshd, success: true}, condition: s}\n---\n"
    "title: Shell\nid: shell\nlevel: low\ngenerate: false\n"
    "logsource: {category: process_exec}\nchainwatch: {tactic: execution}\n"
    "detection: {s: {exe_name: bash}, condition: s}\n---\n";

static cw_detector *det(const char *corr)
{
    char y[4096];
    snprintf(y, sizeof y, "%s%s", base, corr);
    cw_detector *d;
    assert_int_equal(cw_detector_create(&d, load(y)), 0);
    return d;
}

static void login(cw_detector *d, got *g, int64_t t, const char *host, const char *user,
                  const char *ip, int ok)
{
    agent_ev a;
    cw_detector_event(d, mk_login(&a, t, host, user, ip, ok), collect, g);
}

static void event_count(void **state)
{
    (void)state;
    cw_detector *d = det("title: SSH brute force\nid: brute\nlevel: high\n"
                         "chainwatch: {tactic: credential-access, attack: T1110.001, summary: "
                         "'{count} failed {service} logins for {user} from {src_ip} on {host} "
                         "within {timespan}'}\n"
                         "correlation: {type: event_count, rules: [ssh-fail], group-by: [host, "
                         "src_ip], timespan: 5m, condition: {gte: 10}}\n");
    got g = {0};
    /* 9 failures within 5 minutes, then one from elsewhere: nothing. */
    for (int i = 0; i < 9; i++) login(d, &g, T0 + i * 30 * SEC, "vm-1", "root", "203.0.113.9", 0);
    login(d, &g, T0 + 280 * SEC, "vm-1", "root", "198.51.100.1", 0);
    login(d, &g, T0 + 280 * SEC, "vm-2", "root", "203.0.113.9", 0);
    assert_int_equal(g.n, 0);
    /* The 10th from the same source within the window fires once. */
    login(d, &g, T0 + 290 * SEC, "vm-1", "root", "203.0.113.9", 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.ids[0], "brute");
    assert_string_equal(g.key[0], "vm-1|203.0.113.9");
    assert_string_equal(g.summary[0],
                        "10 failed sshd logins for root from 203.0.113.9 on vm-1 within 5m");
    /* The group started over. */
    login(d, &g, T0 + 291 * SEC, "vm-1", "root", "203.0.113.9", 0);
    assert_int_equal(g.n, 1);
    cw_detector_free(d);

    /* Far apart: 10 failures, one every 40 s, never 10 within 5 minutes. */
    d = det("title: B\nid: brute\nlevel: high\nchainwatch: {tactic: credential-access}\n"
            "correlation: {type: event_count, rules: ssh-fail, group-by: [src_ip], "
            "timespan: 5m, condition: {gte: 10}}\n");
    memset(&g, 0, sizeof g);
    for (int i = 0; i < 20; i++) login(d, &g, T0 + i * 40 * SEC, "vm-1", "root", "203.0.113.9", 0);
    assert_int_equal(g.n, 0);
    cw_detector_free(d);

    /* Out of order: late events inside the window count, those before it
     * do not. */
    d = det("title: B\nid: brute\nlevel: high\nchainwatch: {tactic: credential-access}\n"
            "correlation: {type: event_count, rules: ssh-fail, group-by: [src_ip], "
            "timespan: 1m, condition: {gte: 3}}\n");
    memset(&g, 0, sizeof g);
    login(d, &g, T0 + 100 * SEC, "vm-1", "root", "203.0.113.9", 0);
    login(d, &g, T0 + 10 * SEC, "vm-1", "root", "203.0.113.9", 0); /* 90 s before: ignored */
    login(d, &g, T0 + 20 * SEC, "vm-1", "root", "203.0.113.9", 0); /* ignored */
    assert_int_equal(g.n, 0);
    login(d, &g, T0 + 50 * SEC, "vm-1", "root", "203.0.113.9", 0); /* late, within 1m */
    assert_int_equal(g.n, 0);
    login(d, &g, T0 + 95 * SEC, "vm-1", "root", "203.0.113.9", 0);
    assert_int_equal(g.n, 1);
    cw_detector_free(d);
}

/* A brute force in progress, then one failed login from a host whose clock
 * is days fast, then the rest of the brute force. Bounded by its receive
 * time (cw_event_bound_clock), the fast event expires nothing and the rule
 * fires; unbounded, it would expire every group (the count so far) and the
 * attack would go unseen. */
static int brute_around_fast_clock(int64_t max_ahead_ns)
{
    cw_detector *d = det("title: B\nid: brute\nlevel: high\nchainwatch: {tactic: credential-access}\n"
                         "correlation: {type: event_count, rules: ssh-fail, group-by: [host, src_ip],"
                         " timespan: 5m, condition: {gte: 5}}\n");
    got g = {0};
    agent_ev a;
    for (int i = 1; i <= 5; i++) {
        if (i == 4) {
            cw_event *fast =
                (cw_event *)mk_login(&a, T0 + 2 * 86400 * SEC, "vm-fast", "root", "10.0.0.9", 0);
            cw_event_bound_clock(fast, T0 + 3 * SEC, max_ahead_ns);
            cw_detector_event(d, fast, collect, &g);
        }
        cw_event *ev = (cw_event *)mk_login(&a, T0 + i * SEC, "vm-1", "root", "203.0.113.9", 0);
        cw_event_bound_clock(ev, T0 + i * SEC, max_ahead_ns);
        cw_detector_event(d, ev, collect, &g);
    }
    cw_detector_free(d);
    return (int)g.n;
}

static void fast_clock_expires_nothing(void **state)
{
    (void)state;
    assert_int_equal(brute_around_fast_clock(300 * SEC), 1);
    assert_int_equal(brute_around_fast_clock(-1), 0);
}

static void value_count(void **state)
{
    (void)state;
    cw_detector *d = det("title: Password spray\nid: spray\nlevel: high\n"
                         "chainwatch: {tactic: credential-access}\n"
                         "correlation: {type: value_count, rules: [ssh-fail], group-by: [host], "
                         "timespan: 10m, condition: {field: user, gte: 3}}\n");
    got g = {0};
    login(d, &g, T0, "vm-1", "root", "203.0.113.9", 0);
    login(d, &g, T0 + 1 * SEC, "vm-1", "root", "203.0.113.9", 0); /* same user again */
    login(d, &g, T0 + 2 * SEC, "vm-1", "admin", "203.0.113.9", 0);
    login(d, &g, T0 + 3 * SEC, "vm-2", "oracle", "203.0.113.9", 0); /* other host */
    assert_int_equal(g.n, 0);
    /* A user seen 11 minutes before the newest is out of the window. */
    login(d, &g, T0 + 700 * SEC, "vm-1", "ubuntu", "203.0.113.9", 0);
    login(d, &g, T0 + 701 * SEC, "vm-1", "pi", "203.0.113.9", 0);
    assert_int_equal(g.n, 0);
    login(d, &g, T0 + 702 * SEC, "vm-1", "test", "203.0.113.9", 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.key[0], "vm-1");
    assert_string_equal(g.summary[0],
                        "Password spray: 3 distinct user in ssh-fail for vm-1 within 10m");
    cw_detector_free(d);
}

static void temporal(void **state)
{
    (void)state;
    cw_detector *d = det("title: Success after failure\nid: succ\nlevel: high\n"
                         "chainwatch: {tactic: initial-access}\n"
                         "correlation: {type: temporal, rules: [ssh-fail, ssh-ok], "
                         "group-by: [src_ip], timespan: 2m}\n");
    got g = {0};
    login(d, &g, T0, "vm-1", "root", "203.0.113.9", 1);
    login(d, &g, T0 + 200 * SEC, "vm-1", "root", "203.0.113.9", 0); /* too far apart */
    assert_int_equal(g.n, 0);
    login(d, &g, T0 + 210 * SEC, "vm-1", "root", "198.51.100.1", 1); /* other source */
    assert_int_equal(g.n, 0);
    login(d, &g, T0 + 150 * SEC, "vm-1", "root", "203.0.113.9", 1); /* any order */
    assert_int_equal(g.n, 1);
    assert_string_equal(g.key[0], "203.0.113.9");
    cw_detector_free(d);
}

static void temporal_ordered(void **state)
{
    (void)state;
    cw_detector *d = det("title: Brute then shell\nid: chain\nlevel: critical\n"
                         "chainwatch: {tactic: execution}\n"
                         "correlation: {type: temporal_ordered, rules: [ssh-fail, ssh-ok, shell],"
                         " group-by: [host], timespan: 5m}\n");
    got g = {0};
    agent_ev a;
    char *argv[] = {"bash"};
    /* Wrong order: ok before fail; then shell. */
    login(d, &g, T0, "vm-1", "root", "203.0.113.9", 1);
    login(d, &g, T0 + 10 * SEC, "vm-1", "root", "203.0.113.9", 0);
    cw_detector_event(d, mk_exec(&a, T0 + 20 * SEC, "/bin/bash", argv, 1), collect, &g);
    assert_int_equal(g.n, 0);
    /* Now the success arrives, then a shell: in order, within 5 minutes. */
    login(d, &g, T0 + 30 * SEC, "vm-1", "root", "203.0.113.9", 1);
    assert_int_equal(g.n, 0);
    cw_detector_event(d, mk_exec(&a, T0 + 40 * SEC, "/bin/bash", argv, 1), collect, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.ids[0], "chain");
    assert_string_equal(g.key[0], "vm-1");
    assert_string_equal(g.summary[0],
                        "Brute then shell: ssh-fail then ssh-ok then shell for vm-1 within 5m");
    /* Expired sequence: fail, ok, and a shell 6 minutes after the fail. */
    login(d, &g, T0 + 1000 * SEC, "vm-1", "root", "203.0.113.9", 0);
    login(d, &g, T0 + 1010 * SEC, "vm-1", "root", "203.0.113.9", 1);
    cw_detector_event(d, mk_exec(&a, T0 + 1360 * SEC, "/bin/bash", argv, 1), collect, &g);
    assert_int_equal(g.n, 1);
    cw_detector_free(d);
}

static void many_groups_bounded(void **state)
{
    (void)state;
    cw_detector *d = det("title: B\nid: brute\nlevel: high\n"
                         "chainwatch: {tactic: credential-access}\n"
                         "correlation: {type: event_count, rules: ssh-fail, group-by: [src_ip], "
                         "timespan: 1h, condition: {gte: 2}}\n");
    got g = {0};
    char ip[32];
    /* More groups than the cap: the oldest are evicted, nothing breaks,
     * and a fresh group still works. */
    for (int i = 0; i < CW_CORR_MAX_GROUPS_TEST; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        login(d, &g, T0 + i, "vm-1", "root", ip, 0);
    }
    assert_int_equal(g.n, 0);
    login(d, &g, T0 + 1000000, "vm-1", "root", ip, 0);
    assert_int_equal(g.n, 1);
    /* The very first group was evicted: its second failure starts anew. */
    login(d, &g, T0 + 1000001, "vm-1", "root", "10.0.0.0", 0);
    assert_int_equal(g.n, 1);
    cw_detector_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_count),
        cmocka_unit_test(fast_clock_expires_nothing),
        cmocka_unit_test(value_count),
        cmocka_unit_test(temporal),         cmocka_unit_test(temporal_ordered),
        cmocka_unit_test(many_groups_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
