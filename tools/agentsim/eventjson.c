#include "eventjson.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Arrays in one line are bounded so that a hostile file cannot make one
 * event outgrow a frame by sheer count. */
#define MAX_ARRAY 4096

static const struct {
    const char *name;
    int payload_case;
} event_types[] = {
    {"process_exec", CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC},
    {"process_exit", CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXIT},
    {"net_connect", CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT},
    {"net_listen", CHAINWATCH__V1__EVENT__PAYLOAD_NET_LISTEN},
    {"dns_query", CHAINWATCH__V1__EVENT__PAYLOAD_DNS_QUERY},
    {"file_op", CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP},
    {"login", CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN},
    {"container_start", CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START},
    {"container_stop", CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_STOP},
};
#define N_EVENT_TYPES (sizeof event_types / sizeof event_types[0])

int sim_eventjson_case(const char *type)
{
    for (size_t i = 0; i < N_EVENT_TYPES; i++)
        if (strcmp(type, event_types[i].name) == 0) return event_types[i].payload_case;
    return CHAINWATCH__V1__EVENT__PAYLOAD__NOT_SET;
}

const char *sim_eventjson_name(int payload_case)
{
    for (size_t i = 0; i < N_EVENT_TYPES; i++)
        if (event_types[i].payload_case == payload_case) return event_types[i].name;
    return "?";
}

void sim_event_free(Chainwatch__V1__Event *ev)
{
    /* Everything below the event was malloc'd, which is what the default
     * allocator of free_unpacked releases; it follows only the set oneof. */
    if (ev) chainwatch__v1__event__free_unpacked(ev, NULL);
}

/* ------------------------------------------------------------ field access */

/* A sticky error: after the first failure every getter returns a zero value
 * and the converter checks `failed` once at the end. */
typedef struct jx {
    json_t *obj;
    const char *prefix; /* "mounts[2]." inside nested objects, else "" */
    char *err;
    size_t errlen;
    int failed;
} jx;

static void fail(jx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(jx *x, const char *fmt, ...)
{
    if (x->failed) return;
    x->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errlen, fmt, ap);
    va_end(ap);
}

/* The field's value, or NULL when absent or null (then an error if required). */
static json_t *field(jx *x, const char *key, int required)
{
    if (x->failed) return NULL;
    json_t *v = json_object_get(x->obj, key);
    if (v && json_is_null(v)) v = NULL;
    if (!v && required) fail(x, "missing field \"%s%s\"", x->prefix, key);
    return v;
}

static char *dup_string(jx *x, const char *key, json_t *v)
{
    if (!json_is_string(v)) {
        fail(x, "field \"%s%s\" must be a string", x->prefix, key);
        return NULL;
    }
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (strlen(s) != n) {
        fail(x, "field \"%s%s\" contains a NUL character", x->prefix, key);
        return NULL;
    }
    char *d = strdup(s);
    if (!d) fail(x, "out of memory");
    return d;
}

static char *str_field(jx *x, const char *key, int required)
{
    json_t *v = field(x, key, required);
    return v ? dup_string(x, key, v) : NULL;
}

/* A string that must be one of `allowed` (NULL-terminated). */
static char *enum_field(jx *x, const char *key, int required, const char *const *allowed)
{
    char *s = str_field(x, key, required);
    if (!s) return NULL;
    for (const char *const *a = allowed; *a; a++)
        if (strcmp(s, *a) == 0) return s;
    fail(x, "field \"%s%s\": unknown value \"%s\"", x->prefix, key, s);
    free(s);
    return NULL;
}

static int64_t int_field(jx *x, const char *key, int required, int64_t min, int64_t max,
                         protobuf_c_boolean *has)
{
    json_t *v = field(x, key, required);
    if (!v) return 0;
    if (!json_is_integer(v)) {
        fail(x, "field \"%s%s\" must be an integer", x->prefix, key);
        return 0;
    }
    json_int_t i = json_integer_value(v);
    if (i < min || i > max) {
        fail(x, "field \"%s%s\" out of range (%lld not in %lld..%lld)", x->prefix, key,
             (long long)i, (long long)min, (long long)max);
        return 0;
    }
    if (has) *has = 1;
    return i;
}

