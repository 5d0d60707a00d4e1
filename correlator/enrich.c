#include "correlator/enrich.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* Bounds on what one peer-supplied entry may hold. Kubernetes itself limits
 * label keys to 317 and values to 63 bytes; agents and audit bodies are not
 * trusted to respect that, so longer strings are cut and extra labels
 * ignored, which keeps an entry's size (and the byte bounds) meaningful. */
#define FIELD_MAX 1024
#define LABELS_MAX 64
#define IPS_MAX 16
#define OWNER_KEYS_MAX 16
#define KEY_MAX (3 * (FIELD_MAX + 1))
#define MAX_CLUSTERS 4096
/* Stopped containers examined per event for expiry. */
#define SWEEP_PER_EVENT 4

/* A secondary index entry (namespace/name or pod IP -> pod). */
typedef struct cw_enrich_ix {
    cw_lru_node node;
    cw_enrich_pod *pod;
} cw_enrich_ix;

typedef struct cluster_info {
    cw_lru_node node; /* key: cluster */
    char *cloud, *region;
} cluster_info;

struct cw_enrich {
    cw_lru agents, containers, pods, names, ips, clusters;
    cw_enrich_container *stopped_head, *stopped_tail;
    int64_t grace_ns;
    int64_t latest_ns; /* newest agent event time overall: clock for unknown agents */
    char *owner_keys[OWNER_KEYS_MAX];
    size_t n_owner_keys;
    uint64_t expired;
};

/* Every string field of an entry points either to malloc'd memory or to this
 * shared empty string, so readers never see NULL. */
static char empty_str[1];

static void sfree(char *s)
{
    if (s && s != empty_str) free(s);
}

static size_t capped_len(const char *s)
{
    return s ? strnlen(s, FIELD_MAX) : 0;
}

/* Replaces *dst with a bounded copy of s (NULL means ""). On allocation
 * failure the old value stays, which only makes context staler. */
static void set_str(char **dst, const char *s)
{
    size_t n = capped_len(s);
    if (*dst && strlen(*dst) == n && memcmp(*dst, s ? s : "", n) == 0) return;
    char *p = empty_str;
    if (n) {
        p = malloc(n + 1);
        if (!p) return;
        memcpy(p, s, n);
        p[n] = 0;
    }
    sfree(*dst);
    *dst = p;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Builds "a\0b\0c" (parts cut to FIELD_MAX) into buf[KEY_MAX]; c may be NULL. */
static size_t make_key(char *buf, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        if (i == 2 && !c) break;
        if (i) buf[off++] = 0;
        size_t n = capped_len(parts[i]);
        memcpy(buf + off, parts[i] ? parts[i] : "", n);
        off += n;
    }
    return off;
}

/* Gives n a private copy of the key. */
static int node_set_key(cw_lru_node *n, const char *key, size_t len)
{
    char *k = malloc(len ? len : 1);
    if (!k) return -1;
    memcpy(k, key, len);
    n->key = k;
    n->key_len = len;
    return 0;
}

/* ---------------------------------------------------------------- pods */

static size_t pod_cost(const cw_enrich_pod *p)
{
    size_t c = sizeof *p + p->node.key_len + slen(p->cluster) + slen(p->uid) + slen(p->name) +
               slen(p->namespace) + slen(p->service_account) + slen(p->pod_ip) +
               slen(p->node_name) + slen(p->controller_kind) + slen(p->controller_name);
    for (size_t i = 0; i < p->n_labels; i++)
        c += sizeof(cw_label) + slen(p->labels[i].key) + slen(p->labels[i].value) + 2;
    return c;
}

static void free_labels(cw_label *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sfree((char *)l[i].key);
        sfree((char *)l[i].value);
    }
    free(l);
}

static void ix_drop(cw_lru *tab, cw_enrich_ix *ix)
{
    cw_lru_remove(tab, &ix->node);
    free((char *)ix->node.key);
    free(ix);
}

