/* bench/kernels.c - per-byte CPU kernels of the cairn PUT path, one core, GiB/s.
 *
 * Measures MD5 and SHA-256 (OpenSSL EVP, so SHA-NI when the CPU has it), CRC32C (ISA-L
 * crc32_iscsi), zero detection (ISA-L isal_zero_detect), memcpy, FastCDC (the pool's own
 * chunkstore/cs_cdc.c, 16 KiB average), zstd as the workers run it (cs_comp.c), RS 4+2 parity
 * (ISA-L ec_encode_data), and the combinations the PUT path runs:
 *   serial stage, per stream (must see the bytes in order): MD5 for the ETag and FastCDC
 *     boundaries, plus the SigV4 payload SHA-256 when the client signs the body;
 *   total per-byte work: the serial stage + fingerprint SHA-256 + zstd + parity + CRC32C.
 * With 2 cores (--cores; the "half") the workers split the parallel part, so the "CPU
 * limit" for one 1 GiB PUT is 1 / max(t_serial, t_total / ncores)    (t = seconds per byte) i.e.
 * the stream is bound by whichever is slower: its serial stage on one core, or all its per-byte
 * work spread over every core. Printed in MiB/s for both payload modes.
 *
 * Each kernel runs over a 64 MiB random buffer in 1 MiB pieces (the size a PUT hands over)
 * for at least --seconds (default 0.3), in 5 rounds over all kernels; each kernel's best
 * round is reported, since on a shared machine other processes can only slow a run down.
 * Output: a table on stderr and one line `RESULT {json}` on stdout.
 */
#include <isa-l/crc.h>
#include <isa-l/erasure_code.h>
#include <isa-l/mem_routines.h>
#include <zstd.h>

#include "chunkstore/cs_cdc.h"
#include "chunkstore/cs_comp.h"
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUF_LEN (64u << 20)
#define PIECE (1u << 20)
#define RUNS 5

static unsigned char *g_buf, *g_dst, *g_zero;
static volatile uint64_t g_sink; /* keeps results alive so nothing is optimised away */
static EVP_MD_CTX *g_md5, *g_sha;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void digest_piece(EVP_MD_CTX *ctx, const unsigned char *p, size_t n)
{
	if (EVP_DigestUpdate(ctx, p, n) != 1) {
		fprintf(stderr, "kernels: EVP_DigestUpdate failed\n");
		exit(1);
	}
}

/* Streaming digests (one context over the whole buffer, like one PUT stream). */
static void k_md5(const unsigned char *p, size_t n)
{
	digest_piece(g_md5, p, n);
}

static void k_sha256(const unsigned char *p, size_t n)
{
	digest_piece(g_sha, p, n);
}

static void k_crc32c(const unsigned char *p, size_t n)
{
	g_sink += crc32_iscsi((unsigned char *)p, (int)n, 0);
}

/* Worst case for the zero check: an all-zero chunk must be scanned to its end (random data
 * stops at the first byte), so it runs over a zeroed piece of the same size. */
static void k_zero(const unsigned char *p, size_t n)
{
	(void)p;
	g_sink += (uint64_t)isal_zero_detect(g_zero, n);
}

static void k_memcpy(const unsigned char *p, size_t n)
{
	memcpy(g_dst, p, n);
	g_sink += g_dst[n - 1];
}

/* Fingerprint: a fresh SHA-256 per chunk (here per 1 MiB piece). */
static void k_fp(const unsigned char *p, size_t n)
{
	unsigned char md[32];
	unsigned int len;
	if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1)
		exit(1);
	g_sink += md[0];
}

/* zstd as the pool's workers run it (chunkstore/cs_comp.c: CS_ZSTD_LEVEL with the early abort)
 * over 16 KiB chunks. The bench data does not compress, as in the PUT benchmark, so this is the
 * cost of finding that out before keeping the raw bytes. */