static uint32_t u32_field(jx *x, const char *key, int required, protobuf_c_boolean *has)
{
    return (uint32_t)int_field(x, key, required, 0, UINT32_MAX, has);
}

static uint32_t port_field(jx *x, const char *key, int required, protobuf_c_boolean *has)
{
    return (uint32_t)int_field(x, key, required, 0, 65535, has);
}

static protobuf_c_boolean bool_field(jx *x, const char *key, int required,
                                     protobuf_c_boolean *has)
{
    json_t *v = field(x, key, required);
    if (!v) return 0;
    if (!json_is_boolean(v)) {
        fail(x, "field \"%s%s\" must be true or false", x->prefix, key);
        return 0;
    }
    *has = 1;
    return json_is_true(v);
}

/* An array field; NULL when absent. */
static json_t *array_field(jx *x, const char *key, int required)
{
    json_t *v = field(x, key, required);
    if (!v) return NULL;
    if (!json_is_array(v)) {
        fail(x, "field \"%s%s\" must be an array", x->prefix, key);
        return NULL;
    }
    if (json_array_size(v) > MAX_ARRAY) {
        fail(x, "field \"%s%s\" has more than %d entries", x->prefix, key, MAX_ARRAY);
        return NULL;
    }
    return v;
}

/* Allocates a zeroed array of n pointers; n == 0 gives NULL (no array). */
static void *ptr_array(jx *x, size_t n)
{
    if (x->failed || n == 0) return NULL;
    void *p = calloc(n, sizeof(void *));
    if (!p) fail(x, "out of memory");
    return p;
}

static char **strv_field(jx *x, const char *key, int required, size_t *n_out)
{
    json_t *a = array_field(x, key, required);
    size_t n = a ? json_array_size(a) : 0;
    char **v = ptr_array(x, n);
    if (!v) return NULL;
    /* The count grows with each copied string so that a failure half-way
     * leaves a message that sim_event_free() releases exactly. */
    *n_out = 0;
    for (size_t i = 0; i < n && !x->failed; i++) {
        v[i] = dup_string(x, key, json_array_get(a, i));
        if (v[i]) *n_out = i + 1;
    }
    return v;
}

static Chainwatch__V1__StdioKind stdio_field(jx *x, const char *key, protobuf_c_boolean *has)
{
    static const char *const names[] = {"tty", "pipe", "socket", "file", "null", NULL};
    static const Chainwatch__V1__StdioKind kinds[] = {
        CHAINWATCH__V1__STDIO_KIND__STDIO_TTY, CHAINWATCH__V1__STDIO_KIND__STDIO_PIPE,
        CHAINWATCH__V1__STDIO_KIND__STDIO_SOCKET, CHAINWATCH__V1__STDIO_KIND__STDIO_FILE,
        CHAINWATCH__V1__STDIO_KIND__STDIO_NULL};
    char *s = enum_field(x, key, 0, names);
    if (!s) return CHAINWATCH__V1__STDIO_KIND__STDIO_UNKNOWN;
    Chainwatch__V1__StdioKind k = CHAINWATCH__V1__STDIO_KIND__STDIO_UNKNOWN;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) k = kinds[i];
    free(s);
    *has = 1;
    return k;
}

static void *new_msg(jx *x, size_t size, void (*init)(void *))
{
    if (x->failed) return NULL;
    void *m = malloc(size);
    if (!m) {
        fail(x, "out of memory");
        return NULL;
    }
    init(m);
    return m;
}
#define NEW(x, type, init) ((type *)new_msg((x), sizeof(type), (void (*)(void *))(init)))

static const char *const protos[] = {"tcp", "udp", NULL};

/* ------------------------------------------------------------ per type */

