/* bench/dedup/dedup.c - offline dedup and compression figures for a set of
 * files (VM images), chunked exactly as a pool would (chunkstore/cs_cdc.c,
 * chunkstore/cs_comp.c).
 *
 * usage: dedup FILE...
 * For each chunking (fixed 4 KiB, FastCDC 16 KiB [4K, 64K] = the pool
 * default, FastCDC 64 KiB [16K, 256K], fixed 64 KiB) over the files in
 * order, as one dedup domain: all-zero chunks are dropped (they cost no
 * data), the rest deduplicated by SHA-256. Reports unique bytes as % of the
 * non-zero bytes (non-zero 4 KiB blocks, the same denominator for every
 * chunking), per-chunk zstd of the unique chunks (level 1 with the pool's
 * early-abort policy; level 1 on every chunk; level 3 with the policy = what
 * a pool stores by default, CS_ZSTD_LEVEL), chunk counts and the metadata
 * they cost (index entry 36 B key + 40 B value per unique chunk, 40 B
 * manifest entry per chunk; LMDB page slack not included: cs_ingest measures
 * the real thing).
 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "chunkstore/cs_cdc.h"
#include "chunkstore/cs_comp.h"

struct file {
	const uint8_t *p;
	size_t n;
};

struct fpset {
	uint8_t (*fp)[32];
	size_t cap, n;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fpset_grow(struct fpset *s);

/* Returns 1 if fp was new (and adds it), 0 if present. */
static int fpset_add(struct fpset *s, const uint8_t fp[32])
{
	if ((s->n + 1) * 2 > s->cap && fpset_grow(s) < 0) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	uint64_t h;
	memcpy(&h, fp, 8);
	static const uint8_t zero[32];
	for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (!memcmp(s->fp[i], zero, 32)) {
			memcpy(s->fp[i], fp, 32);
			s->n++;
			return 1;
		}
		if (!memcmp(s->fp[i], fp, 32))
			return 0;
	}
}

static int fpset_grow(struct fpset *s)
{
	struct fpset ns = {.cap = s->cap ? s->cap * 2 : 1 << 20};
	ns.fp = calloc(ns.cap, 32);
	if (!ns.fp)
		return -1;
	static const uint8_t zero[32];
	for (size_t i = 0; i < s->cap; i++)
		if (memcmp(s->fp[i], zero, 32))
			fpset_add(&ns, s->fp[i]);
	free(s->fp);
	*s = ns;
	return 0;
}

static bool is_zero(const uint8_t *p, size_t n)
{
	static const uint8_t z[4096];
	while (n >= sizeof(z)) {
		if (memcmp(p, z, sizeof(z)))
			return false;
		p += sizeof(z), n -= sizeof(z);
	}
	return !memcmp(p, z, n);
}