static void pod_free(cw_enrich *e, cw_enrich_pod *p)
{
    if (p->name_ix) ix_drop(&e->names, p->name_ix);
    if (p->ip_ix) ix_drop(&e->ips, p->ip_ix);
    char *fields[] = {p->cluster, p->uid,       p->name,           p->namespace,
                      p->service_account, p->pod_ip, p->node_name, p->controller_kind,
                      p->controller_name};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) sfree(fields[i]);
    free_labels(p->labels, p->n_labels);
    free((char *)p->node.key);
    free(p);
}

/* Evict callback of the pod table (pipeline thread). */
static void pod_evicted(cw_lru_node *n, void *ud)
{
    pod_free(ud, cw_lru_entry(n, cw_enrich_pod, node));
}

static void pod_destroy_cb(cw_lru_node *n, void *ud)
{
    cw_enrich_pod *p = cw_lru_entry(n, cw_enrich_pod, node);
    /* The index tables are destroyed separately. */
    p->name_ix = p->ip_ix = NULL;
    pod_free(ud, p);
}

static void compute_owner(cw_enrich *e, cw_enrich_pod *p)
{
    p->owner = empty_str;
    for (size_t k = 0; k < e->n_owner_keys; k++)
        for (size_t i = 0; i < p->n_labels; i++)
            if (strcmp(p->labels[i].key, e->owner_keys[k]) == 0 && p->labels[i].value[0]) {
                p->owner = p->labels[i].value;
                return;
            }
}

/* Replaces p's labels with a bounded, de-duplicated copy of src (borrowed;
 * entries with a NULL key or value are skipped; the first of duplicate keys
 * wins, so the JSON object never repeats a key). */
static void pod_set_labels(cw_enrich *e, cw_enrich_pod *p, const cw_label *src, size_t n)
{
    if (n > LABELS_MAX) n = LABELS_MAX;
    cw_label *nl = calloc(n ? n : 1, sizeof *nl);
    if (!nl) return;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!src[i].key || !src[i].value || !src[i].key[0]) continue;
        int dup = 0;
        for (size_t j = 0; j < m && !dup; j++)
            dup = strncmp(nl[j].key, src[i].key, FIELD_MAX) == 0 &&
                  strlen(nl[j].key) == capped_len(src[i].key);
        if (dup) continue;
        char *k = NULL, *v = NULL;
        set_str(&k, src[i].key);
        set_str(&v, src[i].value);
        if (!k || !v || k == empty_str) {
            sfree(k);
            sfree(v);
            continue;
        }
        nl[m].key = k;
        nl[m].value = v;
        m++;
    }
    free_labels(p->labels, p->n_labels);
    p->labels = nl;
    p->n_labels = m;
    compute_owner(e, p);
}

/* Points index `tab` at p under key (replacing p's previous entry there,
 * and taking the key over from a pod that held it before: names and IPs
 * are reused by newer pods). */
static void ix_set(cw_enrich *e, cw_lru *tab, cw_enrich_pod *p, const char *key, size_t len)
{
    cw_enrich_ix **slot = tab == &e->names ? &p->name_ix : &p->ip_ix;
    if (*slot && (*slot)->node.key_len == len && memcmp((*slot)->node.key, key, len) == 0)
        return;
    if (*slot) {
        ix_drop(tab, *slot);
        *slot = NULL;
    }
    cw_lru_node *n = cw_lru_find(tab, key, len, 0);
    if (n) {
        cw_enrich_ix *ix = cw_lru_entry(n, cw_enrich_ix, node);
        cw_enrich_pod *prev = ix->pod;
        if (tab == &e->names) prev->name_ix = NULL;
        else prev->ip_ix = NULL;
        ix->pod = p;
        *slot = ix;
        return;
    }
    cw_enrich_ix *ix = calloc(1, sizeof *ix);
    if (!ix) return;
    if (node_set_key(&ix->node, key, len) < 0) {
        free(ix);
        return;
    }
    ix->node.cost = sizeof *ix + len;
    ix->pod = p;
    cw_lru_insert(tab, &ix->node);
    *slot = ix;
}