static void parse_process_exec(jx *x, Chainwatch__V1__Event *ev)
{
    Chainwatch__V1__ProcessExec *m =
        NEW(x, Chainwatch__V1__ProcessExec, chainwatch__v1__process_exec__init);
    if (!m) return;
    ev->process_exec = m;
    m->pid = u32_field(x, "pid", 1, &m->has_pid);
    m->ppid = u32_field(x, "ppid", 1, &m->has_ppid);
    m->exe = str_field(x, "exe", 1);
    if (m->exe && m->exe[0] != '/') fail(x, "field \"exe\" must be an absolute path");
    m->argv = strv_field(x, "argv", 1, &m->n_argv);
    m->cwd = str_field(x, "cwd", 0);
    m->uid = u32_field(x, "uid", 1, &m->has_uid);
    m->user = str_field(x, "user", 0);
    m->container_id = str_field(x, "container_id", 0);
    m->parent_exe = str_field(x, "parent_exe", 0);
    m->parent_argv = strv_field(x, "parent_argv", 0, &m->n_parent_argv);
    m->tty = bool_field(x, "tty", 0, &m->has_tty);
    m->stdin = stdio_field(x, "stdin", &m->has_stdin);
    m->stdout = stdio_field(x, "stdout", &m->has_stdout);
    m->stdio_peer = str_field(x, "stdio_peer", 0);
    m->sha256 = str_field(x, "sha256", 0);
}

static void parse_process_exit(jx *x, Chainwatch__V1__Event *ev)
{
    Chainwatch__V1__ProcessExit *m =
        NEW(x, Chainwatch__V1__ProcessExit, chainwatch__v1__process_exit__init);
    if (!m) return;
    ev->process_exit = m;
    m->pid = u32_field(x, "pid", 1, &m->has_pid);
    m->exit_code = (int32_t)int_field(x, "exit_code", 0, INT32_MIN, INT32_MAX, &m->has_exit_code);
    m->container_id = str_field(x, "container_id", 0);
}

static void parse_net_connect(jx *x, Chainwatch__V1__Event *ev)
{
    static const char *const directions[] = {"out", "in", NULL};
    Chainwatch__V1__NetConnect *m =
        NEW(x, Chainwatch__V1__NetConnect, chainwatch__v1__net_connect__init);
    if (!m) return;
    ev->net_connect = m;
    m->pid = u32_field(x, "pid", 1, &m->has_pid);
    m->exe = str_field(x, "exe", 1);
    m->container_id = str_field(x, "container_id", 0);
    m->proto = enum_field(x, "proto", 1, protos);
    m->direction = enum_field(x, "direction", 1, directions);
    m->src_ip = str_field(x, "src_ip", 1);
    m->src_port = port_field(x, "src_port", 1, &m->has_src_port);
    m->dst_ip = str_field(x, "dst_ip", 1);
    m->dst_port = port_field(x, "dst_port", 1, &m->has_dst_port);
}

static void parse_net_listen(jx *x, Chainwatch__V1__Event *ev)
{
    Chainwatch__V1__NetListen *m =
        NEW(x, Chainwatch__V1__NetListen, chainwatch__v1__net_listen__init);
    if (!m) return;
    ev->net_listen = m;
    m->pid = u32_field(x, "pid", 1, &m->has_pid);
    m->exe = str_field(x, "exe", 1);
    m->container_id = str_field(x, "container_id", 0);
    m->proto = enum_field(x, "proto", 1, protos);
    m->ip = str_field(x, "ip", 1);
    m->port = port_field(x, "port", 1, &m->has_port);
}

static void parse_dns_query(jx *x, Chainwatch__V1__Event *ev)
{
    Chainwatch__V1__DnsQuery *m =
        NEW(x, Chainwatch__V1__DnsQuery, chainwatch__v1__dns_query__init);
    if (!m) return;
    ev->dns_query = m;
    m->pid = u32_field(x, "pid", 1, &m->has_pid);
    m->exe = str_field(x, "exe", 1);
    m->container_id = str_field(x, "container_id", 0);
    m->query = str_field(x, "query", 1);
    m->answers = strv_field(x, "answers", 0, &m->n_answers);
}

