/* bench/chunker/chunker.c - chunker throughput on random data, one core.
 *
 * usage: chunker [MiB] [rounds]
 * Cuts MiB of random bytes (in memory, so no I/O) with cs_cdc_cut at the
 * pool's default bounds (and at 64 KiB average), and with a plain
 * byte-at-a-time FastCDC loop (same table, same masks, same min) as the
 * reference limit, in the same run. Prints GiB/s (median of rounds) and the
 * mean chunk size; both loops must find the same boundaries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunkstore/cs_cdc.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The textbook FastCDC loop (one byte per step, one branch per byte). */
static size_t plain_cut(const struct cs_cdc *c, const uint8_t *p, size_t n)
{
	if (n <= c->min)
		return n;
	size_t end = n < c->max ? n : c->max;
	size_t normal = c->avg - 1 < end ? c->avg - 1 : end;
	uint64_t h = 0;
	size_t i = c->min - CS_CDC_WINDOW;
	for (; i < c->min - 1; i++)
		h = (h << 1) + c->gear[p[i]];
	for (; i < normal; i++) {
		h = (h << 1) + c->gear[p[i]];
		if (!(h & c->mask_s))
			return i + 1;
	}
	for (; i < end; i++) {
		h = (h << 1) + c->gear[p[i]];
		if (!(h & c->mask_l))
			return i + 1;
	}
	return end;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static uint64_t g_sink;

static double run(const struct cs_cdc *c, const uint8_t *d, size_t n, int plain, int rounds,
		  size_t *nchunks)
{
	double t[64];
	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		size_t off = 0, cnt = 0;
		while (off < n) {
			size_t l = plain ? plain_cut(c, d + off, n - off)
					 : cs_cdc_cut(c, d + off, n - off);
			g_sink += l;
			off += l;
			cnt++;
		}
		t[r] = now() - t0;
		*nchunks = cnt;
	}
	qsort(t, (size_t)rounds, sizeof(t[0]), cmp_d);
	return (double)n / t[rounds / 2] / (1024.0 * 1024 * 1024);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 512;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	if (rounds < 1 || rounds > 64)
		rounds = 5;
	size_t n = mib << 20;
	uint8_t *d = malloc(n);
	if (!d)
		return 1;
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < n; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(d + i, &x, n - i < 8 ? n - i : 8);
	}
	static const uint32_t cfg[][3] = {{4096, 16384, 65536}, {16384, 65536, 262144}};
	int bad = 0;
	for (size_t k = 0; k < sizeof(cfg) / sizeof(cfg[0]); k++) {
		struct cs_cdc c;
		if (cs_cdc_init(&c, cfg[k][0], cfg[k][1], cfg[k][2]) < 0)
			return 1;
		/* same boundaries, or the comparison means nothing */
		for (size_t off = 0; off < n;) {
			size_t a = cs_cdc_cut(&c, d + off, n - off),
			       b = plain_cut(&c, d + off, n - off);
			if (a != b) {
				fprintf(stderr, "boundary mismatch at %zu: %zu vs %zu\n", off, a,
					b);
				bad = 1;
				break;
			}
			off += a;
		}
		size_t nc = 0, np = 0;
		double ref = run(&c, d, n, 1, rounds, &np);
		double got = run(&c, d, n, 0, rounds, &nc);
		printf("cdc min %u avg %u max %u: cs_cdc_cut %.2f GiB/s, plain FastCDC loop %.2f "
		       "GiB/s, ratio %.2f; mean chunk %.0f bytes (%zu chunks)\n",
		       c.min, c.avg, c.max, got, ref, got / ref, (double)n / (double)nc, nc);
		printf("RESULT {\"avg\":%u,\"cdc_gib_s\":%.3f,\"ref_gib_s\":%.3f}\n", c.avg, got,
		       ref);
	}
	free(d);
	return bad;
}
