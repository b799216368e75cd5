/* tests/fuzz/fuzz_aws_chunked.c - the aws-chunked decoder.
 *
 * Input: byte 0 picks the mode (and whether a trailer is announced), bytes
 * 1-2 the decoded length (little-endian), byte 3 the slice size the body is
 * fed in (1..256); the rest is the wire body. Checks the decoder's
 * invariants: it never emits more than the decoded length, never reports
 * success with fewer, and an error is sticky. */
#include <stdint.h>
#include <string.h>

#include "objstore/s3_chunked.h"

struct count {
	uint64_t n;
};

static int count_fn(void *arg, const uint8_t *data, size_t len)
{
	struct count *c = arg;
	(void)data;
	c->n += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[SIGV4_KEY_LEN] = {1, 2, 3};
	static const char *trailers[] = {NULL, "x-amz-checksum-crc32", "x-amz-checksum-sha256"};
	struct sigv4_auth auth;
	struct s3_chunked d;
	struct count c = {0};
	enum s3_chunked_mode mode;
	uint64_t dlen;
	size_t slice;
	int rc;

	if (size < 4)
		return 0;
	mode = (enum s3_chunked_mode)(1 + data[0] % 3);
	dlen = (uint64_t)data[1] | (uint64_t)data[2] << 8;
	slice = 1 + data[3];
	memset(&auth, 0, sizeof(auth));
	strcpy(auth.date, "20130524");
	strcpy(auth.region, "us-east-1");
	strcpy(auth.service, "s3");
	strcpy(auth.amz_date, "20130524T000000Z");
	memset(auth.signature, 'a', 64);
	const char *tr = mode == S3_CHUNKED_SIGNED ? NULL : trailers[(data[0] / 3) % 3];
	rc = s3_chunked_init(&d, mode, dlen, tr, key, &auth);
	if (rc == 0) {
		for (size_t off = 4; off < size && rc == 0; off += slice) {
			size_t n = size - off < slice ? size - off : slice;
			rc = s3_chunked_feed(&d, data + off, n, count_fn, &c);
		}
		if (c.n > dlen)
			__builtin_trap();
		if (rc == 0)
			rc = s3_chunked_finish(&d);
		if (rc == 0 && c.n != dlen)
			__builtin_trap();
		if (rc != 0 && (d.err == S3_CHUNKED_OK || !d.msg ||
				s3_chunked_feed(&d, "0", 1, count_fn, &c) == 0))
			__builtin_trap();
		if (rc == 0 && tr && !s3_chunked_trailer(&d, NULL))
			__builtin_trap();
	}
	s3_chunked_free(&d);
	return 0;
}
