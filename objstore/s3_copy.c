/* objstore/s3_copy.c - CopyObject, and the copy-source helpers that
 * UploadPartCopy shares.
 *
 * A copy moves no bytes: objects are manifests, so the destination record
 * takes one more reference on the source's manifest (cs_manifest_ref) and
 * drops the one its old object held, all in one cs_commit callback with no
 * data writer. Reading the source record, checking its owner and the
 * x-amz-copy-source-if-* conditions, checking the destination's write
 * conditions and writing the destination record happen in that one
 * transaction, so a copy sees one state of both keys and cannot race a
 * DELETE of the source into a reference on a freed manifest. Cost: O(record
 * size), whatever the object's size.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/fault.h"
#include "core/log.h"
#include "objstore/s3_server_internal.h"
#include "objstore/s3_xml.h"

#define TAG "s3"

/* ---- copy source ---- */

void s3_copy_src_free(struct s3_copy_src *src)
{
	if (!src)
		return;
	free(src->key);
	src->key = NULL;
}

static const char copy_src_msg[] =
    "Copy Source must mention the source bucket and key: sourcebucket/sourcekey";

int s3_copy_src_parse(struct s3_req *r, struct s3_copy_src *src)
{
	const char *h = s3_req_header(r, "x-amz-copy-source");
	const char *q, *slash;
	char *buf = NULL;
	size_t len;
	long n;
	int rc;

	memset(src, 0, sizeof(*src));
	if (!h || !*h) {
		s3_reply_error(r, S3E_INVALID_ARGUMENT, copy_src_msg);
		return 1;
	}
	if (*h == '/')
		h++;
	/* A '?' of the key itself arrives encoded (%3F): the first literal
	 * one starts the version query. */
	q = strchr(h, '?');
	len = q ? (size_t)(q - h) : strlen(h);
	if (q) {
		const char *vid = q + 1;
		if (strncmp(vid, "versionId=", 10) != 0) {
			s3_reply_error(r, S3E_INVALID_ARGUMENT, copy_src_msg);
			return 1;
		}
		if (strcmp(vid + 10, "null") != 0) {
			/* Buckets are never versioned: only the null version exists. */
			s3_reply_error(r, S3E_INVALID_ARGUMENT, "Invalid version id specified");
			return 1;
		}
	}
	buf = malloc(len + 1);
	if (!buf) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return 1;
	}
	n = s3_pct_decode(h, len, false, buf, len + 1);
	if (n < 0) {
		free(buf);
		s3_reply_error(r, S3E_INVALID_ARGUMENT, copy_src_msg);
		return 1;
	}
	slash = memchr(buf, '/', (size_t)n);
	if (!slash || slash == buf || (size_t)(slash - buf) > S3_BUCKET_MAX ||
	    slash + 1 == buf + n) {
		free(buf);
		s3_reply_error(r, S3E_INVALID_ARGUMENT, copy_src_msg);
		return 1;
	}
	memcpy(src->bucket, buf, (size_t)(slash - buf));
	src->bucket[slash - buf] = 0;
	src->key_len = (size_t)(buf + n - (slash + 1));
	memmove(buf, slash + 1, src->key_len);
	buf[src->key_len] = 0;
	src->key = buf;
	if (s3_bucket_name_check(src->bucket) < 0) {
		s3_reply_error(r, S3E_INVALID_BUCKET_NAME, NULL);
		goto fail;
	}
	rc = s3_key_check(src->key, src->key_len);
	if (rc < 0) {
		s3_reply_error(r, rc == CAIRN_ETOOBIG ? S3E_KEY_TOO_LONG : S3E_INVALID_ARGUMENT,
			       rc == CAIRN_ETOOBIG ? NULL : copy_src_msg);
		goto fail;
	}
	src->part = cs_name_partition(r->srv->pool, src->bucket, strlen(src->bucket));
	src->cond.if_match = s3_req_header(r, "x-amz-copy-source-if-match");
	src->cond.if_none_match = s3_req_header(r, "x-amz-copy-source-if-none-match");
	src->cond.if_modified_since = s3_req_header(r, "x-amz-copy-source-if-modified-since");
	src->cond.if_unmodified_since = s3_req_header(r, "x-amz-copy-source-if-unmodified-since");
	src->range = s3_req_header(r, "x-amz-copy-source-range");
	return 0;
