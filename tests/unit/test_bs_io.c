/* tests/unit/test_bs_io.c - blockstore/bs_io: volume handles, reads,
 * writes, zeroes, trims, flush, block status, write intents and resync over
 * a real pool in a scratch directory (issue 6).
 *
 * The random test drives an in-memory reference (bytes plus a per-block
 * "allocated" bit) through unaligned writes, zeroes and trims, takes a
 * snapshot, clones it and keeps going on both volumes, checking every read
 * and block status answer against the reference. A small benchmark at the
 * end prints 4 KiB random IOPS from 16 threads (printed, not asserted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockstore/bs.h"
#include "blockstore/bs_internal.h"
#include "chunkstore/chunkstore.h"
#include "core/fault.h"
#include "core/io.h"
#include "meta/meta.h"
#include "cs_test.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define TOKEN "0123456789abcdef0123456789abcdef"

static char g_dir[256];
static struct cs_pool *g_pool;
static struct bs_store *g_bs;
static struct io_ctx *g_ctx;

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

static bool g_powerloss; /* the power-loss child: io's undo log on */

static void store_open(void)
{
	struct cs_pool_opts o = {
	    .data_dir = g_dir, .seal_off = true, .gc_interval = -1, .powerloss_sim = g_powerloss};
	struct bs_opts bo = {.data_dir = g_dir};
	assert_int_equal(cs_pool_open(&o, &g_pool), 0);
	assert_int_equal(bs_open(g_pool, &bo, &g_bs), 0);
}

static void store_close(void)
{
	bs_close(g_bs);
	cs_pool_close(g_pool);
	g_bs = NULL;
	g_pool = NULL;
}

static int setup(void **state)
{
	(void)state;
	if (cs_test_tmpdir(g_dir, sizeof(g_dir), "bsio") < 0)
		return -1;
	store_open();
	return io_ctx_create(64, &g_ctx);
}

static int teardown(void **state)
{
	(void)state;
	io_ctx_free(g_ctx);
	store_close();
	rm_rf(g_dir);
	return 0;
}

/* ---- volumes and attachments, the way bs_admin.c makes them ---- */

struct mkvol {
	const char *name;
	uint64_t size;
	unsigned replicas;
	struct vol out;
};

static int mkvol_cb(struct cs_txn *t, void *arg)
{
	struct mkvol *m = arg;
	struct vol_opts o = {.replicas = m->replicas};
	return vol_create(cs_txn_meta(t), bs_part(g_bs, m->name), m->name, m->size, &o, &m->out);
}

static struct vol mkvol(const char *name, uint64_t size, unsigned replicas)
{
	struct mkvol m = {.name = name, .size = size, .replicas = replicas};
	assert_int_equal(bs_commit(g_bs, mkvol_cb, &m), 0);
	return m.out;
}

struct attach {
	const uint8_t *id;
	const char *token;
	uint64_t expires_ns;
};

static int attach_cb(struct cs_txn *t, void *arg)
{
	struct attach *a = arg;
	uint8_t buf[sizeof(struct vol_attach_rec) + 8];
	struct vol_attach_rec r;
	memset(&r, 0, sizeof(r));
	r.version = VOL_ATTACH_VERSION;
	r.host_len = 5;
	r.lease_s = 300;
	bs_token_hash(a->token, strlen(a->token), r.token_sha256);
	r.attached_ns = now_ns();
	r.expires_ns = a->expires_ns;
	memcpy(buf, &r, sizeof(r));
	memcpy(buf + sizeof(r), "host1", 5);
	return meta_put(cs_txn_meta(t), META_T_ATTACH, a->id, VOL_ID_LEN, buf, sizeof(r) + 5, 0);
}

static void attach(const struct vol *v, const char *token, uint64_t expires_ns)
{
	struct attach a = {.id = v->id, .token = token, .expires_ns = expires_ns};
	assert_int_equal(bs_commit(g_bs, attach_cb, &a), 0);
}

static struct bs_handle *hopen(const char *name)
{
	char exp[256];
	struct bs_handle *h = NULL;
	snprintf(exp, sizeof(exp), "%s@%s", name, TOKEN);
	assert_int_equal(bs_handle_open(g_bs, exp, &h), 0);
	return h;
}

static struct bs_handle *mkvol_open(const char *name, uint64_t size, unsigned replicas,
				    struct vol *out)
{
	struct vol v = mkvol(name, size, replicas);
	attach(&v, TOKEN, now_ns() + 600000000000ull);
	if (out)
		*out = v;
	return hopen(name);
}

struct snap_arg {
	struct vol *v;
	const char *name;
};

static int snap_cb(struct cs_txn *t, void *arg)
{
	struct snap_arg *a = arg;
	return vol_snapshot_create(cs_txn_meta(t), a->v, a->name, NULL);
}

/* As bs_snapshot_create does: quiesce, make dirty files durable, commit,
 * put the new record in place, resume. */
static void snapshot(const uint8_t *id, const char *name)
{
	struct bs_vol *vol;
	struct vol nv;
	assert_int_equal(bs_vol_get(g_bs, id, &vol), 0);
	bs_vol_quiesce(vol);
	assert_int_equal(bs_io_sync_vol(g_bs, vol, g_ctx), 0);
	nv = vol->v;
	struct snap_arg a = {.v = &nv, .name = name};
	assert_int_equal(bs_commit(g_bs, snap_cb, &a), 0);
	bs_vol_resume(vol, &nv);
	bs_vol_put(g_bs, vol);
}

struct clone_arg {
	const struct vol *v;
	const char *snap, *name;
	struct vol out;
};

static int clone_cb(struct cs_txn *t, void *arg)
{
	struct clone_arg *a = arg;
	return vol_clone(cs_txn_meta(t), a->v, a->snap, bs_part(g_bs, a->name), a->name, &a->out);
}

static struct vol vol_load(const char *name)
{
	struct meta_txn *t;
	struct vol v;
	assert_int_equal(meta_txn_begin(g_bs->meta, false, &t), 0);
	assert_int_equal(vol_get(t, bs_part(g_bs, name), name, &v), 0);
	meta_txn_abort(t);
	return v;
}

static size_t count_intents(void)
{
	struct meta_txn *t;
	struct meta_cursor *c;
	const void *k, *v;
	size_t kl, vl, n = 0;
	assert_int_equal(meta_txn_begin(g_bs->meta, false, &t), 0);
	assert_int_equal(meta_cursor_open(t, META_T_INTENTS, &c), 0);
	int rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
	while (rc == 0) {
		n++;
		rc = meta_cursor_next(c, &k, &kl, &v, &vl);
	}
	meta_cursor_close(c);
	meta_txn_abort(t);
	return n;
}