static void parse_file_op(jx *x, Chainwatch__V1__Event *ev)
{
    static const char *const ops[] = {"read",   "write", "create", "delete",
                                      "rename", "chmod", NULL};
    Chainwatch__V1__FileOp *m = NEW(x, Chainwatch__V1__FileOp, chainwatch__v1__file_op__init);
    if (!m) return;
    ev->file_op = m;
    m->pid = u32_field(x, "pid", 1, &m->has_pid);
    m->exe = str_field(x, "exe", 1);
    m->container_id = str_field(x, "container_id", 0);
    m->op = enum_field(x, "op", 1, ops);
    m->path = str_field(x, "path", 1);
    m->new_path = str_field(x, "new_path", 0);
}

static void parse_login(jx *x, Chainwatch__V1__Event *ev)
{
    static const char *const methods[] = {"password", "publickey", NULL};
    Chainwatch__V1__Login *m = NEW(x, Chainwatch__V1__Login, chainwatch__v1__login__init);
    if (!m) return;
    ev->login = m;
    m->user = str_field(x, "user", 1);
    m->src_ip = str_field(x, "src_ip", 1);
    m->src_port = port_field(x, "src_port", 0, &m->has_src_port);
    m->service = str_field(x, "service", 1);
    m->method = enum_field(x, "method", 1, methods);
    m->success = bool_field(x, "success", 1, &m->has_success);
    m->key_fingerprint = str_field(x, "key_fingerprint", 0);
    m->container_id = str_field(x, "container_id", 0);
}

static void parse_labels(jx *x, Chainwatch__V1__ContainerStart *m)
{
    json_t *o = field(x, "labels", 0);
    if (!o) return;
    if (!json_is_object(o)) {
        fail(x, "field \"labels\" must be an object of strings");
        return;
    }
    size_t n = json_object_size(o);
    if (n > MAX_ARRAY) {
        fail(x, "field \"labels\" has more than %d entries", MAX_ARRAY);
        return;
    }
    m->labels = ptr_array(x, n);
    if (!m->labels) return;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        Chainwatch__V1__Label *l = NEW(x, Chainwatch__V1__Label, chainwatch__v1__label__init);
        if (!l) return;
        m->labels[m->n_labels++] = l;
        l->key = strdup(key);
        if (!l->key) {
        fail(x, "out of memory");
        return;
    }
        l->value = dup_string(x, "labels", v);
    }
}

/* Runs `fn` on each element of an array of objects, with the jx pointed at it. */
static void each_object(jx *x, json_t *a, const char *key, void (*fn)(jx *, void *), void *arg)
{
    size_t n = json_array_size(a);
    for (size_t i = 0; i < n && !x->failed; i++) {
        json_t *o = json_array_get(a, i);
        if (!json_is_object(o)) {
        fail(x, "field \"%s[%zu]\" must be an object", key, i);
        return;
    }
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s[%zu].", key, i);
        jx sub = {o, prefix, x->err, x->errlen, 0};
        fn(&sub, arg);
        if (sub.failed) x->failed = 1;
    }
}

static void parse_mount(jx *x, void *arg)
{
    Chainwatch__V1__ContainerStart *m = arg;
    Chainwatch__V1__Mount *mt = NEW(x, Chainwatch__V1__Mount, chainwatch__v1__mount__init);
    if (!mt) return;
    m->mounts[m->n_mounts++] = mt;
    mt->host_path = str_field(x, "host_path", 1);
    mt->container_path = str_field(x, "container_path", 1);
    mt->read_only = bool_field(x, "read_only", 1, &mt->has_read_only);
}

