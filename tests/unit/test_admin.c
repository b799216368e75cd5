/* tests/unit/test_admin.c - node/admin.c over a real pool: /metrics,
 * /health, and the users/keys API signed with SigV4 by libcurl exactly as
 * the `cairn` CLI signs it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "blockstore/bs.h"
#include "chunkstore/chunkstore.h"
#include "core/fault.h"
#include "core/metrics.h"
#include "node/node.h"
#include "objstore/s3.h"

#define ROOT_KEY "ADMINTESTROOTKEY"
#define ROOT_SECRET "admin-test-root-secret"

static char tmpdir[256];
static struct cs_pool *pool;
static struct admin_server *srv;
static struct bs_store *bs;
static char base[64];

struct resp {
	long status;
	char *body;
	size_t len;
	char allow[64];
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

static size_t hdr(char *d, size_t s, size_t n, void *arg)
{
	struct resp *r = arg;
	if (s * n > 7 && strncasecmp(d, "Allow: ", 7) == 0) {
		size_t l = s * n - 7;
		if (l >= sizeof(r->allow))
			l = sizeof(r->allow) - 1;
		memcpy(r->allow, d + 7, l);
		r->allow[l] = '\0';
		r->allow[strcspn(r->allow, "\r\n")] = '\0';
	}
	return s * n;
}

/* key NULL: unsigned request. extra_hdr: one more header, or NULL. */
static json_t *call(const char *method, const char *path, const char *body, const char *key,
		    const char *secret, const char *extra_hdr, struct resp *r)
{
	char url[512];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	assert_non_null(c);
	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, wr);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hdr);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (key) {
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
		curl_easy_setopt(c, CURLOPT_USERNAME, key);
		curl_easy_setopt(c, CURLOPT_PASSWORD, secret);
	}
	if (extra_hdr)
		h = curl_slist_append(h, extra_hdr);
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

