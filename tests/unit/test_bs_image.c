/* tests/unit/test_bs_image.c - volumes whose base is a chunk-store manifest
 * (VOL_RECF_IMAGE, bs_volume_create_from_manifest) and read-only snapshot
 * handles (bs_snapshot_open), over a real pool in a scratch directory
 * (issue 7).
 *
 * A manifest is written with cs_writer (random and zero regions, a size
 * that is not a multiple of 64 KiB); a volume made from it is read against
 * a reference (bytes plus a per-block state: base, written, zero) through
 * random unaligned writes, zeroes and trims, then snapshots, clones,
 * flatten, rollback and resize, checking reads and block status each time.
 * The manifest's reference count is read from its header record to check
 * that each volume holding the base takes and drops exactly one. Prints the
 * time of a volume create on a 1 GiB and a 10 GiB manifest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockstore/bs.h"
#include "blockstore/bs_internal.h"
#include "blockstore/nbd/nbd_server.h"
#include "chunkstore/chunkstore.h"
#include "chunkstore/cs_internal.h"
#include "core/fault.h"
#include "core/io.h"
#include "meta/meta.h"
#include "cs_test.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define BLK VOL_BLOCK_SIZE

static char g_dir[256];
static struct cs_pool *g_pool;
static struct bs_store *g_bs;
static struct io_ctx *g_ctx;
static uint64_t g_rng = 0x1234567;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int setup(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.seal_off = true, .gc_interval = -1};
	struct bs_opts bo = {0};
	if (cs_test_tmpdir(g_dir, sizeof(g_dir), "bsimg") < 0)
		return -1;
	o.data_dir = g_dir;
	bo.data_dir = g_dir;
	if (cs_pool_open(&o, &g_pool) < 0 || bs_open(g_pool, &bo, &g_bs) < 0)
		return -1;
	return io_ctx_create(64, &g_ctx);
}

static int teardown(void **state)
{
	(void)state;
	io_ctx_free(g_ctx);
	bs_close(g_bs);
	cs_pool_close(g_pool);
	rm_rf(g_dir);
	return 0;
}

/* ---- manifests ---- */

static int create_cb(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

static struct cs_mid make_manifest(const uint8_t *buf, size_t len, bool no_inline)
{
	struct cs_writer *w = NULL;
	struct cs_mid mid;
	assert_int_equal(cs_writer_open(g_pool, &w), 0);
	if (no_inline)
		cs_writer_set_no_inline(w);
	for (size_t o = 0; o < len; o += 8 * MiB) {
		size_t n = len - o < 8 * MiB ? len - o : 8 * MiB;
		assert_int_equal(cs_writer_write(w, buf + o, n), 0);
	}
	assert_int_equal(cs_writer_finish(w), 0);
	assert_int_equal(cs_commit(g_pool, w, create_cb, &mid), 0);
	cs_writer_free(w);
	return mid;
}

/* The manifest's refcount from its header record; -1 when it is gone. */
static long long refcount(const struct cs_mid *mid)
{
	struct meta_txn *t = NULL;
	struct cs_mhdr_rec h;
	uint8_t k[4 + CS_MID_LEN];
	const void *v;
	size_t vl;
	long long rc = -1;
	assert_int_equal(meta_txn_begin(cs_pool_meta(g_pool), false, &t), 0);
	size_t kl = cs_key_mhdr(k, cs_mid_part(g_pool, mid), mid);
	if (meta_get(t, META_T_MHDR, k, kl, &v, &vl) == 0 && vl >= sizeof(h)) {
		memcpy(&h, v, sizeof(h));
		rc = (long long)h.refcount;
	}
	meta_txn_abort(t);
	return rc;
}

static int ref_cb(struct cs_txn *t, void *arg)
{
	return cs_manifest_ref(t, arg);
}

static int unref_cb(struct cs_txn *t, void *arg)
{
	return cs_manifest_unref(t, arg);
}

static int mhdr_del_cb(struct cs_txn *t, void *arg)
{
	uint8_t k[4 + CS_MID_LEN];
	size_t kl = cs_key_mhdr(k, cs_mid_part(g_pool, arg), arg);
	return meta_del(cs_txn_meta(t), META_T_MHDR, k, kl);
}

/* Random bytes with zero regions (aligned and not), len bytes. */
static uint8_t *image_bytes(size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);
	assert_non_null(b);
	fill_random(b, len, seed);
	memset(b + 2 * MiB, 0, 3 * MiB);      /* whole blocks and extents */
	memset(b + 7 * MiB + 100, 0, 200000); /* unaligned */
	if (len > 9 * MiB)
		memset(b + 9 * MiB + 3 * KiB, 0,
		       len - 9 * MiB - 3 * KiB - 77); /* to near the end */
	return b;
}

