/* tests/unit/test_s3_tokens.c - what the object store gives the image
 * registry (issue 7): bearer tokens (objstore/s3_tokens.c), object links
 * and lookups (s3_link.c), and the system bucket's S3 rules
 * (s3_sysbucket.c), over a real pool and S3 server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "chunkstore/chunkstore.h"
#include "core/hash.h"
#include "objstore/s3.h"
#include "test_s3_util.h"

static struct s3t T;
static struct s3t_resp R;
static struct s3_key alice_key, bob_key;

#define ROOT .key = S3T_ROOT_KEY, .secret = S3T_ROOT_SECRET
#define ALICE .key = alice_key.id, .secret = alice_key.secret
#define BOB .key = bob_key.id, .secret = bob_key.secret
#define SYS "/" S3_SYSTEM_BUCKET

static long req(const struct s3t_req *rq)
{
	s3t_resp_free(&R);
	assert_int_equal(s3t_do(&T, rq, &R), 0);
	return R.status;
}
#define DO(...) req(&(struct s3t_req){__VA_ARGS__})

static int srv_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	int rc = s3t_start(&T, NULL);
	if (rc)
		return rc == 77 ? (exit(77), -1) : -1;
	if (s3_user_create(T.pool, "alice") || s3_user_create(T.pool, "bob") ||
	    s3_key_create(T.pool, "alice", &alice_key) || s3_key_create(T.pool, "bob", &bob_key))
		return -1;
	return 0;
}

static int srv_teardown(void **state)
{
	(void)state;
	s3t_resp_free(&R);
	s3t_stop(&T);
	curl_global_cleanup();
	return 0;
}

/* ---- tokens ---- */

static void token_id(const char *tok, char id[S3_TOKEN_ID_HEX + 1])
{
	uint8_t md[32];
	char hex[65];
	unsigned n = 0;
	assert_int_equal(EVP_Digest(tok, strlen(tok), md, &n, EVP_sha256(), NULL), 1);
	hash_hex(md, 32, hex);
	memcpy(id, hex, S3_TOKEN_ID_HEX);
	id[S3_TOKEN_ID_HEX] = 0;
}

static bool listed(const char *user, const char *id)
{
	struct s3_token l[64];
	long n = s3_token_list(T.pool, user, l, 64);
	assert_true(n >= 0);
	for (long i = 0; i < n; i++)
		if (strcmp(l[i].id, id) == 0)
			return true;
	return false;
}

static void test_token_create_lookup(void **state)
{
	(void)state;
	char tok[S3_TOKEN_HEX + 1], tok2[S3_TOKEN_HEX + 1], id[S3_TOKEN_ID_HEX + 1];
	struct s3_token t, l;

	assert_int_equal(s3_token_create(T.pool, "alice", 3600, tok, &t), 0);
	assert_int_equal(strlen(tok), S3_TOKEN_HEX);
	assert_int_equal(strspn(tok, "0123456789abcdef"), S3_TOKEN_HEX);
	/* the id is the first digits of SHA-256(token): computed here too */
	token_id(tok, id);
	assert_string_equal(t.id, id);
	assert_string_equal(t.user, "alice");
	assert_int_equal(t.expires_ns, t.created_ns + 3600ull * 1000000000u);
	assert_true(t.created_ns / 1000000000u >= (uint64_t)time(NULL) - 5);

	assert_int_equal(s3_token_lookup(T.pool, tok, &l), 0);
	assert_string_equal(l.user, "alice");
	assert_string_equal(l.id, id);
	assert_int_equal(l.expires_ns, t.expires_ns);

	/* Two tokens are two random strings. */
	assert_int_equal(s3_token_create(T.pool, "alice", 0, tok2, &t), 0);
	assert_string_not_equal(tok, tok2);
	assert_int_equal(t.expires_ns, 0); /* never */
	assert_int_equal(s3_token_lookup(T.pool, tok2, &l), 0);

	/* Unknown, altered, short and empty tokens are unknown. */
	char bad[S3_TOKEN_HEX + 1];
	memcpy(bad, tok, sizeof(bad));
	bad[10] = bad[10] == '0' ? '1' : '0';
	assert_int_equal(s3_token_lookup(T.pool, bad, &l), CAIRN_ENOTFOUND);
	assert_int_equal(s3_token_lookup(T.pool, "abc", &l), CAIRN_ENOTFOUND);
	assert_int_equal(s3_token_lookup(T.pool, "", &l), CAIRN_ENOTFOUND);
	/* Uppercase is another string, so another hash. */
	char upper[S3_TOKEN_HEX + 1];
	for (int i = 0; i <= S3_TOKEN_HEX; i++)
		upper[i] = (tok[i] >= 'a' && tok[i] <= 'f') ? (char)(tok[i] - 32) : tok[i];
	if (strcmp(upper, tok) != 0)
		assert_int_equal(s3_token_lookup(T.pool, upper, &l), CAIRN_ENOTFOUND);

	/* No token for a user that does not exist (or cannot). */
	assert_int_equal(s3_token_create(T.pool, "nobody", 60, tok2, &t), CAIRN_ENOTFOUND);
	assert_int_equal(s3_token_create(T.pool, "bad/name", 60, tok2, &t), CAIRN_ENOTFOUND);
}

