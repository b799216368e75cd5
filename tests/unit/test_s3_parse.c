/* tests/unit/test_s3_parse.c - request targets, names, ranges, dates, ETags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "objstore/s3_err.h"
#include "objstore/s3_parse.h"

static void test_target_split_path_and_query(void **state)
{
	(void)state;
	struct s3_target t;
	assert_int_equal(s3_target_split("/b/k?x=1&y", &t), 0);
	assert_int_equal(t.path_len, 4);
	assert_memory_equal(t.path, "/b/k", 4);
	assert_string_equal(t.query, "x=1&y");
	assert_int_equal(t.query_len, 5);
	assert_int_equal(s3_target_split("/", &t), 0);
	assert_int_equal(t.path_len, 1);
	assert_string_equal(t.query, "");
	/* A second '?' belongs to the query. */
	assert_int_equal(s3_target_split("/a?b?c", &t), 0);
	assert_string_equal(t.query, "b?c");
	assert_int_equal(s3_target_split("b/k", &t), CAIRN_EINVAL);
	assert_int_equal(s3_target_split("*", &t), CAIRN_EINVAL);
	assert_int_equal(s3_target_split("/a b", &t), CAIRN_EINVAL);
	assert_int_equal(s3_target_split("/a#frag", &t), CAIRN_EINVAL);
	assert_int_equal(s3_target_split("/a\x01", &t), CAIRN_EINVAL);
	assert_int_equal(s3_target_split("http://h/a", &t), CAIRN_EINVAL);
}

static void test_pct_decode_rejects_bad_escapes_and_nul(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(s3_pct_decode("a%20b+c", 7, false, out, sizeof(out)), 5);
	assert_string_equal(out, "a b+c");
	assert_int_equal(s3_pct_decode("a%20b+c", 7, true, out, sizeof(out)), 5);
	assert_string_equal(out, "a b c");
	assert_int_equal(s3_pct_decode("%e2%82%AC", 9, false, out, sizeof(out)), 3);
	assert_string_equal(out, "\xe2\x82\xac");
	assert_int_equal(s3_pct_decode("%", 1, false, out, sizeof(out)), CAIRN_EINVAL);
	assert_int_equal(s3_pct_decode("a%2", 3, false, out, sizeof(out)), CAIRN_EINVAL);
	assert_int_equal(s3_pct_decode("%zz", 3, false, out, sizeof(out)), CAIRN_EINVAL);
	assert_int_equal(s3_pct_decode("a%00b", 5, false, out, sizeof(out)), CAIRN_EINVAL);
	/* Length bounds: a NUL byte inside len is refused too. */
	assert_int_equal(s3_pct_decode("a\0b", 3, false, out, sizeof(out)), CAIRN_EINVAL);
	assert_int_equal(s3_pct_decode("abcd", 4, false, out, 4), CAIRN_ETOOBIG);
	assert_int_equal(s3_pct_decode("abcd", 4, false, out, 5), 4);
	assert_int_equal(s3_pct_decode("", 0, false, out, 1), 0);
	assert_string_equal(out, "");
}

static void test_uri_encode_aws_rules(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(s3_uri_encode("a b/c~d+e*", 10, true, out, sizeof(out)), 16);
	assert_string_equal(out, "a%20b/c~d%2Be%2A");
	assert_true(s3_uri_encode("a/b", 3, false, out, sizeof(out)) > 0);
	assert_string_equal(out, "a%2Fb");
	assert_true(s3_uri_encode("\xc3\xbc", 2, false, out, sizeof(out)) > 0);
	assert_string_equal(out, "%C3%BC");
	assert_int_equal(s3_uri_encode("  ", 2, false, out, 6), CAIRN_ETOOBIG);
	assert_int_equal(s3_uri_encode("  ", 2, false, out, 7), 6);
}

