/* objstore/s3_bucket.c - bucket operations and the bucket records.
 *
 * A bucket is META_T_BUCKETS [part][name] plus an owner index entry
 * META_T_USERS [owner][0][name]; both change in one commit callback, which
 * re-checks existence and ownership inside the write transaction (the read
 * done before is only for early, cheap answers).
 *
 * CreateBucket on a bucket the caller already owns answers 200 when the
 * server's region is us-east-1 (as AWS does there) and 409
 * BucketAlreadyOwnedByYou otherwise; a bucket of another user is 409
 * BucketAlreadyExists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "objstore/s3_server_internal.h"
#include "objstore/s3_xml.h"

#define TAG "s3"

static size_t bucket_key(uint8_t *k, uint32_t part, const char *name)
{
	size_t n = strlen(name);

	meta_be32(k, part);
	memcpy(k + 4, name, n);
	return 4 + n;
}

static size_t owned_key(uint8_t *k, const char *user, const char *bucket)
{
	size_t u = strlen(user), b = strlen(bucket);

	memcpy(k, user, u);
	k[u] = 0;
	memcpy(k + u + 1, bucket, b);
	return u + 1 + b;
}

int s3_bucket_read(struct meta_txn *t, uint32_t part, const char *name, struct s3_bucket *out)
{
	uint8_t k[4 + S3_BUCKET_MAX];
	struct s3_bucket_rec rec;
	const void *v;
	size_t vl;
	int rc;

	if (strlen(name) > S3_BUCKET_MAX)
		return CAIRN_ENOTFOUND;
	rc = meta_get(t, META_T_BUCKETS, k, bucket_key(k, part, name), &v, &vl);
	if (rc < 0)
		return rc;
	if (vl < sizeof(rec))
		return CAIRN_ECORRUPT;
	memcpy(&rec, v, sizeof(rec));
	if (rec.version == 0)
		return CAIRN_ECORRUPT;
	if (rec.version > S3_BUCKET_VERSION)
		return CAIRN_EFORMAT;
	if (vl < sizeof(rec) + rec.owner_len + rec.region_len || rec.owner_len > S3_USER_MAX ||
	    rec.region_len >= sizeof(out->region))
		return CAIRN_ECORRUPT;
	if (out) {
		memset(out, 0, sizeof(*out));
		snprintf(out->name, sizeof(out->name), "%s", name);
		out->part = part;
		memcpy(out->owner, (const uint8_t *)v + sizeof(rec), rec.owner_len);
		memcpy(out->region, (const uint8_t *)v + sizeof(rec) + rec.owner_len,
		       rec.region_len);
		out->created_ns = rec.created_ns;
	}
	return 0;
}

int s3_bucket_check(struct s3_req *r, struct s3_bucket *out)
{
	struct meta_txn *t = NULL;
	int rc = meta_txn_begin(cs_pool_meta(r->srv->pool), false, &t);

	if (rc == 0) {
		rc = s3_bucket_read(t, r->part, r->addr.bucket, out);
		meta_txn_abort(t);
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_NO_SUCH_BUCKET);
		return 1;
	}
	if (strcmp(out->owner, r->key.user) != 0) {
		s3_reply_error(r, S3E_ACCESS_DENIED, NULL);
		return 1;
	}
	return 0;
}

/* ---- ListBuckets ---- */

void s3_op_list_buckets(struct s3_req *r)
{
	struct meta_txn *t = NULL;
	struct meta_cursor *c = NULL;
	struct s3_xml x;
	uint8_t prefix[S3_USER_MAX + 1];
	size_t plen = strlen(r->key.user) + 1;
	const void *k, *v;
	size_t kl, vl;
	char *body = NULL;
	size_t len;
	int rc;

	memcpy(prefix, r->key.user, plen); /* includes the 0 separator */
	s3_xml_init(&x);
	s3_xml_open(&x, "ListAllMyBucketsResult", S3_XMLNS);
	s3_xml_open(&x, "Owner", NULL);
	s3_xml_elem(&x, "ID", r->key.user);
	s3_xml_elem(&x, "DisplayName", r->key.user);
	s3_xml_close(&x);
	s3_xml_open(&x, "Buckets", NULL);
	rc = meta_txn_begin(cs_pool_meta(r->srv->pool), false, &t);
	if (rc < 0)
		goto out;
	rc = meta_cursor_open(t, META_T_USERS, &c);
	if (rc < 0)
		goto out;
	rc = meta_cursor_seek(c, prefix, plen, &k, &kl, &v, &vl);
	while (rc == 0 && kl > plen && memcmp(k, prefix, plen) == 0) {
		char name[S3_BUCKET_MAX + 1];
		char date[S3_ISO_EXT_LEN + 1];
		struct s3_bucket b;

		if (kl - plen > S3_BUCKET_MAX) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		memcpy(name, (const uint8_t *)k + plen, kl - plen);
		name[kl - plen] = 0;
		rc = s3_bucket_read(t, cs_name_partition(r->srv->pool, name, strlen(name)), name,
				    &b);
		if (rc == 0) {
			s3_iso_ext_format((time_t)(b.created_ns / 1000000000u),
					  (unsigned)(b.created_ns / 1000000u % 1000u), date);
			s3_xml_open(&x, "Bucket", NULL);
			s3_xml_elem(&x, "Name", name);
			s3_xml_elem(&x, "CreationDate", date);
			s3_xml_close(&x);
		} else if (rc != CAIRN_ENOTFOUND) {
			goto out;
		}
		rc = meta_cursor_next(c, &k, &kl, &v, &vl);
	}
	if (rc == CAIRN_ENOTFOUND || rc == 0)
		rc = 0;
out:
	meta_cursor_close(c);
	meta_txn_abort(t);
	if (rc < 0) {
		s3_xml_free(&x);
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return;
	}
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	s3_reply_xml(r, 200, body, len);
}

