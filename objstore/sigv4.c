/* objstore/sigv4.c - AWS Signature Version 4 verification (header and presigned).
 *
 * The canonical request is rebuilt from the raw request target. Clients do
 * not all agree on two details, so verification tries the few readings a
 * signer can have meant and accepts the signature if one matches (each is a
 * complete, valid SigV4 canonical form of the same request):
 *   - the path: AWS's form (every byte outside the unreserved set and '/'
 *     as %XX, existing %XX kept with uppercase hex), or the path exactly as
 *     sent (signers that do not re-encode, e.g. curl);
 *   - the query: each name and value decoded and re-encoded the AWS way,
 *     with a raw '+' read as a space ("%20", form encoding, how S3 and
 *     s3_query_parse read it) or as a literal plus ("%2B"); or the pairs
 *     exactly as sent, only sorted (curl 7.88 and botocore signing a URL
 *     that already has a query do this, e.g. keeping a raw '+').
 * Nothing in the second reading widens what a signature authorises: the
 * signed bytes are the sent bytes.
 */
#include "objstore/sigv4.h"

#include <errno.h>
#include <pthread.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/fault.h"
#include "objstore/s3_parse.h"

#define ALGO "AWS4-HMAC-SHA256"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- small helpers ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void sb_grow_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + n + 1)
		cap *= 2;
	char *np = FAULT("sigv4_alloc") ? NULL : realloc(b->p, cap);
	if (!np) {
		b->err = -ENOMEM;
		return;
	}
	b->p = np;
	b->cap = cap;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Appends n bytes, keeping the buffer NUL-terminated. The fast path is
 * inline: canonicalisation appends mostly one byte at a time. */
static inline void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		sb_grow_put(b, s, n);
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static inline void sb_putc(struct sbuf *b, char c)
{
	if (b->len + 2 > b->cap) {
		sb_grow_put(b, &c, 1);
		return;
	}
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

static const char hexdig[] = "0123456789ABCDEF";

/* A hex digit as AWS writes it (0-9, A-F); NUL is not one. */
static bool isupper_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static void sb_encode_byte(struct sbuf *b, unsigned char c)
{
	char e[3] = {'%', hexdig[c >> 4], hexdig[c & 15]};
	sb_put(b, e, 3);
}

/* AWS URI-encoding of already decoded bytes. */
static void sb_uri_encode(struct sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (s3_is_unreserved(c))
			sb_putc(b, (char)c);
		else
			sb_encode_byte(b, c);
	}
}

/* Decodes %XX (and '+' as space when plus_space) into b, NUL bytes
 * allowed (they are re-encoded). Returns 0 or CAIRN_EINVAL on a bad %XX. */
static int sb_decode(struct sbuf *b, const char *s, size_t n, bool plus_space)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return CAIRN_EINVAL;
			int h = s3_hexval((unsigned char)s[i + 1]),
			    l = s3_hexval((unsigned char)s[i + 2]);
			if (h < 0 || l < 0)
				return CAIRN_EINVAL;
			c = (char)(h << 4 | l);
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		sb_putc(b, c);
	}
	return 0;
}

static bool is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s3_hexval((unsigned char)s[i]) < 0)
			return false;
	return true;
}

static void lower_copy(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = src[i];
		dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	dst[n] = '\0';
}

/* First header with this name (case-insensitive), or NULL. */
static const char *find_header(const struct sigv4_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value ? req->headers[i].value : "";
	return NULL;
}

