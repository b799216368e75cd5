/* tests/unit/test_cdc.c - FastCDC chunking (cs_cdc), and the chunk store's
 * data path around it: CDC pools, zstd compression, the dedup Bloom filter.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "cs_test.h"
#include "chunkstore/chunkstore.h"
#include "chunkstore/cs_cdc.h"
#include "chunkstore/cs_comp.h"
#include "chunkstore/cs_internal.h"
#include "core/log.h"
#include "meta/meta.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static struct cs_cdc g_cdc; /* 4K / 16K / 64K, the pool default */

static int cdc_setup(void **state)
{
	(void)state;
	return cs_cdc_init(&g_cdc, 4 * KIB, 16 * KIB, 64 * KIB) == 0 ? 0 : -1;
}

/* Chunk lengths of d[0..n) cut one shot at a time. */
static size_t cut_all(const struct cs_cdc *c, const uint8_t *d, size_t n, size_t *lens, size_t cap)
{
	size_t off = 0, k = 0;
	while (off < n) {
		size_t l = cs_cdc_cut(c, d + off, n - off);
		assert_true(l > 0);
		assert_true(k < cap);
		lens[k++] = l;
		off += l;
	}
	return k;
}

static void test_cdc_init_rejects_bad_bounds(void **state)
{
	(void)state;
	struct cs_cdc c;
	assert_int_equal(cs_cdc_init(&c, 4096, 16384, 65536), 0);
	assert_int_equal(cs_cdc_init(&c, 4096, 12288, 65536), -EINVAL);	 /* avg not 2^n */
	assert_int_equal(cs_cdc_init(&c, 32, 16384, 65536), -EINVAL);	 /* min < window */
	assert_int_equal(cs_cdc_init(&c, 16384, 16384, 65536), -EINVAL); /* min == avg */
	assert_int_equal(cs_cdc_init(&c, 4096, 16384, 16384), -EINVAL);	 /* max == avg */
	assert_int_equal(cs_cdc_init(&c, 64, 128, 65536), -EINVAL);	 /* avg too small */
	assert_int_equal(cs_cdc_init(&c, 4096, 16384, 32u << 20), -EINVAL);
	assert_int_equal(cs_cdc_init(&c, 64, 256, 257), 0);
}

/* The frozen format: the gear table and the boundaries of a seeded input.
 * If this fails, the table or the cut rule changed, and every FastCDC pool
 * written before would stop deduplicating against new data. */
static void test_cdc_pinned_table_and_boundaries(void **state)
{
	(void)state;
	assert_true(g_cdc.gear[0] == 0x3e9f1f059569efa3ull);
	assert_true(g_cdc.gear[255] == 0x7428a2aba59cb12cull);
	size_t n = 8 * MIB;
	uint8_t *d = malloc(n);
	size_t *lens = malloc(4096 * sizeof(*lens));
	assert_non_null(d);
	assert_non_null(lens);
	fill_random(d, n, 42);
	size_t k = cut_all(&g_cdc, d, n, lens, 4096);
	static const size_t first[] = {21630, 13344, 7626,  19178, 16673, 16362,
				       18188, 18004, 23477, 23951, 18396, 32406};
	for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
		assert_int_equal(lens[i], first[i]);
	uint64_t sum = 0;
	for (size_t i = 0; i < k; i++)
		sum = sum * 31 + lens[i];
	assert_int_equal(k, 453);
	assert_true(sum == 0xb0ac26e4409547f0ull);
	free(lens);
	free(d);
}

