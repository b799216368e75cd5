/* tests/unit/test_nbd_proto.c - the NBD codec: handshake transcripts byte by byte, request
 * validation of every command, reply layouts against the protocol document. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blockstore/nbd/nbd_proto.h"

/* ---- a byte builder, written independently of the codec's encoders ---- */

struct bb {
	uint8_t b[65536];
	size_t n;
};

static void b8(struct bb *b, uint8_t v)
{
	b->b[b->n++] = v;
}
static void b16(struct bb *b, uint16_t v)
{
	b8(b, v >> 8);
	b8(b, v & 0xff);
}
static void b32(struct bb *b, uint32_t v)
{
	b16(b, v >> 16);
	b16(b, v & 0xffff);
}
static void b64(struct bb *b, uint64_t v)
{
	b32(b, v >> 32);
	b32(b, v & 0xffffffffU);
}
static void bstr(struct bb *b, const char *s)
{
	memcpy(b->b + b->n, s, strlen(s));
	b->n += strlen(s);
}

/* Client side: option header + data. */
static void c_opt(struct bb *b, uint32_t opt, const void *data, uint32_t len)
{
	bstr(b, "IHAVEOPT");
	b32(b, opt);
	b32(b, len);
	if (len)
		memcpy(b->b + b->n, data, len);
	b->n += len;
}

static void c_go(struct bb *b, uint32_t opt, const char *name, int nreq, const uint16_t *req)
{
	struct bb d = {.n = 0};
	b32(&d, strlen(name));
	bstr(&d, name);
	b16(&d, nreq);
	for (int i = 0; i < nreq; i++)
		b16(&d, req[i]);
	c_opt(b, opt, d.b, d.n);
}

static void c_meta(struct bb *b, uint32_t opt, const char *name, int nq, const char **q)
{
	struct bb d = {.n = 0};
	b32(&d, strlen(name));
	bstr(&d, name);
	b32(&d, nq);
	for (int i = 0; i < nq; i++) {
		b32(&d, strlen(q[i]));
		bstr(&d, q[i]);
	}
	c_opt(b, opt, d.b, d.n);
}

/* Server side: option reply header. */
static void s_rep(struct bb *b, uint32_t opt, uint32_t type, uint32_t len)
{
	b64(b, 0x3e889045565a9ULL);
	b32(b, opt);
	b32(b, type);
	b32(b, len);
}

static void s_greeting(struct bb *b)
{
	static const uint8_t g[18] = {'N', 'B', 'D', 'M', 'A', 'G', 'I', 'C',  'I',
				      'H', 'A', 'V', 'E', 'O', 'P', 'T', 0x00, 0x03};
	memcpy(b->b + b->n, g, sizeof(g));
	b->n += sizeof(g);
}

/* ---- the caller side of the handshake, with a fixed export table ---- */

#define VOL1_SIZE (1ULL << 30)
#define VOL1_WANT                                                                                  \
	(NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |                            \
	 NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO | NBD_FLAG_SEND_DF |                 \
	 NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE)

static const struct nbd_export vol1 = {.size = VOL1_SIZE,
				       .tflags = VOL1_WANT,
				       .min_block = 512,
				       .pref_block = 4096,
				       .max_block = 0,
				       .description = "first volume"};
static const struct nbd_export ro = {.size = 4096, .tflags = NBD_FLAG_READ_ONLY | VOL1_WANT};

static const struct nbd_export *lookup(const char *name)
{
	if (strcmp(name, "vol1") == 0)
		return &vol1;
	if (strcmp(name, "ro") == 0)
		return &ro;
	return NULL;
}

struct run {
	struct bb out;
	int last;	 /* last non-NONE event, or NBD_HS_EV_NONE */
	size_t consumed; /* input bytes taken */
	int lookups, lists;
};

static void drain(struct nbd_hs *hs, struct run *r)
{
	size_t n;
	const void *p = nbd_hs_out(hs, &n);
	memcpy(r->out.b + r->out.n, p, n);
	r->out.n += n;
	nbd_hs_out_done(hs, n);
}

/* Feeds in[0, len) in pieces whose ends are at the cut points (sorted, < len), answering
 * events like a server would; stops at GO or CLOSE. */
static void run_cuts(struct nbd_hs *hs, const uint8_t *in, size_t len, const size_t *cuts,
		     size_t ncuts, struct run *r)
{
	size_t pos = 0, ci = 0;

	memset(r, 0, sizeof(*r));
	nbd_hs_init(hs);
	drain(hs, r);
	while (pos < len) {
		size_t end = ci < ncuts ? cuts[ci] : len;
		if (end <= pos) {
			ci++;
			continue;
		}
		size_t used;
		int ev = nbd_hs_feed(hs, in + pos, end - pos, &used);
		assert_true(ev >= 0);
		pos += used;
		if (ev == NBD_HS_EV_LOOKUP) {
			r->lookups++;
			ev = nbd_hs_answer(hs, lookup(nbd_hs_name(hs, NULL)));
			assert_true(ev >= 0);
		} else if (ev == NBD_HS_EV_LIST) {
			r->lists++;
			assert_int_equal(nbd_hs_list_add(hs, "vol1"), 0);
			assert_int_equal(nbd_hs_list_add(hs, "ro"), 0);
			assert_int_equal(nbd_hs_list_end(hs, 0), NBD_HS_EV_NONE);
		}
		drain(hs, r);
		if (ev == NBD_HS_EV_GO || ev == NBD_HS_EV_CLOSE) {
			r->last = ev;
			break;
		}
	}
	r->consumed = pos;
}

static void run_all(struct nbd_hs *hs, const struct bb *in, struct run *r)
{
	run_cuts(hs, in->b, in->n, NULL, 0, r);
}

static struct nbd_hs *new_hs(void)
{
	struct nbd_hs *hs = malloc(sizeof(*hs));
	assert_non_null(hs);
	return hs;
}

/* The transcript must come out the same whatever the split of the input: every single
 * cut point, and one byte at a time. */
