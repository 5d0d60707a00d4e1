/* stored_event: cw_event -> StoredEvent protobuf. See stored_event.h. */
#include "correlator/stored_event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cw_stored_packer_init(cw_stored_packer *pk)
{
    memset(pk, 0, sizeof *pk);
}

void cw_stored_packer_free(cw_stored_packer *pk)
{
    free(pk->labels);
    free(pk->label_ptrs);
    memset(pk, 0, sizeof *pk);
}

/* protobuf-c leaves an optional string out when its pointer is NULL. */
static char *opt(const char *s)
{
    return s && s[0] ? (char *)s : NULL;
}

static int reserve_labels(cw_stored_packer *pk, size_t n)
{
    if (n <= pk->cap) return 0;
    size_t cap = pk->cap ? pk->cap : 16;
    while (cap < n) cap *= 2;
    Chainwatch__V1__Label *l = realloc(pk->labels, cap * sizeof *l);
    if (!l) return -1;
    pk->labels = l;
    Chainwatch__V1__Label **p = realloc(pk->label_ptrs, cap * sizeof *p);
    if (!p) return -1;
    pk->label_ptrs = p;
    pk->cap = cap;
    return 0;
}

int cw_stored_event_pack(cw_stored_packer *pk, const cw_event *ev, cw_buf *out)
{
    Chainwatch__V1__StoredEvent m = CHAINWATCH__V1__STORED_EVENT__INIT;
    m.id = (char *)ev->id;
    m.has_time_ns = 1;
    m.time_ns = ev->time_ns;
    m.type = (char *)cw_event_type_names[ev->type];
    m.source = (char *)cw_event_source_names[ev->source];
    m.cluster = opt(ev->cluster);
    m.cloud = opt(ev->cloud);
    m.region = opt(ev->region);
    m.host = opt(ev->host);
    m.node = opt(ev->node);
    m.agent_id = opt(ev->agent_id);
    m.container_id = opt(ev->container_id);
    m.namespace_ = opt(ev->namespace);
    m.pod = opt(ev->pod);
    m.pod_uid = opt(ev->pod_uid);
    m.owner = opt(ev->owner);
    if (ev->n_labels) {
        if (reserve_labels(pk, ev->n_labels) < 0) return -1;
        for (size_t i = 0; i < ev->n_labels; i++) {
            Chainwatch__V1__Label l = CHAINWATCH__V1__LABEL__INIT;
            l.key = (char *)ev->labels[i].key;
            l.value = (char *)ev->labels[i].value;
            pk->labels[i] = l;
            pk->label_ptrs[i] = &pk->labels[i];
        }
        m.n_labels = ev->n_labels;
        m.labels = pk->label_ptrs;
    }
    char *audit = NULL;
    if (ev->pb) {
        m.event = (Chainwatch__V1__Event *)ev->pb;
    } else if (ev->audit) {
        audit = json_dumps(ev->audit, JSON_COMPACT);
        if (!audit) return -1;
        m.audit_json = audit;
    }
    size_t n = chainwatch__v1__stored_event__get_packed_size(&m);
    int rc = -1;
    if (cw_buf_reserve(out, n) == 0) {
        out->len += chainwatch__v1__stored_event__pack(&m, out->data + out->len);
        rc = 0;
    }
    free(audit);
    return rc;
}

/* Appends s at out[*n], keeping room for the NUL. */
static void cat(char *out, size_t size, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (len > size - 1 - *n) len = size - 1 - *n;
    memcpy(out + *n, s, len);
    *n += len;
}

size_t cw_stored_event_key(const cw_event *ev, char *out, size_t size)
{
    /* Per event, so no snprintf. */
    size_t n = 0;
    if (size == 0) return 0;
    if (ev->pod[0]) {
        cat(out, size, &n, ev->cluster);
        cat(out, size, &n, "/");
        cat(out, size, &n, ev->namespace);
        cat(out, size, &n, "/");
        cat(out, size, &n, ev->pod);
    } else {
        cat(out, size, &n, ev->host[0] ? ev->host : ev->agent_id);
    }
    out[n] = '\0';
    return n;
}
