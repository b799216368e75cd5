/* tests/fuzz/fuzz_glance.c - the Glance v2 API's parsers of untrusted input
 * (registry/img_api*.c, img_server.c, img_ops.c, img_store.c, img_schema.c),
 * run as pure functions: no pool, no server.
 *
 * Input: byte 0 picks the parser (mod 9); for the record-changing ones byte 1
 * is a control byte; the rest is the parser's input:
 *   0  a request target ("/v2/images/ID/members?..."): img_parse_target, then
 *      the list query rules on what it split off;
 *   1  a list query string (after "/v2/images?"): the same, the common case;
 *   2  an image create body: img_create_check (ctl bit 0: admin);
 *   3  a PATCH body: img_patch_try on a queued/active... image (ctl bit 0:
 *      the v2.1 content type, else v2.0; bit 1: admin; bits 2-3: visibility;
 *      bits 4-7: status);
 *   4  a Range header (the first 8 bytes: the image size, little-endian);
 *   5  a stored record: img_rec_decode, and encode/decode round trips;
 *   6  one property against the image schema: "name\nJSON";
 *   7  a member request: ctl bits 0-1 the method (POST, PUT, DELETE), bit 2
 *      admin, bit 3 the acting user is the member "bob", bit 4 a member in
 *      the path; "member\nBODY" (POST: BODY only);
 *   8  an import body (ctl bit 0: web-download allowed).
 * Properties checked, not just "no crash": answers are from the documented
 * set with a status and a message; a range lies inside the image; a created
 * or patched doc has the fields Glance shows, a valid visibility, and round
 * trips through the record codec unchanged. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "registry/img_api.h"
#include "registry/img_store.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static char *dup_str(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* An error answer: a 4xx status and a message. */
static void check_err(const struct img_resp *rs)
{
	CHECK(rs->status >= 400 && rs->status < 500);
	CHECK(memchr(rs->msg, '\0', sizeof(rs->msg)) != NULL && rs->msg[0] != '\0');
	CHECK(rs->json == NULL);
}

/* The record codec keeps rec and doc as they are. */
static void check_roundtrip(const struct img_rec *r, const json_t *doc)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret = img_rec_encode(r, doc, &buf, &len);
	CHECK(ret == 0 || ret == CAIRN_ETOOBIG || ret == -ENOMEM);
	if (ret < 0)
		return;
	struct img_rec r2;
	json_t *d2 = NULL;
	CHECK(img_rec_decode(buf, len, &r2, &d2) == 0);
	struct img_rec r1 = *r;
	r1.version = IMG_REC_VERSION;
	r1.doc_len = r2.doc_len;
	CHECK(memcmp(&r1, &r2, sizeof(r1)) == 0);
	CHECK(json_equal(d2, doc));
	json_decref(d2);
	free(buf);
}

/* What img_view reads from a doc is there with the right types. */
static void check_doc(const json_t *doc)
{
	CHECK(json_is_object(doc));
	CHECK(json_is_array(json_object_get(doc, "tags")));
	json_t *props = json_object_get(doc, "props");
	CHECK(json_is_object(props));
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)props, k, v) CHECK(json_is_string(v));
	CHECK(json_is_object(json_object_get(doc, "members")));
}

static void free_req(struct img_req *rq, char *path_buf)
{
	for (int i = 0; i < rq->nq; i++) {
		free(rq->q[i].k);
		free(rq->q[i].v);
	}
	free(path_buf);
}

static void fuzz_target(const char *target)
{
	struct img_req rq;
	struct img_resp rs;
	char *path_buf = NULL;
	memset(&rq, 0, sizeof(rq));
	memset(&rs, 0, sizeof(rs));
	img_who_set(&rq.who, "alice");
	int ret = img_parse_target(target, &path_buf, &rq);
	CHECK(ret == 0 || ret == CAIRN_EINVAL);
	CHECK(rq.nsegs >= 0 && rq.nsegs <= IMG_MAX_SEGS);
	CHECK(rq.nq >= 0 && rq.nq <= IMG_MAX_QPARAMS);
	for (int i = 0; i < rq.nsegs; i++)
		CHECK(rq.segs[i][0] != '\0');
	if (ret == 0) {
		ret = img_list_query_check(&rq, &rs);
		CHECK(ret == 0 || ret == -1);
		if (ret < 0)
			check_err(&rs);
		else
			CHECK(rs.status == 0);
	}
	free_req(&rq, path_buf);
}

