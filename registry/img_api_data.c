/* registry/img_api_data.c - image data: PUT .../file and .../stage
 * (streamed), GET .../file, POST .../import and /v2/info/import.
 *
 * An upload claims the image first (queued -> saving, or uploading for a
 * stage) in a commit of its own, so a second upload racing it gets 409
 * before any byte flows; the body then streams into img_upload_write as
 * libmicrohttpd hands it over. Any failure (a refused qcow2: 400, over the
 * size limit: 413, a pool error, the client going away) puts the image back
 * to queued and releases whatever manifest the upload had committed, as
 * Glance does with a failed upload.
 *
 * Imports that read a source (web-download, s3-object) run on a thread of
 * their own and answer 202 at once, with the image "importing"; failure
 * records the reason in the doc's "import" and goes back to queued.
 * glance-direct takes the staged manifest over in one commit: the stage
 * already hashed and checked the bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chunkstore/chunkstore.h"
#include "core/hash.h"
#include "core/log.h"
#include "objstore/s3.h"
#include "registry/img_api.h"
#include "registry/img_data.h"

#define TAG "glance"

/* ---- uploads ---- */

static void upload_error(struct img_req *rq, struct img_resp *rs, int err, const char *why)
{
	char sid[37];
	img_id_fmt(rq->up_id, sid);
	switch (err) {
	case -EFBIG:
	case CAIRN_ETOOBIG:
		img_err(rs, 413, "The incoming image is too large: the limit is %" PRIu64 " bytes",
			rq->reg->max_size);
		break;
	case CAIRN_EINVAL:
		img_err(rs, 400, "%s", why && why[0] ? why : "The image data was refused.");
		break;
	case CAIRN_ENOTFOUND:
		img_err(rs, 404,
			"Image %s could not be found after upload. The image may have "
			"been deleted during the upload.",
			sid);
		break;
	case CAIRN_ENOSPACE:
	case -ENOSPC:
		img_err(rs, 413, "Image storage media is full: %s", why && why[0] ? why : "");
		break;
	case -EBUSY:
		img_err(rs, 409, "%s",
			why && why[0] ? why : "The image changed during the upload.");
		break;
	default:
		img_err_code(rs, err, why && why[0] ? why : "upload");
	}
}

int img_upload_begin(struct img_req *rq, struct img_resp *rs)
{
	struct registry *reg = rq->reg;
	struct img_entry *e = NULL;
	char why[512] = "";
	int ret;
	rq->up_stage = strcmp(rq->segs[3], "stage") == 0;
	if (img_id_parse(rq->segs[2], rq->up_id) < 0 ||
	    img_lookup(reg, &rq->who, rq->up_id, &e) < 0) {
		img_err(rs, 404, "No image found with ID %s", rq->segs[2]);
		return -1;
	}
	bool ok = img_can_write(&rq->who, e);
	img_entry_put(e);
	if (!ok) {
		img_err(rs, 403,
			"Insufficient permissions on image storage media: not allowed to "
			"upload image data for image %s",
			rq->segs[2]);
		return -1;
	}
	if (!rq->content_type || strncmp(rq->content_type, "application/octet-stream", 24) != 0) {
		img_err(rs, 415, "The request media type %s is not supported by this server.",
			rq->content_type ? rq->content_type : "(none)");
		return -1;
	}
	ret = img_claim(reg, rq->up_id, rq->up_stage ? IMG_UPLOADING : IMG_SAVING, !rq->up_stage,
			why, sizeof(why), &rq->up_claim);
	if (ret < 0) {
		if (ret == CAIRN_EINVAL)
			img_err(rs, 400, "%s", why);
		else
			upload_error(rq, rs, ret, why);
		return -1;
	}
	rq->up_started = true;
	e = img_store_get(reg->st, rq->up_id);
	/* the owner's dedup domain (a null owner is the root user's, as its link) */
	struct img_data_opts o = {.max_size = reg->max_size,
				  .tmp_dir = reg->tmp_dir,
				  .qemu_img = reg->qemu_img,
				  .owner = e && e->owner ? e->owner : S3_ROOT_USER};
	ret = img_upload_open(reg->pool, &o, e ? e->disk_format : NULL, &rq->up);
	img_entry_put(e);
	if (ret < 0) {
		rq->up_err = ret;
		upload_error(rq, rs, ret, "cannot start the upload");
		img_upload_abort(rq);
		return -1;
	}
	return 0;
}

