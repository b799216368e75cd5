/* objstore/s3_xml.h - S3 XML: a response writer and the request body parsers.
 *
 * The writer builds a document in one growing heap buffer: open/close
 * elements and text elements, with every text escaped (&<>"' and control
 * bytes as numeric references). Errors are sticky: after an allocation
 * failure every call is a no-op and s3_xml_finish() reports -ENOMEM, so
 * callers write a whole document and check once. encoding-type=url is the
 * caller's job (s3_uri_encode before s3_xml_elem).
 *
 * The parsers (expat) read the DeleteObjects body and the
 * CreateBucketConfiguration body. A DOCTYPE, an entity declaration or
 * anything malformed is refused as CAIRN_EINVAL (-> MalformedXML), so no
 * entity expansion can happen. Namespaces are accepted with or without the
 * S3 xmlns.
 *
 * Any thread; one writer or parse per thread at a time. Element names passed
 * to the writer must outlive it (string literals).
 */
#ifndef CAIRN_OBJSTORE_S3_XML_H
#define CAIRN_OBJSTORE_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define S3_XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"
#define S3_XML_DEPTH_MAX 16

struct s3_xml {
	char *buf;
	size_t len, cap;
	int err; /* sticky: 0 or -ENOMEM / CAIRN_EINVAL (misuse) */
	int depth;
	const char *stack[S3_XML_DEPTH_MAX];
};

/* Starts a document with the XML declaration. Never fails (the first write
 * allocates; a failure there is reported by s3_xml_finish). */
void s3_xml_init(struct s3_xml *x);
/* Frees the buffer (after a failed document, or instead of finish). */
void s3_xml_free(struct s3_xml *x);
/* <name> or <name xmlns="...">; xmlns NULL for none. */
void s3_xml_open(struct s3_xml *x, const char *name, const char *xmlns);
/* Closes the innermost open element. */
void s3_xml_close(struct s3_xml *x);
/* <name>escaped text</name>; text NULL writes <name></name>. */
void s3_xml_elem(struct s3_xml *x, const char *name, const char *text);
void s3_xml_elemn(struct s3_xml *x, const char *name, const char *text, size_t len);
void s3_xml_elem_u64(struct s3_xml *x, const char *name, uint64_t v);
void s3_xml_elem_bool(struct s3_xml *x, const char *name, bool v); /* true/false */
/* Appends escaped text inside the current element. */
void s3_xml_text(struct s3_xml *x, const char *text, size_t len);
/* Closes any open elements, hands the NUL-terminated document to the caller
 * (*out, free() it; *len its length) and resets x. Returns 0 or the sticky
 * error (then nothing is handed over and x is freed). */
int s3_xml_finish(struct s3_xml *x, char **out, size_t *len) CAIRN_WUR;

/* ---- request bodies ---- */

#define S3_DELETE_MAX_OBJECTS 1000
#define S3_DELETE_BODY_MAX (2u << 20) /* bytes; the caller stops reading beyond */
#define S3_CREATE_BUCKET_BODY_MAX (64u << 10)

struct s3_delete_obj {
	char *key; /* decoded text, NUL-terminated; may be empty or
		    * too long: validate per key with s3_key_check */
	size_t key_len;
	char *version_id; /* NULL when absent */
};

struct s3_delete_req {
	bool quiet;
	size_t n;
	struct s3_delete_obj *objs;
};

/* Parses <Delete><Quiet>true</Quiet><Object><Key>k</Key>
 * [<VersionId>v</VersionId>]</Object>...</Delete>. Returns 0 (free with
 * s3_delete_req_free, safe on a zeroed struct), CAIRN_EINVAL for malformed
 * XML, no <Object>, an <Object> without <Key>, more than
 * S3_DELETE_MAX_OBJECTS objects, a body over S3_DELETE_BODY_MAX, or a DOCTYPE
 * (-> MalformedXML), or -ENOMEM. */
int s3_xml_parse_delete(const char *body, size_t len, struct s3_delete_req *out) CAIRN_WUR;
void s3_delete_req_free(struct s3_delete_req *r);

/* Parses <CreateBucketConfiguration><LocationConstraint>r</...></...>.
 * An empty body (len 0) is valid and gives "". location receives the region
 * (NUL-terminated; "" when absent). Returns 0, CAIRN_EINVAL (malformed ->
 * MalformedXML; a LocationConstraint longer than cap-1 ->
 * InvalidLocationConstraint, answered as InvalidArgument), -ENOMEM. */
int s3_xml_parse_create_bucket(const char *body, size_t len, char *location, size_t cap) CAIRN_WUR;

/* CompleteMultipartUpload: <CompleteMultipartUpload><Part><PartNumber>n
 * </PartNumber><ETag>"e"</ETag>[<ChecksumCRC32>b64</ChecksumCRC32>]</Part>
 * ...</CompleteMultipartUpload>. Order and numbers are the caller's to
 * check (InvalidPartOrder, InvalidPart); unknown elements are ignored. */
#define S3_COMPLETE_MAX_PARTS 10000
#define S3_COMPLETE_BODY_MAX (4u << 20)
struct s3_complete_part {
	uint32_t number;     /* as sent (0..999999) */
	char etag[80];	     /* unquoted */
	char cksum_algo[16]; /* "CRC32"... from <ChecksumCRC32>, "" when none */
	char cksum[72];	     /* its text */
};
struct s3_complete_req {
	size_t n;
	struct s3_complete_part *parts;
};
/* 0, CAIRN_EINVAL (MalformedXML: also no Part, a Part without PartNumber or
 * ETag, more than S3_COMPLETE_MAX_PARTS), -ENOMEM. */
int s3_xml_parse_complete(const char *body, size_t len, struct s3_complete_req *out) CAIRN_WUR;
void s3_complete_req_free(struct s3_complete_req *r);

#endif
