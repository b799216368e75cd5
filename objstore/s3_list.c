/* objstore/s3_list.c - the object index (keys -> records) and ListObjects v1/v2.
 *
 * Objects of a bucket are one contiguous LMDB range, [part][bucket][0][key],
 * so a listing is a cursor seek plus a scan, and a delimiter rolls a whole
 * common prefix up with one more seek (to the first key after every key
 * sharing it), never key by key: cost is O(entries returned x log n) however
 * many keys a prefix holds. Keys longer than S3_KEY_INLINE share group
 * records (s3_format.h); the iterator expands them so callers see full keys
 * in byte order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/log.h"
#include "objstore/s3_server_internal.h"
#include "objstore/s3_xml.h"

#define TAG "s3"
#define HDR_MAX (4 + S3_BUCKET_MAX + 1)
#define LKEY_MAX (HDR_MAX + S3_KEY_INLINE + 1)

static_assert(LKEY_MAX <= META_KEY_MAX, "object LMDB keys fit LMDB's limit");

/* ---- records ---- */

int s3_obj_parse(const void *v, size_t vl, struct s3_objinfo *out)
{
	if (vl < sizeof(out->rec))
		return CAIRN_ECORRUPT;
	memcpy(&out->rec, v, sizeof(out->rec));
	if (out->rec.version == 0)
		return CAIRN_ECORRUPT;
	if (out->rec.version > S3_OBJ_VERSION)
		return CAIRN_EFORMAT;
	out->fields = (const uint8_t *)v + sizeof(out->rec);
	out->fields_len = vl - sizeof(out->rec);
	return 0;
}

int s3_field_next(const uint8_t **p, const uint8_t *end, uint8_t *tag, const char **name,
		  size_t *nlen, const char **val, size_t *vlen)
{
	struct s3_field_hdr h;

	if (*p >= end)
		return 0;
	if ((size_t)(end - *p) < sizeof(h))
		return CAIRN_ECORRUPT;
	memcpy(&h, *p, sizeof(h));
	if ((size_t)(end - *p) < sizeof(h) + h.nlen + h.vlen)
		return CAIRN_ECORRUPT;
	*tag = h.tag;
	*name = (const char *)*p + sizeof(h);
	*nlen = h.nlen;
	*val = *name + h.nlen;
	*vlen = h.vlen;
	*p += sizeof(h) + h.nlen + h.vlen;
	return 1;
}

bool s3_field_find(const struct s3_objinfo *o, uint8_t tag, const char **val, size_t *vlen)
{
	const uint8_t *p = o->fields, *end = o->fields + o->fields_len;
	const char *name;
	size_t nlen;
	uint8_t t;

	while (s3_field_next(&p, end, &t, &name, &nlen, val, vlen) == 1)
		if (t == tag)
			return true;
	return false;
}

/* ---- LMDB keys ---- */

static size_t idx_hdr(uint8_t *k, uint32_t part, const char *bucket)
{
	size_t b = strlen(bucket);

	meta_be32(k, part);
	memcpy(k + 4, bucket, b);
	k[4 + b] = 0;
	return 5 + b;
}

/* The LMDB key of an object key; *group when it lives in a group record. */
static size_t idx_key(uint8_t *k, uint32_t part, const char *bucket, const char *key, size_t klen,
		      bool *group)
{
	size_t hl = idx_hdr(k, part, bucket);

	*group = klen > S3_KEY_INLINE;
	if (!*group) {
		memcpy(k + hl, key, klen);
		return hl + klen;
	}
	memcpy(k + hl, key, S3_KEY_INLINE);
	k[hl + S3_KEY_INLINE] = 0;
	return hl + S3_KEY_INLINE + 1;
}

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c)
		return c;
	return al < bl ? -1 : al > bl ? 1 : 0;
}

/* ---- groups ---- */

struct gent {
	const char *suffix;
	size_t slen;
	const uint8_t *rec;
	size_t reclen;
};

/* Walks a group value; returns the entry count or CAIRN_ECORRUPT. Fills
 * ents (up to max) when not NULL. */
