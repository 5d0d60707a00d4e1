#include "common/mailbox.h"

static void on_async(uv_async_t *h)
{
    cw_mailbox *mb = h->data;
    /* Take the whole list at once: wake-ups coalesce, and callbacks may post
     * again (those land in the next round). */
    pthread_mutex_lock(&mb->lock);
    cw_msg *m = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->lock);
    while (m) {
        cw_msg *next = m->next;
        m->next = NULL;
        mb->cb(mb, m);
        m = next;
    }
}

int cw_mailbox_init(uv_loop_t *loop, cw_mailbox *mb, cw_mailbox_cb cb, void *data)
{
    mb->head = mb->tail = NULL;
    mb->cb = cb;
    mb->data = data;
    pthread_mutex_init(&mb->lock, NULL);
    mb->async.data = mb;
    return uv_async_init(loop, &mb->async, on_async);
}

void cw_mailbox_post(cw_mailbox *mb, cw_msg *msg)
{
    msg->next = NULL;
    pthread_mutex_lock(&mb->lock);
    if (mb->tail)
        mb->tail->next = msg;
    else
        mb->head = msg;
    mb->tail = msg;
    pthread_mutex_unlock(&mb->lock);
    uv_async_send(&mb->async);
}

void cw_mailbox_close(cw_mailbox *mb, uv_close_cb close_cb)
{
    on_async(&mb->async);
    uv_close((uv_handle_t *)&mb->async, close_cb);
}