static int setup(void **state)
{
	(void)state;
	char err[256];
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-test-admin-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	struct cs_pool_opts o = {.data_dir = tmpdir, .map_size = 64u << 20};
	if (cs_pool_open(&o, &pool) != 0)
		return -1;
	if (s3_users_bootstrap(pool, ROOT_KEY, ROOT_SECRET) != 0)
		return -1;
	struct bs_opts bo = {.data_dir = tmpdir};
	if (bs_open(pool, &bo, &bs) != 0)
		return -1;
	struct admin_config ac = {.listen = "127.0.0.1:0",
				  .data_dir = tmpdir,
				  .root_key = ROOT_KEY,
				  .access_log = false,
				  .bs = bs,
				  .nbd_host = "127.0.0.1",
				  .nbd_port = 10999};
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
	bs_close(bs);
	cs_pool_close(pool);
	curl_global_cleanup();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_admin_health_ok(void **state)
{
	(void)state;
	struct resp r;
	json_t *j = call("GET", "/health", NULL, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
	assert_int_equal(json_object_size(j), 1);
	json_decref(j);
	free(r.body);
}

static void test_admin_metrics_prometheus_text(void **state)
{
	(void)state;
	struct resp r;
	/* One request the metrics must count. */
	json_t *j = call("GET", "/health", NULL, NULL, NULL, NULL, &r);
	json_decref(j);
	free(r.body);
	j = call("GET", "/metrics", NULL, NULL, NULL, NULL, &r);
	assert_null(j); /* not JSON */
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "# TYPE cairn_requests_total counter\n"));
	const char *s = strstr(r.body, "cairn_requests_total{frontend=\"admin\",op=\"Health\","
				       "status=\"200\"} ");
	assert_non_null(s);
	assert_true(strtol(strchr(s, '}') + 2, NULL, 10) >= 1);
	free(r.body);
	j = call("POST", "/metrics", "{}", NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET");
	json_decref(j);
	free(r.body);
}

static void test_admin_unsigned_and_unknown_key_denied(void **state)
{
	(void)state;
	struct resp r;
	json_t *j = call("GET", "/admin/v1/users", NULL, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 403);
	assert_string_equal(err_code(j), "AccessDenied");
	json_decref(j);
	free(r.body);
	j = call("GET", "/admin/v1/users", NULL, "NOSUCHKEYID", "whatever-secret", NULL, &r);
	assert_int_equal(r.status, 403);
	assert_string_equal(err_code(j), "InvalidAccessKeyId");
	json_decref(j);
	free(r.body);
	j = call("GET", "/admin/v1/users", NULL, ROOT_KEY, "wrong-secret!!", NULL, &r);
	assert_int_equal(r.status, 403);
	assert_string_equal(err_code(j), "SignatureDoesNotMatch");
	json_decref(j);
	free(r.body);
}

static void test_admin_user_and_key_lifecycle(void **state)
{
	(void)state;
	struct resp r;
	json_t *j;

	j = call("POST", "/admin/v1/users", "{\"name\":\"alice\"}", ROOT_KEY, ROOT_SECRET, NULL,
		 &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "alice");
	json_decref(j);
	free(r.body);

	j = call("POST", "/admin/v1/users", "{\"name\":\"alice\"}", ROOT_KEY, ROOT_SECRET, NULL,
		 &r);
	assert_int_equal(r.status, 409);
	assert_string_equal(err_code(j), "UserAlreadyExists");
	json_decref(j);
	free(r.body);

	j = call("POST", "/admin/v1/users", "{\"name\":\"no spaces\"}", ROOT_KEY, ROOT_SECRET, NULL,
		 &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(err_code(j), "InvalidUserName");
	json_decref(j);
	free(r.body);

	j = call("POST", "/admin/v1/users", "not json", ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(err_code(j), "MalformedJSON");
	json_decref(j);
	free(r.body);

	j = call("GET", "/admin/v1/users", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 200);
	json_t *users = json_object_get(j, "users");
	assert_int_equal(json_array_size(users), 2); /* alice, root: sorted */
	assert_string_equal(json_string_value(json_object_get(json_array_get(users, 0), "name")),
			    "alice");
	assert_true(json_is_false(json_object_get(json_array_get(users, 0), "root")));
	assert_true(json_is_true(json_object_get(json_array_get(users, 1), "root")));
	json_decref(j);
	free(r.body);

	/* A key for alice; the secret is returned once. */
	j = call("POST", "/admin/v1/users/alice/keys", "{}", ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 201);
	char id[S3_KEY_ID_MAX + 1], secret[S3_SECRET_MAX + 1];
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	snprintf(secret, sizeof(secret), "%s", json_string_value(json_object_get(j, "secret")));
	assert_int_equal(strlen(id), 20);
	assert_int_equal(strlen(secret), 40);
	json_decref(j);
	free(r.body);

	/* Listing never shows secrets. */
	j = call("GET", "/admin/v1/users/alice/keys", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(j, "keys")), 1);
	assert_null(strstr(r.body, secret));
	assert_null(json_object_get(json_array_get(json_object_get(j, "keys"), 0), "secret"));
	json_decref(j);
	free(r.body);
	j = call("GET", "/admin/v1/keys", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(json_array_size(json_object_get(j, "keys")), 2);
	json_decref(j);
	free(r.body);
	j = call("GET", "/admin/v1/users/nobody/keys", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 404);
	assert_string_equal(err_code(j), "NoSuchUser");
	json_decref(j);
	free(r.body);

	/* alice's valid signature is still not root: 403. */
	j = call("GET", "/admin/v1/users", NULL, id, secret, NULL, &r);
	assert_int_equal(r.status, 403);
	assert_string_equal(err_code(j), "AccessDenied");
	json_decref(j);
	free(r.body);

	/* The root user and the root key cannot be deleted here. */
	j = call("DELETE", "/admin/v1/users/root", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 403);
	json_decref(j);
	free(r.body);
	j = call("DELETE", "/admin/v1/keys/" ROOT_KEY, NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 403);
	json_decref(j);
	free(r.body);

	char path[256];
	snprintf(path, sizeof(path), "/admin/v1/keys/%s", id);
	j = call("DELETE", path, NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 200);
	json_decref(j);
	free(r.body);
	j = call("DELETE", path, NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 404);
	assert_string_equal(err_code(j), "NoSuchKey");
	json_decref(j);
	free(r.body);
	struct s3_key k;
	assert_int_equal(s3_key_lookup(pool, id, &k), CAIRN_ENOTFOUND);

	j = call("DELETE", "/admin/v1/users/alice", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 200);
	json_decref(j);
	free(r.body);
	j = call("DELETE", "/admin/v1/users/alice", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 404);
	assert_string_equal(err_code(j), "NoSuchUser");
	json_decref(j);
	free(r.body);
}

static void test_admin_body_hash_checked(void **state)
{
	(void)state;
	struct resp r;
	/* The hash of the empty body, sent with a non-empty one. */
	json_t *j = call("POST", "/admin/v1/users", "{\"name\":\"mallory\"}", ROOT_KEY, ROOT_SECRET,
			 "x-amz-content-sha256: "
			 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			 &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(err_code(j), "XAmzContentSHA256Mismatch");
	json_decref(j);
	free(r.body);
	struct s3_user u[8];
	long n = s3_user_list(pool, u, 8);
	for (long i = 0; i < n; i++)
		assert_string_not_equal(u[i].name, "mallory");
}

static void test_admin_unknown_paths_and_methods(void **state)
{
	(void)state;
	struct resp r;
	json_t *j = call("GET", "/nope", NULL, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 404);
	assert_string_equal(err_code(j), "NotFound");
	json_decref(j);
	free(r.body);
	j = call("PUT", "/admin/v1/users", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET, POST");
	json_decref(j);
	free(r.body);
	j = call("GET", "/admin/v1/users/x/y", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 404);
	json_decref(j);
	free(r.body);
}

static void test_admin_pool_stats_lists_devices(void **state)
{
	(void)state;
	struct resp r;
	json_t *j = call("GET", "/admin/v1/pool/stats", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 200);
	json_t *p = json_object_get(j, "pool"), *devs = json_object_get(j, "devices");
	assert_true(json_is_integer(json_object_get(p, "logical_bytes")));
	assert_true(json_is_number(json_object_get(p, "dedup_ratio")));
	assert_int_equal(json_integer_value(json_object_get(p, "k")), 4);
	assert_int_equal(json_array_size(devs), 6);
	json_t *d0 = json_array_get(devs, 0);
	assert_string_equal(json_string_value(json_object_get(d0, "name")), "d0");
	assert_true(json_is_true(json_object_get(d0, "present")));
	assert_true(json_integer_value(json_object_get(d0, "size_bytes")) > 0);
	json_decref(j);
	free(r.body);
	/* unsigned: refused like the rest of /admin/v1 */
	j = call("GET", "/admin/v1/pool/stats", NULL, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 403);
	json_decref(j);
	free(r.body);
}

/* Polls GET /admin/v1/pool/jobs until the job is no longer running. */
static json_t *job_wait_done(void)
{
	for (int i = 0; i < 600; i++) {
		struct resp r;
		json_t *j =
		    call("GET", "/admin/v1/pool/jobs", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
		free(r.body);
		assert_int_equal(r.status, 200);
		if (strcmp(json_string_value(json_object_get(j, "state")), "running") != 0)
			return j;
		json_decref(j);
		usleep(20000);
	}
	fail_msg("job did not end within 12 s");
	return NULL;
}

static void test_admin_jobs_bad_input_400(void **state)
{
	(void)state;
	struct resp r;
	json_t *none = call("GET", "/admin/v1/pool/jobs", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 404); /* no job ran since start */
	assert_string_equal(err_code(none), "NoSuchJob");
	json_decref(none);
	free(r.body);
	static const struct {
		const char *body, *code;
	} cases[] = {
	    {"{not json", "MalformedJSON"},
	    {"[]", "MalformedJSON"},
	    {"{\"op\": 7}", "MalformedJSON"},
	    {"{\"op\": \"gc\", \"fix\": 1}", "MalformedJSON"},
	    {"{\"op\": \"defrag\"}", "InvalidOperation"},
	    {"{\"op\": \"\"}", "InvalidOperation"},
	    {"{\"op\": \"scrub\", \"fix\": true}", "InvalidArgument"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = call("POST", "/admin/v1/pool/jobs", cases[i].body, ROOT_KEY,
				 ROOT_SECRET, NULL, &r);
		assert_int_equal(r.status, 400);
		assert_string_equal(err_code(j), cases[i].code);
		json_decref(j);
		free(r.body);
	}
	json_t *j = call("DELETE", "/admin/v1/pool/jobs", NULL, ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET, POST");
	json_decref(j);
	free(r.body);
}

static void test_admin_job_runs_reports_and_409_while_busy(void **state)
{
	(void)state;
	struct resp r;
	json_t *j = call("POST", "/admin/v1/pool/jobs", "{\"op\": \"gc\"}", ROOT_KEY, ROOT_SECRET,
			 NULL, &r);
	assert_int_equal(r.status, 202);
	json_int_t id = json_integer_value(json_object_get(j, "id"));
	assert_true(id > 0);
	assert_string_equal(json_string_value(json_object_get(j, "op")), "gc");
	json_decref(j);
	free(r.body);
	j = job_wait_done();
	assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "done");
	assert_true(json_is_object(json_object_get(j, "report")));
	assert_true(json_is_true(json_object_get(j, "clean")));
	assert_true(json_is_integer(json_object_get(j, "finished")));
	json_decref(j);

	/* Held by the fault point, a job is still running when the next
	 * POST comes: 409 names it; its progress shows in /metrics. */
	fault_arm("node.job_slow", 1);
	j = call("POST", "/admin/v1/pool/jobs", "{\"op\": \"scrub\"}", ROOT_KEY, ROOT_SECRET, NULL,
		 &r);
	assert_int_equal(r.status, 202);
	json_decref(j);
	free(r.body);
	j = call("POST", "/admin/v1/pool/jobs", "{\"op\": \"fsck\", \"fix\": true}", ROOT_KEY,
		 ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 409);
	assert_string_equal(err_code(j), "JobRunning");
	assert_non_null(strstr(r.body, "scrub"));
	json_decref(j);
	free(r.body);
	j = call("GET", "/metrics", NULL, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\ncairn_job_running 1\n"));
	assert_non_null(strstr(r.body, "cairn_device_present{device=\"d0\"} 1\n"));
	free(r.body);
	fault_arm("node.job_slow", 0);
	j = job_wait_done();
	assert_string_equal(json_string_value(json_object_get(j, "op")), "scrub");
	assert_string_equal(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	/* and the next job starts */
	j = call("POST", "/admin/v1/pool/jobs", "{\"op\": \"fsck\", \"fix\": true}", ROOT_KEY,
		 ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 202);
	assert_true(json_is_true(json_object_get(j, "fix")));
	json_decref(j);
	free(r.body);
	json_decref(job_wait_done());
}

static void test_admin_health_503_when_stopping(void **state)
{
	(void)state;
	struct resp r;
	admin_set_stopping(srv);
	json_t *j = call("GET", "/health", NULL, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "unavailable");
	json_decref(j);
	free(r.body);
}

static void test_admin_listen_in_use_reports_eaddrinuse(void **state)
{
	(void)state;
	char listen[64], err[256] = "";
	struct admin_server *s2 = NULL;
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", admin_port(srv));
	struct admin_config ac = {.listen = listen, .root_key = ROOT_KEY};
	assert_int_equal(admin_start(&ac, pool, &s2, err, sizeof(err)), -EADDRINUSE);
	assert_null(s2);
	assert_non_null(strstr(err, listen));
}

/* Issue 6: the volume routes, signed like the rest, with the error codes
 * and messages briefs/i6-api.md promises. */
static json_t *vcall(const char *method, const char *path, const char *body, long status,
		     const char *code)
{
	struct resp r;
	json_t *j = call(method, path, body, ROOT_KEY, ROOT_SECRET, NULL, &r);
	if (r.status != status || (code && (!err_code(j) || strcmp(err_code(j), code) != 0)))
		fail_msg("%s %s: %ld %s (expected %ld %s)", method, path, r.status,
			 r.body ? r.body : "", status, code ? code : "");
	free(r.body);
	return j;
}

static void test_admin_volumes_issue6(void **state)
{
	(void)state;
	struct resp r;
	json_t *j = call("GET", "/admin/v1/volumes", NULL, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 403); /* unsigned */
	json_decref(j);
	free(r.body);

	j = vcall("POST", "/admin/v1/volumes",
		  "{\"name\":\"v1\",\"size\":1073741824,\"replicas\":1,\"iops_limit\":100}", 201,
		  NULL);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "v1");
	assert_int_equal(json_integer_value(json_object_get(j, "size")), 1073741824);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "available");
	assert_int_equal(json_integer_value(json_object_get(j, "replicas")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "iops_limit")), 100);
	assert_int_equal(strlen(json_string_value(json_object_get(j, "id"))), 32);
	const char *created = json_string_value(json_object_get(j, "created"));
	assert_true(created && strlen(created) == 20 && created[19] == 'Z');
	assert_null(json_object_get(j, "parent"));
	json_decref(j);
	json_decref(vcall("POST", "/admin/v1/volumes", "{\"name\":\"v1\",\"size\":1048576}", 409,
			  "VolumeExists"));
	/* Malformed bodies name the field. */
	j = vcall("POST", "/admin/v1/volumes", "{\"name\":\"v2\",\"size\":\"1G\"}", 400,
		  "InvalidArgument");
	assert_non_null(
	    strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
		   "\"size\""));
	json_decref(j);
	json_decref(vcall("POST", "/admin/v1/volumes", "{\"name\":", 400, "InvalidArgument"));
	json_decref(vcall("POST", "/admin/v1/volumes", "{\"name\":\"v2\",\"size\":1000}", 400,
			  "InvalidArgument"));
	json_decref(vcall("GET", "/admin/v1/volumes/nope", NULL, 404, "NoSuchVolume"));

	/* Snapshots, clones, and what they forbid. */
	j = vcall("POST", "/admin/v1/volumes/v1/snapshots", "{\"name\":\"s1\"}", 201, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "s1");
	assert_int_equal(json_integer_value(json_object_get(j, "clones")), 0);
	json_decref(j);
	json_decref(vcall("POST", "/admin/v1/volumes/v1/snapshots", "{\"name\":\"s1\"}", 409,
			  "SnapshotExists"));
	json_decref(vcall("POST", "/admin/v1/volumes/v1/rollback", "{\"snapshot\":\"s9\"}", 404,
			  "NoSuchSnapshot"));
	j = vcall("POST", "/admin/v1/volumes",
		  "{\"name\":\"c 1/x\",\"from_snapshot\":{\"volume\":\"v1\",\"snapshot\":\"s1\"}}",
		  201, NULL);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "parent"), "snapshot")), "s1");
	assert_int_equal(json_integer_value(json_object_get(j, "iops_limit")), 100);
	json_decref(j);
	/* A percent-encoded name with a slash is one segment. */
	json_decref(vcall("GET", "/admin/v1/volumes/c%201%2Fx", NULL, 200, NULL));
	json_decref(vcall("DELETE", "/admin/v1/volumes/v1/snapshots/s1", NULL, 409, "VolumeBusy"));
	json_decref(vcall("DELETE", "/admin/v1/volumes/v1?force=true", NULL, 409, "VolumeBusy"));
	json_decref(vcall("DELETE", "/admin/v1/volumes/c%201%2Fx", NULL, 204, NULL));
	json_decref(vcall("DELETE", "/admin/v1/volumes/v1", NULL, 409, "VolumeNotEmpty"));

	/* Attach: export and URL; an attached volume cannot be deleted. */
	j = vcall("POST", "/admin/v1/volumes/v1/attach", "{\"host\":\"hv1\"}", 200, NULL);
	const char *tok = json_string_value(json_object_get(j, "token"));
	char want[256];
	assert_non_null(tok);
	snprintf(want, sizeof(want), "v1@%s", tok);
	assert_string_equal(json_string_value(json_object_get(j, "export")), want);
	snprintf(want, sizeof(want), "nbd://127.0.0.1:10999/v1@%s", tok);
	assert_string_equal(json_string_value(json_object_get(j, "url")), want);
	json_decref(j);
	json_decref(
	    vcall("POST", "/admin/v1/volumes/v1/attach", "{\"host\":\"hv2\"}", 409, "VolumeBusy"));
	j = vcall("DELETE", "/admin/v1/volumes/v1?force=true", NULL, 409, "VolumeBusy");
	assert_non_null(
	    strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
		   "attached to host hv1; detach it first"));
	json_decref(j);
	j = vcall("GET", "/admin/v1/volumes/v1", NULL, 200, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "attached");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "attachment"), "host")), "hv1");
	json_decref(j);
	json_decref(vcall("POST", "/admin/v1/volumes/v1/detach", NULL, 200, NULL));

	/* Resize, diff, delete. */
	j = vcall("PATCH", "/admin/v1/volumes/v1", "{\"size\":2147483648,\"bps_limit\":7}", 200,
		  NULL);
	assert_int_equal(json_integer_value(json_object_get(j, "size")), 2147483648LL);
	assert_int_equal(json_integer_value(json_object_get(j, "bps_limit")), 7);
	assert_int_equal(json_integer_value(json_object_get(j, "iops_limit")), 100);
	json_decref(j);
	json_decref(
	    vcall("PATCH", "/admin/v1/volumes/v1", "{\"size\":1048576}", 400, "InvalidArgument"));
	j = vcall("GET", "/admin/v1/volumes/v1/diff?from=s1", NULL, 200, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "from")), "s1");
	assert_true(json_is_null(json_object_get(j, "to")));
	assert_true(json_is_array(json_object_get(j, "ranges")));
	json_decref(j);
	json_decref(
	    vcall("GET", "/admin/v1/volumes/v1/diff?from=s1&to=s2", NULL, 404, "NoSuchSnapshot"));
	j = call("PUT", "/admin/v1/volumes/v1", "{}", ROOT_KEY, ROOT_SECRET, NULL, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET, PATCH, DELETE");
	json_decref(j);
	free(r.body);
	json_decref(vcall("DELETE", "/admin/v1/volumes/v1?force=true", NULL, 204, NULL));
	j = vcall("GET", "/admin/v1/volumes", NULL, 200, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "volumes")), 0);
	json_decref(j);
}

