/* tests/unit/test_cs_usage.c - cs_manifest_usage (chunkstore/cs_usage.c):
 * what a set of manifests costs, unique against shared, over a real pool
 * with fixed 4 KiB chunks so every figure can be computed by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "chunkstore/chunkstore.h"
#include "cs_test.h"

#define CH 4096u

static char g_dir[256];
static struct cs_pool *g_pool;

static int setup(void **state)
{
	(void)state;
	struct cs_pool_opts o = {
	    .chunking = CS_CHUNK_FIXED,
	    .chunk_size = CH,
	    .inline_max = 1024,
	    .seal_off = true,
	    .gc_interval = -1, /* no background GC: dead manifests stay dead, not gone */
	};
	if (cs_test_tmpdir(g_dir, sizeof(g_dir), "usage") < 0)
		return -1;
	o.data_dir = g_dir;
	return cs_pool_open(&o, &g_pool) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	cs_pool_close(g_pool);
	g_pool = NULL;
	rm_rf(g_dir);
	return 0;
}

static int create_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

static int unref_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_unref(t, arg);
}

static int ref_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_ref(t, arg);
}

static void put(const uint8_t *data, size_t size, struct cs_mid *mid)
{
	struct cs_writer *w = NULL;
	assert_int_equal(cs_writer_open(g_pool, &w), 0);
	assert_int_equal(cs_writer_write(w, data, size), 0);
	assert_int_equal(cs_writer_finish(w), 0);
	assert_int_equal(cs_commit(g_pool, w, create_fn, mid), 0);
	cs_writer_free(w);
}

/* Chunk i of a distinct, incompressible family (seed picks the family). */
static void block(uint8_t *b, uint64_t seed, unsigned i)
{
	fill_random(b, CH, seed * 1000 + i + 1);
}

static void usage(const struct cs_mid *mids, size_t n, struct cs_usage *u)
{
	assert_int_equal(cs_manifest_usage(g_pool, mids, n, u), 0);
}

/* A = a0..a7, B = a0..a3 b4..b7: half shared. */
static void test_half_shared(void **state)
{
	(void)state;
	uint8_t *a = malloc(8 * CH), *b = malloc(8 * CH);
	struct cs_mid m[2];
	struct cs_usage u;

	for (unsigned i = 0; i < 8; i++) {
		block(a + i * CH, 1, i);
		if (i < 4)
			block(b + i * CH, 1, i);
		else
			block(b + i * CH, 2, i);
	}
	put(a, 8 * CH, &m[0]);
	put(b, 8 * CH, &m[1]);

	usage(&m[0], 1, &u);
	assert_int_equal(u.logical_bytes, 8 * CH);
	assert_int_equal(u.chunks, 8);
	assert_int_equal(u.unique_bytes, 4 * CH);
	assert_int_equal(u.shared_bytes, 4 * CH);
	assert_int_equal(u.zero_bytes, 0);
	/* incompressible: stored as they are (no_compress off, zstd gives up) */
	assert_true(u.unique_stored > 0 && u.unique_stored <= 4 * CH);

	/* Together they hold every reference: nothing is shared. */
	usage(m, 2, &u);
	assert_int_equal(u.logical_bytes, 16 * CH);
	assert_int_equal(u.chunks, 12);
	assert_int_equal(u.unique_bytes, 12 * CH);
	assert_int_equal(u.shared_bytes, 0);

	/* The same manifest twice counts once (its entries hold one ref each). */
	struct cs_mid twice[2] = {m[0], m[0]};
	usage(twice, 2, &u);
	assert_int_equal(u.logical_bytes, 8 * CH);
	assert_int_equal(u.unique_bytes, 4 * CH);
	assert_int_equal(u.shared_bytes, 4 * CH);

	/* A second reference to A's manifest (an image of an object) holds no
	 * extra chunk references: still half unique. */
	assert_int_equal(cs_commit(g_pool, NULL, ref_fn, &m[0]), 0);
	usage(&m[0], 1, &u);
	assert_int_equal(u.unique_bytes, 4 * CH);
	assert_int_equal(cs_commit(g_pool, NULL, unref_fn, &m[0]), 0);

	/* B goes away: A's first half becomes its own. */
	assert_int_equal(cs_commit(g_pool, NULL, unref_fn, &m[1]), 0);
	usage(&m[0], 1, &u);
	assert_int_equal(u.unique_bytes, 8 * CH);
	assert_int_equal(u.shared_bytes, 0);
	/* A dead manifest has no cost to report. */
	assert_int_equal(cs_manifest_usage(g_pool, &m[1], 1, &u), CAIRN_ENOTFOUND);
	free(a);
	free(b);
}