static void test_query_parse_decodes_and_finds(void **state)
{
	(void)state;
	struct s3_query q;
	const char *raw = "list-type=2&prefix=a+b%2Fc&&delimiter=%2F&fetch-owner&marker=";
	assert_int_equal(s3_query_parse(raw, strlen(raw), &q), 0);
	assert_int_equal(q.n, 5);
	assert_string_equal(s3_query_get(&q, "prefix"), "a b/c");
	assert_string_equal(s3_query_get(&q, "delimiter"), "/");
	assert_string_equal(s3_query_get(&q, "fetch-owner"), "");
	assert_false(q.p[3].has_value);
	assert_true(q.p[4].has_value);
	assert_true(s3_query_has(&q, "marker"));
	assert_null(s3_query_get(&q, "Prefix"));
	s3_query_free(&q);
	s3_query_free(&q); /* idempotent */
	assert_int_equal(s3_query_parse("a=%zz", 5, &q), CAIRN_EINVAL);
	assert_int_equal(q.n, 0);
	assert_null(q.p);
	assert_int_equal(s3_query_parse("a=%00", 5, &q), CAIRN_EINVAL);
	assert_int_equal(s3_query_parse("", 0, &q), 0);
	assert_int_equal(q.n, 0);
	s3_query_free(&q);
	/* Raw iteration keeps pairs encoded. */
	struct s3_query_iter it;
	struct s3_qraw r;
	s3_query_iter_init(&it, "a=1&b", 5);
	assert_int_equal(s3_query_next(&it, &r), 1);
	assert_int_equal(r.name_len, 1);
	assert_int_equal(r.value_len, 1);
	assert_int_equal(s3_query_next(&it, &r), 1);
	assert_null(r.value);
	assert_int_equal(s3_query_next(&it, &r), 0);
}

static void test_addr_path_style(void **state)
{
	(void)state;
	char buf[256];
	struct s3_addr a;
	const char *p = "/bkt/dir/a%20b+c";
	assert_int_equal(
	    s3_addr_parse(p, strlen(p), "127.0.0.1:9000", "s3.localhost", buf, sizeof(buf), &a), 0);
	assert_string_equal(a.bucket, "bkt");
	assert_string_equal(a.key, "dir/a b+c");
	assert_int_equal(a.key_len, 9);
	assert_false(a.virtual_host);
	assert_int_equal(s3_addr_parse("/", 1, NULL, NULL, buf, sizeof(buf), &a), 0);
	assert_string_equal(a.bucket, "");
	assert_string_equal(a.key, "");
	assert_int_equal(s3_addr_parse("/bkt", 4, NULL, NULL, buf, sizeof(buf), &a), 0);
	assert_string_equal(a.bucket, "bkt");
	assert_int_equal(a.key_len, 0);
	assert_int_equal(s3_addr_parse("/bkt/", 5, NULL, NULL, buf, sizeof(buf), &a), 0);
	assert_int_equal(a.key_len, 0);
	assert_int_equal(s3_addr_parse("/bkt//k", 7, NULL, NULL, buf, sizeof(buf), &a), 0);
	assert_string_equal(a.key, "/k");
	/* The host equal to the domain is path style. */
	assert_int_equal(
	    s3_addr_parse("/bkt/k", 6, "S3.LocalHost:9000", "s3.localhost", buf, sizeof(buf), &a),
	    0);
	assert_string_equal(a.bucket, "bkt");
	assert_false(a.virtual_host);
	assert_int_equal(s3_addr_parse("/b/%zz", 6, NULL, NULL, buf, sizeof(buf), &a),
			 CAIRN_EINVAL);
	assert_int_equal(s3_addr_parse("/b/a%00", 7, NULL, NULL, buf, sizeof(buf), &a),
			 CAIRN_EINVAL);
	assert_int_equal(s3_addr_parse("/bkt/key", 8, NULL, NULL, buf, 6, &a), CAIRN_ETOOBIG);
	assert_int_equal(s3_addr_parse("bkt", 3, NULL, NULL, buf, sizeof(buf), &a), CAIRN_EINVAL);
}

static void test_addr_virtual_host(void **state)
{
	(void)state;
	char buf[256];
	struct s3_addr a;
	assert_int_equal(s3_addr_parse("/dir/k%2Fx", 10, "my.bkt.s3.localhost:9000", "s3.localhost",
				       buf, sizeof(buf), &a),
			 0);
	assert_true(a.virtual_host);
	assert_string_equal(a.bucket, "my.bkt");
	assert_string_equal(a.key, "dir/k/x");
	assert_int_equal(
	    s3_addr_parse("/", 1, "bkt.s3.localhost.", "s3.localhost", buf, sizeof(buf), &a), 0);
	assert_string_equal(a.bucket, "bkt");
	assert_int_equal(a.key_len, 0);
	/* A suffix that is not at a label boundary is not the domain. */
	assert_int_equal(
	    s3_addr_parse("/b/k", 4, "xs3.localhost", "s3.localhost", buf, sizeof(buf), &a), 0);
	assert_false(a.virtual_host);
	assert_string_equal(a.bucket, "b");
	/* No domain configured: always path style. */
	assert_int_equal(s3_addr_parse("/b/k", 4, "bkt.s3.localhost", NULL, buf, sizeof(buf), &a),
			 0);
	assert_false(a.virtual_host);
	/* IPv6 literal with port. */
	assert_int_equal(
	    s3_addr_parse("/b/k", 4, "[::1]:9000", "s3.localhost", buf, sizeof(buf), &a), 0);
	assert_string_equal(a.bucket, "b");
}

