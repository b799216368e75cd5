/* tests/unit/test_admin_tok.c - the admin API's token routes
 * (node/admin_tok.c) and its Authorization: Bearer (node/admin.c): the
 * configured admin token and root's tokens act as root, other users'
 * tokens and unknown or expired ones are refused. Issue 7. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "chunkstore/chunkstore.h"
#include "node/node.h"
#include "objstore/s3.h"

#define ROOT_KEY "TOKTESTROOTKEY"
#define ROOT_SECRET "tok-test-root-secret"
#define ADMIN_TOKEN "configured-admin-token-0123456789"

static char tmpdir[256];
static struct cs_pool *pool;
static struct admin_server *srv;
static char base[64];

struct resp {
	long status;
	char *body;
	size_t len;
};

static size_t wr(char *d, size_t s, size_t n, void *arg)
{
	struct resp *r = arg;
	char *p = realloc(r->body, r->len + s * n + 1);
	if (!p)
		return 0;
	memcpy(p + r->len, d, s * n);
	r->body = p;
	r->len += s * n;
	p[r->len] = '\0';
	return s * n;
}

/* sigv4: sign with the root key; bearer: send that token instead. */
static json_t *call(const char *method, const char *path, const char *body, bool sigv4,
		    const char *bearer, struct resp *r)
{
	char url[512], auth[300];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	assert_non_null(c);
	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, wr);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (sigv4) {
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
		curl_easy_setopt(c, CURLOPT_USERNAME, ROOT_KEY);
		curl_easy_setopt(c, CURLOPT_PASSWORD, ROOT_SECRET);
	}
	if (bearer) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
		h = curl_slist_append(h, auth);
	}
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	if (strcmp(method, "GET") != 0 && !(body && strcmp(method, "POST") == 0))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return r->body ? json_loads(r->body, 0, NULL) : NULL;
}

