/* tests/unit/test_chunkstore.c - the chunk store: pool creation, writers,
 * group commit, manifests, dedup, readers with replica fallback, restart,
 * power loss. Each test makes its own pool under a fresh temporary dir.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cs_test.h"
#include "chunkstore/chunkstore.h"
#include "chunkstore/cs_internal.h"
#include "core/fault.h"
#include "core/io.h"
#include "core/log.h"
#include "meta/meta.h"
#include "ring/ring.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define CHUNK (64u * KIB)

static char g_dir[256];

static int setup(void **state)
{
	(void)state;
	return cs_test_tmpdir(g_dir, sizeof(g_dir), "cs");
}
static int teardown(void **state)
{
	(void)state;
	rm_rf(g_dir);
	return 0;
}

static struct cs_pool *open_pool(const struct cs_pool_opts *extra)
{
	struct cs_pool_opts o = {0};
	if (extra)
		o = *extra;
	o.data_dir = g_dir;
	/* These tests are about fixed 64 KiB chunks (FastCDC pools, the
	 * default, are covered in test_cdc.c). */
	if (!o.chunking)
		o.chunking = CS_CHUNK_FIXED;
	/* these tests handle open stripes' replicas (sealing: test_seal.c) */
	o.seal_off = true;
	struct cs_pool *p = NULL;
	int rc = cs_pool_open(&o, &p);
	assert_int_equal(rc, 0);
	assert_non_null(p);
	return p;
}

static int create_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

static const uint8_t *g_domain; /* set: writers write in this dedup domain */

static int write_all(struct cs_pool *p, const uint8_t *data, size_t size, size_t step,
		     struct cs_writer **out)
{
	struct cs_writer *w;
	int rc = cs_writer_open(p, &w);
	if (rc < 0)
		return rc;
	if (g_domain)
		cs_writer_set_domain(w, g_domain);
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		rc = cs_writer_write(w, data + off, n);
		if (rc < 0)
			goto out;
	}
	rc = cs_writer_finish(w);
out:
	if (rc < 0)
		cs_writer_free(w);
	else
		*out = w;
	return rc;
}

static void put_object(struct cs_pool *p, const uint8_t *data, size_t size, size_t step,
		       struct cs_mid *mid)
{
	struct cs_writer *w = NULL;
	assert_int_equal(write_all(p, data, size, step, &w), 0);
	assert_int_equal(cs_writer_size(w), size);
	assert_int_equal(cs_commit(p, w, create_fn, mid), 0);
	cs_writer_free(w);
}

static int read_object(struct cs_pool *p, const struct cs_mid *mid, uint8_t *buf, size_t size,
		       size_t step)
{
	struct cs_reader *r;
	int rc = cs_reader_open(p, mid, &r);
	if (rc < 0)
		return rc;
	if (cs_reader_size(r) != size) {
		cs_reader_free(r);
		return -1000;
	}
	size_t off = 0;
	while (off < size) {
		long n = cs_reader_read(r, off, buf + off, step);
		if (n <= 0) {
			cs_reader_free(r);
			return n < 0 ? (int)n : -1001;
		}
		off += (size_t)n;
	}
	long z = cs_reader_read(r, size, buf, 1);
	cs_reader_free(r);
	return z == 0 ? 0 : -1002;
}

static void check_object(struct cs_pool *p, const struct cs_mid *mid, const uint8_t *data,
			 size_t size, size_t step)
{
	uint8_t *buf = malloc(size + 1);
	assert_non_null(buf);
	int rc = read_object(p, mid, buf, size, step);
	if (rc != 0)
		print_message("reading %zu bytes in steps of %zu: %s\n", size, step,
			      cairn_strerror(rc));
	assert_int_equal(rc, 0);
	assert_memory_equal(buf, data, size);
	free(buf);
}

static void sha256(const void *d, size_t n, uint8_t out[32])
{
	unsigned l = 0;
	assert_int_equal(EVP_Digest(d, n, out, &l, EVP_sha256(), NULL), 1);
}

/* The chunk index record of a chunk's bytes, or -1 when absent. */
static int chunk_rec(struct cs_pool *p, const void *d, size_t n, struct cs_chunk_rec *out)
{
	uint8_t fp[32], key[36];
	sha256(d, n, fp);
	meta_be32(key, ring_partition(cs_pool_ring(p, CS_POLICY_EC), fp, 32));
	memcpy(key + 4, fp, 32);
	struct meta_txn *t;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	const void *v;
	size_t vl;
	int rc = meta_get(t, META_T_CHUNKS, key, sizeof(key), &v, &vl);
	if (rc == 0)
		memcpy(out, v, sizeof(*out));
	meta_txn_abort(t);
	return rc == 0 ? 0 : -1;
}

static int stripe_rec(struct cs_pool *p, uint64_t id, struct cs_stripe_rec *out)
{
	uint8_t key[12];
	meta_be32(key, cs_stripe_part(p, id));
	meta_be64(key + 4, id);
	struct meta_txn *t;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	const void *v;
	size_t vl;
	int rc = meta_get(t, META_T_STRIPES, key, sizeof(key), &v, &vl);
	if (rc == 0)
		memcpy(out, v, sizeof(*out));
	meta_txn_abort(t);
	return rc == 0 ? 0 : -1;
}

/* Path of copy c (0: primary, 1..m: replicas) of the unit holding the
 * chunk whose bytes are d[0..n). */
static void chunk_copy_path(struct cs_pool *p, const void *d, size_t n, unsigned c, char *path,
			    size_t plen, uint32_t *rec_off)
{
	struct cs_chunk_rec cr;
	struct cs_stripe_rec sr;
	assert_int_equal(chunk_rec(p, d, n, &cr), 0);
	assert_int_equal(stripe_rec(p, cr.stripe_id, &sr), 0);
	uint32_t dev = c == 0 ? sr.devs[cr.unit] : sr.devs[sr.k + c - 1];
	char dir[CS_PATH_MAX];
	assert_int_equal(cs_unit_path(p, dev, cr.stripe_id, cs_stripe_part(p, cr.stripe_id),
				      cr.unit, dir, sizeof(dir), path, plen),
			 0);
	if (rec_off)
		*rec_off = CS_UNIT_HDR_SIZE + cr.offset;
}

