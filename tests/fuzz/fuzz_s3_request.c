/* tests/fuzz/fuzz_s3_request.c - S3 request parsing.
 *
 * Input lines: target, Host, Range, an HTTP date, an If-Match list, a bucket
 * name, an ISO-8601 basic date, a user metadata header name; the rest is
 * raw bytes for the encode/decode round trip. Properties checked, not just
 * "no crash": decode(encode(x)) == x, ranges lie inside the object, dates
 * format and parse back to themselves. */
#include <stdio.h>
#include <string.h>

#include "objstore/s3_parse.h"
#include "tests/fuzz/fuzz_util.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static void request_target(const char *target, const char *host)
{
	struct s3_target t;
	if (s3_target_split(target, &t))
		return;
	CHECK(t.path[0] == '/');
	struct s3_query q;
	int r = s3_query_parse(t.query, t.query_len, &q);
	CHECK(r == 0 || r == CAIRN_EINVAL);
	if (r == 0) {
		for (size_t i = 0; i < q.n; i++)
			CHECK(s3_query_get(&q, q.p[i].name) != NULL);
		(void)s3_query_get(&q, "prefix");
		s3_query_free(&q);
	}
	size_t cap = t.path_len + strlen(host) + 2;
	char *buf = malloc(cap);
	if (!buf)
		return;
	struct s3_addr a;
	r = s3_addr_parse(t.path, t.path_len, host, "s3.localhost", buf, cap, &a);
	CHECK(r == 0 || r == CAIRN_EINVAL);
	if (r == 0) {
		CHECK(strlen(a.key) == a.key_len);
		(void)s3_bucket_name_check(a.bucket);
		r = s3_key_check(a.key, a.key_len);
		CHECK(r == 0 || r == CAIRN_EINVAL || r == CAIRN_ETOOBIG);
	}
	free(buf);
}

static void ranges(const char *hdr, const uint8_t *data, size_t size)
{
	uint64_t sizes[4] = {0, 1, size, UINT64_MAX};
	if (size >= 8)
		memcpy(&sizes[3], data, 8);
	for (int i = 0; i < 4; i++) {
		struct s3_range r;
		int ret = s3_range_parse(hdr, sizes[i], &r);
		CHECK(ret == 0 || ret == 1 || ret == CAIRN_ERANGE);
		if (ret == 0)
			CHECK(r.start <= r.end && r.end < sizes[i]);
	}
}

static void dates(const char *http, const char *iso)
{
	time_t t;
	char buf[64];
	if (s3_http_date_parse(http, &t) == 0) {
		s3_http_date_format(t, buf);
		time_t t2;
		CHECK(s3_http_date_parse(buf, &t2) == 0 && t2 == t);
	}
	if (s3_iso_basic_parse(iso, &t) == 0) {
		s3_iso_basic_format(t, buf);
		/* second 60 normalises to the next minute; otherwise identical */
		time_t t2;
		CHECK(s3_iso_basic_parse(buf, &t2) == 0 && t2 == t);
		s3_iso_ext_format(t, 999, buf);
		CHECK(strlen(buf) == S3_ISO_EXT_LEN);
	}
}

static void roundtrip(const char *raw, size_t len)
{
	size_t ecap = 3 * len + 1;
	char *enc = malloc(ecap), *dec = malloc(len + 1);
	if (!enc || !dec)
		goto out;
	for (int slash = 0; slash < 2; slash++) {
		long el = s3_uri_encode(raw, len, slash, enc, ecap);
		CHECK(el >= 0 && (size_t)el == strlen(enc));
		long dl = s3_pct_decode(enc, (size_t)el, true, dec, len + 1);
		if (memchr(raw, '\0', len)) {
			CHECK(dl == CAIRN_EINVAL);
			continue;
		}
		CHECK(dl == (long)len && memcmp(dec, raw, len) == 0);
	}
	/* Decoding arbitrary bytes never writes past cap. */
	(void)s3_pct_decode(raw, len, false, dec, len + 1);
	(void)s3_utf8_valid(raw, len);
out:
	free(enc);
	free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_lines l;
	if (size > 64 * 1024 || fuzz_split(data, size, 8, &l))
		return 0;
	request_target(fuzz_line(&l, 0), fuzz_line(&l, 1));
	ranges(fuzz_line(&l, 2), data, size);
	dates(fuzz_line(&l, 3), fuzz_line(&l, 6));
	const char *etag = "9b2cf535f27731c974343645a3985328";
	(void)s3_etag_list_match(fuzz_line(&l, 4), etag);
	struct s3_cond c = {fuzz_line(&l, 4), fuzz_line(&l, 4), fuzz_line(&l, 3), fuzz_line(&l, 3)};
	int r = s3_cond_eval(&c, etag, 784111777);
	CHECK(r == 0 || r == CAIRN_EPRECOND || r == CAIRN_ENOTMODIFIED);
	if (s3_bucket_name_check(fuzz_line(&l, 5)) == 0)
		CHECK(strlen(fuzz_line(&l, 5)) >= 3 && strlen(fuzz_line(&l, 5)) <= 63);
	(void)s3_meta_name_check(fuzz_line(&l, 7));
	(void)s3_meta_size(fuzz_line(&l, 7), fuzz_line(&l, 5));
	char q[128];
	(void)s3_etag_quote(fuzz_line(&l, 4), q, sizeof(q));
	roundtrip(l.rest, l.rest_len);
	free(l.buf);
	return 0;
}
