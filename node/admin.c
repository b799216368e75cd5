/* node/admin.c - the admin API: /metrics, /health, users and keys, pool
 * stats and maintenance jobs.
 *
 * Its own libmicrohttpd listener (thread per connection, a small connection
 * cap): operators and scrapers are few, and the users API blocks on
 * cs_commit. /metrics and /health are open (scrapers and load balancers do
 * not sign); everything under /admin/v1/ is authenticated with SigV4 exactly
 * as S3 is (same parser and verifier, raw request target from the URI log
 * callback) and allowed only to the root user. Bodies are JSON and capped at
 * ADMIN_BODY_MAX; errors are {"error":{"code":..., "message":...}}.
 *
 * Block volumes (/admin/v1/volumes...) are matched here, authenticated the
 * same way and answered by admin_vol.c; bearer tokens (/admin/v1/tokens...)
 * likewise by admin_tok.c, images (/admin/v1/images..., and
 * /admin/v1/volumes/NAME/upload-image) by admin_img.c. Instead of SigV4, a request may carry
 * "Authorization: Bearer T" where T is the configured admin token or a
 * token (cairn token create) of the root user.
 *
 * Maintenance jobs (POST/GET /admin/v1/pool/jobs) run on a thread of their
 * own (node/jobs.c): the POST answers 202 at once, one job at a time (409
 * JobRunning names the running one), and admin_stop waits for a running
 * job before the pool may close.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "chunkstore/chunkstore.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/metrics.h"
#include "node/config.h"
#include "node/node.h"
#include "objstore/s3.h"
#include "objstore/sigv4.h"

#define TAG "api"
#define ADMIN_BODY_MAX (64 * 1024)
#define ADMIN_HEADERS_MAX 100
#define ADMIN_CONN_MAX 64
#define ADMIN_TIMEOUT_SEC 30

struct admin_server {
	struct MHD_Daemon *mhd;
	struct cs_pool *pool;
	struct node_jobs *jobs;
	char data_dir[4096];
	char root_key[S3_KEY_ID_MAX + 1];
	char root_user[S3_USER_MAX + 1];
	bool access_log;
	volatile bool stopping;
	uint16_t port;
	struct bs_store *bs; /* block volumes (admin_vol.c); NULL: not served */
	char nbd_host[256];
	uint16_t nbd_port;
	char *admin_token;    /* Bearer token that acts as root; NULL: none */
	struct registry *reg; /* images (admin_img.c); NULL: those routes answer 503 */
};

/* One request, created by the URI log callback (which sees the target as
 * received, before libmicrohttpd decodes it) and freed when it completes. */
struct admin_req {
	struct admin_server *srv;
	char *raw_target;
	struct timespec start;
	bool started;
	bool too_big;
	char *body;
	size_t body_len;
	const char *op; /* static metrics label */
	unsigned status;
	uint64_t bytes_out;
	struct sigv4_header hdrs[ADMIN_HEADERS_MAX];
	size_t nhdrs;
	bool hdrs_overflow;
};

static uint64_t usec_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t0->tv_sec) * 1000000u +
	       (uint64_t)((now.tv_nsec - t0->tv_nsec) / 1000);
}

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)conn;
	struct admin_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL; /* the handler answers 503 */
	r->srv = cls;
	r->raw_target = strdup(uri ? uri : "/");
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->op = "Unknown";
	return r;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	struct admin_server *srv = cls;
	struct admin_req *r = *con_cls;
	if (!r)
		return;
	if (r->status) {
		uint64_t us = usec_since(&r->start);
		metrics_request("admin", r->op, (int)r->status, r->body_len, r->bytes_out, us);
		if (srv->access_log) {
			/* The path only: a query could carry a presigned signature. */
			const char *t = r->raw_target ? r->raw_target : "";
			int plen = (int)strcspn(t, "?");
			log_info(TAG, "%s %.*s %u %llu %.3fms%s", r->op, plen, t, r->status,
				 (unsigned long long)r->bytes_out, (double)us / 1000.0,
				 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
		}
	}
	free(r->raw_target);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn(TAG, "libmicrohttpd: %s", msg);
}

/* ---- responses ---- */

static enum MHD_Result reply_buf_allow(struct MHD_Connection *conn, struct admin_req *r,
				       unsigned status, char *buf, size_t len, const char *ctype,
				       const char *allow)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	r->bytes_out = len;
	return ret;
}

static enum MHD_Result reply_buf(struct MHD_Connection *conn, struct admin_req *r, unsigned status,
				 char *buf, size_t len, const char *ctype)
{
	return reply_buf_allow(conn, r, status, buf, len, ctype, NULL);
}

