/* core/hash.c - CRC-32C on ISA-L, zero detection, hex (see hash.h). */
#include "core/hash.h"

#include <errno.h>
#include <isa-l/crc.h>
#include <isa-l/mem_routines.h>
#include <limits.h>

/* ISA-L's crc32_iscsi is the raw reflected CRC with no pre/post inversion;
 * the standard CRC-32C inverts on both ends, so invert around each call and
 * the result chains. crc32_iscsi takes an int length, hence the 1 GiB steps. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = ~crc;

	while (len > 0) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;

		c = crc32_iscsi((unsigned char *)p, (int)n, c);
		p += n;
		len -= n;
	}
	return ~c;
}

bool hash_is_zero(const void *buf, size_t len)
{
	if (len == 0)
		return true;
	return isal_zero_detect((void *)buf, len) == 0;
}

void hash_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hash_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hash_unhex(const char *hex, size_t hexlen, uint8_t *out, size_t n)
{
	if (hexlen != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hash_nibble(hex[2 * i]), lo = hash_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
