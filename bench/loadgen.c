/* bench/loadgen.c - S3 load generator for the cairn benchmarks (libcurl multi).
 *
 * One curl multi handle drives CONC easy handles; the multi's connection pool keeps one
 * keep-alive connection per easy handle (CURLMOPT_MAX_HOST_CONNECTIONS = CONC), so CONC is the
 * number of TCP connections. Requests are signed by libcurl (CURLOPT_AWS_SIGV4 with
 * "aws:amz:REGION:s3"); the access key and secret are passed with CURLOPT_USERNAME and
 * CURLOPT_PASSWORD, not CURLOPT_USERPWD, because Swift's s3api access keys contain a colon
 * ("test:tester") and USERPWD splits at the first one.
 *
 * Payload hash: libcurl 7.88 hashes only CURLOPT_POSTFIELDS; for a body sent through a
 * READFUNCTION it would sign the hash of an empty body. Since curl 7.87 it uses a caller-set
 * x-amz-content-sha256 header instead, so we always set it: UNSIGNED-PAYLOAD by default, or with
 * --signed-payload the hex SHA-256 of the body (put-big: computed before the clock starts;
 * put-small: per object, 4 KiB of SHA-256 per request).
 *
 * Expect: 100-continue. put-big streams through a READFUNCTION (CURLOPT_UPLOAD) and curl sends
 * "Expect: 100-continue" as awscli and boto3 do; one round trip per GiB is noise. put-small
 * must not pay that round trip, but the usual way to drop the header (an empty "Expect:" in
 * CURLOPT_HTTPHEADER) breaks signing in curl 7.88: SigV4 lists "expect" in SignedHeaders while
 * the header is not sent, so every server answers SignatureDoesNotMatch. put-small therefore
 * sends its 4 KiB body with CURLOPT_POSTFIELDS and CURLOPT_CUSTOMREQUEST "PUT": curl adds
 * Expect only to POST bodies over 1 MiB.
 *
 * Object bytes are generated, never read from a file: a 1 MiB random base pattern, with the
 * first 16 bytes of every 4 KiB block stamped with (object seed, block number). Every 4 KiB
 * block of every object is therefore distinct (no dedup or compression win for anyone), and
 * generating costs one memcpy. `gen-file`/`gen-small` write the very same bytes to files so
 * nginx serves identical content.
 *
 * Output: a human summary on stderr and one machine-readable line on stdout:
 *   RESULT {"target":..., "mode":..., "mib_s":..., "ops_s":..., "p50_ms":..., ...}
 * Exit status: 0 when every operation succeeded, 1 when any failed, 2 on usage errors.
 * Every loop is bounded by --count or --duration (and a per-request timeout).
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <isa-l/crc.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define BASE_LEN (1u << 20)
#define BLOCK 4096u
#define STAMP 16u
#define MAX_CONC 1024
#define ERR_SHOW 5

enum mode {
	M_PUT_BIG,
	M_GET_BIG,
	M_PUT_SMALL,
	M_GET_SMALL,
	M_GEN_FILE,
	M_GEN_SMALL,
	M_MP_PUT,
	M_CHUNKED_PUT,
	M_CHUNKED_PUT_SIGNED,
	M_CHECK_BIG
};

static const char *const mode_names[] = {
    "put-big",	 "get-big", "put-small",   "get-small",		 "gen-file",
    "gen-small", "mp-put",  "chunked-put", "chunked-put-signed", "check-big"};

struct opts {
	enum mode mode;
	const char *url; /* http://127.0.0.1:9000, no trailing slash */
	const char *bucket;
	const char *key;    /* object key for the big modes */
	const char *prefix; /* key prefix for the small modes */
	const char *access;
	const char *secret;
	const char *region;
	const char *label;
	const char *out; /* gen-file: file; gen-small: directory */
	uint64_t size;
	unsigned conc;
	double duration; /* seconds; 0 = use count */
	uint64_t count;	 /* ops (small modes) or objects (gen-small) */
	uint64_t keys;	 /* get-small cycles over this many keys */
	uint64_t seed;
	bool sign;
	bool signed_payload;
	bool create_bucket;
	bool verify;	     /* mp-put: check ETags and GET the object back after the clock */
	uint64_t part_size;  /* mp-put */
	uint64_t chunk_size; /* chunked-put: decoded bytes per aws-chunked chunk */
	long timeout;	     /* per request, seconds */
};

/* aws-chunked encoder of one request body (chunked-put modes). Frames are built one at a time
 * into `stage`, since a chunk's header (signed variant) depends on its data; the stream is
 * sequential (CRC and the signature chain), so it can only be rewound to its start. */
struct chunked {
	uint64_t chunk;	   /* decoded bytes per data frame */
	uint64_t data_off; /* decoded bytes framed so far */
	uint64_t enc_len;  /* Content-Length of the encoded body */
	uint64_t enc_sent;
	uint32_t crc; /* CRC32 (zlib/gzip polynomial) of the decoded bytes framed so far */
	bool sign;    /* per-chunk signatures instead of a trailer */
	bool done;    /* the final frame has been staged */
	unsigned char *stage;
	size_t stage_len, stage_pos;
	unsigned char key[32]; /* SigV4 signing key */
	char scope[128];
	char amzdate[17];
	char seed_sig[65];
	char prev_sig[65];
	char trailer[64]; /* "x-amz-checksum-crc32:<b64>", once the last data chunk is framed */
};

static unsigned char *g_base;

struct conn {
	CURL *h;
	struct curl_slist *hdrs;
	char url[2048];
	char errbuf[CURL_ERROR_SIZE];
	uint64_t seed;	      /* object being transferred */
	uint64_t base;	      /* mp-put: object offset of this part's first byte */
	uint64_t off;	      /* PUT: next byte to send (decoded bytes for chunked-put) */
	uint64_t got;	      /* GET: bytes received */
	uint64_t size;	      /* object size */
	unsigned char *small; /* put-small: the request body, --size bytes */
	char body[512];	      /* first bytes of the response body, for error reports */
	size_t body_len;
	char etag[128];	    /* mp-put: the part's ETag response header */
	unsigned part;	    /* mp-put: part number being sent */
	struct chunked *ck; /* chunked-put modes */
	double t0;
	bool busy;
};

struct stats {
	double *lat_ms;
	size_t n, cap;
	uint64_t ok, errors, bytes;
	unsigned shown;
	char first_err[400]; /* the first failure, for the RESULT line */
};

/* CPU seconds (user + system) this process has used: the generator's own cost. */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* xorshift64*: the base pattern only has to be incompressible, not secret. */
static void base_init(void)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;
	g_base = malloc(BASE_LEN);
	if (!g_base) {
		fprintf(stderr, "loadgen: out of memory\n");
		exit(2);
	}
	for (size_t i = 0; i < BASE_LEN; i += 8) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		uint64_t v = x * 0x2545F4914F6CDD1Dull;
		memcpy(g_base + i, &v, 8);
	}
}

/* Fill dst with bytes [off, off+len) of object `seed`. Cost: one memcpy plus 16 bytes per
 * 4 KiB block. */
static void gen_fill(unsigned char *dst, uint64_t off, size_t len, uint64_t seed)
{
	size_t done = 0;
	while (done < len) {
		size_t bo = (size_t)((off + done) % BASE_LEN);
		size_t n = BASE_LEN - bo;
		if (n > len - done)
			n = len - done;
		memcpy(dst + done, g_base + bo, n);
		done += n;
	}
	uint64_t first = off / BLOCK, last = (off + len - 1) / BLOCK;
	if (len == 0)
		return;
	for (uint64_t b = first; b <= last; b++) {
		unsigned char st[STAMP];
		memcpy(st, &seed, 8);
		memcpy(st + 8, &b, 8);
		uint64_t s = b * BLOCK, e = s + STAMP;
		uint64_t lo = s > off ? s : off, hi = e < off + len ? e : off + len;
		for (uint64_t p = lo; p < hi; p++)
			dst[p - off] = st[p - s];
	}
}