/* Takes ownership of body (a jansson reference). */
static enum MHD_Result reply_json(struct MHD_Connection *conn, struct admin_req *r, unsigned status,
				  json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return MHD_NO; /* out of memory: drop the connection */
	size_t len = strlen(text);
	/* One JSON document per line reads well with curl. */
	char *withnl = realloc(text, len + 2);
	if (!withnl) {
		free(text);
		return MHD_NO;
	}
	withnl[len] = '\n';
	withnl[len + 1] = '\0';
	return reply_buf(conn, r, status, withnl, len + 1, "application/json");
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, struct admin_req *r,
				   unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result reply_error(struct MHD_Connection *conn, struct admin_req *r,
				   unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
	return reply_json(conn, r, status, body);
}

/* The one table that maps cairn codes to admin API errors. notfound_code
 * names what was missing (NoSuchUser, NoSuchKey). */
static enum MHD_Result reply_code(struct MHD_Connection *conn, struct admin_req *r, int err,
				  const char *notfound_code, const char *what)
{
	switch (err) {
	case CAIRN_ENOTFOUND:
		return reply_error(conn, r, MHD_HTTP_NOT_FOUND, notfound_code, "%s does not exist",
				   what);
	case CAIRN_EEXISTS:
		return reply_error(conn, r, MHD_HTTP_CONFLICT, "AlreadyExists", "%s already exists",
				   what);
	case CAIRN_ENOTEMPTY:
		return reply_error(conn, r, MHD_HTTP_CONFLICT, "UserNotEmpty",
				   "%s still owns buckets; delete them first", what);
	case CAIRN_EINVAL:
		return reply_error(conn, r, MHD_HTTP_BAD_REQUEST, "InvalidArgument", "invalid %s",
				   what);
	case CAIRN_EDENIED:
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "AccessDenied",
				   "%s cannot be changed", what);
	case CAIRN_ENOSPACE:
		return reply_error(conn, r, MHD_HTTP_INSUFFICIENT_STORAGE, "InsufficientStorage",
				   "the metadata map is full");
	case CAIRN_ESHUTDOWN:
		return reply_error(conn, r, MHD_HTTP_SERVICE_UNAVAILABLE, "ServiceUnavailable",
				   "cairn is shutting down");
	case -ENOMEM:
		return reply_error(conn, r, MHD_HTTP_SERVICE_UNAVAILABLE, "SlowDown",
				   "out of memory; retry");
	default:
		log_err(TAG, "%s: %s", what, cairn_strerror(err));
		return reply_error(conn, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "InternalError", "%s",
				   cairn_strerror(err));
	}
}

/* ---- authentication ---- */

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	(void)kind;
	struct admin_req *r = cls;
	if (r->nhdrs >= ADMIN_HEADERS_MAX) {
		r->hdrs_overflow = true;
		return MHD_NO;
	}
	r->hdrs[r->nhdrs].name = key;
	r->hdrs[r->nhdrs].value = value ? value : "";
	r->nhdrs++;
	return MHD_YES;
}

/* Authorization: Bearer TOKEN: the configured admin token, or a token
 * (cairn token create) of the root user. Returns as authenticate(). */
static int bearer_auth(struct MHD_Connection *conn, struct admin_req *r, const char *tok)
{
	struct admin_server *srv = r->srv;
	struct s3_token t;
	size_t n;
	int rc;

	while (*tok == ' ')
		tok++;
	n = strcspn(tok, " ");
	if (srv->admin_token && n == strlen(srv->admin_token) &&
	    CRYPTO_memcmp(tok, srv->admin_token, n) == 0 && tok[n + strspn(tok + n, " ")] == '\0')
		return -1;
	rc = s3_token_lookup(srv->pool, tok, &t);
	if (rc == CAIRN_ENOTFOUND)
		return reply_error(conn, r, MHD_HTTP_UNAUTHORIZED, "InvalidToken",
				   "the bearer token is not known");
	if (rc == -EKEYEXPIRED)
		return reply_error(conn, r, MHD_HTTP_UNAUTHORIZED, "ExpiredToken",
				   "the bearer token has expired");
	if (rc < 0)
		return reply_code(conn, r, rc, "InvalidToken", "token");
	if (strcmp(t.user, srv->root_user) != 0)
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "AccessDenied",
				   "only the root user may use the admin API");
	return -1;
}

