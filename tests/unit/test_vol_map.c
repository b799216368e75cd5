/* tests/unit/test_vol_map.c - blockstore/vol_map: volumes, extent maps,
 * snapshots, clones, rollback, diff over a real LMDB env (issue 6).
 *
 * The random test drives a reference model (each volume's block contents as
 * write tokens, snapshots as copies) and checks after every step that
 * resolving every block at the head and at every snapshot of every volume
 * names the generation whose last write is the model's token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockstore/vol_map.h"
#include "meta/meta.h"

struct fixture {
	char dir[256];
	struct meta_env *env;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-vol-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	if (meta_open(f->dir, NULL, &f->env) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[300];

	meta_close(f->env);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static struct meta_txn *wtxn(struct fixture *f)
{
	struct meta_txn *t;

	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	return t;
}

static void commit(struct meta_txn *t)
{
	assert_int_equal(meta_txn_commit(t), 0);
}

#define MB (1024ull * 1024)

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- record counting: every (table, key, value) of the volume tables ---- */
struct dump {
	char **rec;
	size_t n;
};

static void dump_tables(struct fixture *f, struct dump *d)
{
	static const enum meta_table tabs[] = {META_T_VOLUMES, META_T_VOLIDS, META_T_EXTENTS,
					       META_T_SNAPS};
	struct meta_txn *t;
	size_t cap = 0;

	d->rec = NULL;
	d->n = 0;
	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++) {
		struct meta_cursor *c;
		const void *k, *v;
		size_t kl, vl;
		int rc;

		assert_int_equal(meta_cursor_open(t, tabs[i], &c), 0);
		for (rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl); rc == 0;
		     rc = meta_cursor_next(c, &k, &kl, &v, &vl)) {
			char *s = malloc(2 * (kl + vl) + 8), *p = s;

			p += sprintf(p, "%zu:", i);
			for (size_t j = 0; j < kl; j++)
				p += sprintf(p, "%02x", ((const uint8_t *)k)[j]);
			*p++ = '=';
			for (size_t j = 0; j < vl; j++)
				p += sprintf(p, "%02x", ((const uint8_t *)v)[j]);
			*p = 0;
			if (d->n == cap) {
				cap = cap ? cap * 2 : 256;
				d->rec = realloc(d->rec, cap * sizeof(*d->rec));
			}
			d->rec[d->n++] = s;
		}
		assert_int_equal(rc, CAIRN_ENOTFOUND);
		meta_cursor_close(c);
	}
	meta_txn_abort(t);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Records added, removed or changed between two dumps: keys present in one
 * only, or with another value. */
static size_t key_len(const char *r)
{
	return (size_t)(strchr(r, '=') - r);
}

static size_t dump_changes(struct dump *a, struct dump *b)
{
	size_t i = 0, j = 0, n = 0;

	qsort(a->rec, a->n, sizeof(char *), cmp_str);
	qsort(b->rec, b->n, sizeof(char *), cmp_str);
	while (i < a->n || j < b->n) {
		int c;

		if (i == a->n || j == b->n) {
			c = i == a->n ? 1 : -1;
		} else {
			size_t la = key_len(a->rec[i]), lb = key_len(b->rec[j]);

			c = memcmp(a->rec[i], b->rec[j], la < lb ? la : lb);
			if (c == 0)
				c = la < lb ? -1 : la > lb ? 1 : 0;
		}
		if (c == 0) {
			n += strcmp(a->rec[i], b->rec[j]) != 0;
			i++;
			j++;
		} else {
			n++;
			if (c < 0)
				i++;
			else
				j++;
		}
	}
	return n;
}

static void dump_free(struct dump *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->rec[i]);
	free(d->rec);
}

static size_t count_table(struct fixture *f, enum meta_table tab)
{
	struct meta_txn *t;
	struct meta_cursor *c;
	const void *k, *v;
	size_t kl, vl, n = 0;
	int rc;

	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	assert_int_equal(meta_cursor_open(t, tab, &c), 0);
	for (rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl); rc == 0;
	     rc = meta_cursor_next(c, &k, &kl, &v, &vl))
		n++;
	meta_cursor_close(c);
	meta_txn_abort(t);
	return n;
}

/* ---- direct tests ---- */
static void test_vol_create_get_names(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol v, g;

	assert_int_equal(vol_create(t, 7, "disk", 64 * MB, NULL, &v), 0);
	assert_int_equal(v.gen, VOL_GEN_FIRST);
	assert_int_equal(v.replicas, 3);
	assert_int_equal(vol_create(t, 7, "disk", 64 * MB, NULL, NULL), CAIRN_EEXISTS);
	assert_int_equal(vol_create(t, 7, "odd", 64 * MB + 4096, NULL, NULL), CAIRN_EINVAL);
	assert_int_equal(vol_create(t, 7, "", 64 * MB, NULL, NULL), CAIRN_EINVAL);
	assert_int_equal(vol_get(t, 7, "disk", &g), 0);
	assert_memory_equal(g.id, v.id, VOL_ID_LEN);
	assert_int_equal(g.size, 64 * MB);
	assert_int_equal(vol_get_by_id(t, v.id, &g), 0);
	assert_string_equal(g.name, "disk");
	assert_int_equal(g.part, 7);
	assert_int_equal(vol_get(t, 8, "disk", &g), CAIRN_ENOTFOUND);
	/* State and QoS persist; an attached volume is not deleted. */
	assert_int_equal(vol_set_qos(t, &v, 5000, 100 * MB), 0);
	assert_int_equal(vol_set_state(t, &v, VOL_ATTACHED), 0);
	assert_int_equal(vol_get(t, 7, "disk", &g), 0);
	assert_int_equal(g.iops_limit, 5000);
	assert_int_equal(g.bps_limit, 100 * MB);
	assert_int_equal(g.state, VOL_ATTACHED);
	assert_int_equal(vol_delete(t, &g, true), -EBUSY);
	assert_int_equal(vol_set_state(t, &g, (enum vol_state)9), CAIRN_EINVAL);
	assert_int_equal(vol_set_state(t, &g, VOL_AVAILABLE), 0);
	assert_int_equal(vol_delete(t, &g, false), 0);
	assert_int_equal(vol_get_by_id(t, v.id, &g), CAIRN_ENOTFOUND);
	commit(t);
}