static void trim(const char **s, size_t *n)
{
	while (*n && (**s == ' ' || **s == '\t'))
		(*s)++, (*n)--;
	while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

static const char *target_query(const char *target, size_t *len)
{
	const char *q = strchr(target, '?');
	if (!q) {
		*len = 0;
		return "";
	}
	*len = strlen(q + 1);
	return q + 1;
}

/* ---- parsing ---- */

/* "AK/20130524/us-east-1/s3/aws4_request" (already decoded). */
static int parse_credential(const char *s, size_t n, struct sigv4_auth *a)
{
	const char *slash[4];
	int found = 0;
	for (size_t i = n; i-- > 0 && found < 4;)
		if (s[i] == '/')
			slash[found++] = s + i;
	if (found < 4)
		return CAIRN_EINVAL;
	/* slash[3] ends the key, [2] the date, [1] the region, [0] the service. */
	size_t aklen = (size_t)(slash[3] - s);
	size_t dlen = (size_t)(slash[2] - slash[3] - 1);
	size_t rlen = (size_t)(slash[1] - slash[2] - 1);
	size_t svlen = (size_t)(slash[0] - slash[1] - 1);
	size_t tlen = (size_t)(s + n - slash[0] - 1);
	if (aklen == 0 || aklen >= sizeof(a->access_key) || dlen != 8 || rlen == 0 ||
	    rlen >= sizeof(a->region) || svlen == 0 || svlen >= sizeof(a->service))
		return CAIRN_EINVAL;
	if (tlen != strlen("aws4_request") || memcmp(slash[0] + 1, "aws4_request", tlen) != 0)
		return CAIRN_EINVAL;
	memcpy(a->access_key, s, aklen);
	a->access_key[aklen] = '\0';
	memcpy(a->date, slash[3] + 1, 8);
	a->date[8] = '\0';
	for (int i = 0; i < 8; i++)
		if (a->date[i] < '0' || a->date[i] > '9')
			return CAIRN_EINVAL;
	memcpy(a->region, slash[2] + 1, rlen);
	a->region[rlen] = '\0';
	memcpy(a->service, slash[1] + 1, svlen);
	a->service[svlen] = '\0';
	/* Only S3 is served here; a scope for another service is a request
	 * signed for someone else. */
	if (strcmp(a->service, "s3") != 0)
		return CAIRN_EINVAL;
	for (size_t i = 0; i < aklen; i++)
		if ((unsigned char)a->access_key[i] <= 0x20 || a->access_key[i] == 0x7f)
			return CAIRN_EINVAL;
	return 0;
}

/* "host;range;x-amz-date": lowercased; at most SIGV4_MAX_SIGNED_HEADERS,
 * no empty names, must name host. */
static int parse_signed_headers(const char *s, size_t n, struct sigv4_auth *a)
{
	if (n == 0 || n >= sizeof(a->signed_headers))
		return CAIRN_EINVAL;
	lower_copy(a->signed_headers, s, n);
	int count = 0;
	bool host = false;
	const char *p = a->signed_headers;
	for (;;) {
		const char *semi = strchr(p, ';');
		size_t len = semi ? (size_t)(semi - p) : strlen(p);
		if (len == 0)
			return CAIRN_EINVAL;
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c <= 0x20 || c >= 0x7f || c == ':' || c == ',' || c == '=')
				return CAIRN_EINVAL;
		}
		if (len == 4 && memcmp(p, "host", 4) == 0)
			host = true;
		if (++count > SIGV4_MAX_SIGNED_HEADERS)
			return CAIRN_EINVAL;
		if (!semi)
			break;
		p = semi + 1;
	}
	return host ? 0 : CAIRN_EINVAL;
}

static int parse_signature(const char *s, size_t n, struct sigv4_auth *a)
{
	if (!is_hex64(s, n))
		return CAIRN_EINVAL;
	lower_copy(a->signature, s, n);
	return 0;
}

static int set_payload(const char *v, size_t n, struct sigv4_auth *a)
{
	if (n >= sizeof(a->payload_raw))
		return CAIRN_EINVAL;
	memcpy(a->payload_raw, v, n);
	a->payload_raw[n] = '\0';
	if (is_hex64(v, n)) {
		a->payload = SIGV4_PAYLOAD_HASH;
		lower_copy(a->payload_hash, v, n);
	} else if (strcmp(a->payload_raw, "UNSIGNED-PAYLOAD") == 0) {
		a->payload = SIGV4_PAYLOAD_UNSIGNED;
	} else if (strncmp(a->payload_raw, "STREAMING-", 10) == 0) {
		a->payload = SIGV4_PAYLOAD_STREAMING;
	} else {
		return CAIRN_EINVAL;
	}
	return 0;
}

static int set_amz_date(const char *v, size_t n, struct sigv4_auth *a)
{
	time_t t;
	if (n != S3_ISO_BASIC_LEN)
		return CAIRN_EINVAL;
	memcpy(a->amz_date, v, n);
	a->amz_date[n] = '\0';
	if (s3_iso_basic_parse(a->amz_date, &t))
		return CAIRN_EINVAL;
	return 0;
}

static bool signed_header_listed(const struct sigv4_auth *a, const char *name)
{
	size_t nl = strlen(name);
	const char *p = a->signed_headers;
	for (;;) {
		const char *semi = strchr(p, ';');
		size_t len = semi ? (size_t)(semi - p) : strlen(p);
		if (len == nl && memcmp(p, name, nl) == 0)
			return true;
		if (!semi)
			return false;
		p = semi + 1;
	}
}

