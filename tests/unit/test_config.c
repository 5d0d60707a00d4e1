/* Unit tests: chainwatchd's configuration (defaults, YAML file, flags, --set,
 * validation, --help and the committed example file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"

/* Every YAML key a user can set; --help and the example must show them all. */
static const char *const all_keys[] = {
    "agent_listen",
    "http_listen",
    "data_dir",
    "rules",
    "events_out",
    "alerts_out",
    "incidents_out",
    "log_level",
    "ingest.threads",
    "ingest.max_frame_bytes",
    "ingest.max_hello_frame_bytes",
    "ingest.max_batch_events",
    "ingest.decode_arena_bytes",
    "ingest.conn_inflight_bytes",
    "ingest.total_inflight_bytes",
    "ingest.handshake_timeout_ms",
    "ingest.idle_timeout_ms",
    "ingest.max_connections",
    "spool.segment_bytes",
    "spool.max_bytes",
    "http.max_body_bytes",
    "http.audit_dedupe_entries",
    "enrich.owner_labels",
};
#define NKEYS (sizeof all_keys / sizeof all_keys[0])

static const char *const all_flags[] = {
    "--config",        "--agent-listen", "--http-listen", "--data-dir",
    "--rules",         "--events-out",   "--alerts-out",  "--incidents-out",
    "--check-config",  "--log-level",    "--set",         "--print-example-config",
    "--help",
};

/* ---- helpers ---- */

