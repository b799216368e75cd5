/* registry/img_server.c - the Glance v2 HTTP server (libmicrohttpd):
 * connections, authentication, request parsing, error bodies, streaming.
 *
 * A thread per connection (capped, idle timeout), as the S3 server. Every
 * route but "/" and "/versions" needs X-Auth-Token: a token from `cairn
 * token create USER` acts as USER, the configured admin token as root;
 * anything else is 401. Bodies of metadata routes are buffered (at most
 * REG_BODY_MAX); image data (PUT .../file, .../stage) streams into the
 * upload hooks as it arrives, and downloads stream from a cs_reader.
 *
 * Error bodies are webob's JSON form, {"message", "code": "404 Not Found",
 * "title"}, with two exceptions. glanceclient (User-Agent
 * python-glanceclient) cannot parse that flat form: its from_response()
 * calls .get("message") on every top-level value and fails on strings. Real
 * Glance never shows it the JSON form (webob answers "Accept: any type"
 * with HTML), so glanceclient gets webob's HTML body, from which it
 * extracts the message; so does a client that asks for text/html and not
 * for JSON.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "chunkstore/chunkstore.h"
#include "core/log.h"
#include "objstore/s3.h"
#include "registry/img_api.h"

#define TAG "glance"
#define REG_BODY_MAX (1u << 20)
#define REG_CONN_MEMORY (1u << 20) /* bigger upload pieces: fewer calls per MiB */
#define REG_READ_BLOCK (256u << 10)

struct reg_server {
	struct MHD_Daemon *mhd;
	struct registry *reg;
	char *admin_token;
	char *public_url;
	bool access_log;
	uint16_t port;
	int lfd;
};

struct conn_state {
	struct reg_server *srv;
	char *raw_target;
	struct timespec start;
	bool started;
	bool answered; /* a response was queued before the body */
	bool upload;
	bool too_big;
	bool authed;
	struct img_req rq;
	char *path_buf;
	unsigned status;
	uint64_t bytes_out;
	const char *user_agent;
};

/* ---- per-request state ---- */

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)conn;
	struct conn_state *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->srv = cls;
	cs->raw_target = strdup(uri ? uri : "/");
	clock_gettime(CLOCK_MONOTONIC, &cs->start);
	return cs;
}

static void free_state(struct conn_state *cs)
{
	if (cs->rq.up_started)
		img_upload_abort(&cs->rq); /* the client went away mid-upload */
	for (int i = 0; i < cs->rq.nq; i++) {
		free(cs->rq.q[i].k);
		free(cs->rq.q[i].v);
	}
	free(cs->path_buf);
	free(cs->rq.body);
	free(cs->raw_target);
	free(cs);
}

static void done_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	struct reg_server *srv = cls;
	struct conn_state *cs = *con_cls;
	if (!cs)
		return;
	if (srv->access_log && cs->status) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		double ms = (double)(now.tv_sec - cs->start.tv_sec) * 1e3 +
			    (double)(now.tv_nsec - cs->start.tv_nsec) / 1e6;
		const char *t = cs->raw_target ? cs->raw_target : "";
		log_info(TAG, "%s %.*s %u %" PRIu64 " %.3fms%s",
			 cs->rq.method ? cs->rq.method : "?", (int)strcspn(t, "?"), t, cs->status,
			 cs->bytes_out, ms,
			 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
	}
	free_state(cs);
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

/* ---- parsing ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes s[0..n) in place into out (plus_space: '+' is ' '). */
static char *decode(const char *s, size_t n, bool plus_space)
{
	char *o = malloc(n + 1);
	size_t j = 0;
	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			o[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else if (s[i] == '+' && plus_space) {
			o[j++] = ' ';
		} else {
			o[j++] = s[i];
		}
	}
	o[j] = '\0';
	return o;
}

