/* addr: parses the simulator's "HOST:PORT" arguments into a socket address.
 *
 * HOST may be an IPv4 address, a bracketed IPv6 address ("[::1]:7400") or a
 * name. Names are resolved with a synchronous uv_getaddrinfo(), so call this
 * only before the loop starts running (the simulator does it while parsing
 * its command line). Thread-safe.
 */
#ifndef SIM_ADDR_H
#define SIM_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Returns 0, or -1 with a reason in `err`. */
int sim_addr_parse(const char *hostport, struct sockaddr_storage *out, char *err, size_t errlen);

#endif
