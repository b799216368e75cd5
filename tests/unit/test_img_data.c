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
#include <signal.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <stdbool.h>

#include "cs_test.h"
#include "blockstore/bs.h"
#include "chunkstore/chunkstore.h"
#include "core/io.h"
#include "core/err.h"
#include "core/fault.h"
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

/* ---- helpers for files made by qemu-img ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_qemu(void)
{
	return sh("qemu-img --version >/dev/null 2>&1 && qemu-io --version >/dev/null 2>&1") == 0;
}

/* g_dir/name */
static const char *fpath(const char *name)
{
	static char p[4][512];
	static unsigned i;
	char *r = p[i++ % 4];
	snprintf(r, 512, "%s/%s", g_dir, name);
	return r;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return b;
}

/* Changes 8 big-endian bytes at off of a file. */
static void poke_be64(const char *path, off_t off, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, 8, off), 8);
	close(fd);
}

/* An 8 MiB qcow2 with 1 MiB of 0x5a at 0 and 64 KiB of 0x33 at 5 MiB. */
static void make_qcow2(const char *path)
{
	assert_int_equal(
	    sh("qemu-img create -q -f qcow2 '%s' 8M && qemu-io -c 'write -P 0x5a 0 1M' "
	       "-c 'write -P 0x33 5M 64k' '%s' >/dev/null",
	       path, path),
	    0);
}

/* Opens an upload, writes the bytes in pieces and finishes; returns the
 * first error. *out stays open (free it). */
static int upload_bytes_max(const uint8_t *b, size_t len, const char *fmt, uint64_t max,
			    struct img_upload **out, struct img_data_result *res)
{
	struct img_data_opts o = opts_limit(max);
	assert_int_equal(img_upload_open(g_pool, &o, fmt, out), 0);
	int rc = write_pieces(*out, b, len);
	if (rc == 0)
		assert_int_equal(scratch_entries(), 0); /* the spool has no name */
	if (rc == 0)
		rc = img_upload_finish(*out, res);
	return rc;
}

static int upload_file_bytes(const uint8_t *b, size_t len, const char *fmt, struct img_upload **out,
			     struct img_data_result *res)
{
	return upload_bytes_max(b, len, fmt, 0, out, res);
}

static int upload_file(const char *path, const char *fmt, uint64_t max, struct img_upload **out,
		       struct img_data_result *res)
{
	size_t len;
	uint8_t *b = read_file(path, &len);
	int rc = upload_bytes_max(b, len, fmt, max, out, res);
	free(b);
	return rc;
}

/* ---- qcow2 ---- */

static void test_qcow2_raw_view_equals_qemu_img_convert(void **state)
{
	(void)state;
	if (!have_qemu())
		skip();
	const char *q = fpath("a.qcow2"), *ref = fpath("a.raw");
	make_qcow2(q);
	assert_int_equal(sh("qemu-img convert -f qcow2 -O raw '%s' '%s'", q, ref), 0);
	size_t qlen, rlen;
	uint8_t *qb = read_file(q, &qlen), *rb = read_file(ref, &rlen);
	assert_int_equal(rlen, 8 * MIB);
	assert_int_equal(rb[0], 0x5a);

	/* declared qcow2, and undeclared (detected) */
	const char *fmts[] = {"qcow2", NULL};
	for (unsigned i = 0; i < 2; i++) {
		struct img_upload *u;
		struct img_data_result res;
		assert_int_equal(upload_file(q, fmts[i], 64 * MIB, &u, &res), 0);
		assert_true(res.qcow2);
		assert_true(res.has_raw);
		assert_int_equal(res.size, qlen);
		assert_int_equal(res.virtual_size, 8 * MIB);
		uint8_t md5[16];
		digest("MD5", qb, qlen, md5);
		assert_memory_equal(res.md5, md5, 16);
		struct rec r = {0};
		assert_int_equal(img_upload_commit(u, rec_fn, &r), 0);
		img_upload_free(u);
		assert_int_equal(r.calls, 2);
		assert_int_equal(r.phases[0], IMG_PHASE_RAW);
		assert_int_equal(r.phases[1], IMG_PHASE_DATA);
		assert_true(r.seen[0].has_raw);
		/* the raw view is what qemu-img convert makes; the data is the file */
		assert_mid_bytes(r.seen[1].raw_mid, rb, rlen);
		assert_mid_bytes(r.seen[1].mid, qb, qlen);
		assert_memory_not_equal(r.seen[1].raw_mid, r.seen[1].mid, 16);
		/* one reference each, held by the callback's record */
		for (int k = 0; k < 2; k++) {
			const uint8_t *m = k ? r.seen[1].mid : r.seen[1].raw_mid;
			assert_int_equal(unref(m), 0);
			assert_int_equal(unref(m), CAIRN_ENOTFOUND);
		}
	}
	assert_int_equal(scratch_entries(), 0);
	free(qb);
	free(rb);
}