/* ---- CreateBucket ---- */

struct create_arg {
	uint32_t part;
	const char *name, *owner, *region;
	bool owned_by_caller; /* out */
};

static int create_fn(struct cs_txn *txn, void *arg)
{
	struct create_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	uint8_t k[4 + S3_BUCKET_MAX], ok[S3_USER_MAX + 1 + S3_BUCKET_MAX];
	uint8_t val[sizeof(struct s3_bucket_rec) + S3_USER_MAX + 64];
	struct s3_owned_rec owned = {.version = S3_OWNED_VERSION};
	struct s3_bucket_rec rec = {
	    .version = S3_BUCKET_VERSION,
	    .owner_len = (uint8_t)strlen(a->owner),
	    .region_len = (uint8_t)strlen(a->region),
	    .created_ns = s3_now_ns(),
	};
	struct s3_bucket old;
	const void *v;
	size_t vl;
	int rc = s3_bucket_read(t, a->part, a->name, &old);

	if (rc == 0) {
		a->owned_by_caller = strcmp(old.owner, a->owner) == 0;
		return CAIRN_EEXISTS;
	}
	if (rc != CAIRN_ENOTFOUND)
		return rc;
	/* The owner may have been deleted since it authenticated. */
	rc = meta_get(t, META_T_USERS, a->owner, strlen(a->owner), &v, &vl);
	if (rc < 0)
		return rc == CAIRN_ENOTFOUND ? CAIRN_EDENIED : rc;
	memcpy(val, &rec, sizeof(rec));
	memcpy(val + sizeof(rec), a->owner, rec.owner_len);
	memcpy(val + sizeof(rec) + rec.owner_len, a->region, rec.region_len);
	rc = meta_put(t, META_T_BUCKETS, k, bucket_key(k, a->part, a->name), val,
		      sizeof(rec) + rec.owner_len + rec.region_len, META_NOOVERWRITE);
	if (rc < 0)
		return rc;
	return meta_put(t, META_T_USERS, ok, owned_key(ok, a->owner, a->name), &owned,
			sizeof(owned), 0);
}

static void create_finish(struct s3_req *r)
{
	char location[64];
	struct create_arg a = {
	    .part = r->part,
	    .name = r->addr.bucket,
	    .owner = r->key.user,
	    .region = r->srv->region,
	};
	int rc = s3_xml_parse_create_bucket(r->body ? r->body : "", r->body_len, location,
					    sizeof(location));
	bool east = strcmp(r->srv->region, "us-east-1") == 0;

	if (rc == -ENOMEM) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	if (rc < 0) {
		s3_reply_error(r, S3E_MALFORMED_XML, NULL);
		return;
	}
	/* us-east-1 is the empty constraint; any other must name our region. */
	if (location[0] && strcmp(location, r->srv->region) != 0 &&
	    !(east && strcmp(location, "US") == 0)) {
		s3_reply_error(r, S3E_INVALID_ARGUMENT,
			       "The specified location-constraint is not valid for this server");
		return;
	}
	rc = cs_commit(r->srv->pool, NULL, create_fn, &a);
	if (rc == CAIRN_EEXISTS) {
		if (!a.owned_by_caller)
			s3_reply_error(r, S3E_BUCKET_ALREADY_EXISTS, NULL);
		else if (!east)
			s3_reply_error(r, S3E_BUCKET_ALREADY_OWNED_BY_YOU, NULL);
		else
			goto ok;
		return;
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return;
	}
	log_info(TAG, "bucket %s created by %s", r->addr.bucket, r->key.user);
ok:;
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (resp) {
		char loc[S3_BUCKET_MAX + 2];
		snprintf(loc, sizeof(loc), "/%s", r->addr.bucket);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
	}
	s3_reply_response(r, 200, resp);
}

/* The system bucket: made once, owned by the root user, region "" (each
 * server answers its own region for it). A bucket of that name owned by
 * someone else (made before this version reserved the name) is refused:
 * the registry must never write images into a user's bucket. */