/* C = x x y x: x is named three times by C alone, so it is unique, and
 * counted once. */
static void test_repeated_chunk(void **state)
{
	(void)state;
	uint8_t *c = malloc(4 * CH);
	struct cs_mid m;
	struct cs_usage u;

	block(c, 3, 0);
	memcpy(c + CH, c, CH);
	block(c + 2 * CH, 3, 1);
	memcpy(c + 3 * CH, c, CH);
	put(c, 4 * CH, &m);
	usage(&m, 1, &u);
	assert_int_equal(u.logical_bytes, 4 * CH);
	assert_int_equal(u.chunks, 2);
	assert_int_equal(u.unique_bytes, 2 * CH);
	assert_int_equal(u.shared_bytes, 0);

	/* Another manifest naming x once: x is now shared, y still unique. */
	struct cs_mid m2;
	put(c, CH, &m2);
	usage(&m, 1, &u);
	assert_int_equal(u.unique_bytes, CH);
	assert_int_equal(u.shared_bytes, CH);
	usage(&m2, 1, &u);
	assert_int_equal(u.unique_bytes, 0);
	assert_int_equal(u.shared_bytes, CH);
	free(c);
}

/* Zero chunks cost nothing: zero_bytes only. */
static void test_zero_chunks(void **state)
{
	(void)state;
	uint8_t *z = calloc(6, CH);
	struct cs_mid m;
	struct cs_usage u;

	block(z + 2 * CH, 4, 0); /* zero zero data zero zero zero */
	put(z, 6 * CH, &m);
	usage(&m, 1, &u);
	assert_int_equal(u.logical_bytes, 6 * CH);
	assert_int_equal(u.zero_bytes, 5 * CH);
	assert_int_equal(u.chunks, 1);
	assert_int_equal(u.unique_bytes, CH);
	assert_int_equal(u.shared_bytes, 0);
	free(z);
}

/* An inline manifest (<= inline_max bytes) is unique, raw and stored. */
static void test_inline(void **state)
{
	(void)state;
	uint8_t small[300];
	struct cs_mid m[2];
	struct cs_usage u;

	memset(small, 'q', sizeof(small));
	put(small, sizeof(small), &m[0]);
	usage(&m[0], 1, &u);
	assert_int_equal(u.logical_bytes, 300);
	assert_int_equal(u.unique_bytes, 300);
	assert_int_equal(u.unique_stored, 300);
	assert_int_equal(u.chunks, 0);
	assert_int_equal(u.shared_bytes, 0);

	/* Mixed with a chunked one: the figures add up. */
	uint8_t *d = malloc(2 * CH);
	block(d, 5, 0);
	block(d + CH, 5, 1);
	put(d, 2 * CH, &m[1]);
	usage(m, 2, &u);
	assert_int_equal(u.logical_bytes, 300 + 2 * CH);
	assert_int_equal(u.unique_bytes, 300 + 2 * CH);
	assert_int_equal(u.chunks, 2);
	free(d);

	/* An empty set costs nothing; an unknown manifest is not found. */
	usage(m, 0, &u);
	assert_int_equal(u.logical_bytes, 0);
	struct cs_mid none = {{0}};
	none.b[0] = 0xEE;
	assert_int_equal(cs_manifest_usage(g_pool, &none, 1, &u), CAIRN_ENOTFOUND);
}

/* More entries than one batch of records (CS_USAGE_BATCH x 32 entries):
 * the walk resumes where it stopped. 9000 chunks, every 3rd shared. */
static void test_many_records(void **state)
{
	(void)state;
	enum { N = 9000 };
	uint8_t *a = malloc((size_t)N * CH), *b = malloc((size_t)(N / 3) * CH);
	struct cs_mid m[2];
	struct cs_usage u;

	for (unsigned i = 0; i < N; i++) {
		/* distinct per chunk: the index i in the first bytes */
		block(a + (size_t)i * CH, 6, i % 7);
		memcpy(a + (size_t)i * CH, &i, sizeof(i));
		if (i % 3 == 0)
			memcpy(b + (size_t)(i / 3) * CH, a + (size_t)i * CH, CH);
	}
	put(a, (size_t)N * CH, &m[0]);
	put(b, (size_t)(N / 3) * CH, &m[1]);
	usage(&m[0], 1, &u);
	assert_int_equal(u.logical_bytes, (uint64_t)N * CH);
	assert_int_equal(u.chunks, N);
	assert_int_equal(u.shared_bytes, (uint64_t)(N / 3) * CH);
	assert_int_equal(u.unique_bytes, (uint64_t)(N - N / 3) * CH);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_half_shared, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_repeated_chunk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_zero_chunks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_records, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
