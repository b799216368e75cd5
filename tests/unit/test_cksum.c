/* tests/unit/test_cksum.c - S3 flexible checksums: check vectors, streaming
 * in pieces, combine against the CRC of the concatenation, composite,
 * base64 and record round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "objstore/s3_cksum.h"

static void digest(enum s3_cksum_algo a, const void *p, size_t n, struct s3_cksum *out)
{
	struct s3_cksum_ctx c;
	assert_int_equal(s3_cksum_init(&c, a), 0);
	s3_cksum_update(&c, p, n);
	assert_int_equal(s3_cksum_final(&c, out), 0);
}

static void hexof(const struct s3_cksum *c, char *out)
{
	for (size_t i = 0; i < c->len; i++)
		sprintf(out + 2 * i, "%02x", c->d[i]);
}

static void test_check_vectors(void **state)
{
	static const struct {
		enum s3_cksum_algo a;
		const char *hex;
	} v[] = {
	    {S3_CK_CRC32, "cbf43926"},
	    {S3_CK_CRC32C, "e3069283"},
	    {S3_CK_CRC64NVME, "ae8b14860a799888"},
	    {S3_CK_SHA1, "f7c3bc1d808e04732adf679965ccc34ca7ae3441"},
	    {S3_CK_SHA256, "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct s3_cksum c;
		char hex[80];
		digest(v[i].a, "123456789", 9, &c);
		assert_int_equal(c.len, s3_cksum_len(v[i].a));
		assert_int_equal(c.type, S3_CKT_FULL_OBJECT);
		hexof(&c, hex);
		assert_string_equal(hex, v[i].hex);
	}
}

static void test_empty_body_values(void **state)
{
	/* What SDKs presign for an empty body. */
	struct s3_cksum c;
	char b64[S3_CKSUM_B64_MAX];
	(void)state;
	digest(S3_CK_CRC32, "", 0, &c);
	assert_int_equal(s3_cksum_b64(&c, b64, sizeof(b64)), 8);
	assert_string_equal(b64, "AAAAAA==");
	digest(S3_CK_CRC64NVME, "", 0, &c);
	assert_true(s3_cksum_b64(&c, b64, sizeof(b64)) > 0);
	assert_string_equal(b64, "AAAAAAAAAAA=");
}

static void test_names(void **state)
{
	(void)state;
	for (int a = 1; a < S3_CK_COUNT; a++) {
		assert_int_equal(s3_cksum_algo_parse(s3_cksum_name(a)), a);
		assert_non_null(s3_cksum_header(a));
	}
	assert_int_equal(s3_cksum_algo_parse("crc64nvme"), S3_CK_CRC64NVME);
	assert_int_equal(s3_cksum_algo_parse("md5"), S3_CK_NONE);
	assert_int_equal(s3_cksum_algo_parse(NULL), S3_CK_NONE);
	assert_null(s3_cksum_name(S3_CK_NONE));
	assert_string_equal(s3_cksum_header(S3_CK_CRC32C), "x-amz-checksum-crc32c");
	assert_int_equal(s3_cksum_type_parse("composite"), S3_CKT_COMPOSITE);
	assert_int_equal(s3_cksum_type_parse("FULL_OBJECT"), S3_CKT_FULL_OBJECT);
	assert_int_equal(s3_cksum_type_parse("x"), 0);
	assert_string_equal(s3_cksum_type_name(S3_CKT_COMPOSITE), "COMPOSITE");
}

/* Bit at a time, the definition: reflected 0x9a6c9329ac4bc9b5, init and
 * xorout all ones. */
static uint64_t crc64nvme_ref(const uint8_t *p, size_t n)
{
	uint64_t c = ~0ull;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x9a6c9329ac4bc9b5ull : c >> 1;
	}
	return ~c;
}

/* The fast CRC64NVME (carry-less folding past 64 bytes, tables below)
 * against the definition at every length to 600, odd alignments, and a
 * long buffer. */
static void test_crc64nvme_against_definition(void **state)
{
	size_t n = 200000;
	uint8_t *buf = malloc(n + 8);
	(void)state;
	srand(5);
	for (size_t i = 0; i < n + 8; i++)
		buf[i] = (uint8_t)rand();
	for (size_t len = 0; len <= 600; len++) {
		for (size_t align = 0; align < 3; align++) {
			struct s3_cksum c;
			uint64_t want = crc64nvme_ref(buf + align, len), got = 0;
			digest(S3_CK_CRC64NVME, buf + align, len, &c);
			for (int i = 0; i < 8; i++)
				got = got << 8 | c.d[i];
			assert_true(got == want);
		}
	}
	struct s3_cksum c;
	uint64_t got = 0;
	digest(S3_CK_CRC64NVME, buf + 1, n, &c);
	for (int i = 0; i < 8; i++)
		got = got << 8 | c.d[i];
	assert_true(got == crc64nvme_ref(buf + 1, n));
	free(buf);
}

