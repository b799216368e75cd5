/* tests/unit/test_img_claims.c - registry/img_ops.c: the claim an upload
 * holds on an image (img_rec.claim). A stale upload (its image deleted and
 * re-created, another upload claiming it now) must neither commit nor
 * revert; a failed import's revert must commit even when the doc has no
 * room for the error text (issue 7 review). Over a real pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkstore/chunkstore.h"
#include "cs_test.h"
#include "objstore/s3.h"
#include "registry/img_api.h"
#include "registry/img_data.h"

struct fixture {
	char dir[256];
	char tmp[300];
	struct cs_pool *pool;
	struct registry *reg;
	struct img_who who;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct cs_pool_opts o = {0};
	if (!f || cs_test_tmpdir(f->dir, sizeof(f->dir), "imgclaims") < 0)
		return -1;
	o.data_dir = f->dir;
	o.seal_off = true;
	o.gc_interval = -1;
	if (cs_pool_open(&o, &f->pool) < 0 ||
	    s3_users_bootstrap(f->pool, "AKIDCLAIMSTEST0000000",
			       "claims-secret-0123456789abcdefghijklmn") < 0 ||
	    s3_system_bucket_ensure(f->pool) < 0)
		return -1;
	snprintf(f->tmp, sizeof(f->tmp), "%s/tmp", f->dir);
	struct reg_opts ro = {.tmp_dir = f->tmp};
	if (reg_open(f->pool, NULL, &ro, &f->reg) < 0)
		return -1;
	img_who_set(&f->who, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	reg_close(f->reg);
	cs_pool_close(f->pool);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static const char *const ID = "0a1b2c3d-0000-4000-8000-000000000001";

static void create(struct fixture *f, uint8_t id[IMG_ID_LEN])
{
	struct img_resp rs = {0};
	struct img_entry *e = NULL;
	json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "id", ID, "name", "c", "disk_format",
				 "raw", "container_format", "bare");
	assert_int_equal(img_create(f->reg, &f->who, body, &e, &rs), 0);
	json_decref(body);
	memcpy(id, e->rec.id, IMG_ID_LEN);
	img_entry_put(e);
}

static unsigned status(struct fixture *f, const uint8_t id[IMG_ID_LEN], uint64_t *claim,
		       uint32_t *flags)
{
	struct img_entry *e = img_store_get(f->reg->st, id);
	assert_non_null(e);
	unsigned st = e->rec.status;
	if (claim)
		*claim = e->rec.claim;
	if (flags)
		*flags = e->rec.flags;
	img_entry_put(e);
	return st;
}

/* A finished (not committed) upload of n bytes of c. */
static struct img_upload *upload(struct fixture *f, int c, size_t n)
{
	struct img_upload *u = NULL;
	struct img_data_result res;
	struct img_data_opts o = {.max_size = 1 << 30, .tmp_dir = f->tmp};
	char *b = malloc(n);
	assert_non_null(b);
	memset(b, c, n);
	assert_int_equal(img_upload_open(f->pool, &o, "raw", &u), 0);
	assert_int_equal(img_upload_write(u, b, n), 0);
	assert_int_equal(img_upload_finish(u, &res), 0);
	free(b);
	return u;
}

/* Upload A claims X; X is deleted and re-created; upload B claims it. A's
 * revert and A's commit must leave B's claim alone; B then commits. */