static long group_walk(const void *v, size_t vl, struct gent *ents, size_t max)
{
	struct s3_group_hdr h;
	const uint8_t *p = (const uint8_t *)v + sizeof(h), *end = (const uint8_t *)v + vl;

	if (vl < sizeof(h))
		return CAIRN_ECORRUPT;
	memcpy(&h, v, sizeof(h));
	if (h.version == 0)
		return CAIRN_ECORRUPT;
	if (h.version > S3_GROUP_VERSION)
		return CAIRN_EFORMAT;
	for (size_t i = 0; i < h.count; i++) {
		struct s3_group_ent e;
		if ((size_t)(end - p) < sizeof(e))
			return CAIRN_ECORRUPT;
		memcpy(&e, p, sizeof(e));
		p += sizeof(e);
		if ((size_t)(end - p) < (size_t)e.suffix_len + e.rec_len)
			return CAIRN_ECORRUPT;
		if (ents && i < max)
			ents[i] = (struct gent){(const char *)p, e.suffix_len, p + e.suffix_len,
						e.rec_len};
		p += e.suffix_len + e.rec_len;
	}
	return h.count;
}

/* Builds a group value from entries (malloc'd). */
static int group_build(const struct gent *ents, size_t n, uint8_t **out, size_t *outlen)
{
	struct s3_group_hdr h = {.version = S3_GROUP_VERSION, .count = (uint16_t)n};
	size_t len = sizeof(h);
	uint8_t *buf, *p;

	if (n > UINT16_MAX)
		return CAIRN_ETOOBIG;
	for (size_t i = 0; i < n; i++)
		len += sizeof(struct s3_group_ent) + ents[i].slen + ents[i].reclen;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &h, sizeof(h));
	p = buf + sizeof(h);
	for (size_t i = 0; i < n; i++) {
		struct s3_group_ent e = {.suffix_len = (uint16_t)ents[i].slen,
					 .rec_len = (uint32_t)ents[i].reclen};
		memcpy(p, &e, sizeof(e));
		p += sizeof(e);
		memcpy(p, ents[i].suffix, ents[i].slen);
		p += ents[i].slen;
		memcpy(p, ents[i].rec, ents[i].reclen);
		p += ents[i].reclen;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static int rec_mid(const void *v, size_t vl, struct cs_mid *mid)
{
	struct s3_objinfo o;
	int rc = s3_obj_parse(v, vl, &o);

	if (rc == 0)
		memcpy(mid->b, o.rec.mid, CS_MID_LEN);
	return rc;
}

/* ---- index operations ---- */

int s3_idx_get(struct meta_txn *t, uint32_t part, const char *bucket, const char *key, size_t klen,
	       const void **v, size_t *vl)
{
	uint8_t k[LKEY_MAX];
	bool group;
	size_t kl = idx_key(k, part, bucket, key, klen, &group);
	const void *gv;
	size_t gvl;
	long n;
	int rc;

	if (!group)
		return meta_get(t, META_T_OBJECTS, k, kl, v, vl);
	rc = meta_get(t, META_T_OBJECTS, k, kl, &gv, &gvl);
	if (rc < 0)
		return rc;
	n = group_walk(gv, gvl, NULL, 0);
	if (n < 0)
		return (int)n;
	{
		struct gent *ents = malloc((size_t)n * sizeof(*ents));
		if (!ents)
			return -ENOMEM;
		group_walk(gv, gvl, ents, (size_t)n);
		rc = CAIRN_ENOTFOUND;
		for (long i = 0; i < n; i++)
			if (key_cmp(ents[i].suffix, ents[i].slen, key + S3_KEY_INLINE,
				    klen - S3_KEY_INLINE) == 0) {
				*v = ents[i].rec;
				*vl = ents[i].reclen;
				rc = 0;
				break;
			}
		free(ents);
	}
	return rc;
}

/* Rewrites a group with key's entry replaced (rec != NULL) or removed. */
static int group_update(struct meta_txn *t, const uint8_t *k, size_t kl, const char *key,
			size_t klen, const void *rec, size_t reclen, struct cs_mid *old,
			bool *had_old)
{
	const char *suffix = key + S3_KEY_INLINE;
	size_t slen = klen - S3_KEY_INLINE, n = 0, m = 0;
	struct gent *ents = NULL, *out = NULL;
	const void *gv;
	size_t gvl;
	uint8_t *val = NULL;
	size_t vlen;
	bool placed = false;
	long got;
	int rc = meta_get(t, META_T_OBJECTS, k, kl, &gv, &gvl);

	*had_old = false;
	if (rc == 0) {
		got = group_walk(gv, gvl, NULL, 0);
		if (got < 0)
			return (int)got;
		n = (size_t)got;
	} else if (rc != CAIRN_ENOTFOUND) {
		return rc;
	}
	ents = malloc((n ? n : 1) * sizeof(*ents));
	out = malloc((n + 1) * sizeof(*out));
	if (!ents || !out) {
		rc = -ENOMEM;
		goto out;
	}
	if (n)
		group_walk(gv, gvl, ents, n);
	for (size_t i = 0; i < n; i++) {
		int c = key_cmp(ents[i].suffix, ents[i].slen, suffix, slen);
		if (c == 0) {
			rc = rec_mid(ents[i].rec, ents[i].reclen, old);
			if (rc < 0)
				goto out;
			*had_old = true;
			continue;
		}
		if (c > 0 && !placed && rec) {
			out[m++] = (struct gent){suffix, slen, rec, reclen};
			placed = true;
		}
		out[m++] = ents[i];
	}
	if (rec && !placed)
		out[m++] = (struct gent){suffix, slen, rec, reclen};
	if (m == 0) {
		rc = n ? meta_del(t, META_T_OBJECTS, k, kl) : 0;
		goto out;
	}
	/* Copy out of the map before writing over it. */
	rc = group_build(out, m, &val, &vlen);
	if (rc == 0)
		rc = meta_put(t, META_T_OBJECTS, k, kl, val, vlen, 0);
out:
	free(val);
	free(ents);
	free(out);
	return rc;
}

int s3_idx_put(struct meta_txn *t, uint32_t part, const char *bucket, const char *key, size_t klen,
	       const void *rec, size_t reclen, struct cs_mid *old, bool *had_old)
{
	uint8_t k[LKEY_MAX];
	bool group;
	size_t kl = idx_key(k, part, bucket, key, klen, &group);
	const void *v;
	size_t vl;
	int rc;

	if (group)
		return group_update(t, k, kl, key, klen, rec, reclen, old, had_old);
	*had_old = false;
	rc = meta_get(t, META_T_OBJECTS, k, kl, &v, &vl);
	if (rc == 0) {
		rc = rec_mid(v, vl, old);
		if (rc < 0)
			return rc;
		*had_old = true;
	} else if (rc != CAIRN_ENOTFOUND) {
		return rc;
	}
	return meta_put(t, META_T_OBJECTS, k, kl, rec, reclen, 0);
}

int s3_idx_del(struct meta_txn *t, uint32_t part, const char *bucket, const char *key, size_t klen,
	       struct cs_mid *old, bool *had_old)
{
	uint8_t k[LKEY_MAX];
	bool group;
	size_t kl = idx_key(k, part, bucket, key, klen, &group);
	const void *v;
	size_t vl;
	int rc;

	if (group)
		return group_update(t, k, kl, key, klen, NULL, 0, old, had_old);
	*had_old = false;
	rc = meta_get(t, META_T_OBJECTS, k, kl, &v, &vl);
	if (rc == CAIRN_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	rc = rec_mid(v, vl, old);
	if (rc < 0)
		return rc;
	*had_old = true;
	return meta_del(t, META_T_OBJECTS, k, kl);
}

int s3_idx_empty(struct meta_txn *t, uint32_t part, const char *bucket)
{
	uint8_t h[HDR_MAX];
	size_t hl = idx_hdr(h, part, bucket);
	struct meta_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl;
	int rc = meta_cursor_open(t, META_T_OBJECTS, &c);

	if (rc < 0)
		return rc;
	rc = meta_cursor_seek(c, h, hl, &k, &kl, &v, &vl);
	meta_cursor_close(c);
	if (rc == CAIRN_ENOTFOUND)
		return 1;
	if (rc < 0)
		return rc;
	return !(kl > hl && memcmp(k, h, hl) == 0);
}

/* ---- the ordered iterator ---- */

struct idx_iter {
	struct meta_cursor *c;
	uint8_t hdr[HDR_MAX];
	size_t hl;
	bool valid;
	/* current LMDB record */
	const uint8_t *lk, *lv;
	size_t lkl, lvl;
	/* group expansion */
	struct gent *ents;
	size_t nents, gi;
	/* current entry */
	char key[S3_KEY_MAX + 1];
	size_t klen;
	const void *rec;
	size_t reclen;
};

/* Loads the entry at the cursor's record (index gi for groups). */
static int iter_load(struct idx_iter *it, int rc)
{
	size_t kp;

	it->valid = false;
	if (rc == CAIRN_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	if (it->lkl <= it->hl || memcmp(it->lk, it->hdr, it->hl) != 0)
		return 0; /* past the bucket */
	kp = it->lkl - it->hl;
	if (kp == S3_KEY_INLINE + 1 && it->lk[it->lkl - 1] == 0) {
		long n;
		if (it->gi == 0) {
			n = group_walk(it->lv, it->lvl, NULL, 0);
			if (n < 0)
				return (int)n;
			free(it->ents);
			it->ents = malloc(((size_t)n ? (size_t)n : 1) * sizeof(*it->ents));
			if (!it->ents)
				return -ENOMEM;
			it->nents = (size_t)group_walk(it->lv, it->lvl, it->ents, (size_t)n);
		}
		if (it->gi >= it->nents)
			return 1; /* exhausted: caller moves on */
		memcpy(it->key, it->lk + it->hl, S3_KEY_INLINE);
		if (it->ents[it->gi].slen > S3_KEY_MAX - S3_KEY_INLINE)
			return CAIRN_ECORRUPT;
		memcpy(it->key + S3_KEY_INLINE, it->ents[it->gi].suffix, it->ents[it->gi].slen);
		it->klen = S3_KEY_INLINE + it->ents[it->gi].slen;
		it->rec = it->ents[it->gi].rec;
		it->reclen = it->ents[it->gi].reclen;
	} else {
		if (kp > S3_KEY_INLINE)
			return CAIRN_ECORRUPT;
		memcpy(it->key, it->lk + it->hl, kp);
		it->klen = kp;
		it->rec = it->lv;
		it->reclen = it->lvl;
	}
	it->key[it->klen] = 0;
	it->valid = true;
	return 0;
}

static int iter_next_record(struct idx_iter *it)
{
	const void *k, *v;
	int rc = meta_cursor_next(it->c, &k, &it->lkl, &v, &it->lvl);

	it->lk = k;
	it->lv = v;
	it->gi = 0;
	return rc;
}

static int iter_next(struct idx_iter *it)
{
	int rc;

	if (!it->valid)
		return 0;
	if (it->rec != it->lv) { /* inside a group */
		it->gi++;
		if (it->gi < it->nents)
			return iter_load(it, 0);
	}
	for (;;) {
		rc = iter_load(it, iter_next_record(it));
		if (rc != 1)
			return rc;
	}
}

/* Positions at the first key >= target. */
static int iter_seek(struct idx_iter *it, const char *target, size_t tlen)
{
	uint8_t k[LKEY_MAX];
	size_t n = tlen > S3_KEY_INLINE ? S3_KEY_INLINE : tlen;
	const void *lk, *lv;
	int rc;

	memcpy(k, it->hdr, it->hl);
	memcpy(k + it->hl, target, n);
	rc = meta_cursor_seek(it->c, k, it->hl + n, &lk, &it->lkl, &lv, &it->lvl);
	it->lk = lk;
	it->lv = lv;
	it->gi = 0;
	rc = iter_load(it, rc);
	while (rc == 1)
		rc = iter_load(it, iter_next_record(it));
	/* At most one short key and one group's entries precede target here. */
	while (rc == 0 && it->valid && key_cmp(it->key, it->klen, target, tlen) < 0)
		rc = iter_next(it);
	return rc;
}

/* The smallest string above every string starting with s (len in *n);
 * false when there is none (s is all 0xff). */
static bool prefix_successor(char *s, size_t *n)
{
	while (*n) {
		unsigned char c = (unsigned char)s[*n - 1];
		if (c != 0xff) {
			s[*n - 1] = (char)(c + 1);
			return true;
		}
		(*n)--;
	}
	return false;
}

/* ---- ListObjects v1 / v2 ---- */

struct list_params {
	bool v2, url, fetch_owner;
	const char *prefix, *delimiter, *marker, *start_after, *token;
	size_t plen, dlen;
	long max_keys;
	char resume[S3_KEY_MAX + 2]; /* where to start; a common prefix when resume_cp */
	size_t resume_len;
	bool resume_set, resume_cp;
};

static void xml_key(struct s3_xml *x, const struct list_params *p, const char *name, const char *s,
		    size_t len)
{
	/* '/' stays as it is: S3 encodes listed names like a URL path, so
	 * "a b/c+d" lists as "a%20b/c%2Bd" (clients unquote every value). */
	if (p->url) {
		char enc[3 * (S3_KEY_MAX + 1) + 1];
		long n = s3_uri_encode(s, len, true, enc, sizeof(enc));
		if (n >= 0) {
			s3_xml_elemn(x, name, enc, (size_t)n);
			return;
		}
	}
	s3_xml_elemn(x, name, s, len);
}

static void xml_contents(struct s3_xml *x, const struct list_params *p, const char *key,
			 size_t klen, const struct s3_objinfo *o, const char *bucket_owner)
{
	char date[S3_ISO_EXT_LEN + 1], hex[33], etag[48];
	time_t sec = (time_t)(o->rec.mtime_ns / 1000000000u);

	s3_xml_open(x, "Contents", NULL);
	xml_key(x, p, "Key", key, klen);
	s3_iso_ext_format(sec, (unsigned)(o->rec.mtime_ns / 1000000u % 1000u), date);
	s3_xml_elem(x, "LastModified", date);
	hash_hex(o->rec.md5, 16, hex);
	if (o->rec.parts)
		snprintf(etag, sizeof(etag), "\"%s-%u\"", hex, o->rec.parts);
	else
		snprintf(etag, sizeof(etag), "\"%s\"", hex);
	s3_xml_elem(x, "ETag", etag);
	s3_xml_elem_u64(x, "Size", o->rec.size);
	s3_xml_elem(x, "StorageClass", "STANDARD");
	if (!p->v2 || p->fetch_owner) {
		const char *ow;
		size_t owl;
		if (!s3_field_find(o, S3_F_OWNER, &ow, &owl)) {
			ow = bucket_owner;
			owl = strlen(bucket_owner);
		}
		s3_xml_open(x, "Owner", NULL);
		s3_xml_elemn(x, "ID", ow, owl);
		s3_xml_elemn(x, "DisplayName", ow, owl);
		s3_xml_close(x);
	}
	s3_xml_close(x);
}

static int list_params(struct s3_req *r, struct list_params *p)
{
	const char *mk = s3_query_get(&r->q, "max-keys");
	const char *enc = s3_query_get(&r->q, "encoding-type");
	const char *fo = s3_query_get(&r->q, "fetch-owner");

	memset(p, 0, sizeof(*p));
	p->v2 = strcmp(r->op, "ListObjectsV2") == 0;
	const char *lt = s3_query_get(&r->q, "list-type");
	if (lt && strcmp(lt, "2") != 0) {
		s3_reply_error(r, S3E_INVALID_ARGUMENT, "Invalid List Type specified in Request");
		return 1;
	}
	p->prefix = s3_query_get(&r->q, "prefix");
	p->delimiter = s3_query_get(&r->q, "delimiter");
	if (!p->prefix)
		p->prefix = "";
	if (p->delimiter && !p->delimiter[0])
		p->delimiter = NULL;
	p->plen = strlen(p->prefix);
	p->dlen = p->delimiter ? strlen(p->delimiter) : 0;
	p->max_keys = S3_LIST_MAX;
	if (mk) {
		char *end;
		errno = 0;
		p->max_keys = strtol(mk, &end, 10);
		if (errno || *end || !mk[0] || p->max_keys < 0) {
			s3_reply_error(r, S3E_INVALID_ARGUMENT,
				       "Provided max-keys not an integer or within integer range");
			return 1;
		}
		if (p->max_keys > S3_LIST_MAX)
			p->max_keys = S3_LIST_MAX;
	}
	if (enc) {
		if (strcmp(enc, "url") != 0) {
			s3_reply_error(r, S3E_INVALID_ARGUMENT,
				       "Invalid Encoding Method specified in Request");
			return 1;
		}
		p->url = true;
	}
	p->fetch_owner = fo && strcmp(fo, "true") == 0;
	if (p->plen > S3_KEY_MAX || p->dlen > S3_KEY_MAX) {
		s3_reply_error(r, S3E_KEY_TOO_LONG, NULL);
		return 1;
	}
	if (p->v2) {
		p->start_after = s3_query_get(&r->q, "start-after");
		p->token = s3_query_get(&r->q, "continuation-token");
		/* An empty token is no token (the listing starts over); the
		 * response still echoes it. */
		if (p->token && p->token[0]) {
			uint8_t raw[S3_KEY_MAX + 8];
			long n = s3_b64_decode(p->token, strlen(p->token), raw, sizeof(raw));
			if (n < 1 || (raw[0] != 'K' && raw[0] != 'P') || n - 1 > S3_KEY_MAX) {
				s3_reply_error(r, S3E_INVALID_ARGUMENT,
					       "The continuation token provided is incorrect");
				return 1;
			}
			p->resume_cp = raw[0] == 'P';
			p->resume_len = (size_t)n - 1;
			memcpy(p->resume, raw + 1, p->resume_len);
			p->resume_set = true;
		} else if (p->start_after && p->start_after[0]) {
			p->resume_len = strlen(p->start_after);
			if (p->resume_len > S3_KEY_MAX) {
				s3_reply_error(r, S3E_KEY_TOO_LONG, NULL);
				return 1;
			}
			memcpy(p->resume, p->start_after, p->resume_len);
			p->resume_set = true;
		}
	} else {
		p->marker = s3_query_get(&r->q, "marker");
		if (p->marker && p->marker[0]) {
			p->resume_len = strlen(p->marker);
			if (p->resume_len > S3_KEY_MAX) {
				s3_reply_error(r, S3E_KEY_TOO_LONG, NULL);
				return 1;
			}
			memcpy(p->resume, p->marker, p->resume_len);
			p->resume_set = true;
		}
	}
	/* A marker that is a common prefix (it ends with the delimiter after
	 * the prefix) resumes after every key that rolled up into it. */
	if (p->resume_set && !(p->token && p->token[0]) && p->delimiter &&
	    p->resume_len > p->plen + p->dlen - 1 && memcmp(p->resume, p->prefix, p->plen) == 0 &&
	    memcmp(p->resume + p->resume_len - p->dlen, p->delimiter, p->dlen) == 0)
		p->resume_cp = true;
	return 0;
}

void s3_op_list_objects(struct s3_req *r)
{
	struct list_params p;
	struct s3_bucket b;
	struct idx_iter it = {0};
	struct meta_txn *t = NULL;
	struct s3_xml x;
	char last[S3_KEY_MAX + 2];
	size_t last_len = 0, count = 0;
	bool last_cp = false, truncated = false;
	char *body;
	size_t len;
	int rc;

	if (list_params(r, &p) || s3_bucket_check(r, &b))
		return;
	s3_xml_init(&x);
	s3_xml_open(&x, "ListBucketResult", S3_XMLNS);
	s3_xml_elem(&x, "Name", r->addr.bucket);
	xml_key(&x, &p, "Prefix", p.prefix, p.plen);
	if (p.v2) {
		if (p.token)
			s3_xml_elem(&x, "ContinuationToken", p.token);
		if (p.start_after)
			xml_key(&x, &p, "StartAfter", p.start_after, strlen(p.start_after));
	} else {
		xml_key(&x, &p, "Marker", p.marker ? p.marker : "",
			p.marker ? strlen(p.marker) : 0);
	}
	if (p.delimiter)
		xml_key(&x, &p, "Delimiter", p.delimiter, p.dlen);
	s3_xml_elem_u64(&x, "MaxKeys", (uint64_t)p.max_keys);
	if (p.url)
		s3_xml_elem(&x, "EncodingType", "url");

	rc = meta_txn_begin(cs_pool_meta(r->srv->pool), false, &t);
	if (rc < 0)
		goto out;
	rc = meta_cursor_open(t, META_T_OBJECTS, &it.c);
	if (rc < 0)
		goto out;
	it.hl = idx_hdr(it.hdr, r->part, r->addr.bucket);
	/* Start at max(prefix, resume point). */
	if (p.resume_set && key_cmp(p.resume, p.resume_len, p.prefix, p.plen) > 0) {
		size_t n = p.resume_len;
		char seek[S3_KEY_MAX + 2];
		memcpy(seek, p.resume, n);
		if (p.resume_cp) {
			if (!prefix_successor(seek, &n))
				goto done;
			rc = iter_seek(&it, seek, n);
		} else {
			rc = iter_seek(&it, seek, n);
			if (rc == 0 && it.valid && key_cmp(it.key, it.klen, seek, n) == 0)
				rc = iter_next(&it);
		}
	} else {
		rc = iter_seek(&it, p.prefix, p.plen);
	}
	/* Pages are cut here. Two passes over the same entries would cost a
	 * second scan; instead we stop at the first entry past max-keys. */
	while (rc == 0 && it.valid && it.klen >= p.plen && memcmp(it.key, p.prefix, p.plen) == 0) {
		const char *d = NULL;
		if (p.delimiter)
			d = memmem(it.key + p.plen, it.klen - p.plen, p.delimiter, p.dlen);
		if ((long)count >= p.max_keys) {
			truncated = p.max_keys > 0; /* AWS: max-keys=0 is never truncated */
			break;
		}
		if (d) {
			size_t cpl = (size_t)(d - it.key) + p.dlen;
			char seek[S3_KEY_MAX + 2];
			size_t n = cpl;
			s3_xml_open(&x, "CommonPrefixes", NULL);
			xml_key(&x, &p, "Prefix", it.key, cpl);
			s3_xml_close(&x);
			memcpy(last, it.key, cpl);
			last_len = cpl;
			last_cp = true;
			count++;
			memcpy(seek, it.key, cpl);
			if (!prefix_successor(seek, &n)) {
				it.valid = false;
				break;
			}
			rc = iter_seek(&it, seek, n);
			continue;
		}
		{
			struct s3_objinfo o;
			rc = s3_obj_parse(it.rec, it.reclen, &o);
			if (rc < 0)
				goto out;
			xml_contents(&x, &p, it.key, it.klen, &o, b.owner);
		}
		memcpy(last, it.key, it.klen);
		last_len = it.klen;
		last_cp = false;
		count++;
		rc = iter_next(&it);
	}
	if (rc < 0)
		goto out;
done:
	rc = 0;
	s3_xml_elem_bool(&x, "IsTruncated", truncated);
	if (p.v2) {
		s3_xml_elem_u64(&x, "KeyCount", count);
		if (truncated) {
			uint8_t raw[S3_KEY_MAX + 2];
			char tok[4 * (S3_KEY_MAX + 4) / 3 + 8];
			raw[0] = last_cp ? 'P' : 'K';
			memcpy(raw + 1, last, last_len);
			s3_b64_encode(raw, last_len + 1, tok, sizeof(tok));
			s3_xml_elem(&x, "NextContinuationToken", tok);
		}
	} else if (truncated && p.delimiter) {
		xml_key(&x, &p, "NextMarker", last, last_len);
	}
out:
	meta_cursor_close(it.c);
	free(it.ents);
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
