/* tests/unit/test_nbd_server.c - blockstore/nbd/nbd_server.c over a real pool
 * and block store in a scratch directory and a real TCP socket on loopback,
 * driven by a small hand-written NBD client (its byte layouts are written
 * here from the protocol document, not with nbd_proto's encoders).
 *
 * Covers the handshake (unknown export, bad token, LIST, ABORT, INFO, bad
 * option magic, the handshake timeout, max_conns), malformed requests (bad
 * magic, unknown command, write past the end with its payload skipped,
 * oversized write), clients that vanish mid-payload, data round trips with
 * simple and structured replies, block status, trim and write-zeroes,
 * flush/FUA, revocation, QoS (an upper bound only: no timing asserts that a
 * busy machine could fail), 64 concurrent connections, and stop with
 * connections open (issue 6).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blockstore/bs.h"
#include "blockstore/bs_internal.h"
#include "blockstore/nbd/nbd_server.h"
#include "chunkstore/chunkstore.h"
#include "core/io.h"
#include "core/metrics.h"
#include "meta/meta.h"
#include "cs_test.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define TOKEN "0123456789abcdef0123456789abcdef"
#define BADTOKEN "0123456789abcdef0123456789abcdeX"

/* Wire numbers, from the protocol document. */
#define W_OPT_EXPORT_NAME 1
#define W_OPT_ABORT 2
#define W_OPT_LIST 3
#define W_OPT_INFO 6
#define W_OPT_GO 7
#define W_OPT_STRUCTURED 8
#define W_OPT_SET_META 10
#define W_REP_ACK 1u
#define W_REP_SERVER 2u
#define W_REP_INFO 3u
#define W_REP_META 4u
#define W_REP_ERR_POLICY 0x80000002u
#define W_REP_ERR_UNKNOWN 0x80000006u
#define W_CMD_READ 0
#define W_CMD_WRITE 1
#define W_CMD_DISC 2
#define W_CMD_FLUSH 3
#define W_CMD_TRIM 4
#define W_CMD_WZ 6
#define W_CMD_BS 7
#define W_FLAG_FUA 1
#define W_FLAG_REQ_ONE 8
#define W_FLAG_FAST_ZERO 16
#define W_EINVAL 22u
#define W_ENOSPC 28u
#define W_ENOTSUP 95u
#define W_ESHUTDOWN 108u
#define W_SIMPLE_MAGIC 0x67446698u
#define W_STRUCT_MAGIC 0x668e33efu
#define W_TYPE_NONE 0
#define W_TYPE_DATA 1
#define W_TYPE_BS 5
#define W_TYPE_ERROR 32769

static char g_dir[256];
static struct cs_pool *g_pool;
static struct bs_store *g_bs;
static struct nbd_server *g_srv;
static uint16_t g_port;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void srv_start(unsigned max_conns, unsigned hs_timeout)
{
	struct nbd_server_config cfg = {.listen = "127.0.0.1:0",
					.workers = 4,
					.max_conns = max_conns,
					.handshake_timeout = hs_timeout};
	char err[256];
	assert_int_equal(nbd_server_start(&cfg, g_bs, &g_srv, err, sizeof(err)), 0);
	g_port = nbd_server_port(g_srv);
	assert_true(g_port != 0);
}

static int setup(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.data_dir = g_dir, .seal_off = true, .gc_interval = -1};
	struct bs_opts bo = {.data_dir = g_dir};
	if (cs_test_tmpdir(g_dir, sizeof(g_dir), "nbdsrv") < 0)
		return -1;
	if (cs_pool_open(&o, &g_pool) < 0 || bs_open(g_pool, &bo, &g_bs) < 0)
		return -1;
	srv_start(0, 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	nbd_server_stop(g_srv);
	g_srv = NULL;
	bs_close(g_bs);
	cs_pool_close(g_pool);
	rm_rf(g_dir);
	return 0;
}

/* ---- volumes and attachments, as bs_admin.c makes them ---- */

struct mkvol {
	const char *name;
	uint64_t size;
	struct vol out;
};

static int mkvol_cb(struct cs_txn *t, void *arg)
{
	struct mkvol *m = arg;
	struct vol_opts o = {.replicas = 1};
	return vol_create(cs_txn_meta(t), bs_part(g_bs, m->name), m->name, m->size, &o, &m->out);
}

static int attach_cb(struct cs_txn *t, void *arg)
{
	const struct vol *v = arg;
	uint8_t buf[sizeof(struct vol_attach_rec) + 5];
	struct vol_attach_rec r;
	memset(&r, 0, sizeof(r));
	r.version = VOL_ATTACH_VERSION;
	r.host_len = 5;
	r.lease_s = 300;
	bs_token_hash(TOKEN, strlen(TOKEN), r.token_sha256);
	r.attached_ns = now_ns();
	r.expires_ns = now_ns() + 600000000000ull;
	memcpy(buf, &r, sizeof(r));
	memcpy(buf + sizeof(r), "host1", 5);
	return meta_put(cs_txn_meta(t), META_T_ATTACH, v->id, VOL_ID_LEN, buf, sizeof(buf), 0);
}

/* A volume attached with TOKEN. */
static struct vol mkvol(const char *name, uint64_t size)
{
	struct mkvol m = {.name = name, .size = size};
	assert_int_equal(bs_commit(g_bs, mkvol_cb, &m), 0);
	assert_int_equal(bs_commit(g_bs, attach_cb, &m.out), 0);
	return m.out;
}

/* Revokes the attachment's handles, as detach --force does. */
static void revoke_handles(const struct vol *v)
{
	struct bs_vol *vol;
	assert_int_equal(bs_vol_get(g_bs, v->id, &vol), 0);
	atomic_fetch_add(&vol->epoch, 1);
	bs_vol_put(g_bs, vol);
}

struct qos_arg {
	struct vol v;
	uint64_t iops, bps;
};

static int qos_cb(struct cs_txn *t, void *arg)
{
	struct qos_arg *a = arg;
	return vol_set_qos(cs_txn_meta(t), &a->v, a->iops, a->bps);
}

