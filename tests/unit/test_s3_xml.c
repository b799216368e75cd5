/* tests/unit/test_s3_xml.c - XML writer escaping and the expat body parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fault.h"
#include "objstore/s3_xml.h"

#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

static void test_writer_list_bucket_result_shape(void **state)
{
	(void)state;
	struct s3_xml x;
	char *doc;
	size_t len;
	s3_xml_init(&x);
	s3_xml_open(&x, "ListBucketResult", S3_XMLNS);
	s3_xml_elem(&x, "Name", "bkt");
	s3_xml_elem(&x, "Prefix", NULL);
	s3_xml_elem_u64(&x, "MaxKeys", 1000);
	s3_xml_elem_bool(&x, "IsTruncated", false);
	s3_xml_open(&x, "Contents", NULL);
	s3_xml_elem(&x, "Key", "a&b<c>\"d'e");
	s3_xml_elem_u64(&x, "Size", 18446744073709551615ull);
	s3_xml_close(&x);
	/* finish closes what is still open */
	assert_int_equal(s3_xml_finish(&x, &doc, &len), 0);
	assert_int_equal(len, strlen(doc));
	assert_string_equal(doc, DECL "<ListBucketResult xmlns=\"" S3_XMLNS "\">"
				      "<Name>bkt</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys>"
				      "<IsTruncated>false</IsTruncated><Contents>"
				      "<Key>a&amp;b&lt;c&gt;&quot;d&apos;e</Key>"
				      "<Size>18446744073709551615</Size></Contents>"
				      "</ListBucketResult>");
	free(doc);
	assert_null(x.buf);
}

static void test_writer_escapes_control_bytes(void **state)
{
	(void)state;
	struct s3_xml x;
	char *doc;
	size_t len;
	s3_xml_init(&x);
	s3_xml_elemn(&x, "Key", "a\tb\nc\rd\x01\x7f\xc3\xbc", 11);
	assert_int_equal(s3_xml_finish(&x, &doc, &len), 0);
	assert_string_equal(doc, DECL "<Key>a&#x9;b&#xA;c&#xD;d&#x1;&#x7F;\xc3\xbc</Key>");
	free(doc);
}

static void test_writer_grows_and_misuse_is_sticky(void **state)
{
	(void)state;
	struct s3_xml x;
	char *doc;
	size_t len;
	s3_xml_init(&x);
	s3_xml_open(&x, "R", NULL);
	for (int i = 0; i < 20000; i++)
		s3_xml_elem(&x, "K", "0123456789&");
	assert_int_equal(s3_xml_finish(&x, &doc, &len), 0);
	assert_int_equal(len, strlen(DECL) + 3 + 4 + 20000 * (3 + 15 + 4));
	free(doc);
	/* Closing more than opened: an error, not a crash. */
	s3_xml_init(&x);
	s3_xml_close(&x);
	s3_xml_elem(&x, "K", "v");
	assert_int_equal(s3_xml_finish(&x, &doc, &len), CAIRN_EINVAL);
	/* Too deep. */
	s3_xml_init(&x);
	for (int i = 0; i <= S3_XML_DEPTH_MAX; i++)
		s3_xml_open(&x, "D", NULL);
	assert_int_equal(s3_xml_finish(&x, &doc, &len), CAIRN_EINVAL);
	/* Out of memory. */
	fault_arm("s3_xml_alloc", 1);
	s3_xml_init(&x);
	s3_xml_elem(&x, "K", "v");
	fault_arm("s3_xml_alloc", 0);
	assert_int_equal(s3_xml_finish(&x, &doc, &len), -ENOMEM);
}

static void test_parse_delete_quiet_and_keys(void **state)
{
	(void)state;
	struct s3_delete_req r;
	const char *body =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
	    "  <Quiet> true </Quiet>\n"
	    "  <Object><Key>a&amp;b</Key></Object>\n"
	    "  <Object><Key>dir/\xc3\xbc<![CDATA[<x>]]></Key><VersionId>v1</VersionId>"
	    "<ETag>\"abc\"</ETag></Object>\n"
	    "  <Object><Key></Key></Object>\n"
	    "</Delete>";
	assert_int_equal(s3_xml_parse_delete(body, strlen(body), &r), 0);
	assert_true(r.quiet);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.objs[0].key, "a&b");
	assert_int_equal(r.objs[0].key_len, 3);
	assert_null(r.objs[0].version_id);
	assert_string_equal(r.objs[1].key, "dir/\xc3\xbc<x>");
	assert_string_equal(r.objs[1].version_id, "v1");
	assert_string_equal(r.objs[2].key, "");
	assert_int_equal(r.objs[2].key_len, 0);
	s3_delete_req_free(&r);
	s3_delete_req_free(&r);
	/* No namespace, no Quiet: not quiet. */
	body = "<Delete><Object><Key>k</Key></Object></Delete>";
	assert_int_equal(s3_xml_parse_delete(body, strlen(body), &r), 0);
	assert_false(r.quiet);
	assert_int_equal(r.n, 1);
	s3_delete_req_free(&r);
	/* A key with an escaped control character (as encoded by SDKs). */
	body = "<Delete><Object><Key>a&#xD;b</Key></Object></Delete>";
	assert_int_equal(s3_xml_parse_delete(body, strlen(body), &r), 0);
	assert_string_equal(r.objs[0].key, "a\rb");
	s3_delete_req_free(&r);
}

