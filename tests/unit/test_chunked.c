/* tests/unit/test_chunked.c - the aws-chunked decoder and the streaming
 * signatures.
 *
 * The chunk signature is checked against the S3 documentation's worked
 * example (sigv4-streaming: 64 KiB + 1 KiB of 'a', secret
 * wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, 20130524T000000Z). Valid bodies
 * of all three modes decode to the same bytes at every split point of the
 * wire stream; each malformed form gives its error and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "objstore/s3_chunked.h"
#include "objstore/sigv4.h"

#define SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"

static struct sigv4_auth auth;
static uint8_t key[SIGV4_KEY_LEN];

static void setup_auth(void)
{
	memset(&auth, 0, sizeof(auth));
	strcpy(auth.access_key, "AKIAIOSFODNN7EXAMPLE");
	strcpy(auth.date, "20130524");
	strcpy(auth.region, "us-east-1");
	strcpy(auth.service, "s3");
	strcpy(auth.amz_date, "20130524T000000Z");
	strcpy(auth.signature, SEED);
	auth.payload = SIGV4_PAYLOAD_STREAMING;
	assert_int_equal(sigv4_signing_key(&auth, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", key),
			 0);
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	assert_int_equal(EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL), 1);
}

/* The AWS example's three chunk signatures, chained from the seed. */
static void test_aws_example_chunk_signatures(void **state)
{
	static const char *want[] = {
	    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
	    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
	    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
	};
	size_t sizes[] = {65536, 1024, 0};
	char *a = malloc(65536);
	char prev[65], sig[65];
	uint8_t h[32];
	(void)state;
	memset(a, 'a', 65536);
	setup_auth();
	strcpy(prev, SEED);
	for (int i = 0; i < 3; i++) {
		sha256(a, sizes[i], h);
		assert_int_equal(sigv4_chunk_signature(NULL, key, &auth, prev, h, sig), 0);
		assert_string_equal(sig, want[i]);
		strcpy(prev, sig);
	}
	free(a);
}

/* The example's seed: its header signature verifies, and the verifier
 * hands back the same signing key sigv4_signing_key derives. */
