/* tests/unit/test_bs_admin.c - blockstore/bs_admin.c and bs_fsck.c: volume,
 * snapshot and attachment operations and their refusals (exact codes),
 * attachment tokens and leases, flatten, fsck, over a real pool in a
 * temporary directory (issue 6).
 *
 * Extent records are put directly with vol_map_write in commits (no data),
 * so most tests need no volume I/O. The data-dependent parts (flatten with
 * written blocks, fsck --fix of a lost replica) need the real bs_io.c; with
 * the placeholder (every I/O call -ENOSYS) they are skipped, and say so.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "blockstore/bs.h"
#include "blockstore/bs_internal.h"
#include "blockstore/bs_io_internal.h"
#include "chunkstore/chunkstore.h"
#include "core/fault.h"
#include "core/io.h"
#include "cs_test.h"
#include "meta/meta.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

struct fx {
	char dir[256];
	struct cs_pool *pool;
	struct bs_store *bs;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct cs_pool_opts o = {0};
	struct bs_opts bo = {0};
	if (!f || cs_test_tmpdir(f->dir, sizeof(f->dir), "bsadmin") < 0)
		return -1;
	o.data_dir = f->dir;
	o.seal_off = true;
	o.gc_interval = -1;
	if (cs_pool_open(&o, &f->pool) < 0)
		return -1;
	bo.data_dir = f->dir;
	if (bs_open(f->pool, &bo, &f->bs) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	bs_close(f->bs);
	cs_pool_close(f->pool);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* True when the real bs_io.c is linked (the placeholder answers -ENOSYS). */
static bool have_io(struct fx *f)
{
	struct bs_handle *h = NULL;
	int rc = bs_handle_open(f->bs, "nosuchvolume@00", &h);
	bs_handle_close(h);
	return rc != -ENOSYS;
}

static struct bs_vol_info *info(struct fx *f, const char *name)
{
	static struct bs_vol_info vi;
	assert_int_equal(bs_volume_get(f->bs, name, &vi), 0);
	return &vi;
}

static void mkvol(struct fx *f, const char *name, uint64_t size)
{
	assert_int_equal(bs_volume_create(f->bs, name, size, NULL, NULL), 0);
}

/* ---- direct record changes (what I/O would have done) ---- */

struct recs {
	const char *name;
	uint64_t first, step, n; /* extents first, first+step, ... */
	uint64_t off, len;	 /* inside each extent */
	enum vol_write_kind kind;
};

/* Puts extent records through vol_map_write in commits of 256 extents. */
struct recs_arg {
	struct fx *f;
	struct recs r;
	uint64_t from, to;
};

static int recs_batch_cb(struct cs_txn *txn, void *arg)
{
	struct recs_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct vol_write_out wo;
	struct vol v;
	int rc = vol_get(t, bs_part(a->f->bs, a->r.name), a->r.name, &v);
	for (uint64_t i = a->from; i < a->to && rc == 0; i++)
		rc = vol_map_write(t, &v, a->r.first + i * a->r.step, (uint32_t)a->r.off,
				   (uint32_t)a->r.len, a->r.kind, &wo);
	return rc;
}

static void put_recs(struct fx *f, const struct recs *r)
{
	struct recs_arg a = {.f = f, .r = *r};
	for (uint64_t i = 0; i < r->n; i += 256) {
		a.from = i;
		a.to = i + 256 < r->n ? i + 256 : r->n;
		assert_int_equal(bs_commit(f->bs, recs_batch_cb, &a), 0);
	}
}

static void write_blocks(struct fx *f, const char *name, uint64_t index, unsigned first_blk,
			 unsigned nblk)
{
	struct recs r = {.name = name,
			 .first = index,
			 .step = 1,
			 .n = 1,
			 .off = (uint64_t)first_blk * VOL_BLOCK_SIZE,
			 .len = (uint64_t)nblk * VOL_BLOCK_SIZE,
			 .kind = VOL_WRITE};
	put_recs(f, &r);
}

/* The committed record as a test with the store's internals sees it. */
static struct vol getv(struct fx *f, const char *name)
{
	struct meta_txn *t;
	struct vol v;
	assert_int_equal(meta_txn_begin(f->bs->meta, false, &t), 0);
	assert_int_equal(vol_get(t, bs_part(f->bs, name), name, &v), 0);
	meta_txn_abort(t);
	return v;
}

/* Holds the volume open as a handle would (nhandles + 1). */
static struct bs_vol *fake_handle(struct fx *f, const char *name)
{
	struct vol v = getv(f, name);
	struct bs_vol *vol = NULL;
	assert_int_equal(bs_vol_get(f->bs, v.id, &vol), 0);
	atomic_fetch_add(&vol->nhandles, 1);
	return vol;
}

static void fake_close(struct fx *f, struct bs_vol *vol)
{
	atomic_fetch_sub(&vol->nhandles, 1);
	bs_vol_put(f->bs, vol);
}

/* ---- volumes ---- */

static int list_fn(const struct bs_vol_info *vi, void *arg)
{
	char *names = arg;
	strcat(names, vi->v.name);
	strcat(names, ",");
	return strcmp(vi->v.name, "stop") == 0 ? 42 : 0;
}

static void test_volume_create_get_list_refusals(void **state)
{
	struct fx *f = *state;
	struct vol_opts o = {.replicas = 1, .iops_limit = 100, .bps_limit = 10 * MIB};
	struct bs_vol_info vi;
	char longname[VOL_NAME_MAX + 2];
	char names[1024] = "";

	assert_int_equal(bs_volume_create(f->bs, "v1", 1 * GIB, NULL, &vi), 0);
	assert_string_equal(vi.v.name, "v1");
	assert_int_equal(vi.v.size, 1 * GIB);
	assert_int_equal(vi.v.replicas, 3); /* min(3, the ring's 3) */
	assert_int_equal(vi.v.state, VOL_AVAILABLE);
	assert_int_equal(vi.nsnaps, 0);
	assert_int_equal(vi.written_bytes, 0);
	assert_false(vi.attached);
	assert_false(vi.has_parent);
	assert_int_equal(vi.connections, 0);
	assert_int_equal(bs_volume_create(f->bs, "v1", 1 * GIB, NULL, NULL), CAIRN_EEXISTS);
	/* Sizes: 0 and non-multiples of 512 refused; 512 rounds up to 64 KiB. */
	assert_int_equal(bs_volume_create(f->bs, "z", 0, NULL, NULL), CAIRN_EINVAL);
	assert_int_equal(bs_volume_create(f->bs, "z", 1000, NULL, NULL), CAIRN_EINVAL);
	assert_int_equal(bs_volume_create(f->bs, "z", UINT64_MAX - 511, NULL, NULL), CAIRN_EINVAL);
	assert_int_equal(bs_volume_create(f->bs, "small", 512, NULL, &vi), 0);
	assert_int_equal(vi.v.size, VOL_BLOCK_SIZE);
	assert_int_equal(bs_volume_create(f->bs, "odd", 1 * MIB + 512, NULL, &vi), 0);
	assert_int_equal(vi.v.size, 1 * MIB + VOL_BLOCK_SIZE);
	/* Names: empty, too long. */
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	assert_int_equal(bs_volume_create(f->bs, "", 1 * GIB, NULL, NULL), CAIRN_EINVAL);
	assert_int_equal(bs_volume_create(f->bs, longname, 1 * GIB, NULL, NULL), CAIRN_EINVAL);
	longname[VOL_NAME_MAX] = 0;
	assert_int_equal(bs_volume_create(f->bs, longname, 1 * GIB, NULL, NULL), 0);
	/* Replicas: 1..the ring's copies. */
	o.replicas = 4;
	assert_int_equal(bs_volume_create(f->bs, "r4", 1 * GIB, &o, NULL), CAIRN_EINVAL);
	o.replicas = 1;
	assert_int_equal(bs_volume_create(f->bs, "r1", 1 * GIB, &o, &vi), 0);
	assert_int_equal(vi.v.replicas, 1);
	assert_int_equal(vi.v.iops_limit, 100);
	assert_int_equal(vi.v.bps_limit, 10 * MIB);
	/* get/list. */
	assert_int_equal(bs_volume_get(f->bs, "nope", &vi), CAIRN_ENOTFOUND);
	assert_int_equal(bs_volume_get(f->bs, "", &vi), CAIRN_EINVAL);
	assert_int_equal(bs_volume_list(f->bs, list_fn, names), 0);
	assert_int_equal(strlen(names), strlen("v1,small,odd,r1,") + VOL_NAME_MAX + 1);
	assert_non_null(strstr(names, "v1,"));
	assert_non_null(strstr(names, "r1,"));
	mkvol(f, "stop", 1 * MIB);
	assert_int_equal(bs_volume_list(f->bs, list_fn, names), 42);
	/* Delete: gone from get and list. */
	assert_int_equal(bs_volume_delete(f->bs, "small", false), 0);
	assert_int_equal(bs_volume_get(f->bs, "small", &vi), CAIRN_ENOTFOUND);
	assert_int_equal(bs_volume_delete(f->bs, "small", false), CAIRN_ENOTFOUND);
	names[0] = 0;
	assert_int_equal(bs_volume_delete(f->bs, "stop", false), 0);
	assert_int_equal(bs_volume_list(f->bs, list_fn, names), 0);
	assert_null(strstr(names, "small,"));
}

