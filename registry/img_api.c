/* registry/img_api.c - Glance v2 image routes: discovery, schemas, create,
 * list, show, PATCH, delete, tags, deactivate/reactivate; the error table
 * and the image view. Members are in img_api_members.c, data in
 * img_api_data.c.
 *
 * Listing reads only the in-memory index: one pass over every image under
 * the index read lock with cheap comparisons (filters, then the sort order
 * against the marker), keeping the best `limit` in a bounded heap
 * (O(n log limit)); JSON is built only for the page, after the lock. At
 * 10,000 images a page costs well under a millisecond of comparisons.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunkstore/chunkstore.h"
#include "core/hash.h"
#include "core/log.h"
#include "objstore/s3.h"
#include "registry/img_api.h"

#define TAG "glance"

/* ---- names ---- */

static const char *const status_names[] = {
    [IMG_QUEUED] = "queued",	       [IMG_SAVING] = "saving",
    [IMG_ACTIVE] = "active",	       [IMG_KILLED] = "killed",
    [IMG_DELETED] = "deleted",	       [IMG_PENDING_DELETE] = "pending_delete",
    [IMG_DEACTIVATED] = "deactivated", [IMG_UPLOADING] = "uploading",
    [IMG_IMPORTING] = "importing",
};

const char *img_status_name(unsigned st)
{
	return st < sizeof(status_names) / sizeof(status_names[0]) && status_names[st]
		   ? status_names[st]
		   : "killed";
}

static const char *const vis_names[] = {[IMG_VIS_SHARED] = "shared",
					[IMG_VIS_PRIVATE] = "private",
					[IMG_VIS_PUBLIC] = "public",
					[IMG_VIS_COMMUNITY] = "community"};

const char *img_vis_name(unsigned v)
{
	return v < 4 ? vis_names[v] : "private";
}

int img_vis_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (s && strcmp(vis_names[i], s) == 0)
			return i;
	return -1;
}

void img_isotime(uint64_t ns, char out[32])
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- errors ---- */

/* webob's titles (Glance's), which differ from RFC 9110's for 413 and 416. */
const char *img_status_title(unsigned status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Request Entity Too Large";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Requested Range Not Satisfiable";
	case 503:
		return "Service Unavailable";
	default:
		return status >= 500 ? "Internal Server Error" : "Bad Request";
	}
}

void img_err(struct img_resp *rs, unsigned status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rs->msg, sizeof(rs->msg), fmt, ap);
	va_end(ap);
	rs->status = status;
	json_decref(rs->json);
	rs->json = NULL;
}

/* The one table from cairn codes to Glance answers. */
void img_err_code(struct img_resp *rs, int err, const char *what)
{
	switch (err) {
	case CAIRN_ENOTFOUND:
		img_err(rs, 404, "%s", what);
		break;
	case CAIRN_EINVAL:
		img_err(rs, 400, "%s", what);
		break;
	case CAIRN_EDENIED:
		img_err(rs, 403, "%s", what);
		break;
	case CAIRN_EEXISTS:
	case -EBUSY:
		img_err(rs, 409, "%s", what);
		break;
	case -EFBIG:
	case CAIRN_ETOOBIG:
		img_err(rs, 413, "%s", what);
		break;
	case CAIRN_ENOSPACE:
	case -ENOSPC:
		img_err(rs, 413, "Image storage media is full: %s", what);
		break;
	case -ENOMEM:
	case CAIRN_ESHUTDOWN:
		img_err(rs, 503, "%s: %s", what, cairn_strerror(err));
		break;
	default:
		log_err(TAG, "%s: %s", what, cairn_strerror(err));
		img_err(rs, 500, "%s: %s", what, cairn_strerror(err));
	}
}

/* ---- users and access ---- */

void img_who_set(struct img_who *w, const char *user)
{
	memset(w, 0, sizeof(*w));
	if (!user) {
		w->admin = true;
		snprintf(w->user, sizeof(w->user), "%s", "root");
	} else {
		snprintf(w->user, sizeof(w->user), "%s", user);
		w->admin = strcmp(user, "root") == 0;
	}
}

const char *img_member_status(const struct img_entry *e, const char *user)
{
	json_t *m = json_object_get(json_object_get(e->doc, "members"), user);
	return json_string_value(json_object_get(m, "status"));
}

static bool is_owner(const struct img_who *w, const struct img_entry *e)
{
	return e->owner && strcmp(e->owner, w->user) == 0;
}

bool img_can_read(const struct img_who *w, const struct img_entry *e)
{
	if (e->deleted)
		return false;
	if (w->admin || is_owner(w, e))
		return true;
	switch (e->rec.visibility) {
	case IMG_VIS_PUBLIC:
	case IMG_VIS_COMMUNITY:
		return true;
	case IMG_VIS_SHARED:
		return img_member_status(e, w->user) != NULL;
	default:
		return false;
	}
}

bool img_can_write(const struct img_who *w, const struct img_entry *e)
{
	return w->admin || is_owner(w, e);
}

/* ---- the view ---- */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *img_view(struct registry *reg, const struct img_entry *e)
{
	(void)reg;
	const struct img_rec *r = &e->rec;
	char t[32], hex[129], path[128];
	json_t *o = json_object();
	if (!o)
		return NULL;
	const char *k;
	json_t *v;
	/* Extra properties first: base attributes win over any clash. */
	json_object_foreach(json_object_get(e->doc, "props"), k, v) json_object_set_new(
	    o, k, json_string(json_string_value(v) ? json_string_value(v) : ""));
	bool data = r->flags & IMG_F_DATA;
	bool sized = data || (r->flags & IMG_F_STAGE);
	json_object_set_new(o, "name", str_or_null(e->name));
	json_object_set_new(o, "disk_format", str_or_null(e->disk_format));
	json_object_set_new(o, "container_format", str_or_null(e->container_format));
	json_object_set_new(o, "visibility", json_string(img_vis_name(r->visibility)));
	json_object_set_new(o, "size", sized ? json_integer((json_int_t)r->size) : json_null());
	json_object_set_new(o, "virtual_size",
			    sized && r->virtual_size ? json_integer((json_int_t)r->virtual_size)
						     : json_null());
	json_object_set_new(o, "status", json_string(img_status_name(r->status)));
	if (data) {
		hash_hex(r->md5, 16, hex);
		json_object_set_new(o, "checksum", json_string(hex));
	} else {
		json_object_set_new(o, "checksum", json_null());
	}
	json_object_set_new(o, "protected", json_boolean(r->flags & IMG_F_PROTECTED));
	json_object_set_new(o, "min_ram",
			    json_integer(json_integer_value(json_object_get(e->doc, "min_ram"))));
	json_object_set_new(o, "min_disk",
			    json_integer(json_integer_value(json_object_get(e->doc, "min_disk"))));
	json_object_set_new(o, "owner", str_or_null(e->owner));
	json_object_set_new(o, "os_hidden",
			    json_boolean(json_is_true(json_object_get(e->doc, "os_hidden"))));
	if (data) {
		hash_hex(r->sha512, 64, hex);
		json_object_set_new(o, "os_hash_algo", json_string("sha512"));
		json_object_set_new(o, "os_hash_value", json_string(hex));
	} else {
		json_object_set_new(o, "os_hash_algo", json_null());
		json_object_set_new(o, "os_hash_value", json_null());
	}
	json_object_set_new(o, "id", json_string(e->id));
	img_isotime(r->created_ns, t);
	json_object_set_new(o, "created_at", json_string(t));
	img_isotime(r->updated_ns, t);
	json_object_set_new(o, "updated_at", json_string(t));
	json_t *tags = json_array();
	size_t i;
	json_array_foreach(json_object_get(e->doc, "tags"), i, v)
	    json_array_append_new(tags, json_string(json_string_value(v)));
	json_object_set_new(o, "tags", tags);
	snprintf(path, sizeof(path), "/v2/images/%s", e->id);
	json_object_set_new(o, "self", json_string(path));
	snprintf(path, sizeof(path), "/v2/images/%s/file", e->id);
	json_object_set_new(o, "file", json_string(path));
	json_object_set_new(o, "schema", json_string("/v2/schemas/image"));
	bool u = atomic_load(&((struct img_entry *)e)->usage_valid);
	json_object_set_new(
	    o, "cairn_unique_bytes",
	    json_integer(u ? (json_int_t)atomic_load(&((struct img_entry *)e)->unique_bytes) : 0));
	json_object_set_new(
	    o, "cairn_shared_bytes",
	    json_integer(u ? (json_int_t)atomic_load(&((struct img_entry *)e)->shared_bytes) : 0));
	return o;
}