void img_upload_feed(struct img_req *rq, const void *buf, size_t len)
{
	if (rq->up_err || !rq->up)
		return; /* drained: the error goes out at the end */
	rq->up_bytes += len;
	int ret = img_upload_write(rq->up, buf, len);
	if (ret < 0)
		rq->up_err = ret;
}

void img_upload_abort(struct img_req *rq)
{
	if (!rq->up_started)
		return;
	rq->up_started = false;
	img_upload_free(rq->up);
	rq->up = NULL;
	if (img_revert_queued(rq->reg, rq->up_id, rq->up_claim, NULL, NULL) < 0)
		log_err(TAG, "cannot put an image back to queued after a failed upload");
}

void img_upload_end(struct img_req *rq, struct img_resp *rs)
{
	struct img_data_result res;
	char why[512] = "";
	int ret = rq->up_err;
	if (!rq->up_started)
		return;
	if (ret == 0)
		ret = img_upload_finish(rq->up, &res);
	if (ret == 0) {
		struct img_finish f = {.src = rq->up_stage ? IMG_SRC_STAGE : IMG_SRC_BODY};
		ret = img_commit_upload(rq->reg, rq->up_id, rq->up_claim, rq->up, &f, why,
					sizeof(why));
	}
	if (ret < 0) {
		if (!why[0] && rq->up)
			snprintf(why, sizeof(why), "%s", img_upload_why(rq->up));
		upload_error(rq, rs, ret, why);
		log_info(TAG, "upload to %s failed after %" PRIu64 " bytes: %s", rq->segs[2],
			 rq->up_bytes, why[0] ? why : cairn_strerror(ret));
		img_upload_abort(rq);
		return;
	}
	img_upload_free(rq->up);
	rq->up = NULL;
	rq->up_started = false;
	rs->status = 204;
}

/* ---- download ---- */

/* Digits only (sscanf's %llu would take a sign); *p moves past them. */
static bool range_num(const char **p, unsigned long long *v)
{
	const char *s = *p;
	char *e;
	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	*v = strtoull(s, &e, 10);
	if (errno == ERANGE)
		*v = ULLONG_MAX; /* saturate: clamped to the size below */
	*p = e;
	return true;
}

/* "bytes=a-b", "bytes=a-", "bytes=-n": 0 and [off, off+len). As Glance
 * (webob): several ranges are CAIRN_EINVAL (400); a header that does not
 * parse or starts past the end is CAIRN_ERANGE (416); "bytes=-0" is "0-". */
int img_parse_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
	unsigned long long a = 0, b = 0;
	bool has_a, has_b;
	if (strchr(h, ','))
		return CAIRN_EINVAL;
	if (strncmp(h, "bytes=", 6) != 0)
		return CAIRN_ERANGE;
	h += 6;
	has_a = range_num(&h, &a);
	if (*h++ != '-')
		return CAIRN_ERANGE;
	has_b = range_num(&h, &b);
	if (*h != '\0' || (!has_a && !has_b))
		return CAIRN_ERANGE;
	if (!has_a) { /* suffix: the last b bytes */
		if (b == 0)
			b = size; /* webob reads "-0" as the whole entity */
		if (size == 0)
			return CAIRN_ERANGE;
		if (b > size)
			b = size;
		*off = size - b;
		*len = b;
		return 0;
	}
	if (a >= size || (has_b && b < a))
		return CAIRN_ERANGE;
	if (!has_b || b >= size)
		b = size - 1;
	*off = a;
	*len = b - a + 1;
	return 0;
}

