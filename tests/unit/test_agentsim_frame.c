/* Unit tests of agentsim's framing: what it packs is one length-prefixed
 * AgentFrame that decodes back to the same batch, the reader splits a byte
 * stream into frames however it is chunked, and it refuses oversized frames
 * before buffering them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "evpool.h"
#include "frame.h"

typedef struct got {
    uint8_t *frames[8];
    size_t lens[8];
    size_t n;
    int stop_after; /* return 1 after this many frames (0: never) */
} got;

static int collect(void *user, const uint8_t *payload, size_t len)
{
    got *g = user;
    assert_true(g->n < 8);
    g->frames[g->n] = malloc(len ? len : 1);
    memcpy(g->frames[g->n], payload, len);
    g->lens[g->n++] = len;
    return g->stop_after && g->n == (size_t)g->stop_after ? 1 : 0;
}

static void got_free(got *g)
{
    for (size_t i = 0; i < g->n; i++) free(g->frames[i]);
    g->n = 0;
}

/* Packs a batch of `n` pool events under `seq`. */
static uint8_t *pack_batch(sim_evpool *pool, uint64_t seq, size_t n, size_t *len)
{
    Chainwatch__V1__Event **ev = calloc(n, sizeof *ev);
    sim_evpool_take(pool, ev, n, 1700000000000000000);
    Chainwatch__V1__EventBatch b = CHAINWATCH__V1__EVENT_BATCH__INIT;
    b.has_seq = 1;
    b.seq = seq;
    b.n_events = n;
    b.events = ev;
    Chainwatch__V1__AgentFrame f = CHAINWATCH__V1__AGENT_FRAME__INIT;
    f.msg_case = CHAINWATCH__V1__AGENT_FRAME__MSG_BATCH;
    f.batch = &b;
    uint8_t *out = sim_frame_pack_agent(&f, SIM_FRAME_MAX, len);
    free(ev);
    return out;
}

static void batch_round_trips_through_any_chunking(void **state)
{
    (void)state;
    sim_evpool pool;
    assert_int_equal(sim_evpool_build(&pool, 1000, 7), 0);
    size_t len;
    uint8_t *wire = pack_batch(&pool, 42, 300, &len);
    assert_non_null(wire);
    /* The prefix is the big-endian payload length. */
    uint32_t n = (uint32_t)wire[0] << 24 | wire[1] << 16 | wire[2] << 8 | wire[3];
    assert_int_equal(n + 4, len);

    static const size_t chunks[] = {1, 3, 4, 5, 1000, 1 << 20};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        sim_frame_reader r;
        sim_frame_reader_init(&r, SIM_FRAME_MAX);
        got g = {0};
        for (size_t off = 0; off < len; off += chunks[c]) {
            size_t k = len - off < chunks[c] ? len - off : chunks[c];
            assert_int_equal(sim_frame_reader_feed(&r, wire + off, k, collect, &g), 0);
        }
        assert_int_equal(g.n, 1);
        assert_int_equal(g.lens[0], n);
        Chainwatch__V1__AgentFrame *f =
            chainwatch__v1__agent_frame__unpack(NULL, g.lens[0], g.frames[0]);
        assert_non_null(f);
        assert_int_equal(f->msg_case, CHAINWATCH__V1__AGENT_FRAME__MSG_BATCH);
        assert_true(f->batch->has_seq && f->batch->seq == 42);
        assert_int_equal(f->batch->n_events, 300);
        /* Events keep their payload and get consecutive times. */
        assert_int_equal(f->batch->events[0]->time_ns, 1700000000000000000);
        assert_int_equal(f->batch->events[299]->time_ns, 1700000000000000299);
        assert_int_equal(f->batch->events[5]->payload_case, pool.events[5]->payload_case);
        chainwatch__v1__agent_frame__free_unpacked(f, NULL);
        got_free(&g);
        sim_frame_reader_free(&r);
    }
    free(wire);
    sim_evpool_free(&pool);
}