static void test_volume_resize_qos_reach_open_handles(void **state)
{
	struct fx *f = *state;
	char tok[BS_TOKEN_LEN + 1];
	struct bs_vol *vol;

	mkvol(f, "v", 1 * GIB);
	vol = fake_handle(f, "v");
	/* Grow online: the open volume sees it at once. */
	assert_int_equal(bs_volume_resize(f->bs, "v", 2 * GIB, false), 0);
	assert_int_equal(info(f, "v")->v.size, 2 * GIB);
	assert_int_equal(vol->v.size, 2 * GIB);
	assert_int_equal(info(f, "v")->connections, 1);
	/* Shrink: needs force, and detached. */
	assert_int_equal(bs_volume_resize(f->bs, "v", 1 * GIB, false), CAIRN_EINVAL);
	assert_int_equal(bs_volume_resize(f->bs, "v", 0, false), CAIRN_EINVAL);
	assert_int_equal(bs_volume_resize(f->bs, "v", 1 * GIB + 100, false), CAIRN_EINVAL);
	assert_int_equal(bs_attach(f->bs, "v", "hv1", 0, tok, NULL), 0);
	assert_int_equal(bs_volume_resize(f->bs, "v", 1 * GIB, true), -EBUSY);
	assert_int_equal(bs_volume_resize(f->bs, "v", 3 * GIB, false), 0); /* grow attached */
	assert_int_equal(bs_detach(f->bs, "v", true), 0);
	assert_int_equal(bs_volume_resize(f->bs, "v", 1 * GIB, true), 0);
	assert_int_equal(vol->v.size, 1 * GIB);
	assert_int_equal(bs_volume_resize(f->bs, "nope", 1 * GIB, true), CAIRN_ENOTFOUND);
	/* QoS reaches the open volume's record. */
	assert_int_equal(bs_volume_set_qos(f->bs, "v", 500, 20 * MIB), 0);
	assert_int_equal(vol->v.iops_limit, 500);
	assert_int_equal(vol->v.bps_limit, 20 * MIB);
	assert_int_equal(info(f, "v")->v.iops_limit, 500);
	assert_int_equal(bs_volume_set_qos(f->bs, "v", 0, 0), 0);
	assert_int_equal(vol->v.iops_limit, 0);
	assert_int_equal(bs_volume_set_qos(f->bs, "nope", 1, 1), CAIRN_ENOTFOUND);
	fake_close(f, vol);
}

/* A management change waits for I/O in flight (the shared gate) and the
 * next I/O sees the new record: no timing assumption, the change cannot
 * finish while the gate is held. */
struct qos_thread {
	struct fx *f;
	atomic_int done;
	int rc;
};

static void *qos_thread_fn(void *arg)
{
	struct qos_thread *q = arg;
	q->rc = bs_volume_set_qos(q->f->bs, "v", 1234, 0);
	atomic_store(&q->done, 1);
	return NULL;
}

static void test_change_waits_for_io_in_flight(void **state)
{
	struct fx *f = *state;
	struct qos_thread q = {.f = f};
	struct bs_vol *vol;
	pthread_t th;

	mkvol(f, "v", 64 * MIB);
	vol = fake_handle(f, "v");
	pthread_rwlock_rdlock(&vol->gate); /* an I/O call in flight */
	assert_int_equal(pthread_create(&th, NULL, qos_thread_fn, &q), 0);
	usleep(50000);
	assert_int_equal(atomic_load(&q.done), 0);
	assert_int_equal(vol->v.iops_limit, 0);
	pthread_rwlock_unlock(&vol->gate);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(q.rc, 0);
	pthread_rwlock_rdlock(&vol->gate); /* the next I/O call */
	assert_int_equal(vol->v.iops_limit, 1234);
	pthread_rwlock_unlock(&vol->gate);
	fake_close(f, vol);
}

/* ---- snapshots, clones, rollback, diff ---- */

static int snap_names_fn(const struct vol_snap *s, void *arg)
{
	strcat(arg, s->name);
	strcat(arg, ",");
	return 0;
}

struct diffs {
	uint64_t off[16], len[16];
	bool zero[16];
	unsigned n;
};

static int diff_fn(uint64_t off, uint64_t len, bool zero, void *arg)
{
	struct diffs *d = arg;
	if (d->n < 16) {
		d->off[d->n] = off;
		d->len[d->n] = len;
		d->zero[d->n] = zero;
	}
	d->n++;
	return 0;
}

static void test_snapshot_create_list_delete_diff(void **state)
{
	struct fx *f = *state;
	struct vol_snap s;
	struct diffs d = {0};
	char names[256] = "";
	struct bs_vol *vol;

	mkvol(f, "v", 64 * MIB);
	write_blocks(f, "v", 0, 0, 2); /* 128 KiB at 0 */
	assert_int_equal(info(f, "v")->written_bytes, 2 * VOL_BLOCK_SIZE);
	/* The open volume (no connection: no files to sync) follows the head. */
	vol = fake_handle(f, "v");
	atomic_fetch_sub(&vol->nhandles, 1);
	assert_int_equal(bs_snapshot_create(f->bs, "v", "s1", &s), 0);
	assert_string_equal(s.name, "s1");
	assert_int_equal(s.size, 64 * MIB);
	assert_int_equal(vol->v.gen, s.gen + 1);
	assert_int_equal(bs_snapshot_create(f->bs, "v", "s1", NULL), CAIRN_EEXISTS);
	assert_int_equal(bs_snapshot_create(f->bs, "v", "", NULL), CAIRN_EINVAL);
	assert_int_equal(bs_snapshot_create(f->bs, "nope", "s1", NULL), CAIRN_ENOTFOUND);
	write_blocks(f, "v", 3, 4, 1); /* 64 KiB at 12 MiB + 256 KiB */
	assert_int_equal(bs_snapshot_create(f->bs, "v", "s2", NULL), 0);
	assert_int_equal(bs_snapshot_list(f->bs, "v", snap_names_fn, names), 0);
	assert_string_equal(names, "s1,s2,");
	assert_int_equal(info(f, "v")->nsnaps, 2);
	/* Snapshot-held blocks still count: the head reads them. */
	assert_int_equal(info(f, "v")->written_bytes, 3 * VOL_BLOCK_SIZE);
	assert_int_equal(bs_snapshot_list(f->bs, "nope", snap_names_fn, names), CAIRN_ENOTFOUND);
	/* Diff s1 -> s2: exactly the one block; NULL -> s1: the first two. */
	assert_int_equal(bs_snapshot_diff(f->bs, "v", "s1", "s2", diff_fn, &d), 0);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.off[0], 12 * MIB + 256 * KIB);
	assert_int_equal(d.len[0], VOL_BLOCK_SIZE);
	assert_false(d.zero[0]);
	memset(&d, 0, sizeof(d));
	assert_int_equal(bs_snapshot_diff(f->bs, "v", NULL, "s1", diff_fn, &d), 0);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.off[0], 0);
	assert_int_equal(d.len[0], 2 * VOL_BLOCK_SIZE);
	assert_int_equal(bs_snapshot_diff(f->bs, "v", "nope", NULL, diff_fn, &d), CAIRN_ENOTFOUND);
	assert_int_equal(bs_snapshot_diff(f->bs, "nope", NULL, NULL, diff_fn, &d), CAIRN_ENOTFOUND);
	/* Delete. */
	assert_int_equal(bs_snapshot_delete(f->bs, "v", "s1", false), 0);
	assert_int_equal(bs_snapshot_delete(f->bs, "v", "s1", false), CAIRN_ENOTFOUND);
	assert_int_equal(bs_snapshot_delete(f->bs, "nope", "s1", false), CAIRN_ENOTFOUND);
	names[0] = 0;
	assert_int_equal(bs_snapshot_list(f->bs, "v", snap_names_fn, names), 0);
	assert_string_equal(names, "s2,");
	assert_int_equal(info(f, "v")->written_bytes, 3 * VOL_BLOCK_SIZE);
	bs_vol_put(f->bs, vol);
}