/* ---- the reference model ---- */

struct ref {
	uint8_t *data;
	uint8_t *alloc; /* per 64 KiB block: written (block status flags 0) */
	uint64_t size;
};

static void ref_init(struct ref *r, uint64_t size)
{
	r->size = size;
	r->data = calloc(1, size);
	r->alloc = calloc(1, size / VOL_BLOCK_SIZE);
	assert_non_null(r->data);
	assert_non_null(r->alloc);
}

static void ref_copy(struct ref *dst, const struct ref *src)
{
	ref_init(dst, src->size);
	memcpy(dst->data, src->data, src->size);
	memcpy(dst->alloc, src->alloc, src->size / VOL_BLOCK_SIZE);
}

static void ref_free(struct ref *r)
{
	free(r->data);
	free(r->alloc);
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static uint8_t *g_buf; /* 4 MiB + 8 KiB, aligned */

static void do_write(struct bs_handle *h, struct ref *r, uint64_t off, uint32_t len, size_t shift,
		     uint64_t seed, unsigned flags)
{
	uint8_t *b = g_buf + shift;
	fill_random(b, len, seed);
	assert_int_equal(bs_write(h, g_ctx, b, off, len, flags), 0);
	memcpy(r->data + off, b, len);
	for (uint64_t blk = off / VOL_BLOCK_SIZE; blk <= (off + len - 1) / VOL_BLOCK_SIZE; blk++)
		r->alloc[blk] = 1;
}

static void do_zero(struct bs_handle *h, struct ref *r, uint64_t off, uint64_t len, unsigned flags)
{
	assert_int_equal(bs_zero(h, g_ctx, off, len, flags), 0);
	for (uint64_t blk = off / VOL_BLOCK_SIZE; blk * VOL_BLOCK_SIZE < off + len; blk++) {
		uint64_t bs = blk * VOL_BLOCK_SIZE, be = bs + VOL_BLOCK_SIZE;
		uint64_t s = bs > off ? bs : off, e = be < off + len ? be : off + len;
		if (s == bs && e == be) {
			memset(r->data + s, 0, e - s);
			r->alloc[blk] = 0;
		} else if (!(flags & BS_TRIM)) {
			memset(r->data + s, 0, e - s);
		}
	}
}

static void do_read(struct bs_handle *h, const struct ref *r, uint64_t off, uint32_t len,
		    size_t shift)
{
	uint8_t *b = g_buf + shift;
	memset(b, 0xA5, len);
	assert_int_equal(bs_read(h, g_ctx, b, off, len), 0);
	if (memcmp(b, r->data + off, len) != 0) {
		size_t i = 0;
		while (b[i] == r->data[off + i])
			i++;
		fail_msg("read %llu+%u (shift %zu) differs at byte %zu (%02x, want %02x)",
			 (unsigned long long)off, len, shift, i, b[i], r->data[off + i]);
	}
}

struct status_check {
	const struct ref *r;
	uint64_t next; /* where the next range must start */
};

static int status_fn(uint64_t off, uint64_t len, unsigned flags, void *arg)
{
	struct status_check *c = arg;
	assert_int_equal(off, c->next);
	assert_true(len > 0);
	for (uint64_t blk = off / VOL_BLOCK_SIZE; blk * VOL_BLOCK_SIZE < off + len; blk++) {
		unsigned want = c->r->alloc[blk] ? 0 : BS_STATE_HOLE | BS_STATE_ZERO;
		if (flags != want)
			fail_msg("block %llu: status %u, want %u", (unsigned long long)blk, flags,
				 want);
	}
	c->next = off + len;
	return 0;
}

static void do_status(struct bs_handle *h, const struct ref *r, uint64_t off, uint64_t len)
{
	struct status_check c = {.r = r, .next = off};
	assert_int_equal(bs_block_status(h, off, len, status_fn, &c), 0);
	assert_true(c.next > off);
	assert_true(c.next <= off + len);
	if (len <= 64 * MiB)
		assert_int_equal(c.next, off + len);
}

/* A random offset and length: mostly small and unaligned, sometimes whole
 * blocks or several extents. */
static void rnd_range(uint64_t *x, uint64_t size, uint64_t *off, uint32_t *len)
{
	uint64_t k = rnd(x) % 10, l;
	if (k < 4)
		l = 1 + rnd(x) % (8 * KiB);
	else if (k < 6)
		l = (1 + rnd(x) % 4) * 4 * KiB;
	else if (k < 8)
		l = 1 + rnd(x) % (300 * KiB);
	else if (k < 9)
		l = (1 + rnd(x) % 16) * VOL_BLOCK_SIZE;
	else
		l = 1 + rnd(x) % (4 * MiB);
	if (l > size)
		l = size;
	uint64_t o = rnd(x) % (size - l + 1);
	if (rnd(x) % 3 == 0)
		o &= ~(uint64_t)(4 * KiB - 1);
	else if (rnd(x) % 4 == 0)
		o &= ~(uint64_t)(VOL_BLOCK_SIZE - 1);
	if (o + l > size)
		o = size - l;
	*off = o;
	*len = (uint32_t)l;
}

static void random_ops(struct bs_handle *h, struct ref *r, uint64_t seed, unsigned nops)
{
	uint64_t x = seed * 2654435761u + 7;
	for (unsigned i = 0; i < nops; i++) {
		uint64_t off;
		uint32_t len;
		size_t shift = rnd(&x) % 2 ? 0 : rnd(&x) % 4096;
		rnd_range(&x, r->size, &off, &len);
		switch (rnd(&x) % 12) {
		case 0:
		case 1:
		case 2:
		case 3:
			do_write(h, r, off, len, shift, rnd(&x), rnd(&x) % 8 == 0 ? BS_FUA : 0);
			break;
		case 4:
			do_zero(h, r, off, len, rnd(&x) % 2 ? BS_FUA : 0);
			break;
		case 5:
			do_zero(h, r, off, len, BS_TRIM);
			break;
		case 6:
			assert_int_equal(bs_flush(h, g_ctx), 0);
			break;
		case 7:
			do_status(h, r, off, len);
			break;
		default:
			do_read(h, r, off, len, shift);
		}
	}
}

static void verify_all(struct bs_handle *h, const struct ref *r)
{
	for (uint64_t off = 0; off < r->size; off += 4 * MiB) {
		uint32_t len = (uint32_t)(r->size - off < 4 * MiB ? r->size - off : 4 * MiB);
		do_read(h, r, off, len, 0);
	}
	do_status(h, r, 0, r->size);
}

/* ---- tests ---- */

static void test_handle_access(void **state)
{
	(void)state;
	struct bs_handle *h = NULL, *h2 = NULL;
	struct vol v = mkvol("acc", 8 * MiB, 0);
	uint8_t *b = io_alloc(4096);
	assert_int_equal(bs_handle_open(g_bs, "acc@" TOKEN, &h), -EACCES); /* not attached */
	attach(&v, TOKEN, now_ns() + 60000000000ull);
	assert_int_equal(bs_handle_open(g_bs, "acc", &h), -EACCES);
	assert_int_equal(bs_handle_open(g_bs, "acc@", &h), -EACCES);
	assert_int_equal(bs_handle_open(g_bs, "acc@0123456789abcdef0123456789abcdee", &h), -EACCES);
	assert_int_equal(bs_handle_open(g_bs, "acc@" TOKEN "0", &h), -EACCES);
	assert_int_equal(bs_handle_open(g_bs, "nope@" TOKEN, &h), CAIRN_ENOTFOUND);
	assert_null(h);
	h = hopen("acc");
	assert_string_equal(bs_handle_volume(h), "acc");
	assert_int_equal(bs_handle_size(h), 8 * MiB);
	assert_false(bs_handle_revoked(h));
	/* Out of range. */
	assert_int_equal(bs_read(h, g_ctx, b, 8 * MiB - 4096, 8192), CAIRN_EINVAL);
	assert_int_equal(bs_write(h, g_ctx, b, 8 * MiB, 1, 0), CAIRN_EINVAL);
	assert_int_equal(bs_zero(h, g_ctx, 8 * MiB - 1, 2, 0), CAIRN_EINVAL);
	/* An expired lease: refused, unless the volume has open handles. */
	attach(&v, TOKEN, now_ns() - 1);
	h2 = hopen("acc");
	bs_handle_close(h2);
	bs_handle_close(h);
	/* The last close renewed the lease (bs_attach_touch). */
	h = hopen("acc");
	bs_handle_close(h);
	attach(&v, TOKEN, now_ns() - 1);
	assert_int_equal(bs_handle_open(g_bs, "acc@" TOKEN, &h), -EACCES);
	/* Revocation: the epoch moves, the handle is dead. */
	attach(&v, TOKEN, now_ns() + 60000000000ull);
	h = hopen("acc");
	memset(b, 7, 4096);
	assert_int_equal(bs_write(h, g_ctx, b, 0, 4096, 0), 0);
	struct bs_vol *vol;
	assert_int_equal(bs_vol_get(g_bs, v.id, &vol), 0);
	bs_vol_quiesce(vol);
	atomic_fetch_add(&vol->epoch, 1);
	bs_vol_resume(vol, NULL);
	bs_vol_put(g_bs, vol);
	assert_true(bs_handle_revoked(h));
	assert_int_equal(bs_read(h, g_ctx, b, 0, 4096), -ESHUTDOWN);
	assert_int_equal(bs_write(h, g_ctx, b, 0, 4096, 0), -ESHUTDOWN);
	assert_int_equal(bs_zero(h, g_ctx, 0, 4096, 0), -ESHUTDOWN);
	assert_int_equal(bs_flush(h, g_ctx), -ESHUTDOWN);
	/* A handle opened after the revocation works. */
	h2 = hopen("acc");
	assert_int_equal(bs_read(h2, g_ctx, b, 0, 4096), 0);
	assert_int_equal(b[0], 7);
	bs_handle_close(h);
	bs_handle_close(h2);
	io_free(b);
}

static void test_random_snapshot_clone(void **state)
{
	(void)state;
	struct ref r, snapref, cref;
	struct vol v;
	struct bs_handle *h = mkvol_open("rnd", 24 * MiB, 0, &v);
	ref_init(&r, 24 * MiB);
	verify_all(h, &r);
	random_ops(h, &r, 1, 600);
	verify_all(h, &r);
	/* Snapshot, then keep writing: partial writes copy up older bytes. */
	snapshot(v.id, "s1");
	ref_copy(&snapref, &r);
	random_ops(h, &r, 2, 400);
	verify_all(h, &r);
	/* A clone reads the snapshot's view; writes and trims on either side
	 * stay on their side; TRIM on the clone never re-exposes the parent. */
	v = vol_load("rnd");
	struct clone_arg ca = {.v = &v, .snap = "s1", .name = "rnd-clone"};
	assert_int_equal(bs_commit(g_bs, clone_cb, &ca), 0);
	attach(&ca.out, TOKEN, now_ns() + 600000000000ull);
	struct bs_handle *hc = hopen("rnd-clone");
	ref_copy(&cref, &snapref);
	verify_all(hc, &cref);
	random_ops(hc, &cref, 3, 400);
	random_ops(h, &r, 4, 200);
	verify_all(hc, &cref);
	verify_all(h, &r);
	/* Whole-volume trim on the clone: zeroes everywhere, parent unchanged. */
	do_zero(hc, &cref, 0, cref.size, BS_TRIM);
	verify_all(hc, &cref);
	do_write(hc, &cref, 100000, 5000, 3, 99, 0);
	verify_all(hc, &cref);
	verify_all(h, &r);
	/* Reopen the store: everything read back from disk and the map. */
	bs_handle_close(h);
	bs_handle_close(hc);
	assert_int_equal(count_intents(), 0);
	store_close();
	store_open();
	h = hopen("rnd");
	hc = hopen("rnd-clone");
	verify_all(h, &r);
	verify_all(hc, &cref);
	bs_handle_close(h);
	bs_handle_close(hc);
	ref_free(&r);
	ref_free(&snapref);
	ref_free(&cref);
}

static void test_zero_fast(void **state)
{
	(void)state;
	struct ref r;
	struct bs_handle *h = mkvol_open("zero", 1024 * MiB, 0, NULL);
	ref_init(&r, 1024 * MiB);
	/* qemu-img convert -n: zeroes of a fresh target cost no commit. */
	double t0 = mono_s();
	for (uint64_t off = 0; off < r.size; off += 32 * MiB)
		assert_int_equal(bs_zero(h, g_ctx, off, 32 * MiB, 0), 0);
	double dt = mono_s() - t0;
	printf("zeroing a fresh 1 GiB volume in 32 MiB requests: %.2f ms\n", dt * 1e3);
	/* FAST_ZERO over a partial written block: refused, nothing changed. */
	do_write(h, &r, 0, 200 * KiB, 0, 5, 0);
	assert_int_equal(bs_zero(h, g_ctx, 1000, 3 * VOL_BLOCK_SIZE, BS_FAST_ZERO), -ENOTSUP);
	do_read(h, &r, 0, 200 * KiB, 0);
	/* ... but fine over whole blocks or partial ones that read zero. */
	do_zero(h, &r, VOL_BLOCK_SIZE, 2 * VOL_BLOCK_SIZE, BS_FAST_ZERO);
	do_zero(h, &r, 300 * KiB + 7, 100 * KiB, BS_FAST_ZERO);
	verify_all(h, &r);
	/* One large zero over written extents: one commit, status says hole. */
	for (uint64_t off = 0; off < 64 * MiB; off += 5 * MiB)
		do_write(h, &r, off, 70 * KiB, 0, off, 0);
	do_zero(h, &r, 0, 512 * MiB, 0);
	verify_all(h, &r);
	bs_handle_close(h);
	ref_free(&r);
}

/* Issue 6: WRITE_ZEROES with NO_HOLE leaves the range provisioned: zero
 * bytes written, block status reports data; with FAST_ZERO it is refused. */
static void test_zero_no_hole_issue6(void **state)
{
	(void)state;
	struct ref r;
	struct bs_handle *h = mkvol_open("nohole", 16 * MiB, 0, NULL);
	ref_init(&r, 16 * MiB);
	do_write(h, &r, 1 * MiB, 300 * KiB, 0, 41, 0);
	/* Over written and unwritten blocks, across an extent boundary, with
	 * unaligned ends. */
	uint64_t off = 1 * MiB + 100 * KiB + 5, len = 4 * MiB + 77 * KiB;
	assert_int_equal(bs_zero(h, g_ctx, off, len, BS_NO_HOLE | BS_FAST_ZERO), -ENOTSUP);
	verify_all(h, &r); /* nothing changed */
	assert_int_equal(bs_zero(h, g_ctx, off, len, BS_NO_HOLE), 0);
	memset(r.data + off, 0, len);
	for (uint64_t blk = off / VOL_BLOCK_SIZE; blk * VOL_BLOCK_SIZE < off + len; blk++)
		r.alloc[blk] = 1;
	verify_all(h, &r);
	/* FUA too, over a block recorded zero before. */
	do_zero(h, &r, 10 * MiB, 2 * VOL_BLOCK_SIZE, 0);
	assert_int_equal(bs_zero(h, g_ctx, 10 * MiB, 2 * VOL_BLOCK_SIZE, BS_NO_HOLE | BS_FUA), 0);
	r.alloc[10 * MiB / VOL_BLOCK_SIZE] = r.alloc[10 * MiB / VOL_BLOCK_SIZE + 1] = 1;
	verify_all(h, &r);
	bs_handle_close(h);
	ref_free(&r);
}

static int put_intent_cb(struct cs_txn *t, void *arg)
{
	const struct vol *v = arg;
	uint8_t k[VOL_INTENT_KEY_LEN];
	struct vol_intent_rec r = {.version = VOL_INTENT_VERSION, .gen = v->gen};
	memcpy(k, v->id, VOL_ID_LEN);
	meta_be64(k + VOL_ID_LEN, 1);
	return meta_put(cs_txn_meta(t), META_T_INTENTS, k, sizeof(k), &r, sizeof(r), 0);
}

static void read_file(const char *path, uint8_t *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

static void test_resync(void **state)
{
	(void)state;
	struct ref r;
	struct vol v;
	struct bs_handle *h = mkvol_open("rs", 16 * MiB, 3, &v);
	char path[PATH_MAX];
	uint32_t devs[8];
	uint8_t *f0 = malloc(VOL_EXTENT_SIZE), *f1 = malloc(VOL_EXTENT_SIZE);
	ref_init(&r, 16 * MiB);
	do_write(h, &r, 4 * MiB + 12345, 1 * MiB, 0, 11, 0);
	assert_int_equal(bs_flush(h, g_ctx), 0);
	bs_handle_close(h);
	assert_int_equal(count_intents(), 0);
	/* A crash mid-write: an intent for extent 1, replica 1 different. */
	assert_int_equal(bs_commit(g_bs, put_intent_cb, &v), 0);
	assert_int_equal(bs_extent_devs(g_bs, v.id, 1, 3, devs), 3);
	assert_int_equal(bs_extent_path(g_bs, devs[1], v.id, v.gen, 1, path, sizeof(path)), 0);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	memset(f1, 0x5A, 100000);
	assert_int_equal(pwrite(fd, f1, 100000, 50000), 100000);
	close(fd);
	/* Replica 2 lost its file altogether. */
	assert_int_equal(bs_extent_path(g_bs, devs[2], v.id, v.gen, 1, path, sizeof(path)), 0);
	assert_int_equal(unlink(path), 0);
	store_close();
	store_open();
	assert_int_equal(count_intents(), 0);
	assert_int_equal(bs_extent_path(g_bs, devs[0], v.id, v.gen, 1, path, sizeof(path)), 0);
	read_file(path, f0, VOL_EXTENT_SIZE);
	assert_memory_equal(f0 + 12345, r.data + 4 * MiB + 12345, 1 * MiB);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(bs_extent_path(g_bs, devs[i], v.id, v.gen, 1, path, sizeof(path)),
				 0);
		read_file(path, f1, VOL_EXTENT_SIZE);
		assert_memory_equal(f0, f1, VOL_EXTENT_SIZE);
	}
	h = hopen("rs");
	verify_all(h, &r);
	bs_handle_close(h);
	free(f0);
	free(f1);
	ref_free(&r);
}

/* Issue 6: a replica file lost after its extent was written must not come
 * back empty when a write adds a block: the blocks the map already names
 * are copied in from a replica that still has the file. */
static void test_lost_replica_refilled_issue6(void **state)
{
	(void)state;
	struct ref r;
	struct vol v;
	struct bs_handle *h = mkvol_open("lost", 16 * MiB, 3, &v);
	char path[PATH_MAX];
	uint32_t devs[8];
	uint8_t *f = malloc(VOL_EXTENT_SIZE);
	ref_init(&r, 16 * MiB);
	do_write(h, &r, 4 * MiB, 3 * VOL_BLOCK_SIZE + 1000, 0, 21, 0);
	assert_int_equal(bs_flush(h, g_ctx), 0);
	bs_handle_close(h); /* the last close drops the fd cache */
	assert_int_equal(bs_extent_devs(g_bs, v.id, 1, 3, devs), 3);
	assert_int_equal(bs_extent_path(g_bs, devs[0], v.id, v.gen, 1, path, sizeof(path)), 0);
	assert_int_equal(unlink(path), 0);
	h = hopen("lost");
	do_write(h, &r, 4 * MiB + 10 * VOL_BLOCK_SIZE, 4096, 0, 22, 0);
	verify_all(h, &r);
	bs_handle_close(h);
	/* Every replica file holds the old blocks (resync may copy any). */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(bs_extent_path(g_bs, devs[i], v.id, v.gen, 1, path, sizeof(path)),
				 0);
		read_file(path, f, VOL_EXTENT_SIZE);
		assert_memory_equal(f, r.data + 4 * MiB, 3 * VOL_BLOCK_SIZE + 1000);
		assert_memory_equal(f + 10 * VOL_BLOCK_SIZE, r.data + 4 * MiB + 10 * VOL_BLOCK_SIZE,
				    4096);
	}
	/* With no replica left to copy from, the write fails and adds nothing. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(bs_extent_path(g_bs, devs[i], v.id, v.gen, 1, path, sizeof(path)),
				 0);
		assert_int_equal(unlink(path), 0);
	}
	h = hopen("lost");
	memset(g_buf, 7, 4096);
	assert_int_equal(bs_write(h, g_ctx, g_buf, 4 * MiB + 20 * VOL_BLOCK_SIZE, 4096, 0), -EIO);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(bs_extent_path(g_bs, devs[i], v.id, v.gen, 1, path, sizeof(path)),
				 0);
		assert_int_equal(access(path, F_OK), -1);
	}
	bs_handle_close(h);
	free(f);
	ref_free(&r);
}

/* Issue 6: a write that failed on one replica leaves the copies different:
 * its extent keeps its intent through flushes and the last close, so the
 * next start resyncs it (then the intent goes). */
static void test_failed_write_keeps_intent_issue6(void **state)
{
	(void)state;
	struct ref r;
	struct vol v;
	struct bs_handle *h = mkvol_open("wfail", 16 * MiB, 3, &v);
	char path[PATH_MAX];
	uint32_t devs[8];
	uint8_t *f0 = malloc(VOL_EXTENT_SIZE), *f1 = malloc(VOL_EXTENT_SIZE);
	ref_init(&r, 16 * MiB);
	do_write(h, &r, 4 * MiB, 2 * VOL_BLOCK_SIZE, 0, 31, 0);
	do_write(h, &r, 8 * MiB, 4096, 0, 32, 0);
	assert_int_equal(bs_flush(h, g_ctx), 0);
	usleep(1100 * 1000);
	assert_int_equal(bs_flush(h, g_ctx), 0);
	assert_int_equal(count_intents(), 0);
	/* Fast path (blocks already written): the last replica misses it. */
	fault_arm("bs.write_partial", 1);
	fill_random(g_buf, 8192, 33);
	assert_int_equal(bs_write(h, g_ctx, g_buf, 4 * MiB + 4096, 8192, 0), -EIO);
	fault_arm("bs.write_partial", 0);
	memcpy(r.data + 4 * MiB + 4096, g_buf, 8192); /* replica 0 has it */
	/* Another extent's write clears normally; the failed one stays. */
	do_write(h, &r, 8 * MiB, 4096, 0, 34, 0);
	assert_int_equal(count_intents(), 2);
	/* Two passes: a pass spares extents written since the previous one. */
	for (int i = 0; i < 2; i++) {
		usleep(1100 * 1000);
		assert_int_equal(bs_flush(h, g_ctx), 0);
	}
	assert_int_equal(count_intents(), 1);
	bs_handle_close(h);
	assert_int_equal(count_intents(), 1);
	assert_int_equal(bs_extent_devs(g_bs, v.id, 1, 3, devs), 3);
	assert_int_equal(bs_extent_path(g_bs, devs[0], v.id, v.gen, 1, path, sizeof(path)), 0);
	read_file(path, f0, VOL_EXTENT_SIZE);
	assert_int_equal(bs_extent_path(g_bs, devs[2], v.id, v.gen, 1, path, sizeof(path)), 0);
	read_file(path, f1, VOL_EXTENT_SIZE);
	assert_memory_not_equal(f0, f1, VOL_EXTENT_SIZE);
	/* The next start makes the copies equal again. */
	store_close();
	store_open();
	assert_int_equal(count_intents(), 0);
	read_file(path, f1, VOL_EXTENT_SIZE);
	assert_memory_equal(f0, f1, VOL_EXTENT_SIZE);
	h = hopen("wfail");
	verify_all(h, &r);
	bs_handle_close(h);
	free(f0);
	free(f1);
	ref_free(&r);
}

/* Issue 6: a last close whose flush failed closes dirty files; their
 * extents' intents stay, and the next open must not clear them (only the
 * next start's resync does). */
static void test_failed_close_keeps_intent_issue6(void **state)
{
	(void)state;
	struct ref r;
	struct bs_handle *h = mkvol_open("fclose", 16 * MiB, 0, NULL);
	ref_init(&r, 16 * MiB);
	do_write(h, &r, 0, 200 * KiB, 0, 51, 0);
	assert_int_equal(bs_flush(h, g_ctx), 0);
	do_write(h, &r, 4096, 8192, 0, 52, 0); /* dirty, not durable */
	fault_arm("io.fsync", 1);
	bs_handle_close(h);
	fault_arm("io.fsync", 0);
	assert_int_equal(count_intents(), 1);
	h = hopen("fclose");
	do_write(h, &r, 100 * KiB, 4096, 0, 53, 0);
	for (int i = 0; i < 3; i++) {
		usleep(1100 * 1000);
		assert_int_equal(bs_flush(h, g_ctx), 0);
	}
	assert_int_equal(count_intents(), 1);
	bs_handle_close(h);
	assert_int_equal(count_intents(), 1);
	store_close();
	store_open();
	assert_int_equal(count_intents(), 0);
	h = hopen("fclose");
	verify_all(h, &r);
	bs_handle_close(h);
	ref_free(&r);
}

static void test_intents_cleared(void **state)
{
	(void)state;
	struct ref r;
	struct bs_handle *h = mkvol_open("intent", 16 * MiB, 0, NULL);
	ref_init(&r, 16 * MiB);
	do_write(h, &r, 0, 4096, 0, 1, 0);
	do_write(h, &r, 9 * MiB, 4096, 0, 2, 0);
	assert_int_equal(count_intents(), 2); /* committed before the first byte */
	/* Cleared lazily: a flush more than a second after the last clear. */
	assert_int_equal(bs_flush(h, g_ctx), 0);
	usleep(1100 * 1000);
	assert_int_equal(bs_flush(h, g_ctx), 0);
	assert_int_equal(count_intents(), 0);
	/* A write after that arms the intent again (fast path included). */
	do_write(h, &r, 100, 200, 0, 3, 0);
	assert_int_equal(count_intents(), 1);
	bs_handle_close(h);
	assert_int_equal(count_intents(), 0);
	ref_free(&r);
}

static void test_enospc(void **state)
{
	(void)state;
	struct ref r;
	char path[PATH_MAX];
	uint32_t devs[8];
	struct vol v;
	struct bs_handle *h = mkvol_open("full", 16 * MiB, 0, &v);
	ref_init(&r, 16 * MiB);
	do_write(h, &r, 0, 8192, 0, 1, 0);
	fault_arm("bs.fallocate", 1);
	uint8_t *b = io_alloc(8192);
	memset(b, 1, 8192);
	assert_int_equal(bs_write(h, g_ctx, b, 5 * MiB, 8192, 0), -ENOSPC);
	/* Writes into existing files still work. */
	do_write(h, &r, 100, 8192, 0, 2, 0);
	fault_arm("bs.fallocate", 0);
	unsigned n = bs_extent_devs(g_bs, v.id, 1, 3, devs);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(bs_extent_path(g_bs, devs[i], v.id, v.gen, 1, path, sizeof(path)),
				 0);
		assert_int_equal(access(path, F_OK), -1);
	}
	verify_all(h, &r);
	do_write(h, &r, 5 * MiB, 8192, 0, 3, 0);
	verify_all(h, &r);
	bs_handle_close(h);
	io_free(b);
	ref_free(&r);
}