static char *write_tmp(const char *text, size_t len)
{
    char *path = strdup("/tmp/cw_test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void drop_tmp(char *path)
{
    unlink(path);
    free(path);
}

/* Loads YAML text on top of defaults; returns cw_config_load_yaml_buffer's code. */
static int load_text(cw_config *c, const char *text, char *err, size_t errlen)
{
    cw_config_defaults(c);
    err[0] = '\0';
    return cw_config_load_yaml_buffer(c, "t.yaml", text, strlen(text), err, errlen);
}

/* Runs cw_config_load with argv (NULL-terminated, argv[0] added here). */
static int load_args(cw_config *c, char *err, size_t errlen, ...)
{
    char *argv[32] = {"chainwatchd"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    err[0] = '\0';
    return cw_config_load(c, argc, argv, err, errlen);
}

/* Runs fn with stdout sent to a string, which the caller frees. */
static char *capture_stdout(int (*fn)(void *), void *arg, int *rc)
{
    char path[] = "/tmp/cw_test_stdout_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    *rc = fn(arg);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(fd, out, (size_t)n, 0), n);
    close(fd);
    unlink(path);
    return out;
}

static char *example_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cw_config_write_example(f);
    fclose(f);
    return text;
}

#define assert_err(err, substr)                                                                    \
    do {                                                                                           \
        if (!strstr((err), (substr))) fail_msg("error '%s' lacks '%s'", (err), (substr));         \
    } while (0)

/* ---- tests ---- */

static void defaults_are_the_documented_ones(void **state)
{
    (void)state;
    cw_config c;
    char err[512];
    cw_config_defaults(&c);
    assert_string_equal(c.agent_listen, "0.0.0.0:7400");
    assert_string_equal(c.http_listen, "0.0.0.0:7480");
    assert_string_equal(c.data_dir, "/var/lib/chainwatch");
    assert_string_equal(c.rules_dir, "");
    assert_string_equal(c.events_out, "");
    assert_string_equal(c.alerts_out, "");
    assert_string_equal(c.incidents_out, "");
    assert_string_equal(c.log_level, "info");
    assert_int_equal(c.ingest_threads, 0);
    assert_int_equal(c.max_frame_bytes, 4194304);
    assert_int_equal(c.max_hello_frame_bytes, 65536);
    assert_int_equal(c.max_batch_events, 10000);
    assert_int_equal(c.decode_arena_bytes, 67108864);
    assert_int_equal(c.conn_inflight_bytes, 16u << 20);
    assert_int_equal(c.total_inflight_bytes, 256u << 20);
    assert_int_equal(c.handshake_timeout_ms, 10000);
    assert_int_equal(c.idle_timeout_ms, 90000);
    assert_int_equal(c.max_connections, 20000);
    assert_int_equal(c.spool_segment_bytes, 64u << 20);
    assert_int_equal(c.spool_max_bytes, 8ull << 30);
    assert_int_equal(c.http_max_body_bytes, 12582912);
    assert_int_equal(c.audit_dedupe_entries, 100000);
    assert_string_equal(c.owner_labels, "owner,team");
    assert_string_equal(c.config_file, "");
    assert_int_equal(c.check_config, 0);
    assert_int_equal(cw_config_validate(&c, err, sizeof err), 0);

    /* No arguments at all gives exactly the defaults. */
    cw_config d;
    assert_int_equal(load_args(&d, err, sizeof err, NULL), 0);
    assert_memory_equal(&c, &d, sizeof c);

    int n = cw_config_ingest_threads(&c);
    assert_true(n >= 1 && n <= 64);
    c.ingest_threads = 3;
    assert_int_equal(cw_config_ingest_threads(&c), 3);
}

static void yaml_nested_keys(void **state)
{
    (void)state;
    cw_config c;
    char err[512];
    const char *y = "# a comment\n"
                    "agent_listen: 127.0.0.1:9000\n"
                    "http_listen: \"[::1]:9080\"\n"
                    "data_dir: /tmp\n"
                    "log_level: debug\n"
                    "events_out:\n"
                    "ingest:\n"
                    "  threads: 4\n"
                    "  max_frame_bytes: 1048576\n"
                    "  idle_timeout_ms: 60000\n"
                    "spool: {segment_bytes: 32MiB, max_bytes: 1GiB}\n"
                    "http:\n"
                    "  max_body_bytes: '2MiB'\n"
                    "enrich:\n"
                    "  owner_labels: app.kubernetes.io/owner,team\n";
    assert_int_equal(load_text(&c, y, err, sizeof err), 0);
    assert_string_equal(c.agent_listen, "127.0.0.1:9000");
    assert_string_equal(c.http_listen, "[::1]:9080");
    assert_string_equal(c.data_dir, "/tmp");
    assert_string_equal(c.log_level, "debug");
    assert_string_equal(c.events_out, ""); /* an empty value means off */
    assert_int_equal(c.ingest_threads, 4);
    assert_int_equal(c.max_frame_bytes, 1048576);
    assert_int_equal(c.idle_timeout_ms, 60000);
    assert_int_equal(c.handshake_timeout_ms, 10000); /* not in the file: default */
    assert_int_equal(c.spool_segment_bytes, 32u << 20);
    assert_int_equal(c.spool_max_bytes, 1u << 30);
    assert_int_equal(c.http_max_body_bytes, 2u << 20);
    assert_string_equal(c.owner_labels, "app.kubernetes.io/owner,team");
    assert_int_equal(cw_config_validate(&c, err, sizeof err), 0);
}

static void empty_files_give_defaults(void **state)
{
    (void)state;
    cw_config c, d;
    char err[512];
    cw_config_defaults(&d);
    const char *empties[] = {"", "# only a comment\n", "---\n", "\n\n", "ingest:\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        assert_int_equal(load_text(&c, empties[i], err, sizeof err), 0);
        assert_memory_equal(&c, &d, sizeof c);
    }
}

static void flags_override_file_in_either_order(void **state)
{
    (void)state;
    const char *y = "agent_listen: 127.0.0.1:9000\n"
                    "http_listen: 127.0.0.1:9080\n"
                    "ingest:\n  max_frame_bytes: 2MiB\n  max_batch_events: 500\n";
    char *path = write_tmp(y, strlen(y));
    cw_config c;
    char err[512];

    assert_int_equal(load_args(&c, err, sizeof err, "--agent-listen", "127.0.0.1:1111", "--set",
                               "ingest.max_frame_bytes=1MiB", "--config", path, NULL),
                     0);
    assert_string_equal(c.agent_listen, "127.0.0.1:1111");
    assert_string_equal(c.http_listen, "127.0.0.1:9080"); /* from the file */
    assert_int_equal(c.max_frame_bytes, 1u << 20);
    assert_int_equal(c.max_batch_events, 500);
    assert_string_equal(c.config_file, path);

    assert_int_equal(load_args(&c, err, sizeof err, "--config", path,
                               "--agent-listen=127.0.0.1:2222",
                               "--set=ingest.max_frame_bytes=1MiB", NULL),
                     0);
    assert_string_equal(c.agent_listen, "127.0.0.1:2222");
    assert_int_equal(c.max_frame_bytes, 1u << 20);
    assert_int_equal(c.max_batch_events, 500);

    /* Between flags, the later one wins. */
    assert_int_equal(load_args(&c, err, sizeof err, "--log-level", "warn", "--set",
                               "log_level=error", "--check-config", NULL),
                     0);
    assert_string_equal(c.log_level, "error");
    assert_int_equal(c.check_config, 1);
    drop_tmp(path);
}

static void every_flag_sets_its_field(void **state)
{
    (void)state;
    cw_config c;
    char err[512];
    assert_int_equal(load_args(&c, err, sizeof err, "--http-listen", "localhost:8080",
                               "--data-dir", "/tmp", "--rules", "/tmp", "--events-out",
                               "/tmp/e.jsonl", "--alerts-out=/tmp/a.jsonl", "--incidents-out",
                               "/tmp/i.jsonl", "--log-level=debug", NULL),
                     0);
    assert_string_equal(c.http_listen, "localhost:8080");
    assert_string_equal(c.data_dir, "/tmp");
    assert_string_equal(c.rules_dir, "/tmp");
    assert_string_equal(c.events_out, "/tmp/e.jsonl");
    assert_string_equal(c.alerts_out, "/tmp/a.jsonl");
    assert_string_equal(c.incidents_out, "/tmp/i.jsonl");
    assert_string_equal(c.log_level, "debug");
}

static void bad_flags_are_named(void **state)
{
    (void)state;
    cw_config c;
    char err[512];
    assert_int_equal(load_args(&c, err, sizeof err, "--data-dir", "/tmp", "--bogus", "1", NULL),
                     -1);
    assert_err(err, "--bogus");
    assert_err(err, "--help");
    assert_int_equal(load_args(&c, err, sizeof err, "stray", NULL), -1);
    assert_err(err, "stray");
    assert_int_equal(load_args(&c, err, sizeof err, "--data-dir", NULL), -1);
    assert_err(err, "--data-dir needs a value");
    assert_int_equal(load_args(&c, err, sizeof err, "--set", "ingest.threads", NULL), -1);
    assert_err(err, "KEY=VALUE");
    assert_int_equal(load_args(&c, err, sizeof err, "--set", "ingest.nope=1", NULL), -1);
    assert_err(err, "unknown key 'ingest.nope'");
    assert_int_equal(load_args(&c, err, sizeof err, "--set", "ingest.threads=65", NULL), -1);
    assert_err(err, "ingest.threads: 65 is out of range [0, 64]");
    assert_int_equal(load_args(&c, err, sizeof err, "--agent-listen", "nowhere", NULL), -1);
    assert_err(err, "--agent-listen: nowhere is not HOST:PORT");
    assert_int_equal(load_args(&c, err, sizeof err, "--log-level", "loud", NULL), -1);
    assert_err(err, "loud");
    assert_int_equal(load_args(&c, err, sizeof err, "--help=1", NULL), -1);
    assert_int_equal(load_args(&c, err, sizeof err, "--config", "/nonexistent/cw.yaml", NULL),
                     -1);
    assert_err(err, "/nonexistent/cw.yaml");
}

static void unknown_key_names_file_and_line(void **state)
{
    (void)state;
    const char *y = "agent_listen: 127.0.0.1:9000\n"
                    "ingest:\n"
                    "  threads: 2\n"
                    "  foo: 1\n";
    char *path = write_tmp(y, strlen(y));
    cw_config c;
    char err[512], want[600];
    cw_config_defaults(&c);
    assert_int_equal(cw_config_load_file(&c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:4: unknown key 'ingest.foo'", path);
    assert_string_equal(err, want);
    drop_tmp(path);

    /* A dotted key at the top level is not the nested key. */
    assert_int_equal(load_text(&c, "\n\ningest.threads: 2\n", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:3: unknown key 'ingest.threads'");
    assert_int_equal(load_text(&c, "bogus:\n  threads: 2\n", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:1: unknown key 'bogus'");
}

static void bad_values_name_the_line(void **state)
{
    (void)state;
    cw_config c;
    char err[512];
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"ingest:\n  max_frame_bytes: 12x\n",
         "t.yaml:2: ingest.max_frame_bytes: 12x is not a number"},
        {"ingest:\n  max_frame_bytes: 100\n",
         "t.yaml:2: ingest.max_frame_bytes: 100 is out of range [1KiB, 64MiB]"},
        {"ingest:\n  max_batch_events: -5\n", "t.yaml:2: ingest.max_batch_events: -5 is out of"},
        {"\nagent_listen: 10.0.0.1:70000\n", "t.yaml:2: agent_listen: 10.0.0.1:70000 is not"},
        {"agent_listen: 1.2.3.4:1\nagent_listen: 1.2.3.4:2\n",
         "t.yaml:2: duplicate key 'agent_listen'"},
        {"ingest:\n  threads: 1\nspool: {}\ningest:\n  max_batch_events: 2\n",
         "t.yaml:4: duplicate key 'ingest'"},
        {"ingest:\n  threads: 1\n  threads: 2\n", "t.yaml:3: duplicate key 'ingest.threads'"},
        {"data_dir:\n  - /a\n", "t.yaml:2: data_dir: expected a single value, not a list"},
        {"data_dir: {a: 1}\n", "t.yaml:1: data_dir: expected a single value, not a mapping"},
        {"ingest: 5\n", "t.yaml:1: 'ingest' is a section"},
        {"- a\n- b\n", "t.yaml:1: expected a mapping of keys at the top level"},
        {"log_level: &a info\ndata_dir: *a\n", "t.yaml:2: aliases are not supported"},
        {"log_level: info\n---\nlog_level: warn\n", "t.yaml:2: only one YAML document"},
        {"ingest:\n  threads: 1\n bad: [\n", "t.yaml:3:"},
        {"[a]: 1\n", "t.yaml:1: expected a key"},
        {"ingest:\n  max_frame_bytes:\n", "t.yaml:2: ingest.max_frame_bytes: needs a value"},
        {"log_level: \"de\\0bug\"\n", "t.yaml:1: log_level: value contains a NUL byte"},
        {"enrich:\n  owner_labels: 'a,,b'\n", "t.yaml:2: enrich.owner_labels: a,,b is not"},
        {"log_level: \"\\e[31mred\"\n", "t.yaml:1: log_level: ?[31mred is not one of"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (load_text(&c, cases[i].yaml, err, sizeof err) != -1)
            fail_msg("case %zu accepted: %s", i, cases[i].yaml);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].want);
    }
    /* A failed key leaves its field as it was. */
    assert_int_equal(load_text(&c, "ingest:\n  max_frame_bytes: 12x\n", err, sizeof err), -1);
    assert_int_equal(c.max_frame_bytes, 4194304);
}

static void sizes_take_binary_suffixes(void **state)
{
    (void)state;
    cw_config c;
    char err[512];
    cw_config_defaults(&c);
    assert_int_equal(cw_config_set(&c, "ingest.max_frame_bytes", "4KiB", err, sizeof err), 0);
    assert_int_equal(c.max_frame_bytes, 4096);
    assert_int_equal(cw_config_set(&c, "ingest.max_frame_bytes", "64MiB", err, sizeof err), 0);
    assert_int_equal(c.max_frame_bytes, 64u << 20);
    assert_int_equal(cw_config_set(&c, "ingest.decode_arena_bytes", "1GiB", err, sizeof err), 0);
    assert_int_equal(c.decode_arena_bytes, 1u << 30);
    assert_int_equal(cw_config_set(&c, "spool.max_bytes", "2TiB", err, sizeof err), 0);
    assert_int_equal(c.spool_max_bytes, 2ull << 40);
    assert_int_equal(cw_config_set(&c, "spool.max_bytes", "17179869184", err, sizeof err), 0);
    assert_int_equal(c.spool_max_bytes, 16ull << 30);

    static const char *const bad[] = {"1MB", "1.5MiB", "1 MiB", "MiB", " 5", "+5", "0x10",
                                      "5mib", "99999999999999999999", "20000000TiB", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cw_config_set(&c, "spool.max_bytes", bad[i], err, sizeof err) != -1)
            fail_msg("'%s' accepted", bad[i]);
    }
    assert_int_equal(c.spool_max_bytes, 16ull << 30);
    /* Past a 32-bit field's range is out of range, never wrapped around. */
    assert_int_equal(cw_config_set(&c, "ingest.max_frame_bytes", "4GiB", err, sizeof err), -1);
    assert_err(err, "out of range");
    assert_int_equal(c.max_frame_bytes, 64u << 20);
    /* Counts and durations are plain integers. */
    assert_int_equal(cw_config_set(&c, "ingest.idle_timeout_ms", "1KiB", err, sizeof err), -1);
    assert_err(err, "is not a number");
}

static void addresses_are_literal_ips(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    assert_int_equal(cw_config_parse_addr("127.0.0.1:7400", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 7400);
    assert_int_equal(cw_config_parse_addr("localhost:1", &ss), 0);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_int_equal(cw_config_parse_addr("[::1]:65535", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(cw_config_parse_addr("[::]:80", NULL), 0);
    static const char *const bad[] = {
        "",          "127.0.0.1",     "127.0.0.1:",   "127.0.0.1:0",    "127.0.0.1:65536",
        ":80",       "::1:80",        "[::1]80",      "[::1]",          "example.com:80",
        "1.2.3:80",  "1.2.3.4:+80",   "1.2.3.4:8 0",  "[1.2.3.4]:80",   "localhost6:80",
        "1.2.3.4:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cw_config_parse_addr(bad[i], NULL) != -1) fail_msg("'%s' accepted", bad[i]);
}

static int run_help(void *arg)
{
    char err[512];
    return load_args(arg, err, sizeof err, "--data-dir", "/tmp", "-h", NULL);
}

static int run_example(void *arg)
{
    char err[512];
    return load_args(arg, err, sizeof err, "--print-example-config", NULL);
}

static void help_lists_every_key_and_flag(void **state)
{
    (void)state;
    cw_config c;
    int rc;
    char *out = capture_stdout(run_help, &c, &rc);
    assert_int_equal(rc, 1);
    for (size_t i = 0; i < NKEYS; i++)
        if (!strstr(out, all_keys[i])) fail_msg("--help lacks key %s", all_keys[i]);
    for (size_t i = 0; i < sizeof all_flags / sizeof all_flags[0]; i++)
        if (!strstr(out, all_flags[i])) fail_msg("--help lacks flag %s", all_flags[i]);
    assert_non_null(strstr(out, "4MiB")); /* defaults are shown */
    free(out);

    char *ex = capture_stdout(run_example, &c, &rc);
    assert_int_equal(rc, 1);
    char *want = example_text();
    assert_string_equal(ex, want);
    free(ex);
    free(want);
}

static void cross_field_rules(void **state)
{
    (void)state;
    cw_config c;
    char err[512];
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"ingest: {max_frame_bytes: 64KiB, max_hello_frame_bytes: 128KiB}\n",
         "ingest.max_hello_frame_bytes (131072) must be at most ingest.max_frame_bytes (65536)"},
        {"ingest: {handshake_timeout_ms: 5000, idle_timeout_ms: 5000}\n",
         "ingest.handshake_timeout_ms (5000) must be less than ingest.idle_timeout_ms (5000)"},
        {"ingest: {conn_inflight_bytes: 1GiB, total_inflight_bytes: 512MiB}\n",
         "ingest.conn_inflight_bytes (1073741824) must be at most ingest.total_inflight_bytes"},
        {"ingest: {max_frame_bytes: 32MiB, decode_arena_bytes: 16MiB}\n",
         "ingest.max_frame_bytes (33554432) must be at most ingest.decode_arena_bytes"},
        {"spool: {segment_bytes: 1GiB, max_bytes: 512MiB}\n",
         "spool.segment_bytes (1073741824) must be at most spool.max_bytes"},
        {"rules: /nonexistent/rules\n", "rules: /nonexistent/rules: No such file"},
        {"events_out: /nonexistent/dir/e.jsonl\n", "events_out: directory /nonexistent/dir"},
        {"alerts_out: /tmp\n", "alerts_out: /tmp is a directory"},
        {"data_dir: /dev/null\n", "data_dir: /dev/null is not a directory"},
        {"data_dir: ''\n", "data_dir: must not be empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(load_text(&c, cases[i].yaml, err, sizeof err), 0);
        assert_int_equal(cw_config_validate(&c, err, sizeof err), -1);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
    }
    /* At the limit is fine; cw_config_load runs the same checks. */
    assert_int_equal(load_text(&c,
                               "ingest: {max_frame_bytes: 64KiB, max_hello_frame_bytes: 64KiB,"
                               " handshake_timeout_ms: 4999, idle_timeout_ms: 5000}\n",
                               err, sizeof err),
                     0);
    assert_int_equal(cw_config_validate(&c, err, sizeof err), 0);
    assert_int_equal(load_args(&c, err, sizeof err, "--set", "ingest.idle_timeout_ms=5000",
                               "--set", "ingest.handshake_timeout_ms=5000", NULL),
                     -1);
    assert_err(err, "must be less than");

    /* Values set in code get the per-key checks too. */
    cw_config_defaults(&c);
    c.max_frame_bytes = 10;
    assert_int_equal(cw_config_validate(&c, err, sizeof err), -1);
    assert_err(err, "ingest.max_frame_bytes: 10 is out of range");
    cw_config_defaults(&c);
    strcpy(c.agent_listen, "0.0.0.0");
    assert_int_equal(cw_config_validate(&c, err, sizeof err), -1);
    assert_err(err, "agent_listen");
}

static void files_are_bounded(void **state)
{
    (void)state;
    size_t n = CW_CONFIG_FILE_MAX + 1;
    char *big = malloc(n);
    memset(big, '#', n);
    big[n - 1] = '\n';
    char *path = write_tmp(big, n);
    cw_config c;
    char err[512];
    cw_config_defaults(&c);
    assert_int_equal(cw_config_load_file(&c, path, err, sizeof err), -1);
    assert_err(err, "larger than");
    /* Exactly at the limit is still read. */
    assert_int_equal(truncate(path, CW_CONFIG_FILE_MAX), 0);
    assert_int_equal(cw_config_load_file(&c, path, err, sizeof err), 0);
    drop_tmp(path);
    free(big);
    assert_int_equal(cw_config_load_file(&c, "/tmp", err, sizeof err), -1);
    assert_err(err, "/tmp: not a regular file");
}

static void example_file_is_current_and_loads_as_defaults(void **state)
{
    (void)state;
    const char *path = CW_SOURCE_DIR "/deploy/chainwatch.example.yaml";
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("%s missing: build target update-example-config", path);
    char *committed = calloc(1, CW_CONFIG_FILE_MAX + 1);
    size_t n = fread(committed, 1, CW_CONFIG_FILE_MAX, f);
    fclose(f);
    char *want = example_text();
    if (strlen(want) != n || memcmp(committed, want, n) != 0)
        fail_msg("%s is stale: build target update-example-config", path);
    for (size_t i = 0; i < NKEYS; i++) {
        const char *dot = strrchr(all_keys[i], '.');
        if (!strstr(want, dot ? dot + 1 : all_keys[i])) fail_msg("example lacks %s", all_keys[i]);
    }

    cw_config c, d;
    char err[512];
    cw_config_defaults(&d);
    assert_int_equal(load_args(&c, err, sizeof err, "--config", (char *)path, NULL), 0);
    strcpy(d.config_file, path);
    assert_memory_equal(&c, &d, sizeof c);
    free(committed);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_the_documented_ones),
        cmocka_unit_test(yaml_nested_keys),
        cmocka_unit_test(empty_files_give_defaults),
        cmocka_unit_test(flags_override_file_in_either_order),
        cmocka_unit_test(every_flag_sets_its_field),
        cmocka_unit_test(bad_flags_are_named),
        cmocka_unit_test(unknown_key_names_file_and_line),
        cmocka_unit_test(bad_values_name_the_line),
        cmocka_unit_test(sizes_take_binary_suffixes),
        cmocka_unit_test(addresses_are_literal_ips),
        cmocka_unit_test(help_lists_every_key_and_flag),
        cmocka_unit_test(cross_field_rules),
        cmocka_unit_test(files_are_bounded),
        cmocka_unit_test(example_file_is_current_and_loads_as_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