static void test_vol_write_resolve_copyup(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol_resolved r;
	struct vol v;

	assert_int_equal(vol_create(t, 1, "v", 16 * MB, NULL, &v), 0);
	/* Unaligned write 4 KiB into block 1, then 2 whole blocks + a tail. */
	assert_int_equal(vol_map_write(t, &v, 0, VOL_BLOCK_SIZE + 4096, 4096, VOL_WRITE, &wo), 0);
	assert_int_equal(wo.write, 1ull << 1);
	assert_int_equal(wo.fill, 1ull << 1);
	assert_int_equal(wo.copyup, 0);
	assert_int_equal(
	    vol_map_write(t, &v, 0, 2 * VOL_BLOCK_SIZE, 2 * VOL_BLOCK_SIZE + 512, VOL_WRITE, &wo),
	    0);
	assert_int_equal(wo.write, 0x1cull);
	assert_int_equal(wo.fill, 1ull << 4);
	/* In place in the head generation: neither copy-up nor fill. */
	assert_int_equal(vol_map_write(t, &v, 0, VOL_BLOCK_SIZE, 100, VOL_WRITE, &wo), 0);
	assert_int_equal(wo.copyup | wo.fill, 0);
	assert_int_equal(vol_snapshot_create(t, &v, "s1", NULL), 0);
	/* Block 1 now lives in an older generation: a partial write copies up. */
	assert_int_equal(vol_map_write(t, &v, 0, VOL_BLOCK_SIZE + 8192, 4096, VOL_WRITE, &wo), 0);
	assert_int_equal(wo.copyup, 1ull << 1);
	assert_int_equal(wo.prior.blk[1].kind, VOL_BLK_WRITTEN);
	assert_int_equal(wo.prior.blk[1].gen, VOL_GEN_FIRST);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 0, &r), 0);
	assert_int_equal(r.blk[1].gen, VOL_GEN_FIRST + 1);
	assert_int_equal(r.blk[2].gen, VOL_GEN_FIRST);
	assert_int_equal(r.blk[0].kind, VOL_BLK_UNWRITTEN);
	assert_int_equal(r.written, 0x1eull);
	/* Out of range and beyond the volume. */
	assert_int_equal(vol_map_write(t, &v, 4, 0, 4096, VOL_WRITE, &wo), CAIRN_EINVAL);
	assert_int_equal(vol_map_write(t, &v, 0, VOL_EXTENT_SIZE - 4096, 8192, VOL_WRITE, &wo),
			 CAIRN_EINVAL);
	assert_int_equal(vol_map_write(t, &v, 0, 0, 0, VOL_WRITE, &wo), CAIRN_EINVAL);
	commit(t);
}

static void test_vol_zero_costs_no_record(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol v;

	assert_int_equal(vol_create(t, 1, "z", 256 * MB, NULL, &v), 0);
	for (uint64_t i = 0; i < 64; i++) {
		assert_int_equal(vol_map_write(t, &v, i, 0, VOL_EXTENT_SIZE, VOL_ZERO, &wo), 0);
		assert_false(wo.record);
	}
	commit(t);
	assert_int_equal(count_table(f, META_T_EXTENTS), 0);
}

static void test_vol_trim_on_clone_hides_parent(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol_resolved r;
	struct vol v, c;

	assert_int_equal(vol_create(t, 1, "base", 8 * MB, NULL, &v), 0);
	assert_int_equal(vol_map_write(t, &v, 1, 0, VOL_EXTENT_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_snapshot_create(t, &v, "gold", NULL), 0);
	assert_int_equal(vol_clone(t, &v, "gold", 2, "vm1", &c), 0);
	assert_true(c.has_parent);
	assert_int_equal(c.size, 8 * MB);
	assert_int_equal(vol_map_resolve(t, &c, c.gen, 1, &r), 0);
	assert_int_equal(r.blk[5].kind, VOL_BLK_WRITTEN);
	assert_int_equal(r.blk[5].depth, 1);
	assert_memory_equal(r.ids[1], v.id, VOL_ID_LEN);
	/* TRIM blocks 4..9 on the clone: a record, and zeroes, never the parent. */
	assert_int_equal(
	    vol_map_write(t, &c, 1, 4 * VOL_BLOCK_SIZE, 6 * VOL_BLOCK_SIZE, VOL_ZERO, &wo), 0);
	assert_true(wo.record);
	assert_int_equal(wo.write, 0);
	assert_int_equal(vol_map_resolve(t, &c, c.gen, 1, &r), 0);
	for (unsigned b = 0; b < VOL_BLOCKS; b++) {
		if (b >= 4 && b < 10) {
			assert_int_equal(r.blk[b].kind, VOL_BLK_ZERO);
			assert_int_equal(r.blk[b].depth, 0);
		} else {
			assert_int_equal(r.blk[b].kind, VOL_BLK_WRITTEN);
			assert_int_equal(r.blk[b].depth, 1);
		}
	}
	/* A partial ZERO over a parent block copies up and writes zero bytes. */
	assert_int_equal(vol_map_write(t, &c, 1, 20 * VOL_BLOCK_SIZE + 512, 512, VOL_ZERO, &wo), 0);
	assert_int_equal(wo.write, 1ull << 20);
	assert_int_equal(wo.copyup, 1ull << 20);
	/* The parent's view is untouched. */
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 1, &r), 0);
	assert_int_equal(r.written, UINT64_MAX);
	commit(t);
}

/* Flatten: gen-0 records shadow the parent in every view of the clone,
 * its own writes (head and snapshot) still win, and unparenting releases
 * the parent's snapshot. */