static void test_copy_blocks(void **state)
{
	(void)state;
	struct ref r;
	struct vol a, b;
	struct bs_handle *h = mkvol_open("cpa", 8 * MiB, 0, &a);
	b = mkvol("cpb", 8 * MiB, 2);
	ref_init(&r, 8 * MiB);
	do_write(h, &r, 0, 4 * MiB, 0, 8, 0);
	assert_int_equal(bs_flush(h, g_ctx), 0);
	uint64_t mask = 0x00F0000000000301ull;
	assert_int_equal(
	    bs_io_copy_blocks(g_bs, g_ctx, a.id, a.gen, a.replicas, b.id, 7, b.replicas, 0, mask),
	    0);
	uint32_t devs[8];
	char path[PATH_MAX];
	uint8_t *f = malloc(VOL_EXTENT_SIZE);
	unsigned n = bs_extent_devs(g_bs, b.id, 0, b.replicas, devs);
	assert_int_equal(n, 2);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(bs_extent_path(g_bs, devs[i], b.id, 7, 0, path, sizeof(path)), 0);
		read_file(path, f, VOL_EXTENT_SIZE);
		for (unsigned blk = 0; blk < 64; blk++)
			if (mask >> blk & 1)
				assert_memory_equal(f + blk * VOL_BLOCK_SIZE,
						    r.data + blk * VOL_BLOCK_SIZE, VOL_BLOCK_SIZE);
	}
	bs_handle_close(h);
	free(f);
	ref_free(&r);
}