/* ---- small helpers ---- */

const char *img_q(const struct img_req *rq, const char *k)
{
	for (int i = 0; i < rq->nq; i++)
		if (strcmp(rq->q[i].k, k) == 0)
			return rq->q[i].v;
	return NULL;
}

static json_t *parse_body(struct img_req *rq, struct img_resp *rs)
{
	json_error_t jerr;
	if (!rq->body || rq->body_len == 0) {
		img_err(rs, 400, "Body expected in request.");
		return NULL;
	}
	json_t *j = json_loadb(rq->body, rq->body_len, JSON_DECODE_ANY, &jerr);
	if (!j)
		img_err(rs, 400, "Malformed JSON in request body.");
	return j;
}

static bool id_from_seg(const char *s, uint8_t id[IMG_ID_LEN])
{
	return img_id_parse(s, id) == 0;
}

static void not_found(struct img_resp *rs, const char *id)
{
	img_err(rs, 404, "No image found with ID %s", id);
}

/* ---- discovery ---- */

static json_t *version_obj(const char *id, const char *status, const char *base)
{
	char href[512];
	snprintf(href, sizeof(href), "%s/v2/", base);
	return json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "id", id, "status", status, "links", "rel",
			 "self", "href", href);
}

static void do_versions(struct img_req *rq, struct img_resp *rs, bool explicit, const char *base)
{
	(void)rq;
	static const char *const ids[] = {"v2.9", "v2.7", "v2.6", "v2.5", "v2.4",
					  "v2.3", "v2.2", "v2.1", "v2.0"};
	json_t *a = json_array();
	json_array_append_new(a, version_obj("v2.15", "CURRENT", base));
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		json_array_append_new(a, version_obj(ids[i], "SUPPORTED", base));
	rs->status = explicit ? 200 : 300;
	rs->json = json_pack("{s:o}", "versions", a);
}

/* ---- create ---- */

void img_api_create(struct img_req *rq, struct img_resp *rs)
{
	json_t *body = parse_body(rq, rs);
	struct img_entry *e = NULL;
	if (!body)
		return;
	if (!json_is_object(body)) {
		img_err(rs, 400,
			"Provided object does not match schema 'image': the body is not "
			"an object");
		goto out;
	}
	if (img_create(rq->reg, &rq->who, body, &e, rs) < 0)
		goto out;
	rs->status = 201;
	rs->json = img_view(rq->reg, e);
	snprintf(rs->location, sizeof(rs->location), "/v2/images/%s", e->id);
	rs->hdr_name = "OpenStack-image-import-methods";
	snprintf(rs->hdr_val, sizeof(rs->hdr_val), "glance-direct,%ss3-object",
		 rq->reg->web_allow ? "web-download," : "");
out:
	img_entry_put(e);
	json_decref(body);
}

/* ---- list ---- */

enum skey { K_NAME, K_STATUS, K_CFMT, K_DFMT, K_SIZE, K_ID, K_CREATED, K_UPDATED };
static const char *const skey_names[] = {"name", "status", "container_format", "disk_format",
					 "size", "id",	   "created_at",       "updated_at"};
#define MAX_SORT 10

struct listq {
	const struct img_who *who;
	int vis;	   /* -1 none, 4 all, else IMG_VIS_* */
	int member_status; /* 0 accepted, 1 pending, 2 rejected, 3 all */
	int os_hidden;	   /* 0 false (default), 1 true */
	int protected_;	   /* -1 any */
	bool has_size_min, has_size_max;
	uint64_t size_min, size_max;
	/* string equality/in filters on fields */
	struct sfilt {
		enum skey key;	   /* K_NAME.. K_ID, or -1 for a field below */
		const char *field; /* "owner", "checksum", "os_hash_value", or a property */
		int kind;	   /* 0 field enum, 1 owner, 2 checksum, 3 os_hash_value, 4 prop */
		char **vals;
		size_t nvals;
	} sf[IMG_MAX_QPARAMS];
	size_t nsf;
	struct tfilt {
		int key; /* K_CREATED or K_UPDATED */
		int op;	 /* 0 eq 1 neq 2 gt 3 gte 4 lt 5 lte */
		uint64_t ns;
	} tf[4];
	size_t ntf;
	const char *tags[IMG_MAX_QPARAMS];
	size_t ntags;
	enum skey keys[MAX_SORT];
	bool desc[MAX_SORT];
	size_t nkeys;
};

static void listq_free(struct listq *q)
{
	for (size_t i = 0; i < q->nsf; i++) {
		for (size_t j = 0; j < q->sf[i].nvals; j++)
			free(q->sf[i].vals[j]);
		free(q->sf[i].vals);
	}
}

static int skey_parse(const char *s)
{
	for (int i = 0; i < 8; i++)
		if (strcmp(skey_names[i], s) == 0)
			return i;
	return -1;
}

static char *trim_dup(const char *s, size_t n)
{
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return strndup(s, n);
}

/* "in:a,b,\"c,d\"" or a plain value: the list of values. */
static int split_values(const char *v, bool allow_in, char ***out, size_t *n, char *why,
			size_t whylen)
{
	char **vals = NULL;
	size_t nv = 0;
	const char *colon = strchr(v, ':');
	if (allow_in && colon && (size_t)(colon - v) <= 3 &&
	    (strncmp(v, "in:", 3) == 0 || strncmp(v, "eq:", 3) == 0)) {
		bool in = v[0] == 'i';
		const char *p = colon + 1;
		if (!in) {
			vals = calloc(1, sizeof(*vals));
			if (!vals || !(vals[0] = strdup(p))) {
				free(vals);
				return -ENOMEM;
			}
			*out = vals;
			*n = 1;
			return 0;
		}
		vals = calloc(strlen(p) + 1, sizeof(*vals));
		if (!vals)
			return -ENOMEM;
		while (*p) {
			const char *s = p, *end;
			if (*p == '"') {
				end = strchr(p + 1, '"');
				if (!end) {
					snprintf(why, whylen,
						 "Invalid filter value %s. The quote is "
						 "not closed.",
						 v);
					goto bad;
				}
				vals[nv++] = strndup(p + 1, (size_t)(end - p - 1));
				p = end + 1;
				if (*p == ',')
					p++;
				else if (*p) {
					snprintf(why, whylen,
						 "Invalid filter value %s. There is no "
						 "comma after closing quotation mark.",
						 v);
					goto bad;
				}
				continue;
			}
			end = strchr(s, ',');
			if (!end)
				end = s + strlen(s);
			vals[nv++] = trim_dup(s, (size_t)(end - s));
			p = *end ? end + 1 : end;
		}
		*out = vals;
		*n = nv;
		return 0;
	}
	if (allow_in && colon && (size_t)(colon - v) <= 4 &&
	    (strncmp(v, "neq:", 4) == 0 || strncmp(v, "gt:", 3) == 0 || strncmp(v, "lt:", 3) == 0 ||
	     strncmp(v, "gte:", 4) == 0 || strncmp(v, "lte:", 4) == 0)) {
		snprintf(why, whylen, "Unable to filter by unknown operator '%.*s'.",
			 (int)(colon - v), v);
		return CAIRN_EINVAL;
	}
	vals = calloc(1, sizeof(*vals));
	if (!vals || !(vals[0] = strdup(v))) {
		free(vals);
		return -ENOMEM;
	}
	*out = vals;
	*n = 1;
	return 0;
bad:
	for (size_t i = 0; i < nv; i++)
		free(vals[i]);
	free(vals);
	return CAIRN_EINVAL;
}

