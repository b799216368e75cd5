/* registry/img_ops.c - image operations shared by the Glance routes, the
 * admin API and the CLI (registry/registry.h): open/close, create, delete,
 * the status claims around uploads, committing an upload's manifests into
 * the record, imports, volumes from images and images from volumes, usage.
 *
 * Reference rule (img_format.h): every manifest id a record holds with its
 * flag set is one reference, taken or dropped in the commit that sets or
 * clears the flag. The system bucket object of an active image holds its
 * own reference (s3_object_link_txn in the activating commit,
 * s3_object_unlink_txn in the deleting one).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/rand.h>

#include "blockstore/bs.h"
#include "chunkstore/chunkstore.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"
#include "objstore/s3.h"
#include "registry/img_api.h"
#include "registry/img_data.h"

#define TAG "registry"

/* ---- open / close ---- */

int reg_open(struct cs_pool *pool, struct bs_store *bs, const struct reg_opts *opts,
	     struct registry **out)
{
	struct registry *reg = calloc(1, sizeof(*reg));
	int ret;
	if (!reg)
		return -ENOMEM;
	reg->pool = pool;
	reg->bs = bs;
	reg->max_size = opts && opts->max_image_size ? opts->max_image_size : (1ull << 40);
	reg->tmp_dir = strdup(opts && opts->tmp_dir ? opts->tmp_dir : "/var/tmp");
	reg->qemu_img = opts && opts->qemu_img ? strdup(opts->qemu_img) : NULL;
	if (opts && opts->web_allow && opts->web_allow[0])
		reg->web_allow = strdup(opts->web_allow);
	/* Kept by pointer: the caller fills in ports bound after reg_open. */
	static const uint16_t no_ports[1] = {0};
	reg->own_ports = opts && opts->own_ports ? opts->own_ports : no_ports;
	pthread_mutex_init(&reg->lock, NULL);
	pthread_cond_init(&reg->cond, NULL);
	if (!reg->tmp_dir || (opts && opts->qemu_img && !reg->qemu_img) ||
	    (opts && opts->web_allow && opts->web_allow[0] && !reg->web_allow)) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = io_mkdirs(reg->tmp_dir, 0700);
	if (ret < 0) {
		log_err(TAG, "cannot make the scratch directory %s: %s", reg->tmp_dir,
			cairn_strerror(ret));
		goto fail;
	}
	ret = img_store_open(pool, &reg->st);
	if (ret < 0)
		goto fail;
	*out = reg;
	return 0;
fail:
	reg_close(reg);
	return ret;
}

void reg_close(struct registry *reg)
{
	if (!reg)
		return;
	pthread_mutex_lock(&reg->lock);
	reg->closing = true;
	while (reg->imports)
		pthread_cond_wait(&reg->cond, &reg->lock);
	pthread_mutex_unlock(&reg->lock);
	img_store_close(reg->st);
	pthread_cond_destroy(&reg->cond);
	pthread_mutex_destroy(&reg->lock);
	free(reg->tmp_dir);
	free(reg->qemu_img);
	free(reg->web_allow);
	free(reg);
}

/* ---- lookup, usage ---- */

int img_lookup(struct registry *reg, const struct img_who *w, const uint8_t id[IMG_ID_LEN],
	       struct img_entry **out)
{
	struct img_entry *e = img_store_get(reg->st, id);
	if (!e)
		return CAIRN_ENOTFOUND;
	if (!img_can_read(w, e)) {
		img_entry_put(e);
		return CAIRN_ENOTFOUND;
	}
	*out = e;
	return 0;
}

static size_t entry_mids(const struct img_entry *e, struct cs_mid mids[2])
{
	size_t n = 0;
	if (e->rec.flags & IMG_F_DATA)
		memcpy(mids[n++].b, e->rec.mid, 16);
	if (e->rec.flags & IMG_F_RAW)
		memcpy(mids[n++].b, e->rec.raw_mid, 16);
	return n;
}

int img_usage(struct registry *reg, const struct img_entry *e, struct cs_usage *out)
{
	struct cs_mid mids[2];
	size_t n = entry_mids(e, mids);
	uint64_t gen = atomic_load(&reg->data_gen);
	memset(out, 0, sizeof(*out));
	if (!n)
		return 0;
	int ret = cs_manifest_usage(reg->pool, mids, n, out);
	if (ret == 0)
		img_store_set_usage(reg->st, e->rec.id, e->rec.seq, gen, out->unique_bytes,
				    out->shared_bytes);
	return ret;
}

bool img_usage_stale(struct registry *reg, const struct img_entry *e)
{
	struct img_entry *m = (struct img_entry *)e; /* the cache fields are atomics */
	return !atomic_load(&m->usage_valid) ||
	       atomic_load(&m->usage_gen) != atomic_load(&reg->data_gen) ||
	       img_now_ns() - atomic_load(&m->usage_ns) > IMG_USAGE_MAX_AGE_NS;
}

/* ---- create ---- */

struct create_arg {
	json_t *doc; /* prepared doc */
	uint8_t visibility;
	bool protect;
};

static int create_fn(struct cs_txn *txn, struct img_mut *m)
{
	(void)txn;
	struct create_arg *ca = m->arg;
	json_decref(m->doc);
	m->doc = json_deep_copy(ca->doc);
	if (!m->doc)
		return -ENOMEM;
	m->rec.visibility = ca->visibility;
	if (ca->protect)
		m->rec.flags |= IMG_F_PROTECTED;
	return 0;
}

