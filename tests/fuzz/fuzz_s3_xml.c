/* tests/fuzz/fuzz_s3_xml.c - the DeleteObjects, CompleteMultipartUpload and
 * CreateBucketConfiguration parsers, and a writer round trip: text escaped by the writer and parsed
 * back by expat must come back unchanged whenever expat accepts it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/s3_xml.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct s3_delete_req r;
	char loc[64];

	if (size > 256 * 1024)
		return 0;
	int ret = s3_xml_parse_delete(body, size, &r);
	CHECK(ret == 0 || ret == CAIRN_EINVAL || ret == -ENOMEM);
	if (ret == 0) {
		CHECK(r.n >= 1 && r.n <= S3_DELETE_MAX_OBJECTS);
		for (size_t i = 0; i < r.n; i++)
			CHECK(r.objs[i].key != NULL);
	}
	s3_delete_req_free(&r);
	struct s3_complete_req cr;
	ret = s3_xml_parse_complete(body, size, &cr);
	CHECK(ret == 0 || ret == CAIRN_EINVAL || ret == -ENOMEM);
	if (ret == 0) {
		CHECK(cr.n >= 1 && cr.n <= S3_COMPLETE_MAX_PARTS);
		for (size_t i = 0; i < cr.n; i++)
			CHECK(cr.parts[i].etag[0] &&
			      strlen(cr.parts[i].etag) < sizeof(cr.parts[i].etag) &&
			      strlen(cr.parts[i].cksum) < sizeof(cr.parts[i].cksum));
	}
	s3_complete_req_free(&cr);
	ret = s3_xml_parse_create_bucket(body, size, loc, sizeof(loc));
	CHECK(ret == 0 || ret == CAIRN_EINVAL || ret == -ENOMEM);
	if (ret == 0)
		CHECK(strlen(loc) < sizeof(loc));

	/* Writer round trip with the input as a key. */
	struct s3_xml x;
	char *doc;
	size_t len;
	s3_xml_init(&x);
	s3_xml_open(&x, "Delete", S3_XMLNS);
	s3_xml_open(&x, "Object", NULL);
	s3_xml_elemn(&x, "Key", body, size);
	if (s3_xml_finish(&x, &doc, &len) != 0)
		return 0;
	ret = s3_xml_parse_delete(doc, len, &r);
	if (ret == 0) {
		CHECK(r.n == 1);
		CHECK(r.objs[0].key_len == size && memcmp(r.objs[0].key, body, size) == 0);
	}
	s3_delete_req_free(&r);
	free(doc);
	return 0;
}
