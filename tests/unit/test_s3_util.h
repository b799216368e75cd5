/* tests/unit/test_s3_util.h - an S3 server over a pool in a tmp dir, and a
 * small independent SigV4 signer + libcurl client to drive it.
 *
 * The signer is written from the AWS SigV4 description (not from
 * objstore/sigv4.c) so the tests check the server against a second
 * implementation; curl's own CURLOPT_AWS_SIGV4 is a third.
 */
#ifndef CAIRN_TESTS_S3_TEST_UTIL_H
#define CAIRN_TESTS_S3_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct cs_pool;
struct s3_server;

struct s3t {
	char dir[256];
	struct cs_pool *pool;
	struct s3_server *srv;
	uint16_t port;
};

#define S3T_ROOT_KEY "AKIAROOTTESTKEY00001"
#define S3T_ROOT_SECRET "rootsecretrootsecretrootsecretrootsecret"

/* Opens a pool in a new tmp dir, bootstraps root, starts the server on an
 * ephemeral port. Returns 0, or 77 when the environment cannot run it. */
int s3t_start(struct s3t *t, const char *domain);
/* The same with an LMDB map of map_size bytes (to fill it). */
int s3t_start_map(struct s3t *t, const char *domain, size_t map_size);
void s3t_stop(struct s3t *t);

struct s3t_req {
	const char *method;
	const char *path;  /* encoded, as sent, e.g. "/b/a%20b" */
	const char *query; /* as sent, without '?'; NULL: none */
	const void *body;
	size_t blen;
	const char *hdrs[16];	  /* extra "Name: value" headers; not signed */
	const char *key, *secret; /* NULL key: anonymous */
	const char *payload;	  /* x-amz-content-sha256; NULL: hash of body */
	bool no_payload_hdr;	  /* send no x-amz-content-sha256 */
	time_t when;		  /* signing time; 0 = now */
	bool curl_sigv4;	  /* sign with curl's CURLOPT_AWS_SIGV4 instead */
	bool chunked;		  /* send the body with Transfer-Encoding: chunked */
	const char *host;	  /* Host to sign and send (resolved to 127.0.0.1) */
	const char *region;	  /* credential scope region; NULL: us-east-1 */
};

struct s3t_resp {
	long status;
	char *body;
	size_t len;
	char *hdrs;
	size_t hlen;
};

/* Performs the request; returns 0 or -1 on transport failure. */
int s3t_do(struct s3t *t, const struct s3t_req *rq, struct s3t_resp *out);
void s3t_resp_free(struct s3t_resp *r);
/* Header value (case-insensitive name) copied into buf; NULL if absent. */
const char *s3t_header(const struct s3t_resp *r, const char *name, char *buf, size_t cap);
bool s3t_body_has(const struct s3t_resp *r, const char *needle);
/* A presigned GET URL path+query for path, expiring `expires` seconds
 * after `when`. */
void s3t_presign(struct s3t *t, const char *method, const char *path, const char *key,
		 const char *secret, time_t when, long expires, char *out, size_t cap);
/* Sends raw bytes on a new connection and reads the answer until the
 * server closes it or timeout_ms passes; returns bytes read (in out). */
long s3t_raw(struct s3t *t, const void *req, size_t len, char *out, size_t cap, int timeout_ms,
	     bool shut_wr);
/* A signed header block ("Authorization: ...\r\nX-Amz-Date...\r\n" etc.)
 * for a raw request with UNSIGNED-PAYLOAD. */
void s3t_sign_raw(struct s3t *t, const char *method, const char *path, char *out, size_t cap);

#endif