/* A raw-phase failure undoes the raw view and stops before the data. */
static void test_qcow2_raw_phase_failure(void **state)
{
	(void)state;
	if (!have_qemu())
		skip();
	const char *q = fpath("a.qcow2");
	make_qcow2(q);
	struct img_upload *u;
	struct img_data_result res;
	assert_int_equal(upload_file(q, "qcow2", 0, &u, &res), 0);
	struct rec r = {.fail_phase = IMG_PHASE_RAW};
	assert_int_equal(img_upload_commit(u, rec_fn, &r), -EIO);
	assert_int_equal(r.calls, 1);
	img_upload_free(u);
	assert_int_equal(mid_size(r.seen[0].raw_mid), CAIRN_ENOTFOUND);
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(g_pool, &st), 0);
	assert_int_equal(st.manifests, 0);
	assert_int_equal(scratch_entries(), 0);
}

static void assert_refused(const char *path, const char *fmt, const char *why_part)
{
	struct img_upload *u;
	struct img_data_result res;
	int rc = upload_file(path, fmt, 0, &u, &res);
	assert_int_equal(rc, CAIRN_EINVAL);
	printf("refused (%s): %s\n", fmt ? fmt : "undeclared", img_upload_why(u));
	if (!strstr(img_upload_why(u), why_part))
		fail_msg("why \"%s\" lacks \"%s\"", img_upload_why(u), why_part);
	/* dead afterwards */
	assert_int_equal(img_upload_write(u, "x", 1), CAIRN_EINVAL);
	struct rec r = {0};
	assert_int_not_equal(img_upload_commit(u, rec_fn, &r), 0);
	assert_int_equal(r.calls, 0);
	img_upload_free(u);
	assert_int_equal(scratch_entries(), 0);
}

static void test_qcow2_backing_file_refused(void **state)
{
	(void)state;
	if (!have_qemu())
		skip();
	const char *base = fpath("base.qcow2"), *top = fpath("top.qcow2");
	make_qcow2(base);
	assert_int_equal(sh("qemu-img create -q -f qcow2 -b '%s' -F qcow2 '%s'", base, top), 0);
	assert_refused(top, "qcow2", "backing");
	assert_refused(top, NULL, "backing");
	/* the raw qcow2_probe answer comes before any tool: refused at a
	 * write, not at finish */
	struct img_data_opts o = opts_limit(0);
	size_t len;
	uint8_t *b = read_file(top, &len);
	struct img_upload *u;
	assert_int_equal(img_upload_open(g_pool, &o, "qcow2", &u), 0);
	assert_int_equal(img_upload_write(u, b, len), CAIRN_EINVAL);
	img_upload_free(u);
	free(b);
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(g_pool, &st), 0);
	assert_int_equal(st.manifests, 0);
}

static void test_qcow2_lying_header_refused(void **state)
{
	(void)state;
	if (!have_qemu())
		skip();
	const char *q = fpath("lie.qcow2");
	/* an L1 table offset that is not cluster aligned */
	make_qcow2(q);
	poke_be64(q, 40, 0x12345);
	assert_refused(q, "qcow2", "unsafe qcow2");
	/* a virtual size the L1 table cannot map */
	make_qcow2(q);
	poke_be64(q, 24, 1ULL << 50);
	assert_refused(q, NULL, "unsafe qcow2");
	/* a refcount table past the end of the file (known only at finish) */
	make_qcow2(q);
	poke_be64(q, 48, 1ULL << 40);
	assert_refused(q, "qcow2", "unsafe qcow2");
}