int img_parse_target(const char *t, char **path_buf, struct img_req *rq)
{
	/* %00 would decode to a NUL that silently cuts a segment or a value
	 * short ("/v2/images/ID%00x" naming ID): malformed instead. */
	if (strstr(t, "%00"))
		return CAIRN_EINVAL;
	size_t plen = strcspn(t, "?");
	char *path = malloc(plen + 1);
	if (!path)
		return -ENOMEM;
	memcpy(path, t, plen);
	path[plen] = '\0';
	*path_buf = path;
	/* segments: split the raw path, then decode each (a %2F stays inside) */
	char *save = NULL;
	for (char *seg = strtok_r(path, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
		if (rq->nsegs >= IMG_MAX_SEGS)
			return CAIRN_EINVAL;
		char *d = decode(seg, strlen(seg), false);
		if (!d)
			return -ENOMEM;
		/* decoded in place: it is never longer */
		strcpy(seg, d);
		free(d);
		rq->segs[rq->nsegs++] = seg;
	}
	if (t[plen] != '?')
		return 0;
	const char *q = t + plen + 1;
	while (*q) {
		size_t n = strcspn(q, "&");
		if (n) {
			if (rq->nq >= IMG_MAX_QPARAMS)
				return CAIRN_EINVAL;
			const char *eq = memchr(q, '=', n);
			size_t kl = eq ? (size_t)(eq - q) : n;
			char *k = decode(q, kl, true);
			char *v = eq ? decode(eq + 1, n - kl - 1, true) : strdup("");
			if (!k || !v) {
				free(k);
				free(v);
				return -ENOMEM;
			}
			rq->q[rq->nq].k = k;
			rq->q[rq->nq].v = v;
			rq->nq++;
		}
		q += n;
		if (*q == '&')
			q++;
	}
	return 0;
}

static int parse_target(struct conn_state *cs)
{
	return img_parse_target(cs->raw_target, &cs->path_buf, &cs->rq);
}

/* ---- responses ---- */

static bool wants_json(const char *accept, const char *ua)
{
	if (ua && strncmp(ua, "python-glanceclient", 19) == 0)
		return false;
	return !accept || strstr(accept, "application/json") || !strstr(accept, "text/html");
}

static char *html_escape(const char *s)
{
	size_t n = strlen(s) * 6 + 1;
	char *o = malloc(n), *p = o;
	if (!o)
		return NULL;
	for (; *s; s++) {
		switch (*s) {
		case '<':
			p += sprintf(p, "&lt;");
			break;
		case '>':
			p += sprintf(p, "&gt;");
			break;
		case '&':
			p += sprintf(p, "&amp;");
			break;
		case '"':
			p += sprintf(p, "&#34;");
			break;
		default:
			*p++ = *s;
		}
	}
	*p = '\0';
	return o;
}

static enum MHD_Result queue(struct conn_state *cs, struct MHD_Connection *conn,
			     struct MHD_Response *resp, unsigned status, uint64_t len)
{
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "X-Openstack-Request-Id", "req-cairn");
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	cs->status = status;
	cs->bytes_out = len;
	return r;
}

struct dl_stream {
	struct cs_reader *rd;
	uint64_t off;
};

static ssize_t dl_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct dl_stream *d = cls;
	long n = cs_reader_read(d->rd, d->off + pos, buf, max);
	if (n < 0) {
		log_err(TAG, "image read failed at %" PRIu64 ": %s", d->off + pos,
			cairn_strerror((int)n));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return n;
}

static void dl_free(void *cls)
{
	struct dl_stream *d = cls;
	cs_reader_free(d->rd);
	free(d);
}

static enum MHD_Result send_resp(struct conn_state *cs, struct MHD_Connection *conn,
				 struct img_resp *rs)
{
	struct MHD_Response *resp;
	unsigned status = rs->status ? rs->status : 500;
	if (rs->rd) {
		struct dl_stream *d = calloc(1, sizeof(*d));
		if (!d) {
			cs_reader_free(rs->rd);
			rs->rd = NULL;
			img_err(rs, 503, "out of memory");
			return send_resp(cs, conn, rs);
		}
		d->rd = rs->rd;
		d->off = rs->off;
		rs->rd = NULL;
		resp =
		    MHD_create_response_from_callback(rs->len, REG_READ_BLOCK, dl_read, d, dl_free);
		if (!resp) {
			dl_free(d);
			return MHD_NO;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"application/octet-stream");
		MHD_add_response_header(resp, "Content-MD5", rs->md5_hex);
		if (rs->partial) {
			char cr[96];
			snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, rs->off,
				 rs->off + rs->len - 1, rs->total);
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		}
		return queue(cs, conn, resp, status, rs->len);
	}
	char *text = NULL;
	size_t len = 0;
	const char *ctype = "application/json";
	if (rs->json) {
		text = json_dumps(rs->json, JSON_COMPACT);
		json_decref(rs->json);
		rs->json = NULL;
		if (!text)
			return MHD_NO;
		len = strlen(text);
	} else if (status >= 400) {
		const char *title = img_status_title(status);
		if (wants_json(cs->rq.accept, cs->user_agent)) {
			char code[64];
			snprintf(code, sizeof(code), "%u %s", status, title);
			json_t *j = json_pack("{s:s, s:s, s:s}", "message", rs->msg, "code", code,
					      "title", title);
			text = j ? json_dumps(j, JSON_COMPACT) : NULL;
			json_decref(j);
		} else {
			char *m = html_escape(rs->msg);
			ctype = "text/html; charset=UTF-8";
			if (m && asprintf(&text,
					  "<html>\n <head>\n  <title>%u %s</title>\n </head>\n "
					  "<body>\n  <h1>%u %s</h1>\n  %s<br /><br />\n\n\n\n "
					  "</body>\n</html>",
					  status, title, status, title, m) < 0)
				text = NULL;
			free(m);
		}
		if (!text)
			return MHD_NO;
		len = strlen(text);
	}
	resp = MHD_create_response_from_buffer(
	    len, text ? text : (char *)"", text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	if (len) /* an empty 202/204 has none: glanceclient parses JSON bodies */
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (rs->location[0]) {
		char loc[600];
		snprintf(loc, sizeof(loc), "%s%s", cs->rq.base, rs->location);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
	}
	if (rs->hdr_name)
		MHD_add_response_header(resp, rs->hdr_name, rs->hdr_val);
	if (status == 401)
		MHD_add_response_header(resp, "WWW-Authenticate",
					"Keystone uri=\"http://127.0.0.1/identity\"");
	return queue(cs, conn, resp, status, len);
}

