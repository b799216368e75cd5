/* tests/unit/test_s3_server.c - the S3 server over a real pool, driven by
 * libcurl: routing, auth, objects, listing, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/md5.h>

#include "chunkstore/chunkstore.h"
#include "core/fault.h"
#include "core/metrics.h"
#include "objstore/s3.h"
#include "test_s3_util.h"

static struct s3t T;
static char user_key[S3_KEY_ID_MAX + 1],
    user_secret[S3_SECRET_MAX + 1]; /* a second user, "alice" */

#define ROOT .key = S3T_ROOT_KEY, .secret = S3T_ROOT_SECRET
#define ALICE .key = user_key, .secret = user_secret

static struct s3t_resp R;

static long req(const struct s3t_req *rq)
{
	s3t_resp_free(&R);
	assert_int_equal(s3t_do(&T, rq, &R), 0);
	return R.status;
}

#define DO(...) req(&(struct s3t_req){__VA_ARGS__})

static void expect_code(const char *code)
{
	char needle[128];
	snprintf(needle, sizeof(needle), "<Code>%s</Code>", code);
	if (!s3t_body_has(&R, needle))
		fail_msg("expected %s, got status %ld body %s", code, R.status, R.body);
}

static void mkbucket(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/%s", name);
	assert_int_equal(DO(.method = "PUT", .path = path, ROOT), 200);
}

static void put(const char *path, const void *body, size_t len)
{
	if (DO(.method = "PUT", .path = path, .body = body, .blen = len, ROOT) != 200)
		fail_msg("PUT %s: %ld %s", path, R.status, R.body);
}

static int group_setup(void **state)
{
	struct s3_key k;
	int rc;

	curl_global_init(CURL_GLOBAL_ALL);
	rc = s3t_start(&T, "s3.localhost");
	if (rc)
		return rc == 77 ? (exit(77), -1) : -1;
	if (s3_user_create(T.pool, "alice") < 0 || s3_key_create(T.pool, "alice", &k) < 0)
		return -1;
	snprintf(user_key, sizeof(user_key), "%s", k.id);
	snprintf(user_secret, sizeof(user_secret), "%s", k.secret);
	if (getenv("S3T_PAUSE")) { /* debugging: poke the server by hand */
		fprintf(stderr, "S3T port %u\n", T.port);
		sleep((unsigned)atoi(getenv("S3T_PAUSE")));
	}
	return 0;
}

static int group_teardown(void **state)
{
	s3t_resp_free(&R);
	s3t_stop(&T);
	curl_global_cleanup();
	return 0;
}

/* ---- auth ---- */

static void test_auth_anonymous_denied(void **state)
{
	assert_int_equal(DO(.method = "GET", .path = "/"), 403);
	expect_code("AccessDenied");
	assert_true(s3t_body_has(&R, "<RequestId>"));
	char h[64];
	assert_non_null(s3t_header(&R, "x-amz-request-id", h, sizeof(h)));
	assert_non_null(s3t_header(&R, "Date", h, sizeof(h)));
}

static void test_auth_wrong_secret(void **state)
{
	assert_int_equal(DO(.method = "GET", .path = "/", .key = S3T_ROOT_KEY,
			    .secret = "wrongwrongwrongwrongwrongwrongwrongwrong"),
			 403);
	expect_code("SignatureDoesNotMatch");
}

static void test_auth_unknown_key(void **state)
{
	assert_int_equal(DO(.method = "GET", .path = "/", .key = "AKIANOSUCHKEY0000000",
			    .secret = S3T_ROOT_SECRET),
			 403);
	expect_code("InvalidAccessKeyId");
}

static void test_auth_skewed_date(void **state)
{
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT, .when = time(NULL) - 16 * 60), 403);
	expect_code("RequestTimeTooSkewed");
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT, .when = time(NULL) - 10 * 60), 200);
}

static void test_auth_wrong_region(void **state)
{
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT, .region = "eu-west-1"), 400);
	expect_code("AuthorizationHeaderMalformed");
	assert_true(s3t_body_has(&R, "<Region>us-east-1</Region>"));
}

static void test_header_section_too_large(void **state)
{
	static char big[20000];
	memset(big, 'v', sizeof(big) - 1);
	memcpy(big, "X-Big: ", 7);
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT, .hdrs = {big}), 400);
	expect_code("InvalidRequest");
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT), 200);
}

static void test_auth_curl_sigv4(void **state)
{
	/* curl's own signer: an independent SigV4 implementation. */
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT, .curl_sigv4 = true), 200);
	assert_true(s3t_body_has(&R, "<ListAllMyBucketsResult"));
	assert_int_equal(DO(.method = "PUT", .path = "/curlsig", ROOT, .curl_sigv4 = true), 200);
	if (DO(.method = "PUT", .path = "/curlsig/o", ROOT, .curl_sigv4 = true, .body = "hello",
	       .blen = 5) != 200)
		fail_msg("%ld %s", R.status, R.body);
	assert_int_equal(DO(.method = "GET", .path = "/curlsig/o", ROOT, .curl_sigv4 = true), 200);
	assert_string_equal(R.body, "hello");
	assert_int_equal(DO(.method = "GET", .path = "/curlsig",
			    .query = "max-keys=5&prefix=o", /* curl 7.88 does not sort */
			    ROOT, .curl_sigv4 = true),
			 200);
	assert_true(s3t_body_has(&R, "<Key>o</Key>"));
}

static void test_auth_presigned(void **state)
{
	char url[2048];

	mkbucket("presign");
	put("/presign/obj", "presigned!", 10);
	s3t_presign(&T, "GET", "/presign/obj", S3T_ROOT_KEY, S3T_ROOT_SECRET, time(NULL), 300, url,
		    sizeof(url));
	char *q = strchr(url, '?');
	*q = 0;
	assert_int_equal(DO(.method = "GET", .path = url, .query = q + 1), 200);
	assert_string_equal(R.body, "presigned!");
	/* Expired: signed an hour ago for 60 s. */
	s3t_presign(&T, "GET", "/presign/obj", S3T_ROOT_KEY, S3T_ROOT_SECRET, time(NULL) - 3600, 60,
		    url, sizeof(url));
	q = strchr(url, '?');
	*q = 0;
	assert_int_equal(DO(.method = "GET", .path = url, .query = q + 1), 403);
	expect_code("AccessDenied");
	/* Tampered signature. */
	s3t_presign(&T, "GET", "/presign/obj", S3T_ROOT_KEY, S3T_ROOT_SECRET, time(NULL), 300, url,
		    sizeof(url));
	url[strlen(url) - 1] = url[strlen(url) - 1] == '0' ? '1' : '0';
	q = strchr(url, '?');
	*q = 0;
	assert_int_equal(DO(.method = "GET", .path = url, .query = q + 1), 403);
	expect_code("SignatureDoesNotMatch");
}