int s3_system_bucket_ensure(struct cs_pool *pool)
{
	struct create_arg a = {
	    .part = cs_name_partition(pool, S3_SYSTEM_BUCKET, strlen(S3_SYSTEM_BUCKET)),
	    .name = S3_SYSTEM_BUCKET,
	    .owner = S3_ROOT_USER,
	    .region = "",
	};
	int rc = cs_commit(pool, NULL, create_fn, &a);

	if (rc == CAIRN_EEXISTS && a.owned_by_caller)
		return 0;
	if (rc == CAIRN_EEXISTS) {
		log_err(TAG,
			"bucket %s exists and is not the root user's: rename it, the image "
			"registry reserves the name",
			S3_SYSTEM_BUCKET);
		return rc;
	}
	if (rc == 0)
		log_info(TAG, "system bucket %s created", S3_SYSTEM_BUCKET);
	return rc;
}

void s3_op_create_bucket_start(struct s3_req *r)
{
	if (r->has_cl && r->content_length > S3_CREATE_BUCKET_BODY_MAX) {
		s3_reply_error(r, S3E_MAX_MESSAGE_LENGTH_EXCEEDED, NULL);
		return;
	}
	if (s3_bucket_name_check(r->addr.bucket) < 0) {
		s3_reply_error(r, S3E_INVALID_BUCKET_NAME, NULL);
		return;
	}
	r->finish = create_finish;
	r->state = S3_ST_BODY;
}

/* ---- HeadBucket, GetBucketLocation ---- */

void s3_op_head_bucket(struct s3_req *r)
{
	struct s3_bucket b;
	struct MHD_Response *resp;

	if (s3_bucket_check(r, &b))
		return;
	resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (resp)
		MHD_add_response_header(resp, "x-amz-bucket-region",
					b.region[0] ? b.region : r->srv->region);
	s3_reply_response(r, 200, resp);
}

void s3_op_get_bucket_location(struct s3_req *r)
{
	struct s3_bucket b;
	struct s3_xml x;
	char *body;
	size_t len;

	if (s3_bucket_check(r, &b))
		return;
	s3_xml_init(&x);
	s3_xml_open(&x, "LocationConstraint", S3_XMLNS);
	/* The system bucket has no region of its own: this server's. */
	if (!b.region[0])
		snprintf(b.region, sizeof(b.region), "%s", r->srv->region);
	/* AWS answers an empty constraint for us-east-1. */
	if (strcmp(b.region, "us-east-1") != 0)
		s3_xml_text(&x, b.region, strlen(b.region));
	s3_xml_close(&x);
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	s3_reply_xml(r, 200, body, len);
}

/* A bucket that never had versioning enabled: AWS answers an empty
 * configuration (no Status). Clients such as rclone ask before purging. */
void s3_op_get_bucket_versioning(struct s3_req *r)
{
	struct s3_bucket b;
	struct s3_xml x;
	char *body;
	size_t len;

	if (s3_bucket_check(r, &b))
		return;
	s3_xml_init(&x);
	s3_xml_open(&x, "VersioningConfiguration", S3_XMLNS);
	s3_xml_close(&x);
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	s3_reply_xml(r, 200, body, len);
}

/* ---- DeleteBucket ---- */

struct delete_arg {
	uint32_t part;
	const char *name, *owner;
};

static int delete_fn(struct cs_txn *txn, void *arg)
{
	struct delete_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	uint8_t k[4 + S3_BUCKET_MAX], ok[S3_USER_MAX + 1 + S3_BUCKET_MAX];
	struct s3_bucket b;
	int rc = s3_bucket_read(t, a->part, a->name, &b);

	if (rc < 0)
		return rc;
	if (strcmp(b.owner, a->owner) != 0)
		return CAIRN_EDENIED;
	rc = s3_idx_empty(t, a->part, a->name);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return CAIRN_ENOTEMPTY;
	rc = s3_multipart_drop_bucket(txn, a->part, a->name);
	if (rc < 0)
		return rc;
	rc = meta_del(t, META_T_BUCKETS, k, bucket_key(k, a->part, a->name));
	if (rc < 0)
		return rc;
	rc = meta_del(t, META_T_USERS, ok, owned_key(ok, b.owner, a->name));
	return rc == CAIRN_ENOTFOUND ? 0 : rc;
}

void s3_op_delete_bucket(struct s3_req *r)
{
	struct s3_bucket b;
	struct delete_arg a = {r->part, r->addr.bucket, r->key.user};
	int rc;

	if (s3_bucket_check(r, &b))
		return;
	rc = cs_commit(r->srv->pool, NULL, delete_fn, &a);
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_NO_SUCH_BUCKET);
		return;
	}
	log_info(TAG, "bucket %s deleted by %s", r->addr.bucket, r->key.user);
	s3_reply_empty(r, 204);
}