static unsigned count_fds(void)
{
	char path[64];
	unsigned n = 0;
	for (int fd = 0; fd < 20000; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n += access(path, F_OK) == 0;
	}
	return n;
}

/* A client that never flushes: the fd cache stays bounded (dirty files
 * are synced once too many are open), and every byte still reads back. */
static void test_fd_bound(void **state)
{
	(void)state;
	struct ref r;
	struct bs_handle *h = mkvol_open("many", 2400 * MiB, 3, NULL);
	unsigned before = count_fds();
	ref_init(&r, 2400 * MiB);
	for (uint64_t i = 0; i < 600; i++)
		do_write(h, &r, i * 4 * MiB + i * 4096, 4096, 0, i, 0);
	unsigned after = count_fds();
	printf("fds: %u before, %u after writing 600 extents x 3 replicas unflushed\n", before,
	       after);
	assert_true(after < before + 512 + 64);
	for (uint64_t i = 0; i < 600; i += 7)
		do_read(h, &r, i * 4 * MiB, 8192, 0);
	bs_handle_close(h);
	ref_free(&r);
}

/* ---- threads ---- */

struct thr {
	struct bs_handle *h;
	struct ref *r;
	unsigned t, nops;
	int err;
	uint64_t ops;
	double stop; /* bench: mono_s() deadline */
	bool write;
	uint64_t size;
};