static void test_token_expire(void **state)
{
	(void)state;
	char tok[S3_TOKEN_HEX + 1], tok2[S3_TOKEN_HEX + 1];
	struct s3_token t, t2, l;

	assert_int_equal(s3_token_create(T.pool, "bob", 1, tok, &t), 0);
	assert_int_equal(s3_token_lookup(T.pool, tok, &l), 0);
	assert_true(listed("bob", t.id));
	/* Past its expiry (1 s; the wait is generous, not a race). */
	usleep(1300 * 1000);
	assert_int_equal(s3_token_lookup(T.pool, tok, &l), -EKEYEXPIRED);
	/* Listed until the next create or delete sweeps it. */
	assert_true(listed("bob", t.id));
	assert_int_equal(s3_token_create(T.pool, "bob", 60, tok2, &t2), 0);
	assert_false(listed("bob", t.id));
	assert_true(listed("bob", t2.id));
	assert_int_equal(s3_token_lookup(T.pool, tok, &l), CAIRN_ENOTFOUND);
	assert_int_equal(s3_token_delete(T.pool, t2.id), 0);
}

static void test_token_list_delete(void **state)
{
	(void)state;
	char tok[3][S3_TOKEN_HEX + 1];
	struct s3_token t[3], l[64], x;

	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    s3_token_create(T.pool, i == 2 ? "bob" : "alice", 600, tok[i], &t[i]), 0);
	long n = s3_token_list(T.pool, NULL, l, 64);
	assert_true(n >= 3);
	for (long i = 1; i < n; i++) /* sorted by id */
		assert_true(strcmp(l[i - 1].id, l[i].id) < 0);
	n = s3_token_list(T.pool, "bob", l, 64);
	for (long i = 0; i < n; i++)
		assert_string_equal(l[i].user, "bob");
	assert_true(listed("bob", t[2].id));
	assert_false(listed("bob", t[0].id));
	assert_true(listed("alice", t[0].id));
	/* max caps the answer */
	assert_int_equal(s3_token_list(T.pool, NULL, l, 1), 1);

	/* by id */
	assert_int_equal(s3_token_delete(T.pool, t[0].id), 0);
	assert_int_equal(s3_token_lookup(T.pool, tok[0], &x), CAIRN_ENOTFOUND);
	assert_false(listed(NULL, t[0].id));
	assert_int_equal(s3_token_delete(T.pool, t[0].id), CAIRN_ENOTFOUND);
	assert_int_equal(s3_token_lookup(T.pool, tok[1], &x), 0); /* others stay */

	/* by a longer (odd-length) prefix of the hash, in upper case */
	char hex[65], pre[12];
	uint8_t md[32];
	unsigned mdl;
	EVP_Digest(tok[1], S3_TOKEN_HEX, md, &mdl, EVP_sha256(), NULL);
	hash_hex(md, 32, hex);
	for (int i = 0; i < 11; i++)
		pre[i] = (hex[i] >= 'a' && hex[i] <= 'f') ? (char)(hex[i] - 32) : hex[i];
	pre[11] = 0;
	assert_int_equal(s3_token_delete(T.pool, pre), 0);
	assert_int_equal(s3_token_lookup(T.pool, tok[1], &x), CAIRN_ENOTFOUND);

	/* ids too short, not hex, or unknown */
	assert_int_equal(s3_token_delete(T.pool, "abcd"), CAIRN_ENOTFOUND);
	assert_int_equal(s3_token_delete(T.pool, "zzzzzzzz"), CAIRN_ENOTFOUND);
	assert_int_equal(s3_token_delete(T.pool, NULL), CAIRN_ENOTFOUND);
	char other[S3_TOKEN_ID_HEX + 1];
	snprintf(other, sizeof(other), "%s", t[2].id);
	other[0] = other[0] == 'f' ? '0' : 'f';
	if (!listed(NULL, other))
		assert_int_equal(s3_token_delete(T.pool, other), CAIRN_ENOTFOUND);
	assert_int_equal(s3_token_delete(T.pool, t[2].id), 0);
}

