/* mailbox: hand heap messages from any thread to one libuv loop.
 *
 * The only cross-thread path into a loop. cw_mailbox_post() may be called
 * from any thread; it links the message and calls uv_async_send(). Wake-ups
 * coalesce, so the loop-side callback drains the whole list each time, in
 * posting order. Ownership of a message passes to the mailbox on post and to
 * the callback on delivery. The mailbox itself is owned by its loop's thread:
 * init and close it there.
 */
#ifndef CW_MAILBOX_H
#define CW_MAILBOX_H

#include <pthread.h>
#include <uv.h>

typedef struct cw_msg {
    struct cw_msg *next;
    int type;
} cw_msg;

typedef struct cw_mailbox cw_mailbox;
/* Runs on the loop thread, once per message, in posting order. */
typedef void (*cw_mailbox_cb)(cw_mailbox *mb, cw_msg *msg);

struct cw_mailbox {
    uv_async_t async;
    pthread_mutex_t lock;
    cw_msg *head, *tail;
    cw_mailbox_cb cb;
    void *data;
};

int cw_mailbox_init(uv_loop_t *loop, cw_mailbox *mb, cw_mailbox_cb cb, void *data);
/* Thread-safe. */
void cw_mailbox_post(cw_mailbox *mb, cw_msg *msg);
/* Loop thread. Undelivered messages are delivered first, then the handle is
 * closed; close_cb (may be NULL) runs when libuv has released it. */
void cw_mailbox_close(cw_mailbox *mb, uv_close_cb close_cb);

#endif