static void test_vol_flatten_base_then_unparent(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol_resolved r;
	struct vol_snap s;
	struct vol v, c, g;

	assert_int_equal(vol_create(t, 1, "base", 8 * MB, NULL, &v), 0);
	assert_int_equal(vol_map_write(t, &v, 1, 0, VOL_EXTENT_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_snapshot_create(t, &v, "gold", NULL), 0);
	assert_int_equal(vol_clone(t, &v, "gold", 2, "vm", &c), 0);
	assert_int_equal(vol_unparent(t, &v), CAIRN_EINVAL);
	/* The clone writes block 3 and snapshots, then writes block 4. */
	assert_int_equal(
	    vol_map_write(t, &c, 1, 3 * VOL_BLOCK_SIZE, VOL_BLOCK_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_snapshot_create(t, &c, "cs", NULL), 0);
	assert_int_equal(
	    vol_map_write(t, &c, 1, 4 * VOL_BLOCK_SIZE, VOL_BLOCK_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_map_put_base(t, &c, 1, 0), CAIRN_EINVAL);
	assert_int_equal(vol_map_put_base(t, &c, 2, 1), CAIRN_EINVAL); /* past the size */
	assert_int_equal(vol_map_put_base(t, &c, 1, 0xffff), 0);
	assert_int_equal(vol_map_put_base(t, &c, 1, UINT64_MAX & ~0xffffull), 0); /* merges */
	assert_int_equal(vol_unparent(t, &c), 0);
	assert_false(c.has_parent);
	assert_int_equal(vol_get(t, 2, "vm", &g), 0);
	assert_false(g.has_parent);
	assert_int_equal(vol_unparent(t, &g), CAIRN_EINVAL);
	assert_int_equal(vol_map_resolve(t, &g, g.gen, 1, &r), 0);
	assert_int_equal(r.written, UINT64_MAX);
	for (unsigned b = 0; b < VOL_BLOCKS; b++) {
		assert_int_equal(r.blk[b].depth, 0);
		assert_int_equal(r.blk[b].gen, b == 3	? VOL_GEN_FIRST
					       : b == 4 ? VOL_GEN_FIRST + 1
							: 0);
	}
	/* The clone's snapshot sees block 3 of its own, block 4 from gen 0. */
	assert_int_equal(vol_map_resolve(t, &g, VOL_GEN_FIRST, 1, &r), 0);
	assert_int_equal(r.blk[3].gen, VOL_GEN_FIRST);
	assert_int_equal(r.blk[4].gen, 0);
	assert_int_equal(r.blk[4].depth, 0);
	/* The parent's snapshot has no clone left: it can go. */
	assert_int_equal(vol_snapshot_get(t, &v, "gold", &s), 0);
	assert_int_equal(s.nclones, 0);
	assert_int_equal(vol_snapshot_delete(t, &v, "gold"), 0);
	assert_int_equal(vol_delete(t, &v, false), 0);
	assert_int_equal(vol_map_resolve(t, &g, g.gen, 1, &r), 0);
	assert_int_equal(r.written, UINT64_MAX);
	commit(t);
}

static void test_vol_snapshot_clone_rollback_constant_records(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct dump a, b;
	struct vol v, c;
	const uint64_t nwritten = 2560; /* 10 GiB of a 100 GiB volume */
	double ms;

	assert_int_equal(vol_create(t, 1, "big", 100ull * 1024 * MB, NULL, &v), 0);
	for (uint64_t i = 0; i < nwritten; i++)
		assert_int_equal(vol_map_write(t, &v, i * 7, 0, VOL_EXTENT_SIZE, VOL_WRITE, &wo),
				 0);
	commit(t);
	assert_int_equal(count_table(f, META_T_EXTENTS), nwritten);

	dump_tables(f, &a);
	ms = now_ms();
	t = wtxn(f);
	assert_int_equal(vol_snapshot_create(t, &v, "s1", NULL), 0);
	commit(t);
	print_message("snapshot of 100 GiB, 10 GiB written: %.3f ms (with commit)\n",
		      now_ms() - ms);
	dump_tables(f, &b);
	assert_int_equal(dump_changes(&a, &b), 2); /* snaps record + volume record */
	dump_free(&a);

	ms = now_ms();
	t = wtxn(f);
	assert_int_equal(vol_clone(t, &v, "s1", 3, "c1", &c), 0);
	commit(t);
	print_message("clone: %.3f ms (with commit)\n", now_ms() - ms);
	dump_tables(f, &a);
	/* clone volume + volids + the snapshot's clone count */
	assert_int_equal(dump_changes(&b, &a), 3);
	dump_free(&b);
	dump_free(&a);

	t = wtxn(f);
	for (uint64_t i = 0; i < 50; i++)
		assert_int_equal(vol_map_write(t, &v, i * 9, 0, VOL_BLOCK_SIZE, VOL_WRITE, &wo), 0);
	commit(t);
	dump_tables(f, &b);
	ms = now_ms();
	t = wtxn(f);
	assert_int_equal(vol_rollback(t, &v, "s1"), 0);
	commit(t);
	print_message("rollback: %.3f ms (with commit)\n", now_ms() - ms);
	dump_tables(f, &a);
	assert_int_equal(dump_changes(&b, &a), 1); /* the volume record */
	dump_free(&a);
	dump_free(&b);
	assert_int_equal(count_table(f, META_T_EXTENTS), nwritten + 50);

	/* Costs that are not O(1), measured (printed, never asserted). */
	t = wtxn(f);
	{
		struct vol_resolved r;
		uint64_t n = 0;

		ms = now_ms();
		for (uint64_t i = 0; i < 25600; i += 9, n++)
			assert_int_equal(vol_map_resolve(t, &c, c.gen, i, &r), 0);
		print_message("resolve through a clone to its parent: %.2f us per extent\n",
			      (now_ms() - ms) * 1e3 / (double)n);
	}
	assert_int_equal(vol_delete(t, &c, false), 0);
	ms = now_ms();
	assert_int_equal(vol_snapshot_delete(t, &v, "s1"), 0);
	commit(t);
	print_message("snapshot delete with %llu records at its generation: %.3f ms\n",
		      (unsigned long long)nwritten, now_ms() - ms);
	/* Rolled back: s1's records are the head's view; nothing is dropped. */
	assert_int_equal(count_table(f, META_T_EXTENTS), nwritten + 50);
}

struct diff_list {
	uint64_t off[32], len[32];
	bool zero[32];
	unsigned n;
};

static int diff_fn(uint64_t off, uint64_t len, bool zero, void *arg)
{
	struct diff_list *d = arg;

	assert_true(d->n < 32);
	d->off[d->n] = off;
	d->len[d->n] = len;
	d->zero[d->n++] = zero;
	return 0;
}

static void test_vol_diff_exact_ranges(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct diff_list d = {0};
	struct vol v;
	const uint64_t B = VOL_BLOCK_SIZE, E = VOL_EXTENT_SIZE;

	assert_int_equal(vol_create(t, 1, "d", 64 * MB, NULL, &v), 0);
	assert_int_equal(vol_map_write(t, &v, 0, 0, 4 * B, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_map_write(t, &v, 3, 10 * B, 2 * B, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_snapshot_create(t, &v, "s1", NULL), 0);
	/* Rewrite block 1 (same content position, new generation), zero 2-3,
	 * write the last block of extent 4 and the first of extent 5. */
	assert_int_equal(vol_map_write(t, &v, 0, B, 100, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_map_write(t, &v, 0, 2 * B, 2 * B, VOL_ZERO, &wo), 0);
	assert_int_equal(vol_map_write(t, &v, 4, 63 * B, B, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_map_write(t, &v, 5, 0, B, VOL_WRITE, &wo), 0);
	/* Zero over never-written space changes nothing. */
	assert_int_equal(vol_map_write(t, &v, 6, 0, E, VOL_ZERO, &wo), 0);
	assert_int_equal(vol_snapshot_create(t, &v, "s2", NULL), 0);

	assert_int_equal(vol_snapshot_diff(t, &v, "s1", "s2", diff_fn, &d), 0);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.off[0], B);
	assert_int_equal(d.len[0], B);
	assert_false(d.zero[0]);
	assert_int_equal(d.off[1], 2 * B);
	assert_int_equal(d.len[1], 2 * B);
	assert_true(d.zero[1]);
	assert_int_equal(d.off[2], 4 * E + 63 * B); /* merged across the extent edge */
	assert_int_equal(d.len[2], 2 * B);
	assert_false(d.zero[2]);

	memset(&d, 0, sizeof(d));
	assert_int_equal(vol_snapshot_diff(t, &v, NULL, "s1", diff_fn, &d), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.off[0], 0);
	assert_int_equal(d.len[0], 4 * B);
	assert_int_equal(d.off[1], 3 * E + 10 * B);
	assert_int_equal(d.len[1], 2 * B);

	memset(&d, 0, sizeof(d));
	assert_int_equal(vol_snapshot_diff(t, &v, "s2", NULL, diff_fn, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(vol_snapshot_diff(t, &v, "nope", NULL, diff_fn, &d), CAIRN_ENOTFOUND);
	commit(t);
}

static void test_vol_delete_refusals(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol v, c, g;

	assert_int_equal(vol_create(t, 1, "p", 8 * MB, NULL, &v), 0);
	assert_int_equal(vol_map_write(t, &v, 0, 0, VOL_EXTENT_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_snapshot_create(t, &v, "s", NULL), 0);
	assert_int_equal(vol_snapshot_create(t, &v, "s", NULL), CAIRN_EEXISTS);
	assert_int_equal(vol_delete(t, &v, false), CAIRN_ENOTEMPTY);
	assert_int_equal(vol_clone(t, &v, "s", 1, "c", &c), 0);
	assert_int_equal(vol_clone(t, &v, "s", 1, "c", NULL), CAIRN_EEXISTS);
	assert_int_equal(vol_delete(t, &v, true), -EBUSY);
	assert_int_equal(vol_snapshot_delete(t, &v, "s"), -EBUSY);
	assert_int_equal(vol_resize(t, &v, 4 * MB, false), CAIRN_EINVAL);
	/* The clone goes: the snapshot is free again, then the volume. */
	assert_int_equal(vol_delete(t, &c, false), 0);
	assert_int_equal(vol_get(t, 1, "c", &g), CAIRN_ENOTFOUND);
	assert_int_equal(vol_get_by_id(t, c.id, &g), CAIRN_ENOTFOUND);
	assert_int_equal(vol_delete(t, &v, false), CAIRN_ENOTEMPTY);
	assert_int_equal(vol_delete(t, &v, true), 0);
	commit(t);
	assert_int_equal(count_table(f, META_T_EXTENTS), 0);
	assert_int_equal(count_table(f, META_T_SNAPS), 0);
	assert_int_equal(count_table(f, META_T_VOLUMES), 0);
	assert_int_equal(count_table(f, META_T_VOLIDS), 0);
}

static void test_vol_resize_shrink_then_grow_reads_zero(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol_resolved r;
	struct vol v;

	assert_int_equal(vol_create(t, 1, "r", 12 * MB, NULL, &v), 0);
	assert_int_equal(vol_map_write(t, &v, 1, 0, VOL_EXTENT_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_map_write(t, &v, 2, 0, VOL_EXTENT_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_snapshot_create(t, &v, "before", NULL), 0);
	assert_int_equal(vol_resize(t, &v, 6 * MB, true), 0);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 2, &r), 0);
	assert_int_equal(r.written | r.zero, 0); /* past the size */
	assert_int_equal(vol_resize(t, &v, 12 * MB, false), 0);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 1, &r), 0);
	assert_int_equal(r.written, (1ull << 32) - 1); /* first 2 MiB kept */
	assert_int_equal(r.zero, ~((1ull << 32) - 1));
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 2, &r), 0);
	assert_int_equal(r.written, 0);
	/* The snapshot still sees the old bytes. */
	assert_int_equal(vol_map_resolve(t, &v, v.gen - 1, 2, &r), 0);
	assert_int_equal(r.written, UINT64_MAX);
	commit(t);
}

static void test_vol_snapshot_delete_merges(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol_resolved r;
	struct vol v;

	assert_int_equal(vol_create(t, 1, "m", 8 * MB, NULL, &v), 0);
	assert_int_equal(vol_map_write(t, &v, 0, 0, VOL_EXTENT_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_map_write(t, &v, 1, 0, VOL_EXTENT_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_snapshot_create(t, &v, "s", NULL), 0);
	/* Extent 0 fully rewritten at the head, extent 1 half. */
	assert_int_equal(vol_map_write(t, &v, 0, 0, VOL_EXTENT_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_map_write(t, &v, 1, 0, VOL_EXTENT_SIZE / 2, VOL_ZERO, &wo), 0);
	commit(t);
	assert_int_equal(count_table(f, META_T_EXTENTS), 4);
	t = wtxn(f);
	assert_int_equal(vol_snapshot_delete(t, &v, "s"), 0);
	assert_int_equal(vol_snapshot_delete(t, &v, "s"), CAIRN_ENOTFOUND);
	commit(t);
	/* Extent 0's old record is gone, extent 1's keeps its upper half. */
	assert_int_equal(count_table(f, META_T_EXTENTS), 3);
	t = wtxn(f);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 1, &r), 0);
	assert_int_equal(r.zero, (1ull << 32) - 1);
	assert_int_equal(r.written, ~((1ull << 32) - 1));
	assert_int_equal(r.blk[40].gen, VOL_GEN_FIRST);
	assert_int_equal(vol_map_resolve(t, &v, VOL_GEN_FIRST, 1, &r), 0);
	assert_int_equal(r.written, ~((1ull << 32) - 1)); /* trimmed: no view needs it */
	commit(t);
}

static void test_vol_rollback_many_keeps_jumps_bounded(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol_resolved r;
	struct vol v;

	assert_int_equal(vol_create(t, 1, "rb", 4 * MB, NULL, &v), 0);
	assert_int_equal(vol_map_write(t, &v, 0, 0, VOL_BLOCK_SIZE, VOL_WRITE, &wo), 0);
	assert_int_equal(vol_snapshot_create(t, &v, "base", NULL), 0);
	for (int i = 0; i < 3 * VOL_JUMPS_MAX; i++) {
		assert_int_equal(vol_map_write(t, &v, 0, 0, 2 * VOL_BLOCK_SIZE, VOL_WRITE, &wo), 0);
		assert_int_equal(vol_rollback(t, &v, "base"), 0);
		assert_true(v.njumps <= 1); /* older jumps serve no view */
	}
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 0, &r), 0);
	assert_int_equal(r.written, 1);
	assert_int_equal(r.blk[0].gen, VOL_GEN_FIRST);
	/* A snapshot inside a rolled-back range keeps its view and its jump. */
	assert_int_equal(vol_map_write(t, &v, 0, VOL_BLOCK_SIZE, VOL_BLOCK_SIZE, VOL_WRITE, &wo),
			 0);
	assert_int_equal(vol_snapshot_create(t, &v, "mid", NULL), 0);
	assert_int_equal(vol_rollback(t, &v, "base"), 0);
	assert_int_equal(vol_rollback(t, &v, "mid"), 0);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 0, &r), 0);
	assert_int_equal(r.written, 3);
	assert_int_equal(vol_snapshot_delete(t, &v, "mid"), 0);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 0, &r), 0);
	assert_int_equal(r.written, 3);
	commit(t);
}