/* ISO 8601 ("2024-01-02T03:04:05Z", "...+01:00", fractions, date only). */
static int parse_iso(const char *s, uint64_t *ns)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (!p)
		return CAIRN_EINVAL;
	long off = 0;
	uint64_t frac = 0;
	if (*p == 'T' || *p == ' ') {
		p = strptime(p + 1, "%H:%M", &tm);
		if (!p)
			return CAIRN_EINVAL;
		if (*p == ':') {
			p = strptime(p + 1, "%S", &tm);
			if (!p)
				return CAIRN_EINVAL;
		}
		if (*p == '.') {
			uint64_t scale = 100000000;
			for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
				frac += (uint64_t)(*p - '0') * scale;
		}
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		int hh, mm = 0;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) < 1 && sscanf(p + 1, "%2d%2d", &hh, &mm) < 1)
			return CAIRN_EINVAL;
		off = sign * (hh * 3600 + mm * 60);
		p += strlen(p);
	}
	if (*p)
		return CAIRN_EINVAL;
	time_t t = timegm(&tm) - off;
	if (t < 0)
		return CAIRN_EINVAL;
	/* After 2554 nanoseconds overflow 64 bits: such a bound lies after
	 * every timestamp we store (not wrapped round to the 1970s). */
	if ((uint64_t)t >= UINT64_MAX / 1000000000u)
		*ns = UINT64_MAX;
	else
		*ns = (uint64_t)t * 1000000000u + frac;
	return 0;
}

static int listq_parse(const struct img_req *rq, struct listq *q, size_t *limit,
		       const char **marker, struct img_resp *rs)
{
	char why[512];
	bool classic = false, newstyle = false;
	size_t ndirs = 0;
	bool dirs[MAX_SORT];
	q->vis = -1;
	q->protected_ = -1;
	*limit = IMG_LIST_DEFAULT;
	*marker = NULL;
	for (int i = 0; i < rq->nq; i++) {
		const char *k = rq->q[i].k, *v = rq->q[i].v;
		if (strcmp(k, "limit") == 0) {
			char *end;
			errno = 0;
			long long l = strtoll(v, &end, 10);
			if (!*v || *end || errno) {
				img_err(rs, 400, "limit param must be an integer");
				return -1;
			}
			if (l < 0) {
				img_err(rs, 400, "limit param must be positive");
				return -1;
			}
			*limit = l > IMG_LIST_MAX ? IMG_LIST_MAX : (size_t)l;
		} else if (strcmp(k, "marker") == 0) {
			*marker = v;
		} else if (strcmp(k, "member_status") == 0) {
			static const char *const ms[] = {"accepted", "pending", "rejected", "all"};
			int f = -1;
			for (int j = 0; j < 4; j++)
				if (strcmp(ms[j], v) == 0)
					f = j;
			if (f < 0) {
				img_err(rs, 400, "Invalid status: %s", v);
				return -1;
			}
			q->member_status = f;
		} else if (strcmp(k, "tag") == 0) {
			q->tags[q->ntags++] = v;
		} else if (strcmp(k, "sort") == 0) {
			newstyle = true;
			char *dup = strdup(v), *save = NULL;
			if (!dup) {
				img_err_code(rs, -ENOMEM, "list");
				return -1;
			}
			for (char *tok = strtok_r(dup, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				char *c = strchr(tok, ':');
				char *dir = c ? c + 1 : (char *)"desc";
				if (c)
					*c = '\0';
				char *key = trim_dup(tok, strlen(tok));
				char *d = trim_dup(dir, strlen(dir));
				int sk = key ? skey_parse(key) : -1;
				if (sk < 0 || q->nkeys >= MAX_SORT) {
					img_err(rs, 400,
						"Invalid sort key: %s. It must be one of the "
						"following: name, status, container_format, "
						"disk_format, size, id, created_at, updated_at.",
						key ? key : "");
				} else if (!d || (strcmp(d, "asc") && strcmp(d, "desc"))) {
					img_err(rs, 400, "Invalid sort direction: %s", d ? d : "");
				} else {
					q->keys[q->nkeys] = (enum skey)sk;
					q->desc[q->nkeys++] = strcmp(d, "desc") == 0;
				}
				free(key);
				free(d);
				if (rs->status)
					break;
			}
			free(dup);
			if (rs->status)
				return -1;
		} else if (strcmp(k, "sort_key") == 0) {
			classic = true;
			int sk = skey_parse(v);
			if (sk < 0 || q->nkeys >= MAX_SORT) {
				img_err(rs, 400,
					"Invalid sort key: %s. It must be one of the following: "
					"name, status, container_format, disk_format, size, id, "
					"created_at, updated_at.",
					v);
				return -1;
			}
			q->keys[q->nkeys++] = (enum skey)sk;
		} else if (strcmp(k, "sort_dir") == 0) {
			classic = true;
			if (strcmp(v, "asc") && strcmp(v, "desc")) {
				img_err(rs, 400, "Invalid sort direction: %s", v);
				return -1;
			}
			if (ndirs < MAX_SORT)
				dirs[ndirs++] = strcmp(v, "desc") == 0;
		} else if (strcmp(k, "visibility") == 0) {
			if (strcmp(v, "all") == 0)
				q->vis = 4;
			else if ((q->vis = img_vis_parse(v)) < 0) {
				img_err(rs, 400, "Invalid visibility value: %s", v);
				return -1;
			}
		} else if (strcmp(k, "os_hidden") == 0 || strcmp(k, "protected") == 0) {
			char low[8];
			snprintf(low, sizeof(low), "%s", v);
			for (char *c = low; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			if (strcmp(low, "true") && strcmp(low, "false")) {
				img_err(rs, 400,
					"Invalid value '%s' for '%s' filter. Valid values are "
					"'true' or 'false'.",
					v, k);
				return -1;
			}
			if (k[0] == 'o')
				q->os_hidden = low[0] == 't';
			else
				q->protected_ = low[0] == 't';
		} else if (strcmp(k, "size_min") == 0 || strcmp(k, "size_max") == 0) {
			char *end;
			errno = 0;
			long long n = strtoll(v, &end, 10);
			if (!*v || *end || errno) {
				img_err(rs, 400,
					"Unable to filter on a range with a non-numeric "
					"value.");
				return -1;
			}
			if (strcmp(k, "size_min") == 0) {
				q->has_size_min = true;
				q->size_min = n < 0 ? 0 : (uint64_t)n;
			} else {
				q->has_size_max = true;
				q->size_max = n < 0 ? 0 : (uint64_t)n;
			}
		} else if (strcmp(k, "created_at") == 0 || strcmp(k, "updated_at") == 0) {
			static const char *const ops[] = {"eq", "neq", "gt", "gte", "lt", "lte"};
			const char *c = strchr(v, ':');
			int op = 0;
			const char *ts = v;
			if (c) {
				op = -1;
				for (int j = 0; j < 6; j++)
					if ((size_t)(c - v) == strlen(ops[j]) &&
					    strncmp(v, ops[j], strlen(ops[j])) == 0)
						op = j;
				if (op >= 0)
					ts = c + 1;
				else
					op = 0; /* a bare timestamp has colons */
			}
			struct tfilt *t = &q->tf[q->ntf < 4 ? q->ntf : 3];
			if (parse_iso(ts, &t->ns) < 0) {
				img_err(rs, 400,
					"Bad \"%s\" query filter format. Use ISO 8601 DateTime "
					"notation.",
					k);
				return -1;
			}
			t->key = k[0] == 'c' ? K_CREATED : K_UPDATED;
			t->op = op;
			if (q->ntf < 4)
				q->ntf++;
		} else if (strcmp(k, "changes-since") == 0) {
			img_err(rs, 400,
				"The \"changes-since\" filter is no longer available on v2.");
			return -1;
		} else {
			struct sfilt *f = &q->sf[q->nsf];
			int sk = skey_parse(k);
			bool field = sk == K_NAME || sk == K_STATUS || sk == K_CFMT ||
				     sk == K_DFMT || sk == K_ID;
			f->key = field ? (enum skey)sk : (enum skey) - 1;
			f->kind = field				    ? 0
				  : strcmp(k, "owner") == 0	    ? 1
				  : strcmp(k, "checksum") == 0	    ? 2
				  : strcmp(k, "os_hash_value") == 0 ? 3
								    : 4;
			if (f->kind == 4 && (sk == K_SIZE || sk == K_CREATED || sk == K_UPDATED))
				continue; /* Glance compares these as columns: no match rules */
			f->field = k;
			why[0] = '\0';
			int rc = split_values(v, field, &f->vals, &f->nvals, why, sizeof(why));
			if (rc < 0) {
				if (rc == CAIRN_EINVAL)
					img_err(rs, 400, "%s", why);
				else
					img_err_code(rs, rc, "list");
				return -1;
			}
			q->nsf++;
		}
	}
	if (classic && newstyle) {
		img_err(rs, 400, "Old and new sorting syntax cannot be combined");
		return -1;
	}
	if (classic) {
		if (ndirs > 1 && ndirs != q->nkeys) {
			img_err(rs, 400,
				"Number of sort dirs does not match the number of sort keys");
			return -1;
		}
		if (!q->nkeys)
			q->keys[q->nkeys++] = K_CREATED;
		for (size_t i = 0; i < q->nkeys; i++)
			q->desc[i] = ndirs == 0 ? true : ndirs == 1 ? dirs[0] : dirs[i];
	}
	if (!q->nkeys) {
		q->keys[0] = K_CREATED;
		q->desc[0] = true;
		q->nkeys = 1;
	}
	/* Tie-breakers, as Glance's pagination: created_at, then id. */
	bool dir = q->desc[0];
	bool has_c = false, has_id = false;
	for (size_t i = 0; i < q->nkeys; i++) {
		has_c |= q->keys[i] == K_CREATED;
		has_id |= q->keys[i] == K_ID;
	}
	if (!has_c && q->nkeys < MAX_SORT) {
		q->keys[q->nkeys] = K_CREATED;
		q->desc[q->nkeys++] = dir;
	}
	if (!has_id && q->nkeys < MAX_SORT) {
		q->keys[q->nkeys] = K_ID;
		q->desc[q->nkeys++] = dir;
	}
	return 0;
}

int img_list_query_check(const struct img_req *rq, struct img_resp *rs)
{
	struct listq q;
	size_t limit;
	const char *marker;
	memset(&q, 0, sizeof(q));
	q.who = &rq->who;
	int ret = listq_parse(rq, &q, &limit, &marker, rs);
	listq_free(&q);
	return ret;
}

static const char *field_of(const struct img_entry *e, enum skey k, char *buf)
{
	switch (k) {
	case K_NAME:
		return e->name;
	case K_STATUS:
		return img_status_name(e->rec.status);
	case K_CFMT:
		return e->container_format;
	case K_DFMT:
		return e->disk_format;
	case K_ID:
		return e->id;
	default:
		(void)buf;
		return NULL;
	}
}

static bool in_vals(const char *s, char *const *vals, size_t n)
{
	if (!s)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(vals[i], s) == 0)
			return true;
	return false;
}

static bool has_tag(const struct img_entry *e, const char *t)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(e->doc, "tags"), i, v)
	{
		const char *s = json_string_value(v);
		if (s && strcmp(s, t) == 0)
			return true;
	}
	return false;
}