/* Returns MHD_YES/NO when it answered (denied), or -1 to go on. */
static int authenticate(struct MHD_Connection *conn, struct admin_req *r, const char *method)
{
	struct admin_server *srv = r->srv;
	struct sigv4_auth auth;
	struct s3_key key;
	int rc;

	const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (authz && strncasecmp(authz, "Bearer ", 7) == 0)
		return bearer_auth(conn, r, authz + 7);
	r->nhdrs = 0;
	MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, r);
	if (r->hdrs_overflow)
		return reply_error(conn, r, MHD_HTTP_BAD_REQUEST, "RequestHeaderSectionTooLarge",
				   "too many request headers");
	struct sigv4_request sreq = {
	    .method = method, .target = r->raw_target, .headers = r->hdrs, .nheaders = r->nhdrs};
	rc = sigv4_parse(&sreq, &auth);
	if (rc == 1)
		return reply_error(
		    conn, r, MHD_HTTP_FORBIDDEN, "AccessDenied",
		    "the admin API needs a request signed with the root key (SigV4)");
	if (rc < 0)
		return reply_error(conn, r, MHD_HTTP_BAD_REQUEST, "AuthorizationHeaderMalformed",
				   "the SigV4 credentials of this request are malformed");
	rc = sigv4_check_time(&auth, time(NULL));
	if (rc == CAIRN_ESKEW)
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "RequestTimeTooSkewed",
				   "the request time is more than 15 minutes from the server's");
	if (rc == CAIRN_EEXPIRED)
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "AccessDenied",
				   "request has expired");
	if (rc < 0)
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "AccessDenied", "%s",
				   cairn_strerror(rc));
	rc = s3_key_lookup(srv->pool, auth.access_key, &key);
	if (rc == CAIRN_ENOTFOUND)
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "InvalidAccessKeyId",
				   "the access key id does not exist");
	if (rc < 0)
		return reply_code(conn, r, rc, "InvalidAccessKeyId", "access key");
	/* The body's hash. Without an x-amz-content-sha256 header, S3 would
	 * take the empty body's hash; here the canonical request uses the real
	 * body's, as generic SigV4 clients (curl --aws-sigv4) sign it. */
	uint8_t md[32];
	char hex[65];
	unsigned mdlen = 0;
	if (!EVP_Digest(r->body ? r->body : "", r->body_len, md, &mdlen, EVP_sha256(), NULL)) {
		OPENSSL_cleanse(key.secret, sizeof(key.secret));
		return reply_code(conn, r, -ENOMEM, "", "digest");
	}
	hash_hex(md, 32, hex);
	if (auth.payload_raw[0] == '\0' && auth.payload == SIGV4_PAYLOAD_HASH && !auth.presigned)
		memcpy(auth.payload_hash, hex, sizeof(hex));
	rc = sigv4_verify(&sreq, &auth, key.secret);
	OPENSSL_cleanse(key.secret, sizeof(key.secret));
	if (rc < 0)
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "SignatureDoesNotMatch",
				   "the request signature does not match; check the secret key");
	if (auth.payload == SIGV4_PAYLOAD_HASH) {
		if (strcmp(hex, auth.payload_hash) != 0)
			return reply_error(conn, r, MHD_HTTP_BAD_REQUEST,
					   "XAmzContentSHA256Mismatch",
					   "the body does not match x-amz-content-sha256");
	} else if (auth.payload != SIGV4_PAYLOAD_UNSIGNED) {
		return reply_error(conn, r, MHD_HTTP_NOT_IMPLEMENTED, "NotImplemented",
				   "streaming payloads are not supported by the admin API");
	}
	if (strcmp(key.user, srv->root_user) != 0)
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "AccessDenied",
				   "only the root user may use the admin API");
	return -1;
}

/* ---- handlers ---- */