static void random_uuid(uint8_t id[IMG_ID_LEN])
{
	if (RAND_bytes(id, IMG_ID_LEN) != 1) {
		/* RAND_bytes does not fail on Linux once seeded; be safe anyway */
		for (int i = 0; i < IMG_ID_LEN; i++)
			id[i] = (uint8_t)rand();
	}
	id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* version 4 */
	id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

static bool reserved_key(const char *k)
{
	return strcmp(k, "location") == 0 || strcmp(k, "deleted") == 0 ||
	       strcmp(k, "deleted_at") == 0 || strncmp(k, "os_glance", 9) == 0;
}

int img_owner_check(const json_t *v, char *why, size_t whylen)
{
	if (json_is_null(v) || (json_is_string(v) && s3_user_name_valid(json_string_value(v))))
		return 0;
	snprintf(why, whylen,
		 "Invalid owner '%s': an owner must be a cairn user name (" IMG_OWNER_RULE ").",
		 json_is_string(v) ? json_string_value(v) : "(not a string)");
	return CAIRN_EINVAL;
}

int img_create_check(const struct img_who *w, json_t *body, uint8_t id[IMG_ID_LEN],
		     uint8_t *visibility, bool *protect, json_t **doc, struct img_resp *rs)
{
	static const char *const disallowed[] = {"direct_url", "self",	 "file",
						 "schema",     "stores", "locations"};
	char why[512];
	struct create_arg ca = {.visibility = IMG_VIS_SHARED};
	const char *k;
	json_t *v;

	*doc = NULL;

	for (size_t i = 0; i < sizeof(disallowed) / sizeof(disallowed[0]); i++)
		if (json_object_get(body, disallowed[i])) {
			img_err(rs, 403, "Attribute '%s' is read-only.", disallowed[i]);
			return CAIRN_EDENIED;
		}
	json_object_foreach(body, k, v)
	{
		if (img_schema_is_readonly(k) && strcmp(k, "id") != 0) {
			img_err(rs, 403, "Attribute '%s' is read-only.", k);
			return CAIRN_EDENIED;
		}
		if (img_schema_check(k, v, why, sizeof(why)) < 0) {
			img_err(rs, 400, "%s", why);
			return CAIRN_EINVAL;
		}
		if (!img_schema_is_base(k)) {
			if (strlen(k) > 255) {
				img_err(rs, 400,
					"Custom property should not be greater than 255 "
					"characters.");
				return CAIRN_EINVAL;
			}
			if (reserved_key(k)) {
				img_err(rs, 403, "Attribute '%s' is reserved.", k);
				return CAIRN_EDENIED;
			}
		}
	}
	const char *sid = json_string_value(json_object_get(body, "id"));
	if (sid) {
		if (img_id_parse(sid, id) < 0) {
			img_err(rs, 400, "Provided object does not match schema 'image': id");
			return CAIRN_EINVAL;
		}
	} else {
		random_uuid(id);
	}
	json_t *owner = json_object_get(body, "owner");
	if (owner && !w->admin &&
	    (!json_is_string(owner) || strcmp(json_string_value(owner), w->user) != 0)) {
		img_err(rs, 403, "You are not permitted to create images owned by '%s'.",
			json_string_value(owner) ? json_string_value(owner) : "None");
		return CAIRN_EDENIED;
	}
	if (owner && img_owner_check(owner, why, sizeof(why)) < 0) {
		img_err(rs, 400, "%s", why);
		return CAIRN_EINVAL;
	}
	const char *vis = json_string_value(json_object_get(body, "visibility"));
	if (vis) {
		ca.visibility = (uint8_t)img_vis_parse(vis);
		if (ca.visibility == IMG_VIS_PUBLIC && !w->admin) {
			img_err(rs, 403,
				"You are not authorized to complete publicize_image action.");
			return CAIRN_EDENIED;
		}
	}
	ca.protect = json_is_true(json_object_get(body, "protected"));
	static const char *const ints[] = {"min_ram", "min_disk"};
	for (int i = 0; i < 2; i++) {
		json_int_t n = json_integer_value(json_object_get(body, ints[i]));
		if (n < 0) {
			img_err(
			    rs, 400,
			    "Invalid value '%lld' for parameter '%s': Cannot be a negative value.",
			    (long long)n, ints[i]);
			return CAIRN_EINVAL;
		}
	}
	ca.doc = img_doc_new();
	if (!ca.doc) {
		img_err_code(rs, -ENOMEM, "create");
		return -ENOMEM;
	}
	json_t *props = json_object_get(ca.doc, "props");
	json_object_foreach(body, k, v)
	{
		if (strcmp(k, "name") == 0 || strcmp(k, "disk_format") == 0 ||
		    strcmp(k, "container_format") == 0 || strcmp(k, "owner") == 0 ||
		    strcmp(k, "min_ram") == 0 || strcmp(k, "min_disk") == 0)
			json_object_set_new(ca.doc, k, json_deep_copy(v));
		else if (strcmp(k, "os_hidden") == 0)
			json_object_set_new(ca.doc, k, json_boolean(json_is_true(v)));
		else if (strcmp(k, "tags") == 0) {
			json_t *tags = json_object_get(ca.doc, "tags");
			size_t i, j;
			json_t *t, *u;
			json_array_foreach(v, i, t)
			{
				bool dup = false;
				json_array_foreach(tags, j, u) dup |= json_equal(u, t);
				if (!dup)
					json_array_append(tags, t);
			}
		} else if (!img_schema_is_base(k))
			json_object_set_new(props, k, json_string(json_string_value(v)));
	}
	if (!owner)
		json_object_set_new(ca.doc, "owner", json_string(w->user));
	*visibility = ca.visibility;
	*protect = ca.protect;
	*doc = ca.doc;
	return 0;
}

int img_create(struct registry *reg, const struct img_who *w, json_t *body, struct img_entry **out,
	       struct img_resp *rs)
{
	uint8_t id[IMG_ID_LEN];
	struct create_arg ca;
	struct img_mut m = {0};
	int ret;

	ret = img_create_check(w, body, id, &ca.visibility, &ca.protect, &ca.doc, rs);
	if (ret < 0)
		return ret;
	memcpy(m.id, id, IMG_ID_LEN);
	m.create = true;
	m.fn = create_fn;
	m.arg = &ca;
	ret = img_store_write(reg->st, &m);
	json_decref(ca.doc);
	img_mut_clear(&m);
	if (ret == CAIRN_EEXISTS) {
		char s[37];
		img_id_fmt(id, s);
		img_err(rs, 409, "Image with identifier %s already exists!", s);
		return ret;
	}
	if (ret < 0) {
		img_err_code(rs, ret, "create");
		return ret;
	}
	*out = img_store_get(reg->st, id);
	if (!*out) {
		img_err(rs, 404, "The image was deleted while it was created.");
		return CAIRN_ENOTFOUND;
	}
	return 0;
}

/* ---- the system bucket object ---- */

int img_sys_link_txn(struct cs_txn *txn, struct registry *reg, const struct img_mut *m)
{
	const struct img_rec *r = &m->rec;
	char s[37];
	if (!(r->flags & IMG_F_DATA))
		return 0;
	struct s3_link l = {
	    .mid = (const struct cs_mid *)r->mid,
	    .size = r->size,
	    .owner = json_string_value(json_object_get(m->doc, "owner")),
	    .mtime_ns = (uint64_t)img_now_ns(),
	};
	memcpy(l.md5, r->md5, 16);
	if (!l.owner)
		l.owner = S3_ROOT_USER;
	img_id_fmt(m->id, s);
	return s3_object_link_txn(txn, reg->pool, S3_SYSTEM_BUCKET, s, &l);
}

int img_sys_unlink_txn(struct cs_txn *txn, struct registry *reg, const uint8_t id[IMG_ID_LEN])
{
	char s[37];
	img_id_fmt(id, s);
	int ret = s3_object_unlink_txn(txn, reg->pool, S3_SYSTEM_BUCKET, s);
	if (ret == CAIRN_ENOTFOUND) {
		log_warn(TAG, "image %s had no system bucket object to remove", s);
		ret = 0;
	}
	return ret;
}

/* ---- delete ---- */

static int unref_flagged(struct cs_txn *txn, struct img_rec *r, uint32_t flag)
{
	uint8_t *mid = flag == IMG_F_DATA ? r->mid : flag == IMG_F_RAW ? r->raw_mid : r->stage_mid;
	if (!(r->flags & flag))
		return 0;
	int ret = cs_manifest_unref(txn, (const struct cs_mid *)mid);
	if (ret < 0 && ret != CAIRN_ENOTFOUND)
		return ret;
	if (ret == CAIRN_ENOTFOUND)
		log_warn(TAG, "an image's manifest was already gone");
	r->flags &= ~flag;
	memset(mid, 0, 16);
	return 0;
}

struct delete_arg {
	struct registry *reg;
	uint64_t claim;	  /* 0: any; else only while the record carries it */
	bool queued_only; /* only a queued image (no upload holds it) */
};

static int delete_fn(struct cs_txn *txn, struct img_mut *m)
{
	struct delete_arg *da = m->arg;
	struct registry *reg = da->reg;
	int ret;
	if ((da->claim && m->rec.claim != da->claim) ||
	    (da->queued_only && m->rec.status != IMG_QUEUED))
		return CAIRN_ENOTFOUND; /* not the image its claimer made any more */
	if (m->rec.flags & IMG_F_PROTECTED)
		return CAIRN_EDENIED;
	/* A deactivated image has no object any more (its deactivation
	 * removed it): the unlink finds nothing and drops no reference. It is
	 * still tried, for images deactivated before deactivation unlinked. */
	if (m->rec.flags & IMG_F_DATA) {
		char s[37];
		img_id_fmt(m->id, s);
		ret = s3_object_unlink_txn(txn, reg->pool, S3_SYSTEM_BUCKET, s);
		if (ret < 0 && ret != CAIRN_ENOTFOUND)
			return ret;
	}
	if ((ret = unref_flagged(txn, &m->rec, IMG_F_DATA)) < 0 ||
	    (ret = unref_flagged(txn, &m->rec, IMG_F_RAW)) < 0 ||
	    (ret = unref_flagged(txn, &m->rec, IMG_F_STAGE)) < 0)
		return ret;
	m->remove = true;
	return 0;
}

static int delete_if(struct registry *reg, const uint8_t id[IMG_ID_LEN], uint64_t claim,
		     bool queued_only)
{
	struct delete_arg da = {reg, claim, queued_only};
	struct img_mut m = {.fn = delete_fn, .arg = &da};
	memcpy(m.id, id, IMG_ID_LEN);
	int ret = img_store_write(reg->st, &m);
	img_mut_clear(&m);
	if (ret == 0)
		atomic_fetch_add(&reg->data_gen, 1);
	return ret;
}

int img_delete(struct registry *reg, const uint8_t id[IMG_ID_LEN])
{
	return delete_if(reg, id, 0, false);
}

/* ---- claims and reverts ---- */

/* A fresh nonzero claim value: random, so no restart or other registry
 * instance repeats one an in-flight upload still holds. */
static uint64_t new_claim(void)
{
	static _Atomic uint64_t fallback;
	uint64_t c = 0;
	if (RAND_bytes((unsigned char *)&c, sizeof(c)) != 1)
		c = (uint64_t)img_now_ns() ^ (atomic_fetch_add(&fallback, 1) << 48);
	return c ? c : 1;
}

struct claim_arg {
	unsigned status;
	bool need_formats;
	char *why;
	size_t whylen;
	uint64_t claim;
};

static int claim_fn(struct cs_txn *txn, struct img_mut *m)
{
	(void)txn;
	struct claim_arg *ca = m->arg;
	if (m->rec.status != IMG_QUEUED) {
		snprintf(ca->why, ca->whylen,
			 "Image status transition from %s to %s is not allowed",
			 img_status_name(m->rec.status), img_status_name(ca->status));
		return -EBUSY;
	}
	if (ca->need_formats) {
		bool d = json_is_string(json_object_get(m->doc, "disk_format"));
		bool c = json_is_string(json_object_get(m->doc, "container_format"));
		if (!d || !c) {
			snprintf(ca->why, ca->whylen, "%s %s%s%s must be set prior to saving data.",
				 !d && !c ? "Properties" : "Property", !d ? "disk_format" : "",
				 !d && !c ? ", " : "", !c ? "container_format" : "");
			return CAIRN_EINVAL;
		}
	}
	m->rec.status = (uint8_t)ca->status;
	m->rec.claim = ca->claim;
	json_object_del(m->doc, "import");
	return 0;
}

int img_claim(struct registry *reg, const uint8_t id[IMG_ID_LEN], unsigned status,
	      bool need_formats, char *why, size_t whylen, uint64_t *claim)
{
	struct claim_arg ca = {status, need_formats, why, whylen, new_claim()};
	struct img_mut m = {.fn = claim_fn, .arg = &ca};
	memcpy(m.id, id, IMG_ID_LEN);
	int ret = img_store_write(reg->st, &m);
	img_mut_clear(&m);
	if (ret == 0)
		*claim = ca.claim;
	return ret;
}

struct revert_arg {
	uint64_t claim;
	const char *method;
	const char *why;
};

/* The doc's size as a record would hold it. */
static size_t doc_len(const json_t *doc)
{
	char *t = json_dumps(doc, JSON_COMPACT);
	size_t n = t ? strlen(t) : SIZE_MAX;
	free(t);
	return n;
}

/* Records {"method", "error"} in doc "import", shortening the error (at a
 * UTF-8 boundary) until the doc fits IMG_DOC_MAX, and leaving "import" out
 * when not even the method fits: the revert around it must commit whatever
 * the doc holds. Without "import" the doc is no larger than the one the
 * record holds now (the claim removed the old one), so it always fits. */
static void set_import_error(json_t *doc, const char *method, const char *why)
{
	size_t n = why ? strlen(why) : 0;
	for (;;) {
		while (n && ((unsigned char)why[n] & 0xc0) == 0x80)
			n--; /* never cut a UTF-8 sequence */
		json_t *imp = json_pack("{s:s, s:s%}", "method", method, "error", n ? why : "", n);
		if (imp && json_object_set_new(doc, "import", imp) == 0 &&
		    doc_len(doc) <= IMG_DOC_MAX)
			return;
		if (!n)
			break;
		n /= 2;
	}
	json_object_del(doc, "import");
	log_warn(TAG, "an import's error was not recorded: the image's doc is full");
}

/* Acts only while the record carries ra->claim: a stale upload's revert
 * (the image was deleted and re-created, or went back to queued and was
 * claimed again) leaves the new claimer's record alone. Whatever the
 * record holds under the claim (a raw view committed before the data
 * failed) was taken by this claimer, so it is released here. */
static int revert_fn(struct cs_txn *txn, struct img_mut *m)
{
	struct revert_arg *ra = m->arg;
	struct img_rec *r = &m->rec;
	int ret;
	if (!ra->claim || r->claim != ra->claim)
		return CAIRN_ENOTFOUND;
	if (r->status == IMG_ACTIVE || r->status == IMG_DEACTIVATED)
		return CAIRN_ENOTFOUND; /* never: activation clears the claim */
	if ((ret = unref_flagged(txn, r, IMG_F_RAW)) < 0 ||
	    (ret = unref_flagged(txn, r, IMG_F_STAGE)) < 0 ||
	    (ret = unref_flagged(txn, r, IMG_F_DATA)) < 0)
		return ret;
	r->status = IMG_QUEUED;
	r->claim = 0;
	r->flags &= ~(uint32_t)IMG_F_QCOW2;
	r->size = 0;
	r->virtual_size = 0;
	memset(r->md5, 0, sizeof(r->md5));
	memset(r->sha512, 0, sizeof(r->sha512));
	if (ra->method)
		set_import_error(m->doc, ra->method, ra->why);
	return 0;
}

int img_revert_queued(struct registry *reg, const uint8_t id[IMG_ID_LEN], uint64_t claim,
		      const char *import_method, const char *why)
{
	struct revert_arg ra = {claim, import_method, why};
	struct img_mut m = {.fn = revert_fn, .arg = &ra};
	memcpy(m.id, id, IMG_ID_LEN);
	int ret = img_store_write(reg->st, &m);
	img_mut_clear(&m);
	if (ret == CAIRN_ENOTFOUND)
		ret = 0; /* deleted or claimed anew meanwhile: not ours to revert */
	return ret;
}

/* ---- committing an upload ---- */

struct commit_arg {
	struct registry *reg;
	const struct img_finish *f;
	struct img_mut m;
	char *why;
	size_t whylen;
	uint64_t claim; /* the upload's (img_claim) */
};

static int commit_mut(struct cs_txn *txn, struct img_mut *m)
{
	struct commit_arg *ca = m->arg;
	(void)txn;
	if (!ca->claim || m->rec.claim != ca->claim) {
		snprintf(ca->why, ca->whylen,
			 "the image was deleted, re-created or claimed by another upload during "
			 "this one (status %s now)",
			 img_status_name(m->rec.status));
		return -EBUSY;
	}
	return 0;
}

struct phase_arg {
	struct commit_arg *ca;
	enum img_phase phase;
	const struct img_data_result *res;
};

static int phase_mut(struct cs_txn *txn, struct img_mut *m)
{
	struct phase_arg *pa = m->arg;
	struct commit_arg *ca = pa->ca;
	const struct img_data_result *res = pa->res;
	struct img_rec *r = &m->rec;
	char s[37];
	int ret;

	m->arg = ca;
	ret = commit_mut(txn, m);
	m->arg = pa;
	if (ret < 0)
		return ret;
	if (pa->phase == IMG_PHASE_RAW) {
		if (r->flags & IMG_F_RAW)
			return -EBUSY;
		memcpy(r->raw_mid, res->raw_mid, 16);
		r->flags |= IMG_F_RAW;
		return 0;
	}
	r->size = res->size;
	r->virtual_size = res->virtual_size ? res->virtual_size : res->size;
	memcpy(r->md5, res->md5, 16);
	memcpy(r->sha512, res->sha512, 64);
	if (res->qcow2)
		r->flags |= IMG_F_QCOW2;
	else
		r->flags &= ~(uint32_t)IMG_F_QCOW2;
	/* A format left open (register from S3) is what the bytes are. */
	if (!json_is_string(json_object_get(m->doc, "disk_format")))
		json_object_set_new(m->doc, "disk_format",
				    json_string(res->qcow2 ? "qcow2" : "raw"));
	if (!json_is_string(json_object_get(m->doc, "container_format")))
		json_object_set_new(m->doc, "container_format", json_string("bare"));
	if (ca->f->src == IMG_SRC_STAGE) {
		if (r->flags & IMG_F_STAGE)
			return -EBUSY;
		memcpy(r->stage_mid, res->mid, 16);
		r->flags |= IMG_F_STAGE;
		r->claim = 0; /* at rest: stays uploading until the import */
		return 0;
	}
	if (ca->f->src == IMG_SRC_MANIFEST && ca->f->s3_bucket) {
		struct s3_object_info oi;
		ret =
		    s3_object_resolve_txn(txn, ca->reg->pool, ca->f->s3_bucket, ca->f->s3_key, &oi);
		if (ret < 0 || memcmp(oi.mid, ca->f->s3_mid, 16) != 0) {
			snprintf(ca->why, ca->whylen,
				 "the object s3://%s/%s changed or went away during the import",
				 ca->f->s3_bucket, ca->f->s3_key);
			return CAIRN_EINVAL;
		}
	}
	if (r->flags & IMG_F_DATA)
		return -EBUSY;
	memcpy(r->mid, res->mid, 16);
	r->flags |= IMG_F_DATA;
	r->status = IMG_ACTIVE;
	r->claim = 0;
	img_id_fmt(m->id, s);
	struct s3_link l = {
	    .mid = (const struct cs_mid *)r->mid,
	    .size = r->size,
	    .owner = json_string_value(json_object_get(m->doc, "owner")),
	    .mtime_ns = (uint64_t)img_now_ns(),
	};
	memcpy(l.md5, r->md5, 16);
	if (!l.owner)
		l.owner = S3_ROOT_USER;
	ret = s3_object_link_txn(txn, ca->reg->pool, S3_SYSTEM_BUCKET, s, &l);
	if (ret < 0)
		snprintf(ca->why, ca->whylen, "cannot link the image into %s: %s", S3_SYSTEM_BUCKET,
			 cairn_strerror(ret));
	return ret;
}

static int phase_cb(struct cs_txn *txn, void *arg, enum img_phase phase,
		    const struct img_data_result *res)
{
	struct commit_arg *ca = arg;
	struct phase_arg pa = {ca, phase, res};
	ca->m.fn = phase_mut;
	ca->m.arg = &pa;
	ca->m.done = false;
	int ret = img_store_mut_txn(ca->reg->st, txn, &ca->m);
	ca->m.arg = ca;
	return ret;
}

int img_commit_upload(struct registry *reg, const uint8_t id[IMG_ID_LEN], uint64_t claim,
		      struct img_upload *u, const struct img_finish *f, char *why, size_t whylen)
{
	struct commit_arg ca = {.reg = reg, .f = f, .why = why, .whylen = whylen, .claim = claim};
	memcpy(ca.m.id, id, IMG_ID_LEN);
	img_store_write_begin(reg->st);
	int ret = img_upload_commit(u, phase_cb, &ca);
	if (ret == 0) {
		img_store_mut_apply(reg->st, &ca.m);
	} else {
		if (!why[0])
			snprintf(why, whylen, "%s",
				 img_upload_why(u)[0] ? img_upload_why(u) : cairn_strerror(ret));
		/* A raw view may have committed before the data failed. */
		if (img_store_refresh(reg->st, id) < 0)
			log_warn(TAG, "cannot refresh the index after a failed upload");
	}
	img_store_write_end(reg->st);
	img_mut_clear(&ca.m);
	if (ret == 0) {
		atomic_fetch_add(&reg->data_gen, 1);
		struct img_entry *e = img_store_get(reg->st, id);
		if (e) {
			struct cs_usage us;
			if (img_usage(reg, e, &us) < 0)
				log_debug(TAG, "usage of a new image not computed");
			img_entry_put(e);
		}
	}
	return ret;
}

/* ---- imports ---- */

static int upload_open(struct registry *reg, const uint8_t id[IMG_ID_LEN], struct img_upload **u)
{
	struct img_entry *e = img_store_get(reg->st, id);
	if (!e)
		return CAIRN_ENOTFOUND;
	/* the owner's dedup domain (a null owner is the root user's, as its link) */
	struct img_data_opts o = {.max_size = reg->max_size,
				  .tmp_dir = reg->tmp_dir,
				  .qemu_img = reg->qemu_img,
				  .owner = e->owner ? e->owner : S3_ROOT_USER};
	int ret = img_upload_open(reg->pool, &o, e->disk_format, u);
	img_entry_put(e);
	return ret;
}

static const char *src_method(enum img_src s)
{
	switch (s) {
	case IMG_SRC_URL:
		return "web-download";
	case IMG_SRC_MANIFEST:
		return "s3-object";
	case IMG_SRC_STAGE:
		return "glance-direct";
	default:
		return "upload";
	}
}

int img_import_run(struct registry *reg, const uint8_t id[IMG_ID_LEN], uint64_t claim,
		   enum img_src src, const char *url, const char *s3_bucket, const char *s3_key,
		   const uint8_t s3_mid[16], char *why, size_t whylen)
{
	struct img_upload *u = NULL;
	struct img_data_result res;
	struct img_finish f = {
	    .src = src, .s3_bucket = s3_bucket, .s3_key = s3_key, .s3_mid = s3_mid};
	int ret;
	why[0] = '\0';
	ret = upload_open(reg, id, &u);
	if (ret < 0)
		goto out;
	if (src == IMG_SRC_URL)
		ret = img_upload_from_url(u, url, reg->web_allow ? reg->web_allow : "",
					  reg->own_ports, why, whylen);
	else
		ret = img_upload_from_manifest(u, s3_mid);
	if (ret == 0)
		ret = img_upload_finish(u, &res);
	if (ret < 0) {
		if (!why[0])
			snprintf(why, whylen, "%s",
				 img_upload_why(u)[0] ? img_upload_why(u) : cairn_strerror(ret));
		goto out;
	}
	ret = img_commit_upload(reg, id, claim, u, &f, why, whylen);
out:
	img_upload_free(u);
	if (ret < 0) {
		if (!why[0])
			snprintf(why, whylen, "%s", cairn_strerror(ret));
		log_warn(TAG, "import (%s) failed: %s",
			 src_method(src) ? src_method(src) : "upload", why);
		if (img_revert_queued(reg, id, claim, src_method(src), why) < 0)
			log_err(TAG, "cannot put a failed import back to queued");
	}
	return ret;
}

/* ---- registry.h operations ---- */

int reg_image_show(struct registry *reg, const char *user, const char *id, json_t **out)
{
	struct img_who w;
	uint8_t bid[IMG_ID_LEN];
	struct img_entry *e = NULL;
	img_who_set(&w, user);
	if (img_id_parse(id, bid) < 0)
		return CAIRN_ENOTFOUND;
	int ret = img_lookup(reg, &w, bid, &e);
	if (ret < 0)
		return ret;
	if ((e->rec.flags & IMG_F_DATA) && img_usage_stale(reg, e)) {
		struct cs_usage u;
		if (img_usage(reg, e, &u) == 0) {
			img_entry_put(e);
			e = img_store_get(reg->st, bid);
			if (!e)
				return CAIRN_ENOTFOUND;
		}
	}
	*out = img_view(reg, e);
	img_entry_put(e);
	return *out ? 0 : -ENOMEM;
}

/* "s3://bucket/key" */
static int parse_s3_uri(const char *uri, char *bucket, size_t blen, const char **key)
{
	if (!uri || strncmp(uri, "s3://", 5) != 0)
		return CAIRN_EINVAL;
	const char *b = uri + 5, *slash = strchr(b, '/');
	if (!slash || slash == b || (size_t)(slash - b) >= blen || !slash[1])
		return CAIRN_EINVAL;
	memcpy(bucket, b, (size_t)(slash - b));
	bucket[slash - b] = '\0';
	*key = slash + 1;
	return 0;
}

/* Creates an image from fields as w, claims it (status), and returns its id. */
static int create_claimed(struct registry *reg, const struct img_who *w, json_t *fields,
			  const char *def_name, const char *def_disk, unsigned status,
			  uint8_t id[IMG_ID_LEN], uint64_t *claim, char *why, size_t whylen)
{
	struct img_resp rs = {0};
	struct img_entry *e = NULL;
	json_t *body = fields ? json_deep_copy(fields) : json_object();
	int ret;
	if (!body)
		return -ENOMEM;
	if (!json_is_object(body)) {
		json_decref(body);
		snprintf(why, whylen, "the image fields must be a JSON object");
		return CAIRN_EINVAL;
	}
	if (!json_object_get(body, "name") && def_name)
		json_object_set_new(body, "name", json_string(def_name));
	if (!json_object_get(body, "disk_format") && def_disk)
		json_object_set_new(body, "disk_format", json_string(def_disk));
	if (!json_object_get(body, "container_format"))
		json_object_set_new(body, "container_format", json_string("bare"));
	ret = img_create(reg, w, body, &e, &rs);
	json_decref(body);
	if (ret < 0) {
		snprintf(why, whylen, "%s", rs.msg);
		json_decref(rs.json);
		return ret == CAIRN_EDENIED && rs.status == 403 ? CAIRN_EDENIED
		       : rs.status == 400			? CAIRN_EINVAL
								: ret;
	}
	memcpy(id, e->rec.id, IMG_ID_LEN);
	img_entry_put(e);
	ret = img_claim(reg, id, status, false, why, whylen, claim);
	if (ret < 0 && img_delete(reg, id) < 0)
		log_warn(TAG, "cannot remove an image whose claim failed");
	return ret;
}

static int finish_show(struct registry *reg, const uint8_t id[IMG_ID_LEN], json_t **out)
{
	struct img_entry *e = img_store_get(reg->st, id);
	if (!e)
		return CAIRN_ENOTFOUND;
	*out = img_view(reg, e);
	img_entry_put(e);
	return *out ? 0 : -ENOMEM;
}

int reg_image_register_s3(struct registry *reg, const char *user, const char *uri, json_t *fields,
			  json_t **out, char *why, size_t whylen)
{
	struct img_who w;
	char bucket[64];
	const char *key;
	struct s3_object_info oi;
	uint8_t id[IMG_ID_LEN];
	uint64_t claim = 0;
	int ret;
	img_who_set(&w, user);
	why[0] = '\0';
	if (parse_s3_uri(uri, bucket, sizeof(bucket), &key) < 0) {
		snprintf(why, whylen, "the URI must be s3://BUCKET/KEY");
		return CAIRN_EINVAL;
	}
	ret = s3_object_resolve(reg->pool, bucket, key, &oi);
	if (ret < 0) {
		if (ret == CAIRN_ENOTFOUND)
			snprintf(why, whylen, "no object s3://%s/%s", bucket, key);
		return ret;
	}
	if (!w.admin && strcmp(oi.bucket_owner, w.user) != 0) {
		snprintf(why, whylen, "the bucket %s belongs to another user", bucket);
		return CAIRN_EDENIED;
	}
	const char *base = strrchr(key, '/');
	ret = create_claimed(reg, &w, fields, base ? base + 1 : key, NULL, IMG_IMPORTING, id,
			     &claim, why, whylen);
	if (ret < 0)
		return ret;
	ret = img_import_run(reg, id, claim, IMG_SRC_MANIFEST, NULL, bucket, key, oi.mid, why,
			     whylen);
	if (ret < 0) {
		/* the revert cleared the claim: delete the queued image it made,
		 * unless someone took it over meanwhile */
		int r2 = delete_if(reg, id, 0, true);
		if (r2 < 0 && r2 != CAIRN_ENOTFOUND)
			log_warn(TAG, "cannot remove an image whose registration failed");
		return ret;
	}
	return finish_show(reg, id, out);
}

int reg_image_from_volume(struct registry *reg, const char *user, const char *vol, json_t *fields,
			  json_t **out, char *why, size_t whylen)
{
	struct img_who w;
	struct bs_vol_info vi;
	uint8_t id[IMG_ID_LEN];
	char snap[64], sid[37];
	struct img_upload *u = NULL;
	struct img_data_result res;
	bool snapped = false;
	uint64_t claim = 0;
	int ret;
	img_who_set(&w, user);
	why[0] = '\0';
	if (!reg->bs)
		return -ENOTSUP;
	ret = bs_volume_get(reg->bs, vol, &vi);
	if (ret < 0) {
		if (ret == CAIRN_ENOTFOUND)
			snprintf(why, whylen, "no volume %s", vol);
		return ret;
	}
	if (fields && json_is_string(json_object_get(fields, "disk_format")) &&
	    strcmp(json_string_value(json_object_get(fields, "disk_format")), "raw") != 0) {
		snprintf(why, whylen, "an image made from a volume is raw");
		return CAIRN_EINVAL;
	}
	ret = create_claimed(reg, &w, fields, vol, "raw", IMG_SAVING, id, &claim, why, whylen);
	if (ret < 0)
		return ret;
	img_id_fmt(id, sid);
	snprintf(snap, sizeof(snap), "cairn-image-%.8s", sid);
	ret = bs_snapshot_create(reg->bs, vol, snap, NULL);
	if (ret < 0) {
		snprintf(why, whylen, "cannot snapshot volume %s: %s", vol, cairn_strerror(ret));
		goto out;
	}
	snapped = true;
	ret = upload_open(reg, id, &u);
	if (ret == 0)
		ret = img_upload_from_snapshot(u, reg->bs, vol, snap);
	if (ret == 0)
		ret = img_upload_finish(u, &res);
	if (ret < 0) {
		snprintf(why, whylen, "%s",
			 u && img_upload_why(u)[0] ? img_upload_why(u) : cairn_strerror(ret));
		goto out;
	}
	struct img_finish f = {.src = IMG_SRC_BODY};
	ret = img_commit_upload(reg, id, claim, u, &f, why, whylen);
out:
	img_upload_free(u);
	if (snapped) {
		int r2 = bs_snapshot_delete(reg->bs, vol, snap, false);
		if (r2 < 0)
			log_warn(TAG, "cannot delete the capture snapshot %s of %s: %s", snap, vol,
				 cairn_strerror(r2));
	}
	if (ret < 0) {
		/* only the image this capture claimed (a raw view never exists
		 * here; the delete releases whatever the record holds) */
		int r2 = delete_if(reg, id, claim, false);
		if (r2 < 0 && r2 != CAIRN_ENOTFOUND)
			log_warn(TAG, "cannot remove an image whose capture failed");
		return ret;
	}
	return finish_show(reg, id, out);
}

int reg_volume_from_image(struct registry *reg, const char *user, const char *id,
			  const char *vol_name, uint64_t size, const struct vol_opts *opts,
			  struct bs_vol_info *out, char *why, size_t whylen)
{
	struct img_who w;
	uint8_t bid[IMG_ID_LEN];
	struct img_entry *e = NULL;
	const uint8_t *mid;
	int ret;
	img_who_set(&w, user);
	why[0] = '\0';
	if (!reg->bs)
		return -ENOTSUP;
	if (img_id_parse(id, bid) < 0 || img_lookup(reg, &w, bid, &e) < 0) {
		snprintf(why, whylen, "no image %s", id);
		return CAIRN_ENOTFOUND;
	}
	if (e->rec.status != IMG_ACTIVE || !(e->rec.flags & IMG_F_DATA)) {
		snprintf(why, whylen, "image %s is %s, not active", id,
			 img_status_name(e->rec.status));
		ret = -EBUSY;
		goto out;
	}
	if (e->rec.flags & IMG_F_QCOW2) {
		if (!(e->rec.flags & IMG_F_RAW)) {
			snprintf(why, whylen, "image %s has no raw view", id);
			ret = CAIRN_EINVAL;
			goto out;
		}
		mid = e->rec.raw_mid;
	} else if (e->disk_format && strcmp(e->disk_format, "raw") == 0) {
		mid = e->rec.mid;
	} else {
		snprintf(why, whylen,
			 "a volume can be made only from a raw or qcow2 image (%s is %s)", id,
			 e->disk_format ? e->disk_format : "None");
		ret = CAIRN_EINVAL;
		goto out;
	}
	if (size == 0)
		size = e->rec.virtual_size ? e->rec.virtual_size : e->rec.size;
	ret = bs_volume_create_from_manifest(reg->bs, vol_name, size, mid, opts, out);
	if (ret < 0 && !why[0])
		snprintf(why, whylen, "%s", cairn_strerror(ret));
out:
	img_entry_put(e);
	return ret;
}

static int df_cmp(const void *a, const void *b)
{
	const struct img_entry *x = *(struct img_entry *const *)a;
	const struct img_entry *y = *(struct img_entry *const *)b;
	if (x->rec.created_ns != y->rec.created_ns)
		return x->rec.created_ns > y->rec.created_ns ? -1 : 1;
	return memcmp(y->rec.id, x->rec.id, IMG_ID_LEN);
}

int reg_image_df(struct registry *reg, const char *user,
		 int (*fn)(const struct reg_image_usage *u, void *arg), void *arg)
{
	struct img_entry **v = NULL;
	size_t n = 0;
	int ret = 0;
	img_store_rdlock(reg->st);
	size_t total = img_store_count(reg->st);
	v = calloc(total ? total : 1, sizeof(*v));
	if (!v) {
		img_store_unlock(reg->st);
		return -ENOMEM;
	}
	for (size_t i = 0; i < total; i++) {
		struct img_entry *e = img_store_at(reg->st, i);
		if (e->deleted || (user && (!e->owner || strcmp(e->owner, user) != 0)))
			continue;
		img_entry_get(e);
		v[n++] = e;
	}
	img_store_unlock(reg->st);
	qsort(v, n, sizeof(*v), df_cmp);
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct reg_image_usage u;
		struct cs_usage cu;
		memset(&u, 0, sizeof(u));
		snprintf(u.id, sizeof(u.id), "%s", v[i]->id);
		snprintf(u.name, sizeof(u.name), "%s", v[i]->name ? v[i]->name : "");
		snprintf(u.owner, sizeof(u.owner), "%s", v[i]->owner ? v[i]->owner : "");
		u.size = (v[i]->rec.flags & IMG_F_DATA) ? v[i]->rec.size : 0;
		ret = img_usage(reg, v[i], &cu);
		if (ret == CAIRN_ENOTFOUND) {
			ret = 0; /* deleted under us */
			continue;
		}
		if (ret < 0)
			break;
		u.unique_bytes = cu.unique_bytes;
		u.unique_stored = cu.unique_stored;
		u.shared_bytes = cu.shared_bytes;
		u.zero_bytes = cu.zero_bytes;
		ret = fn(&u, arg);
	}
	for (size_t i = 0; i < n; i++)
		img_entry_put(v[i]);
	free(v);
	return ret;
}