static int payload_sha256_hex(uint64_t seed, uint64_t size, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen = 0;
	unsigned char *buf = malloc(BASE_LEN);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ret = -ENOMEM;
	if (!buf || !ctx)
		goto out;
	ret = -EIO;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	for (uint64_t off = 0; off < size; off += BASE_LEN) {
		size_t n = size - off < BASE_LEN ? (size_t)(size - off) : BASE_LEN;
		gen_fill(buf, off, n, seed);
		if (EVP_DigestUpdate(ctx, buf, n) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		goto out;
	for (unsigned i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = 0;
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return ret;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct conn *c = arg;
	size_t want = size * nitems;
	if (c->off >= c->size)
		return 0;
	if (want > c->size - c->off)
		want = (size_t)(c->size - c->off);
	gen_fill((unsigned char *)buf, c->base + c->off, want, c->seed);
	c->off += want;
	return want;
}

static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct conn *c = arg;
	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > c->size)
		return CURL_SEEKFUNC_CANTSEEK;
	c->off = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

static const char hexdig[] = "0123456789abcdef";

static void to_hex(const unsigned char *md, size_t n, char *hex)
{
	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = hexdig[md[i] >> 4];
		hex[2 * i + 1] = hexdig[md[i] & 15];
	}
	hex[2 * n] = 0;
}

static void sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	to_hex(md, 32, hex);
}

static void hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	unsigned int n = 32;
	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n);
}

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define CK_TRAILER_NAME "x-amz-checksum-crc32"

/* Bytes of the frame header of a chunk of n decoded bytes: "<hex n>[;chunk-signature=<64>]\r\n".
 */
static size_t ck_hdr_len(const struct chunked *ck, uint64_t n)
{
	char tmp[32];
	return (size_t)snprintf(tmp, sizeof(tmp), "%" PRIx64, n) + (ck->sign ? 17 + 64 : 0) + 2;
}

/* Encoded length of a body of `size` bytes in chunks of `chunk`: every data frame, the final
 * 0-byte frame, then (unsigned variant) the trailer line and the closing CRLF. The trailer
 * value is 8 base64 characters (4 bytes of CRC). */
static uint64_t ck_enc_len(const struct chunked *ck, uint64_t size, uint64_t chunk)
{
	uint64_t full = size / chunk, tail = size % chunk, len = size;
	len += full * (ck_hdr_len(ck, chunk) + 2);
	if (tail)
		len += ck_hdr_len(ck, tail) + 2;
	len += ck_hdr_len(ck, 0);
	len += ck->sign ? 2 : strlen(CK_TRAILER_NAME ":") + 8 + 2 + 2;
	return len;
}

/* The signature of one chunk (AWS4-HMAC-SHA256-PAYLOAD string to sign), chained on prev_sig. */
static void ck_chunk_sig(struct chunked *ck, const unsigned char *data, size_t n)
{
	char sts[512], h[65];
	unsigned char mac[32];
	sha256_hex(data, n, h);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256-PAYLOAD\n%s\n%s\n%s\n" EMPTY_SHA256 "\n%s",
		 ck->amzdate, ck->scope, ck->prev_sig, h);
	hmac256(ck->key, 32, sts, mac);
	to_hex(mac, 32, ck->prev_sig);
}

static void ck_rewind(struct chunked *ck)
{
	ck->data_off = 0;
	ck->enc_sent = 0;
	ck->crc = 0;
	ck->done = false;
	ck->stage_len = ck->stage_pos = 0;
	memcpy(ck->prev_sig, ck->seed_sig, sizeof(ck->prev_sig));
}

/* Stage the next frame; false at the end of the body. */
static bool ck_next_frame(struct conn *c)
{
	struct chunked *ck = c->ck;
	uint64_t chunk = ck->chunk;
	unsigned char *st = ck->stage;
	char hdr[128];
	size_t n, hl;
	if (ck->done)
		return false;
	n = c->size - ck->data_off < chunk ? (size_t)(c->size - ck->data_off) : (size_t)chunk;
	hl = ck_hdr_len(ck, n);
	if (n)
		gen_fill(st + hl, ck->data_off, n, c->seed);
	if (ck->sign) {
		ck_chunk_sig(ck, st + hl, n);
		snprintf(hdr, sizeof(hdr), "%zx;chunk-signature=%s\r\n", n, ck->prev_sig);
	} else {
		ck->crc = crc32_gzip_refl(ck->crc, st + hl, n);
		snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
	}
	memcpy(st, hdr, hl);
	memcpy(st + hl + n, "\r\n", 2);
	ck->stage_len = hl + n + 2;
	ck->stage_pos = 0;
	ck->data_off += n;
	c->off = ck->data_off;
	if (n == 0) {
		/* final frame: "0\r\n" then the trailer and an empty line, or (signed) "\r\n" */
		ck->done = true;
		if (!ck->sign) {
			unsigned char be[4] = {
			    (unsigned char)(ck->crc >> 24), (unsigned char)(ck->crc >> 16),
			    (unsigned char)(ck->crc >> 8), (unsigned char)ck->crc};
			char b64[16];
			EVP_EncodeBlock((unsigned char *)b64, be, 4);
			snprintf(ck->trailer, sizeof(ck->trailer), CK_TRAILER_NAME ":%s", b64);
			ck->stage_len =
			    hl + (size_t)sprintf((char *)st + hl, "%s\r\n\r\n", ck->trailer);
		}
	}
	return true;
}

static size_t on_read_chunked(char *buf, size_t size, size_t nitems, void *arg)
{
	struct conn *c = arg;
	struct chunked *ck = c->ck;
	size_t want = size * nitems, done = 0;
	while (done < want) {
		if (ck->stage_pos == ck->stage_len && !ck_next_frame(c))
			break;
		size_t n = ck->stage_len - ck->stage_pos;
		if (n > want - done)
			n = want - done;
		memcpy(buf + done, ck->stage + ck->stage_pos, n);
		ck->stage_pos += n;
		done += n;
	}
	ck->enc_sent += done;
	return done;
}

static int on_seek_chunked(void *arg, curl_off_t offset, int origin)
{
	struct conn *c = arg;
	if (origin != SEEK_SET || offset != 0)
		return CURL_SEEKFUNC_CANTSEEK;
	ck_rewind(c->ck);
	c->off = 0;
	return CURL_SEEKFUNC_OK;
}

/* Bodies are counted and dropped; the first bytes are kept for error messages. */
static size_t on_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct conn *c = arg;
	size_t n = size * nmemb;
	if (c->body_len < sizeof(c->body) - 1) {
		size_t k = sizeof(c->body) - 1 - c->body_len;
		if (k > n)
			k = n;
		memcpy(c->body + c->body_len, ptr, k);
		c->body_len += k;
		c->body[c->body_len] = 0;
	}
	c->got += n;
	return n;
}

/* Keep the ETag response header in arg, a char[128]. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	char *etag = arg;
	size_t n = size * nmemb;
	if (n > 5 && strncasecmp(ptr, "etag:", 5) == 0) {
		size_t b = 5, e = n;
		while (b < e && (ptr[b] == ' ' || ptr[b] == '\t'))
			b++;
		while (e > b && (ptr[e - 1] == '\r' || ptr[e - 1] == '\n' || ptr[e - 1] == ' '))
			e--;
		if (e - b < 128) {
			memcpy(etag, ptr + b, e - b);
			etag[e - b] = 0;
		}
	}
	return n;
}

/* SigV4 URI encoding: unreserved characters as they are, '/' kept when asked, the rest %XX. */
static void uri_encode(const char *in, bool keep_slash, char *out, size_t outlen)
{
	size_t o = 0;
	for (; *in && o + 4 < outlen; in++) {
		unsigned char ch = (unsigned char)*in;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~' ||
		    (keep_slash && ch == '/')) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = "0123456789ABCDEF"[ch >> 4];
			out[o++] = "0123456789ABCDEF"[ch & 15];
		}
	}
	out[o] = 0;
}

