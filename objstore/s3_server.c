/* objstore/s3_server.c - the S3 HTTP server: listener, routing, auth, replies.
 *
 * libmicrohttpd serves each connection on its own thread (capped, with an
 * idle timeout and a per-IP cap). A request goes: URI log callback (keeps
 * the raw target: MHD decodes '+' in queries, SigV4 needs the bytes as
 * sent) -> access handler, first call: split the target, find bucket and
 * key, authenticate, route, and either answer (no body, or an error before
 * the body is read: MHD then closes the connection instead of reading it)
 * or accept the body -> body calls: hash (SHA-256 when signed, MD5 always)
 * and hand bytes to the operation -> last call: check digests, finish the
 * operation -> completion callback: metrics, access log, free.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/fault.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pipe.h"
#include "objstore/s3_server_internal.h"
#include "objstore/s3_tls.h"
#include "objstore/s3_xml.h"

#define TAG "s3"

static struct MHD_Response *resp_oom;

static void conn_phase(struct s3_server *srv, struct MHD_Connection *conn,
		       bool in_request); /* static 503 for requests we cannot allocate */

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t s3_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t s3_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	if (cap < 4 * ((n + 2) / 3) + 1)
		return 0;
	return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

long s3_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	size_t pad = 0;
	int len;

	if (n == 0)
		return 0;
	if (n % 4 != 0 || cap < n / 4 * 3)
		return -1;
	if (in[n - 1] == '=')
		pad++;
	if (n >= 2 && in[n - 2] == '=')
		pad++;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0)
		return -1;
	return len - (long)pad;
}

/* ---- headers and replies ---- */

const char *s3_req_header(struct s3_req *r, const char *name)
{
	for (size_t i = 0; i < r->nhdrs; i++)
		if (strcasecmp(r->hdrs[i].name, name) == 0)
			return r->hdrs[i].value;
	return NULL;
}

void s3_reply_response(struct s3_req *r, int status, struct MHD_Response *resp)
{
	if (!resp) {
		/* No memory for even the reply: the connection closes. */
		r->status = 0;
		r->state = S3_ST_DONE;
		return;
	}
	MHD_add_response_header(resp, "x-amz-request-id", r->reqid);
	MHD_add_response_header(resp, "x-amz-id-2", r->id2);
	MHD_add_response_header(resp, "Server", "cairn");
	if (status == 416 && r->range_size[0]) {
		char cr[40];
		snprintf(cr, sizeof(cr), "bytes */%s", r->range_size);
		MHD_add_response_header(resp, "Content-Range", cr);
	}
	if (r->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (MHD_queue_response(r->conn, (unsigned)status, resp) == MHD_YES)
		r->status = status;
	else
		log_warn(TAG, "request %s: response not queued", r->reqid);
	MHD_destroy_response(resp);
	r->state = S3_ST_DONE;
}

void s3_reply_xml(struct s3_req *r, int status, char *body, size_t len)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);

	if (!resp) {
		free(body);
		s3_reply_response(r, 503, NULL);
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/xml");
	r->bytes_out = len;
	s3_reply_response(r, status, resp);
}

void s3_reply_empty(struct s3_req *r, int status)
{
	s3_reply_response(r, status,
			  MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

static char *req_resource(struct s3_req *r, char *buf, size_t cap)
{
	size_t n = r->tgt.path ? r->tgt.path_len : 0;

	if (n >= cap)
		n = cap - 1;
	memcpy(buf, r->tgt.path ? r->tgt.path : "", n);
	buf[n] = 0;
	return buf;
}

void s3_reply_error_extra(struct s3_req *r, enum s3_error e, const char *message,
			  const struct s3_err_extra *extra, size_t nextra)
{
	char resource[S3_KEY_MAX * 3 + 128];
	char *body = NULL;
	size_t len = 0;
	int status = s3_err_status(e);

	if (r->state == S3_ST_NEW &&
	    (r->chunked || r->streaming || (r->has_cl && r->content_length > 0)))
		r->close = true; /* the body stays unread */
	if (status == 304 || (r->method && strcmp(r->method, "HEAD") == 0)) {
		/* No body: HEAD answers and 304 carry only the status. */
		s3_reply_empty(r, status);
		return;
	}
	if (s3_err_xml(e, message, req_resource(r, resource, sizeof(resource)), r->reqid, extra,
		       nextra, &body, &len) < 0) {
		s3_reply_response(r, 503, NULL);
		return;
	}
	s3_reply_xml(r, status, body, len);
}

void s3_reply_error(struct s3_req *r, enum s3_error e, const char *message)
{
	s3_reply_error_extra(r, e, message, NULL, 0);
}

void s3_reply_code(struct s3_req *r, int err, enum s3_error notfound)
{
	enum s3_error e;

	if (err == CAIRN_ENOTFOUND || err == -ENOENT)
		e = notfound;
	else
		e = s3_err_from_cairn(err);
	if (e == S3E_INTERNAL_ERROR)
		log_err(TAG, "request %s (%s): %s", r->reqid, r->op ? r->op : "-",
			cairn_strerror(err));
	s3_reply_error(r, e, NULL);
}

/* ---- per-request allocation and teardown ---- */

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct s3_server *srv = cls;
	struct s3_req *r;
	uint64_t seq;
	uint8_t rnd[24];

	if (FAULT("s3.req_alloc"))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->raw_target = strdup(uri ? uri : "");
	if (!r->raw_target) {
		free(r);
		return NULL;
	}
	r->srv = srv;
	r->conn = conn;
	r->t0_us = now_us();
	seq = atomic_fetch_add(&srv->seq, 1);
	snprintf(r->reqid, sizeof(r->reqid), "%08X%08X", srv->boot, (uint32_t)seq);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	s3_b64_encode(rnd, sizeof(rnd), r->id2, sizeof(r->id2));
	return r;
}

static void pipe_stop(struct s3_req *r);
static void pipe_start(struct s3_req *r);

static void req_free(struct s3_req *r)
{
	if (!r)
		return;
	pipe_stop(r); /* before op_free: the pipeline thread uses op_state */
	if (r->op_free)
		r->op_free(r->op_state);
	EVP_MD_CTX_free(r->sha);
	EVP_MD_CTX_free(r->md5);
	s3_cksum_ctx_free(&r->ck);
	if (r->dec) {
		s3_chunked_free(r->dec);
		free(r->dec);
	}
	explicit_bzero(r->sigkey, sizeof(r->sigkey));
	free(r->body);
	s3_query_free(&r->q);
	free(r->addrbuf);
	free(r->hdrs);
	explicit_bzero(&r->key, sizeof(r->key));
	free(r->raw_target);
	free(r);
}

static void access_log(struct s3_req *r, enum MHD_RequestTerminationCode toe)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char addr[INET6_ADDRSTRLEN + 8] = "-";
	uint64_t ms = (now_us() - r->t0_us) / 1000u;
	int plen = r->tgt.path ? (int)(r->tgt.path_len > 2048 ? 2048 : r->tgt.path_len) : 0;

	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr,
				  sizeof(addr));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr,
				  sizeof(addr));
	}
	/* The path only: a presigned query string carries a signature. A
	 * virtual-host request names its bucket first, as a path-style one would. */
	bool vh = r->addr.virtual_host && r->addr.bucket[0];
	log_info("s3access", "%s %s %s %s%s%.*s %d %llu %llu %llums %s %s%s", addr,
		 r->authed ? r->key.user : "-", r->method ? r->method : "-", vh ? "/" : "",
		 vh ? r->addr.bucket : "", plen, r->tgt.path ? r->tgt.path : "-", r->status,
		 (unsigned long long)r->body_bytes, (unsigned long long)r->bytes_out,
		 (unsigned long long)ms, r->reqid, r->op ? r->op : "-",
		 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
}