static void flip_bytes(const char *path, uint64_t off, size_t n)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b[64];
	assert_true(n <= sizeof(b));
	assert_int_equal(pread(fd, b, n, (off_t)off), (ssize_t)n);
	for (size_t i = 0; i < n; i++)
		b[i] ^= 0x5a;
	assert_int_equal(pwrite(fd, b, n, (off_t)off), (ssize_t)n);
	close(fd);
}

/* ---- tests ---- */

/* Rewrites the pool record's version with the pool closed; returns the
 * version it had. */
static int set_pool_version(uint8_t version)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/meta", g_dir);
	struct meta_env *env;
	struct meta_txn *t;
	assert_int_equal(meta_open(path, NULL, &env), 0);
	assert_int_equal(meta_txn_begin(env, true, &t), 0);
	const void *v;
	size_t vl;
	assert_int_equal(meta_get(t, META_T_POOL, "pool", 4, &v, &vl), 0);
	struct cs_pool_rec rec;
	memcpy(&rec, v, sizeof(rec));
	int was = rec.version;
	rec.version = version;
	assert_int_equal(meta_put(t, META_T_POOL, "pool", 4, &rec, sizeof(rec), 0), 0);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_close(env);
	return was;
}

static void test_pool_create_reopen(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	const struct cs_pool_rec *r = cs_pool_format(p);
	assert_int_equal(r->k, 4);
	assert_int_equal(r->m, 2);
	assert_int_equal(r->replicas, 3);
	assert_int_equal(r->chunk_size, 64 * KIB);
	assert_int_equal(r->unit_size, MIB);
	assert_int_equal(r->inline_max, 4096);
	assert_int_equal(r->chunking, CS_CHUNK_FIXED);
	uint8_t uuid[16];
	memcpy(uuid, r->pool_uuid, 16);
	assert_int_equal(ring_replicas(cs_pool_ring(p, CS_POLICY_EC)), 6);
	assert_int_equal(ring_replicas(cs_pool_ring(p, CS_POLICY_REPLICA)), 3);
	assert_int_equal(ring_part_power(cs_pool_ring(p, CS_POLICY_EC)), 10);
	/* both rings share the secret: same partition for the same name */
	assert_int_equal(ring_partition(cs_pool_ring(p, CS_POLICY_EC), "abc", 3),
			 cs_name_partition(p, "abc", 3));
	cs_pool_close(p);

	char path[512];
	struct stat st;
	for (int i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), "%s/devices/d%d", g_dir, i);
		assert_int_equal(stat(path, &st), 0);
	}
	const char *files[] = {"ring/ec.ring", "ring/replica.ring", "ring/ec.builder",
			       "ring/replica.builder", "meta"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", g_dir, files[i]);
		assert_int_equal(stat(path, &st), 0);
	}

	/* creation options are ignored on later starts */
	struct cs_pool_opts o = {.k = 3, .m = 1, .chunk_size = 4096};
	p = open_pool(&o);
	assert_int_equal(cs_pool_format(p)->k, 4);
	assert_int_equal(cs_pool_format(p)->chunk_size, 64 * KIB);
	assert_memory_equal(cs_pool_format(p)->pool_uuid, uuid, 16);
	cs_pool_close(p);

	/* a version 1 pool (issue 2's format) is upgraded on open, so that
	 * builds that know only version 1 refuse it once it may hold parity or
	 * zstd chunks; a newer format version is refused */
	assert_int_equal(set_pool_version(1), CS_POOL_VERSION);
	p = open_pool(NULL);
	assert_int_equal(cs_pool_format(p)->version, CS_POOL_VERSION);
	cs_pool_close(p);
	assert_int_equal(set_pool_version(CS_POOL_VERSION + 1), CS_POOL_VERSION);
	struct cs_pool_opts o2 = {.data_dir = g_dir};
	assert_int_equal(cs_pool_open(&o2, &p), CAIRN_EFORMAT);
}

static void test_roundtrip_sizes_inline_and_chunk_boundaries(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	const size_t sizes[] = {0,
				1,
				4095,
				4096,
				4097,
				CHUNK - 1,
				CHUNK,
				CHUNK + 1,
				2 * CHUNK - 1,
				2 * CHUNK,
				2 * CHUNK + 1,
				MIB - 1,
				MIB + 1,
				9 * MIB + 12345};
	uint8_t *data = malloc(10 * MIB);
	assert_non_null(data);
	struct cs_stats s0, s1;
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	uint64_t logical = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fill_random(data, sizes[i], i + 1);
		struct cs_mid mid;
		/* odd write sizes so chunks are cut across calls */
		put_object(p, data, sizes[i], 7777 + i * 1000, &mid);
		check_object(p, &mid, data, sizes[i], 100000);
		check_object(p, &mid, data, sizes[i], 4096);
		logical += sizes[i];
		struct meta_txn *t;
		uint64_t sz = 0;
		assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
		assert_int_equal(cs_manifest_size(t, p, &mid, &sz), 0);
		meta_txn_abort(t);
		assert_int_equal(sz, sizes[i]);
	}
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	assert_int_equal(s1.logical_bytes - s0.logical_bytes, logical);
	assert_int_equal(s1.manifests - s0.manifests, sizeof(sizes) / sizeof(sizes[0]));
	/* inline objects (<= 4096) store no chunk */
	uint64_t chunked = logical - (0 + 1 + 4095 + 4096);
	assert_int_equal(s1.unique_bytes, chunked);
	assert_int_equal(s1.stored_bytes, chunked);
	/* 9 MiB crosses stripes (4 units of 1 MiB each) */
	assert_true(s1.stripes >= 3);
	assert_true(s1.physical_bytes >= 3 * chunked);
	assert_int_equal(s1.read_fallbacks, 0); /* healthy copies always verify */
	cs_pool_close(p);
	free(data);
}