static void test_cdc_bounds_respected_and_mean_near_avg(void **state)
{
	(void)state;
	size_t n = 16 * MIB;
	uint8_t *d = malloc(n);
	size_t *lens = malloc(8192 * sizeof(*lens));
	assert_non_null(d);
	assert_non_null(lens);
	fill_random(d, n, 7);
	size_t k = cut_all(&g_cdc, d, n, lens, 8192);
	size_t total = 0, at_max = 0;
	for (size_t i = 0; i < k; i++) {
		total += lens[i];
		if (i + 1 < k)
			assert_in_range(lens[i], g_cdc.min, g_cdc.max);
		else
			assert_true(lens[i] <= g_cdc.max);
		at_max += lens[i] == g_cdc.max;
	}
	assert_int_equal(total, n);
	/* normalised chunking: the mean is near avg, forced cuts are rare */
	double mean = (double)n / (double)k;
	assert_true(mean > 14000 && mean < 24000);
	assert_true(at_max * 100 < k);
	/* a short tail is one chunk; max forces a cut on data with no boundary */
	assert_int_equal(cs_cdc_cut(&g_cdc, d, 100), 100);
	assert_int_equal(cs_cdc_cut(&g_cdc, d, g_cdc.min), g_cdc.min);
	uint8_t *z = calloc(1, 256 * KIB);
	assert_non_null(z);
	size_t zl = cs_cdc_cut(&g_cdc, z, 256 * KIB);
	assert_true(zl == g_cdc.max || zl == g_cdc.min); /* zeros hash to a constant */
	free(z);
	free(lens);
	free(d);
}

/* Feeding the stream in pieces of any size gives the one-shot boundaries. */
static void test_cdc_streaming_equals_one_shot(void **state)
{
	(void)state;
	size_t n = 4 * MIB;
	uint8_t *d = malloc(n);
	size_t *lens = malloc(4096 * sizeof(*lens));
	assert_non_null(d);
	assert_non_null(lens);
	fill_random(d, n, 9);
	size_t k = cut_all(&g_cdc, d, n, lens, 4096);
	static const size_t steps[] = {1, 7, 63, 64, 4095, 4096, 65536, 1 << 20};
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		struct cs_cdc_state st = {0};
		size_t off = 0, cur = 0, idx = 0;
		while (off < n) {
			size_t piece = n - off < steps[s] ? n - off : steps[s];
			size_t used = 0;
			bool cut = cs_cdc_feed(&g_cdc, &st, d + off, piece, &used);
			assert_true(used <= piece);
			cur += used;
			off += used;
			if (cut) {
				assert_true(idx < k);
				assert_int_equal(cur, lens[idx]);
				idx++;
				cur = 0;
			} else {
				assert_int_equal(used, piece);
			}
		}
		if (cur) /* the stream's last chunk */
			assert_int_equal(cur, lens[idx++]);
		assert_int_equal(idx, k);
	}
	free(lens);
	free(d);
}

/* Insert a few bytes near the start of 8 MiB: nearly every later chunk is
 * the same bytes as before (fixed blocks would all shift). */
static void test_cdc_shift_resistance(void **state)
{
	(void)state;
	size_t n = 8 * MIB, ins = 5;
	uint8_t *a = malloc(n), *b = malloc(n + ins);
	size_t *la = malloc(4096 * sizeof(size_t)), *lb = malloc(4096 * sizeof(size_t));
	assert_true(a && b && la && lb);
	fill_random(a, n, 1234);
	memcpy(b, a, 1000);
	memcpy(b + 1000, "HELLO", ins);
	memcpy(b + 1000 + ins, a + 1000, n - 1000);
	size_t ka = cut_all(&g_cdc, a, n, la, 4096), kb = cut_all(&g_cdc, b, n + ins, lb, 4096);
	/* chunk end offsets in a's coordinates; count b's chunks that a has */
	size_t same = 0, i = 0, j = 0, ea = 0, eb = 0;
	while (i < ka && j < kb) {
		size_t na = ea + la[i], nb = eb + lb[j] - ins;
		if (eb >= ins && na == nb && ea == eb - ins)
			same++;
		if (na <= nb)
			ea = na, i++;
		if (nb <= na)
			eb = nb + ins, j++;
	}
	assert_true(same + 3 >= ka);
	free(a);
	free(b);
	free(la);
	free(lb);
}

/* ---- pools ---- */