/* A JSON string body (without quotes): quotes, backslashes and control characters escaped. */
static void json_esc(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	for (; *in && o + 7 < outlen; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = 0;
}

/* The text of an error body's <tag> element (<Code>, <Message>), or "" */
static void s3_elem(const char *body, const char *tag, char *out, size_t outlen)
{
	char open[32], close[32];
	const char *b, *e;
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	b = strstr(body, open);
	out[0] = 0;
	if (!b)
		return;
	b += strlen(open);
	e = strstr(b, close);
	if (e && (size_t)(e - b) < outlen) {
		memcpy(out, b, (size_t)(e - b));
		out[e - b] = 0;
	}
}

/* One line describing a failed request: HTTP status, S3 error code, curl error, a body excerpt. */
static void describe_fail(char *dst, size_t len, const char *what, long code, CURLcode rc,
			  const char *errbuf, const char *body)
{
	char s3[64], msg[121], excerpt[121], cerr[CURL_ERROR_SIZE + 32] = "";
	size_t i = 0;
	s3_elem(body, "Code", s3, sizeof(s3));
	s3_elem(body, "Message", msg, sizeof(msg));
	if (!s3[0]) { /* not an S3 error body: show its start */
		for (const char *p = body; *p && i < sizeof(excerpt) - 1; p++)
			excerpt[i++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
	}
	excerpt[i] = 0;
	if (rc != CURLE_OK)
		snprintf(cerr, sizeof(cerr), ", curl %d (%s)", (int)rc,
			 errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc));
	snprintf(dst, len, "%s: http %ld%s%s%s%s%s%s%s", what, code, s3[0] ? " " : "", s3,
		 msg[0] ? " (" : "", msg, msg[0] ? ")" : "", cerr, excerpt[0] ? ", body: " : "");
	i = strlen(dst);
	if (excerpt[0] && i < len)
		snprintf(dst + i, len - i, "%s", excerpt);
}

static void stats_add(struct stats *st, double ms)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 65536;
		double *p = realloc(st->lat_ms, cap * sizeof(*p));
		if (!p) {
			fprintf(stderr, "loadgen: out of memory\n");
			exit(2);
		}
		st->lat_ms = p;
		st->cap = cap;
	}
	st->lat_ms[st->n++] = ms;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const struct stats *st, double p)
{
	if (!st->n)
		return 0;
	size_t i = (size_t)(p * (double)(st->n - 1) + 0.5);
	return st->lat_ms[i];
}

static bool is_chunked(enum mode m)
{
	return m == M_CHUNKED_PUT || m == M_CHUNKED_PUT_SIGNED;
}

/* one streamed upload of the whole object on one connection */
static bool is_big_put(enum mode m)
{
	return m == M_PUT_BIG || is_chunked(m);
}

static bool is_put(enum mode m)
{
	return m == M_PUT_BIG || m == M_PUT_SMALL || m == M_MP_PUT || is_chunked(m);
}

static const char *payload_name(const struct opts *o)
{
	if (!o->sign)
		return "none";
	if (o->mode == M_CHUNKED_PUT)
		return "aws-chunked-unsigned-trailer";
	if (o->mode == M_CHUNKED_PUT_SIGNED)
		return "aws-chunked-signed";
	if (!is_put(o->mode))
		return "empty";
	return o->signed_payload ? "signed" : "unsigned";
}

static bool is_small(enum mode m)
{
	return m == M_PUT_SMALL || m == M_GET_SMALL;
}

static void obj_url(const struct opts *o, uint64_t idx, char *dst, size_t dstlen)
{
	if (is_small(o->mode))
		snprintf(dst, dstlen, "%s/%s/%s%08" PRIu64, o->url, o->bucket, o->prefix, idx);
	else
		snprintf(dst, dstlen, "%s/%s/%s", o->url, o->bucket, o->key);
}

static uint64_t obj_seed(const struct opts *o, uint64_t idx)
{
	return is_small(o->mode) ? o->seed + 1 + idx : o->seed;
}

/* chunked-put: the encoder, and the request headers. The unsigned variant is signed by
 * libcurl like every other request (x-amz-content-sha256 STREAMING-UNSIGNED-PAYLOAD-TRAILER);
 * the signed variant needs the seed signature to chain the chunk signatures on, which libcurl
 * does not expose, so loadgen signs that request itself (SigV4, OpenSSL HMAC), with the
 * headers the AWS example signs. */
static int ck_setup(struct conn *c, const struct opts *o)
{
	struct chunked *ck = calloc(1, sizeof(*ck));
	char h[512], path[1024], url[2048], canon[2048], sts[512], hash[65];
	const char *host, *p;
	unsigned char k1[32], k2[32], k3[32];
	char kinit[300];
	int ret = -ENOMEM;
	if (!ck)
		goto out;
	c->ck = ck;
	ck->chunk = o->chunk_size;
	ck->sign = o->mode == M_CHUNKED_PUT_SIGNED;
	ck->stage = malloc(o->chunk_size + 256);
	if (!ck->stage)
		goto out;
	ck->enc_len = ck_enc_len(ck, o->size, o->chunk_size);
	curl_easy_setopt(c->h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c->h, CURLOPT_READFUNCTION, on_read_chunked);
	curl_easy_setopt(c->h, CURLOPT_READDATA, c);
	curl_easy_setopt(c->h, CURLOPT_SEEKFUNCTION, on_seek_chunked);
	curl_easy_setopt(c->h, CURLOPT_SEEKDATA, c);
	curl_easy_setopt(c->h, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
	curl_easy_setopt(c->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)ck->enc_len);
	c->hdrs = curl_slist_append(c->hdrs, "Content-Encoding: aws-chunked");
	snprintf(h, sizeof(h), "x-amz-decoded-content-length: %" PRIu64, o->size);
	c->hdrs = curl_slist_append(c->hdrs, h);
	if (!ck->sign) {
		c->hdrs = curl_slist_append(c->hdrs, "x-amz-trailer: " CK_TRAILER_NAME);
		ret = c->hdrs ? 0 : -ENOMEM;
		goto out;
	}

	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(ck->amzdate, sizeof(ck->amzdate), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(ck->scope, sizeof(ck->scope), "%.8s/%s/s3/aws4_request", ck->amzdate, o->region);
	host = strstr(o->url, "://");
	host = host ? host + 3 : o->url;
	obj_url(o, 0, url, sizeof(url));
	p = url + (host - o->url);
	p = strchr(p, '/');
	uri_encode(p ? p : "/", true, path, sizeof(path));
	snprintf(canon, sizeof(canon),
		 "PUT\n%s\n\ncontent-encoding:aws-chunked\ncontent-length:%" PRIu64 "\nhost:%.*s\n"
		 "x-amz-content-sha256:STREAMING-AWS4-HMAC-SHA256-PAYLOAD\nx-amz-date:%s\n"
		 "x-amz-decoded-content-length:%" PRIu64 "\n\n"
		 "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
		 "x-amz-decoded-content-length\nSTREAMING-AWS4-HMAC-SHA256-PAYLOAD",
		 path, ck->enc_len, (int)(p ? (size_t)(p - (url + (host - o->url))) : strlen(host)),
		 host, ck->amzdate, o->size);
	sha256_hex(canon, strlen(canon), hash);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", ck->amzdate, ck->scope, hash);
	snprintf(kinit, sizeof(kinit), "AWS4%s", o->secret);
	char date8[9];
	snprintf(date8, sizeof(date8), "%.8s", ck->amzdate);
	hmac256(kinit, strlen(kinit), date8, k1);
	hmac256(k1, 32, o->region, k2);
	hmac256(k2, 32, "s3", k3);
	hmac256(k3, 32, "aws4_request", ck->key);
	unsigned char mac[32];
	hmac256(ck->key, 32, sts, mac);
	to_hex(mac, 32, ck->seed_sig);
	OPENSSL_cleanse(kinit, sizeof(kinit));
	snprintf(
	    h, sizeof(h),
	    "Authorization: AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=content-encoding;"
	    "content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length, "
	    "Signature=%s",
	    o->access, ck->scope, ck->seed_sig);
	c->hdrs = curl_slist_append(c->hdrs, h);
	snprintf(h, sizeof(h), "x-amz-date: %s", ck->amzdate);
	c->hdrs = curl_slist_append(c->hdrs, h);
	c->hdrs =
	    curl_slist_append(c->hdrs, "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
	ret = c->hdrs ? 0 : -ENOMEM;
out:
	return ret;
}

static void ck_free(struct chunked *ck)
{
	if (ck)
		free(ck->stage);
	free(ck);
}

/* Options shared by every request of a connection. */
static int conn_setup(struct conn *c, const struct opts *o, const char *payload_hash)
{
	char h[128];
	c->h = curl_easy_init();
	if (!c->h)
		return -ENOMEM;
	curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT, o->timeout);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->h, CURLOPT_BUFFERSIZE, 512L * 1024);
	if (o->sign && o->mode != M_CHUNKED_PUT_SIGNED) {
		char sig[128];
		snprintf(sig, sizeof(sig), "aws:amz:%s:s3", o->region);
		curl_easy_setopt(c->h, CURLOPT_AWS_SIGV4, sig);
		curl_easy_setopt(c->h, CURLOPT_USERNAME, o->access);
		curl_easy_setopt(c->h, CURLOPT_PASSWORD, o->secret);
		if (payload_hash) {
			snprintf(h, sizeof(h), "x-amz-content-sha256: %s", payload_hash);
			c->hdrs = curl_slist_append(c->hdrs, h);
		}
	}
	if (o->mode == M_PUT_SMALL) {
		c->small = malloc(o->size);
		if (!c->small)
			return -ENOMEM;
		curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, (char *)c->small);
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->size);
	}
	if (o->mode == M_PUT_BIG) {
		curl_easy_setopt(c->h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c->h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c->h, CURLOPT_READDATA, c);
		curl_easy_setopt(c->h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c->h, CURLOPT_SEEKDATA, c);
		curl_easy_setopt(c->h, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
		curl_easy_setopt(c->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)o->size);
	}
	if (o->mode == M_MP_PUT) {
		/* one part per request; the size is set when the part starts */
		curl_easy_setopt(c->h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c->h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c->h, CURLOPT_READDATA, c);
		curl_easy_setopt(c->h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c->h, CURLOPT_SEEKDATA, c);
		curl_easy_setopt(c->h, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
		curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c->h, CURLOPT_HEADERDATA, (void *)c->etag);
	}
	if (is_chunked(o->mode) && ck_setup(c, o))
		return -ENOMEM;
	if (is_big_put(o->mode)) { /* the ETag goes in the RESULT line, for checks */
		curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c->h, CURLOPT_HEADERDATA, (void *)c->etag);
	}
	if (is_put(o->mode))
		c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/octet-stream");
	if (!c->hdrs && (o->sign || is_put(o->mode)))
		return -ENOMEM;
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
	return 0;
}

