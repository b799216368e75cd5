/* tests/unit/test_s3_tls.c - HTTPS on the S3 listener (issue 4): the
 * certificate and key checks and their messages, and a real server over a
 * pool driven by libcurl with a CA made here (OpenSSL, in memory).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "chunkstore/chunkstore.h"
#include "objstore/s3.h"

#define KEY_ID "AKIAROOTTESTKEY00001"
#define SECRET "rootsecretrootsecretrootsecretrootsecret"

static char dir[256];
static char ca_pem[300], cert_pem[300], key_pem[300], other_key[300], enc_key[300];

static void path_of(char *out, const char *name)
{
	snprintf(out, 300, "%s/%s", dir, name);
}

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	return k;
}

static void write_key(const char *path, EVP_PKEY *k, const char *pass)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	if (pass)
		assert_int_equal(PEM_write_PrivateKey(f, k, EVP_aes_256_cbc(),
						      (const unsigned char *)pass,
						      (int)strlen(pass), NULL, NULL),
				 1);
	else
		assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	chmod(path, 0600);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

/* A certificate for key k signed by (issuer, ik); issuer NULL: self-signed CA. */
static X509 *new_cert(EVP_PKEY *k, const char *cn, X509 *issuer, EVP_PKEY *ik, long serial)
{
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	if (!issuer) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
		add_ext(x, issuer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
		add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
	}
	assert_true(X509_sign(x, issuer ? ik : k, EVP_sha256()) > 0);
	return x;
}

static void write_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/cairn-s3tls-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	EVP_PKEY *cak = new_key(), *k = new_key(), *k2 = new_key();
	X509 *ca = new_cert(cak, "cairn test CA", NULL, NULL, 1);
	X509 *srv = new_cert(k, "localhost", ca, cak, 2);
	path_of(ca_pem, "ca.pem");
	path_of(cert_pem, "cert.pem");
	path_of(key_pem, "key.pem");
	path_of(other_key, "other-key.pem");
	path_of(enc_key, "enc-key.pem");
	write_cert(ca_pem, ca);
	write_cert(cert_pem, srv);
	write_key(key_pem, k, NULL);
	write_key(other_key, k2, NULL);
	write_key(enc_key, k, "sesame");
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Every failure names the file at fault, and a good pair passes. */
static void test_tls_check_messages_name_the_file(void **state)
{
	(void)state;
	char err[512], junk[300], missing[300];

	path_of(junk, "junk.pem");
	path_of(missing, "missing.pem");
	FILE *f = fopen(junk, "w");
	assert_non_null(f);
	fputs("not a certificate\n", f);
	fclose(f);

	assert_int_equal(s3_tls_check(cert_pem, key_pem, err, sizeof(err)), 0);

	err[0] = 0;
	assert_int_equal(s3_tls_check(missing, key_pem, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, missing));
	assert_int_equal(s3_tls_check(cert_pem, missing, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, missing));

	assert_int_equal(s3_tls_check(junk, key_pem, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, junk));
	assert_non_null(strstr(err, "no PEM certificate"));

	/* A certificate where the key should be. */
	assert_int_equal(s3_tls_check(cert_pem, cert_pem, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "no PEM private key"));

	assert_int_equal(s3_tls_check(cert_pem, other_key, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, other_key));
	assert_non_null(strstr(err, "does not match"));

	/* Encrypted: an error, never a passphrase prompt. */
	assert_int_equal(s3_tls_check(cert_pem, enc_key, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "encrypted"));
	assert_non_null(strstr(err, enc_key));

	assert_int_equal(s3_tls_check(dir, key_pem, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
}

struct srv {
	char pdir[300];
	struct cs_pool *pool;
	struct s3_server *s3;
	uint16_t port;
};

static int srv_start(struct srv *s, const char *cert, const char *key)
{
	struct cs_pool_opts po = {0};
	struct s3_config cfg = {
	    .listen = "127.0.0.1:0",
	    .region = "us-east-1",
	    .max_connections = 16,
	    .timeout_sec = 1,
	    .access_log = true,
	    .tls_cert = cert,
	    .tls_key = key,
	};
	memset(s, 0, sizeof(*s));
	snprintf(s->pdir, sizeof(s->pdir), "%s/pool-XXXXXX", dir);
	assert_non_null(mkdtemp(s->pdir));
	po.data_dir = s->pdir;
	po.map_size = 1ull << 28;
	po.workers = 1;
	int rc = cs_pool_open(&po, &s->pool);
	if (rc < 0)
		return rc;
	assert_int_equal(s3_users_bootstrap(s->pool, KEY_ID, SECRET), 0);
	rc = s3_server_start(&cfg, s->pool, &s->s3);
	if (rc == 0)
		s->port = s3_server_port(s->s3);
	return rc;
}

static void srv_stop(struct srv *s)
{
	s3_server_stop(s->s3);
	cs_pool_close(s->pool);
}

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
	struct buf *b = arg;
	char *q = realloc(b->p, b->n + sz * n + 1);
	if (!q)
		return 0;
	memcpy(q + b->n, p, sz * n);
	b->p = q;
	b->n += sz * n;
	b->p[b->n] = 0;
	return sz * n;
}

/* One signed request (curl's own SigV4) over scheme://localhost:port;
 * returns the curl code, the status in *status and the body in *out. */
static CURLcode req(const char *scheme, uint16_t port, const char *method, const char *path,
		    const void *body, size_t blen, long *status, struct buf *out)
{
	char url[512], resolve[64], hdr[128], sha[65];
	uint8_t md[32];
	struct curl_slist *hl = NULL, *rl = NULL;
	CURL *c = curl_easy_init();
	assert_non_null(c);

	SHA256(body ? body : "", blen, md);
	for (int i = 0; i < 32; i++)
		sprintf(sha + 2 * i, "%02x", md[i]);
	snprintf(hdr, sizeof(hdr), "x-amz-content-sha256: %s", sha);
	hl = curl_slist_append(hl, hdr);
	snprintf(resolve, sizeof(resolve), "localhost:%u:127.0.0.1", port);
	rl = curl_slist_append(rl, resolve);
	snprintf(url, sizeof(url), "%s://localhost:%u%s", scheme, port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, rl);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca_pem);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
	curl_easy_setopt(c, CURLOPT_USERPWD, KEY_ID ":" SECRET);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	CURLcode rc = curl_easy_perform(c);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hl);
	curl_slist_free_all(rl);
	curl_easy_cleanup(c);
	return rc;
}

