/* tests/unit/test_meta.c - meta/: LMDB tables, txns, cursors, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta/meta.h"

struct fixture {
	char dir[256];
	struct meta_env *env;
};

static int rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-meta-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	/* A sub-directory that does not exist yet: meta_open creates it. */
	strcat(f->dir, "/meta");
	if (meta_open(f->dir, NULL, &f->env) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *slash = strrchr(f->dir, '/');

	meta_close(f->env);
	*slash = '\0';
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void put_str(struct meta_txn *t, enum meta_table tab, const char *k, const char *v)
{
	assert_int_equal(meta_put(t, tab, k, strlen(k), v, strlen(v) + 1, 0), 0);
}

static void test_meta_put_get_del(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t;
	const void *v;
	size_t vl;

	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	assert_true(meta_txn_is_write(t));
	put_str(t, META_T_OBJECTS, "alpha", "one");
	put_str(t, META_T_BUCKETS, "alpha", "other-table");
	assert_int_equal(meta_get(t, META_T_OBJECTS, "alpha", 5, &v, &vl), 0);
	assert_int_equal(vl, 4);
	assert_string_equal(v, "one");
	/* Tables are separate namespaces. */
	assert_int_equal(meta_get(t, META_T_BUCKETS, "alpha", 5, &v, &vl), 0);
	assert_string_equal(v, "other-table");
	assert_int_equal(meta_get(t, META_T_USERS, "alpha", 5, &v, &vl), CAIRN_ENOTFOUND);
	assert_int_equal(meta_put(t, META_T_OBJECTS, "alpha", 5, "x", 2, META_NOOVERWRITE),
			 CAIRN_EEXISTS);
	assert_int_equal(meta_txn_commit(t), 0);

	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	assert_false(meta_txn_is_write(t));
	assert_int_equal(meta_get(t, META_T_OBJECTS, "alpha", 5, &v, &vl), 0);
	assert_string_equal(v, "one");
	/* Writes in a read txn are refused, not crashed. */
	assert_int_equal(meta_put(t, META_T_OBJECTS, "b", 1, "x", 1, 0), CAIRN_EINVAL);
	meta_txn_abort(t);

	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	assert_int_equal(meta_del(t, META_T_OBJECTS, "alpha", 5), 0);
	assert_int_equal(meta_del(t, META_T_OBJECTS, "alpha", 5), CAIRN_ENOTFOUND);
	assert_int_equal(meta_get(t, META_T_OBJECTS, "alpha", 5, &v, &vl), CAIRN_ENOTFOUND);
	assert_int_equal(meta_txn_commit(t), 0);
}

static void test_meta_key_limits(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t;
	uint8_t big[META_KEY_MAX + 1];

	memset(big, 'k', sizeof(big));
	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	assert_int_equal(meta_put(t, META_T_KEYS, big, META_KEY_MAX, "v", 1, 0), 0);
	assert_int_equal(meta_put(t, META_T_KEYS, big, META_KEY_MAX + 1, "v", 1, 0), CAIRN_EINVAL);
	assert_int_equal(meta_put(t, META_T_KEYS, big, 0, "v", 1, 0), CAIRN_EINVAL);
	assert_int_equal(meta_put(t, META_T_COUNT, big, 1, "v", 1, 0), CAIRN_EINVAL);
	/* Empty values are fine. */
	assert_int_equal(meta_put(t, META_T_KEYS, "e", 1, NULL, 0, 0), 0);
	meta_txn_abort(t);
}

/* Keys 10, 20, ..., 90 as big-endian u32 behind a partition prefix. */
static void fill_range(struct fixture *f)
{
	struct meta_txn *t;
	uint8_t k[8];

	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	for (uint32_t i = 1; i <= 9; i++) {
		meta_be32(k, 7);
		meta_be32(k + 4, i * 10);
		assert_int_equal(meta_put(t, META_T_MANIFESTS, k, 8, &i, sizeof(i), 0), 0);
	}
	assert_int_equal(meta_txn_commit(t), 0);
}

static uint32_t key_off(const void *k)
{
	return meta_get_be32((const uint8_t *)k + 4);
}

static void test_meta_cursor_range_scan(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t;
	struct meta_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	uint8_t key[8];
	uint32_t expect = 30;
	int rc;

	fill_range(f);
	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	assert_int_equal(meta_cursor_open(t, META_T_MANIFESTS, &c), 0);
	meta_be32(key, 7);
	meta_be32(key + 4, 25);
	rc = meta_cursor_seek(c, key, 8, &k, &kl, &v, &vl);
	assert_int_equal(rc, 0);
	while (rc == 0) {
		assert_int_equal(kl, 8);
		assert_int_equal(key_off(k), expect);
		assert_int_equal(*(const uint32_t *)v, expect / 10);
		expect += 10;
		rc = meta_cursor_next(c, &k, &kl, &v, &vl);
	}
	assert_int_equal(rc, CAIRN_ENOTFOUND);
	assert_int_equal(expect, 100);
	/* klen 0: first key; prev from first: not found. */
	assert_int_equal(meta_cursor_seek(c, NULL, 0, &k, &kl, NULL, NULL), 0);
	assert_int_equal(key_off(k), 10);
	assert_int_equal(meta_cursor_prev(c, &k, &kl, NULL, NULL), CAIRN_ENOTFOUND);
	/* Seek past the end. */
	meta_be32(key, 8);
	assert_int_equal(meta_cursor_seek(c, key, 4, &k, &kl, &v, &vl), CAIRN_ENOTFOUND);
	meta_cursor_close(c);
	meta_txn_abort(t);
}

static void test_meta_seek_le_boundaries(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t;
	struct meta_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	uint8_t key[8];

	fill_range(f);
	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	assert_int_equal(meta_cursor_open(t, META_T_MANIFESTS, &c), 0);
	meta_be32(key, 7);
	/* Exact hit. */
	meta_be32(key + 4, 40);
	assert_int_equal(meta_cursor_seek_le(c, key, 8, &k, &kl, &v, &vl), 0);
	assert_int_equal(key_off(k), 40);
	/* Between keys: the one below. */
	meta_be32(key + 4, 41);
	assert_int_equal(meta_cursor_seek_le(c, key, 8, &k, &kl, &v, &vl), 0);
	assert_int_equal(key_off(k), 40);
	meta_be32(key + 4, 39);
	assert_int_equal(meta_cursor_seek_le(c, key, 8, &k, &kl, &v, &vl), 0);
	assert_int_equal(key_off(k), 30);
	/* First key exactly, and below the first key. */
	meta_be32(key + 4, 10);
	assert_int_equal(meta_cursor_seek_le(c, key, 8, &k, &kl, &v, &vl), 0);
	assert_int_equal(key_off(k), 10);
	meta_be32(key + 4, 9);
	assert_int_equal(meta_cursor_seek_le(c, key, 8, &k, &kl, &v, &vl), CAIRN_ENOTFOUND);
	/* Beyond the last key (no key >= it): the last key. */
	meta_be32(key + 4, 1000);
	assert_int_equal(meta_cursor_seek_le(c, key, 8, &k, &kl, &v, &vl), 0);
	assert_int_equal(key_off(k), 90);
	meta_be32(key, 99);
	assert_int_equal(meta_cursor_seek_le(c, key, 4, &k, &kl, &v, &vl), 0);
	assert_int_equal(key_off(k), 90);
	/* A prefix shorter than the keys sorts before them. */
	meta_be32(key, 7);
	assert_int_equal(meta_cursor_seek_le(c, key, 4, &k, &kl, &v, &vl), CAIRN_ENOTFOUND);
	/* klen 0: the last key; next after it: not found. */
	assert_int_equal(meta_cursor_seek_le(c, NULL, 0, &k, &kl, &v, &vl), 0);
	assert_int_equal(key_off(k), 90);
	assert_int_equal(meta_cursor_next(c, &k, &kl, &v, &vl), CAIRN_ENOTFOUND);
	meta_cursor_close(c);

	/* Empty table. */
	assert_int_equal(meta_cursor_open(t, META_T_STRIPES, &c), 0);
	assert_int_equal(meta_cursor_seek_le(c, key, 8, &k, &kl, &v, &vl), CAIRN_ENOTFOUND);
	assert_int_equal(meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl), CAIRN_ENOTFOUND);
	meta_cursor_close(c);
	meta_txn_abort(t);
}

