/* tests/unit/cs_test.h - helpers the chunk store's unit tests share: a
 * scratch directory per test and reproducible pseudo-random bytes.
 * Header-only; each test program includes it once. */
#ifndef CAIRN_TESTS_CS_TEST_H
#define CAIRN_TESTS_CS_TEST_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline int cs_test_rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(p);
}

/* Removes a tree (files first). */
static inline void rm_rf(const char *p)
{
	nftw(p, cs_test_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Makes a fresh /tmp/cairn-TAG-XXXXXX in dir; 0 or -1. */
static inline int cs_test_tmpdir(char *dir, size_t len, const char *tag)
{
	snprintf(dir, len, "/tmp/cairn-%s-XXXXXX", tag);
	return mkdtemp(dir) ? 0 : -1;
}

/* n bytes of xorshift output from seed: the same bytes on every run. */
static inline void fill_random(uint8_t *b, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)(x >> 24);
	}
}

#endif