static void fuzz_create(uint8_t ctl, const uint8_t *p, size_t n)
{
	json_error_t jerr;
	json_t *body = json_loadb((const char *)p, n, JSON_DECODE_ANY, &jerr);
	if (!json_is_object(body)) {
		json_decref(body);
		return;
	}
	struct img_who w;
	struct img_resp rs;
	memset(&rs, 0, sizeof(rs));
	img_who_set(&w, (ctl & 1) ? NULL : "alice");
	uint8_t id[IMG_ID_LEN], vis = 0xff;
	bool protect = false;
	json_t *doc = (json_t *)1;
	int ret = img_create_check(&w, body, id, &vis, &protect, &doc, &rs);
	if (ret < 0) {
		CHECK(ret == CAIRN_EINVAL || ret == CAIRN_EDENIED);
		CHECK(doc == NULL);
		check_err(&rs);
	} else {
		CHECK(ret == 0 && rs.status == 0);
		CHECK(vis <= IMG_VIS_COMMUNITY);
		CHECK(vis != IMG_VIS_PUBLIC || w.admin);
		check_doc(doc);
		struct img_rec r;
		memset(&r, 0, sizeof(r));
		memcpy(r.id, id, IMG_ID_LEN);
		r.visibility = vis;
		r.flags = protect ? IMG_F_PROTECTED : 0;
		check_roundtrip(&r, doc);
		json_decref(doc);
	}
	json_decref(body);
}

static void fuzz_patch(uint8_t ctl, const uint8_t *p, size_t n)
{
	static const char *const ct[] = {"application/openstack-images-v2.0-json-patch",
					 "application/openstack-images-v2.1-json-patch"};
	struct img_who w;
	struct img_resp rs;
	struct img_rec r;
	memset(&rs, 0, sizeof(rs));
	memset(&r, 0, sizeof(r));
	img_who_set(&w, (ctl & 2) ? NULL : "alice");
	r.version = IMG_REC_VERSION;
	r.visibility = (ctl >> 2) & 3;
	r.status = (uint8_t)((ctl >> 4) % 9);
	json_t *doc = img_doc_new();
	CHECK(doc);
	json_object_set_new(doc, "owner", json_string("alice"));
	json_object_set_new(doc, "name", json_string("cirros"));
	json_object_set_new(json_object_get(doc, "props"), "hw_disk_bus", json_string("virtio"));
	json_array_append_new(json_object_get(doc, "tags"), json_string("t1"));
	char *body = dup_str(p, n);
	CHECK(body);
	int ret = img_patch_try(&w, ct[ctl & 1], body, n, &r, doc, &rs);
	if (ret < 0) {
		CHECK(rs.status >= 400 && rs.status < 500);
		CHECK(rs.msg[0] != '\0' && rs.json == NULL);
	} else {
		CHECK(ret == 0 && rs.status == 0);
		CHECK(r.visibility <= IMG_VIS_COMMUNITY);
		CHECK(r.visibility != IMG_VIS_PUBLIC || w.admin ||
		      ((ctl >> 2) & 3) == IMG_VIS_PUBLIC);
		check_doc(doc);
		check_roundtrip(&r, doc);
	}
	free(body);
	json_decref(doc);
}

static void fuzz_range(const uint8_t *p, size_t n)
{
	uint64_t size = 0;
	if (n < 8)
		return;
	for (int i = 7; i >= 0; i--)
		size = size << 8 | p[i];
	if (p[7] & 0x80)
		size &= 0xffff; /* small sizes too */
	char *h = dup_str(p + 8, n - 8);
	CHECK(h);
	uint64_t off = 0, len = 0;
	int ret = img_parse_range(h, size, &off, &len);
	CHECK(ret == 0 || ret == CAIRN_EINVAL || ret == CAIRN_ERANGE);
	if (ret == 0) {
		CHECK(len > 0 && off < size && len <= size - off);
		CHECK(strncmp(h, "bytes=", 6) == 0 && !strchr(h, ','));
	}
	free(h);
}

static void fuzz_record(const uint8_t *p, size_t n)
{
	struct img_rec r;
	json_t *doc = NULL;
	int ret = img_rec_decode(p, n, &r, &doc);
	CHECK(ret == 0 || ret == CAIRN_ECORRUPT || ret == CAIRN_EFORMAT);
	if (ret < 0) {
		CHECK(doc == NULL);
		return;
	}
	CHECK(json_is_object(doc));
	check_roundtrip(&r, doc);
	json_decref(doc);
}

