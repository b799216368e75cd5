/* node/admin_tok.c - the bearer token routes of the admin API:
 * POST/GET /admin/v1/tokens and DELETE /admin/v1/tokens/ID.
 *
 * Tokens act as their user on the Glance API (X-Auth-Token) and, for the
 * root user, as root on the admin API (Authorization: Bearer). A token is
 * shown once, in the answer to its creation; only its SHA-256 is kept
 * (objstore s3_token_*), so listing shows ids, never tokens. Times are
 * ISO-8601 UTC like the volume API's; "expires" is null for a token that
 * never expires.
 *
 * Threads: the admin server's connection threads; no state of its own.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "core/log.h"
#include "node/node.h"
#include "objstore/s3.h"

#define TAG "api"
#define TOK_TTL_DEFAULT 86400u
#define TOK_TTL_MAX (100ull * 365 * 86400) /* seconds: longer is a typo; 0 means never */

static const char prefix[] = "/admin/v1/tokens";

/* Route: 1 the collection, 2 one token (its id in id), 0 none. */
static int parse_path(const char *target, char *id, size_t idcap, bool *bad, const char **query)
{
	size_t plen = strcspn(target, "?"), pl = sizeof(prefix) - 1;
	*query = target[plen] == '?' ? target + plen + 1 : "";
	*bad = false;
	if (plen < pl || strncmp(target, prefix, pl) != 0)
		return 0;
	if (plen == pl || (plen == pl + 1 && target[pl] == '/'))
		return 1;
	if (target[pl] != '/')
		return 0;
	const char *s = target + pl + 1;
	size_t n = plen - pl - 1;
	if (memchr(s, '/', n))
		return 0;
	if (!admin_pct_decode(s, n, id, idcap))
		*bad = true;
	return 2;
}

bool admin_tok_match(const char *method, const char *target, const char **op, const char **allow)
{
	char id[S3_TOKEN_HEX + 1];
	bool bad;
	const char *q;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	int r = parse_path(target, id, sizeof(id), &bad, &q);
	*op = NULL;
	*allow = NULL;
	if (r == 0)
		return false;
	if (r == 1) {
		*allow = "GET, POST";
		*op = get ? "ListTokens" : strcmp(method, "POST") == 0 ? "CreateToken" : NULL;
	} else {
		*allow = "DELETE";
		*op = strcmp(method, "DELETE") == 0 ? "DeleteToken" : NULL;
	}
	return true;
}

/* ---- answers ---- */