fail:
	s3_copy_src_free(src);
	return 1;
}

int s3_copy_src_read(struct meta_txn *t, const struct s3_copy_src *src, const char *user,
		     const void **v, size_t *vl, enum s3_error *why)
{
	struct s3_bucket b;
	struct s3_objinfo o;
	char etag[S3_ETAG_MAX];
	int rc = s3_bucket_read(t, src->part, src->bucket, &b);

	*why = S3E_OK;
	if (rc == CAIRN_ENOTFOUND) {
		*why = S3E_NO_SUCH_BUCKET;
		return rc;
	}
	if (rc < 0)
		return rc;
	/* A system bucket object may also be copied out by its owner. */
	bool sys_reader = s3_is_system_bucket(src->bucket) && strcmp(b.owner, user) != 0;
	if (strcmp(b.owner, user) != 0 && !sys_reader) {
		*why = S3E_ACCESS_DENIED;
		return CAIRN_EDENIED;
	}
	rc = s3_idx_get(t, src->part, src->bucket, src->key, src->key_len, v, vl);
	if (rc == CAIRN_ENOTFOUND) {
		*why = sys_reader ? S3E_ACCESS_DENIED : S3E_NO_SUCH_KEY;
		return sys_reader ? CAIRN_EDENIED : rc;
	}
	if (rc < 0)
		return rc;
	rc = s3_obj_parse(*v, *vl, &o);
	if (rc < 0)
		return rc;
	if (sys_reader && !s3_sysbucket_reader(&o, user)) {
		*why = S3E_ACCESS_DENIED;
		return CAIRN_EDENIED;
	}
	s3_obj_etag(&o.rec, etag);
	/* GET's evaluation, but a copy has no 304: every failure is a 412. */
	rc = s3_cond_eval(&src->cond, etag, (time_t)(o.rec.mtime_ns / 1000000000u));
	if (rc == CAIRN_EPRECOND || rc == CAIRN_ENOTMODIFIED) {
		*why = S3E_PRECONDITION_FAILED;
		return CAIRN_EPRECOND;
	}
	return rc;
}