static void pod_reindex(cw_enrich *e, cw_enrich_pod *p)
{
    char key[KEY_MAX];
    if (p->name[0] && p->namespace[0])
        ix_set(e, &e->names, p, key, make_key(key, p->cluster, p->namespace, p->name));
    if (p->pod_ip[0]) ix_set(e, &e->ips, p, key, make_key(key, p->cluster, p->pod_ip, NULL));
}

static cw_enrich_pod *pod_find(cw_enrich *e, const char *cluster, const char *uid, int touch)
{
    char key[KEY_MAX];
    cw_lru_node *n = cw_lru_find(&e->pods, key, make_key(key, cluster, uid, NULL), touch);
    return n ? cw_lru_entry(n, cw_enrich_pod, node) : NULL;
}

/* Finds or creates the pod (cluster, uid); NULL on allocation failure. */
static cw_enrich_pod *pod_upsert(cw_enrich *e, const char *cluster, const char *uid)
{
    cw_enrich_pod *p = pod_find(e, cluster, uid, 1);
    if (p) return p;
    p = calloc(1, sizeof *p);
    if (!p) return NULL;
    char key[KEY_MAX];
    if (node_set_key(&p->node, key, make_key(key, cluster, uid, NULL)) < 0) {
        free(p);
        return NULL;
    }
    char **fields[] = {&p->cluster,   &p->uid,         &p->name,           &p->namespace,
                       &p->service_account, &p->pod_ip, &p->node_name, &p->controller_kind,
                       &p->controller_name};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) *fields[i] = empty_str;
    p->owner = empty_str;
    set_str(&p->cluster, cluster);
    set_str(&p->uid, uid);
    p->node.cost = pod_cost(p);
    cw_lru_insert(&e->pods, &p->node);
    return p;
}

/* From the agent's container_start: what the node says about the pod. Fields
 * the API server already gave are kept; the agent only fills gaps there. */