static void test_meta_cursor_del_and_dead_cursor(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t;
	struct meta_cursor *c, *c2;
	const void *k;
	size_t kl;
	int rc, seen = 0;

	fill_range(f);
	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	assert_int_equal(meta_cursor_open(t, META_T_MANIFESTS, &c), 0);
	assert_int_equal(meta_cursor_open(t, META_T_MANIFESTS, &c2), 0);
	/* Delete every other key while walking. */
	rc = meta_cursor_seek(c, NULL, 0, &k, &kl, NULL, NULL);
	while (rc == 0) {
		if ((key_off(k) / 10) % 2 == 0)
			assert_int_equal(meta_cursor_del(c), 0);
		seen++;
		rc = meta_cursor_next(c, &k, &kl, NULL, NULL);
	}
	assert_int_equal(rc, CAIRN_ENOTFOUND);
	assert_int_equal(seen, 9);
	meta_cursor_close(c2); /* closed before the txn ends */
	assert_int_equal(meta_txn_commit(t), 0);
	/* c outlived its txn: dead, but safe to call and to close. */
	assert_int_equal(meta_cursor_next(c, &k, &kl, NULL, NULL), CAIRN_EINVAL);
	meta_cursor_close(c);

	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	assert_int_equal(meta_cursor_open(t, META_T_MANIFESTS, &c), 0);
	seen = 0;
	rc = meta_cursor_seek(c, NULL, 0, &k, &kl, NULL, NULL);
	while (rc == 0) {
		assert_int_equal((key_off(k) / 10) % 2, 1);
		seen++;
		rc = meta_cursor_next(c, &k, &kl, NULL, NULL);
	}
	assert_int_equal(seen, 5);
	/* Deleting in a read txn is refused. */
	assert_int_equal(meta_cursor_del(c), CAIRN_EINVAL);
	meta_txn_abort(t); /* read-txn cursor left open: goes dead */
	meta_cursor_close(c);
}