static void test_auth_raw_target_plus(void **state)
{
	/* '+' in the path is a literal plus; %20 a space; the signature is
	 * over the target as sent (libmicrohttpd would turn a query '+'
	 * into a space). */
	mkbucket("plus");
	put("/plus/a+b%20c", "x", 1);
	assert_int_equal(DO(.method = "GET", .path = "/plus", .query = "prefix=a%2Bb", ROOT), 200);
	assert_true(s3t_body_has(&R, "<Key>a+b c</Key>"));
	assert_int_equal(DO(.method = "GET", .path = "/plus/a%2Bb%20c", ROOT), 200);
	assert_string_equal(R.body, "x");
}

/* ---- buckets ---- */

static void test_bucket_lifecycle(void **state)
{
	char h[64];

	assert_int_equal(DO(.method = "PUT", .path = "/life", ROOT), 200);
	assert_non_null(s3t_header(&R, "Location", h, sizeof(h)));
	/* us-east-1: creating a bucket you own again is 200. */
	assert_int_equal(DO(.method = "PUT", .path = "/life", ROOT), 200);
	assert_int_equal(DO(.method = "PUT", .path = "/life", ALICE), 409);
	expect_code("BucketAlreadyExists");
	assert_int_equal(DO(.method = "HEAD", .path = "/life", ROOT), 200);
	assert_int_equal(DO(.method = "HEAD", .path = "/life", ALICE), 403);
	assert_int_equal(DO(.method = "GET", .path = "/life", ALICE), 403);
	expect_code("AccessDenied");
	assert_int_equal(DO(.method = "GET", .path = "/life", .query = "location", ROOT), 200);
	assert_true(s3t_body_has(&R, "LocationConstraint"));
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT), 200);
	assert_true(s3t_body_has(&R, "<Name>life</Name>"));
	assert_int_equal(DO(.method = "GET", .path = "/", ALICE), 200);
	assert_false(s3t_body_has(&R, "<Name>life</Name>"));
	put("/life/k", "v", 1);
	assert_int_equal(DO(.method = "DELETE", .path = "/life", ROOT), 409);
	expect_code("BucketNotEmpty");
	assert_int_equal(DO(.method = "DELETE", .path = "/life/k", ROOT), 204);
	assert_int_equal(DO(.method = "DELETE", .path = "/life", ALICE), 403);
	assert_int_equal(DO(.method = "DELETE", .path = "/life", ROOT), 204);
	assert_int_equal(DO(.method = "HEAD", .path = "/life", ROOT), 404);
	assert_int_equal(DO(.method = "GET", .path = "/life", ROOT), 404);
	expect_code("NoSuchBucket");
	/* Now free for another user. */
	assert_int_equal(DO(.method = "PUT", .path = "/life", ALICE), 200);
	assert_int_equal(s3_user_delete(T.pool, "alice"), CAIRN_ENOTEMPTY);
	assert_int_equal(DO(.method = "DELETE", .path = "/life", ALICE), 204);
}

static void test_bucket_invalid_names(void **state)
{
	static const char *bad[] = {
	    "/ab",	    "/UPPER",
	    "/a_b",	    "/-ab",
	    "/ab-",	    "/a..b",
	    "/192.168.1.1", "/cairn-internal",
	    "/xn--abc",	    "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (DO(.method = "PUT", .path = bad[i], ROOT) != 400)
			fail_msg("%s: %ld", bad[i], R.status);
		expect_code("InvalidBucketName");
	}
}

static void test_bucket_create_config(void **state)
{
	static const char ok[] = "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/"
				 "2006-03-01/\"><LocationConstraint>us-east-1</LocationConstraint>"
				 "</CreateBucketConfiguration>";
	static const char bad[] = "<CreateBucketConfiguration><LocationConstraint>";
	assert_int_equal(
	    DO(.method = "PUT", .path = "/cfgbucket", .body = ok, .blen = strlen(ok), ROOT), 200);
	assert_int_equal(
	    DO(.method = "PUT", .path = "/cfgbucket2", .body = bad, .blen = strlen(bad), ROOT),
	    400);
	expect_code("MalformedXML");
	assert_int_equal(DO(.method = "HEAD", .path = "/cfgbucket2", ROOT), 404);
}

static void test_virtual_host(void **state)
{
	mkbucket("vhost");
	put("/vhost/dir/file", "vh", 2);
	assert_int_equal(
	    DO(.method = "GET", .path = "/dir/file", .host = "vhost.s3.localhost", ROOT), 200);
	assert_string_equal(R.body, "vh");
	assert_int_equal(DO(.method = "GET", .path = "/", .host = "vhost.s3.localhost", ROOT), 200);
	assert_true(s3t_body_has(&R, "<Key>dir/file</Key>"));
}

/* ---- objects ---- */