/* put-small with --signed-payload: the hash differs per object, so the header list is rebuilt
 * for each request (three small allocations next to a 4 KiB SHA-256). */
static int conn_sign_small(struct conn *c, const struct opts *o)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen;
	char h[128] = "x-amz-content-sha256: ";
	size_t p = strlen(h);
	if (EVP_Digest(c->small, o->size, md, &mdlen, EVP_sha256(), NULL) != 1)
		return -EIO;
	for (unsigned i = 0; i < 32; i++) {
		h[p++] = digits[md[i] >> 4];
		h[p++] = digits[md[i] & 15];
	}
	h[p] = 0;
	curl_slist_free_all(c->hdrs);
	c->hdrs = curl_slist_append(NULL, h);
	if (c->hdrs)
		c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/octet-stream");
	if (!c->hdrs)
		return -ENOMEM;
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
	return 0;
}

static void conn_start(CURLM *m, struct conn *c, const struct opts *o, uint64_t idx)
{
	obj_url(o, idx, c->url, sizeof(c->url));
	curl_easy_setopt(c->h, CURLOPT_URL, c->url);
	c->seed = obj_seed(o, idx);
	c->size = o->size;
	c->base = 0;
	c->off = 0;
	c->etag[0] = 0;
	if (c->ck)
		ck_rewind(c->ck);
	c->got = 0;
	c->body_len = 0;
	c->body[0] = 0;
	c->errbuf[0] = 0;
	c->busy = true;
	c->t0 = now_s();
	if (o->mode == M_PUT_SMALL) {
		/* generating and hashing the body is part of the client's request cost */
		gen_fill(c->small, 0, (size_t)o->size, c->seed);
		c->off = c->size; /* POSTFIELDS: curl sends it all */
		if (o->sign && o->signed_payload && conn_sign_small(c, o)) {
			fprintf(stderr, "loadgen: cannot sign the payload\n");
			exit(2);
		}
	}
	curl_multi_add_handle(m, c->h);
}

static void conn_done(struct conn *c, CURLcode rc, const struct opts *o, struct stats *st)
{
	long code = 0;
	double ms = (now_s() - c->t0) * 1e3;
	bool ok;
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
	if (is_put(o->mode)) /* unsigned PUTs go to nginx's WebDAV sink: 201 or 204 */
		ok = rc == CURLE_OK && c->off == c->size &&
		     (code == 200 || (!o->sign && (code == 201 || code == 204)));
	else
		ok = rc == CURLE_OK && code == 200 && c->got == c->size;
	if (c->ck) /* the whole encoded body, trailer included, went out */
		ok = ok && c->ck->done && c->ck->enc_sent == c->ck->enc_len;
	c->busy = false;
	if (ok) {
		st->ok++;
		st->bytes += c->size;
		stats_add(st, ms);
		return;
	}
	st->errors++;
	if (!st->first_err[0])
		describe_fail(st->first_err, sizeof(st->first_err), is_put(o->mode) ? "PUT" : "GET",
			      code, rc, c->errbuf, c->body);
	if (st->shown++ < ERR_SHOW)
		fprintf(stderr,
			"loadgen: %s %s: curl=%d (%s) http=%ld sent=%" PRIu64 " got=%" PRIu64
			" body=%.300s\n",
			is_put(o->mode) ? "PUT" : "GET", c->url, (int)rc,
			c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc), code, c->off, c->got,
			c->body);
}