static unsigned set_error(json_t **out, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static unsigned set_error(json_t **out, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_decref(*out);
	*out = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
	return status;
}

static unsigned set_ok(json_t **out, unsigned status, json_t *body)
{
	json_decref(*out);
	*out = body;
	if (!body && status != 204)
		return set_error(out, 503, "SlowDown", "out of memory; retry");
	return status;
}

static unsigned tok_error(json_t **out, int err, const char *what)
{
	switch (err) {
	case CAIRN_ENOTFOUND:
		return set_error(out, 404, "NoSuchToken",
				 "token %s does not exist (cairn token list)", what);
	case CAIRN_EINVAL:
		return set_error(out, 400, "InvalidArgument", "invalid token id '%s'", what);
	case CAIRN_ENOSPACE:
		return set_error(out, 507, "InsufficientStorage", "the metadata map is full");
	case CAIRN_ESHUTDOWN:
		return set_error(out, 503, "ServiceUnavailable", "cairn is shutting down");
	case -ENOMEM:
		return set_error(out, 503, "SlowDown", "out of memory; retry");
	default:
		log_err(TAG, "token %s: %s", what, cairn_strerror(err));
		return set_error(out, 500, "InternalError", "token %s: %s", what,
				 cairn_strerror(err));
	}
}

static json_t *iso_json(uint64_t ns)
{
	char t[40];
	time_t s = (time_t)(ns / 1000000000u);
	struct tm tm;
	if (!gmtime_r(&s, &tm) || !strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(t, sizeof(t), "1970-01-01T00:00:00Z");
	return json_string(t);
}

static json_t *token_json(const struct s3_token *t)
{
	return json_pack("{s:s, s:s, s:o, s:o}", "id", t->id, "user", t->user, "created",
			 iso_json(t->created_ns), "expires",
			 t->expires_ns ? iso_json(t->expires_ns) : json_null());
}

/* ---- handlers ---- */

static unsigned do_create(struct cs_pool *pool, const char *body, size_t len, json_t **out)
{
	static const char expect[] = "{\"user\": \"USER\", \"ttl\"?: SECONDS (0: never expires)}";
	json_error_t jerr;
	char token[S3_TOKEN_HEX + 1];
	struct s3_token t;
	unsigned status;
	json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *user = json_object_get(o, "user"), *ttl = json_object_get(o, "ttl");
	const char *k;
	json_t *v;
	uint64_t ttl_sec = TOK_TTL_DEFAULT;

	if (!json_is_object(o)) {
		status = set_error(out, 400, "InvalidArgument",
				   "the body must be a JSON object: %s", expect);
		goto out;
	}
	json_object_foreach(o, k, v)
	{
		if (strcmp(k, "user") != 0 && strcmp(k, "ttl") != 0) {
			status = set_error(out, 400, "InvalidArgument",
					   "unknown field \"%.64s\" (expected %s)", k, expect);
			goto out;
		}
	}
	if (!json_is_string(user) || json_string_length(user) == 0 ||
	    json_string_length(user) > S3_USER_MAX) {
		status = set_error(out, 400, "InvalidArgument",
				   "field \"user\" must name a user (1 to %d bytes): %s",
				   S3_USER_MAX, expect);
		goto out;
	}
	if (ttl) {
		if (!json_is_integer(ttl) || json_integer_value(ttl) < 0 ||
		    (uint64_t)json_integer_value(ttl) > TOK_TTL_MAX) {
			status =
			    set_error(out, 400, "InvalidArgument",
				      "field \"ttl\" must be an integer number of seconds from "
				      "0 (never expires) to %llu",
				      (unsigned long long)TOK_TTL_MAX);
			goto out;
		}
		ttl_sec = (uint64_t)json_integer_value(ttl);
	}
	const char *u = json_string_value(user);
	int rc = s3_token_create(pool, u, ttl_sec, token, &t);
	if (rc == CAIRN_ENOTFOUND) {
		status = set_error(out, 404, "NoSuchUser",
				   "user '%s' does not exist (cairn user list)", u);
		goto out;
	}
	if (rc < 0) {
		status = tok_error(out, rc, "(new)");
		goto out;
	}
	log_info(TAG, "created token %s for user '%s' (ttl %llu s)", t.id, t.user,
		 (unsigned long long)ttl_sec);
	json_t *a = token_json(&t);
	if (a && json_object_set_new(a, "token", json_string(token)) != 0) {
		json_decref(a);
		a = NULL;
	}
	OPENSSL_cleanse(token, sizeof(token));
	status = set_ok(out, 201, a);
out:
	json_decref(o);
	return status;
}

static unsigned do_list(struct cs_pool *pool, const char *query, json_t **out)
{
	char user[S3_USER_MAX + 1];
	int hu = admin_query_get(query, "user", user, sizeof(user));
	struct s3_token *toks = NULL;
	size_t max = 256;
	long n;
	if (hu < 0 || (hu && !user[0]))
		return set_error(out, 400, "InvalidArgument",
				 "query parameter user must name a user (1 to %d bytes)",
				 S3_USER_MAX);
	for (;;) {
		toks = calloc(max, sizeof(*toks));
		if (!toks)
			return tok_error(out, -ENOMEM, "list");
		n = s3_token_list(pool, hu ? user : NULL, toks, max);
		if (n < 0 || (size_t)n < max)
			break;
		free(toks);
		max *= 4; /* a full page: there may be more */
	}
	if (n < 0) {
		free(toks);
		return tok_error(out, (int)n, "list");
	}
	json_t *arr = json_array();
	for (long i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, token_json(&toks[i])) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(toks);
	if (!arr)
		return tok_error(out, -ENOMEM, "list");
	return set_ok(out, 200, json_pack("{s:o}", "tokens", arr));
}

static unsigned do_delete(struct cs_pool *pool, const char *id, json_t **out)
{
	int rc = s3_token_delete(pool, id);
	if (rc < 0)
		return tok_error(out, rc, id);
	log_info(TAG, "deleted token %s", id);
	return set_ok(out, 204, NULL);
}

unsigned admin_tok_handle(struct cs_pool *pool, const char *method, const char *target,
			  const char *body, size_t body_len, struct json_t **out)
{
	char id[S3_TOKEN_HEX + 1];
	bool bad;
	const char *q, *op, *allow;
	*out = NULL;
	if (!admin_tok_match(method, target, &op, &allow))
		return set_error(out, 404, "NotFound", "no such endpoint");
	if (!op)
		return set_error(out, 405, "MethodNotAllowed", "allowed: %s", allow);
	int r = parse_path(target, id, sizeof(id), &bad, &q);
	if (r == 1)
		return strcmp(method, "POST") == 0 ? do_create(pool, body, body_len, out)
						   : do_list(pool, q, out);
	if (bad || !id[0])
		return set_error(out, 400, "InvalidArgument",
				 "a token id is %d to %d hex digits (cairn token list)",
				 S3_TOKEN_ID_HEX, S3_TOKEN_HEX);
	return do_delete(pool, id, out);
}
