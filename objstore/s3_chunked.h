/* objstore/s3_chunked.h - incremental decoder of aws-chunked request bodies.
 *
 * A body whose x-amz-content-sha256 is one of the STREAMING values arrives
 * framed as
 *     hex-size[;chunk-signature=64hex]\r\n <size bytes> \r\n ...
 *     0[;chunk-signature=64hex]\r\n
 *     [name:value\r\n ...] [x-amz-trailer-signature:64hex\r\n] \r\n
 * The decoder is fed the wire bytes in slices of any size and hands the
 * decoded bytes (never the framing, never the trailer) to a callback, in
 * order, pointing into the caller's slice. It keeps no allocation per chunk:
 * one line buffer of S3_CHUNKED_LINE_MAX bytes, two SHA-256 contexts and an
 * HMAC context made once. Chunk signatures (signed modes) are checked as each chunk ends; the
 * decoded bytes of a chunk have then already gone to the callback, so a
 * caller stores nothing until s3_chunked_finish() has said 0.
 *
 * Strict: hex sizes only (1-16 digits, no sign, no spaces), CRLF line ends,
 * sizes adding up exactly to x-amz-decoded-content-length, at most the one
 * trailer x-amz-trailer announced, each at most once, the trailer signature
 * last. One decoder belongs to one request (one thread at a time); it
 * borrows auth until s3_chunked_free.
 */
#ifndef CAIRN_OBJSTORE_S3_CHUNKED_H
#define CAIRN_OBJSTORE_S3_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "objstore/sigv4.h"

enum s3_chunked_mode {
	S3_CHUNKED_NONE = 0,
	S3_CHUNKED_SIGNED = 1,		 /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
	S3_CHUNKED_SIGNED_TRAILER = 2,	 /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
	S3_CHUNKED_UNSIGNED_TRAILER = 3, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
};

/* What went wrong (the S3 layer picks the error document from it). */
enum s3_chunked_err {
	S3_CHUNKED_OK = 0,
	S3_CHUNKED_EFRAME,   /* malformed framing (hex, CRLF, line too long, bytes after the end) */
	S3_CHUNKED_ESIZE,    /* chunk sizes do not add up to the decoded length */
	S3_CHUNKED_ESIG,     /* a chunk or trailer signature does not match */
	S3_CHUNKED_ETRAILER, /* trailer missing, repeated, unexpected or malformed */
	S3_CHUNKED_ESHORT,   /* the body ended before the final chunk and trailer */
	S3_CHUNKED_ENOMEM,
};

#define S3_CHUNKED_LINE_MAX 256 /* a chunk-size line or a trailer line */
#define S3_CHUNKED_NAME_MAX 48	/* a trailer name */

/* Called with decoded bytes; a negative return stops the decoder and is
 * returned by s3_chunked_feed as is. */
typedef int (*s3_chunked_data_fn)(void *arg, const uint8_t *data, size_t len);

struct s3_chunked {
	enum s3_chunked_mode mode;
	int state;
	enum s3_chunked_err err;
	const char *msg; /* static description of err */
	uint64_t decoded_len, decoded;
	uint64_t left; /* bytes of the current chunk still to come */
	char line[S3_CHUNKED_LINE_MAX];
	size_t line_len;
	unsigned crlf; /* CRLF bytes seen after a chunk's data */
	/* signatures (signed modes) */
	const struct sigv4_auth *auth;
	uint8_t key[SIGV4_KEY_LEN];
	char prev_sig[65];
	char chunk_sig[65];
	void *sha;  /* EVP_MD_CTX: the current chunk's data */
	void *tsha; /* EVP_MD_CTX: the trailer lines */
	struct sigv4_mac *mac;
	/* trailer */
	char trailer_name[S3_CHUNKED_NAME_MAX]; /* announced, lowercase; "" none */
	char trailer_value[S3_CHUNKED_LINE_MAX];
	bool have_trailer, have_tsig;
};

/* The mode an x-amz-content-sha256 value names; S3_CHUNKED_NONE if none. */
enum s3_chunked_mode s3_chunked_mode_parse(const char *content_sha256);

/* Sets up d. trailer: the x-amz-trailer header (NULL: none; the trailer
 * modes only) naming one trailer. key/auth: the signing key and the
 * request's verified auth (its signature is the seed) for the signed modes,
 * NULL otherwise. Returns 0, CAIRN_EINVAL (d->err/msg: a bad x-amz-trailer)
 * or -ENOMEM. s3_chunked_free must follow in every case. */
int s3_chunked_init(struct s3_chunked *d, enum s3_chunked_mode mode, uint64_t decoded_len,
		    const char *trailer, const uint8_t *key,
		    const struct sigv4_auth *auth) CAIRN_WUR;

/* Decodes len wire bytes. Returns 0, CAIRN_EINVAL (d->err, d->msg say why;
 * every later call returns it again) or the callback's error. */
int s3_chunked_feed(struct s3_chunked *d, const void *in, size_t len, s3_chunked_data_fn fn,
		    void *arg) CAIRN_WUR;

/* The body ended: 0 when it was complete (final chunk, trailer, its
 * signature), else CAIRN_EINVAL with d->err set. A body missing only the
 * very last empty line is accepted (some clients end at the trailer). */
int s3_chunked_finish(struct s3_chunked *d) CAIRN_WUR;

/* The announced trailer's name and value once received, else NULL. */
const char *s3_chunked_trailer(const struct s3_chunked *d, const char **name);

/* Frees the hash contexts and wipes the key. Safe on a zeroed d. */
void s3_chunked_free(struct s3_chunked *d);

#endif