static void test_token_user_deleted(void **state)
{
	(void)state;
	char tok[S3_TOKEN_HEX + 1], keep[S3_TOKEN_HEX + 1];
	struct s3_token t, k, x;

	assert_int_equal(s3_user_create(T.pool, "carol"), 0);
	assert_int_equal(s3_token_create(T.pool, "carol", 0, tok, &t), 0);
	assert_int_equal(s3_token_create(T.pool, "alice", 0, keep, &k), 0);
	assert_int_equal(s3_token_lookup(T.pool, tok, &x), 0);
	assert_int_equal(s3_user_delete(T.pool, "carol"), 0);
	assert_int_equal(s3_token_lookup(T.pool, tok, &x), CAIRN_ENOTFOUND);
	assert_false(listed(NULL, t.id)); /* removed with the user */
	assert_int_equal(s3_token_lookup(T.pool, keep, &x), 0);
	/* A new user of the same name does not inherit the token. */
	assert_int_equal(s3_user_create(T.pool, "carol"), 0);
	assert_int_equal(s3_token_lookup(T.pool, tok, &x), CAIRN_ENOTFOUND);
	assert_int_equal(s3_user_delete(T.pool, "carol"), 0);
	assert_int_equal(s3_token_delete(T.pool, k.id), 0);
}

/* ---- links ---- */

struct mk_arg {
	struct cs_mid mid;
	const char *bucket, *key; /* NULL: only make the manifest */
	struct s3_link l;
};

static int mk_fn(struct cs_txn *txn, void *arg)
{
	struct mk_arg *a = arg;
	int rc = cs_manifest_create(txn, &a->mid);
	if (rc == 0 && a->bucket) {
		a->l.mid = &a->mid;
		rc = s3_object_link_txn(txn, T.pool, a->bucket, a->key, &a->l);
	}
	return rc;
}

/* A manifest of data (one reference: the caller's, as an image holds one). */
static void make_manifest(const void *data, size_t len, struct cs_mid *mid)
{
	struct cs_writer *w = NULL;
	struct mk_arg a = {0};
	assert_int_equal(cs_writer_open(T.pool, &w), 0);
	assert_int_equal(cs_writer_write(w, data, len), 0);
	assert_int_equal(cs_writer_finish(w), 0);
	assert_int_equal(cs_commit(T.pool, w, mk_fn, &a), 0);
	cs_writer_free(w);
	*mid = a.mid;
}

static void md5_of(const void *data, size_t len, uint8_t out[16])
{
	unsigned n = 0;
	assert_int_equal(EVP_Digest(data, len, out, &n, EVP_md5(), NULL), 1);
}

struct link_arg {
	const char *bucket, *key;
	struct s3_link l;
	bool unlink;
};

