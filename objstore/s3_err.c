/* objstore/s3_err.c - the one S3 error table and the Error document. */
#include "objstore/s3_err.h"

#include <errno.h>

#include "objstore/s3_xml.h"

static const struct s3_error_info s3_err_table[S3E_COUNT] = {
    [S3E_OK] = {"OK", 200, "OK"},
    [S3E_ACCESS_DENIED] = {"AccessDenied", 403, "Access Denied"},
    [S3E_EXPIRED] = {"AccessDenied", 403, "Request has expired"},
    [S3E_NOT_YET_VALID] = {"AccessDenied", 403, "Request is not valid yet"},
    [S3E_INVALID_ACCESS_KEY_ID] = {"InvalidAccessKeyId", 403,
				   "The AWS Access Key Id you provided does not exist in "
				   "our records."},
    [S3E_SIGNATURE_DOES_NOT_MATCH] = {"SignatureDoesNotMatch", 403,
				      "The request signature we calculated does not match "
				      "the signature you provided. Check your key and "
				      "signing method."},
    [S3E_REQUEST_TIME_TOO_SKEWED] = {"RequestTimeTooSkewed", 403,
				     "The difference between the request time and the "
				     "current time is too large."},
    [S3E_AUTH_HEADER_MALFORMED] = {"AuthorizationHeaderMalformed", 400,
				   "The authorization header is malformed."},
    [S3E_AUTH_QUERY_ERROR] = {"AuthorizationQueryParametersError", 400,
			      "Query-string authentication version 4 requires the "
			      "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, "
			      "X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires "
			      "parameters."},
    [S3E_NO_SUCH_BUCKET] = {"NoSuchBucket", 404, "The specified bucket does not exist"},
    [S3E_NO_SUCH_KEY] = {"NoSuchKey", 404, "The specified key does not exist."},
    [S3E_BUCKET_ALREADY_EXISTS] = {"BucketAlreadyExists", 409,
				   "The requested bucket name is not available. The bucket "
				   "namespace is shared by all users of the system. Please "
				   "select a different name and try again."},
    [S3E_BUCKET_ALREADY_OWNED_BY_YOU] = {"BucketAlreadyOwnedByYou", 409,
					 "Your previous request to create the named bucket "
					 "succeeded and you already own it."},
    [S3E_BUCKET_NOT_EMPTY] = {"BucketNotEmpty", 409, "The bucket you tried to delete is not empty"},
    [S3E_INVALID_BUCKET_NAME] = {"InvalidBucketName", 400, "The specified bucket is not valid."},
    [S3E_KEY_TOO_LONG] = {"KeyTooLongError", 400, "Your key is too long"},
    [S3E_INVALID_RANGE] = {"InvalidRange", 416, "The requested range is not satisfiable"},
    [S3E_PRECONDITION_FAILED] = {"PreconditionFailed", 412,
				 "At least one of the pre-conditions you specified did "
				 "not hold"},
    [S3E_NO_SUCH_UPLOAD] = {"NoSuchUpload", 404,
			    "The specified upload does not exist. The upload ID may be invalid, "
			    "or the upload may have been aborted or completed."},
    [S3E_INVALID_PART] = {"InvalidPart", 400,
			  "One or more of the specified parts could not be found. The part "
			  "may not have been uploaded, or the specified entity tag may not "
			  "match the part's entity tag."},
    [S3E_INVALID_PART_ORDER] = {"InvalidPartOrder", 400,
				"The list of parts was not in ascending order. Parts must be "
				"ordered by part number."},
    [S3E_ENTITY_TOO_SMALL] = {"EntityTooSmall", 400,
			      "Your proposed upload is smaller than the minimum allowed "
			      "object size."},
    [S3E_INVALID_PART_NUMBER] = {"InvalidPartNumber", 416,
				 "The requested partnumber is not satisfiable"},
    [S3E_NOT_MODIFIED] = {"NotModified", 304, "Not Modified"},
    [S3E_MALFORMED_XML] = {"MalformedXML", 400,
			   "The XML you provided was not well-formed or did not "
			   "validate against our published schema"},
    [S3E_INVALID_ARGUMENT] = {"InvalidArgument", 400, "Invalid Argument"},
    [S3E_INVALID_DIGEST] = {"InvalidDigest", 400, "The Content-MD5 you specified is not valid."},
    [S3E_BAD_DIGEST] = {"BadDigest", 400,
			"The Content-MD5 you specified did not match what we received."},
    [S3E_CONTENT_SHA256_MISMATCH] = {"XAmzContentSHA256Mismatch", 400,
				     "The provided 'x-amz-content-sha256' header does not "
				     "match what was computed."},
    [S3E_INCOMPLETE_BODY] = {"IncompleteBody", 400,
			     "You did not provide the number of bytes specified by the "
			     "Content-Length HTTP header"},
    [S3E_ENTITY_TOO_LARGE] = {"EntityTooLarge", 400,
			      "Your proposed upload exceeds the maximum allowed object "
			      "size."},
    [S3E_METADATA_TOO_LARGE] = {"MetadataTooLarge", 400,
				"Your metadata headers exceed the maximum allowed "
				"metadata size."},
    [S3E_MISSING_CONTENT_LENGTH] = {"MissingContentLength", 411,
				    "You must provide the Content-Length HTTP header."},
    [S3E_METHOD_NOT_ALLOWED] = {"MethodNotAllowed", 405,
				"The specified method is not allowed against this "
				"resource."},
    [S3E_NOT_IMPLEMENTED] = {"NotImplemented", 501,
			     "A header you provided implies functionality that is not "
			     "implemented"},
    [S3E_INTERNAL_ERROR] = {"InternalError", 500,
			    "We encountered an internal error. Please try again."},
    [S3E_SLOW_DOWN] = {"SlowDown", 503, "Please reduce your request rate."},
    [S3E_SERVICE_UNAVAILABLE] = {"ServiceUnavailable", 503, "Reduce your request rate."},
    [S3E_INSUFFICIENT_STORAGE] = {"InsufficientStorage", 507, "The storage pool is full."},
    [S3E_REQUEST_TIMEOUT] = {"RequestTimeout", 400,
			     "Your socket connection to the server was not read from or "
			     "written to within the timeout period."},
    [S3E_INVALID_REQUEST] = {"InvalidRequest", 400, "Invalid Request"},
    [S3E_MAX_MESSAGE_LENGTH_EXCEEDED] = {"MaxMessageLengthExceeded", 400,
					 "Your request was too big."},
    [S3E_INVALID_URI] = {"InvalidURI", 400, "Couldn't parse the specified URI."},
    [S3E_TOO_MANY_BUCKETS] = {"TooManyBuckets", 400,
			      "You have attempted to create more buckets than allowed"},
    [S3E_MISSING_SECURITY_HEADER] = {"MissingSecurityHeader", 400,
				     "Your request was missing a required header"},
};

