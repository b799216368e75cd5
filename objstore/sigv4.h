/* objstore/sigv4.h - AWS Signature Version 4 verification.
 *
 * Parses the credentials of a request (Authorization header, or the X-Amz-*
 * query parameters of a presigned URL), builds the canonical request from
 * the raw request target exactly as the client sent it (libmicrohttpd
 * decodes '+' in queries, so the server hands the undecoded target here),
 * and checks the signature with a constant-time comparison. Pure functions
 * over caller-owned memory; any thread.
 */
#ifndef CAIRN_OBJSTORE_SIGV4_H
#define CAIRN_OBJSTORE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/err.h"

#define SIGV4_MAX_SIGNED_HEADERS 64
#define SIGV4_SKEW_MAX 900	 /* seconds: 15 minutes, as S3 */
#define SIGV4_PRESIGN_MAX 604800 /* seconds: 7 days */

struct sigv4_header {
	const char *name;  /* any case */
	const char *value; /* as received */
};

struct sigv4_request {
	const char *method;
	const char *target; /* raw request target: path[?query], undecoded */
	const struct sigv4_header *headers;
	size_t nheaders;
};

enum sigv4_payload {
	SIGV4_PAYLOAD_HASH = 0,	 /* x-amz-content-sha256 is a hex SHA-256 */
	SIGV4_PAYLOAD_UNSIGNED,	 /* UNSIGNED-PAYLOAD (and every presigned URL) */
	SIGV4_PAYLOAD_STREAMING, /* STREAMING-* (aws-chunked: objstore/s3_chunked.h) */
};

struct sigv4_auth {
	bool presigned;
	char access_key[129];
	char date[9]; /* YYYYMMDD of the credential scope */
	char region[64];
	char service[16];
	char amz_date[17];	   /* YYYYMMDDTHHMMSSZ */
	char signed_headers[1024]; /* ';'-separated, lowercase, as sent */
	char signature[65];	   /* lowercase hex */
	long expires;		   /* presigned: X-Amz-Expires seconds */
	enum sigv4_payload payload;
	char payload_hash[65]; /* lowercase hex when SIGV4_PAYLOAD_HASH */
	char payload_raw[80];  /* x-amz-content-sha256 as sent (or UNSIGNED-PAYLOAD) */
};

/* Parses the request's credentials. Returns 0, 1 when the request carries
 * no SigV4 credentials at all (anonymous; an empty or blank Authorization
 * header counts as none), CAIRN_EINVAL for a malformed
 * Authorization header or query (the S3 layer answers
 * AuthorizationHeaderMalformed / AuthorizationQueryParametersError),
 * CAIRN_EDENIED for an Authorization header whose request has no valid
 * X-Amz-Date or Date (AccessDenied, as S3), or CAIRN_EINVAL for signature
 * versions other than 4. On failure out is
 * zeroed except out->presigned, which tells which of the two errors to use. */
int sigv4_parse(const struct sigv4_request *req, struct sigv4_auth *out) CAIRN_WUR;

/* Checks time: header requests within SIGV4_SKEW_MAX of now (CAIRN_ESKEW);
 * presigned URLs not yet expired (CAIRN_EEXPIRED) and not from the future
 * beyond the skew. */
int sigv4_check_time(const struct sigv4_auth *auth, time_t now) CAIRN_WUR;

/* Verifies the signature with the secret key. 0 or CAIRN_EAUTH. */
int sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth,
		 const char *secret) CAIRN_WUR;

/* Builds the canonical request (for tests, fuzzing and error messages that
 * show it, as S3's SignatureDoesNotMatch does). Returns its length or a
 * negative code (CAIRN_ETOOBIG when cap is too small). */
long sigv4_canonical_request(const struct sigv4_request *req, const struct sigv4_auth *auth,
			     char *out, size_t cap) CAIRN_WUR;

/* Added by the SigV4 implementation: the string to sign (for the
 * StringToSign element of SignatureDoesNotMatch). Same returns as
 * sigv4_canonical_request. Never log it next to the signature. */
long sigv4_string_to_sign(const struct sigv4_request *req, const struct sigv4_auth *auth, char *out,
			  size_t cap) CAIRN_WUR;

/* ---- streaming (aws-chunked) signatures ----
 *
 * A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] body signs each chunk,
 * chained from the request's own (seed) signature. The verifier keeps the
 * derived signing key, never the secret: the key is valid for one day, one
 * region and one service only. Callers wipe it (OPENSSL_cleanse) when done. */
#define SIGV4_KEY_LEN 32

/* sigv4_verify that, on success, also leaves the signing key in key_out
 * (untouched on failure). Same returns. */
int sigv4_verify_key(const struct sigv4_request *req, const struct sigv4_auth *auth,
		     const char *secret, uint8_t key_out[SIGV4_KEY_LEN]) CAIRN_WUR;

/* The signing key HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region),
 * service), "aws4_request") of auth's scope. 0 or -ENOMEM. */
int sigv4_signing_key(const struct sigv4_auth *auth, const char *secret,
		      uint8_t key[SIGV4_KEY_LEN]) CAIRN_WUR;

/* A reusable HMAC context for the streaming signatures, so a body's chunks
 * cost no allocation each (one per request instead). NULL on failure. */
struct sigv4_mac;
struct sigv4_mac *sigv4_mac_new(void);
void sigv4_mac_free(struct sigv4_mac *m);

/* A chunk's signature: lowercase hex HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\n"
 * amz_date "\n" scope "\n" prev_sig "\n" hex(SHA-256("")) "\n"
 * hex(chunk_sha256)). prev_sig: the previous chunk's signature, or the seed
 * (the request's Authorization signature) for the first. mac: a context
 * from sigv4_mac_new, or NULL (one is made for the call). 0 or -ENOMEM. */
int sigv4_chunk_signature(struct sigv4_mac *mac, const uint8_t key[SIGV4_KEY_LEN],
			  const struct sigv4_auth *auth, const char *prev_sig,
			  const uint8_t chunk_sha256[32], char out[65]) CAIRN_WUR;

/* The trailer's signature: HMAC(key, "AWS4-HMAC-SHA256-TRAILER\n" amz_date
 * "\n" scope "\n" prev_sig "\n" hex(trailer_sha256)), where trailer_sha256
 * is SHA-256 of the trailing headers as "name:value\n" each (the signature
 * trailer itself excluded) and prev_sig the final (0-byte) chunk's. */
int sigv4_trailer_signature(struct sigv4_mac *mac, const uint8_t key[SIGV4_KEY_LEN],
			    const struct sigv4_auth *auth, const char *prev_sig,
			    const uint8_t trailer_sha256[32], char out[65]) CAIRN_WUR;

#endif
