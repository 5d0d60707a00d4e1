/* Helpers for the detection tests: build real cw_events through
 * cw_event_from_agent / cw_event_from_audit and collect alerts. */
#ifndef CW_DETECT_TESTLIB_H
#define CW_DETECT_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "correlator/detect.h"
#include "correlator/event.h"

#define SEC 1000000000LL
#define T0 (1714557600LL * SEC) /* 2024-05-01T10:00:00Z */

typedef struct got {
    int n;
    char ids[64][128];
    char summary[64][512];
    char key[64][300];
} got;

static void collect(const cw_alert *a, void *ud)
{
    got *g = ud;
    assert_non_null(a->rule);
    assert_non_null(a->summary);
    assert_int_equal(a->time_ns, a->ev->time_ns);
    if (g->n >= 64) return;
    snprintf(g->ids[g->n], sizeof g->ids[0], "%s", a->rule->id);
    snprintf(g->summary[g->n], sizeof g->summary[0], "%s", a->summary);
    snprintf(g->key[g->n], sizeof g->key[0], "%s", a->group_key ? a->group_key : "");
    g->n++;
}

static inline int fired(const got *g, const char *id)
{
    int n = 0;
    for (int i = 0; i < g->n; i++) n += !strcmp(g->ids[i], id);
    return n;
}

static inline cw_ruleset *load(const char *yaml)
{
    char err[512] = "";
    cw_ruleset *rs = NULL;
    if (cw_ruleset_load_text(&rs, yaml, strlen(yaml), "t.yml", err, sizeof err) < 0)
        fail_msg("load failed: %s", err);
    return rs;
}

/* Loading must fail with exactly this message. */
static inline void load_fails(const char *yaml, const char *want)
{
    char err[512] = "";
    cw_ruleset *rs = NULL;
    int rc = cw_ruleset_load_text(&rs, yaml, strlen(yaml), "t.yml", err, sizeof err);
    if (rc == 0) fail_msg("load succeeded; want error %s", want);
    assert_null(rs);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got error '%s'\nwant prefix '%s'", err, want);
}

/* Every event an agent sends, one struct each; set fields then call ev_*. */
typedef struct agent_ev {
    Chainwatch__V1__Event pb;
    Chainwatch__V1__ProcessExec exec;
    Chainwatch__V1__NetConnect net;
    Chainwatch__V1__Login login;
    Chainwatch__V1__DnsQuery dns;
    Chainwatch__V1__ContainerStart cs;
    cw_event ev;
} agent_ev;

static inline void agent_init(agent_ev *a)
{
    Chainwatch__V1__Event e = CHAINWATCH__V1__EVENT__INIT;
    Chainwatch__V1__ProcessExec x = CHAINWATCH__V1__PROCESS_EXEC__INIT;
    Chainwatch__V1__NetConnect n = CHAINWATCH__V1__NET_CONNECT__INIT;
    Chainwatch__V1__Login l = CHAINWATCH__V1__LOGIN__INIT;
    Chainwatch__V1__DnsQuery d = CHAINWATCH__V1__DNS_QUERY__INIT;
    Chainwatch__V1__ContainerStart c = CHAINWATCH__V1__CONTAINER_START__INIT;
    a->pb = e;
    a->exec = x;
    a->net = n;
    a->login = l;
    a->dns = d;
    a->cs = c;
}

static inline const cw_event *agent_finish(agent_ev *a, int64_t t, const char *host)
{
    a->pb.has_time_ns = 1;
    a->pb.time_ns = t;
    assert_int_equal(cw_event_from_agent(&a->ev, "agent-1", 1, 0, &a->pb, t), 0);
    a->ev.host = host ? host : "vm-1";
    return &a->ev;
}

static inline const cw_event *mk_exec(agent_ev *a, int64_t t, const char *exe, char **argv,
                                      size_t argc)
{
    agent_init(a);
    a->exec.exe = (char *)exe;
    a->exec.argv = argv;
    a->exec.n_argv = argc;
    a->pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC;
    a->pb.process_exec = &a->exec;
    return agent_finish(a, t, NULL);
}

static inline const cw_event *mk_login(agent_ev *a, int64_t t, const char *host, const char *user,
                                const char *ip, int success)
{
    agent_init(a);
    a->login.user = (char *)user;
    a->login.src_ip = (char *)ip;
    a->login.service = "sshd";
    a->login.method = "password";
    a->login.has_success = 1;
    a->login.success = success;
    a->pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN;
    a->pb.login = &a->login;
    return agent_finish(a, t, host);
}

static inline const cw_event *mk_net(agent_ev *a, int64_t t, const char *dst, uint32_t port)
{
    agent_init(a);
    a->net.exe = "/usr/bin/curl";
    a->net.dst_ip = (char *)dst;
    a->net.has_dst_port = 1;
    a->net.dst_port = port;
    a->net.proto = "tcp";
    a->net.direction = "out";
    a->pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT;
    a->pb.net_connect = &a->net;
    return agent_finish(a, t, NULL);
}

/* An audit event from JSON text; *j must be json_decref'd by the caller. */
static inline const cw_event *mk_audit(cw_event *ev, json_t **j, const char *text)
{
    json_error_t e;
    *j = json_loads(text, 0, &e);
    if (!*j) fail_msg("bad test JSON: %s", e.text);
    assert_int_equal(cw_event_from_audit(ev, "prod", *j, T0), 0);
    return ev;
}

#endif