static void done_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct s3_server *srv = cls;
	struct s3_req *r = *con_cls;

	if (!r)
		return;
	r->conn = conn;
	if (r->status)
		metrics_request("s3", r->op ? r->op : "Unknown", r->status, r->body_bytes,
				r->bytes_out, now_us() - r->t0_us);
	if (srv->access_log)
		access_log(r, toe);
	conn_phase(srv, conn, false);
	req_free(r);
	*con_cls = NULL;
}

/* ---- connections: the slow-head reaper ---- */

static struct s3_conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static void conn_phase(struct s3_server *srv, struct MHD_Connection *conn, bool in_request)
{
	struct s3_conn *c = conn_of(conn);

	if (!c)
		return;
	pthread_mutex_lock(&srv->conns_lock);
	c->in_request = in_request;
	c->phase_start_us = now_us();
	pthread_mutex_unlock(&srv->conns_lock);
}

static void conn_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
		    enum MHD_ConnectionNotificationCode code)
{
	struct s3_server *srv = cls;
	struct s3_conn *c = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c = ci ? calloc(1, sizeof(*c)) : NULL;
		if (!c)
			return; /* untracked: only the idle timeout applies */
		c->fd = ci->connect_fd;
		c->phase_start_us = now_us();
		pthread_mutex_lock(&srv->conns_lock);
		c->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = c;
		srv->conns = c;
		pthread_mutex_unlock(&srv->conns_lock);
		*socket_context = c;
		return;
	}
	if (!c)
		return;
	/* CLOSED comes before libmicrohttpd closes the socket, so the reaper
	 * never touches a descriptor that could have been reused. */
	pthread_mutex_lock(&srv->conns_lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&srv->conns_lock);
	free(c);
	*socket_context = NULL;
}

static void *reaper_main(void *arg)
{
	struct s3_server *srv = arg;

	pthread_mutex_lock(&srv->conns_lock);
	while (!srv->stopping) {
		struct timespec ts;
		uint64_t now = now_us();

		/* O(connections) once a second. */
		for (struct s3_conn *c = srv->conns; c; c = c->next) {
			if (c->in_request || c->reaped ||
			    now - c->phase_start_us < srv->head_deadline_us)
				continue;
			/* The connection's own thread sees EOF and closes it. */
			shutdown(c->fd, SHUT_RDWR);
			c->reaped = true;
			log_info(TAG,
				 "closed a connection that sent no complete request head in %llus",
				 (unsigned long long)(srv->head_deadline_us / 1000000u));
		}
		if (srv->mpu_expiry_us && now >= srv->mpu_next_sweep_us) {
			/* abandoned multipart uploads: checked a tenth of the
			 * expiry apart (at most hourly), off the lock */
			uint64_t period = srv->mpu_expiry_us / 10;
			if (period > 3600ull * 1000000u)
				period = 3600ull * 1000000u;
			if (period < 1000000u)
				period = 1000000u;
			srv->mpu_next_sweep_us = now + period;
			pthread_mutex_unlock(&srv->conns_lock);
			long n = s3_multipart_expire(srv->pool, srv->mpu_expiry_us * 1000u);
			if (n < 0)
				log_warn(TAG, "expiring multipart uploads failed: %s",
					 cairn_strerror((int)n));
			pthread_mutex_lock(&srv->conns_lock);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&srv->reaper_cond, &srv->conns_lock, &ts);
	}
	pthread_mutex_unlock(&srv->conns_lock);
	return NULL;
}

/* ---- routing ---- */

static void op_not_implemented(struct s3_req *r)
{
	s3_reply_error(r, S3E_NOT_IMPLEMENTED, NULL);
}

static void op_method_not_allowed(struct s3_req *r)
{
	s3_reply_error(r, S3E_METHOD_NOT_ALLOWED, NULL);
}

/* Subresources of the later issues (multipart, versioning, ACLs...). */
static const char *const later_subresources[] = {
    "acl",
    "policy",
    "cors",
    "lifecycle",
    "tagging",
    "versioning",
    "website",
    "logging",
    "notification",
    "replication",
    "encryption",
    "object-lock",
    "retention",
    "legal-hold",
    "versions",
    "accelerate",
    "requestPayment",
    "inventory",
    "analytics",
    "metrics",
    "intelligent-tiering",
    "ownershipControls",
    "publicAccessBlock",
    "restore",
    "select",
    "torrent",
    "attributes",
    "policyStatus",
    NULL,
};

static const char *later_subresource(struct s3_req *r)
{
	for (int i = 0; later_subresources[i]; i++)
		if (s3_query_has(&r->q, later_subresources[i]))
			return later_subresources[i];
	return NULL;
}

