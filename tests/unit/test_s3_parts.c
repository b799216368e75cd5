/* tests/unit/test_s3_parts.c - a multipart object's part sizes in its
 * record: runs spread over several S3_F_PART_SIZES fields when one field
 * cannot hold them all (each holds 5461 runs), read back in order by
 * s3_part_range and the runs iterator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/s3_server_internal.h"

#define RUNS_PER_FIELD (UINT16_MAX / 12)

static void test_part_sizes_across_fields(void **state)
{
	(void)state;
	/* 10,000 parts of distinct sizes: 10,000 runs, two fields */
	enum { N = 10000 };
	uint8_t *runs = malloc(N * 12);
	uint64_t total = 0;
	for (uint32_t i = 0; i < N; i++) {
		uint64_t size = (5u << 20) + i;
		uint32_t one = 1;
		memcpy(runs + i * 12, &size, 8);
		memcpy(runs + i * 12 + 8, &one, 4);
		total += size;
	}
	struct s3_fbuf f = {0};
	s3_fbuf_add(&f, S3_F_CONTENT_TYPE, "", 0, "x/y", 3);
	for (size_t off = 0; off < N * 12; off += RUNS_PER_FIELD * 12) {
		size_t n = N * 12 - off < RUNS_PER_FIELD * 12 ? N * 12 - off : RUNS_PER_FIELD * 12;
		s3_fbuf_add(&f, S3_F_PART_SIZES, "", 0, (const char *)runs + off, n);
	}
	s3_fbuf_add(&f, S3_F_OWNER, "", 0, "me", 2);
	assert_int_equal(f.err, 0);
	assert_int_equal(f.n, 4);
	struct s3_obj_rec rec = {
	    .version = S3_OBJ_VERSION, .nfields = f.n, .parts = N, .size = total};
	size_t vl = sizeof(rec) + f.len;
	uint8_t *v = malloc(vl);
	memcpy(v, &rec, sizeof(rec));
	memcpy(v + sizeof(rec), f.p, f.len);
	struct s3_objinfo o;
	assert_int_equal(s3_obj_parse(v, vl, &o), 0);

	uint64_t first, len, off = 0;
	for (uint32_t pn = 1; pn <= N; pn++) {
		assert_int_equal(s3_part_range(&o, pn, &first, &len), 0);
		assert_int_equal(first, off);
		assert_int_equal(len, (5u << 20) + pn - 1);
		off += len;
	}
	assert_int_equal(off, total);
	assert_int_equal(s3_part_range(&o, N + 1, &first, &len), CAIRN_ERANGE);

	struct s3_runs_iter it;
	uint64_t size;
	uint32_t count, seen = 0;
	int rc;
	s3_part_runs_init(&it, &o);
	while ((rc = s3_part_runs_next(&it, &size, &count)) == 1)
		assert_int_equal(size, (5u << 20) + seen++);
	assert_int_equal(rc, 0);
	assert_int_equal(seen, N);

	/* a single-PUT object is one part */
	struct s3_objinfo one = o;
	one.rec.parts = 0;
	assert_int_equal(s3_part_range(&one, 1, &first, &len), 0);
	assert_int_equal(len, total);
	assert_int_equal(s3_part_range(&one, 2, &first, &len), CAIRN_ERANGE);
	free(v);
	free(f.p);
	free(runs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_part_sizes_across_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
