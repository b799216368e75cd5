/* node/admin_img.c - the image routes of the admin API:
 * POST /admin/v1/images/register, GET /admin/v1/images/df and
 * POST /admin/v1/volumes/NAME/upload-image; and the error table of every
 * registry call the admin API makes (admin_vol.c's volume from an image
 * too).
 *
 * The operator acts as admin (registry user NULL): an image it registers or
 * captures belongs to "owner" when given (a cairn user), else, for an S3
 * object, to the owner of the object's bucket (so `cairn image register`
 * of alice's object gives alice an image she sees with her token), else to
 * the registry's admin default. The answers are the Glance image JSON the
 * registry builds.
 *
 * Threads: the admin server's connection threads; registry calls may block
 * on a group commit and, for register and upload-image, read the whole
 * image once (the request waits: the CLI's timeout is the limit).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "blockstore/bs.h"
#include "chunkstore/chunkstore.h"
#include "core/log.h"
#include "node/node.h"
#include "objstore/s3.h"
#include "registry/registry.h"

#define TAG "api"
#define IMG_URI_MAX 2048
#define IMG_FIELD_MAX 255 /* Glance's limit on name and property values */
#define IMG_WHY_MAX 512

enum iroute { IR_NONE = 0, IR_REGISTER, IR_DF, IR_UPLOAD };

struct ipath {
	enum iroute route;
	bool bad;		    /* the volume name does not decode */
	char vol[VOL_NAME_MAX + 1]; /* IR_UPLOAD */
	const char *query;
};

/* Returns false when target is not an image route at all. */
static bool parse_path(const char *target, struct ipath *p)
{
	static const char images[] = "/admin/v1/images", vols[] = "/admin/v1/volumes/",
			  upload[] = "/upload-image";
	size_t plen = strcspn(target, "?");
	memset(p, 0, sizeof(*p));
	p->query = target[plen] == '?' ? target + plen + 1 : "";
	size_t il = sizeof(images) - 1, vl = sizeof(vols) - 1, ul = sizeof(upload) - 1;
	if (plen >= il && strncmp(target, images, il) == 0 && (plen == il || target[il] == '/')) {
		if (plen == il + 9 && strncmp(target + il, "/register", 9) == 0)
			p->route = IR_REGISTER;
		else if (plen == il + 3 && strncmp(target + il, "/df", 3) == 0)
			p->route = IR_DF;
		return true; /* IR_NONE: no such endpoint */
	}
	if (plen > vl + ul && strncmp(target, vols, vl) == 0 &&
	    strncmp(target + plen - ul, upload, ul) == 0) {
		const char *s = target + vl;
		size_t n = plen - vl - ul;
		if (n == 0 || memchr(s, '/', n))
			return false; /* not NAME/upload-image: the volume routes' */
		p->route = IR_UPLOAD;
		if (!admin_pct_decode(s, n, p->vol, sizeof(p->vol)))
			p->bad = true;
		return true;
	}
	return false;
}

bool admin_img_match(const char *method, const char *target, const char **op, const char **allow)
{
	struct ipath p;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	*op = NULL;
	*allow = NULL;
	if (!parse_path(target, &p))
		return false;
	switch (p.route) {
	case IR_NONE:
		break;
	case IR_REGISTER:
		*allow = "POST";
		*op = post ? "RegisterImage" : NULL;
		break;
	case IR_DF:
		*allow = "GET";
		*op = get ? "ImageUsage" : NULL;
		break;
	case IR_UPLOAD:
		*allow = "POST";
		*op = post ? "UploadVolumeToImage" : NULL;
		break;
	}
	return true;
}

/* ---- answers ---- */