/* ---- the reference model of a volume ---- */

enum st { ST_BASE = 0, ST_DATA = 1, ST_ZERO = 2 };

struct model {
	uint64_t size;	/* volume bytes */
	uint64_t msize; /* manifest bytes */
	uint8_t *bytes; /* size bytes */
	uint8_t *st;	/* per block */
};

static struct model *model_new(const uint8_t *img, uint64_t msize, uint64_t size)
{
	struct model *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->size = size;
	m->msize = msize;
	m->bytes = calloc(1, size);
	m->st = calloc(size / BLK, 1);
	assert_non_null(m->bytes);
	assert_non_null(m->st);
	memcpy(m->bytes, img, msize < size ? msize : size);
	return m;
}

static struct model *model_copy(const struct model *s)
{
	struct model *m = model_new(s->bytes, s->size, s->size);
	m->msize = s->msize;
	memcpy(m->st, s->st, s->size / BLK);
	return m;
}

static void model_free(struct model *m)
{
	if (!m)
		return;
	free(m->bytes);
	free(m->st);
	free(m);
}

/* What bs_write does: covered blocks become written. */
static void model_write(struct model *m, uint64_t off, uint64_t len, const uint8_t *src)
{
	memcpy(m->bytes + off, src, len);
	for (uint64_t b = off / BLK; b <= (off + len - 1) / BLK; b++)
		m->st[b] = ST_DATA;
}

/* bs_zero: whole blocks recorded zero; partial ones written with zeroes
 * (WRITE_ZEROES) unless they read zero already (a ZERO block), or left
 * alone (TRIM). */
static void model_zero(struct model *m, uint64_t off, uint64_t len, bool trim)
{
	for (uint64_t b = off / BLK; b <= (off + len - 1) / BLK; b++) {
		uint64_t s = b * BLK > off ? b * BLK : off;
		uint64_t e = (b + 1) * BLK < off + len ? (b + 1) * BLK : off + len;
		if (s == b * BLK && e == (b + 1) * BLK) {
			memset(m->bytes + s, 0, BLK);
			m->st[b] = ST_ZERO;
		} else if (!trim) {
			memset(m->bytes + s, 0, e - s);
			if (m->st[b] != ST_ZERO)
				m->st[b] = ST_DATA;
		}
	}
}

static unsigned model_flags(const struct model *m, uint64_t b)
{
	switch (m->st[b]) {
	case ST_DATA:
		return 0;
	case ST_BASE:
		return b * BLK < m->msize ? 0 : BS_STATE_HOLE | BS_STATE_ZERO;
	default:
		return BS_STATE_HOLE | BS_STATE_ZERO;
	}
}

/* ---- checks ---- */

static void check_range(struct bs_handle *h, const struct model *m, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(len + 1);
	assert_non_null(buf);
	/* +1: an unaligned buffer takes the bounce path. */
	assert_int_equal(bs_read(h, g_ctx, buf + 1, off, (uint32_t)len), 0);
	if (memcmp(buf + 1, m->bytes + off, len) != 0) {
		for (uint64_t i = 0; i < len; i++)
			if (buf[1 + i] != m->bytes[off + i]) {
				fail_msg("byte %llu: read %u, expected %u (block state %u)",
					 (unsigned long long)(off + i), buf[1 + i],
					 m->bytes[off + i], m->st[(off + i) / BLK]);
			}
	}
	free(buf);
}

static void check_all(struct bs_handle *h, const struct model *m)
{
	uint8_t *buf = io_alloc(8 * MiB);
	assert_non_null(buf);
	assert_int_equal(bs_handle_size(h), m->size);
	for (uint64_t off = 0; off < m->size; off += 8 * MiB) {
		uint64_t n = m->size - off < 8 * MiB ? m->size - off : 8 * MiB;
		assert_int_equal(bs_read(h, g_ctx, buf, off, (uint32_t)n), 0);
		if (memcmp(buf, m->bytes + off, n) != 0)
			check_range(h, m, off, n); /* names the first bad byte */
	}
	io_free(buf);
}

struct st_walk {
	const struct model *m;
	uint64_t next;
};

static int st_fn(uint64_t off, uint64_t len, unsigned flags, void *arg)
{
	struct st_walk *w = arg;
	assert_int_equal(off, w->next);
	assert_int_equal(off % BLK, 0);
	assert_int_equal(len % BLK, 0);
	for (uint64_t b = off / BLK; b < (off + len) / BLK; b++)
		if (model_flags(w->m, b) != flags)
			fail_msg("block %llu: status %u, expected %u (state %u)",
				 (unsigned long long)b, flags, model_flags(w->m, b), w->m->st[b]);
	w->next = off + len;
	return 0;
}