static char g_dir[256];

static int pool_setup(void **state)
{
	(void)state;
	return cs_test_tmpdir(g_dir, sizeof(g_dir), "cdc");
}

static int pool_teardown(void **state)
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
	struct cs_pool *p = NULL;
	assert_int_equal(cs_pool_open(&o, &p), 0);
	return p;
}

static int create_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

static void put_object(struct cs_pool *p, const uint8_t *data, size_t size, size_t step,
		       struct cs_mid *mid)
{
	struct cs_writer *w = NULL;
	assert_int_equal(cs_writer_open(p, &w), 0);
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		assert_int_equal(cs_writer_write(w, data + off, n), 0);
	}
	assert_int_equal(cs_writer_finish(w), 0);
	assert_int_equal(cs_writer_size(w), size);
	assert_int_equal(cs_commit(p, w, create_fn, mid), 0);
	cs_writer_free(w);
}

static void check_object(struct cs_pool *p, const struct cs_mid *mid, const uint8_t *data,
			 size_t size, size_t step)
{
	struct cs_reader *r;
	uint8_t *buf = malloc(size + 1);
	assert_non_null(buf);
	assert_int_equal(cs_reader_open(p, mid, &r), 0);
	assert_int_equal(cs_reader_size(r), size);
	for (size_t off = 0; off < size;) {
		long n = cs_reader_read(r, off, buf + off, step);
		assert_true(n > 0);
		off += (size_t)n;
	}
	assert_int_equal(cs_reader_read(r, size, buf, 1), 0);
	cs_reader_free(r);
	assert_memory_equal(buf, data, size);
	free(buf);
}

/* Manifest chunk lengths, in order (the pool's cut points). */
static size_t manifest_lens(struct cs_pool *p, const struct cs_mid *mid, uint32_t *lens, size_t cap)
{
	struct meta_txn *t;
	struct meta_cursor *c;
	uint8_t key[4 + CS_MID_LEN + 8];
	const void *k, *v;
	size_t kl, vl, n = 0;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	assert_int_equal(meta_cursor_open(t, META_T_MANIFESTS, &c), 0);
	size_t skl = cs_key_ment(key, cs_mid_part(p, mid), mid, 0);
	int rc = meta_cursor_seek(c, key, skl, &k, &kl, &v, &vl);
	while (rc == 0 && kl == skl && memcmp(k, key, skl - 8) == 0) {
		struct cs_ment_rec_hdr rh;
		memcpy(&rh, v, sizeof(rh));
		for (unsigned i = 0; i < rh.count; i++) {
			struct cs_ment e;
			memcpy(&e, (const uint8_t *)v + sizeof(rh) + i * sizeof(e), sizeof(e));
			assert_true(n < cap);
			lens[n++] = e.len;
		}
		rc = meta_cursor_next(c, &k, &kl, &v, &vl);
	}
	meta_cursor_close(c);
	meta_txn_abort(t);
	return n;
}

/* A new pool is FastCDC 16K [4K, 64K]; what it stores reads back byte-exact
 * however the stream was split, and its cut points are cs_cdc's. */