static void md5_hex(const void *p, size_t n, char out[33])
{
	uint8_t md[16];
	unsigned len;
	EVP_Digest(p, n, md, &len, EVP_md5(), NULL);
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static void test_object_roundtrip_large(void **state)
{
	size_t n = (3u << 20) + 12345;
	uint8_t *data = malloc(n);
	char etag[64], want[40], md5[33];

	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	mkbucket("objs");
	put("/objs/big", data, n);
	md5_hex(data, n, md5);
	snprintf(want, sizeof(want), "\"%s\"", md5);
	assert_string_equal(s3t_header(&R, "ETag", etag, sizeof(etag)), want);
	assert_int_equal(DO(.method = "GET", .path = "/objs/big", ROOT), 200);
	assert_int_equal(R.len, n);
	assert_memory_equal(R.body, data, n);
	assert_string_equal(s3t_header(&R, "ETag", etag, sizeof(etag)), want);
	/* Chunked transfer encoding, UNSIGNED-PAYLOAD. */
	assert_int_equal(DO(.method = "PUT", .path = "/objs/chunked", .body = data, .blen = n,
			    .chunked = true, .payload = "UNSIGNED-PAYLOAD", ROOT),
			 200);
	assert_int_equal(DO(.method = "GET", .path = "/objs/chunked", ROOT), 200);
	assert_int_equal(R.len, n);
	assert_memory_equal(R.body, data, n);
	/* Range in the middle, across a chunk boundary. */
	assert_int_equal(
	    DO(.method = "GET", .path = "/objs/big", ROOT, .hdrs = {"Range: bytes=65530-1048580"}),
	    206);
	assert_int_equal(R.len, 1048580 - 65530 + 1);
	assert_memory_equal(R.body, data + 65530, R.len);
	free(data);
}

static void test_object_empty(void **state)
{
	char h[64];
	mkbucket("empty");
	put("/empty/zero", "", 0);
	assert_int_equal(DO(.method = "GET", .path = "/empty/zero", ROOT), 200);
	assert_int_equal(R.len, 0);
	assert_string_equal(s3t_header(&R, "ETag", h, sizeof(h)),
			    "\"d41d8cd98f00b204e9800998ecf8427e\"");
	assert_int_equal(
	    DO(.method = "GET", .path = "/empty/zero", ROOT, .hdrs = {"Range: bytes=0-0"}), 416);
	/* RFC 9110: a 416 names the current length */
	assert_string_equal(s3t_header(&R, "Content-Range", h, sizeof(h)), "bytes */0");
}

static void test_object_metadata_and_head(void **state)
{
	char h[128];
	mkbucket("meta");
	assert_int_equal(DO(.method = "PUT", .path = "/meta/m", .body = "0123456789", .blen = 10,
			    ROOT,
			    .hdrs = {"Content-Type: text/plain", "x-amz-meta-Color: blue",
				     "x-amz-meta-size: large", "Cache-Control: max-age=60",
				     "Content-Disposition: attachment", "Content-Language: en",
				     "Expires: Thu, 01 Dec 2094 16:00:00 GMT"}),
			 200);
	assert_int_equal(DO(.method = "HEAD", .path = "/meta/m", ROOT), 200);
	assert_int_equal(R.len, 0);
	assert_string_equal(s3t_header(&R, "Content-Length", h, sizeof(h)), "10");
	assert_string_equal(s3t_header(&R, "Content-Type", h, sizeof(h)), "text/plain");
	assert_string_equal(s3t_header(&R, "x-amz-meta-color", h, sizeof(h)), "blue");
	assert_string_equal(s3t_header(&R, "x-amz-meta-size", h, sizeof(h)), "large");
	assert_string_equal(s3t_header(&R, "Cache-Control", h, sizeof(h)), "max-age=60");
	assert_string_equal(s3t_header(&R, "Content-Disposition", h, sizeof(h)), "attachment");
	assert_string_equal(s3t_header(&R, "Content-Language", h, sizeof(h)), "en");
	assert_string_equal(s3t_header(&R, "Accept-Ranges", h, sizeof(h)), "bytes");
	assert_non_null(s3t_header(&R, "Last-Modified", h, sizeof(h)));
	assert_non_null(s3t_header(&R, "Expires", h, sizeof(h)));
	/* response-* overrides */
	assert_int_equal(
	    DO(.method = "GET", .path = "/meta/m", ROOT,
	       .query = "response-content-type=application%2Fjson&response-cache-control=no-cache"),
	    200);
	assert_string_equal(s3t_header(&R, "Content-Type", h, sizeof(h)), "application/json");
	assert_string_equal(s3t_header(&R, "Cache-Control", h, sizeof(h)), "no-cache");
	/* Overwrite: new body, metadata replaced. */
	put("/meta/m", "new", 3);
	assert_int_equal(DO(.method = "GET", .path = "/meta/m", ROOT), 200);
	assert_string_equal(R.body, "new");
	assert_null(s3t_header(&R, "x-amz-meta-color", h, sizeof(h)));
	assert_string_equal(s3t_header(&R, "Content-Type", h, sizeof(h)), "binary/octet-stream");
	assert_int_equal(DO(.method = "HEAD", .path = "/meta/nope", ROOT), 404);
	assert_int_equal(R.len, 0);
}

static void test_object_metadata_too_large(void **state)
{
	static char big[2100], hdr[2200];
	memset(big, 'a', 2040);
	big[2040] = 0;
	snprintf(hdr, sizeof(hdr), "x-amz-meta-k: %s", big);
	mkbucket("metabig");
	assert_int_equal(DO(.method = "PUT", .path = "/metabig/x", .body = "1", .blen = 1, ROOT,
			    .hdrs = {hdr, "x-amz-meta-more: 0123456789"}),
			 400);
	expect_code("MetadataTooLarge");
	assert_int_equal(DO(.method = "HEAD", .path = "/metabig/x", ROOT), 404);
}

static void test_object_ranges(void **state)
{
	char h[128];
	mkbucket("ranges");
	put("/ranges/r", "0123456789", 10);
	assert_int_equal(
	    DO(.method = "GET", .path = "/ranges/r", ROOT, .hdrs = {"Range: bytes=2-4"}), 206);
	assert_string_equal(R.body, "234");
	assert_string_equal(s3t_header(&R, "Content-Range", h, sizeof(h)), "bytes 2-4/10");
	assert_int_equal(
	    DO(.method = "GET", .path = "/ranges/r", ROOT, .hdrs = {"Range: bytes=-3"}), 206);
	assert_string_equal(R.body, "789");
	assert_int_equal(
	    DO(.method = "GET", .path = "/ranges/r", ROOT, .hdrs = {"Range: bytes=7-"}), 206);
	assert_string_equal(R.body, "789");
	assert_int_equal(
	    DO(.method = "GET", .path = "/ranges/r", ROOT, .hdrs = {"Range: bytes=5-1000000"}),
	    206);
	assert_string_equal(R.body, "56789");
	assert_int_equal(
	    DO(.method = "GET", .path = "/ranges/r", ROOT, .hdrs = {"Range: bytes=10-"}), 416);
	expect_code("InvalidRange");
	assert_int_equal(DO(.method = "GET", .path = "/ranges/r", ROOT,
			    .hdrs = {"Range: bytes=99999999999999999999-"}),
			 416); /* beyond any size */
	assert_int_equal(
	    DO(.method = "GET", .path = "/ranges/r", ROOT, .hdrs = {"Range: pages=1-2"}), 200);
	assert_string_equal(R.body, "0123456789");
}

static void test_object_conditionals(void **state)
{
	char etag[64], hdr[128], lm[64], h2[128];
	mkbucket("cond");
	put("/cond/c", "abc", 3);
	s3t_header(&R, "ETag", etag, sizeof(etag));
	assert_int_equal(DO(.method = "GET", .path = "/cond/c", ROOT), 200);
	s3t_header(&R, "Last-Modified", lm, sizeof(lm));
	snprintf(hdr, sizeof(hdr), "If-None-Match: %s", etag);
	assert_int_equal(DO(.method = "GET", .path = "/cond/c", ROOT, .hdrs = {hdr}), 304);
	assert_int_equal(R.len, 0);
	assert_non_null(s3t_header(&R, "ETag", h2, sizeof(h2)));
	assert_int_equal(DO(.method = "HEAD", .path = "/cond/c", ROOT, .hdrs = {hdr}), 304);
	snprintf(hdr, sizeof(hdr), "If-Match: %s", etag);
	assert_int_equal(DO(.method = "GET", .path = "/cond/c", ROOT, .hdrs = {hdr}), 200);
	assert_int_equal(DO(.method = "GET", .path = "/cond/c", ROOT,
			    .hdrs = {"If-Match: \"00000000000000000000000000000000\""}),
			 412);
	expect_code("PreconditionFailed");
	snprintf(hdr, sizeof(hdr), "If-Modified-Since: %s", lm);
	assert_int_equal(DO(.method = "GET", .path = "/cond/c", ROOT, .hdrs = {hdr}), 304);
	assert_int_equal(DO(.method = "GET", .path = "/cond/c", ROOT,
			    .hdrs = {"If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT"}),
			 200);
	assert_int_equal(DO(.method = "GET", .path = "/cond/c", ROOT,
			    .hdrs = {"If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT"}),
			 412);
	/* S3 precedence: If-Match true + If-Unmodified-Since false -> 200. */
	snprintf(hdr, sizeof(hdr), "If-Match: %s", etag);
	assert_int_equal(DO(.method = "GET", .path = "/cond/c", ROOT,
			    .hdrs = {hdr, "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT"}),
			 200);
}

static void test_object_digests(void **state)
{
	mkbucket("digest");
	/* Content-MD5 of "hello" is XUFAKrxLKna5cZ2REBfFkg==. */
	assert_int_equal(DO(.method = "PUT", .path = "/digest/ok", .body = "hello", .blen = 5, ROOT,
			    .hdrs = {"Content-MD5: XUFAKrxLKna5cZ2REBfFkg=="}),
			 200);
	assert_int_equal(DO(.method = "PUT", .path = "/digest/bad", .body = "hellO", .blen = 5,
			    ROOT, .hdrs = {"Content-MD5: XUFAKrxLKna5cZ2REBfFkg=="}),
			 400);
	expect_code("BadDigest");
	assert_int_equal(DO(.method = "PUT", .path = "/digest/bad", .body = "hello", .blen = 5,
			    ROOT, .hdrs = {"Content-MD5: notbase64!"}),
			 400);
	expect_code("InvalidDigest");
	/* Signed payload hash that does not match the body. */
	assert_int_equal(
	    DO(.method = "PUT", .path = "/digest/bad", .body = "hello", .blen = 5, ROOT,
	       .payload = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9825"),
	    400);
	expect_code("XAmzContentSHA256Mismatch");
	assert_int_equal(DO(.method = "HEAD", .path = "/digest/bad", ROOT), 404);
	assert_int_equal(DO(.method = "HEAD", .path = "/digest/ok", ROOT), 200);
}

static void test_object_keys(void **state)
{
	char path[4096], key[1100];
	mkbucket("keys");
	memset(key, 'k', 1024);
	key[1024] = 0;
	snprintf(path, sizeof(path), "/keys/%s", key);
	put(path, "max", 3);
	assert_int_equal(DO(.method = "GET", .path = path, ROOT), 200);
	assert_string_equal(R.body, "max");
	snprintf(path, sizeof(path), "/keys/%sk", key);
	assert_int_equal(DO(.method = "PUT", .path = path, .body = "x", .blen = 1, ROOT), 400);
	expect_code("KeyTooLongError");
	assert_int_equal(DO(.method = "GET", .path = "/keys/bad%FF", ROOT), 400);
	assert_int_equal(DO(.method = "GET", .path = "/keys/nul%00", ROOT), 400);
	assert_int_equal(DO(.method = "GET", .path = "/keys/absent", ROOT), 404);
	expect_code("NoSuchKey");
	assert_true(s3t_body_has(&R, "<Resource>/keys/absent</Resource>"));
	assert_int_equal(DO(.method = "DELETE", .path = "/keys/absent", ROOT), 204);
}

/* Keys longer than the inline limit share group records: they must still
 * read, overwrite, list in order and delete one by one. */
static void test_object_long_keys_grouped(void **state)
{
	char base[700], path[1200], q[1300];
	static const char *suffix[] = {"b", "a", "ab", "", "c/d", "c/e"};
	mkbucket("longkeys");
	memset(base, 'p', 450);
	base[450] = 0;
	for (int i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), "/longkeys/%s%s", base, suffix[i]);
		put(path, suffix[i], strlen(suffix[i]));
	}
	put("/longkeys/q", "q", 1);
	snprintf(path, sizeof(path), "/longkeys/%sab", base);
	put(path, "AB", 2);
	assert_int_equal(DO(.method = "GET", .path = path, ROOT), 200);
	assert_string_equal(R.body, "AB");
	assert_int_equal(DO(.method = "GET", .path = "/longkeys", ROOT), 200);
	{
		const char *order[] = {"", "a", "ab", "b", "c/d", "c/e"};
		const char *p = R.body;
		for (int i = 0; i < 6; i++) {
			char needle[1200];
			snprintf(needle, sizeof(needle), "<Key>%s%s</Key>", base, order[i]);
			p = strstr(p, needle);
			if (!p)
				fail_msg("key %d (%s) missing or out of order", i, order[i]);
		}
		assert_non_null(strstr(p, "<Key>q</Key>"));
	}
	/* Delimiter inside the grouped part of the keys. */
	snprintf(q, sizeof(q), "prefix=%s&delimiter=%%2F", base);
	assert_int_equal(DO(.method = "GET", .path = "/longkeys", .query = q, ROOT), 200);
	{
		char needle[1200];
		snprintf(needle, sizeof(needle), "<Prefix>%sc/</Prefix>", base);
		assert_true(s3t_body_has(&R, needle));
		snprintf(needle, sizeof(needle), "<Key>%sc/d</Key>", base);
		assert_false(s3t_body_has(&R, needle));
	}
	/* Pages of 2 (v1 markers) walk through the group entries in order. */
	{
		const char *order[] = {"", "a", "ab", "b", "c/d", "c/e"};
		char marker[1200] = "";
		int got = 0;
		for (int page = 0; page < 10; page++) {
			char mq[1300];
			const char *p;
			if (marker[0])
				snprintf(mq, sizeof(mq), "marker=%s&max-keys=2", marker);
			else
				snprintf(mq, sizeof(mq), "max-keys=2");
			assert_int_equal(
			    DO(.method = "GET", .path = "/longkeys", .query = mq, ROOT), 200);
			for (p = R.body; (p = strstr(p, "<Key>")); p += 5) {
				const char *e = strstr(p, "</Key>");
				size_t kl = (size_t)(e - p - 5);
				if (got < 6) {
					char want[1200];
					snprintf(want, sizeof(want), "%s%s", base, order[got]);
					assert_int_equal(kl, strlen(want));
					assert_memory_equal(p + 5, want, kl);
				} else {
					assert_memory_equal(p + 5, "q", 1);
				}
				got++;
				snprintf(marker, sizeof(marker), "%.*s", (int)kl, p + 5);
			}
			if (!s3t_body_has(&R, "<IsTruncated>true</IsTruncated>"))
				break;
		}
		assert_int_equal(got, 7);
	}
	snprintf(path, sizeof(path), "/longkeys/%sa", base);
	assert_int_equal(DO(.method = "DELETE", .path = path, ROOT), 204);
	assert_int_equal(DO(.method = "GET", .path = path, ROOT), 404);
	snprintf(path, sizeof(path), "/longkeys/%sb", base);
	assert_int_equal(DO(.method = "GET", .path = path, ROOT), 200);
	assert_string_equal(R.body, "b");
}