static void test_parse_delete_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    "<Delete></Delete>",		  /* no objects */
	    "<Delete><Object></Object></Delete>", /* no key */
	    "<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
	    "<Delete><Object><Key>a</Key></Object>",	      /* unterminated */
	    "<Remove><Object><Key>a</Key></Object></Remove>", /* wrong root */
	    "<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>",
	    "<Delete><Quiet>true</Quiet><Quiet>true</Quiet><Object><Key>a</Key></Object></Delete>",
	    "<Delete><Object><Key>a<b/></Key></Object></Delete>",
	    "<Delete><Object><Key>&foo;</Key></Object></Delete>", /* undefined entity */
	    "<Delete><Object><Key>a</Key></Object></Delete><x/>",
	    "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]>"
	    "<Delete><Object><Key>&b;</Key></Object></Delete>",
	    "<!DOCTYPE Delete SYSTEM \"file:///etc/passwd\"><Delete><Object><Key>a</Key>"
	    "</Object></Delete>",
	    "<Delete><Object><Key>\xff</Key></Object></Delete>", /* not UTF-8 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct s3_delete_req r;
		int ret = s3_xml_parse_delete(bad[i], strlen(bad[i]), &r);
		if (ret != CAIRN_EINVAL)
			print_error("case %zu: %d\n", i, ret);
		assert_int_equal(ret, CAIRN_EINVAL);
		assert_int_equal(r.n, 0);
		assert_null(r.objs);
	}
}

static char *delete_body(size_t n)
{
	size_t cap = 64 + n * 40;
	char *b = malloc(cap);
	size_t len = (size_t)snprintf(b, cap, "<Delete>");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(b + len, cap - len, "<Object><Key>k%zu</Key></Object>", i);
	snprintf(b + len, cap - len, "</Delete>");
	return b;
}

static void test_parse_delete_1000_objects_limit(void **state)
{
	(void)state;
	struct s3_delete_req r;
	char *b = delete_body(S3_DELETE_MAX_OBJECTS);
	assert_int_equal(s3_xml_parse_delete(b, strlen(b), &r), 0);
	assert_int_equal(r.n, S3_DELETE_MAX_OBJECTS);
	assert_string_equal(r.objs[999].key, "k999");
	s3_delete_req_free(&r);
	free(b);
	b = delete_body(S3_DELETE_MAX_OBJECTS + 1);
	assert_int_equal(s3_xml_parse_delete(b, strlen(b), &r), CAIRN_EINVAL);
	free(b);
	/* Over the body cap, whatever it holds. */
	assert_int_equal(s3_xml_parse_delete("<Delete>", S3_DELETE_BODY_MAX + 1, &r), CAIRN_EINVAL);
}

static void test_parse_delete_out_of_memory(void **state)
{
	(void)state;
	const char *body = "<Delete><Object><Key>a</Key><VersionId>v</VersionId></Object>"
			   "<Object><Key>b</Key></Object></Delete>";
	/* Fail at every allocation in turn: never a leak (ASan) or a crash. */
	for (unsigned n = 1; n < 12; n++) {
		struct s3_delete_req r;
		fault_arm("s3_xml_alloc", n);
		int ret = s3_xml_parse_delete(body, strlen(body), &r);
		fault_arm("s3_xml_alloc", 0);
		assert_true(ret == 0 || ret == -ENOMEM);
		if (ret == 0)
			assert_int_equal(r.n, 2);
		s3_delete_req_free(&r);
	}
}

