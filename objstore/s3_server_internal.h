/* objstore/s3_server_internal.h - what the S3 service's .c files share.
 *
 * struct s3_req is one HTTP request: created by the URI log callback (which
 * keeps the raw target for SigV4), driven by the access handler on the
 * connection's own thread, freed by the completion callback. Handlers in
 * s3_bucket.c, s3_object.c and s3_list.c answer through s3_reply_*; exactly
 * one reply is queued per request.
 *
 * The object index (s3_list.c) hides how keys map to LMDB records (long keys
 * live in group records, see s3_format.h): callers see full keys in order.
 */
#ifndef CAIRN_OBJSTORE_S3_SERVER_INTERNAL_H
#define CAIRN_OBJSTORE_S3_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>
#include <openssl/evp.h>

#include "chunkstore/chunkstore.h"
#include "meta/meta.h"
#include "objstore/s3.h"
#include "objstore/s3_chunked.h"
#include "objstore/s3_cksum.h"
#include "objstore/s3_err.h"
#include "objstore/s3_format.h"
#include "objstore/s3_parse.h"
#include "objstore/sigv4.h"

#define S3_OBJECT_MAX (5ull << 30)   /* single PUT limit: 5 GiB */
#define S3_SMALL_BODY_MAX (4u << 20) /* XML request bodies */
#define S3_MAX_HEADERS 128
#define S3_HEADERS_MAX_BYTES (16u << 10) /* names + values of one request */
#define S3_HEADER_GRACE_SEC 10		 /* beyond the idle timeout, see s3_conn */
#define S3_GET_BLOCK (1u << 20)		 /* GET streaming block */
/* libmicrohttpd's per-connection pool (request head + receive buffer). It
 * zeroes the pool on every request, so its size is a per-request cost (256
 * KiB was ~10% of a 4 KiB GET). It must still hold a 100 KB header, so that
 * our own checks answer it with an S3 error rather than libmicrohttpd with
 * an HTML 431 (tests/integration/050-bad-input.py). */
#define S3_CONN_MEMORY (128u << 10)
#define S3_GET_SMALL (64u << 10)       /* GET bodies up to this are sent from one buffer */
#define S3_GET_PREFETCH_MIN (4u << 20) /* GET bodies above this are read ahead on a thread */
#define S3_LIST_MAX 1000
/* A body_fn body of at least S3_PIPE_MIN bytes (by Content-Length) runs its
 * MD5 and body_fn on a pipeline thread, so the stream's serial work is split
 * over two threads: receive (+ payload SHA-256) and MD5 (+ the writer). */
#define S3_PIPE_MIN (1u << 20)
#define S3_PIPE_SEG (256u << 10)
#define S3_PIPE_SEGS 4

/* One connection, tracked so that a client trickling its request head a
 * byte at a time (which resets libmicrohttpd's idle timer forever) is cut
 * off: between requests a connection gets timeout + S3_HEADER_GRACE_SEC to
 * deliver a whole head, then the reaper shuts its socket down. */
struct s3_conn {
	struct s3_conn *prev, *next;
	int fd;
	bool in_request; /* the head arrived; the request is being served */
	bool reaped;
	uint64_t phase_start_us; /* connection start or end of the last request */
};

struct s3_server {
	struct MHD_Daemon *mhd;
	struct cs_pool *pool;
	char *region;
	char *domain;
	bool access_log;
	uint16_t port;
	int lfd;
	atomic_uint_fast64_t seq; /* request ids */
	uint32_t boot;		  /* random per start, in request ids */
	/* slow-head reaper */
	pthread_mutex_t conns_lock;
	pthread_cond_t reaper_cond;
	pthread_t reaper;
	bool reaper_started, stopping;
	struct s3_conn *conns;
	uint64_t head_deadline_us;
	/* multipart uploads older than this are aborted by the reaper; 0: never */
	uint64_t mpu_expiry_us, mpu_next_sweep_us;
	/* HTTPS: the PEM text handed to libmicrohttpd, kept for the daemon's
	 * life (objstore/s3_tls.h); both NULL for plain HTTP. */
	struct s3_tls_pem *tls;
};

enum s3_state { S3_ST_NEW = 0, S3_ST_DEFER, S3_ST_BODY, S3_ST_DONE };

struct s3_req;
typedef void (*s3_handler_fn)(struct s3_req *r);
/* Consumes body bytes; returns 0 or a negative code (the connection is then
 * closed: a response cannot be queued while the body is being read). */