static void test_pool_default_fastcdc_roundtrip(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	const struct cs_pool_rec *r = cs_pool_format(p);
	assert_int_equal(r->chunking, CS_CHUNK_FASTCDC);
	assert_int_equal(r->chunk_size, 16 * KIB);
	assert_int_equal(r->chunk_min, 4 * KIB);
	assert_int_equal(r->chunk_max, 64 * KIB);
	size_t n = 3 * MIB + 12345;
	uint8_t *d = malloc(n);
	assert_non_null(d);
	fill_random(d, n, 5);
	static const size_t steps[] = {1000, 4096, 65537, 1 << 20};
	struct cs_mid mids[4];
	for (unsigned i = 0; i < 4; i++)
		put_object(p, d, n, steps[i], &mids[i]);
	size_t *want = malloc(1024 * sizeof(*want));
	uint32_t *got = malloc(1024 * sizeof(*got));
	assert_non_null(want);
	assert_non_null(got);
	size_t k = cut_all(&g_cdc, d, n, want, 1024);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(manifest_lens(p, &mids[i], got, 1024), k);
		for (size_t j = 0; j < k; j++)
			assert_int_equal(got[j], want[j]);
		check_object(p, &mids[i], d, n, i == 0 ? 7777 : MIB);
	}
	/* the same bytes four times: stored once */
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(p, &st), 0);
	assert_int_equal(st.unique_bytes, n);
	assert_int_equal(st.chunks, k);
	cs_pool_close(p);
	/* reopened: same policy, same data */
	p = open_pool(NULL);
	assert_int_equal(cs_pool_format(p)->chunking, CS_CHUNK_FASTCDC);
	check_object(p, &mids[2], d, n, 100000);
	cs_pool_close(p);
	free(want);
	free(got);
	free(d);
}

/* Bytes inserted near the start of an object: the second upload stores a
 * chunk or two, not the whole object again. */
static void test_pool_fastcdc_dedups_shifted_data(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t n = 4 * MIB;
	uint8_t *a = malloc(n + 8);
	assert_non_null(a);
	fill_random(a, n, 77);
	struct cs_mid ma, mb;
	put_object(p, a, n, 65536, &ma);
	struct cs_stats s1, s2;
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	memmove(a + 3001, a + 3000, n - 3000);
	a[3000] = 0xAB;
	put_object(p, a, n + 1, 65536, &mb);
	assert_int_equal(cs_pool_stats(p, &s2), 0);
	assert_true(s2.unique_bytes - s1.unique_bytes <= 3 * 64 * KIB);
	assert_true(s2.chunks - s1.chunks <= 3);
	check_object(p, &mb, a, n + 1, MIB);
	cs_pool_close(p);
	free(a);
}

/* Pool options: a fixed pool stays fixed; bad FastCDC bounds are refused. */
static void test_pool_chunking_options(void **state)
{
	(void)state;
	struct cs_pool *p = NULL;
	struct cs_pool_opts bad = {.data_dir = g_dir, .chunk_avg = 12288};
	assert_int_equal(cs_pool_open(&bad, &p), CAIRN_EINVAL);
	struct cs_pool_opts big = {.data_dir = g_dir, .chunk_max = 2 * MIB};
	assert_int_equal(cs_pool_open(&big, &p), CAIRN_EINVAL); /* > unit */
	struct cs_pool_opts fx = {.chunking = CS_CHUNK_FIXED, .chunk_size = 8192};
	p = open_pool(&fx);
	assert_int_equal(cs_pool_format(p)->chunking, CS_CHUNK_FIXED);
	size_t n = 100000;
	uint8_t *d = malloc(n);
	assert_non_null(d);
	fill_random(d, n, 3);
	struct cs_mid m;
	put_object(p, d, n, 3333, &m);
	uint32_t lens[32];
	assert_int_equal(manifest_lens(p, &m, lens, 32), 13);
	assert_int_equal(lens[0], 8192);
	assert_int_equal(lens[12], n - 12 * 8192);
	cs_pool_close(p);
	/* reopening with other options changes nothing */
	struct cs_pool_opts cdc = {.chunking = CS_CHUNK_FASTCDC};
	p = open_pool(&cdc);
	assert_int_equal(cs_pool_format(p)->chunking, CS_CHUNK_FIXED);
	check_object(p, &m, d, n, n);
	cs_pool_close(p);
	free(d);
}

/* Text-like bytes: 8 letters at random, about 3 bits each (zstd: ~2.5x). */
static void fill_text(uint8_t *b, size_t n, uint64_t seed)
{
	fill_random(b, n, seed);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)('a' + (b[i] & 7));
}

