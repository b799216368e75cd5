/* objstore/s3_parse.h - S3 request parsing: targets, encodings, names, ranges, dates.
 *
 * Everything the S3 handlers need to turn raw request bytes into checked
 * values, and nothing that does I/O: split the raw request target into path
 * and query, percent-decode (refusing bad %XX and NUL), iterate query
 * parameters, find bucket and key (path-style and virtual-host-style),
 * validate bucket names and keys, parse Range, the conditional headers and
 * HTTP dates, format the dates S3 answers with, quote ETags and check
 * x-amz-meta-* sizes.
 *
 * Pure functions over caller memory; any thread. Returned pointers point into
 * the caller's buffers (stated per function). Only s3_query_parse allocates.
 */
#ifndef CAIRN_OBJSTORE_S3_PARSE_H
#define CAIRN_OBJSTORE_S3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/err.h"

/* S3_KEY_MAX, S3_BUCKET_MAX and S3_META_MAX are also in s3_format.h. */
#ifndef S3_KEY_MAX
#define S3_KEY_MAX 1024 /* bytes of UTF-8 */
#endif
#define S3_BUCKET_MIN 3
#ifndef S3_BUCKET_MAX
#define S3_BUCKET_MAX 63
#endif
#ifndef S3_META_MAX
#define S3_META_MAX 2048 /* x-amz-meta-*: sum of name and value bytes */
#endif
#define S3_META_PREFIX "x-amz-meta-"
#define S3_HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define S3_ISO_BASIC_LEN 16 /* "20130524T000000Z" */
#define S3_ISO_EXT_LEN 24   /* "2013-05-24T00:00:00.000Z" */

/* ---- request target ---- */

struct s3_target {
	const char *path; /* starts with '/'; NOT NUL-terminated at path_len */
	size_t path_len;
	const char *query; /* after '?', "" when absent; NUL-terminated (the target's end) */
	size_t query_len;
};

/* Splits a raw origin-form request target ("/b/k?x=1") at the first '?'.
 * A '#' fragment is refused. Pointers point into target. Returns 0 or
 * CAIRN_EINVAL (not starting with '/', control bytes, '#') -> InvalidURI. */
int s3_target_split(const char *target, struct s3_target *out) CAIRN_WUR;

/* Value of one hex digit, or -1. */
int s3_hexval(unsigned char c);
/* RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" (never encoded). */
bool s3_is_unreserved(unsigned char c);

/* Percent-decodes in[0..len) into out (cap >= len + 1 always suffices) and
 * NUL-terminates it. plus_space: '+' decodes to ' ' (query strings, as
 * S3 reads them); otherwise '+' stays '+' (paths). Returns the decoded
 * length, CAIRN_EINVAL for '%' not followed by two hex digits or a decoded
 * NUL byte, CAIRN_ETOOBIG when cap is too small. */
long s3_pct_decode(const char *in, size_t len, bool plus_space, char *out, size_t cap) CAIRN_WUR;

/* URI-encodes as AWS does (SigV4, encoding-type=url): bytes outside
 * A-Za-z0-9-_.~ become %XX (uppercase hex); '/' is kept when keep_slash.
 * NUL-terminates. cap >= 3 * len + 1 always suffices. Returns the length or
 * CAIRN_ETOOBIG. */
long s3_uri_encode(const char *in, size_t len, bool keep_slash, char *out, size_t cap) CAIRN_WUR;

/* ---- query parameters ---- */

/* No-allocation iteration over the raw pairs of a query string. */
struct s3_query_iter {
	const char *p, *end;
};
struct s3_qraw {
	const char *name; /* raw (still encoded), not NUL-terminated */
	size_t name_len;
	const char *value; /* raw; NULL when the pair has no '=' */
	size_t value_len;
};
void s3_query_iter_init(struct s3_query_iter *it, const char *query, size_t len);
/* 1 and *out set, or 0 at the end. Empty pairs ("a&&b") are skipped. */
int s3_query_next(struct s3_query_iter *it, struct s3_qraw *out);

