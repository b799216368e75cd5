/* objstore/s3.h - the S3 service: HTTP server, users and access keys.
 *
 * s3_server_start() serves the S3 REST API on one listener with
 * libmicrohttpd (a thread per connection, capped in total and per client
 * address, with an idle timeout and a deadline for a request head), on top
 * of a chunk store pool. Users and their access keys are kept in the pool's
 * metadata (META_T_USERS, META_T_KEYS); secrets are never logged. Records
 * are described in objstore/s3_format.h. With a certificate and key in the
 * config the listener speaks HTTPS only (libmicrohttpd over GnuTLS; the
 * files are read once at start, a new certificate needs a restart).
 *
 * Behaviour choices: every request must be SigV4-signed (header or
 * presigned) with a credential scope naming this server's region;
 * CreateBucket of a bucket the caller owns answers 200 in us-east-1 (as AWS
 * there) and 409 BucketAlreadyOwnedByYou in other regions; another user's
 * bucket is AccessDenied. Multipart, copy, aws-chunked, ACLs and other
 * subresources answer 501 NotImplemented.
 *
 * Threads: start/stop from the main thread; the users API from any thread
 * (writes go through cs_commit). Strings returned in structs are owned by
 * the struct.
 */
#ifndef CAIRN_OBJSTORE_S3_H
#define CAIRN_OBJSTORE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct cs_pool;
struct s3_server;

struct s3_config {
	const char *listen; /* "HOST:PORT" */
	const char *region; /* "us-east-1" */
	const char *domain; /* virtual-host suffix, e.g. "s3.localhost"; NULL: path style only */
	unsigned max_connections; /* 0 = 1024 */
	unsigned timeout_sec;	  /* idle connection timeout; 0 = 60 */
	unsigned max_per_ip;	  /* connections from one address; 0 = max_connections / 2 */
	bool access_log;	  /* one line per request on stderr */
	/* unfinished multipart uploads older than this are aborted (their
	 * parts' space freed by the next GC); 0: never */
	unsigned multipart_expiry_sec;
	/* HTTPS: both set = the port speaks TLS only (PEM files: the
	 * certificate, optionally followed by its chain, and an unencrypted
	 * private key); both NULL or "" = plain HTTP; one alone = CAIRN_EINVAL. */
	const char *tls_cert;
	const char *tls_key;
};

int s3_server_start(const struct s3_config *cfg, struct cs_pool *pool,
		    struct s3_server **out) CAIRN_WUR;
/* Checks a TLS certificate and key pair as s3_server_start would: TLS is
 * compiled into libmicrohttpd, both files are readable PEM, the key is not
 * encrypted and matches the certificate. Returns 0, or -errno / CAIRN_EINVAL
 * / -ENOTSUP with a message naming the file in err (never key material).
 * Warns in the log about an expired certificate or a key file that others
 * can read. For `cairn serve` to fail before it opens the pool. */
int s3_tls_check(const char *cert_path, const char *key_path, char *err, size_t errlen) CAIRN_WUR;
/* True when the server speaks HTTPS. */
bool s3_server_tls(const struct s3_server *srv);
/* The port actually bound (for ":0" listeners in tests). */
uint16_t s3_server_port(const struct s3_server *srv);
/* Stops accepting, finishes requests in flight, frees; NULL is fine. */
void s3_server_stop(struct s3_server *srv);

/* ---- users and keys ---- */

#define S3_USER_MAX 64
#define S3_KEY_ID_MAX 128
#define S3_SECRET_MAX 128
#define S3_ROOT_USER "root" /* the user s3_users_bootstrap keeps; cannot be deleted */

struct s3_user {
	char name[S3_USER_MAX + 1];
	uint64_t created; /* unix seconds */
	bool root;
};

struct s3_key {
	char id[S3_KEY_ID_MAX + 1];
	char user[S3_USER_MAX + 1];
	char secret[S3_SECRET_MAX + 1];
	uint64_t created;
};

/* Makes sure the root user exists with this access key and secret (creating
 * or updating them). Called at every start. */
int s3_users_bootstrap(struct cs_pool *pool, const char *root_key_id,
		       const char *root_secret) CAIRN_WUR;
/* True for a valid user name: 1..64 of [A-Za-z0-9_.@+=,-] (the registry
 * checks image owners with it: the system bucket links need one). */
bool s3_user_name_valid(const char *name);
/* CAIRN_EINVAL for a bad name (1..64 of [A-Za-z0-9_.@+=,-]), CAIRN_EEXISTS. */
int s3_user_create(struct cs_pool *pool, const char *name) CAIRN_WUR;
/* One user; CAIRN_ENOTFOUND when absent. out may be NULL (existence check). */
int s3_user_get(struct cs_pool *pool, const char *name, struct s3_user *out) CAIRN_WUR;
/* Deletes a user, its keys and its tokens; CAIRN_ENOTEMPTY while it owns buckets,
 * CAIRN_EDENIED for the root user, CAIRN_ENOTFOUND when absent. */