static int parse_header_auth(const struct sigv4_request *req, const char *authz,
			     struct sigv4_auth *a)
{
	const char *p = authz;
	bool have_cred = false, have_sh = false, have_sig = false;
	int ret;

	while (*p == ' ' || *p == '\t')
		p++;
	size_t alen = strlen(ALGO);
	if (strncmp(p, ALGO, alen) != 0 || (p[alen] != ' ' && p[alen] != '\t'))
		return CAIRN_EINVAL;
	p += alen;
	/* Components separated by commas and/or spaces, in any order, as
	 * AWS tolerates them. */
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *start = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		const char *eq = memchr(start, '=', (size_t)(p - start));
		if (!eq)
			return CAIRN_EINVAL;
		size_t kl = (size_t)(eq - start);
		const char *v = eq + 1;
		size_t vl = (size_t)(p - v);
		if (kl == 10 && memcmp(start, "Credential", 10) == 0) {
			if (have_cred)
				return CAIRN_EINVAL;
			have_cred = true;
			if ((ret = parse_credential(v, vl, a)))
				return ret;
		} else if (kl == 13 && memcmp(start, "SignedHeaders", 13) == 0) {
			if (have_sh)
				return CAIRN_EINVAL;
			have_sh = true;
			if ((ret = parse_signed_headers(v, vl, a)))
				return ret;
		} else if (kl == 9 && memcmp(start, "Signature", 9) == 0) {
			if (have_sig)
				return CAIRN_EINVAL;
			have_sig = true;
			if ((ret = parse_signature(v, vl, a)))
				return ret;
		} else {
			return CAIRN_EINVAL;
		}
	}
	if (!have_cred || !have_sh || !have_sig)
		return CAIRN_EINVAL;

	/* Request time: X-Amz-Date, else Date (then signed as HTTP-date
	 * converted to the basic ISO form, as AWS does).
	 * A missing or unreadable request time is S3's AccessDenied ("requires
	 * a valid Date or x-amz-date header"), not a malformed header. */
	const char *d = find_header(req, "x-amz-date");
	if (d) {
		size_t dl = strlen(d);
		trim(&d, &dl);
		if (set_amz_date(d, dl, a))
			return CAIRN_EDENIED;
	} else if ((d = find_header(req, "date"))) {
		time_t t;
		if (s3_http_date_parse(d, &t))
			return CAIRN_EDENIED;
		s3_iso_basic_format(t, a->amz_date);
	} else {
		return CAIRN_EDENIED;
	}
	if (memcmp(a->amz_date, a->date, 8) != 0)
		return CAIRN_EINVAL;

	const char *ph = find_header(req, "x-amz-content-sha256");
	if (ph) {
		size_t pl = strlen(ph);
		trim(&ph, &pl);
		if ((ret = set_payload(ph, pl, a)))
			return ret;
	} else {
		/* S3 itself requires the header; curl 7.88's --aws-sigv4 does
		 * not send it and signs the hash of an empty body. Reading it
		 * so keeps GET/HEAD/DELETE from curl working, and a body can
		 * then only pass the payload check if it is empty. */
		a->payload = SIGV4_PAYLOAD_HASH;
		memcpy(a->payload_hash, EMPTY_SHA256, 65);
		a->payload_raw[0] = '\0';
	}
	return 0;
}