/* All parameters, decoded ('+' as space). */
struct s3_qparam {
	const char *name;  /* NUL-terminated, decoded */
	const char *value; /* "" when the pair had no '=' */
	bool has_value;	   /* false for "?acl", true for "?acl=" */
};
struct s3_query {
	size_t n;
	struct s3_qparam *p; /* in query order */
	char *buf;	     /* owns the strings */
};
/* Parses and decodes a raw query. On success the caller frees with
 * s3_query_free (also safe on a zeroed or failed struct). Returns 0,
 * CAIRN_EINVAL (bad encoding or NUL) -> InvalidArgument/InvalidURI,
 * -ENOMEM. */
int s3_query_parse(const char *query, size_t len, struct s3_query *out) CAIRN_WUR;
void s3_query_free(struct s3_query *q);
/* Value of the first parameter with this exact (case-sensitive) name, ""
 * for a valueless one; NULL when absent. Valid until s3_query_free. */
const char *s3_query_get(const struct s3_query *q, const char *name);
static inline bool s3_query_has(const struct s3_query *q, const char *name)
{
	return s3_query_get(q, name) != NULL;
}

/* ---- bucket and key ---- */

struct s3_addr {
	const char *bucket; /* NUL-terminated, in buf; "" for service-level (ListBuckets) */
	const char *key;    /* NUL-terminated, decoded, in buf; "" for bucket-level */
	size_t key_len;
	bool virtual_host; /* bucket came from the Host header */
};

/* Finds bucket and key. host: the Host header (NULL ok; a ":port" is
 * stripped; compared case-insensitively); domain: the configured
 * virtual-host suffix (NULL: path-style only). When host is
 * "<bucket>.<domain>", the bucket is that label and the whole path (minus
 * its leading '/') is the key; otherwise the first path segment is the
 * bucket and the rest after its '/' is the key ("/b/" and "/b" are
 * bucket-level; "/b//k" has key "/k"). The path is percent-decoded with '+'
 * literal. buf receives the decoded names: cap >= path_len + host length + 2
 * suffices. Returns 0, CAIRN_EINVAL (bad %XX / NUL: InvalidURI), or
 * CAIRN_ETOOBIG (buf too small). Names are NOT validated: call
 * s3_bucket_name_check / s3_key_check. */
int s3_addr_parse(const char *path, size_t path_len, const char *host, const char *domain,
		  char *buf, size_t cap, struct s3_addr *out) CAIRN_WUR;

/* S3 bucket rules: 3..63 bytes of [a-z0-9.-], starting and ending with a
 * letter or digit, no "..", not an IPv4 address, not "xn--*", "sthree-*",
 * "*-s3alias" or "*--ol-s3"; plus cairn's reserved names ("cairn-*",
 * ".cairn*"), but for S3_SYSTEM_BUCKET, which is valid (its requests are
 * answered by its own rules). Returns 0 or CAIRN_EINVAL (->
 * InvalidBucketName). */
int s3_bucket_name_check(const char *name) CAIRN_WUR;
/* True for names cairn keeps for itself ("cairn-*", ".cairn*"). */
bool s3_bucket_name_reserved(const char *name);

/* Object key rules: 1..S3_KEY_MAX bytes, valid UTF-8, no NUL. Returns 0,
 * CAIRN_ETOOBIG (-> KeyTooLongError) or CAIRN_EINVAL (empty / bad UTF-8 ->
 * InvalidArgument). */
int s3_key_check(const char *key, size_t len) CAIRN_WUR;
/* Valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF), NUL allowed. */
bool s3_utf8_valid(const char *s, size_t len);

/* ---- Range ---- */

struct s3_range {
	uint64_t start; /* first byte */
	uint64_t end;	/* last byte, inclusive; always < object size */
};