/* PUT /bucket before the clock starts; 409 (BucketAlreadyOwnedByYou) counts as success. */
static int create_bucket(const struct opts *o)
{
	struct conn c = {0};
	struct opts bo = *o;
	char url[2048];
	long code = 0;
	int ret = -EIO;
	bo.mode = M_GET_BIG; /* a request without a body */
	if (conn_setup(&c, &bo, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
		goto out;
	snprintf(url, sizeof(url), "%s/%s", o->url, o->bucket);
	curl_easy_setopt(c.h, CURLOPT_URL, url);
	curl_easy_setopt(c.h, CURLOPT_CUSTOMREQUEST, "PUT");
	CURLcode rc = curl_easy_perform(c.h);
	curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OK && (code == 200 || code == 409)) {
		ret = 0;
	} else {
		fprintf(stderr, "loadgen: create bucket %s: curl=%d http=%ld body=%.300s\n", url,
			(int)rc, code, c.body);
	}
out:
	curl_slist_free_all(c.hdrs);
	if (c.h)
		curl_easy_cleanup(c.h);
	return ret;
}

/* The RESULT line of a failed run: no speed, the first failure instead. */
static void print_failure(const struct opts *o, const char *why)
{
	char esc[900];
	json_esc(why, esc, sizeof(esc));
	fprintf(stderr, "%s %s: FAILED: %s\n", o->label, mode_names[o->mode], why);
	printf("RESULT {\"target\":\"%s\",\"mode\":\"%s\",\"size\":%" PRIu64
	       ",\"conc\":%u,\"payload\":\"%s\",\"part_size\":%" PRIu64 ",\"chunk_size\":%" PRIu64
	       ",\"ok\":0,\"errors\":1,\"error\":\"%s\"}\n",
	       o->label, mode_names[o->mode], o->size, o->conc, payload_name(o), o->part_size,
	       o->chunk_size, esc);
	fflush(stdout);
}

static int run_load(const struct opts *o)
{
	struct conn *conns = calloc(o->conc, sizeof(*conns));
	struct stats st = {0};
	char hash[65] = "UNSIGNED-PAYLOAD";
	CURLM *m = curl_multi_init();
	uint64_t issued = 0;
	int running = 0, ret = 2;
	double t0, t1, c0;

	if (!conns || !m)
		goto out;
	if (o->create_bucket && create_bucket(o))
		goto out;
	if (o->signed_payload && o->mode == M_PUT_BIG) {
		if (payload_sha256_hex(obj_seed(o, 0), o->size, hash))
			goto out;
	} else if (o->mode == M_CHUNKED_PUT) {
		strcpy(hash, "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
	} else if (!is_put(o->mode)) {
		strcpy(hash, EMPTY_SHA256);
	}
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->conc);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)o->conc);
	for (unsigned i = 0; i < o->conc; i++)
		if (conn_setup(&conns[i], o,
			       o->mode == M_PUT_SMALL && o->signed_payload ? NULL : hash))
			goto out;

	/* get-big may repeat the same GET (--count) on its one connection; put-big never
	 * repeats, since a second upload of the same bytes would measure dedup, not writing */
	uint64_t limit = is_small(o->mode) || o->mode == M_GET_BIG ? o->count : 1;
	c0 = cpu_s();
	t0 = now_s();
	for (unsigned i = 0; i < o->conc && (o->duration > 0 || issued < limit); i++) {
		uint64_t idx = o->mode == M_GET_SMALL ? issued % o->keys : issued;
		conn_start(m, &conns[i], o, idx);
		issued++;
	}
	do {
		CURLMsg *msg;
		int left;
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left))) {
			struct conn *c;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
			CURLcode rc = msg->data.result;
			curl_multi_remove_handle(m, c->h);
			conn_done(c, rc, o, &st);
			bool more = o->duration > 0 ? now_s() - t0 < o->duration : issued < limit;
			if (is_big_put(o->mode))
				more = false;
			if (more) {
				uint64_t idx = o->mode == M_GET_SMALL ? issued % o->keys : issued;
				conn_start(m, c, o, idx);
				issued++;
				running++;
			}
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	} while (running);
	t1 = now_s();

	double secs = t1 - t0, client_cpu = cpu_s() - c0;
	if (st.n)
		qsort(st.lat_ms, st.n, sizeof(double), cmp_double);
	double mib_s = (double)st.bytes / (1024.0 * 1024.0) / secs;
	double ops_s = (double)st.ok / secs;
	double p50 = pct(&st, 0.50), p99 = pct(&st, 0.99), mx = st.n ? st.lat_ms[st.n - 1] : 0;
	if (!st.ok) {
		/* a run where nothing succeeded has no speed: say what the server answered */
		print_failure(o, st.first_err[0] ? st.first_err : "no request completed");
		ret = 1;
		goto out;
	}
	fprintf(stderr,
		"%s %s size=%" PRIu64 " conc=%u: %" PRIu64 " ok, %" PRIu64
		" errors in %.2f s: %.1f MiB/s, %.1f ops/s, latency p50 %.2f ms p99 %.2f ms max "
		"%.2f ms\n",
		o->label, mode_names[o->mode], o->size, o->conc, st.ok, st.errors, secs, mib_s,
		ops_s, p50, p99, mx);
	if (conns[0].ck && conns[0].ck->trailer[0])
		fprintf(stderr,
			"%s %s: %" PRIu64 " encoded bytes in %" PRIu64 " B chunks, trailer %s\n",
			o->label, mode_names[o->mode], conns[0].ck->enc_len, o->chunk_size,
			conns[0].ck->trailer);
	/* big PUTs: the ETag the server answered (checks compare it with the generated bytes);
	 * chunked: the frame size and the encoded length */
	char extra[512] = "", esc[300];
	if (is_big_put(o->mode)) {
		json_esc(conns[0].etag, esc, sizeof(esc));
		snprintf(extra, sizeof(extra), ",\"etag\":\"%s\"", esc);
	}
	if (conns[0].ck)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
			 ",\"chunk_size\":%" PRIu64 ",\"encoded_bytes\":%" PRIu64, o->chunk_size,
			 conns[0].ck->enc_len);
	printf("RESULT {\"target\":\"%s\",\"mode\":\"%s\",\"size\":%" PRIu64
	       ",\"conc\":%u,\"payload\":\"%s\",\"ok\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"seconds\":%.3f,\"mib_s\":%.2f,\"ops_s\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"max_ms\":%.3f,\"client_cpu_s\":%.3f%s}\n",
	       o->label, mode_names[o->mode], o->size, o->conc, payload_name(o), st.ok, st.errors,
	       secs, mib_s, ops_s, p50, p99, mx, client_cpu, extra);
	fflush(stdout);
	ret = st.errors || !st.ok ? 1 : 0;
out:
	for (unsigned i = 0; conns && i < o->conc; i++) {
		if (conns[i].h) {
			if (conns[i].busy)
				curl_multi_remove_handle(m, conns[i].h);
			curl_easy_cleanup(conns[i].h);
		}
		curl_slist_free_all(conns[i].hdrs);
		free(conns[i].small);
		ck_free(conns[i].ck);
	}
	if (m)
		curl_multi_cleanup(m);
	free(conns);
	free(st.lat_ms);
	return ret;
}

/* ---- mp-put: CreateMultipartUpload, parts on --conc connections, Complete ---- */

/* A control request's answer: status and body (bounded by cap). */
struct resp {
	long code;
	CURLcode rc;
	char errbuf[CURL_ERROR_SIZE];
	char *body;
	size_t len, cap;
};

static size_t on_write_resp(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct resp *r = arg;
	size_t n = size * nmemb, k = n;
	if (k > r->cap - 1 - r->len)
		k = r->cap - 1 - r->len;
	memcpy(r->body + r->len, ptr, k);
	r->len += k;
	r->body[r->len] = 0;
	return n;
}

/* One signed request with a small body or none (create, complete, abort). The payload is
 * signed (SHA-256 of the body), as the SDKs sign these. */
static int ctl_request(const struct opts *o, const char *method, const char *url, const char *body,
		       struct resp *r)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char hash[65], hh[128], sig[128];
	size_t blen = body ? strlen(body) : 0;
	r->len = 0;
	r->body[0] = 0;
	r->code = 0;
	r->errbuf[0] = 0;
	r->rc = CURLE_FAILED_INIT;
	if (!h)
		return -ENOMEM;
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write_resp);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (o->sign) {
		snprintf(sig, sizeof(sig), "aws:amz:%s:s3", o->region);
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sig);
		curl_easy_setopt(h, CURLOPT_USERNAME, o->access);
		curl_easy_setopt(h, CURLOPT_PASSWORD, o->secret);
		sha256_hex(body ? body : "", blen, hash);
		snprintf(hh, sizeof(hh), "x-amz-content-sha256: %s", hash);
		hdrs = curl_slist_append(hdrs, hh);
	}
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
		/* Create's Content-Type becomes the object's; Complete's body is XML */
		hdrs = curl_slist_append(hdrs, body ? "Content-Type: application/xml"
						    : "Content-Type: application/octet-stream");
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	r->rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	return r->rc == CURLE_OK ? 0 : -EIO;
}

/* The text of the first <tag>...</tag> in an XML body, entities for '"' and '&' decoded, or
 * false. */
static bool xml_tag(const char *body, const char *tag, char *out, size_t outlen)
{
	char open[64], close[64];
	const char *b, *e;
	size_t o = 0;
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	b = strstr(body, open);
	if (!b)
		return false;
	b += strlen(open);
	e = strstr(b, close);
	if (!e)
		return false;
	while (b < e && o + 1 < outlen) {
		if (strncmp(b, "&quot;", 6) == 0) {
			out[o++] = '"';
			b += 6;
		} else if (strncmp(b, "&#34;", 5) == 0) {
			out[o++] = '"';
			b += 5;
		} else if (strncmp(b, "&amp;", 5) == 0) {
			out[o++] = '&';
			b += 5;
		} else {
			out[o++] = *b++;
		}
	}
	out[o] = 0;
	return o > 0;
}

/* An ETag without its quotes, lowercased, for comparison. */
static void etag_norm(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	for (; *in && o + 1 < outlen; in++)
		if (*in != '"')
			out[o++] = (char)(*in >= 'A' && *in <= 'Z' ? *in + 32 : *in);
	out[o] = 0;
}