/* ---- listing ---- */

static void test_list_v1_v2(void **state)
{
	static const char *keys[] = {"a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "d", "e+f", NULL};
	char tok[512], q[700];
	mkbucket("list");
	for (int i = 0; keys[i]; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/list/%s", keys[i]);
		if (strchr(keys[i], '+'))
			snprintf(path, sizeof(path), "/list/e%%2Bf");
		put(path, keys[i], strlen(keys[i]));
	}
	/* v1 with delimiter: CommonPrefixes a/ c/, keys b d e+f. */
	assert_int_equal(DO(.method = "GET", .path = "/list", .query = "delimiter=%2F", ROOT), 200);
	assert_true(s3t_body_has(&R, "<Prefix>a/</Prefix>"));
	assert_true(s3t_body_has(&R, "<Prefix>c/</Prefix>"));
	assert_true(s3t_body_has(&R, "<Key>b</Key>"));
	assert_true(s3t_body_has(&R, "<Key>e+f</Key>"));
	assert_false(s3t_body_has(&R, "<Key>a/1</Key>"));
	assert_true(s3t_body_has(&R, "<IsTruncated>false</IsTruncated>"));
	assert_true(s3t_body_has(&R, "<Owner>"));
	/* v1 pages of 2 with delimiter: a/, b | c/, d | e+f */
	assert_int_equal(
	    DO(.method = "GET", .path = "/list", .query = "delimiter=%2F&max-keys=2", ROOT), 200);
	assert_true(s3t_body_has(&R, "<IsTruncated>true</IsTruncated>"));
	assert_true(s3t_body_has(&R, "<NextMarker>b</NextMarker>"));
	assert_int_equal(DO(.method = "GET", .path = "/list",
			    .query = "delimiter=%2F&marker=b&max-keys=1", ROOT),
			 200);
	assert_true(s3t_body_has(&R, "<Prefix>c/</Prefix>"));
	assert_true(s3t_body_has(&R, "<NextMarker>c/</NextMarker>"));
	/* Resuming after a common prefix skips all of it. */
	assert_int_equal(
	    DO(.method = "GET", .path = "/list", .query = "delimiter=%2F&marker=c%2F", ROOT), 200);
	assert_false(s3t_body_has(&R, "<Prefix>c/</Prefix>"));
	assert_false(s3t_body_has(&R, "<Key>c/"));
	assert_true(s3t_body_has(&R, "<Key>d</Key>"));
	/* v1 prefix */
	assert_int_equal(DO(.method = "GET", .path = "/list", .query = "prefix=a%2F", ROOT), 200);
	assert_true(s3t_body_has(&R, "<Key>a/b/3</Key>"));
	assert_false(s3t_body_has(&R, "<Key>b</Key>"));
	/* v2 pagination with continuation tokens over all 8 keys, 3 a page. */
	int seen = 0;
	tok[0] = 0;
	for (int page = 0; page < 5; page++) {
		char enc[600];
		CURL *c = curl_easy_init();
		char *e = curl_easy_escape(c, tok, 0);
		snprintf(enc, sizeof(enc), "%s", e);
		curl_free(e);
		curl_easy_cleanup(c);
		if (tok[0])
			snprintf(q, sizeof(q), "continuation-token=%s&list-type=2&max-keys=3", enc);
		else
			snprintf(q, sizeof(q), "list-type=2&max-keys=3");
		assert_int_equal(DO(.method = "GET", .path = "/list", .query = q, ROOT), 200);
		for (const char *p = R.body; (p = strstr(p, "<Key>")); p++)
			seen++;
		assert_true(s3t_body_has(&R, "<KeyCount>"));
		assert_false(s3t_body_has(&R, "<Owner>"));
		const char *nt = strstr(R.body, "<NextContinuationToken>");
		if (!nt)
			break;
		nt += strlen("<NextContinuationToken>");
		snprintf(tok, sizeof(tok), "%.*s", (int)(strchr(nt, '<') - nt), nt);
	}
	assert_int_equal(seen, 8);
	/* v2 start-after, fetch-owner, encoding-type=url */
	assert_int_equal(DO(.method = "GET", .path = "/list",
			    .query = "encoding-type=url&fetch-owner=true&list-type=2&start-after=d",
			    ROOT),
			 200);
	assert_true(s3t_body_has(&R, "<Key>e%2Bf</Key>"));
	assert_true(s3t_body_has(&R, "<Owner>"));
	assert_false(s3t_body_has(&R, "<Key>d</Key>"));
	assert_true(s3t_body_has(&R, "<KeyCount>1</KeyCount>"));
	/* bad parameters */
	assert_int_equal(DO(.method = "GET", .path = "/list", .query = "max-keys=abc", ROOT), 400);
	expect_code("InvalidArgument");
	assert_int_equal(DO(.method = "GET", .path = "/list",
			    .query = "continuation-token=%21%21&list-type=2", ROOT),
			 400);
	assert_int_equal(DO(.method = "GET", .path = "/list", .query = "encoding-type=zip", ROOT),
			 400);
	assert_int_equal(DO(.method = "GET", .path = "/list", .query = "max-keys=0", ROOT), 200);
	assert_false(s3t_body_has(&R, "<Key>"));
}

/* A delimiter rolls a prefix of many keys up with one seek: a page of 2
 * after 300 keys under "x/" still reaches "y". */
static void test_list_delimiter_skips_prefix(void **state)
{
	mkbucket("skip");
	for (int i = 0; i < 300; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/skip/x/%04d", i);
		put(path, "", 0);
	}
	put("/skip/y", "", 0);
	assert_int_equal(DO(.method = "GET", .path = "/skip",
			    .query = "delimiter=%2F&list-type=2&max-keys=2", ROOT),
			 200);
	assert_true(s3t_body_has(&R, "<Prefix>x/</Prefix>"));
	assert_true(s3t_body_has(&R, "<Key>y</Key>"));
	assert_true(s3t_body_has(&R, "<KeyCount>2</KeyCount>"));
	assert_true(s3t_body_has(&R, "<IsTruncated>false</IsTruncated>"));
}

/* ---- DeleteObjects ---- */

/* "Content-MD5: <base64>" of body, as DeleteObjects requires. */
static const char *md5_header(const char *body, char *out, size_t cap)
{
	uint8_t md[16];
	char b64[32];
	EVP_Digest(body, strlen(body), md, NULL, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)b64, md, 16);
	snprintf(out, cap, "Content-MD5: %s", b64);
	return out;
}

