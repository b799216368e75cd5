/* core/err.h - cairn's error codes.
 *
 * Every cairn function that can fail returns 0 (or a non-negative count) on
 * success and a negative code on failure: -errno for system failures, or one
 * of the CAIRN_E* codes below, which live in a reserved range far below any
 * errno value. Each front end maps codes to its protocol in exactly one table
 * (S3: objstore/s3_err.c). Thread-safe; cairn_strerror() returns a static
 * string.
 */
#ifndef CAIRN_CORE_ERR_H
#define CAIRN_CORE_ERR_H

#define CAIRN_WUR __attribute__((warn_unused_result))

enum cairn_err {
	CAIRN_EBASE = -100000,
	CAIRN_ECORRUPT,	    /* checksum or structure check failed on stored data */
	CAIRN_EFORMAT,	    /* on-disk format version newer than this build */
	CAIRN_ENOTFOUND,    /* key, bucket, object, manifest, user not present */
	CAIRN_EEXISTS,	    /* already exists */
	CAIRN_ENOTEMPTY,    /* bucket (or container) is not empty */
	CAIRN_EINVAL,	    /* malformed request or argument */
	CAIRN_ETOOBIG,	    /* entity or field over its limit */
	CAIRN_EAUTH,	    /* signature does not match */
	CAIRN_ENOKEY,	    /* unknown access key */
	CAIRN_EEXPIRED,	    /* presigned URL expired */
	CAIRN_ESKEW,	    /* request time too far from server time */
	CAIRN_EDENIED,	    /* authenticated, but not allowed */
	CAIRN_ENOSPACE,	    /* pool or metadata map full */
	CAIRN_EDEGRADED,    /* too few devices to keep the promised redundancy */
	CAIRN_EBADDIGEST,   /* body does not match the digest the client sent */
	CAIRN_ESHORT,	    /* body shorter than announced */
	CAIRN_ERANGE,	    /* requested range not satisfiable */
	CAIRN_EPRECOND,	    /* a conditional header failed */
	CAIRN_ENOTMODIFIED, /* If-None-Match / If-Modified-Since: not modified */
	CAIRN_ESHUTDOWN,    /* the pool is closing */
	CAIRN_ELAST
};

/* Returns a static description of a negative cairn code or -errno. */
const char *cairn_strerror(int err);

#endif