static void test_bucket_name_rules(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "abc", "my-bucket", "my.bucket.1",
	    "a1b", "0bucket",	"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"};
	static const char *const bad[] = {
	    "ab",
	    "",
	    "ABC",
	    "my_bucket",
	    "-abc",
	    "abc-",
	    ".abc",
	    "abc.",
	    "a..b",
	    "192.168.5.4",
	    "xn--abc",
	    "abc-s3alias",
	    "abc--ol-s3",
	    "sthree-abc",
	    "cairn-internal",
	    "cairn-",
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234",
	    "a b c",
	    "bücket"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (s3_bucket_name_check(good[i]))
			print_error("good %s\n", good[i]);
		assert_int_equal(s3_bucket_name_check(good[i]), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (s3_bucket_name_check(bad[i]) != CAIRN_EINVAL)
			print_error("bad %s\n", bad[i]);
		assert_int_equal(s3_bucket_name_check(bad[i]), CAIRN_EINVAL);
	}
	/* An address-looking name that is not four octets is fine. */
	assert_int_equal(s3_bucket_name_check("192.168.5"), 0);
	assert_int_equal(s3_bucket_name_check("1.2.3.999"), 0);
	assert_true(s3_bucket_name_reserved("cairn-meta"));
	assert_true(s3_bucket_name_reserved(".cairn"));
	assert_false(s3_bucket_name_reserved("cairn"));
	assert_int_equal(s3_bucket_name_check("cairn"), 0);
}

static void test_key_rules_length_and_utf8(void **state)
{
	(void)state;
	char k[S3_KEY_MAX + 2];
	memset(k, 'a', sizeof(k));
	assert_int_equal(s3_key_check(k, S3_KEY_MAX), 0);
	assert_int_equal(s3_key_check(k, S3_KEY_MAX + 1), CAIRN_ETOOBIG);
	assert_int_equal(s3_key_check(k, 0), CAIRN_EINVAL);
	assert_int_equal(s3_key_check("a\0b", 3), CAIRN_EINVAL);
	assert_int_equal(s3_key_check("\xc3\xbc/\xf0\x9f\x98\x80", 7), 0);
	assert_int_equal(s3_key_check("\xc3", 1), CAIRN_EINVAL);	     /* truncated */
	assert_int_equal(s3_key_check("\xc0\xaf", 2), CAIRN_EINVAL);	     /* overlong */
	assert_int_equal(s3_key_check("\xed\xa0\x80", 3), CAIRN_EINVAL);     /* surrogate */
	assert_int_equal(s3_key_check("\xf4\x90\x80\x80", 4), CAIRN_EINVAL); /* > U+10FFFF */
	assert_int_equal(s3_key_check("\xe0\x80\x80", 3), CAIRN_EINVAL);     /* overlong 3 */
	assert_int_equal(s3_key_check("\xff", 1), CAIRN_EINVAL);
	assert_int_equal(s3_key_check("a\x01\x7f", 3), 0); /* controls are legal in keys */
}