struct cfg {
	const char *name;
	int cdc; /* 0: fixed */
	uint32_t size, min, max;
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE...\n", argv[0]);
		return 2;
	}
	size_t nf = (size_t)argc - 1, logical = 0, nonzero4k = 0;
	struct file *f = calloc(nf, sizeof(*f));
	for (size_t i = 0; i < nf; i++) {
		int fd = open(argv[i + 1], O_RDONLY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			perror(argv[i + 1]);
			return 1;
		}
		f[i].n = (size_t)st.st_size;
		f[i].p = mmap(NULL, f[i].n, PROT_READ, MAP_PRIVATE, fd, 0);
		if (f[i].p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		madvise((void *)f[i].p, f[i].n, MADV_SEQUENTIAL);
		close(fd);
		logical += f[i].n;
		for (size_t o = 0; o < f[i].n; o += 4096) {
			size_t l = f[i].n - o < 4096 ? f[i].n - o : 4096;
			if (!is_zero(f[i].p + o, l))
				nonzero4k += l;
		}
	}
	printf("files %zu, logical %.1f MiB, non-zero (4 KiB blocks) %.1f MiB (%.1f%%)\n", nf,
	       logical / 1048576.0, nonzero4k / 1048576.0, 100.0 * nonzero4k / logical);

	static const struct cfg cfgs[] = {
	    {"fixed 4K", 0, 4096, 0, 0},
	    {"cdc 16K [4K,64K] (default)", 1, 16384, 4096, 65536},
	    {"cdc 64K [16K,256K]", 1, 65536, 16384, 262144},
	    {"fixed 64K", 0, 65536, 0, 0},
	};
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint8_t *zbuf = malloc(262144);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	printf("| chunking | chunks | zero chunks | unique chunks | mean unique | unique %% of "
	       "non-zero | zstd-1 pool policy | zstd-1 every chunk | zstd-3 pool policy | "
	       "metadata | seconds |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
	for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
		const struct cfg *g = &cfgs[c];
		struct cs_cdc cdc;
		if (g->cdc && cs_cdc_init(&cdc, g->min, g->size, g->max) < 0)
			return 1;
		struct fpset set = {0};
		size_t chunks = 0, zchunks = 0, ubytes = 0, z1 = 0, z1all = 0, z3 = 0;
		double t0 = now();
		for (size_t i = 0; i < nf; i++) {
			for (size_t o = 0; o < f[i].n;) {
				const uint8_t *p = f[i].p + o;
				size_t l = g->cdc ? cs_cdc_cut(&cdc, p, f[i].n - o)
						  : (f[i].n - o < g->size ? f[i].n - o : g->size);
				o += l;
				chunks++;
				if (is_zero(p, l)) {
					zchunks++;
					continue;
				}
				uint8_t fp[32];
				unsigned fl;
				EVP_DigestInit_ex(md, EVP_sha256(), NULL);
				EVP_DigestUpdate(md, p, l);
				EVP_DigestFinal_ex(md, fp, &fl);
				if (!fpset_add(&set, fp))
					continue;
				ubytes += l;
				size_t z = cs_comp_chunk(cc, 1, p, l, zbuf);
				z1 += z ? z : l;
				ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 1);
				size_t a = ZSTD_compress2(cc, zbuf, 262144, p, l);
				z1all += !ZSTD_isError(a) && a < l ? a : l;
				z = cs_comp_chunk(cc, 3, p, l, zbuf);
				z3 += z ? z : l;
			}
		}
		double t = now() - t0;
		size_t meta = set.n * (36 + 40) + chunks * 40;
		printf("| %s | %zu | %zu | %zu | %.0f B | %.1f%% (%.0f MiB) | %.1f%% (%.0f MiB) | "
		       "%.1f%% (%.0f MiB) | %.1f%% (%.0f MiB) | %.1f MiB (%.2f%% of unique zstd-1) "
		       "| %.0f |\n",
		       g->name, chunks, zchunks, set.n, set.n ? (double)ubytes / set.n : 0,
		       100.0 * ubytes / nonzero4k, ubytes / 1048576.0, 100.0 * z1 / nonzero4k,
		       z1 / 1048576.0, 100.0 * z1all / nonzero4k, z1all / 1048576.0,
		       100.0 * z3 / nonzero4k, z3 / 1048576.0, meta / 1048576.0,
		       100.0 * meta / (double)z1, t);
		/* for bench/datapath.sh; "chosen": the pool's default chunking */
		printf(
		    "RESULT {\"chunking\":\"%s\",\"chunks\":%zu,\"unique_bytes\":%zu,"
		    "\"zstd_bytes\":%zu,\"meta_bytes\":%zu,\"nonzero_bytes\":%zu,\"chosen\":%s}\n",
		    g->name, chunks, ubytes, z3, meta, (size_t)nonzero4k,
		    g->cdc && g->size == 16384 ? "true" : "false");
		fflush(stdout);
		free(set.fp);
	}
	ZSTD_freeCCtx(cc);
	EVP_MD_CTX_free(md);
	free(zbuf);
	return 0;
}