static void test_tls_one_of_two_refused(void **state)
{
	(void)state;
	struct srv s;
	assert_int_equal(srv_start(&s, cert_pem, NULL), CAIRN_EINVAL);
	srv_stop(&s);
	assert_int_equal(srv_start(&s, "", key_pem), CAIRN_EINVAL);
	srv_stop(&s);
	assert_int_equal(srv_start(&s, cert_pem, other_key), CAIRN_EINVAL);
	srv_stop(&s);
}

/* PUT and GET over HTTPS byte for byte; plain HTTP to the port gets no
 * answer and leaves the server serving. */
static void test_tls_put_get_and_plain_http_refused(void **state)
{
	(void)state;
	struct srv s;
	struct buf b = {0};
	long status;
	size_t n = 3u << 20;
	uint8_t *data = malloc(n);
	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);

	int rc = srv_start(&s, cert_pem, key_pem);
	if (rc == -ENOSYS || rc == -EPERM) {
		srv_stop(&s);
		free(data);
		skip();
	}
	assert_int_equal(rc, 0);
	assert_true(s3_server_tls(s.s3));

	assert_int_equal(req("https", s.port, "PUT", "/tlsb", NULL, 0, &status, &b), CURLE_OK);
	assert_int_equal(status, 200);
	free(b.p);
	b = (struct buf){0};
	assert_int_equal(req("https", s.port, "PUT", "/tlsb/obj", data, n, &status, &b), CURLE_OK);
	assert_int_equal(status, 200);
	free(b.p);
	b = (struct buf){0};

	CURLcode cc = req("http", s.port, "GET", "/tlsb/obj", NULL, 0, &status, &b);
	assert_int_not_equal(cc, CURLE_OK);
	assert_int_equal(b.n, 0);
	free(b.p);
	b = (struct buf){0};

	assert_int_equal(req("https", s.port, "GET", "/tlsb/obj", NULL, 0, &status, &b), CURLE_OK);
	assert_int_equal(status, 200);
	assert_int_equal(b.n, n);
	assert_memory_equal(b.p, data, n);
	free(b.p);
	srv_stop(&s);
	free(data);
}

