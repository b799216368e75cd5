/* tests/unit/test_hash.c - core/hash: CRC-32C vectors, chaining, zero, hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

/* Bitwise reference CRC-32C (reflected poly 0x82F63B78), for cross-checks. */
static uint32_t crc32c_ref(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void test_crc32c_known_vectors(void **state)
{
	uint8_t buf[32];

	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, "", 0), 0);
	assert_int_equal(crc32c(0x12345678, "", 0), 0x12345678);
	/* RFC 3720 B.4 test vectors (iSCSI). */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(crc32c(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(crc32c(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(crc32c(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void test_crc32c_chains_and_matches_reference(void **state)
{
	size_t n = 1 << 20;
	uint8_t *buf = malloc(n);

	(void)state;
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	uint32_t whole = crc32c(0, buf, n);

	assert_int_equal(whole, crc32c_ref(0, buf, n));
	/* Every split point class: 0, 1, odd, unaligned, the end. */
	size_t cuts[] = {0, 1, 7, 63, 4096, 65537, n - 1, n};
	for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
		uint32_t a = crc32c(0, buf, cuts[c]);

		assert_int_equal(crc32c(a, buf + cuts[c], n - cuts[c]), whole);
	}
	/* Short odd lengths against the reference. */
	for (size_t l = 0; l < 200; l++)
		assert_int_equal(crc32c(0, buf + 3, l), crc32c_ref(0, buf + 3, l));
	free(buf);
}

static void test_hash_is_zero_boundaries(void **state)
{
	size_t n = 70000;
	uint8_t *buf = calloc(1, n + 1);

	(void)state;
	assert_true(hash_is_zero(buf, 0));
	assert_true(hash_is_zero(buf, n));
	for (size_t pos = 0; pos < n; pos += (pos < 200 ? 1 : 4093)) {
		buf[pos] = 1;
		assert_false(hash_is_zero(buf, n));
		/* A non-zero byte just past the end is not looked at. */
		assert_true(pos == 0 || hash_is_zero(buf, pos));
		buf[pos] = 0;
	}
	buf[n - 1] = 0x80;
	assert_false(hash_is_zero(buf, n));
	assert_true(hash_is_zero(buf + 1, n - 2));
	free(buf);
}

static void test_hash_hex_roundtrip(void **state)
{
	uint8_t in[4] = {0x00, 0xab, 0x7f, 0xff}, back[4];
	char out[9];

	(void)state;
	hash_hex(in, 4, out);
	assert_string_equal(out, "00ab7fff");
	hash_hex(in, 0, out);
	assert_string_equal(out, "");
	assert_int_equal(hash_unhex("00AB7ffF", 8, back, 4), 0);
	assert_memory_equal(back, in, 4);
	assert_int_equal(hash_unhex("00ab7ff", 7, back, 4), -22);
	assert_int_equal(hash_unhex("00ab7fgf", 8, back, 4), -22);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c_known_vectors),
	    cmocka_unit_test(test_crc32c_chains_and_matches_reference),
	    cmocka_unit_test(test_hash_is_zero_boundaries),
	    cmocka_unit_test(test_hash_hex_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