/* The chunk index record of the chunk holding d[0..n), or -1. */
static int chunk_rec(struct cs_pool *p, const void *d, size_t n, struct cs_chunk_rec *out)
{
	uint8_t fp[32], key[36];
	unsigned l = 0;
	assert_int_equal(EVP_Digest(d, n, fp, &l, EVP_sha256(), NULL), 1);
	size_t kl = cs_key_chunk(key, cs_chunk_part(p, fp), fp);
	struct meta_txn *t;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	const void *v;
	size_t vl;
	int rc = meta_get(t, META_T_CHUNKS, key, kl, &v, &vl);
	if (rc == 0)
		memcpy(out, v, sizeof(*out));
	meta_txn_abort(t);
	return rc == 0 ? 0 : -1;
}

static void test_comp_policy(void **state)
{
	(void)state;
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	uint8_t *src = malloc(64 * KIB), *dst = malloc(64 * KIB), *back = malloc(64 * KIB);
	assert_true(c && dc && src && dst && back);
	/* compressible: kept, and expands back exactly */
	fill_text(src, 64 * KIB, 1);
	size_t z = cs_comp_chunk(c, 1, src, 64 * KIB, dst);
	assert_true(z > 0 && z < 40 * KIB);
	assert_int_equal(cs_comp_expand(dc, dst, z, back, 64 * KIB), 0);
	assert_memory_equal(back, src, 64 * KIB);
	assert_int_equal(cs_comp_expand(dc, dst, z, back, 64 * KIB - 1), -1); /* wrong size */
	dst[z / 2] ^= 0x55;
	assert_true(cs_comp_expand(dc, dst, z, back, 64 * KIB) < 0 ||
		    memcmp(back, src, 64 * KIB) != 0);
	/* random: not kept */
	fill_random(src, 64 * KIB, 2);
	assert_int_equal(cs_comp_chunk(c, 1, src, 64 * KIB, dst), 0);
	/* saves less than 1/16: not kept (1/32 of it compressible) */
	memset(src, 'x', 2 * KIB);
	assert_int_equal(cs_comp_chunk(c, 1, src, 64 * KIB, dst), 0);
	/* the probe: random at the probe slices gives up on a chunk that would
	 * compress (zeros everywhere else: the price of the early abort) */
	memset(src, 0, 64 * KIB);
	for (unsigned i = 0; i < CS_COMP_PROBES; i++)
		fill_random(src + cs_comp_probe_at(64 * KIB, i), CS_COMP_SAMPLE / CS_COMP_PROBES,
			    40 + i);
	assert_int_equal(cs_comp_chunk(c, 1, src, 64 * KIB, dst), 0);
	/* ... while a random first 4 KiB alone does not stop it */
	memset(src, 0, 64 * KIB);
	fill_random(src, CS_COMP_SAMPLE, 3);
	assert_true(cs_comp_chunk(c, 1, src, 64 * KIB, dst) > 0);
	/* tiny chunks are left alone */
	memset(src, 0, 64 * KIB);
	assert_int_equal(cs_comp_chunk(c, 1, src, CS_COMP_MIN_LEN - 1, dst), 0);
	assert_true(cs_comp_chunk(c, 1, src, CS_COMP_MIN_LEN, dst) > 0);
	free(src);
	free(dst);
	free(back);
	ZSTD_freeCCtx(c);
	ZSTD_freeDCtx(dc);
}

/* Compressible objects are stored compressed (index record, stats) and read
 * back exactly, whole and at ragged ranges; incompressible ones raw. */