static void check_splits(const struct bb *in, const struct run *whole)
{
	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	assert_non_null(r);
	for (size_t k = 1; k < in->n; k++) {
		run_cuts(hs, in->b, in->n, &k, 1, r);
		assert_int_equal(r->out.n, whole->out.n);
		assert_memory_equal(r->out.b, whole->out.b, whole->out.n);
		assert_int_equal(r->last, whole->last);
		assert_int_equal(r->consumed, whole->consumed);
	}
	size_t *cuts = malloc(in->n * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t k = 0; k < in->n; k++)
		cuts[k] = k + 1;
	run_cuts(hs, in->b, in->n, cuts, in->n, r);
	assert_int_equal(r->out.n, whole->out.n);
	assert_memory_equal(r->out.b, whole->out.b, whole->out.n);
	assert_int_equal(r->last, whole->last);
	free(cuts);
	free(r);
	free(hs);
}

static void expect_out(const struct run *r, const struct bb *exp)
{
	assert_int_equal(r->out.n, exp->n);
	assert_memory_equal(r->out.b, exp->b, exp->n);
}

/* ---- handshake tests ---- */

static void test_greeting_bytes(void **state)
{
	struct nbd_hs *hs = new_hs();
	nbd_hs_init(hs);
	size_t n;
	const uint8_t *p = nbd_hs_out(hs, &n);
	static const uint8_t want[18] = {0x4e, 0x42, 0x44, 0x4d, 0x41, 0x47, 0x49, 0x43, 0x49,
					 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, 0x00, 0x03};
	assert_int_equal(n, 18);
	assert_memory_equal(p, want, 18);
	assert_int_equal(nbd_hs_want(hs), 4);
	/* Partial send keeps the rest. */
	nbd_hs_out_done(hs, 5);
	p = nbd_hs_out(hs, &n);
	assert_int_equal(n, 13);
	assert_memory_equal(p, want + 5, 13);
	free(hs);
}

static void test_go_with_info_block_size(void **state)
{
	struct bb in = {.n = 0}, exp = {.n = 0};
	uint16_t req[] = {NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE, 77};
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	c_go(&in, NBD_OPT_GO, "vol1", 4, req);
	/* A request pipelined behind GO must be left to the caller. */
	size_t go_end = in.n;
	b32(&in, NBD_MAGIC_REQUEST);

	uint16_t tf = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		      NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO |
		      NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE; /* no DF: no structured */
	s_greeting(&exp);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_INFO, 2 + 4);
	b16(&exp, NBD_INFO_NAME);
	bstr(&exp, "vol1");
	s_rep(&exp, NBD_OPT_GO, NBD_REP_INFO, 2 + 12);
	b16(&exp, NBD_INFO_DESCRIPTION);
	bstr(&exp, "first volume");
	s_rep(&exp, NBD_OPT_GO, NBD_REP_INFO, 14);
	b16(&exp, NBD_INFO_BLOCK_SIZE);
	b32(&exp, 512);
	b32(&exp, 4096);
	b32(&exp, 32U << 20);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_INFO, 12);
	b16(&exp, NBD_INFO_EXPORT);
	b64(&exp, VOL1_SIZE);
	b16(&exp, tf);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_ACK, 0);

	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_GO);
	assert_int_equal(r->consumed, go_end);
	const struct nbd_session *s = nbd_hs_session(hs);
	assert_int_equal(s->size, VOL1_SIZE);
	assert_int_equal(s->tflags, tf);
	assert_int_equal(s->min_block, 512);
	assert_int_equal(s->max_payload, 32U << 20);
	assert_false(s->structured);
	assert_false(s->base_allocation);
	assert_true(s->no_zeroes);
	/* After GO the codec takes nothing more. */
	size_t used = 99;
	assert_int_equal(nbd_hs_feed(hs, in.b, 4, &used), -EBUSY);
	assert_int_equal(used, 0);
	assert_int_equal(nbd_hs_want(hs), 0);
	check_splits(&in, r);
	free(r);
	free(hs);
}

static void test_info_then_go_missing_then_go(void **state)
{
	struct bb in = {.n = 0}, exp = {.n = 0};
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_go(&in, NBD_OPT_INFO, "ro", 0, NULL);
	c_go(&in, NBD_OPT_GO, "nope", 0, NULL);
	c_go(&in, NBD_OPT_GO, "ro", 0, NULL);
	uint16_t tf = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH |
		      NBD_FLAG_SEND_FUA | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;
	s_greeting(&exp);
	s_rep(&exp, NBD_OPT_INFO, NBD_REP_INFO, 12);
	b16(&exp, NBD_INFO_EXPORT);
	b64(&exp, 4096);
	b16(&exp, tf);
	s_rep(&exp, NBD_OPT_INFO, NBD_REP_ACK, 0);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, 0);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_INFO, 12);
	b16(&exp, NBD_INFO_EXPORT);
	b64(&exp, 4096);
	b16(&exp, tf);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_ACK, 0);
	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_GO);
	assert_int_equal(r->lookups, 3);
	/* No BLOCK_SIZE info sent: no alignment may be enforced. */
	assert_int_equal(nbd_hs_session(hs)->min_block, 1);
	assert_false(nbd_hs_session(hs)->no_zeroes);
	check_splits(&in, r);
	free(r);
	free(hs);
}

/* nbd_hs_refuse: a specific error for INFO/GO and the negotiation goes on; EXPORT_NAME
 * closes; misuse is refused. */