static void several_frames_in_one_read(void **state)
{
    (void)state;
    sim_evpool pool;
    assert_int_equal(sim_evpool_build(&pool, 100, 9), 0);
    size_t l1, l2, l3;
    uint8_t *f1 = pack_batch(&pool, 1, 1, &l1), *f2 = pack_batch(&pool, 2, 5, &l2),
            *f3 = pack_batch(&pool, 3, 2, &l3);
    size_t len = l1 + l2 + l3;
    uint8_t *all = malloc(len);
    memcpy(all, f1, l1);
    memcpy(all + l1, f2, l2);
    memcpy(all + l1 + l2, f3, l3);
    /* Split once in the middle of the second frame's prefix. */
    size_t cut = l1 + 2;
    sim_frame_reader r;
    sim_frame_reader_init(&r, SIM_FRAME_MAX);
    got g = {0};
    assert_int_equal(sim_frame_reader_feed(&r, all, cut, collect, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(sim_frame_reader_feed(&r, all + cut, len - cut, collect, &g), 0);
    assert_int_equal(g.n, 3);
    for (size_t i = 0; i < 3; i++) {
        Chainwatch__V1__AgentFrame *f =
            chainwatch__v1__agent_frame__unpack(NULL, g.lens[i], g.frames[i]);
        assert_non_null(f);
        assert_int_equal(f->batch->seq, i + 1);
        chainwatch__v1__agent_frame__free_unpacked(f, NULL);
    }
    got_free(&g);
    /* A callback that says stop stops the reader at that frame. */
    sim_frame_reader_reset(&r);
    g.stop_after = 2;
    assert_int_equal(sim_frame_reader_feed(&r, all, len, collect, &g), 1);
    assert_int_equal(g.n, 2);
    got_free(&g);
    sim_frame_reader_free(&r);
    free(all);
    free(f1);
    free(f2);
    free(f3);
    sim_evpool_free(&pool);
}

static void oversized_frames_are_refused_before_buffering(void **state)
{
    (void)state;
    sim_frame_reader r;
    sim_frame_reader_init(&r, 1000);
    got g = {0};
    uint8_t hdr[4];
    sim_frame_put_prefix(hdr, 1001);
    /* Whole prefix at once, and byte by byte: refused as soon as it is known. */
    assert_int_equal(sim_frame_reader_feed(&r, hdr, 4, collect, &g), SIM_FRAME_ETOOBIG);
    assert_int_equal(r.partial.len, 0);
    sim_frame_reader_reset(&r);
    assert_int_equal(sim_frame_reader_feed(&r, hdr, 3, collect, &g), 0);
    assert_int_equal(sim_frame_reader_feed(&r, hdr + 3, 1, collect, &g), SIM_FRAME_ETOOBIG);
    assert_int_equal(g.n, 0);
    /* Exactly the limit is fine. */
    sim_frame_reader_reset(&r);
    uint8_t *big = calloc(1, 4 + 1000);
    sim_frame_put_prefix(big, 1000);
    assert_int_equal(sim_frame_reader_feed(&r, big, 4 + 1000, collect, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.lens[0], 1000);
    got_free(&g);
    free(big);
    sim_frame_reader_free(&r);

    /* The packer refuses a Hello over the pre-Hello limit. */
    char *name = malloc(70000);
    memset(name, 'a', 69999);
    name[69999] = 0;
    Chainwatch__V1__Hello h = CHAINWATCH__V1__HELLO__INIT;
    h.agent_id = name;
    h.hostname = "h";
    Chainwatch__V1__AgentFrame f = CHAINWATCH__V1__AGENT_FRAME__INIT;
    f.msg_case = CHAINWATCH__V1__AGENT_FRAME__MSG_HELLO;
    f.hello = &h;
    size_t len = 0;
    assert_null(sim_frame_pack_agent(&f, SIM_FRAME_MAX_PRE_HELLO, &len));
    uint8_t *ok = sim_frame_pack_agent(&f, SIM_FRAME_MAX, &len);
    assert_non_null(ok);
    assert_true(len > 70000);
    free(ok);
    free(name);
}

static void server_frames_decode_within_the_arena(void **state)
{
    (void)state;
    cw_arena arena;
    cw_arena_init(&arena, 64 * 1024);
    Chainwatch__V1__Ack ack = CHAINWATCH__V1__ACK__INIT;
    ack.has_acked_seq = 1;
    ack.acked_seq = 123456789012ULL;
    Chainwatch__V1__ServerFrame sf = CHAINWATCH__V1__SERVER_FRAME__INIT;
    sf.msg_case = CHAINWATCH__V1__SERVER_FRAME__MSG_ACK;
    sf.ack = &ack;
    uint8_t buf[64];
    size_t n = chainwatch__v1__server_frame__pack(&sf, buf);
    Chainwatch__V1__ServerFrame *d = sim_frame_decode_server(&arena, buf, n);
    assert_non_null(d);
    assert_int_equal(d->msg_case, CHAINWATCH__V1__SERVER_FRAME__MSG_ACK);
    assert_int_equal(d->ack->acked_seq, 123456789012ULL);
    cw_arena_reset(&arena);

    Chainwatch__V1__Error e = CHAINWATCH__V1__ERROR__INIT;
    e.has_code = 1;
    e.code = CHAINWATCH__V1__ERROR_CODE__ERROR_SEQ_GAP;
    e.message = "seq 7 after 5";
    sf.msg_case = CHAINWATCH__V1__SERVER_FRAME__MSG_ERROR;
    sf.error = &e;
    n = chainwatch__v1__server_frame__pack(&sf, buf);
    d = sim_frame_decode_server(&arena, buf, n);
    assert_non_null(d);
    assert_int_equal(d->error->code, CHAINWATCH__V1__ERROR_CODE__ERROR_SEQ_GAP);
    assert_string_equal(d->error->message, "seq 7 after 5");
    cw_arena_reset(&arena);

    /* Garbage is refused, not crashed on. */
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    assert_null(sim_frame_decode_server(&arena, junk, sizeof junk));
    cw_arena_reset(&arena);

    /* A Command whose payload needs more than the arena holds is refused. */
    Chainwatch__V1__Command cmd = CHAINWATCH__V1__COMMAND__INIT;
    uint8_t *payload = calloc(1, 100 * 1024);
    cmd.kind = "rules";
    cmd.has_payload = 1;
    cmd.payload.data = payload;
    cmd.payload.len = 100 * 1024;
    sf.msg_case = CHAINWATCH__V1__SERVER_FRAME__MSG_COMMAND;
    sf.command = &cmd;
    uint8_t *big = malloc(chainwatch__v1__server_frame__get_packed_size(&sf));
    n = chainwatch__v1__server_frame__pack(&sf, big);
    assert_null(sim_frame_decode_server(&arena, big, n));
    assert_true(arena.exhausted);
    cw_arena_reset(&arena);
    free(big);
    free(payload);
    cw_arena_destroy(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_round_trips_through_any_chunking),
        cmocka_unit_test(several_frames_in_one_read),
        cmocka_unit_test(oversized_frames_are_refused_before_buffering),
        cmocka_unit_test(server_frames_decode_within_the_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