static void test_admin_image_routes_without_registry_issue7(void **state)
{
	(void)state;
	json_t *j;
	/* No registry in this server: the image routes answer 503, their
	 * neighbours 404/405 as usual. */
	json_decref(vcall("GET", "/admin/v1/images/df", NULL, 503, "ServiceUnavailable"));
	json_decref(vcall("POST", "/admin/v1/images/register", "{\"uri\":\"s3://b/k\"}", 503,
			  "ServiceUnavailable"));
	json_decref(
	    vcall("POST", "/admin/v1/volumes/v/upload-image", NULL, 503, "ServiceUnavailable"));
	json_decref(vcall("POST", "/admin/v1/volumes", "{\"name\":\"vi\",\"image\":\"x\"}", 503,
			  "ServiceUnavailable"));
	json_decref(vcall("GET", "/admin/v1/images/nope", NULL, 404, "NotFound"));
	json_decref(vcall("GET", "/admin/v1/images/register", NULL, 405, "MethodNotAllowed"));
	struct resp r;
	j = call("GET", "/admin/v1/images/df", NULL, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 403); /* unsigned */
	json_decref(j);
	free(r.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_admin_health_ok),
	    cmocka_unit_test(test_admin_volumes_issue6),
	    cmocka_unit_test(test_admin_metrics_prometheus_text),
	    cmocka_unit_test(test_admin_unsigned_and_unknown_key_denied),
	    cmocka_unit_test(test_admin_user_and_key_lifecycle),
	    cmocka_unit_test(test_admin_body_hash_checked),
	    cmocka_unit_test(test_admin_unknown_paths_and_methods),
	    cmocka_unit_test(test_admin_listen_in_use_reports_eaddrinuse),
	    cmocka_unit_test(test_admin_pool_stats_lists_devices),
	    cmocka_unit_test(test_admin_jobs_bad_input_400),
	    cmocka_unit_test(test_admin_job_runs_reports_and_409_while_busy),
	    cmocka_unit_test(test_admin_image_routes_without_registry_issue7),
	    cmocka_unit_test(test_admin_health_503_when_stopping),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