static void check_status(struct bs_handle *h, const struct model *m)
{
	struct st_walk w = {.m = m};
	while (w.next < m->size)
		assert_int_equal(bs_block_status(h, w.next, m->size - w.next, st_fn, &w), 0);
	assert_int_equal(w.next, m->size);
}

static void random_ops(struct bs_handle *h, struct model *m, unsigned n)
{
	uint8_t *src = malloc(512 * KiB);
	assert_non_null(src);
	for (unsigned i = 0; i < n; i++) {
		uint64_t len = 1 + rnd() % (300 * KiB), off;
		if (len > m->size)
			len = m->size;
		off = rnd() % (m->size - len + 1);
		unsigned op = (unsigned)(rnd() % 100);
		if (op < 50) {
			fill_random(src, len, rnd());
			assert_int_equal(bs_write(h, g_ctx, src, off, (uint32_t)len, 0), 0);
			model_write(m, off, len, src);
		} else if (op < 70) {
			assert_int_equal(bs_zero(h, g_ctx, off, len, 0), 0);
			model_zero(m, off, len, false);
		} else if (op < 85) {
			assert_int_equal(bs_zero(h, g_ctx, off, len, BS_TRIM), 0);
			model_zero(m, off, len, true);
		} else {
			check_range(h, m, off, len);
		}
	}
	free(src);
}

static struct bs_handle *attach_open(const char *name)
{
	char token[BS_TOKEN_LEN + 1], exp[VOL_NAME_MAX + BS_TOKEN_LEN + 2];
	struct bs_handle *h = NULL;
	assert_int_equal(bs_attach(g_bs, name, "host1", 0, token, NULL), 0);
	snprintf(exp, sizeof(exp), "%s@%s", name, token);
	assert_int_equal(bs_handle_open(g_bs, exp, &h), 0);
	return h;
}

static void close_detach(struct bs_handle *h, const char *name)
{
	bs_handle_close(h);
	assert_int_equal(bs_detach(g_bs, name, false), 0);
}

/* ---- tests ---- */

#define MSIZE (9 * MiB + 700 * KiB + 12345) /* not a multiple of 64 KiB */

/* Create, read, write, zero, trim; the volume's info; block status. */
static void test_image_volume_io(void **state)
{
	(void)state;
	uint8_t *img = image_bytes(MSIZE, 7);
	struct cs_mid mid = make_manifest(img, MSIZE, false);
	struct bs_vol_info vi;
	assert_int_equal(refcount(&mid), 1);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "img1", 0, mid.b, NULL, &vi), 0);
	assert_int_equal(refcount(&mid), 2);
	assert_true(vi.has_base);
	assert_true(vi.v.has_base);
	assert_false(vi.v.has_parent);
	assert_memory_equal(vi.base_mid, mid.b, CS_MID_LEN);
	assert_int_equal(vi.v.size, (MSIZE + BLK - 1) / BLK * BLK);
	assert_int_equal(vi.written_bytes, 0);

	struct model *m = model_new(img, MSIZE, vi.v.size);
	struct bs_handle *h = attach_open("img1");
	check_all(h, m);
	check_status(h, m);
	/* Reads that straddle the manifest's end and extent boundaries. */
	check_range(h, m, MSIZE - 1000, vi.v.size - (MSIZE - 1000));
	check_range(h, m, 4 * MiB - 333, 777);
	random_ops(h, m, 400);
	check_all(h, m);
	check_status(h, m);
	close_detach(h, "img1");

	/* The record survives a close and reopen of the store's view. */
	h = attach_open("img1");
	check_all(h, m);
	close_detach(h, "img1");
	assert_int_equal(bs_volume_delete(g_bs, "img1", false), 0);
	assert_int_equal(refcount(&mid), 1);
	assert_int_equal(cs_commit(g_pool, NULL, unref_cb, &mid), 0);
	assert_int_equal(refcount(&mid), 0);
	model_free(m);
	free(img);
}