static void pod_from_container(cw_enrich *e, const char *cluster, const char *node_name,
                               const Chainwatch__V1__ContainerStart *cs)
{
    cw_enrich_pod *p = pod_upsert(e, cluster, cs->pod_uid);
    if (!p) return;
    int fill_only = p->from_audit;
#define MERGE(field, val)                                                                          \
    do {                                                                                           \
        if ((val) && (val)[0] && (!fill_only || !p->field[0])) set_str(&p->field, (val));          \
    } while (0)
    MERGE(name, cs->pod);
    MERGE(namespace, cs->namespace_);
    MERGE(service_account, cs->service_account);
    MERGE(pod_ip, cs->pod_ip);
    MERGE(node_name, node_name);
#undef MERGE
    if (cs->n_labels && (!fill_only || p->n_labels == 0)) {
        cw_label tmp[LABELS_MAX];
        size_t n = 0;
        for (size_t i = 0; i < cs->n_labels && n < LABELS_MAX; i++) {
            tmp[n].key = cs->labels[i]->key;
            tmp[n].value = cs->labels[i]->value;
            n++;
        }
        pod_set_labels(e, p, tmp, n);
    }
    pod_reindex(e, p);
    cw_lru_set_cost(&e->pods, &p->node, pod_cost(p));
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* From an audit create/update/patch of a pod: the API server's view. */
static cw_enrich_pod *pod_from_audit(cw_enrich *e, cw_event *ev)
{
    const cw_k8s_fields *k = &ev->k8s;
    if (!k->resource || strcmp(k->resource, "pods") != 0) return NULL;
    if (k->subresource && k->subresource[0] && strcmp(k->subresource, "status") != 0) return NULL;
    if (!k->verb || (strcmp(k->verb, "create") != 0 && strcmp(k->verb, "update") != 0 &&
                     strcmp(k->verb, "patch") != 0))
        return NULL;
    if (k->response_code >= 0 && (k->response_code < 200 || k->response_code > 299)) return NULL;
    /* The response is the stored pod, uid included. A create's request body
     * is the whole pod too (a patch's is only the patch document). */
    json_t *obj = json_object_get(ev->audit, "responseObject");
    if (!json_is_object(obj) && strcmp(k->verb, "create") == 0)
        obj = json_object_get(ev->audit, "requestObject");
    if (!json_is_object(obj)) return NULL;
    const char *kind = jstr(obj, "kind");
    if (kind && strcmp(kind, "Pod") != 0) return NULL;
    json_t *meta = json_object_get(obj, "metadata");
    const char *uid = jstr(meta, "uid");
    if (!uid || !uid[0]) return NULL;

    cw_enrich_pod *p = pod_upsert(e, ev->cluster, uid);
    if (!p) return NULL;
    p->from_audit = 1;
    const char *ns = jstr(meta, "namespace");
    if (!ns || !ns[0]) ns = k->obj_namespace;
    const char *name = jstr(meta, "name");
    if (!name || !name[0]) name = k->name;
    if (name && name[0]) set_str(&p->name, name);
    if (ns && ns[0]) set_str(&p->namespace, ns);

    json_t *labels = json_object_get(meta, "labels");
    if (json_is_object(labels)) {
        cw_label tmp[LABELS_MAX];
        size_t n = 0;
        const char *key;
        json_t *v;
        json_object_foreach(labels, key, v)
        {
            if (n == LABELS_MAX) break;
            if (!json_is_string(v)) continue;
            tmp[n].key = key;
            tmp[n].value = json_string_value(v);
            n++;
        }
        pod_set_labels(e, p, tmp, n);
    }

    json_t *refs = json_object_get(meta, "ownerReferences"), *ref, *chosen = NULL;
    size_t i;
    json_array_foreach(refs, i, ref)
    {
        if (!chosen) chosen = ref;
        if (json_is_true(json_object_get(ref, "controller"))) {
            chosen = ref;
            break;
        }
    }
    if (chosen) {
        set_str(&p->controller_kind, jstr(chosen, "kind"));
        set_str(&p->controller_name, jstr(chosen, "name"));
    }

    json_t *spec = json_object_get(obj, "spec");
    const char *sa = jstr(spec, "serviceAccountName");
    const char *node = jstr(spec, "nodeName");
    const char *ip = jstr(json_object_get(obj, "status"), "podIP");
    if (sa && sa[0]) set_str(&p->service_account, sa);
    if (node && node[0]) set_str(&p->node_name, node);
    if (ip && ip[0]) set_str(&p->pod_ip, ip);
    pod_reindex(e, p);
    cw_lru_set_cost(&e->pods, &p->node, pod_cost(p));
    return p;
}

static void fill_from_pod(cw_event *ev, const cw_enrich_pod *p)
{
    ev->pod_info = p;
    ev->pod_uid = p->uid;
    if (!ev->pod[0]) ev->pod = p->name;
    if (!ev->namespace[0]) ev->namespace = p->namespace;
    if (!ev->node[0]) ev->node = p->node_name;
    ev->labels = p->labels;
    ev->n_labels = p->n_labels;
    ev->owner = p->owner;
}

/* ---------------------------------------------------------------- containers */

static void stopped_unlink(cw_enrich *e, cw_enrich_container *c)
{
    if (!c->stopped) return;
    if (c->sprev) c->sprev->snext = c->snext;
    else e->stopped_head = c->snext;
    if (c->snext) c->snext->sprev = c->sprev;
    else e->stopped_tail = c->sprev;
    c->sprev = c->snext = NULL;
    c->stopped = 0;
}

static void stopped_append(cw_enrich *e, cw_enrich_container *c)
{
    c->stopped = 1;
    c->snext = NULL;
    c->sprev = e->stopped_tail;
    if (e->stopped_tail) e->stopped_tail->snext = c;
    else e->stopped_head = c;
    e->stopped_tail = c;
}

static void container_free(cw_enrich *e, cw_enrich_container *c)
{
    stopped_unlink(e, c);
    char *fields[] = {c->agent_id, c->container_id, c->cluster, c->pod_uid, c->name, c->image};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) sfree(fields[i]);
    free((char *)c->node.key);
    free(c);
}

