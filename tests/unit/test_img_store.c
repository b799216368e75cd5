/* tests/unit/test_img_store.c - registry/img_store: image records, the
 * in-memory index, seq ordering of applies, tombstones, and the recovery
 * of uploads a stop interrupted (issue 7), over a real pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkstore/chunkstore.h"
#include "cs_test.h"
#include "meta/meta.h"
#include "registry/img_store.h"

struct fixture {
	char dir[256];
	struct cs_pool *pool;
	struct img_store *st;
};

static int pool_open(struct fixture *f)
{
	struct cs_pool_opts o = {0};
	o.data_dir = f->dir;
	o.seal_off = true;
	o.gc_interval = -1;
	return cs_pool_open(&o, &f->pool);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || cs_test_tmpdir(f->dir, sizeof(f->dir), "imgstore") < 0)
		return -1;
	if (pool_open(f) < 0 || img_store_open(f->pool, &f->st) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	img_store_close(f->st);
	cs_pool_close(f->pool);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* Closes and reopens store and pool (what a restart does). */
static void reopen(struct fixture *f)
{
	img_store_close(f->st);
	f->st = NULL;
	cs_pool_close(f->pool);
	f->pool = NULL;
	assert_int_equal(pool_open(f), 0);
	assert_int_equal(img_store_open(f->pool, &f->st), 0);
}

static void make_id(uint8_t id[IMG_ID_LEN], unsigned n)
{
	memset(id, 0, IMG_ID_LEN);
	id[0] = 0x10;
	id[15] = (uint8_t)n;
	id[14] = (uint8_t)(n >> 8);
}

static int name_fn(struct cs_txn *txn, struct img_mut *m)
{
	(void)txn;
	json_object_set_new(m->doc, "name", json_string(m->arg));
	return 0;
}

static void create(struct fixture *f, unsigned n, const char *name)
{
	struct img_mut m = {.create = true, .fn = name_fn, .arg = (void *)name};
	make_id(m.id, n);
	assert_int_equal(img_store_write(f->st, &m), 0);
	img_mut_clear(&m);
}

static void test_ids_and_codec(void **state)
{
	(void)state;
	uint8_t id[IMG_ID_LEN], back[IMG_ID_LEN];
	char s[37];
	make_id(id, 0x1234);
	img_id_fmt(id, s);
	assert_string_equal(s, "10000000-0000-0000-0000-000000001234");
	assert_int_equal(img_id_parse(s, back), 0);
	assert_memory_equal(id, back, IMG_ID_LEN);
	assert_int_equal(img_id_parse("10000000-0000-0000-0000-00000000123", back), CAIRN_EINVAL);
	assert_int_equal(img_id_parse("10000000x0000-0000-0000-000000001234", back), CAIRN_EINVAL);
	assert_int_equal(img_id_parse("A0000000-0000-0000-0000-00000000123G", back), CAIRN_EINVAL);
	assert_int_equal(img_id_parse("ABCDEF00-0000-0000-0000-000000001234", back), 0);
	assert_int_equal(back[0], 0xab);

	struct img_rec r = {0}, r2;
	json_t *doc = img_doc_new(), *d2 = NULL;
	json_object_set_new(doc, "name", json_string("x"));
	memcpy(r.id, id, IMG_ID_LEN);
	r.status = IMG_ACTIVE;
	r.size = 12345;
	r.seq = 7;
	uint8_t *buf;
	size_t len;
	assert_int_equal(img_rec_encode(&r, doc, &buf, &len), 0);
	assert_true(len > sizeof(r));
	assert_int_equal(img_rec_decode(buf, len, &r2, &d2), 0);
	assert_int_equal(r2.version, IMG_REC_VERSION);
	assert_int_equal(r2.size, 12345);
	assert_int_equal(r2.seq, 7);
	assert_string_equal(json_string_value(json_object_get(d2, "name")), "x");
	json_decref(d2);
	/* short, bad doc, newer version */
	assert_int_equal(img_rec_decode(buf, sizeof(r) - 1, &r2, &d2), CAIRN_ECORRUPT);
	assert_int_equal(img_rec_decode(buf, len - 1, &r2, &d2), CAIRN_ECORRUPT);
	buf[0] = IMG_REC_VERSION + 1;
	assert_int_equal(img_rec_decode(buf, len, &r2, &d2), CAIRN_EFORMAT);
	free(buf);
	/* a doc over the limit is refused, not truncated */
	char *big = malloc(IMG_DOC_MAX + 10);
	memset(big, 'a', IMG_DOC_MAX + 9);
	big[IMG_DOC_MAX + 9] = '\0';
	json_object_set_new(doc, "name", json_string(big));
	free(big);
	assert_int_equal(img_rec_encode(&r, doc, &buf, &len), CAIRN_ETOOBIG);
	json_decref(doc);
}