typedef int (*s3_body_fn)(struct s3_req *r, const void *data, size_t len);

struct s3_req {
	struct s3_server *srv;
	struct MHD_Connection *conn;
	char *raw_target; /* as received */
	char reqid[17];
	char range_size[24]; /* object size, for the Content-Range of a 416 */
	char id2[45];
	uint64_t t0_us;
	const char *method;
	const char *op; /* S3 action name (static) */
	enum s3_state state;

	struct s3_target tgt;
	struct s3_query q;
	struct s3_addr addr;
	char *addrbuf;
	uint32_t part; /* partition of addr.bucket */

	struct sigv4_header *hdrs;
	size_t nhdrs;
	bool authed;
	struct s3_key key; /* the caller's key (secret wiped after auth) */
	struct sigv4_auth auth;
	bool caller_root;

	/* request body */
	bool has_cl, chunked;
	uint64_t content_length;
	uint64_t body_bytes;
	EVP_MD_CTX *sha; /* when x-amz-content-sha256 is a hash */
	EVP_MD_CTX *md5;
	bool has_content_md5;
	uint8_t content_md5[16];
	uint8_t body_md5[16];
	char *body; /* small bodies (XML) */
	size_t body_len;
	s3_body_fn body_fn;    /* NULL: buffer into body (up to S3_SMALL_BODY_MAX) */
	struct seg_pipe *pipe; /* large bodies: MD5 + body_fn on a thread of their own */
	s3_handler_fn finish;
	void *op_state; /* handler's own state */
	void (*op_free)(void *op_state);

	/* Flexible checksum of the (decoded) body. request_end verifies it
	 * against the x-amz-checksum-* header or trailer the client sent and
	 * answers BadDigest on a mismatch before finish runs; with none sent,
	 * it holds cksum_default's checksum (a start handler sets that: PUT
	 * and UploadPart compute CRC64NVME, as S3 does) or algo NONE. */
	struct s3_cksum body_cksum;
	enum s3_cksum_algo cksum_default;
	/* set by a start handler whose x-amz-checksum-* headers describe
	 * something other than the body (CompleteMultipartUpload: the object) */
	bool cksum_headers_are_object;

	/* The body layer's own state for aws-chunked bodies and checksums
	 * (s3_server.c; handlers read only body_cksum above). */
	bool streaming;		       /* STREAMING-*: content_length is the decoded length */
	struct s3_chunked *dec;	       /* its decoder (connection thread) */
	uint8_t sigkey[SIGV4_KEY_LEN]; /* signing key for chunk signatures, wiped on free */
	bool body_err;		       /* the decoder failed: rest drained, answered at the end */
	bool ck_on;		       /* ck is computing */
	bool ck_trailer;	       /* the client's value comes in the trailer */
	bool ck_presigned;	       /* ... or came in the presigned URL's query */
	enum s3_cksum_algo ck_algo;    /* the algorithm the client chose; NONE: none */
	struct s3_cksum ck_sent;       /* its header/query value (algo NONE: none or trailer) */
	struct s3_cksum_ctx ck;	       /* the body's checksum (pipeline thread when piped) */

	/* response */
	int status;
	uint64_t bytes_out;
	bool close; /* body left unread: Connection: close */
};

/* ---- replies (s3_server.c) ---- */

/* True when the request carries Content-MD5, an x-amz-checksum-* header
 * or an x-amz-trailer (the body layer verifies whichever it is). */
bool s3_req_has_body_digest(struct s3_req *r);
/* Request header value (any case), NULL when absent. */
const char *s3_req_header(struct s3_req *r, const char *name);
/* An S3 error document; message NULL: the table's. Returns nothing: the
 * request is answered (or, on allocation failure, the connection closes). */
void s3_reply_error(struct s3_req *r, enum s3_error e, const char *message);
void s3_reply_error_extra(struct s3_req *r, enum s3_error e, const char *message,
			  const struct s3_err_extra *extra, size_t nextra);
/* A cairn code mapped through s3_err_from_cairn, with ENOTFOUND read as
 * notfound (NoSuchBucket or NoSuchKey). */
void s3_reply_code(struct s3_req *r, int err, enum s3_error notfound);
/* XML body (malloc'd; ownership passes here, freed on every path). */
void s3_reply_xml(struct s3_req *r, int status, char *body, size_t len);
void s3_reply_empty(struct s3_req *r, int status);
/* Adds the common headers to resp, queues it and destroys the caller's
 * reference. body_len is the number of body bytes the response will carry
 * (for the access log when it completes). */