/* Presigned: every X-Amz-* parameter decoded from the raw query. */
static int parse_presigned(const struct sigv4_request *req, struct sigv4_auth *a)
{
	size_t qlen;
	const char *q = target_query(req->target, &qlen);
	struct s3_query_iter it;
	struct s3_qraw raw;
	bool have_alg = false, have_cred = false, have_date = false, have_exp = false,
	     have_sh = false, have_sig = false, have_payload = false;
	char val[1100];
	int ret;

	s3_query_iter_init(&it, q, qlen);
	while (s3_query_next(&it, &raw)) {
		if (raw.name_len < 6 || strncmp(raw.name, "X-Amz-", 6) != 0)
			continue;
		const char *n = raw.name + 6;
		size_t nl = raw.name_len - 6;
#define IS(lit) (nl == sizeof(lit) - 1 && memcmp(n, lit, nl) == 0)
		/* Only the parameters read here are decoded (a security token
		 * or other X-Amz-* parameter may be long; it is only signed). */
		if (!IS("Algorithm") && !IS("Credential") && !IS("Date") && !IS("Expires") &&
		    !IS("SignedHeaders") && !IS("Signature") && !IS("Content-Sha256"))
			continue;
		long vl = s3_pct_decode(raw.value ? raw.value : "", raw.value_len, false, val,
					sizeof(val));
		if (vl < 0)
			return CAIRN_EINVAL;
		bool *seen = NULL;
		if (IS("Algorithm")) {
			seen = &have_alg;
			if (strcmp(val, ALGO) != 0)
				return CAIRN_EINVAL;
		} else if (IS("Credential")) {
			seen = &have_cred;
			if ((ret = parse_credential(val, (size_t)vl, a)))
				return ret;
		} else if (IS("Date")) {
			seen = &have_date;
			if ((ret = set_amz_date(val, (size_t)vl, a)))
				return ret;
		} else if (IS("Expires")) {
			seen = &have_exp;
			if (vl == 0 || vl > 7)
				return CAIRN_EINVAL;
			long e = 0;
			for (long i = 0; i < vl; i++) {
				if (val[i] < '0' || val[i] > '9')
					return CAIRN_EINVAL;
				e = e * 10 + (val[i] - '0');
			}
			if (e < 1 || e > SIGV4_PRESIGN_MAX)
				return CAIRN_EINVAL;
			a->expires = e;
		} else if (IS("SignedHeaders")) {
			seen = &have_sh;
			if ((ret = parse_signed_headers(val, (size_t)vl, a)))
				return ret;
		} else if (IS("Signature")) {
			seen = &have_sig;
			if ((ret = parse_signature(val, (size_t)vl, a)))
				return ret;
		} else if (IS("Content-Sha256")) {
			seen = &have_payload;
			if ((ret = set_payload(val, (size_t)vl, a)))
				return ret;
		}
#undef IS
		if (seen) {
			if (*seen)
				return CAIRN_EINVAL; /* a repeated auth parameter */
			*seen = true;
		}
	}
	if (!have_alg || !have_cred || !have_date || !have_exp || !have_sh || !have_sig)
		return CAIRN_EINVAL;
	if (memcmp(a->amz_date, a->date, 8) != 0)
		return CAIRN_EINVAL;
	if (!have_payload) {
		/* A presigned URL's body is unsigned unless the signer chose
		 * to sign x-amz-content-sha256 as a header. */
		const char *ph = find_header(req, "x-amz-content-sha256");
		if (ph && signed_header_listed(a, "x-amz-content-sha256")) {
			size_t pl = strlen(ph);
			trim(&ph, &pl);
			if ((ret = set_payload(ph, pl, a)))
				return ret;
		} else {
			a->payload = SIGV4_PAYLOAD_UNSIGNED;
			strcpy(a->payload_raw, "UNSIGNED-PAYLOAD");
		}
	}
	return 0;
}

static bool query_has(const char *target, const char *name)
{
	size_t qlen, nl = strlen(name);
	const char *q = target_query(target, &qlen);
	struct s3_query_iter it;
	struct s3_qraw raw;
	s3_query_iter_init(&it, q, qlen);
	while (s3_query_next(&it, &raw))
		if (raw.name_len == nl && memcmp(raw.name, name, nl) == 0)
			return true;
	return false;
}

int sigv4_parse(const struct sigv4_request *req, struct sigv4_auth *out)
{
	memset(out, 0, sizeof(*out));
	if (!req || !req->target || !req->method)
		return CAIRN_EINVAL;
	const char *authz = find_header(req, "authorization");
	/* An empty Authorization header signs nothing: the request is anonymous. */
	if (authz && !authz[strspn(authz, " \t")])
		authz = NULL;
	bool presigned = query_has(req->target, "X-Amz-Algorithm");
	if (authz && presigned)
		return CAIRN_EINVAL; /* only one auth mechanism allowed */
	if (presigned) {
		out->presigned = true;
		int ret = parse_presigned(req, out);
		if (ret) {
			/* presigned stays set: it picks the S3 error code. */
			memset(out, 0, sizeof(*out));
			out->presigned = true;
		}
		return ret;
	}
	if (authz) {
		int ret = parse_header_auth(req, authz, out);
		if (ret)
			memset(out, 0, sizeof(*out));
		return ret;
	}
	/* Signature version 2 query authentication is not served. */
	if (query_has(req->target, "AWSAccessKeyId") || query_has(req->target, "Signature"))
		return CAIRN_EINVAL;
	return 1;
}

int sigv4_check_time(const struct sigv4_auth *auth, time_t now)
{
	time_t t;
	if (s3_iso_basic_parse(auth->amz_date, &t))
		return CAIRN_EINVAL;
	if (t > now + SIGV4_SKEW_MAX)
		return CAIRN_ESKEW;
	if (auth->presigned) {
		if (now > t + auth->expires)
			return CAIRN_EEXPIRED;
		return 0;
	}
	if (t < now - SIGV4_SKEW_MAX)
		return CAIRN_ESKEW;
	return 0;
}