static void test_inline_writes_no_unit_files(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	uint8_t d[4096];
	fill_random(d, sizeof(d), 99);
	struct cs_mid mid;
	put_object(p, d, sizeof(d), 1000, &mid);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.chunks, 0);
	assert_int_equal(s.stripes, 0);
	assert_int_equal(s.physical_bytes, 0);
	assert_int_equal(s.logical_bytes, 4096);
	check_object(p, &mid, d, sizeof(d), 3);
	cs_pool_close(p);
}

static void test_dedup_same_data_twice(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t size = MIB + 5000;
	uint8_t *d = malloc(size);
	fill_random(d, size, 7);
	struct cs_mid a, b;
	put_object(p, d, size, 65536, &a);
	struct cs_stats s1, s2;
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	put_object(p, d, size, 10000, &b);
	assert_int_equal(cs_pool_stats(p, &s2), 0);
	assert_memory_not_equal(&a, &b, sizeof(a));
	assert_int_equal(s1.unique_bytes, size);
	assert_int_equal(s2.unique_bytes, size);
	assert_int_equal(s2.stored_bytes, size);
	assert_int_equal(s2.chunks, 17);
	assert_int_equal(s2.logical_bytes, 2 * size);
	assert_int_equal(s2.manifests, 2);
	/* the second upload stored nothing */
	assert_int_equal(s2.physical_bytes, s1.physical_bytes);
	struct cs_chunk_rec cr;
	assert_int_equal(chunk_rec(p, d, CHUNK, &cr), 0);
	assert_int_equal(cr.refcount, 2);
	assert_int_equal(chunk_rec(p, d + 16 * CHUNK, size - 16 * CHUNK, &cr), 0);
	assert_int_equal(cr.refcount, 2);
	check_object(p, &a, d, size, 65536);
	check_object(p, &b, d, size, 65536);
	free(d);
	cs_pool_close(p);
}

static void test_zero_chunks_store_nothing(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t size = 2 * MIB + 100;
	uint8_t *d = calloc(1, size);
	fill_random(d + 2 * MIB, 100, 3);     /* last partial chunk has data */
	fill_random(d + 5 * CHUNK, CHUNK, 4); /* one data chunk among zeroes */
	struct cs_mid mid;
	put_object(p, d, size, 300000, &mid);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.chunks, 2);
	assert_int_equal(s.unique_bytes, CHUNK + 100);
	assert_int_equal(s.logical_bytes, size);
	check_object(p, &mid, d, size, 50000);
	check_object(p, &mid, d, size, size);
	/* an all-zero object: no chunk at all */
	memset(d, 0, size);
	put_object(p, d, size, size, &mid);
	struct cs_stats s2;
	assert_int_equal(cs_pool_stats(p, &s2), 0);
	assert_int_equal(s2.chunks, 2);
	assert_int_equal(s2.physical_bytes, s.physical_bytes);
	check_object(p, &mid, d, size, 70000);
	free(d);
	cs_pool_close(p);
}

static void test_ranged_reads_every_boundary(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t size = 40 * CHUNK + 17; /* 2 manifest records (32 entries each) */
	uint8_t *d = malloc(size), *buf = malloc(size);
	fill_random(d, size, 11);
	memset(d + 3 * CHUNK, 0, CHUNK); /* a zero chunk in the middle */
	struct cs_mid mid;
	put_object(p, d, size, size, &mid);
	struct cs_reader *r;
	assert_int_equal(cs_reader_open(p, &mid, &r), 0);
	assert_int_equal(cs_reader_size(r), size);
	uint64_t offs[64];
	size_t no = 0;
	const uint64_t bounds[] = {0, CHUNK, 3 * CHUNK, 4 * CHUNK, 32 * CHUNK, 40 * CHUNK, size};
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++)
		for (int dlt = -1; dlt <= 1; dlt++) {
			int64_t o = (int64_t)bounds[i] + dlt;
			if (o >= 0 && (uint64_t)o <= size)
				offs[no++] = (uint64_t)o;
		}
	const size_t lens[] = {1,   2,	    4096, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5,
			       MIB, 3 * MIB};
	for (size_t i = 0; i < no; i++)
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			uint64_t off = offs[i];
			long n = cs_reader_read(r, off, buf, lens[j]);
			size_t want =
			    off >= size ? 0 : (size - off < lens[j] ? size - off : lens[j]);
			assert_int_equal(n, (long)want);
			if (want)
				assert_memory_equal(buf, d + off, want);
		}
	/* backwards, chunk by chunk */
	for (int64_t off = (int64_t)size - 1000; off >= 0; off -= 50000) {
		long n = cs_reader_read(r, (uint64_t)off, buf, 1000);
		assert_int_equal(n, 1000);
		assert_memory_equal(buf, d + off, 1000);
	}
	assert_int_equal(cs_reader_read(r, size + 10, buf, 10), 0);
	cs_reader_free(r);
	free(d);
	free(buf);
	cs_pool_close(p);
}

struct refop {
	const struct cs_mid *mid;
	bool unref;
};
static int refop_fn(struct cs_txn *t, void *arg)
{
	struct refop *o = arg;
	return o->unref ? cs_manifest_unref(t, o->mid) : cs_manifest_ref(t, o->mid);
}

/* Sum of live bytes of the distinct stripes holding the chunks of d. */
static uint64_t live_of(struct cs_pool *p, const uint8_t *d, size_t size)
{
	uint64_t ids[64], sum = 0;
	size_t n = 0;
	for (size_t off = 0; off < size; off += CHUNK) {
		struct cs_chunk_rec cr;
		size_t len = size - off < CHUNK ? size - off : CHUNK;
		assert_int_equal(chunk_rec(p, d + off, len, &cr), 0);
		bool seen = false;
		for (size_t i = 0; i < n; i++)
			seen |= ids[i] == cr.stripe_id;
		if (seen)
			continue;
		ids[n++] = cr.stripe_id;
		struct cs_stripe_rec sr;
		assert_int_equal(stripe_rec(p, cr.stripe_id, &sr), 0);
		sum += sr.live_bytes;
	}
	return sum;
}