static void test_range_forms_and_s3_semantics(void **state)
{
	(void)state;
	struct s3_range r;
	assert_int_equal(s3_range_parse(NULL, 100, &r), 1);
	assert_int_equal(s3_range_parse("bytes=0-9", 100, &r), 0);
	assert_true(r.start == 0 && r.end == 9);
	assert_int_equal(s3_range_parse("bytes=10-", 100, &r), 0);
	assert_true(r.start == 10 && r.end == 99);
	assert_int_equal(s3_range_parse("bytes=-10", 100, &r), 0);
	assert_true(r.start == 90 && r.end == 99);
	/* End beyond size clipped; suffix longer than the object: all of it. */
	assert_int_equal(s3_range_parse("bytes=50-1000", 100, &r), 0);
	assert_true(r.start == 50 && r.end == 99);
	assert_int_equal(s3_range_parse("bytes=-1000", 100, &r), 0);
	assert_true(r.start == 0 && r.end == 99);
	assert_int_equal(s3_range_parse("bytes=99-99", 100, &r), 0);
	assert_true(r.start == 99 && r.end == 99);
	assert_int_equal(s3_range_parse("bytes = 1-2", 100, &r), 0);
	/* Unsatisfiable: 416. */
	assert_int_equal(s3_range_parse("bytes=100-", 100, &r), CAIRN_ERANGE);
	assert_int_equal(s3_range_parse("bytes=100-200", 100, &r), CAIRN_ERANGE);
	assert_int_equal(s3_range_parse("bytes=-0", 100, &r), CAIRN_ERANGE);
	assert_int_equal(s3_range_parse("bytes=0-", 0, &r), CAIRN_ERANGE);
	assert_int_equal(s3_range_parse("bytes=-5", 0, &r), CAIRN_ERANGE);
	assert_int_equal(s3_range_parse("bytes=99999999999999999999999-", 100, &r), CAIRN_ERANGE);
	/* Huge end: clipped. */
	assert_int_equal(s3_range_parse("bytes=1-99999999999999999999999", 100, &r), 0);
	assert_true(r.start == 1 && r.end == 99);
	/* Ignored (whole object, 200): malformed, other units, several ranges. */
	static const char *const ignored[] = {
	    "bytes=5-2",  "items=0-1", "bytes=",    "bytes=-",	  "bytes=a-b", "bytes=0-1,5-6",
	    "bytes=1-2x", "0-1",       "bytes=--1", "bytes=1--2", ""};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
		if (s3_range_parse(ignored[i], 100, &r) != 1)
			print_error("range %s\n", ignored[i]);
		assert_int_equal(s3_range_parse(ignored[i], 100, &r), 1);
	}
}

