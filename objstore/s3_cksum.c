/* objstore/s3_cksum.c - S3's flexible checksums (see s3_cksum.h).
 *
 * CRC32 and CRC32C run on ISA-L (tens of GiB/s per core with PCLMUL); the
 * SHAs on OpenSSL's EVP. CRC64NVME would be ISA-L's crc64_rocksoft_refl, but
 * that arrived in ISA-L 2.31 and Debian 12 ships 2.30: until the build can
 * rely on it, it runs here: carry-less multiply folding (PCLMULQDQ) for long
 * inputs, a slice-by-8 table for short ones and CPUs without PCLMULQDQ.
 *
 * All three CRCs are reflected with init and final xor all ones, so
 * crc(A||B) = zeros(crc(A), len(B)) ^ crc(B), where zeros() feeds len(B)
 * zero bytes through the bare register: s3_cksum_combine applies that
 * operator as a GF(2) matrix raised to len(B) by squaring (zlib's
 * crc32_combine method), O(w^2 log n) bit operations, no data read.
 */
#include "objstore/s3_cksum.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <isa-l/crc.h>
#include <openssl/evp.h>

/* ---- CRC64NVME (reflected 0x9a6c9329ac4bc9b5, init and xorout ~0) ---- */

static uint64_t crc64nvme_tab[8][256];
static pthread_once_t crc64nvme_once = PTHREAD_ONCE_INIT;
#if defined(__x86_64__)
static uint64_t crc64nvme_xpow(unsigned n);
static uint64_t crc64nvme_k191, crc64nvme_k127;
static bool crc64nvme_clmul;
#endif

static void crc64nvme_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint64_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x9a6c9329ac4bc9b5ull : c >> 1;
		crc64nvme_tab[0][i] = c;
	}
	for (unsigned i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc64nvme_tab[t][i] = (crc64nvme_tab[t - 1][i] >> 8) ^
					      crc64nvme_tab[0][crc64nvme_tab[t - 1][i] & 0xff];
#if defined(__x86_64__)
	crc64nvme_k191 = crc64nvme_xpow(191);
	crc64nvme_k127 = crc64nvme_xpow(127);
	crc64nvme_clmul = __builtin_cpu_supports("pclmul");
#endif
}

/* One table step: the register after 8 bytes whose xor with the register
 * is w (for a reflected CRC, data and register enter the same way). */
static uint64_t crc64nvme_z8(uint64_t w)
{
	return crc64nvme_tab[7][w & 0xff] ^ crc64nvme_tab[6][(w >> 8) & 0xff] ^
	       crc64nvme_tab[5][(w >> 16) & 0xff] ^ crc64nvme_tab[4][(w >> 24) & 0xff] ^
	       crc64nvme_tab[3][(w >> 32) & 0xff] ^ crc64nvme_tab[2][(w >> 40) & 0xff] ^
	       crc64nvme_tab[1][(w >> 48) & 0xff] ^ crc64nvme_tab[0][w >> 56];
}

#if defined(__x86_64__)
#include <wmmintrin.h>

/* x^n mod P, reflected (bit i is the coefficient of x^(63-i)). */
static uint64_t crc64nvme_xpow(unsigned n)
{
	uint64_t v = 1ull << 63; /* x^0 */
	while (n--)
		v = v & 1 ? (v >> 1) ^ 0x9a6c9329ac4bc9b5ull : v >> 1;
	return v;
}

/* Folding with carry-less multiplies, 16 bytes a step. The accumulator
 * (a0, a1) stands for the polynomial A = a0 x^64 + a1 (reflected words,
 * a0 the earlier bytes) whose register value is A x^64 mod P; a reflected
 * 64x64 carry-less product represents x*U*K, so folding A over the next
 * 128 bits multiplies a0 by x^191 mod P and a1 by x^127 mod P. The last
 * fold leaves D = d0 x^64 + d1, and D mod P is one table step on d0 plus
 * d1. Needs len >= 32; returns the bare register. */