static s3_handler_fn route(struct s3_req *r)
{
	const char *m = r->method;
	const char *sub = later_subresource(r);
	bool bucket_level = r->addr.key[0] == 0;

	if (r->addr.bucket[0] == 0) {
		r->op = "ListBuckets";
		if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
			return s3_op_list_buckets;
		return op_method_not_allowed;
	}
	if (bucket_level) {
		if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
			if (strcmp(m, "HEAD") == 0) {
				r->op = "HeadBucket";
				return s3_op_head_bucket;
			}
			if (s3_query_has(&r->q, "location")) {
				r->op = "GetBucketLocation";
				return s3_op_get_bucket_location;
			}
			if (s3_query_has(&r->q, "versioning")) {
				r->op = "GetBucketVersioning";
				return s3_op_get_bucket_versioning;
			}
			if (s3_query_has(&r->q, "uploads")) {
				r->op = "ListMultipartUploads";
				return s3_op_list_uploads;
			}
			if (sub) {
				r->op = "GetBucketSubresource";
				return op_not_implemented;
			}
			{
				const char *lt = s3_query_get(&r->q, "list-type");
				r->op =
				    lt && strcmp(lt, "2") == 0 ? "ListObjectsV2" : "ListObjects";
			}
			return s3_op_list_objects;
		}
		if (strcmp(m, "PUT") == 0) {
			r->op = "CreateBucket";
			if (sub) {
				r->op = "PutBucketSubresource";
				return op_not_implemented;
			}
			return s3_op_create_bucket_start;
		}
		if (strcmp(m, "DELETE") == 0) {
			r->op = "DeleteBucket";
			if (sub) {
				r->op = "DeleteBucketSubresource";
				return op_not_implemented;
			}
			return s3_op_delete_bucket;
		}
		if (strcmp(m, "POST") == 0) {
			if (s3_query_has(&r->q, "delete")) {
				r->op = "DeleteObjects";
				return s3_op_delete_objects_start;
			}
			r->op = "PostObject";
			return op_not_implemented;
		}
		r->op = "Unknown";
		return op_method_not_allowed;
	}
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
		r->op = strcmp(m, "HEAD") == 0 ? "HeadObject" : "GetObject";
		if (s3_query_has(&r->q, "uploadId") && strcmp(m, "GET") == 0) {
			r->op = "ListParts";
			return s3_op_list_parts;
		}
		if (sub && strcmp(sub, "attributes") == 0 && strcmp(m, "GET") == 0) {
			r->op = "GetObjectAttributes";
			return s3_op_get_object_attributes;
		}
		if (sub && strcmp(sub, "tagging") == 0 && strcmp(m, "GET") == 0) {
			r->op = "GetObjectTagging";
			return s3_op_get_object_tagging;
		}
		if (sub) {
			r->op = "GetObjectSubresource";
			return op_not_implemented;
		}
		return s3_op_get_object;
	}
	if (strcmp(m, "PUT") == 0) {
		r->op = "PutObject";
		if (s3_query_has(&r->q, "uploadId") || s3_query_has(&r->q, "partNumber")) {
			if (s3_req_header(r, "x-amz-copy-source")) {
				r->op = "UploadPartCopy";
				return s3_op_upload_part_copy;
			}
			r->op = "UploadPart";
			return s3_op_upload_part_start;
		}
		if (s3_req_header(r, "x-amz-copy-source") && !sub) {
			r->op = "CopyObject";
			return s3_op_copy_object;
		}
		if (sub) {
			r->op = "PutObjectSubresource";
			return op_not_implemented;
		}
		return s3_op_put_object_start;
	}
	if (strcmp(m, "DELETE") == 0) {
		r->op = "DeleteObject";
		if (s3_query_has(&r->q, "uploadId")) {
			r->op = "AbortMultipartUpload";
			return s3_op_abort_multipart;
		}
		if (sub) {
			r->op = "DeleteObjectSubresource";
			return op_not_implemented;
		}
		return s3_op_delete_object;
	}
	if (strcmp(m, "POST") == 0) {
		if (s3_query_has(&r->q, "uploads")) {
			r->op = "CreateMultipartUpload";
			return s3_op_create_multipart;
		}
		if (s3_query_has(&r->q, "uploadId")) {
			r->op = "CompleteMultipartUpload";
			return s3_op_complete_multipart_start;
		}
		r->op = "PostObject";
		return op_not_implemented;
	}
	r->op = "Unknown";
	return op_method_not_allowed;
}

/* ---- authentication ---- */

/* Authenticates the request; replies and returns non-zero on failure. */
static int authenticate(struct s3_req *r)
{
	struct sigv4_request sr = {
	    .method = r->method,
	    .target = r->raw_target,
	    .headers = r->hdrs,
	    .nheaders = r->nhdrs,
	};
	struct s3_user user;
	int rc = sigv4_parse(&sr, &r->auth);

	if (rc == 1) {
		s3_reply_error(r, S3E_ACCESS_DENIED, "Anonymous access is not allowed");
		return 1;
	}
	if (rc == CAIRN_EDENIED) {
		s3_reply_error(r, S3E_ACCESS_DENIED,
			       "AWS authentication requires a valid Date or x-amz-date header");
		return 1;
	}
	if (rc < 0) {
		bool presigned = s3_query_has(&r->q, "X-Amz-Signature") ||
				 s3_query_has(&r->q, "X-Amz-Credential") ||
				 s3_query_has(&r->q, "X-Amz-Algorithm");
		s3_reply_error(r, presigned ? S3E_AUTH_QUERY_ERROR : S3E_AUTH_HEADER_MALFORMED,
			       NULL);
		return 1;
	}
	if (strcmp(r->auth.service, "s3") != 0) {
		s3_reply_error(r,
			       r->auth.presigned ? S3E_AUTH_QUERY_ERROR : S3E_AUTH_HEADER_MALFORMED,
			       "The credential scope's service must be 's3'");
		return 1;
	}
	if (strcmp(r->auth.region, r->srv->region) != 0) {
		/* As S3: the scope must name this server's region. */
		char msg[200];
		struct s3_err_extra ex = {"Region", r->srv->region};
		snprintf(
		    msg, sizeof(msg),
		    "The authorization %s is malformed; the region '%s' is wrong; expecting '%s'",
		    r->auth.presigned ? "query" : "header", r->auth.region, r->srv->region);
		s3_reply_error_extra(
		    r, r->auth.presigned ? S3E_AUTH_QUERY_ERROR : S3E_AUTH_HEADER_MALFORMED, msg,
		    &ex, 1);
		return 1;
	}
	rc = sigv4_check_time(&r->auth, time(NULL));
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_ACCESS_DENIED);
		return 1;
	}
	rc = s3_key_lookup(r->srv->pool, r->auth.access_key, &r->key);
	if (rc == CAIRN_ENOTFOUND) {
		s3_reply_error(r, S3E_INVALID_ACCESS_KEY_ID, NULL);
		return 1;
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return 1;
	}
	/* A signed aws-chunked body needs the signing key for its chunk
	 * signatures: keep that (one day, one scope), never the secret. */
	rc = sigv4_verify_key(&sr, &r->auth, r->key.secret,
			      r->auth.payload == SIGV4_PAYLOAD_STREAMING ? r->sigkey : NULL);
	explicit_bzero(r->key.secret, sizeof(r->key.secret));
	if (rc == CAIRN_EAUTH) {
		/* As S3 does, show the canonical request we computed: it
		 * holds no secret and is what a client needs to find out why
		 * its signer disagrees. */
		char *creq = malloc(16384);
		long n = creq ? sigv4_canonical_request(&sr, &r->auth, creq, 16384) : -1;
		struct s3_err_extra ex[2] = {{"AWSAccessKeyId", r->auth.access_key},
					     {"CanonicalRequest", n >= 0 ? creq : ""}};
		s3_reply_error_extra(r, S3E_SIGNATURE_DOES_NOT_MATCH, NULL, ex, n >= 0 ? 2 : 1);
		free(creq);
		return 1;
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return 1;
	}
	rc = s3_user_get(r->srv->pool, r->key.user, &user);
	if (rc < 0) {
		/* A key whose user is gone: treat as unknown. */
		s3_reply_error(r, S3E_INVALID_ACCESS_KEY_ID, NULL);
		return 1;
	}
	r->caller_root = user.root;
	r->authed = true;
	return 0;
}