static void test_meta_nested_abort_undoes_only_child(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t, *child, *child2;
	const void *v;
	size_t vl;

	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	put_str(t, META_T_OBJECTS, "parent", "p");
	assert_int_equal(meta_txn_begin_child(t, &child), 0);
	assert_true(meta_txn_is_write(child));
	/* One child at a time. */
	assert_int_equal(meta_txn_begin_child(t, &child2), CAIRN_EINVAL);
	put_str(child, META_T_OBJECTS, "child", "c");
	assert_int_equal(meta_del(child, META_T_OBJECTS, "parent", 6), 0);
	assert_int_equal(meta_get(child, META_T_OBJECTS, "child", 5, &v, &vl), 0);
	meta_txn_abort(child);
	assert_int_equal(meta_get(t, META_T_OBJECTS, "child", 5, &v, &vl), CAIRN_ENOTFOUND);
	assert_int_equal(meta_get(t, META_T_OBJECTS, "parent", 6, &v, &vl), 0);

	assert_int_equal(meta_txn_begin_child(t, &child2), 0);
	put_str(child2, META_T_OBJECTS, "child2", "c2");
	assert_int_equal(meta_txn_commit(child2), 0);
	assert_int_equal(meta_get(t, META_T_OBJECTS, "child2", 6, &v, &vl), 0);
	assert_int_equal(meta_txn_commit(t), 0);

	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	assert_int_equal(meta_get(t, META_T_OBJECTS, "parent", 6, &v, &vl), 0);
	assert_int_equal(meta_get(t, META_T_OBJECTS, "child2", 6, &v, &vl), 0);
	assert_int_equal(meta_get(t, META_T_OBJECTS, "child", 5, &v, &vl), CAIRN_ENOTFOUND);
	/* A read txn cannot have children. */
	assert_int_equal(meta_txn_begin_child(t, &child), CAIRN_EINVAL);
	meta_txn_abort(t);
}