/* Arguments and refusals; a failed create takes no reference. */
static void test_image_create_errors(void **state)
{
	(void)state;
	uint8_t *img = image_bytes(MSIZE, 8);
	struct cs_mid mid = make_manifest(img, MSIZE, false), none;
	struct bs_vol_info vi;
	memset(none.b, 0x5a, sizeof(none.b));
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "e1", 0, none.b, NULL, NULL),
			 CAIRN_ENOTFOUND);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "e1", MSIZE - 1, mid.b, NULL, NULL),
			 CAIRN_EINVAL);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "", 0, mid.b, NULL, NULL),
			 CAIRN_EINVAL);
	assert_int_equal(refcount(&mid), 1);
	/* Any size from the manifest's up, rounded to 64 KiB. */
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "e1", MSIZE, mid.b, NULL, &vi), 0);
	assert_int_equal(vi.v.size, (MSIZE + BLK - 1) / BLK * BLK);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "e1", 0, mid.b, NULL, NULL),
			 CAIRN_EEXISTS);
	assert_int_equal(refcount(&mid), 2);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "e2", 64 * MiB, mid.b, NULL, &vi), 0);
	assert_int_equal(vi.v.size, 64 * MiB);
	assert_int_equal(refcount(&mid), 3);
	/* Past the manifest: zeroes, holes. */
	struct model *m = model_new(img, MSIZE, 64 * MiB);
	struct bs_handle *h = attach_open("e2");
	check_all(h, m);
	check_status(h, m);
	close_detach(h, "e2");
	assert_int_equal(bs_volume_delete(g_bs, "e1", false), 0);
	assert_int_equal(bs_volume_delete(g_bs, "e2", false), 0);
	/* The registry's own reference goes: the manifest is dead, and a
	 * dead manifest makes no volume. */
	assert_int_equal(cs_commit(g_pool, NULL, unref_cb, &mid), 0);
	assert_int_equal(refcount(&mid), 0);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "e3", 0, mid.b, NULL, NULL),
			 CAIRN_ENOTFOUND);
	assert_int_equal(bs_volume_get(g_bs, "e3", &vi), CAIRN_ENOTFOUND);
	model_free(m);
	free(img);
}

/* Snapshot handles, clones (the base through the chain), flatten (the
 * clone takes the base over), delete order and the manifest's refcount. */
static void test_image_snapshot_clone_flatten(void **state)
{
	(void)state;
	uint8_t *img = image_bytes(MSIZE, 9), *buf = malloc(64 * KiB);
	struct cs_mid mid = make_manifest(img, MSIZE, false);
	struct bs_vol_info vi;
	struct bs_handle *h, *sh, *ch, *sh2;
	assert_non_null(buf);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "root", 0, mid.b, NULL, &vi), 0);
	struct model *m = model_new(img, MSIZE, vi.v.size);
	h = attach_open("root");
	random_ops(h, m, 150);
	assert_int_equal(bs_snapshot_create(g_bs, "root", "s1", NULL), 0);
	struct model *ms = model_copy(m);
	random_ops(h, m, 150); /* the head moves on; s1 stays */

	/* A read-only handle on s1. */
	assert_int_equal(bs_snapshot_open(g_bs, "root", "nosuch", &sh), CAIRN_ENOTFOUND);
	assert_int_equal(bs_snapshot_open(g_bs, "nosuch", "s1", &sh), CAIRN_ENOTFOUND);
	assert_int_equal(bs_snapshot_open(g_bs, "root", "s1", &sh), 0);
	assert_false(bs_handle_revoked(sh));
	check_all(sh, ms);
	check_status(sh, ms);
	assert_int_equal(bs_write(sh, g_ctx, buf, 0, 4096, 0), -EROFS);
	assert_int_equal(bs_zero(sh, g_ctx, 0, BLK, 0), -EROFS);
	assert_int_equal(bs_flush(sh, g_ctx), 0);
	assert_int_equal(bs_snapshot_delete(g_bs, "root", "s1", false), -EBUSY);
	check_all(h, m); /* the head is unaffected */

	/* A clone of s1 reads the base through root. */
	assert_int_equal(bs_volume_clone(g_bs, "root", "s1", "c1", NULL, &vi), 0);
	assert_true(vi.has_parent);
	assert_false(vi.v.has_base);
	assert_true(vi.has_base); /* down the chain */
	assert_memory_equal(vi.base_mid, mid.b, CS_MID_LEN);
	assert_int_equal(refcount(&mid), 2); /* the clone holds none */
	struct model *mc = model_copy(ms);
	ch = attach_open("c1");
	check_all(ch, mc);
	check_status(ch, mc);
	random_ops(ch, mc, 150);
	check_all(ch, mc);

	/* Flatten: c1 takes the base over with its own reference. */
	bs_handle_close(sh);
	assert_int_equal(bs_snapshot_delete(g_bs, "root", "s1", true), 0);
	assert_int_equal(bs_volume_get(g_bs, "c1", &vi), 0);
	assert_false(vi.has_parent);
	assert_true(vi.v.has_base);
	assert_memory_equal(vi.v.base_mid, mid.b, CS_MID_LEN);
	assert_int_equal(refcount(&mid), 3);
	check_all(ch, mc); /* the open handle reads the same bytes */
	check_status(ch, mc);
	random_ops(ch, mc, 100);
	check_all(ch, mc);
	check_all(h, m);

	/* A snapshot of the flattened clone, its handle, the volume delete
	 * refused while it is open. */
	assert_int_equal(bs_snapshot_create(g_bs, "c1", "cs", NULL), 0);
	struct model *mcs = model_copy(mc);
	assert_int_equal(bs_snapshot_open(g_bs, "c1", "cs", &sh2), 0);
	random_ops(ch, mc, 50);
	check_all(sh2, mcs);
	close_detach(ch, "c1");
	assert_int_equal(bs_volume_delete(g_bs, "c1", true), -EBUSY);
	check_all(sh2, mcs);
	bs_handle_close(sh2);

	/* Delete order: each holder drops its own reference. */
	close_detach(h, "root");
	assert_int_equal(bs_volume_delete(g_bs, "root", true), 0);
	assert_int_equal(refcount(&mid), 2);
	ch = attach_open("c1");
	check_all(ch, mc); /* the base outlives the volume it came with */
	close_detach(ch, "c1");
	assert_int_equal(cs_commit(g_pool, NULL, unref_cb, &mid), 0); /* the image goes */
	assert_int_equal(refcount(&mid), 1);
	ch = attach_open("c1");
	check_all(ch, mc); /* ... and the image */
	close_detach(ch, "c1");
	assert_int_equal(bs_volume_delete(g_bs, "c1", true), 0);
	assert_int_equal(refcount(&mid), 0);
	model_free(m);
	model_free(ms);
	model_free(mc);
	model_free(mcs);
	free(buf);
	free(img);
}

