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

#include "chunkstore/cs_cdc.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static void fill_random(uint8_t *b, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)(x >> 24);
	}
}

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cdc_init_rejects_bad_bounds),
	    cmocka_unit_test(test_cdc_pinned_table_and_boundaries),
	    cmocka_unit_test(test_cdc_bounds_respected_and_mean_near_avg),
	    cmocka_unit_test(test_cdc_streaming_equals_one_shot),
	    cmocka_unit_test(test_cdc_shift_resistance),
	};
	return cmocka_run_group_tests(tests, cdc_setup, NULL);
}