/* ---- canonical request ---- */

enum {
	CR_PATH_RAW = 1,  /* path exactly as sent */
	CR_PLUS_LIT = 2,  /* '+' in the query is a literal plus */
	CR_QUERY_RAW = 4, /* query pairs as sent, sorted */
};

static void canonical_uri(struct sbuf *b, const char *path, size_t n, int variant)
{
	if (n == 0) {
		sb_putc(b, '/');
		return;
	}
	if (variant & CR_PATH_RAW) {
		sb_put(b, path, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c == '%' && i + 2 < n && s3_hexval((unsigned char)path[i + 1]) >= 0 &&
		    s3_hexval((unsigned char)path[i + 2]) >= 0) {
			sb_encode_byte(b,
				       (unsigned char)(s3_hexval((unsigned char)path[i + 1]) << 4 |
						       s3_hexval((unsigned char)path[i + 2])));
			i += 2;
		} else if (s3_is_unreserved(c) || c == '/') {
			sb_putc(b, (char)c);
		} else {
			sb_encode_byte(b, c);
		}
	}
}

struct qpair {
	size_t name_off, name_len; /* into the pairs buffer */
	size_t val_off, val_len;
};

static int qpair_cmp_r(const void *x, const void *y, void *base)
{
	const struct qpair *a = x, *b = y;
	const char *s = base;
	size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(s + a->name_off, s + b->name_off, n);
	if (c)
		return c;
	if (a->name_len != b->name_len)
		return a->name_len < b->name_len ? -1 : 1;
	n = a->val_len < b->val_len ? a->val_len : b->val_len;
	c = memcmp(s + a->val_off, s + b->val_off, n);
	if (c)
		return c;
	return a->val_len < b->val_len ? -1 : a->val_len > b->val_len;
}

/* Sorted, AWS-encoded "name=value&..." of the raw query. */
static int canonical_query(struct sbuf *out, const char *q, size_t qlen, bool presigned,
			   int variant)
{
	struct s3_query_iter it;
	struct s3_qraw raw;
	struct sbuf enc = {0}, tmp = {0};
	struct qpair *pairs = NULL;
	size_t n = 0, cap = 0;
	bool plus_space = !(variant & CR_PLUS_LIT);
	int ret = 0;

	s3_query_iter_init(&it, q, qlen);
	while (s3_query_next(&it, &raw)) {
		if (presigned && raw.name_len == 15 && memcmp(raw.name, "X-Amz-Signature", 15) == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			void *np =
			    FAULT("sigv4_alloc") ? NULL : realloc(pairs, cap * sizeof(*pairs));
			if (!np) {
				ret = -ENOMEM;
				goto out;
			}
			pairs = np;
		}
		struct qpair *p = &pairs[n++];
		if (variant & CR_QUERY_RAW) {
			p->name_off = enc.len;
			sb_put(&enc, raw.name, raw.name_len);
			p->name_len = raw.name_len;
			p->val_off = enc.len;
			sb_put(&enc, raw.value ? raw.value : "", raw.value_len);
			p->val_len = raw.value_len;
			if (enc.err) {
				ret = -ENOMEM;
				goto out;
			}
			continue;
		}
		tmp.len = 0;
		if ((ret = sb_decode(&tmp, raw.name, raw.name_len, plus_space)))
			goto out;
		p->name_off = enc.len;
		sb_uri_encode(&enc, tmp.p ? tmp.p : "", tmp.len);
		p->name_len = enc.len - p->name_off;
		tmp.len = 0;
		if ((ret = sb_decode(&tmp, raw.value ? raw.value : "", raw.value_len, plus_space)))
			goto out;
		p->val_off = enc.len;
		sb_uri_encode(&enc, tmp.p ? tmp.p : "", tmp.len);
		p->val_len = enc.len - p->val_off;
		if (enc.err || tmp.err) {
			ret = -ENOMEM;
			goto out;
		}
	}
	/* All pairs empty ("?=&=") leave enc unallocated. */
	char *base = enc.p ? enc.p : (char *)"";
	if (n > 1)
		qsort_r(pairs, n, sizeof(*pairs), qpair_cmp_r, base);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_putc(out, '&');
		sb_put(out, base + pairs[i].name_off, pairs[i].name_len);
		sb_putc(out, '=');
		sb_put(out, base + pairs[i].val_off, pairs[i].val_len);
	}