static void test_stale_upload_touches_nothing(void **state)
{
	struct fixture *f = *state;
	uint8_t id[IMG_ID_LEN];
	uint64_t ca = 0, cb = 0, now = 0;
	uint32_t flags = 0;
	char why[512] = "";
	struct img_finish fin = {.src = IMG_SRC_BODY};

	create(f, id);
	assert_int_equal(img_claim(f->reg, id, IMG_SAVING, true, why, sizeof(why), &ca), 0);
	assert_int_not_equal(ca, 0);
	struct img_upload *ua = upload(f, 'A', 200000);
	assert_int_equal(img_delete(f->reg, id), 0);
	create(f, id);
	assert_int_equal(img_claim(f->reg, id, IMG_SAVING, true, why, sizeof(why), &cb), 0);
	assert_int_not_equal(cb, ca);
	/* a second claim while B holds it: refused */
	uint64_t cc = 0;
	assert_int_equal(img_claim(f->reg, id, IMG_SAVING, true, why, sizeof(why), &cc), -EBUSY);

	/* A's revert (its connection cut): B's claim stays */
	assert_int_equal(img_revert_queued(f->reg, id, ca, NULL, NULL), 0);
	assert_int_equal(status(f, id, &now, NULL), IMG_SAVING);
	assert_true(now == cb);

	/* A's commit: refused, nothing committed */
	why[0] = '\0';
	assert_int_equal(img_commit_upload(f->reg, id, ca, ua, &fin, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "another upload"));
	assert_int_equal(status(f, id, &now, &flags), IMG_SAVING);
	assert_true(now == cb);
	assert_false(flags & IMG_F_DATA);
	img_upload_free(ua);

	/* B commits: active, claim cleared; a late revert with B's claim is a no-op */
	struct img_upload *ub = upload(f, 'B', 200000);
	why[0] = '\0';
	assert_int_equal(img_commit_upload(f->reg, id, cb, ub, &fin, why, sizeof(why)), 0);
	img_upload_free(ub);
	assert_int_equal(status(f, id, &now, &flags), IMG_ACTIVE);
	assert_true(now == 0);
	assert_true(flags & IMG_F_DATA);
	assert_int_equal(img_revert_queued(f->reg, id, cb, NULL, NULL), 0);
	assert_int_equal(status(f, id, NULL, NULL), IMG_ACTIVE);
	assert_int_equal(img_delete(f->reg, id), 0);
}

static int pad_fn(struct cs_txn *txn, struct img_mut *m)
{
	(void)txn;
	size_t n = *(size_t *)m->arg;
	char *s = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	memset(s, 'p', n);
	s[n] = '\0';
	json_object_set_new(json_object_get(m->doc, "props"), "pad", json_string(s));
	free(s);
	return 0;
}

static int pad(struct fixture *f, const uint8_t id[IMG_ID_LEN], size_t n)
{
	struct img_mut m = {.fn = pad_fn, .arg = &n};
	memcpy(m.id, id, IMG_ID_LEN);
	int ret = img_store_write(f->reg->st, &m);
	img_mut_clear(&m);
	return ret;
}

/* A doc a few bytes short of IMG_DOC_MAX: the failed import's revert
 * commits (queued, claim cleared), the error shortened or left out. */
static void test_revert_on_full_doc(void **state)
{
	struct fixture *f = *state;
	uint8_t id[IMG_ID_LEN];
	uint64_t claim = 0, now = 1;
	char why[512] = "";

	create(f, id);
	size_t lo = 0, hi = IMG_DOC_MAX; /* lo fits, hi does not */
	assert_int_equal(pad(f, id, hi), CAIRN_ETOOBIG);
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (pad(f, id, mid) == 0)
			lo = mid;
		else
			hi = mid;
	}
	/* each room left: 0 bytes (even "import" cannot go in) up to room for
	 * a shortened error */
	for (size_t slack = 0; slack <= 80; slack += 20) {
		assert_int_equal(pad(f, id, lo - slack), 0);
		assert_int_equal(
		    img_claim(f->reg, id, IMG_IMPORTING, true, why, sizeof(why), &claim), 0);
		char err[400];
		memset(err, 'e', sizeof(err) - 1);
		err[sizeof(err) - 1] = '\0';
		memcpy(err, "\xc3\xa9\xc3\xa9", 4); /* UTF-8 the shortening must not cut */
		assert_int_equal(img_revert_queued(f->reg, id, claim, "web-download", err), 0);
		assert_int_equal(status(f, id, &now, NULL), IMG_QUEUED);
		assert_true(now == 0);
		struct img_entry *e = img_store_get(f->reg->st, id);
		json_t *imp = json_object_get(e->doc, "import");
		if (slack >= 80) {
			assert_non_null(imp);
			assert_string_equal(json_string_value(json_object_get(imp, "method")),
					    "web-download");
		}
		img_entry_put(e);
	}
	/* with room, the whole error is kept */
	assert_int_equal(pad(f, id, 10), 0);
	assert_int_equal(img_claim(f->reg, id, IMG_IMPORTING, true, why, sizeof(why), &claim), 0);
	assert_int_equal(img_revert_queued(f->reg, id, claim, "s3-object", "the whole reason"), 0);
	struct img_entry *e = img_store_get(f->reg->st, id);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(e->doc, "import"), "error")),
	    "the whole reason");
	img_entry_put(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_stale_upload_touches_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revert_on_full_doc, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