static void test_delete_objects(void **state)
{
	char m1[64], m2[64];
	static const char body[] =
	    "<Delete><Object><Key>d1</Key></Object><Object><Key>d2</Key></Object>"
	    "<Object><Key>missing</Key></Object></Delete>";
	static const char quiet[] =
	    "<Delete><Quiet>true</Quiet><Object><Key>d3</Key></Object></Delete>";
	static const char bad[] = "<Delete><Object><Key>d1</Key></Object>";
	mkbucket("multi");
	put("/multi/d1", "1", 1);
	put("/multi/d2", "2", 1);
	put("/multi/d3", "3", 1);
	/* issue 4: the body must carry Content-MD5 or a flexible checksum */
	assert_int_equal(DO(.method = "POST", .path = "/multi", .query = "delete", .body = body,
			    .blen = strlen(body), ROOT),
			 400);
	expect_code("InvalidRequest");
	assert_int_equal(DO(.method = "POST", .path = "/multi", .query = "delete", .body = body,
			    .blen = strlen(body), ROOT, .hdrs = {md5_header(body, m1, sizeof(m1))}),
			 200);
	assert_true(s3t_body_has(&R, "<Deleted><Key>d1</Key></Deleted>"));
	assert_true(s3t_body_has(&R, "<Deleted><Key>missing</Key></Deleted>"));
	assert_int_equal(DO(.method = "HEAD", .path = "/multi/d2", ROOT), 404);
	assert_int_equal(DO(.method = "POST", .path = "/multi", .query = "delete", .body = quiet,
			    .blen = strlen(quiet), ROOT,
			    .hdrs = {md5_header(quiet, m2, sizeof(m2))}),
			 200);
	assert_false(s3t_body_has(&R, "<Deleted>"));
	assert_int_equal(DO(.method = "HEAD", .path = "/multi/d3", ROOT), 404);
	assert_int_equal(DO(.method = "POST", .path = "/multi", .query = "delete", .body = bad,
			    .blen = strlen(bad), ROOT, .hdrs = {md5_header(bad, m1, sizeof(m1))}),
			 400);
	expect_code("MalformedXML");
	assert_int_equal(DO(.method = "POST", .path = "/multi", .query = "delete", .body = quiet,
			    .blen = strlen(quiet), ROOT,
			    .hdrs = {"Content-MD5: XUFAKrxLKna5cZ2REBfFkg=="}),
			 400);
	expect_code("BadDigest");
}

