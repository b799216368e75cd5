/* objstore/s3_chunked.c - incremental aws-chunked decoder (see s3_chunked.h).
 *
 * A byte-driven state machine: lines (chunk sizes, trailers) collect in one
 * bounded buffer; chunk data passes straight from the caller's slice to the
 * callback and, in the signed modes, through the chunk's SHA-256 (on the
 * caller's thread: the connection thread, as the payload hash is). Cost per
 * chunk in the signed modes: one SHA-256 of the data and one HMAC.
 */
#include "objstore/s3_chunked.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "objstore/s3_parse.h"

enum { ST_SIZE = 0, ST_DATA, ST_DATA_CRLF, ST_TRAILER, ST_DONE, ST_ERR };

enum s3_chunked_mode s3_chunked_mode_parse(const char *v)
{
	if (!v)
		return S3_CHUNKED_NONE;
	if (strcmp(v, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") == 0)
		return S3_CHUNKED_SIGNED;
	if (strcmp(v, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER") == 0)
		return S3_CHUNKED_SIGNED_TRAILER;
	if (strcmp(v, "STREAMING-UNSIGNED-PAYLOAD-TRAILER") == 0)
		return S3_CHUNKED_UNSIGNED_TRAILER;
	return S3_CHUNKED_NONE;
}

static bool signed_mode(const struct s3_chunked *d)
{
	return d->mode == S3_CHUNKED_SIGNED || d->mode == S3_CHUNKED_SIGNED_TRAILER;
}

static int fail(struct s3_chunked *d, enum s3_chunked_err e, const char *msg)
{
	d->err = e;
	d->msg = msg;
	d->state = ST_ERR;
	return CAIRN_EINVAL;
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

int s3_chunked_init(struct s3_chunked *d, enum s3_chunked_mode mode, uint64_t decoded_len,
		    const char *trailer, const uint8_t *key, const struct sigv4_auth *auth)
{
	memset(d, 0, sizeof(*d));
	d->mode = mode;
	d->decoded_len = decoded_len;
	if (mode == S3_CHUNKED_NONE)
		return fail(d, S3_CHUNKED_EFRAME, "Not an aws-chunked body");
	if (trailer) {
		size_t n;
		while (*trailer == ' ' || *trailer == '\t')
			trailer++;
		n = strlen(trailer);
		while (n && (trailer[n - 1] == ' ' || trailer[n - 1] == '\t'))
			n--;
		if (mode == S3_CHUNKED_SIGNED)
			return fail(d, S3_CHUNKED_ETRAILER,
				    "x-amz-trailer needs a -TRAILER x-amz-content-sha256");
		if (n == 0 || n >= sizeof(d->trailer_name) || memchr(trailer, ',', n))
			return fail(d, S3_CHUNKED_ETRAILER,
				    "x-amz-trailer must name exactly one trailing header");
		for (size_t i = 0; i < n; i++) {
			char c = trailer[i];
			if (c <= ' ' || c == ':' || (unsigned char)c >= 0x7f)
				return fail(d, S3_CHUNKED_ETRAILER, "Invalid x-amz-trailer");
			d->trailer_name[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		d->trailer_name[n] = 0;
	}
	if (signed_mode(d)) {
		if (!key || !auth || strlen(auth->signature) != 64)
			return fail(d, S3_CHUNKED_ESIG, "A signed aws-chunked body needs the seed");
		d->auth = auth;
		memcpy(d->key, key, SIGV4_KEY_LEN);
		memcpy(d->prev_sig, auth->signature, 65);
		d->sha = EVP_MD_CTX_new();
		d->mac = sigv4_mac_new();
		if (!d->sha || !d->mac)
			return -ENOMEM;
		if (mode == S3_CHUNKED_SIGNED_TRAILER) {
			d->tsha = EVP_MD_CTX_new();
			if (!d->tsha || EVP_DigestInit_ex(d->tsha, EVP_sha256(), NULL) != 1)
				return -ENOMEM;
		}
	}
	d->state = ST_SIZE;
	return 0;
}

void s3_chunked_free(struct s3_chunked *d)
{
	if (!d)
		return;
	EVP_MD_CTX_free(d->sha);
	EVP_MD_CTX_free(d->tsha);
	sigv4_mac_free(d->mac);
	d->sha = d->tsha = NULL;
	d->mac = NULL;
	OPENSSL_cleanse(d->key, sizeof(d->key));
}

const char *s3_chunked_trailer(const struct s3_chunked *d, const char **name)
{
	if (!d->have_trailer)
		return NULL;
	if (name)
		*name = d->trailer_name;
	return d->trailer_value;
}

/* Checks the signature of the chunk whose data went through d->sha. */
static int check_chunk_sig(struct s3_chunked *d)
{
	uint8_t h[32];
	char sig[65];
	unsigned n = 0;

	if (EVP_DigestFinal_ex(d->sha, h, &n) != 1)
		return fail(d, S3_CHUNKED_ENOMEM, "Out of memory");
	if (sigv4_chunk_signature(d->mac, d->key, d->auth, d->prev_sig, h, sig) < 0)
		return fail(d, S3_CHUNKED_ENOMEM, "Out of memory");
	if (CRYPTO_memcmp(sig, d->chunk_sig, 64) != 0)
		return fail(
		    d, S3_CHUNKED_ESIG,
		    "The chunk signature we calculated does not match the one you provided");
	memcpy(d->prev_sig, sig, 65);
	return 0;
}

/* "hex[;chunk-signature=64hex]" */
static int size_line(struct s3_chunked *d)
{
	const char *p = d->line, *end = d->line + d->line_len;
	uint64_t size = 0;
	int digits = 0;

	for (; p < end && s3_hexval((unsigned char)*p) >= 0; p++) {
		if (++digits > 16)
			return fail(d, S3_CHUNKED_EFRAME, "Chunk size too long");
		size = size << 4 | (uint64_t)s3_hexval((unsigned char)*p);
	}
	if (digits == 0)
		return fail(d, S3_CHUNKED_EFRAME, "Malformed chunk size");
	if (signed_mode(d)) {
		static const char ext[] = ";chunk-signature=";
		size_t el = sizeof(ext) - 1;
		if ((size_t)(end - p) != el + 64 || memcmp(p, ext, el) != 0 ||
		    !is_hex64(p + el, 64))
			return fail(d, S3_CHUNKED_EFRAME, "Malformed chunk signature");
		for (int i = 0; i < 64; i++) {
			char c = p[el + i];
			d->chunk_sig[i] = (char)(c >= 'A' && c <= 'F' ? c + 32 : c);
		}
		d->chunk_sig[64] = 0;
		if (EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL) != 1)
			return fail(d, S3_CHUNKED_ENOMEM, "Out of memory");
	} else if (p != end) {
		return fail(d, S3_CHUNKED_EFRAME, "Unexpected chunk extension");
	}
	if (size > d->decoded_len - d->decoded)
		return fail(d, S3_CHUNKED_ESIZE,
			    "The chunks are longer than x-amz-decoded-content-length");
	if (size == 0) {
		if (d->decoded != d->decoded_len)
			return fail(d, S3_CHUNKED_ESIZE,
				    "The chunks are shorter than x-amz-decoded-content-length");
		if (signed_mode(d) && check_chunk_sig(d) < 0)
			return CAIRN_EINVAL;
		d->state = ST_TRAILER;
		return 0;
	}
	d->left = size;
	d->state = ST_DATA;
	return 0;
}

/* The trailer section ended with its empty line (or the body ended). */
static int trailer_end(struct s3_chunked *d)
{
	if (d->trailer_name[0] && !d->have_trailer)
		return fail(d, S3_CHUNKED_ETRAILER,
			    "The trailer announced by x-amz-trailer is missing");
	if (d->mode == S3_CHUNKED_SIGNED_TRAILER && !d->have_tsig)
		return fail(d, S3_CHUNKED_ESIG, "The trailer signature is missing");
	d->state = ST_DONE;
	return 0;
}

static int trailer_line(struct s3_chunked *d)
{
	char *colon, *v, name[S3_CHUNKED_NAME_MAX];
	size_t nl, vl;

	if (d->line_len == 0)
		return trailer_end(d);
	if (d->have_tsig)
		return fail(d, S3_CHUNKED_ETRAILER, "Trailing header after the trailer signature");
	colon = memchr(d->line, ':', d->line_len);
	if (!colon || colon == d->line)
		return fail(d, S3_CHUNKED_ETRAILER, "Malformed trailing header");
	nl = (size_t)(colon - d->line);
	if (nl >= sizeof(name))
		return fail(d, S3_CHUNKED_ETRAILER, "Unexpected trailing header");
	for (size_t i = 0; i < nl; i++) {
		char c = d->line[i];
		name[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	name[nl] = 0;
	v = colon + 1;
	vl = d->line_len - nl - 1;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	if (strcmp(name, "x-amz-trailer-signature") == 0) {
		uint8_t h[32];
		char sig[65];
		unsigned n = 0;
		if (d->mode != S3_CHUNKED_SIGNED_TRAILER)
			return fail(d, S3_CHUNKED_ETRAILER, "Unexpected trailer signature");
		if (!is_hex64(v, vl))
			return fail(d, S3_CHUNKED_ESIG, "Malformed trailer signature");
		if (EVP_DigestFinal_ex(d->tsha, h, &n) != 1 ||
		    sigv4_trailer_signature(d->mac, d->key, d->auth, d->prev_sig, h, sig) < 0)
			return fail(d, S3_CHUNKED_ENOMEM, "Out of memory");
		for (size_t i = 0; i < 64; i++)
			if (sig[i] != (v[i] >= 'A' && v[i] <= 'F' ? v[i] + 32 : v[i]))
				return fail(d, S3_CHUNKED_ESIG,
					    "The trailer signature we calculated does not match "
					    "the one you provided");
		d->have_tsig = true;
		return 0;
	}
	if (!d->trailer_name[0] || strcmp(name, d->trailer_name) != 0)
		return fail(d, S3_CHUNKED_ETRAILER, "Unexpected trailing header");
	if (d->have_trailer)
		return fail(d, S3_CHUNKED_ETRAILER, "Repeated trailing header");
	memcpy(d->trailer_value, v, vl);
	d->trailer_value[vl] = 0;
	d->have_trailer = true;
	if (d->tsha) {
		/* canonical form signed: "name:value\n" */
		if (EVP_DigestUpdate(d->tsha, name, nl) != 1 ||
		    EVP_DigestUpdate(d->tsha, ":", 1) != 1 ||
		    EVP_DigestUpdate(d->tsha, v, vl) != 1 ||
		    EVP_DigestUpdate(d->tsha, "\n", 1) != 1)
			return fail(d, S3_CHUNKED_ENOMEM, "Out of memory");
	}
	return 0;
}

/* Collects a CRLF-terminated line; returns 1 when one is complete. */
static int take_line(struct s3_chunked *d, const uint8_t **p, const uint8_t *end)
{
	while (*p < end) {
		uint8_t c = *(*p)++;
		if (c == '\n') {
			if (d->line_len == 0 || d->line[d->line_len - 1] != '\r')
				return fail(d, S3_CHUNKED_EFRAME, "Line not ended by CRLF");
			d->line[--d->line_len] = 0;
			if (memchr(d->line, '\r', d->line_len))
				return fail(d, S3_CHUNKED_EFRAME, "Stray CR in a line");
			return 1;
		}
		if (c == 0 || d->line_len + 1 >= sizeof(d->line))
			return fail(d, S3_CHUNKED_EFRAME,
				    c ? "Chunk header line too long" : "NUL in a line");
		d->line[d->line_len++] = (char)c;
	}
	return 0;
}

int s3_chunked_feed(struct s3_chunked *d, const void *in, size_t len, s3_chunked_data_fn fn,
		    void *arg)
{
	const uint8_t *p = in, *end = p + len;
	int rc;

	while (p < end) {
		switch (d->state) {
		case ST_SIZE:
		case ST_TRAILER:
			rc = take_line(d, &p, end);
			if (rc <= 0)
				return rc;
			rc = d->state == ST_SIZE ? size_line(d) : trailer_line(d);
			d->line_len = 0;
			if (rc < 0)
				return rc;
			break;
		case ST_DATA: {
			size_t n =
			    (size_t)(end - p) < d->left ? (size_t)(end - p) : (size_t)d->left;
			if (d->sha && EVP_DigestUpdate(d->sha, p, n) != 1)
				return fail(d, S3_CHUNKED_ENOMEM, "Out of memory");
			rc = fn(arg, p, n);
			if (rc < 0)
				return rc;
			p += n;
			d->left -= n;
			d->decoded += n;
			if (d->left == 0) {
				d->state = ST_DATA_CRLF;
				d->crlf = 0;
			}
			break;
		}
		case ST_DATA_CRLF:
			if (*p != (d->crlf == 0 ? '\r' : '\n'))
				return fail(d, S3_CHUNKED_EFRAME,
					    "Chunk data not followed by CRLF");
			p++;
			if (++d->crlf == 2) {
				if (signed_mode(d) && check_chunk_sig(d) < 0)
					return CAIRN_EINVAL;
				d->state = ST_SIZE;
			}
			break;
		case ST_DONE:
			return fail(d, S3_CHUNKED_EFRAME,
				    "Bytes after the end of the aws-chunked body");
		default:
			return CAIRN_EINVAL;
		}
	}
	return 0;
}

int s3_chunked_finish(struct s3_chunked *d)
{
	if (d->state == ST_DONE)
		return 0;
	if (d->state == ST_ERR)
		return CAIRN_EINVAL;
	/* Tolerated: the body stops right after the last trailing header
	 * (or after the final chunk when none is announced). */
	if (d->state == ST_TRAILER && d->line_len == 0 &&
	    (d->have_trailer || (!d->trailer_name[0] && d->mode != S3_CHUNKED_SIGNED)))
		return trailer_end(d) < 0 ? CAIRN_EINVAL : 0;
	return fail(d, S3_CHUNKED_ESHORT, "The aws-chunked body ended early");
}