static void test_refuse_policy(void **state)
{
	(void)state;
	struct bb in = {.n = 0}, exp = {.n = 0};
	struct nbd_hs *hs = new_hs();
	size_t used;
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_go(&in, NBD_OPT_GO, "vol1@bad", 0, NULL);
	c_go(&in, NBD_OPT_INFO, "vol1@bad", 0, NULL);
	s_greeting(&exp);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_ERR_POLICY, 0);
	s_rep(&exp, NBD_OPT_INFO, NBD_REP_ERR_UNKNOWN, 0);
	nbd_hs_init(hs);
	assert_int_equal(nbd_hs_refuse(hs, NBD_REP_ERR_POLICY), -EBUSY);
	size_t pos = 0;
	int ev = nbd_hs_feed(hs, in.b, in.n, &used);
	pos += used;
	assert_int_equal(ev, NBD_HS_EV_LOOKUP);
	assert_string_equal(nbd_hs_name(hs, NULL), "vol1@bad");
	assert_int_equal(nbd_hs_refuse(hs, NBD_REP_ACK), -EINVAL);
	assert_int_equal(nbd_hs_refuse(hs, NBD_REP_ERR_POLICY), NBD_HS_EV_NONE);
	assert_int_equal(nbd_hs_refuse(hs, NBD_REP_ERR_POLICY), -EBUSY);
	ev = nbd_hs_feed(hs, in.b + pos, in.n - pos, &used);
	pos += used;
	assert_int_equal(ev, NBD_HS_EV_LOOKUP);
	assert_int_equal(pos, in.n);
	assert_int_equal(nbd_hs_refuse(hs, NBD_REP_ERR_UNKNOWN), NBD_HS_EV_NONE);
	size_t n;
	const void *out = nbd_hs_out(hs, &n);
	assert_int_equal(n, exp.n);
	assert_memory_equal(out, exp.b, n);
	nbd_hs_out_done(hs, n);

	/* EXPORT_NAME cannot carry an error: close, nothing more sent. */
	in.n = 0;
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(&in, NBD_OPT_EXPORT_NAME, "vol1@bad", 8);
	nbd_hs_init(hs);
	nbd_hs_out_done(hs, 18);
	assert_int_equal(nbd_hs_feed(hs, in.b, in.n, &used), NBD_HS_EV_LOOKUP);
	assert_int_equal(nbd_hs_refuse(hs, NBD_REP_ERR_POLICY), NBD_HS_EV_CLOSE);
	nbd_hs_out(hs, &n);
	assert_int_equal(n, 0);
	free(hs);
}

static void test_list(void **state)
{
	struct bb in = {.n = 0}, exp = {.n = 0};
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(&in, NBD_OPT_LIST, NULL, 0);
	c_opt(&in, NBD_OPT_LIST, "x", 1); /* LIST carries no data */
	c_opt(&in, NBD_OPT_ABORT, NULL, 0);
	s_greeting(&exp);
	s_rep(&exp, NBD_OPT_LIST, NBD_REP_SERVER, 8);
	b32(&exp, 4);
	bstr(&exp, "vol1");
	s_rep(&exp, NBD_OPT_LIST, NBD_REP_SERVER, 6);
	b32(&exp, 2);
	bstr(&exp, "ro");
	s_rep(&exp, NBD_OPT_LIST, NBD_REP_ACK, 0);
	s_rep(&exp, NBD_OPT_LIST, NBD_REP_ERR_INVALID, 0);
	s_rep(&exp, NBD_OPT_ABORT, NBD_REP_ACK, 0);
	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_CLOSE);
	assert_int_equal(r->lists, 1);
	check_splits(&in, r);
	free(r);
	free(hs);
}

