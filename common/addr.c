#include "common/addr.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

int cw_addr_parse(const char *text, struct sockaddr_storage *out)
{
    char host[128];
    const char *port;
    memset(out, 0, sizeof *out);
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host) return -1;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host) return -1;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = 0;
        port = colon + 1;
    }
    char *endp;
    if (!*port) return -1;
    long p = strtol(port, &endp, 10);
    if (*endp || p < 0 || p > 65535) return -1;
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    if (text[0] == '[')
        return uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)out) == 0 ? 0 : -1;
    return uv_ip4_addr(host, (int)p, (struct sockaddr_in *)out) == 0 ? 0 : -1;
}