__attribute__((target("pclmul,sse2"))) static uint64_t
crc64nvme_fold(uint64_t reg, const unsigned char *p, size_t len, size_t *used)
{
	const __m128i k = _mm_set_epi64x((long long)crc64nvme_k127, (long long)crc64nvme_k191);
	__m128i acc = _mm_loadu_si128((const __m128i *)p);
	size_t off = 16;

	acc = _mm_xor_si128(acc, _mm_set_epi64x(0, (long long)reg));
	for (; off + 16 <= len; off += 16) {
		__m128i hi = _mm_clmulepi64_si128(acc, k, 0x00); /* a0 * x^191 */
		__m128i lo = _mm_clmulepi64_si128(acc, k, 0x11); /* a1 * x^127 */
		acc = _mm_xor_si128(_mm_xor_si128(hi, lo),
				    _mm_loadu_si128((const __m128i *)(p + off)));
	}
	/* A x^64 = a0 x^128 + a1 x^64: a0 x^128 = x * a0 * (x^127 mod P) */
	__m128i c = _mm_clmulepi64_si128(acc, _mm_set_epi64x(0, (long long)crc64nvme_k127), 0x00);
	uint64_t a1 = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc));
	uint64_t d0 = (uint64_t)_mm_cvtsi128_si64(c) ^ a1;
	uint64_t d1 = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(c, c));
	*used = off;
	return crc64nvme_z8(d0) ^ d1;
}
#endif

/* Same convention as ISA-L's crc64_*_refl: takes and returns the final
 * value (0 to start), inverting inside. */
static uint64_t crc64nvme(uint64_t crc, const unsigned char *p, size_t len)
{
	pthread_once(&crc64nvme_once, crc64nvme_init);
	crc = ~crc;
#if defined(__x86_64__)
	if (crc64nvme_clmul && len >= 64) {
		size_t used = 0;
		crc = crc64nvme_fold(crc, p, len, &used);
		p += used;
		len -= used;
	}
#endif
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8); /* little-endian hosts only (s3_format.h) */
		crc = crc64nvme_z8(crc ^ w);
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc64nvme_tab[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

static const struct {
	const char *name, *header;
	size_t len;
} algos[S3_CK_COUNT] = {
    [S3_CK_NONE] = {NULL, NULL, 0},
    [S3_CK_CRC32] = {"CRC32", "x-amz-checksum-crc32", 4},
    [S3_CK_CRC32C] = {"CRC32C", "x-amz-checksum-crc32c", 4},
    [S3_CK_CRC64NVME] = {"CRC64NVME", "x-amz-checksum-crc64nvme", 8},
    [S3_CK_SHA1] = {"SHA1", "x-amz-checksum-sha1", 20},
    [S3_CK_SHA256] = {"SHA256", "x-amz-checksum-sha256", 32},
};

static bool algo_valid(int a)
{
	return a > S3_CK_NONE && a < S3_CK_COUNT;
}

const char *s3_cksum_name(enum s3_cksum_algo a)
{
	return algo_valid((int)a) ? algos[a].name : NULL;
}

enum s3_cksum_algo s3_cksum_algo_parse(const char *name)
{
	if (!name)
		return S3_CK_NONE;
	for (int a = 1; a < S3_CK_COUNT; a++)
		if (strcasecmp(name, algos[a].name) == 0)
			return (enum s3_cksum_algo)a;
	return S3_CK_NONE;
}

const char *s3_cksum_header(enum s3_cksum_algo a)
{
	return algo_valid((int)a) ? algos[a].header : NULL;
}

size_t s3_cksum_len(enum s3_cksum_algo a)
{
	return algo_valid((int)a) ? algos[a].len : 0;
}

const char *s3_cksum_type_name(enum s3_cksum_type t)
{
	return t == S3_CKT_COMPOSITE ? "COMPOSITE" : "FULL_OBJECT";
}

int s3_cksum_type_parse(const char *s)
{
	if (!s)
		return 0;
	if (strcasecmp(s, "FULL_OBJECT") == 0)
		return S3_CKT_FULL_OBJECT;
	if (strcasecmp(s, "COMPOSITE") == 0)
		return S3_CKT_COMPOSITE;
	return 0;
}

/* ---- streaming ---- */

int s3_cksum_init(struct s3_cksum_ctx *c, enum s3_cksum_algo a)
{
	memset(c, 0, sizeof(*c));
	if (!algo_valid((int)a))
		return CAIRN_EINVAL;
	c->algo = a;
	/* crc32_iscsi takes and returns the bare register (no inversion);
	 * the gzip and rocksoft functions invert inside. */
	c->crc = a == S3_CK_CRC32C ? 0xffffffffu : 0;
	if (a == S3_CK_SHA1 || a == S3_CK_SHA256) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		if (!md)
			return -ENOMEM;
		if (EVP_DigestInit_ex(md, a == S3_CK_SHA1 ? EVP_sha1() : EVP_sha256(), NULL) != 1) {
			EVP_MD_CTX_free(md);
			return -ENOMEM;
		}
		c->md = md;
	}
	return 0;
}

