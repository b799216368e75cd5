/* objstore/s3_link.c - object links and lookups for the image registry
 * (objstore/s3.h): an object whose bytes are a manifest someone else made.
 *
 * A link is what CopyObject writes (s3_copy.c), with the record built from
 * the caller's s3_link instead of a source object: the same object record
 * encoding, the same index (s3_idx_put, so keys longer than S3_KEY_INLINE
 * go into group records), one cs_manifest_ref for the new record and one
 * cs_manifest_unref for the record it replaces. Listing, GET and DELETE
 * then see a linked object exactly as a PUT one: there is nothing else to
 * update (a bucket keeps no object counters; its index is its listing).
 *
 * Threads: the _txn functions run inside a cs_commit callback (the
 * committer thread); s3_object_resolve on any thread (a read transaction of
 * its own, no I/O). Cost: O(record), whatever the object's size.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "objstore/s3_server_internal.h"

#define TAG "s3link"
#define LINK_CTYPE_DEFAULT "application/octet-stream"

/* Checks names as the S3 front end would; false: not an S3 object name. */
static bool names_ok(const char *bucket, const char *key)
{
	return bucket && key && s3_bucket_name_check(bucket) == 0 &&
	       s3_key_check(key, strlen(key)) == 0;
}

int s3_object_link_txn(struct cs_txn *txn, struct cs_pool *pool, const char *bucket,
		       const char *key, const struct s3_link *l)
{
	struct meta_txn *t = cs_txn_meta(txn);
	const char *ctype = l && l->content_type ? l->content_type : LINK_CTYPE_DEFAULT;
	struct s3_obj_rec rec = {.version = S3_OBJ_VERSION};
	struct s3_fbuf f = {0};
	struct cs_mid old;
	bool had_old = false;
	uint8_t *val = NULL;
	uint64_t msize;
	uint32_t part;
	int rc;

	if (!l || !l->mid || !names_ok(bucket, key) || !s3_user_name_valid(l->owner))
		return CAIRN_EINVAL;
	part = cs_name_partition(pool, bucket, strlen(bucket));
	rc = s3_bucket_read(t, part, bucket, NULL);
	if (rc < 0)
		return rc;
	/* The record's size is what GET serves and listings show: it must be
	 * the manifest's, or a reader would stop short or run past it. */
	rc = cs_manifest_size(t, pool, l->mid, &msize);
	if (rc < 0)
		return rc;
	if (msize != l->size)
		return CAIRN_EINVAL;
	s3_fbuf_add(&f, S3_F_CONTENT_TYPE, "", 0, ctype, strlen(ctype));
	s3_fbuf_add(&f, S3_F_OWNER, "", 0, l->owner, strlen(l->owner));
	if (f.err) {
		rc = f.err;
		goto out;
	}
	rec.nfields = f.n;
	rec.size = l->size;
	rec.mtime_ns = l->mtime_ns ? l->mtime_ns : s3_now_ns();
	memcpy(rec.md5, l->md5, sizeof(rec.md5));
	memcpy(rec.mid, l->mid->b, CS_MID_LEN);
	val = malloc(sizeof(rec) + f.len);
	if (!val) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(val, &rec, sizeof(rec));
	memcpy(val + sizeof(rec), f.p, f.len);
	/* The reference first, as CopyObject does: relinking a key to the
	 * manifest it already holds hands that manifest back as the old one,
	 * and its count never touches zero on the way. */
	rc = cs_manifest_ref(txn, l->mid);
	if (rc < 0)
		goto out;
	rc =
	    s3_idx_put(t, part, bucket, key, strlen(key), val, sizeof(rec) + f.len, &old, &had_old);
	if (rc == 0 && had_old)
		rc = cs_manifest_unref(txn, &old);
out:
	free(val);
	free(f.p);
	return rc;
}

int s3_object_unlink_txn(struct cs_txn *txn, struct cs_pool *pool, const char *bucket,
			 const char *key)
{
	struct meta_txn *t = cs_txn_meta(txn);
	struct cs_mid old;
	bool had_old = false;
	uint32_t part;
	int rc;

	if (!names_ok(bucket, key))
		return CAIRN_ENOTFOUND;
	part = cs_name_partition(pool, bucket, strlen(bucket));
	rc = s3_idx_del(t, part, bucket, key, strlen(key), &old, &had_old);
	if (rc < 0)
		return rc;
	if (!had_old)
		return CAIRN_ENOTFOUND;
	return cs_manifest_unref(txn, &old);
}

/* Copies a field's value (NUL-terminated, cut to cap - 1). */
static void field_copy(const struct s3_objinfo *o, uint8_t tag, char *out, size_t cap)
{
	const char *v;
	size_t vl;

	out[0] = 0;
	if (!s3_field_find(o, tag, &v, &vl))
		return;
	if (vl >= cap)
		vl = cap - 1;
	memcpy(out, v, vl);
	out[vl] = 0;
}

static int resolve_meta(struct meta_txn *t, struct cs_pool *pool, const char *bucket,
			const char *key, struct s3_object_info *out)
{
	struct s3_bucket b;
	struct s3_objinfo o;
	const void *v;
	size_t vl;
	uint32_t part;
	int rc;

	if (!names_ok(bucket, key))
		return CAIRN_ENOTFOUND;
	part = cs_name_partition(pool, bucket, strlen(bucket));
	rc = s3_bucket_read(t, part, bucket, &b);
	if (rc < 0)
		return rc;
	rc = s3_idx_get(t, part, bucket, key, strlen(key), &v, &vl);
	if (rc < 0)
		return rc;
	rc = s3_obj_parse(v, vl, &o);
	if (rc < 0)
		return rc;
	memset(out, 0, sizeof(*out));
	memcpy(out->mid, o.rec.mid, sizeof(out->mid));
	out->size = o.rec.size;
	memcpy(out->md5, o.rec.md5, sizeof(out->md5));
	out->parts = o.rec.parts;
	field_copy(&o, S3_F_OWNER, out->owner, sizeof(out->owner));
	field_copy(&o, S3_F_CONTENT_TYPE, out->content_type, sizeof(out->content_type));
	snprintf(out->bucket_owner, sizeof(out->bucket_owner), "%s", b.owner);
	return 0;
}

int s3_object_resolve(struct cs_pool *pool, const char *bucket, const char *key,
		      struct s3_object_info *out)
{
	struct meta_txn *t = NULL;
	int rc = meta_txn_begin(cs_pool_meta(pool), false, &t);

	if (rc < 0)
		return rc;
	rc = resolve_meta(t, pool, bucket, key, out);
	meta_txn_abort(t);
	return rc;
}

int s3_object_resolve_txn(struct cs_txn *txn, struct cs_pool *pool, const char *bucket,
			  const char *key, struct s3_object_info *out)
{
	return resolve_meta(cs_txn_meta(txn), pool, bucket, key, out);
}