static void test_clone_delete_refusals(void **state)
{
	struct fx *f = *state;
	struct vol_opts q = {.iops_limit = 7, .bps_limit = 9};
	struct bs_vol_info vi;
	char tok[BS_TOKEN_LEN + 1];

	assert_int_equal(bs_volume_create(f->bs, "base", 256 * MIB,
					  &(struct vol_opts){.replicas = 2, .iops_limit = 1}, NULL),
			 0);
	write_blocks(f, "base", 1, 0, 64);
	assert_int_equal(bs_snapshot_create(f->bs, "base", "gold", NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "base", "gold", "vm1", NULL, &vi), 0);
	assert_true(vi.has_parent);
	assert_string_equal(vi.parent_name, "base");
	assert_string_equal(vi.parent_snap, "gold");
	assert_int_equal(vi.v.size, 256 * MIB);
	assert_int_equal(vi.v.replicas, 2);
	assert_int_equal(vi.v.iops_limit, 1);  /* src's QoS */
	assert_int_equal(vi.written_bytes, 0); /* reads the parent's, holds none */
	assert_int_equal(bs_volume_clone(f->bs, "base", "gold", "vm2", &q, &vi), 0);
	assert_int_equal(vi.v.iops_limit, 7);
	assert_int_equal(vi.v.bps_limit, 9);
	assert_int_equal(bs_volume_clone(f->bs, "base", "gold", "vm1", NULL, NULL), CAIRN_EEXISTS);
	assert_int_equal(bs_volume_clone(f->bs, "base", "nope", "vm3", NULL, NULL),
			 CAIRN_ENOTFOUND);
	assert_int_equal(bs_volume_clone(f->bs, "nope", "gold", "vm3", NULL, NULL),
			 CAIRN_ENOTFOUND);
	assert_int_equal(bs_volume_clone(f->bs, "base", "gold", "", NULL, NULL), CAIRN_EINVAL);
	/* The parent: clones depend on it, force or not (this refusal comes
	 * before "has snapshots": force would not help). */
	assert_int_equal(bs_volume_delete(f->bs, "base", false), -EBUSY);
	assert_int_equal(bs_volume_delete(f->bs, "base", true), -EBUSY);
	assert_int_equal(bs_snapshot_delete(f->bs, "base", "gold", false), -EBUSY);
	/* Attached: refused, force or not. */
	assert_int_equal(bs_attach(f->bs, "vm1", "hv", 0, tok, NULL), 0);
	assert_int_equal(bs_volume_delete(f->bs, "vm1", true), -EBUSY);
	assert_int_equal(bs_detach(f->bs, "vm1", false), 0);
	assert_int_equal(bs_volume_delete(f->bs, "vm1", false), 0);
	assert_int_equal(bs_volume_delete(f->bs, "vm2", false), 0);
	/* No clone left: the snapshot goes, then the volume (with force for
	 * its other snapshot). */
	assert_int_equal(bs_snapshot_create(f->bs, "base", "other", NULL), 0);
	assert_int_equal(bs_snapshot_delete(f->bs, "base", "gold", false), 0);
	assert_int_equal(bs_volume_delete(f->bs, "base", false), CAIRN_ENOTEMPTY);
	assert_int_equal(bs_volume_delete(f->bs, "base", true), 0);
	assert_int_equal(bs_volume_get(f->bs, "base", &vi), CAIRN_ENOTFOUND);
}

static void test_rollback_refusals_and_view(void **state)
{
	struct fx *f = *state;
	char tok[BS_TOKEN_LEN + 1];
	struct meta_txn *t;
	struct vol_resolved r;
	struct bs_vol *vol;
	struct vol v;

	mkvol(f, "v", 64 * MIB);
	write_blocks(f, "v", 0, 0, 1);
	assert_int_equal(bs_snapshot_create(f->bs, "v", "s1", NULL), 0);
	write_blocks(f, "v", 0, 1, 1);
	assert_int_equal(bs_volume_resize(f->bs, "v", 128 * MIB, false), 0);
	assert_int_equal(bs_volume_rollback(f->bs, "v", "nope"), CAIRN_ENOTFOUND);
	assert_int_equal(bs_volume_rollback(f->bs, "nope", "s1"), CAIRN_ENOTFOUND);
	assert_int_equal(bs_volume_rollback(f->bs, "v", ""), CAIRN_EINVAL);
	assert_int_equal(bs_attach(f->bs, "v", "hv", 0, tok, NULL), 0);
	assert_int_equal(bs_volume_rollback(f->bs, "v", "s1"), -EBUSY);
	assert_int_equal(bs_detach(f->bs, "v", false), 0);
	vol = fake_handle(f, "v");
	assert_int_equal(bs_volume_rollback(f->bs, "v", "s1"), 0);
	v = getv(f, "v");
	assert_int_equal(v.size, 64 * MIB); /* the snapshot's size */
	assert_int_equal(vol->v.gen, v.gen);
	assert_int_equal(vol->v.njumps, 1);
	assert_int_equal(meta_txn_begin(f->bs->meta, false, &t), 0);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 0, &r), 0);
	meta_txn_abort(t);
	assert_int_equal(r.written, 1); /* block 1 written after s1 is gone */
	assert_int_equal(info(f, "v")->written_bytes, VOL_BLOCK_SIZE);
	fake_close(f, vol);
}

/* ---- attachments ---- */

static bool is_lower_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void attach_rec(struct fx *f, const char *name, struct vol_attach_rec *ar, char *host)
{
	struct meta_txn *t;
	struct vol v = getv(f, name);
	assert_int_equal(meta_txn_begin(f->bs->meta, false, &t), 0);
	assert_int_equal(bs_attach_load(t, v.id, ar, host), 0);
	meta_txn_abort(t);
}

/* Makes the volume's lease expire (as if its lease ran out). */
struct expire_arg {
	struct fx *f;
	const char *name;
};

static int expire_cb(struct cs_txn *txn, void *arg)
{
	struct expire_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	uint8_t buf[sizeof(struct vol_attach_rec) + VOL_HOST_MAX];
	struct vol_attach_rec ar;
	char host[VOL_HOST_MAX + 1];
	struct vol v;
	int rc = vol_get(t, bs_part(a->f->bs, a->name), a->name, &v);
	if (rc == 0)
		rc = bs_attach_load(t, v.id, &ar, host);
	if (rc < 0)
		return rc;
	ar.expires_ns = ar.attached_ns - 1;
	memcpy(buf, &ar, sizeof(ar));
	memcpy(buf + sizeof(ar), host, ar.host_len);
	return meta_put(t, META_T_ATTACH, v.id, VOL_ID_LEN, buf, sizeof(ar) + ar.host_len, 0);
}