out:
	free(pairs);
	free(enc.p);
	free(tmp.p);
	return ret;
}

/* Appends a header value trimmed, with runs of whitespace collapsed to one
 * space (botocore: ' '.join(value.split())). */
static void put_header_value(struct sbuf *b, const char *v)
{
	bool pending_space = false, any = false;
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f') {
			pending_space = any;
			continue;
		}
		if (pending_space)
			sb_putc(b, ' ');
		pending_space = false;
		any = true;
		sb_putc(b, (char)c);
	}
}

static void canonical_headers(struct sbuf *b, const struct sigv4_request *req,
			      const struct sigv4_auth *a)
{
	const char *p = a->signed_headers;
	char name[1024];
	for (;;) {
		const char *semi = strchr(p, ';');
		size_t len = semi ? (size_t)(semi - p) : strlen(p);
		memcpy(name, p, len);
		name[len] = '\0';
		sb_put(b, name, len);
		sb_putc(b, ':');
		bool first = true;
		for (size_t i = 0; i < req->nheaders; i++) {
			if (!req->headers[i].name || strcasecmp(req->headers[i].name, name) != 0)
				continue;
			if (!first)
				sb_putc(b, ',');
			first = false;
			put_header_value(b, req->headers[i].value ? req->headers[i].value : "");
		}
		sb_putc(b, '\n');
		if (!semi)
			break;
		p = semi + 1;
	}
}

static int build_canonical(const struct sigv4_request *req, const struct sigv4_auth *a, int variant,
			   struct sbuf *b)
{
	const char *qm = strchr(req->target, '?');
	size_t plen = qm ? (size_t)(qm - req->target) : strlen(req->target);
	size_t qlen;
	const char *q = target_query(req->target, &qlen);
	int ret;

	if (!a->signed_headers[0])
		return CAIRN_EINVAL;
	sb_puts(b, req->method);
	sb_putc(b, '\n');
	canonical_uri(b, req->target, plen, variant);
	sb_putc(b, '\n');
	if ((ret = canonical_query(b, q, qlen, a->presigned, variant)))
		return ret;
	sb_putc(b, '\n');
	canonical_headers(b, req, a);
	sb_putc(b, '\n');
	sb_puts(b, a->signed_headers);
	sb_putc(b, '\n');
	sb_puts(b, a->payload_raw[0] ? a->payload_raw : a->payload_hash);
	return b->err;
}

long sigv4_canonical_request(const struct sigv4_request *req, const struct sigv4_auth *auth,
			     char *out, size_t cap)
{
	struct sbuf b = {0};
	long ret = build_canonical(req, auth, 0, &b);
	if (ret)
		goto out;
	if (b.len + 1 > cap) {
		ret = CAIRN_ETOOBIG;
		goto out;
	}
	memcpy(out, b.p, b.len + 1);
	ret = (long)b.len;
out:
	free(b.p);
	return ret;
}

/* OpenSSL 3 looks algorithms up by name on every one-shot call (SHA256(),
 * HMAC()), which cost about half of a verification; the algorithms are
 * fetched once and kept for the life of the process. */
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac_alg;
static EVP_MD *sha256_alg;

static void crypto_init(void)
{
	hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
	sha256_alg = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void sha256_hex(const char *s, size_t n, char out[65])
{
	static const char lx[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	pthread_once(&crypto_once, crypto_init);
	if (!sha256_alg || !EVP_Digest(s, n, md, NULL, sha256_alg, NULL))
		memset(md, 0, sizeof(md)); /* cannot match any signature */
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = lx[md[i] >> 4];
		out[2 * i + 1] = lx[md[i] & 15];
	}
	out[64] = '\0';
}

static void string_to_sign(const struct sigv4_auth *a, const char *creq, size_t creq_len,
			   struct sbuf *b)
{
	char hash[65];
	sha256_hex(creq, creq_len, hash);
	sb_puts(b, ALGO "\n");
	sb_puts(b, a->amz_date);
	sb_putc(b, '\n');
	sb_puts(b, a->date);
	sb_putc(b, '/');
	sb_puts(b, a->region);
	sb_putc(b, '/');
	sb_puts(b, a->service);
	sb_puts(b, "/aws4_request\n");
	sb_puts(b, hash);
}

long sigv4_string_to_sign(const struct sigv4_request *req, const struct sigv4_auth *auth, char *out,
			  size_t cap)
{
	struct sbuf c = {0}, s = {0};
	long ret = build_canonical(req, auth, 0, &c);
	if (ret)
		goto out;
	string_to_sign(auth, c.p, c.len, &s);
	if (s.err) {
		ret = s.err;
		goto out;
	}
	if (s.len + 1 > cap) {
		ret = CAIRN_ETOOBIG;
		goto out;
	}
	memcpy(out, s.p, s.len + 1);
	ret = (long)s.len;
out:
	free(c.p);
	free(s.p);
	return ret;
}

/* HMAC-SHA256 on a context made by mac_new (its digest is set once). */
static int hmac(EVP_MAC_CTX *ctx, const void *key, size_t klen, const char *msg, size_t mlen,
		unsigned char out[SHA256_DIGEST_LENGTH])
{
	size_t olen = 0;
	if (!EVP_MAC_init(ctx, key, klen, NULL) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)msg, mlen) ||
	    !EVP_MAC_final(ctx, out, &olen, SHA256_DIGEST_LENGTH) || olen != SHA256_DIGEST_LENGTH)
		return -ENOMEM;
	return 0;
}