void s3_reply_response(struct s3_req *r, int status, struct MHD_Response *resp);

/* ---- object record fields (s3_fields.c) ---- */

struct s3_fbuf {
	uint8_t *p;
	size_t len, cap;
	uint16_t n;
	int err; /* first failure; later adds do nothing */
};
void s3_fbuf_add(struct s3_fbuf *f, uint8_t tag, const char *name, size_t nlen, const char *val,
		 size_t vlen);
/* Content-Type (default binary/octet-stream), the other standard headers,
 * x-amz-meta-* and the owner (the caller). Replies and returns non-zero on
 * bad or oversized metadata. */
int s3_fields_from_request(struct s3_req *r, struct s3_fbuf *f);

/* ---- conditional writes (s3_object.c) ---- */

/* If-None-Match: * and If-Match on PutObject, CompleteMultipartUpload and
 * CopyObject's destination. Evaluated inside the commit transaction that
 * writes the key, so racing writers serialise: exactly one of them wins. */
struct s3_write_cond {
	bool if_none_match_any; /* If-None-Match: * */
	const char *if_match;	/* If-Match list (request header memory), NULL: none */
};
/* Reads the headers; replies (NotImplemented for If-None-Match other than
 * "*", and for If-None-Match with If-Match, as AWS) and returns non-zero
 * when they cannot be honoured. */
int s3_write_cond_parse(struct s3_req *r, struct s3_write_cond *c);
/* In the write transaction: 0, CAIRN_EPRECOND (412), or CAIRN_ENOTFOUND
 * (If-Match on a missing key: NoSuchKey). */
int s3_write_cond_check(struct meta_txn *t, uint32_t part, const char *bucket, const char *key,
			size_t klen, const struct s3_write_cond *c) CAIRN_WUR;

/* ETag of an object record, bare (no quotes): hex(md5), or hex-N for a
 * multipart object. out needs S3_ETAG_MAX bytes. */
#define S3_ETAG_MAX 48
void s3_obj_etag(const struct s3_obj_rec *rec, char *out);

/* ---- copy sources (s3_copy.c): CopyObject and UploadPartCopy ----
 *
 * s3_copy_src_parse reads x-amz-copy-source ("bucket/key" URL-encoded, an
 * optional leading '/', an optional "?versionId=null") and the
 * x-amz-copy-source-if-* headers on the request's thread. s3_copy_src_read
 * runs inside the caller's transaction (a cs_commit callback, so that the
 * record read, the condition checks and the write of the destination see
 * one state): it checks that `user` owns the source bucket and evaluates the
 * conditions as S3 does for copies (RFC 7232 order, every failure a 412:
 * if-match true overrides if-unmodified-since, if-none-match false fails
 * whatever if-modified-since says). */
struct s3_copy_src {
	char bucket[S3_BUCKET_MAX + 1];
	char *key; /* decoded, NUL-terminated, malloc'd (s3_copy_src_free) */
	size_t key_len;
	uint32_t part;	     /* cs_name_partition of bucket */
	struct s3_cond cond; /* x-amz-copy-source-if-*: request header memory */
	const char *range;   /* x-amz-copy-source-range as sent, NULL: absent */
};
/* Parses the headers into src; replies (InvalidArgument, InvalidBucketName,
 * KeyTooLongError...) and returns non-zero when they are unusable. On 0 the
 * caller frees src with s3_copy_src_free (safe on a zeroed src). */
int s3_copy_src_parse(struct s3_req *r, struct s3_copy_src *src);
void s3_copy_src_free(struct s3_copy_src *src);
/* Inside a transaction: the source object's record, checked. 0 with *v, *vl
 * pointing into the map (valid until the transaction writes or ends: copy
 * what you keep before writing). On failure a negative code, and *why the
 * S3 error to answer: NoSuchBucket, AccessDenied, NoSuchKey,
 * PreconditionFailed; S3E_OK for failures with no S3 meaning of their own
 * (map them with s3_reply_code). */
int s3_copy_src_read(struct meta_txn *t, const struct s3_copy_src *src, const char *user,
		     const void **v, size_t *vl, enum s3_error *why) CAIRN_WUR;