/* Thread t owns 4 KiB slots k with k % 4 == t of extents 0-3 (distinct
 * bytes, shared extents) and bytes [t*1024, t*1024+1000) of every 4 KiB
 * device block of extent 4 (distinct bytes, shared device blocks: the
 * read-modify-write lock). */
static void *conc_fn(void *arg)
{
	struct thr *c = arg;
	struct io_ctx *ctx;
	uint8_t *buf = io_alloc(12288);
	uint64_t x = 77 + c->t;
	if (io_ctx_create(16, &ctx) < 0 || !buf) {
		c->err = -ENOMEM;
		return NULL;
	}
	for (unsigned i = 0; i < c->nops && !c->err; i++) {
		uint64_t off;
		uint32_t len;
		if (rnd(&x) % 2) {
			uint64_t k = rnd(&x) % (16 * MiB / 4096 / 4) * 4 + c->t;
			off = k * 4096;
			len = 4096;
		} else {
			off = 16 * MiB + rnd(&x) % 64 * 4096 + c->t * 1024;
			len = 1000;
		}
		size_t shift = rnd(&x) % 2 ? 0 : 1 + rnd(&x) % 1000;
		fill_random(buf + shift, len, rnd(&x));
		int rc = bs_write(c->h, ctx, buf + shift, off, len, 0);
		if (rc < 0) {
			c->err = rc;
			break;
		}
		memcpy(c->r->data + off, buf + shift, len);
		/* Its own bytes read back while others rewrite their neighbours. */
		if (i % 3 == 0) {
			memset(buf + 6144, 0, len);
			rc = bs_read(c->h, ctx, buf + 6144 + (i % 2), off, len);
			if (rc == 0 && memcmp(buf + 6144 + (i % 2), c->r->data + off, len) != 0)
				rc = -EILSEQ;
			if (rc < 0)
				c->err = rc;
		}
		if (i % 64 == 0 && (rc = bs_flush(c->h, ctx)) < 0)
			c->err = rc;
	}
	io_ctx_free(ctx);
	io_free(buf);
	return NULL;
}