static void test_structured_meta_go(void **state)
{
	struct bb in = {.n = 0}, exp = {.n = 0};
	const char *q_alloc[] = {"base:allocation"};
	const char *q_base[] = {"base:"};
	const char *q_other[] = {"qemu:dirty-bitmap:x"};
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	/* Meta contexts before structured replies: invalid. */
	c_meta(&in, NBD_OPT_SET_META_CONTEXT, "vol1", 1, q_alloc);
	c_opt(&in, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	c_meta(&in, NBD_OPT_LIST_META_CONTEXT, "vol1", 0, NULL);
	c_meta(&in, NBD_OPT_LIST_META_CONTEXT, "vol1", 1, q_base);
	c_meta(&in, NBD_OPT_LIST_META_CONTEXT, "vol1", 1, q_other);
	c_meta(&in, NBD_OPT_SET_META_CONTEXT, "vol1", 1, q_base); /* selects nothing */
	c_meta(&in, NBD_OPT_SET_META_CONTEXT, "vol1", 1, q_alloc);
	c_go(&in, NBD_OPT_GO, "vol1", 0, NULL);

	s_greeting(&exp);
	s_rep(&exp, NBD_OPT_SET_META_CONTEXT, NBD_REP_ERR_INVALID, 0);
	s_rep(&exp, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK, 0);
	for (int i = 0; i < 2; i++) {
		s_rep(&exp, NBD_OPT_LIST_META_CONTEXT, NBD_REP_META_CONTEXT, 4 + 15);
		b32(&exp, 0);
		bstr(&exp, "base:allocation");
		s_rep(&exp, NBD_OPT_LIST_META_CONTEXT, NBD_REP_ACK, 0);
	}
	s_rep(&exp, NBD_OPT_LIST_META_CONTEXT, NBD_REP_ACK, 0);
	s_rep(&exp, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK, 0);
	s_rep(&exp, NBD_OPT_SET_META_CONTEXT, NBD_REP_META_CONTEXT, 4 + 15);
	b32(&exp, NBD_META_ID_BASE_ALLOCATION);
	bstr(&exp, "base:allocation");
	s_rep(&exp, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK, 0);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_INFO, 12);
	b16(&exp, NBD_INFO_EXPORT);
	b64(&exp, VOL1_SIZE);
	b16(&exp, nbd_tflags(VOL1_WANT)); /* DF kept: structured replies on */
	s_rep(&exp, NBD_OPT_GO, NBD_REP_ACK, 0);

	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_GO);
	const struct nbd_session *s = nbd_hs_session(hs);
	assert_true(s->structured);
	assert_true(s->base_allocation);
	assert_true(s->tflags & NBD_FLAG_SEND_DF);
	check_splits(&in, r);

	/* Context selected for another export than the one we go to: not valid. */
	struct bb in2 = {.n = 0};
	b32(&in2, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(&in2, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	c_meta(&in2, NBD_OPT_SET_META_CONTEXT, "ro", 1, q_alloc);
	c_go(&in2, NBD_OPT_GO, "vol1", 0, NULL);
	run_all(hs, &in2, r);
	assert_int_equal(r->last, NBD_HS_EV_GO);
	assert_true(nbd_hs_session(hs)->structured);
	assert_false(nbd_hs_session(hs)->base_allocation);

	/* A failed SET replaces an earlier good one with nothing. */
	in2.n = 0;
	b32(&in2, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(&in2, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	c_meta(&in2, NBD_OPT_SET_META_CONTEXT, "vol1", 1, q_alloc);
	c_opt(&in2, NBD_OPT_SET_META_CONTEXT, "\0\0\0\x04vol1\0\0\0\x01", 12);
	c_go(&in2, NBD_OPT_GO, "vol1", 0, NULL);
	run_all(hs, &in2, r);
	assert_int_equal(r->last, NBD_HS_EV_GO);
	assert_false(nbd_hs_session(hs)->base_allocation);
	free(r);
	free(hs);
}

/* The numbers on the wire, as the protocol document assigns them. */
static void test_wire_numbers(void **state)
{
	assert_int_equal(NBD_OPT_EXPORT_NAME, 1);
	assert_int_equal(NBD_OPT_ABORT, 2);
	assert_int_equal(NBD_OPT_LIST, 3);
	assert_int_equal(NBD_OPT_STARTTLS, 5);
	assert_int_equal(NBD_OPT_INFO, 6);
	assert_int_equal(NBD_OPT_GO, 7);
	assert_int_equal(NBD_OPT_STRUCTURED_REPLY, 8);
	assert_int_equal(NBD_OPT_LIST_META_CONTEXT, 9);
	assert_int_equal(NBD_OPT_SET_META_CONTEXT, 10);
	assert_int_equal(NBD_REP_ERR_UNKNOWN, (1U << 31) + 6);
	assert_int_equal(NBD_REP_ERR_TOO_BIG, (1U << 31) + 9);
	assert_int_equal(NBD_CMD_CACHE, 5);
	assert_int_equal(NBD_CMD_WRITE_ZEROES, 6);
	assert_int_equal(NBD_CMD_BLOCK_STATUS, 7);
	assert_int_equal(NBD_REPLY_TYPE_BLOCK_STATUS, 5);
	assert_int_equal(NBD_REPLY_TYPE_ERROR, (1 << 15) + 1);
	assert_int_equal(NBD_REPLY_TYPE_ERROR_OFFSET, (1 << 15) + 2);
}

static void test_meta_malformed(void **state)
{
	struct bb in = {.n = 0}, exp = {.n = 0};
	struct bb d = {.n = 0};
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(&in, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	/* Query length runs past the option. */
	b32(&d, 4);
	bstr(&d, "vol1");
	b32(&d, 1);
	b32(&d, 100);
	bstr(&d, "base:allocation");
	c_opt(&in, NBD_OPT_SET_META_CONTEXT, d.b, d.n);
	/* Name length past the option. */
	d.n = 0;
	b32(&d, 0xffffffffU);
	b32(&d, 0);
	c_opt(&in, NBD_OPT_LIST_META_CONTEXT, d.b, d.n);
	/* Trailing garbage after the last query. */
	d.n = 0;
	b32(&d, 0);
	b32(&d, 0);
	b8(&d, 1);
	c_opt(&in, NBD_OPT_LIST_META_CONTEXT, d.b, d.n);
	s_greeting(&exp);
	s_rep(&exp, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK, 0);
	s_rep(&exp, NBD_OPT_SET_META_CONTEXT, NBD_REP_ERR_INVALID, 0);
	s_rep(&exp, NBD_OPT_LIST_META_CONTEXT, NBD_REP_ERR_INVALID, 0);
	s_rep(&exp, NBD_OPT_LIST_META_CONTEXT, NBD_REP_ERR_INVALID, 0);
	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_NONE);
	assert_int_equal(r->consumed, in.n);
	free(r);
	free(hs);
}

static void test_export_name(void **state)
{
	struct bb in = {.n = 0}, exp = {.n = 0};
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE); /* no NO_ZEROES: 124 zeroes follow */
	c_opt(&in, NBD_OPT_EXPORT_NAME, "vol1", 4);
	s_greeting(&exp);
	b64(&exp, VOL1_SIZE);
	b16(&exp, nbd_tflags(VOL1_WANT) & ~NBD_FLAG_SEND_DF);
	for (int i = 0; i < 124; i++)
		b8(&exp, 0);
	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_GO);
	assert_int_equal(nbd_hs_session(hs)->min_block, 1);
	check_splits(&in, r);

	/* With NO_ZEROES: just size and flags. */
	in.n = exp.n = 0;
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	c_opt(&in, NBD_OPT_EXPORT_NAME, "ro", 2);
	s_greeting(&exp);
	b64(&exp, 4096);
	b16(&exp, nbd_tflags(NBD_FLAG_READ_ONLY | VOL1_WANT) & ~NBD_FLAG_SEND_DF);
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_GO);

	/* A missing export cannot be answered with an error: close, nothing sent. */
	in.n = exp.n = 0;
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(&in, NBD_OPT_EXPORT_NAME, "nope", 4);
	s_greeting(&exp);
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_CLOSE);
	assert_int_equal(r->lookups, 1);

	/* Non-fixed newstyle client: EXPORT_NAME still works. */
	in.n = 0;
	b32(&in, 0);
	c_opt(&in, NBD_OPT_EXPORT_NAME, "vol1", 4);
	run_all(hs, &in, r);
	assert_int_equal(r->last, NBD_HS_EV_GO);
	/* ... but any other option closes. */
	in.n = 0;
	b32(&in, 0);
	c_opt(&in, NBD_OPT_LIST, NULL, 0);
	run_all(hs, &in, r);
	assert_int_equal(r->last, NBD_HS_EV_CLOSE);
	assert_int_equal(r->out.n, 18);
	free(r);
	free(hs);
}