/* Whether e belongs in the listing (visibility rules as Glance's query). */
static bool list_visible(const struct listq *q, const struct img_entry *e)
{
	const struct img_who *w = q->who;
	unsigned vis = e->rec.visibility;
	/* the owner test only where it decides something (a strcmp per image) */
	bool own =
	    (!w->admin || vis == IMG_VIS_COMMUNITY) && e->owner && strcmp(e->owner, w->user) == 0;
	bool base;
	if (w->admin) {
		base = true;
	} else if (own || vis == IMG_VIS_PUBLIC || vis == IMG_VIS_COMMUNITY) {
		base = true;
	} else if (vis == IMG_VIS_SHARED) {
		const char *ms = img_member_status(e, w->user);
		static const char *const want[] = {"accepted", "pending", "rejected"};
		base = ms && (q->member_status == 3 || strcmp(ms, want[q->member_status]) == 0);
	} else {
		base = false;
	}
	if (!base)
		return false;
	if (q->vis >= 0 && q->vis < 4)
		return vis == (unsigned)q->vis;
	if (q->vis == 4)
		return true;
	return vis != IMG_VIS_COMMUNITY || own;
}

static bool list_match(const struct listq *q, const struct img_entry *e)
{
	if (!list_visible(q, e))
		return false;
	if ((int)e->os_hidden != q->os_hidden)
		return false;
	if (q->protected_ >= 0 && (int)!!(e->rec.flags & IMG_F_PROTECTED) != q->protected_)
		return false;
	bool sized = e->rec.flags & (IMG_F_DATA | IMG_F_STAGE);
	if (q->has_size_min && (!sized || e->rec.size < q->size_min))
		return false;
	if (q->has_size_max && (!sized || e->rec.size > q->size_max))
		return false;
	for (size_t i = 0; i < q->ntf; i++) {
		const struct tfilt *t = &q->tf[i];
		uint64_t v = t->key == K_CREATED ? e->rec.created_ns : e->rec.updated_ns;
		/* Glance compares at second resolution (its timestamps have none finer). */
		v -= v % 1000000000u;
		bool ok;
		switch (t->op) {
		case 1:
			ok = v != t->ns;
			break;
		case 2:
			ok = v > t->ns;
			break;
		case 3:
			ok = v >= t->ns;
			break;
		case 4:
			ok = v < t->ns;
			break;
		case 5:
			ok = v <= t->ns;
			break;
		default:
			ok = v == t->ns;
		}
		if (!ok)
			return false;
	}
	char hex[129];
	for (size_t i = 0; i < q->nsf; i++) {
		const struct sfilt *f = &q->sf[i];
		const char *s = NULL;
		switch (f->kind) {
		case 0:
			s = field_of(e, f->key, hex);
			break;
		case 1:
			s = e->owner;
			break;
		case 2:
			if (!(e->rec.flags & IMG_F_DATA))
				return false;
			hash_hex(e->rec.md5, 16, hex);
			s = hex;
			break;
		case 3:
			if (!(e->rec.flags & IMG_F_DATA))
				return false;
			hash_hex(e->rec.sha512, 64, hex);
			s = hex;
			break;
		default:
			if (strcmp(f->field, "visibility") == 0)
				continue;
			s = json_string_value(json_object_get(e->props, f->field));
			if (!s) {
				/* base attributes Glance compares as columns */
				if (strcmp(f->field, "min_ram") == 0 ||
				    strcmp(f->field, "min_disk") == 0) {
					snprintf(hex, sizeof(hex), "%lld",
						 (long long)json_integer_value(
						     json_object_get(e->doc, f->field)));
					s = hex;
				}
			}
		}
		if (!in_vals(s, f->vals, f->nvals))
			return false;
	}
	for (size_t i = 0; i < q->ntags; i++)
		if (!has_tag(e, q->tags[i]))
			return false;
	return true;
}

static int cmp_str(const char *a, const char *b)
{
	if (!a || !b)
		return a ? 1 : b ? -1 : 0; /* null sorts first */
	return strcmp(a, b);
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

/* <0 when a comes before b in the listing order. */
static int list_cmp(const struct listq *q, const struct img_entry *a, const struct img_entry *b)
{
	for (size_t i = 0; i < q->nkeys; i++) {
		int c;
		char ba[8], bb[8];
		switch (q->keys[i]) {
		case K_SIZE: {
			bool sa = a->rec.flags & (IMG_F_DATA | IMG_F_STAGE);
			bool sb = b->rec.flags & (IMG_F_DATA | IMG_F_STAGE);
			c = sa != sb ? (sa ? 1 : -1) : cmp_u64(a->rec.size, b->rec.size);
			break;
		}
		case K_CREATED:
			c = cmp_u64(a->rec.created_ns, b->rec.created_ns);
			break;
		case K_UPDATED:
			c = cmp_u64(a->rec.updated_ns, b->rec.updated_ns);
			break;
		case K_ID:
			c = memcmp(a->rec.id, b->rec.id, IMG_ID_LEN);
			break;
		default:
			c = cmp_str(field_of(a, q->keys[i], ba), field_of(b, q->keys[i], bb));
		}
		if (c)
			return q->desc[i] ? -c : c;
	}
	return 0;
}

/* A max-heap (by listing order) of the best `cap` entries seen. */
struct heap {
	const struct listq *q;
	struct img_entry **v;
	size_t n, cap;
};

static void heap_sift_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && list_cmp(h->q, h->v[l], h->v[m]) > 0)
			m = l;
		if (r < h->n && list_cmp(h->q, h->v[r], h->v[m]) > 0)
			m = r;
		if (m == i)
			return;
		struct img_entry *t = h->v[i];
		h->v[i] = h->v[m];
		h->v[m] = t;
		i = m;
	}
}

static void heap_push(struct heap *h, struct img_entry *e)
{
	if (h->cap == 0)
		return;
	if (h->n == h->cap) {
		if (list_cmp(h->q, e, h->v[0]) >= 0)
			return;
		h->v[0] = e;
		heap_sift_down(h, 0);
		return;
	}
	size_t i = h->n++;
	h->v[i] = e;
	while (i) {
		size_t p = (i - 1) / 2;
		if (list_cmp(h->q, h->v[i], h->v[p]) <= 0)
			break;
		struct img_entry *t = h->v[i];
		h->v[i] = h->v[p];
		h->v[p] = t;
		i = p;
	}
}