int s3_user_delete(struct cs_pool *pool, const char *name) CAIRN_WUR;
/* Fills up to max users sorted by name; returns the count or a negative code. */
long s3_user_list(struct cs_pool *pool, struct s3_user *out, size_t max) CAIRN_WUR;
/* Creates a random key pair for a user (20-char id, 40-char secret). */
int s3_key_create(struct cs_pool *pool, const char *user, struct s3_key *out) CAIRN_WUR;
int s3_key_delete(struct cs_pool *pool, const char *key_id) CAIRN_WUR;
/* Keys of one user (user NULL: all); secrets left empty. */
long s3_key_list(struct cs_pool *pool, const char *user, struct s3_key *out, size_t max) CAIRN_WUR;
/* Looks up a key with its secret, for authentication. */
int s3_key_lookup(struct cs_pool *pool, const char *key_id, struct s3_key *out) CAIRN_WUR;

/* ---- bearer tokens (image registry X-Auth-Token, admin API Bearer) ---- */

#define S3_TOKEN_HEX 64	  /* characters of a token: 32 random bytes in hex */
#define S3_TOKEN_ID_HEX 8 /* a token's id: the first hex digits of its SHA-256 */

struct s3_token {
	char id[S3_TOKEN_ID_HEX + 1];
	char user[S3_USER_MAX + 1];
	uint64_t created_ns;
	uint64_t expires_ns; /* 0: never */
};

/* Creates a random token for an existing user (CAIRN_ENOTFOUND otherwise),
 * valid for ttl_sec seconds (0: never expires). token_out gets the token
 * (S3_TOKEN_HEX + 1 bytes): it is shown once, only its SHA-256 is kept. */
int s3_token_create(struct cs_pool *pool, const char *user, uint64_t ttl_sec,
		    char token_out[S3_TOKEN_HEX + 1], struct s3_token *out) CAIRN_WUR;
/* The user of a token: 0, CAIRN_ENOTFOUND (unknown), or -EKEYEXPIRED
 * (expired; expired records are removed by s3_token_delete or the next
 * s3_token_create). A deleted user's tokens are CAIRN_ENOTFOUND. */
int s3_token_lookup(struct cs_pool *pool, const char *token, struct s3_token *out) CAIRN_WUR;
/* Tokens of one user (NULL: all), sorted by id; returns the count. */
long s3_token_list(struct cs_pool *pool, const char *user, struct s3_token *out,
		   size_t max) CAIRN_WUR;
/* By id (S3_TOKEN_ID_HEX digits, or a longer prefix of the hash). */
int s3_token_delete(struct cs_pool *pool, const char *id) CAIRN_WUR;

/* ---- the system bucket: every image, readable over S3 ----
 * A bucket owned by the root user that the image registry fills: object
 * <image id> holds the image's bytes (its own manifest reference). Over S3,
 * GET and HEAD of an object are allowed to the root user and to the user
 * named as the object's owner; listing to the root user only; every write
 * (PUT, copy into it, multipart, DELETE, bucket deletion, ACL or policy
 * changes) is AccessDenied for everyone. CreateBucket of this name by any
 * user is refused (BucketAlreadyExists). */
#define S3_SYSTEM_BUCKET "cairn-images"

struct cs_txn;
struct cs_mid;

/* What an object link records: the object's bytes are the manifest's. */
struct s3_link {
	const struct cs_mid *mid; /* gains one reference */
	uint64_t size;
	uint8_t md5[16];	  /* the ETag (hex of it) */
	const char *owner;	  /* S3_F_OWNER */
	const char *content_type; /* NULL: application/octet-stream */
	uint64_t mtime_ns;
};
/* Creates the system bucket if missing (at start; idempotent). */
int s3_system_bucket_ensure(struct cs_pool *pool) CAIRN_WUR;
/* Inside a cs_commit callback: makes (bucket, key) an object whose bytes are
 * l->mid (one new manifest reference), replacing an object of that key (its
 * reference dropped). The bucket must exist (CAIRN_ENOTFOUND). */
int s3_object_link_txn(struct cs_txn *txn, struct cs_pool *pool, const char *bucket,
		       const char *key, const struct s3_link *l) CAIRN_WUR;
/* Inside a cs_commit callback: removes the object and drops its manifest
 * reference; CAIRN_ENOTFOUND when absent. */
int s3_object_unlink_txn(struct cs_txn *txn, struct cs_pool *pool, const char *bucket,
			 const char *key) CAIRN_WUR;

/* An object as the registry needs it to register it as an image. */
struct s3_object_info {
	uint8_t mid[16];
	uint64_t size;
	uint8_t md5[16];
	uint32_t parts;			    /* multipart: the ETag is not the MD5 of the bytes */
	char owner[S3_USER_MAX + 1];	    /* who wrote the object */
	char bucket_owner[S3_USER_MAX + 1]; /* who owns the bucket */
	char content_type[128];
};
/* Looks an object up in a read transaction of its own. CAIRN_ENOTFOUND for
 * a missing bucket or key. Inline objects (no chunks) are returned with
 * their manifest id too. Called again inside the commit (with txn) to check
 * that the object still holds the same manifest. */
int s3_object_resolve(struct cs_pool *pool, const char *bucket, const char *key,
		      struct s3_object_info *out) CAIRN_WUR;
int s3_object_resolve_txn(struct cs_txn *txn, struct cs_pool *pool, const char *bucket,
			  const char *key, struct s3_object_info *out) CAIRN_WUR;

#endif