static void test_unknown_and_starttls(void **state)
{
	struct bb in = {.n = 0}, exp = {.n = 0};
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(&in, 99, "abc", 3);
	c_opt(&in, NBD_OPT_STARTTLS, NULL, 0);
	c_opt(&in, NBD_OPT_STRUCTURED_REPLY, "z", 1);
	c_opt(&in, NBD_OPT_GO, "\0\0\0\x09vol", 7);		  /* name length past the data */
	c_opt(&in, NBD_OPT_GO, "\0\0\0\x04vol1\0\x02\0\x01", 10); /* 2 requests, 1 sent */
	c_opt(&in, NBD_OPT_INFO, "\0\0\0\x02r\0\0\0", 8);	  /* NUL in the name */
	s_greeting(&exp);
	s_rep(&exp, 99, NBD_REP_ERR_UNSUP, 0);
	s_rep(&exp, NBD_OPT_STARTTLS, NBD_REP_ERR_UNSUP, 0);
	s_rep(&exp, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_INVALID, 0);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_ERR_INVALID, 0);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_ERR_INVALID, 0);
	s_rep(&exp, NBD_OPT_INFO, NBD_REP_ERR_INVALID, 0);
	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_NONE);
	assert_int_equal(r->lookups, 0);
	check_splits(&in, r);
	free(r);
	free(hs);
}

static void test_oversized_option(void **state)
{
	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	struct bb *in = malloc(sizeof(*in)), exp = {.n = 0};
	static uint8_t big[NBD_OPT_MAX_LEN + 1];

	/* Just over the limit: data skipped, TOOBIG, and the connection goes on. */
	in->n = 0;
	b32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(in, NBD_OPT_GO, big, sizeof(big));
	c_opt(in, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	s_greeting(&exp);
	s_rep(&exp, NBD_OPT_GO, NBD_REP_ERR_TOO_BIG, 0);
	s_rep(&exp, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK, 0);
	run_all(hs, in, r);
	expect_out(r, &exp);
	assert_int_equal(r->consumed, in->n);

	/* The largest legal name still works. */
	in->n = 0;
	char *name = malloc(NBD_NAME_MAX + 1);
	memset(name, 'n', NBD_NAME_MAX);
	name[NBD_NAME_MAX] = '\0';
	b32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
	uint16_t req[] = {NBD_INFO_NAME};
	c_go(in, NBD_OPT_INFO, name, 1, req);
	run_all(hs, in, r);
	assert_int_equal(r->lookups, 1);
	assert_int_equal(r->out.n, 18 + 20); /* unknown export: ERR_UNKNOWN */

	/* EXPORT_NAME too long to be a name: close; huge option of any kind: close
	 * without reading it. */
	in->n = 0;
	b32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(in, NBD_OPT_EXPORT_NAME, big, NBD_NAME_MAX + 1);
	run_all(hs, in, r);
	assert_int_equal(r->last, NBD_HS_EV_CLOSE);
	in->n = 0;
	b32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
	bstr(in, "IHAVEOPT");
	b32(in, NBD_OPT_INFO);
	b32(in, NBD_OPT_DISCARD_MAX + 1);
	run_all(hs, in, r);
	assert_int_equal(r->last, NBD_HS_EV_CLOSE);
	assert_int_equal(r->out.n, 18);
	free(name);
	free(in);
	free(r);
	free(hs);
}

static void test_abort_and_bad_input(void **state)
{
	struct bb in = {.n = 0}, exp = {.n = 0};
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(&in, NBD_OPT_ABORT, NULL, 0);
	c_opt(&in, NBD_OPT_LIST, NULL, 0); /* after abort: never read */
	s_greeting(&exp);
	s_rep(&exp, NBD_OPT_ABORT, NBD_REP_ACK, 0);
	struct nbd_hs *hs = new_hs();
	struct run *r = malloc(sizeof(*r));
	run_all(hs, &in, r);
	expect_out(r, &exp);
	assert_int_equal(r->last, NBD_HS_EV_CLOSE);
	assert_int_equal(r->consumed, 4 + 16);
	check_splits(&in, r);

	/* Unknown client flag: close at once. */
	in.n = 0;
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE | 4);
	run_all(hs, &in, r);
	assert_int_equal(r->last, NBD_HS_EV_CLOSE);
	/* Bad option magic: close. */
	in.n = 0;
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	bstr(&in, "IHAVEOPX");
	b32(&in, NBD_OPT_LIST);
	b32(&in, 0);
	run_all(hs, &in, r);
	assert_int_equal(r->last, NBD_HS_EV_CLOSE);
	assert_int_equal(r->out.n, 18);
	free(r);
	free(hs);
}

