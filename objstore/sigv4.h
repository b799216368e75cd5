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
	SIGV4_PAYLOAD_STREAMING, /* STREAMING-* (aws-chunked; later issue) */
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
 * no SigV4 credentials at all (anonymous), CAIRN_EINVAL for a malformed
 * Authorization header or query (the S3 layer answers
 * AuthorizationHeaderMalformed / AuthorizationQueryParametersError), or
 * CAIRN_EINVAL for signature versions other than 4. On failure out is
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

#endif
