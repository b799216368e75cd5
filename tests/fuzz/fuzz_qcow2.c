/* tests/fuzz/fuzz_qcow2.c - the qcow2 header checker (registry/qcow2.c).
 *
 * Input: byte 0 is a control byte (bit 0: the file size is known and equals the rest of
 * the input; bits 1-7: where to cut a prefix, in 128ths of the rest); the rest is the
 * start of an upload. Properties checked, not just "no crash": the result is one of the
 * four documented answers; an accepted header has sane fields that lie inside what was
 * read; a refusal has a reason; -ENODATA asks for more than it was given (and no more
 * than a header cluster, nor past a known file size); and a decision made from a prefix
 * is the same decision, with the same reason, as from the whole input (more bytes never
 * change a verdict, so the registry can decide as soon as it has enough). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "registry/qcow2.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static void check_answer(int rc, const struct qcow2_info *in, const char *why, size_t len,
			 uint64_t file_size)
{
	CHECK(rc == 0 || rc == 1 || rc == CAIRN_EINVAL || rc == -ENODATA);
	CHECK(memchr(why, '\0', 160) != NULL);
	if (rc == 1) {
		CHECK(in->version == 2 || in->version == 3);
		CHECK(in->cluster_bits >= QCOW2_MIN_CLUSTER_BITS &&
		      in->cluster_bits <= QCOW2_MAX_CLUSTER_BITS);
		CHECK(in->virtual_size > 0 && in->virtual_size % 512 == 0 &&
		      in->virtual_size <= QCOW2_MAX_VIRTUAL_SIZE);
		CHECK(in->header_length <= len && in->header_length <= 1U << in->cluster_bits);
		CHECK((in->incompatible & (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
					   QCOW2_INCOMPAT_DATA_FILE)) == 0);
		CHECK(in->need == 0 && why[0] == '\0');
	} else if (rc == CAIRN_EINVAL) {
		CHECK(strncmp(why, "qcow2 ", 6) == 0);
	} else if (rc == -ENODATA) {
		CHECK(in->need > len && in->need <= (1U << QCOW2_MAX_CLUSTER_BITS));
		CHECK(!file_size || in->need <= file_size);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	const uint8_t *img = data + 1;
	size_t len = size - 1;
	uint64_t file_size = (ctl & 1) ? len : 0;
	size_t cut = len * (ctl >> 1) / 128;
	struct qcow2_info full, part;
	char why_full[160], why_part[160];

	int rc = qcow2_probe(img, len, file_size, &full, why_full, sizeof(why_full));
	check_answer(rc, &full, why_full, len, file_size);
	if (rc == 0)
		CHECK(memcmp(img, "QFI\xfb", len < 4 ? len : 4) != 0 ||
		      (file_size && file_size < 4));

	/* Prefix consistency, with the size unknown (a known size is the whole input). */
	rc = qcow2_probe(img, len, 0, &full, why_full, sizeof(why_full));
	check_answer(rc, &full, why_full, len, 0);
	int prc = qcow2_probe(img, cut, 0, &part, why_part, sizeof(why_part));
	check_answer(prc, &part, why_part, cut, 0);
	if (prc != -ENODATA) {
		CHECK(prc == rc);
		CHECK(strcmp(why_part, why_full) == 0);
	} else if (rc != -ENODATA) {
		/* The whole input decided, so it held what the prefix lacked (a mismatch in
		 * under 4 bytes settles "not qcow2" before the 4 the prefix asks for). */
		CHECK(part.need <= len || (rc == 0 && part.need == 4));
	}
	/* A short reason buffer still gets a NUL and the same verdict. */
	char tiny[5];
	CHECK(qcow2_probe(img, len, 0, &part, tiny, sizeof(tiny)) == rc);
	CHECK(strlen(tiny) < sizeof(tiny));
	return 0;
}
