/* tests/unit/test_s3_util.c - see test_s3_util.h. */
#include "test_s3_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "chunkstore/chunkstore.h"
#include "objstore/s3.h"

int s3t_start(struct s3t *t, const char *domain)
{
	return s3t_start_map(t, domain, 1ull << 30);
}

int s3t_start_map(struct s3t *t, const char *domain, size_t map_size)
{
	struct cs_pool_opts po = {0};
	struct s3_config cfg = {
	    .listen = "127.0.0.1:0",
	    .region = "us-east-1",
	    .domain = domain,
	    .max_connections = 64,
	    .timeout_sec = 5,
	    .access_log = true,
	};
	int rc;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "%s/cairn-s3-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(t->dir))
		return 77;
	po.data_dir = t->dir;
	po.map_size = map_size;
	po.workers = 2;
	rc = cs_pool_open(&po, &t->pool);
	if (rc < 0) {
		fprintf(stderr, "cs_pool_open: %s\n", cairn_strerror(rc));
		return rc == -ENOSYS || rc == -EPERM ? 77 : 1;
	}
	rc = s3_users_bootstrap(t->pool, S3T_ROOT_KEY, S3T_ROOT_SECRET);
	if (rc < 0) {
		fprintf(stderr, "bootstrap: %s\n", cairn_strerror(rc));
		return 1;
	}
	rc = s3_server_start(&cfg, t->pool, &t->srv);
	if (rc < 0) {
		fprintf(stderr, "s3_server_start: %s\n", cairn_strerror(rc));
		return 1;
	}
	t->port = s3_server_port(t->srv);
	return 0;
}

void s3t_stop(struct s3t *t)
{
	char cmd[300];

	s3_server_stop(t->srv);
	cs_pool_close(t->pool);
	if (t->dir[0] && !getenv("S3T_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", t->dir);
	}
}

/* ---- SigV4 ---- */

static void hex(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	uint8_t md[32];
	SHA256(data, len, md);
	hex(md, 32, out);
}

static void hmac(const void *key, size_t klen, const char *msg, uint8_t out[32])
{
	unsigned len = 32;
	HMAC(EVP_sha256(), key, (int)klen, (const uint8_t *)msg, strlen(msg), out, &len);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Canonical query: pairs sorted, '=' added to valueless ones (values are
 * passed already encoded by the tests). */
static void canon_query(const char *q, char *out, size_t cap)
{
	char buf[4096], *parts[64], *save = NULL;
	size_t n = 0;

	out[0] = 0;
	if (!q || !q[0])
		return;
	snprintf(buf, sizeof(buf), "%s", q);
	for (char *p = strtok_r(buf, "&", &save); p && n < 64; p = strtok_r(NULL, "&", &save))
		parts[n++] = p;
	qsort(parts, n, sizeof(parts[0]), cmp_str);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(out);
		snprintf(out + l, cap - l, "%s%s%s", i ? "&" : "", parts[i],
			 strchr(parts[i], '=') ? "" : "=");
	}
}

static void signature(const char *secret, const char *date8, const char *region, const char *sts,
		      char out[65])
{
	char k0[200];
	uint8_t k1[32], k2[32], k3[32], k4[32], sig[32];

	snprintf(k0, sizeof(k0), "AWS4%s", secret);
	hmac(k0, strlen(k0), date8, k1);
	hmac(k1, 32, region, k2);
	hmac(k2, 32, "s3", k3);
	hmac(k3, 32, "aws4_request", k4);
	hmac(k4, 32, sts, sig);
	hex(sig, 32, out);
}

static void amz_dates(time_t when, char amz[17], char date8[9])
{
	struct tm tm;
	gmtime_r(&when, &tm);
	strftime(amz, 17, "%Y%m%dT%H%M%SZ", &tm);
	memcpy(date8, amz, 8);
	date8[8] = 0;
}

