/* objstore/s3_cksum.h - S3's flexible checksums (x-amz-checksum-*).
 *
 * The five algorithms S3 accepts: CRC32 (zlib's, ISA-L crc32_gzip_refl),
 * CRC32C (Castagnoli, ISA-L crc32_iscsi), CRC64NVME (ISA-L
 * crc64_rocksoft_refl), SHA1 and SHA256 (OpenSSL). Values travel in headers
 * and trailers as base64 of the big-endian digest; a composite multipart
 * checksum is the algorithm over the concatenated part digests, written
 * with a "-N" suffix (N = parts).
 *
 * Full-object checksums of multipart uploads exist only for the CRCs: the
 * parts' CRCs are combined (crc(A||B) from crc(A), crc(B), len(B)) without
 * reading a byte.
 *
 * Pure functions over caller memory; any thread.
 */
#ifndef CAIRN_OBJSTORE_S3_CKSUM_H
#define CAIRN_OBJSTORE_S3_CKSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum s3_cksum_algo {
	S3_CK_NONE = 0,
	S3_CK_CRC32 = 1,
	S3_CK_CRC32C = 2,
	S3_CK_CRC64NVME = 3,
	S3_CK_SHA1 = 4,
	S3_CK_SHA256 = 5,
};
#define S3_CK_COUNT 6

enum s3_cksum_type {
	S3_CKT_FULL_OBJECT = 1,
	S3_CKT_COMPOSITE = 2,
};

#define S3_CKSUM_MAX 32	    /* digest bytes (SHA256) */
#define S3_CKSUM_B64_MAX 64 /* base64 text + "-10000" + NUL */

/* A checksum value. Stored in object records as field S3_F_CHECKSUM
 * (s3_format.h) by s3_cksum_encode. */
struct s3_cksum {
	uint8_t algo;	/* enum s3_cksum_algo; S3_CK_NONE: no checksum */
	uint8_t type;	/* enum s3_cksum_type */
	uint16_t parts; /* composite: number of parts (the "-N"); else 0 */
	uint8_t len;	/* digest bytes, s3_cksum_len(algo) */
	uint8_t d[S3_CKSUM_MAX];
};

/* "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"; NULL for NONE. */
const char *s3_cksum_name(enum s3_cksum_algo a);
/* Parses an algorithm name, any case; S3_CK_NONE when unknown. */
enum s3_cksum_algo s3_cksum_algo_parse(const char *name);
/* "x-amz-checksum-crc32" ... (lowercase); NULL for NONE. */
const char *s3_cksum_header(enum s3_cksum_algo a);
/* Digest bytes: 4, 4, 8, 20, 32. */
size_t s3_cksum_len(enum s3_cksum_algo a);
/* "FULL_OBJECT" or "COMPOSITE". */
const char *s3_cksum_type_name(enum s3_cksum_type t);
/* Parses "FULL_OBJECT"/"COMPOSITE" (any case); 0 when unknown. */
int s3_cksum_type_parse(const char *s);

/* Streaming computation. */
struct s3_cksum_ctx {
	enum s3_cksum_algo algo;
	uint64_t crc;
	void *md; /* EVP_MD_CTX for the SHAs */
};
int s3_cksum_init(struct s3_cksum_ctx *c, enum s3_cksum_algo a) CAIRN_WUR;
void s3_cksum_update(struct s3_cksum_ctx *c, const void *data, size_t len);
/* Fills out (type FULL_OBJECT) and frees the context. */
int s3_cksum_final(struct s3_cksum_ctx *c, struct s3_cksum *out) CAIRN_WUR;
/* Frees a context that will not be finalised. */
void s3_cksum_ctx_free(struct s3_cksum_ctx *c);

/* Base64 text as S3 shows it ("-N" appended for composite values).
 * Returns its length or CAIRN_ETOOBIG. */
long s3_cksum_b64(const struct s3_cksum *c, char *out, size_t cap) CAIRN_WUR;
/* Parses a header/trailer value for algorithm a (no "-N" suffix):
 * CAIRN_EINVAL when not base64 of exactly s3_cksum_len(a) bytes. */
int s3_cksum_from_b64(enum s3_cksum_algo a, const char *b64, size_t len,
		      struct s3_cksum *out) CAIRN_WUR;
bool s3_cksum_equal(const struct s3_cksum *a, const struct s3_cksum *b);

/* crc(A||B) from crc(A), crc(B) and len(B), for the three CRCs;
 * CAIRN_EINVAL for the SHAs. */
int s3_cksum_combine(const struct s3_cksum *a, const struct s3_cksum *b, uint64_t blen,
		     struct s3_cksum *out) CAIRN_WUR;
/* Composite checksum of n part checksums (same algorithm, each FULL_OBJECT
 * of its part): algorithm over the concatenated digests, parts = n. */
int s3_cksum_composite(const struct s3_cksum *parts, size_t n, struct s3_cksum *out) CAIRN_WUR;

/* Record encoding (field S3_F_CHECKSUM): algo, type, parts (le16), digest.
 * encode returns bytes written (<= 4 + S3_CKSUM_MAX); decode CAIRN_ECORRUPT
 * on a bad value. */
size_t s3_cksum_encode(const struct s3_cksum *c, uint8_t *out);
int s3_cksum_decode(const void *v, size_t vlen, struct s3_cksum *out) CAIRN_WUR;

#endif