static enum MHD_Result do_metrics(struct MHD_Connection *conn, struct admin_req *r)
{
	char *text, *more = NULL;
	size_t len, mlen = 0;
	int rc = metrics_render(&text, &len);
	if (rc < 0)
		return reply_code(conn, r, rc, "", "metrics");
	/* Labelled pool, device and job series: best effort, the core
	 * metrics go out even when these cannot be made. */
	if (node_pool_metrics(r->srv->pool, r->srv->data_dir, r->srv->jobs, &more, &mlen) == 0 &&
	    mlen) {
		char *nt = realloc(text, len + mlen);
		if (nt) {
			memcpy(nt + len, more, mlen);
			text = nt;
			len += mlen;
		}
	}
	free(more);
	return reply_buf(conn, r, MHD_HTTP_OK, text, len,
			 "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result do_health(struct MHD_Connection *conn, struct admin_req *r)
{
	struct admin_server *srv = r->srv;
	struct cs_stats st;
	if (srv->stopping)
		return reply_json(
		    conn, r, MHD_HTTP_SERVICE_UNAVAILABLE,
		    json_pack("{s:s, s:s}", "status", "unavailable", "reason", "shutting down"));
	/* A stats read touches the pool's metadata: if that fails, the pool
	 * cannot serve either. */
	int rc = cs_pool_stats(srv->pool, &st);
	if (rc < 0)
		return reply_json(
		    conn, r, MHD_HTTP_SERVICE_UNAVAILABLE,
		    json_pack("{s:s, s:s}", "status", "unavailable", "reason", cairn_strerror(rc)));
	return reply_json(conn, r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

static json_t *user_json(const struct s3_user *u)
{
	return json_pack("{s:s, s:b, s:I}", "name", u->name, "root", u->root, "created",
			 (json_int_t)u->created);
}

static json_t *key_json(const struct s3_key *k, bool with_secret)
{
	json_t *o = json_pack("{s:s, s:s, s:I}", "id", k->id, "user", k->user, "created",
			      (json_int_t)k->created);
	if (o && with_secret)
		json_object_set_new(o, "secret", json_string(k->secret));
	return o;
}

static enum MHD_Result do_user_list(struct MHD_Connection *conn, struct admin_req *r)
{
	size_t max = 256;
	struct s3_user *users = NULL;
	long n;
	for (;;) {
		users = calloc(max, sizeof(*users));
		if (!users)
			return reply_code(conn, r, -ENOMEM, "", "users");
		n = s3_user_list(r->srv->pool, users, max);
		if (n < 0 || (size_t)n < max)
			break;
		free(users);
		max *= 4; /* a full page: there may be more */
	}
	if (n < 0) {
		free(users);
		return reply_code(conn, r, (int)n, "NoSuchUser", "user list");
	}
	json_t *arr = json_array();
	for (long i = 0; arr && i < n; i++)
		json_array_append_new(arr, user_json(&users[i]));
	free(users);
	return reply_json(conn, r, MHD_HTTP_OK, json_pack("{s:o}", "users", arr));
}

/* The one body field every POST here takes: {"name": "..."} for a user. */
static const char *body_name(struct admin_req *r, json_t **root)
{
	json_error_t jerr;
	*root = json_loadb(r->body ? r->body : "", r->body_len, 0, &jerr);
	if (!*root)
		return NULL;
	json_t *n = json_object_get(*root, "name");
	return json_is_string(n) ? json_string_value(n) : NULL;
}

static enum MHD_Result do_user_create(struct MHD_Connection *conn, struct admin_req *r)
{
	json_t *root = NULL;
	const char *name = body_name(r, &root);
	enum MHD_Result ret;
	if (!name) {
		ret = reply_error(conn, r, MHD_HTTP_BAD_REQUEST, "MalformedJSON",
				  "expected a JSON body {\"name\": \"USER\"}");
		goto out;
	}
	int rc = s3_user_create(r->srv->pool, name);
	if (rc < 0) {
		if (rc == CAIRN_EEXISTS)
			ret = reply_error(conn, r, MHD_HTTP_CONFLICT, "UserAlreadyExists",
					  "user '%s' already exists", name);
		else if (rc == CAIRN_EINVAL)
			ret = reply_error(conn, r, MHD_HTTP_BAD_REQUEST, "InvalidUserName",
					  "user names are 1 to %d of letters, digits and _.@+=,-",
					  S3_USER_MAX);
		else
			ret = reply_code(conn, r, rc, "NoSuchUser", "user");
		goto out;
	}
	log_info(TAG, "created user '%s'", name);
	ret =
	    reply_json(conn, r, MHD_HTTP_CREATED, json_pack("{s:s, s:b}", "name", name, "root", 0));
out:
	json_decref(root);
	return ret;
}

static enum MHD_Result do_user_delete(struct MHD_Connection *conn, struct admin_req *r,
				      const char *name)
{
	if (strcmp(name, r->srv->root_user) == 0)
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "AccessDenied",
				   "the root user cannot be deleted");
	int rc = s3_user_delete(r->srv->pool, name);
	if (rc == CAIRN_ENOTFOUND)
		return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NoSuchUser",
				   "user '%s' does not exist", name);
	if (rc == CAIRN_ENOTEMPTY)
		return reply_error(conn, r, MHD_HTTP_CONFLICT, "UserNotEmpty",
				   "user '%s' still owns buckets; delete them first", name);
	if (rc < 0)
		return reply_code(conn, r, rc, "NoSuchUser", "user");
	log_info(TAG, "deleted user '%s'", name);
	return reply_json(conn, r, MHD_HTTP_OK,
			  json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

static enum MHD_Result do_key_list(struct MHD_Connection *conn, struct admin_req *r,
				   const char *user)
{
	size_t max = 64;
	struct s3_key *keys = NULL;
	long n;
	if (user) {
		/* An unknown user is an error, not an empty list. */
		struct s3_user *users = NULL;
		size_t umax = 256;
		long un;
		bool found = false;
		for (;;) {
			users = calloc(umax, sizeof(*users));
			if (!users)
				return reply_code(conn, r, -ENOMEM, "", "users");
			un = s3_user_list(r->srv->pool, users, umax);
			if (un < 0 || (size_t)un < umax)
				break;
			free(users);
			umax *= 4;
		}
		for (long i = 0; i < un; i++)
			found = found || strcmp(users[i].name, user) == 0;
		free(users);
		if (un < 0)
			return reply_code(conn, r, (int)un, "NoSuchUser", "user list");
		if (!found)
			return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NoSuchUser",
					   "user '%s' does not exist", user);
	}
	for (;;) {
		keys = calloc(max, sizeof(*keys));
		if (!keys)
			return reply_code(conn, r, -ENOMEM, "", "keys");
		n = s3_key_list(r->srv->pool, user, keys, max);
		if (n < 0 || (size_t)n < max)
			break;
		free(keys);
		max *= 4;
	}
	if (n < 0) {
		free(keys);
		return reply_code(conn, r, (int)n, "NoSuchUser", "key list");
	}
	json_t *arr = json_array();
	for (long i = 0; arr && i < n; i++)
		json_array_append_new(arr, key_json(&keys[i], false));
	free(keys);
	return reply_json(conn, r, MHD_HTTP_OK, json_pack("{s:o}", "keys", arr));
}

static enum MHD_Result do_key_create(struct MHD_Connection *conn, struct admin_req *r,
				     const char *user)
{
	struct s3_key key;
	int rc = s3_key_create(r->srv->pool, user, &key);
	if (rc == CAIRN_ENOTFOUND)
		return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NoSuchUser",
				   "user '%s' does not exist", user);
	if (rc < 0)
		return reply_code(conn, r, rc, "NoSuchUser", "user");
	log_info(TAG, "created key %s for user '%s'", key.id, user);
	enum MHD_Result ret = reply_json(conn, r, MHD_HTTP_CREATED, key_json(&key, true));
	OPENSSL_cleanse(key.secret, sizeof(key.secret));
	return ret;
}

static enum MHD_Result do_key_delete(struct MHD_Connection *conn, struct admin_req *r,
				     const char *id)
{
	/* Deleting the key the node was started with would lock the operator
	 * out until the next start re-creates it. */
	if (strcmp(id, r->srv->root_key) == 0)
		return reply_error(conn, r, MHD_HTTP_FORBIDDEN, "AccessDenied",
				   "the root key comes from CAIRN_ROOT_USER or root-credentials; "
				   "change it there and restart");
	int rc = s3_key_delete(r->srv->pool, id);
	if (rc == CAIRN_ENOTFOUND)
		return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NoSuchKey",
				   "access key '%s' does not exist", id);
	if (rc < 0)
		return reply_code(conn, r, rc, "NoSuchKey", "access key");
	log_info(TAG, "deleted key %s", id);
	return reply_json(conn, r, MHD_HTTP_OK, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

/* ---- pool ---- */

static enum MHD_Result do_pool_stats(struct MHD_Connection *conn, struct admin_req *r)
{
	int rc = 0;
	json_t *o = node_pool_stats_json(r->srv->pool, r->srv->data_dir, &rc);
	if (!o)
		return reply_code(conn, r, rc, "", "pool stats");
	return reply_json(conn, r, MHD_HTTP_OK, o);
}

static enum MHD_Result do_job_get(struct MHD_Connection *conn, struct admin_req *r)
{
	json_t *o = node_job_json(r->srv->jobs);
	if (!o)
		return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NoSuchJob",
				   "no maintenance job has run since the node started");
	return reply_json(conn, r, MHD_HTTP_OK, o);
}

/* Body: {"op": "fsck"|"gc"|"scrub"|"repair", "fix": bool (optional)}. */
static enum MHD_Result do_job_start(struct MHD_Connection *conn, struct admin_req *r)
{
	json_error_t jerr;
	enum MHD_Result ret;
	char running[16] = "";
	uint64_t id = 0;
	json_t *root = json_loadb(r->body ? r->body : "", r->body_len, 0, &jerr);
	json_t *op = json_object_get(root, "op"), *fix = json_object_get(root, "fix");
	if (!json_is_object(root) || !json_is_string(op) || (fix && !json_is_boolean(fix))) {
		ret = reply_error(conn, r, MHD_HTTP_BAD_REQUEST, "MalformedJSON",
				  "expected a JSON body {\"op\": \"fsck|gc|scrub|repair\", "
				  "\"fix\": false}");
		goto out;
	}
	const char *ops = json_string_value(op);
	if (!node_job_op_valid(ops)) {
		ret = reply_error(conn, r, MHD_HTTP_BAD_REQUEST, "InvalidOperation",
				  "unknown job '%.32s': one of fsck, gc, scrub, repair", ops);
		goto out;
	}
	if (fix && json_is_true(fix) && strcmp(ops, "fsck") != 0) {
		ret = reply_error(conn, r, MHD_HTTP_BAD_REQUEST, "InvalidArgument",
				  "\"fix\" applies to fsck only (%s always repairs what it can)",
				  ops);
		goto out;
	}
	int rc =
	    node_job_start(r->srv->jobs, ops, json_is_true(fix), &id, running, sizeof(running));
	if (rc == CAIRN_EEXISTS) {
		ret = reply_error(
		    conn, r, MHD_HTTP_CONFLICT, "JobRunning",
		    "a %s job is running; wait for it to end (GET /admin/v1/pool/jobs)", running);
		goto out;
	}
	if (rc < 0) {
		ret = reply_code(conn, r, rc, "", "job");
		goto out;
	}
	json_t *o = node_job_json(r->srv->jobs);
	ret = o ? reply_json(conn, r, MHD_HTTP_ACCEPTED, o)
		: reply_json(conn, r, MHD_HTTP_ACCEPTED,
			     json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "op", ops, "state",
				       "running"));
out:
	json_decref(root);
	return ret;
}

/* /admin/v1/volumes*: parsed and answered by admin_vol.c. */
static enum MHD_Result do_volume(struct MHD_Connection *conn, struct admin_req *r,
				 const char *method)
{
	char peer[INET6_ADDRSTRLEN + 1] = "";
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		socklen_t sl = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							 : sizeof(struct sockaddr_in);
		if (getnameinfo(sa, sl, peer, sizeof(peer), NULL, 0, NI_NUMERICHOST) != 0)
			peer[0] = '\0';
	}
	struct admin_vol_env env = {.bs = r->srv->bs,
				    .nbd_host = r->srv->nbd_host,
				    .nbd_port = r->srv->nbd_port,
				    .peer = peer,
				    .reg = r->srv->reg};
	json_t *body = NULL;
	unsigned status =
	    admin_vol_handle(&env, method, r->raw_target, r->body, r->body_len, &body);
	if (status == MHD_HTTP_NO_CONTENT)
		return reply_buf(conn, r, status, NULL, 0, "application/json");
	if (!body)
		return MHD_NO; /* out of memory: drop the connection */
	return reply_json(conn, r, status, body);
}

