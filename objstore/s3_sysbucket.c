/* objstore/s3_sysbucket.c - the S3 rules of the system bucket
 * (S3_SYSTEM_BUCKET, objstore/s3.h): the image registry's bucket, where
 * object <image id> holds an image's bytes.
 *
 * The registry writes it through s3_object_link_txn; over S3 it is read
 * only: GET and HEAD of an object by the root user or the user named as
 * the object's owner (s3_op_get_object checks the owner, s3_copy_src_read
 * lets such a reader copy an image out), listing and the other bucket
 * reads by the root user, and every write, delete, multipart, copy into
 * it, ACL or policy change refused for everyone, root included: images
 * change only through the registry, which keeps its own records in step.
 * The gate runs once per request, right after authentication, on the op
 * name route() chose, so no handler needs a check of its own for writes.
 */
#include <string.h>

#include "objstore/s3_server_internal.h"

static const char sys_msg[] =
    "The bucket " S3_SYSTEM_BUCKET " belongs to the image registry: its objects are images, "
    "changed only through the Glance API or `cairn image`";

/* Reads the bucket's owner (the root user) may make besides GET/HEAD. */
static const char *const root_reads[] = {
    "ListObjects",	   "ListObjectsV2",	  "GetBucketLocation",
    "HeadBucket",	   "GetBucketVersioning", "ListMultipartUploads",
    "GetObjectAttributes", "GetObjectTagging",	  NULL,
};

bool s3_is_system_bucket(const char *bucket)
{
	return bucket && strcmp(bucket, S3_SYSTEM_BUCKET) == 0;
}

int s3_sysbucket_gate(struct s3_req *r)
{
	const char *op = r->op ? r->op : "";

	if (!s3_is_system_bucket(r->addr.bucket))
		return 0;
	if (strcmp(op, "CreateBucket") == 0) {
		s3_reply_error(r, S3E_BUCKET_ALREADY_EXISTS, NULL);
		return 1;
	}
	/* The object's owner is known only once its record is read. */
	if (strcmp(op, "GetObject") == 0 || strcmp(op, "HeadObject") == 0)
		return 0;
	for (int i = 0; root_reads[i]; i++) {
		if (strcmp(op, root_reads[i]) != 0)
			continue;
		if (r->caller_root)
			return 0;
		s3_reply_error(r, S3E_ACCESS_DENIED, NULL);
		return 1;
	}
	s3_reply_error(r, S3E_ACCESS_DENIED, sys_msg);
	return 1;
}

bool s3_sysbucket_reader(const struct s3_objinfo *o, const char *user)
{
	const char *v;
	size_t vl;

	return s3_field_find(o, S3_F_OWNER, &v, &vl) && vl == strlen(user) &&
	       memcmp(v, user, vl) == 0;
}