static enum MHD_Result send_error(struct conn_state *cs, struct MHD_Connection *conn,
				  unsigned status, const char *msg)
{
	struct img_resp rs = {0};
	img_err(&rs, status, "%s", msg);
	return send_resp(cs, conn, &rs);
}

/* ---- authentication ---- */

/* 0 (who set), or an HTTP status with the reason in msg. */
static unsigned authenticate(struct conn_state *cs, struct MHD_Connection *conn, char *msg,
			     size_t msglen)
{
	struct reg_server *srv = cs->srv;
	const char *tok = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Auth-Token");
	if (!tok || !tok[0]) {
		snprintf(msg, msglen,
			 "This server could not verify that you are authorized to "
			 "access the document you requested. Send X-Auth-Token.");
		return 401;
	}
	size_t tl = strlen(tok);
	if (srv->admin_token && strlen(srv->admin_token) == tl &&
	    CRYPTO_memcmp(srv->admin_token, tok, tl) == 0) {
		img_who_set(&cs->rq.who, NULL);
		return 0;
	}
	struct s3_token t;
	int rc = tl == S3_TOKEN_HEX ? s3_token_lookup(srv->reg->pool, tok, &t) : CAIRN_ENOTFOUND;
	if (rc == 0) {
		img_who_set(&cs->rq.who, t.user);
		return 0;
	}
	if (rc == CAIRN_ENOTFOUND || rc == -EKEYEXPIRED) {
		snprintf(msg, msglen, "The request you have made requires authentication%s.",
			 rc == -EKEYEXPIRED ? " (the token has expired)" : "");
		return 401;
	}
	snprintf(msg, msglen, "cannot check the token: %s", cairn_strerror(rc));
	return rc == -ENOMEM ? 503 : 500;
}