static void mp_part_start(CURLM *m, struct conn *c, const struct opts *o, const char *obj,
			  const char *uid, unsigned part)
{
	snprintf(c->url, sizeof(c->url), "%s?partNumber=%u&uploadId=%s", obj, part, uid);
	c->base = (uint64_t)(part - 1) * o->part_size;
	c->size = o->size - c->base < o->part_size ? o->size - c->base : o->part_size;
	c->seed = o->seed;
	c->off = 0;
	c->got = 0;
	c->body_len = 0;
	c->body[0] = 0;
	c->etag[0] = 0;
	c->errbuf[0] = 0;
	c->part = part;
	c->busy = true;
	c->t0 = now_s();
	curl_easy_setopt(c->h, CURLOPT_URL, c->url);
	curl_easy_setopt(c->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->size);
	curl_multi_add_handle(m, c->h);
}

/* After the clock: every part's ETag must be the MD5 of the bytes generated for it, and the
 * object's the S3 multipart ETag, MD5(part MD5s)-N. */
static int mp_check_etags(const struct opts *o, uint64_t nparts, char (*etags)[128],
			  const char *final, char *err, size_t errlen)
{
	unsigned char *buf = malloc(BASE_LEN), *mds = malloc(nparts * 16), md[16];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char want[80], got[128];
	unsigned int mdlen;
	int ret = -ENOMEM;
	if (!buf || !mds || !ctx) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ret = -EIO;
	for (uint64_t p = 0; p < nparts; p++) {
		uint64_t base = p * o->part_size;
		uint64_t end = base + o->part_size < o->size ? base + o->part_size : o->size;
		EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
		for (uint64_t off = base; off < end; off += BASE_LEN) {
			size_t n = end - off < BASE_LEN ? (size_t)(end - off) : BASE_LEN;
			gen_fill(buf, off, n, o->seed);
			EVP_DigestUpdate(ctx, buf, n);
		}
		EVP_DigestFinal_ex(ctx, mds + 16 * p, &mdlen);
		to_hex(mds + 16 * p, 16, want);
		etag_norm(etags[p], got, sizeof(got));
		if (strcmp(want, got) != 0) {
			snprintf(err, errlen, "part %" PRIu64 ": ETag %s, but its bytes' MD5 is %s",
				 p + 1, etags[p], want);
			goto out;
		}
	}
	EVP_Digest(mds, nparts * 16, md, &mdlen, EVP_md5(), NULL);
	to_hex(md, 16, want);
	snprintf(want + 32, sizeof(want) - 32, "-%" PRIu64, nparts);
	etag_norm(final, got, sizeof(got));
	if (strcmp(want, got) != 0) {
		snprintf(err, errlen, "CompleteMultipartUpload ETag '%s', expected \"%s\"", final,
			 want);
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(mds);
	free(buf);
	return ret;
}

/* check-big: GET the object back and compare every byte with the generator's; MD5 them too,
 * for the ETag. */
struct vget {
	uint64_t got, bad_at, seed;
	unsigned char *exp;
	EVP_MD_CTX *md5;
	bool bad;
	char body[512];
	size_t blen;
	char etag[128];
};

static size_t on_write_verify(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct vget *v = arg;
	size_t n = size * nmemb, k = 0;
	if (v->blen < sizeof(v->body) - 1) {
		size_t b = sizeof(v->body) - 1 - v->blen < n ? sizeof(v->body) - 1 - v->blen : n;
		memcpy(v->body + v->blen, ptr, b);
		v->blen += b;
		v->body[v->blen] = 0;
	}
	EVP_DigestUpdate(v->md5, ptr, n);
	while (k < n && !v->bad) {
		size_t piece = n - k < BASE_LEN ? n - k : BASE_LEN;
		gen_fill(v->exp, v->got + k, piece, v->seed);
		if (memcmp(v->exp, ptr + k, piece) != 0) {
			size_t i = 0;
			while (v->exp[i] == (unsigned char)ptr[k + i])
				i++;
			v->bad = true;
			v->bad_at = v->got + k + i;
		}
		k += piece;
	}
	v->got += n;
	return n;
}

/* Returns 0 when the object has exactly the generated bytes and, unless it is a multipart
 * ETag ("-N"), an ETag equal to their MD5; else fills err. */
static int verify_get(const struct opts *o, const char *url, double *secs, char *etag, char *err,
		      size_t errlen)
{
	struct vget v = {.seed = o->seed};
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char sig[128], ebuf[CURL_ERROR_SIZE] = "", want[33], got[128];
	unsigned char md[16];
	unsigned int mdlen = 0;
	long code = 0;
	int ret = -EIO;
	v.exp = malloc(BASE_LEN);
	v.md5 = EVP_MD_CTX_new();
	if (!h || !v.exp || !v.md5 || EVP_DigestInit_ex(v.md5, EVP_md5(), NULL) != 1) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write_verify);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &v);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, (void *)v.etag);
	if (o->sign) {
		snprintf(sig, sizeof(sig), "aws:amz:%s:s3", o->region);
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sig);
		curl_easy_setopt(h, CURLOPT_USERNAME, o->access);
		curl_easy_setopt(h, CURLOPT_PASSWORD, o->secret);
		hdrs = curl_slist_append(hdrs, "x-amz-content-sha256: " EMPTY_SHA256);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	}
	double t0 = now_s();
	CURLcode rc = curl_easy_perform(h);
	*secs = now_s() - t0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	EVP_DigestFinal_ex(v.md5, md, &mdlen);
	to_hex(md, 16, want);
	etag_norm(v.etag, got, sizeof(got));
	strcpy(etag, v.etag);
	if (rc != CURLE_OK || code != 200) {
		describe_fail(err, errlen, "GET", code, rc, ebuf, v.body);
	} else if (v.got != o->size) {
		snprintf(err, errlen, "GET: %" PRIu64 " bytes, uploaded %" PRIu64, v.got, o->size);
	} else if (v.bad) {
		snprintf(err, errlen, "GET: bytes differ from the uploaded ones at offset %" PRIu64,
			 v.bad_at);
	} else if (!strchr(got, '-') && strcmp(got, want) != 0) {
		snprintf(err, errlen, "GET: ETag %s, but the bytes' MD5 is %s", v.etag, want);
	} else {
		ret = 0;
	}
out:
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
	EVP_MD_CTX_free(v.md5);
	free(v.exp);
	return ret;
}

/* check-big: one GET, every byte compared; the speed is informational (it includes the
 * comparison and an MD5), the point is the verdict. */
static int run_check(const struct opts *o)
{
	char url[2048], etag[128] = "", err[400] = "", esc[300];
	double secs = 0;
	obj_url(o, 0, url, sizeof(url));
	if (verify_get(o, url, &secs, etag, err, sizeof(err))) {
		print_failure(o, err);
		return 1;
	}
	json_esc(etag, esc, sizeof(esc));
	fprintf(stderr,
		"%s check-big %s: %" PRIu64 " bytes as generated (seed 0x%" PRIx64 "), ETag %s\n",
		o->label, url, o->size, o->seed, etag);
	printf("RESULT {\"target\":\"%s\",\"mode\":\"check-big\",\"size\":%" PRIu64
	       ",\"conc\":1,\"payload\":\"empty\",\"ok\":1,\"errors\":0,\"seconds\":%.3f,"
	       "\"mib_s\":%.2f,\"ops_s\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
	       "\"etag\":\"%s\"}\n",
	       o->label, o->size, secs, (double)o->size / (1024.0 * 1024.0) / secs, 1.0 / secs,
	       secs * 1e3, secs * 1e3, secs * 1e3, esc);
	fflush(stdout);
	return 0;
}

/* The timed sequence runs from the Create request to the Complete answer; parts go out
 * --conc at a time on --conc connections, a new part as soon as one finishes. The first
 * failure stops issuing parts, aborts the upload and is reported instead of a speed. */