/* ---- bad input and HTTP ---- */

static void test_not_implemented(void **state)
{
	mkbucket("later");
	/* multipart is implemented (issue 4); object tagging is not */
	assert_int_equal(DO(.method = "POST", .path = "/later/k", .query = "uploads", ROOT), 200);
	assert_true(s3t_body_has(&R, "<UploadId>"));
	assert_int_equal(DO(.method = "PUT", .path = "/later/k", .query = "tagging", .body = "",
			    .blen = 0, ROOT),
			 501);
	expect_code("NotImplemented");
	/* CopyObject is implemented (issue 4): a missing source is NoSuchKey */
	assert_int_equal(DO(.method = "PUT", .path = "/later/k", .body = "", .blen = 0, ROOT,
			    .hdrs = {"x-amz-copy-source: /later/j"}),
			 404);
	expect_code("NoSuchKey");
	assert_int_equal(DO(.method = "GET", .path = "/later", .query = "lifecycle", ROOT), 501);
	/* versioning was never enabled: an empty configuration, as AWS */
	assert_int_equal(DO(.method = "GET", .path = "/later", .query = "versioning", ROOT), 200);
	assert_int_equal(DO(.method = "PUT", .path = "/later", .query = "versioning", .body = "",
			    .blen = 0, ROOT),
			 501);
	/* aws-chunked is served (issue 4), but needs its decoded length */
	assert_int_equal(DO(.method = "PUT", .path = "/later/k", .body = "x", .blen = 1, ROOT,
			    .payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
			 411);
	expect_code("MissingContentLength");
	assert_int_equal(DO(.method = "PUT", .path = "/later/k", .body = "x", .blen = 1, ROOT,
			    .payload = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"),
			 501);
	assert_int_equal(DO(.method = "PATCH", .path = "/later/k", ROOT), 405);
}

static void test_truncated_body(void **state)
{
	char hdrs[1024], reqb[2048], out[4096];
	long n;
	mkbucket("trunc");
	/* Announce 100 bytes, send 10 and half-close: nothing is stored. */
	s3t_sign_raw(&T, "PUT", "/trunc/t", hdrs, sizeof(hdrs));
	n = snprintf(reqb, sizeof(reqb),
		     "PUT /trunc/t HTTP/1.1\r\n%sContent-Length: 100\r\n\r\n0123456789", hdrs);
	s3t_raw(&T, reqb, (size_t)n, out, sizeof(out), 3000, true);
	assert_null(strstr(out, "200 OK"));
	assert_int_equal(DO(.method = "HEAD", .path = "/trunc/t", ROOT), 404);
	/* No Content-Length and not chunked: 411. */
	s3t_sign_raw(&T, "PUT", "/trunc/u", hdrs, sizeof(hdrs));
	n = snprintf(reqb, sizeof(reqb), "PUT /trunc/u HTTP/1.1\r\n%sConnection: close\r\n\r\n",
		     hdrs);
	s3t_raw(&T, reqb, (size_t)n, out, sizeof(out), 3000, false);
	assert_non_null(strstr(out, " 411 "));
	assert_non_null(strstr(out, "MissingContentLength"));
	/* Over 5 GiB announced: refused before any byte is read. */
	s3t_sign_raw(&T, "PUT", "/trunc/v", hdrs, sizeof(hdrs));
	n = snprintf(
	    reqb, sizeof(reqb),
	    "PUT /trunc/v HTTP/1.1\r\n%sContent-Length: 6000000000\r\nExpect: 100-continue\r\n\r\n",
	    hdrs);
	s3t_raw(&T, reqb, (size_t)n, out, sizeof(out), 3000, false);
	assert_non_null(strstr(out, "EntityTooLarge"));
	assert_null(strstr(out, "100 Continue"));
	/* An auth failure with Expect: 100-continue answers before the body. */
	n = snprintf(reqb, sizeof(reqb),
		     "PUT /trunc/w HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
		     "Expect: 100-continue\r\n\r\n");
	s3t_raw(&T, reqb, (size_t)n, out, sizeof(out), 3000, false);
	assert_non_null(strstr(out, " 403 "));
	assert_null(strstr(out, "100 Continue"));
	/* Garbage request line and huge header: an error or a close, and the
	 * server keeps serving. */
	s3t_raw(&T, "\x01\x02 garbage\r\n\r\n", 14, out, sizeof(out), 2000, false);
	{
		size_t hl = 300000;
		char *huge = malloc(hl + 100);
		memcpy(huge, "GET / HTTP/1.1\r\nX-Big: ", 23);
		memset(huge + 23, 'a', hl);
		memcpy(huge + 23 + hl, "\r\n\r\n", 4);
		s3t_raw(&T, huge, hl + 27, out, sizeof(out), 3000, false);
		free(huge);
	}
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT), 200);
}

