#include "addr.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int sim_addr_parse(const char *hostport, struct sockaddr_storage *out, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || !colon[1]) {
        snprintf(err, errlen, "\"%s\": expected HOST:PORT", hostport);
        return -1;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535) {
        snprintf(err, errlen, "\"%s\": port must be 1..65535", hostport);
        return -1;
    }
    size_t n = (size_t)(colon - hostport);
    if (hostport[0] == '[' && n >= 2 && hostport[n - 1] == ']') { /* [v6]:port */
        hostport++;
        n -= 2;
    }
    if (n >= sizeof host) {
        snprintf(err, errlen, "\"%s\": host name too long", hostport);
        return -1;
    }
    memcpy(host, hostport, n);
    host[n] = 0;
    memset(out, 0, sizeof *out);
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0) return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0) return 0;
    /* A name: resolve it now, before any loop runs (a NULL callback makes
     * uv_getaddrinfo synchronous). */
    uv_loop_t loop;
    if (uv_loop_init(&loop) < 0) {
        snprintf(err, errlen, "cannot create a loop to resolve \"%s\"", host);
        return -1;
    }
    uv_getaddrinfo_t req;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(&loop, &req, NULL, host, NULL, &hints);
    if (rc == 0) {
        memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
        ((struct sockaddr_in *)out)->sin_port = htons((uint16_t)port); /* same offset in v6 */
        uv_freeaddrinfo(req.addrinfo);
    } else {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host, uv_strerror(rc));
    }
    uv_loop_close(&loop);
    return rc == 0 ? 0 : -1;
}