static void test_vol_clone_depth_limit(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol_resolved r;
	struct vol v, c;
	char name[32];

	assert_int_equal(vol_create(t, 1, "c0", 4 * MB, NULL, &v), 0);
	assert_int_equal(vol_map_write(t, &v, 0, 0, VOL_BLOCK_SIZE, VOL_WRITE, &wo), 0);
	for (int d = 1; d <= VOL_DEPTH_MAX; d++) {
		assert_int_equal(vol_snapshot_create(t, &v, "s", NULL), 0);
		snprintf(name, sizeof(name), "c%d", d);
		assert_int_equal(vol_clone(t, &v, "s", 1, name, &c), 0);
		v = c;
	}
	assert_int_equal(vol_snapshot_create(t, &v, "s", NULL), 0);
	assert_int_equal(vol_clone(t, &v, "s", 1, "too-deep", NULL), CAIRN_ETOOBIG);
	/* The deepest clone still reads block 0 from the first volume. */
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 0, &r), 0);
	assert_int_equal(r.blk[0].kind, VOL_BLK_WRITTEN);
	assert_int_equal(r.blk[0].depth, VOL_DEPTH_MAX);
	commit(t);
}

static void test_vol_newer_format_refused(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_ext_rec e = {.version = VOL_EXT_VERSION + 1};
	struct vol_resolved r;
	struct vol_rec vr;
	uint8_t k[VOL_EXT_KEY_LEN];
	const void *val;
	size_t vl;
	struct vol v;

	assert_int_equal(vol_create(t, 1, "fmt", 4 * MB, NULL, &v), 0);
	memcpy(k, v.id, VOL_ID_LEN);
	meta_be64(k + VOL_ID_LEN, 0);
	meta_be32(k + VOL_ID_LEN + 8, v.gen);
	e.gen = v.gen;
	e.present = 1;
	assert_int_equal(meta_put(t, META_T_EXTENTS, k, sizeof(k), &e, sizeof(e), 0), 0);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 0, &r), CAIRN_EFORMAT);
	e.version = VOL_EXT_VERSION;
	e.zero = 1; /* present and zero at once */
	assert_int_equal(meta_put(t, META_T_EXTENTS, k, sizeof(k), &e, sizeof(e), 0), 0);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 0, &r), CAIRN_ECORRUPT);
	/* A volume record from a newer build. */
	assert_int_equal(meta_get(t, META_T_VOLUMES, "\0\0\0\1fmt", 7, &val, &vl), 0);
	memcpy(&vr, val, sizeof(vr));
	vr.version = VOL_REC_VERSION + 1;
	assert_int_equal(meta_put(t, META_T_VOLUMES, "\0\0\0\1fmt", 7, &vr, sizeof(vr), 0), 0);
	assert_int_equal(vol_get(t, 1, "fmt", &v), CAIRN_EFORMAT);
	meta_txn_abort(t);
}

