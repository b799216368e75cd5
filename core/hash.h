/* core/hash.h - checksums and small hash helpers.
 *
 * crc32c() is the standard CRC-32C (Castagnoli; iSCSI, ext4, S3's
 * x-amz-checksum-crc32c): crc32c(0, "123456789", 9) == 0xE3069283, and it
 * chains: crc32c(crc32c(0, a), b) == crc32c(0, a || b). It runs on ISA-L
 * (SSE4.2/PCLMUL, tens of GiB/s per core). Every function is pure and
 * thread-safe; none allocates.
 */
#ifndef CAIRN_CORE_HASH_H
#define CAIRN_CORE_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-32C of buf, continuing from crc (0 to start). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* True when all len bytes are zero (len 0: true). ISA-L, vectorized. */
bool hash_is_zero(const void *buf, size_t len);

/* Writes 2n lowercase hex digits and a NUL to out (2n + 1 bytes). */
void hash_hex(const uint8_t *in, size_t n, char *out);

/* Parses exactly 2n hex digits (either case) from hex into out; returns 0
 * or -EINVAL (wrong length or a non-hex digit). */
int hash_unhex(const char *hex, size_t hexlen, uint8_t *out, size_t n);

#endif
