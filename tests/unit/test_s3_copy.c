/* tests/unit/test_s3_copy.c - issue 4: the write conditions (If-None-Match:
 * *, If-Match) against real object records in LMDB, and the copy helpers
 * (x-amz-copy-source-range, field copying for COPY/REPLACE, ETags). The
 * HTTP side is tests/integration/150-copy.py and 151-conditional-writes.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "objstore/s3_server_internal.h"

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
	return cmocka_run_group_tests(tests, NULL, NULL);
}