/* Regression (review of issue 2): a full metadata map refused deletes too,
 * so nothing could be freed without a restart with a bigger map. */
static void test_map_full_keeps_deletes_possible_issue2(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.map_size = 2u << 20};
	struct cs_pool *p = open_pool(&o);
	enum { N = 4000 };
	static struct cs_mid mids[N];
	uint8_t body[2048];
	int n = 0, rc = 0;
	for (; n < N; n++) {
		struct cs_writer *w = NULL;
		memset(body, 0, sizeof(body));
		memcpy(body, &n, sizeof(n));
		assert_int_equal(write_all(p, body, sizeof(body), sizeof(body), &w), 0);
		rc = cs_commit(p, w, create_fn, &mids[n]);
		cs_writer_free(w);
		if (rc < 0)
			break;
	}
	assert_int_equal(rc, CAIRN_ENOSPACE);
	assert_true(n > 10);
	/* every object written before the refusal can still be deleted */
	for (int i = 0; i < n; i++) {
		struct refop op = {.mid = &mids[i], .unref = true};
		assert_int_equal(cs_commit(p, NULL, refop_fn, &op), 0);
	}
	cs_pool_close(p);
}

static void test_ref_unref_to_zero(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t size = 3 * CHUNK + 10;
	uint8_t *d = malloc(size);
	fill_random(d, size, 21);
	struct cs_mid mid;
	put_object(p, d, size, size, &mid);
	struct refop op = {.mid = &mid};
	assert_int_equal(cs_commit(p, NULL, refop_fn, &op), 0);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.logical_bytes, 2 * size);
	assert_int_equal(s.manifests, 1);
	op.unref = true;
	assert_int_equal(cs_commit(p, NULL, refop_fn, &op), 0);
	check_object(p, &mid, d, size, 1000);
	struct cs_chunk_rec cr;
	assert_int_equal(chunk_rec(p, d, CHUNK, &cr), 0);
	assert_int_equal(cr.refcount, 1);
	struct cs_stripe_rec sr;
	assert_int_equal(stripe_rec(p, cr.stripe_id, &sr), 0);
	assert_int_equal(sr.state, CS_STRIPE_OPEN);
	assert_true(sr.fill[cr.unit] >= cr.offset + 64 + CHUNK);
	assert_int_equal(live_of(p, d, size), size);

	assert_int_equal(cs_commit(p, NULL, refop_fn, &op), 0);
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.logical_bytes, 0);
	assert_int_equal(s.manifests, 0);
	assert_int_equal(s.chunks, 0);
	assert_int_equal(s.unique_bytes, 0);
	/* a dead manifest stays readable for readers that looked it up before
	 * the last unref (a GET racing an overwrite), until GC */
	check_object(p, &mid, d, size, 1000);
	/* the index entry stays at refcount 0 (no GC yet); live bytes gone */
	assert_int_equal(chunk_rec(p, d, CHUNK, &cr), 0);
	assert_int_equal(cr.refcount, 0);
	assert_int_equal(live_of(p, d, size), 0);
	/* ref and unref of a dead manifest are refused */
	op.unref = false;
	assert_int_equal(cs_commit(p, NULL, refop_fn, &op), CAIRN_ENOTFOUND);
	op.unref = true;
	assert_int_equal(cs_commit(p, NULL, refop_fn, &op), CAIRN_ENOTFOUND);

	/* the same bytes again revive the dead chunks */
	put_object(p, d, size, size, &mid);
	assert_int_equal(chunk_rec(p, d, CHUNK, &cr), 0);
	assert_int_equal(cr.refcount, 1);
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.unique_bytes, size);
	assert_int_equal(s.chunks, 4);
	check_object(p, &mid, d, size, size);
	free(d);
	cs_pool_close(p);
}

/* ---- group commit ---- */

static unsigned queued(struct cs_pool *p)
{
	unsigned n = 0;
	pthread_mutex_lock(&p->cq_mu);
	for (struct cs_req *r = p->cq_head; r; r = r->next)
		n++;
	pthread_mutex_unlock(&p->cq_mu);
	return n;
}

struct gate {
	struct cs_pool *p;
	unsigned wait_for; /* requests that must be queued behind the blocker */
	atomic_bool holding;
	pthread_t th;
};

/* A metadata-only request whose callback holds the committer until the
 * others are queued, so they must form the next group (no timing
 * assumption). */
static int gate_fn(struct cs_txn *t, void *arg)
{
	(void)t;
	struct gate *g = arg;
	atomic_store(&g->holding, true);
	for (int i = 0; i < 30000 && queued(g->p) < g->wait_for; i++)
		usleep(1000);
	return 0;
}

static void *gate_main(void *arg)
{
	struct gate *g = arg;
	int rc = cs_commit(g->p, NULL, gate_fn, g);
	(void)rc;
	return NULL;
}

static void gate_start(struct gate *g)
{
	assert_int_equal(pthread_create(&g->th, NULL, gate_main, g), 0);
	while (!atomic_load(&g->holding))
		usleep(1000);
}

struct wjob {
	struct cs_pool *p;
	struct gate *g;
	uint8_t *data;
	size_t size;
	struct cs_mid mid;
	int fail; /* return this after creating the manifest */
	int rc;
	pthread_barrier_t *bar;
};

static int gated_create(struct cs_txn *t, void *arg)
{
	struct wjob *j = arg;
	int rc = cs_manifest_create(t, &j->mid);
	if (rc < 0)
		return rc;
	return j->fail;
}

static void *wjob_main(void *arg)
{
	struct wjob *j = arg;
	struct cs_writer *w = NULL;
	j->rc = write_all(j->p, j->data, j->size, 50000, &w);
	pthread_barrier_wait(j->bar);
	if (j->rc == 0)
		j->rc = cs_commit(j->p, w, gated_create, j);
	cs_writer_free(w);
	return NULL;
}