static EVP_MAC_CTX *mac_new(void)
{
	pthread_once(&crypto_once, crypto_init);
	if (!hmac_alg || !sha256_alg || FAULT("sigv4_alloc"))
		return NULL;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
	if (!ctx)
		return NULL;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};
	if (!EVP_MAC_CTX_set_params(ctx, params)) {
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int signing_key(EVP_MAC_CTX *ctx, const struct sigv4_auth *a, const char *secret,
		       unsigned char key[SHA256_DIGEST_LENGTH])
{
	size_t sl = strlen(secret);
	char *k0 = malloc(sl + 5);
	int ret;
	if (!k0)
		return -ENOMEM;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, sl + 1);
	ret = hmac(ctx, k0, sl + 4, a->date, strlen(a->date), key);
	OPENSSL_cleanse(k0, sl + 4);
	free(k0);
	if (ret)
		return ret;
	if ((ret = hmac(ctx, key, SHA256_DIGEST_LENGTH, a->region, strlen(a->region), key)) ||
	    (ret = hmac(ctx, key, SHA256_DIGEST_LENGTH, a->service, strlen(a->service), key)) ||
	    (ret = hmac(ctx, key, SHA256_DIGEST_LENGTH, "aws4_request", 12, key)))
		return ret;
	return 0;
}

static int sign_variant(EVP_MAC_CTX *ctx, const struct sigv4_request *req,
			const struct sigv4_auth *a, const unsigned char key[SHA256_DIGEST_LENGTH],
			int variant, char sig[65])
{
	static const char lx[] = "0123456789abcdef";
	struct sbuf c = {0}, s = {0};
	unsigned char mac[SHA256_DIGEST_LENGTH];
	int ret = build_canonical(req, a, variant, &c);
	if (ret)
		goto out;
	string_to_sign(a, c.p, c.len, &s);
	if ((ret = s.err))
		goto out;
	if ((ret = hmac(ctx, key, SHA256_DIGEST_LENGTH, s.p, s.len, mac)))
		goto out;
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		sig[2 * i] = lx[mac[i] >> 4];
		sig[2 * i + 1] = lx[mac[i] & 15];
	}
	sig[64] = '\0';
out:
	free(c.p);
	free(s.p);
	return ret;
}

int sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth, const char *secret)
{
	return sigv4_verify_key(req, auth, secret, NULL);
}