/* Evict callback of the container table (pipeline thread). */
static void container_evicted(cw_lru_node *n, void *ud)
{
    container_free(ud, cw_lru_entry(n, cw_enrich_container, node));
}

static size_t container_cost(const cw_enrich_container *c)
{
    return sizeof *c + c->node.key_len + slen(c->agent_id) + slen(c->container_id) +
           slen(c->cluster) + slen(c->pod_uid) + slen(c->name) + slen(c->image);
}

static cw_enrich_container *container_find(cw_enrich *e, const char *agent_id, const char *cid,
                                           int touch)
{
    char key[KEY_MAX];
    cw_lru_node *n = cw_lru_find(&e->containers, key, make_key(key, agent_id, cid, NULL), touch);
    return n ? cw_lru_entry(n, cw_enrich_container, node) : NULL;
}

static void container_started(cw_enrich *e, cw_event *ev, const cw_enrich_agent *a)
{
    const Chainwatch__V1__ContainerStart *cs = ev->agent.container_start;
    if (!ev->container_id[0]) return;
    cw_enrich_container *c = container_find(e, ev->agent_id, ev->container_id, 1);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return;
        char key[KEY_MAX];
        if (node_set_key(&c->node, key, make_key(key, ev->agent_id, ev->container_id, NULL)) < 0) {
            free(c);
            return;
        }
        c->agent_id = c->container_id = c->cluster = c->pod_uid = c->name = c->image = empty_str;
        set_str(&c->agent_id, ev->agent_id);
        set_str(&c->container_id, ev->container_id);
        c->node.cost = container_cost(c);
        cw_lru_insert(&e->containers, &c->node);
    }
    stopped_unlink(e, c); /* a restarted container runs again */
    const char *cluster = a ? a->cluster : "";
    set_str(&c->cluster, cluster);
    set_str(&c->pod_uid, cs->pod_uid);
    set_str(&c->name, cs->name);
    set_str(&c->image, cs->image);
    cw_lru_set_cost(&e->containers, &c->node, container_cost(c));
    if (cs->pod_uid && cs->pod_uid[0])
        pod_from_container(e, cluster, a ? a->node_name : "", cs);
}

static void container_stopped(cw_enrich *e, cw_event *ev)
{
    if (!ev->container_id[0]) return;
    cw_enrich_container *c = container_find(e, ev->agent_id, ev->container_id, 1);
    if (!c) return;
    stopped_unlink(e, c);
    c->stopped_at_ns = ev->time_ns;
    stopped_append(e, c);
}

static int expired(const cw_enrich *e, const cw_enrich_container *c, int64_t now)
{
    /* Unsigned difference: agent clocks are untrusted and could overflow a
     * signed subtraction. */
    return now >= c->stopped_at_ns &&
           (uint64_t)now - (uint64_t)c->stopped_at_ns >= (uint64_t)e->grace_ns;
}

/* Drops stopped containers past their grace period, measured on their own
 * agent's clock (another agent's skewed clock cannot expire them). A few per
 * event, rotating entries not yet due to the back, so the cost per event is
 * bounded and every entry is looked at eventually; the table bounds cover
 * the rest. */
static void sweep_stopped(cw_enrich *e)
{
    for (int i = 0; i < SWEEP_PER_EVENT && e->stopped_head; i++) {
        cw_enrich_container *c = e->stopped_head;
        cw_lru_node *an = cw_lru_find(&e->agents, c->agent_id, strlen(c->agent_id), 0);
        int64_t now = an ? cw_lru_entry(an, cw_enrich_agent, node)->last_time_ns : e->latest_ns;
        if (expired(e, c, now)) {
            cw_lru_remove(&e->containers, &c->node);
            container_free(e, c);
            e->expired++;
        } else if (c->snext) {
            stopped_unlink(e, c);
            stopped_append(e, c);
        } else {
            break;
        }
    }
}