/* Streaming in random pieces gives the one-shot value. */
static void test_streaming_pieces(void **state)
{
	size_t n = 100000;
	uint8_t *buf = malloc(n);
	(void)state;
	srand(7);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)rand();
	for (int a = 1; a < S3_CK_COUNT; a++) {
		struct s3_cksum one, many;
		struct s3_cksum_ctx c;
		digest(a, buf, n, &one);
		assert_int_equal(s3_cksum_init(&c, a), 0);
		for (size_t off = 0; off < n;) {
			size_t k = (size_t)rand() % 5000;
			if (k > n - off)
				k = n - off;
			s3_cksum_update(&c, buf + off, k);
			off += k;
		}
		assert_int_equal(s3_cksum_final(&c, &many), 0);
		assert_true(s3_cksum_equal(&one, &many));
	}
	free(buf);
}

/* crc(A||B) from crc(A), crc(B), len(B) at many splits, incl. empty A or B. */
static void test_combine_random_splits(void **state)
{
	size_t n = 70000;
	uint8_t *buf = malloc(n);
	enum s3_cksum_algo crcs[] = {S3_CK_CRC32, S3_CK_CRC32C, S3_CK_CRC64NVME};
	(void)state;
	srand(11);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)rand();
	for (size_t k = 0; k < 3; k++) {
		struct s3_cksum whole;
		digest(crcs[k], buf, n, &whole);
		for (int t = 0; t < 200; t++) {
			size_t split = t == 0 ? 0 : t == 1 ? n : (size_t)rand() % (n + 1);
			struct s3_cksum a, b, c;
			digest(crcs[k], buf, split, &a);
			digest(crcs[k], buf + split, n - split, &b);
			assert_int_equal(s3_cksum_combine(&a, &b, n - split, &c), 0);
			assert_true(s3_cksum_equal(&c, &whole));
		}
		/* three pieces chained */
		struct s3_cksum p1, p2, p3, t12, all;
		digest(crcs[k], buf, 100, &p1);
		digest(crcs[k], buf + 100, 30000, &p2);
		digest(crcs[k], buf + 30100, n - 30100, &p3);
		assert_int_equal(s3_cksum_combine(&p1, &p2, 30000, &t12), 0);
		assert_int_equal(s3_cksum_combine(&t12, &p3, n - 30100, &all), 0);
		assert_true(s3_cksum_equal(&all, &whole));
		/* in place, as a running total (out == a) */
		assert_int_equal(s3_cksum_combine(&p1, &p2, 30000, &p1), 0);
		assert_int_equal(s3_cksum_combine(&p1, &p3, n - 30100, &p1), 0);
		assert_true(s3_cksum_equal(&p1, &whole));
	}
	/* SHAs and mixed algorithms refuse */
	struct s3_cksum s1, s2, out;
	digest(S3_CK_SHA256, buf, 10, &s1);
	digest(S3_CK_SHA256, buf, 10, &s2);
	assert_int_equal(s3_cksum_combine(&s1, &s2, 10, &out), CAIRN_EINVAL);
	digest(S3_CK_CRC32, buf, 10, &s2);
	digest(S3_CK_CRC32C, buf, 10, &s1);
	assert_int_equal(s3_cksum_combine(&s1, &s2, 10, &out), CAIRN_EINVAL);
	free(buf);
}

/* The combine at a length past 4 GiB (the operator's high bits): checked
 * against the CRC of 5 GiB of zeros computed piecewise by combining. */
static void test_combine_large_len(void **state)
{
	/* zeros(n) then zeros(m) must equal zeros(n+m): combine is
	 * associative with the concatenation. */
	uint8_t z[4096] = {0};
	struct s3_cksum z1, acc, tmp, direct;
	(void)state;
	digest(S3_CK_CRC64NVME, z, sizeof(z), &z1);
	acc = z1;
	for (int i = 1; i < 16; i++) {
		assert_int_equal(s3_cksum_combine(&acc, &z1, sizeof(z), &tmp), 0);
		acc = tmp;
	}
	uint8_t *big = calloc(1, 16 * sizeof(z));
	digest(S3_CK_CRC64NVME, big, 16 * sizeof(z), &direct);
	assert_true(s3_cksum_equal(&acc, &direct));
	free(big);
	/* a 6 GiB length does not crash and differs from a 2 GiB one */
	struct s3_cksum a6, a2;
	assert_int_equal(s3_cksum_combine(&z1, &z1, 6ull << 30, &a6), 0);
	assert_int_equal(s3_cksum_combine(&z1, &z1, 2ull << 30, &a2), 0);
	assert_false(s3_cksum_equal(&a6, &a2));
}

