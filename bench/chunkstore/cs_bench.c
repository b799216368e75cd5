/* bench/chunkstore/cs_bench.c - single-stream write and read throughput of
 * the chunk store on a local directory.
 *
 * usage: [CS_BENCH_CHUNKING=fixed] cs_bench DIR [MiB] [workers]
 * Writes MiB of unique (non-dedupable, non-zero) data through one writer in
 * 1 MiB calls, commits it, then reads it back sequentially with one reader
 * in 1 MiB calls (O_DIRECT, so not from the page cache) and checks it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "chunkstore/chunkstore.h"
#include "core/log.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static int create_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

/* 1 MiB block number i: random bytes with i stamped in every 4 KiB, so no
 * chunk repeats. */
static void block(uint8_t *b, const uint8_t *rnd, uint64_t i)
{
	memcpy(b, rnd + (i % 16) * 4096, 1 << 20);
	for (size_t o = 0; o < (1 << 20); o += 4096)
		memcpy(b + o, &i, sizeof(i)), memcpy(b + o + 8, &o, sizeof(o));
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [MiB] [workers]\n", argv[0]);
		return 2;
	}
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 1024;
	log_set_level(LOG_WARN);
	struct cs_pool_opts o = {.data_dir = argv[1],
				 .workers = argc > 3 ? (unsigned)atoi(argv[3]) : 0};
	/* CS_BENCH_CHUNKING=fixed: a fixed 64 KiB pool (default: the pool's
	 * default, FastCDC 16 KiB) */
	const char *ch = getenv("CS_BENCH_CHUNKING");
	if (ch && !strcmp(ch, "fixed"))
		o.chunking = CS_CHUNK_FIXED;
	struct cs_pool *p;
	struct cs_writer *w;
	struct cs_reader *r;
	struct cs_mid mid;
	uint8_t *rnd = malloc((1 << 20) + 16 * 4096), *b = malloc(1 << 20), *rb = malloc(1 << 20);
	srand(1);
	for (size_t i = 0; i < (1 << 20) + 16 * 4096; i++)
		rnd[i] = (uint8_t)rand();
	if (cs_pool_open(&o, &p) < 0 || cs_writer_open(p, &w) < 0)
		return 1;
	double c0 = cpu();
	double t0 = now();
	for (uint64_t i = 0; i < mib; i++) {
		block(b, rnd, i);
		if (cs_writer_write(w, b, 1 << 20) < 0)
			return 1;
	}
	if (cs_writer_finish(w) < 0)
		return 1;
	double t1 = now();
	if (cs_commit(p, w, create_fn, &mid) < 0)
		return 1;
	double t2 = now();
	double c2 = cpu();
	cs_writer_free(w);
	if (cs_reader_open(p, &mid, &r) < 0)
		return 1;
	double t3 = now(), c3 = cpu();
	for (uint64_t i = 0; i < mib; i++) {
		if (cs_reader_read(r, i << 20, rb, 1 << 20) != 1 << 20)
			return 1;
		block(b, rnd, i);
		if (memcmp(b, rb, 1 << 20)) {
			fprintf(stderr, "mismatch at MiB %llu\n", (unsigned long long)i);
			return 1;
		}
	}
	double t4 = now(), c4 = cpu();
	/* the generator's own cost, to subtract */
	double g0 = now();
	for (uint64_t i = 0; i < mib; i++)
		block(b, rnd, i);
	double gen = now() - g0;
	cs_reader_free(r);
	struct cs_stats s;
	if (cs_pool_stats(p, &s) < 0)
		return 1;
	printf("write %llu MiB: %.0f MiB/s (finish %.2fs, commit %.3fs; generator %.2fs excluded), "
	       "cpu %.2f s/GiB\n",
	       (unsigned long long)mib, mib / (t1 - t0 - gen + (t2 - t1)), t1 - t0 - gen, t2 - t1,
	       gen, (c2 - c0 - gen) * 1024 / mib);
	printf("read  %llu MiB: %.0f MiB/s (verify memcmp included, generator excluded), cpu %.2f "
	       "s/GiB\n",
	       (unsigned long long)mib, mib / (t4 - t3 - gen), (c4 - c3 - gen) * 1024 / mib);
	printf("stats: unique %llu stored %llu physical %llu chunks %llu stripes %llu\n",
	       (unsigned long long)s.unique_bytes, (unsigned long long)s.stored_bytes,
	       (unsigned long long)s.physical_bytes, (unsigned long long)s.chunks,
	       (unsigned long long)s.stripes);
	cs_pool_close(p);
	free(rnd);
	free(b);
	free(rb);
	return 0;
}
