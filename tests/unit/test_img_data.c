/* tests/unit/test_img_data.c - an image's bytes into the pool
 * (registry/img_data.h): raw uploads (checksums against OpenSSL one-shot
 * digests, commit phases, manifest references, the size limit), qcow2
 * uploads (refusals before qemu-img, the raw view against `qemu-img
 * convert`), registration from a manifest, web-download against a local
 * python3 -m http.server, and the scratch directory left empty on every path.
 * Each test makes its own pool under a fresh temporary dir.
 *
 * IMG_BENCH=path (optional): uploads that file once and prints MiB/s.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cs_test.h"
#include "chunkstore/chunkstore.h"
#include "core/err.h"
#include "meta/meta.h"
#include "registry/img_data.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static char g_dir[256]; /* the pool */
static char g_tmp[300]; /* the scratch dir given to uploads */
static struct cs_pool *g_pool;

static int setup(void **state)
{
	(void)state;
	if (cs_test_tmpdir(g_dir, sizeof(g_dir), "img") < 0)
		return -1;
	snprintf(g_tmp, sizeof(g_tmp), "%s/scratch", g_dir);
	if (mkdir(g_tmp, 0700) < 0)
		return -1;
	char data[300];
	snprintf(data, sizeof(data), "%s/pool", g_dir);
	struct cs_pool_opts o = {.data_dir = data, .gc_interval = -1};
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

/* Entries in the scratch dir (must be 0 after every upload). */
static int scratch_entries(void)
{
	DIR *d = opendir(g_tmp);
	int n = 0;
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static struct img_data_opts opts_limit(uint64_t max)
{
	return (struct img_data_opts){.max_size = max, .tmp_dir = g_tmp};
}

/* ---- commit callbacks ---- */

struct rec {
	int calls;
	enum img_phase phases[4];
	struct img_data_result seen[4];
	int fail_phase; /* return -EIO in this phase */
};

static int rec_fn(struct cs_txn *txn, void *arg, enum img_phase phase,
		  const struct img_data_result *res)
{
	struct rec *r = arg;
	(void)txn;
	if (r->calls < 4) {
		r->phases[r->calls] = phase;
		r->seen[r->calls] = *res;
	}
	r->calls++;
	return (int)phase == r->fail_phase ? -EIO : 0;
}

static int unref_fn(struct cs_txn *txn, void *arg)
{
	return cs_manifest_unref(txn, arg);
}

/* Drops one reference; returns the result. */
static int unref(const uint8_t mid[16])
{
	struct cs_mid m;
	memcpy(m.b, mid, 16);
	return cs_commit(g_pool, NULL, unref_fn, &m);
}

/* The manifest's size, or a negative code (CAIRN_ENOTFOUND when unknown). */
static int64_t mid_size(const uint8_t mid[16])
{
	struct meta_txn *t;
	struct cs_mid m;
	uint64_t size = 0;
	memcpy(m.b, mid, 16);
	assert_int_equal(meta_txn_begin(cs_pool_meta(g_pool), false, &t), 0);
	int rc = cs_manifest_size(t, g_pool, &m, &size);
	meta_txn_abort(t);
	return rc < 0 ? rc : (int64_t)size;
}

/* The manifest's bytes equal want[0..len). */
static void assert_mid_bytes(const uint8_t mid[16], const uint8_t *want, size_t len)
{
	struct cs_reader *r;
	struct cs_mid m;
	memcpy(m.b, mid, 16);
	assert_int_equal(cs_reader_open(g_pool, &m, &r), 0);
	assert_int_equal(cs_reader_size(r), len);
	uint8_t *buf = malloc(len + 1);
	assert_non_null(buf);
	size_t got = 0;
	while (got < len) {
		long n = cs_reader_read(r, got, buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(buf, want, len);
	free(buf);
	cs_reader_free(r);
}

static void digest(const char *name, const void *buf, size_t len, uint8_t *out)
{
	unsigned int n;
	assert_int_equal(EVP_Digest(buf, len, out, &n, EVP_get_digestbyname(name), NULL), 1);
}

/* Writes buf in pieces of varying sizes (1 byte .. 300 KiB). */
static int write_pieces(struct img_upload *u, const uint8_t *buf, size_t len)
{
	size_t steps[] = {1, 7, 4096, 300 * KIB, 65537, 1 * MIB + 3};
	size_t off = 0;
	for (unsigned i = 0; off < len; i++) {
		size_t n = steps[i % 6];
		if (n > len - off)
			n = len - off;
		int rc = img_upload_write(u, buf + off, n);
		if (rc < 0)
			return rc;
		off += n;
	}
	return 0;
}

/* ---- raw uploads ---- */

static void test_raw_upload_checksums_and_commit(void **state)
{
	(void)state;
	size_t len = 9 * MIB + 12345;
	uint8_t *data = malloc(len);
	assert_non_null(data);
	fill_random(data, len, 7);
	memset(data + 2 * MIB, 0, 1 * MIB); /* zero chunks too */

	struct img_data_opts o = opts_limit(0);
	struct img_upload *u;
	assert_int_equal(img_upload_open(g_pool, &o, "raw", &u), 0);
	assert_int_equal(write_pieces(u, data, len), 0);
	struct img_data_result res;
	assert_int_equal(img_upload_finish(u, &res), 0);
	assert_int_equal(res.size, len);
	assert_int_equal(res.virtual_size, len);
	assert_false(res.qcow2);
	assert_false(res.has_raw);
	uint8_t md5[16], sha[64];
	digest("MD5", data, len, md5);
	digest("SHA512", data, len, sha);
	assert_memory_equal(res.md5, md5, 16);
	assert_memory_equal(res.sha512, sha, 64);
	assert_string_equal(img_upload_why(u), "");
	/* writing after finish is refused */
	assert_int_equal(img_upload_write(u, data, 1), CAIRN_EINVAL);

	struct rec r = {0};
	assert_int_equal(img_upload_commit(u, rec_fn, &r), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.phases[0], IMG_PHASE_DATA);
	assert_memory_equal(r.seen[0].md5, md5, 16);
	assert_int_equal(r.seen[0].size, len);
	/* committing twice is refused */
	assert_int_equal(img_upload_commit(u, rec_fn, &r), CAIRN_EINVAL);
	img_upload_free(u);

	assert_int_equal(mid_size(r.seen[0].mid), (int64_t)len);
	assert_mid_bytes(r.seen[0].mid, data, len);
	/* the callback's record held the one reference: one unref kills it */
	assert_int_equal(unref(r.seen[0].mid), 0);
	assert_int_equal(unref(r.seen[0].mid), CAIRN_ENOTFOUND);
	assert_int_equal(scratch_entries(), 0);
	free(data);
}

/* Undeclared format, tiny and empty uploads (inline manifests). */
static void test_raw_upload_small_and_empty(void **state)
{
	(void)state;
	struct img_data_opts o = opts_limit(0);
	const char *bodies[] = {"", "Q", "QFI", "hello image"};
	for (unsigned i = 0; i < 4; i++) {
		size_t len = strlen(bodies[i]);
		struct img_upload *u;
		assert_int_equal(img_upload_open(g_pool, &o, i % 2 ? NULL : "", &u), 0);
		assert_int_equal(img_upload_write(u, bodies[i], len), 0);
		struct img_data_result res;
		assert_int_equal(img_upload_finish(u, &res), 0);
		assert_int_equal(res.size, len);
		assert_false(res.qcow2);
		uint8_t md5[16];
		digest("MD5", bodies[i], len, md5);
		assert_memory_equal(res.md5, md5, 16);
		struct rec r = {0};
		assert_int_equal(img_upload_commit(u, rec_fn, &r), 0);
		img_upload_free(u);
		assert_int_equal(mid_size(r.seen[0].mid), (int64_t)len);
		assert_int_equal(unref(r.seen[0].mid), 0);
	}
}

/* A failing callback undoes its phase: no manifest is left. */
static void test_commit_callback_failure_undoes(void **state)
{
	(void)state;
	struct img_data_opts o = opts_limit(0);
	size_t len = 3 * MIB;
	uint8_t *data = malloc(len);
	assert_non_null(data);
	fill_random(data, len, 11);
	struct img_upload *u;
	assert_int_equal(img_upload_open(g_pool, &o, "raw", &u), 0);
	assert_int_equal(img_upload_write(u, data, len), 0);
	struct img_data_result res;
	assert_int_equal(img_upload_finish(u, &res), 0);
	struct rec r = {.fail_phase = IMG_PHASE_DATA};
	assert_int_equal(img_upload_commit(u, rec_fn, &r), -EIO);
	assert_int_equal(r.calls, 1);
	assert_int_equal(mid_size(r.seen[0].mid), CAIRN_ENOTFOUND);
	img_upload_free(u);
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(g_pool, &st), 0);
	assert_int_equal(st.manifests, 0);
	free(data);
}

/* -EFBIG exactly past max_size, as soon as it is seen; at the limit is fine. */
static void test_size_limit_efbig_at_limit(void **state)
{
	(void)state;
	struct img_data_opts o = opts_limit(100 * KIB);
	uint8_t *data = calloc(1, 100 * KIB + 1);
	assert_non_null(data);
	fill_random(data, 100 * KIB + 1, 3);
	struct img_upload *u;
	struct img_data_result res;

	assert_int_equal(img_upload_open(g_pool, &o, NULL, &u), 0);
	assert_int_equal(img_upload_write(u, data, 100 * KIB), 0);
	assert_int_equal(img_upload_finish(u, &res), 0);
	assert_int_equal(res.size, 100 * KIB);
	img_upload_free(u); /* never committed: nothing stays */

	assert_int_equal(img_upload_open(g_pool, &o, NULL, &u), 0);
	assert_int_equal(img_upload_write(u, data, 60 * KIB), 0);
	assert_int_equal(img_upload_write(u, data, 40 * KIB + 1), -EFBIG);
	/* dead afterwards */
	assert_int_equal(img_upload_write(u, data, 1), -EFBIG);
	assert_int_equal(img_upload_finish(u, &res), -EFBIG);
	img_upload_free(u);

	struct cs_stats st;
	assert_int_equal(cs_pool_stats(g_pool, &st), 0);
	assert_int_equal(st.manifests, 0);
	free(data);
}

/* Freed at every stage without commit: no leak (ASan), nothing in the pool. */
static void test_free_at_every_stage(void **state)
{
	(void)state;
	struct img_data_opts o = opts_limit(0);
	size_t len = 2 * MIB;
	uint8_t *data = malloc(len);
	assert_non_null(data);
	fill_random(data, len, 5);
	for (int stage = 0; stage < 3; stage++) {
		struct img_upload *u;
		struct img_data_result res;
		assert_int_equal(img_upload_open(g_pool, &o, "raw", &u), 0);
		if (stage >= 1)
			assert_int_equal(img_upload_write(u, data, len), 0);
		if (stage >= 2)
			assert_int_equal(img_upload_finish(u, &res), 0);
		img_upload_free(u);
	}
	img_upload_free(NULL);
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(g_pool, &st), 0);
	assert_int_equal(st.manifests, 0);
	assert_int_equal(scratch_entries(), 0);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_raw_upload_checksums_and_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_raw_upload_small_and_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_callback_failure_undoes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_size_limit_efbig_at_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_at_every_stage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