void img_api_download(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN])
{
	struct img_entry *e = NULL;
	if (img_lookup(rq->reg, &rq->who, id, &e) < 0) {
		char s[37];
		img_id_fmt(id, s);
		img_err(rs, 404, "No image found with ID %s", s);
		return;
	}
	if (e->rec.status == IMG_DEACTIVATED && !rq->who.admin) {
		img_err(rs, 403,
			"The requested image has been deactivated. Image data download is "
			"forbidden.");
		goto out;
	}
	if (!(e->rec.flags & IMG_F_DATA)) {
		rs->status = 204;
		goto out;
	}
	uint64_t size = e->rec.size, off = 0, len = size;
	if (rq->range) {
		int r = img_parse_range(rq->range, size, &off, &len);
		if (r == CAIRN_EINVAL) {
			img_err(
			    rs, 400,
			    "Requests with multiple ranges are not supported in Glance. You may "
			    "make multiple single-range requests instead.");
			goto out;
		}
		if (r == CAIRN_ERANGE) {
			img_err(rs, 416, "Requested range not satisfiable");
			rs->hdr_name = "Content-Range";
			snprintf(rs->hdr_val, sizeof(rs->hdr_val), "bytes */%" PRIu64, size);
			goto out;
		}
		rs->partial = true;
	}
	int ret = cs_reader_open(rq->reg->pool, (const struct cs_mid *)e->rec.mid, &rs->rd);
	if (ret < 0) {
		img_err_code(rs, ret, "cannot read the image data");
		goto out;
	}
	rs->off = off;
	rs->len = len;
	rs->total = size;
	hash_hex(e->rec.md5, 16, rs->md5_hex);
	rs->status = rs->partial ? 206 : 200;
out:
	img_entry_put(e);
}

/* ---- import ---- */

void img_api_info_import(struct img_req *rq, struct img_resp *rs)
{
	json_t *v = json_pack("[s]", "glance-direct");
	if (rq->reg->web_allow)
		json_array_append_new(v, json_string("web-download"));
	json_array_append_new(v, json_string("s3-object"));
	rs->status = 200;
	rs->json = json_pack("{s:{s:s, s:s, s:o}}", "import-methods", "description",
			     "Import methods available.", "type", "array", "value", v);
}

/* A quick check of a web-download URI before answering 202, as Glance
 * filters URIs at the API: its host (or host:port) must be in the allow
 * list, and a local address must not name one of the node's own ports.
 * img_upload_from_url checks again where it matters (the address it
 * connects to, every redirect). */