static void test_concurrent_writers_group_commit(void **state)
{
	(void)state;
	enum { N = 8 };
	struct cs_pool *p = open_pool(NULL);
	struct gate g = {.p = p, .wait_for = N};
	struct wjob jobs[N];
	pthread_t th[N];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, N);
	struct cs_stats s0, s1;
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	gate_start(&g);
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct wjob){
		    .p = p, .g = &g, .size = 300 * KIB + (size_t)i * 777, .bar = &bar};
		jobs[i].data = malloc(jobs[i].size);
		fill_random(jobs[i].data, jobs[i].size, 100 + (uint64_t)i);
		if (i == 5) /* shares all chunks with job 4 but its tail */
			memcpy(jobs[i].data, jobs[4].data, 4 * CHUNK);
		assert_int_equal(pthread_create(&th[i], NULL, wjob_main, &jobs[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_join(g.th, NULL);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(jobs[i].rc, 0);
	/* the blocker, then all N writers in one group */
	assert_int_equal(s1.commit_requests - s0.commit_requests, N + 1);
	assert_int_equal(s1.commits - s0.commits, 2);
	assert_int_equal(s1.manifests, N);
	for (int i = 0; i < N; i++)
		check_object(p, &jobs[i].mid, jobs[i].data, jobs[i].size, 65536);
	/* job 4 and 5's common chunks are counted once and referenced twice */
	struct cs_chunk_rec cr;
	assert_int_equal(chunk_rec(p, jobs[4].data, CHUNK, &cr), 0);
	assert_int_equal(cr.refcount, 2);
	uint64_t uniq = 0;
	for (int i = 0; i < N; i++)
		uniq += jobs[i].size;
	assert_int_equal(s1.unique_bytes, uniq - 4 * CHUNK);
	cs_pool_close(p);
	for (int i = 0; i < N; i++)
		free(jobs[i].data);
	pthread_barrier_destroy(&bar);
}

static void test_fn_error_undoes_only_its_request(void **state)
{
	(void)state;
	enum { N = 3 };
	struct cs_pool *p = open_pool(NULL);
	struct gate g = {.p = p, .wait_for = N};
	struct wjob jobs[N];
	pthread_t th[N];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, N);
	struct cs_stats s0, s1;
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	gate_start(&g);
	for (int i = 0; i < N; i++) {
		jobs[i] =
		    (struct wjob){.p = p, .g = &g, .size = 200 * KIB + (size_t)i, .bar = &bar};
		jobs[i].data = malloc(jobs[i].size);
		fill_random(jobs[i].data, jobs[i].size, 500 + (uint64_t)i);
	}
	jobs[1].fail = CAIRN_EINVAL;
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&th[i], NULL, wjob_main, &jobs[i]), 0);
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_join(g.th, NULL);
	assert_int_equal(jobs[0].rc, 0);
	assert_int_equal(jobs[1].rc, CAIRN_EINVAL);
	assert_int_equal(jobs[2].rc, 0);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	assert_int_equal(s1.commits - s0.commits, 2); /* blocker + one group of N */
	assert_int_equal(s1.manifests, 2);
	assert_int_equal(s1.logical_bytes, jobs[0].size + jobs[2].size);
	assert_int_equal(s1.unique_bytes, jobs[0].size + jobs[2].size);
	struct cs_reader *r;
	assert_int_equal(cs_reader_open(p, &jobs[1].mid, &r), CAIRN_ENOTFOUND);
	struct cs_chunk_rec cr;
	assert_int_equal(chunk_rec(p, jobs[1].data, CHUNK, &cr), -1);
	check_object(p, &jobs[0].mid, jobs[0].data, jobs[0].size, 65536);
	check_object(p, &jobs[2].mid, jobs[2].data, jobs[2].size, 65536);
	cs_pool_close(p);
	for (int i = 0; i < N; i++)
		free(jobs[i].data);
	pthread_barrier_destroy(&bar);
}

/* ---- damaged copies ---- */

static void test_corrupt_one_copy_reads_exact(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t size = 3 * MIB + 999;
	uint8_t *d = malloc(size);
	char path[CS_PATH_MAX];
	uint32_t roff;

	/* flipped header bytes and flipped payload bytes in the primary */
	fill_random(d, size, 31);
	struct cs_mid m1;
	put_object(p, d, size, size, &m1);
	chunk_copy_path(p, d, CHUNK, 0, path, sizeof(path), &roff);
	flip_bytes(path, roff + 4, 8);
	chunk_copy_path(p, d + 20 * CHUNK, CHUNK, 0, path, sizeof(path), &roff);
	flip_bytes(path, roff + 64 + 1000, 16);
	/* and a replica of another unit */
	chunk_copy_path(p, d + 40 * CHUNK, CHUNK, 1, path, sizeof(path), &roff);
	flip_bytes(path, roff + 64 + 5, 3);
	check_object(p, &m1, d, size, MIB);

	/* truncated primary */
	fill_random(d, size, 32);
	struct cs_mid m2;
	put_object(p, d, size, size, &m2);
	chunk_copy_path(p, d + 2 * CHUNK, CHUNK, 0, path, sizeof(path), &roff);
	assert_int_equal(truncate(path, roff + 100), 0);
	check_object(p, &m2, d, size, 100000);

	/* deleted primary and one replica (2 of 3 copies) */
	fill_random(d, size, 33);
	struct cs_mid m3;
	put_object(p, d, size, size, &m3);
	chunk_copy_path(p, d + 17 * CHUNK, CHUNK, 0, path, sizeof(path), NULL);
	assert_int_equal(unlink(path), 0);
	chunk_copy_path(p, d + 17 * CHUNK, CHUNK, 2, path, sizeof(path), NULL);
	assert_int_equal(unlink(path), 0);
	check_object(p, &m3, d, size, 65536);
	cs_pool_close(p);

	/* a whole device folder gone: every object still reads */
	p = open_pool(NULL);
	fill_random(d, size, 34);
	struct cs_mid m4;
	put_object(p, d, size, size, &m4);
	chunk_copy_path(p, d, CHUNK, 0, path, sizeof(path), NULL);
	char *cut = strstr(path, "/stripes/");
	assert_non_null(cut);
	*cut = 0;
	rm_rf(path);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.read_fallbacks, 0);
	check_object(p, &m4, d, size, 200000);
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_true(s.read_fallbacks > 0);
	/* The damaged objects above are not read again: the truncation cut
	 * every later record of that unit file (other objects' too), so a
	 * lost device may have held the last good copy of some chunk. */
	cs_pool_close(p);
	free(d);
}