void s3_cksum_update(struct s3_cksum_ctx *c, const void *data, size_t len)
{
	const unsigned char *p = data;

	switch (c->algo) {
	case S3_CK_CRC32:
		c->crc = crc32_gzip_refl((uint32_t)c->crc, p, len);
		break;
	case S3_CK_CRC32C:
		/* crc32_iscsi takes an int length */
		while (len) {
			size_t n = len > (1u << 30) ? (1u << 30) : len;
			c->crc = crc32_iscsi((unsigned char *)p, (int)n, (unsigned)c->crc);
			p += n;
			len -= n;
		}
		break;
	case S3_CK_CRC64NVME:
		c->crc = crc64nvme(c->crc, p, len);
		break;
	case S3_CK_SHA1:
	case S3_CK_SHA256:
		if (c->md && EVP_DigestUpdate(c->md, p, len) != 1) {
			/* cannot happen for a software digest; poison the ctx */
			EVP_MD_CTX_free(c->md);
			c->md = NULL;
		}
		break;
	default:
		break;
	}
}

static void put_be(uint8_t *d, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *d, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | d[i];
	return v;
}

int s3_cksum_final(struct s3_cksum_ctx *c, struct s3_cksum *out)
{
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!algo_valid((int)c->algo))
		return CAIRN_EINVAL;
	out->algo = (uint8_t)c->algo;
	out->type = S3_CKT_FULL_OBJECT;
	out->len = (uint8_t)algos[c->algo].len;
	switch (c->algo) {
	case S3_CK_CRC32:
		put_be(out->d, c->crc, 4);
		break;
	case S3_CK_CRC32C:
		put_be(out->d, (uint32_t)c->crc ^ 0xffffffffu, 4);
		break;
	case S3_CK_CRC64NVME:
		put_be(out->d, c->crc, 8);
		break;
	default: {
		unsigned int n = 0;
		if (!c->md || EVP_DigestFinal_ex(c->md, out->d, &n) != 1 || n != out->len)
			rc = -EIO;
		break;
	}
	}
	s3_cksum_ctx_free(c);
	return rc;
}

void s3_cksum_ctx_free(struct s3_cksum_ctx *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->md);
	c->md = NULL;
}

/* ---- text ---- */

long s3_cksum_b64(const struct s3_cksum *c, char *out, size_t cap)
{
	char tmp[S3_CKSUM_B64_MAX];
	int n;

	if (!algo_valid(c->algo) || c->len != algos[c->algo].len)
		return CAIRN_EINVAL;
	n = EVP_EncodeBlock((unsigned char *)tmp, c->d, c->len);
	if (c->type == S3_CKT_COMPOSITE)
		n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "-%u", (unsigned)c->parts);
	if ((size_t)n + 1 > cap)
		return CAIRN_ETOOBIG;
	memcpy(out, tmp, (size_t)n + 1);
	return n;
}

static int b64val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

int s3_cksum_from_b64(enum s3_cksum_algo a, const char *b64, size_t len, struct s3_cksum *out)
{
	size_t want = s3_cksum_len(a), pad = 0, nout = 0;
	uint8_t buf[S3_CKSUM_MAX + 3];

	memset(out, 0, sizeof(*out));
	if (!want || len != 4 * ((want + 2) / 3))
		return CAIRN_EINVAL;
	/* Strict: the canonical padded form only (EVP_DecodeBlock would
	 * accept whitespace and non-zero pad bits). */
	while (pad < 2 && b64[len - 1 - pad] == '=')
		pad++;
	if (pad != (3 - want % 3) % 3)
		return CAIRN_EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = 0;
		for (size_t j = 0; j < 4; j++) {
			int d = i + j >= len - pad ? 0 : b64val((unsigned char)b64[i + j]);
			if (d < 0)
				return CAIRN_EINVAL;
			v = v << 6 | (uint32_t)d;
		}
		buf[nout++] = (uint8_t)(v >> 16);
		buf[nout++] = (uint8_t)(v >> 8);
		buf[nout++] = (uint8_t)v;
	}
	/* pad bits must be zero */
	for (size_t i = want; i < nout; i++)
		if (buf[i])
			return CAIRN_EINVAL;
	out->algo = (uint8_t)a;
	out->type = S3_CKT_FULL_OBJECT;
	out->len = (uint8_t)want;
	memcpy(out->d, buf, want);
	return 0;
}

bool s3_cksum_equal(const struct s3_cksum *a, const struct s3_cksum *b)
{
	return a->algo == b->algo && a->len == b->len && a->len <= S3_CKSUM_MAX &&
	       memcmp(a->d, b->d, a->len) == 0;
}

/* ---- combine ---- */