#define ZCHUNK (16u << 10)
static ZSTD_CCtx *g_zctx;
static unsigned char *g_zdst;
static void k_zstd(const unsigned char *p, size_t n)
{
	for (size_t off = 0; off < n; off += ZCHUNK)
		g_sink += cs_comp_chunk(g_zctx, CS_ZSTD_LEVEL, p + off, ZCHUNK, g_zdst);
}

/* Reed-Solomon 4+2 parity (ISA-L), per data byte: a 1 MiB piece is 4 units of 256 KiB. */
#define EC_K 4
#define EC_M 2
static unsigned char g_ec_tables[32 * EC_K * EC_M];
static unsigned char *g_parity[EC_M];
static void k_ec(const unsigned char *p, size_t n)
{
	unsigned char *data[EC_K];
	size_t unit = n / EC_K;
	for (int i = 0; i < EC_K; i++)
		data[i] = (unsigned char *)p + (size_t)i * unit;
	ec_encode_data((int)unit, EC_K, EC_M, g_ec_tables, data, g_parity);
	g_sink += g_parity[0][0];
}

/* FastCDC boundaries with the pool's default sizes (chunkstore/cs_cdc.c). */
static struct cs_cdc g_cdc;
static void k_cdc(const unsigned char *p, size_t n)
{
	for (size_t off = 0; off < n;)
		off += cs_cdc_cut(&g_cdc, p + off, n - off);
	g_sink += n;
}

static void k_serial_unsigned(const unsigned char *p, size_t n)
{
	k_md5(p, n);
	k_cdc(p, n);
}

static void k_serial_signed(const unsigned char *p, size_t n)
{
	k_md5(p, n);
	k_sha256(p, n);
	k_cdc(p, n);
}

static void k_total_unsigned(const unsigned char *p, size_t n)
{
	k_md5(p, n);
	k_cdc(p, n);
	k_fp(p, n);
	k_zstd(p, n);
	k_ec(p, n);
	k_crc32c(p, n);
}

static void k_total_signed(const unsigned char *p, size_t n)
{
	k_md5(p, n);
	k_sha256(p, n);
	k_cdc(p, n);
	k_fp(p, n);
	k_zstd(p, n);
	k_ec(p, n);
	k_crc32c(p, n);
}

struct kernel {
	const char *name;
	void (*fn)(const unsigned char *, size_t);
	double gib_s;
};

static double kget(const struct kernel *k, size_t nk, const char *name)
{
	for (size_t i = 0; i < nk; i++)
		if (strcmp(k[i].name, name) == 0)
			return k[i].gib_s;
	return 1e-9;
}

/* One timed run of at least min_s seconds; returns GiB/s. */
static double measure(void (*fn)(const unsigned char *, size_t), double min_s)
{
	uint64_t bytes = 0;
	if (EVP_DigestInit_ex(g_md5, EVP_md5(), NULL) != 1 ||
	    EVP_DigestInit_ex(g_sha, EVP_sha256(), NULL) != 1)
		exit(1);
	double t0 = now_s(), t;
	do {
		for (size_t off = 0; off < BUF_LEN; off += PIECE)
			fn(g_buf + off, PIECE);
		bytes += BUF_LEN;
		t = now_s() - t0;
	} while (t < min_s);
	return (double)bytes / t / (1024.0 * 1024.0 * 1024.0);
}