static void test_create_get_update_delete(void **state)
{
	struct fixture *f = *state;
	uint8_t id[IMG_ID_LEN];
	create(f, 1, "one");
	make_id(id, 1);
	struct img_entry *e = img_store_get(f->st, id);
	assert_non_null(e);
	assert_string_equal(e->name, "one");
	assert_int_equal(e->rec.status, IMG_QUEUED);
	assert_int_equal(e->rec.visibility, IMG_VIS_SHARED);
	assert_true(e->rec.created_ns > 0);
	uint64_t seq1 = e->rec.seq;
	/* a duplicate create is refused and changes nothing */
	struct img_mut m = {.create = true, .fn = name_fn, .arg = "two"};
	make_id(m.id, 1);
	assert_int_equal(img_store_write(f->st, &m), CAIRN_EEXISTS);
	img_mut_clear(&m);
	struct img_entry *e2 = img_store_get(f->st, id);
	assert_ptr_equal(e, e2);
	img_entry_put(e2);
	/* an update replaces the entry; the old one stays readable */
	struct img_mut u = {.fn = name_fn, .arg = "renamed"};
	make_id(u.id, 1);
	assert_int_equal(img_store_write(f->st, &u), 0);
	img_mut_clear(&u);
	assert_string_equal(e->name, "one");
	e2 = img_store_get(f->st, id);
	assert_string_equal(e2->name, "renamed");
	assert_true(e2->rec.seq > seq1);
	img_entry_put(e2);
	img_entry_put(e);
	/* an update of an unknown id */
	struct img_mut u2 = {.fn = name_fn, .arg = "x"};
	make_id(u2.id, 99);
	assert_int_equal(img_store_write(f->st, &u2), CAIRN_ENOTFOUND);
	img_mut_clear(&u2);
	/* persisted: a restart reloads it */
	reopen(f);
	e = img_store_get(f->st, id);
	assert_non_null(e);
	assert_string_equal(e->name, "renamed");
	img_entry_put(e);
}

static int remove_fn(struct cs_txn *txn, struct img_mut *m)
{
	(void)txn;
	m->remove = true;
	return 0;
}

struct commit_one {
	struct img_store *st;
	struct img_mut *m;
};

static int commit_one_cb(struct cs_txn *txn, void *arg)
{
	struct commit_one *c = arg;
	return img_store_mut_txn(c->st, txn, c->m);
}

/* Commits m but does not apply it yet (a writer whose apply is late). */
static void commit_only(struct fixture *f, struct img_mut *m)
{
	struct commit_one c = {f->st, m};
	assert_int_equal(cs_commit(f->pool, NULL, commit_one_cb, &c), 0);
}

static void test_seq_order_late_apply_loses(void **state)
{
	struct fixture *f = *state;
	uint8_t id[IMG_ID_LEN];
	create(f, 2, "start");
	make_id(id, 2);
	img_store_write_begin(f->st);
	struct img_mut a = {.fn = name_fn, .arg = "older"};
	struct img_mut b = {.fn = name_fn, .arg = "newer"};
	memcpy(a.id, id, IMG_ID_LEN);
	memcpy(b.id, id, IMG_ID_LEN);
	commit_only(f, &a);
	commit_only(f, &b);
	assert_true(b.rec.seq > a.rec.seq);
	/* the newer commit applies first; the older one arriving late must
	 * not overwrite it */
	img_store_mut_apply(f->st, &b);
	img_store_mut_apply(f->st, &a);
	struct img_entry *e = img_store_get(f->st, id);
	assert_string_equal(e->name, "newer");
	img_entry_put(e);
	img_mut_clear(&a);
	img_mut_clear(&b);
	img_store_write_end(f->st);
}