static int diff_fn(uint64_t off, uint64_t len, bool zero, void *arg)
{
	(void)off;
	(void)zero;
	*(uint64_t *)arg += len;
	return 0;
}

/* Rollback, grow (past the base: zeroes), shrink with force (the cut-off
 * blocks never show the base again), a snapshot handle over a shrink,
 * snapshot diff, fsck. */
static void test_image_rollback_resize_fsck(void **state)
{
	(void)state;
	uint8_t *img = image_bytes(MSIZE, 10);
	struct cs_mid mid = make_manifest(img, MSIZE, false);
	struct bs_check_report rep;
	struct bs_vol_info vi;
	struct bs_handle *h, *sh;
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "rv", 0, mid.b, NULL, &vi), 0);
	uint64_t size0 = vi.v.size;
	struct model *m = model_new(img, MSIZE, size0);
	h = attach_open("rv");
	random_ops(h, m, 100);
	assert_int_equal(bs_snapshot_create(g_bs, "rv", "a", NULL), 0);
	struct model *ma = model_copy(m);
	random_ops(h, m, 100);
	close_detach(h, "rv");
	assert_int_equal(bs_volume_rollback(g_bs, "rv", "a"), 0);
	h = attach_open("rv");
	check_all(h, ma);
	check_status(h, ma);

	/* Grow online: the new blocks read zero (past the manifest). */
	assert_int_equal(bs_volume_resize(g_bs, "rv", size0 + 8 * MiB, false), 0);
	struct model *mg = model_new(img, MSIZE, size0 + 8 * MiB);
	memcpy(mg->bytes, ma->bytes, size0);
	memcpy(mg->st, ma->st, size0 / BLK);
	check_all(h, mg);
	check_status(h, mg);
	close_detach(h, "rv");

	/* Shrink to 3 MiB (force), then grow back: zeroes, not the base. */
	assert_int_equal(bs_snapshot_open(g_bs, "rv", "a", &sh), 0);
	assert_int_equal(bs_volume_resize(g_bs, "rv", 3 * MiB, true), 0);
	assert_int_equal(bs_volume_resize(g_bs, "rv", size0, false), 0);
	struct model *mz = model_copy(ma);
	model_zero(mz, 3 * MiB, size0 - 3 * MiB, false);
	h = attach_open("rv");
	check_all(h, mz);
	check_status(h, mz);
	check_all(sh, ma); /* the snapshot keeps its view and size */
	check_status(sh, ma);
	bs_handle_close(sh);
	close_detach(h, "rv");

	/* Diff from nothing: a base volume differs everywhere it has bytes. */
	uint64_t covered = 0;
	uint64_t expect = 0;
	for (uint64_t b = 0; b < size0 / BLK; b++)
		expect += ma->st[b] != ST_ZERO ? BLK : 0; /* zero blocks equal nothing */
	assert_int_equal(bs_snapshot_diff(g_bs, "rv", NULL, "a", diff_fn, &covered), 0);
	assert_int_equal(covered, expect);
	assert_true(expect > size0 / 2);

	assert_int_equal(bs_fsck(g_bs, false, &rep), 0);
	assert_int_equal(rep.bad_records, 0);
	/* The base manifest lost (its header gone): fsck says so. */
	assert_int_equal(cs_commit(g_pool, NULL, mhdr_del_cb, &mid), 0);
	assert_int_equal(bs_fsck(g_bs, false, &rep), 0);
	assert_int_equal(rep.bad_records, 1);
	/* The volume can still be deleted. */
	assert_int_equal(bs_volume_delete(g_bs, "rv", true), 0);
	assert_int_equal(bs_fsck(g_bs, false, &rep), 0);
	assert_int_equal(rep.bad_records, 0);
	model_free(m);
	model_free(ma);
	model_free(mg);
	model_free(mz);
	free(img);
}