static void test_pool_zstd_roundtrip_and_stats(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t n = 2 * MIB + 333;
	uint8_t *t = malloc(n), *r = malloc(n), *buf = malloc(n);
	assert_true(t && r && buf);
	fill_text(t, n, 11);
	fill_random(r, n, 12);
	struct cs_mid mt, mr;
	put_object(p, t, n, 100000, &mt);
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(p, &st), 0);
	assert_int_equal(st.unique_bytes, n);
	assert_true(st.stored_bytes < n / 2);
	put_object(p, r, n, 100000, &mr);
	struct cs_stats st2;
	assert_int_equal(cs_pool_stats(p, &st2), 0);
	assert_int_equal(st2.unique_bytes, 2 * n);
	assert_int_equal(st2.stored_bytes - st.stored_bytes, n);

	size_t first = cs_cdc_cut(&g_cdc, t, n);
	struct cs_chunk_rec cr;
	assert_int_equal(chunk_rec(p, t, first, &cr), 0);
	assert_int_equal(cr.compression, CS_COMP_ZSTD);
	assert_int_equal(cr.raw_len, first);
	assert_true(cr.stored_len < first / 2);
	first = cs_cdc_cut(&g_cdc, r, n);
	assert_int_equal(chunk_rec(p, r, first, &cr), 0);
	assert_int_equal(cr.compression, CS_COMP_NONE);
	assert_int_equal(cr.stored_len, first);

	check_object(p, &mt, t, n, 4093);
	check_object(p, &mr, r, n, MIB);
	/* ranged reads, backwards so nothing is served from the window in order */
	struct cs_reader *rd;
	assert_int_equal(cs_reader_open(p, &mt, &rd), 0);
	uint64_t x = 99;
	for (int i = 0; i < 200; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		size_t off = (size_t)(x >> 20) % n, len = (size_t)(x >> 50) % (100 * KIB) + 1;
		if (len > n - off)
			len = n - off;
		assert_int_equal(cs_reader_read(rd, off, buf, len), (long)len);
		assert_memory_equal(buf, t + off, len);
	}
	cs_reader_free(rd);
	cs_pool_close(p);
	/* after a restart too */
	p = open_pool(NULL);
	check_object(p, &mt, t, n, MIB);
	cs_pool_close(p);
	free(t);
	free(r);
	free(buf);
}

static void test_pool_no_compress_option(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.no_compress = true};
	struct cs_pool *p = open_pool(&o);
	size_t n = MIB;
	uint8_t *t = malloc(n);
	assert_non_null(t);
	fill_text(t, n, 13);
	struct cs_mid m;
	put_object(p, t, n, n, &m);
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(p, &st), 0);
	assert_int_equal(st.stored_bytes, n);
	cs_pool_close(p);
	/* the same pool compresses again when allowed; both read back */
	p = open_pool(NULL);
	struct cs_mid m2;
	fill_text(t, n, 14);
	put_object(p, t, n, n, &m2);
	assert_int_equal(cs_pool_stats(p, &st), 0);
	assert_true(st.stored_bytes < n + n / 2);
	check_object(p, &m2, t, n, 65536);
	fill_text(t, n, 13);
	check_object(p, &m, t, n, 65536);
	cs_pool_close(p);
	free(t);
}

/* A corrupt compressed payload on the primary copy is caught by its CRC
 * before zstd sees it, and the replica serves the read. */
static void test_pool_zstd_corrupt_copy_falls_back(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t n = 256 * KIB;
	uint8_t *t = malloc(n);
	assert_non_null(t);
	fill_text(t, n, 15);
	struct cs_mid m;
	put_object(p, t, n, n, &m);
	size_t first = cs_cdc_cut(&g_cdc, t, n);
	struct cs_chunk_rec cr;
	assert_int_equal(chunk_rec(p, t, first, &cr), 0);
	assert_int_equal(cr.compression, CS_COMP_ZSTD);
	/* find the primary copy: stripe record -> device -> unit file */
	uint8_t sk[12];
	cs_key_stripe(sk, cs_stripe_part(p, cr.stripe_id), cr.stripe_id);
	struct meta_txn *tx;
	const void *v;
	size_t vl;
	struct cs_stripe_rec sr;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &tx), 0);
	assert_int_equal(meta_get(tx, META_T_STRIPES, sk, sizeof(sk), &v, &vl), 0);
	memcpy(&sr, v, sizeof(sr));
	meta_txn_abort(tx);
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	assert_int_equal(cs_unit_path(p, sr.devs[cr.unit], cr.stripe_id,
				      cs_stripe_part(p, cr.stripe_id), cr.unit, dir, sizeof(dir),
				      path, sizeof(path)),
			 0);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	off_t at = CS_UNIT_HDR_SIZE + cr.offset + sizeof(struct cs_chunk_hdr) + cr.stored_len / 2;
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0xff;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
	struct cs_stats st;
	check_object(p, &m, t, n, n);
	assert_int_equal(cs_pool_stats(p, &st), 0);
	assert_true(st.read_fallbacks >= 1);
	cs_pool_close(p);
	free(t);
}