/* x-amz-copy-source-range ("bytes=first-last", both required, inclusive)
 * against a source of `size` bytes: 0 with *out, CAIRN_EINVAL when
 * malformed (InvalidArgument), CAIRN_ERANGE when last >= size or first >
 * last (AWS answers InvalidArgument, ceph/s3-tests expects InvalidRange). */
int s3_copy_range_parse(const char *hdr, uint64_t size, struct s3_range *out) CAIRN_WUR;
/* Copies the record fields to f for CopyObject: with replace, f already
 * holds the request's (s3_fields_from_request) and only the fields that
 * describe the bytes (S3_F_CHECKSUM, S3_F_PART_SIZES) are added from the
 * source; without, every source field but the owner, then owner = user. */
struct s3_objinfo;
void s3_copy_fields(const struct s3_objinfo *src, bool replace, const char *user,
		    struct s3_fbuf *f);

void s3_op_copy_object(struct s3_req *r);

/* ---- buckets (s3_bucket.c) ---- */

struct s3_bucket {
	char name[S3_BUCKET_MAX + 1];
	uint32_t part;
	char owner[S3_USER_MAX + 1];
	char region[64];
	uint64_t created_ns;
};
/* Reads a bucket in the caller's transaction. 0 or CAIRN_ENOTFOUND. */
int s3_bucket_read(struct meta_txn *t, uint32_t part, const char *name,
		   struct s3_bucket *out) CAIRN_WUR;
/* Opens a read txn, reads r->addr.bucket, checks the caller owns it; replies
 * NoSuchBucket/AccessDenied itself and returns non-zero when it did. */
int s3_bucket_check(struct s3_req *r, struct s3_bucket *out) CAIRN_WUR;

void s3_op_list_buckets(struct s3_req *r);
void s3_op_create_bucket(struct s3_req *r);
void s3_op_head_bucket(struct s3_req *r);
void s3_op_delete_bucket(struct s3_req *r);
void s3_op_get_bucket_location(struct s3_req *r);
void s3_op_get_bucket_versioning(struct s3_req *r);
/* Starts CreateBucket: answers now when there is no body. */
void s3_op_create_bucket_start(struct s3_req *r);

/* ---- objects (s3_object.c) ---- */

void s3_op_put_object_start(struct s3_req *r);
/* A chunk store writer for the request's body, in the caller's dedup domain. */
int s3_writer_open(struct s3_req *r, struct cs_writer **w) CAIRN_WUR;
/* body_fn helper: feeds w; over max bytes refuses (closes); a store failure
 * is kept in *werr and the rest drained, so the reply can say why. */
int s3_body_to_writer(struct s3_req *r, struct cs_writer *w, int *werr, uint64_t max,
		      const void *data, size_t len) CAIRN_WUR;
void s3_op_get_object(struct s3_req *r); /* GET and HEAD */
void s3_op_delete_object(struct s3_req *r);
void s3_op_delete_objects_start(struct s3_req *r);
void s3_op_get_object_tagging(struct s3_req *r); /* always an empty tag set */
/* The request's object record, copied out of a short read transaction and
 * parsed into o (pointing into *copy, which the caller frees, also on
 * failure). CAIRN_ENOTFOUND when the key has no object. */
int s3_obj_load(struct s3_req *r, void **copy, struct s3_objinfo *o) CAIRN_WUR;
struct s3_objinfo;
/* x-amz-checksum-<algo> and x-amz-checksum-type for c (nothing for NONE). */
void s3_add_checksum_headers(struct MHD_Response *resp, const struct s3_cksum *c);
/* The object's stored checksum (field S3_F_CHECKSUM); false when none. */
bool s3_obj_checksum(const struct s3_objinfo *o, struct s3_cksum *out);

/* ---- GetObjectAttributes (s3_attrs.c) ---- */

void s3_op_get_object_attributes(struct s3_req *r);

/* ---- multipart uploads (s3_multipart.c) ---- */

void s3_op_create_multipart(struct s3_req *r);
void s3_op_upload_part_start(struct s3_req *r);
void s3_op_upload_part_copy(struct s3_req *r);
void s3_op_complete_multipart_start(struct s3_req *r);
void s3_op_abort_multipart(struct s3_req *r);
void s3_op_list_parts(struct s3_req *r);
void s3_op_list_uploads(struct s3_req *r);
/* Aborts every upload created more than max_age_ns ago; returns how many
 * or a negative code. Their parts' space comes back at the next GC. */