static void expire(struct fx *f, const char *name)
{
	struct expire_arg a = {f, name};
	assert_int_equal(bs_commit(f->bs, expire_cb, &a), 0);
}

static void test_attach_token_lease_host_rules(void **state)
{
	struct fx *f = *state;
	char tok[BS_TOKEN_LEN + 1], tok2[BS_TOKEN_LEN + 1], host[VOL_HOST_MAX + 1];
	char longhost[VOL_HOST_MAX + 2];
	uint8_t sha[SHA256_DIGEST_LENGTH];
	struct vol_attach_rec ar;
	struct bs_vol_info vi;
	struct bs_vol *vol;
	unsigned epoch;

	mkvol(f, "v", 64 * MIB);
	memset(longhost, 'h', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = 0;
	assert_int_equal(bs_attach(f->bs, "v", "", 0, tok, NULL), CAIRN_EINVAL);
	assert_int_equal(bs_attach(f->bs, "v", longhost, 0, tok, NULL), CAIRN_EINVAL);
	assert_int_equal(bs_attach(f->bs, "nope", "hv1", 0, tok, NULL), CAIRN_ENOTFOUND);
	assert_int_equal(bs_detach(f->bs, "v", false), CAIRN_ENOTFOUND);
	assert_int_equal(bs_detach(f->bs, "nope", false), CAIRN_ENOTFOUND);

	vol = fake_handle(f, "v");
	atomic_fetch_sub(&vol->nhandles, 1); /* open, but no connection yet */
	epoch = atomic_load(&vol->epoch);
	assert_int_equal(bs_attach(f->bs, "v", "hv1", 60, tok, &vi), 0);
	assert_true(is_lower_hex(tok, BS_TOKEN_LEN));
	assert_true(vi.attached);
	assert_string_equal(vi.host, "hv1");
	assert_int_equal(vi.v.state, VOL_ATTACHED);
	assert_int_equal(vol->v.state, VOL_ATTACHED);
	assert_int_equal(vi.expires_ns - vi.attached_ns, 60ull * 1000000000ull);
	/* Only the token's SHA-256 is stored. */
	attach_rec(f, "v", &ar, host);
	SHA256((const unsigned char *)tok, BS_TOKEN_LEN, sha);
	assert_memory_equal(ar.token_sha256, sha, sizeof(sha));
	assert_string_equal(host, "hv1");
	assert_int_equal(ar.lease_s, 60);
	/* Another host while the lease is live: refused. */
	assert_int_equal(bs_attach(f->bs, "v", "hv2", 0, tok2, NULL), -EBUSY);
	/* The same host: a new token, the old one's handles revoked. */
	assert_int_equal(bs_attach(f->bs, "v", "hv1", 0, tok2, &vi), 0);
	assert_string_not_equal(tok, tok2);
	assert_int_equal(atomic_load(&vol->epoch), epoch + 1);
	attach_rec(f, "v", &ar, host);
	SHA256((const unsigned char *)tok2, BS_TOKEN_LEN, sha);
	assert_memory_equal(ar.token_sha256, sha, sizeof(sha));
	assert_int_equal(ar.lease_s, 300); /* the store's default */
	/* Expired, but a connection is open: still live for another host. */
	expire(f, "v");
	atomic_fetch_add(&vol->nhandles, 1);
	assert_int_equal(bs_attach(f->bs, "v", "hv2", 0, tok, NULL), -EBUSY);
	assert_int_equal(info(f, "v")->connections, 1);
	/* Detach with a connection: refused unless forced; force revokes. */
	assert_int_equal(bs_detach(f->bs, "v", false), -EBUSY);
	epoch = atomic_load(&vol->epoch);
	assert_int_equal(bs_detach(f->bs, "v", true), 0);
	assert_int_equal(atomic_load(&vol->epoch), epoch + 1);
	assert_int_equal(vol->v.state, VOL_AVAILABLE);
	vi = *info(f, "v");
	assert_false(vi.attached);
	assert_int_equal(vi.v.state, VOL_AVAILABLE);
	assert_int_equal(bs_detach(f->bs, "v", true), CAIRN_ENOTFOUND);
	atomic_fetch_sub(&vol->nhandles, 1);
	/* Expired with no connection: another host takes it over. */
	assert_int_equal(bs_attach(f->bs, "v", "hv1", 0, tok, NULL), 0);
	expire(f, "v");
	assert_int_equal(bs_attach(f->bs, "v", "hv2", 0, tok2, &vi), 0);
	assert_string_equal(vi.host, "hv2");
	assert_true(vi.expires_ns > vi.attached_ns);
	assert_int_equal(bs_detach(f->bs, "v", false), 0);
	bs_vol_put(f->bs, vol);
}

static void test_delete_revokes_and_removes_files(void **state)
{
	struct fx *f = *state;
	char tok[BS_TOKEN_LEN + 1], dir[PATH_MAX];
	struct bs_vol *vol;
	struct vol v;
	struct stat st;
	unsigned epoch;

	mkvol(f, "v", 64 * MIB);
	v = getv(f, "v");
	assert_int_equal(bs_vol_dir(f->bs, 0, v.id, dir, sizeof(dir)), 0);
	assert_int_equal(io_mkdirs(dir, 0755), 0);
	assert_int_equal(bs_attach(f->bs, "v", "hv", 0, tok, NULL), 0);
	vol = fake_handle(f, "v");
	assert_int_equal(bs_detach(f->bs, "v", true), 0);
	epoch = atomic_load(&vol->epoch);
	assert_int_equal(bs_volume_delete(f->bs, "v", false), 0);
	assert_int_equal(atomic_load(&vol->epoch), epoch + 1);
	assert_int_equal(vol->v.state, VOL_DELETING);
	assert_int_equal(stat(dir, &st), -1);
	fake_close(f, vol);
}

/* ---- timing on a 100 GiB volume with 10 GiB written ---- */

static void test_snapshot_clone_rollback_100g_timing(void **state)
{
	struct fx *f = *state;
	/* 2560 whole extents (10 GiB), every 10th extent of 100 GiB. */
	struct recs r = {.name = "big",
			 .first = 0,
			 .step = 10,
			 .n = 2560,
			 .off = 0,
			 .len = VOL_EXTENT_SIZE,
			 .kind = VOL_WRITE};
	double t0, ms_snap, ms_clone, ms_rb, ms_snap2, ms_info;
	struct bs_vol_info vi;

	mkvol(f, "big", 100 * GIB);
	put_recs(f, &r);
	t0 = now_ms();
	assert_int_equal(bs_volume_get(f->bs, "big", &vi), 0);
	ms_info = now_ms() - t0;
	assert_int_equal(vi.written_bytes, 10 * GIB);
	t0 = now_ms();
	assert_int_equal(bs_snapshot_create(f->bs, "big", "s1", NULL), 0);
	ms_snap = now_ms() - t0;
	t0 = now_ms();
	assert_int_equal(bs_volume_clone(f->bs, "big", "s1", "bigclone", NULL, NULL), 0);
	ms_clone = now_ms() - t0;
	r.n = 100; /* overwrite 400 MiB after the snapshot */
	put_recs(f, &r);
	assert_int_equal(bs_snapshot_create(f->bs, "big", "s2", NULL), 0);
	t0 = now_ms();
	assert_int_equal(bs_volume_rollback(f->bs, "big", "s1"), 0);
	ms_rb = now_ms() - t0;
	t0 = now_ms();
	assert_int_equal(bs_snapshot_create(f->bs, "big", "s3", NULL), 0);
	ms_snap2 = now_ms() - t0;
	printf("100 GiB volume, 10 GiB of extent records: snapshot %.2f ms, clone %.2f ms "
	       "(clone returns the clone's info), rollback %.2f ms, snapshot after rollback "
	       "%.2f ms; volume info (written_bytes over 2560 extents) %.2f ms\n",
	       ms_snap, ms_clone, ms_rb, ms_snap2, ms_info);
	assert_int_equal(info(f, "big")->written_bytes, 10 * GIB);
}

/* ---- flatten ---- */

static void test_flatten_without_written_blocks(void **state)
{
	struct fx *f = *state;
	struct bs_vol_info vi;
	struct bs_vol *cvol;

	/* The parent view holds only zeroed blocks: nothing to copy. */
	mkvol(f, "base", 64 * MIB);
	assert_int_equal(bs_snapshot_create(f->bs, "base", "gold", NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "base", "gold", "c1", NULL, NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "base", "gold", "c2", NULL, NULL), 0);
	write_blocks(f, "c1", 0, 0, 1);
	cvol = fake_handle(f, "c1");
	assert_int_equal(bs_snapshot_delete(f->bs, "base", "gold", false), -EBUSY);
	assert_int_equal(bs_snapshot_delete(f->bs, "base", "gold", true), 0);
	assert_false(cvol->v.has_parent); /* the open clone sees it at once */
	vi = *info(f, "c1");
	assert_false(vi.has_parent);
	assert_int_equal(vi.written_bytes, VOL_BLOCK_SIZE);
	assert_false(info(f, "c2")->has_parent);
	assert_int_equal(info(f, "base")->nsnaps, 0);
	assert_int_equal(bs_volume_delete(f->bs, "base", false), 0);
	assert_int_equal(bs_snapshot_delete(f->bs, "base", "gold", true), CAIRN_ENOTFOUND);
	fake_close(f, cvol);
}

/* With data: needs the real bs_io.c. */
static void fill_pattern(uint8_t *b, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 7 + (i >> 12));
}