static void test_concurrent(void **state)
{
	(void)state;
	struct ref r;
	struct bs_handle *h = mkvol_open("conc", 20 * MiB, 0, NULL);
	struct thr c[4];
	pthread_t th[4];
	ref_init(&r, 20 * MiB);
	for (unsigned t = 0; t < 4; t++) {
		c[t] = (struct thr){.h = h, .r = &r, .t = t, .nops = 600};
		assert_int_equal(pthread_create(&th[t], NULL, conc_fn, &c[t]), 0);
	}
	for (unsigned t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(c[t].err, 0);
	}
	for (uint64_t off = 0; off < r.size; off += 4 * MiB)
		do_read(h, &r, off, 4 * MiB, 0);
	bs_handle_close(h);
	h = hopen("conc");
	for (uint64_t off = 0; off < r.size; off += 4 * MiB)
		do_read(h, &r, off, 4 * MiB, 0);
	bs_handle_close(h);
	ref_free(&r);
}

static void *bench_fn(void *arg)
{
	struct thr *c = arg;
	struct io_ctx *ctx;
	uint8_t *buf = io_alloc(4096);
	uint64_t x = 1234567 + c->t;
	if (io_ctx_create(8, &ctx) < 0 || !buf) {
		c->err = -ENOMEM;
		return NULL;
	}
	memset(buf, (int)c->t, 4096);
	while (!c->err && (c->ops % 64 || mono_s() < c->stop)) {
		uint64_t off = rnd(&x) % (c->size / 4096) * 4096;
		c->err = c->write ? bs_write(c->h, ctx, buf, off, 4096, 0)
				  : bs_read(c->h, ctx, buf, off, 4096);
		c->ops++;
	}
	io_ctx_free(ctx);
	io_free(buf);
	return NULL;
}