static bool uri_passes(const struct registry *reg, const char *uri)
{
	bool https = strncmp(uri, "https://", 8) == 0;
	if (!https && strncmp(uri, "http://", 7) != 0)
		return false;
	const char *a = uri + (https ? 8 : 7);
	size_t alen = strcspn(a, "/?#");
	const char *at = memchr(a, '@', alen);
	while (at) { /* userinfo: the host starts after the last '@' */
		alen -= (size_t)(at + 1 - a);
		a = at + 1;
		at = memchr(a, '@', alen);
	}
	char host[256];
	unsigned port = https ? 443 : 80;
	size_t hl;
	const char *rest;
	if (alen && a[0] == '[') {
		const char *rb = memchr(a, ']', alen);
		if (!rb)
			return false;
		hl = (size_t)(rb - a - 1);
		if (hl >= sizeof(host))
			return false;
		memcpy(host, a + 1, hl);
		rest = rb + 1;
	} else {
		const char *c = memchr(a, ':', alen);
		hl = c ? (size_t)(c - a) : alen;
		if (hl >= sizeof(host))
			return false;
		memcpy(host, a, hl);
		rest = a + hl;
	}
	host[hl] = '\0';
	if (!hl)
		return false;
	if (rest < a + alen) {
		if (*rest != ':')
			return false;
		char *end;
		unsigned long p = strtoul(rest + 1, &end, 10);
		if (end != a + alen || p == 0 || p > 65535)
			return false;
		port = (unsigned)p;
	}
	bool local = strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
		     strcmp(host, "::1") == 0 || strcmp(host, "0.0.0.0") == 0 ||
		     strcmp(host, "::") == 0;
	for (const uint16_t *p = reg->own_ports; local && p && *p; p++)
		if (*p == port)
			return false;
	char hp[300];
	snprintf(hp, sizeof(hp), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	const char *s = reg->web_allow ? reg->web_allow : "";
	while (*s) {
		size_t n = strcspn(s, ",");
		const char *e = s;
		size_t en = n;
		while (en && (*e == ' ' || *e == '\t'))
			e++, en--;
		while (en && (e[en - 1] == ' ' || e[en - 1] == '\t'))
			en--;
		if ((en == hl && strncasecmp(e, host, hl) == 0) ||
		    (en == strlen(hp) && strncasecmp(e, hp, en) == 0))
			return true;
		s += n;
		if (*s == ',')
			s++;
	}
	return false;
}

struct import_job {
	struct registry *reg;
	uint8_t id[IMG_ID_LEN];
	uint64_t claim;
	enum img_src src;
	char *url;
	char bucket[64];
	char *key;
	uint8_t mid[16];
};

/* Takes one of the IMG_IMPORTS_MAX slots of running imports (before the
 * claim, so a refused import leaves the image queued): -EAGAIN when all are
 * taken. import_release gives it back (the thread does when it ends). */
static int import_reserve(struct registry *reg)
{
	int ret = 0;
	pthread_mutex_lock(&reg->lock);
	if (reg->closing)
		ret = CAIRN_ESHUTDOWN;
	else if (reg->imports >= IMG_IMPORTS_MAX)
		ret = -EAGAIN;
	else
		reg->imports++;
	pthread_mutex_unlock(&reg->lock);
	return ret;
}

static void import_release(struct registry *reg)
{
	pthread_mutex_lock(&reg->lock);
	reg->imports--;
	pthread_cond_broadcast(&reg->cond);
	pthread_mutex_unlock(&reg->lock);
}

static void *import_main(void *arg)
{
	struct import_job *j = arg;
	char why[512];
	if (img_import_run(j->reg, j->id, j->claim, j->src, j->url,
			   j->src == IMG_SRC_MANIFEST ? j->bucket : NULL, j->key, j->mid, why,
			   sizeof(why)) == 0) {
		char s[37];
		img_id_fmt(j->id, s);
		log_info(TAG, "import of %s done", s);
	}
	struct registry *reg = j->reg;
	free(j->url);
	free(j->key);
	free(j);
	import_release(reg);
	return NULL;
}

/* Starts j's thread on the slot import_reserve took (released on failure). */
static int import_spawn(struct import_job *j)
{
	pthread_t t;
	pthread_attr_t attr;
	struct registry *reg = j->reg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, import_main, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		import_release(reg);
		return -rc;
	}
	return 0;
}

struct direct_arg {
	struct registry *reg;
	unsigned status;
};

/* glance-direct: the staged manifest becomes the image's data; its
 * reference moves from stage_mid to mid (no ref/unref), and the system
 * bucket object takes one of its own. */
static int direct_fn(struct cs_txn *txn, struct img_mut *m)
{
	struct direct_arg *da = m->arg;
	struct img_rec *r = &m->rec;
	char s[37];
	if (r->status == IMG_ACTIVE) {
		da->status = 409;
		snprintf(m->why, sizeof(m->why),
			 "Image with status active cannot be target for "
			 "import");
		return -EBUSY;
	}
	if (r->status != IMG_UPLOADING || !(r->flags & IMG_F_STAGE) || r->claim) {
		da->status = 409;
		snprintf(m->why, sizeof(m->why),
			 "Image needs to be staged before 'glance-direct' method can be used");
		return -EBUSY;
	}
	memcpy(r->mid, r->stage_mid, 16);
	memset(r->stage_mid, 0, 16);
	r->flags = (r->flags & ~(uint32_t)IMG_F_STAGE) | IMG_F_DATA;
	r->status = IMG_ACTIVE;
	r->claim = 0;
	json_object_set_new(m->doc, "import", json_pack("{s:s}", "method", "glance-direct"));
	img_id_fmt(m->id, s);
	struct s3_link l = {.mid = (const struct cs_mid *)r->mid,
			    .size = r->size,
			    .owner = json_string_value(json_object_get(m->doc, "owner")),
			    .mtime_ns = (uint64_t)img_now_ns()};
	memcpy(l.md5, r->md5, 16);
	if (!l.owner)
		l.owner = S3_ROOT_USER;
	return s3_object_link_txn(txn, da->reg->pool, S3_SYSTEM_BUCKET, s, &l);
}