/* Reflected polynomials (bit i = coefficient of x^(w-1-i)). */
#define POLY_CRC32 0xedb88320ull
#define POLY_CRC32C 0x82f63b78ull
#define POLY_CRC64NVME 0x9a6c9329ac4bc9b5ull

static uint64_t gf2_times(const uint64_t *mat, uint64_t vec)
{
	uint64_t sum = 0;
	for (int i = 0; vec; i++, vec >>= 1)
		if (vec & 1)
			sum ^= mat[i];
	return sum;
}

static void gf2_square(uint64_t *sq, const uint64_t *mat, int w)
{
	for (int i = 0; i < w; i++)
		sq[i] = gf2_times(mat, mat[i]);
}

/* The operator "shift one zero bit through the register", raised to
 * 8 * len by repeated squaring, applied to crc. */
static uint64_t crc_zeros(uint64_t crc, uint64_t poly, int w, uint64_t len)
{
	uint64_t odd[64], even[64];

	if (len == 0)
		return crc;
	odd[0] = poly; /* one zero bit */
	for (int i = 1; i < w; i++)
		odd[i] = 1ull << (i - 1);
	gf2_square(even, odd, w); /* 2 bits */
	gf2_square(odd, even, w); /* 4 bits */
	/* odd now holds one zero bit raised to 4; each loop squares first, so
	 * the first operator applied is 8 bits = one byte. */
	do {
		gf2_square(even, odd, w);
		if (len & 1)
			crc = gf2_times(even, crc);
		len >>= 1;
		if (!len)
			break;
		gf2_square(odd, even, w);
		if (len & 1)
			crc = gf2_times(odd, crc);
		len >>= 1;
	} while (len);
	return crc;
}

int s3_cksum_combine(const struct s3_cksum *a, const struct s3_cksum *b, uint64_t blen,
		     struct s3_cksum *out)
{
	uint64_t poly, ca, cb;
	int w;

	if (a->algo != b->algo || a->len != b->len)
		return CAIRN_EINVAL;
	switch (a->algo) {
	case S3_CK_CRC32:
		poly = POLY_CRC32, w = 32;
		break;
	case S3_CK_CRC32C:
		poly = POLY_CRC32C, w = 32;
		break;
	case S3_CK_CRC64NVME:
		poly = POLY_CRC64NVME, w = 64;
		break;
	default:
		return CAIRN_EINVAL;
	}
	/* out may be a or b */
	uint8_t algo = a->algo, len = a->len;
	ca = get_be(a->d, len);
	cb = get_be(b->d, len);
	memset(out, 0, sizeof(*out));
	out->algo = algo;
	out->type = S3_CKT_FULL_OBJECT;
	out->len = len;
	put_be(out->d, crc_zeros(ca, poly, w, blen) ^ cb, len);
	return 0;
}

int s3_cksum_composite(const struct s3_cksum *parts, size_t n, struct s3_cksum *out)
{
	struct s3_cksum_ctx c;
	int rc;

	memset(out, 0, sizeof(*out));
	if (n == 0 || n > UINT16_MAX)
		return CAIRN_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (parts[i].algo != parts[0].algo || parts[i].len != s3_cksum_len(parts[0].algo))
			return CAIRN_EINVAL;
	rc = s3_cksum_init(&c, parts[0].algo);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		s3_cksum_update(&c, parts[i].d, parts[i].len);
	rc = s3_cksum_final(&c, out);
	if (rc < 0)
		return rc;
	out->type = S3_CKT_COMPOSITE;
	out->parts = (uint16_t)n;
	return 0;
}

/* ---- record encoding ---- */

size_t s3_cksum_encode(const struct s3_cksum *c, uint8_t *out)
{
	size_t len = s3_cksum_len(c->algo);

	out[0] = c->algo;
	out[1] = c->type;
	out[2] = (uint8_t)(c->parts & 0xff);
	out[3] = (uint8_t)(c->parts >> 8);
	memcpy(out + 4, c->d, len);
	return 4 + len;
}

int s3_cksum_decode(const void *v, size_t vlen, struct s3_cksum *out)
{
	const uint8_t *p = v;

	memset(out, 0, sizeof(*out));
	if (vlen < 4 || !algo_valid(p[0]) || vlen != 4 + s3_cksum_len(p[0]) ||
	    (p[1] != S3_CKT_FULL_OBJECT && p[1] != S3_CKT_COMPOSITE))
		return CAIRN_ECORRUPT;
	out->algo = p[0];
	out->type = p[1];
	out->parts = (uint16_t)(p[2] | p[3] << 8);
	out->len = (uint8_t)(vlen - 4);
	memcpy(out->d, p + 4, out->len);
	return 0;
}