/* The header is fine, the refcounts are not: qemu-img check refuses. */
static void test_qcow2_corrupt_refused_by_qemu_img_check(void **state)
{
	(void)state;
	if (!have_qemu())
		skip();
	const char *q = fpath("c.qcow2");
	make_qcow2(q);
	/* zero the first refcount block (refcount table at header offset 48) */
	int fd = open(q, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b[8];
	assert_int_equal(pread(fd, b, 8, 48), 8);
	uint64_t rt = 0, rb = 0;
	for (int i = 0; i < 8; i++)
		rt = rt << 8 | b[i];
	assert_int_equal(pread(fd, b, 8, (off_t)rt), 8);
	for (int i = 0; i < 8; i++)
		rb = rb << 8 | b[i];
	assert_true(rb > 0);
	static uint8_t zero[64 * KIB];
	assert_int_equal(pwrite(fd, zero, sizeof(zero), (off_t)rb), (ssize_t)sizeof(zero));
	close(fd);
	assert_refused(q, "qcow2", "qemu-img check");
}

static void test_disk_format_mismatch_refused(void **state)
{
	(void)state;
	if (!have_qemu())
		skip();
	const char *q = fpath("a.qcow2"), *r = fpath("a.raw");
	make_qcow2(q);
	assert_refused(q, "raw", "disk_format is raw");
	assert_refused(q, "vmdk", "disk_format is vmdk");
	assert_int_equal(sh("head -c 3000000 /dev/urandom > '%s'", r), 0);
	assert_refused(r, "qcow2", "not a qcow2");
	assert_int_equal(sh("printf QFI > '%s'", r), 0);
	assert_refused(r, "qcow2", "not a qcow2");
	/* a file that starts like qcow2 but is cut short */
	assert_int_equal(sh("head -c 50 '%s' > '%s'", q, r), 0);
	assert_refused(r, NULL, "unsafe qcow2");
}

static void test_qcow2_virtual_size_over_limit_efbig(void **state)
{
	(void)state;
	if (!have_qemu())
		skip();
	const char *q = fpath("a.qcow2");
	make_qcow2(q); /* 8 MiB virtual, ~1.4 MiB of file */
	struct img_upload *u;
	struct img_data_result res;
	assert_int_equal(upload_file(q, "qcow2", 4 * MIB, &u, &res), -EFBIG);
	img_upload_free(u);
	assert_int_equal(upload_file(q, "qcow2", 8 * MIB, &u, &res), 0);
	img_upload_free(u);
	assert_int_equal(scratch_entries(), 0);
}

/* ---- from_manifest ---- */

static int create_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

/* Writes bytes as an object would be (a manifest with one reference). */
static void put_object(const uint8_t *b, size_t len, uint8_t mid[16])
{
	struct cs_writer *w;
	struct cs_mid m;
	assert_int_equal(cs_writer_open(g_pool, &w), 0);
	assert_int_equal(cs_writer_write(w, b, len), 0);
	assert_int_equal(cs_writer_finish(w), 0);
	assert_int_equal(cs_commit(g_pool, w, create_fn, &m), 0);
	cs_writer_free(w);
	memcpy(mid, m.b, 16);
}

static void test_from_manifest_refs_the_object(void **state)
{
	(void)state;
	size_t len = 6 * MIB + 77;
	uint8_t *data = malloc(len);
	assert_non_null(data);
	fill_random(data, len, 21);
	uint8_t mid[16];
	put_object(data, len, mid);
	struct cs_stats before, after;
	assert_int_equal(cs_pool_stats(g_pool, &before), 0);

	struct img_data_opts o = opts_limit(0);
	struct img_upload *u;
	struct img_data_result res;
	assert_int_equal(img_upload_open(g_pool, &o, "raw", &u), 0);
	assert_int_equal(img_upload_from_manifest(u, mid), 0);
	/* a second source is refused */
	assert_int_equal(img_upload_from_manifest(u, mid), CAIRN_EINVAL);
	img_upload_free(u);
	assert_int_equal(img_upload_open(g_pool, &o, "raw", &u), 0);
	assert_int_equal(img_upload_from_manifest(u, mid), 0);
	assert_int_equal(img_upload_finish(u, &res), 0);
	assert_int_equal(res.size, len);
	uint8_t md5[16], sha[64];
	digest("MD5", data, len, md5);
	digest("SHA512", data, len, sha);
	assert_memory_equal(res.md5, md5, 16);
	assert_memory_equal(res.sha512, sha, 64);
	struct rec r = {0};
	assert_int_equal(img_upload_commit(u, rec_fn, &r), 0);
	img_upload_free(u);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.phases[0], IMG_PHASE_DATA);
	assert_memory_equal(r.seen[0].mid, mid, 16);
	/* not a byte written: the same chunks, one more manifest reference */
	assert_int_equal(cs_pool_stats(g_pool, &after), 0);
	assert_int_equal(after.manifests, before.manifests);
	assert_int_equal(after.unique_bytes, before.unique_bytes);
	assert_int_equal(after.logical_bytes, before.logical_bytes + len);
	assert_int_equal(unref(mid), 0);
	assert_int_equal(unref(mid), 0);
	assert_int_equal(unref(mid), CAIRN_ENOTFOUND);

	/* an unknown manifest */
	uint8_t bad[16] = {1, 2, 3};
	assert_int_equal(img_upload_open(g_pool, &o, "raw", &u), 0);
	assert_int_equal(img_upload_from_manifest(u, bad), CAIRN_ENOTFOUND);
	img_upload_free(u);
	free(data);
}