/* ---- the handler ---- */

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	(void)url, (void)version, (void)cls;
	struct conn_state *cs = *con_cls;
	if (!cs)
		return MHD_NO; /* out of memory in the URI callback */

	if (!cs->started) {
		cs->started = true;
		struct img_req *rq = &cs->rq;
		rq->reg = cs->srv->reg;
		rq->method = method;
		rq->content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							       MHD_HTTP_HEADER_CONTENT_TYPE);
		rq->range =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
		rq->accept =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
		cs->user_agent =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
		if (cs->srv->public_url) {
			snprintf(rq->base, sizeof(rq->base), "%s", cs->srv->public_url);
		} else {
			const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
								       MHD_HTTP_HEADER_HOST);
			snprintf(rq->base, sizeof(rq->base), "http://%s",
				 host ? host : "localhost");
		}
		int rc = parse_target(cs);
		if (rc < 0) {
			cs->answered = true;
			return send_error(cs, conn, rc == -ENOMEM ? 503 : 400,
					  rc == -ENOMEM ? "out of memory"
							: "The request URI is malformed.");
		}
		bool open_route =
		    rq->nsegs == 0 || (rq->nsegs == 1 && strcmp(rq->segs[0], "versions") == 0);
		if (!open_route) {
			char msg[256];
			unsigned st = authenticate(cs, conn, msg, sizeof(msg));
			if (st) {
				cs->answered = true;
				return send_error(cs, conn, st, msg);
			}
		}
		cs->upload = img_api_is_upload(rq);
		if (cs->upload) {
			struct img_resp rs = {0};
			if (img_upload_begin(rq, &rs) < 0) {
				cs->answered = true;
				return send_resp(cs, conn, &rs);
			}
		}
		return MHD_YES;
	}
	if (cs->answered) {
		*upload_data_size = 0; /* drain what MHD still hands over */
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		if (cs->upload) {
			img_upload_feed(&cs->rq, upload_data, n);
		} else if (!cs->too_big) {
			if (cs->rq.body_len + n > REG_BODY_MAX) {
				cs->too_big = true;
			} else {
				char *nb = realloc(cs->rq.body, cs->rq.body_len + n + 1);
				if (!nb) {
					cs->too_big = true;
				} else {
					memcpy(nb + cs->rq.body_len, upload_data, n);
					cs->rq.body = nb;
					cs->rq.body_len += n;
					nb[cs->rq.body_len] = '\0';
				}
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* the whole body is in */
	struct img_resp rs = {0};
	if (cs->upload) {
		img_upload_end(&cs->rq, &rs);
	} else if (cs->too_big) {
		img_err(&rs, 413, "The request body is larger than %u bytes.", REG_BODY_MAX);
	} else {
		img_api_handle(&cs->rq, &rs);
	}
	cs->answered = true;
	return send_resp(cs, conn, &rs);
}

/* ---- start / stop ---- */

/* A listening socket on "HOST:PORT" ("[v6]:PORT"; empty host: any). */
static int listen_on(const char *addr, uint16_t *port_out)
{
	char host[256];
	const char *port;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, one = 1, rc;
	const char *sep = addr[0] == '[' ? strchr(addr, ']') : strrchr(addr, ':');
	if (!sep)
		return CAIRN_EINVAL;
	size_t hl = addr[0] == '[' ? (size_t)(sep - addr - 1) : (size_t)(sep - addr);
	if (hl >= sizeof(host) || (addr[0] == '[' && sep[1] != ':'))
		return CAIRN_EINVAL;
	memcpy(host, addr[0] == '[' ? addr + 1 : addr, hl);
	host[hl] = '\0';
	port = addr[0] == '[' ? sep + 2 : sep + 1;
	if (getaddrinfo(host[0] ? host : NULL, port, &hints, &ai) != 0)
		return CAIRN_EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		rc = -errno;
		goto out;
	}
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	rc = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

int reg_server_start(struct registry *reg, const struct reg_config *cfg, struct reg_server **out)
{
	struct reg_server *srv = calloc(1, sizeof(*srv));
	int ret;
	if (!srv)
		return -ENOMEM;
	srv->reg = reg;
	srv->lfd = -1;
	srv->access_log = cfg->access_log;
	if (cfg->admin_token && cfg->admin_token[0] &&
	    !(srv->admin_token = strdup(cfg->admin_token))) {
		ret = -ENOMEM;
		goto fail;
	}
	if (cfg->public_url && cfg->public_url[0]) {
		srv->public_url = strdup(cfg->public_url);
		if (!srv->public_url) {
			ret = -ENOMEM;
			goto fail;
		}
		size_t l = strlen(srv->public_url);
		while (l && srv->public_url[l - 1] == '/')
			srv->public_url[--l] = '\0';
	}
	srv->lfd = listen_on(cfg->listen ? cfg->listen : ":9292", &srv->port);
	if (srv->lfd < 0) {
		ret = srv->lfd;
		srv->lfd = -1;
		log_err(TAG, "cannot listen on %s: %s", cfg->listen ? cfg->listen : ":9292",
			cairn_strerror(ret));
		goto fail;
	}
	unsigned maxc = cfg->max_connections ? cfg->max_connections : 512;
	unsigned timeout = cfg->timeout_sec ? cfg->timeout_sec : 300;
	srv->mhd = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
	    NULL, NULL, access_cb, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
	    MHD_OPTION_LISTEN_SOCKET, srv->lfd, MHD_OPTION_URI_LOG_CALLBACK, uri_cb, srv,
	    MHD_OPTION_NOTIFY_COMPLETED, done_cb, srv, MHD_OPTION_CONNECTION_LIMIT, maxc,
	    MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)REG_CONN_MEMORY, MHD_OPTION_END);
	if (!srv->mhd) {
		log_err(TAG, "libmicrohttpd did not start on %s", cfg->listen);
		ret = -EIO;
		goto fail;
	}
	log_info(TAG, "Glance API listening on %s (port %u, %u connections, %us timeout)",
		 cfg->listen ? cfg->listen : ":9292", srv->port, maxc, timeout);
	*out = srv;
	return 0;
fail:
	if (srv->lfd >= 0)
		close(srv->lfd);
	free(srv->admin_token);
	free(srv->public_url);
	free(srv);
	return ret;
}

uint16_t reg_server_port(const struct reg_server *srv)
{
	return srv ? srv->port : 0;
}

void reg_server_stop(struct reg_server *srv)
{
	if (!srv)
		return;
	MHD_stop_daemon(srv->mhd); /* closes the listening socket too */
	if (srv->admin_token)
		OPENSSL_cleanse(srv->admin_token, strlen(srv->admin_token));
	free(srv->admin_token);
	free(srv->public_url);
	free(srv);
}