static struct bs_handle *open_h(struct fx *f, const char *name, const char *host)
{
	char tok[BS_TOKEN_LEN + 1], exp[VOL_NAME_MAX + BS_TOKEN_LEN + 2];
	struct bs_handle *h = NULL;
	assert_int_equal(bs_attach(f->bs, name, host, 0, tok, NULL), 0);
	snprintf(exp, sizeof(exp), "%s@%s", name, tok);
	assert_int_equal(bs_handle_open(f->bs, exp, &h), 0);
	return h;
}

static void close_h(struct fx *f, struct bs_handle *h, const char *name)
{
	bs_handle_close(h);
	assert_int_equal(bs_detach(f->bs, name, false), 0);
}

static void test_flatten_copies_parent_blocks(void **state)
{
	struct fx *f = *state;
	const size_t size = 16 * MIB;
	uint8_t *a = io_alloc(size), *b = io_alloc(size), *got = io_alloc(size);
	struct io_ctx *ctx = NULL;
	struct bs_handle *h;

	if (!have_io(f)) {
		printf("flatten with data: skipped (bs_io.c is the placeholder)\n");
		io_free(a), io_free(b), io_free(got);
		skip();
	}
	assert_int_equal(io_ctx_create(64, &ctx), 0);
	fill_pattern(a, size, 1);
	fill_pattern(b, size, 99);
	mkvol(f, "base", size);
	h = open_h(f, "base", "hv");
	assert_int_equal(bs_write(h, ctx, a, 0, (uint32_t)size, 0), 0);
	assert_int_equal(bs_flush(h, ctx), 0);
	close_h(f, h, "base");
	assert_int_equal(bs_snapshot_create(f->bs, "base", "gold", NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "base", "gold", "c", NULL, NULL), 0);
	/* The clone writes its own 1 MiB + 4 KiB unaligned, snapshots, writes more. */
	h = open_h(f, "c", "hv");
	assert_int_equal(bs_write(h, ctx, b + 5 * MIB + 4096, 5 * MIB + 4096, 1 * MIB, 0), 0);
	assert_int_equal(bs_flush(h, ctx), 0);
	close_h(f, h, "c");
	memcpy(a + 5 * MIB + 4096, b + 5 * MIB + 4096, 1 * MIB);
	assert_int_equal(bs_snapshot_create(f->bs, "c", "cs", NULL), 0);
	/* The base moves on after the snapshot: the clone must not see it. */
	h = open_h(f, "base", "hv");
	assert_int_equal(bs_write(h, ctx, b, 0, 4 * MIB, 0), 0);
	assert_int_equal(bs_flush(h, ctx), 0);
	close_h(f, h, "base");
	double t0 = now_ms();
	assert_int_equal(bs_snapshot_delete(f->bs, "base", "gold", true), 0);
	printf("flatten of a 16 MiB clone (256 blocks, 3 replicas): %.1f ms\n", now_ms() - t0);
	assert_false(info(f, "c")->has_parent);
	/* The parent's files go entirely: the clone reads its own copies. */
	assert_int_equal(bs_volume_delete(f->bs, "base", false), 0);
	h = open_h(f, "c", "hv");
	assert_int_equal(bs_read(h, ctx, got, 0, (uint32_t)size), 0);
	assert_memory_equal(got, a, size);
	close_h(f, h, "c");
	assert_int_equal(info(f, "c")->written_bytes, size);
	/* The clone's snapshot too (rollback to it, read again). */
	assert_int_equal(bs_volume_rollback(f->bs, "c", "cs"), 0);
	h = open_h(f, "c", "hv");
	assert_int_equal(bs_read(h, ctx, got, 0, (uint32_t)size), 0);
	assert_memory_equal(got, a, size);
	close_h(f, h, "c");
	io_ctx_free(ctx);
	io_free(a), io_free(b), io_free(got);
}

/* Issue 6: the copy of a flatten runs without the clone's gate (its NBD
 * workers go on), and the clone reads the same bytes during and after. */
struct flat_probe {
	struct fx *f;
	struct bs_handle *h;
	struct io_ctx *ctx;
	const uint8_t *want;
	uint8_t *got;
	size_t size;
	int calls;
};

static void flat_probe_hook(const uint8_t id[VOL_ID_LEN], void *arg)
{
	struct flat_probe *p = arg;
	struct bs_vol *cvol = NULL;
	p->calls++;
	assert_int_equal(bs_vol_get(p->f->bs, id, &cvol), 0);
	/* Not quiesced: a reader of the clone gets the gate at once. */
	assert_int_equal(pthread_rwlock_tryrdlock(&cvol->gate), 0);
	pthread_rwlock_unlock(&cvol->gate);
	bs_vol_put(p->f->bs, cvol);
	memset(p->got, 0xEE, p->size);
	assert_int_equal(bs_read(p->h, p->ctx, p->got, 0, (uint32_t)p->size), 0);
	assert_memory_equal(p->got, p->want, p->size);
}

static void test_flatten_copy_without_gate_issue6(void **state)
{
	struct fx *f = *state;
	const size_t size = 8 * MIB;
	uint8_t *a = io_alloc(size), *b = io_alloc(size), *got = io_alloc(size);
	struct io_ctx *ctx = NULL;
	struct bs_handle *h;

	if (!have_io(f)) {
		printf("flatten without the gate: skipped (bs_io.c is the placeholder)\n");
		io_free(a), io_free(b), io_free(got);
		skip();
	}
	assert_int_equal(io_ctx_create(64, &ctx), 0);
	fill_pattern(a, size, 5);
	fill_pattern(b, size, 55);
	mkvol(f, "base", size);
	h = open_h(f, "base", "hv");
	assert_int_equal(bs_write(h, ctx, a, 0, (uint32_t)size, 0), 0);
	close_h(f, h, "base");
	assert_int_equal(bs_snapshot_create(f->bs, "base", "gold", NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "base", "gold", "c", NULL, NULL), 0);
	/* The clone is open (an NBD connection) during the flatten, and it
	 * has read (cached its written blocks) and written its own. */
	h = open_h(f, "c", "hv");
	assert_int_equal(bs_write(h, ctx, b + 2 * MIB, 2 * MIB, 1 * MIB, 0), 0);
	memcpy(a + 2 * MIB, b + 2 * MIB, 1 * MIB);
	assert_int_equal(bs_read(h, ctx, got, 0, (uint32_t)size), 0);
	assert_memory_equal(got, a, size);
	struct flat_probe p = {.f = f, .h = h, .ctx = ctx, .want = a, .got = got, .size = size};
	bs_flatten_test_hook = flat_probe_hook;
	bs_flatten_test_arg = &p;
	int rc = bs_snapshot_delete(f->bs, "base", "gold", true);
	bs_flatten_test_hook = NULL;
	bs_flatten_test_arg = NULL;
	assert_int_equal(rc, 0);
	assert_int_equal(p.calls, 1);
	assert_false(info(f, "c")->has_parent);
	/* After: the same bytes through the same handle, then with the
	 * parent gone, and writes still land. */
	assert_int_equal(bs_read(h, ctx, got, 0, (uint32_t)size), 0);
	assert_memory_equal(got, a, size);
	assert_int_equal(bs_write(h, ctx, b + 6 * MIB + 4096, 6 * MIB + 4096, 8192, 0), 0);
	memcpy(a + 6 * MIB + 4096, b + 6 * MIB + 4096, 8192);
	assert_int_equal(bs_flush(h, ctx), 0);
	close_h(f, h, "c");
	assert_int_equal(bs_volume_delete(f->bs, "base", false), 0);
	h = open_h(f, "c", "hv");
	assert_int_equal(bs_read(h, ctx, got, 0, (uint32_t)size), 0);
	assert_memory_equal(got, a, size);
	close_h(f, h, "c");
	io_ctx_free(ctx);
	io_free(a), io_free(b), io_free(got);
}