/* ---------------------------------------------------------------- agents */

static void agent_free(cw_enrich_agent *a)
{
    char *fields[] = {a->host,      a->cloud, a->region, a->cluster,
                      a->node_name, a->os,    a->kernel, a->agent_version};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) sfree(fields[i]);
    for (size_t i = 0; i < a->n_ips; i++) sfree(a->ips[i]);
    free(a->ips);
    free((char *)a->node.key);
    free(a);
}

/* Evict callback of the agent table (pipeline thread). */
static void agent_evicted(cw_lru_node *n, void *ud)
{
    (void)ud;
    agent_free(cw_lru_entry(n, cw_enrich_agent, node));
}

static void cluster_free(cluster_info *c)
{
    sfree(c->cloud);
    sfree(c->region);
    free((char *)c->node.key);
    free(c);
}

/* Evict callback of the cluster table (pipeline thread). */
static void cluster_evicted(cw_lru_node *n, void *ud)
{
    (void)ud;
    cluster_free(cw_lru_entry(n, cluster_info, node));
}

static void remember_cluster(cw_enrich *e, const char *cluster, const char *cloud,
                             const char *region)
{
    size_t len = capped_len(cluster);
    if (!len) return;
    cw_lru_node *n = cw_lru_find(&e->clusters, cluster, len, 1);
    cluster_info *c;
    if (n) {
        c = cw_lru_entry(n, cluster_info, node);
    } else {
        c = calloc(1, sizeof *c);
        if (!c) return;
        if (node_set_key(&c->node, cluster, len) < 0) {
            free(c);
            return;
        }
        c->cloud = c->region = empty_str;
        cw_lru_insert(&e->clusters, &c->node);
    }
    set_str(&c->cloud, cloud);
    set_str(&c->region, region);
}

void cw_enrich_hello(cw_enrich *e, const char *agent_id, const Chainwatch__V1__Hello *h)
{
    size_t len = capped_len(agent_id);
    cw_lru_node *n = cw_lru_find(&e->agents, agent_id, len, 1);
    cw_enrich_agent *a;
    if (n) {
        a = cw_lru_entry(n, cw_enrich_agent, node);
    } else {
        a = calloc(1, sizeof *a);
        if (!a) return;
        if (node_set_key(&a->node, agent_id, len) < 0) {
            free(a);
            return;
        }
        a->host = a->cloud = a->region = a->cluster = a->node_name = empty_str;
        a->os = a->kernel = a->agent_version = empty_str;
        a->last_time_ns = INT64_MIN;
        cw_lru_insert(&e->agents, &a->node);
    }
    set_str(&a->host, h->hostname);
    set_str(&a->cloud, h->cloud);
    set_str(&a->region, h->region);
    set_str(&a->cluster, h->cluster);
    set_str(&a->node_name, h->node_name && h->node_name[0] ? h->node_name : h->hostname);
    set_str(&a->os, h->os);
    set_str(&a->kernel, h->kernel);
    set_str(&a->agent_version, h->agent_version);
    size_t nips = h->n_ip_addresses < IPS_MAX ? h->n_ip_addresses : IPS_MAX;
    char **ips = calloc(nips ? nips : 1, sizeof *ips);
    if (ips) {
        for (size_t i = 0; i < a->n_ips; i++) sfree(a->ips[i]);
        free(a->ips);
        for (size_t i = 0; i < nips; i++) {
            ips[i] = empty_str;
            set_str(&ips[i], h->ip_addresses[i]);
        }
        a->ips = ips;
        a->n_ips = nips;
    }
    remember_cluster(e, a->cluster, a->cloud, a->region);
}

/* ---------------------------------------------------------------- events */