/* A base read that fails fails the read (and a copy-up write), not
 * with zeroes. */
static void test_image_base_read_fails(void **state)
{
	(void)state;
	uint8_t *img = image_bytes(MSIZE, 11), *buf = io_alloc(128 * KiB);
	struct cs_mid mid = make_manifest(img, MSIZE, false);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "bf", 0, mid.b, NULL, NULL), 0);
	struct bs_handle *h = attach_open("bf");
#ifndef CAIRN_FAULTS
	close_detach(h, "bf");
	assert_int_equal(bs_volume_delete(g_bs, "bf", false), 0);
	io_free(buf);
	free(img);
	skip();
#endif
	fault_arm("bs.base_read", 1);
	assert_int_equal(bs_read(h, g_ctx, buf, 0, 128 * KiB), -EIO);
	assert_int_equal(bs_write(h, g_ctx, buf, 100, 1000, 0), -EIO);
	fault_arm("bs.base_read", 0);
	assert_int_equal(bs_read(h, g_ctx, buf, 0, 128 * KiB), 0);
	assert_memory_equal(buf, img, 128 * KiB);
	close_detach(h, "bf");
	assert_int_equal(bs_volume_delete(g_bs, "bf", false), 0);
	io_free(buf);
	free(img);
}

/* Constant time: a volume on a 1 GiB and on a 10 GiB manifest (the 10 GiB
 * one is ten references of the 1 GiB one, concatenated). Printed. */
static int concat_cb(struct cs_txn *t, void *arg)
{
	struct cs_mid *m = arg; /* m[0..9] parts, m[10] out */
	return cs_manifest_concat(t, m, 10, &m[10]);
}

static int all_data_fn(uint64_t off, uint64_t len, unsigned flags, void *arg)
{
	assert_int_equal(off, *(uint64_t *)arg);
	assert_int_equal(flags, 0);
	*(uint64_t *)arg += len;
	return 0;
}

static void test_image_create_time(void **state)
{
	(void)state;
	uint64_t len = 1 * GiB;
	uint8_t *img = calloc(1, len);
	struct cs_mid parts[11];
	struct bs_vol_info vi;
	double t0, t1, t2;
	assert_non_null(img);
	fill_random(img, 4 * MiB, 12);
	fill_random(img + len - 3 * MiB, 3 * MiB, 13);
	parts[0] = make_manifest(img, len, true);
	for (int i = 1; i < 10; i++) {
		parts[i] = parts[0];
		assert_int_equal(cs_commit(g_pool, NULL, ref_cb, &parts[0]), 0);
	}
	assert_int_equal(cs_commit(g_pool, NULL, ref_cb, &parts[0]), 0); /* ours */
	assert_int_equal(cs_commit(g_pool, NULL, concat_cb, parts), 0);

	t0 = mono_ms();
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "t1g", 0, parts[0].b, NULL, &vi), 0);
	t1 = mono_ms();
	assert_int_equal(vi.v.size, len);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "t10g", 0, parts[10].b, NULL, &vi),
			 0);
	t2 = mono_ms();
	assert_int_equal(vi.v.size, 10 * len);
	print_message("volume create from a manifest: 1 GiB %.2f ms, 10 GiB %.2f ms\n", t1 - t0,
		      t2 - t1);

	/* The 10 GiB volume reads the 1 GiB pattern ten times. */
	struct bs_handle *h = attach_open("t10g");
	uint8_t *buf = io_alloc(8 * MiB);
	assert_non_null(buf);
	for (uint64_t k = 0; k < 10; k += 3) {
		assert_int_equal(bs_read(h, g_ctx, buf, k * len, 8 * MiB), 0);
		assert_memory_equal(buf, img, 8 * MiB);
		assert_int_equal(bs_read(h, g_ctx, buf, k * len + len - 8 * MiB, 8 * MiB), 0);
		assert_memory_equal(buf, img + len - 8 * MiB, 8 * MiB);
	}
	/* Block status: all data (a base block is data inside the manifest). */
	uint64_t data = 0;
	while (data < 10 * len)
		assert_int_equal(bs_block_status(h, data, 10 * len - data, all_data_fn, &data), 0);
	close_detach(h, "t10g");
	io_free(buf);
	assert_int_equal(bs_volume_delete(g_bs, "t1g", false), 0);
	assert_int_equal(bs_volume_delete(g_bs, "t10g", false), 0);
	free(img);
}