/* Issue 6: a snapshot makes the volume's dirty files durable even with no
 * handle open (a last close whose flush failed left them dirty). */
static void test_snapshot_syncs_without_handles_issue6(void **state)
{
	struct fx *f = *state;
	uint8_t *a = io_alloc(1 * MIB);
	struct io_ctx *ctx = NULL;
	struct bs_vol *vol = NULL;
	struct bs_handle *h;

	if (!have_io(f)) {
		printf("snapshot sync: skipped (bs_io.c is the placeholder)\n");
		io_free(a);
		skip();
	}
	assert_int_equal(io_ctx_create(16, &ctx), 0);
	fill_pattern(a, 1 * MIB, 3);
	mkvol(f, "sv", 16 * MIB);
	h = open_h(f, "sv", "hv");
	assert_int_equal(bs_write(h, ctx, a, 0, 1 * MIB, 0), 0);
	assert_int_equal(bs_flush(h, ctx), 0);
	assert_int_equal(bs_write(h, ctx, a, 4096, 64 * KIB, 0), 0); /* fast path: dirty */
	assert_int_equal(bs_vol_get(f->bs, info(f, "sv")->v.id, &vol), 0);
	fault_arm("io.fsync", 1);
	bs_handle_close(h); /* its flush fails: files stay dirty */
	fault_arm("io.fsync", 0);
	assert_int_equal(atomic_load(&vol->nhandles), 0);
	pthread_mutex_lock(&vol->io->lock);
	assert_true(vol->io->ndirty > 0);
	pthread_mutex_unlock(&vol->io->lock);
	assert_int_equal(bs_snapshot_create(f->bs, "sv", "s1", NULL), 0);
	pthread_mutex_lock(&vol->io->lock);
	assert_int_equal(vol->io->ndirty, 0);
	pthread_mutex_unlock(&vol->io->lock);
	bs_vol_put(f->bs, vol);
	assert_int_equal(bs_detach(f->bs, "sv", false), 0);
	io_ctx_free(ctx);
	io_free(a);
}

/* A clone of a clone: flattening copies blocks from both ancestors. */
static void test_flatten_clone_of_clone(void **state)
{
	struct fx *f = *state;
	const size_t size = 8 * MIB;
	uint8_t *a = io_alloc(size), *b = io_alloc(size), *got = io_alloc(size);
	struct io_ctx *ctx = NULL;
	struct bs_handle *h;

	if (!have_io(f)) {
		printf("flatten of a clone of a clone: skipped (bs_io.c is the placeholder)\n");
		io_free(a), io_free(b), io_free(got);
		skip();
	}
	assert_int_equal(io_ctx_create(64, &ctx), 0);
	fill_pattern(a, size, 11);
	fill_pattern(b, size, 77);
	mkvol(f, "base", size);
	h = open_h(f, "base", "hv");
	assert_int_equal(bs_write(h, ctx, a, 0, 6 * MIB, 0), 0); /* the last 2 MiB unwritten */
	close_h(f, h, "base");
	memset(a + 6 * MIB, 0, 2 * MIB);
	assert_int_equal(bs_snapshot_create(f->bs, "base", "s", NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "base", "s", "mid", NULL, NULL), 0);
	h = open_h(f, "mid", "hv");
	assert_int_equal(bs_write(h, ctx, b + 3 * MIB, 3 * MIB, 2 * MIB, 0), 0);
	assert_int_equal(bs_zero(h, ctx, 0, 1 * MIB, BS_TRIM), 0);
	close_h(f, h, "mid");
	memcpy(a + 3 * MIB, b + 3 * MIB, 2 * MIB);
	memset(a, 0, 1 * MIB);
	assert_int_equal(bs_snapshot_create(f->bs, "mid", "ms", NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "mid", "ms", "leaf", NULL, NULL), 0);
	assert_int_equal(bs_snapshot_delete(f->bs, "mid", "ms", true), 0);
	assert_false(info(f, "leaf")->has_parent);
	assert_true(info(f, "mid")->has_parent);		   /* mid still reads base */
	assert_int_equal(info(f, "leaf")->written_bytes, 5 * MIB); /* 1 MiB zero, 2 unwritten */
	assert_int_equal(bs_volume_delete(f->bs, "mid", false), 0);
	assert_int_equal(bs_snapshot_delete(f->bs, "base", "s", false), 0);
	assert_int_equal(bs_volume_delete(f->bs, "base", false), 0);
	h = open_h(f, "leaf", "hv");
	assert_int_equal(bs_read(h, ctx, got, 0, (uint32_t)size), 0);
	assert_memory_equal(got, a, size);
	close_h(f, h, "leaf");
	io_ctx_free(ctx);
	io_free(a), io_free(b), io_free(got);
}

/* Snapshots taken while a writer runs: each holds every write acknowledged
 * before it was asked for, and (one sequential writer) a prefix of the
 * writes. Progress is polled, never timed. */
#define SW_BLOCKS 256 /* 16 MiB: one 4 KiB write at the start of each 64 KiB block */
#define SW_SNAPS 5

struct snapwriter {
	struct fx *f;
	struct bs_handle *h;
	atomic_int acked; /* writes acknowledged */
	int rc;
};

static void *snapwriter_fn(void *arg)
{
	struct snapwriter *w = arg;
	struct io_ctx *ctx = NULL;
	uint8_t *buf = io_alloc(4096);
	w->rc = io_ctx_create(8, &ctx);
	for (int i = 0; i < SW_BLOCKS && w->rc == 0; i++) {
		memset(buf, i % 250 + 1, 4096);
		w->rc = bs_write(w->h, ctx, buf, (uint64_t)i * VOL_BLOCK_SIZE, 4096, 0);
		if (w->rc == 0)
			atomic_store(&w->acked, i + 1);
	}
	io_ctx_free(ctx);
	io_free(buf);
	return NULL;
}