void cw_enrich_agent_event(cw_enrich *e, cw_event *ev)
{
    /* Expire first, so nothing below can free what ev will point to. */
    sweep_stopped(e);
    if (ev->clock_ns > e->latest_ns) e->latest_ns = ev->clock_ns; /* bounded: see event.h */
    cw_lru_node *an = cw_lru_find(&e->agents, ev->agent_id, capped_len(ev->agent_id), 1);
    const cw_enrich_agent *a = NULL;
    if (an) {
        cw_enrich_agent *ma = cw_lru_entry(an, cw_enrich_agent, node);
        if (ev->time_ns > ma->last_time_ns) ma->last_time_ns = ev->time_ns;
        a = ma;
    }
    if (ev->type == CW_EV_CONTAINER_START) container_started(e, ev, a);
    else if (ev->type == CW_EV_CONTAINER_STOP) container_stopped(e, ev);

    /* Only now take pointers: the updates above may have evicted entries. */
    if (a) {
        ev->host = a->host;
        ev->cloud = a->cloud;
        ev->region = a->region;
        ev->cluster = a->cluster;
        ev->node = a->node_name;
    }
    if (!ev->container_id[0]) return;
    cw_enrich_container *c = container_find(e, ev->agent_id, ev->container_id, 1);
    if (!c) return;
    ev->container_info = c;
    if (!c->pod_uid[0]) return;
    cw_enrich_pod *p = pod_find(e, c->cluster, c->pod_uid, 1);
    if (p) fill_from_pod(ev, p);
}

void cw_enrich_audit_event(cw_enrich *e, cw_event *ev)
{
    cw_lru_node *cn = cw_lru_find(&e->clusters, ev->cluster, capped_len(ev->cluster), 1);
    cw_enrich_pod *p = pod_from_audit(e, ev);
    if (!p && ev->k8s.resource && strcmp(ev->k8s.resource, "pods") == 0 && ev->k8s.name &&
        ev->k8s.obj_namespace) {
        p = (cw_enrich_pod *)cw_enrich_pod_by_name(e, ev->cluster, ev->k8s.obj_namespace,
                                                   ev->k8s.name);
        if (p) cw_lru_find(&e->pods, p->node.key, p->node.key_len, 1); /* a use */
    }
    if (cn) {
        const cluster_info *c = cw_lru_entry(cn, cluster_info, node);
        ev->cloud = c->cloud;
        ev->region = c->region;
    }
    if (p) fill_from_pod(ev, p);
}

/* ---------------------------------------------------------------- lookups */

const cw_enrich_agent *cw_enrich_agent_get(cw_enrich *e, const char *agent_id)
{
    cw_lru_node *n = cw_lru_find(&e->agents, agent_id, capped_len(agent_id), 0);
    return n ? cw_lru_entry(n, cw_enrich_agent, node) : NULL;
}

const cw_enrich_pod *cw_enrich_pod_by_uid(cw_enrich *e, const char *cluster, const char *uid)
{
    return pod_find(e, cluster, uid, 0);
}

const cw_enrich_pod *cw_enrich_pod_by_name(cw_enrich *e, const char *cluster, const char *ns,
                                           const char *name)
{
    char key[KEY_MAX];
    cw_lru_node *n = cw_lru_find(&e->names, key, make_key(key, cluster, ns, name), 0);
    return n ? cw_lru_entry(n, cw_enrich_ix, node)->pod : NULL;
}

const cw_enrich_pod *cw_enrich_pod_by_ip(cw_enrich *e, const char *cluster, const char *ip)
{
    char key[KEY_MAX];
    cw_lru_node *n = cw_lru_find(&e->ips, key, make_key(key, cluster, ip, NULL), 0);
    return n ? cw_lru_entry(n, cw_enrich_ix, node)->pod : NULL;
}

const cw_enrich_container *cw_enrich_container_get(cw_enrich *e, const char *agent_id,
                                                   const char *container_id)
{
    return container_find(e, agent_id, container_id, 0);
}