static int qsort_cmp(const void *a, const void *b, void *arg)
{
	return list_cmp(arg, *(struct img_entry *const *)a, *(struct img_entry *const *)b);
}

/* application/x-www-form-urlencoded, as Python's urlencode (quote_plus). */
static void append_enc(char **buf, size_t *len, size_t *cap, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[4];
		size_t n;
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
			tmp[0] = (char)c;
			n = 1;
		} else if (c == ' ') {
			tmp[0] = '+';
			n = 1;
		} else {
			snprintf(tmp, sizeof(tmp), "%%%02X", c);
			n = 3;
		}
		if (*len + n + 1 > *cap) {
			size_t nc = (*cap ? *cap * 2 : 256) + n;
			char *nb = realloc(*buf, nc);
			if (!nb)
				return;
			*buf = nb;
			*cap = nc;
		}
		memcpy(*buf + *len, tmp, n);
		*len += n;
		(*buf)[*len] = '\0';
	}
}

static void append_raw(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 1 > *cap) {
		size_t nc = (*cap ? *cap * 2 : 256) + n;
		char *nb = realloc(*buf, nc);
		if (!nb)
			return;
		*buf = nb;
		*cap = nc;
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

/* "/v2/images" + the query without marker (+ marker=next when given). */
static json_t *page_link(const struct img_req *rq, const char *next_marker)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	bool first = true;
	append_raw(&buf, &len, &cap, "/v2/images");
	for (int i = 0; i < rq->nq; i++) {
		if (strcmp(rq->q[i].k, "marker") == 0)
			continue;
		append_raw(&buf, &len, &cap, first ? "?" : "&");
		first = false;
		append_enc(&buf, &len, &cap, rq->q[i].k);
		append_raw(&buf, &len, &cap, "=");
		append_enc(&buf, &len, &cap, rq->q[i].v);
	}
	if (next_marker) {
		append_raw(&buf, &len, &cap, first ? "?marker=" : "&marker=");
		append_enc(&buf, &len, &cap, next_marker);
	}
	json_t *s = buf ? json_string(buf) : NULL;
	free(buf);
	return s;
}

void img_api_list(struct img_req *rq, struct img_resp *rs)
{
	struct listq q;
	size_t limit;
	const char *marker_s;
	struct img_entry *marker = NULL;
	struct heap h = {0};
	bool more = false;
	memset(&q, 0, sizeof(q));
	q.who = &rq->who;
	if (listq_parse(rq, &q, &limit, &marker_s, rs) < 0)
		goto out;
	if (marker_s) {
		uint8_t mid[IMG_ID_LEN];
		struct img_entry *e = NULL;
		if (img_id_parse(marker_s, mid) == 0)
			e = img_store_get(rq->reg->st, mid);
		if (!e) {
			img_err(rs, 400, "No image found with ID %s", marker_s);
			goto out;
		}
		/* Glance tells an invisible marker from a missing one. */
		if (!img_can_read(&rq->who, e)) {
			img_entry_put(e);
			img_err(rs, 403, "Forbidding request, image %s not visible", marker_s);
			goto out;
		}
		marker = e;
	}
	h.q = &q;
	h.cap = limit;
	h.v = calloc(limit ? limit : 1, sizeof(*h.v));
	if (!h.v) {
		img_err_code(rs, -ENOMEM, "list");
		goto out;
	}
	img_store_rdlock(rq->reg->st);
	size_t n = img_store_count(rq->reg->st), matched = 0;
	for (size_t i = 0; i < n; i++) {
		struct img_entry *e = img_store_at(rq->reg->st, i);
		if (e->deleted || !list_match(&q, e))
			continue;
		if (marker && list_cmp(&q, e, marker) <= 0)
			continue;
		matched++;
		heap_push(&h, e);
	}
	for (size_t i = 0; i < h.n; i++)
		img_entry_get(h.v[i]);
	img_store_unlock(rq->reg->st);
	more = matched > h.n;
	qsort_r(h.v, h.n, sizeof(*h.v), qsort_cmp, &q);

	json_t *arr = json_array();
	for (size_t i = 0; i < h.n; i++)
		json_array_append_new(arr, img_view(rq->reg, h.v[i]));
	rs->json = json_pack("{s:o, s:o, s:s}", "images", arr, "first", page_link(rq, NULL),
			     "schema", "/v2/schemas/images");
	if (rs->json && more && h.n)
		json_object_set_new(rs->json, "next", page_link(rq, h.v[h.n - 1]->id));
	rs->status = rs->json ? 200 : 0;
	if (!rs->json)
		img_err_code(rs, -ENOMEM, "list");
	for (size_t i = 0; i < h.n; i++)
		img_entry_put(h.v[i]);
out:
	free(h.v);
	img_entry_put(marker);
	listq_free(&q);
}

/* ---- PATCH ---- */

enum pop { OP_ADD, OP_REMOVE, OP_REPLACE };
struct pchange {
	enum pop op;
	char *path;    /* the one segment (decoded) */
	json_t *value; /* borrowed from the body */
};

struct patch_arg {
	struct registry *reg;
	const struct img_who *who;
	struct pchange *ch;
	size_t n;
	unsigned status; /* an error found in the transaction */
};

/* "/name" -> "name"; Glance's pointer rules and messages. */
static int decode_pointer(const char *p, char **out, char *why, size_t whylen, size_t *depth)
{
	if (p[0] != '/') {
		snprintf(why, whylen, "Pointer `%s` does not start with \"/\".", p);
		return -1;
	}
	if (strlen(p) > 1 && p[strlen(p) - 1] == '/') {
		snprintf(why, whylen, "Pointer `%s` end with \"/\".", p);
		return -1;
	}
	for (const char *c = p + 1; *c; c++) {
		if (c[0] == '/' && c[1] == '/') {
			snprintf(why, whylen, "Pointer `%s` contains adjacent \"/\".", p);
			return -1;
		}
		if (c[0] == '~' && c[1] != '0' && c[1] != '1') {
			snprintf(why, whylen,
				 "Pointer `%s` contains \"~\" not part of a recognized escape "
				 "sequence.",
				 p);
			return -1;
		}
	}
	*depth = 1;
	for (const char *c = p + 1; *c; c++)
		if (*c == '/')
			(*depth)++;
	char *s = malloc(strlen(p) + 1);
	if (!s)
		return -1;
	size_t j = 0;
	for (const char *c = p + 1; *c && *c != '/'; c++) {
		if (c[0] == '~' && c[1] == '1') {
			s[j++] = '/';
			c++;
		} else if (c[0] == '~' && c[1] == '0') {
			s[j++] = '~';
			c++;
		} else {
			s[j++] = *c;
		}
	}
	s[j] = '\0';
	char *t = trim_dup(s, j);
	free(s);
	*out = t;
	return t ? 0 : -1;
}

static bool reserved_prop(const char *k)
{
	return strcmp(k, "location") == 0 || strcmp(k, "deleted") == 0 ||
	       strcmp(k, "deleted_at") == 0 || strncmp(k, "os_glance", 9) == 0;
}