static void test_snapshots_under_writes_hold_acked_prefix(void **state)
{
	struct fx *f = *state;
	struct snapwriter w = {.f = f};
	int before[SW_SNAPS];
	uint8_t *buf = io_alloc(4096);
	struct io_ctx *ctx = NULL;
	pthread_t th;

	if (!have_io(f)) {
		printf("snapshots under writes: skipped (bs_io.c is the placeholder)\n");
		io_free(buf);
		skip();
	}
	assert_int_equal(io_ctx_create(8, &ctx), 0);
	mkvol(f, "v", SW_BLOCKS * VOL_BLOCK_SIZE);
	w.h = open_h(f, "v", "hv");
	assert_int_equal(pthread_create(&th, NULL, snapwriter_fn, &w), 0);
	for (int s = 0; s < SW_SNAPS; s++) {
		char name[8];
		while (atomic_load(&w.acked) < (s + 1) * SW_BLOCKS / (SW_SNAPS + 1) && w.rc == 0)
			usleep(200);
		before[s] = atomic_load(&w.acked);
		snprintf(name, sizeof(name), "s%d", s);
		assert_int_equal(bs_snapshot_create(f->bs, "v", name, NULL), 0);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rc, 0);
	close_h(f, w.h, "v");
	for (int s = 0; s < SW_SNAPS; s++) {
		char name[8], cname[8];
		struct bs_handle *h;
		int prefix = -1;
		snprintf(name, sizeof(name), "s%d", s);
		snprintf(cname, sizeof(cname), "c%d", s);
		assert_int_equal(bs_volume_clone(f->bs, "v", name, cname, NULL, NULL), 0);
		h = open_h(f, cname, "hv");
		for (int i = 0; i < SW_BLOCKS; i++) {
			assert_int_equal(bs_read(h, ctx, buf, (uint64_t)i * VOL_BLOCK_SIZE, 4096),
					 0);
			bool written = buf[0] == i % 250 + 1 && buf[4095] == i % 250 + 1;
			if (!written) {
				assert_int_equal(buf[0], 0);
				if (prefix < 0)
					prefix = i;
			} else {
				assert_true(prefix < 0); /* a prefix: no gap before it */
			}
		}
		if (prefix < 0)
			prefix = SW_BLOCKS;
		printf("snapshot %d: %d writes acknowledged before it, %d in it\n", s, before[s],
		       prefix);
		assert_true(prefix >= before[s]);
		close_h(f, h, cname);
	}
	io_ctx_free(ctx);
	io_free(buf);
}

/* With real handles (bs_io.c): open handles see resize and QoS at once, a
 * snapshot holds writes no flush covered yet, a same-host re-attach and a
 * forced detach revoke, a delete removes the files. */
static void test_real_handles_follow_changes(void **state)
{
	struct fx *f = *state;
	const size_t len = 1 * MIB;
	uint8_t *a = io_alloc(len), *got = io_alloc(len);
	char tok[BS_TOKEN_LEN + 1], tok2[BS_TOKEN_LEN + 1], exp[300], dir[PATH_MAX];
	struct io_ctx *ctx = NULL;
	struct bs_handle *h, *h2;
	uint64_t iops, bps;
	struct stat st;

	if (!have_io(f)) {
		printf("real handles: skipped (bs_io.c is the placeholder)\n");
		io_free(a), io_free(got);
		skip();
	}
	assert_int_equal(io_ctx_create(64, &ctx), 0);
	fill_pattern(a, len, 5);
	mkvol(f, "v", 64 * MIB);
	assert_int_equal(bs_attach(f->bs, "v", "hv1", 0, tok, NULL), 0);
	snprintf(exp, sizeof(exp), "v@%s", tok);
	assert_int_equal(bs_handle_open(f->bs, exp, &h), 0);
	assert_int_equal(info(f, "v")->connections, 1);
	assert_int_equal(bs_volume_resize(f->bs, "v", 128 * MIB, false), 0);
	assert_int_equal(bs_handle_size(h), 128 * MIB);
	assert_int_equal(bs_volume_set_qos(f->bs, "v", 300, 4 * MIB), 0);
	bs_handle_qos(h, &iops, &bps);
	assert_int_equal(iops, 300);
	assert_int_equal(bps, 4 * MIB);
	/* Written, not flushed: the snapshot still holds it (its files are
	 * synced before the head moves on). */
	assert_int_equal(bs_write(h, ctx, a, 3 * MIB, (uint32_t)len, 0), 0);
	assert_int_equal(bs_snapshot_create(f->bs, "v", "s", NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "v", "s", "c", NULL, NULL), 0);
	h2 = open_h(f, "c", "hv9");
	assert_int_equal(bs_read(h2, ctx, got, 3 * MIB, (uint32_t)len), 0);
	assert_memory_equal(got, a, len);
	close_h(f, h2, "c");
	/* Another host: refused while the connection is open. */
	assert_int_equal(bs_attach(f->bs, "v", "hv2", 0, tok2, NULL), -EBUSY);
	assert_int_equal(bs_detach(f->bs, "v", false), -EBUSY);
	/* The same host again: a new token; the old handle is revoked. */
	assert_int_equal(bs_attach(f->bs, "v", "hv1", 0, tok2, NULL), 0);
	assert_true(bs_handle_revoked(h));
	assert_int_equal(bs_read(h, ctx, got, 0, 4096), -ESHUTDOWN);
	assert_int_equal(bs_handle_open(f->bs, exp, &h2), -EACCES); /* the old token */
	snprintf(exp, sizeof(exp), "v@%s", tok2);
	assert_int_equal(bs_handle_open(f->bs, exp, &h2), 0);
	assert_false(bs_handle_revoked(h2));
	assert_int_equal(bs_read(h2, ctx, got, 3 * MIB, (uint32_t)len), 0);
	assert_memory_equal(got, a, len);
	/* Forced detach: the new handle fails too, and the token is dead. */
	assert_int_equal(bs_detach(f->bs, "v", true), 0);
	assert_true(bs_handle_revoked(h2));
	assert_int_equal(bs_write(h2, ctx, a, 0, 4096, 0), -ESHUTDOWN);
	bs_handle_close(h);
	bs_handle_close(h2);
	assert_int_equal(bs_handle_open(f->bs, exp, &h2), -EACCES);
	assert_int_equal(info(f, "v")->connections, 0);
	/* Delete (the clone first): the extent folders go. */
	assert_int_equal(bs_volume_delete(f->bs, "c", false), 0);
	struct vol v = getv(f, "v");
	uint32_t devs[8];
	bs_extent_devs(f->bs, v.id, 0, v.replicas, devs);
	assert_int_equal(bs_vol_dir(f->bs, devs[0], v.id, dir, sizeof(dir)), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(bs_volume_delete(f->bs, "v", true), 0);
	assert_int_equal(stat(dir, &st), -1);
	io_ctx_free(ctx);
	io_free(a), io_free(got);
}

/* ---- fsck ---- */

/* Makes the replica files a written record names (what bs_io would). */
static void make_files(struct fx *f, const char *name, uint64_t index, uint32_t gen)
{
	struct vol v = getv(f, name);
	uint32_t devs[8];
	unsigned n = bs_extent_devs(f->bs, v.id, index, v.replicas, devs);
	for (unsigned i = 0; i < n; i++) {
		char path[PATH_MAX], dir[PATH_MAX];
		assert_int_equal(bs_vol_dir(f->bs, devs[i], v.id, dir, sizeof(dir)), 0);
		assert_int_equal(io_mkdirs(dir, 0755), 0);
		assert_int_equal(
		    bs_extent_path(f->bs, devs[i], v.id, gen, index, path, sizeof(path)), 0);
		int fd = open(path, O_CREAT | O_RDWR, 0644);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, VOL_EXTENT_SIZE), 0);
		close(fd);
	}
}

static void replica_path(struct fx *f, const char *name, uint64_t index, uint32_t gen,
			 unsigned which, char *path)
{
	struct vol v = getv(f, name);
	uint32_t devs[8];
	unsigned n = bs_extent_devs(f->bs, v.id, index, v.replicas, devs);
	assert_true(which < n);
	assert_int_equal(bs_extent_path(f->bs, devs[which], v.id, gen, index, path, PATH_MAX), 0);
}