static unsigned set_error(json_t **out, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static unsigned set_error(json_t **out, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[800];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_decref(*out);
	*out = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
	return status;
}

static unsigned set_ok(json_t **out, unsigned status, json_t *body)
{
	json_decref(*out);
	*out = body;
	if (!body)
		return set_error(out, 503, "SlowDown", "out of memory; retry");
	return status;
}

unsigned admin_img_error(int err, enum admin_img_ctx ctx, const char *name, const char *why,
			 struct json_t **out)
{
	bool have_why = why && why[0];
	switch (err) {
	case CAIRN_ENOTFOUND:
		if (ctx == ADMIN_IMG_REGISTER)
			return set_error(out, 404, "NoSuchObject", "object %s does not exist%s%s",
					 name, have_why ? ": " : "", have_why ? why : "");
		if (ctx == ADMIN_IMG_FROM_VOLUME)
			return set_error(out, 404, "NoSuchVolume",
					 "volume %s does not exist (cairn volume list)", name);
		return set_error(out, 404, "NoSuchImage",
				 "image %s does not exist (glance image-list)", name);
	case -EBUSY:
		if (ctx == ADMIN_IMG_FROM_VOLUME)
			return set_error(out, 409, "VolumeBusy", "volume %s is busy%s%s; retry",
					 name, have_why ? ": " : "", have_why ? why : "");
		if (ctx == ADMIN_IMG_REGISTER)
			return set_error(out, 409, "Conflict",
					 "object %s changed while it was registered%s%s; retry",
					 name, have_why ? ": " : "", have_why ? why : "");
		return set_error(out, 409, "ImageNotActive",
				 "image %s is not active%s%s: only an active image makes volumes",
				 name, have_why ? ": " : "", have_why ? why : "");
	case CAIRN_EEXISTS:
		if (ctx == ADMIN_IMG_VOLUME)
			return set_error(out, 409, "VolumeExists", "volume %s already exists",
					 name);
		return set_error(out, 409, "ImageExists", "the new image of %s already exists%s%s",
				 name, have_why ? ": " : "", have_why ? why : "");
	case CAIRN_EINVAL:
		return set_error(out, 400, "InvalidArgument", "%s",
				 have_why ? why : "invalid argument");
	case CAIRN_EDENIED:
		return set_error(out, 403, "AccessDenied", "%s: %s", name,
				 have_why ? why : "not allowed");
	case -EFBIG:
	case CAIRN_ETOOBIG:
		return set_error(out, 413, "EntityTooLarge",
				 "%s is larger than the registry's max_image_size%s%s", name,
				 have_why ? ": " : "", have_why ? why : "");
	case -ENOSPC:
	case CAIRN_ENOSPACE:
		return set_error(out, 507, "InsufficientStorage",
				 "the pool or the metadata map is full");
	case -ENOMEM:
		return set_error(out, 503, "SlowDown", "out of memory; retry");
	case CAIRN_ESHUTDOWN:
	case -ESHUTDOWN:
		return set_error(out, 503, "ServiceUnavailable", "cairn is shutting down");
	default:
		log_err(TAG, "%s: %s%s%s", name, cairn_strerror(err), have_why ? ": " : "",
			have_why ? why : "");
		return set_error(out, 500, "InternalError", "%s: %s%s%s", name, cairn_strerror(err),
				 have_why ? ": " : "", have_why ? why : "");
	}
}

/* ---- request parsing ---- */

/* The body as a JSON object whose members are all strings of allowed keys
 * (an empty body is {} unless required). NULL: answered in *out. */
static json_t *load_fields(const char *body, size_t len, bool required, const char *const *allowed,
			   const char *expect, json_t **out, unsigned *status)
{
	json_error_t jerr;
	const char *k;
	json_t *v;
	if (len == 0 && !required)
		return json_object();
	json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		*status = set_error(out, 400, "InvalidArgument",
				    "the body is not JSON (%s at %d:%d); expected %s", jerr.text,
				    jerr.line, jerr.column, expect);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		*status = set_error(out, 400, "InvalidArgument",
				    "the body must be a JSON object: %s", expect);
		return NULL;
	}
	json_object_foreach(o, k, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = strcmp(k, allowed[i]) == 0;
		if (!ok) {
			*status = set_error(out, 400, "InvalidArgument",
					    "unknown field \"%.64s\" (expected %s)", k, expect);
			goto bad;
		}
		size_t max = strcmp(k, "uri") == 0 ? IMG_URI_MAX : IMG_FIELD_MAX;
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > max ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			*status =
			    set_error(out, 400, "InvalidArgument",
				      "field \"%.64s\" must be a string of 1 to %zu bytes", k, max);
			goto bad;
		}
	}
	return o;