/* Authorization for headers host;x-amz-content-sha256;x-amz-date. */
static void sign_headers(const char *method, const char *path, const char *query, const char *host,
			 const char *payload, const char *amz, const char *key, const char *secret,
			 const char *region, char *auth, size_t cap)
{
	char cq[4096], creq[8192], sts[1024], h[65], sig[65], date8[9];

	memcpy(date8, amz, 8);
	date8[8] = 0;
	canon_query(query, cq, sizeof(cq));
	snprintf(creq, sizeof(creq),
		 "%s\n%s\n%s\nhost:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n\n"
		 "host;x-amz-content-sha256;x-amz-date\n%s",
		 method, path, cq, host, payload, amz, payload);
	sha256_hex(creq, strlen(creq), h);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", amz, date8,
		 region, h);
	signature(secret, date8, region, sts, sig);
	snprintf(auth, cap,
		 "AWS4-HMAC-SHA256 Credential=%s/%s/%s/s3/aws4_request, "
		 "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=%s",
		 key, date8, region, sig);
}

void s3t_presign(struct s3t *t, const char *method, const char *path, const char *key,
		 const char *secret, time_t when, long expires, char *out, size_t cap)
{
	char amz[17], date8[9], q[1024], creq[4096], sts[1024], h[65], sig[65], host[64];

	amz_dates(when, amz, date8);
	snprintf(host, sizeof(host), "127.0.0.1:%u", t->port);
	snprintf(q, sizeof(q),
		 "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s%%2F%s%%2Fus-east-1%%2Fs3%%2F"
		 "aws4_request&X-Amz-Date=%s&X-Amz-Expires=%ld&X-Amz-SignedHeaders=host",
		 key, date8, amz, expires);
	snprintf(creq, sizeof(creq), "%s\n%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", method, path,
		 q, host);
	sha256_hex(creq, strlen(creq), h);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s/us-east-1/s3/aws4_request\n%s", amz,
		 date8, h);
	signature(secret, date8, "us-east-1", sts, sig);
	snprintf(out, cap, "%s?%s&X-Amz-Signature=%s", path, q, sig);
}

void s3t_sign_raw(struct s3t *t, const char *method, const char *path, char *out, size_t cap)
{
	char amz[17], date8[9], host[64], auth[512];

	amz_dates(time(NULL), amz, date8);
	snprintf(host, sizeof(host), "127.0.0.1:%u", t->port);
	sign_headers(method, path, NULL, host, "UNSIGNED-PAYLOAD", amz, S3T_ROOT_KEY,
		     S3T_ROOT_SECRET, "us-east-1", auth, sizeof(auth));
	snprintf(out, cap,
		 "Host: %s\r\nx-amz-date: %s\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"
		 "Authorization: %s\r\n",
		 host, amz, auth);
}

/* ---- curl ---- */

struct buf {
	char *p;
	size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
	struct buf *b = arg;
	char *np = realloc(b->p, b->len + sz * n + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, p, sz * n);
	b->len += sz * n;
	b->p[b->len] = 0;
	return sz * n;
}

struct src {
	const char *p;
	size_t left;
};

static size_t on_read(char *p, size_t sz, size_t n, void *arg)
{
	struct src *s = arg;
	size_t k = sz * n < s->left ? sz * n : s->left;
	/* Small pieces, so chunked bodies really arrive in many chunks. */
	if (k > 7000)
		k = 7000;
	memcpy(p, s->p, k);
	s->p += k;
	s->left -= k;
	return k;
}