static void test_meta_reopen_persists(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t;
	const void *v;
	size_t vl;

	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	put_str(t, META_T_USERS, "alice", "rec");
	assert_int_equal(meta_txn_commit(t), 0);
	/* An aborted write leaves nothing behind. */
	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	put_str(t, META_T_USERS, "bob", "rec");
	meta_txn_abort(t);
	meta_close(f->env);
	f->env = NULL;
	assert_int_equal(meta_open(f->dir, NULL, &f->env), 0);
	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	assert_int_equal(meta_get(t, META_T_USERS, "alice", 5, &v, &vl), 0);
	assert_string_equal(v, "rec");
	assert_int_equal(meta_get(t, META_T_USERS, "bob", 3, &v, &vl), CAIRN_ENOTFOUND);
	meta_txn_abort(t);
}

static void test_meta_map_full_is_enospace(void **state)
{
	struct fixture *f = *state;
	struct meta_opts opts = {.map_size = 1 << 20, .max_readers = 8};
	struct meta_env *env;
	struct meta_txn *t, *child;
	char dir[300], val[4000];
	uint64_t used, map;
	const void *v;
	size_t vl;
	int rc = 0, i;

	snprintf(dir, sizeof(dir), "%s-small", f->dir);
	assert_int_equal(meta_open(dir, &opts, &env), 0);
	memset(val, 'v', sizeof(val));
	assert_int_equal(meta_txn_begin(env, true, &t), 0);
	put_str(t, META_T_POOL, "kept", "yes");
	assert_int_equal(meta_txn_commit(t), 0);

	/* Fill in one child so the parent survives the failure. */
	assert_int_equal(meta_txn_begin(env, true, &t), 0);
	assert_int_equal(meta_txn_begin_child(t, &child), 0);
	for (i = 0; i < 10000 && rc == 0; i++) {
		uint8_t k[4];

		meta_be32(k, (uint32_t)i);
		rc = meta_put(child, META_T_CHUNKS, k, 4, val, sizeof(val), 0);
	}
	assert_int_equal(rc, CAIRN_ENOSPACE);
	assert_true(i > 10); /* the map held something */
	meta_txn_abort(child);
	put_str(t, META_T_POOL, "after", "ok");
	assert_int_equal(meta_txn_commit(t), 0);

	/* Same in a top-level txn: the txn fails cleanly, the env lives on. */
	assert_int_equal(meta_txn_begin(env, true, &t), 0);
	rc = 0;
	for (i = 0; i < 10000 && rc == 0; i++) {
		uint8_t k[4];

		meta_be32(k, (uint32_t)i);
		rc = meta_put(t, META_T_CHUNKS, k, 4, val, sizeof(val), 0);
	}
	assert_int_equal(rc, CAIRN_ENOSPACE);
	assert_int_not_equal(meta_txn_commit(t), 0);

	assert_int_equal(meta_usage(env, &used, &map), 0);
	assert_int_equal(map, 1 << 20);
	assert_true(used > 0 && used <= map);
	assert_int_equal(meta_txn_begin(env, false, &t), 0);
	assert_int_equal(meta_get(t, META_T_POOL, "kept", 4, &v, &vl), 0);
	assert_int_equal(meta_get(t, META_T_POOL, "after", 5, &v, &vl), 0);
	meta_txn_abort(t);
	meta_close(env);
	rm_rf(dir);
}