static void fuzz_schema(const uint8_t *p, size_t n)
{
	const uint8_t *nl = memchr(p, '\n', n);
	if (!nl)
		return;
	char *prop = dup_str(p, (size_t)(nl - p));
	CHECK(prop);
	json_error_t jerr;
	json_t *v =
	    json_loadb((const char *)nl + 1, n - (size_t)(nl - p) - 1, JSON_DECODE_ANY, &jerr);
	if (v) {
		char why[160];
		why[0] = '\0';
		int ret = img_schema_check(prop, v, why, sizeof(why));
		CHECK(ret == 0 || ret == CAIRN_EINVAL);
		CHECK(memchr(why, '\0', sizeof(why)) != NULL);
		if (ret < 0)
			CHECK(why[0] != '\0');
		(void)img_schema_is_base(prop);
		(void)img_schema_is_readonly(prop);
		json_decref(v);
	}
	free(prop);
}

static void fuzz_member(uint8_t ctl, const uint8_t *p, size_t n)
{
	static const char *const methods[] = {"POST", "PUT", "DELETE", "DELETE"};
	struct img_who w;
	struct img_resp rs;
	struct img_rec r;
	memset(&rs, 0, sizeof(rs));
	memset(&r, 0, sizeof(r));
	img_who_set(&w, (ctl & 4) ? NULL : (ctl & 8) ? "bob" : "alice");
	r.version = IMG_REC_VERSION;
	r.visibility = IMG_VIS_SHARED;
	json_t *doc = img_doc_new();
	CHECK(doc);
	json_object_set_new(doc, "owner", json_string("alice"));
	json_object_set_new(json_object_get(doc, "members"), "bob",
			    json_pack("{s:s, s:I, s:I}", "status", "pending", "created_at",
				      (json_int_t)1, "updated_at", (json_int_t)2));
	char *member = NULL;
	const uint8_t *body = p;
	size_t blen = n;
	if (ctl & 16) {
		const uint8_t *nl = memchr(p, '\n', n);
		if (!nl)
			goto out;
		member = dup_str(p, (size_t)(nl - p));
		CHECK(member);
		body = nl + 1;
		blen = n - (size_t)(nl - p) - 1;
	}
	char *text = dup_str(body, blen);
	CHECK(text);
	int ret = img_member_try(&w, methods[ctl & 3], member, text, blen, &r, doc, &rs);
	if (ret < 0) {
		CHECK(rs.status >= 400 && rs.status < 500);
		CHECK(rs.msg[0] != '\0' && rs.json == NULL);
	} else {
		CHECK(ret == 0);
		CHECK(rs.status == 200 || rs.status == 204);
		CHECK((rs.status == 200) == (rs.json != NULL));
		CHECK(json_object_size(json_object_get(doc, "members")) <= 128);
		check_doc(doc);
		check_roundtrip(&r, doc);
	}
	json_decref(rs.json);
	free(text);
out:
	free(member);
	json_decref(doc);
}

static void fuzz_import(uint8_t ctl, const uint8_t *p, size_t n)
{
	struct img_resp rs;
	memset(&rs, 0, sizeof(rs));
	char *text = dup_str(p, n);
	CHECK(text);
	int ret = img_import_body_check(text, n, ctl & 1, &rs);
	if (ret < 0)
		check_err(&rs);
	else
		CHECK(ret == 0 && rs.status == 0);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 9) {
	case 0:
	case 1: {
		const char *pre = data[0] % 9 ? "/v2/images?" : "";
		size_t pl = strlen(pre);
		char *t = malloc(pl + n + 1);
		CHECK(t);
		memcpy(t, pre, pl);
		memcpy(t + pl, p, n);
		t[pl + n] = '\0';
		fuzz_target(t);
		free(t);
		break;
	}
	case 2:
		if (n)
			fuzz_create(p[0], p + 1, n - 1);
		break;
	case 3:
		if (n)
			fuzz_patch(p[0], p + 1, n - 1);
		break;
	case 4:
		fuzz_range(p, n);
		break;
	case 5:
		fuzz_record(p, n);
		break;
	case 6:
		fuzz_schema(p, n);
		break;
	case 7:
		if (n)
			fuzz_member(p[0], p + 1, n - 1);
		break;
	case 8:
		if (n)
			fuzz_import(p[0], p + 1, n - 1);
		break;
	}
	return 0;
}
