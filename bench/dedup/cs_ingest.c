/* bench/dedup/cs_ingest.c - uploads files into a chunk store pool and reports
 * what the pool stores for them: the in-pool counterpart of bench/dedup.
 *
 * usage: [CS_BENCH_CHUNKING=fixed] [CS_ZSTD_LEVEL=n] cs_ingest DIR FILE...
 * Each file becomes one manifest (written in 1 MiB calls, committed). Then
 * prints logical, unique (raw) and stored (compressed) bytes, the bytes in
 * unit files before parity (physical / copies, records and their headers,
 * padding, unit headers), the metadata (LMDB pages in use), and their sum
 * against the non-zero bytes of the input.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/chunkstore.h"
#include "chunkstore/cs_comp.h"
#include "core/log.h"
#include "meta/meta.h"

static int create_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s DIR FILE...\n", argv[0]);
		return 2;
	}
	log_set_level(LOG_WARN);
	struct cs_pool_opts o = {.data_dir = argv[1]};
	const char *ch = getenv("CS_BENCH_CHUNKING");
	if (ch && !strcmp(ch, "fixed"))
		o.chunking = CS_CHUNK_FIXED;
	if (getenv("CS_ZSTD_LEVEL"))
		o.zstd_level = atoi(getenv("CS_ZSTD_LEVEL"));
	struct cs_pool *p;
	if (cs_pool_open(&o, &p) < 0)
		return 1;
	size_t bl = 1 << 20, nonzero = 0;
	uint8_t *b = malloc(bl);
	static const uint8_t zero[4096];
	double t0 = now();
	for (int i = 2; i < argc; i++) {
		int fd = open(argv[i], O_RDONLY);
		struct cs_writer *w;
		struct cs_mid mid;
		if (fd < 0 || cs_writer_open(p, &w) < 0)
			return 1;
		ssize_t n;
		while ((n = read(fd, b, bl)) > 0) {
			for (ssize_t o2 = 0; o2 < n; o2 += 4096) {
				size_t l = (size_t)(n - o2) < 4096 ? (size_t)(n - o2) : 4096;
				if (memcmp(b + o2, zero, l))
					nonzero += l;
			}
			if (cs_writer_write(w, b, (size_t)n) < 0)
				return 1;
		}
		close(fd);
		if (n < 0 || cs_writer_finish(w) < 0 || cs_commit(p, w, create_fn, &mid) < 0)
			return 1;
		cs_writer_free(w);
	}
	double t = now() - t0;
	struct cs_stats s;
	uint64_t meta_used = 0, map = 0;
	if (cs_pool_stats(p, &s) < 0 || meta_live_bytes(cs_pool_meta(p), &meta_used, &map) < 0)
		return 1;
	const struct cs_pool_rec *r = cs_pool_format(p);
	uint64_t data = s.physical_bytes / (1u + r->m);
	printf("pool: %s %u [%u, %u], zstd level %d; %d files in %.1f s (%.0f MiB/s)\n",
	       r->chunking == CS_CHUNK_FASTCDC ? "fastcdc" : "fixed", r->chunk_size, r->chunk_min,
	       r->chunk_max, o.zstd_level ? o.zstd_level : CS_ZSTD_LEVEL, argc - 2, t,
	       s.logical_bytes / 1048576.0 / t);
	printf("logical %.1f MiB, non-zero %.1f MiB; unique %.1f MiB (%.1f%%), stored %.1f MiB "
	       "(%.1f%%), chunks %llu\n",
	       s.logical_bytes / 1048576.0, nonzero / 1048576.0, s.unique_bytes / 1048576.0,
	       100.0 * s.unique_bytes / nonzero, s.stored_bytes / 1048576.0,
	       100.0 * s.stored_bytes / nonzero, (unsigned long long)s.chunks);
	printf("unit files before parity %.1f MiB + metadata %.1f MiB = %.1f MiB (%.1f%% of "
	       "non-zero); metadata per GiB ingested: %.2f MiB (%.2f%%)\n",
	       data / 1048576.0, meta_used / 1048576.0, (data + meta_used) / 1048576.0,
	       100.0 * (data + meta_used) / nonzero,
	       meta_used / 1048576.0 / (s.logical_bytes / 1073741824.0),
	       100.0 * meta_used / s.logical_bytes);
	printf("dedup filter: %llu skips, %llu index lookups, %llu false positives\n",
	       (unsigned long long)s.dedup_filter_skips, (unsigned long long)s.dedup_index_lookups,
	       (unsigned long long)s.dedup_filter_false);
	cs_pool_close(p);
	free(b);
	return 0;
}