/* ---- the random model ---- */
#define M_EXTENTS 3
#define M_BLOCKS (M_EXTENTS * VOL_BLOCKS)
#define M_VOLS 6
#define M_SNAPS 8
#define M_GENS 1024

struct m_snap {
	char name[16];
	uint32_t gen;
	uint32_t content[M_BLOCKS];
	bool live;
};

struct m_vol {
	struct vol v;
	uint32_t content[M_BLOCKS]; /* 0: reads zero; else the token last written */
	struct m_snap snap[M_SNAPS];
	int parent;	 /* model index, -1 */
	int parent_snap; /* index in the parent's snap[] */
};

struct model {
	struct m_vol vol[M_VOLS];
	int nvols;
	uint32_t next_token;
	unsigned snap_seq;
	unsigned seed;
	unsigned ops[6]; /* write, zero, snapshot, clone, rollback, snapshot delete */
	unsigned refused, max_jumps;
	/* tok[vol][gen][block]: the last token written into that generation */
	uint32_t *tok;
};

static uint32_t *tok_at(struct model *m, int vi, uint32_t gen, unsigned blk)
{
	assert_true(gen < M_GENS);
	return &m->tok[((size_t)vi * M_GENS + gen) * M_BLOCKS + blk];
}

static int model_vol_by_id(struct model *m, const uint8_t *id)
{
	for (int i = 0; i < m->nvols; i++)
		if (memcmp(m->vol[i].v.id, id, VOL_ID_LEN) == 0)
			return i;
	fail_msg("resolve names an unknown volume");
	return -1;
}