/* /admin/v1/images*, .../upload-image: parsed and answered by admin_img.c. */
static enum MHD_Result do_image(struct MHD_Connection *conn, struct admin_req *r,
				const char *method)
{
	struct admin_img_env env = {.reg = r->srv->reg, .pool = r->srv->pool};
	json_t *body = NULL;
	unsigned status =
	    admin_img_handle(&env, method, r->raw_target, r->body, r->body_len, &body);
	if (!body)
		return MHD_NO; /* out of memory: drop the connection */
	return reply_json(conn, r, status, body);
}

/* /admin/v1/tokens*: parsed and answered by admin_tok.c. */
static enum MHD_Result do_token(struct MHD_Connection *conn, struct admin_req *r,
				const char *method)
{
	json_t *body = NULL;
	unsigned status =
	    admin_tok_handle(r->srv->pool, method, r->raw_target, r->body, r->body_len, &body);
	if (status == MHD_HTTP_NO_CONTENT)
		return reply_buf(conn, r, status, NULL, 0, "application/json");
	if (!body)
		return MHD_NO; /* out of memory: drop the connection */
	return reply_json(conn, r, status, body);
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *conn, struct admin_req *r,
					  const char *allow)
{
	char msg[200];
	snprintf(msg, sizeof(msg), "allowed: %s", allow);
	json_t *body =
	    json_pack("{s:{s:s, s:s}}", "error", "code", "MethodNotAllowed", "message", msg);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return MHD_NO;
	return reply_buf_allow(conn, r, MHD_HTTP_METHOD_NOT_ALLOWED, text, strlen(text),
			       "application/json", allow);
}