static void test_all_copies_lost_is_ecorrupt(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t size = 2 * MIB;
	uint8_t *d = malloc(size), *buf = malloc(size);
	fill_random(d, size, 41);
	struct cs_mid mid;
	put_object(p, d, size, size, &mid);
	char path[CS_PATH_MAX];
	uint32_t roff;
	for (unsigned c = 0; c < 3; c++) {
		chunk_copy_path(p, d + 5 * CHUNK, CHUNK, c, path, sizeof(path), &roff);
		flip_bytes(path, roff + 64 + 77, 1);
	}
	struct cs_reader *r;
	assert_int_equal(cs_reader_open(p, &mid, &r), 0);
	assert_int_equal(cs_reader_read(r, 5 * CHUNK + 10, buf, 100), CAIRN_ECORRUPT);
	/* other chunks still read */
	assert_int_equal(cs_reader_read(r, 0, buf, CHUNK), (long)CHUNK);
	assert_memory_equal(buf, d, CHUNK);
	assert_int_equal(cs_reader_read(r, 6 * CHUNK, buf, CHUNK), (long)CHUNK);
	assert_memory_equal(buf, d + 6 * CHUNK, CHUNK);
	cs_reader_free(r);
	assert_int_equal(read_object(p, &mid, buf, size, MIB), CAIRN_ECORRUPT);
	free(d);
	free(buf);
	cs_pool_close(p);
}

static void test_restart_data_intact(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t size = 5 * MIB + 3;
	uint8_t *d = malloc(size);
	fill_random(d, size, 51);
	struct cs_mid a, b;
	put_object(p, d, size, 123456, &a);
	put_object(p, d, 100, 100, &b);
	struct cs_stats s0, s1;
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	cs_pool_close(p);
	p = open_pool(NULL);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	/* the dedup filter counters are since open */
	s0.dedup_filter_skips = s0.dedup_index_lookups = s0.dedup_filter_false = 0;
	s1.dedup_filter_skips = s1.dedup_index_lookups = s1.dedup_filter_false = 0;
	assert_memory_equal(&s0, &s1, sizeof(s0));
	check_object(p, &a, d, size, MIB);
	check_object(p, &b, d, 100, 100);
	/* new stripes after a restart never reuse ids */
	uint8_t *e = malloc(size);
	fill_random(e, size, 52);
	struct cs_mid c;
	put_object(p, e, size, size, &c);
	check_object(p, &c, e, size, MIB);
	check_object(p, &a, d, size, MIB);
	cs_pool_close(p);
	free(d);
	free(e);
}

/* A finished writer's partial tail block is written zero-padded and the
 * next record starts at the next 4 KiB boundary: a block that may have been
 * synced is never written again. One worker, so placement is sequential. */
static void test_tail_padding_next_record_aligned(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.workers = 1};
	struct cs_pool *p = open_pool(&o);
	size_t size = CHUNK + 5000;
	uint8_t *a = malloc(size), *b = malloc(size);
	fill_random(a, size, 81);
	fill_random(b, size, 82);
	struct cs_mid ma, mb;
	put_object(p, a, size, size, &ma);
	put_object(p, b, size, size, &mb);
	struct cs_chunk_rec a0, a1, b0;
	assert_int_equal(chunk_rec(p, a, CHUNK, &a0), 0);
	assert_int_equal(chunk_rec(p, a + CHUNK, 5000, &a1), 0);
	assert_int_equal(chunk_rec(p, b, CHUNK, &b0), 0);
	assert_int_equal(a0.stripe_id, b0.stripe_id);
	assert_int_equal(a0.unit, b0.unit);
	assert_int_equal(a0.offset, 0);
	assert_int_equal(a1.offset, 64 + CHUNK); /* 8-aligned, same writer: packed */
	uint64_t a_end = CS_UNIT_HDR_SIZE + a1.offset + 64 + 5000;
	uint64_t want = cs_align_up(a_end, CS_BLOCK);
	assert_int_equal(CS_UNIT_HDR_SIZE + b0.offset, want);
	/* the padding is zero (a record with magic 0) on every copy */
	for (unsigned c = 0; c < 3; c++) {
		char path[CS_PATH_MAX];
		chunk_copy_path(p, a, CHUNK, c, path, sizeof(path), NULL);
		int fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		size_t n = want - a_end;
		uint8_t *pad = malloc(n), *z = calloc(1, n);
		assert_int_equal(pread(fd, pad, n, (off_t)a_end), (ssize_t)n);
		assert_memory_equal(pad, z, n);
		struct cs_unit_hdr h;
		assert_int_equal(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
		assert_int_equal(h.magic, CS_UNIT_MAGIC);
		assert_int_equal(h.stripe_id, a0.stripe_id);
		assert_int_equal(h.kind, CS_UNIT_DATA);
		assert_memory_equal(h.pool_uuid, cs_pool_format(p)->pool_uuid, 16);
		free(pad);
		free(z);
		close(fd);
	}
	check_object(p, &ma, a, size, 1000);
	check_object(p, &mb, b, size, 1000);
	cs_pool_close(p);
	free(a);
	free(b);
}

/* A device write error fails the writer whose chunk hit it, and also a
 * writer whose records were still unwritten in the dropped stripe; the
 * pool keeps working afterwards. */
