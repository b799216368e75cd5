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
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define BASE_LEN (1u << 20)
#define BLOCK 4096u
#define STAMP 16u
#define MAX_CONC 1024
#define ERR_SHOW 5

enum mode { M_PUT_BIG, M_GET_BIG, M_PUT_SMALL, M_GET_SMALL, M_GEN_FILE, M_GEN_SMALL };

static const char *const mode_names[] = {"put-big",   "get-big",  "put-small",
					 "get-small", "gen-file", "gen-small"};

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
	long timeout; /* per request, seconds */
};

static unsigned char *g_base;

struct conn {
	CURL *h;
	struct curl_slist *hdrs;
	char url[2048];
	char errbuf[CURL_ERROR_SIZE];
	uint64_t seed;	      /* object being transferred */
	uint64_t off;	      /* PUT: next byte to send */
	uint64_t got;	      /* GET: bytes received */
	uint64_t size;	      /* object size */
	unsigned char *small; /* put-small: the request body, --size bytes */
	char body[512];	      /* first bytes of the response body, for error reports */
	size_t body_len;
	double t0;
	bool busy;
};

struct stats {
	double *lat_ms;
	size_t n, cap;
	uint64_t ok, errors, bytes;
	unsigned shown;
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
	gen_fill((unsigned char *)buf, c->off, want, c->seed);
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

static bool is_put(enum mode m)
{
	return m == M_PUT_BIG || m == M_PUT_SMALL;
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
	if (o->sign) {
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
	c->off = 0;
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
	c->busy = false;
	if (ok) {
		st->ok++;
		st->bytes += c->size;
		stats_add(st, ms);
		return;
	}
	st->errors++;
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
	} else if (!is_put(o->mode)) {
		strcpy(hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
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
			if (o->mode == M_PUT_BIG)
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
	fprintf(stderr,
		"%s %s size=%" PRIu64 " conc=%u: %" PRIu64 " ok, %" PRIu64
		" errors in %.2f s: %.1f MiB/s, %.1f ops/s, latency p50 %.2f ms p99 %.2f ms max "
		"%.2f ms\n",
		o->label, mode_names[o->mode], o->size, o->conc, st.ok, st.errors, secs, mib_s,
		ops_s, p50, p99, mx);
	printf("RESULT {\"target\":\"%s\",\"mode\":\"%s\",\"size\":%" PRIu64
	       ",\"conc\":%u,\"payload\":\"%s\",\"ok\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"seconds\":%.3f,\"mib_s\":%.2f,\"ops_s\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"max_ms\":%.3f,\"client_cpu_s\":%.3f}\n",
	       o->label, mode_names[o->mode], o->size, o->conc,
	       !o->sign		   ? "none"
	       : !is_put(o->mode)  ? "empty"
	       : o->signed_payload ? "signed"
				   : "unsigned",
	       st.ok, st.errors, secs, mib_s, ops_s, p50, p99, mx, client_cpu);
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
	}
	if (m)
		curl_multi_cleanup(m);
	free(conns);
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
	fprintf(f,
		"usage: loadgen MODE [options]\n"
		"modes:\n"
		"  put-big    PUT one object of --size (default 1G) on 1 connection\n"
		"  get-big    GET it back, discard the body, check the length\n"
		"  put-small  PUT distinct objects of --size (default 4K) on --conc connections\n"
		"  get-small  GET objects <prefix>00000000..(--keys - 1) round robin\n"
		"  gen-file   write the bytes put-big sends into --out FILE (for nginx)\n"
		"  gen-small  write --count files named as put-small names them into --out DIR\n"
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
			 .timeout = 600};
	bool size_set = false, conc_set = false, count_set = false;
	static const struct option lo[] = {
	    {"url", 1, 0, 'u'},		  {"bucket", 1, 0, 'b'},  {"key", 1, 0, 'k'},
	    {"prefix", 1, 0, 'p'},	  {"access", 1, 0, 'a'},  {"secret", 1, 0, 's'},
	    {"region", 1, 0, 'r'},	  {"no-sign", 0, 0, 'N'}, {"signed-payload", 0, 0, 'S'},
	    {"create-bucket", 0, 0, 'C'}, {"size", 1, 0, 'z'},	  {"conc", 1, 0, 'c'},
	    {"duration", 1, 0, 'd'},	  {"count", 1, 0, 'n'},	  {"keys", 1, 0, 'K'},
	    {"timeout", 1, 0, 't'},	  {"label", 1, 0, 'l'},	  {"out", 1, 0, 'o'},
	    {"seed", 1, 0, 'x'},	  {"help", 0, 0, 'h'},	  {0, 0, 0, 0}};
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
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (!size_set)
		o.size = (o.mode == M_PUT_BIG || o.mode == M_GET_BIG || o.mode == M_GEN_FILE)
			     ? 1ull << 30
			     : 4096;
	if (!is_small(o.mode) && o.mode != M_GEN_SMALL && conc_set && o.conc != 1)
		fprintf(stderr, "loadgen: big modes use one connection; --conc ignored\n");
	if (!is_small(o.mode))
		o.conc = 1;
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
	int r = run_load(&o);
	curl_global_cleanup();
	free(g_base);
	return r;
bad:
	usage(stderr);
	free(g_base);
	return 2;
}