static void test_tombstone_blocks_stale_update(void **state)
{
	struct fixture *f = *state;
	uint8_t id[IMG_ID_LEN];
	create(f, 3, "doomed");
	make_id(id, 3);
	img_store_write_begin(f->st); /* a writer in flight keeps tombstones */
	struct img_mut upd = {.fn = name_fn, .arg = "stale"};
	struct img_mut del = {.fn = remove_fn};
	memcpy(upd.id, id, IMG_ID_LEN);
	memcpy(del.id, id, IMG_ID_LEN);
	commit_only(f, &upd);
	commit_only(f, &del);
	img_store_mut_apply(f->st, &del);
	assert_null(img_store_get(f->st, id));
	img_store_mut_apply(f->st, &upd); /* late: must not resurrect it */
	assert_null(img_store_get(f->st, id));
	img_mut_clear(&upd);
	img_mut_clear(&del);
	/* the tombstone goes once no writer is in flight */
	img_store_rdlock(f->st);
	size_t with = img_store_count(f->st);
	img_store_unlock(f->st);
	img_store_write_end(f->st);
	img_store_rdlock(f->st);
	size_t without = img_store_count(f->st);
	img_store_unlock(f->st);
	assert_int_equal(without, with - 1);
	/* and the id can be created again */
	create(f, 3, "reborn");
	struct img_entry *e = img_store_get(f->st, id);
	assert_non_null(e);
	assert_string_equal(e->name, "reborn");
	img_entry_put(e);
}

static void test_index_sorted_many(void **state)
{
	struct fixture *f = *state;
	/* inserted in an order unlike id order (LMDB order is by partition) */
	for (unsigned i = 0; i < 300; i++)
		create(f, (i * 7919u) % 1000u + 10, "n");
	reopen(f);
	img_store_rdlock(f->st);
	size_t n = img_store_count(f->st);
	assert_int_equal(n, 300);
	for (size_t i = 1; i < n; i++)
		assert_true(memcmp(img_store_at(f->st, i - 1)->rec.id,
				   img_store_at(f->st, i)->rec.id, IMG_ID_LEN) < 0);
	img_store_unlock(f->st);
	uint8_t id[IMG_ID_LEN];
	make_id(id, (5 * 7919u) % 1000u + 10);
	struct img_entry *e = img_store_get(f->st, id);
	assert_non_null(e);
	img_entry_put(e);
	/* a new write after the restart gets a seq above every stored one */
	uint64_t maxseq = 0;
	img_store_rdlock(f->st);
	for (size_t i = 0; i < n; i++)
		if (img_store_at(f->st, i)->rec.seq > maxseq)
			maxseq = img_store_at(f->st, i)->rec.seq;
	img_store_unlock(f->st);
	struct img_mut u = {.fn = name_fn, .arg = "after"};
	memcpy(u.id, id, IMG_ID_LEN);
	assert_int_equal(img_store_write(f->st, &u), 0);
	assert_true(u.rec.seq > maxseq);
	img_mut_clear(&u);
}

/* A manifest of some bytes, committed into an image record as raw_mid
 * with the image left saving (what a crash in the middle of an upload
 * leaves). */
struct crash_arg {
	struct img_store *st;
	struct img_mut *m;
	struct cs_mid mid;
};

static int crash_fn(struct cs_txn *txn, struct img_mut *m)
{
	(void)txn;
	struct crash_arg *ca = m->arg;
	m->rec.status = IMG_SAVING;
	m->rec.flags |= IMG_F_RAW;
	memcpy(m->rec.raw_mid, ca->mid.b, 16);
	return 0;
}

static int crash_cb(struct cs_txn *txn, void *arg)
{
	struct crash_arg *ca = arg;
	int ret = cs_manifest_create(txn, &ca->mid);
	if (ret < 0)
		return ret;
	ca->m->fn = crash_fn;
	ca->m->arg = ca;
	return img_store_mut_txn(ca->st, txn, ca->m);
}