/* ---- the access handler ---- */

static enum MHD_Result hdr_iter(void *cls, enum MHD_ValueKind kind, const char *key,
				const char *value)
{
	struct s3_req *r = cls;

	if (r->nhdrs >= S3_MAX_HEADERS)
		return MHD_NO;
	r->hdrs[r->nhdrs].name = key;
	r->hdrs[r->nhdrs].value = value ? value : "";
	r->nhdrs++;
	return MHD_YES;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static bool header_has_token(const char *v, const char *token)
{
	size_t n = strlen(token);

	for (const char *p = v; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (strncasecmp(p, token, n) == 0 &&
		    (p[n] == 0 || p[n] == ',' || p[n] == ' ' || p[n] == ';'))
			return true;
		p = strchr(p, ',');
	}
	return false;
}

/* ---- aws-chunked bodies and flexible checksums ---- */

/* A STREAMING-* x-amz-content-sha256: from here on content_length is the
 * decoded length (what the operation stores, what the limits and the
 * pipeline decision read). Replies and returns non-zero on failure. */
static int streaming_setup(struct s3_req *r)
{
	const char *dl = s3_req_header(r, "x-amz-decoded-content-length");
	enum s3_chunked_mode mode = s3_chunked_mode_parse(r->auth.payload_raw);

	if (mode == S3_CHUNKED_NONE) {
		s3_reply_error(r, S3E_NOT_IMPLEMENTED,
			       "This x-amz-content-sha256 streaming value is not supported");
		return 1;
	}
	if (r->auth.presigned) {
		s3_reply_error(r, S3E_INVALID_REQUEST,
			       "aws-chunked bodies cannot be sent with a presigned URL");
		return 1;
	}
	r->streaming = true; /* from now on an early answer closes the connection */
	if (!dl) {
		s3_reply_error(r, S3E_MISSING_CONTENT_LENGTH,
			       "x-amz-decoded-content-length is required with aws-chunked bodies");
		return 1;
	}
	if (!parse_u64(dl, &r->content_length)) {
		s3_reply_error(r, S3E_INVALID_ARGUMENT, "Invalid x-amz-decoded-content-length");
		return 1;
	}
	r->has_cl = true;
	return 0;
}

static const enum s3_cksum_algo ck_algos[] = {S3_CK_CRC32, S3_CK_CRC32C, S3_CK_CRC64NVME,
					      S3_CK_SHA1, S3_CK_SHA256};
#define CK_NALGOS (sizeof(ck_algos) / sizeof(ck_algos[0]))

bool s3_req_has_body_digest(struct s3_req *r)
{
	if (r->has_content_md5 || s3_req_header(r, "x-amz-trailer"))
		return true;
	for (size_t i = 0; i < CK_NALGOS; i++)
		if (s3_req_header(r, s3_cksum_header(ck_algos[i])) ||
		    (r->auth.presigned && s3_query_get(&r->q, s3_cksum_header(ck_algos[i]))))
			return true;
	return false;
}

/* Reads the checksum the client chose (x-amz-checksum-* header, the same
 * name in a presigned query, or x-amz-trailer), checks it agrees with
 * x-amz-sdk-checksum-algorithm, and sets up the decoder and the checksum
 * computation. Runs once the operation has accepted a body. Replies and
 * returns non-zero on failure. */
static int body_digests_setup(struct s3_req *r)
{
	const char *trailer = s3_req_header(r, "x-amz-trailer");
	const char *sdk = s3_req_header(r, "x-amz-sdk-checksum-algorithm");
	enum s3_cksum_algo a = S3_CK_NONE, ta = S3_CK_NONE;
	const char *msg = NULL;
	char m[160];
	int rc;

	/* CompleteMultipartUpload's x-amz-checksum-* name the object's
	 * checksum, not its XML body's */
	for (size_t i = 0; i < CK_NALGOS && !r->cksum_headers_are_object; i++) {
		const char *h = s3_cksum_header(ck_algos[i]);
		const char *v = s3_req_header(r, h);
		bool q = false;
		if (!v && r->auth.presigned && (v = s3_query_get(&r->q, h)))
			q = true;
		if (!v)
			continue;
		if (a != S3_CK_NONE) {
			msg = "Expecting a single x-amz-checksum- header. Multiple checksum Types "
			      "are not allowed.";
			goto bad;
		}
		a = ck_algos[i];
		r->ck_presigned = q;
		if (s3_cksum_from_b64(a, v, strlen(v), &r->ck_sent) < 0) {
			snprintf(m, sizeof(m), "Value for %s header is invalid.", h);
			msg = m;
			goto bad;
		}
	}
	if (trailer) {
		size_t n = strlen("x-amz-checksum-");
		while (*trailer == ' ')
			trailer++;
		if (strncasecmp(trailer, "x-amz-checksum-", n) == 0)
			ta = s3_cksum_algo_parse(trailer + n);
		if (ta == S3_CK_NONE) {
			msg = "The value specified in the x-amz-trailer header is not supported";
			goto bad;
		}
		if (!r->streaming ||
		    s3_chunked_mode_parse(r->auth.payload_raw) == S3_CHUNKED_SIGNED) {
			msg = "x-amz-trailer needs a STREAMING-*-TRAILER x-amz-content-sha256";
			goto bad;
		}
		if (a != S3_CK_NONE) {
			msg = "Expecting a single x-amz-checksum- header. Multiple checksum Types "
			      "are not allowed.";
			goto bad;
		}
		a = ta;
		r->ck_trailer = true;
	}
	if (sdk) {
		enum s3_cksum_algo sa = s3_cksum_algo_parse(sdk);
		if (sa == S3_CK_NONE) {
			msg = "Checksum algorithm provided is unsupported. Please try again with "
			      "any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]";
			goto bad;
		}
		if (a == S3_CK_NONE) {
			msg = "x-amz-sdk-checksum-algorithm specified, but no corresponding "
			      "x-amz-checksum-* or x-amz-trailer headers were found.";
			goto bad;
		}
		if (sa != a) {
			msg = "Value for x-amz-sdk-checksum-algorithm header is invalid.";
			goto bad;
		}
	}
	r->ck_algo = a;
	if (r->streaming) {
		enum s3_chunked_mode mode = s3_chunked_mode_parse(r->auth.payload_raw);
		r->dec = calloc(1, sizeof(*r->dec));
		if (!r->dec)
			goto oom;
		rc = s3_chunked_init(r->dec, mode, r->content_length, trailer,
				     mode == S3_CHUNKED_UNSIGNED_TRAILER ? NULL : r->sigkey,
				     mode == S3_CHUNKED_UNSIGNED_TRAILER ? NULL : &r->auth);
		if (rc == -ENOMEM)
			goto oom;
		if (rc < 0) {
			msg = r->dec->msg;
			goto bad;
		}
	}
	a = a != S3_CK_NONE ? a : r->cksum_default;
	if (a != S3_CK_NONE) {
		if (s3_cksum_init(&r->ck, a) < 0)
			goto oom;
		r->ck_on = true;
	}
	return 0;
bad:
	r->state = S3_ST_NEW; /* the body stays unread: the reply closes */
	s3_reply_error(r, S3E_INVALID_REQUEST, msg);
	return 1;
oom:
	r->state = S3_ST_NEW;
	s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
	return 1;
}

/* The decoder's failure as S3 answers it. */
static void chunked_reply(struct s3_req *r)
{
	enum s3_error e;

	switch (r->dec->err) {
	case S3_CHUNKED_ESIG:
		e = S3E_SIGNATURE_DOES_NOT_MATCH;
		break;
	case S3_CHUNKED_ESIZE:
	case S3_CHUNKED_ESHORT:
		e = S3E_INCOMPLETE_BODY;
		break;
	case S3_CHUNKED_ENOMEM:
		e = S3E_SLOW_DOWN;
		break;
	default:
		e = S3E_INVALID_REQUEST;
		break;
	}
	log_info(TAG, "request %s (%s): aws-chunked body refused: %s", r->reqid, r->op,
		 r->dec->msg ? r->dec->msg : "-");
	s3_reply_error(r, e, r->dec->msg);
}

/* Finishes the body checksum into r->body_cksum and compares it with the
 * client's value. Replies and returns non-zero on a mismatch. */
static int cksum_verify(struct s3_req *r)
{
	struct s3_cksum sent, empty;
	struct s3_cksum_ctx c;
	const char *name = s3_cksum_name(r->ck_algo);
	char m[400];

	if (!r->ck_on)
		return 0;
	r->ck_on = false;
	if (s3_cksum_final(&r->ck, &r->body_cksum) < 0) {
		s3_reply_error(r, S3E_INTERNAL_ERROR, NULL);
		return 1;
	}
	if (r->ck_trailer) {
		const char *v = r->dec ? s3_chunked_trailer(r->dec, NULL) : NULL;
		if (!v || s3_cksum_from_b64(r->ck_algo, v, strlen(v), &sent) < 0) {
			snprintf(m, sizeof(m), "Value for %s trailing header is invalid.",
				 s3_cksum_header(r->ck_algo));
			s3_reply_error(r, S3E_INVALID_REQUEST, m);
			return 1;
		}
	} else if (r->ck_sent.algo != S3_CK_NONE) {
		sent = r->ck_sent;
	} else {
		return 0; /* the default checksum: nothing to compare with */
	}
	if (s3_cksum_equal(&sent, &r->body_cksum))
		return 0;
	if (r->ck_presigned && r->body_bytes > 0 && s3_cksum_init(&c, r->ck_algo) == 0 &&
	    s3_cksum_final(&c, &empty) == 0 && s3_cksum_equal(&sent, &empty)) {
		/* Current SDKs presign the checksum of an empty body by
		 * default; say so rather than leave a bare mismatch. */
		snprintf(m, sizeof(m),
			 "The presigned URL carries %s=%s, the checksum of an EMPTY body, but "
			 "the request sent %llu bytes. Presign without a checksum (e.g. "
			 "request_checksum_calculation=when_required) or with the body's own "
			 "checksum.",
			 s3_cksum_header(r->ck_algo),
			 s3_query_get(&r->q, s3_cksum_header(r->ck_algo)),
			 (unsigned long long)r->body_bytes);
		s3_reply_error(r, S3E_BAD_DIGEST, m);
		return 1;
	}
	snprintf(m, sizeof(m), "The %s you specified did not match the calculated checksum.",
		 name ? name : "checksum");
	s3_reply_error(r, S3E_BAD_DIGEST, m);
	return 1;
}

static void request_start(struct s3_req *r)
{
	const char *host, *cl, *te, *md5;
	s3_handler_fn fn;
	size_t cap;
	int rc;

	r->hdrs = calloc(S3_MAX_HEADERS, sizeof(*r->hdrs));
	if (!r->hdrs || FAULT("s3.req_start")) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	if (MHD_get_connection_values(r->conn, MHD_HEADER_KIND, hdr_iter, r) < 0 ||
	    r->nhdrs >= S3_MAX_HEADERS) {
		s3_reply_error(r, S3E_INVALID_REQUEST, "Too many request headers");
		return;
	}
	{
		size_t total = 0;
		for (size_t i = 0; i < r->nhdrs; i++)
			total += strlen(r->hdrs[i].name) + strlen(r->hdrs[i].value);
		if (total > S3_HEADERS_MAX_BYTES) {
			s3_reply_error(
			    r, S3E_INVALID_REQUEST,
			    "Your request header section exceeds the maximum allowed size.");
			return;
		}
	}
	cl = s3_req_header(r, "Content-Length");
	te = s3_req_header(r, "Transfer-Encoding");
	r->chunked = te && header_has_token(te, "chunked");
	if (cl) {
		if (!parse_u64(cl, &r->content_length)) {
			s3_reply_error(r, S3E_INVALID_ARGUMENT, "Invalid Content-Length");
			return;
		}
		r->has_cl = true;
	}
	if (s3_target_split(r->raw_target, &r->tgt) < 0) {
		r->tgt.path = NULL;
		s3_reply_error(r, S3E_INVALID_URI, NULL);
		return;
	}
	rc = s3_query_parse(r->tgt.query, r->tgt.query_len, &r->q);
	if (rc < 0) {
		s3_reply_error(r, rc == -ENOMEM ? S3E_SLOW_DOWN : S3E_INVALID_URI, NULL);
		return;
	}
	host = s3_req_header(r, "Host");
	cap = r->tgt.path_len + (host ? strlen(host) : 0) + 2;
	r->addrbuf = malloc(cap);
	if (!r->addrbuf) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	rc = s3_addr_parse(r->tgt.path, r->tgt.path_len, host, r->srv->domain, r->addrbuf, cap,
			   &r->addr);
	if (rc < 0) {
		s3_reply_error(r, S3E_INVALID_URI, NULL);
		return;
	}
	fn = route(r);
	if (authenticate(r))
		return;
	if (s3_sysbucket_gate(r))
		return;
	if (fn == op_not_implemented || fn == op_method_not_allowed) {
		fn(r);
		return;
	}
	if (r->addr.bucket[0]) {
		if (s3_bucket_name_check(r->addr.bucket) < 0) {
			s3_reply_error(r, S3E_INVALID_BUCKET_NAME, NULL);
			return;
		}
		r->part = cs_name_partition(r->srv->pool, r->addr.bucket, strlen(r->addr.bucket));
	}
	if (r->addr.key[0]) {
		rc = s3_key_check(r->addr.key, r->addr.key_len);
		if (rc < 0) {
			s3_reply_error(
			    r, rc == CAIRN_ETOOBIG ? S3E_KEY_TOO_LONG : S3E_INVALID_ARGUMENT,
			    rc == CAIRN_ETOOBIG ? NULL : "Object key is not valid UTF-8");
			return;
		}
	}
	md5 = s3_req_header(r, "Content-MD5");
	if (md5) {
		uint8_t tmp[24];
		if (s3_b64_decode(md5, strlen(md5), tmp, sizeof(tmp)) != 16) {
			s3_reply_error(r, S3E_INVALID_DIGEST, NULL);
			return;
		}
		memcpy(r->content_md5, tmp, 16);
		r->has_content_md5 = true;
	}
	if (r->auth.payload == SIGV4_PAYLOAD_STREAMING && streaming_setup(r))
		return;
	fn(r);
	if (r->state != S3_ST_BODY)
		return;
	if (body_digests_setup(r))
		return;
	/* The operation takes a body: set up the digests it is checked with. */
	r->md5 = EVP_MD_CTX_new();
	if (!r->md5 || EVP_DigestInit_ex(r->md5, EVP_md5(), NULL) != 1)
		goto oom;
	if (r->auth.payload == SIGV4_PAYLOAD_HASH) {
		r->sha = EVP_MD_CTX_new();
		if (!r->sha || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1)
			goto oom;
	}
	if (r->body_fn && r->has_cl && r->content_length >= S3_PIPE_MIN)
		pipe_start(r);
	return;
oom:
	r->state = S3_ST_NEW;
	s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
}

/* ---- the body pipeline ----
 *
 * The connection thread receives, updates the payload SHA-256 (if any) and
 * copies the body into S3_PIPE_SEGS segments (core/pipe.h); the pipeline
 * thread takes full segments in order, updates the MD5 and feeds body_fn.
 * Only the pipeline thread touches r->md5, r->body_bytes and op_state until
 * pipe_finish() or pipe_stop() has joined it. */
static int pipe_seg(void *arg, const uint8_t *data, size_t len)
{
	struct s3_req *r = arg;

	int rc = EVP_DigestUpdate(r->md5, data, len) == 1 ? 0 : -EIO;
	if (r->ck_on)
		s3_cksum_update(&r->ck, data, len);
	if (rc == 0) {
		r->body_bytes += len;
		rc = r->body_fn(r, data, len);
	}
	return rc;
}

/* Starts the pipeline for r's body; on any failure the body is simply
 * handled on the connection thread. */
static void pipe_start(struct s3_req *r)
{
	if (seg_pipe_new(S3_PIPE_SEG, S3_PIPE_SEGS, pipe_seg, r, &r->pipe) < 0)
		r->pipe = NULL;
}

/* Aborts (if still running) and frees the pipeline. */
static void pipe_stop(struct s3_req *r)
{
	seg_pipe_free(r->pipe);
	r->pipe = NULL;
}

/* Queues body bytes; returns the pipeline's error once it failed. */
static int pipe_push(struct s3_req *r, const char *data, size_t len)
{
	return seg_pipe_push(r->pipe, data, len);
}

/* Queues the last partial segment, waits for the pipeline to drain; returns
 * its error. */
static int pipe_finish(struct s3_req *r)
{
	return seg_pipe_finish(r->pipe);
}

/* Decoded body bytes (the whole body when not aws-chunked). */
static int body_consume(struct s3_req *r, const char *data, size_t len)
{
	if (r->pipe) {
		if (r->sha && EVP_DigestUpdate(r->sha, data, len) != 1)
			return -EIO;
		return pipe_push(r, data, len);
	}
	if (EVP_DigestUpdate(r->md5, data, len) != 1)
		return -EIO;
	if (r->sha && EVP_DigestUpdate(r->sha, data, len) != 1)
		return -EIO;
	if (r->ck_on)
		s3_cksum_update(&r->ck, data, len);
	r->body_bytes += len;
	if (r->body_fn)
		return r->body_fn(r, data, len);
	if (r->body_len + len > S3_SMALL_BODY_MAX)
		return -EMSGSIZE;
	{
		char *nb = realloc(r->body, r->body_len + len + 1);
		if (!nb)
			return -ENOMEM;
		r->body = nb;
	}
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	r->body[r->body_len] = 0;
	return 0;
}

static int body_sink(void *arg, const uint8_t *data, size_t len)
{
	return body_consume(arg, (const char *)data, len);
}

static int request_body(struct s3_req *r, const char *data, size_t len)
{
	int rc;

	if (!r->dec)
		return body_consume(r, data, len);
	if (r->body_err)
		return 0; /* draining: the error goes out at request_end */
	rc = s3_chunked_feed(r->dec, data, len, body_sink, r);
	if (rc < 0 && r->dec->err != S3_CHUNKED_OK) {
		/* A reply cannot be queued mid-body: drain, answer at the end.
		 * Nothing is stored (finish never runs). */
		r->body_err = true;
		return 0;
	}
	return rc;
}

static void request_end(struct s3_req *r)
{
	unsigned mdlen = 0;

	if (r->pipe) {
		int rc = pipe_finish(r);
		if (rc < 0) {
			log_info(TAG, "request %s (%s): body refused: %s", r->reqid, r->op,
				 cairn_strerror(rc));
			s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
			return;
		}
	}
	if (r->dec) {
		if (!r->body_err && s3_chunked_finish(r->dec) < 0)
			r->body_err = true;
		if (r->body_err) {
			chunked_reply(r);
			return;
		}
	}
	if (EVP_DigestFinal_ex(r->md5, r->body_md5, &mdlen) != 1) {
		s3_reply_error(r, S3E_INTERNAL_ERROR, NULL);
		return;
	}
	if (r->has_cl && r->body_bytes != r->content_length) {
		s3_reply_error(r, S3E_INCOMPLETE_BODY, NULL);
		return;
	}
	if (r->sha) {
		uint8_t sha[32];
		char hex[65];
		if (EVP_DigestFinal_ex(r->sha, sha, &mdlen) != 1) {
			s3_reply_error(r, S3E_INTERNAL_ERROR, NULL);
			return;
		}
		hash_hex(sha, 32, hex);
		if (strcasecmp(hex, r->auth.payload_hash) != 0) {
			struct s3_err_extra ex[2] = {
			    {"ClientComputedContentSHA256", r->auth.payload_hash},
			    {"S3ComputedContentSHA256", hex},
			};
			s3_reply_error_extra(r, S3E_CONTENT_SHA256_MISMATCH, NULL, ex, 2);
			return;
		}
	}
	if (r->has_content_md5 && memcmp(r->content_md5, r->body_md5, 16) != 0) {
		s3_reply_error(r, S3E_BAD_DIGEST, NULL);
		return;
	}
	if (cksum_verify(r))
		return;
	r->finish(r);
	if (r->state != S3_ST_DONE)
		s3_reply_error(r, S3E_INTERNAL_ERROR, NULL);
}

static bool request_has_body(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
	const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");

	return te || (cl && strcmp(cl, "0") != 0);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct s3_req *r = *con_cls;
	int rc;

	if (!r) {
		/* The URI callback could not allocate: answer 503 from the
		 * static response and close. */
		if (*upload_data_size) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		return MHD_queue_response(conn, 503, resp_oom);
	}
	r->conn = conn;
	switch (r->state) {
	case S3_ST_NEW:
		r->method = method;
		conn_phase(r->srv, conn, true);
		if (!request_has_body(conn)) {
			/* A reply queued on the first call makes libmicrohttpd
			 * close the connection (it cannot know no body
			 * follows); without a body, answer on the next call. */
			r->state = S3_ST_DEFER;
			return MHD_YES;
		}
		request_start(r);
		return r->status || r->state != S3_ST_DONE ? MHD_YES : MHD_NO;
	case S3_ST_DEFER:
		r->state = S3_ST_NEW;
		request_start(r);
		if (r->state == S3_ST_BODY)
			request_end(r); /* the (empty) body is complete already */
		return r->status ? MHD_YES : MHD_NO;
	case S3_ST_BODY:
		if (*upload_data_size) {
			rc = request_body(r, upload_data, *upload_data_size);
			*upload_data_size = 0;
			if (rc < 0) {
				/* A reply cannot be queued while the body is being
				 * read: close the connection; nothing was stored. */
				log_info(TAG, "request %s (%s): body refused: %s", r->reqid, r->op,
					 cairn_strerror(rc));
				r->state = S3_ST_DONE;
				return MHD_NO;
			}
			return MHD_YES;
		}
		request_end(r);
		return r->status ? MHD_YES : MHD_NO;
	case S3_ST_DONE:
		/* Answered early; MHD discards what is left of the body. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	return MHD_NO;
}

/* ---- start and stop ---- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	log_debug("mhd", "%s", buf);
}

static int listen_socket(const char *listen_addr, int *fd_out, uint16_t *port_out, bool *v6)
{
	char host[256];
	const char *port, *colon;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, one = 1, rc;

	if (!listen_addr)
		return CAIRN_EINVAL;
	if (listen_addr[0] == '[') {
		const char *end = strchr(listen_addr, ']');
		if (!end || end[1] != ':' || (size_t)(end - listen_addr - 1) >= sizeof(host))
			return CAIRN_EINVAL;
		memcpy(host, listen_addr + 1, (size_t)(end - listen_addr - 1));
		host[end - listen_addr - 1] = 0;
		port = end + 2;
	} else {
		colon = strrchr(listen_addr, ':');
		if (!colon || (size_t)(colon - listen_addr) >= sizeof(host))
			return CAIRN_EINVAL;
		memcpy(host, listen_addr, (size_t)(colon - listen_addr));
		host[colon - listen_addr] = 0;
		port = colon + 1;
	}
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc != 0) {
		log_err(TAG, "cannot resolve listen address %s: %s", listen_addr, gai_strerror(rc));
		return CAIRN_EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	*v6 = ai->ai_family == AF_INET6;
	if (*v6) {
		/* "::" serves IPv4 too (dual stack); a specific v6 address only v6. */
		int v6only =
		    !IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		rc = -errno;
		log_err(TAG, "cannot listen on %s: %s", listen_addr, strerror(-rc));
		goto out;
	}
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

/* Both of tls_cert/tls_key set: reads and checks them into srv->tls; one
 * alone is a configuration error; neither: plain HTTP. */
static int s3_server_tls_setup(struct s3_server *srv, const struct s3_config *cfg)
{
	bool cert = cfg->tls_cert && cfg->tls_cert[0], key = cfg->tls_key && cfg->tls_key[0];
	char err[512];
	int rc;

	if (!cert && !key)
		return 0;
	if (cert != key) {
		log_err(TAG, "TLS needs both a certificate and a key (only the %s is set)",
			cert ? "certificate" : "key");
		return CAIRN_EINVAL;
	}
	srv->tls = calloc(1, sizeof(*srv->tls));
	if (!srv->tls)
		return -ENOMEM;
	rc = s3_tls_load(cfg->tls_cert, cfg->tls_key, srv->tls, err, sizeof(err));
	if (rc < 0)
		log_err(TAG, "%s", err);
	return rc;
}

int s3_server_start(const struct s3_config *cfg, struct cs_pool *pool, struct s3_server **out)
{
	struct s3_server *srv = calloc(1, sizeof(*srv));
	unsigned maxc = cfg->max_connections ? cfg->max_connections : 1024;
	unsigned per_ip = cfg->max_per_ip ? cfg->max_per_ip : (maxc / 2 ? maxc / 2 : 1);
	unsigned timeout = cfg->timeout_sec ? cfg->timeout_sec : 60;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_ERROR_LOG | MHD_USE_ITC; /* ITC: MHD_quiesce_daemon */
	bool v6 = false;
	int rc;

	if (!srv)
		return -ENOMEM;
	srv->lfd = -1;
	pthread_mutex_init(&srv->conns_lock, NULL);
	pthread_cond_init(&srv->reaper_cond, NULL);
	srv->pool = pool;
	srv->access_log = cfg->access_log;
	srv->region = strdup(cfg->region && cfg->region[0] ? cfg->region : "us-east-1");
	srv->domain = cfg->domain && cfg->domain[0] ? strdup(cfg->domain) : NULL;
	if (!srv->region || (cfg->domain && cfg->domain[0] && !srv->domain)) {
		rc = -ENOMEM;
		goto fail;
	}
	srv->head_deadline_us = (uint64_t)(timeout + S3_HEADER_GRACE_SEC) * 1000000u;
	if (RAND_bytes((uint8_t *)&srv->boot, sizeof(srv->boot)) != 1)
		srv->boot = (uint32_t)time(NULL);
	if (!resp_oom) {
		static const char body[] =
		    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
		    "<Message>Out of memory</Message></Error>";
		resp_oom = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
							   MHD_RESPMEM_PERSISTENT);
		if (!resp_oom) {
			rc = -ENOMEM;
			goto fail;
		}
		MHD_add_response_header(resp_oom, MHD_HTTP_HEADER_CONTENT_TYPE, "application/xml");
		MHD_add_response_header(resp_oom, MHD_HTTP_HEADER_CONNECTION, "close");
		/* No request struct to number it: a fixed id. */
		MHD_add_response_header(resp_oom, "x-amz-request-id", "0000000000000000");
	}
	/* Any node serves the registry's images over S3: the bucket must be
	 * there before the first request (the root user is bootstrapped). */
	rc = s3_system_bucket_ensure(pool);
	if (rc < 0)
		goto fail;
	rc = s3_server_tls_setup(srv, cfg);
	if (rc < 0)
		goto fail;
	rc = listen_socket(cfg->listen, &srv->lfd, &srv->port, &v6);
	if (rc < 0)
		goto fail;
	if (v6)
		flags |= MHD_USE_IPv6;
	if (srv->tls)
		flags |= MHD_USE_TLS;
	/* The TLS options come last and are MHD_OPTION_END-ed out for plain
	 * HTTP: one call, one option list. The handshake runs on the
	 * connection's thread, inside the head deadline the reaper keeps. */
	srv->mhd = MHD_start_daemon(
	    flags, 0, NULL, NULL, access_cb, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
	    MHD_OPTION_LISTEN_SOCKET, srv->lfd, MHD_OPTION_CONNECTION_LIMIT, maxc,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_TIMEOUT, timeout,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)S3_CONN_MEMORY, MHD_OPTION_URI_LOG_CALLBACK,
	    uri_cb, srv, MHD_OPTION_NOTIFY_COMPLETED, done_cb, srv, MHD_OPTION_NOTIFY_CONNECTION,
	    conn_cb, srv, srv->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END,
	    srv->tls ? srv->tls->cert : NULL, MHD_OPTION_HTTPS_MEM_KEY,
	    srv->tls ? srv->tls->key : NULL, MHD_OPTION_HTTPS_PRIORITIES, S3_TLS_PRIORITIES,
	    MHD_OPTION_END);
	if (!srv->mhd) {
		log_err(TAG, "libmicrohttpd did not start on %s%s%s%s%s", cfg->listen,
			srv->tls ? " with TLS (GnuTLS refused the certificate " : "",
			srv->tls ? cfg->tls_cert : "", srv->tls ? " or key " : "",
			srv->tls ? cfg->tls_key : "");
		rc = -EIO;
		goto fail;
	}
	rc = -pthread_create(&srv->reaper, NULL, reaper_main, srv);
	if (rc < 0) {
		MHD_stop_daemon(srv->mhd);
		srv->lfd = -1; /* closed by MHD_stop_daemon */
		goto fail;
	}
	srv->reaper_started = true;
	if (cfg->multipart_expiry_sec) {
		srv->mpu_expiry_us = (uint64_t)cfg->multipart_expiry_sec * 1000000u;
		srv->mpu_next_sweep_us = now_us() + 1000000u; /* soon after start */
	}
	log_info(TAG, "S3 listening on %s (%s, port %u, %u connections, %u per IP, %us timeout)",
		 cfg->listen, srv->tls ? "https" : "http", srv->port, maxc, per_ip, timeout);
	*out = srv;
	return 0;
fail:
	if (srv->lfd >= 0)
		close(srv->lfd);
	s3_tls_pem_free(srv->tls);
	free(srv->tls);
	pthread_cond_destroy(&srv->reaper_cond);
	pthread_mutex_destroy(&srv->conns_lock);
	free(srv->region);
	free(srv->domain);
	free(srv);
	return rc;
}

