/* tests/unit/test_s3_users.c - users and access keys (objstore/s3_users.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chunkstore/chunkstore.h"
#include "objstore/s3.h"
#include "test_s3_util.h"

static struct s3t T;

static int setup(void **state)
{
	int rc = s3t_start(&T, NULL);
	if (rc == 77)
		exit(77);
	return rc ? -1 : 0;
}

static int teardown(void **state)
{
	s3t_stop(&T);
	return 0;
}

static void test_bootstrap_root(void **state)
{
	struct s3_key k;
	struct s3_user u[8];
	assert_int_equal(s3_key_lookup(T.pool, S3T_ROOT_KEY, &k), 0);
	assert_string_equal(k.user, S3_ROOT_USER);
	assert_string_equal(k.secret, S3T_ROOT_SECRET);
	/* Re-bootstrap with a new key: the old bootstrap key stops working. */
	assert_int_equal(s3_users_bootstrap(T.pool, "AKIAROOTTESTKEY00002", "anothersecret123"), 0);
	assert_int_equal(s3_key_lookup(T.pool, S3T_ROOT_KEY, &k), CAIRN_ENOTFOUND);
	assert_int_equal(s3_key_lookup(T.pool, "AKIAROOTTESTKEY00002", &k), 0);
	assert_string_equal(k.secret, "anothersecret123");
	assert_int_equal(s3_users_bootstrap(T.pool, S3T_ROOT_KEY, S3T_ROOT_SECRET), 0);
	assert_int_equal(s3_key_lookup(T.pool, "AKIAROOTTESTKEY00002", &k), CAIRN_ENOTFOUND);
	assert_int_equal(s3_user_list(T.pool, u, 8), 1);
	assert_true(u[0].root);
	assert_int_equal(s3_user_delete(T.pool, S3_ROOT_USER), CAIRN_EDENIED);
	assert_int_equal(s3_users_bootstrap(T.pool, "ab", "short"), CAIRN_EINVAL);
}

static void test_user_and_key_lifecycle(void **state)
{
	struct s3_key k, k2, got, list[8];
	struct s3_user u[8];
	long n;

	assert_int_equal(s3_user_create(T.pool, "bob"), 0);
	assert_int_equal(s3_user_create(T.pool, "bob"), CAIRN_EEXISTS);
	assert_int_equal(s3_user_create(T.pool, "bad name"), CAIRN_EINVAL);
	assert_int_equal(s3_user_create(T.pool, ""), CAIRN_EINVAL);
	assert_int_equal(s3_key_create(T.pool, "nobody", &k), CAIRN_ENOTFOUND);
	assert_int_equal(s3_key_create(T.pool, "bob", &k), 0);
	assert_int_equal(strlen(k.id), 20);
	assert_int_equal(strlen(k.secret), 40);
	for (int i = 0; i < 20; i++)
		assert_true((k.id[i] >= 'A' && k.id[i] <= 'Z') ||
			    (k.id[i] >= '0' && k.id[i] <= '9'));
	assert_int_equal(s3_key_create(T.pool, "bob", &k2), 0);
	assert_string_not_equal(k.id, k2.id);
	assert_string_not_equal(k.secret, k2.secret);
	assert_int_equal(s3_key_lookup(T.pool, k.id, &got), 0);
	assert_string_equal(got.secret, k.secret);
	assert_string_equal(got.user, "bob");
	n = s3_key_list(T.pool, "bob", list, 8);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].secret, ""); /* secrets never listed */
	assert_int_equal(s3_key_list(T.pool, NULL, list, 8), 3);
	assert_int_equal(s3_user_list(T.pool, u, 8), 2);
	assert_string_equal(u[0].name, "bob");
	assert_string_equal(u[1].name, "root");
	assert_int_equal(s3_key_delete(T.pool, k.id), 0);
	assert_int_equal(s3_key_lookup(T.pool, k.id, &got), CAIRN_ENOTFOUND);
	assert_int_equal(s3_key_delete(T.pool, k.id), CAIRN_ENOTFOUND);
	assert_int_equal(s3_user_delete(T.pool, "bob"), 0);
	assert_int_equal(s3_key_lookup(T.pool, k2.id, &got), CAIRN_ENOTFOUND);
	assert_int_equal(s3_user_get(T.pool, "bob", NULL), CAIRN_ENOTFOUND);
	assert_int_equal(s3_user_delete(T.pool, "bob"), CAIRN_ENOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bootstrap_root),
	    cmocka_unit_test(test_user_and_key_lifecycle),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