static double bench_run(struct bs_handle *h, bool write, uint64_t size)
{
	enum { NT = 16 };
	struct thr c[NT];
	pthread_t th[NT];
	uint64_t ops = 0;
	double t0 = mono_s();
	for (unsigned t = 0; t < NT; t++) {
		c[t] = (struct thr){.h = h, .t = t, .stop = t0 + 1.5, .write = write, .size = size};
		assert_int_equal(pthread_create(&th[t], NULL, bench_fn, &c[t]), 0);
	}
	for (unsigned t = 0; t < NT; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(c[t].err, 0);
		ops += c[t].ops;
	}
	return (double)ops / (mono_s() - t0);
}

static void test_bench(void **state)
{
	(void)state;
	const uint64_t size = 256 * MiB;
	uint8_t *b = io_alloc(MiB);
	fill_random(b, MiB, 42);
	for (unsigned rep = 1; rep <= 3; rep += 2) {
		char name[32];
		snprintf(name, sizeof(name), "bench%u", rep);
		struct bs_handle *h = mkvol_open(name, size, rep, NULL);
		double t0 = mono_s();
		for (uint64_t off = 0; off < size; off += MiB)
			assert_int_equal(bs_write(h, g_ctx, b, off, MiB, 0), 0);
		assert_int_equal(bs_flush(h, g_ctx), 0);
		double fill = mono_s() - t0;
		double w = bench_run(h, true, size);
		assert_int_equal(bs_flush(h, g_ctx), 0);
		double r = bench_run(h, false, size);
		printf("bench %u replica(s): fill 256 MiB at %.0f MiB/s; 4 KiB random, 16 threads: "
		       "write %.0f IOPS, read %.0f IOPS\n",
		       rep, 256 / fill, w, r);
		bs_handle_close(h);
	}
	io_free(b);
}

/* ---- power loss ---- */

#define PL_SIZE (32 * MiB)
#define PL_SLOT (256 * KiB) /* phase B: at most one write or zero per slot */

static void save_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fflush(f) || fsync(fileno(f)) || fclose(f))
		_exit(9);
}

static void load_file(const char *dir, const char *name, void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(p, 1, n, f), n);
	fclose(f);
}

/* The child: writes and zeroes, a flush (phase A: must survive exactly),
 * then more (phase B, acknowledged, not flushed: each 512-byte sector old
 * or new; whole-block zeroes are committed metadata: zero), then the power
 * goes out (_exit, nothing closed, the undo log holds every unsynced
 * write). */
static int powerloss_child(void)
{
	struct ref a, b;
	uint8_t *mask = calloc(1, PL_SIZE / 512), *zmask = calloc(1, PL_SIZE / VOL_BLOCK_SIZE);
	uint64_t x = 4242;
	g_powerloss = true;
	g_buf = io_alloc(4 * MiB + 8192);
	store_open();
	if (io_ctx_create(64, &g_ctx) < 0)
		_exit(8);
	struct bs_handle *h = mkvol_open("pl", PL_SIZE, 3, NULL);
	ref_init(&a, PL_SIZE);
	for (unsigned i = 0; i < 150; i++) {
		uint64_t off;
		uint32_t len;
		rnd_range(&x, a.size, &off, &len);
		if (rnd(&x) % 5 == 0)
			do_zero(h, &a, off, len, 0);
		else
			do_write(h, &a, off, len, rnd(&x) % 2 ? 0 : 1 + rnd(&x) % 4000, rnd(&x), 0);
	}
	if (bs_flush(h, g_ctx) < 0)
		_exit(7);
	save_file(g_dir, "refA", a.data, a.size);
	ref_copy(&b, &a);
	for (uint64_t slot = 0; slot < PL_SIZE / PL_SLOT; slot++) {
		uint64_t k = rnd(&x) % 4, base = slot * PL_SLOT;
		if (k == 0)
			continue;
		if (k == 3) { /* whole blocks zero: committed before the answer */
			uint64_t off = base + VOL_BLOCK_SIZE;
			do_zero(h, &b, off, 2 * VOL_BLOCK_SIZE, 0);
			zmask[off / VOL_BLOCK_SIZE] = zmask[off / VOL_BLOCK_SIZE + 1] = 1;
			continue;
		}
		uint64_t off = base + rnd(&x) % (PL_SLOT / 2);
		uint32_t len = (uint32_t)(1 + rnd(&x) % (PL_SLOT / 2));
		do_write(h, &b, off, len, rnd(&x) % 2 ? 0 : 1 + rnd(&x) % 4000, rnd(&x), 0);
		for (uint64_t s = off / 512; s <= (off + len - 1) / 512; s++)
			mask[s] = 1;
	}
	save_file(g_dir, "refB", b.data, b.size);
	save_file(g_dir, "maskB", mask, PL_SIZE / 512);
	save_file(g_dir, "zmaskB", zmask, PL_SIZE / VOL_BLOCK_SIZE);
	_exit(0); /* the power goes out: nothing closed, nothing synced */
}