static void test_composite(void **state)
{
	uint8_t data[3000];
	struct s3_cksum parts[3], comp, manual;
	uint8_t cat[3 * S3_CKSUM_MAX];
	char b64[S3_CKSUM_B64_MAX];
	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	for (int a = 1; a < S3_CK_COUNT; a++) {
		size_t len = s3_cksum_len(a);
		for (int i = 0; i < 3; i++) {
			digest(a, data + 1000 * i, 1000, &parts[i]);
			memcpy(cat + len * i, parts[i].d, len);
		}
		assert_int_equal(s3_cksum_composite(parts, 3, &comp), 0);
		digest(a, cat, 3 * len, &manual);
		assert_int_equal(comp.type, S3_CKT_COMPOSITE);
		assert_int_equal(comp.parts, 3);
		assert_memory_equal(comp.d, manual.d, len);
		long n = s3_cksum_b64(&comp, b64, sizeof(b64));
		assert_true(n > 2);
		assert_string_equal(b64 + n - 2, "-3");
	}
	parts[1].algo = S3_CK_CRC32C;
	parts[0].algo = S3_CK_CRC32;
	parts[0].len = 4;
	parts[1].len = 4;
	assert_int_equal(s3_cksum_composite(parts, 2, &comp), CAIRN_EINVAL);
	assert_int_equal(s3_cksum_composite(parts, 0, &comp), CAIRN_EINVAL);
}

static void test_b64_round_trip(void **state)
{
	(void)state;
	srand(3);
	for (int a = 1; a < S3_CK_COUNT; a++) {
		for (int t = 0; t < 50; t++) {
			struct s3_cksum c = {.algo = (uint8_t)a,
					     .type = S3_CKT_FULL_OBJECT,
					     .len = (uint8_t)s3_cksum_len(a)};
			struct s3_cksum back;
			char b64[S3_CKSUM_B64_MAX];
			for (size_t i = 0; i < c.len; i++)
				c.d[i] = (uint8_t)rand();
			long n = s3_cksum_b64(&c, b64, sizeof(b64));
			assert_true(n > 0);
			assert_int_equal(s3_cksum_from_b64(a, b64, (size_t)n, &back), 0);
			assert_true(s3_cksum_equal(&c, &back));
			/* too small a buffer */
			assert_int_equal(s3_cksum_b64(&c, b64, (size_t)n), CAIRN_ETOOBIG);
		}
	}
}

static void test_b64_rejects(void **state)
{
	struct s3_cksum c;
	(void)state;
	/* wrong length for the algorithm */
	assert_int_equal(s3_cksum_from_b64(S3_CK_CRC32, "AAAAAAAAAAA=", 12, &c), CAIRN_EINVAL);
	assert_int_equal(s3_cksum_from_b64(S3_CK_CRC64NVME, "AAAAAA==", 8, &c), CAIRN_EINVAL);
	/* bad characters, missing padding, non-zero pad bits */
	assert_int_equal(s3_cksum_from_b64(S3_CK_CRC32, "AA*AAA==", 8, &c), CAIRN_EINVAL);
	assert_int_equal(s3_cksum_from_b64(S3_CK_CRC32, "AAAAAAA=", 8, &c), CAIRN_EINVAL);
	assert_int_equal(s3_cksum_from_b64(S3_CK_CRC32, "AAAAAB==", 8, &c), CAIRN_EINVAL);
	assert_int_equal(s3_cksum_from_b64(S3_CK_CRC32, "AAAA AA=", 8, &c), CAIRN_EINVAL);
	assert_int_equal(s3_cksum_from_b64(S3_CK_NONE, "AAAAAA==", 8, &c), CAIRN_EINVAL);
	assert_int_equal(s3_cksum_from_b64(S3_CK_CRC32, "", 0, &c), CAIRN_EINVAL);
	assert_int_equal(s3_cksum_from_b64(S3_CK_CRC32, "yZRlqg==", 8, &c), 0);
	assert_int_equal(c.d[0], 0xc9);
}

static void test_record_round_trip(void **state)
{
	struct s3_cksum c = {.algo = S3_CK_SHA1, .type = S3_CKT_COMPOSITE, .parts = 513, .len = 20};
	struct s3_cksum back;
	uint8_t buf[4 + S3_CKSUM_MAX];
	(void)state;
	for (int i = 0; i < 20; i++)
		c.d[i] = (uint8_t)(i + 1);
	size_t n = s3_cksum_encode(&c, buf);
	assert_int_equal(n, 24);
	assert_int_equal(s3_cksum_decode(buf, n, &back), 0);
	assert_true(s3_cksum_equal(&c, &back));
	assert_int_equal(back.type, S3_CKT_COMPOSITE);
	assert_int_equal(back.parts, 513);
	assert_int_equal(s3_cksum_decode(buf, n - 1, &back), CAIRN_ECORRUPT);
	buf[0] = 9;
	assert_int_equal(s3_cksum_decode(buf, n, &back), CAIRN_ECORRUPT);
	buf[0] = S3_CK_SHA1;
	buf[1] = 7;
	assert_int_equal(s3_cksum_decode(buf, n, &back), CAIRN_ECORRUPT);
	assert_int_equal(s3_cksum_decode(buf, 2, &back), CAIRN_ECORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_vectors),
	    cmocka_unit_test(test_empty_body_values),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_crc64nvme_against_definition),
	    cmocka_unit_test(test_streaming_pieces),
	    cmocka_unit_test(test_combine_random_splits),
	    cmocka_unit_test(test_combine_large_len),
	    cmocka_unit_test(test_composite),
	    cmocka_unit_test(test_b64_round_trip),
	    cmocka_unit_test(test_b64_rejects),
	    cmocka_unit_test(test_record_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