/* One change applied to the record in the transaction. */
static int patch_one(struct img_mut *m, struct patch_arg *pa, const struct pchange *c)
{
	struct img_rec *r = &m->rec;
	const char *k = c->path;
	json_t *props = json_object_get(m->doc, "props");
	bool base = img_schema_is_base(k);
	if (c->op == OP_REMOVE) {
		if (base) {
			pa->status = 403;
			snprintf(m->why, sizeof(m->why), "Property %s may not be removed.", k);
			return CAIRN_EDENIED;
		}
		if (!json_object_get(props, k)) {
			pa->status = 409;
			snprintf(m->why, sizeof(m->why), "Property %s does not exist.", k);
			return CAIRN_EEXISTS;
		}
		json_object_del(props, k);
		return 0;
	}
	if (!base) {
		if (c->op == OP_REPLACE && !json_object_get(props, k)) {
			pa->status = 409;
			snprintf(m->why, sizeof(m->why), "Property %s does not exist.", k);
			return CAIRN_EEXISTS;
		}
		json_object_set_new(props, k, json_string(json_string_value(c->value)));
		return 0;
	}
	json_t *v = c->value;
	if (strcmp(k, "name") == 0 || strcmp(k, "disk_format") == 0 ||
	    strcmp(k, "container_format") == 0) {
		if (k[0] != 'n' && r->status != IMG_QUEUED && r->status != IMG_IMPORTING) {
			pa->status = 403;
			snprintf(m->why, sizeof(m->why),
				 "Attribute %s can be only replaced for a queued image.", k);
			return CAIRN_EDENIED;
		}
		json_object_set_new(m->doc, k, json_deep_copy(v));
	} else if (strcmp(k, "owner") == 0) {
		if (!pa->who->admin) {
			pa->status = 403;
			snprintf(m->why, sizeof(m->why), "Owner can't be updated by non admin.");
			return CAIRN_EDENIED;
		}
		if (img_owner_check(v, m->why, sizeof(m->why)) < 0) {
			pa->status = 400;
			return CAIRN_EINVAL;
		}
		json_object_set_new(m->doc, k, json_deep_copy(v));
	} else if (strcmp(k, "visibility") == 0) {
		int vis = img_vis_parse(json_string_value(v));
		if (vis == IMG_VIS_PUBLIC && !pa->who->admin && r->visibility != IMG_VIS_PUBLIC) {
			pa->status = 403;
			snprintf(m->why, sizeof(m->why),
				 "You are not authorized to complete publicize_image action.");
			return CAIRN_EDENIED;
		}
		r->visibility = (uint8_t)vis;
	} else if (strcmp(k, "protected") == 0) {
		if (json_is_true(v))
			r->flags |= IMG_F_PROTECTED;
		else
			r->flags &= ~(uint32_t)IMG_F_PROTECTED;
	} else if (strcmp(k, "os_hidden") == 0) {
		json_object_set_new(m->doc, k, json_boolean(json_is_true(v)));
	} else if (strcmp(k, "min_ram") == 0 || strcmp(k, "min_disk") == 0) {
		if (json_integer_value(v) < 0) {
			pa->status = 400;
			snprintf(m->why, sizeof(m->why),
				 "Invalid value '%lld' for parameter '%s': Cannot be a negative "
				 "value.",
				 (long long)json_integer_value(v), k);
			return CAIRN_EINVAL;
		}
		json_object_set_new(m->doc, k, json_integer(json_integer_value(v)));
	} else if (strcmp(k, "tags") == 0) {
		/* a set: duplicates go, order of first appearance stays */
		json_t *tags = json_array();
		size_t i;
		json_t *t;
		json_array_foreach(v, i, t)
		{
			bool dup = false;
			size_t j;
			json_t *u;
			json_array_foreach(tags, j, u) dup |= json_equal(u, t);
			if (!dup)
				json_array_append(tags, t);
		}
		json_object_set_new(m->doc, "tags", tags);
	} else {
		pa->status = 403;
		snprintf(m->why, sizeof(m->why), "Attribute '%s' is read-only.", k);
		return CAIRN_EDENIED;
	}
	return 0;
}

static int patch_fn(struct cs_txn *txn, struct img_mut *m)
{
	struct patch_arg *pa = m->arg;
	struct img_entry tmp = {.rec = m->rec, .doc = m->doc};
	int ret = 0;
	tmp.owner = json_string_value(json_object_get(m->doc, "owner"));
	if (!img_can_write(pa->who, &tmp)) {
		pa->status = 403;
		snprintf(m->why, sizeof(m->why), "You are not permitted to modify this image.");
		return CAIRN_EDENIED;
	}
	/* the owner before, to see whether the system bucket must follow */
	json_t *was = json_incref(json_object_get(m->doc, "owner"));
	for (size_t i = 0; i < pa->n && ret == 0; i++)
		ret = patch_one(m, pa, &pa->ch[i]);
	/* An active image's object names its owner, the one user besides root
	 * who may read it over S3: a new owner relinks it in this commit (a
	 * deactivated image has no object; reactivation links the owner then). */
	json_t *now = json_object_get(m->doc, "owner");
	bool moved = was ? !json_equal(was, now) : now != NULL;
	if (ret == 0 && moved && m->rec.status == IMG_ACTIVE && txn && /* NULL: a dry run */
	    (ret = img_sys_link_txn(txn, pa->reg, m)) < 0)
		snprintf(m->why, sizeof(m->why), "cannot relink the image in %s: %s",
			 S3_SYSTEM_BUCKET, cairn_strerror(ret));
	json_decref(was);
	return ret;
}

/* The JSON-patch draft a content type names (10 or 4), or -1 with a 415. */
static int patch_draft(const char *ct, struct img_resp *rs)
{
	if (!ct || (strncmp(ct, "application/openstack-images-v2.1-json-patch", 44) &&
		    strncmp(ct, "application/openstack-images-v2.0-json-patch", 44))) {
		img_err(rs, 415, "The request content type is not supported.");
		rs->hdr_name = "Accept-Patch";
		snprintf(rs->hdr_val, sizeof(rs->hdr_val), "%s",
			 "application/openstack-images-v2.0-json-patch, "
			 "application/openstack-images-v2.1-json-patch");
		return -1;
	}
	return strstr(ct, "v2.1") ? 10 : 4;
}

/* Parses a PATCH body (draft 10 or 4) into changes, checked as far as
 * they can be without the image: 0, or -1 with rs filled. The body,
 * changes and count are set either way (the changes borrow values from the body). */
static int patch_parse(const char *text, size_t len, int draft, json_t **bodyp,
		       struct pchange **chp, size_t *np, struct img_resp *rs)
{
	json_t *body = NULL;
	struct pchange *ch = NULL;
	size_t n = 0;
	char why[512];
	json_error_t jerr;
	int ret = -1;

	if (!text || len == 0) {
		img_err(rs, 400, "Body expected in request.");
		return -1;
	}
	body = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	if (!body) {
		img_err(rs, 400, "Malformed JSON in request body.");
		return -1;
	}
	if (!json_is_array(body)) {
		img_err(rs, 400, "Request body must be a JSON array of operation objects.");
		goto out;
	}
	ch = calloc(json_array_size(body) + 1, sizeof(*ch));
	if (!ch) {
		img_err_code(rs, -ENOMEM, "patch");
		goto out;
	}
	size_t i;
	json_t *raw;
	json_array_foreach(body, i, raw)
	{
		struct pchange *c = &ch[n];
		const char *opname = NULL, *path = NULL;
		if (!json_is_object(raw)) {
			img_err(rs, 400, "Operations must be JSON objects.");
			goto out;
		}
		if (draft == 10) {
			opname = json_string_value(json_object_get(raw, "op"));
			if (!json_object_get(raw, "op")) {
				img_err(rs, 400,
					"Unable to find `op` in JSON Schema change. It must be one "
					"of the following: add, remove, replace.");
				goto out;
			}
			if (!opname || (strcmp(opname, "add") && strcmp(opname, "remove") &&
					strcmp(opname, "replace"))) {
				char *t = json_dumps(json_object_get(raw, "op"), JSON_ENCODE_ANY);
				img_err(rs, 400,
					"Invalid operation: `%s`. It must be one of the following: "
					"add, remove, replace.",
					opname ? opname : (t ? t : "?"));
				free(t);
				goto out;
			}
			path = json_string_value(json_object_get(raw, "path"));
			if (!path) {
				img_err(rs, 400, "Unable to find 'path' in JSON Schema change");
				goto out;
			}
		} else {
			static const char *const ops[] = {"add", "remove", "replace"};
			for (int j = 0; j < 3; j++) {
				if (!json_object_get(raw, ops[j]))
					continue;
				if (opname) {
					img_err(rs, 400,
						"Operation objects must contain only one member "
						"named \"add\", \"remove\", or \"replace\".");
					goto out;
				}
				opname = ops[j];
				path = json_string_value(json_object_get(raw, ops[j]));
			}
			if (!opname || !path) {
				img_err(rs, 400,
					"Operation objects must contain exactly one member named "
					"\"add\", \"remove\", or \"replace\".");
				goto out;
			}
		}
		c->op = opname[0] == 'a' ? OP_ADD : opname[2] == 'm' ? OP_REMOVE : OP_REPLACE;
		size_t depth = 0;
		why[0] = '\0';
		if (decode_pointer(path, &c->path, why, sizeof(why), &depth) < 0) {
			if (why[0])
				img_err(rs, 400, "%s", why);
			else
				img_err_code(rs, -ENOMEM, "patch");
			goto out;
		}
		n++;
		if (strcmp(c->path, "locations") == 0) {
			img_err(rs, 403,
				"It's not allowed to update locations if locations are "
				"invisible.");
			goto out;
		}
		if (depth != 1) {
			img_err(rs, 400, "Invalid JSON pointer for this resource: '%s'", path);
			goto out;
		}
		if (c->op != OP_REMOVE) {
			c->value = json_object_get(raw, "value");
			if (!c->value) {
				img_err(rs, 400,
					"Operation \"%s\" requires a member named \"value\".",
					opname);
				goto out;
			}
		}
		if (img_schema_is_readonly(c->path) || strcmp(c->path, "direct_url") == 0 ||
		    strcmp(c->path, "self") == 0 || strcmp(c->path, "file") == 0 ||
		    strcmp(c->path, "schema") == 0) {
			img_err(rs, 403, "Attribute '%s' is read-only.", c->path);
			goto out;
		}
		if (reserved_prop(c->path)) {
			img_err(rs, 403, "Attribute '%s' is reserved.", c->path);
			goto out;
		}
		if (c->op != OP_REMOVE &&
		    img_schema_check(c->path, c->value, why, sizeof(why)) < 0) {
			img_err(rs, 400, "%s", why);
			goto out;
		}
		if (c->op != OP_REMOVE && strlen(c->path) > 255) {
			img_err(rs, 400,
				"Custom property should not be greater than 255 "
				"characters.");
			goto out;
		}
	}
	ret = 0;
out:
	*bodyp = body;
	*chp = ch;
	*np = n;
	return ret;
}

