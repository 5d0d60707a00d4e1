/* addr: parse "HOST:PORT" and "[V6]:PORT" listen addresses (literal IPs, or
 * "localhost" for 127.0.0.1; no DNS, which would block). */
#ifndef CW_ADDR_H
#define CW_ADDR_H

#include <sys/socket.h>

/* Returns 0, or -1 when the text is not a valid address with a port 0..65535. */
int cw_addr_parse(const char *text, struct sockaddr_storage *out);

#endif