static int link_fn(struct cs_txn *txn, void *arg)
{
	struct link_arg *a = arg;
	if (a->unlink)
		return s3_object_unlink_txn(txn, T.pool, a->bucket, a->key);
	return s3_object_link_txn(txn, T.pool, a->bucket, a->key, &a->l);
}

static int do_link(const char *bucket, const char *key, const struct cs_mid *mid, uint64_t size,
		   const uint8_t md5[16], const char *owner, const char *ctype)
{
	struct link_arg a = {.bucket = bucket, .key = key};
	a.l.mid = mid;
	a.l.size = size;
	memcpy(a.l.md5, md5, 16);
	a.l.owner = owner;
	a.l.content_type = ctype;
	return cs_commit(T.pool, NULL, link_fn, &a);
}

static int do_unlink(const char *bucket, const char *key)
{
	struct link_arg a = {.bucket = bucket, .key = key, .unlink = true};
	return cs_commit(T.pool, NULL, link_fn, &a);
}

static int unref_fn(struct cs_txn *txn, void *arg)
{
	return cs_manifest_unref(txn, arg);
}

/* Alive = the manifest still has a reference (cs_manifest_usage refuses
 * dead ones). */
static bool alive(const struct cs_mid *mid)
{
	struct cs_usage u;
	int rc = cs_manifest_usage(T.pool, mid, 1, &u);
	assert_true(rc == 0 || rc == CAIRN_ENOTFOUND);
	return rc == 0;
}