/* Splits "/admin/v1/users/NAME/keys" style paths: returns the segment after
 * prefix up to the next '/' (copied into seg), and the rest in *rest. */
static bool path_segment(const char *path, const char *prefix, char *seg, size_t seglen,
			 const char **rest)
{
	size_t pl = strlen(prefix);
	if (strncmp(path, prefix, pl) != 0)
		return false;
	const char *s = path + pl;
	size_t n = strcspn(s, "/");
	if (n == 0 || n >= seglen)
		return false;
	memcpy(seg, s, n);
	seg[n] = '\0';
	*rest = s + n;
	return true;
}

static enum MHD_Result route(struct MHD_Connection *conn, struct admin_req *r, const char *url,
			     const char *method)
{
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	bool del = strcmp(method, "DELETE") == 0;
	char seg[S3_KEY_ID_MAX + 2];
	const char *rest;

	if (strcmp(url, "/metrics") == 0) {
		r->op = "Metrics";
		return get ? do_metrics(conn, r) : method_not_allowed(conn, r, "GET");
	}
	if (strcmp(url, "/health") == 0 || strcmp(url, "/healthz") == 0) {
		r->op = "Health";
		return get ? do_health(conn, r) : method_not_allowed(conn, r, "GET");
	}
	if (strncmp(url, "/admin/v1/", 10) != 0)
		return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NotFound",
				   "no such endpoint: try /metrics, /health or /admin/v1/");
	const char *vop, *vallow;
	/* Before the volume routes: .../volumes/NAME/upload-image is an image
	 * route. */
	if (admin_img_match(method, r->raw_target, &vop, &vallow)) {
		r->op = vop ? vop : "Unknown";
		if (!vallow)
			return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NotFound",
					   "no such endpoint");
		if (!vop)
			return method_not_allowed(conn, r, vallow);
		int a = authenticate(conn, r, method);
		return a >= 0 ? (enum MHD_Result)a : do_image(conn, r, method);
	}
	if (admin_vol_match(method, r->raw_target, &vop, &vallow)) {
		r->op = vop ? vop : "Unknown";
		if (!vallow)
			return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NotFound",
					   "no such endpoint");
		if (!vop)
			return method_not_allowed(conn, r, vallow);
		int a = authenticate(conn, r, method);
		return a >= 0 ? (enum MHD_Result)a : do_volume(conn, r, method);
	}
	if (admin_tok_match(method, r->raw_target, &vop, &vallow)) {
		r->op = vop ? vop : "Unknown";
		if (!vallow)
			return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NotFound",
					   "no such endpoint");
		if (!vop)
			return method_not_allowed(conn, r, vallow);
		int a = authenticate(conn, r, method);
		return a >= 0 ? (enum MHD_Result)a : do_token(conn, r, method);
	}

	/* Identify the operation first (for the metrics label), then
	 * authenticate, then act. */
	enum {
		OP_NONE,
		OP_ULIST,
		OP_UCREATE,
		OP_UDEL,
		OP_KLIST,
		OP_KCREATE,
		OP_KDEL,
		OP_PSTATS,
		OP_JGET,
		OP_JSTART
	} op = OP_NONE;
	const char *allow = NULL;
	char name[S3_KEY_ID_MAX + 2] = "";
	if (strcmp(url, "/admin/v1/users") == 0) {
		op = get ? OP_ULIST : post ? OP_UCREATE : OP_NONE;
		allow = "GET, POST";
	} else if (path_segment(url, "/admin/v1/users/", seg, sizeof(seg), &rest)) {
		snprintf(name, sizeof(name), "%s", seg);
		if (*rest == '\0') {
			op = del ? OP_UDEL : OP_NONE;
			allow = "DELETE";
		} else if (strcmp(rest, "/keys") == 0) {
			op = get ? OP_KLIST : post ? OP_KCREATE : OP_NONE;
			allow = "GET, POST";
		}
	} else if (strcmp(url, "/admin/v1/pool/stats") == 0) {
		op = get ? OP_PSTATS : OP_NONE;
		allow = "GET";
	} else if (strcmp(url, "/admin/v1/pool/jobs") == 0) {
		op = get ? OP_JGET : post ? OP_JSTART : OP_NONE;
		allow = "GET, POST";
	} else if (strcmp(url, "/admin/v1/keys") == 0) {
		op = get ? OP_KLIST : OP_NONE;
		allow = "GET";
	} else if (path_segment(url, "/admin/v1/keys/", seg, sizeof(seg), &rest) && !*rest) {
		snprintf(name, sizeof(name), "%s", seg);
		op = del ? OP_KDEL : OP_NONE;
		allow = "DELETE";
	}
	static const char *const op_names[] = {"Unknown",  "ListUsers", "CreateUser", "DeleteUser",
					       "ListKeys", "CreateKey", "DeleteKey",  "PoolStats",
					       "GetJob",   "StartJob"};
	r->op = op_names[op];
	if (!allow)
		return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NotFound", "no such endpoint");
	if (op == OP_NONE)
		return method_not_allowed(conn, r, allow);

	int a = authenticate(conn, r, method);
	if (a >= 0)
		return (enum MHD_Result)a;

	switch (op) {
	case OP_ULIST:
		return do_user_list(conn, r);
	case OP_UCREATE:
		return do_user_create(conn, r);
	case OP_UDEL:
		return do_user_delete(conn, r, name);
	case OP_KLIST:
		return do_key_list(conn, r, name[0] ? name : NULL);
	case OP_KCREATE:
		return do_key_create(conn, r, name);
	case OP_KDEL:
		return do_key_delete(conn, r, name);
	case OP_PSTATS:
		return do_pool_stats(conn, r);
	case OP_JGET:
		return do_job_get(conn, r);
	case OP_JSTART:
		return do_job_start(conn, r);
	default:
		break;
	}
	return reply_error(conn, r, MHD_HTTP_NOT_FOUND, "NotFound", "no such endpoint");
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	(void)cls;
	(void)version;
	struct admin_req *r = *con_cls;
	if (!r || !r->raw_target) {
		/* The URI callback could not allocate: answer without state. */
		static const char busy[] = "{\"error\":{\"code\":\"SlowDown\","
					   "\"message\":\"out of memory\"}}\n";
		struct MHD_Response *resp = MHD_create_response_from_buffer(
		    sizeof(busy) - 1, (void *)busy, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (!r->started) {
		r->started = true;
		return MHD_YES; /* headers seen; the body (if any) follows */
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		if (!r->too_big && r->body_len + n <= ADMIN_BODY_MAX) {
			char *nb = realloc(r->body, r->body_len + n + 1);
			if (nb) {
				memcpy(nb + r->body_len, upload_data, n);
				r->body = nb;
				r->body_len += n;
				r->body[r->body_len] = '\0';
			} else {
				r->too_big = true;
			}
		} else {
			r->too_big = true;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->too_big)
		return reply_error(conn, r, MHD_HTTP_CONTENT_TOO_LARGE, "EntityTooLarge",
				   "admin request bodies are limited to %d bytes", ADMIN_BODY_MAX);
	return route(conn, r, url, method);
}

/* ---- listener ---- */

int node_listen_socket(const char *listen_addr)
{
	char host[256], portstr[8];
	uint16_t port;
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int ret = -EINVAL;

	if (node_split_listen(listen_addr, host, sizeof(host), &port) != 0)
		return -EINVAL;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
		return -EINVAL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
			freeaddrinfo(res);
			return fd;
		}
		ret = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	return ret;
}

int admin_start(const struct admin_config *cfg, struct cs_pool *pool, struct admin_server **out,
		char *err, size_t errlen)
{
	int ret = 0, fd = -1;
	struct s3_key rk;
	struct admin_server *srv = calloc(1, sizeof(*srv));

	*out = NULL;
	if (!srv)
		return -ENOMEM;
	srv->pool = pool;
	srv->access_log = cfg->access_log;
	srv->bs = cfg->bs;
	snprintf(srv->nbd_host, sizeof(srv->nbd_host), "%s", cfg->nbd_host ? cfg->nbd_host : "");
	if (cfg->admin_token && cfg->admin_token[0]) {
		srv->admin_token = strdup(cfg->admin_token);
		if (!srv->admin_token) {
			ret = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	srv->nbd_port = cfg->nbd_port;
	srv->reg = cfg->reg;
	snprintf(srv->data_dir, sizeof(srv->data_dir), "%s", cfg->data_dir ? cfg->data_dir : ".");
	ret = node_jobs_create(pool, &srv->jobs);
	if (ret == 0)
		node_jobs_set_bs(srv->jobs, cfg->bs);
	if (ret == 0)
		ret = node_jobs_scrub_every(srv->jobs, srv->data_dir, cfg->scrub_interval);
	if (ret < 0) {
		snprintf(err, errlen, "cannot set up maintenance jobs: %s", cairn_strerror(ret));
		goto out;
	}
	snprintf(srv->root_key, sizeof(srv->root_key), "%s", cfg->root_key);
	ret = s3_key_lookup(pool, cfg->root_key, &rk);
	if (ret < 0) {
		snprintf(err, errlen, "the root key is not in the user table: %s",
			 cairn_strerror(ret));
		goto out;
	}
	snprintf(srv->root_user, sizeof(srv->root_user), "%s", rk.user);
	OPENSSL_cleanse(rk.secret, sizeof(rk.secret));

	fd = node_listen_socket(cfg->listen);
	if (fd < 0) {
		ret = fd;
		snprintf(err, errlen, "cannot listen on %s for the admin API: %s", cfg->listen,
			 ret == -EINVAL ? "not a usable HOST:PORT" : strerror(-ret));
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);

	srv->mhd = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
	    NULL, NULL, access_cb, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
	    MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, srv,
	    MHD_OPTION_NOTIFY_COMPLETED, completed_cb, srv, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)ADMIN_CONN_MAX, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_TIMEOUT_SEC,
	    MHD_OPTION_END);
	if (!srv->mhd) {
		ret = -EIO;
		snprintf(err, errlen, "cannot start the admin API server on %s", cfg->listen);
		goto out;
	}
	fd = -1; /* the daemon owns it now */
	log_info(TAG, "admin API listening on %s (port %u)", cfg->listen, srv->port);
	*out = srv;
	srv = NULL;
out:
	if (fd >= 0)
		close(fd);
	if (srv) {
		node_jobs_free(srv->jobs);
		free(srv->admin_token);
	}
	free(srv);
	return ret;
}

uint16_t admin_port(const struct admin_server *srv)
{
	return srv ? srv->port : 0;
}

void admin_set_stopping(struct admin_server *srv)
{
	if (srv)
		srv->stopping = true;
}

void admin_stop(struct admin_server *srv)
{
	if (!srv)
		return;
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd);
	/* After the listener: no request can start another job now. */
	node_jobs_free(srv->jobs);
	free(srv->admin_token);
	free(srv);
}