/* The primary copy of a unit cut short: the merged read of its chunks comes
 * back short, and every chunk in it is read from a replica instead. */
static void test_pool_merged_read_truncated_unit_falls_back(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.workers = 1};
	struct cs_pool *p = open_pool(&o);
	size_t n = 3 * MIB / 4;
	uint8_t *d = malloc(n);
	assert_non_null(d);
	fill_random(d, n, 31);
	struct cs_mid m;
	put_object(p, d, n, n, &m);
	size_t first = cs_cdc_cut(&g_cdc, d, n);
	struct cs_chunk_rec cr;
	assert_int_equal(chunk_rec(p, d, first, &cr), 0);
	uint8_t sk[12];
	cs_key_stripe(sk, cs_stripe_part(p, cr.stripe_id), cr.stripe_id);
	struct meta_txn *tx;
	const void *v;
	size_t vl;
	struct cs_stripe_rec sr;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &tx), 0);
	assert_int_equal(meta_get(tx, META_T_STRIPES, sk, sizeof(sk), &v, &vl), 0);
	memcpy(&sr, v, sizeof(sr));
	meta_txn_abort(tx);
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	assert_int_equal(cs_unit_path(p, sr.devs[cr.unit], cr.stripe_id,
				      cs_stripe_part(p, cr.stripe_id), cr.unit, dir, sizeof(dir),
				      path, sizeof(path)),
			 0);
	assert_int_equal(truncate(path, CS_UNIT_HDR_SIZE + n / 2), 0);
	struct cs_stats st;
	check_object(p, &m, d, n, MIB);
	assert_int_equal(cs_pool_stats(p, &st), 0);
	assert_true(st.read_fallbacks >= 10); /* every chunk past the cut */
	check_object(p, &m, d, n, 5000);
	cs_pool_close(p);
	free(d);
}

/* ---- the dedup filter ---- */

static void wait_filter(struct cs_pool *p, uint64_t builds)
{
	for (int i = 0; i < 2000; i++) {
		if (cs_bloom_ready(p) && atomic_load(&p->bloom_builds) >= builds)
			return;
		usleep(5000);
	}
	fail_msg("dedup filter not built");
}

/* New data pays no index read; repeated data reads the index and dedups. */
static void test_bloom_new_data_skips_index(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	wait_filter(p, 1);
	size_t n = 4 * MIB;
	uint8_t *d = malloc(n);
	assert_non_null(d);
	fill_random(d, n, 21);
	struct cs_mid a, b;
	struct cs_stats s0, s1, s2;
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	put_object(p, d, n, MIB, &a);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	uint64_t chunks = s1.chunks;
	assert_true(chunks > 100);
	assert_true(s1.dedup_filter_skips - s0.dedup_filter_skips + 2 >= chunks);
	assert_true(s1.dedup_index_lookups - s0.dedup_index_lookups <= 2);
	put_object(p, d, n, MIB, &b);
	assert_int_equal(cs_pool_stats(p, &s2), 0);
	assert_int_equal(s2.chunks, chunks);
	assert_int_equal(s2.unique_bytes, s1.unique_bytes);
	assert_int_equal(s2.dedup_index_lookups - s1.dedup_index_lookups, chunks);
	assert_int_equal(s2.dedup_filter_false, s1.dedup_filter_false);
	check_object(p, &b, d, n, MIB);
	cs_pool_close(p);
	free(d);
}