static void orphan_dir(struct fx *f, char *dir)
{
	uint8_t id[VOL_ID_LEN];
	fill_random(id, sizeof(id), 7);
	assert_int_equal(bs_vol_dir(f->bs, 1, id, dir, PATH_MAX), 0);
	assert_int_equal(io_mkdirs(dir, 0755), 0);
	char file[PATH_MAX + 16];
	snprintf(file, sizeof(file), "%s/1.0", dir);
	int fd = open(file, O_CREAT | O_RDWR, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static void test_fsck_records_missing_replica_orphan(void **state)
{
	struct fx *f = *state;
	struct bs_check_report rep;
	char path[PATH_MAX], odir[PATH_MAX];
	struct stat st;

	mkvol(f, "v", 64 * MIB);
	write_blocks(f, "v", 0, 0, 4);
	write_blocks(f, "v", 5, 2, 1);
	make_files(f, "v", 0, VOL_GEN_FIRST);
	make_files(f, "v", 5, VOL_GEN_FIRST);
	assert_int_equal(bs_snapshot_create(f->bs, "v", "s", NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "v", "s", "c", NULL, NULL), 0);
	assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
	assert_int_equal(rep.volumes, 2);
	assert_int_equal(rep.extents, 2);
	assert_int_equal(rep.files_checked, 6);
	assert_int_equal(rep.missing_files, 0);
	assert_int_equal(rep.bad_records, 0);
	assert_int_equal(rep.orphan_dirs, 0);
	/* A lost replica file and an orphan folder. */
	replica_path(f, "v", 5, VOL_GEN_FIRST, 1, path);
	assert_int_equal(unlink(path), 0);
	orphan_dir(f, odir);
	assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
	assert_int_equal(rep.missing_files, 1);
	assert_int_equal(rep.orphan_dirs, 1);
	assert_int_equal(rep.fixed, 0);
	assert_int_equal(stat(odir, &st), 0);
	/* A truncated replica counts as missing too. */
	replica_path(f, "v", 0, VOL_GEN_FIRST, 2, path);
	assert_int_equal(truncate(path, 4096), 0);
	assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
	assert_int_equal(rep.missing_files, 2);
	/* Fix: the orphan goes; the replicas need bs_io_copy_blocks. */
	assert_int_equal(bs_fsck(f->bs, true, &rep), 0);
	assert_int_equal(rep.orphan_dirs, 1);
	assert_int_equal(stat(odir, &st), -1);
	if (have_io(f)) {
		assert_int_equal(rep.fixed, 3);
		assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
		assert_int_equal(rep.missing_files, 0);
		replica_path(f, "v", 0, VOL_GEN_FIRST, 2, path);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, VOL_EXTENT_SIZE);
	} else {
		printf("fsck --fix of replicas: not checked (bs_io.c is the placeholder)\n");
		assert_int_equal(rep.fixed, 1);
		assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
		assert_int_equal(rep.missing_files, 2);
	}
	assert_int_equal(rep.orphan_dirs, 0);
}

/* Rewrites a snapshot record's clone count (damage for fsck to find). */
struct snapdmg {
	struct fx *f;
	const char *vol;
	uint32_t nclones;
};

static int snapdmg_cb(struct cs_txn *txn, void *arg)
{
	struct snapdmg *d = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct meta_cursor *c;
	const void *k, *val;
	size_t kl, vl;
	uint8_t key[VOL_SNAP_KEY_LEN], buf[sizeof(struct vol_snap_rec) + VOL_SNAP_NAME_MAX];
	struct vol v;
	int rc = vol_get(t, bs_part(d->f->bs, d->vol), d->vol, &v);
	if (rc < 0)
		return rc;
	rc = meta_cursor_open(t, META_T_SNAPS, &c);
	if (rc == 0)
		rc = meta_cursor_seek(c, v.id, VOL_ID_LEN, &k, &kl, &val, &vl);
	if (rc == 0) {
		memcpy(key, k, sizeof(key));
		memcpy(buf, val, vl);
		memcpy(buf + offsetof(struct vol_snap_rec, nclones), &d->nclones, 4);
	}
	meta_cursor_close(c);
	if (rc == 0)
		rc = meta_put(t, META_T_SNAPS, key, sizeof(key), buf, vl, 0);
	return rc;
}

static int state_cb(struct cs_txn *txn, void *arg)
{
	struct expire_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct vol v;
	int rc = vol_get(t, bs_part(a->f->bs, a->name), a->name, &v);
	return rc < 0 ? rc : vol_set_state(t, &v, VOL_ATTACHED);
}

static void test_fsck_bad_records(void **state)
{
	struct fx *f = *state;
	struct bs_check_report rep;
	struct snapdmg d = {f, "v", 5};
	struct expire_arg s = {f, "w"};

	mkvol(f, "v", 64 * MIB);
	mkvol(f, "w", 64 * MIB);
	assert_int_equal(bs_snapshot_create(f->bs, "v", "s", NULL), 0);
	assert_int_equal(bs_volume_clone(f->bs, "v", "s", "c", NULL, NULL), 0);
	assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
	assert_int_equal(rep.bad_records, 0);
	assert_int_equal(rep.volumes, 3);
	assert_int_equal(bs_commit(f->bs, snapdmg_cb, &d), 0);
	assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
	assert_int_equal(rep.bad_records, 1);
	/* ATTACHED without an attachment record. */
	assert_int_equal(bs_commit(f->bs, state_cb, &s), 0);
	assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
	assert_int_equal(rep.bad_records, 2);
}

static void test_fsck_fix_repairs_lost_replica_with_data(void **state)
{
	struct fx *f = *state;
	const size_t size = 8 * MIB;
	uint8_t *a = io_alloc(size), *got = io_alloc(size);
	struct bs_check_report rep;
	struct io_ctx *ctx = NULL;
	struct bs_handle *h;
	char path[PATH_MAX];

	if (!have_io(f)) {
		printf("fsck --fix with data: skipped (bs_io.c is the placeholder)\n");
		io_free(a), io_free(got);
		skip();
	}
	assert_int_equal(io_ctx_create(64, &ctx), 0);
	fill_pattern(a, size, 3);
	mkvol(f, "v", size);
	h = open_h(f, "v", "hv");
	assert_int_equal(bs_write(h, ctx, a, 0, (uint32_t)size, 0), 0);
	assert_int_equal(bs_flush(h, ctx), 0);
	close_h(f, h, "v");
	/* Lose replica 0 of extent 1: reads fall back, fsck repairs it. */
	replica_path(f, "v", 1, VOL_GEN_FIRST, 0, path);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
	assert_int_equal(rep.missing_files, 1);
	assert_int_equal(rep.extents, 2);
	assert_int_equal(rep.files_checked, 6);
	assert_int_equal(rep.bad_records, 0);
	assert_int_equal(rep.intents, 0); /* the last close cleared them */
	/* Not while connections are open (their fd cache may hold the lost
	 * inode). */
	h = open_h(f, "v", "hv");
	assert_int_equal(bs_fsck(f->bs, true, &rep), 0);
	assert_int_equal(rep.fixed, 0);
	assert_int_equal(rep.missing_files, 1);
	close_h(f, h, "v");
	assert_int_equal(bs_fsck(f->bs, true, &rep), 0);
	assert_int_equal(rep.fixed, 1);
	assert_int_equal(bs_fsck(f->bs, false, &rep), 0);
	assert_int_equal(rep.missing_files, 0);
	/* Replica 0 holds the data again: lose the others, read it. */
	for (unsigned i = 1; i < 3; i++) {
		replica_path(f, "v", 1, VOL_GEN_FIRST, i, path);
		assert_int_equal(unlink(path), 0);
	}
	h = open_h(f, "v", "hv");
	assert_int_equal(bs_read(h, ctx, got, 0, (uint32_t)size), 0);
	assert_memory_equal(got, a, size);
	close_h(f, h, "v");
	io_ctx_free(ctx);
	io_free(a), io_free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_volume_create_get_list_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_volume_resize_qos_reach_open_handles, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_change_waits_for_io_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_create_list_delete_diff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clone_delete_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollback_refusals_and_view, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attach_token_lease_host_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete_revokes_and_removes_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_clone_rollback_100g_timing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_flatten_without_written_blocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flatten_copies_parent_blocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flatten_clone_of_clone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flatten_copy_without_gate_issue6, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_syncs_without_handles_issue6, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_real_handles_follow_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshots_under_writes_hold_acked_prefix, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_fsck_records_missing_replica_orphan, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_fsck_bad_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fsck_fix_repairs_lost_replica_with_data, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