static void check_view(struct model *m, struct meta_txn *t, int vi, uint32_t gen,
		       const uint32_t *content)
{
	struct vol_resolved r;

	for (uint64_t e = 0; e < M_EXTENTS; e++) {
		assert_int_equal(vol_map_resolve(t, &m->vol[vi].v, gen, e, &r), 0);
		for (unsigned b = 0; b < VOL_BLOCKS; b++) {
			uint32_t want = content[e * VOL_BLOCKS + b], got = 0;

			if (r.blk[b].kind == VOL_BLK_WRITTEN) {
				int src = model_vol_by_id(m, r.ids[r.blk[b].depth]);

				got = *tok_at(m, src, r.blk[b].gen, (unsigned)(e * VOL_BLOCKS + b));
				assert_int_not_equal(got, 0);
			}
			if (got != want)
				fail_msg("vol %d view %u extent %u block %u: got %u want %u", vi,
					 gen, (unsigned)e, b, got, want);
		}
	}
}

static void check_all(struct model *m, struct fixture *f)
{
	struct meta_txn *t;

	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	for (int i = 0; i < m->nvols; i++) {
		struct m_vol *mv = &m->vol[i];
		struct vol fresh;

		/* The stored record equals the copy the test holds. */
		assert_int_equal(vol_get_by_id(t, mv->v.id, &fresh), 0);
		assert_int_equal(fresh.gen, mv->v.gen);
		assert_int_equal(fresh.njumps, mv->v.njumps);
		check_view(m, t, i, mv->v.gen, mv->content);
		for (int s = 0; s < M_SNAPS; s++)
			if (mv->snap[s].live)
				check_view(m, t, i, mv->snap[s].gen, mv->snap[s].content);
	}
	meta_txn_abort(t);
}

static int diff_mark(uint64_t off, uint64_t len, bool zero, void *arg)
{
	int8_t *mark = arg; /* 1: changed to data, 2: changed to zero */

	assert_int_equal(off % VOL_BLOCK_SIZE, 0);
	assert_int_equal(len % VOL_BLOCK_SIZE, 0);
	for (uint64_t b = off / VOL_BLOCK_SIZE; b < (off + len) / VOL_BLOCK_SIZE; b++) {
		assert_true(b < M_BLOCKS);
		assert_int_equal(mark[b], 0);
		mark[b] = zero ? 2 : 1;
	}
	return 0;
}

static void check_diff(struct model *m, struct fixture *f, int vi, int s1, int s2)
{
	struct m_vol *mv = &m->vol[vi];
	static const uint32_t none[M_BLOCKS];
	const uint32_t *a = s1 < 0 ? none : mv->snap[s1].content;
	const uint32_t *b = s2 < 0 ? mv->content : mv->snap[s2].content;
	int8_t mark[M_BLOCKS] = {0};
	struct meta_txn *t;

	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	assert_int_equal(vol_snapshot_diff(t, &mv->v, s1 < 0 ? NULL : mv->snap[s1].name,
					   s2 < 0 ? NULL : mv->snap[s2].name, diff_mark, mark),
			 0);
	meta_txn_abort(t);
	for (unsigned i = 0; i < M_BLOCKS; i++) {
		int8_t want = a[i] == b[i] ? 0 : b[i] == 0 ? 2 : 1;

		if (mark[i] != want)
			fail_msg("diff vol %d %d..%d block %u: got %d want %d", vi, s1, s2, i,
				 mark[i], want);
	}
}

static int pick_snap(struct m_vol *mv, unsigned *seed)
{
	int live[M_SNAPS], n = 0;

	for (int s = 0; s < M_SNAPS; s++)
		if (mv->snap[s].live)
			live[n++] = s;
	return n ? live[rand_r(seed) % n] : -1;
}