/* Threads share the volume's base readers (borrowed, returned, cached up
 * to BS_BASE_READERS) while others copy up: every read still matches. */
struct thr {
	struct bs_handle *h;
	const uint8_t *img;
	unsigned id;
	int bad;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct io_ctx *ctx = NULL;
	uint8_t *buf = io_alloc(256 * KiB), *w = malloc(8 * KiB);
	uint64_t x = t->id + 1;
	if (!buf || !w || io_ctx_create(16, &ctx) < 0) {
		t->bad = -1;
		goto out;
	}
	for (unsigned i = 0; i < 300 && !t->bad; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* Writes (copy-ups) in a block of the thread's own, past the
		 * reads: [5 MiB + id * 64 KiB, + 64 KiB). */
		if (i % 10 == 0) {
			uint64_t off = 5 * MiB + t->id * 64 * KiB + x % (56 * KiB);
			memset(w, (int)t->id + 1, 8 * KiB);
			if (bs_write(t->h, ctx, w, off, 8 * KiB, 0) < 0)
				t->bad = 1;
			continue;
		}
		uint64_t off = (x % 1000) * 4096; /* below 4.3 MiB: never written */
		uint32_t len = (uint32_t)(4096 * (1 + (x >> 20) % 64));
		if (bs_read(t->h, ctx, buf, off, len) < 0 || memcmp(buf, t->img + off, len))
			t->bad = 2;
	}
out:
	io_ctx_free(ctx);
	io_free(buf);
	free(w);
	return NULL;
}

static void test_image_concurrent_readers(void **state)
{
	(void)state;
	uint8_t *img = image_bytes(MSIZE, 15);
	struct cs_mid mid = make_manifest(img, MSIZE, false);
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "conc", 0, mid.b, NULL, NULL), 0);
	struct bs_handle *h = attach_open("conc");
	pthread_t th[12];
	struct thr t[12];
	for (unsigned i = 0; i < 12; i++) {
		t[i] = (struct thr){.h = h, .img = img, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
	}
	for (unsigned i = 0; i < 12; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].bad, 0);
	}
	close_detach(h, "conc");
	assert_int_equal(bs_volume_delete(g_bs, "conc", false), 0);
	free(img);
}

/* A cached base reader holds a chunk-store grace epoch: the sweeper frees
 * it once idle, so a GC pass under an idle open volume finishes (it would
 * wait forever for a reader kept until the volume closes). */
static void test_image_reader_epoch_released(void **state)
{
	(void)state;
	uint8_t *img = image_bytes(MSIZE, 16), *buf = io_alloc(MiB);
	struct cs_mid mid = make_manifest(img, MSIZE, false);
	struct cs_check_report rep;
	struct bs_vol_info vi;
	struct bs_vol *vol;
	assert_int_equal(bs_volume_create_from_manifest(g_bs, "ep", 0, mid.b, NULL, &vi), 0);
	struct bs_handle *h = attach_open("ep");
	assert_int_equal(bs_read(h, g_ctx, buf, 0, MiB), 0);
	assert_memory_equal(buf, img, MiB);
	assert_int_equal(bs_vol_get(g_bs, vi.v.id, &vol), 0);
	pthread_mutex_lock(&vol->base_mu);
	assert_int_equal(vol->base_nfree, 1); /* cached for the next read */
	pthread_mutex_unlock(&vol->base_mu);
	double t0 = mono_ms();
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(cs_gc(g_pool, &rep, NULL, NULL), 0);
	print_message("GC pass under an idle base volume: %.0f ms\n", mono_ms() - t0);
	pthread_mutex_lock(&vol->base_mu);
	assert_int_equal(vol->base_nfree, 0); /* the sweeper freed it */
	pthread_mutex_unlock(&vol->base_mu);
	bs_vol_put(g_bs, vol);
	assert_int_equal(bs_read(h, g_ctx, buf, MiB, MiB), 0); /* a new one */
	assert_memory_equal(buf, img + MiB, MiB);
	close_detach(h, "ep");
	assert_int_equal(bs_volume_delete(g_bs, "ep", false), 0);
	io_free(buf);
	free(img);
}