static int run_mp(const struct opts *o)
{
	uint64_t nparts = (o->size + o->part_size - 1) / o->part_size, next = 1;
	struct conn *conns = calloc(o->conc, sizeof(*conns));
	char(*etags)[128] = calloc(nparts ? nparts : 1, sizeof(*etags));
	struct stats st = {0};
	struct resp r = {.cap = 65536};
	char obj[2048], url[4096], uid[512], uid_enc[1024], final[160] = "", err[400] = "";
	char *xml = NULL;
	CURLM *m = curl_multi_init();
	bool created = false, completed = false;
	int running = 0, ret = 2;
	double t0, t1, c0, create_ms, complete_ms;

	r.body = malloc(r.cap);
	if (!conns || !etags || !r.body || !m)
		goto out;
	if (nparts > 10000) {
		fprintf(stderr, "loadgen: %" PRIu64 " parts; S3 allows 10000\n", nparts);
		goto out;
	}
	if (o->create_bucket && create_bucket(o))
		goto out;
	for (unsigned i = 0; i < o->conc; i++)
		if (conn_setup(&conns[i], o, "UNSIGNED-PAYLOAD"))
			goto out;
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->conc);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)o->conc);
	obj_url(o, 0, obj, sizeof(obj));
	ret = 1;

	c0 = cpu_s();
	t0 = now_s();
	/* "uploads=": curl 7.88 signs the query string as written, and SigV4's canonical form of
	 * a valueless parameter is "uploads=" */
	snprintf(url, sizeof(url), "%s?uploads=", obj);
	ctl_request(o, "POST", url, NULL, &r);
	create_ms = (now_s() - t0) * 1e3;
	if (r.code != 200 || !xml_tag(r.body, "UploadId", uid, sizeof(uid))) {
		describe_fail(err, sizeof(err), "CreateMultipartUpload", r.code, r.rc, r.errbuf,
			      r.body);
		goto fail;
	}
	created = true;
	uri_encode(uid, false, uid_enc, sizeof(uid_enc));

	for (unsigned i = 0; i < o->conc && next <= nparts; i++)
		mp_part_start(m, &conns[i], o, obj, uid_enc, (unsigned)next++);
	do {
		CURLMsg *msg;
		int left;
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left))) {
			struct conn *c;
			long code = 0;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
			CURLcode rc = msg->data.result;
			curl_multi_remove_handle(m, c->h);
			curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
			c->busy = false;
			if (rc == CURLE_OK && code == 200 && c->off == c->size && c->etag[0]) {
				memcpy(etags[c->part - 1], c->etag, sizeof(c->etag));
				stats_add(&st, (now_s() - c->t0) * 1e3);
				st.ok++;
				st.bytes += c->size;
			} else {
				char what[64];
				snprintf(what, sizeof(what), "UploadPart %u%s", c->part,
					 rc == CURLE_OK && code == 200 ? " (no ETag)" : "");
				st.errors++;
				if (!err[0])
					describe_fail(err, sizeof(err), what, code, rc, c->errbuf,
						      c->body);
			}
			if (!st.errors && next <= nparts) {
				mp_part_start(m, c, o, obj, uid_enc, (unsigned)next++);
				running++;
			}
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	} while (running);
	if (st.errors)
		goto fail;

	size_t xcap = 64 + nparts * 200, xl;
	xml = malloc(xcap);
	if (!xml)
		goto fail;
	xl = (size_t)snprintf(xml, xcap, "<CompleteMultipartUpload>");
	for (uint64_t p = 0; p < nparts; p++)
		xl += (size_t)snprintf(xml + xl, xcap - xl,
				       "<Part><PartNumber>%" PRIu64
				       "</PartNumber><ETag>%s</ETag></Part>",
				       p + 1, etags[p]);
	snprintf(xml + xl, xcap - xl, "</CompleteMultipartUpload>");
	snprintf(url, sizeof(url), "%s?uploadId=%s", obj, uid_enc);
	double tc = now_s();
	ctl_request(o, "POST", url, xml, &r);
	t1 = now_s();
	complete_ms = (t1 - tc) * 1e3;
	/* Complete can answer 200 with an <Error> body: only the result element counts */
	if (r.code != 200 || !strstr(r.body, "<CompleteMultipartUploadResult") ||
	    strstr(r.body, "<Error>")) {
		describe_fail(err, sizeof(err), "CompleteMultipartUpload", r.code, r.rc, r.errbuf,
			      r.body);
		goto fail;
	}
	completed = true;
	xml_tag(r.body, "ETag", final, sizeof(final));
	double secs = t1 - t0, client_cpu = cpu_s() - c0;

	if (o->verify) {
		if (mp_check_etags(o, nparts, etags, final, err, sizeof(err)))
			goto fail;
	}
	qsort(st.lat_ms, st.n, sizeof(double), cmp_double);
	double mib_s = (double)o->size / (1024.0 * 1024.0) / secs;
	double p50 = pct(&st, 0.50), p99 = pct(&st, 0.99), mx = st.lat_ms[st.n - 1];
	fprintf(stderr,
		"%s mp-put size=%" PRIu64 " part=%" PRIu64 " x %" PRIu64 " in flight=%u: %.2f s: "
		"%.1f MiB/s (create %.1f ms, part p50 %.0f ms p99 %.0f ms, complete %.1f ms), "
		"ETag %s%s\n",
		o->label, o->size, o->part_size, nparts, o->conc, secs, mib_s, create_ms, p50, p99,
		complete_ms, final, o->verify ? ", ETags verified" : "");
	printf("RESULT {\"target\":\"%s\",\"mode\":\"mp-put\",\"size\":%" PRIu64
	       ",\"conc\":%u,\"payload\":\"%s\",\"part_size\":%" PRIu64 ",\"parts\":%" PRIu64
	       ",\"ok\":1,\"errors\":0,\"seconds\":%.3f,\"mib_s\":%.2f,\"ops_s\":%.2f,"
	       "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"create_ms\":%.3f,"
	       "\"complete_ms\":%.3f,\"client_cpu_s\":%.3f,\"etags_verified\":%s}\n",
	       o->label, o->size, o->conc, payload_name(o), o->part_size, nparts, secs, mib_s,
	       (double)nparts / secs, p50, p99, mx, create_ms, complete_ms, client_cpu,
	       o->verify ? "true" : "false");
	fflush(stdout);
	ret = 0;
	goto out;
fail:
	print_failure(o, err[0] ? err : "out of memory");
	if (created && !completed) {
		snprintf(url, sizeof(url), "%s?uploadId=%s", obj, uid_enc);
		ctl_request(o, "DELETE", url, NULL, &r);
	}
	ret = 1;
out:
	for (unsigned i = 0; conns && i < o->conc; i++) {
		if (conns[i].h) {
			if (conns[i].busy)
				curl_multi_remove_handle(m, conns[i].h);
			curl_easy_cleanup(conns[i].h);
		}
		curl_slist_free_all(conns[i].hdrs);
	}
	if (m)
		curl_multi_cleanup(m);
	free(conns);
	free(etags);
	free(xml);
	free(r.body);
	free(st.lat_ms);
	return ret;
}

static int write_obj(const char *path, uint64_t seed, uint64_t size)
{
	unsigned char *buf = malloc(BASE_LEN);
	FILE *f = fopen(path, "wb");
	int ret = -EIO;
	if (!buf || !f) {
		fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
		goto out;
	}
	for (uint64_t off = 0; off < size; off += BASE_LEN) {
		size_t n = size - off < BASE_LEN ? (size_t)(size - off) : BASE_LEN;
		gen_fill(buf, off, n, seed);
		if (fwrite(buf, 1, n, f) != n)
			goto out;
	}
	ret = 0;
out:
	if (f && fclose(f) && !ret)
		ret = -EIO;
	free(buf);
	return ret;
}