static void test_keepalive_many_requests(void **state)
{
	/* One curl handle reuses its connection. */
	CURL *c = curl_easy_init();
	long conns = 0;
	char url[128];
	mkbucket("keepalive");
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/keepalive/", T.port);
	for (int i = 0; i < 5; i++) {
		char cred[128];
		long st = 0, nc = 0;
		snprintf(cred, sizeof(cred), "%s:%s", S3T_ROOT_KEY, S3T_ROOT_SECRET);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
		curl_easy_setopt(c, CURLOPT_USERPWD, cred);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fwrite);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, stderr);
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		if (i == 2) /* GETs in between, on the same connection */
			curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
		assert_int_equal(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nc);
		assert_int_equal(st, 200);
		conns += nc;
	}
	curl_easy_cleanup(c);
	assert_int_equal(conns, 1);
}

/* ---- manifests, concurrency, faults, metrics ---- */

static uint64_t manifests(void)
{
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(T.pool, &st), 0);
	return st.manifests;
}

/* An overwrite drops the old manifest and a delete drops the last one, in
 * the same transaction as the record change. */
static void test_object_overwrite_releases_manifest(void **state)
{
	uint64_t m0;
	mkbucket("refs");
	m0 = manifests();
	put("/refs/o", "one", 3);
	assert_int_equal(manifests(), m0 + 1);
	put("/refs/o", "two!", 4);
	assert_int_equal(manifests(), m0 + 1);
	put("/refs/p", "one", 3);
	assert_int_equal(manifests(), m0 + 2);
	assert_int_equal(DO(.method = "DELETE", .path = "/refs/o", ROOT), 204);
	assert_int_equal(manifests(), m0 + 1);
	assert_int_equal(DO(.method = "DELETE", .path = "/refs/o", ROOT), 204);
	assert_int_equal(manifests(), m0 + 1);
	/* A refused upload leaves nothing behind. */
	assert_int_equal(DO(.method = "PUT", .path = "/refs/q", .body = "abc", .blen = 3, ROOT,
			    .hdrs = {"Content-MD5: XUFAKrxLKna5cZ2REBfFkg=="}),
			 400);
	assert_int_equal(manifests(), m0 + 1);
}

