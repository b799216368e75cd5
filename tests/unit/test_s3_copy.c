/* tests/unit/test_s3_copy.c - issue 4: the write conditions (If-None-Match:
 * *, If-Match) against real object records in LMDB, and the copy helpers
 * (x-amz-copy-source-range, field copying for COPY/REPLACE, ETags). The
 * HTTP side is tests/integration/150-copy.py and 151-conditional-writes.py. */
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

#include "core/err.h"
#include "core/fault.h"
#include "objstore/s3_server_internal.h"
#include "test_s3_util.h"

/* ---- s3_copy_range_parse ---- */

static void test_copy_range_bounds(void **state)
{
	(void)state;
	struct s3_range rg;
	assert_int_equal(s3_copy_range_parse("bytes=0-4", 5, &rg), 0);
	assert_int_equal(rg.start, 0);
	assert_int_equal(rg.end, 4);
	assert_int_equal(s3_copy_range_parse("bytes=3-3", 5, &rg), 0);
	assert_int_equal(rg.start, 3);
	assert_int_equal(rg.end, 3);
	/* last byte one past the end, first past last */
	assert_int_equal(s3_copy_range_parse("bytes=0-5", 5, &rg), CAIRN_ERANGE);
	assert_int_equal(s3_copy_range_parse("bytes=0-21", 5, &rg), CAIRN_ERANGE);
	assert_int_equal(s3_copy_range_parse("bytes=4-3", 5, &rg), CAIRN_ERANGE);
	assert_int_equal(s3_copy_range_parse("bytes=0-0", 0, &rg), CAIRN_ERANGE);
	/* big offsets: 6 GiB sources are fine here (the 5 GiB cap is CopyObject's) */
	assert_int_equal(s3_copy_range_parse("bytes=5368709120-6442450943", 6442450944ull, &rg), 0);
	assert_int_equal(rg.end, 6442450943ull);
}