static void test_link_resolve(void **state)
{
	(void)state;
	enum { N = 300000 };
	uint8_t *d1 = malloc(N), *d2 = malloc(N / 2), md1[16], md2[16];
	struct cs_mid m1, m2;
	struct s3_object_info oi;
	struct cs_stats st0, st1;

	for (size_t i = 0; i < N; i++)
		d1[i] = (uint8_t)(i * 7 + i / 4096);
	for (size_t i = 0; i < N / 2; i++)
		d2[i] = (uint8_t)(i * 13 + 5);
	md5_of(d1, N, md1);
	md5_of(d2, N / 2, md2);
	assert_int_equal(DO(.method = "PUT", .path = "/lnk", ROOT), 200);
	make_manifest(d1, N, &m1);
	make_manifest(d2, N / 2, &m2);

	/* link: the object is the manifest, for S3 as for the registry */
	assert_int_equal(cs_pool_stats(T.pool, &st0), 0);
	assert_int_equal(do_link("lnk", "img/one", &m1, N, md1, "alice", NULL), 0);
	assert_int_equal(cs_pool_stats(T.pool, &st1), 0);
	assert_int_equal(st1.logical_bytes, st0.logical_bytes + N); /* one more reference */
	assert_int_equal(s3_object_resolve(T.pool, "lnk", "img/one", &oi), 0);
	assert_memory_equal(oi.mid, m1.b, 16);
	assert_int_equal(oi.size, N);
	assert_memory_equal(oi.md5, md1, 16);
	assert_int_equal(oi.parts, 0);
	assert_string_equal(oi.owner, "alice");
	assert_string_equal(oi.bucket_owner, "root");
	assert_string_equal(oi.content_type, "application/octet-stream");

	assert_int_equal(DO(.method = "GET", .path = "/lnk/img/one", ROOT), 200);
	assert_int_equal(R.len, N);
	assert_memory_equal(R.body, d1, N);
	char etag[64], hex[33];
	hash_hex(md1, 16, hex);
	snprintf(etag, sizeof(etag), "\"%s\"", hex);
	char hv[80];
	assert_string_equal(s3t_header(&R, "ETag", hv, sizeof(hv)), etag);
	assert_int_equal(DO(.method = "GET", .path = "/lnk", .query = "list-type=2", ROOT), 200);
	assert_true(s3t_body_has(&R, "<Key>img/one</Key>"));
	assert_true(s3t_body_has(&R, "<Size>300000</Size>"));

	/* Replace the link: m1 loses the link's reference. Drop the caller's
	 * own too and m1 is dead; had the old reference leaked, it would
	 * still be alive. */
	assert_int_equal(do_link("lnk", "img/one", &m2, N / 2, md2, "alice", "text/x-test"), 0);
	assert_true(alive(&m1));
	assert_int_equal(cs_commit(T.pool, NULL, unref_fn, &m1), 0);
	assert_false(alive(&m1));
	assert_int_equal(s3_object_resolve(T.pool, "lnk", "img/one", &oi), 0);
	assert_memory_equal(oi.mid, m2.b, 16);
	assert_string_equal(oi.content_type, "text/x-test");
	assert_int_equal(DO(.method = "GET", .path = "/lnk/img/one", ROOT), 200);
	assert_int_equal(R.len, N / 2);
	assert_memory_equal(R.body, d2, N / 2);

	/* Relinking to the manifest it holds changes no count. */
	assert_int_equal(cs_pool_stats(T.pool, &st0), 0);
	assert_int_equal(do_link("lnk", "img/one", &m2, N / 2, md2, "alice", NULL), 0);
	assert_int_equal(cs_pool_stats(T.pool, &st1), 0);
	assert_int_equal(st1.logical_bytes, st0.logical_bytes);

	/* A long key (group records), next to a short one sharing its prefix. */
	char lk[701];
	memset(lk, 'k', 700);
	lk[700] = 0;
	memcpy(lk, "img/", 4);
	assert_int_equal(do_link("lnk", lk, &m2, N / 2, md2, "bob", NULL), 0);
	lk[650] = 0; /* another long key, same first 400 bytes */
	assert_int_equal(do_link("lnk", lk, &m2, N / 2, md2, "bob", NULL), 0);
	lk[650] = 'k';
	assert_int_equal(s3_object_resolve(T.pool, "lnk", lk, &oi), 0);
	assert_string_equal(oi.owner, "bob");
	assert_memory_equal(oi.mid, m2.b, 16);
	assert_int_equal(
	    DO(.method = "GET", .path = "/lnk", .query = "list-type=2&prefix=img%2F", ROOT), 200);
	assert_true(s3t_body_has(&R, "<KeyCount>3</KeyCount>"));
	char path[800];
	snprintf(path, sizeof(path), "/lnk/%s", lk);
	assert_int_equal(DO(.method = "HEAD", .path = path, ROOT), 200);
	assert_int_equal(do_unlink("lnk", lk), 0);
	assert_int_equal(s3_object_resolve(T.pool, "lnk", lk, &oi), CAIRN_ENOTFOUND);
	assert_int_equal(do_unlink("lnk", lk), CAIRN_ENOTFOUND);
	lk[650] = 0;
	assert_int_equal(s3_object_resolve(T.pool, "lnk", lk, &oi), 0);
	assert_int_equal(do_unlink("lnk", lk), 0);

	/* Unlink drops the reference: m2 is held by the caller and the
	 * short key only; unlink that, unref the caller's, and it is dead. */
	assert_int_equal(do_unlink("lnk", "img/one"), 0);
	assert_true(alive(&m2));
	assert_int_equal(cs_commit(T.pool, NULL, unref_fn, &m2), 0);
	assert_false(alive(&m2));
	assert_int_equal(DO(.method = "GET", .path = "/lnk/img/one", ROOT), 404);

	/* Errors: no bucket, a size that is not the manifest's, bad names,
	 * a dead manifest. */
	struct cs_mid m3;
	make_manifest(d1, 1000, &m3);
	assert_int_equal(do_link("nosuchbkt", "k", &m3, 1000, md1, "alice", NULL), CAIRN_ENOTFOUND);
	assert_int_equal(do_link("lnk", "k", &m3, 999, md1, "alice", NULL), CAIRN_EINVAL);
	assert_int_equal(do_link("lnk", "", &m3, 1000, md1, "alice", NULL), CAIRN_EINVAL);
	assert_int_equal(do_link("lnk", "k", &m3, 1000, md1, "", NULL), CAIRN_EINVAL);
	assert_int_equal(do_link("lnk", "k", &m1, N, md1, "alice", NULL), CAIRN_ENOTFOUND);
	assert_int_equal(s3_object_resolve(T.pool, "lnk", "k", &oi), CAIRN_ENOTFOUND);
	assert_int_equal(s3_object_resolve(T.pool, "nosuchbkt", "k", &oi), CAIRN_ENOTFOUND);
	/* An inline manifest (1000 bytes) links and reads like any other. */
	assert_int_equal(do_link("lnk", "small", &m3, 1000, md1, "alice", NULL), 0);
	assert_int_equal(DO(.method = "GET", .path = "/lnk/small", ROOT), 200);
	assert_int_equal(R.len, 1000);
	assert_memory_equal(R.body, d1, 1000);
	assert_int_equal(do_unlink("lnk", "small"), 0);
	assert_int_equal(cs_commit(T.pool, NULL, unref_fn, &m3), 0);
	assert_int_equal(DO(.method = "DELETE", .path = "/lnk", ROOT), 204);
	free(d1);
	free(d2);
}