static void test_api_misuse_and_backpressure(void **state)
{
	struct nbd_hs *hs = new_hs();
	struct bb in = {.n = 0};
	size_t used;
	struct nbd_export bad = vol1;

	nbd_hs_init(hs);
	assert_int_equal(nbd_hs_answer(hs, &vol1), -EBUSY);
	assert_int_equal(nbd_hs_list_add(hs, "x"), -EBUSY);
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_go(&in, NBD_OPT_GO, "vol1", 0, NULL);
	assert_int_equal(nbd_hs_feed(hs, in.b, in.n, &used), NBD_HS_EV_LOOKUP);
	assert_int_equal(used, in.n);
	assert_string_equal(nbd_hs_name(hs, NULL), "vol1");
	assert_int_equal(nbd_hs_feed(hs, in.b, in.n, &used), -EBUSY);
	bad.min_block = 3;
	assert_int_equal(nbd_hs_answer(hs, &bad), -EINVAL);
	bad.min_block = 4096, bad.pref_block = 512;
	assert_int_equal(nbd_hs_answer(hs, &bad), -EINVAL);
	bad.min_block = 1, bad.pref_block = 256; /* preferred is at least 512 */
	assert_int_equal(nbd_hs_answer(hs, &bad), -EINVAL);
	bad.pref_block = 4096, bad.max_block = 1000; /* under pref and the size */
	assert_int_equal(nbd_hs_answer(hs, &bad), -EINVAL);
	assert_int_equal(nbd_hs_answer(hs, &vol1), NBD_HS_EV_GO);

	/* A client that never reads: LIST output fills up, list_add says -EAGAIN, and
	 * feed refuses a new option until output drains. */
	nbd_hs_init(hs);
	in.n = 0;
	b32(&in, NBD_FLAG_C_FIXED_NEWSTYLE);
	c_opt(&in, NBD_OPT_LIST, NULL, 0);
	c_opt(&in, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	assert_int_equal(nbd_hs_feed(hs, in.b, in.n, &used), NBD_HS_EV_LIST);
	size_t off = used;
	char name[4001];
	memset(name, 'a', 4000);
	name[4000] = '\0';
	int r, added = 0;
	while ((r = nbd_hs_list_add(hs, name)) == 0)
		added++;
	assert_int_equal(r, -EAGAIN);
	assert_true(added >= 4);
	assert_int_equal(nbd_hs_list_end(hs, 0), NBD_HS_EV_NONE);
	assert_int_equal(nbd_hs_feed(hs, in.b + off, in.n - off, &used), -EAGAIN);
	assert_int_equal(used, 0);
	size_t n;
	const uint8_t *p = nbd_hs_out(hs, &n);
	assert_int_equal(n, 18 + added * (20 + 4 + 4000) + 20);
	/* First NBD_REP_SERVER: name length 4000 big-endian, then the name. */
	assert_int_equal(p[18 + 20 + 2], 0x0f);
	assert_int_equal(p[18 + 20 + 3], 0xa0);
	assert_int_equal(p[18 + 20 + 4], 'a');
	nbd_hs_out_done(hs, n);
	assert_int_equal(nbd_hs_feed(hs, in.b + off, in.n - off, &used), NBD_HS_EV_NONE);
	assert_int_equal(used, in.n - off);
	p = nbd_hs_out(hs, &n);
	assert_int_equal(n, 20);
	assert_int_equal(p[15], NBD_REP_ACK);
	free(hs);
}

static void test_tflags(void **state)
{
	assert_int_equal(nbd_tflags(0), NBD_FLAG_HAS_FLAGS);
	assert_int_equal(nbd_tflags(NBD_FLAG_SEND_FAST_ZERO), NBD_FLAG_HAS_FLAGS);
	assert_int_equal(nbd_tflags(NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_TRIM |
				    NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FLUSH),
			 NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH);
	assert_int_equal(nbd_tflags(0x8000 | NBD_FLAG_SEND_RESIZE | NBD_FLAG_CAN_MULTI_CONN),
			 NBD_FLAG_HAS_FLAGS | NBD_FLAG_CAN_MULTI_CONN);
	/* Bit positions as the spec numbers them. */
	assert_int_equal(nbd_tflags(VOL1_WANT), 0x0001 | 0x0004 | 0x0008 | 0x0020 | 0x0040 |
						    0x0080 | 0x0100 | 0x0400 | 0x0800);
}

/* ---- requests ---- */

static void req(uint8_t h[28], uint16_t flags, uint16_t type, uint64_t cookie, uint64_t off,
		uint32_t len)
{
	struct bb b = {.n = 0};
	b32(&b, NBD_MAGIC_REQUEST);
	b16(&b, flags);
	b16(&b, type);
	b64(&b, cookie);
	b64(&b, off);
	b32(&b, len);
	memcpy(h, b.b, 28);
}

static const struct nbd_session rw = {
    .size = 1 << 20,
    .tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
	      NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO | NBD_FLAG_SEND_DF |
	      NBD_FLAG_SEND_CACHE,
    .min_block = 512,
    .max_payload = 32U << 20,
    .structured = true,
    .base_allocation = true};

static int parse(const struct nbd_session *s, uint16_t flags, uint16_t type, uint64_t off,
		 uint32_t len, struct nbd_req *r)
{
	uint8_t h[28];
	req(h, flags, type, 0x1122334455667788ULL, off, len);
	return nbd_req_parse(s, h, r);
}

static void test_req_fields_and_valid(void **state)
{
	struct nbd_req r;
	uint8_t h[28];
	req(h, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 0xdeadbeefcafef00dULL, 0x200, 0x400);
	assert_int_equal(nbd_req_parse(&rw, h, &r), 0);
	assert_int_equal(r.flags, NBD_CMD_FLAG_FUA);
	assert_int_equal(r.type, NBD_CMD_WRITE);
	assert_true(r.cookie == 0xdeadbeefcafef00dULL);
	assert_int_equal(r.offset, 0x200);
	assert_int_equal(r.length, 0x400);

	assert_int_equal(parse(&rw, NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 4096, &r), 0);
	assert_int_equal(parse(&rw, 0, NBD_CMD_READ, (1 << 20) - 512, 512, &r), 0);
	assert_int_equal(parse(&rw, 0, NBD_CMD_DISC, 0, 0, &r), 0);
	assert_int_equal(parse(&rw, 0, NBD_CMD_FLUSH, 0, 0, &r), 0);
	assert_int_equal(parse(&rw, NBD_CMD_FLAG_FUA, NBD_CMD_TRIM, 512, 1024, &r), 0);
	assert_int_equal(parse(&rw, 0, NBD_CMD_CACHE, 0, 1 << 20, &r), 0);
	assert_int_equal(parse(&rw, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO,
			       NBD_CMD_WRITE_ZEROES, 0, 1 << 20, &r),
			 0);
	assert_int_equal(parse(&rw, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 0, 1 << 20, &r), 0);
}

static void test_req_bad_magic_and_unknown(void **state)
{
	struct nbd_req r;
	uint8_t h[28];
	req(h, 0, NBD_CMD_READ, 1, 0, 512);
	h[3] ^= 1;
	assert_int_equal(nbd_req_parse(&rw, h, &r), -EPROTO);
	assert_int_equal(parse(&rw, 0, 9, 0, 0, &r), NBD_ENOTSUP);
	assert_int_equal(parse(&rw, 0, 0xffff, 0, 0, &r), NBD_ENOTSUP);
	assert_int_equal(parse(&rw, 1U << 7, NBD_CMD_READ, 0, 512, &r), NBD_EINVAL);
	/* Flags on the wrong command. */
	assert_int_equal(parse(&rw, NBD_CMD_FLAG_DF, NBD_CMD_WRITE, 0, 512, &r), NBD_EINVAL);
	assert_int_equal(r.skip, 512); /* the payload must still be read and dropped */
	assert_int_equal(parse(&rw, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_TRIM, 0, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_READ, 0, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE, 0, 512, &r), NBD_EINVAL);
}

static void test_req_ranges(void **state)
{
	struct nbd_req r;
	uint64_t sz = rw.size;
	/* Out of range: reads EINVAL, writes ENOSPC. */
	assert_int_equal(parse(&rw, 0, NBD_CMD_READ, sz - 512, 1024, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, 0, NBD_CMD_READ, sz, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, 0, NBD_CMD_WRITE, sz - 512, 1024, &r), NBD_ENOSPC);
	assert_int_equal(r.skip, 1024);
	assert_int_equal(parse(&rw, 0, NBD_CMD_TRIM, sz, 512, &r), NBD_ENOSPC);
	assert_int_equal(parse(&rw, 0, NBD_CMD_WRITE_ZEROES, sz + 512, 512, &r), NBD_ENOSPC);
	assert_int_equal(parse(&rw, 0, NBD_CMD_CACHE, sz, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, 0, NBD_CMD_BLOCK_STATUS, sz, 512, &r), NBD_EINVAL);
	/* offset + length wraps around 2^64. */
	assert_int_equal(parse(&rw, 0, NBD_CMD_READ, UINT64_MAX - 511, 1024, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, 0, NBD_CMD_WRITE, UINT64_MAX - 511, 1024, &r), NBD_ENOSPC);
	/* Zero lengths. */
	assert_int_equal(parse(&rw, 0, NBD_CMD_READ, 0, 0, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, 0, NBD_CMD_WRITE, 0, 0, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, 0, NBD_CMD_TRIM, 0, 0, &r), NBD_EINVAL);
	/* Payload limits: a long read is EOVERFLOW, a long write closes. */
	struct nbd_session big = rw;
	big.size = 1ULL << 40;
	/* Over the maximum block size: EINVAL, or EOVERFLOW for a DF read; a write
	 * payload over 2^25 is not read at all: close. */
	assert_int_equal(parse(&big, 0, NBD_CMD_READ, 0, (32U << 20) + 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&big, NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, (32U << 20) + 512, &r),
			 NBD_EOVERFLOW);
	assert_int_equal(parse(&big, 0, NBD_CMD_READ, 0, 32U << 20, &r), 0);
	assert_int_equal(parse(&big, 0, NBD_CMD_WRITE, 0, (32U << 20) + 512, &r), -EPROTO);
	assert_int_equal(parse(&big, 0, NBD_CMD_WRITE, 0, 32U << 20, &r), 0);
	/* A smaller advertised maximum: errors, but the payload is read and dropped. */
	big.max_payload = 1 << 20;
	assert_int_equal(parse(&big, 0, NBD_CMD_WRITE, 0, 2 << 20, &r), NBD_EINVAL);
	assert_int_equal(r.skip, 2 << 20);
	assert_int_equal(parse(&big, 0, NBD_CMD_READ, 0, 2 << 20, &r), NBD_EINVAL);
	assert_int_equal(parse(&big, 0, NBD_CMD_WRITE_ZEROES, 0, 2 << 20, &r), 0);
	/* TRIM and WRITE_ZEROES carry no payload: no such limit. */
	assert_int_equal(parse(&big, 0, NBD_CMD_TRIM, 0, 0xfffffe00U, &r), 0);
	/* Alignment to the advertised minimum block. */
	assert_int_equal(parse(&rw, 0, NBD_CMD_READ, 1, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, 0, NBD_CMD_WRITE, 0, 513, &r), NBD_EINVAL);
	assert_int_equal(parse(&rw, 0, NBD_CMD_WRITE_ZEROES, 256, 512, &r), NBD_EINVAL);
	struct nbd_session any = rw;
	any.min_block = 1;
	assert_int_equal(parse(&any, 0, NBD_CMD_WRITE, 1, 3, &r), 0);
	/* FLUSH takes no range. */
	assert_int_equal(parse(&rw, 0, NBD_CMD_FLUSH, 0, 512, &r), NBD_EINVAL);
}

static void test_req_not_negotiated_and_read_only(void **state)
{
	struct nbd_req r;
	struct nbd_session s = rw;
	s.tflags = NBD_FLAG_HAS_FLAGS;
	s.structured = s.base_allocation = false;
	assert_int_equal(parse(&s, 0, NBD_CMD_FLUSH, 0, 0, &r), NBD_EINVAL);
	assert_int_equal(parse(&s, 0, NBD_CMD_TRIM, 0, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&s, 0, NBD_CMD_WRITE_ZEROES, 0, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&s, 0, NBD_CMD_CACHE, 0, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&s, 0, NBD_CMD_BLOCK_STATUS, 0, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&s, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 0, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&s, NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 512, &r), NBD_EINVAL);
	assert_int_equal(parse(&s, 0, NBD_CMD_WRITE, 0, 512, &r), 0);
	s = rw;
	s.tflags &= (uint16_t)~NBD_FLAG_SEND_FAST_ZERO;
	assert_int_equal(parse(&s, NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE_ZEROES, 0, 512, &r),
			 NBD_EINVAL);
	s = rw;
	s.base_allocation = false; /* structured, but no context selected */
	assert_int_equal(parse(&s, 0, NBD_CMD_BLOCK_STATUS, 0, 512, &r), NBD_EINVAL);

	s = rw;
	s.tflags = nbd_tflags(NBD_FLAG_READ_ONLY | rw.tflags);
	assert_int_equal(parse(&s, 0, NBD_CMD_WRITE, 0, 512, &r), NBD_EPERM);
	assert_int_equal(r.skip, 512);
	assert_int_equal(parse(&s, 0, NBD_CMD_TRIM, 0, 512, &r), NBD_EPERM);
	assert_int_equal(parse(&s, 0, NBD_CMD_WRITE_ZEROES, 0, 512, &r), NBD_EPERM);
	assert_int_equal(parse(&s, 0, NBD_CMD_READ, 0, 512, &r), 0);
	assert_int_equal(parse(&s, 0, NBD_CMD_FLUSH, 0, 0, &r), 0);
}

/* ---- replies, against the layouts in the protocol document ---- */

static void test_reply_simple(void **state)
{
	uint8_t out[16];
	static const uint8_t want[16] = {0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22,
					 1,    2,    3,	   4,	 5, 6, 7, 8};
	assert_int_equal(nbd_reply_simple(out, NBD_EINVAL, 0x0102030405060708ULL), 16);
	assert_memory_equal(out, want, 16);
}

static void test_sreply_layouts(void **state)
{
	uint8_t out[256];
	struct bb e = {.n = 0};

	assert_int_equal(nbd_sreply_none(out, 7), 20);
	b32(&e, 0x668e33ef);
	b16(&e, 1);
	b16(&e, 0);
	b64(&e, 7);
	b32(&e, 0);
	assert_memory_equal(out, e.b, 20);

	e.n = 0;
	assert_int_equal(nbd_sreply_data(out, 0, 9, 0x1000, 4096), 28);
	b32(&e, 0x668e33ef);
	b16(&e, 0);
	b16(&e, 1);
	b64(&e, 9);
	b32(&e, 8 + 4096);
	b64(&e, 0x1000);
	assert_memory_equal(out, e.b, 28);

	e.n = 0;
	assert_int_equal(nbd_sreply_hole(out, NBD_REPLY_FLAG_DONE, 9, 0x2000, 65536), 32);
	b32(&e, 0x668e33ef);
	b16(&e, 1);
	b16(&e, 2);
	b64(&e, 9);
	b32(&e, 12);
	b64(&e, 0x2000);
	b32(&e, 65536);
	assert_memory_equal(out, e.b, 32);

	e.n = 0;
	struct nbd_extent ext[2] = {{65536, 0}, {1 << 20, NBD_STATE_HOLE | NBD_STATE_ZERO}};
	assert_int_equal(
	    nbd_sreply_block_status(out, sizeof(out), NBD_REPLY_FLAG_DONE, 5, 1, ext, 2), 40);
	b32(&e, 0x668e33ef);
	b16(&e, 1);
	b16(&e, 5);
	b64(&e, 5);
	b32(&e, 4 + 16);
	b32(&e, 1);
	b32(&e, 65536);
	b32(&e, 0);
	b32(&e, 1 << 20);
	b32(&e, 3);
	assert_memory_equal(out, e.b, 40);
	assert_int_equal(nbd_sreply_block_status(out, 39, 0, 5, 1, ext, 2), -ENOBUFS);
	assert_int_equal(nbd_sreply_block_status(out, sizeof(out), 0, 5, 1, ext, 0), -EINVAL);

	e.n = 0;
	assert_int_equal(
	    nbd_sreply_error(out, sizeof(out), NBD_REPLY_FLAG_DONE, 3, NBD_EIO, "bad disk"),
	    20 + 6 + 8);
	b32(&e, 0x668e33ef);
	b16(&e, 1);
	b16(&e, 32769);
	b64(&e, 3);
	b32(&e, 6 + 8);
	b32(&e, 5);
	b16(&e, 8);
	bstr(&e, "bad disk");
	assert_memory_equal(out, e.b, e.n);
	assert_int_equal(nbd_sreply_error(out, 33, 0, 3, NBD_EIO, "bad disk"), -ENOBUFS);
	assert_int_equal(nbd_sreply_error(out, sizeof(out), 0, 3, 0, NULL), -EINVAL);

	e.n = 0;
	assert_int_equal(nbd_sreply_error_offset(out, sizeof(out), 0, 3, NBD_EIO, NULL, 0x4400),
			 20 + 6 + 8);
	b32(&e, 0x668e33ef);
	b16(&e, 0);
	b16(&e, 32770);
	b64(&e, 3);
	b32(&e, 6 + 8);
	b32(&e, 5);
	b16(&e, 0);
	b64(&e, 0x4400);
	assert_memory_equal(out, e.b, e.n);
}

static void test_errno_table(void **state)
{
	assert_int_equal(nbd_errno(0), 0);
	assert_int_equal(nbd_errno(-EPERM), 1);
	assert_int_equal(nbd_errno(-EROFS), 1);
	assert_int_equal(nbd_errno(-EIO), 5);
	assert_int_equal(nbd_errno(CAIRN_ECORRUPT), 5);
	assert_int_equal(nbd_errno(-ENOMEM), 12);
	assert_int_equal(nbd_errno(CAIRN_EINVAL), 22);
	assert_int_equal(nbd_errno(CAIRN_ENOSPACE), 28);
	assert_int_equal(nbd_errno(-EOVERFLOW), 75);
	assert_int_equal(nbd_errno(-ENOTSUP), 95);
	assert_int_equal(nbd_errno(CAIRN_ESHUTDOWN), 108);
	assert_int_equal(nbd_errno(-ETIMEDOUT), 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_greeting_bytes),
	    cmocka_unit_test(test_go_with_info_block_size),
	    cmocka_unit_test(test_info_then_go_missing_then_go),
	    cmocka_unit_test(test_refuse_policy),
	    cmocka_unit_test(test_list),
	    cmocka_unit_test(test_structured_meta_go),
	    cmocka_unit_test(test_meta_malformed),
	    cmocka_unit_test(test_wire_numbers),
	    cmocka_unit_test(test_export_name),
	    cmocka_unit_test(test_unknown_and_starttls),
	    cmocka_unit_test(test_oversized_option),
	    cmocka_unit_test(test_abort_and_bad_input),
	    cmocka_unit_test(test_api_misuse_and_backpressure),
	    cmocka_unit_test(test_tflags),
	    cmocka_unit_test(test_req_fields_and_valid),
	    cmocka_unit_test(test_req_bad_magic_and_unknown),
	    cmocka_unit_test(test_req_ranges),
	    cmocka_unit_test(test_req_not_negotiated_and_read_only),
	    cmocka_unit_test(test_reply_simple),
	    cmocka_unit_test(test_sreply_layouts),
	    cmocka_unit_test(test_errno_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
