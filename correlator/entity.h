/* entity: the specific things an event names, as link keys for the incident
 * stage: "two alerts belong to one attack when they share one of these".
 *
 * A key is a short string, "<kind>|<scope>|...":
 *   h|<agent_id>                       a monitored host
 *   c|<agent_id>|<container_id>        a container on that host
 *   p|<cluster>|<namespace>|<pod>      a Pod (cluster "" -> "agent:<id>" scope)
 *   w|<cluster>|<namespace>|<name>     a workload (Deployment, Job, ...) owning Pods
 *   s|<cluster>|<namespace>|<account>  a service account
 *   u|<cluster>|<username>             a human (or anonymous) API identity
 *   i|<ip>                             a public IP address (indicator)
 *   d|<domain>                         a domain name (indicator)
 *   x|<sha256>                         an executable's hash (indicator)
 *   k|<fingerprint>                    an SSH key fingerprint (indicator)
 *
 * Only SPECIFIC entities become keys; the ones everything shares would glue
 * independent attacks together, so they never do: the cluster or namespace
 * on their own, kube-system service accounts and system:* identities (the
 * control plane acts for everyone), private addresses that are neither a
 * monitored host nor a Pod (service VIPs such as the API server's, DNS
 * servers, NAT gateways), anything on port 53, and a node's own address as
 * the source of an audit request (it is every kubelet's and every
 * host-network Pod's address).
 *
 * An address is resolved before it becomes a key: a monitored host's
 * address (agent Hello ip_addresses) becomes that host's h| key, so an SSH
 * from node-a to node-b's address links to node-b; a Pod IP becomes the
 * Pod's p| key; a public address stays an i| indicator.
 *
 * Audit and login events can also be RELATIONS: "this actor touched that
 * target" (an identity created or exec'd into a Pod, a host logged into
 * another over SSH). cw_entity_relation() splits them so the incident stage
 * can pull a target into an actor's incident before the target raises an
 * alert of its own.
 *
 * Threads: the pipeline thread; no state of its own.
 */
#ifndef CW_ENTITY_H
#define CW_ENTITY_H

#include <stddef.h>

#include "correlator/enrich.h"
#include "correlator/event.h"

#define CW_ENTITY_MAX_KEYS 48
#define CW_ENTITY_KEY_MAX 320
/* Addresses taken from one command line, at most (the rest are ignored). */
#define CW_ENTITY_MAX_ARGV_IPS 8

typedef struct cw_entity_keys {
    size_t n;
    const char *k[CW_ENTITY_MAX_KEYS]; /* point into buf; unique */
    char buf[CW_ENTITY_MAX_KEYS * 160];
    size_t used;
} cw_entity_keys;

/* What resolving needs. enrich may be NULL (no Pod IP resolution);
 * agent_by_ip returns the agent id owning a host address, or NULL. */
typedef struct cw_entity_ctx {
    cw_enrich *enrich;
    const char *(*agent_by_ip)(void *ud, const char *ip);
    void *ud;
} cw_entity_ctx;

enum cw_ip_class { CW_IP_INVALID, CW_IP_PRIVATE, CW_IP_PUBLIC };

/* Private covers RFC 1918, loopback, link-local, CGNAT (100.64/10, cloud
 * mirrors and metadata live there), multicast, reserved, and the IPv6
 * equivalents. The documentation ranges (192.0.2/24, 198.51.100/24,
 * 203.0.113/24) count as public: scenarios use them as attacker addresses. */
enum cw_ip_class cw_entity_ip_class(const char *ip);

void cw_entity_keys_init(cw_entity_keys *ks);
/* Adds a key (truncated to CW_ENTITY_KEY_MAX) unless present or full. */
void cw_entity_keys_add(cw_entity_keys *ks, const char *key);

/* Every key ev names (actors and targets alike): what an alert links by. */
void cw_entity_keys_of(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *out);

/* Returns 1 and fills actors/targets when ev is a relation: an audit
 * create/update/patch of a Pod or workload, or an exec/attach/portforward
 * into a Pod (actors: the identity and source; targets: the Pod or
 * workload), or a successful login whose source address is another
 * monitored host (actor: that host; target: this host). Else 0. */
int cw_entity_relation(const cw_entity_ctx *c, const cw_event *ev, cw_entity_keys *actors,
                       cw_entity_keys *targets);

#endif