static bool parse_dec(const char *s, const char *end, uint64_t *out)
{
	uint64_t v = 0;

	if (s == end || end - s > 19)
		return false;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

int s3_copy_range_parse(const char *hdr, uint64_t size, struct s3_range *out)
{
	const char *dash, *end;
	uint64_t first, last;

	if (!hdr || strncmp(hdr, "bytes=", 6) != 0)
		return CAIRN_EINVAL;
	hdr += 6;
	end = hdr + strlen(hdr);
	dash = strchr(hdr, '-');
	if (!dash || !parse_dec(hdr, dash, &first) || !parse_dec(dash + 1, end, &last))
		return CAIRN_EINVAL;
	if (first > last || last >= size)
		return CAIRN_ERANGE;
	out->start = first;
	out->end = last;
	return 0;
}

void s3_copy_fields(const struct s3_objinfo *src, bool replace, const char *user, struct s3_fbuf *f)
{
	const uint8_t *p = src->fields, *end = src->fields + src->fields_len;
	const char *name, *val;
	size_t nlen, vlen;
	uint8_t tag;

	while (s3_field_next(&p, end, &tag, &name, &nlen, &val, &vlen) == 1) {
		bool bytes = tag == S3_F_CHECKSUM || tag == S3_F_PART_SIZES;
		/* REPLACE takes the metadata from the request, never what
		 * describes the bytes; COPY takes all but the writer, which
		 * is now the caller. Unknown tags go with COPY: a newer
		 * writer's fields stay with the object. */
		if (replace ? !bytes : tag == S3_F_OWNER)
			continue;
		s3_fbuf_add(f, tag, name, nlen, val, vlen);
	}
	if (!replace)
		s3_fbuf_add(f, S3_F_OWNER, "", 0, user, strlen(user));
}

/* ---- CopyObject ---- */

struct copy_arg {
	/* in */
	const struct s3_copy_src *src;
	uint32_t part;
	const char *bucket, *key, *user;
	size_t klen;
	bool replace;
	const struct s3_fbuf *req_fields; /* REPLACE: the request's */
	const struct s3_write_cond *cond;
	/* out */
	enum s3_error why; /* the S3 error of a failure, S3E_OK: map the code */
	const char *why_msg;
	const char *why_bucket; /* NoSuchBucket: which one */
	bool cond_failed;	/* the destination's write condition */
	struct s3_obj_rec rec;	/* what was written */
	uint8_t cksum[4 + S3_CKSUM_MAX];
	size_t cksum_len;
};

static const char self_copy_msg[] =
    "This copy request is illegal because it is trying to copy an object to itself without "
    "changing the object's metadata, storage class, website redirect location or encryption "
    "attributes.";
static const char too_big_msg[] = "The specified copy source is larger than the maximum "
				  "allowable size for a copy source: 5368709120";

static int copy_fn(struct cs_txn *txn, void *arg)
{
	struct copy_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct s3_bucket b;
	struct s3_objinfo o;
	struct s3_fbuf f = {0};
	struct cs_mid mid, old;
	bool had_old = false;
	const void *v;
	size_t vl;
	uint8_t *rec = NULL;
	size_t reclen;
	int rc = s3_bucket_read(t, a->part, a->bucket, &b);

	if (rc == CAIRN_ENOTFOUND) {
		a->why = S3E_NO_SUCH_BUCKET;
		a->why_bucket = a->bucket;
	}
	if (rc < 0)
		goto out;
	if (strcmp(b.owner, a->user) != 0) {
		a->why = S3E_ACCESS_DENIED;
		rc = CAIRN_EDENIED;
		goto out;
	}
	rc = s3_copy_src_read(t, a->src, a->user, &v, &vl, &a->why);
	a->why_bucket = a->src->bucket;
	if (rc < 0)
		goto out;
	rc = s3_obj_parse(v, vl, &o);
	if (rc < 0)
		goto out;
	if (o.rec.size > S3_OBJECT_MAX) {
		a->why = S3E_INVALID_REQUEST;
		a->why_msg = too_big_msg;
		rc = CAIRN_ETOOBIG;
		goto out;
	}
	rc = s3_write_cond_check(t, a->part, a->bucket, a->key, a->klen, a->cond);
	if (rc < 0) {
		a->cond_failed = true;
		goto out;
	}
	/* The source value lives in the map: build the new record before
	 * any write can move it. */
	if (a->replace && a->req_fields->len) {
		f.p = malloc(a->req_fields->len);
		if (!f.p) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(f.p, a->req_fields->p, a->req_fields->len);
		f.len = f.cap = a->req_fields->len;
		f.n = a->req_fields->n;
	}
	s3_copy_fields(&o, a->replace, a->user, &f);
	if (f.err) {
		rc = f.err;
		goto out;
	}
	{
		const char *cv;
		size_t cl;
		a->cksum_len = 0;
		if (s3_field_find(&o, S3_F_CHECKSUM, &cv, &cl) && cl <= sizeof(a->cksum)) {
			memcpy(a->cksum, cv, cl);
			a->cksum_len = cl;
		}
	}
	a->rec = o.rec;
	a->rec.nfields = f.n;
	a->rec.mtime_ns = s3_now_ns();
	reclen = sizeof(a->rec) + f.len;
	rec = malloc(reclen);
	if (!rec || FAULT("s3.copy_alloc")) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(rec, &a->rec, sizeof(a->rec));
	if (f.len)
		memcpy(rec + sizeof(a->rec), f.p, f.len);
	memcpy(mid.b, o.rec.mid, CS_MID_LEN);
	/* The reference first: on a copy to itself the put below hands the
	 * same manifest back as the old one, and the count never touches 0. */
	rc = cs_manifest_ref(txn, &mid);
	if (rc < 0)
		goto out;
	rc = s3_idx_put(t, a->part, a->bucket, a->key, a->klen, rec, reclen, &old, &had_old);
	if (rc == 0 && had_old)
		rc = cs_manifest_unref(txn, &old);
out:
	free(rec);
	free(f.p);
	return rc;
}

static void copy_reply(struct s3_req *r, const struct copy_arg *a)
{
	struct s3_xml x;
	char etag[S3_ETAG_MAX], q[S3_ETAG_MAX + 2], date[S3_ISO_EXT_LEN + 1];
	char *body;
	size_t len;

	s3_obj_etag(&a->rec, etag);
	snprintf(q, sizeof(q), "\"%s\"", etag);
	s3_iso_ext_format((time_t)(a->rec.mtime_ns / 1000000000u),
			  (unsigned)(a->rec.mtime_ns / 1000000u % 1000u), date);
	s3_xml_init(&x);
	s3_xml_open(&x, "CopyObjectResult", S3_XMLNS);
	s3_xml_elem(&x, "ETag", q);
	s3_xml_elem(&x, "LastModified", date);
	if (a->cksum_len) {
		struct s3_cksum ck;
		char b64[S3_CKSUM_B64_MAX], ename[32];
		if (s3_cksum_decode(a->cksum, a->cksum_len, &ck) == 0 &&
		    s3_cksum_b64(&ck, b64, sizeof(b64)) > 0 && s3_cksum_name(ck.algo)) {
			snprintf(ename, sizeof(ename), "Checksum%s", s3_cksum_name(ck.algo));
			s3_xml_elem(&x, ename, b64);
			if (ck.type)
				s3_xml_elem(&x, "ChecksumType", s3_cksum_type_name(ck.type));
		}
	}
	s3_xml_close(&x);
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	s3_reply_xml(r, 200, body, len);
}

void s3_op_copy_object(struct s3_req *r)
{
	struct s3_bucket b;
	struct s3_copy_src src = {0};
	struct s3_write_cond wc;
	struct s3_fbuf f = {0};
	struct copy_arg a = {0};
	const char *dir = s3_req_header(r, "x-amz-metadata-directive");
	bool replace = false;
	int rc;

	if (s3_bucket_check(r, &b))
		return;
	if (dir && strcasecmp(dir, "REPLACE") == 0) {
		replace = true;
	} else if (dir && strcasecmp(dir, "COPY") != 0) {
		s3_reply_error(r, S3E_INVALID_ARGUMENT, "Unknown metadata directive.");
		return;
	}
	if (s3_write_cond_parse(r, &wc))
		return;
	if (s3_copy_src_parse(r, &src))
		return;
	if (src.range) {
		/* CopyObject has no range; only UploadPartCopy takes one. */
		s3_reply_error(
		    r, S3E_INVALID_ARGUMENT,
		    "The x-amz-copy-source-range header is only valid for UploadPartCopy");
		goto out;
	}
	if (!replace && strcmp(src.bucket, r->addr.bucket) == 0 && src.key_len == r->addr.key_len &&
	    memcmp(src.key, r->addr.key, src.key_len) == 0) {
		s3_reply_error(r, S3E_INVALID_REQUEST, self_copy_msg);
		goto out;
	}
	if (replace && s3_fields_from_request(r, &f))
		goto out;
	a.src = &src;
	a.part = r->part;
	a.bucket = r->addr.bucket;
	a.key = r->addr.key;
	a.klen = r->addr.key_len;
	a.user = r->key.user;
	a.replace = replace;
	a.req_fields = &f;
	a.cond = &wc;
	rc = cs_commit(r->srv->pool, NULL, copy_fn, &a);
	if (rc < 0) {
		if (a.cond_failed && rc == CAIRN_EPRECOND) {
			s3_reply_error(r, S3E_PRECONDITION_FAILED, NULL);
		} else if (a.cond_failed && rc == CAIRN_ENOTFOUND) {
			struct s3_err_extra ex = {"Key", r->addr.key};
			s3_reply_error_extra(r, S3E_NO_SUCH_KEY, NULL, &ex, 1);
		} else if (a.why == S3E_NO_SUCH_KEY) {
			struct s3_err_extra ex = {"Key", src.key};
			s3_reply_error_extra(r, S3E_NO_SUCH_KEY, NULL, &ex, 1);
		} else if (a.why == S3E_NO_SUCH_BUCKET) {
			struct s3_err_extra ex = {"BucketName", a.why_bucket};
			s3_reply_error_extra(r, S3E_NO_SUCH_BUCKET, NULL, &ex, 1);
		} else if (a.why != S3E_OK) {
			s3_reply_error(r, a.why, a.why_msg);
		} else {
			s3_reply_code(r, rc, S3E_NO_SUCH_KEY);
		}
		goto out;
	}
	log_debug(TAG, "%s: copied %s/%s -> %s (%llu bytes, no data moved)", r->reqid, src.bucket,
		  src.key, r->addr.bucket, (unsigned long long)a.rec.size);
	copy_reply(r, &a);
out:
	free(f.p);
	s3_copy_src_free(&src);
}