static int run_gen(struct opts *o)
{
	char path[4096];
	if (!o->out) {
		fprintf(stderr, "loadgen: %s needs --out\n", mode_names[o->mode]);
		return 2;
	}
	if (o->mode == M_GEN_FILE)
		return write_obj(o->out, o->seed, o->size) ? 1 : 0;
	/* gen-small writes what put-small would upload: same names, same seeds */
	o->mode = M_PUT_SMALL;
	for (uint64_t i = 0; i < o->count; i++) {
		snprintf(path, sizeof(path), "%s/%s%08" PRIu64, o->out, o->prefix, i);
		if (write_obj(path, obj_seed(o, i), o->size))
			return 1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: loadgen MODE [options]\n"
	       "modes:\n"
	       "  put-big    PUT one object of --size (default 1G) on 1 connection\n"
	       "  get-big    GET it back, discard the body, check the length\n"
	       "  put-small  PUT distinct objects of --size (default 4K) on --conc connections\n"
	       "  get-small  GET objects <prefix>00000000..(--keys - 1) round robin\n"
	       "  gen-file   write the bytes put-big sends into --out FILE (for nginx)\n"
	       "  gen-small  write --count files named as put-small names them into --out DIR\n"
	       "  mp-put     multipart upload of one object of --size (default 1G): Create, parts\n"
	       "             of --part-size, --conc (default 4) in flight on --conc connections,\n"
	       "             Complete; MiB/s from Create to the Complete answer; then (untimed)\n"
	       "             checks every part ETag and the object's (MD5 of part MD5s-N)\n"
	       "  chunked-put  put-big as aws-chunked: STREAMING-UNSIGNED-PAYLOAD-TRAILER, chunks\n"
	       "             of --chunk-size (default 64K), trailer x-amz-checksum-crc32\n"
	       "  chunked-put-signed  the same with per-chunk signatures\n"
	       "             (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), no trailer\n"
	       "  check-big  GET --key, compare every byte with object --seed's, and the ETag\n"
	       "             (unless multipart) with their MD5; a verdict, not a speed\n"
	       "options:\n"
	       "  --url URL           endpoint, e.g. http://127.0.0.1:9000 (no trailing slash)\n"
	       "  --bucket NAME       bucket (default bench)\n"
	       "  --key KEY           object key of the big modes (default big)\n"
	       "  --prefix P          key prefix of the small modes (default small-)\n"
	       "  --access KEY        access key (or env LOADGEN_ACCESS)\n"
	       "  --secret SECRET     secret key (or env LOADGEN_SECRET)\n"
	       "  --region R          SigV4 region (default us-east-1)\n"
	       "  --no-sign           send unsigned requests (nginx)\n"
	       "  --signed-payload    PUT: sign the body's SHA-256 instead of UNSIGNED-PAYLOAD\n"
	       "  --create-bucket     PUT the bucket first (200 or 409 accepted)\n"
	       "  --size N[K|M|G]     object size\n"
	       "  --conc N            connections (small modes; default 16)\n"
	       "  --duration SECS     small modes: issue requests for this long\n"
	       "  --count N           small modes: issue N requests (default 1000);\n"
	       "                      get-big: repeat the GET N times (default 1)\n"
	       "  --keys N            get-small: number of existing keys (default --count)\n"
	       "  --timeout SECS      per-request timeout (default 600)\n"
	       "  --label NAME        target name for the RESULT line\n"
	       "  --seed N            object seed (the bytes of object N; default 0xCA1A)\n"
	       "  --part-size N[K|M|G]  mp-put part size (default 16M)\n"
	       "  --chunk-size N[K|M]   chunked-put decoded bytes per chunk (default 64K)\n"
	       "  --no-verify         mp-put: skip the ETag checks\n"
	       "  --out PATH          gen-file / gen-small output\n");
}

int main(int argc, char **argv)
{
	struct opts o = {.bucket = "bench",
			 .key = "big",
			 .prefix = "small-",
			 .region = "us-east-1",
			 .label = "target",
			 .conc = 16,
			 .count = 1000,
			 .seed = 0xCA1A,
			 .sign = true,
			 .verify = true,
			 .part_size = 16ull << 20,
			 .chunk_size = 64ull << 10,
			 .timeout = 600};
	bool size_set = false, conc_set = false, count_set = false;
	static const struct option lo[] = {
	    {"url", 1, 0, 'u'},		  {"bucket", 1, 0, 'b'},    {"key", 1, 0, 'k'},
	    {"prefix", 1, 0, 'p'},	  {"access", 1, 0, 'a'},    {"secret", 1, 0, 's'},
	    {"region", 1, 0, 'r'},	  {"no-sign", 0, 0, 'N'},   {"signed-payload", 0, 0, 'S'},
	    {"create-bucket", 0, 0, 'C'}, {"size", 1, 0, 'z'},	    {"conc", 1, 0, 'c'},
	    {"duration", 1, 0, 'd'},	  {"count", 1, 0, 'n'},	    {"keys", 1, 0, 'K'},
	    {"timeout", 1, 0, 't'},	  {"label", 1, 0, 'l'},	    {"out", 1, 0, 'o'},
	    {"seed", 1, 0, 'x'},	  {"help", 0, 0, 'h'},	    {"part-size", 1, 0, 'P'},
	    {"chunk-size", 1, 0, 'Z'},	  {"no-verify", 0, 0, 'V'}, {0, 0, 0, 0}};
	int ch, m = -1;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	for (int i = 0; i < (int)(sizeof(mode_names) / sizeof(mode_names[0])); i++)
		if (strcmp(argv[1], mode_names[i]) == 0)
			m = i;
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (m < 0) {
		fprintf(stderr, "loadgen: unknown mode '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	o.mode = (enum mode)m;
	o.access = getenv("LOADGEN_ACCESS");
	o.secret = getenv("LOADGEN_SECRET");
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'u':
			o.url = optarg;
			break;
		case 'b':
			o.bucket = optarg;
			break;
		case 'k':
			o.key = optarg;
			break;
		case 'p':
			o.prefix = optarg;
			break;
		case 'a':
			o.access = optarg;
			break;
		case 's':
			o.secret = optarg;
			break;
		case 'r':
			o.region = optarg;
			break;
		case 'N':
			o.sign = false;
			break;
		case 'S':
			o.signed_payload = true;
			break;
		case 'C':
			o.create_bucket = true;
			break;
		case 'z':
			if (parse_size(optarg, &o.size))
				goto bad;
			size_set = true;
			break;
		case 'c':
			o.conc = (unsigned)strtoul(optarg, NULL, 10);
			conc_set = true;
			break;
		case 'd':
			o.duration = strtod(optarg, NULL);
			break;
		case 'n':
			o.count = strtoull(optarg, NULL, 10);
			count_set = true;
			break;
		case 'K':
			o.keys = strtoull(optarg, NULL, 10);
			break;
		case 't':
			o.timeout = strtol(optarg, NULL, 10);
			break;
		case 'l':
			o.label = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'x':
			o.seed = strtoull(optarg, NULL, 0);
			break;
		case 'P':
			if (parse_size(optarg, &o.part_size))
				goto bad;
			break;
		case 'Z':
			if (parse_size(optarg, &o.chunk_size))
				goto bad;
			break;
		case 'V':
			o.verify = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (!size_set)
		o.size = (is_small(o.mode) || o.mode == M_GEN_SMALL) ? 4096 : 1ull << 30;
	if (o.mode == M_MP_PUT && !conc_set)
		o.conc = 4;
	if (!is_small(o.mode) && o.mode != M_GEN_SMALL && o.mode != M_MP_PUT && conc_set &&
	    o.conc != 1)
		fprintf(stderr, "loadgen: big modes use one connection; --conc ignored\n");
	if (!is_small(o.mode) && o.mode != M_MP_PUT)
		o.conc = 1;
	if (o.part_size == 0 || o.chunk_size == 0 || o.chunk_size > (16u << 20)) {
		fprintf(stderr, "loadgen: need --part-size > 0 and 0 < --chunk-size <= 16M\n");
		goto bad;
	}
	if (o.signed_payload && (o.mode == M_MP_PUT || is_chunked(o.mode)))
		fprintf(stderr,
			"loadgen: --signed-payload applies to put-big/put-small; ignored\n");
	if (!is_small(o.mode) && !count_set)
		o.count = 1;
	if (!o.keys)
		o.keys = o.count;
	base_init();
	if (o.mode == M_GEN_FILE || o.mode == M_GEN_SMALL) {
		int r = run_gen(&o);
		free(g_base);
		return r;
	}
	if (!o.url || o.conc < 1 || o.conc > MAX_CONC || o.size == 0 || o.timeout <= 0 ||
	    (o.sign && (!o.access || !o.secret))) {
		fprintf(stderr,
			"loadgen: need --url, 1 <= --conc <= %d, --size > 0, and credentials "
			"unless --no-sign\n",
			MAX_CONC);
		goto bad;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		free(g_base);
		return 2;
	}
	int r = o.mode == M_MP_PUT	? run_mp(&o)
		: o.mode == M_CHECK_BIG ? run_check(&o)
					: run_load(&o);
	curl_global_cleanup();
	free(g_base);
	return r;
bad:
	usage(stderr);
	free(g_base);
	return 2;
}