void img_api_patch(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN])
{
	json_t *body = NULL;
	struct pchange *ch = NULL;
	size_t n = 0;
	struct img_entry *e = NULL;
	struct img_mut m = {0};
	int draft;

	if ((draft = patch_draft(rq->content_type, rs)) < 0)
		return;
	if (img_lookup(rq->reg, &rq->who, id, &e) < 0) {
		char s[37];
		img_id_fmt(id, s);
		not_found(rs, s);
		return;
	}
	if (patch_parse(rq->body, rq->body_len, draft, &body, &ch, &n, rs) < 0)
		goto out;
	struct patch_arg pa = {.reg = rq->reg, .who = &rq->who, .ch = ch, .n = n};
	memcpy(m.id, id, IMG_ID_LEN);
	m.fn = patch_fn;
	m.arg = &pa;
	int ret = n ? img_store_write(rq->reg->st, &m) : 0;
	if (ret < 0) {
		if (pa.status)
			img_err(rs, pa.status, "%s", m.why);
		else if (ret == CAIRN_ENOTFOUND) {
			char s[37];
			img_id_fmt(id, s);
			not_found(rs, s);
		} else
			img_err_code(rs, ret, "update");
		goto out;
	}
	img_entry_put(e);
	e = img_store_get(rq->reg->st, id);
	if (!e) {
		char s[37];
		img_id_fmt(id, s);
		not_found(rs, s);
		goto out;
	}
	rs->status = 200;
	rs->json = img_view(rq->reg, e);
out:
	img_mut_clear(&m);
	for (size_t j = 0; j < n; j++)
		free(ch[j].path);
	free(ch);
	json_decref(body);
	img_entry_put(e);
}

int img_patch_try(const struct img_who *w, const char *content_type, const char *body, size_t len,
		  struct img_rec *rec, json_t *doc, struct img_resp *rs)
{
	json_t *bj = NULL;
	struct pchange *ch = NULL;
	size_t n = 0;
	struct img_mut m = {.rec = *rec, .doc = doc};
	int draft, ret = -1;
	if ((draft = patch_draft(content_type, rs)) < 0)
		return -1;
	if (patch_parse(body, len, draft, &bj, &ch, &n, rs) < 0)
		goto out;
	struct patch_arg pa = {.who = w, .ch = ch, .n = n};
	m.arg = &pa;
	ret = n ? patch_fn(NULL, &m) : 0;
	if (ret < 0) {
		img_err(rs, pa.status ? pa.status : 500, "%s", m.why);
		ret = -1;
	}
	*rec = m.rec;
out:
	for (size_t j = 0; j < n; j++)
		free(ch[j].path);
	free(ch);
	json_decref(bj);
	return ret;
}

/* ---- tags, actions ---- */

struct tag_arg {
	const struct img_who *who;
	const char *tag;
	bool add;
	unsigned status;
};

static int tag_fn(struct cs_txn *txn, struct img_mut *m)
{
	(void)txn;
	struct tag_arg *ta = m->arg;
	struct img_entry tmp = {.rec = m->rec, .doc = m->doc};
	tmp.owner = json_string_value(json_object_get(m->doc, "owner"));
	if (!img_can_write(ta->who, &tmp)) {
		ta->status = 403;
		snprintf(m->why, sizeof(m->why), "Not allowed to %s tags for image %s.",
			 ta->add ? "update" : "delete", "this");
		return CAIRN_EDENIED;
	}
	json_t *tags = json_object_get(m->doc, "tags");
	if (!json_is_array(tags)) {
		tags = json_array();
		json_object_set_new(m->doc, "tags", tags);
	}
	size_t i;
	json_t *t;
	json_array_foreach(tags, i, t)
	{
		if (strcmp(json_string_value(t) ? json_string_value(t) : "", ta->tag) == 0) {
			if (ta->add)
				return 0;
			json_array_remove(tags, i);
			return 0;
		}
	}
	if (!ta->add) {
		ta->status = 404;
		snprintf(m->why, sizeof(m->why), "Tag %s not found.", ta->tag);
		return CAIRN_ENOTFOUND;
	}
	if (json_array_size(tags) >= 128) {
		ta->status = 413;
		snprintf(m->why, sizeof(m->why), "Image tag limit exceeded for image: 128");
		return CAIRN_ETOOBIG;
	}
	json_array_append_new(tags, json_string(ta->tag));
	return 0;
}

static void do_tag(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN],
		   const char *tag, bool add)
{
	struct img_entry *e = NULL;
	char s[37];
	img_id_fmt(id, s);
	if (img_lookup(rq->reg, &rq->who, id, &e) < 0) {
		img_err(rs, 404, "Image %s not found.", s);
		return;
	}
	img_entry_put(e);
	if (add && strlen(tag) > 255) {
		img_err(rs, 400,
			"Provided object does not match schema 'image': '%.40s...' is too "
			"long",
			tag);
		return;
	}
	struct tag_arg ta = {&rq->who, tag, add, 0};
	struct img_mut m = {.fn = tag_fn, .arg = &ta};
	memcpy(m.id, id, IMG_ID_LEN);
	int ret = img_store_write(rq->reg->st, &m);
	if (ret < 0) {
		if (ta.status)
			img_err(rs, ta.status, "%s", m.why);
		else if (ret == CAIRN_ENOTFOUND)
			img_err(rs, 404, "Image %s not found.", s);
		else
			img_err_code(rs, ret, "tags");
	} else {
		rs->status = 204;
	}
	img_mut_clear(&m);
}

struct act_arg {
	struct registry *reg;
	const struct img_who *who;
	bool deactivate;
	unsigned status;
};

static int act_fn(struct cs_txn *txn, struct img_mut *m)
{
	struct act_arg *aa = m->arg;
	struct img_entry tmp = {.rec = m->rec, .doc = m->doc};
	tmp.owner = json_string_value(json_object_get(m->doc, "owner"));
	if (!img_can_write(aa->who, &tmp)) {
		aa->status = 403;
		snprintf(m->why, sizeof(m->why), "You are not authorized to complete %s action.",
			 aa->deactivate ? "deactivate" : "reactivate");
		return CAIRN_EDENIED;
	}
	unsigned from = aa->deactivate ? IMG_ACTIVE : IMG_DEACTIVATED;
	unsigned to = aa->deactivate ? IMG_DEACTIVATED : IMG_ACTIVE;
	if (m->rec.status == to)
		return 0;
	if (m->rec.status != from) {
		aa->status = 403;
		snprintf(m->why, sizeof(m->why), "Not allowed to %s image in status '%s'",
			 aa->deactivate ? "deactivate" : "reactivate",
			 img_status_name(m->rec.status));
		return CAIRN_EDENIED;
	}
	m->rec.status = (uint8_t)to;
	/* A deactivated image's bytes are readable by no one but admins
	 * (Glance): its system bucket object goes in the same commit, and
	 * reactivation links it again under the owner of that moment. */
	int ret = aa->deactivate ? img_sys_unlink_txn(txn, aa->reg, m->id)
				 : img_sys_link_txn(txn, aa->reg, m);
	if (ret < 0)
		snprintf(m->why, sizeof(m->why), "cannot %s the image in %s: %s",
			 aa->deactivate ? "unlink" : "link", S3_SYSTEM_BUCKET, cairn_strerror(ret));
	return ret;
}