static void test_from_manifest_qcow2_and_limit(void **state)
{
	(void)state;
	if (!have_qemu())
		skip();
	const char *q = fpath("a.qcow2"), *ref = fpath("a.raw");
	make_qcow2(q);
	assert_int_equal(sh("qemu-img convert -f qcow2 -O raw '%s' '%s'", q, ref), 0);
	size_t qlen, rlen;
	uint8_t *qb = read_file(q, &qlen), *rb = read_file(ref, &rlen);
	uint8_t mid[16];
	put_object(qb, qlen, mid);

	struct img_data_opts o = opts_limit(0);
	struct img_upload *u;
	struct img_data_result res;
	assert_int_equal(img_upload_open(g_pool, &o, NULL, &u), 0);
	assert_int_equal(img_upload_from_manifest(u, mid), 0);
	assert_int_equal(img_upload_finish(u, &res), 0);
	assert_true(res.qcow2 && res.has_raw);
	struct rec r = {0};
	assert_int_equal(img_upload_commit(u, rec_fn, &r), 0);
	img_upload_free(u);
	assert_int_equal(r.calls, 2);
	assert_memory_equal(r.seen[1].mid, mid, 16);
	assert_mid_bytes(r.seen[1].raw_mid, rb, rlen);
	assert_int_equal(unref(r.seen[1].raw_mid), 0);
	assert_int_equal(unref(mid), 0);

	/* over the limit */
	o = opts_limit(qlen - 1);
	assert_int_equal(img_upload_open(g_pool, &o, NULL, &u), 0);
	assert_int_equal(img_upload_from_manifest(u, mid), -EFBIG);
	img_upload_free(u);
	assert_int_equal(unref(mid), 0);
	assert_int_equal(scratch_entries(), 0);
	free(qb);
	free(rb);
}

/* ---- web-download against a local python3 http.server ---- */

static const char srv_py[] = "import http.server, os, sys, urllib.parse\n"
			     "class H(http.server.SimpleHTTPRequestHandler):\n"
			     "    def do_GET(self):\n"
			     "        if self.path.startswith('/redirect?'):\n"
			     "            to = urllib.parse.unquote(self.path.split('?', 1)[1])\n"
			     "            self.send_response(302)\n"
			     "            self.send_header('Location', to)\n"
			     "            self.send_header('Content-Length', '0')\n"
			     "            self.end_headers()\n"
			     "            return\n"
			     "        return super().do_GET()\n"
			     "    def log_message(self, *a):\n"
			     "        pass\n"
			     "os.chdir(sys.argv[1])\n"
			     "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
			     "print(s.server_address[1], flush=True)\n"
			     "s.serve_forever()\n";

static pid_t g_srv = -1;
static unsigned g_port;