/* The checks of an import body that need no image: 0 with the method
 * name (borrowed from *bodyp), or -1 with rs filled. */
static int import_parse(const char *text, size_t len, bool web_allow, json_t **bodyp,
			const char **namep, struct img_resp *rs)
{
	json_error_t jerr;

	if (!len) {
		img_err(rs, 400, "Body expected in request.");
		return -1;
	}
	*bodyp = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	if (!*bodyp) {
		img_err(rs, 400, "Malformed JSON in request body.");
		return -1;
	}
	json_t *method = json_object_get(*bodyp, "method");
	if (!method) {
		img_err(rs, 400, "Import request requires a 'method' field.");
		return -1;
	}
	*namep = json_string_value(json_object_get(method, "name"));
	if (!json_object_get(method, "name")) {
		img_err(rs, 400, "Import request requires a 'name' field.");
		return -1;
	}
	if (!*namep || (strcmp(*namep, "glance-direct") && strcmp(*namep, "s3-object") &&
			(strcmp(*namep, "web-download") || !web_allow))) {
		img_err(rs, 400, "Unknown import method name '%s'.", *namep ? *namep : "?");
		return -1;
	}
	json_t *asm_ = json_object_get(*bodyp, "all_stores_must_succeed");
	if (asm_ && !json_is_boolean(asm_)) {
		img_err(rs, 400, "'all_stores_must_succeed' must be boolean value only");
		return -1;
	}
	return 0;
}

int img_import_body_check(const char *body, size_t len, bool web_allow, struct img_resp *rs)
{
	json_t *bj = NULL;
	const char *name = NULL;
	int ret = import_parse(body, len, web_allow, &bj, &name, rs);
	json_decref(bj);
	return ret;
}