/* ---- the system bucket over S3 ---- */

static void test_system_bucket(void **state)
{
	(void)state;
	uint8_t data[20000], md[16];
	struct cs_mid m;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i % 251);
	md5_of(data, sizeof(data), md);
	/* made at start, idempotent */
	assert_int_equal(s3_system_bucket_ensure(T.pool), 0);
	assert_int_equal(DO(.method = "HEAD", .path = SYS, ROOT), 200);
	assert_int_equal(DO(.method = "GET", .path = SYS, .query = "list-type=2", ROOT), 200);
	assert_true(s3t_body_has(&R, "<KeyCount>0</KeyCount>"));
	assert_int_equal(DO(.method = "GET", .path = SYS, .query = "location", ROOT), 200);
	assert_int_equal(DO(.method = "GET", .path = "/", ROOT), 200);
	assert_true(s3t_body_has(&R, "<Name>" S3_SYSTEM_BUCKET "</Name>"));

	/* CreateBucket: taken, for everyone */
	assert_int_equal(DO(.method = "PUT", .path = SYS, ROOT), 409);
	assert_true(s3t_body_has(&R, "BucketAlreadyExists"));
	assert_int_equal(DO(.method = "PUT", .path = SYS, ALICE), 409);
	assert_true(s3t_body_has(&R, "BucketAlreadyExists"));

	/* An image of alice's, as the registry links it. */
	make_manifest(data, sizeof(data), &m);
	assert_int_equal(do_link(S3_SYSTEM_BUCKET, "img-1", &m, sizeof(data), md, "alice", NULL),
			 0);

	/* reads: root and the owner */
	assert_int_equal(DO(.method = "GET", .path = SYS "/img-1", ROOT), 200);
	assert_int_equal(R.len, sizeof(data));
	assert_int_equal(DO(.method = "GET", .path = SYS "/img-1", ALICE), 200);
	assert_int_equal(R.len, sizeof(data));
	assert_memory_equal(R.body, data, sizeof(data));
	assert_int_equal(DO(.method = "HEAD", .path = SYS "/img-1", ALICE), 200);
	assert_int_equal(DO(.method = "GET", .path = SYS "/img-1", BOB), 403);
	assert_true(s3t_body_has(&R, "AccessDenied"));
	/* a missing image looks the same as another's to a non-root user */
	assert_int_equal(DO(.method = "GET", .path = SYS "/img-2", ALICE), 403);
	assert_int_equal(DO(.method = "GET", .path = SYS "/img-2", ROOT), 404);
	/* listing and bucket reads: root only */
	assert_int_equal(DO(.method = "GET", .path = SYS, .query = "list-type=2", ROOT), 200);
	assert_true(s3t_body_has(&R, "<Key>img-1</Key>"));
	assert_int_equal(DO(.method = "GET", .path = SYS, .query = "list-type=2", ALICE), 403);
	assert_int_equal(DO(.method = "GET", .path = SYS, ALICE), 403);
	assert_int_equal(DO(.method = "HEAD", .path = SYS, ALICE), 403);
	assert_int_equal(DO(.method = "GET", .path = SYS, .query = "location", ALICE), 403);

	/* writes: nobody, root included; the message names the registry */
	assert_int_equal(DO(.method = "PUT", .path = SYS "/x", .body = "hi", .blen = 2, ROOT), 403);
	assert_true(s3t_body_has(&R, "image registry"));
	assert_int_equal(DO(.method = "PUT", .path = SYS "/img-1", .body = "hi", .blen = 2, ALICE),
			 403);
	assert_int_equal(DO(.method = "DELETE", .path = SYS "/img-1", ROOT), 403);
	assert_int_equal(DO(.method = "DELETE", .path = SYS "/img-1", ALICE), 403);
	assert_int_equal(DO(.method = "DELETE", .path = SYS, ROOT), 403);
	assert_int_equal(DO(.method = "POST", .path = SYS "/mp", .query = "uploads", ROOT), 403);
	assert_int_equal(DO(.method = "PUT", .path = SYS, .query = "acl", ROOT), 403);
	assert_int_equal(
	    DO(.method = "PUT", .path = SYS, .query = "policy", .body = "{}", .blen = 2, ROOT),
	    403);
	assert_int_equal(DO(.method = "PUT", .path = SYS "/img-1", .query = "acl", ROOT), 403);
	{
		static const char del[] = "<Delete><Object><Key>img-1</Key></Object></Delete>";
		assert_int_equal(DO(.method = "POST", .path = SYS, .query = "delete", .body = del,
				    .blen = sizeof(del) - 1, ROOT),
				 403);
	}
	/* copy into it: refused; copy out of it: its readers only */
	assert_int_equal(DO(.method = "PUT", .path = "/alicebkt", ALICE), 200);
	assert_int_equal(DO(.method = "PUT", .path = "/bobbkt", BOB), 200);
	assert_int_equal(
	    DO(.method = "PUT", .path = "/alicebkt/src", .body = "abc", .blen = 3, ALICE), 200);
	assert_int_equal(DO(.method = "PUT", .path = SYS "/img-1",
			    .hdrs = {"x-amz-copy-source: /alicebkt/src"}, ROOT),
			 403);
	assert_int_equal(DO(.method = "PUT", .path = "/alicebkt/copy",
			    .hdrs = {"x-amz-copy-source: /" S3_SYSTEM_BUCKET "/img-1"}, ALICE),
			 200);
	assert_int_equal(DO(.method = "GET", .path = "/alicebkt/copy", ALICE), 200);
	assert_int_equal(R.len, sizeof(data));
	assert_memory_equal(R.body, data, sizeof(data));
	assert_int_equal(DO(.method = "PUT", .path = "/bobbkt/copy",
			    .hdrs = {"x-amz-copy-source: /" S3_SYSTEM_BUCKET "/img-1"}, BOB),
			 403);
	assert_int_equal(DO(.method = "PUT", .path = "/bobbkt/copy",
			    .hdrs = {"x-amz-copy-source: /" S3_SYSTEM_BUCKET "/nope"}, BOB),
			 403);

	/* still there, untouched */
	assert_int_equal(DO(.method = "GET", .path = SYS "/img-1", ROOT), 200);
	assert_memory_equal(R.body, data, sizeof(data));

	/* clean up: the registry unlinks */
	assert_int_equal(do_unlink(S3_SYSTEM_BUCKET, "img-1"), 0);
	assert_int_equal(cs_commit(T.pool, NULL, unref_fn, &m), 0);
	assert_int_equal(DO(.method = "DELETE", .path = "/alicebkt/copy", ALICE), 204);
	assert_int_equal(DO(.method = "DELETE", .path = "/alicebkt/src", ALICE), 204);
	assert_int_equal(DO(.method = "DELETE", .path = "/alicebkt", ALICE), 204);
	assert_int_equal(DO(.method = "DELETE", .path = "/bobbkt", BOB), 204);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_token_create_lookup), cmocka_unit_test(test_token_expire),
	    cmocka_unit_test(test_token_list_delete),	cmocka_unit_test(test_token_user_deleted),
	    cmocka_unit_test(test_link_resolve),	cmocka_unit_test(test_system_bucket),
	};
	return cmocka_run_group_tests(tests, srv_setup, srv_teardown);
}