int sigv4_verify_key(const struct sigv4_request *req, const struct sigv4_auth *auth,
		     const char *secret, uint8_t key_out[SIGV4_KEY_LEN])
{
	unsigned char key[SHA256_DIGEST_LENGTH];
	char sig[65];
	int ret;

	if (!req || !auth || !secret || strlen(auth->signature) != 64)
		return CAIRN_EAUTH;
	EVP_MAC_CTX *ctx = mac_new();
	if (!ctx)
		return -ENOMEM;
	if ((ret = signing_key(ctx, auth, secret, key)))
		goto out;
	const char *qm = strchr(req->target, '?');
	size_t plen = qm ? (size_t)(qm - req->target) : strlen(req->target);
	/* The raw-path reading is a different string only when the path has
	 * bytes AWS would encode, or lowercase %xx. */
	bool path_differs = false;
	for (size_t i = 0; i < plen && !path_differs; i++) {
		unsigned char c = (unsigned char)req->target[i];
		if (c == '%')
			path_differs = i + 2 >= plen || !isupper_hex(req->target[i + 1]) ||
				       !isupper_hex(req->target[i + 2]);
		else
			path_differs = !s3_is_unreserved(c) && c != '/';
	}
	/* The other query readings differ only when the query holds bytes
	 * outside unreserved, '=', '&' and uppercase %XX. */
	bool plus = false, query_odd = false;
	for (const char *p = qm ? qm + 1 : ""; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '+')
			plus = true;
		if (c == '%')
			query_odd |= !(isupper_hex(p[1]) && isupper_hex(p[2]));
		else if (!s3_is_unreserved(c) && c != '=' && c != '&')
			query_odd = true;
	}
	ret = CAIRN_EAUTH;
	for (int v = 0; v < 8; v++) {
		if ((v & CR_PATH_RAW) && !path_differs)
			continue;
		if ((v & CR_PLUS_LIT) && (!plus || (v & CR_QUERY_RAW)))
			continue;
		if ((v & CR_QUERY_RAW) && !query_odd)
			continue;
		int r = sign_variant(ctx, req, auth, key, v, sig);
		if (r == -ENOMEM) {
			ret = r;
			break;
		}
		if (r)
			continue; /* this reading cannot decode the query */
		if (CRYPTO_memcmp(sig, auth->signature, 64) == 0) {
			ret = 0;
			if (key_out)
				memcpy(key_out, key, SIGV4_KEY_LEN);
			break;
		}
	}
out:
	OPENSSL_cleanse(key, sizeof(key));
	EVP_MAC_CTX_free(ctx);
	return ret;
}

/* ---- streaming signatures ---- */

int sigv4_signing_key(const struct sigv4_auth *auth, const char *secret, uint8_t key[SIGV4_KEY_LEN])
{
	EVP_MAC_CTX *ctx = mac_new();
	int ret;

	if (!ctx)
		return -ENOMEM;
	ret = signing_key(ctx, auth, secret, key);
	EVP_MAC_CTX_free(ctx);
	return ret;
}

static void hex32(const uint8_t *in, char out[65])
{
	static const char lx[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = lx[in[i] >> 4];
		out[2 * i + 1] = lx[in[i] & 15];
	}
	out[64] = '\0';
}

struct sigv4_mac *sigv4_mac_new(void)
{
	return (struct sigv4_mac *)mac_new();
}

void sigv4_mac_free(struct sigv4_mac *m)
{
	EVP_MAC_CTX_free((EVP_MAC_CTX *)m);
}

/* HMAC(key, algo "\n" amz_date "\n" scope "\n" prev "\n" [EMPTY "\n"] hex(hash)). */
static int sign_stream(struct sigv4_mac *mac, const uint8_t key[SIGV4_KEY_LEN],
		       const struct sigv4_auth *a, const char *algo, const char *prev,
		       bool empty_line, const uint8_t hash[32], char out[65])
{
	char sts[512], hh[65];
	unsigned char md[SHA256_DIGEST_LENGTH];
	EVP_MAC_CTX *ctx;
	int n, ret;

	hex32(hash, hh);
	n = snprintf(sts, sizeof(sts), "%s\n%s\n%s/%s/%s/aws4_request\n%s\n%s%s%s", algo,
		     a->amz_date, a->date, a->region, a->service, prev,
		     empty_line ? EMPTY_SHA256 : "", empty_line ? "\n" : "", hh);
	if (n < 0 || (size_t)n >= sizeof(sts))
		return CAIRN_EINVAL;
	ctx = mac ? (EVP_MAC_CTX *)mac : mac_new();
	if (!ctx)
		return -ENOMEM;
	ret = hmac(ctx, key, SIGV4_KEY_LEN, sts, (size_t)n, md);
	if (!mac)
		EVP_MAC_CTX_free(ctx);
	if (ret)
		return ret;
	hex32(md, out);
	return 0;
}

int sigv4_chunk_signature(struct sigv4_mac *mac, const uint8_t key[SIGV4_KEY_LEN],
			  const struct sigv4_auth *auth, const char *prev_sig,
			  const uint8_t chunk_sha256[32], char out[65])
{
	return sign_stream(mac, key, auth, ALGO "-PAYLOAD", prev_sig, true, chunk_sha256, out);
}

int sigv4_trailer_signature(struct sigv4_mac *mac, const uint8_t key[SIGV4_KEY_LEN],
			    const struct sigv4_auth *auth, const char *prev_sig,
			    const uint8_t trailer_sha256[32], char out[65])
{
	return sign_stream(mac, key, auth, ALGO "-TRAILER", prev_sig, false, trailer_sha256, out);
}
