/* objstore/s3_err.h - THE table of S3 errors: code, HTTP status, message.
 *
 * Every S3 error cairn answers is one enum s3_error value; the table in
 * s3_err.c gives its S3 "Code", HTTP status and default message. Several
 * enum values may share one Code (S3E_EXPIRED and S3E_ACCESS_DENIED are both
 * "AccessDenied", with different messages). s3_err_from_cairn() is the one
 * mapping of CAIRN_E* and -errno codes to S3 errors; it is context-free, so a
 * handler that knows better (CAIRN_ENOTFOUND on a bucket is NoSuchBucket, not
 * NoSuchKey) picks the enum itself. s3_err_xml() renders the <Error> body.
 *
 * Pure functions, any thread. Strings returned are static.
 */
#ifndef CAIRN_OBJSTORE_S3_ERR_H
#define CAIRN_OBJSTORE_S3_ERR_H

#include <stddef.h>

#include "core/err.h"

enum s3_error {
	S3E_OK = 0,
	S3E_ACCESS_DENIED,		 /* AccessDenied 403 */
	S3E_EXPIRED,			 /* AccessDenied 403 "Request has expired" */
	S3E_NOT_YET_VALID,		 /* AccessDenied 403 "Request is not valid yet" */
	S3E_INVALID_ACCESS_KEY_ID,	 /* 403 */
	S3E_SIGNATURE_DOES_NOT_MATCH,	 /* 403 */
	S3E_REQUEST_TIME_TOO_SKEWED,	 /* 403 */
	S3E_AUTH_HEADER_MALFORMED,	 /* AuthorizationHeaderMalformed 400 */
	S3E_AUTH_QUERY_ERROR,		 /* AuthorizationQueryParametersError 400 */
	S3E_NO_SUCH_BUCKET,		 /* 404 */
	S3E_NO_SUCH_KEY,		 /* 404 */
	S3E_BUCKET_ALREADY_EXISTS,	 /* 409 */
	S3E_BUCKET_ALREADY_OWNED_BY_YOU, /* 409 */
	S3E_BUCKET_NOT_EMPTY,		 /* 409 */
	S3E_INVALID_BUCKET_NAME,	 /* 400 */
	S3E_KEY_TOO_LONG,		 /* KeyTooLongError 400 */
	S3E_INVALID_RANGE,		 /* 416 */
	S3E_PRECONDITION_FAILED,	 /* 412 */
	S3E_NOT_MODIFIED,		 /* NotModified 304 (no body is sent) */
	S3E_MALFORMED_XML,		 /* 400 */
	S3E_INVALID_ARGUMENT,		 /* 400 */
	S3E_INVALID_DIGEST,		 /* 400 (Content-MD5 not valid base64 MD5) */
	S3E_BAD_DIGEST,			 /* 400 (Content-MD5 mismatch) */
	S3E_CONTENT_SHA256_MISMATCH,	 /* XAmzContentSHA256Mismatch 400 */
	S3E_INCOMPLETE_BODY,		 /* 400 */
	S3E_ENTITY_TOO_LARGE,		 /* 400 */
	S3E_METADATA_TOO_LARGE,		 /* 400 */
	S3E_MISSING_CONTENT_LENGTH,	 /* 411 */
	S3E_METHOD_NOT_ALLOWED,		 /* 405 */
	S3E_NOT_IMPLEMENTED,		 /* 501 */
	S3E_INTERNAL_ERROR,		 /* 500 */
	S3E_SLOW_DOWN,			 /* 503 (also: out of memory) */
	S3E_SERVICE_UNAVAILABLE,	 /* 503 */
	S3E_INSUFFICIENT_STORAGE,	 /* InsufficientStorage 507 (pool/map full) */
	S3E_REQUEST_TIMEOUT,		 /* 400 */
	S3E_INVALID_REQUEST,		 /* 400 */
	S3E_MAX_MESSAGE_LENGTH_EXCEEDED, /* 400 */
	S3E_INVALID_URI,		 /* 400 */
	S3E_TOO_MANY_BUCKETS,		 /* 400 */
	S3E_MISSING_SECURITY_HEADER,	 /* 400 (e.g. x-amz-content-sha256 absent) */
	/* multipart */
	S3E_NO_SUCH_UPLOAD,	 /* 404 */
	S3E_INVALID_PART,	 /* 400 */
	S3E_INVALID_PART_ORDER,	 /* 400 */
	S3E_ENTITY_TOO_SMALL,	 /* 400 */
	S3E_INVALID_PART_NUMBER, /* 416 (GetObject partNumber beyond the parts) */
	S3E_COUNT
};

struct s3_error_info {
	const char *code;    /* S3 "Code", e.g. "NoSuchKey" */
	int status;	     /* HTTP status */
	const char *message; /* default "Message" */
};

/* The table row of e; an out-of-range e gives the InternalError row. */
const struct s3_error_info *s3_err_info(enum s3_error e);
static inline const char *s3_err_code(enum s3_error e)
{
	return s3_err_info(e)->code;
}
static inline int s3_err_status(enum s3_error e)
{
	return s3_err_info(e)->status;
}

/* Maps 0 -> S3E_OK, a CAIRN_E* code or -errno to an S3 error:
 * ENOTFOUND/-ENOENT -> NoSuchKey, EEXISTS -> BucketAlreadyExists,
 * ENOTEMPTY -> BucketNotEmpty, EINVAL -> InvalidArgument, ETOOBIG ->
 * EntityTooLarge, EAUTH -> SignatureDoesNotMatch, ENOKEY ->
 * InvalidAccessKeyId, EEXPIRED -> S3E_EXPIRED, ESKEW -> RequestTimeTooSkewed,
 * EDENIED/-EACCES/-EPERM -> AccessDenied, ENOSPACE/-ENOSPC/-EDQUOT ->
 * InsufficientStorage, EDEGRADED/ESHUTDOWN -> ServiceUnavailable, EBADDIGEST
 * -> BadDigest, ESHORT -> IncompleteBody, ERANGE -> InvalidRange, EPRECOND ->
 * PreconditionFailed, ENOTMODIFIED -> NotModified, -ENOMEM/-EAGAIN/-EBUSY ->
 * SlowDown, -ETIMEDOUT -> RequestTimeout, -ENAMETOOLONG -> KeyTooLongError,
 * -EMSGSIZE -> MaxMessageLengthExceeded, -ENOSYS/-EOPNOTSUPP ->
 * NotImplemented; anything else (ECORRUPT, EFORMAT, -EIO...) InternalError. */
enum s3_error s3_err_from_cairn(int err);

/* An extra child element of <Error>, e.g. {"BucketName", "b"},
 * {"StringToSign", ...}, {"CanonicalRequest", ...}, {"Key", ...}. */
struct s3_err_extra {
	const char *name;  /* element name (not escaped: use a literal) */
	const char *value; /* text, escaped by the renderer */
};

/* Renders the S3 error document
 *   <?xml ...?><Error><Code/><Message/>[extras]<Resource/><RequestId/></Error>
 * message NULL: the table's default. resource/request_id may be NULL
 * (element omitted). On success *out is a malloc'd NUL-terminated buffer the
 * caller frees, *len its length. Returns 0 or -ENOMEM. */
int s3_err_xml(enum s3_error e, const char *message, const char *resource, const char *request_id,
	       const struct s3_err_extra *extra, size_t nextra, char **out, size_t *len) CAIRN_WUR;

#endif