static void test_recovery_saving_to_queued_releases(void **state)
{
	struct fixture *f = *state;
	uint8_t id[IMG_ID_LEN];
	struct cs_writer *w;
	uint8_t data[64 * 1024];
	create(f, 4, "interrupted");
	create(f, 5, "fine");
	make_id(id, 4);
	fill_random(data, sizeof(data), 4);
	assert_int_equal(cs_writer_open(f->pool, &w), 0);
	assert_int_equal(cs_writer_write(w, data, sizeof(data)), 0);
	assert_int_equal(cs_writer_finish(w), 0);
	struct img_mut m = {0};
	memcpy(m.id, id, IMG_ID_LEN);
	struct crash_arg ca = {f->st, &m, {{0}}};
	assert_int_equal(cs_commit(f->pool, w, crash_cb, &ca), 0);
	cs_writer_free(w);
	img_store_mut_apply(f->st, &m);
	img_mut_clear(&m);
	struct img_entry *e = img_store_get(f->st, id);
	assert_int_equal(e->rec.status, IMG_SAVING);
	img_entry_put(e);
	struct cs_stats stats;
	assert_int_equal(cs_pool_stats(f->pool, &stats), 0);
	assert_int_equal(stats.logical_bytes, sizeof(data)); /* held by the record */

	reopen(f);
	e = img_store_get(f->st, id);
	assert_non_null(e);
	assert_int_equal(e->rec.status, IMG_QUEUED);
	assert_false(e->rec.flags & IMG_F_RAW);
	assert_string_equal(e->name, "interrupted");
	img_entry_put(e);
	/* the reference was released: no live reference holds the bytes */
	assert_int_equal(cs_pool_stats(f->pool, &stats), 0);
	assert_int_equal(stats.logical_bytes, 0);
	/* the other image was left alone */
	make_id(id, 5);
	e = img_store_get(f->st, id);
	assert_int_equal(e->rec.status, IMG_QUEUED);
	assert_string_equal(e->name, "fine");
	img_entry_put(e);
	/* recovery is idempotent: another restart changes nothing */
	reopen(f);
	make_id(id, 4);
	e = img_store_get(f->st, id);
	assert_int_equal(e->rec.status, IMG_QUEUED);
	img_entry_put(e);
}

static void test_refresh_matches_lmdb(void **state)
{
	struct fixture *f = *state;
	uint8_t id[IMG_ID_LEN];
	create(f, 6, "before");
	make_id(id, 6);
	/* a commit that is never applied (a failed multi-commit write) */
	struct img_mut u = {.fn = name_fn, .arg = "committed"};
	memcpy(u.id, id, IMG_ID_LEN);
	img_store_write_begin(f->st);
	commit_only(f, &u);
	img_mut_clear(&u);
	struct img_entry *e = img_store_get(f->st, id);
	assert_string_equal(e->name, "before");
	img_entry_put(e);
	assert_int_equal(img_store_refresh(f->st, id), 0);
	e = img_store_get(f->st, id);
	assert_string_equal(e->name, "committed");
	img_entry_put(e);
	img_store_write_end(f->st);
	/* a refresh of a record that is gone removes it from the index */
	struct img_mut d = {.fn = remove_fn};
	memcpy(d.id, id, IMG_ID_LEN);
	img_store_write_begin(f->st);
	commit_only(f, &d);
	img_mut_clear(&d);
	assert_non_null(e = img_store_get(f->st, id));
	img_entry_put(e);
	assert_int_equal(img_store_refresh(f->st, id), 0);
	assert_null(img_store_get(f->st, id));
	img_store_write_end(f->st);
}

static void test_usage_cache_follows_seq(void **state)
{
	struct fixture *f = *state;
	uint8_t id[IMG_ID_LEN];
	create(f, 7, "u");
	make_id(id, 7);
	struct img_entry *e = img_store_get(f->st, id);
	img_store_set_usage(f->st, id, e->rec.seq, 1, 100, 200);
	img_entry_put(e);
	e = img_store_get(f->st, id);
	assert_true(atomic_load(&e->usage_valid));
	assert_int_equal(atomic_load(&e->unique_bytes), 100);
	uint64_t old = e->rec.seq;
	img_entry_put(e);
	/* a metadata change keeps the cache (same manifests) */
	struct img_mut u = {.fn = name_fn, .arg = "v"};
	memcpy(u.id, id, IMG_ID_LEN);
	assert_int_equal(img_store_write(f->st, &u), 0);
	img_mut_clear(&u);
	e = img_store_get(f->st, id);
	assert_true(atomic_load(&e->usage_valid));
	assert_int_equal(atomic_load(&e->shared_bytes), 200);
	img_entry_put(e);
	/* a stale seq does not set it */
	img_store_set_usage(f->st, id, old, 1, 1, 1);
	e = img_store_get(f->st, id);
	assert_int_equal(atomic_load(&e->unique_bytes), 100);
	img_entry_put(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids_and_codec),
	    cmocka_unit_test_setup_teardown(test_create_get_update_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seq_order_late_apply_loses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tombstone_blocks_stale_update, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_sorted_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recovery_saving_to_queued_releases, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_refresh_matches_lmdb, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_usage_cache_follows_seq, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