bool s3_server_tls(const struct s3_server *srv)
{
	return srv && srv->tls;
}

uint16_t s3_server_port(const struct s3_server *srv)
{
	return srv ? srv->port : 0;
}

void s3_server_stop(struct s3_server *srv)
{
	if (!srv)
		return;
	if (srv->reaper_started) {
		pthread_mutex_lock(&srv->conns_lock);
		srv->stopping = true;
		pthread_cond_signal(&srv->reaper_cond);
		pthread_mutex_unlock(&srv->conns_lock);
		pthread_join(srv->reaper, NULL);
	}
	if (srv->mhd) {
		/* MHD_stop_daemon joins the connection threads: requests in
		 * flight finish (their commits complete) first. */
		MHD_socket fd = MHD_quiesce_daemon(srv->mhd);
		MHD_stop_daemon(srv->mhd);
		/* After a quiesce the listen socket is ours to close; without
		 * one, MHD_stop_daemon closed it. */
		srv->lfd = fd != MHD_INVALID_SOCKET ? fd : -1;
	}
	if (srv->lfd >= 0)
		close(srv->lfd);
	s3_tls_pem_free(srv->tls);
	free(srv->tls);
	pthread_cond_destroy(&srv->reaper_cond);
	pthread_mutex_destroy(&srv->conns_lock);
	free(srv->region);
	free(srv->domain);
	free(srv);
}