static void test_write_error_fails_affected_writers(void **state)
{
	(void)state;
#ifndef CAIRN_FAULTS
	skip();
#endif
	struct cs_pool_opts o = {.workers = 1};
	struct cs_pool *p = open_pool(&o);
	size_t asz = 100 * KIB, bsz = 600 * KIB;
	uint8_t *a = malloc(asz), *b = malloc(bsz);
	fill_random(a, asz, 91);
	fill_random(b, bsz, 92);
	struct cs_writer *wa, *wb;
	assert_int_equal(cs_writer_open(p, &wa), 0);
	assert_int_equal(cs_writer_write(wa, a, asz), 0); /* one chunk placed, not yet written */
	fault_arm("io.write", 1);
	assert_int_equal(write_all(p, b, bsz, bsz, &wb), -EIO);
	fault_arm("io.write", 0);
	assert_int_equal(cs_writer_finish(wa), -EIO);
	struct cs_mid mid;
	assert_int_equal(cs_commit(p, wa, create_fn, &mid), -EIO);
	cs_writer_free(wa);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.manifests, 0);
	put_object(p, b, bsz, 70000, &mid);
	check_object(p, &mid, b, bsz, 4096);
	cs_pool_close(p);
	free(a);
	free(b);
}

/* A long writer keeps few unit files open: closed units are synced early. */
static void test_long_writer_syncs_early(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t size = 24 * MIB + 5;
	uint8_t *d = malloc(size);
	fill_random(d, size, 71);
	struct cs_writer *w;
	assert_int_equal(cs_writer_open(p, &w), 0);
	size_t most = 0;
	for (size_t off = 0; off < size; off += 256 * KIB) {
		size_t n = size - off < 256 * KIB ? size - off : 256 * KIB;
		assert_int_equal(cs_writer_write(w, d + off, n), 0);
		pthread_mutex_lock(&w->mu);
		if (w->nfiles > most)
			most = w->nfiles;
		pthread_mutex_unlock(&w->mu);
	}
	assert_int_equal(cs_writer_finish(w), 0);
	/* 24 units x 3 copies were written; far fewer were ever held */
	assert_true(most <= CS_EARLY_SYNC_FILES + 3 * (2 + 2 * 2));
	assert_true(w->nfiles < 24 * 3);
	struct cs_mid mid;
	assert_int_equal(cs_commit(p, w, create_fn, &mid), 0);
	cs_writer_free(w);
	check_object(p, &mid, d, size, MIB);
	check_object(p, &mid, d, size, 3 * MIB + 7);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.read_fallbacks, 0);
	cs_pool_close(p);
	free(d);
}

/* Power loss: a child commits two objects and leaves a third written but not
 * committed, then dies without closing. Replaying the undo log drops every
 * unsynced write; the pool must open and the committed objects read back. */
static void test_powerloss_committed_survive(void **state)
{
	(void)state;
	size_t size = 2 * MIB + 4321;
	uint8_t *d1 = malloc(size), *d2 = malloc(size), *d3 = malloc(size);
	fill_random(d1, size, 61);
	fill_random(d2, 70000, 62);
	fill_random(d3, size, 63);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		struct cs_pool_opts o = {
		    .data_dir = g_dir, .chunking = CS_CHUNK_FIXED, .powerloss_sim = true};
		struct cs_pool *p = NULL;
		struct cs_mid m[2];
		struct cs_writer *w = NULL;
		if (cs_pool_open(&o, &p) < 0)
			_exit(2);
		if (write_all(p, d1, size, 100000, &w) < 0 || cs_commit(p, w, create_fn, &m[0]) < 0)
			_exit(3);
		cs_writer_free(w);
		if (write_all(p, d2, 70000, 100000, &w) < 0 ||
		    cs_commit(p, w, create_fn, &m[1]) < 0)
			_exit(4);
		cs_writer_free(w);
		if (write(pfd[1], m, sizeof(m)) != sizeof(m))
			_exit(5);
		/* written, never committed */
		if (write_all(p, d3, size, 100000, &w) < 0)
			_exit(6);
		_exit(0); /* the power goes out: nothing closed */
	}
	close(pfd[1]);
	struct cs_mid m[2];
	assert_int_equal(read(pfd[0], m, sizeof(m)), (ssize_t)sizeof(m));
	close(pfd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	char log[512];
	snprintf(log, sizeof(log), "%s/powerloss.log", g_dir);
	long reverted = io_powerloss_replay(log);
	assert_true(reverted >= 1); /* the uncommitted writer's blocks at least */

	struct cs_pool *p = open_pool(NULL);
	check_object(p, &m[0], d1, size, MIB);
	check_object(p, &m[1], d2, 70000, 4096);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.manifests, 2);
	assert_int_equal(s.logical_bytes, size + 70000);
	/* the uncommitted bytes are dead: writing them again stores them again */
	struct cs_mid m3;
	put_object(p, d3, size, size, &m3);
	check_object(p, &m3, d3, size, MIB);
	cs_pool_close(p);
	free(d1);
	free(d2);
	free(d3);
}

/* A tenant pool: equal bytes from two domains are two chunks (an upload's
 * speed tells nobody what another tenant stored), the same domain dedups,
 * and compaction keeps each chunk under its domain's fingerprint. */