static const char *err_code(json_t *j)
{
	return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

/* Runs a call, checks the status (and error code when given), frees. */
static void expect(const char *method, const char *path, const char *body, bool sigv4,
		   const char *bearer, long status, const char *code)
{
	struct resp r;
	json_t *j = call(method, path, body, sigv4, bearer, &r);
	if (r.status != status)
		fprintf(stderr, "%s %s: %ld %s\n", method, path, r.status, r.body ? r.body : "");
	assert_int_equal(r.status, status);
	if (code)
		assert_string_equal(err_code(j), code);
	json_decref(j);
	free(r.body);
}

static int setup(void **state)
{
	(void)state;
	char err[256];
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-test-admintok-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	struct cs_pool_opts o = {.data_dir = tmpdir, .map_size = 64u << 20};
	if (cs_pool_open(&o, &pool) != 0 || s3_users_bootstrap(pool, ROOT_KEY, ROOT_SECRET) != 0 ||
	    s3_user_create(pool, "alice") != 0)
		return -1;
	struct admin_config ac = {.listen = "127.0.0.1:0",
				  .data_dir = tmpdir,
				  .root_key = ROOT_KEY,
				  .admin_token = ADMIN_TOKEN};
	if (admin_start(&ac, pool, &srv, err, sizeof(err)) != 0) {
		fprintf(stderr, "admin_start: %s\n", err);
		return -1;
	}
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", admin_port(srv));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	admin_stop(srv);
	cs_pool_close(pool);
	curl_global_cleanup();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* POSTs a token; returns the parsed answer (caller decrefs). */
static json_t *create(const char *body, long status)
{
	struct resp r;
	json_t *j = call("POST", "/admin/v1/tokens", body, true, NULL, &r);
	assert_int_equal(r.status, status);
	free(r.body);
	return j;
}

static void test_create_shapes(void **state)
{
	(void)state;
	json_t *j = create("{\"user\": \"alice\", \"ttl\": 600}", 201);
	const char *tok = json_string_value(json_object_get(j, "token"));
	assert_non_null(tok);
	assert_int_equal(strlen(tok), S3_TOKEN_HEX);
	assert_int_equal(strlen(json_string_value(json_object_get(j, "id"))), S3_TOKEN_ID_HEX);
	assert_string_equal(json_string_value(json_object_get(j, "user")), "alice");
	json_int_t created = json_integer_value(json_object_get(j, "created"));
	assert_int_equal(json_integer_value(json_object_get(j, "expires")), created + 600);
	/* it works as a token of alice */
	struct s3_token t;
	assert_int_equal(s3_token_lookup(pool, tok, &t), 0);
	assert_string_equal(t.user, "alice");
	json_decref(j);

	/* default ttl: a day; 0: never (null) */
	j = create("{\"user\": \"alice\"}", 201);
	created = json_integer_value(json_object_get(j, "created"));
	assert_int_equal(json_integer_value(json_object_get(j, "expires")), created + 86400);
	json_decref(j);
	j = create("{\"user\": \"alice\", \"ttl\": 0}", 201);
	assert_true(json_is_null(json_object_get(j, "expires")));
	json_decref(j);

	/* bad bodies and users */
	expect("POST", "/admin/v1/tokens", "{\"user\": \"nobody\"}", true, NULL, 404, "NoSuchUser");
	expect("POST", "/admin/v1/tokens", "{\"ttl\": 5}", true, NULL, 400, "InvalidArgument");
	expect("POST", "/admin/v1/tokens", "not json", true, NULL, 400, "InvalidArgument");
	expect("POST", "/admin/v1/tokens", "{\"user\": \"alice\", \"ttl\": \"1h\"}", true, NULL,
	       400, "InvalidArgument");
	expect("POST", "/admin/v1/tokens", "{\"user\": \"alice\", \"ttl\": -1}", true, NULL, 400,
	       "InvalidArgument");
	expect("PUT", "/admin/v1/tokens", "{}", true, NULL, 405, NULL);
	expect("GET", "/admin/v1/tokens/abc/def", NULL, true, NULL, 404, "NotFound");
	/* unsigned: refused before anything happens */
	expect("POST", "/admin/v1/tokens", "{\"user\": \"alice\"}", false, NULL, 403,
	       "AccessDenied");
}

static void test_list_delete(void **state)
{
	(void)state;
	json_t *a = create("{\"user\": \"alice\", \"ttl\": 600}", 201);
	json_t *b = create("{\"user\": \"root\", \"ttl\": 600}", 201);
	const char *aid = json_string_value(json_object_get(a, "id"));
	const char *bid = json_string_value(json_object_get(b, "id"));
	struct resp r;
	char path[128];

	json_t *j = call("GET", "/admin/v1/tokens?user=alice", NULL, true, NULL, &r);
	assert_int_equal(r.status, 200);
	json_t *arr = json_object_get(j, "tokens"), *t;
	size_t i;
	bool seen = false;
	assert_true(json_array_size(arr) >= 1);
	json_array_foreach(arr, i, t)
	{
		assert_string_equal(json_string_value(json_object_get(t, "user")), "alice");
		assert_null(json_object_get(t, "token")); /* never shown again */
		seen |= strcmp(json_string_value(json_object_get(t, "id")), aid) == 0;
	}
	assert_true(seen);
	json_decref(j);
	free(r.body);
	j = call("GET", "/admin/v1/tokens", NULL, true, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, bid));
	assert_non_null(strstr(r.body, aid));
	json_decref(j);
	free(r.body);
	expect("GET", "/admin/v1/tokens?user=nobody", NULL, true, NULL, 404, "NoSuchUser");

	snprintf(path, sizeof(path), "/admin/v1/tokens/%s", aid);
	expect("DELETE", path, NULL, true, NULL, 204, NULL);
	expect("DELETE", path, NULL, true, NULL, 404, "NoSuchToken");
	expect("DELETE", "/admin/v1/tokens/nothex00", NULL, true, NULL, 404, "NoSuchToken");
	j = call("GET", "/admin/v1/tokens?user=alice", NULL, true, NULL, &r);
	assert_null(strstr(r.body, aid));
	json_decref(j);
	free(r.body);
	snprintf(path, sizeof(path), "/admin/v1/tokens/%s", bid);
	expect("DELETE", path, NULL, true, NULL, 204, NULL);
	json_decref(a);
	json_decref(b);
}

static void test_bearer(void **state)
{
	(void)state;
	json_t *root_tok = create("{\"user\": \"root\", \"ttl\": 600}", 201);
	json_t *alice_tok = create("{\"user\": \"alice\", \"ttl\": 600}", 201);
	json_t *short_tok = create("{\"user\": \"root\", \"ttl\": 1}", 201);
	const char *rt = json_string_value(json_object_get(root_tok, "token"));
	const char *at = json_string_value(json_object_get(alice_tok, "token"));
	const char *st = json_string_value(json_object_get(short_tok, "token"));
	char path[128];

	/* the admin token and root's tokens act as root, on any route */
	expect("GET", "/admin/v1/users", NULL, false, ADMIN_TOKEN, 200, NULL);
	expect("GET", "/admin/v1/users", NULL, false, rt, 200, NULL);
	expect("GET", "/admin/v1/tokens", NULL, false, rt, 200, NULL);
	expect("POST", "/admin/v1/users", "{\"name\": \"dave\"}", false, ADMIN_TOKEN, 201, NULL);
	expect("GET", "/admin/v1/pool/stats", NULL, false, rt, 200, NULL);
	/* another user's token: known, but not root */
	expect("GET", "/admin/v1/users", NULL, false, at, 403, "AccessDenied");
	/* unknown, altered, or near the admin token */
	expect("GET", "/admin/v1/users", NULL, false,
	       "0123456789abcdef0123456789abcdef01234567"
	       "89abcdef0123456789abcdef",
	       401, "InvalidToken");
	expect("GET", "/admin/v1/users", NULL, false, ADMIN_TOKEN "x", 401, "InvalidToken");
	expect("GET", "/admin/v1/users", NULL, false, "configured-admin-token", 401,
	       "InvalidToken");
	/* expired (ttl 1 s; a generous wait) */
	expect("GET", "/admin/v1/users", NULL, false, st, 200, NULL);
	usleep(1300 * 1000);
	expect("GET", "/admin/v1/users", NULL, false, st, 401, "ExpiredToken");
	/* a deleted token stops working */
	snprintf(path, sizeof(path), "/admin/v1/tokens/%s",
		 json_string_value(json_object_get(root_tok, "id")));
	expect("DELETE", path, NULL, false, rt, 204, NULL);
	expect("GET", "/admin/v1/users", NULL, false, rt, 401, "InvalidToken");
	json_decref(root_tok);
	json_decref(alice_tok);
	json_decref(short_tok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_shapes),
	    cmocka_unit_test(test_list_delete),
	    cmocka_unit_test(test_bearer),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