int main(int argc, char **argv)
{
	double min_s = 0.3;
	long ncores = 2; /* the issue defines the limit with "half of the total" */
	struct kernel k[] = {
	    {"md5", k_md5, 0},
	    {"sha256", k_sha256, 0},
	    {"crc32c", k_crc32c, 0},
	    {"zero_check", k_zero, 0},
	    {"memcpy", k_memcpy, 0},
	    {"fastcdc", k_cdc, 0},
	    {"zstd", k_zstd, 0},
	    {"ec_4_2", k_ec, 0},
	    {"serial_unsigned", k_serial_unsigned, 0},
	    {"serial_signed", k_serial_signed, 0},
	    {"total_unsigned", k_total_unsigned, 0},
	    {"total_signed", k_total_signed, 0},
	};
	const size_t nk = sizeof(k) / sizeof(k[0]);

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			min_s = strtod(argv[++i], NULL);
		} else if (strcmp(argv[i], "--cores") == 0 && i + 1 < argc) {
			ncores = strtol(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: kernels [--seconds S] [--cores N]\n");
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	if (ncores < 1)
		ncores = 1;
	g_buf = malloc(BUF_LEN);
	g_dst = malloc(PIECE);
	g_zero = calloc(1, PIECE);
	if (cs_cdc_init(&g_cdc, 4096, 16384, 65536) != 0)
		return 1;
	g_zctx = ZSTD_createCCtx();
	g_zdst = malloc(ZSTD_compressBound(ZCHUNK));
	for (int i = 0; i < EC_M; i++)
		g_parity[i] = malloc(PIECE / EC_K);
	{
		unsigned char mat[(EC_K + EC_M) * EC_K];
		gf_gen_cauchy1_matrix(mat, EC_K + EC_M, EC_K);
		ec_init_tables(EC_K, EC_M, mat + EC_K * EC_K, g_ec_tables);
	}
	g_md5 = EVP_MD_CTX_new();
	g_sha = EVP_MD_CTX_new();
	if (!g_buf || !g_dst || !g_zero || !g_md5 || !g_sha) {
		fprintf(stderr, "kernels: out of memory\n");
		return 1;
	}
	/* Random bytes (not zeroes: zero_check must scan the whole piece). */
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < BUF_LEN; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(g_buf + i, &x, 8);
	}
	/* Rounds go over every kernel in turn, so a burst of other load hits all kernels alike
	 * instead of spoiling one; each keeps its best round. */
	for (int round = 0; round < RUNS; round++)
		for (size_t i = 0; i < nk; i++) {
			double g = measure(k[i].fn, min_s);
			if (g > k[i].gib_s)
				k[i].gib_s = g;
		}
	for (size_t i = 0; i < nk; i++)
		fprintf(stderr, "%-16s %7.2f GiB/s\n", k[i].name, k[i].gib_s);

	/* seconds per GiB of each composite, then the limit of one stream */
	double ser_u = 1.0 / kget(k, nk, "serial_unsigned"),
	       ser_s = 1.0 / kget(k, nk, "serial_signed");
	double tot_u = 1.0 / kget(k, nk, "total_unsigned"),
	       tot_s = 1.0 / kget(k, nk, "total_signed");
	double lim_u = 1024.0 / (ser_u > tot_u / (double)ncores ? ser_u : tot_u / (double)ncores);
	double lim_s = 1024.0 / (ser_s > tot_s / (double)ncores ? ser_s : tot_s / (double)ncores);
	fprintf(
	    stderr,
	    "CPU limit of one 1 GiB PUT on %ld cores: %.0f MiB/s (UNSIGNED-PAYLOAD: serial = MD5 + "
	    "FastCDC; "
	    "total = serial + fingerprint SHA-256 + zstd + RS 4+2 + CRC32C), %.0f MiB/s (signed "
	    "payload: serial = "
	    "MD5 + SHA-256 + FastCDC; total adds the payload SHA-256)\n",
	    ncores, lim_u, lim_s);
	printf("RESULT {\"cores\":%ld", ncores);
	for (size_t i = 0; i < nk; i++)
		printf(",\"%s_gib_s\":%.3f", k[i].name, k[i].gib_s);
	printf(",\"cpu_limit_unsigned_mib_s\":%.1f,\"cpu_limit_signed_mib_s\":%.1f}\n", lim_u,
	       lim_s);
	EVP_MD_CTX_free(g_md5);
	EVP_MD_CTX_free(g_sha);
	free(g_buf);
	free(g_zdst);
	for (int i = 0; i < EC_M; i++)
		free(g_parity[i]);
	ZSTD_freeCCtx(g_zctx);
	free(g_dst);
	free(g_zero);
	return 0;
}
