/* transport: the byte stream under the agent framing.
 *
 * The connection code talks to its peer only through these operations, so a
 * TLS transport (OpenSSL memory BIOs over the same uv_tcp_t) can slot in
 * without touching framing or the protocol: its read path decrypts and calls
 * cw_conn_on_bytes(); its write path encrypts. All calls run on the
 * connection's loop thread.
 */
#ifndef CW_TRANSPORT_H
#define CW_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cw_conn;

typedef struct cw_transport {
    const char *name;
    int (*read_start)(struct cw_conn *c);
    int (*read_stop)(struct cw_conn *c);
    /* Takes ownership of buf (malloc'ed); frees it when written or failed. */
    int (*write)(struct cw_conn *c, uint8_t *buf, size_t len);
    /* Bytes accepted by write() but not yet on the wire. */
    size_t (*write_queue)(struct cw_conn *c);
    /* Flushes pending writes, then closes; the connection's close callback
     * runs when libuv has released the handle. */
    void (*close)(struct cw_conn *c);
} cw_transport;

/* Plain TCP. */
extern const cw_transport cw_transport_tcp;

/* Called by a transport with plaintext bytes from the peer (nread > 0), or
 * with a negative libuv error / UV_EOF when the stream ended. */
void cw_conn_on_bytes(struct cw_conn *c, const uint8_t *data, ssize_t nread);

#endif