/* Range header against an object of `size` bytes, as S3 answers it:
 * "bytes=a-b" (b clipped to size-1), "bytes=a-", "bytes=-n" (the last n
 * bytes; n > size means the whole object). Returns 0 with *out set (answer
 * 206), 1 when the header is absent, not a bytes range, malformed, or has
 * several ranges (S3 ignores those: answer 200 with the whole object), or
 * CAIRN_ERANGE (start >= size, "bytes=-0", any range of an empty object:
 * InvalidRange 416). */
int s3_range_parse(const char *hdr, uint64_t size, struct s3_range *out) CAIRN_WUR;

/* ---- dates ---- */

/* Parses an HTTP-date: IMF-fixdate, RFC 850 and asctime (RFC 7231 7.1.1.1).
 * Returns 0 or CAIRN_EINVAL. */
int s3_http_date_parse(const char *s, time_t *out) CAIRN_WUR;
/* "Sun, 06 Nov 1994 08:49:37 GMT" into out[S3_HTTP_DATE_LEN + 1]. */
void s3_http_date_format(time_t t, char *out);
/* "20130524T000000Z" (SigV4 x-amz-date) into out[S3_ISO_BASIC_LEN + 1]. */
void s3_iso_basic_format(time_t t, char *out);
/* Parses exactly "YYYYMMDDTHHMMSSZ". Returns 0 or CAIRN_EINVAL. */
int s3_iso_basic_parse(const char *s, time_t *out) CAIRN_WUR;
/* "2013-05-24T00:00:00.000Z" (XML LastModified, CreationDate) into
 * out[S3_ISO_EXT_LEN + 1]; ms is the millisecond part (0..999). */
void s3_iso_ext_format(time_t t, unsigned ms, char *out);

/* ---- ETags and conditional requests ---- */

/* Writes "\"<etag>\"" (etag is the bare hex form) into out (cap >=
 * strlen(etag) + 3). Returns the length or CAIRN_ETOOBIG. */
long s3_etag_quote(const char *etag, char *out, size_t cap) CAIRN_WUR;
/* Strips surrounding whitespace, a "W/" prefix and the quotes, in place
 * view: *out and *out_len describe the bare tag inside s. */
void s3_etag_unquote(const char *s, size_t len, const char **out, size_t *out_len);
/* True when the If-Match / If-None-Match list (comma-separated, quoted or
 * bare, "W/" accepted and compared weakly, or "*") contains etag (bare hex
 * form). */
bool s3_etag_list_match(const char *list, const char *etag);

struct s3_cond {
	const char *if_match; /* header values, NULL when absent */
	const char *if_none_match;
	const char *if_modified_since;
	const char *if_unmodified_since;
};
/* Evaluates the conditional headers for GET/HEAD in RFC 7232 order, which
 * is S3's documented behaviour: If-Match (412 on mismatch), else
 * If-Unmodified-Since (412 if modified after); then If-None-Match (304 on a
 * match), else If-Modified-Since (304 if not modified since). Unparseable
 * dates are ignored. Returns 0 (serve), CAIRN_EPRECOND or
 * CAIRN_ENOTMODIFIED. */
int s3_cond_eval(const struct s3_cond *c, const char *etag, time_t mtime) CAIRN_WUR;

/* ---- user metadata ---- */

/* True when name (any case) is "x-amz-meta-" followed by at least one byte. */
bool s3_meta_is_user(const char *name);
/* Bytes this header counts against S3_META_MAX: the name without the
 * "x-amz-meta-" prefix plus the value (S3 counts the UTF-8 bytes of each key
 * and value). */
size_t s3_meta_size(const char *name, const char *value);
/* Name rules for a user metadata header: the suffix is an HTTP token
 * (RFC 7230 tchar). Returns 0 or CAIRN_EINVAL. */
int s3_meta_name_check(const char *name) CAIRN_WUR;

#endif