long s3_multipart_expire(struct cs_pool *pool, uint64_t max_age_ns) CAIRN_WUR;
/* In DeleteBucket's transaction: aborts the bucket's uploads in progress,
 * so that a bucket made again under the name does not inherit them. */
int s3_multipart_drop_bucket(struct cs_txn *txn, uint32_t part, const char *bucket) CAIRN_WUR;

/* ---- listing and the object index (s3_list.c) ---- */

void s3_op_list_objects(struct s3_req *r); /* v1 and v2 */

/* A decoded object record; fields point into the value it was parsed from. */
struct s3_objinfo {
	struct s3_obj_rec rec;
	const uint8_t *fields;
	size_t fields_len;
};
int s3_obj_parse(const void *v, size_t vl, struct s3_objinfo *out) CAIRN_WUR;
/* Iterates fields: returns 1 with the field, 0 at the end, CAIRN_ECORRUPT. */
int s3_field_next(const uint8_t **p, const uint8_t *end, uint8_t *tag, const char **name,
		  size_t *nlen, const char **val, size_t *vlen) CAIRN_WUR;
/* Finds the first field with this tag; value NUL-less (length in vlen). */
bool s3_field_find(const struct s3_objinfo *o, uint8_t tag, const char **val, size_t *vlen);

/* Looks a key up. *v and *vl point into the map (valid as meta_get's). */
int s3_idx_get(struct meta_txn *t, uint32_t part, const char *bucket, const char *key, size_t klen,
	       const void **v, size_t *vl) CAIRN_WUR;
/* Stores rec under key (write txn). When the key existed, its old record's
 * manifest id is copied to *old and *had_old set. */
int s3_idx_put(struct meta_txn *t, uint32_t part, const char *bucket, const char *key, size_t klen,
	       const void *rec, size_t reclen, struct cs_mid *old, bool *had_old) CAIRN_WUR;
/* Removes key (write txn); 0 with *had_old false when it was absent. */
int s3_idx_del(struct meta_txn *t, uint32_t part, const char *bucket, const char *key, size_t klen,
	       struct cs_mid *old, bool *had_old) CAIRN_WUR;
/* True when the bucket holds no object (CAIRN_* on error as negative). */
int s3_idx_empty(struct meta_txn *t, uint32_t part, const char *bucket) CAIRN_WUR;

/* The byte range of part pn (1-based) of an object: CAIRN_ERANGE beyond
 * its parts (a single-PUT object has one part, the whole object). */
int s3_part_range(const struct s3_objinfo *o, uint32_t pn, uint64_t *first,
		  uint64_t *len) CAIRN_WUR;
/* The part-size runs of a multipart object, across its S3_F_PART_SIZES
 * fields: next gives 1 with a run, 0 at the end, or CAIRN_ECORRUPT. */
struct s3_runs_iter {
	const uint8_t *p, *end;
	const char *v;
	size_t vl, off;
};
void s3_part_runs_init(struct s3_runs_iter *it, const struct s3_objinfo *o);
int s3_part_runs_next(struct s3_runs_iter *it, uint64_t *size, uint32_t *count) CAIRN_WUR;

/* ---- users (s3_users.c) ---- */

bool s3_user_name_valid(const char *name);
int s3_user_decode(const void *v, size_t vl, struct s3_user_rec *rec) CAIRN_WUR;

/* ---- the system bucket (s3_sysbucket.c) ---- */

bool s3_is_system_bucket(const char *bucket);
/* After authentication, on the op route() named: answers what the system
 * bucket refuses (AccessDenied, BucketAlreadyExists) and returns non-zero;
 * 0 for other buckets and for what it allows. */
int s3_sysbucket_gate(struct s3_req *r);
/* True when user is the object's S3_F_OWNER: GET, HEAD and copy-from of a
 * system bucket object are allowed to that user besides root. */
struct s3_objinfo;
bool s3_sysbucket_reader(const struct s3_objinfo *o, const char *user);

/* ---- tokens (s3_tokens.c) ---- */

/* In s3_user_delete's transaction: removes every token of user. O(tokens). */
int s3_tokens_drop_user(struct meta_txn *t, const char *user) CAIRN_WUR;

/* ---- small helpers ---- */
uint64_t s3_now_ns(void);
/* Base64 (standard alphabet, padded). Returns the output length. */
size_t s3_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);
/* Returns decoded length or -1. */
long s3_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