static void test_http_date_three_formats(void **state)
{
	(void)state;
	time_t t;
	const time_t want = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
	assert_int_equal(s3_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
	assert_int_equal(t, want);
	assert_int_equal(s3_http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
	assert_int_equal(t, want);
	assert_int_equal(s3_http_date_parse("Sun Nov  6 08:49:37 1994", &t), 0);
	assert_int_equal(t, want);
	assert_int_equal(s3_http_date_parse("Sun, 06 Nov 1994 08:49:37 UTC", &t), CAIRN_EINVAL);
	assert_int_equal(s3_http_date_parse("Sun, 31 Feb 1994 08:49:37 GMT", &t), CAIRN_EINVAL);
	assert_int_equal(s3_http_date_parse("Sun, 06 Foo 1994 08:49:37 GMT", &t), CAIRN_EINVAL);
	assert_int_equal(s3_http_date_parse("Sun, 06 Nov 1994 24:49:37 GMT", &t), CAIRN_EINVAL);
	assert_int_equal(s3_http_date_parse("", &t), CAIRN_EINVAL);
	assert_int_equal(s3_http_date_parse("yesterday", &t), CAIRN_EINVAL);
	assert_int_equal(s3_http_date_parse("Tue, 29 Feb 2000 00:00:00 GMT", &t), 0);
	assert_int_equal(s3_http_date_parse("Mon, 29 Feb 1900 00:00:00 GMT", &t), CAIRN_EINVAL);
	char buf[S3_HTTP_DATE_LEN + 1];
	s3_http_date_format(want, buf);
	assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
}

static void test_iso8601_basic_and_extended(void **state)
{
	(void)state;
	time_t t;
	char b[S3_ISO_BASIC_LEN + 1], e[S3_ISO_EXT_LEN + 1];
	assert_int_equal(s3_iso_basic_parse("20130524T000000Z", &t), 0);
	assert_int_equal(t, 1369353600);
	s3_iso_basic_format(t, b);
	assert_string_equal(b, "20130524T000000Z");
	s3_iso_ext_format(t, 7, e);
	assert_string_equal(e, "2013-05-24T00:00:00.007Z");
	assert_int_equal(s3_iso_basic_parse("20130524T000000", &t), CAIRN_EINVAL);
	assert_int_equal(s3_iso_basic_parse("20131324T000000Z", &t), CAIRN_EINVAL);
	assert_int_equal(s3_iso_basic_parse("2013052AT000000Z", &t), CAIRN_EINVAL);
	assert_int_equal(s3_iso_basic_parse("20130524T000000Z ", &t), CAIRN_EINVAL);
}

static void test_etag_lists_and_conditions(void **state)
{
	(void)state;
	const char *et = "9b2cf535f27731c974343645a3985328";
	char q[64];
	assert_int_equal(s3_etag_quote(et, q, sizeof(q)), 34);
	assert_string_equal(q, "\"9b2cf535f27731c974343645a3985328\"");
	assert_int_equal(s3_etag_quote(et, q, 34), CAIRN_ETOOBIG);
	const char *u;
	size_t ul;
	s3_etag_unquote(" W/\"abc\" ", 9, &u, &ul);
	assert_int_equal(ul, 3);
	assert_memory_equal(u, "abc", 3);
	assert_true(s3_etag_list_match("\"9b2cf535f27731c974343645a3985328\"", et));
	assert_true(s3_etag_list_match("9b2cf535f27731c974343645a3985328", et));
	assert_true(s3_etag_list_match("\"x\", W/\"9b2cf535f27731c974343645a3985328\"", et));
	assert_true(s3_etag_list_match("*", et));
	assert_false(s3_etag_list_match("\"x\",\"y\"", et));
	assert_false(s3_etag_list_match("", et));
	assert_false(s3_etag_list_match("\"9b2cf535f27731c974343645a398532\"", et));

	const time_t mtime = 784111777;
	struct s3_cond c = {0};
	assert_int_equal(s3_cond_eval(&c, et, mtime), 0);
	c.if_match = "\"other\"";
	assert_int_equal(s3_cond_eval(&c, et, mtime), CAIRN_EPRECOND);
	/* If-Match true wins over If-Unmodified-Since false (S3 doc). */
	c.if_match = "*";
	c.if_unmodified_since = "Sat, 05 Nov 1994 08:49:37 GMT";
	assert_int_equal(s3_cond_eval(&c, et, mtime), 0);
	c.if_match = NULL;
	assert_int_equal(s3_cond_eval(&c, et, mtime), CAIRN_EPRECOND);
	c.if_unmodified_since = "Sun, 06 Nov 1994 08:49:37 GMT";
	assert_int_equal(s3_cond_eval(&c, et, mtime), 0);
	c.if_unmodified_since = "garbage";
	assert_int_equal(s3_cond_eval(&c, et, mtime), 0);
	c.if_unmodified_since = NULL;
	c.if_none_match = "\"9b2cf535f27731c974343645a3985328\"";
	assert_int_equal(s3_cond_eval(&c, et, mtime), CAIRN_ENOTMODIFIED);
	/* If-None-Match false (no match) beats If-Modified-Since. */
	c.if_none_match = "\"zzz\"";
	c.if_modified_since = "Mon, 07 Nov 1994 08:49:37 GMT";
	assert_int_equal(s3_cond_eval(&c, et, mtime), 0);
	c.if_none_match = NULL;
	assert_int_equal(s3_cond_eval(&c, et, mtime), CAIRN_ENOTMODIFIED);
	c.if_modified_since = "Sat, 05 Nov 1994 08:49:37 GMT";
	assert_int_equal(s3_cond_eval(&c, et, mtime), 0);
}

static void test_user_metadata_names_and_size(void **state)
{
	(void)state;
	assert_true(s3_meta_is_user("x-amz-meta-color"));
	assert_true(s3_meta_is_user("X-Amz-Meta-Color"));
	assert_false(s3_meta_is_user("x-amz-meta-"));
	assert_false(s3_meta_is_user("x-amz-date"));
	assert_int_equal(s3_meta_size("x-amz-meta-color", "blue"), 9);
	assert_int_equal(s3_meta_name_check("x-amz-meta-good_name.1"), 0);
	assert_int_equal(s3_meta_name_check("x-amz-meta-bad name"), CAIRN_EINVAL);
	assert_int_equal(s3_meta_name_check("x-amz-meta-bad(name)"), CAIRN_EINVAL);
	assert_int_equal(s3_meta_name_check("content-type"), CAIRN_EINVAL);
}

static void test_err_table_codes_and_statuses(void **state)
{
	(void)state;
	static const struct {
		int err;
		const char *code;
		int status;
	} map[] = {
	    {CAIRN_ENOTFOUND, "NoSuchKey", 404},
	    {CAIRN_EEXISTS, "BucketAlreadyExists", 409},
	    {CAIRN_ENOTEMPTY, "BucketNotEmpty", 409},
	    {CAIRN_EAUTH, "SignatureDoesNotMatch", 403},
	    {CAIRN_ENOKEY, "InvalidAccessKeyId", 403},
	    {CAIRN_EEXPIRED, "AccessDenied", 403},
	    {CAIRN_ESKEW, "RequestTimeTooSkewed", 403},
	    {CAIRN_EDENIED, "AccessDenied", 403},
	    {CAIRN_ENOSPACE, "InsufficientStorage", 507},
	    {-ENOSPC, "InsufficientStorage", 507},
	    {CAIRN_ERANGE, "InvalidRange", 416},
	    {CAIRN_EPRECOND, "PreconditionFailed", 412},
	    {CAIRN_ENOTMODIFIED, "NotModified", 304},
	    {CAIRN_EBADDIGEST, "BadDigest", 400},
	    {CAIRN_ESHORT, "IncompleteBody", 400},
	    {CAIRN_ETOOBIG, "EntityTooLarge", 400},
	    {-ENOMEM, "SlowDown", 503},
	    {CAIRN_EDEGRADED, "ServiceUnavailable", 503},
	    {CAIRN_ECORRUPT, "InternalError", 500},
	    {-EIO, "InternalError", 500},
	    {-ENAMETOOLONG, "KeyTooLongError", 400},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		enum s3_error e = s3_err_from_cairn(map[i].err);
		assert_string_equal(s3_err_code(e), map[i].code);
		assert_int_equal(s3_err_status(e), map[i].status);
	}
	assert_int_equal(s3_err_from_cairn(0), S3E_OK);
	assert_string_equal(s3_err_info(S3E_EXPIRED)->message, "Request has expired");
	/* Every row is filled. */
	for (int e = 1; e < S3E_COUNT; e++) {
		const struct s3_error_info *in = s3_err_info((enum s3_error)e);
		assert_non_null(in->code);
		assert_non_null(in->message);
		assert_true(in->status >= 300 && in->status < 600);
	}
	assert_string_equal(s3_err_code((enum s3_error)9999), "InternalError");
	assert_string_equal(s3_err_code(S3E_AUTH_HEADER_MALFORMED), "AuthorizationHeaderMalformed");
	assert_string_equal(s3_err_code(S3E_MISSING_CONTENT_LENGTH), "MissingContentLength");
	assert_int_equal(s3_err_status(S3E_MISSING_CONTENT_LENGTH), 411);
	assert_int_equal(s3_err_status(S3E_METHOD_NOT_ALLOWED), 405);
	assert_int_equal(s3_err_status(S3E_NOT_IMPLEMENTED), 501);
}

static void test_err_xml_document(void **state)
{
	(void)state;
	char *doc;
	size_t len;
	const struct s3_err_extra ex[] = {{"BucketName", "b<&>"}, {"Key", NULL}};
	assert_int_equal(s3_err_xml(S3E_NO_SUCH_BUCKET, NULL, "/b<&>", "REQ1", ex, 2, &doc, &len),
			 0);
	assert_int_equal(len, strlen(doc));
	assert_string_equal(doc, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				 "<Error><Code>NoSuchBucket</Code>"
				 "<Message>The specified bucket does not exist</Message>"
				 "<BucketName>b&lt;&amp;&gt;</BucketName>"
				 "<Resource>/b&lt;&amp;&gt;</Resource>"
				 "<RequestId>REQ1</RequestId></Error>");
	free(doc);
	assert_int_equal(s3_err_xml(S3E_ACCESS_DENIED, "custom", NULL, NULL, NULL, 0, &doc, &len),
			 0);
	assert_non_null(strstr(doc, "<Code>AccessDenied</Code><Message>custom</Message></Error>"));
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_target_split_path_and_query),
	    cmocka_unit_test(test_pct_decode_rejects_bad_escapes_and_nul),
	    cmocka_unit_test(test_uri_encode_aws_rules),
	    cmocka_unit_test(test_query_parse_decodes_and_finds),
	    cmocka_unit_test(test_addr_path_style),
	    cmocka_unit_test(test_addr_virtual_host),
	    cmocka_unit_test(test_bucket_name_rules),
	    cmocka_unit_test(test_key_rules_length_and_utf8),
	    cmocka_unit_test(test_range_forms_and_s3_semantics),
	    cmocka_unit_test(test_http_date_three_formats),
	    cmocka_unit_test(test_iso8601_basic_and_extended),
	    cmocka_unit_test(test_etag_lists_and_conditions),
	    cmocka_unit_test(test_user_metadata_names_and_size),
	    cmocka_unit_test(test_err_table_codes_and_statuses),
	    cmocka_unit_test(test_err_xml_document),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