bad:
	json_decref(o);
	return NULL;
}

/* "owner" must be a cairn user: 0, or answered (-1). */
static int check_owner(struct cs_pool *pool, json_t *fields, json_t **out, unsigned *status)
{
	const char *owner = json_string_value(json_object_get(fields, "owner"));
	if (!owner)
		return 0;
	int rc = s3_user_get(pool, owner, NULL);
	if (rc == CAIRN_ENOTFOUND || rc == CAIRN_EINVAL) {
		*status = set_error(out, 404, "NoSuchUser",
				    "owner '%s' is not a cairn user (cairn user list)", owner);
		return -1;
	}
	if (rc < 0) {
		*status = admin_img_error(rc, ADMIN_IMG_REGISTER, owner, NULL, out);
		return -1;
	}
	return 0;
}

/* Splits "s3://BUCKET/KEY": false unless both parts are there. */
static bool split_s3_uri(const char *uri, char *bucket, size_t blen, const char **key)
{
	if (strncmp(uri, "s3://", 5) != 0)
		return false;
	const char *b = uri + 5, *slash = strchr(b, '/');
	if (!slash || slash == b || !slash[1] || (size_t)(slash - b) >= blen)
		return false;
	memcpy(bucket, b, (size_t)(slash - b));
	bucket[slash - b] = '\0';
	*key = slash + 1;
	return true;
}

/* ---- handlers ---- */

static unsigned do_register(const struct admin_img_env *env, const char *body, size_t len,
			    json_t **out)
{
	static const char *const keys[] = {
	    "uri", "owner", "name", "disk_format", "container_format", "visibility", NULL};
	static const char expect[] =
	    "{\"uri\": \"s3://BUCKET/KEY\", \"owner\"?, \"name\"?, \"disk_format\"?, "
	    "\"container_format\"?, \"visibility\"?}";
	unsigned status = 0;
	char bucket[256], *uri = NULL, why[IMG_WHY_MAX] = "";
	const char *key;
	json_t *img = NULL;
	json_t *o = load_fields(body, len, true, keys, expect, out, &status);
	if (!o)
		return status;
	const char *u = json_string_value(json_object_get(o, "uri"));
	if (!u) {
		status = set_error(out, 400, "InvalidArgument",
				   "field \"uri\" is missing: expected %s", expect);
		goto out;
	}
	uri = strdup(u);
	if (!uri) {
		status = admin_img_error(-ENOMEM, ADMIN_IMG_REGISTER, "", NULL, out);
		goto out;
	}
	if (!split_s3_uri(uri, bucket, sizeof(bucket), &key)) {
		status = set_error(out, 400, "InvalidArgument",
				   "field \"uri\" must be s3://BUCKET/KEY (got '%.200s')", uri);
		goto out;
	}
	json_object_del(o, "uri"); /* what is left are Glance create fields */
	if (check_owner(env->pool, o, out, &status) < 0)
		goto out;
	if (!json_object_get(o, "owner")) {
		/* The bucket's owner gets the image (see the file comment). */
		struct s3_object_info oi;
		int rc = s3_object_resolve(env->pool, bucket, key, &oi);
		if (rc < 0) {
			status = admin_img_error(rc, ADMIN_IMG_REGISTER, uri, NULL, out);
			goto out;
		}
		if (oi.bucket_owner[0] &&
		    json_object_set_new(o, "owner", json_string(oi.bucket_owner)) != 0) {
			status = admin_img_error(-ENOMEM, ADMIN_IMG_REGISTER, uri, NULL, out);
			goto out;
		}
	}
	int rc = reg_image_register_s3(env->reg, NULL, uri, o, &img, why, sizeof(why));
	if (rc < 0) {
		status = admin_img_error(rc, ADMIN_IMG_REGISTER, uri, why, out);
		goto out;
	}
	log_info(TAG, "registered %s as image %s", uri,
		 json_string_value(json_object_get(img, "id"))
		     ? json_string_value(json_object_get(img, "id"))
		     : "?");
	status = set_ok(out, 201, img);
out:
	free(uri);
	json_decref(o);
	return status;
}