static void parse_port(jx *x, void *arg)
{
    Chainwatch__V1__ContainerStart *m = arg;
    Chainwatch__V1__PortMapping *p =
        NEW(x, Chainwatch__V1__PortMapping, chainwatch__v1__port_mapping__init);
    if (!p) return;
    m->ports[m->n_ports++] = p;
    p->host_port = port_field(x, "host_port", 1, &p->has_host_port);
    p->container_port = port_field(x, "container_port", 1, &p->has_container_port);
    p->proto = enum_field(x, "proto", 1, protos);
}

/* Only container_id is required: FORMAT.md's own examples leave out every
 * Kubernetes field (and host_ipc) for containers started outside Kubernetes. */
static void parse_container_start(jx *x, Chainwatch__V1__Event *ev)
{
    static const char *const restarts[] = {"always", "on-failure", "no", NULL};
    static const char *const starters[] = {"kubelet", "docker-cli", NULL};
    Chainwatch__V1__ContainerStart *m =
        NEW(x, Chainwatch__V1__ContainerStart, chainwatch__v1__container_start__init);
    if (!m) return;
    ev->container_start = m;
    m->container_id = str_field(x, "container_id", 1);
    m->name = str_field(x, "name", 0);
    m->image = str_field(x, "image", 0);
    m->pod_uid = str_field(x, "pod_uid", 0);
    m->pod = str_field(x, "pod", 0);
    m->namespace_ = str_field(x, "namespace", 0);
    parse_labels(x, m);
    m->privileged = bool_field(x, "privileged", 0, &m->has_privileged);
    m->host_pid = bool_field(x, "host_pid", 0, &m->has_host_pid);
    m->host_network = bool_field(x, "host_network", 0, &m->has_host_network);
    m->host_ipc = bool_field(x, "host_ipc", 0, &m->has_host_ipc);
    m->caps_add = strv_field(x, "caps_add", 0, &m->n_caps_add);
    json_t *a = array_field(x, "mounts", 0);
    if ((m->mounts = ptr_array(x, a ? json_array_size(a) : 0)))
        each_object(x, a, "mounts", parse_mount, m);
    a = array_field(x, "ports", 0);
    if ((m->ports = ptr_array(x, a ? json_array_size(a) : 0)))
        each_object(x, a, "ports", parse_port, m);
    m->restart = enum_field(x, "restart", 0, restarts);
    m->started_by = enum_field(x, "started_by", 0, starters);
    m->pod_ip = str_field(x, "pod_ip", 0);
    m->service_account = str_field(x, "service_account", 0);
}

static void parse_container_stop(jx *x, Chainwatch__V1__Event *ev)
{
    Chainwatch__V1__ContainerStop *m =
        NEW(x, Chainwatch__V1__ContainerStop, chainwatch__v1__container_stop__init);
    if (!m) return;
    ev->container_stop = m;
    m->container_id = str_field(x, "container_id", 1);
}

Chainwatch__V1__Event *sim_eventjson_parse(json_t *obj, int payload_case, char *err,
                                           size_t errlen)
{
    jx x = {obj, "", err, errlen, 0};
    Chainwatch__V1__Event *ev = NEW(&x, Chainwatch__V1__Event, chainwatch__v1__event__init);
    if (!ev) return NULL;
    ev->has_time_ns = 1;
    ev->payload_case = (Chainwatch__V1__Event__PayloadCase)payload_case;
    switch (payload_case) {
    case CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC: parse_process_exec(&x, ev); break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXIT: parse_process_exit(&x, ev); break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_NET_CONNECT: parse_net_connect(&x, ev); break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_NET_LISTEN: parse_net_listen(&x, ev); break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_DNS_QUERY: parse_dns_query(&x, ev); break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_FILE_OP: parse_file_op(&x, ev); break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN: parse_login(&x, ev); break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_START: parse_container_start(&x, ev); break;
    case CHAINWATCH__V1__EVENT__PAYLOAD_CONTAINER_STOP: parse_container_stop(&x, ev); break;
    default: fail(&x, "not an event type");
    }
    if (x.failed) {
        sim_event_free(ev);
        return NULL;
    }
    return ev;
}