static void test_copy_range_malformed(void **state)
{
	(void)state;
	struct s3_range rg;
	const char *bad[] = {NULL,
			     "",
			     "bytes=",
			     "bytes=-4",
			     "bytes=0-",
			     "bytes=a-b",
			     "bytes=0-1,2-3",
			     "bytes= 0-1",
			     "octets=0-1",
			     "bytes=0--1",
			     "bytes=99999999999999999999-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(s3_copy_range_parse(bad[i], 100, &rg), CAIRN_EINVAL);
}

/* ---- fields ---- */

static void add(struct s3_fbuf *f, uint8_t tag, const char *name, const char *val)
{
	s3_fbuf_add(f, tag, name, strlen(name), val, strlen(val));
}

/* A record (header + fields) in malloc'd memory, parsed into *o. */
static uint8_t *make_rec(const struct s3_fbuf *f, const char *md5hex, uint32_t parts,
			 struct s3_objinfo *o, size_t *len)
{
	struct s3_obj_rec rec = {.version = S3_OBJ_VERSION, .parts = parts, .nfields = f->n};
	for (int i = 0; i < 16; i++) {
		unsigned b;
		sscanf(md5hex + 2 * i, "%2x", &b);
		rec.md5[i] = (uint8_t)b;
	}
	*len = sizeof(rec) + f->len;
	uint8_t *p = malloc(*len);
	assert_non_null(p);
	memcpy(p, &rec, sizeof(rec));
	if (f->len)
		memcpy(p + sizeof(rec), f->p, f->len);
	assert_int_equal(s3_obj_parse(p, *len, o), 0);
	return p;
}

static bool has_field(const uint8_t *p, size_t len, uint8_t tag, const char *name, const char *val)
{
	const uint8_t *end = p + len;
	uint8_t t;
	const char *n, *v;
	size_t nl, vl;
	while (s3_field_next(&p, end, &t, &n, &nl, &v, &vl) == 1)
		if (t == tag && nl == strlen(name) && memcmp(n, name, nl) == 0 &&
		    vl == strlen(val) && memcmp(v, val, vl) == 0)
			return true;
	return false;
}

static void test_copy_fields_copy_and_replace(void **state)
{
	(void)state;
	struct s3_fbuf src = {0}, f = {0};
	struct s3_objinfo o;
	size_t len;
	add(&src, S3_F_CONTENT_TYPE, "", "image/png");
	add(&src, S3_F_USER_META, "colour", "blue");
	add(&src, S3_F_OWNER, "", "alice");
	add(&src, S3_F_CHECKSUM, "",
	    "\x01\x01\x02\x03"
	    "abcd");
	add(&src, S3_F_PART_SIZES, "", "partsizes");
	add(&src, 200, "future", "tag"); /* a newer writer's field */
	assert_int_equal(src.err, 0);
	uint8_t *rec = make_rec(&src, "0123456789abcdef0123456789abcdef", 0, &o, &len);

	/* COPY: everything but the owner, which becomes the caller */
	s3_copy_fields(&o, false, "bob", &f);
	assert_int_equal(f.err, 0);
	assert_int_equal(f.n, 6);
	assert_true(has_field(f.p, f.len, S3_F_CONTENT_TYPE, "", "image/png"));
	assert_true(has_field(f.p, f.len, S3_F_USER_META, "colour", "blue"));
	assert_true(has_field(f.p, f.len, S3_F_CHECKSUM, "",
			      "\x01\x01\x02\x03"
			      "abcd"));
	assert_true(has_field(f.p, f.len, S3_F_PART_SIZES, "", "partsizes"));
	assert_true(has_field(f.p, f.len, 200, "future", "tag"));
	assert_true(has_field(f.p, f.len, S3_F_OWNER, "", "bob"));
	assert_false(has_field(f.p, f.len, S3_F_OWNER, "", "alice"));
	free(f.p);

	/* REPLACE: the request's fields, plus only what describes the bytes */
	memset(&f, 0, sizeof(f));
	add(&f, S3_F_CONTENT_TYPE, "", "text/plain");
	add(&f, S3_F_OWNER, "", "bob");
	s3_copy_fields(&o, true, "bob", &f);
	assert_int_equal(f.err, 0);
	assert_int_equal(f.n, 4);
	assert_true(has_field(f.p, f.len, S3_F_CONTENT_TYPE, "", "text/plain"));
	assert_false(has_field(f.p, f.len, S3_F_CONTENT_TYPE, "", "image/png"));
	assert_false(has_field(f.p, f.len, S3_F_USER_META, "colour", "blue"));
	assert_true(has_field(f.p, f.len, S3_F_CHECKSUM, "",
			      "\x01\x01\x02\x03"
			      "abcd"));
	assert_true(has_field(f.p, f.len, S3_F_PART_SIZES, "", "partsizes"));
	assert_false(has_field(f.p, f.len, 200, "future", "tag"));
	free(f.p);
	free(src.p);
	free(rec);
}

static void test_obj_etag_single_and_multipart(void **state)
{
	(void)state;
	struct s3_fbuf none = {0};
	struct s3_objinfo o;
	size_t len;
	char etag[S3_ETAG_MAX];
	uint8_t *rec = make_rec(&none, "d41d8cd98f00b204e9800998ecf8427e", 0, &o, &len);
	s3_obj_etag(&o.rec, etag);
	assert_string_equal(etag, "d41d8cd98f00b204e9800998ecf8427e");
	free(rec);
	rec = make_rec(&none, "00112233445566778899aabbccddeeff", 10000, &o, &len);
	s3_obj_etag(&o.rec, etag);
	assert_string_equal(etag, "00112233445566778899aabbccddeeff-10000");
	free(rec);
}

/* ---- write conditions against LMDB ---- */

struct wc_env {
	char dir[64];
	struct meta_env *env;
};

static int wc_setup(void **state)
{
	struct wc_env *e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	snprintf(e->dir, sizeof(e->dir), "/tmp/cairn-test-s3copy.XXXXXX");
	struct meta_opts mo = {.map_size = 64u << 20};
	if (!mkdtemp(e->dir) || meta_open(e->dir, &mo, &e->env) < 0) {
		free(e);
		return -1;
	}
	*state = e;
	return 0;
}

static int wc_teardown(void **state)
{
	struct wc_env *e = *state;
	char cmd[128];
	meta_close(e->env);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", e->dir);
	free(e);
	return 0;
}

static void put_key(struct meta_env *env, const char *key, const char *md5hex, uint32_t parts)
{
	struct s3_fbuf none = {0};
	struct s3_objinfo o;
	struct meta_txn *t;
	struct cs_mid old;
	bool had;
	size_t len;
	uint8_t *rec = make_rec(&none, md5hex, parts, &o, &len);
	assert_int_equal(meta_txn_begin(env, true, &t), 0);
	assert_int_equal(s3_idx_put(t, 7, "bkt", key, strlen(key), rec, len, &old, &had), 0);
	assert_int_equal(meta_txn_commit(t), 0);
	free(rec);
}

static int check(struct meta_env *env, const char *key, const struct s3_write_cond *c)
{
	struct meta_txn *t;
	assert_int_equal(meta_txn_begin(env, true, &t), 0);
	int rc = s3_write_cond_check(t, 7, "bkt", key, strlen(key), c);
	meta_txn_abort(t);
	return rc;
}

static void test_write_cond_if_none_match_any(void **state)
{
	struct wc_env *e = *state;
	struct s3_write_cond c = {.if_none_match_any = true};
	char longkey[S3_KEY_INLINE + 40];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = 0;

	assert_int_equal(check(e->env, "a", &c), 0);
	put_key(e->env, "a", "0123456789abcdef0123456789abcdef", 0);
	assert_int_equal(check(e->env, "a", &c), CAIRN_EPRECOND);
	/* a key sharing the prefix, and long keys (group records) */
	assert_int_equal(check(e->env, "ab", &c), 0);
	assert_int_equal(check(e->env, longkey, &c), 0);
	put_key(e->env, longkey, "0123456789abcdef0123456789abcdef", 0);
	assert_int_equal(check(e->env, longkey, &c), CAIRN_EPRECOND);
	longkey[sizeof(longkey) - 2] = 'z'; /* same group, other key */
	assert_int_equal(check(e->env, longkey, &c), 0);
	/* no condition at all: always 0 */
	struct s3_write_cond none = {0};
	assert_int_equal(check(e->env, "a", &none), 0);
	assert_int_equal(check(e->env, "a", NULL), 0);
}

static void test_write_cond_if_match(void **state)
{
	struct wc_env *e = *state;
	struct s3_write_cond c = {0};

	put_key(e->env, "m", "00112233445566778899aabbccddeeff", 0);
	put_key(e->env, "mp", "ffeeddccbbaa99887766554433221100", 3);
	c.if_match = "\"00112233445566778899aabbccddeeff\"";
	assert_int_equal(check(e->env, "m", &c), 0);
	c.if_match = "00112233445566778899aabbccddeeff"; /* bare */
	assert_int_equal(check(e->env, "m", &c), 0);
	c.if_match = "\"00112233445566778899aabbccddeefe\"";
	assert_int_equal(check(e->env, "m", &c), CAIRN_EPRECOND);
	c.if_match = "\"aaaa\", \"00112233445566778899aabbccddeeff\"";
	assert_int_equal(check(e->env, "m", &c), 0);
	c.if_match = "*";
	assert_int_equal(check(e->env, "m", &c), 0);
	c.if_match = "";
	assert_int_equal(check(e->env, "m", &c), CAIRN_EPRECOND);
	/* multipart ETag: the -N form, not the bare MD5 */
	c.if_match = "\"ffeeddccbbaa99887766554433221100-3\"";
	assert_int_equal(check(e->env, "mp", &c), 0);
	c.if_match = "\"ffeeddccbbaa99887766554433221100\"";
	assert_int_equal(check(e->env, "mp", &c), CAIRN_EPRECOND);
	/* missing key: NoSuchKey, whatever the list says */
	c.if_match = "*";
	assert_int_equal(check(e->env, "missing", &c), CAIRN_ENOTFOUND);
	c.if_match = "\"00112233445566778899aabbccddeeff\"";
	assert_int_equal(check(e->env, "missing", &c), CAIRN_ENOTFOUND);
	/* both (s3_write_cond_parse refuses the pair; the check still fails
	 * closed): If-Match passes, If-None-Match: * then fails */
	c.if_none_match_any = true;
	assert_int_equal(check(e->env, "m", &c), CAIRN_EPRECOND);
}

/* ---- CopyObject through the server, with records edited in LMDB ---- */

static struct s3t T;
static struct s3t_resp R;

#define ROOT .key = S3T_ROOT_KEY, .secret = S3T_ROOT_SECRET

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

/* Rewrites the record of bkt/key: size and an extra field (tag 0: none).
 * The manifest stays; no reference changes. */
struct edit_arg {
	const char *key;
	uint64_t size;
	uint8_t tag;
	const char *val;
	size_t vlen;
};

static int edit_fn(struct cs_txn *txn, void *arg)
{
	struct edit_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	uint32_t part = cs_name_partition(T.pool, "cbkt", 4);
	const void *v;
	size_t vl;
	struct s3_objinfo o;
	struct s3_fbuf f = {0};
	struct cs_mid old;
	bool had;
	int rc = s3_idx_get(t, part, "cbkt", a->key, strlen(a->key), &v, &vl);
	if (rc < 0)
		return rc;
	if ((rc = s3_obj_parse(v, vl, &o)) < 0)
		return rc;
	struct s3_obj_rec rec = o.rec;
	const uint8_t *p = o.fields, *end = o.fields + o.fields_len;
	const char *fn, *fv;
	size_t fnl, fvl;
	uint8_t tag;
	while (s3_field_next(&p, end, &tag, &fn, &fnl, &fv, &fvl) == 1)
		s3_fbuf_add(&f, tag, fn, fnl, fv, fvl);
	if (a->tag)
		s3_fbuf_add(&f, a->tag, "", 0, a->val, a->vlen);
	if (a->size)
		rec.size = a->size;
	rec.nfields = f.n;
	uint8_t *buf = malloc(sizeof(rec) + f.len);
	if (!buf || f.err) {
		free(buf);
		free(f.p);
		return -ENOMEM;
	}
	memcpy(buf, &rec, sizeof(rec));
	memcpy(buf + sizeof(rec), f.p, f.len);
	rc = s3_idx_put(t, part, "cbkt", a->key, strlen(a->key), buf, sizeof(rec) + f.len, &old,
			&had);
	free(buf);
	free(f.p);
	return rc;
}

/* The fields of bkt/key's record, copied out. */
static uint8_t *read_fields(const char *key, size_t *len, struct s3_obj_rec *rec)
{
	struct meta_txn *t;
	const void *v;
	size_t vl;
	struct s3_objinfo o;
	uint32_t part = cs_name_partition(T.pool, "cbkt", 4);
	assert_int_equal(meta_txn_begin(cs_pool_meta(T.pool), false, &t), 0);
	assert_int_equal(s3_idx_get(t, part, "cbkt", key, strlen(key), &v, &vl), 0);
	assert_int_equal(s3_obj_parse(v, vl, &o), 0);
	*rec = o.rec;
	*len = o.fields_len;
	uint8_t *p = malloc(o.fields_len + 1);
	assert_non_null(p);
	memcpy(p, o.fields, o.fields_len);
	meta_txn_abort(t);
	return p;
}

static void test_copy_source_over_5gib_refused(void **state)
{
	(void)state;
	char body[5000];
	memset(body, 'x', sizeof(body));
	assert_int_equal(DO(.method = "PUT", .path = "/cbkt", ROOT), 200);
	assert_int_equal(
	    DO(.method = "PUT", .path = "/cbkt/big", .body = body, .blen = sizeof(body), ROOT),
	    200);
	/* 5 GiB exactly copies; one byte more is refused (S3's message) */
	struct edit_arg a = {.key = "big", .size = 5ull << 30};
	assert_int_equal(cs_commit(T.pool, NULL, edit_fn, &a), 0);
	assert_int_equal(DO(.method = "PUT", .path = "/cbkt/big5", ROOT,
			    .hdrs = {"x-amz-copy-source: /cbkt/big"}),
			 200);
	a.size = (5ull << 30) + 1;
	assert_int_equal(cs_commit(T.pool, NULL, edit_fn, &a), 0);
	assert_int_equal(DO(.method = "PUT", .path = "/cbkt/big6", ROOT,
			    .hdrs = {"x-amz-copy-source: /cbkt/big"}),
			 400);
	assert_true(s3t_body_has(&R, "<Code>InvalidRequest</Code>"));
	assert_true(s3t_body_has(&R, "maximum allowable size for a copy source: 5368709120"));
	assert_int_equal(DO(.method = "HEAD", .path = "/cbkt/big6", ROOT), 404);
	/* put the size back, so the pool stays consistent for teardown */
	a.size = sizeof(body);
	assert_int_equal(cs_commit(T.pool, NULL, edit_fn, &a), 0);
}

static void test_copy_keeps_checksum_field_with_replace(void **state)
{
	(void)state;
	const char ck[] = "\x03\x01\x00\x00"
			  "12345678"; /* CRC64NVME, FULL_OBJECT */
	struct edit_arg a = {.key = "ck", .tag = S3_F_CHECKSUM, .val = ck, .vlen = 12};
	struct s3_obj_rec src, dst;
	size_t sl, dl;
	assert_int_equal(DO(.method = "PUT", .path = "/cbkt/ck", .body = "abc", .blen = 3, ROOT,
			    .hdrs = {"x-amz-meta-a: 1"}),
			 200);
	assert_int_equal(cs_commit(T.pool, NULL, edit_fn, &a), 0);
	assert_int_equal(DO(.method = "PUT", .path = "/cbkt/ck2", ROOT,
			    .hdrs = {"x-amz-copy-source: cbkt/ck",
				     "x-amz-metadata-directive: REPLACE", "x-amz-meta-b: 2"}),
			 200);
	assert_true(s3t_body_has(&R, "<CopyObjectResult"));
	if (!s3t_body_has(&R, "900150983cd24fb0d6963f7d28e17f72&quot;</ETag>")) /* md5("abc") */
		fail_msg("CopyObjectResult: %s", R.body);
	assert_true(s3t_body_has(&R, "<LastModified>"));
	uint8_t *sf = read_fields("ck", &sl, &src);
	uint8_t *df = read_fields("ck2", &dl, &dst);
	{
		/* the checksum field's bytes, exactly */
		const uint8_t *p = df, *end = df + dl;
		uint8_t tag;
		const char *n, *v;
		size_t nl, vl;
		bool found = false;
		while (s3_field_next(&p, end, &tag, &n, &nl, &v, &vl) == 1)
			if (tag == S3_F_CHECKSUM)
				found = vl == 12 && memcmp(v, ck, 12) == 0;
		assert_true(found);
	}
	assert_true(has_field(df, dl, S3_F_USER_META, "b", "2"));
	assert_false(has_field(df, dl, S3_F_USER_META, "a", "1"));
	assert_memory_equal(src.mid, dst.mid, 16); /* the same manifest: no bytes moved */
	assert_memory_equal(src.md5, dst.md5, 16);
	assert_int_equal(src.size, dst.size);
	free(sf);
	free(df);
}

static void test_copy_out_of_memory_fails_the_request_only(void **state)
{
	(void)state;
	assert_int_equal(DO(.method = "PUT", .path = "/cbkt/oom", .body = "oom", .blen = 3, ROOT),
			 200);
	fault_arm("s3.copy_alloc", 1);
	assert_int_equal(DO(.method = "PUT", .path = "/cbkt/oom2", ROOT,
			    .hdrs = {"x-amz-copy-source: cbkt/oom"}),
			 503);
	fault_arm("s3.copy_alloc", 0);
	assert_true(s3t_body_has(&R, "<Code>SlowDown</Code>"));
	assert_int_equal(DO(.method = "HEAD", .path = "/cbkt/oom2", ROOT), 404);
	/* nothing changed: a later copy works and holds a reference of its
	 * own (the copy reads back once the source is gone) */
	assert_int_equal(DO(.method = "PUT", .path = "/cbkt/oom2", ROOT,
			    .hdrs = {"x-amz-copy-source: cbkt/oom"}),
			 200);
	assert_int_equal(DO(.method = "DELETE", .path = "/cbkt/oom", ROOT), 204);
	assert_int_equal(DO(.method = "GET", .path = "/cbkt/oom2", ROOT), 200);
	assert_int_equal(R.len, 3);
	assert_memory_equal(R.body, "oom", 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_copy_range_bounds),
	    cmocka_unit_test(test_copy_range_malformed),
	    cmocka_unit_test(test_copy_fields_copy_and_replace),
	    cmocka_unit_test(test_obj_etag_single_and_multipart),
	    cmocka_unit_test_setup_teardown(test_write_cond_if_none_match_any, wc_setup,
					    wc_teardown),
	    cmocka_unit_test_setup_teardown(test_write_cond_if_match, wc_setup, wc_teardown),
	};
	const struct CMUnitTest srv_tests[] = {
	    cmocka_unit_test(test_copy_source_over_5gib_refused),
	    cmocka_unit_test(test_copy_keeps_checksum_field_with_replace),
	    cmocka_unit_test(test_copy_out_of_memory_fails_the_request_only),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	return rc ? rc : cmocka_run_group_tests(srv_tests, srv_setup, srv_teardown);
}
