#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/fault.h"

static void test_fault_unarmed_never_fires(void **state)
{
	(void)state;
	for (int i = 0; i < 10; i++)
		assert_false(FAULT("never.armed"));
}

static void test_fault_fires_from_nth_hit(void **state)
{
	(void)state;
	fault_arm("io.write", 3);
	assert_false(FAULT("io.write"));
	assert_false(FAULT("io.write"));
	assert_true(FAULT("io.write"));
	assert_true(FAULT("io.write"));
	fault_arm("io.write", 0);
	assert_false(FAULT("io.write"));
}

static void test_strerror_covers_cairn_and_errno(void **state)
{
	(void)state;
	assert_string_equal(cairn_strerror(CAIRN_ENOTFOUND), "not found");
	assert_string_equal(cairn_strerror(-2), "No such file or directory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fault_unarmed_never_fires),
	    cmocka_unit_test(test_fault_fires_from_nth_hit),
	    cmocka_unit_test(test_strerror_covers_cairn_and_errno),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