static void test_aws_example_seed_and_key(void **state)
{
	static const struct sigv4_header h[] = {
	    {"Host", "s3.amazonaws.com"},
	    {"x-amz-date", "20130524T000000Z"},
	    {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
	    {"Authorization",
	     "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
	     "aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-"
	     "sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=" SEED},
	    {"x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
	    {"Content-Encoding", "aws-chunked"},
	    {"x-amz-decoded-content-length", "66560"},
	    {"Content-Length", "66824"},
	};
	struct sigv4_request req = {"PUT", "/examplebucket/chunkObject.txt", h,
				    sizeof(h) / sizeof(h[0])};
	struct sigv4_auth a;
	uint8_t k[SIGV4_KEY_LEN] = {0};
	(void)state;
	setup_auth();
	assert_int_equal(sigv4_parse(&req, &a), 0);
	assert_int_equal(a.payload, SIGV4_PAYLOAD_STREAMING);
	assert_int_equal(s3_chunked_mode_parse(a.payload_raw), S3_CHUNKED_SIGNED);
	assert_int_equal(sigv4_verify_key(&req, &a, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", k),
			 0);
	assert_memory_equal(k, key, SIGV4_KEY_LEN);
	memset(k, 0, sizeof(k));
	assert_int_equal(sigv4_verify_key(&req, &a, "wrong", k), CAIRN_EAUTH);
	for (size_t i = 0; i < sizeof(k); i++)
		assert_int_equal(k[i], 0); /* untouched on failure */
}

/* ---- building bodies ---- */

struct body {
	char *p;
	size_t len, cap;
};

static void put(struct body *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void puts_(struct body *b, const char *s)
{
	put(b, s, strlen(s));
}

/* data split into chunks of sizes[], then the final chunk and the trailer
 * (name/value, NULL: none). Signed modes sign everything from the seed. */
static struct body build(enum s3_chunked_mode mode, const uint8_t *data, const size_t *sizes,
			 size_t n, const char *tname, const char *tval)
{
	struct body b = {0};
	char prev[65], sig[65], line[200];
	uint8_t h[32];
	size_t off = 0;
	bool sign = mode != S3_CHUNKED_UNSIGNED_TRAILER;

	strcpy(prev, SEED);
	for (size_t i = 0; i <= n; i++) {
		size_t sz = i < n ? sizes[i] : 0;
		if (sign) {
			sha256(data + off, sz, h);
			assert_int_equal(sigv4_chunk_signature(NULL, key, &auth, prev, h, sig), 0);
			strcpy(prev, sig);
			snprintf(line, sizeof(line), "%zx;chunk-signature=%s\r\n", sz, sig);
		} else {
			snprintf(line, sizeof(line), "%zx\r\n", sz);
		}
		puts_(&b, line);
		if (i < n) {
			put(&b, data + off, sz);
			puts_(&b, "\r\n");
			off += sz;
		}
	}
	if (tname) {
		snprintf(line, sizeof(line), "%s:%s\r\n", tname, tval);
		puts_(&b, line);
	}
	if (mode == S3_CHUNKED_SIGNED_TRAILER) {
		char canon[200];
		snprintf(canon, sizeof(canon), "%s:%s\n", tname ? tname : "", tval ? tval : "");
		sha256(canon, tname ? strlen(canon) : 0, h);
		assert_int_equal(sigv4_trailer_signature(NULL, key, &auth, prev, h, sig), 0);
		snprintf(line, sizeof(line), "x-amz-trailer-signature:%s\r\n", sig);
		puts_(&b, line);
	}
	puts_(&b, "\r\n");
	return b;
}

struct sink {
	uint8_t *p;
	size_t len, cap;
};

static int sink_fn(void *arg, const uint8_t *data, size_t len)
{
	struct sink *s = arg;
	if (s->len + len > s->cap)
		return -7777;
	memcpy(s->p + s->len, data, len);
	s->len += len;
	return 0;
}

/* Decodes wire[] fed as [0,split) and [split,len); returns the first
 * error (0 if none) and leaves the decoded bytes in s. */
static int decode(enum s3_chunked_mode mode, uint64_t dlen, const char *trailer, const char *wire,
		  size_t len, size_t split, struct sink *s, struct s3_chunked *d)
{
	int rc = s3_chunked_init(d, mode, dlen, trailer,
				 mode == S3_CHUNKED_UNSIGNED_TRAILER ? NULL : key,
				 mode == S3_CHUNKED_UNSIGNED_TRAILER ? NULL : &auth);
	s->len = 0;
	if (rc == 0)
		rc = s3_chunked_feed(d, wire, split, sink_fn, s);
	if (rc == 0)
		rc = s3_chunked_feed(d, wire + split, len - split, sink_fn, s);
	if (rc == 0)
		rc = s3_chunked_finish(d);
	return rc;
}

static void check_every_split(enum s3_chunked_mode mode, const size_t *sizes, size_t n,
			      const char *tname, const char *tval)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += sizes[i];
	uint8_t *data = malloc(total + 1);
	for (size_t i = 0; i < total; i++)
		data[i] = (uint8_t)(i * 31 + 7);
	struct body b = build(mode, data, sizes, n, tname, tval);
	struct sink s = {malloc(total + 1), 0, total};
	for (size_t split = 0; split <= b.len; split++) {
		struct s3_chunked d;
		int rc = decode(mode, total, tname, b.p, b.len, split, &s, &d);
		assert_int_equal(rc, 0);
		assert_int_equal(s.len, total);
		assert_memory_equal(s.p, data, total);
		if (tname) {
			const char *name, *v = s3_chunked_trailer(&d, &name);
			assert_non_null(v);
			assert_string_equal(v, tval);
			assert_string_equal(name, tname);
		} else {
			assert_null(s3_chunked_trailer(&d, NULL));
		}
		s3_chunked_free(&d);
	}
	/* one byte at a time */
	{
		struct s3_chunked d;
		int rc = s3_chunked_init(&d, mode, total, tname,
					 mode == S3_CHUNKED_UNSIGNED_TRAILER ? NULL : key,
					 mode == S3_CHUNKED_UNSIGNED_TRAILER ? NULL : &auth);
		s.len = 0;
		for (size_t i = 0; i < b.len && rc == 0; i++)
			rc = s3_chunked_feed(&d, b.p + i, 1, sink_fn, &s);
		assert_int_equal(rc, 0);
		assert_int_equal(s3_chunked_finish(&d), 0);
		assert_int_equal(s.len, total);
		s3_chunked_free(&d);
	}
	free(s.p);
	free(b.p);
	free(data);
}

static void test_signed_every_split(void **state)
{
	size_t sizes[] = {17, 5, 1};
	(void)state;
	setup_auth();
	check_every_split(S3_CHUNKED_SIGNED, sizes, 3, NULL, NULL);
}

static void test_signed_trailer_every_split(void **state)
{
	size_t sizes[] = {9, 20};
	(void)state;
	setup_auth();
	check_every_split(S3_CHUNKED_SIGNED_TRAILER, sizes, 2, "x-amz-checksum-crc32c", "sOO8/Q==");
}

static void test_unsigned_trailer_every_split(void **state)
{
	size_t sizes[] = {30, 2, 11};
	(void)state;
	setup_auth();
	check_every_split(S3_CHUNKED_UNSIGNED_TRAILER, sizes, 3, "x-amz-checksum-crc64nvme",
			  "AAAAAAAAAAA=");
	check_every_split(S3_CHUNKED_UNSIGNED_TRAILER, sizes, 3, NULL, NULL);
}

static void test_empty_bodies(void **state)
{
	(void)state;
	setup_auth();
	check_every_split(S3_CHUNKED_SIGNED, NULL, 0, NULL, NULL);
	check_every_split(S3_CHUNKED_SIGNED_TRAILER, NULL, 0, "x-amz-checksum-crc32", "AAAAAA==");
	check_every_split(S3_CHUNKED_UNSIGNED_TRAILER, NULL, 0, "x-amz-checksum-crc32", "AAAAAA==");
}

static void test_aws_example_body(void **state)
{
	size_t sizes[] = {65536, 1024};
	uint8_t *data = malloc(66560);
	struct sink s = {malloc(66560), 0, 66560};
	(void)state;
	setup_auth();
	memset(data, 'a', 66560);
	struct body b = build(S3_CHUNKED_SIGNED, data, sizes, 2, NULL, NULL);
	/* the wire form the example gives */
	assert_int_equal(b.len, 66824);
	assert_memory_equal(b.p, "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e23",
			    64);
	for (size_t split = 0; split <= b.len; split += 997) {
		struct s3_chunked d;
		assert_int_equal(decode(S3_CHUNKED_SIGNED, 66560, NULL, b.p, b.len, split, &s, &d),
				 0);
		assert_int_equal(s.len, 66560);
		assert_memory_equal(s.p, data, 66560);
		s3_chunked_free(&d);
	}
	free(b.p);
	free(s.p);
	free(data);
}

/* ---- malformed bodies ---- */

static enum s3_chunked_err bad(enum s3_chunked_mode mode, uint64_t dlen, const char *trailer,
			       const char *wire)
{
	uint8_t buf[256];
	struct sink s = {buf, 0, sizeof(buf)};
	struct s3_chunked d;
	enum s3_chunked_err e;
	int rc = decode(mode, dlen, trailer, wire, strlen(wire), strlen(wire) / 2, &s, &d);
	assert_int_equal(rc, CAIRN_EINVAL);
	assert_non_null(d.msg);
	e = d.err;
	/* sticky */
	assert_int_equal(s3_chunked_feed(&d, "0", 1, sink_fn, &s), CAIRN_EINVAL);
	s3_chunked_free(&d);
	return e;
}

#define U S3_CHUNKED_UNSIGNED_TRAILER
#define CK "x-amz-checksum-crc32"

static void test_bad_framing(void **state)
{
	(void)state;
	setup_auth();
	assert_int_equal(bad(U, 3, NULL, "3\r\nabc\r\n0\r\n\r\nX"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, "x3\r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, "+3\r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, " 3\r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, "3 \r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, "3\nabc\r\n0\r\n\r\n"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, "3\r\nabcX\r\n0\r\n\r\n"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, "3\r\nabc\n0\r\n\r\n"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, "3;ext=1\r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, "\r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_EFRAME);
	assert_int_equal(bad(U, 3, NULL, "00000000000000003\r\nabc\r\n0\r\n\r\n"),
			 S3_CHUNKED_EFRAME);
	/* oversized line */
	{
		char w[600];
		memset(w, '0', 500);
		strcpy(w + 500, "3\r\nabc\r\n0\r\n\r\n");
		assert_int_equal(bad(U, 3, NULL, w), S3_CHUNKED_EFRAME);
	}
	/* signed modes need the signature extension, exactly */
	assert_int_equal(bad(S3_CHUNKED_SIGNED, 3, NULL, "3\r\nabc\r\n0\r\n\r\n"),
			 S3_CHUNKED_EFRAME);
	assert_int_equal(bad(S3_CHUNKED_SIGNED, 3, NULL, "3;chunk-signature=abc\r\nabc\r\n"),
			 S3_CHUNKED_EFRAME);
}

static void test_bad_sizes(void **state)
{
	(void)state;
	setup_auth();
	assert_int_equal(bad(U, 2, NULL, "3\r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_ESIZE);
	assert_int_equal(bad(U, 4, NULL, "3\r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_ESIZE);
	assert_int_equal(bad(U, 3, NULL, "ffffffffffffffff\r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_ESIZE);
}

static void test_truncated(void **state)
{
	static const char *cuts[] = {"",
				     "3",
				     "3\r\n",
				     "3\r\nab",
				     "3\r\nabc\r",
				     "3\r\nabc\r\n0",
				     "3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAA"};
	(void)state;
	setup_auth();
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		uint8_t buf[16];
		struct sink s = {buf, 0, sizeof(buf)};
		struct s3_chunked d;
		int rc = decode(U, 3, CK, cuts[i], strlen(cuts[i]), 0, &s, &d);
		assert_int_equal(rc, CAIRN_EINVAL);
		assert_int_equal(d.err, S3_CHUNKED_ESHORT);
		s3_chunked_free(&d);
	}
	/* no final empty line after the trailer: accepted */
	{
		uint8_t buf[16];
		struct sink s = {buf, 0, sizeof(buf)};
		struct s3_chunked d;
		const char *w = "3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n";
		assert_int_equal(decode(U, 3, CK, w, strlen(w), 5, &s, &d), 0);
		s3_chunked_free(&d);
	}
	/* but a trailer announced and never sent is missing */
	{
		uint8_t buf[16];
		struct sink s = {buf, 0, sizeof(buf)};
		struct s3_chunked d;
		const char *w = "3\r\nabc\r\n0\r\n";
		assert_int_equal(decode(U, 3, CK, w, strlen(w), 5, &s, &d), CAIRN_EINVAL);
		s3_chunked_free(&d);
	}
}

static void test_bad_trailers(void **state)
{
	struct s3_chunked d;
	(void)state;
	setup_auth();
	/* missing */
	assert_int_equal(bad(U, 3, CK, "3\r\nabc\r\n0\r\n\r\n"), S3_CHUNKED_ETRAILER);
	/* duplicate */
	assert_int_equal(
	    bad(U, 3, CK, "3\r\nabc\r\n0\r\n" CK ":AAAAAA==\r\n" CK ":AAAAAA==\r\n\r\n"),
	    S3_CHUNKED_ETRAILER);
	/* not the announced one */
	assert_int_equal(bad(U, 3, CK, "3\r\nabc\r\n0\r\nx-amz-checksum-sha1:AAAAAA==\r\n\r\n"),
			 S3_CHUNKED_ETRAILER);
	/* none announced, one sent */
	assert_int_equal(bad(U, 3, NULL, "3\r\nabc\r\n0\r\n" CK ":AAAAAA==\r\n\r\n"),
			 S3_CHUNKED_ETRAILER);
	/* no colon */
	assert_int_equal(bad(U, 3, CK, "3\r\nabc\r\n0\r\nx-amz-checksum-crc32\r\n\r\n"),
			 S3_CHUNKED_ETRAILER);
	/* a trailer signature in the unsigned mode */
	assert_int_equal(bad(U, 3, CK,
			     "3\r\nabc\r\n0\r\n" CK ":AAAAAA==\r\nx-amz-trailer-signature:" SEED
			     "\r\n\r\n"),
			 S3_CHUNKED_ETRAILER);
	/* bad x-amz-trailer values */
	assert_int_equal(s3_chunked_init(&d, U, 0, "a,b", NULL, NULL), CAIRN_EINVAL);
	assert_int_equal(d.err, S3_CHUNKED_ETRAILER);
	s3_chunked_free(&d);
	assert_int_equal(s3_chunked_init(&d, U, 0, "", NULL, NULL), CAIRN_EINVAL);
	s3_chunked_free(&d);
	assert_int_equal(s3_chunked_init(&d, S3_CHUNKED_SIGNED, 0, CK, key, &auth), CAIRN_EINVAL);
	s3_chunked_free(&d);
	/* a trailer with value spaces is trimmed; name case folds */
	{
		uint8_t buf[16];
		struct sink s = {buf, 0, sizeof(buf)};
		const char *w = "3\r\nabc\r\n0\r\nX-Amz-Checksum-CRC32: AAAAAA== \r\n\r\n";
		assert_int_equal(decode(U, 3, "X-Amz-Checksum-Crc32", w, strlen(w), 9, &s, &d), 0);
		assert_string_equal(s3_chunked_trailer(&d, NULL), "AAAAAA==");
		s3_chunked_free(&d);
	}
}

static void test_bad_signatures(void **state)
{
	size_t sizes[] = {4, 4};
	const uint8_t data[] = "abcdefgh";
	uint8_t buf[16];
	struct sink s = {buf, 0, sizeof(buf)};
	struct s3_chunked d;
	(void)state;
	setup_auth();
	/* one flipped hex digit in each signature of a signed body */
	struct body b = build(S3_CHUNKED_SIGNED, data, sizes, 2, NULL, NULL);
	for (char *p = b.p; (p = strstr(p, "chunk-signature=")); p++) {
		char *sig = p + 16;
		char old = sig[10];
		sig[10] = old == '0' ? '1' : '0';
		assert_int_equal(decode(S3_CHUNKED_SIGNED, 8, NULL, b.p, b.len, 3, &s, &d),
				 CAIRN_EINVAL);
		assert_int_equal(d.err, S3_CHUNKED_ESIG);
		s3_chunked_free(&d);
		sig[10] = old;
	}
	/* data changed under a valid signature */
	b.p[strstr(b.p, "\r\n") - b.p + 2] ^= 1;
	assert_int_equal(decode(S3_CHUNKED_SIGNED, 8, NULL, b.p, b.len, 0, &s, &d), CAIRN_EINVAL);
	assert_int_equal(d.err, S3_CHUNKED_ESIG);
	s3_chunked_free(&d);
	free(b.p);
	/* a different seed */
	b = build(S3_CHUNKED_SIGNED, data, sizes, 2, NULL, NULL);
	auth.signature[0] = auth.signature[0] == 'f' ? 'e' : 'f';
	assert_int_equal(decode(S3_CHUNKED_SIGNED, 8, NULL, b.p, b.len, 0, &s, &d), CAIRN_EINVAL);
	assert_int_equal(d.err, S3_CHUNKED_ESIG);
	s3_chunked_free(&d);
	free(b.p);
	setup_auth();

	/* trailer: wrong signature, changed value, missing signature */
	b = build(S3_CHUNKED_SIGNED_TRAILER, data, sizes, 2, CK, "AAAAAA==");
	assert_int_equal(decode(S3_CHUNKED_SIGNED_TRAILER, 8, CK, b.p, b.len, 7, &s, &d), 0);
	s3_chunked_free(&d);
	char *ts = strstr(b.p, "x-amz-trailer-signature:") + 24;
	ts[3] = ts[3] == 'a' ? 'b' : 'a';
	assert_int_equal(decode(S3_CHUNKED_SIGNED_TRAILER, 8, CK, b.p, b.len, 7, &s, &d),
			 CAIRN_EINVAL);
	assert_int_equal(d.err, S3_CHUNKED_ESIG);
	s3_chunked_free(&d);
	free(b.p);
	b = build(S3_CHUNKED_SIGNED_TRAILER, data, sizes, 2, CK, "AAAAAA==");
	strstr(b.p, "AAAAAA==")[0] = 'B';
	assert_int_equal(decode(S3_CHUNKED_SIGNED_TRAILER, 8, CK, b.p, b.len, 7, &s, &d),
			 CAIRN_EINVAL);
	assert_int_equal(d.err, S3_CHUNKED_ESIG);
	s3_chunked_free(&d);
	free(b.p);
	{
		struct body nb = build(S3_CHUNKED_SIGNED_TRAILER, data, sizes, 2, CK, "AAAAAA==");
		char *t = strstr(nb.p, "x-amz-trailer-signature:");
		strcpy(t, "\r\n");
		nb.len = strlen(nb.p);
		assert_int_equal(decode(S3_CHUNKED_SIGNED_TRAILER, 8, CK, nb.p, nb.len, 7, &s, &d),
				 CAIRN_EINVAL);
		assert_int_equal(d.err, S3_CHUNKED_ESIG);
		s3_chunked_free(&d);
		free(nb.p);
	}
}

static void test_callback_error_passes_through(void **state)
{
	uint8_t buf[2];
	struct sink s = {buf, 0, sizeof(buf)}; /* too small: sink_fn fails */
	struct s3_chunked d;
	const char *w = "3\r\nabc\r\n0\r\n\r\n";
	(void)state;
	assert_int_equal(decode(U, 3, NULL, w, strlen(w), 0, &s, &d), -7777);
	s3_chunked_free(&d);
}

static void test_mode_parse(void **state)
{
	(void)state;
	assert_int_equal(s3_chunked_mode_parse("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
			 S3_CHUNKED_SIGNED);
	assert_int_equal(s3_chunked_mode_parse("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
			 S3_CHUNKED_SIGNED_TRAILER);
	assert_int_equal(s3_chunked_mode_parse("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
			 S3_CHUNKED_UNSIGNED_TRAILER);
	assert_int_equal(s3_chunked_mode_parse("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"),
			 S3_CHUNKED_NONE);
	assert_int_equal(s3_chunked_mode_parse(NULL), S3_CHUNKED_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_aws_example_chunk_signatures),
	    cmocka_unit_test(test_aws_example_seed_and_key),
	    cmocka_unit_test(test_signed_every_split),
	    cmocka_unit_test(test_signed_trailer_every_split),
	    cmocka_unit_test(test_unsigned_trailer_every_split),
	    cmocka_unit_test(test_empty_bodies),
	    cmocka_unit_test(test_aws_example_body),
	    cmocka_unit_test(test_bad_framing),
	    cmocka_unit_test(test_bad_sizes),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_bad_trailers),
	    cmocka_unit_test(test_bad_signatures),
	    cmocka_unit_test(test_callback_error_passes_through),
	    cmocka_unit_test(test_mode_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