static unsigned do_upload(const struct admin_img_env *env, const char *vol, const char *body,
			  size_t len, json_t **out)
{
	static const char *const keys[] = {"name", "owner", "visibility", NULL};
	static const char expect[] = "{\"name\"?, \"owner\"?, \"visibility\"?}";
	unsigned status = 0;
	char why[IMG_WHY_MAX] = "";
	json_t *img = NULL;
	json_t *o = load_fields(body, len, false, keys, expect, out, &status);
	if (!o)
		return status;
	if (check_owner(env->pool, o, out, &status) < 0)
		goto out;
	int rc = reg_image_from_volume(env->reg, NULL, vol, o, &img, why, sizeof(why));
	if (rc < 0) {
		status = admin_img_error(rc, ADMIN_IMG_FROM_VOLUME, vol, why, out);
		goto out;
	}
	log_info(TAG, "captured volume %s as image %s", vol,
		 json_string_value(json_object_get(img, "id"))
		     ? json_string_value(json_object_get(img, "id"))
		     : "?");
	status = set_ok(out, 201, img);
out:
	json_decref(o);
	return status;
}

static int df_cb(const struct reg_image_usage *u, void *arg)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "id", u->id, "name",
			      u->name, "owner", u->owner, "size", (json_int_t)u->size,
			      "unique_bytes", (json_int_t)u->unique_bytes, "unique_stored",
			      (json_int_t)u->unique_stored, "shared_bytes",
			      (json_int_t)u->shared_bytes, "zero_bytes", (json_int_t)u->zero_bytes);
	if (!o || json_array_append_new(arg, o) != 0)
		return -ENOMEM;
	return 0;
}

static unsigned do_df(const struct admin_img_env *env, const char *query, json_t **out)
{
	char owner[S3_USER_MAX + 1];
	struct cs_stats st;
	int ho = admin_query_get(query, "owner", owner, sizeof(owner));
	if (ho < 0 || (ho && !owner[0]))
		return set_error(out, 400, "InvalidArgument",
				 "query parameter owner must name a user (1 to %d bytes)",
				 S3_USER_MAX);
	json_t *arr = json_array();
	if (!arr)
		return admin_img_error(-ENOMEM, ADMIN_IMG_VOLUME, "df", NULL, out);
	int rc = reg_image_df(env->reg, ho ? owner : NULL, df_cb, arr);
	if (rc == 0)
		rc = cs_pool_stats(env->pool, &st);
	if (rc < 0) {
		json_decref(arr);
		return admin_img_error(rc, ADMIN_IMG_VOLUME, "image usage", NULL, out);
	}
	return set_ok(out, 200,
		      json_pack("{s:o, s:{s:I, s:I, s:I, s:I}}", "images", arr, "pool",
				"logical_bytes", (json_int_t)st.logical_bytes, "unique_bytes",
				(json_int_t)st.unique_bytes, "stored_bytes",
				(json_int_t)st.stored_bytes, "physical_bytes",
				(json_int_t)st.physical_bytes));
}

unsigned admin_img_handle(const struct admin_img_env *env, const char *method, const char *target,
			  const char *body, size_t body_len, struct json_t **out)
{
	struct ipath p;
	const char *op, *allow;
	*out = NULL;
	if (!admin_img_match(method, target, &op, &allow) || !allow)
		return set_error(out, 404, "NotFound", "no such endpoint");
	if (!op)
		return set_error(out, 405, "MethodNotAllowed", "allowed: %s", allow);
	if (!env->reg)
		return set_error(out, 503, "ServiceUnavailable",
				 "the image registry is not served by this node");
	parse_path(target, &p);
	if (p.bad)
		return set_error(out, 400, "InvalidArgument",
				 "the volume name in the path does not decode (percent-encoding, "
				 "no NUL) or is longer than %d bytes",
				 VOL_NAME_MAX);
	switch (p.route) {
	case IR_REGISTER:
		return do_register(env, body, body_len, out);
	case IR_DF:
		return do_df(env, p.query, out);
	case IR_UPLOAD:
		return do_upload(env, p.vol, body, body_len, out);
	case IR_NONE:
		break;
	}
	return set_error(out, 404, "NotFound", "no such endpoint");
}