void cw_enrich_get_stats(const cw_enrich *e, cw_enrich_stats *st)
{
    st->agents = e->agents.count;
    st->containers = e->containers.count;
    st->pods = e->pods.count;
    st->agent_evictions = e->agents.evictions;
    st->container_evictions = e->containers.evictions;
    st->pod_evictions = e->pods.evictions;
    st->containers_expired = e->expired;
}

/* ---------------------------------------------------------------- life cycle */

static void parse_owner_keys(cw_enrich *e, const char *list)
{
    if (!list || !list[0]) list = CW_ENRICH_DEFAULT_OWNER_LABELS;
    const char *p = list;
    while (*p && e->n_owner_keys < OWNER_KEYS_MAX) {
        while (*p == ' ' || *p == ',') p++;
        const char *start = p;
        while (*p && *p != ',') p++;
        const char *end = p;
        while (end > start && end[-1] == ' ') end--;
        if (end > start) {
            char *k = strndup(start, (size_t)(end - start));
            if (k) e->owner_keys[e->n_owner_keys++] = k;
        }
    }
}

static void container_destroy_cb(cw_lru_node *n, void *ud)
{
    cw_enrich_container *c = cw_lru_entry(n, cw_enrich_container, node);
    c->stopped = 0; /* the list goes away with the table */
    container_free(ud, c);
}

static void ix_destroy_cb(cw_lru_node *n, void *ud)
{
    (void)ud;
    free((char *)n->key);
    free(cw_lru_entry(n, cw_enrich_ix, node));
}

int cw_enrich_create(cw_enrich **out, const cw_enrich_opts *opts)
{
    cw_enrich_opts o = {0};
    if (opts) o = *opts;
    cw_enrich *e = calloc(1, sizeof *e);
    if (!e) return -1;
    size_t bytes = o.max_table_bytes ? o.max_table_bytes : CW_ENRICH_DEFAULT_MAX_TABLE_BYTES;
    e->grace_ns = o.stopped_grace_ns > 0   ? o.stopped_grace_ns
                  : o.stopped_grace_ns < 0 ? 0
                                           : CW_ENRICH_DEFAULT_STOPPED_GRACE_NS;
    e->latest_ns = INT64_MIN;
    int r = 0;
    r |= cw_lru_init(&e->agents, o.max_agents ? o.max_agents : CW_ENRICH_DEFAULT_MAX_AGENTS, 0,
                     agent_evicted, e);
    r |= cw_lru_init(&e->containers,
                     o.max_containers ? o.max_containers : CW_ENRICH_DEFAULT_MAX_CONTAINERS, bytes,
                     container_evicted, e);
    r |= cw_lru_init(&e->pods, o.max_pods ? o.max_pods : CW_ENRICH_DEFAULT_MAX_PODS, bytes,
                     pod_evicted, e);
    /* Indexes hold at most one entry per pod each, so the pod bounds bound them. */
    r |= cw_lru_init(&e->names, 0, 0, NULL, e);
    r |= cw_lru_init(&e->ips, 0, 0, NULL, e);
    r |= cw_lru_init(&e->clusters, MAX_CLUSTERS, 0, cluster_evicted, e);
    parse_owner_keys(e, o.owner_labels);
    if (r) {
        cw_enrich_free(e);
        return -1;
    }
    *out = e;
    return 0;
}

void cw_enrich_free(cw_enrich *e)
{
    if (!e) return;
    if (e->containers.buckets) cw_lru_destroy(&e->containers, container_destroy_cb);
    if (e->pods.buckets) cw_lru_destroy(&e->pods, pod_destroy_cb);
    if (e->names.buckets) cw_lru_destroy(&e->names, ix_destroy_cb);
    if (e->ips.buckets) cw_lru_destroy(&e->ips, ix_destroy_cb);
    if (e->agents.buckets) cw_lru_destroy(&e->agents, agent_evicted);
    if (e->clusters.buckets) cw_lru_destroy(&e->clusters, cluster_evicted);
    for (size_t i = 0; i < e->n_owner_keys; i++) free(e->owner_keys[i]);
    free(e);
}
