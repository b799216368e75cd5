/* node/admin_tok.c - the bearer token routes of the admin API:
 * POST /admin/v1/tokens, GET /admin/v1/tokens[?user=U],
 * DELETE /admin/v1/tokens/ID.
 *
 * admin.c matches the route (admin_tok_match), authenticates the root user
 * and hands the raw target and body here; this file parses them, calls
 * the s3_token_* functions and builds the JSON answer. The token itself is
 * in the POST's answer only (the node keeps its hash) and is never logged.
 * Times are unix seconds; "expires" is null for a token that never
 * expires.
 *
 * Threads: the admin server's connection threads; no state of its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "core/log.h"
#include "node/node.h"
#include "objstore/s3.h"

#define TAG "api"
#define TOK_PREFIX "/admin/v1/tokens"
#define TOK_LIST_MAX 4096
/* A TTL longer than this is a typo (and would overflow nanoseconds). */
#define TOK_TTL_MAX (100ull * 365 * 86400)

static json_t *tok_error(unsigned *status, unsigned st, const char *code, const char *msg)
{
	*status = st;
	return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
}

static json_t *tok_json(const struct s3_token *t)
{
	json_t *o = json_pack("{s:s, s:s, s:I}", "id", t->id, "user", t->user, "created",
			      (json_int_t)(t->created_ns / 1000000000u));
	if (o)
		json_object_set_new(o, "expires",
				    t->expires_ns
					? json_integer((json_int_t)(t->expires_ns / 1000000000u))
					: json_null());
	return o;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes n bytes ('+' is a space in a query); false when bad or
 * too long for cap. */
static bool decode(const char *s, size_t n, bool query, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				return false;
			c = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else if (c == '+' && query) {
			c = ' ';
		}
		if (c == '\0' || o + 1 >= cap)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

/* The value of one query parameter (decoded into out); 0 found, 1 absent,
 * -1 malformed. */
static int query_get(const char *query, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	while (*query) {
		size_t l = strcspn(query, "&");
		if (l > nl && strncmp(query, name, nl) == 0 && query[nl] == '=')
			return decode(query + nl + 1, l - nl - 1, true, out, cap) ? 0 : -1;
		if (l == nl && strncmp(query, name, nl) == 0) {
			out[0] = '\0';
			return 0;
		}
		query += l;
		if (*query == '&')
			query++;
	}
	return 1;
}

enum troute { TR_NONE, TR_COLL, TR_ONE };

/* Splits the target: the route and, for TR_ONE, the id segment (raw). */
static enum troute tok_route(const char *target, const char **seg, size_t *seglen,
			     const char **query)
{
	size_t plen = strcspn(target, "?");
	size_t pl = sizeof(TOK_PREFIX) - 1;
	*query = target[plen] == '?' ? target + plen + 1 : "";
	if (plen < pl || strncmp(target, TOK_PREFIX, pl) != 0)
		return TR_NONE;
	if (plen == pl || (plen == pl + 1 && target[pl] == '/'))
		return TR_COLL;
	if (target[pl] != '/')
		return TR_NONE;
	*seg = target + pl + 1;
	*seglen = plen - pl - 1;
	if (memchr(*seg, '/', *seglen))
		return TR_NONE;
	return TR_ONE;
}

bool admin_tok_match(const char *method, const char *target, const char **op, const char **allow)
{
	const char *seg = NULL, *query;
	size_t seglen = 0;
	size_t pl = sizeof(TOK_PREFIX) - 1;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (strncmp(target, TOK_PREFIX, pl) != 0 ||
	    (target[pl] != '/' && target[pl] != '?' && target[pl] != '\0'))
		return false;
	*op = NULL;
	*allow = NULL;
	switch (tok_route(target, &seg, &seglen, &query)) {
	case TR_COLL:
		*allow = "GET, POST";
		*op = get ? "ListTokens" : strcmp(method, "POST") == 0 ? "CreateToken" : NULL;
		break;
	case TR_ONE:
		*allow = "DELETE";
		*op = strcmp(method, "DELETE") == 0 ? "DeleteToken" : NULL;
		break;
	default:
		break; /* *allow NULL: no such endpoint */
	}
	return true;
}

static json_t *tok_create(struct cs_pool *pool, const char *body, size_t body_len, unsigned *status)
{
	json_error_t jerr;
	json_t *root = json_loadb(body ? body : "", body_len, 0, &jerr);
	json_t *user = json_object_get(root, "user"), *ttl = json_object_get(root, "ttl");
	json_t *out = NULL;
	char token[S3_TOKEN_HEX + 1];
	char msg[200];
	struct s3_token t;
	uint64_t ttl_sec = 86400;
	int rc;

	if (!json_is_object(root) || !json_is_string(user) ||
	    (ttl && !json_is_null(ttl) && !json_is_integer(ttl))) {
		out = tok_error(status, 400, "InvalidArgument",
				"expected a JSON body {\"user\": \"USER\", \"ttl\": SECONDS}");
		goto out;
	}
	if (json_is_integer(ttl)) {
		json_int_t v = json_integer_value(ttl);
		if (v < 0 || (uint64_t)v > TOK_TTL_MAX) {
			out = tok_error(status, 400, "InvalidArgument",
					"ttl is in seconds, from 0 (never expires) to 100 years");
			goto out;
		}
		ttl_sec = (uint64_t)v;
	}
	rc = s3_token_create(pool, json_string_value(user), ttl_sec, token, &t);
	if (rc == CAIRN_ENOTFOUND) {
		snprintf(msg, sizeof(msg), "user '%.64s' does not exist", json_string_value(user));
		out = tok_error(status, 404, "NoSuchUser", msg);
		goto out;
	}
	if (rc < 0) {
		log_err(TAG, "token create: %s", cairn_strerror(rc));
		out = tok_error(status, rc == CAIRN_ENOSPACE ? 507 : 500,
				rc == CAIRN_ENOSPACE ? "InsufficientStorage" : "InternalError",
				cairn_strerror(rc));
		goto out;
	}
	out = tok_json(&t);
	if (out)
		json_object_set_new(out, "token", json_string(token));
	*status = 201;
	OPENSSL_cleanse(token, sizeof(token));
out:
	json_decref(root);
	return out;
}

static json_t *tok_list(struct cs_pool *pool, const char *query, unsigned *status)
{
	char user[S3_USER_MAX + 2], msg[200];
	struct s3_token *toks = NULL;
	json_t *arr, *out = NULL;
	int q = query_get(query, "user", user, sizeof(user));
	long n;

	if (q < 0 || (q == 0 && !user[0]))
		return tok_error(status, 400, "InvalidArgument", "user= needs a user name");
	if (q == 0) {
		int rc = s3_user_get(pool, user, NULL);
		if (rc == CAIRN_ENOTFOUND) {
			snprintf(msg, sizeof(msg), "user '%.64s' does not exist", user);
			return tok_error(status, 404, "NoSuchUser", msg);
		}
		if (rc < 0)
			return tok_error(status, 500, "InternalError", cairn_strerror(rc));
	}
	toks = calloc(TOK_LIST_MAX, sizeof(*toks));
	if (!toks)
		return NULL;
	n = s3_token_list(pool, q == 0 ? user : NULL, toks, TOK_LIST_MAX);
	if (n < 0) {
		out = tok_error(status, 500, "InternalError", cairn_strerror((int)n));
		goto out;
	}
	arr = json_array();
	for (long i = 0; arr && i < n; i++)
		json_array_append_new(arr, tok_json(&toks[i]));
	out = arr ? json_pack("{s:o}", "tokens", arr) : NULL;
	*status = 200;
out:
	free(toks);
	return out;
}

static json_t *tok_delete(struct cs_pool *pool, const char *seg, size_t seglen, unsigned *status)
{
	char id[2 * 32 + 2], msg[200];
	int rc;

	if (!decode(seg, seglen, false, id, sizeof(id)))
		return tok_error(status, 404, "NoSuchToken", "no token has this id");
	rc = s3_token_delete(pool, id);
	if (rc == CAIRN_ENOTFOUND) {
		snprintf(msg, sizeof(msg), "token '%s' does not exist", id);
		return tok_error(status, 404, "NoSuchToken", msg);
	}
	if (rc == CAIRN_EINVAL) {
		snprintf(msg, sizeof(msg),
			 "several tokens have ids starting with '%s': give more "
			 "digits",
			 id);
		return tok_error(status, 400, "InvalidArgument", msg);
	}
	if (rc < 0)
		return tok_error(status, 500, "InternalError", cairn_strerror(rc));
	log_info(TAG, "deleted token %s", id);
	*status = 204;
	return NULL;
}

unsigned admin_tok_handle(struct cs_pool *pool, const char *method, const char *target,
			  const char *body, size_t body_len, struct json_t **out)
{
	const char *seg = NULL, *query;
	size_t seglen = 0;
	unsigned status = 500;

	*out = NULL;
	switch (tok_route(target, &seg, &seglen, &query)) {
	case TR_COLL:
		if (strcmp(method, "POST") == 0)
			*out = tok_create(pool, body, body_len, &status);
		else
			*out = tok_list(pool, query, &status);
		break;
	case TR_ONE:
		*out = tok_delete(pool, seg, seglen, &status);
		break;
	default:
		*out = tok_error(&status, 404, "NotFound", "no such endpoint");
		break;
	}
	return status;
}