int s3t_do(struct s3t *t, const struct s3t_req *rq, struct s3t_resp *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL, *resolve = NULL;
	struct buf body = {0}, hdrs = {0};
	struct src src = {rq->body, rq->blen};
	char url[8192], host[300], line[1024], payload[65], amz[17], date8[9], auth[600];
	const char *pl;
	CURLcode cc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return -1;
	if (rq->host) {
		snprintf(host, sizeof(host), "%s:%u", rq->host, t->port);
		snprintf(line, sizeof(line), "%s:%u:127.0.0.1", rq->host, t->port);
		resolve = curl_slist_append(NULL, line);
		curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
	} else {
		snprintf(host, sizeof(host), "127.0.0.1:%u", t->port);
	}
	snprintf(url, sizeof(url), "http://%s%s%s%s", host, rq->path, rq->query ? "?" : "",
		 rq->query ? rq->query : "");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdrs);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	if (strcmp(rq->method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (rq->body || strcmp(rq->method, "PUT") == 0 || strcmp(rq->method, "POST") == 0) {
		if (rq->curl_sigv4) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->blen);
			/* curl 7.88 signs the payload hash only when given the
			 * header (S3 requires it anyway). */
			sha256_hex(rq->body ? rq->body : "", rq->blen, payload);
			snprintf(line, sizeof(line), "x-amz-content-sha256: %s", payload);
			hl = curl_slist_append(hl, line);
		} else {
			curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(c, CURLOPT_READDATA, &src);
			if (rq->chunked)
				hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
			else
				curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->blen);
		}
	}
	if (rq->key && rq->curl_sigv4) {
		snprintf(line, sizeof(line), "%s:%s", rq->key, rq->secret);
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
		curl_easy_setopt(c, CURLOPT_USERPWD, line);
	} else if (rq->key) {
		amz_dates(rq->when ? rq->when : time(NULL), amz, date8);
		if (rq->payload) {
			pl = rq->payload;
		} else {
			sha256_hex(rq->body ? rq->body : "", rq->blen, payload);
			pl = payload;
		}
		sign_headers(rq->method, rq->path, rq->query, host, pl, amz, rq->key, rq->secret,
			     rq->region ? rq->region : "us-east-1", auth, sizeof(auth));
		snprintf(line, sizeof(line), "Authorization: %s", auth);
		hl = curl_slist_append(hl, line);
		snprintf(line, sizeof(line), "x-amz-date: %s", amz);
		hl = curl_slist_append(hl, line);
		if (!rq->no_payload_hdr) {
			snprintf(line, sizeof(line), "x-amz-content-sha256: %s", pl);
			hl = curl_slist_append(hl, line);
		}
	}
	for (int i = 0; i < 16 && rq->hdrs[i]; i++)
		hl = curl_slist_append(hl, rq->hdrs[i]);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_slist_free_all(hl);
	curl_slist_free_all(resolve);
	curl_easy_cleanup(c);
	out->body = body.p ? body.p : calloc(1, 1);
	out->len = body.len;
	out->hdrs = hdrs.p ? hdrs.p : calloc(1, 1);
	out->hlen = hdrs.len;
	if (cc != CURLE_OK) {
		fprintf(stderr, "curl %s %s: %s\n", rq->method, rq->path, curl_easy_strerror(cc));
		return -1;
	}
	return 0;
}

void s3t_resp_free(struct s3t_resp *r)
{
	free(r->body);
	free(r->hdrs);
	memset(r, 0, sizeof(*r));
}

const char *s3t_header(const struct s3t_resp *r, const char *name, char *buf, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = r->hdrs;

	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			size_t n;
			while (*v == ' ')
				v++;
			n = (size_t)(eol - v);
			if (n >= cap)
				n = cap - 1;
			memcpy(buf, v, n);
			buf[n] = 0;
			return buf;
		}
		p = eol + 2;
	}
	return NULL;
}

bool s3t_body_has(const struct s3t_resp *r, const char *needle)
{
	return r->body && strstr(r->body, needle) != NULL;
}

long s3t_raw(struct s3t *t, const void *req, size_t len, char *out, size_t cap, int timeout_ms,
	     bool shut_wr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(t->port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t got = 0;

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, req, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	if (shut_wr)
		shutdown(fd, SHUT_WR);
	while (got + 1 < cap) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;
		if (poll(&pfd, 1, timeout_ms) <= 0)
			break;
		n = read(fd, out + got, cap - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	out[got] = 0;
	close(fd);
	return (long)got;
}
