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
/* CAIRN_EINVAL for a bad name (1..64 of [A-Za-z0-9_.@+=,-]), CAIRN_EEXISTS. */
int s3_user_create(struct cs_pool *pool, const char *name) CAIRN_WUR;
/* One user; CAIRN_ENOTFOUND when absent. out may be NULL (existence check). */
int s3_user_get(struct cs_pool *pool, const char *name, struct s3_user *out) CAIRN_WUR;
/* Deletes a user and its keys; CAIRN_ENOTEMPTY while it owns buckets,
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

#endif