/* Starts the server on a free port, serving g_dir/www. */
static void srv_start(void)
{
	const char *py = "/usr/bin/python3";
	if (access(py, X_OK) != 0)
		skip();
	char www[512];
	snprintf(www, sizeof(www), "%s/www", g_dir);
	assert_int_equal(mkdir(www, 0700), 0);
	FILE *f = fopen(fpath("srv.py"), "w");
	assert_non_null(f);
	fputs(srv_py, f);
	fclose(f);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	const char *script = fpath("srv.py");
	g_srv = fork();
	assert_true(g_srv >= 0);
	if (g_srv == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl(py, py, "-u", script, www, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	/* the whole line: python writes the number and the newline apart */
	char line[32] = "";
	size_t got = 0;
	while (got < sizeof(line) - 1 && !strchr(line, '\n')) {
		ssize_t n = read(pfd[0], line + got, sizeof(line) - 1 - got);
		assert_true(n > 0);
		got += (size_t)n;
		line[got] = '\0';
	}
	close(pfd[0]);
	g_port = (unsigned)atoi(line);
	assert_true(g_port > 0);
}

static int teardown_srv(void **state)
{
	if (g_srv > 0) {
		kill(g_srv, SIGTERM);
		waitpid(g_srv, NULL, 0);
		g_srv = -1;
	}
	return teardown(state);
}

/* from_url into a fresh upload; returns its result, fills res when it
 * finished. */
static uint64_t g_fetch_max;	/* max_size of fetch()'s uploads */
static uint8_t g_fetch_raw[16]; /* the last fetch's raw view (qcow2) */

static int fetch(const char *url, const char *allow, const uint16_t *own, char *why,
		 struct img_data_result *res, uint8_t out_mid[16])
{
	struct img_data_opts o = opts_limit(g_fetch_max);
	struct img_upload *u;
	assert_int_equal(img_upload_open(g_pool, &o, NULL, &u), 0);
	int rc = img_upload_from_url(u, url, allow, own, why, 256);
	printf("fetch %s (allow %s): %d %s\n", url, allow, rc, why);
	if (rc == 0) {
		assert_string_equal(why, "");
		assert_int_equal(img_upload_finish(u, res), 0);
		struct rec r = {0};
		assert_int_equal(img_upload_commit(u, rec_fn, &r), 0);
		memcpy(out_mid, r.seen[r.calls - 1].mid, 16);
		memcpy(g_fetch_raw, r.seen[r.calls - 1].raw_mid, 16);
	} else {
		assert_true(why[0] != '\0');
		/* the upload is dead: nothing fetched can be committed */
		assert_int_not_equal(img_upload_finish(u, res), 0);
	}
	img_upload_free(u);
	return rc;
}

static void test_from_url(void **state)
{
	(void)state;
	srv_start();
	size_t len = 5 * MIB + 3;
	uint8_t *data = malloc(len);
	assert_non_null(data);
	fill_random(data, len, 99);
	char path[512];
	snprintf(path, sizeof(path), "%s/www/img.raw", g_dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	uint8_t md5[16];
	digest("MD5", data, len, md5);

	char url[256], url2[512], allow[64], why[256];
	struct img_data_result res;
	uint8_t mid[16];
	uint16_t own[] = {(uint16_t)g_port, 0};
	uint16_t other[] = {1, 2, 0};
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/img.raw", g_port);
	snprintf(allow, sizeof(allow), "example.org, 127.0.0.1:%u", g_port);

	/* allowed by host:port and by host */
	assert_int_equal(fetch(url, allow, other, why, &res, mid), 0);
	assert_int_equal(res.size, len);
	assert_memory_equal(res.md5, md5, 16);
	assert_mid_bytes(mid, data, len);
	assert_int_equal(unref(mid), 0);
	assert_int_equal(fetch(url, "127.0.0.1", NULL, why, &res, mid), 0);
	assert_int_equal(unref(mid), 0);

	/* not allowed: another host, another port, nothing allowed, scheme */
	assert_int_equal(fetch(url, "example.org", NULL, why, &res, mid), CAIRN_EDENIED);
	assert_non_null(strstr(why, "allow-list"));
	assert_int_equal(fetch(url, "127.0.0.1:1", NULL, why, &res, mid), CAIRN_EDENIED);
	assert_int_equal(fetch(url, "", NULL, why, &res, mid), CAIRN_EDENIED);
	assert_int_equal(fetch("file:///etc/passwd", "127.0.0.1", NULL, why, &res, mid),
			 CAIRN_EDENIED);
	snprintf(url2, sizeof(url2), "ftp://127.0.0.1:%u/img.raw", g_port);
	assert_int_equal(fetch(url2, "127.0.0.1", NULL, why, &res, mid), CAIRN_EDENIED);

	/* the node's own port on a local address, by IP and by name */
	assert_int_equal(fetch(url, allow, own, why, &res, mid), CAIRN_EDENIED);
	assert_non_null(strstr(why, "own service"));
	snprintf(url2, sizeof(url2), "http://localhost:%u/img.raw", g_port);
	assert_int_equal(fetch(url2, "localhost", own, why, &res, mid), CAIRN_EDENIED);
	assert_non_null(strstr(why, "own service"));

	/* redirects: to an allowed host followed, to another refused */
	snprintf(url2, sizeof(url2), "http://127.0.0.1:%u/redirect?http://127.0.0.1:%u/img.raw",
		 g_port, g_port);
	assert_int_equal(fetch(url2, allow, NULL, why, &res, mid), 0);
	assert_memory_equal(res.md5, md5, 16);
	assert_int_equal(unref(mid), 0);
	snprintf(url2, sizeof(url2), "http://127.0.0.1:%u/redirect?http://localhost:%u/img.raw",
		 g_port, g_port);
	assert_int_equal(fetch(url2, allow, NULL, why, &res, mid), CAIRN_EDENIED);
	assert_non_null(strstr(why, "localhost"));
	/* a redirect loop ends */
	snprintf(url2, sizeof(url2), "http://127.0.0.1:%u/redirect?/redirect%%3F/img.raw", g_port);
	assert_int_equal(fetch(url2, allow, NULL, why, &res, mid), 0); /* 2 hops */
	assert_int_equal(unref(mid), 0);
	snprintf(url2, sizeof(url2), "http://127.0.0.1:%u/redirect?", g_port);
	for (int i = 0; i < 6; i++)
		strcat(url2, "/redirect%3F");
	strcat(url2, "/img.raw");
	assert_int_equal(fetch(url2, allow, NULL, why, &res, mid), -EIO);
	assert_non_null(strstr(why, "redirects"));

	/* 404, and nothing listening */
	snprintf(url2, sizeof(url2), "http://127.0.0.1:%u/missing", g_port);
	assert_int_equal(fetch(url2, allow, NULL, why, &res, mid), -EIO);
	assert_non_null(strstr(why, "404"));
	assert_int_equal(fetch("http://127.0.0.1:1/x", "127.0.0.1", NULL, why, &res, mid), -EIO);

	/* the body goes through the same gate as a PUT: the size limit, and a
	 * qcow2 that names a backing file */
	g_fetch_max = 1 * MIB;
	assert_int_equal(fetch(url, allow, NULL, why, &res, mid), -EFBIG);
	g_fetch_max = 0;
	if (have_qemu()) {
		char base[600], top[600];
		snprintf(base, sizeof(base), "%s/www/base.qcow2", g_dir);
		snprintf(top, sizeof(top), "%s/www/top.qcow2", g_dir);
		make_qcow2(base);
		assert_int_equal(sh("qemu-img create -q -f qcow2 -b '%s' -F qcow2 '%s'", base, top),
				 0);
		snprintf(url2, sizeof(url2), "http://127.0.0.1:%u/top.qcow2", g_port);
		assert_int_equal(fetch(url2, allow, NULL, why, &res, mid), CAIRN_EINVAL);
		assert_non_null(strstr(why, "backing"));
		snprintf(url2, sizeof(url2), "http://127.0.0.1:%u/base.qcow2", g_port);
		assert_int_equal(fetch(url2, allow, NULL, why, &res, mid), 0);
		assert_true(res.qcow2 && res.has_raw);
		assert_int_equal(unref(mid), 0);
		assert_int_equal(unref(g_fetch_raw), 0);
	}

	struct cs_stats st;
	assert_int_equal(cs_pool_stats(g_pool, &st), 0);
	assert_int_equal(st.manifests, 0);
	assert_int_equal(scratch_entries(), 0);
	free(data);
}

/* ---- fault points: every failure path leaves nothing behind ---- */

static void assert_pool_empty(void)
{
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(g_pool, &st), 0);
	assert_int_equal(st.manifests, 0);
	assert_int_equal(scratch_entries(), 0);
}

static void test_faults_leave_nothing(void **state)
{
	(void)state;
	struct img_upload *u;
	struct img_data_result res;
	struct rec r = {0};

	/* the pipeline's writer fails part way: seen by a later write or finish */
	size_t len = 10 * MIB;
	uint8_t *data = malloc(len);
	assert_non_null(data);
	fill_random(data, len, 8);
	fault_arm("img_pipe_write", 3);
	int rc = upload_file_bytes(data, len, "raw", &u, &res);
	fault_arm("img_pipe_write", 0);
	assert_int_equal(rc, -EIO);
	assert_int_equal(img_upload_commit(u, rec_fn, &r), -EIO);
	img_upload_free(u);
	assert_pool_empty();
	free(data);
	if (!have_qemu())
		return;

	const char *q = fpath("a.qcow2");
	make_qcow2(q);
	/* no scratch file: refused at the first write that decides qcow2 */
	fault_arm("img_scratch", 1);
	assert_int_equal(upload_file(q, "qcow2", 0, &u, &res), -ENOSPC);
	fault_arm("img_scratch", 0);
	img_upload_free(u);
	assert_pool_empty();
	/* qemu-img cannot run */
	fault_arm("img_conv_exec", 1);
	assert_int_equal(upload_file(q, "qcow2", 0, &u, &res), -EIO);
	fault_arm("img_conv_exec", 0);
	assert_int_equal(img_upload_commit(u, rec_fn, &r), -EIO);
	assert_int_equal(r.calls, 0);
	img_upload_free(u);
	assert_pool_empty();
	/* the second scratch file (the raw view) cannot be made */
	fault_arm("img_scratch", 2);
	assert_int_equal(upload_file(q, "qcow2", 0, &u, &res), -ENOSPC);
	fault_arm("img_scratch", 0);
	img_upload_free(u);
	assert_pool_empty();
}

/* ---- from_snapshot ---- */

static void test_from_snapshot_reads_only_data(void **state)
{
	(void)state;
	char data[300];
	snprintf(data, sizeof(data), "%s/pool", g_dir);
	struct bs_opts bo = {.data_dir = data};
	struct bs_store *bs;
	assert_int_equal(bs_open(g_pool, &bo, &bs), 0);
	uint64_t vsize = 64 * MIB;
	assert_int_equal(bs_volume_create(bs, "v", vsize, NULL, NULL), 0);
	uint8_t *want = calloc(1, vsize), *blk = io_alloc(1 * MIB);
	assert_non_null(want);
	assert_non_null(blk);
	struct io_ctx *ctx;
	assert_int_equal(io_ctx_create(16, &ctx), 0);

	/* 1 MiB at 0 and 64 KiB at 40 MiB: the rest is never written */
	char token[BS_TOKEN_LEN + 1], exp[128];
	struct bs_handle *h;
	assert_int_equal(bs_attach(bs, "v", "host1", 0, token, NULL), 0);
	snprintf(exp, sizeof(exp), "v@%s", token);
	assert_int_equal(bs_handle_open(bs, exp, &h), 0);
	fill_random(blk, 1 * MIB, 41);
	assert_int_equal(bs_write(h, ctx, blk, 0, 1 * MIB, 0), 0);
	memcpy(want, blk, 1 * MIB);
	assert_int_equal(bs_write(h, ctx, blk, 40 * MIB, 64 * KIB, 0), 0);
	memcpy(want + 40 * MIB, blk, 64 * KIB);
	assert_int_equal(bs_flush(h, ctx), 0);
	assert_int_equal(bs_snapshot_create(bs, "v", "s1", NULL), 0);
	/* the head changes after the snapshot: the image must not see it */
	memset(blk, 0xee, 64 * KIB);
	assert_int_equal(bs_write(h, ctx, blk, 0, 64 * KIB, 0), 0);
	bs_handle_close(h);

	struct img_data_opts o = opts_limit(0);
	struct img_upload *u;
	struct img_data_result res;
	assert_int_equal(img_upload_open(g_pool, &o, "raw", &u), 0);
	uint64_t rd0 = io_bytes_read();
	assert_int_equal(img_upload_from_snapshot(u, bs, "v", "s1"), 0);
	uint64_t rd = io_bytes_read() - rd0;
	/* holes cost no device reads: far less than the 64 MiB volume */
	printf("snapshot upload read %llu bytes of devices\n", (unsigned long long)rd);
	assert_true(rd < 8 * MIB);
	assert_int_equal(img_upload_finish(u, &res), 0);
	assert_int_equal(res.size, vsize);
	uint8_t md5[16];
	digest("MD5", want, vsize, md5);
	assert_memory_equal(res.md5, md5, 16);
	struct rec r = {0};
	assert_int_equal(img_upload_commit(u, rec_fn, &r), 0);
	img_upload_free(u);
	assert_mid_bytes(r.seen[0].mid, want, vsize);
	assert_int_equal(unref(r.seen[0].mid), 0);

	/* an unknown snapshot or volume */
	assert_int_equal(img_upload_open(g_pool, &o, "raw", &u), 0);
	assert_int_equal(img_upload_from_snapshot(u, bs, "v", "nope"), CAIRN_ENOTFOUND);
	assert_int_not_equal(img_upload_finish(u, &res), 0);
	img_upload_free(u);
	assert_int_equal(img_upload_open(g_pool, &o, "raw", &u), 0);
	assert_int_equal(img_upload_from_snapshot(u, bs, "nope", "s1"), CAIRN_ENOTFOUND);
	img_upload_free(u);

	assert_int_equal(bs_detach(bs, "v", true), 0);
	io_ctx_free(ctx);
	io_free(blk);
	free(want);
	bs_close(bs);
}

/* ---- throughput (IMG_BENCH=file; skipped otherwise) ---- */

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_fn(struct cs_txn *txn, void *arg, enum img_phase phase,
		    const struct img_data_result *res)
{
	(void)txn, (void)phase;
	memcpy(arg, res->mid, 16);
	return 0;
}

/* Uploads IMG_BENCH in 256 KiB writes (as an HTTP body arrives), from the
 * page cache, and prints MiB/s for the upload (open .. commit) next to
 * what the client side alone costs (MD5 + SHA-512 serially, as a Python
 * server does, and a plain read). */
static void test_bench_upload_file(void **state)
{
	(void)state;
	const char *path = getenv("IMG_BENCH");
	if (!path || !*path)
		skip();
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	size_t bs = 256 * KIB;
	uint8_t *buf = malloc(bs);
	assert_non_null(buf);
	uint64_t total = 0;
	ssize_t n;
	double t0 = now_s();
	while ((n = read(fd, buf, bs)) > 0) /* warm the page cache, time a read */
		total += (uint64_t)n;
	double t_read = now_s() - t0;

	EVP_MD_CTX *m = EVP_MD_CTX_new(), *s = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestInit_ex(m, EVP_md5(), NULL), 1);
	assert_int_equal(EVP_DigestInit_ex(s, EVP_sha512(), NULL), 1);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	t0 = now_s();
	while ((n = read(fd, buf, bs)) > 0) {
		assert_int_equal(EVP_DigestUpdate(m, buf, (size_t)n), 1);
		assert_int_equal(EVP_DigestUpdate(s, buf, (size_t)n), 1);
	}
	double t_hash = now_s() - t0;
	EVP_MD_CTX_free(m);
	EVP_MD_CTX_free(s);

	struct img_data_opts o = opts_limit(0);
	struct img_upload *u;
	struct img_data_result res;
	uint8_t mid[16];
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	t0 = now_s();
	double c0 = cpu_s();
	assert_int_equal(img_upload_open(g_pool, &o, getenv("IMG_BENCH_FMT"), &u), 0);
	while ((n = read(fd, buf, bs)) > 0)
		assert_int_equal(img_upload_write(u, buf, (size_t)n), 0);
	double t_write = now_s() - t0;
	assert_int_equal(img_upload_finish(u, &res), 0);
	double t_finish = now_s() - t0;
	assert_int_equal(img_upload_commit(u, bench_fn, mid), 0);
	double t_all = now_s() - t0;
	double c_all = cpu_s() - c0;
	img_upload_free(u);
	close(fd);
	free(buf);
	assert_int_equal(res.size, total);
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(g_pool, &st), 0);
	double mib = (double)total / MIB;
	printf("bench: %s %.0f MiB: read %.0f MiB/s, md5+sha512 serial %.0f MiB/s; upload "
	       "%.0f MiB/s (writes done %.2f s, finish %.2f s, commit %.2f s, cpu %.2f s)%s; "
	       "unique %.0f "
	       "MiB, stored %.0f MiB, physical %.0f MiB\n",
	       path, mib, mib / t_read, mib / t_hash, mib / t_all, t_write, t_finish, t_all, c_all,
	       res.qcow2 ? " (qcow2 + raw view)" : "", (double)st.unique_bytes / MIB,
	       (double)st.stored_bytes / MIB, (double)st.physical_bytes / MIB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_raw_upload_checksums_and_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_raw_upload_small_and_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_callback_failure_undoes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_size_limit_efbig_at_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_at_every_stage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_qcow2_raw_view_equals_qemu_img_convert, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_qcow2_raw_phase_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_qcow2_backing_file_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_qcow2_lying_header_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_qcow2_corrupt_refused_by_qemu_img_check, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_disk_format_mismatch_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_qcow2_virtual_size_over_limit_efbig, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_from_manifest_refs_the_object, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_from_manifest_qcow2_and_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_from_url, setup, teardown_srv),
	    cmocka_unit_test_setup_teardown(test_faults_leave_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_from_snapshot_reads_only_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bench_upload_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