const struct s3_error_info *s3_err_info(enum s3_error e)
{
	if ((unsigned)e >= S3E_COUNT)
		e = S3E_INTERNAL_ERROR;
	return &s3_err_table[e];
}

enum s3_error s3_err_from_cairn(int err)
{
	switch (err) {
	case 0:
		return S3E_OK;
	case CAIRN_ENOTFOUND:
		return S3E_NO_SUCH_KEY;
	case CAIRN_EEXISTS:
		return S3E_BUCKET_ALREADY_EXISTS;
	case CAIRN_ENOTEMPTY:
		return S3E_BUCKET_NOT_EMPTY;
	case CAIRN_EINVAL:
		return S3E_INVALID_ARGUMENT;
	case CAIRN_ETOOBIG:
		return S3E_ENTITY_TOO_LARGE;
	case CAIRN_EAUTH:
		return S3E_SIGNATURE_DOES_NOT_MATCH;
	case CAIRN_ENOKEY:
		return S3E_INVALID_ACCESS_KEY_ID;
	case CAIRN_EEXPIRED:
		return S3E_EXPIRED;
	case CAIRN_ESKEW:
		return S3E_REQUEST_TIME_TOO_SKEWED;
	case CAIRN_EDENIED:
		return S3E_ACCESS_DENIED;
	case CAIRN_ENOSPACE:
		return S3E_INSUFFICIENT_STORAGE;
	case CAIRN_EDEGRADED:
		return S3E_SERVICE_UNAVAILABLE;
	case CAIRN_EBADDIGEST:
		return S3E_BAD_DIGEST;
	case CAIRN_ESHORT:
		return S3E_INCOMPLETE_BODY;
	case CAIRN_ERANGE:
		return S3E_INVALID_RANGE;
	case CAIRN_EPRECOND:
		return S3E_PRECONDITION_FAILED;
	case CAIRN_ENOTMODIFIED:
		return S3E_NOT_MODIFIED;
	case CAIRN_ESHUTDOWN:
		return S3E_SERVICE_UNAVAILABLE;
	case CAIRN_ECORRUPT:
	case CAIRN_EFORMAT:
		return S3E_INTERNAL_ERROR;
	case -ENOENT:
		return S3E_NO_SUCH_KEY;
	case -EEXIST:
		return S3E_BUCKET_ALREADY_EXISTS;
	case -ENOTEMPTY:
		return S3E_BUCKET_NOT_EMPTY;
	case -EINVAL:
		return S3E_INVALID_ARGUMENT;
	case -EACCES:
	case -EPERM:
		return S3E_ACCESS_DENIED;
	case -ENOSPC:
	case -EDQUOT:
		return S3E_INSUFFICIENT_STORAGE;
	case -ENOMEM:
	case -EAGAIN:
	case -EBUSY:
		return S3E_SLOW_DOWN;
	case -ETIMEDOUT:
		return S3E_REQUEST_TIMEOUT;
	case -ENAMETOOLONG:
		return S3E_KEY_TOO_LONG;
	case -EMSGSIZE:
		return S3E_MAX_MESSAGE_LENGTH_EXCEEDED;
	case -EFBIG:
		return S3E_ENTITY_TOO_LARGE;
	case -ENOSYS:
	case -EOPNOTSUPP:
		return S3E_NOT_IMPLEMENTED;
	default:
		return S3E_INTERNAL_ERROR;
	}
}

int s3_err_xml(enum s3_error e, const char *message, const char *resource, const char *request_id,
	       const struct s3_err_extra *extra, size_t nextra, char **out, size_t *len)
{
	const struct s3_error_info *info = s3_err_info(e);
	struct s3_xml x;

	s3_xml_init(&x);
	s3_xml_open(&x, "Error", NULL);
	s3_xml_elem(&x, "Code", info->code);
	s3_xml_elem(&x, "Message", message ? message : info->message);
	for (size_t i = 0; i < nextra; i++)
		if (extra[i].name && extra[i].value)
			s3_xml_elem(&x, extra[i].name, extra[i].value);
	if (resource)
		s3_xml_elem(&x, "Resource", resource);
	if (request_id)
		s3_xml_elem(&x, "RequestId", request_id);
	s3_xml_close(&x);
	return s3_xml_finish(&x, out, len);
}