static unsigned snap_clones(struct model *m, int vi, int s)
{
	unsigned n = 0;

	for (int i = 0; i < m->nvols; i++)
		if (m->vol[i].parent == vi && m->vol[i].parent_snap == s)
			n++;
	return n;
}

static void model_step(struct model *m, struct fixture *f, unsigned *seed)
{
	int vi = rand_r(seed) % m->nvols, op = rand_r(seed) % 100;
	struct m_vol *mv = &m->vol[vi];
	struct meta_txn *t = wtxn(f);

	if (op < 55) { /* write or zero, aligned or not */
		bool zero = op >= 40;
		uint64_t e = (uint64_t)(rand_r(seed) % M_EXTENTS);
		uint32_t first = (uint32_t)(rand_r(seed) % VOL_BLOCKS);
		uint32_t nb = 1 + (uint32_t)(rand_r(seed) % 8);
		uint32_t off = first * VOL_BLOCK_SIZE, len;
		struct vol_write_out wo;

		if (first + nb > VOL_BLOCKS)
			nb = VOL_BLOCKS - first;
		len = nb * VOL_BLOCK_SIZE;
		if (rand_r(seed) % 3 == 0) { /* unaligned head and/or tail */
			uint32_t cut = 512 * (1 + (uint32_t)(rand_r(seed) % 64));

			if (rand_r(seed) % 2 && cut < len) {
				off += cut;
				len -= cut;
			} else if (cut < len) {
				len -= cut;
			}
		}
		m->ops[zero]++;
		assert_int_equal(
		    vol_map_write(t, &mv->v, e, off, len, zero ? VOL_ZERO : VOL_WRITE, &wo), 0);
		for (unsigned b = off / VOL_BLOCK_SIZE; b <= (off + len - 1) / VOL_BLOCK_SIZE;
		     b++) {
			unsigned mb = (unsigned)(e * VOL_BLOCKS + b);
			bool part =
			    b * VOL_BLOCK_SIZE < off || (b + 1) * VOL_BLOCK_SIZE > off + len;
			uint32_t tok = ++m->next_token;

			if (part) {
				/* Copy-up exactly when old bytes are elsewhere. */
				if (mv->content[mb] == 0) {
					assert_true(wo.fill >> b & 1);
					assert_false(wo.copyup >> b & 1);
				} else {
					bool here = wo.prior.blk[b].kind == VOL_BLK_WRITTEN &&
						    wo.prior.blk[b].depth == 0 &&
						    wo.prior.blk[b].gen == mv->v.gen;

					assert_int_equal(!!(wo.copyup >> b & 1), !here);
					assert_false(wo.fill >> b & 1);
				}
			}
			if (zero && !part) {
				mv->content[mb] = 0;
			} else {
				assert_true(wo.write >> b & 1);
				mv->content[mb] = tok;
				*tok_at(m, vi, mv->v.gen, mb) = tok;
			}
		}
	} else if (op < 70) { /* snapshot */
		int s;

		for (s = 0; s < M_SNAPS && mv->snap[s].live; s++)
			;
		if (s < M_SNAPS) {
			struct m_snap *ms = &mv->snap[s];

			snprintf(ms->name, sizeof(ms->name), "s%u", ++m->snap_seq);
			ms->gen = mv->v.gen;
			assert_int_equal(vol_snapshot_create(t, &mv->v, ms->name, NULL), 0);
			m->ops[2]++;
			memcpy(ms->content, mv->content, sizeof(ms->content));
			ms->live = true;
		}
	} else if (op < 78) { /* clone */
		int s = pick_snap(mv, seed);

		if (s >= 0 && m->nvols < M_VOLS) {
			struct m_vol *c = &m->vol[m->nvols];
			char name[32];

			snprintf(name, sizeof(name), "clone%u-%d", m->seed, m->nvols);
			memset(c, 0, sizeof(*c));
			assert_int_equal(vol_clone(t, &mv->v, mv->snap[s].name, 5, name, &c->v), 0);
			memcpy(c->content, mv->snap[s].content, sizeof(c->content));
			c->parent = vi;
			c->parent_snap = s;
			m->ops[3]++;
			m->nvols++;
		}
	} else if (op < 88) { /* rollback */
		int s = pick_snap(mv, seed);

		if (s >= 0) {
			assert_int_equal(vol_rollback(t, &mv->v, mv->snap[s].name), 0);
			memcpy(mv->content, mv->snap[s].content, sizeof(mv->content));
			m->ops[4]++;
			if (mv->v.njumps > m->max_jumps)
				m->max_jumps = mv->v.njumps;
		}
	} else { /* snapshot delete */
		int s = pick_snap(mv, seed);

		if (s >= 0) {
			if (snap_clones(m, vi, s)) {
				assert_int_equal(vol_snapshot_delete(t, &mv->v, mv->snap[s].name),
						 -EBUSY);
				m->refused++;
			} else {
				assert_int_equal(vol_snapshot_delete(t, &mv->v, mv->snap[s].name),
						 0);
				mv->snap[s].live = false;
				m->ops[5]++;
			}
		}
	}
	commit(t);
	if (rand_r(seed) % 8 == 0) {
		int a = pick_snap(mv, seed), b = pick_snap(mv, seed);

		check_diff(m, f, vi, -1, -1);
		check_diff(m, f, vi, a, b);
		check_diff(m, f, vi, a, -1);
	}
}