#define NCONC 24

/* Parallel PUTs, half to one key: every request succeeds, the key holds
 * one of the bodies whole, and exactly one manifest per live object
 * remains. */
static void test_concurrent_puts(void **state)
{
	CURLM *m = curl_multi_init();
	CURL *h[NCONC];
	struct curl_slist *hl[NCONC];
	static char bodies[NCONC][70000];
	char url[NCONC][128], cred[160], sha[NCONC][65];
	uint64_t m0;
	int running = 1;

	mkbucket("conc");
	m0 = manifests();
	snprintf(cred, sizeof(cred), "%s:%s", S3T_ROOT_KEY, S3T_ROOT_SECRET);
	for (int i = 0; i < NCONC; i++) {
		uint8_t md[32];
		unsigned mdl;
		char line[sizeof(sha[0]) + 32];
		memset(bodies[i], 'a' + i % 26, sizeof(bodies[i]));
		snprintf(bodies[i], 16, "body-%02d", i);
		EVP_Digest(bodies[i], sizeof(bodies[i]), md, &mdl, EVP_sha256(), NULL);
		for (int j = 0; j < 32; j++)
			sprintf(sha[i] + 2 * j, "%02x", md[j]);
		snprintf(url[i], sizeof(url[i]), "http://127.0.0.1:%u/conc/%s%d", T.port,
			 i % 2 ? "same" : "own", i % 2 ? 0 : i);
		h[i] = curl_easy_init();
		snprintf(line, sizeof(line), "x-amz-content-sha256: %.64s", sha[i]);
		hl[i] = curl_slist_append(NULL, line);
		curl_easy_setopt(h[i], CURLOPT_URL, url[i]);
		curl_easy_setopt(h[i], CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, bodies[i]);
		curl_easy_setopt(h[i], CURLOPT_POSTFIELDSIZE, (long)sizeof(bodies[i]));
		curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hl[i]);
		curl_easy_setopt(h[i], CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
		curl_easy_setopt(h[i], CURLOPT_USERPWD, cred);
		curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, fwrite);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, stderr);
		curl_multi_add_handle(m, h[i]);
	}
	while (running) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	for (int i = 0; i < NCONC; i++) {
		long st = 0;
		curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &st);
		assert_int_equal(st, 200);
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
		curl_slist_free_all(hl[i]);
	}
	curl_multi_cleanup(m);
	assert_int_equal(DO(.method = "GET", .path = "/conc/same0", ROOT), 200);
	assert_int_equal(R.len, sizeof(bodies[0]));
	{
		int which = atoi(R.body + 5);
		assert_true(which % 2 == 1 && which < NCONC);
		assert_memory_equal(R.body, bodies[which], sizeof(bodies[0]));
	}
	assert_int_equal(manifests(), m0 + NCONC / 2 + 1);
}

static void test_out_of_memory_is_503(void **state)
{
	fault_arm("s3.req_alloc", 1);
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT), 503);
	fault_arm("s3.req_alloc", 0);
	fault_arm("s3.req_start", 1);
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT), 503);
	expect_code("SlowDown");
	fault_arm("s3.req_start", 0);
	mkbucket("oom");
	fault_arm("s3.put_alloc", 1);
	assert_int_equal(DO(.method = "PUT", .path = "/oom/x", .body = "x", .blen = 1, ROOT), 503);
	fault_arm("s3.put_alloc", 0);
	assert_int_equal(DO(.method = "HEAD", .path = "/oom/x", ROOT), 404);
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT), 200);
}

static void test_metrics_recorded(void **state)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT), 200);
	assert_int_equal(metrics_render(&text, &len), 0);
	assert_non_null(strstr(text, "op=\"ListBuckets\""));
	assert_non_null(strstr(text, "op=\"PutObject\""));
	assert_non_null(strstr(text, "status=\"403\""));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_auth_anonymous_denied),
	    cmocka_unit_test(test_auth_wrong_secret),
	    cmocka_unit_test(test_auth_unknown_key),
	    cmocka_unit_test(test_auth_skewed_date),
	    cmocka_unit_test(test_auth_wrong_region),
	    cmocka_unit_test(test_header_section_too_large),
	    cmocka_unit_test(test_auth_curl_sigv4),
	    cmocka_unit_test(test_auth_presigned),
	    cmocka_unit_test(test_auth_raw_target_plus),
	    cmocka_unit_test(test_bucket_lifecycle),
	    cmocka_unit_test(test_bucket_invalid_names),
	    cmocka_unit_test(test_bucket_create_config),
	    cmocka_unit_test(test_virtual_host),
	    cmocka_unit_test(test_object_roundtrip_large),
	    cmocka_unit_test(test_object_empty),
	    cmocka_unit_test(test_object_metadata_and_head),
	    cmocka_unit_test(test_object_metadata_too_large),
	    cmocka_unit_test(test_object_ranges),
	    cmocka_unit_test(test_object_conditionals),
	    cmocka_unit_test(test_object_digests),
	    cmocka_unit_test(test_object_keys),
	    cmocka_unit_test(test_object_long_keys_grouped),
	    cmocka_unit_test(test_list_v1_v2),
	    cmocka_unit_test(test_list_delimiter_skips_prefix),
	    cmocka_unit_test(test_delete_objects),
	    cmocka_unit_test(test_not_implemented),
	    cmocka_unit_test(test_truncated_body),
	    cmocka_unit_test(test_keepalive_many_requests),
	    cmocka_unit_test(test_object_overwrite_releases_manifest),
	    cmocka_unit_test(test_concurrent_puts),
	    cmocka_unit_test(test_out_of_memory_is_503),
	    cmocka_unit_test(test_metrics_recorded),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