static void test_meta_usage_grows(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t;
	uint64_t used0, used1, map;
	char val[1000] = {0};

	assert_int_equal(meta_usage(f->env, &used0, &map), 0);
	assert_int_equal(map, (uint64_t)64 << 30);
	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	for (uint32_t i = 0; i < 1000; i++) {
		uint8_t k[4];

		meta_be32(k, i);
		assert_int_equal(meta_put(t, META_T_CHUNKS, k, 4, val, sizeof(val), 0), 0);
	}
	assert_int_equal(meta_txn_commit(t), 0);
	assert_int_equal(meta_usage(f->env, &used1, NULL), 0);
	assert_true(used1 >= used0 + 1000 * 1000);
}

static void test_meta_read_txn_other_thread_free(void **state)
{
	/* MDB_NOTLS: two read txns on one thread at once are allowed. */
	struct fixture *f = *state;
	struct meta_txn *a, *b;

	assert_int_equal(meta_txn_begin(f->env, false, &a), 0);
	assert_int_equal(meta_txn_begin(f->env, false, &b), 0);
	assert_int_equal(meta_txn_commit(a), 0);
	meta_txn_abort(b);
	meta_txn_abort(NULL);
	meta_cursor_close(NULL);
}

static void test_meta_readers_full_is_eagain(void **state)
{
	struct fixture *f = *state;
	struct meta_opts opts = {.map_size = 1 << 20, .max_readers = 2};
	struct meta_env *env;
	struct meta_txn *a, *b, *c;
	char dir[300];

	snprintf(dir, sizeof(dir), "%s-readers", f->dir);
	assert_int_equal(meta_open(dir, &opts, &env), 0);
	assert_int_equal(meta_txn_begin(env, false, &a), 0);
	assert_int_equal(meta_txn_begin(env, false, &b), 0);
	assert_int_equal(meta_txn_begin(env, false, &c), -EAGAIN);
	assert_null(c);
	meta_txn_abort(b);
	/* The slot is free again. */
	assert_int_equal(meta_txn_begin(env, false, &c), 0);
	meta_txn_abort(c);
	meta_txn_abort(a);
	meta_close(env);
	rm_rf(dir);
}

static void *reader_thread(void *arg)
{
	struct meta_txn *t = arg;
	const void *v;
	size_t vl;
	intptr_t ok;

	ok = meta_get(t, META_T_POOL, "x", 1, &v, &vl) == 0 && vl == 2 && memcmp(v, "1", 2) == 0;
	meta_txn_abort(t);
	return (void *)ok;
}

static void test_meta_read_txn_ends_on_another_thread(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t;
	pthread_t th;
	void *ok;

	assert_int_equal(meta_txn_begin(f->env, true, &t), 0);
	put_str(t, META_T_POOL, "x", "1");
	assert_int_equal(meta_txn_commit(t), 0);
	assert_int_equal(meta_txn_begin(f->env, false, &t), 0);
	/* A later write does not show in the older snapshot... */
	struct meta_txn *w;
	assert_int_equal(meta_txn_begin(f->env, true, &w), 0);
	put_str(w, META_T_POOL, "x", "2");
	assert_int_equal(meta_txn_commit(w), 0);
	/* ...and the snapshot is used and ended by another thread. */
	assert_int_equal(pthread_create(&th, NULL, reader_thread, t), 0);
	assert_int_equal(pthread_join(th, &ok), 0);
	assert_true(ok != NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_meta_put_get_del, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_key_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_cursor_range_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_seek_le_boundaries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_cursor_del_and_dead_cursor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_nested_abort_undoes_only_child, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_meta_reopen_persists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_map_full_is_enospace, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_usage_grows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_read_txn_other_thread_free, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_readers_full_is_eagain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_read_txn_ends_on_another_thread, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