/* ---- real clients over NBD ---- */

static bool have_tool(const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* Runs cmd; its exit status, its output (stdout and stderr) in out. */
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

/* The NBD server serves a base volume through bs_* unchanged: qemu-img
 * compare against the image file, nbdinfo --map sees data then holes past
 * the manifest, a qemu-io write over the base reads back. */
static void test_image_nbd_clients(void **state)
{
	(void)state;
	struct nbd_server_config cfg = {.listen = "127.0.0.1:0", .workers = 2, .max_conns = 8};
	char err[256], uri[512], cmd[2048], file[300], token[BS_TOKEN_LEN + 1];
	struct nbd_server *srv = NULL;
	char *out = malloc(65536);
	assert_non_null(out);
	if (!have_tool("nbdinfo") || !have_tool("qemu-img") || !have_tool("qemu-io")) {
		free(out);
		skip();
	}
	uint8_t *img = image_bytes(MSIZE, 14);
	struct cs_mid mid = make_manifest(img, MSIZE, false);
	snprintf(file, sizeof(file), "%s/image.raw", g_dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(img, 1, MSIZE, f), MSIZE);
	fclose(f);
	assert_int_equal(
	    bs_volume_create_from_manifest(g_bs, "nbdimg", MSIZE + 16 * MiB, mid.b, NULL, NULL), 0);
	assert_int_equal(bs_attach(g_bs, "nbdimg", "host1", 0, token, NULL), 0);
	assert_int_equal(nbd_server_start(&cfg, g_bs, &srv, err, sizeof(err)), 0);
	snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%u/nbdimg@%s", nbd_server_port(srv), token);

	/* The extra 16 MiB read zero: compare accepts a longer target then. */
	snprintf(cmd, sizeof(cmd), "qemu-img compare -f raw -F raw '%s' '%s'", file, uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	assert_non_null(strstr(out, "identical"));
	snprintf(cmd, sizeof(cmd), "nbdinfo --map '%s'", uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	char expect[128];
	uint64_t dend = (MSIZE + BLK - 1) / BLK * BLK;
	snprintf(expect, sizeof(expect), "%10llu  %10llu    0  data", 0ull,
		 (unsigned long long)dend);
	if (!strstr(out, expect))
		fail_msg("nbdinfo --map: no \"%s\" in:\n%s", expect, out);
	snprintf(expect, sizeof(expect), "%10llu  %10llu    3  hole,zero", (unsigned long long)dend,
		 (unsigned long long)(16 * MiB)); /* rounded size */
	if (!strstr(out, expect))
		fail_msg("nbdinfo --map: no \"%s\" in:\n%s", expect, out);
	snprintf(cmd, sizeof(cmd),
		 "qemu-io -f raw '%s' -c 'write -P 0x5c 1000 3000' -c 'read -P 0x5c 1000 3000' "
		 "-c 'flush'",
		 uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	if (strstr(out, "fail") || strstr(out, "error") || strstr(out, "Error"))
		fail_msg("qemu-io: %s", out);
	memset(img + 1000, 0x5c, 3000);
	f = fopen(file, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(img, 1, MSIZE, f), MSIZE);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "qemu-img compare -f raw -F raw '%s' '%s'", file, uri);
	assert_int_equal(run(cmd, out, 65536), 0);
	assert_non_null(strstr(out, "identical"));
	nbd_server_stop(srv);
	assert_int_equal(bs_detach(g_bs, "nbdimg", false), 0);
	assert_int_equal(bs_volume_delete(g_bs, "nbdimg", false), 0);
	free(img);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_image_volume_io),
	    cmocka_unit_test(test_image_create_errors),
	    cmocka_unit_test(test_image_snapshot_clone_flatten),
	    cmocka_unit_test(test_image_rollback_resize_fsck),
	    cmocka_unit_test(test_image_base_read_fails),
	    cmocka_unit_test(test_image_create_time),
	    cmocka_unit_test(test_image_concurrent_readers),
	    cmocka_unit_test(test_image_reader_epoch_released),
	    cmocka_unit_test(test_image_nbd_clients),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