/* Sets QoS live, as bs_volume_set_qos does. */
static void set_qos(const struct vol *v, uint64_t iops, uint64_t bps)
{
	struct bs_vol *vol;
	struct qos_arg a = {.iops = iops, .bps = bps};
	assert_int_equal(bs_vol_get(g_bs, v->id, &vol), 0);
	bs_vol_quiesce(vol);
	a.v = vol->v;
	int rc = bs_commit(g_bs, qos_cb, &a);
	bs_vol_resume(vol, rc == 0 ? &a.v : NULL);
	bs_vol_put(g_bs, vol);
	assert_int_equal(rc, 0);
}

/* ---- a small client ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}
static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}
static void put64(uint8_t *p, uint64_t v)
{
	put32(p, v >> 32);
	put32(p + 4, v & 0xffffffffu);
}
static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}
static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static int cli_connect(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(g_port)};
	struct timeval tv = {.tv_sec = 20};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void snd(int fd, const void *b, size_t n)
{
	const uint8_t *p = b;
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

/* Reads n bytes: 0, or -1 on EOF / error. */
static int rcv(int fd, void *b, size_t n)
{
	uint8_t *p = b;
	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue; /* io_uring task work can interrupt a timed recv */
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void rcv_ok(int fd, void *b, size_t n)
{
	assert_int_equal(rcv(fd, b, n), 0);
}

/* True once the server closed: EOF (after any bytes still queued). */
static bool closed_by_server(int fd)
{
	uint8_t b[4096];
	for (;;) {
		ssize_t r = recv(fd, b, sizeof(b), 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return true;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return false; /* timeout: still open */
	}
}

/* Greeting, then client flags (fixed newstyle, no zeroes). */
static int cli_hello(void)
{
	uint8_t g[18], f[4];
	int fd = cli_connect();
	rcv_ok(fd, g, sizeof(g));
	assert_memory_equal(g, "NBDMAGICIHAVEOPT", 16);
	assert_int_equal(get16(g + 16), 3);
	put32(f, 3);
	snd(fd, f, 4);
	return fd;
}

static void cli_opt(int fd, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t h[16];
	memcpy(h, "IHAVEOPT", 8);
	put32(h + 8, opt);
	put32(h + 12, len);
	snd(fd, h, 16);
	if (len)
		snd(fd, data, len);
}

/* One option reply: type, data (up to cap) and its length. */
static uint32_t cli_rep(int fd, uint32_t opt, uint8_t *data, size_t cap, uint32_t *len)
{
	uint8_t h[20];
	rcv_ok(fd, h, 20);
	assert_true(get64(h) == 0x0003e889045565a9ULL);
	assert_int_equal(get32(h + 8), opt);
	uint32_t l = get32(h + 16);
	assert_true(l <= cap);
	if (l)
		rcv_ok(fd, data, l);
	if (len)
		*len = l;
	return get32(h + 12);
}

static void cli_go_opt(int fd, uint32_t opt, const char *name)
{
	uint8_t d[512];
	uint32_t n = (uint32_t)strlen(name);
	put32(d, n);
	memcpy(d + 4, name, n);
	put16(d + 4 + n, 0);
	cli_opt(fd, opt, d, 6 + n);
}

struct sess {
	int fd;
	uint64_t size;
	uint16_t tflags;
	bool structured;
};

/* Negotiates export name; 0, or the NBD_REP_ERR_* the GO got. */
static uint32_t cli_open(struct sess *s, const char *name, bool structured)
{
	uint8_t d[4096];
	uint32_t t, len;
	memset(s, 0, sizeof(*s));
	s->fd = cli_hello();
	s->structured = structured;
	if (structured) {
		cli_opt(s->fd, W_OPT_STRUCTURED, NULL, 0);
		assert_int_equal(cli_rep(s->fd, W_OPT_STRUCTURED, d, sizeof(d), NULL), W_REP_ACK);
		uint32_t n = (uint32_t)strlen(name), q = 15;
		put32(d, n);
		memcpy(d + 4, name, n);
		put32(d + 4 + n, 1);
		put32(d + 8 + n, q);
		memcpy(d + 12 + n, "base:allocation", q);
		cli_opt(s->fd, W_OPT_SET_META, d, 12 + n + q);
		/* A bad name may still select the context; the GO decides. */
		for (;;) {
			t = cli_rep(s->fd, W_OPT_SET_META, d, sizeof(d), &len);
			if (t != W_REP_META)
				break;
			assert_int_equal(get32(d), 1);
		}
		assert_int_equal(t, W_REP_ACK);
	}
	cli_go_opt(s->fd, W_OPT_GO, name);
	for (;;) {
		t = cli_rep(s->fd, W_OPT_GO, d, sizeof(d), &len);
		if (t == W_REP_INFO) {
			if (get16(d) == 0) {
				s->size = get64(d + 2);
				s->tflags = get16(d + 10);
			}
			continue;
		}
		break;
	}
	return t == W_REP_ACK ? 0 : t;
}

static void cli_open_ok(struct sess *s, const char *vol, bool structured)
{
	char name[256];
	snprintf(name, sizeof(name), "%s@%s", vol, TOKEN);
	assert_int_equal(cli_open(s, name, structured), 0);
}

static void cli_req(struct sess *s, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t off,
		    uint32_t len)
{
	uint8_t h[28];
	put32(h, 0x25609513);
	put16(h + 4, flags);
	put16(h + 6, type);
	put64(h + 8, cookie);
	put64(h + 16, off);
	put32(h + 24, len);
	snd(s->fd, h, 28);
}

/* A whole reply to one request: error (0 or NBD_E*), read data into buf
 * (READ: length bytes), block status extents into ext (pairs). */
struct reply {
	uint64_t cookie;
	uint32_t err;
	uint32_t nchunks;
	uint32_t next; /* block status extents */
	uint32_t ext[2 * 1100];
	uint32_t bs_ctx;
};

/* Reads one complete reply (all chunks of a structured one). For READ
 * chunks, data goes at buf + (offset - base). */
static void cli_reply(struct sess *s, struct reply *r, uint8_t *buf, uint64_t base, uint32_t rlen)
{
	uint8_t h[20];
	memset(r, 0, offsetof(struct reply, ext));
	rcv_ok(s->fd, h, 4);
	uint32_t magic = get32(h);
	if (magic == W_SIMPLE_MAGIC) {
		rcv_ok(s->fd, h + 4, 12);
		r->err = get32(h + 4);
		r->cookie = get64(h + 8);
		r->nchunks = 1;
		if (!r->err && buf && rlen)
			rcv_ok(s->fd, buf, rlen);
		return;
	}
	assert_int_equal(magic, W_STRUCT_MAGIC);
	for (;;) {
		if (r->nchunks)
			rcv_ok(s->fd, h, 4);
		assert_int_equal(get32(h), W_STRUCT_MAGIC);
		rcv_ok(s->fd, h + 4, 16);
		uint16_t flags = get16(h + 4), type = get16(h + 6);
		uint32_t len = get32(h + 16);
		r->cookie = get64(h + 8);
		r->nchunks++;
		if (type == W_TYPE_DATA) {
			uint8_t o[8];
			assert_true(len >= 8);
			rcv_ok(s->fd, o, 8);
			uint64_t off = get64(o);
			assert_true(off >= base && off - base + (len - 8) <= rlen);
			rcv_ok(s->fd, buf + (off - base), len - 8);
		} else if (type == W_TYPE_BS) {
			uint8_t *p = malloc(len);
			assert_non_null(p);
			rcv_ok(s->fd, p, len);
			r->bs_ctx = get32(p);
			r->next = (len - 4) / 8;
			assert_true(r->next <= 1100);
			for (uint32_t i = 0; i < r->next; i++) {
				r->ext[2 * i] = get32(p + 4 + 8 * i);
				r->ext[2 * i + 1] = get32(p + 8 + 8 * i);
			}
			free(p);
		} else if (type == W_TYPE_ERROR) {
			uint8_t *p = malloc(len);
			assert_non_null(p);
			rcv_ok(s->fd, p, len);
			r->err = get32(p);
			assert_true(6u + get16(p + 4) == len);
			free(p);
		} else {
			assert_int_equal(type, W_TYPE_NONE);
			assert_int_equal(len, 0);
		}
		if (flags & 1)
			break;
	}
}

/* Sends a request and waits for its reply; returns the error. */
static uint32_t cli_do(struct sess *s, uint16_t flags, uint16_t type, uint64_t off, uint32_t len,
		       const void *wdata, void *rdata)
{
	static uint64_t cookie = 1000;
	struct reply *r = malloc(sizeof(*r));
	uint64_t ck = ++cookie;
	assert_non_null(r);
	cli_req(s, flags, type, ck, off, len);
	if (type == W_CMD_WRITE && wdata)
		snd(s->fd, wdata, len);
	cli_reply(s, r, rdata, off, len);
	assert_true(r->cookie == ck);
	uint32_t e = r->err;
	free(r);
	return e;
}

static void cli_disc(struct sess *s)
{
	cli_req(s, 0, W_CMD_DISC, 1, 0, 0);
	assert_true(closed_by_server(s->fd));
	close(s->fd);
	s->fd = -1;
}

/* ---- handshake ---- */

static void test_handshake_unknown_list_abort(void **state)
{
	(void)state;
	uint8_t d[4096];
	uint32_t len;
	int fd = cli_hello();
	/* GO on a volume that does not exist: ERR_UNKNOWN, negotiation goes on. */
	cli_go_opt(fd, W_OPT_GO, "nosuch@" TOKEN);
	assert_int_equal(cli_rep(fd, W_OPT_GO, d, sizeof(d), NULL), W_REP_ERR_UNKNOWN);
	cli_go_opt(fd, W_OPT_INFO, "nosuch@x");
	assert_int_equal(cli_rep(fd, W_OPT_INFO, d, sizeof(d), NULL), W_REP_ERR_UNKNOWN);
	/* LIST names nothing, even with volumes present. */
	mkvol("listed", 64 * MiB);
	cli_opt(fd, W_OPT_LIST, NULL, 0);
	assert_int_equal(cli_rep(fd, W_OPT_LIST, d, sizeof(d), &len), W_REP_ACK);
	assert_int_equal(len, 0);
	/* A bad token on an existing volume: POLICY; no token at all: POLICY. */
	cli_go_opt(fd, W_OPT_GO, "listed@" BADTOKEN);
	assert_int_equal(cli_rep(fd, W_OPT_GO, d, sizeof(d), NULL), W_REP_ERR_POLICY);
	cli_go_opt(fd, W_OPT_GO, "listed");
	assert_int_equal(cli_rep(fd, W_OPT_GO, d, sizeof(d), NULL), W_REP_ERR_POLICY);
	/* INFO with the right token: the export's size and flags, handle closed again. */
	cli_go_opt(fd, W_OPT_INFO, "listed@" TOKEN);
	uint32_t t = cli_rep(fd, W_OPT_INFO, d, sizeof(d), &len);
	assert_int_equal(t, W_REP_INFO);
	assert_int_equal(get16(d), 0);
	assert_true(get64(d + 2) == 64 * MiB);
	uint16_t tf = get16(d + 10);
	assert_true(tf & (1 << 8));  /* CAN_MULTI_CONN */
	assert_true(tf & (1 << 2));  /* SEND_FLUSH */
	assert_true(tf & (1 << 3));  /* SEND_FUA */
	assert_true(tf & (1 << 6));  /* SEND_WRITE_ZEROES */
	assert_false(tf & (1 << 1)); /* not read-only */
	assert_int_equal(cli_rep(fd, W_OPT_INFO, d, sizeof(d), NULL), W_REP_ACK);
	/* ABORT: acknowledged, then the server closes. */
	cli_opt(fd, W_OPT_ABORT, NULL, 0);
	assert_int_equal(cli_rep(fd, W_OPT_ABORT, d, sizeof(d), NULL), W_REP_ACK);
	assert_true(closed_by_server(fd));
	close(fd);
}

static void test_handshake_malformed_closes(void **state)
{
	(void)state;
	uint8_t g[18], f[4], h[16];
	/* Bad option magic. */
	int fd = cli_hello();
	memcpy(h, "IHAVEOPX", 8);
	put32(h + 8, W_OPT_LIST);
	put32(h + 12, 0);
	snd(fd, h, 16);
	assert_true(closed_by_server(fd));
	close(fd);
	/* Unknown client flags. */
	fd = cli_connect();
	rcv_ok(fd, g, 18);
	put32(f, 0x80000001u);
	snd(fd, f, 4);
	assert_true(closed_by_server(fd));
	close(fd);
	/* EXPORT_NAME of a volume that does not exist: closed (no error possible). */
	fd = cli_hello();
	cli_opt(fd, W_OPT_EXPORT_NAME, "nosuch", 6);
	assert_true(closed_by_server(fd));
	close(fd);
	/* The server still serves. */
	fd = cli_hello();
	cli_opt(fd, W_OPT_LIST, NULL, 0);
	assert_int_equal(cli_rep(fd, W_OPT_LIST, g, sizeof(g), NULL), W_REP_ACK);
	close(fd);
}

/* A client that says nothing is dropped after handshake_timeout. */
static void test_handshake_timeout(void **state)
{
	(void)state;
	uint8_t g[18];
	nbd_server_stop(g_srv);
	srv_start(0, 1);
	int fd = cli_connect();
	rcv_ok(fd, g, 18);
	double t0 = mono_s();
	assert_true(closed_by_server(fd)); /* the client waits up to 20 s */
	printf("# idle handshake closed after %.1f s\n", mono_s() - t0);
	close(fd);
}

static void test_max_conns(void **state)
{
	(void)state;
	uint8_t g[18];
	nbd_server_stop(g_srv);
	srv_start(2, 0);
	int a = cli_connect(), b = cli_connect();
	rcv_ok(a, g, 18);
	rcv_ok(b, g, 18);
	int c = cli_connect();
	assert_true(closed_by_server(c));
	close(c);
	close(a);
	close(b);
	/* Once they are reaped, new ones come in. */
	for (int i = 0; i < 100; i++) {
		c = cli_connect();
		bool ok = rcv(c, g, 18) == 0;
		close(c);
		if (ok)
			return;
		usleep(100000);
	}
	fail_msg("no connection accepted after the others closed");
}

/* ---- requests ---- */

static void test_rw_simple_and_structured(void **state)
{
	(void)state;
	struct sess s;
	uint8_t *w = malloc(1 * MiB), *r = malloc(1 * MiB);
	assert_non_null(w);
	assert_non_null(r);
	mkvol("rw", 64 * MiB);
	for (int structured = 0; structured < 2; structured++) {
		cli_open_ok(&s, "rw", structured);
		assert_true(s.size == 64 * MiB);
		fill_random(w, 1 * MiB, 7 + structured);
		/* unaligned, crossing an extent boundary (4 MiB) */
		uint64_t off = 4 * MiB - 3000 + structured * 12345;
		assert_int_equal(cli_do(&s, 0, W_CMD_WRITE, off, 1 * MiB, w, NULL), 0);
		memset(r, 0xee, 1 * MiB);
		assert_int_equal(cli_do(&s, 0, W_CMD_READ, off, 1 * MiB, NULL, r), 0);
		assert_memory_equal(w, r, 1 * MiB);
		/* FUA write and a flush */
		assert_int_equal(cli_do(&s, W_FLAG_FUA, W_CMD_WRITE, 7, 513, w, NULL), 0);
		assert_int_equal(cli_do(&s, 0, W_CMD_FLUSH, 0, 0, NULL, NULL), 0);
		assert_int_equal(cli_do(&s, 0, W_CMD_READ, 7, 513, NULL, r), 0);
		assert_memory_equal(w, r, 513);
		/* never written: zeroes */
		assert_int_equal(cli_do(&s, 0, W_CMD_READ, 40 * MiB, 65536, NULL, r), 0);
		for (int i = 0; i < 65536; i++)
			assert_int_equal(r[i], 0);
		cli_disc(&s);
	}
	free(w);
	free(r);
}

/* Many requests in flight on one connection, answered in any order. */
static void test_pipelined(void **state)
{
	(void)state;
	struct sess s;
	enum { N = 200 };
	uint8_t *w = malloc(N * 4096), *r = malloc(N * 4096);
	struct reply *rep = malloc(sizeof(*rep));
	bool seen[N] = {false};
	mkvol("pipe", 16 * MiB);
	cli_open_ok(&s, "pipe", true);
	fill_random(w, N * 4096, 3);
	/* Writes: headers and payloads back to back, replies read after. */
	for (int i = 0; i < N; i++) {
		cli_req(&s, 0, W_CMD_WRITE, i, (uint64_t)i * 8192, 4096);
		snd(s.fd, w + i * 4096, 4096);
		if (i >= 32) { /* keep the socket buffers from filling */
			cli_reply(&s, rep, NULL, 0, 0);
			assert_int_equal(rep->err, 0);
			assert_true(rep->cookie < N && !seen[rep->cookie]);
			seen[rep->cookie] = true;
		}
	}
	for (int i = 32; i < N + 0; i++) {
		int k = 0;
		for (int j = 0; j < N; j++)
			k += seen[j];
		if (k == N)
			break;
		cli_reply(&s, rep, NULL, 0, 0);
		assert_int_equal(rep->err, 0);
		assert_true(rep->cookie < N && !seen[rep->cookie]);
		seen[rep->cookie] = true;
	}
	for (int i = 0; i < N; i++)
		assert_true(seen[i]);
	for (int i = 0; i < N; i++) {
		assert_int_equal(cli_do(&s, 0, W_CMD_READ, (uint64_t)i * 8192, 4096, NULL, r), 0);
		assert_memory_equal(r, w + i * 4096, 4096);
	}
	cli_disc(&s);
	free(rep);
	free(w);
	free(r);
}

static void test_malformed_requests(void **state)
{
	(void)state;
	struct sess s;
	uint8_t buf[8192];
	mkvol("bad", 8 * MiB);
	cli_open_ok(&s, "bad", false);
	/* Unknown command: ENOTSUP, the connection lives. */
	assert_int_equal(cli_do(&s, 0, 42, 0, 4096, NULL, NULL), W_ENOTSUP);
	/* Write past the end: ENOSPC, payload skipped (the next request parses). */
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(cli_do(&s, 0, W_CMD_WRITE, 8 * MiB - 4096, 8192, buf, NULL), W_ENOSPC);
	/* Read past the end, zero-length read, bad flags: EINVAL. */
	assert_int_equal(cli_do(&s, 0, W_CMD_READ, 8 * MiB, 1, NULL, buf), W_EINVAL);
	assert_int_equal(cli_do(&s, 0, W_CMD_READ, 0, 0, NULL, buf), W_EINVAL);
	assert_int_equal(cli_do(&s, 0x100, W_CMD_READ, 0, 512, NULL, buf), W_EINVAL);
	/* Block status without structured replies: EINVAL. */
	assert_int_equal(cli_do(&s, 0, W_CMD_BS, 0, 4096, NULL, NULL), W_EINVAL);
	/* Still fine, and the skipped payload was not written. */
	assert_int_equal(cli_do(&s, 0, W_CMD_READ, 8 * MiB - 4096, 4096, NULL, buf), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(buf[i], 0);
	/* A write over 32 MiB: the server will not read it and closes. */
	cli_req(&s, 0, W_CMD_WRITE, 9, 0, (32u << 20) + 1);
	assert_true(closed_by_server(s.fd));
	close(s.fd);
	/* Bad request magic closes too. */
	cli_open_ok(&s, "bad", true);
	uint8_t h[28] = {0x12, 0x34};
	snd(s.fd, h, 28);
	assert_true(closed_by_server(s.fd));
	close(s.fd);
	/* Others are unaffected. */
	cli_open_ok(&s, "bad", true);
	assert_int_equal(cli_do(&s, 0, W_CMD_READ, 0, 4096, NULL, buf), 0);
	cli_disc(&s);
}

/* A client that vanishes in the middle of a payload, a header, or with
 * replies unread: the server frees everything and keeps serving. */
static void test_vanish(void **state)
{
	(void)state;
	struct sess s;
	uint8_t *buf = calloc(1, 4 * MiB);
	assert_non_null(buf);
	mkvol("van", 64 * MiB);
	for (int round = 0; round < 3; round++) {
		cli_open_ok(&s, "van", round & 1);
		if (round == 0) {
			cli_req(&s, 0, W_CMD_WRITE, 1, 0, 4 * MiB);
			snd(s.fd, buf, 1 * MiB); /* 3 MiB never come */
		} else if (round == 1) {
			snd(s.fd, "\x25\x60\x95\x13\x00", 5); /* half a header */
		} else {
			/* Many big reads, no reply read: the server's sends stall or fail. */
			for (int i = 0; i < 40; i++)
				cli_req(&s, 0, W_CMD_READ, i, 0, 4 * MiB);
		}
		close(s.fd);
	}
	cli_open_ok(&s, "van", true);
	assert_int_equal(cli_do(&s, 0, W_CMD_READ, 0, 4096, NULL, buf), 0);
	assert_int_equal(buf[0], 0); /* the torn write never happened */
	cli_disc(&s);
	free(buf);
}

static void test_block_status_trim_zero(void **state)
{
	(void)state;
	struct sess s;
	struct reply *rep = malloc(sizeof(*rep));
	uint8_t *w = malloc(256 * KiB), *r = malloc(256 * KiB);
	assert_non_null(rep);
	mkvol("bs", 64 * MiB);
	cli_open_ok(&s, "bs", true);
	fill_random(w, 256 * KiB, 11);
	/* written: [1 MiB, 1.25 MiB) */
	assert_int_equal(cli_do(&s, 0, W_CMD_WRITE, 1 * MiB, 256 * KiB, w, NULL), 0);
	cli_req(&s, 0, W_CMD_BS, 77, 0, 4 * MiB);
	cli_reply(&s, rep, NULL, 0, 0);
	assert_int_equal(rep->err, 0);
	assert_true(rep->cookie == 77);
	assert_int_equal(rep->bs_ctx, 1);
	/* hole|zero [0,1M), data [1M,1.25M), hole|zero to the end */
	assert_int_equal(rep->next, 3);
	assert_int_equal(rep->ext[0], 1 * MiB);
	assert_int_equal(rep->ext[1], 3);
	assert_int_equal(rep->ext[2], 256 * KiB);
	assert_int_equal(rep->ext[3], 0);
	assert_int_equal(rep->ext[4], 4 * MiB - 1 * MiB - 256 * KiB);
	assert_int_equal(rep->ext[5], 3);
	/* REQ_ONE: one extent, not past the request */
	cli_req(&s, W_FLAG_REQ_ONE, W_CMD_BS, 78, 1 * MiB + 4096, 8 * MiB);
	cli_reply(&s, rep, NULL, 0, 0);
	assert_int_equal(rep->err, 0);
	assert_int_equal(rep->next, 1);
	assert_int_equal(rep->ext[0], 256 * KiB - 4096);
	assert_int_equal(rep->ext[1], 0);
	/* Trim a whole block, write-zeroes another (fast): both read zero and
	 * show as holes. */
	assert_int_equal(cli_do(&s, 0, W_CMD_TRIM, 1 * MiB, 64 * KiB, NULL, NULL), 0);
	assert_int_equal(
	    cli_do(&s, W_FLAG_FAST_ZERO, W_CMD_WZ, 1 * MiB + 64 * KiB, 64 * KiB, NULL, NULL), 0);
	assert_int_equal(cli_do(&s, 0, W_CMD_READ, 1 * MiB, 256 * KiB, NULL, r), 0);
	for (unsigned i = 0; i < 128 * KiB; i++)
		assert_int_equal(r[i], 0);
	assert_memory_equal(r + 128 * KiB, w + 128 * KiB, 128 * KiB);
	cli_req(&s, 0, W_CMD_BS, 79, 1 * MiB, 256 * KiB);
	cli_reply(&s, rep, NULL, 0, 0);
	assert_int_equal(rep->next, 2);
	assert_int_equal(rep->ext[0], 128 * KiB);
	assert_int_equal(rep->ext[1] & 2, 2); /* reads zero */
	assert_int_equal(rep->ext[2], 128 * KiB);
	assert_int_equal(rep->ext[3], 0);
	/* A partial-block fast zero would need data writes: ENOTSUP. */
	assert_int_equal(
	    cli_do(&s, W_FLAG_FAST_ZERO, W_CMD_WZ, 1 * MiB + 128 * KiB + 100, 1000, NULL, NULL),
	    W_ENOTSUP);
	/* ... without FAST_ZERO it is done. */
	assert_int_equal(cli_do(&s, 0, W_CMD_WZ, 1 * MiB + 128 * KiB + 100, 1000, NULL, NULL), 0);
	assert_int_equal(cli_do(&s, 0, W_CMD_READ, 1 * MiB + 128 * KiB, 4096, NULL, r), 0);
	assert_memory_equal(r, w + 128 * KiB, 100);
	for (int i = 100; i < 1100; i++)
		assert_int_equal(r[i], 0);
	assert_memory_equal(r + 1100, w + 128 * KiB + 1100, 4096 - 1100);
	cli_disc(&s);
	free(rep);
	free(w);
	free(r);
}

/* Many alternating extents: the reply is capped, and covers a prefix. */
static void test_block_status_cap(void **state)
{
	(void)state;
	struct sess s;
	struct reply *rep = malloc(sizeof(*rep));
	uint8_t w[4096];
	memset(w, 1, sizeof(w));
	mkvol("bscap", 256 * MiB);
	cli_open_ok(&s, "bscap", true);
	/* A written block every other 64 KiB block over 80 MiB: 1280 extents. */
	for (uint64_t off = 0; off < 80 * MiB; off += 128 * KiB) {
		cli_req(&s, 0, W_CMD_WRITE, off, off, 4096);
		snd(s.fd, w, 4096);
		cli_reply(&s, rep, NULL, 0, 0);
		assert_int_equal(rep->err, 0);
	}
	cli_req(&s, 0, W_CMD_BS, 5, 0, 100 * MiB);
	cli_reply(&s, rep, NULL, 0, 0);
	assert_int_equal(rep->err, 0);
	assert_true(rep->next >= 1 && rep->next <= 1024);
	uint64_t sum = 0;
	for (uint32_t i = 0; i < rep->next; i++) {
		assert_int_equal(rep->ext[2 * i], 64 * KiB);
		assert_int_equal(rep->ext[2 * i + 1], (i & 1) ? 3 : 0);
		sum += rep->ext[2 * i];
	}
	assert_true(sum <= 100 * MiB);
	printf("# block status over 1280 extents: %u in one reply\n", rep->next);
	cli_disc(&s);
	free(rep);
}

/* Writes on one connection, flush on another, read back on a third. */
static void test_multi_conn_flush(void **state)
{
	(void)state;
	struct sess a, b, c;
	uint8_t w[65536], r[65536];
	mkvol("mc", 16 * MiB);
	cli_open_ok(&a, "mc", true);
	cli_open_ok(&b, "mc", false);
	cli_open_ok(&c, "mc", true);
	fill_random(w, sizeof(w), 5);
	assert_int_equal(cli_do(&a, 0, W_CMD_WRITE, 12345, sizeof(w), w, NULL), 0);
	assert_int_equal(cli_do(&b, 0, W_CMD_FLUSH, 0, 0, NULL, NULL), 0);
	assert_int_equal(cli_do(&c, 0, W_CMD_READ, 12345, sizeof(r), NULL, r), 0);
	assert_memory_equal(w, r, sizeof(w));
	cli_disc(&a);
	cli_disc(&b);
	cli_disc(&c);
}

/* A forced detach ends the connection at its next request or idle poll. */
static void test_revoked(void **state)
{
	(void)state;
	struct sess s, t;
	uint8_t b[4096];
	struct vol v = mkvol("rev", 8 * MiB);
	cli_open_ok(&s, "rev", true);
	cli_open_ok(&t, "rev", false);
	assert_int_equal(cli_do(&s, 0, W_CMD_READ, 0, 4096, NULL, b), 0);
	revoke_handles(&v);
	/* idle: closed by the 1 s poll */
	assert_true(closed_by_server(t.fd));
	close(t.fd);
	/* active: the next request closes it (or, racing, answers ESHUTDOWN first) */
	cli_req(&s, 0, W_CMD_READ, 1, 0, 4096);
	assert_true(closed_by_server(s.fd));
	close(s.fd);
	/* The attachment itself stays (only detach removes it): a new
	 * connection opens under the new epoch. */
	struct sess u;
	char name[128];
	snprintf(name, sizeof(name), "rev@%s", TOKEN);
	assert_int_equal(cli_open(&u, name, false), 0); /* still attached: a new epoch */
	close(u.fd);
}

/* 64 connections at once, each writing and reading its own range. */
struct par {
	int idx;
	int fails;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	struct sess s;
	uint8_t w[16384], r[16384];
	cli_open_ok(&s, "par", p->idx & 1);
	fill_random(w, sizeof(w), 100 + p->idx);
	for (int i = 0; i < 8; i++) {
		uint64_t off = (uint64_t)p->idx * MiB + (uint64_t)i * 65536;
		if (cli_do(&s, 0, W_CMD_WRITE, off, sizeof(w), w, NULL) != 0 ||
		    cli_do(&s, 0, W_CMD_READ, off, sizeof(r), NULL, r) != 0 ||
		    memcmp(w, r, sizeof(w)) != 0)
			p->fails++;
	}
	cli_disc(&s);
	return NULL;
}

static void test_64_connections(void **state)
{
	(void)state;
	pthread_t th[64];
	struct par p[64];
	mkvol("par", 64 * MiB);
	for (int i = 0; i < 64; i++) {
		p[i] = (struct par){.idx = i};
		assert_int_equal(pthread_create(&th[i], NULL, par_main, &p[i]), 0);
	}
	for (int i = 0; i < 64; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(p[i].fails, 0);
	}
}

/* QoS: the server never exceeds the limit (upper bound only), and a change
 * applies to open connections. */
struct qload {
	const char *vol;
	double secs;
	uint32_t len;
	uint64_t done;
};

static void *qload_main(void *arg)
{
	struct qload *q = arg;
	struct sess s;
	struct reply *rep = malloc(sizeof(*rep));
	uint8_t *buf = malloc(64 * (size_t)q->len); /* any of the 64 slots */
	enum { QD = 8 };
	cli_open_ok(&s, q->vol, true);
	double end = mono_s() + q->secs;
	unsigned sent = 0, got = 0;
	while (mono_s() < end || got < sent) {
		while (sent - got < QD && mono_s() < end) {
			cli_req(&s, 0, W_CMD_READ, sent, (uint64_t)(sent % 64) * q->len, q->len);
			sent++;
		}
		cli_reply(&s, rep, buf, 0, q->len * 64);
		assert_int_equal(rep->err, 0);
		got++;
	}
	q->done = got;
	cli_disc(&s);
	free(rep);
	free(buf);
	return NULL;
}

static uint64_t qos_run(const char *vol, int nconn, double secs, uint32_t len, double *elapsed)
{
	pthread_t th[4];
	struct qload q[4];
	uint64_t total = 0;
	double t0 = mono_s();
	for (int i = 0; i < nconn; i++) {
		q[i] = (struct qload){.vol = vol, .secs = secs, .len = len};
		assert_int_equal(pthread_create(&th[i], NULL, qload_main, &q[i]), 0);
	}
	for (int i = 0; i < nconn; i++) {
		pthread_join(th[i], NULL);
		total += q[i].done;
	}
	*elapsed = mono_s() - t0;
	return total;
}

static void test_qos(void **state)
{
	(void)state;
	double el;
	struct vol v = mkvol("qos", 64 * MiB);
	set_qos(&v, 300, 0);
	uint64_t n = qos_run("qos", 3, 2.0, 4096, &el);
	printf("# qos 300 iops, 3 connections: %llu requests in %.2f s = %.0f/s\n",
	       (unsigned long long)n, el, n / el);
	/* Bucket math: at most rate * time + burst (30) + requests queued. */
	assert_true(n <= (uint64_t)(300 * el + 30 + 3 * 8 + 1));
	assert_true(n > 0);
	/* bytes/s limit: 4 MiB/s with 64 KiB reads */
	set_qos(&v, 0, 4 * MiB);
	n = qos_run("qos", 2, 2.0, 65536, &el);
	printf("# qos 4 MiB/s, 2 connections: %.2f MiB/s\n", n * 65536.0 / MiB / el);
	assert_true(n * 65536.0 <= 4.0 * MiB * el + 0.4 * MiB + 2 * 8 * 65536 + 65536);
	/* Limit removed: no throttling (just that it works). */
	set_qos(&v, 0, 0);
	n = qos_run("qos", 1, 0.5, 4096, &el);
	printf("# no limit: %.0f requests/s\n", n / el);
}

/* Stop with connections open and requests in flight: everything joins and
 * frees (ASan checks). */
static void test_stop_with_connections(void **state)
{
	(void)state;
	struct sess s[4];
	mkvol("stop", 64 * MiB);
	for (int i = 0; i < 4; i++) {
		cli_open_ok(&s[i], "stop", i & 1);
		for (int k = 0; k < 8; k++)
			cli_req(&s[i], 0, W_CMD_READ, k, (uint64_t)k * MiB, 1 * MiB);
	}
	int idle = cli_hello(); /* in the handshake */
	nbd_server_stop(g_srv);
	g_srv = NULL;
	for (int i = 0; i < 4; i++) {
		assert_true(closed_by_server(s[i].fd));
		close(s[i].fd);
	}
	assert_true(closed_by_server(idle));
	close(idle);
	srv_start(0, 0); /* for teardown */
}

/* ---- real clients ---- */

static bool have_tool(const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* Runs cmd; returns its exit status and its output (stdout and stderr). */
static int run(const char *cmd, char *out, size_t cap)
{
	char full[2048];
	size_t n = 0;
	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	FILE *f = popen(full, "r");
	assert_non_null(f);
	while (n + 1 < cap) {
		size_t k = fread(out + n, 1, cap - 1 - n, f);
		if (k == 0)
			break;
		n += k;
	}
	out[n] = 0;
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* nbdinfo, qemu-io, qemu-img and nbdcopy against the server: what the
 * integration tests do, kept here so the server's own test catches it. */
static void test_real_clients(void **state)
{
	(void)state;
	char uri[256], cmd[2048], file[300];
	char *out = malloc(65536);
	assert_non_null(out);
	if (!have_tool("nbdinfo") || !have_tool("qemu-io") || !have_tool("qemu-img") ||
	    !have_tool("nbdcopy")) {
		free(out);
		skip();
	}
	mkvol("real", 256 * MiB);
	snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%u/real@%s", g_port, TOKEN);

	snprintf(cmd, sizeof(cmd), "nbdinfo --size '%s'", uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	assert_true(strtoull(out, NULL, 10) == 256 * MiB);
	snprintf(cmd, sizeof(cmd), "nbdinfo '%s'", uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	assert_non_null(strstr(out, "can_multi_conn: true"));
	assert_non_null(strstr(out, "base:allocation"));
	assert_non_null(strstr(out, "can_fast_zero: true"));

	/* qemu-io: patterns, discard, write zeroes, flush; "-P" checks the bytes. */
	snprintf(cmd, sizeof(cmd),
		 "qemu-io -f raw '%s' -c 'write -P 0xab 1M 3M' -c 'write -P 0xcd 100M 64k' "
		 "-c 'flush' -c 'read -P 0xab 1M 3M' -c 'read -P 0 0 1M' -c 'discard 1M 1M' "
		 "-c 'read -P 0 1M 1M' -c 'read -P 0xab 2M 2M' -c 'write -z 100M 64k' "
		 "-c 'read -P 0 100M 64k' -c 'write -P 0x11 255M 1M' -c 'read -P 0x11 255M 1M'",
		 uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	if (strstr(out, "fail") || strstr(out, "error") || strstr(out, "Error"))
		fail_msg("qemu-io: %s", out);
	/* Past the end: qemu-io refuses or the server answers an error. */
	snprintf(cmd, sizeof(cmd), "qemu-io -f raw '%s' -c 'read 256M 4k'", uri);
	run(cmd, out, 65536);
	assert_null(strstr(out, "read 4096/4096"));

	/* block status: nbdinfo --map sees the data and the holes */
	snprintf(cmd, sizeof(cmd), "nbdinfo --map '%s'", uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	assert_non_null(strstr(out, "2097152     2097152    0  data"));
	assert_non_null(strstr(out, "hole,zero"));

	/* qemu-img convert (zeroes the target first), compare, map */
	snprintf(file, sizeof(file), "%s/img.raw", g_dir);
	uint8_t *b = malloc(32 * MiB);
	assert_non_null(b);
	fill_random(b, 32 * MiB, 99);
	memset(b + 8 * MiB, 0, 4 * MiB); /* a zero run for the map */
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, 32 * MiB, f), 32 * MiB);
	assert_int_equal(ftruncate(fileno(f), 256 * MiB), 0);
	fclose(f);
	free(b);
	snprintf(cmd, sizeof(cmd), "qemu-img convert -n -f raw -O raw '%s' '%s'", file, uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	snprintf(cmd, sizeof(cmd), "qemu-img compare -f raw -F raw '%s' '%s'", file, uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	assert_non_null(strstr(out, "identical"));
	snprintf(cmd, sizeof(cmd), "qemu-img map -f raw --output=json '%s'", uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	assert_non_null(strstr(out, "\"data\": false"));

	/* nbdcopy with 4 connections (multi-conn) there and back */
	snprintf(cmd, sizeof(cmd),
		 "nbdcopy --connections=4 '%s' '%s/back.raw' && cmp '%s' '%s/back.raw'", uri, g_dir,
		 file, g_dir);
	assert_int_equal(run(cmd, out, 65536), 0);
	free(out);
}

/* The metrics the server keeps. */
static void test_metrics(void **state)
{
	(void)state;
	struct sess s;
	uint8_t b[4096] = {1};
	char *text;
	size_t len;
	mkvol("met", 8 * MiB);
	cli_open_ok(&s, "met", true);
	assert_int_equal(cli_do(&s, 0, W_CMD_WRITE, 0, 4096, b, NULL), 0);
	assert_int_equal(cli_do(&s, 0, W_CMD_READ, 8 * MiB, 1, NULL, b), W_EINVAL);
	assert_int_equal(metrics_render(&text, &len), 0);
	assert_non_null(strstr(text, "cairn_nbd_connections 1"));
	assert_non_null(strstr(text, "cairn_nbd_errors_total"));
	assert_non_null(strstr(text, "cairn_nbd_written_bytes_total"));
	assert_non_null(
	    strstr(text, "cairn_requests_total{frontend=\"nbd\",op=\"write\",status=\"0\"}"));
	assert_non_null(
	    strstr(text, "cairn_requests_total{frontend=\"nbd\",op=\"read\",status=\"22\"}"));
	free(text);
	cli_disc(&s);
}

/* Manual testing with real clients: test_nbd_server --serve PORT SIZE_MIB
 * [WORKERS] serves one volume "vol" (export vol@TOKEN) from a scratch pool
 * until SIGINT or SIGTERM, then removes it. */
static int serve(int argc, char **argv)
{
	sigset_t set;
	int sig;
	if (argc < 4)
		return 2;
	struct nbd_server_config cfg = {.workers = argc > 4 ? (unsigned)atoi(argv[4]) : 0};
	char listen[64], err[256];
	snprintf(listen, sizeof(listen), "127.0.0.1:%s", argv[2]);
	cfg.listen = listen;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts */
	struct cs_pool_opts o = {.data_dir = g_dir, .seal_off = true, .gc_interval = -1};
	struct bs_opts bo = {.data_dir = g_dir};
	if (cs_test_tmpdir(g_dir, sizeof(g_dir), "nbdserve") < 0 || cs_pool_open(&o, &g_pool) < 0 ||
	    bs_open(g_pool, &bo, &g_bs) < 0)
		return 1;
	struct mkvol m = {.name = "vol", .size = (uint64_t)atoll(argv[3]) * MiB};
	if (bs_commit(g_bs, mkvol_cb, &m) < 0 || bs_commit(g_bs, attach_cb, &m.out) < 0 ||
	    nbd_server_start(&cfg, g_bs, &g_srv, err, sizeof(err)) < 0) {
		fprintf(stderr, "serve: %s\n", err);
		return 1;
	}
	printf("nbd://127.0.0.1:%u/vol@%s\n", nbd_server_port(g_srv), TOKEN);
	fflush(stdout);
	sigwait(&set, &sig);
	nbd_server_stop(g_srv);
	bs_close(g_bs);
	cs_pool_close(g_pool);
	rm_rf(g_dir);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--serve") == 0)
		return serve(argc, argv);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_handshake_unknown_list_abort, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handshake_malformed_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_conns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rw_simple_and_structured, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vanish, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_block_status_trim_zero, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_block_status_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_multi_conn_flush, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revoked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_64_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_qos, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_with_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_real_clients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