/* At open the filter is built from the index: old chunks still dedup. */
static void test_bloom_built_from_index_at_open(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool(NULL);
	size_t n = 2 * MIB;
	uint8_t *d = malloc(n);
	assert_non_null(d);
	fill_random(d, n, 22);
	struct cs_mid a, b;
	put_object(p, d, n, MIB, &a);
	struct cs_stats s0, s1;
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	cs_pool_close(p);
	p = open_pool(NULL);
	wait_filter(p, 1);
	put_object(p, d, n, MIB, &b);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	assert_int_equal(s1.unique_bytes, s0.unique_bytes);
	assert_int_equal(s1.chunks, s0.chunks);
	assert_int_equal(s1.dedup_index_lookups, s0.chunks);
	assert_int_equal(s1.dedup_filter_skips, 0);
	cs_pool_close(p);
	free(d);
}

/* A filter sized for 64 chunks fills up, is rebuilt bigger from the index
 * while writes go on, and never forgets a chunk. */
static void test_bloom_rebuilt_when_full(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.bloom_entries = 64};
	struct cs_pool *p = open_pool(&o);
	wait_filter(p, 1);
	size_t n = 2 * MIB, nobj = 4;
	uint8_t *d = malloc(n * nobj);
	assert_non_null(d);
	fill_random(d, n * nobj, 23);
	struct cs_mid m[8];
	for (size_t i = 0; i < nobj; i++)
		put_object(p, d + i * n, n, MIB, &m[i]);
	wait_filter(p, 2);
	struct cs_stats s0, s1;
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	assert_true(s0.chunks > 4 * 64);
	/* every chunk written before, during or after the rebuild is found */
	for (size_t i = 0; i < nobj; i++)
		put_object(p, d + i * n, n, MIB, &m[nobj + i]);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	assert_int_equal(s1.chunks, s0.chunks);
	assert_int_equal(s1.unique_bytes, s0.unique_bytes);
	assert_int_equal(s1.dedup_index_lookups - s0.dedup_index_lookups, s0.chunks);
	for (size_t i = 0; i < 2 * nobj; i++)
		check_object(p, &m[i], d + (i % nobj) * n, n, MIB);
	cs_pool_close(p);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cdc_init_rejects_bad_bounds),
	    cmocka_unit_test(test_cdc_pinned_table_and_boundaries),
	    cmocka_unit_test(test_cdc_bounds_respected_and_mean_near_avg),
	    cmocka_unit_test(test_cdc_streaming_equals_one_shot),
	    cmocka_unit_test(test_cdc_shift_resistance),
	};
	log_set_level(LOG_WARN);
	int rc = cmocka_run_group_tests(tests, cdc_setup, NULL);
	const struct CMUnitTest pool_tests[] = {
	    cmocka_unit_test_setup_teardown(test_pool_default_fastcdc_roundtrip, pool_setup,
					    pool_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_fastcdc_dedups_shifted_data, pool_setup,
					    pool_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_chunking_options, pool_setup, pool_teardown),
	    cmocka_unit_test(test_comp_policy),
	    cmocka_unit_test_setup_teardown(test_pool_zstd_roundtrip_and_stats, pool_setup,
					    pool_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_no_compress_option, pool_setup,
					    pool_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_zstd_corrupt_copy_falls_back, pool_setup,
					    pool_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_merged_read_truncated_unit_falls_back,
					    pool_setup, pool_teardown),
	    cmocka_unit_test_setup_teardown(test_bloom_new_data_skips_index, pool_setup,
					    pool_teardown),
	    cmocka_unit_test_setup_teardown(test_bloom_built_from_index_at_open, pool_setup,
					    pool_teardown),
	    cmocka_unit_test_setup_teardown(test_bloom_rebuilt_when_full, pool_setup,
					    pool_teardown),
	};
	return rc | cmocka_run_group_tests_name("pools", pool_tests, cdc_setup, NULL);
}
