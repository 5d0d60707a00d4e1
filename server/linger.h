/* linger: a "lingering close" for sockets whose peer may still be sending.
 *
 * Closing a socket that has unread data makes the kernel answer with RST,
 * and the peer then usually loses the last response written to it (seen:
 * clients that send a whole request body the server refused early get
 * "connection reset" instead of the 413). A lingering close sends FIN,
 * reads and discards what still arrives, and closes once the peer closes,
 * after `max_bytes`, or after `timeout_ms`, whichever comes first.
 *
 * One set per libuv loop; everything runs on that loop's thread. The set
 * owns each socket handed to it and frees everything it allocated once the
 * handles are closed; cw_linger_end_all() starts that for every socket.
 */
#ifndef CW_LINGER_H
#define CW_LINGER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct cw_linger cw_linger; /* one socket */

typedef struct cw_linger_set {
    uv_loop_t *loop;
    size_t max;          /* sockets lingering at once; past it, close at once */
    uint64_t max_bytes;  /* discarded per socket before giving up */
    uint64_t timeout_ms; /* per socket */
    /* Called after a socket's handles are closed (may be NULL). */
    void (*on_closed)(void *ud);
    void *ud;
    cw_linger *head;
    size_t active;  /* sockets still reading */
    size_t pending; /* sockets whose handles are not closed yet */
    char buf[16384];
} cw_linger_set;

void cw_linger_set_init(cw_linger_set *s, uv_loop_t *loop, size_t max, uint64_t max_bytes,
                        uint64_t timeout_ms, void (*on_closed)(void *ud), void *ud);
/* Takes over fd, a connected stream socket whose last response is written:
 * it is closed in every case, lingering if the set has room. */
void cw_linger_start(cw_linger_set *s, int fd);
/* Stops every lingering socket now (their handles close asynchronously). */
void cw_linger_end_all(cw_linger_set *s);

#endif