static void do_action(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN],
		      bool deactivate)
{
	struct img_entry *e = NULL;
	char s[37];
	img_id_fmt(id, s);
	if (img_lookup(rq->reg, &rq->who, id, &e) < 0) {
		not_found(rs, s);
		return;
	}
	img_entry_put(e);
	struct act_arg aa = {rq->reg, &rq->who, deactivate, 0};
	struct img_mut m = {.fn = act_fn, .arg = &aa};
	memcpy(m.id, id, IMG_ID_LEN);
	int ret = img_store_write(rq->reg->st, &m);
	if (ret < 0) {
		if (aa.status)
			img_err(rs, aa.status, "%s", m.why);
		else if (ret == CAIRN_ENOTFOUND)
			not_found(rs, s);
		else
			img_err_code(rs, ret, "action");
	} else {
		rs->status = 204;
	}
	img_mut_clear(&m);
}

/* ---- show, delete ---- */

static void do_show(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN])
{
	struct img_entry *e = NULL;
	if (img_lookup(rq->reg, &rq->who, id, &e) < 0) {
		char s[37];
		img_id_fmt(id, s);
		not_found(rs, s);
		return;
	}
	/* The usage figures are cached; a single-image GET refreshes them
	 * when they may have changed (img_usage_stale). */
	if ((e->rec.flags & IMG_F_DATA) && img_usage_stale(rq->reg, e)) {
		struct cs_usage u;
		if (img_usage(rq->reg, e, &u) == 0) {
			img_entry_put(e);
			e = img_store_get(rq->reg->st, id);
			if (!e) {
				char s[37];
				img_id_fmt(id, s);
				not_found(rs, s);
				return;
			}
		}
	}
	rs->status = 200;
	rs->json = img_view(rq->reg, e);
	img_entry_put(e);
}

static void do_delete(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN])
{
	struct img_entry *e = NULL;
	char s[37];
	img_id_fmt(id, s);
	if (img_lookup(rq->reg, &rq->who, id, &e) < 0) {
		not_found(rs, s);
		return;
	}
	bool ok = img_can_write(&rq->who, e);
	bool prot = e->rec.flags & IMG_F_PROTECTED;
	img_entry_put(e);
	if (!ok) {
		img_err(rs, 403, "You are not authorized to complete delete_image action.");
		return;
	}
	if (prot) {
		img_err(rs, 403, "Image %s is protected and cannot be deleted.", s);
		return;
	}
	int ret = img_delete(rq->reg, id);
	if (ret == CAIRN_EDENIED)
		img_err(rs, 403, "Image %s is protected and cannot be deleted.", s);
	else if (ret == CAIRN_ENOTFOUND)
		not_found(rs, s);
	else if (ret < 0)
		img_err_code(rs, ret, "delete");
	else
		rs->status = 204;
}

/* ---- routing ---- */

static void method_not_allowed(struct img_resp *rs, const char *allow)
{
	img_err(rs, 405, "The method is not allowed for this resource.");
	rs->hdr_name = "Allow";
	snprintf(rs->hdr_val, sizeof(rs->hdr_val), "%s", allow);
}

static bool is(const struct img_req *rq, const char *m)
{
	return strcmp(rq->method, m) == 0 ||
	       (strcmp(m, "GET") == 0 && strcmp(rq->method, "HEAD") == 0);
}

bool img_api_is_upload(const struct img_req *rq)
{
	return strcmp(rq->method, "PUT") == 0 && rq->nsegs == 4 && strcmp(rq->segs[0], "v2") == 0 &&
	       strcmp(rq->segs[1], "images") == 0 &&
	       (strcmp(rq->segs[3], "file") == 0 || strcmp(rq->segs[3], "stage") == 0);
}

void img_api_handle(struct img_req *rq, struct img_resp *rs)
{
	char *const *s = rq->segs;
	int n = rq->nsegs;
	uint8_t id[IMG_ID_LEN];
	const char *base = rq->base;

	if (n == 0 || (n == 1 && strcmp(s[0], "versions") == 0)) {
		if (!is(rq, "GET"))
			return method_not_allowed(rs, "GET");
		return do_versions(rq, rs, n == 1, base);
	}
	if (strcmp(s[0], "v2") != 0 || n < 2) {
		img_err(rs, 404, "The resource could not be found.");
		return;
	}
	if (strcmp(s[1], "schemas") == 0 && n == 3) {
		if (!is(rq, "GET"))
			return method_not_allowed(rs, "GET");
		json_t *j = strcmp(s[2], "image") == 0	   ? img_schema_image()
			    : strcmp(s[2], "images") == 0  ? img_schema_images()
			    : strcmp(s[2], "member") == 0  ? img_schema_member()
			    : strcmp(s[2], "members") == 0 ? img_schema_members()
			    : strcmp(s[2], "task") == 0	   ? img_schema_task()
			    : strcmp(s[2], "tasks") == 0   ? img_schema_tasks()
							   : NULL;
		if (!j) {
			img_err(rs, 404, "The resource could not be found.");
			return;
		}
		rs->status = 200;
		rs->json = j;
		return;
	}
	if (strcmp(s[1], "info") == 0 && n == 3) {
		if (!is(rq, "GET"))
			return method_not_allowed(rs, "GET");
		if (strcmp(s[2], "import") == 0)
			return img_api_info_import(rq, rs);
		if (strcmp(s[2], "stores") == 0) {
			img_err(rs, 404, "Multi backend is not supported at this site.");
			return;
		}
		img_err(rs, 404, "The resource could not be found.");
		return;
	}
	if (strcmp(s[1], "tasks") == 0 && n == 2) {
		if (!is(rq, "GET"))
			return method_not_allowed(rs, "GET");
		rs->status = 200;
		rs->json = json_pack("{s:[], s:s, s:s}", "tasks", "first", "/v2/tasks", "schema",
				     "/v2/schemas/tasks");
		return;
	}
	if (strcmp(s[1], "images") != 0) {
		img_err(rs, 404, "The resource could not be found.");
		return;
	}
	if (n == 2) {
		if (is(rq, "GET"))
			return img_api_list(rq, rs);
		if (is(rq, "POST"))
			return img_api_create(rq, rs);
		return method_not_allowed(rs, "GET, POST");
	}
	if (!id_from_seg(s[2], id)) {
		/* Glance answers 404 for ids that are not UUIDs */
		not_found(rs, s[2]);
		return;
	}
	if (n == 3) {
		if (is(rq, "GET"))
			return do_show(rq, rs, id);
		if (is(rq, "PATCH"))
			return img_api_patch(rq, rs, id);
		if (is(rq, "DELETE"))
			return do_delete(rq, rs, id);
		return method_not_allowed(rs, "GET, PATCH, DELETE");
	}
	if (strcmp(s[3], "file") == 0 && n == 4) {
		if (is(rq, "GET"))
			return img_api_download(rq, rs, id);
		return method_not_allowed(rs, "GET, PUT");
	}
	if (strcmp(s[3], "stage") == 0 && n == 4)
		return method_not_allowed(rs, "PUT");
	if (strcmp(s[3], "import") == 0 && n == 4) {
		if (is(rq, "POST"))
			return img_api_import(rq, rs, id);
		return method_not_allowed(rs, "POST");
	}
	if (strcmp(s[3], "tags") == 0 && n == 5) {
		if (is(rq, "PUT"))
			return do_tag(rq, rs, id, s[4], true);
		if (is(rq, "DELETE"))
			return do_tag(rq, rs, id, s[4], false);
		return method_not_allowed(rs, "PUT, DELETE");
	}
	if (strcmp(s[3], "actions") == 0 && n == 5 &&
	    (strcmp(s[4], "deactivate") == 0 || strcmp(s[4], "reactivate") == 0)) {
		if (is(rq, "POST"))
			return do_action(rq, rs, id, s[4][0] == 'd');
		return method_not_allowed(rs, "POST");
	}
	if (strcmp(s[3], "members") == 0 && (n == 4 || n == 5))
		return img_api_members(rq, rs, id);
	img_err(rs, 404, "The resource could not be found.");
}