static void test_powerloss(void **state)
{
	(void)state;
	char saved[sizeof(g_dir)], log[512];
	struct ref a, b;
	uint8_t *mask = malloc(PL_SIZE / 512), *zmask = malloc(PL_SIZE / VOL_BLOCK_SIZE);
	uint8_t *got = io_alloc(PL_SIZE);
	int st;
	store_close();
	memcpy(saved, g_dir, sizeof(g_dir));
	assert_int_equal(cs_test_tmpdir(g_dir, sizeof(g_dir), "bsiopl"), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("BSIO_CHILD", g_dir, 1);
		execl("/proc/self/exe", "test_bs_io", (char *)NULL);
		_exit(10);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	snprintf(log, sizeof(log), "%s/powerloss.log", g_dir);
	long reverted = io_powerloss_replay(log);
	printf("power loss: %ld unsynced writes reverted\n", reverted);
	assert_true(reverted >= 1);
	ref_init(&a, PL_SIZE);
	ref_init(&b, PL_SIZE);
	load_file(g_dir, "refA", a.data, PL_SIZE);
	load_file(g_dir, "refB", b.data, PL_SIZE);
	load_file(g_dir, "maskB", mask, PL_SIZE / 512);
	load_file(g_dir, "zmaskB", zmask, PL_SIZE / VOL_BLOCK_SIZE);
	store_open(); /* resyncs the extents with intents */
	assert_int_equal(count_intents(), 0);
	struct bs_handle *h = hopen("pl");
	for (uint64_t off = 0; off < PL_SIZE; off += 4 * MiB)
		assert_int_equal(bs_read(h, g_ctx, got + off, off, 4 * MiB), 0);
	unsigned oldn = 0, newn = 0;
	for (uint64_t s = 0; s < PL_SIZE / 512; s++) {
		const uint8_t *g = got + s * 512;
		if (zmask[s * 512 / VOL_BLOCK_SIZE]) {
			assert_memory_equal(g, b.data + s * 512, 512); /* zeroes */
		} else if (!mask[s]) {
			if (memcmp(g, a.data + s * 512, 512) != 0)
				fail_msg("sector %llu: flushed bytes lost", (unsigned long long)s);
		} else if (memcmp(g, b.data + s * 512, 512) == 0) {
			newn++;
		} else if (memcmp(g, a.data + s * 512, 512) == 0) {
			oldn++;
		} else {
			fail_msg("sector %llu: neither before nor after", (unsigned long long)s);
		}
	}
	printf("power loss: unflushed sectors: %u new, %u old\n", newn, oldn);
	bs_handle_close(h);
	/* Every replica of every extent file reads the same. */
	struct vol v = vol_load("pl");
	uint8_t *f0 = malloc(VOL_EXTENT_SIZE), *f1 = malloc(VOL_EXTENT_SIZE);
	unsigned files = 0;
	for (uint32_t gen = VOL_GEN_FIRST; gen <= v.gen; gen++)
		for (uint64_t i = 0; i < PL_SIZE / VOL_EXTENT_SIZE; i++) {
			uint32_t devs[8];
			char path[PATH_MAX];
			unsigned n = bs_extent_devs(g_bs, v.id, i, 3, devs);
			assert_int_equal(
			    bs_extent_path(g_bs, devs[0], v.id, gen, i, path, sizeof(path)), 0);
			if (access(path, F_OK) != 0)
				continue;
			read_file(path, f0, VOL_EXTENT_SIZE);
			files++;
			for (unsigned r = 1; r < n; r++) {
				assert_int_equal(
				    bs_extent_path(g_bs, devs[r], v.id, gen, i, path, sizeof(path)),
				    0);
				read_file(path, f1, VOL_EXTENT_SIZE);
				assert_memory_equal(f0, f1, VOL_EXTENT_SIZE);
			}
		}
	assert_true(files > 0);
	store_close();
	rm_rf(g_dir);
	memcpy(g_dir, saved, sizeof(g_dir));
	store_open();
	free(f0);
	free(f1);
	free(mask);
	free(zmask);
	io_free(got);
	ref_free(&a);
	ref_free(&b);
}

int main(void)
{
	if (getenv("BSIO_CHILD")) {
		snprintf(g_dir, sizeof(g_dir), "%s", getenv("BSIO_CHILD"));
		return powerloss_child();
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_powerloss),
	    cmocka_unit_test(test_handle_access),
	    cmocka_unit_test(test_random_snapshot_clone),
	    cmocka_unit_test(test_zero_fast),
	    cmocka_unit_test(test_zero_no_hole_issue6),
	    cmocka_unit_test(test_resync),
	    cmocka_unit_test(test_lost_replica_refilled_issue6),
	    cmocka_unit_test(test_failed_write_keeps_intent_issue6),
	    cmocka_unit_test(test_failed_close_keeps_intent_issue6),
	    cmocka_unit_test(test_intents_cleared),
	    cmocka_unit_test(test_enospc),
	    cmocka_unit_test(test_copy_blocks),
	    cmocka_unit_test(test_fd_bound),
	    cmocka_unit_test(test_concurrent),
	    cmocka_unit_test(test_bench),
	};
	g_buf = io_alloc(4 * MiB + 8192);
	if (getenv("BSIO_FILTER")) /* e.g. BSIO_FILTER=test_concurrent */
		cmocka_set_test_filter(getenv("BSIO_FILTER"));
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	io_free(g_buf);
	return rc;
}