void img_api_import(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN])
{
	struct registry *reg = rq->reg;
	struct img_entry *e = NULL;
	json_t *body = NULL;
	char why[512] = "", s[37];
	struct import_job *j = NULL;
	int ret;
	img_id_fmt(id, s);
	const char *name = NULL;
	if (import_parse(rq->body, rq->body_len, reg->web_allow != NULL, &body, &name, rs) < 0)
		goto out;
	json_t *method = json_object_get(body, "method");
	if (img_lookup(reg, &rq->who, id, &e) < 0) {
		img_err(rs, 404, "No image found with ID %s", s);
		goto out;
	}
	if (!img_can_write(&rq->who, e)) {
		img_err(rs, 403, "You are not authorized to complete import_image action.");
		goto out;
	}
	if (e->rec.status == IMG_ACTIVE) {
		img_err(rs, 409, "Image with status active cannot be target for import");
		goto out;
	}
	if (!e->container_format) {
		img_err(rs, 409, "'container_format' needs to be set before import");
		goto out;
	}
	if (!e->disk_format) {
		img_err(rs, 409, "'disk_format' needs to be set before import");
		goto out;
	}
	if (strcmp(name, "glance-direct") == 0) {
		struct direct_arg da = {reg, 0};
		struct img_mut m = {.fn = direct_fn, .arg = &da};
		memcpy(m.id, id, IMG_ID_LEN);
		ret = img_store_write(reg->st, &m);
		if (ret < 0) {
			if (da.status)
				img_err(rs, da.status, "%s", m.why);
			else
				img_err_code(rs, ret, "import");
		} else {
			rs->status = 202;
			atomic_fetch_add(&reg->data_gen, 1);
			struct img_entry *ne = img_store_get(reg->st, id);
			if (ne) {
				struct cs_usage u;
				if (img_usage(reg, ne, &u) < 0)
					log_debug(TAG, "usage not computed");
				img_entry_put(ne);
			}
		}
		img_mut_clear(&m);
		goto out;
	}
	const char *uri = json_string_value(json_object_get(method, "uri"));
	if (e->rec.status != IMG_QUEUED) {
		img_err(rs, 409, "Image needs to be in 'queued' state to use '%s' method", name);
		goto out;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		img_err_code(rs, -ENOMEM, "import");
		goto out;
	}
	j->reg = reg;
	memcpy(j->id, id, IMG_ID_LEN);
	if (strcmp(name, "web-download") == 0) {
		if (!uri || !uri_passes(reg, uri)) {
			img_err(rs, 400, "URI for web-download does not pass filtering: %s",
				uri ? uri : "(none)");
			goto out;
		}
		j->src = IMG_SRC_URL;
		j->url = strdup(uri);
		if (!j->url) {
			img_err_code(rs, -ENOMEM, "import");
			goto out;
		}
	} else {
		const char *b = uri && strncmp(uri, "s3://", 5) == 0 ? uri + 5 : NULL;
		const char *slash = b ? strchr(b, '/') : NULL;
		if (!slash || slash == b || !slash[1] || (size_t)(slash - b) >= sizeof(j->bucket)) {
			img_err(rs, 400, "The s3-object method needs a uri s3://BUCKET/KEY");
			goto out;
		}
		memcpy(j->bucket, b, (size_t)(slash - b));
		j->key = strdup(slash + 1);
		if (!j->key) {
			img_err_code(rs, -ENOMEM, "import");
			goto out;
		}
		struct s3_object_info oi;
		ret = s3_object_resolve(reg->pool, j->bucket, j->key, &oi);
		if (ret == CAIRN_ENOTFOUND) {
			img_err(rs, 404, "No object %s", uri);
			goto out;
		}
		if (ret < 0) {
			img_err_code(rs, ret, "import");
			goto out;
		}
		if (!rq->who.admin && strcmp(oi.bucket_owner, rq->who.user) != 0) {
			img_err(rs, 403, "The bucket %s belongs to another user.", j->bucket);
			goto out;
		}
		j->src = IMG_SRC_MANIFEST;
		memcpy(j->mid, oi.mid, 16);
	}
	ret = import_reserve(reg);
	if (ret == -EAGAIN) {
		/* 503 + Retry-After: the service is busy, not the image in a
		 * wrong state (409 would tell the client to look at the image);
		 * glanceclient shows the message. */
		img_err(rs, 503,
			"Too many image imports are running (at most %d at a time); "
			"retry later.",
			IMG_IMPORTS_MAX);
		rs->hdr_name = "Retry-After";
		snprintf(rs->hdr_val, sizeof(rs->hdr_val), "10");
		goto out;
	}
	if (ret < 0) {
		img_err_code(rs, ret, "import");
		goto out;
	}
	ret = img_claim(reg, id, IMG_IMPORTING, true, why, sizeof(why), &j->claim);
	if (ret < 0) {
		import_release(reg);
		img_err(rs, ret == CAIRN_EINVAL || ret == -EBUSY ? 409 : 500, "%s",
			why[0] ? why : cairn_strerror(ret));
		goto out;
	}
	ret = import_spawn(j);
	if (ret < 0) {
		if (img_revert_queued(reg, id, j->claim, name, "the import could not start") < 0)
			log_err(TAG, "cannot put an image back to queued");
		img_err_code(rs, ret, "import");
		goto out;
	}
	j = NULL; /* the thread owns it */
	rs->status = 202;
out:
	if (j) {
		free(j->url);
		free(j->key);
		free(j);
	}
	img_entry_put(e);
	json_decref(body);
}