static void test_tenant_dedup_domain(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.dedup_domain = CS_DEDUP_TENANT, .gc_interval = -1};
	struct cs_pool *p = open_pool(&o);
	assert_int_equal(cs_pool_format(p)->dedup_domain, CS_DEDUP_TENANT);
	size_t size = 2 * MIB;
	uint8_t *d = malloc(size), *buf = malloc(size);
	fill_random(d, size, 77);
	static const uint8_t dom_a[CS_DOMAIN_LEN] = {1}, dom_b[CS_DOMAIN_LEN] = {2};
	struct cs_mid a1, a2, b1;
	struct cs_stats s0, s1, s2;
	g_domain = dom_a;
	put_object(p, d, size, size, &a1);
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	put_object(p, d, size, size, &a2);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	assert_int_equal(s1.unique_bytes, s0.unique_bytes); /* same domain: deduplicated */
	g_domain = dom_b;
	put_object(p, d, size, size, &b1);
	assert_int_equal(cs_pool_stats(p, &s2), 0);
	assert_int_equal(s2.unique_bytes, 2 * s0.unique_bytes); /* other domain: stored again */
	assert_int_equal(s2.chunks, 2 * s0.chunks);
	g_domain = NULL;
	/* a's chunks die: compaction moves b's out of the shared stripes */
	struct refop u1 = {.mid = &a1, .unref = true}, u2 = {.mid = &a2, .unref = true};
	assert_int_equal(cs_commit(p, NULL, refop_fn, &u1), 0);
	assert_int_equal(cs_commit(p, NULL, refop_fn, &u2), 0);
	cs_pool_close(p); /* the workers' stripes are theirs until then */
	p = open_pool(NULL);
	struct cs_check_report rep;
	assert_int_equal(cs_gc(p, &rep, NULL, NULL), 0);
	assert_int_equal(cs_compact(p, 100, &rep, NULL, NULL), 0);
	/* moved: the copies kept b's fingerprints (SHA-256 of domain + bytes) */
	assert_int_equal(rep.fixed, s0.chunks);
	assert_int_equal(cs_gc(p, &rep, NULL, NULL), 0);
	assert_int_equal(cs_fsck(p, false, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 0);
	check_object(p, &b1, d, size, 100000);
	cs_pool_close(p);
	/* the policy is frozen: a later open keeps it */
	p = open_pool(NULL);
	assert_int_equal(cs_pool_format(p)->dedup_domain, CS_DEDUP_TENANT);
	check_object(p, &b1, d, size, MIB);
	cs_pool_close(p);
	free(d);
	free(buf);
}

struct concat_arg {
	const struct cs_mid *parts;
	size_t n;
	struct cs_mid out;
};

static int concat_fn(struct cs_txn *t, void *arg)
{
	struct concat_arg *a = arg;
	return cs_manifest_concat(t, a->parts, a->n, &a->out);
}

/* Multipart completion: a manifest made of parts copies no byte; parts
 * held only by the upload die, a part shared with an object keeps it. */
static void test_manifest_concat(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.gc_interval = -1};
	struct cs_pool *p = open_pool(&o);
	/* sizes: chunk-aligned, ragged, tiny (would be inline), empty */
	size_t sz[4] = {3 * CHUNK, 2 * CHUNK + 777, 100, 0}, total = 0;
	for (int i = 0; i < 4; i++)
		total += sz[i];
	uint8_t *d = malloc(total + 1);
	fill_random(d, total, 31);
	struct cs_mid parts[5];
	size_t off = 0;
	for (int i = 0; i < 4; i++) {
		struct cs_writer *w;
		assert_int_equal(cs_writer_open(p, &w), 0);
		cs_writer_set_no_inline(w);
		if (sz[i])
			assert_int_equal(cs_writer_write(w, d + off, sz[i]), 0);
		assert_int_equal(cs_writer_finish(w), 0);
		assert_int_equal(cs_commit(p, w, create_fn, &parts[i]), 0);
		cs_writer_free(w);
		off += sz[i];
	}
	/* part 1 is also an object of its own (UploadPartCopy of a whole object) */
	struct refop op = {.mid = &parts[1]};
	assert_int_equal(cs_commit(p, NULL, refop_fn, &op), 0);
	struct cs_stats s0, s1;
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	uint64_t written = io_bytes_written();
	struct concat_arg a = {.parts = parts, .n = 4};
	assert_int_equal(cs_commit(p, NULL, concat_fn, &a), 0);
	assert_int_equal(io_bytes_written(), written); /* no data written */
	check_object(p, &a.out, d, total, 1000);
	check_object(p, &a.out, d, total, total);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	assert_int_equal(s1.unique_bytes, s0.unique_bytes);
	assert_int_equal(s1.manifests, 2); /* the object and the shared part */
	assert_int_equal(s1.logical_bytes, total + sz[1]);
	/* consumed: the upload's own parts are dead, the shared one lives on */
	struct refop r0 = {.mid = &parts[0], .unref = true};
	assert_int_equal(cs_commit(p, NULL, refop_fn, &r0), CAIRN_ENOTFOUND);
	check_object(p, &parts[1], d + sz[0], sz[1], 4096);
	struct cs_check_report rep;
	assert_int_equal(cs_fsck(p, false, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 0);
	/* an inline manifest cannot be a part; nothing changes */
	struct cs_mid small;
	put_object(p, d, 10, 10, &small);
	struct cs_mid bad[2] = {a.out, small};
	struct concat_arg b = {.parts = bad, .n = 2};
	assert_int_equal(cs_commit(p, NULL, concat_fn, &b), CAIRN_EINVAL);
	check_object(p, &a.out, d, total, total);
	/* dropping everything frees every chunk */
	struct refop u1 = {.mid = &a.out, .unref = true}, u2 = {.mid = &parts[1], .unref = true},
		     u3 = {.mid = &small, .unref = true};
	assert_int_equal(cs_commit(p, NULL, refop_fn, &u1), 0);
	assert_int_equal(cs_commit(p, NULL, refop_fn, &u2), 0);
	assert_int_equal(cs_commit(p, NULL, refop_fn, &u3), 0);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	assert_int_equal(s1.chunks, 0);
	assert_int_equal(s1.manifests, 0);
	assert_int_equal(s1.logical_bytes, 0);
	assert_int_equal(cs_gc(p, &rep, NULL, NULL), 0);
	assert_int_equal(cs_fsck(p, false, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 0);
	free(d);
	cs_pool_close(p);
}

int main(void)
{
	log_set_level(LOG_WARN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_pool_create_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tenant_dedup_domain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_manifest_concat, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_roundtrip_sizes_inline_and_chunk_boundaries, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_inline_writes_no_unit_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedup_same_data_twice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_zero_chunks_store_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ranged_reads_every_boundary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ref_unref_to_zero, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_writers_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fn_error_undoes_only_its_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_one_copy_reads_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_all_copies_lost_is_ecorrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_data_intact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tail_padding_next_record_aligned, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_error_fails_affected_writers, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_long_writer_syncs_early, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_powerloss_committed_survive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_full_keeps_deletes_possible_issue2, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