static void test_parse_create_bucket_configuration(void **state)
{
	(void)state;
	char loc[64];
	const char *b =
	    "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	    "<LocationConstraint> eu-west-1 </LocationConstraint>"
	    "</CreateBucketConfiguration>";
	assert_int_equal(s3_xml_parse_create_bucket(b, strlen(b), loc, sizeof(loc)), 0);
	assert_string_equal(loc, "eu-west-1");
	assert_int_equal(s3_xml_parse_create_bucket("", 0, loc, sizeof(loc)), 0);
	assert_string_equal(loc, "");
	b = "<CreateBucketConfiguration/>";
	assert_int_equal(s3_xml_parse_create_bucket(b, strlen(b), loc, sizeof(loc)), 0);
	assert_string_equal(loc, "");
	b = "<CreateBucketConfiguration><Bucket><Type>Directory</Type></Bucket>"
	    "<LocationConstraint>us-east-2</LocationConstraint></CreateBucketConfiguration>";
	assert_int_equal(s3_xml_parse_create_bucket(b, strlen(b), loc, sizeof(loc)), 0);
	assert_string_equal(loc, "us-east-2");
	static const char *const bad[] = {
	    "<CreateBucketConfiguration>",
	    "<Other><LocationConstraint>x</LocationConstraint></Other>",
	    "<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint>"
	    "<LocationConstraint>b</LocationConstraint></CreateBucketConfiguration>",
	    "<CreateBucketConfiguration><LocationConstraint><x/></LocationConstraint>"
	    "</CreateBucketConfiguration>",
	    "<!DOCTYPE x [<!ENTITY e \"eu\">]><CreateBucketConfiguration><LocationConstraint>&e;"
	    "</LocationConstraint></CreateBucketConfiguration>",
	    "not xml",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    s3_xml_parse_create_bucket(bad[i], strlen(bad[i]), loc, sizeof(loc)),
		    CAIRN_EINVAL);
	b = "<CreateBucketConfiguration><LocationConstraint>0123456789</LocationConstraint>"
	    "</CreateBucketConfiguration>";
	assert_int_equal(s3_xml_parse_create_bucket(b, strlen(b), loc, 10), CAIRN_EINVAL);
	assert_int_equal(s3_xml_parse_create_bucket(b, strlen(b), loc, 11), 0);
}

static void test_parse_complete(void **state)
{
	(void)state;
	struct s3_complete_req r;
	const char *ok = "<CompleteMultipartUpload xmlns=\"" S3_XMLNS "\">"
			 "<Part><PartNumber> 1 </PartNumber><ETag>\"abc\"</ETag>"
			 "<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>"
			 "<Part><ETag>&quot;def&quot;</ETag><PartNumber>3</PartNumber>"
			 "<Unknown><Deep>x</Deep></Unknown></Part>"
			 "</CompleteMultipartUpload>";
	assert_int_equal(s3_xml_parse_complete(ok, strlen(ok), &r), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.parts[0].number, 1);
	assert_string_equal(r.parts[0].etag, "abc");
	assert_string_equal(r.parts[0].cksum_algo, "CRC32");
	assert_string_equal(r.parts[0].cksum, "AAAAAA==");
	assert_int_equal(r.parts[1].number, 3);
	assert_string_equal(r.parts[1].etag, "def");
	assert_string_equal(r.parts[1].cksum_algo, "");
	s3_complete_req_free(&r);
	static const char *const bad[] = {
	    "",
	    "<CompleteMultipartUpload/>",
	    "<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>",
	    "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
	    "</CompleteMultipartUpload>",
	    "<CompleteMultipartUpload><Part><PartNumber>x1</PartNumber><ETag>a</ETag></Part>"
	    "</CompleteMultipartUpload>",
	    "<CompleteMultipartUpload><Part><PartNumber>1234567</PartNumber><ETag>a</ETag>"
	    "</Part></CompleteMultipartUpload>",
	    "<CompleteMultipartUpload><Part><PartNumber>1<b/></PartNumber><ETag>a</ETag></Part>"
	    "</CompleteMultipartUpload>",
	    "<Other><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part></Other>",
	    "<!DOCTYPE x [<!ENTITY e \"1\">]><CompleteMultipartUpload><Part><PartNumber>&e;"
	    "</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
	    "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&r, 0x5a, sizeof(r));
		assert_int_equal(s3_xml_parse_complete(bad[i], strlen(bad[i]), &r), CAIRN_EINVAL);
		assert_null(r.parts);
	}
	/* 10,001 parts: refused */
	size_t cap = 64 + 10001 * 64;
	char *big = malloc(cap);
	size_t n = (size_t)snprintf(big, cap, "<CompleteMultipartUpload>");
	for (int i = 1; i <= 10001; i++)
		n += (size_t)snprintf(big + n, cap - n,
				      "<Part><PartNumber>%d</PartNumber><ETag>e</ETag></Part>", i);
	n += (size_t)snprintf(big + n, cap - n, "</CompleteMultipartUpload>");
	assert_int_equal(s3_xml_parse_complete(big, n, &r), CAIRN_EINVAL);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_writer_list_bucket_result_shape),
	    cmocka_unit_test(test_writer_escapes_control_bytes),
	    cmocka_unit_test(test_writer_grows_and_misuse_is_sticky),
	    cmocka_unit_test(test_parse_delete_quiet_and_keys),
	    cmocka_unit_test(test_parse_delete_malformed),
	    cmocka_unit_test(test_parse_delete_1000_objects_limit),
	    cmocka_unit_test(test_parse_delete_out_of_memory),
	    cmocka_unit_test(test_parse_create_bucket_configuration),
	    cmocka_unit_test(test_parse_complete),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