static void run_model(struct fixture *f, unsigned seed, int steps)
{
	struct model *m = calloc(1, sizeof(*m));
	struct meta_txn *t = wtxn(f);
	char name[32];

	m->seed = seed;
	m->tok = calloc((size_t)M_VOLS * M_GENS * M_BLOCKS, sizeof(uint32_t));
	snprintf(name, sizeof(name), "root-%u", seed);
	assert_int_equal(
	    vol_create(t, 9, name, M_EXTENTS * (uint64_t)VOL_EXTENT_SIZE, NULL, &m->vol[0].v), 0);
	m->vol[0].parent = -1;
	m->nvols = 1;
	commit(t);
	for (int i = 0; i < steps; i++) {
		model_step(m, f, &seed);
		check_all(m, f);
	}
	print_message("seed %u: %u writes %u zeroes %u snapshots %u clones %u rollbacks "
		      "%u snapshot deletes (%u refused), %d volumes, max %u jumps\n",
		      m->seed, m->ops[0], m->ops[1], m->ops[2], m->ops[3], m->ops[4], m->ops[5],
		      m->refused, m->nvols, m->max_jumps);
	free(m->tok);
	free(m);
}

static void test_vol_model_random(void **state)
{
	struct fixture *f = *state;
	const char *env = getenv("CAIRN_VOL_SEEDS");
	unsigned nseeds = env ? (unsigned)atoi(env) : 12;

	for (unsigned s = 1; s <= nseeds; s++)
		run_model(f, s * 7919u, 500);
}

/* VOL_RECF_IMAGE (issue 7): blocks no record decides read the base; a
 * clone reads it through its parent; partial writes copy up from it and
 * zeroes over it are recorded; both flags at once do not decode. */
static void test_vol_base_manifest_issue7(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct vol_write_out wo;
	struct vol_resolved r;
	struct vol v, c, g;
	uint8_t mid[VOL_ID_LEN];
	bool has;

	memset(mid, 0xab, sizeof(mid));
	assert_int_equal(vol_create(t, 1, "img", 8 * MB, NULL, &v), 0);
	assert_int_equal(vol_set_base(t, &v, mid), 0);
	assert_int_equal(vol_set_base(t, &v, mid), CAIRN_EINVAL); /* has one */
	assert_int_equal(vol_get(t, 1, "img", &g), 0);
	assert_true(g.has_base);
	assert_false(g.has_parent);
	assert_memory_equal(g.base_mid, mid, VOL_ID_LEN);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 1, &r), 0);
	assert_int_equal(r.base, UINT64_MAX);
	assert_int_equal(r.blk[7].kind, VOL_BLK_BASE);
	assert_memory_equal(r.base_mid, mid, VOL_ID_LEN);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 2, &r), 0); /* past the size */
	assert_int_equal(r.base, 0);
	assert_int_equal(r.blk[0].kind, VOL_BLK_UNWRITTEN);

	/* A partial write copies up; a whole-block zero is recorded. */
	assert_int_equal(vol_map_write(t, &v, 0, 100, 1000, VOL_WRITE, &wo), 0);
	assert_int_equal(wo.copyup, 1);
	assert_int_equal(wo.fill, 0);
	assert_int_equal(vol_map_write(t, &v, 1, 0, 2 * VOL_BLOCK_SIZE, VOL_ZERO, &wo), 0);
	assert_true(wo.record);
	assert_int_equal(vol_map_resolve(t, &v, v.gen, 1, &r), 0);
	assert_int_equal(r.zero, 3);
	assert_int_equal(r.base, UINT64_MAX & ~3ull);

	/* A clone reads the base through its parent, holds none itself. */
	assert_int_equal(vol_snapshot_create(t, &v, "s", NULL), 0);
	assert_int_equal(vol_clone(t, &v, "s", 2, "vm", &c), 0);
	assert_false(c.has_base);
	assert_int_equal(vol_chain_base(t, &c, &has, mid), 0);
	assert_true(has);
	assert_int_equal(vol_map_resolve(t, &c, c.gen, 1, &r), 0);
	assert_int_equal(r.blk[5].kind, VOL_BLK_BASE);
	assert_int_equal(r.blk[5].depth, 1);
	assert_int_equal(r.blk[0].kind, VOL_BLK_ZERO);
	assert_int_equal(vol_set_base(t, &c, mid), CAIRN_EINVAL); /* has a parent */

	/* Flatten as bs_admin does it: zero blocks kept, base taken over. */
	assert_int_equal(vol_map_put_base_zero(t, &c, 1, 0, 3), 0);
	assert_int_equal(vol_map_put_base_zero(t, &c, 1, 1, 1), CAIRN_EINVAL);
	assert_int_equal(vol_unparent(t, &c), 0);
	assert_int_equal(vol_set_base(t, &c, mid), 0);
	assert_int_equal(vol_map_resolve(t, &c, c.gen, 1, &r), 0);
	assert_int_equal(r.zero, 3);
	assert_int_equal(r.blk[5].kind, VOL_BLK_BASE);
	assert_int_equal(r.blk[5].depth, 0);

	/* Both flags: corrupt. */
	{
		uint8_t k[4 + 3], val[sizeof(struct vol_rec)];
		const void *cv;
		size_t vl;
		struct vol_rec rec;
		meta_be32(k, 1);
		memcpy(k + 4, "img", 3);
		assert_int_equal(meta_get(t, META_T_VOLUMES, k, sizeof(k), &cv, &vl), 0);
		assert_int_equal(vl, sizeof(rec));
		memcpy(&rec, cv, sizeof(rec));
		rec.flags |= VOL_RECF_PARENT;
		memcpy(val, &rec, sizeof(rec));
		assert_int_equal(meta_put(t, META_T_VOLUMES, k, sizeof(k), val, sizeof(val), 0), 0);
		assert_int_equal(vol_get(t, 1, "img", &g), CAIRN_ECORRUPT);
	}
	commit(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_vol_create_get_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_write_resolve_copyup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_zero_costs_no_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_trim_on_clone_hides_parent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_flatten_base_then_unparent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_snapshot_clone_rollback_constant_records,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_diff_exact_ranges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_delete_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_resize_shrink_then_grow_reads_zero, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_vol_snapshot_delete_merges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_rollback_many_keeps_jumps_bounded, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_vol_clone_depth_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_newer_format_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_model_random, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vol_base_manifest_issue7, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