/* A client that opens a TLS handshake and stalls is cut by the idle
 * timeout / head-deadline machinery like a plain one; the server goes on. */
static void test_tls_stalled_handshake_is_closed(void **state)
{
	(void)state;
	struct srv s;
	struct buf b = {0};
	long status;
	int rc = srv_start(&s, cert_pem, key_pem);
	if (rc == -ENOSYS || rc == -EPERM) {
		srv_stop(&s);
		skip();
	}
	assert_int_equal(rc, 0);

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(s.port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	/* The first bytes of a ClientHello record, then silence. */
	static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
	assert_int_equal(write(fd, hello, sizeof(hello)), (ssize_t)sizeof(hello));
	time_t t0 = time(NULL);
	bool closed = false;
	while (time(NULL) - t0 < 40) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 1000) > 0) {
			char tmp[256];
			ssize_t r = read(fd, tmp, sizeof(tmp));
			if (r <= 0) {
				closed = true;
				break;
			}
		}
	}
	close(fd);
	assert_true(closed);

	assert_int_equal(req("https", s.port, "PUT", "/after", NULL, 0, &status, &b), CURLE_OK);
	assert_int_equal(status, 200);
	free(b.p);
	srv_stop(&s);
}

/* A client that completes the handshake and then trickles its request head
 * byte by byte keeps libmicrohttpd's idle timer alive; the slow-head reaper
 * must still cut it over TLS (timeout 1 s + S3_HEADER_GRACE_SEC). */
static void test_tls_trickled_head_is_reaped(void **state)
{
	(void)state;
	struct srv s;
	struct buf b = {0};
	long status;
	int rc = srv_start(&s, cert_pem, key_pem);
	if (rc == -ENOSYS || rc == -EPERM) {
		srv_stop(&s);
		skip();
	}
	assert_int_equal(rc, 0);

	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca_pem, NULL), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(s.port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	SSL *ssl = SSL_new(ctx);
	assert_non_null(ssl);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	assert_true(SSL_set1_host(ssl, "localhost"));
	assert_int_equal(SSL_connect(ssl), 1); /* verified against the test CA */

	static const char head[] =
	    "GET /tlsb/obj HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	time_t t0 = time(NULL);
	bool closed = false;
	size_t i = 0;
	/* One byte every 300 ms: ~20 s of head, far past the deadline. */
	while (!closed && time(NULL) - t0 < 60) {
		if (SSL_write(ssl, head + i % (sizeof(head) - 1), 1) <= 0) {
			closed = true;
			break;
		}
		i++;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 300) > 0) {
			char tmp[256];
			if (SSL_read(ssl, tmp, sizeof(tmp)) <= 0)
				closed = true;
		}
	}
	time_t took = time(NULL) - t0;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	assert_true(closed);
	/* Cut by the reaper, not by the 1 s idle timer (which the trickle
	 * keeps resetting): the head deadline is 1 + 10 s. */
	assert_true(took >= 5);

	assert_int_equal(req("https", s.port, "PUT", "/still", NULL, 0, &status, &b), CURLE_OK);
	assert_int_equal(status, 200);
	free(b.p);
	srv_stop(&s);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tls_check_messages_name_the_file),
	    cmocka_unit_test(test_tls_one_of_two_refused),
	    cmocka_unit_test(test_tls_put_get_and_plain_http_refused),
	    cmocka_unit_test(test_tls_stalled_handshake_is_closed),
	    cmocka_unit_test(test_tls_trickled_head_is_reaped),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	curl_global_cleanup();
	return rc;
}
