/* objstore/s3_object.c - PutObject, GetObject/HeadObject, DeleteObject(s).
 *
 * PUT streams the body into a chunk store writer as it arrives (never
 * buffered whole; the server hashes it on the way), then one cs_commit
 * callback, inside the group's write transaction, re-checks the bucket,
 * creates the manifest, writes the object record and drops the manifest of
 * the object it replaces: a reader sees the old object or the new one, and
 * a 200 goes out only once both data and record are durable.
 *
 * GET copies the record out of a short read transaction, then streams the
 * manifest through a cs_reader in S3_GET_BLOCK pieces from libmicrohttpd's
 * content callback, holding no LMDB transaction while bytes move. A small
 * body is read whole and sent from one buffer; a large one is read ahead by
 * a prefetch thread of its own, so disk reads overlap the network send.
 * A DELETE or overwrite can free the manifest between the record read and
 * cs_reader_open (CAIRN_ENOTFOUND): the GET then reads the record once more
 * and serves what it finds (the new object, or NoSuchKey), never a 500.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/fault.h"
#include "core/hash.h"
#include "core/log.h"
#include "objstore/s3_server_internal.h"
#include "objstore/s3_xml.h"

#define TAG "s3"

/* ---- checksums in responses ---- */

void s3_add_checksum_headers(struct MHD_Response *resp, const struct s3_cksum *c)
{
	char b64[S3_CKSUM_B64_MAX];

	if (c->algo == S3_CK_NONE || s3_cksum_b64(c, b64, sizeof(b64)) < 0)
		return;
	MHD_add_response_header(resp, s3_cksum_header(c->algo), b64);
	MHD_add_response_header(resp, "x-amz-checksum-type", s3_cksum_type_name(c->type));
}

bool s3_obj_checksum(const struct s3_objinfo *o, struct s3_cksum *out)
{
	const char *v;
	size_t vl;

	if (!s3_field_find(o, S3_F_CHECKSUM, &v, &vl))
		return false;
	return s3_cksum_decode(v, vl, out) == 0;
}

/* ---- conditional writes ---- */

void s3_obj_etag(const struct s3_obj_rec *rec, char *out)
{
	char hex[33];

	hash_hex(rec->md5, 16, hex);
	if (rec->parts)
		snprintf(out, S3_ETAG_MAX, "%s-%u", hex, rec->parts);
	else
		snprintf(out, S3_ETAG_MAX, "%s", hex);
}

int s3_write_cond_parse(struct s3_req *r, struct s3_write_cond *c)
{
	const char *inm = s3_req_header(r, "If-None-Match");

	memset(c, 0, sizeof(*c));
	c->if_match = s3_req_header(r, "If-Match");
	if (inm) {
		const char *t;
		size_t tl;
		s3_etag_unquote(inm, strlen(inm), &t, &tl);
		if (tl != 1 || t[0] != '*') {
			/* S3 writes take If-None-Match: * only (create if
			 * absent); an ETag list there has no write meaning. */
			struct s3_err_extra ex = {"Header", "If-None-Match"};
			s3_reply_error_extra(r, S3E_NOT_IMPLEMENTED, NULL, &ex, 1);
			return 1;
		}
		c->if_none_match_any = true;
	}
	if (c->if_none_match_any && c->if_match) {
		/* As AWS: the pair is refused, whatever the values. */
		struct s3_err_extra ex = {"Header", "If-Match"};
		s3_reply_error_extra(r, S3E_NOT_IMPLEMENTED, NULL, &ex, 1);
		return 1;
	}
	return 0;
}

/* One record read in the write transaction: the caller's transaction is the
 * only writer, so nothing changes the key between this check and its own
 * write of it. */
int s3_write_cond_check(struct meta_txn *t, uint32_t part, const char *bucket, const char *key,
			size_t klen, const struct s3_write_cond *c)
{
	struct s3_objinfo o;
	char etag[S3_ETAG_MAX];
	const void *v;
	size_t vl;
	int rc;

	if (!c || (!c->if_none_match_any && !c->if_match))
		return 0;
	rc = s3_idx_get(t, part, bucket, key, klen, &v, &vl);
	if (rc == CAIRN_ENOTFOUND)
		return c->if_match ? CAIRN_ENOTFOUND : 0;
	if (rc < 0)
		return rc;
	if (c->if_none_match_any)
		return CAIRN_EPRECOND;
	rc = s3_obj_parse(v, vl, &o);
	if (rc < 0)
		return rc;
	s3_obj_etag(&o.rec, etag);
	return s3_etag_list_match(c->if_match, etag) ? 0 : CAIRN_EPRECOND;
}

/* Answers a failed write condition: 412, or NoSuchKey for If-Match on a
 * missing key. Returns false when rc is not a condition failure. */
static bool reply_cond_failure(struct s3_req *r, int rc)
{
	if (rc == CAIRN_EPRECOND) {
		s3_reply_error(r, S3E_PRECONDITION_FAILED, NULL);
		return true;
	}
	if (rc == CAIRN_ENOTFOUND) {
		struct s3_err_extra ex = {"Key", r->addr.key};
		s3_reply_error_extra(r, S3E_NO_SUCH_KEY, NULL, &ex, 1);
		return true;
	}
	return false;
}

/* ---- PutObject ---- */

struct put_state {
	struct cs_writer *w;
	struct s3_fbuf f;
	struct s3_write_cond cond;
	int werr; /* the writer failed (device full...): the rest is drained */
};

static void put_free(void *arg)
{
	struct put_state *ps = arg;

	if (!ps)
		return;
	cs_writer_free(ps->w);
	free(ps->f.p);
	free(ps);
}

int s3_body_to_writer(struct s3_req *r, struct cs_writer *w, int *werr, uint64_t max,
		      const void *data, size_t len)
{
	if (r->body_bytes > max)
		return CAIRN_ETOOBIG;
	if (*werr)
		return 0;
	int rc = cs_writer_write(w, data, len);
	if (rc < 0) {
		/* A reply cannot go out while the body is read, and closing
		 * the connection would hide the reason (507 when a device or
		 * the metadata map is full): drain the rest, answer at the
		 * end. Nothing of this body is committed. */
		*werr = rc;
		log_warn(TAG, "%s %s: storing the body failed: %s; draining the rest", r->op,
			 r->reqid, cairn_strerror(rc));
	}
	return 0;
}

int s3_writer_open(struct s3_req *r, struct cs_writer **w)
{
	uint8_t dom[32];
	int rc = cs_writer_open(r->srv->pool, w);

	if (rc < 0)
		return rc;
	/* a tenant pool deduplicates each user's uploads apart */
	if (EVP_Digest(r->key.user, strlen(r->key.user), dom, NULL, EVP_sha256(), NULL) == 1)
		cs_writer_set_domain(*w, dom);
	return 0;
}

static int put_body(struct s3_req *r, const void *data, size_t len)
{
	struct put_state *ps = r->op_state;
	return s3_body_to_writer(r, ps->w, &ps->werr, S3_OBJECT_MAX, data, len);
}

struct put_arg {
	uint32_t part;
	const char *bucket, *key, *owner;
	size_t klen;
	uint8_t *rec;
	size_t reclen;
	const struct s3_write_cond *cond;
	int cond_rc; /* the write condition failed (nothing written) */
};

static int put_fn(struct cs_txn *txn, void *arg)
{
	struct put_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct s3_bucket b;
	struct s3_obj_rec rec;
	struct cs_mid mid, old;
	bool had_old = false;
	int rc = s3_bucket_read(t, a->part, a->bucket, &b);

	if (rc < 0)
		return rc;
	if (strcmp(b.owner, a->owner) != 0)
		return CAIRN_EDENIED;
	/* Before the manifest exists: a losing writer's chunks get no
	 * reference and its bytes stay dead, for GC to take back. */
	rc = s3_write_cond_check(t, a->part, a->bucket, a->key, a->klen, a->cond);
	if (rc < 0) {
		a->cond_rc = rc;
		return rc;
	}
	rc = cs_manifest_create(txn, &mid);
	if (rc < 0)
		return rc;
	memcpy(&rec, a->rec, sizeof(rec));
	memcpy(rec.mid, mid.b, CS_MID_LEN);
	memcpy(a->rec, &rec, sizeof(rec));
	rc = s3_idx_put(t, a->part, a->bucket, a->key, a->klen, a->rec, a->reclen, &old, &had_old);
	if (rc < 0)
		return rc;
	if (had_old)
		rc = cs_manifest_unref(txn, &old);
	return rc;
}

static void put_finish(struct s3_req *r)
{
	struct put_state *ps = r->op_state;
	struct s3_obj_rec rec = {.version = S3_OBJ_VERSION};
	struct put_arg a = {
	    .part = r->part,
	    .bucket = r->addr.bucket,
	    .key = r->addr.key,
	    .klen = r->addr.key_len,
	    .owner = r->key.user,
	    .cond = &ps->cond,
	};
	struct MHD_Response *resp;
	char hex[33], etag[40];
	int rc = ps->werr ? ps->werr : cs_writer_finish(ps->w);

	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return;
	}
	if (r->body_cksum.algo != S3_CK_NONE) {
		uint8_t ck[4 + S3_CKSUM_MAX];
		size_t n = s3_cksum_encode(&r->body_cksum, ck);
		s3_fbuf_add(&ps->f, S3_F_CHECKSUM, "", 0, (const char *)ck, n);
		if (ps->f.err) {
			s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
			return;
		}
	}
	rec.nfields = ps->f.n;
	rec.size = cs_writer_size(ps->w);
	rec.mtime_ns = s3_now_ns();
	memcpy(rec.md5, r->body_md5, 16);
	a.reclen = sizeof(rec) + ps->f.len;
	a.rec = malloc(a.reclen);
	if (!a.rec || FAULT("s3.put_alloc")) {
		free(a.rec);
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	memcpy(a.rec, &rec, sizeof(rec));
	if (ps->f.len)
		memcpy(a.rec + sizeof(rec), ps->f.p, ps->f.len);
	rc = cs_commit(r->srv->pool, ps->w, put_fn, &a);
	free(a.rec);
	if (rc < 0 && a.cond_rc && reply_cond_failure(r, a.cond_rc))
		return;
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_NO_SUCH_BUCKET);
		return;
	}
	hash_hex(r->body_md5, 16, hex);
	snprintf(etag, sizeof(etag), "\"%s\"", hex);
	resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (resp) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
		s3_add_checksum_headers(resp, &r->body_cksum);
	}
	s3_reply_response(r, 200, resp);
}

void s3_op_put_object_start(struct s3_req *r)
{
	struct put_state *ps;
	struct s3_bucket b;
	int rc;

	if (!r->has_cl && !r->chunked) {
		s3_reply_error(r, S3E_MISSING_CONTENT_LENGTH, NULL);
		return;
	}
	if (r->has_cl && r->content_length > S3_OBJECT_MAX) {
		s3_reply_error(r, S3E_ENTITY_TOO_LARGE, NULL);
		return;
	}
	if (s3_bucket_check(r, &b))
		return;
	ps = calloc(1, sizeof(*ps));
	if (!ps) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	r->op_state = ps;
	r->op_free = put_free;
	if (s3_write_cond_parse(r, &ps->cond))
		return;
	if (s3_fields_from_request(r, &ps->f))
		return;
	rc = s3_writer_open(r, &ps->w);
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return;
	}
	r->body_fn = put_body;
	r->finish = put_finish;
	/* As S3 since 2025: an object always gets a checksum. */
	r->cksum_default = S3_CK_CRC64NVME;
	r->state = S3_ST_BODY;
}

/* ---- GetObject / HeadObject ---- */

/* A large GET reads ahead on a thread of its own (the prefetcher) into a
 * ring of S3_GET_BLOCK buffers, so the device reads and checksums of the
 * next blocks overlap the send of the current one; the content callback
 * only copies out of the ring. Small GETs read in place. */
#define S3_GET_RING 4

struct get_stream {
	struct cs_reader *rd;
	uint64_t start, len;
	uint64_t *bytes_out; /* the request's counter; only touched while reading */
	/* prefetcher (when started) */
	bool pf;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *ring[S3_GET_RING];
	size_t fill[S3_GET_RING]; /* bytes in each full buffer */
	unsigned head, count;	  /* full buffers: ring[head..head+count) */
	size_t head_off;	  /* bytes of ring[head] already sent */
	uint64_t sent;		  /* stream position the callback is at */
	long err;		  /* prefetcher's failure (< 0) */
	bool stop, done;
};

static void *get_prefetch(void *arg)
{
	struct get_stream *gs = arg;
	uint64_t pos = 0;

	pthread_mutex_lock(&gs->mu);
	while (pos < gs->len && !gs->stop) {
		if (gs->count == S3_GET_RING) {
			pthread_cond_wait(&gs->cv, &gs->mu);
			continue;
		}
		unsigned slot = (gs->head + gs->count) % S3_GET_RING;
		size_t n = gs->len - pos < S3_GET_BLOCK ? (size_t)(gs->len - pos) : S3_GET_BLOCK;
		pthread_mutex_unlock(&gs->mu);
		long got = cs_reader_read(gs->rd, gs->start + pos, gs->ring[slot], n);
		pthread_mutex_lock(&gs->mu);
		if (got != (long)n) {
			gs->err = got < 0 ? got : CAIRN_ECORRUPT;
			log_err(TAG, "read at %llu failed: %s",
				(unsigned long long)(gs->start + pos),
				got >= 0 ? "premature end" : cairn_strerror((int)got));
			break;
		}
		gs->fill[slot] = n;
		gs->count++;
		pos += n;
		pthread_cond_broadcast(&gs->cv);
	}
	gs->done = true;
	pthread_cond_broadcast(&gs->cv);
	pthread_mutex_unlock(&gs->mu);
	return NULL;
}

/* Starts the prefetcher; false: read in place instead. */
static bool get_prefetch_start(struct get_stream *gs)
{
	for (unsigned i = 0; i < S3_GET_RING; i++) {
		gs->ring[i] = malloc(S3_GET_BLOCK);
		if (!gs->ring[i])
			goto fail;
	}
	pthread_mutex_init(&gs->mu, NULL);
	pthread_cond_init(&gs->cv, NULL);
	if (pthread_create(&gs->thread, NULL, get_prefetch, gs) != 0) {
		pthread_mutex_destroy(&gs->mu);
		pthread_cond_destroy(&gs->cv);
		goto fail;
	}
	gs->pf = true;
	return true;
fail:
	for (unsigned i = 0; i < S3_GET_RING; i++) {
		free(gs->ring[i]);
		gs->ring[i] = NULL;
	}
	return false;
}

static ssize_t get_read_ring(struct get_stream *gs, uint64_t pos, char *buf, size_t max)
{
	size_t done = 0;

	if (pos != gs->sent) {
		log_err(TAG, "GET stream asked for %llu at %llu", (unsigned long long)pos,
			(unsigned long long)gs->sent);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	pthread_mutex_lock(&gs->mu);
	while (done < max) {
		if (gs->count == 0) {
			if (done)
				break; /* send what we have */
			if (gs->err < 0 || gs->done)
				break;
			pthread_cond_wait(&gs->cv, &gs->mu);
			continue;
		}
		size_t avail = gs->fill[gs->head] - gs->head_off;
		size_t n = max - done < avail ? max - done : avail;
		const uint8_t *src = gs->ring[gs->head] + gs->head_off;
		pthread_mutex_unlock(&gs->mu);
		memcpy(buf + done, src, n); /* the prefetcher never touches a full buffer */
		pthread_mutex_lock(&gs->mu);
		done += n;
		gs->head_off += n;
		if (gs->head_off == gs->fill[gs->head]) {
			gs->head = (gs->head + 1) % S3_GET_RING;
			gs->head_off = 0;
			gs->count--;
			pthread_cond_broadcast(&gs->cv);
		}
	}
	pthread_mutex_unlock(&gs->mu);
	if (done == 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	gs->sent += done;
	*gs->bytes_out += (uint64_t)done;
	return (ssize_t)done;
}

static ssize_t get_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct get_stream *gs = cls;
	long n;

	if (!gs->rd)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (pos >= gs->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (max > gs->len - pos)
		max = (size_t)(gs->len - pos);
	if (gs->pf)
		return get_read_ring(gs, pos, buf, max);
	n = cs_reader_read(gs->rd, gs->start + pos, buf, max);
	if (n <= 0) {
		log_err(TAG, "read at %llu failed: %s", (unsigned long long)(gs->start + pos),
			n == 0 ? "premature end" : cairn_strerror((int)n));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	*gs->bytes_out += (uint64_t)n;
	return (ssize_t)n;
}

static void get_free(void *cls)
{
	struct get_stream *gs = cls;

	if (gs->pf) {
		pthread_mutex_lock(&gs->mu);
		gs->stop = true;
		pthread_cond_broadcast(&gs->cv);
		pthread_mutex_unlock(&gs->mu);
		pthread_join(gs->thread, NULL);
		pthread_mutex_destroy(&gs->mu);
		pthread_cond_destroy(&gs->cv);
		for (unsigned i = 0; i < S3_GET_RING; i++)
			free(gs->ring[i]);
	}
	cs_reader_free(gs->rd);
	free(gs);
}

static void add_field_headers(struct MHD_Response *resp, const struct s3_objinfo *o,
			      struct s3_req *r)
{
	static const struct {
		uint8_t tag;
		const char *header, *override;
	} map[] = {
	    {S3_F_CONTENT_TYPE, "Content-Type", "response-content-type"},
	    {S3_F_CONTENT_ENCODING, "Content-Encoding", "response-content-encoding"},
	    {S3_F_CONTENT_DISPOSITION, "Content-Disposition", "response-content-disposition"},
	    {S3_F_CONTENT_LANGUAGE, "Content-Language", "response-content-language"},
	    {S3_F_CACHE_CONTROL, "Cache-Control", "response-cache-control"},
	    {S3_F_EXPIRES, "Expires", "response-expires"},
	};
	const uint8_t *p = o->fields, *end = o->fields + o->fields_len;
	const char *name, *val;
	size_t nlen, vlen;
	uint8_t tag;
	char hname[300], hval[S3_META_MAX + 1];

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		/* Overrides apply to signed requests only; every request that
		 * gets here is signed. */
		const char *ov = s3_query_get(&r->q, map[i].override);
		if (ov) {
			MHD_add_response_header(resp, map[i].header, ov);
			continue;
		}
		if (s3_field_find(o, map[i].tag, &val, &vlen)) {
			char *v = strndup(val, vlen);
			if (v) {
				MHD_add_response_header(resp, map[i].header, v);
				free(v);
			}
		}
	}
	while (s3_field_next(&p, end, &tag, &name, &nlen, &val, &vlen) == 1) {
		if (tag != S3_F_USER_META || nlen + 12 > sizeof(hname) || vlen >= sizeof(hval))
			continue;
		snprintf(hname, sizeof(hname), "x-amz-meta-%.*s", (int)nlen, name);
		memcpy(hval, val, vlen);
		hval[vlen] = 0;
		/* libmicrohttpd refuses an empty header value; one space is
		 * optional whitespace on the wire, so clients read "". */
		if (!vlen)
			strcpy(hval, " ");
		MHD_add_response_header(resp, hname, hval);
	}
}

int s3_obj_load(struct s3_req *r, void **copy, struct s3_objinfo *o)
{
	struct meta_txn *t = NULL;
	const void *v;
	size_t vl = 0;
	int rc = meta_txn_begin(cs_pool_meta(r->srv->pool), false, &t);

	*copy = NULL;
	if (rc == 0)
		rc = s3_idx_get(t, r->part, r->addr.bucket, r->addr.key, r->addr.key_len, &v, &vl);
	if (rc == 0) {
		*copy = malloc(vl);
		if (*copy)
			memcpy(*copy, v, vl);
		else
			rc = -ENOMEM;
	}
	meta_txn_abort(t);
	if (rc == 0)
		rc = s3_obj_parse(*copy, vl, o);
	return rc;
}

void s3_op_get_object(struct s3_req *r)
{
	bool head = strcmp(r->method, "HEAD") == 0;
	struct s3_bucket b;
	struct s3_objinfo o;
	struct s3_range range;
	struct s3_cond cond = {
	    .if_match = s3_req_header(r, "If-Match"),
	    .if_none_match = s3_req_header(r, "If-None-Match"),
	    .if_modified_since = s3_req_header(r, "If-Modified-Since"),
	    .if_unmodified_since = s3_req_header(r, "If-Unmodified-Since"),
	};
	struct get_stream *gs = NULL;
	struct MHD_Response *resp = NULL;
	void *copy = NULL;
	char hex[33], etag[48], date[S3_HTTP_DATE_LEN + 1];
	uint64_t start = 0, len;
	time_t mtime;
	bool partial = false;
	int attempt = 0;
	const char *pn_str = s3_query_get(&r->q, "partNumber");
	uint32_t pn = 0;
	int rc;

	if (pn_str) {
		char *end;
		unsigned long v;
		errno = 0;
		v = strtoul(pn_str, &end, 10);
		if (!*pn_str || *end || errno || v < 1 || v > 10000 || *pn_str == '-') {
			s3_reply_error(
			    r, S3E_INVALID_ARGUMENT,
			    "Part number must be an integer between 1 and 10000, inclusive");
			return;
		}
		pn = (uint32_t)v;
		if (s3_req_header(r, "Range")) {
			s3_reply_error(r, S3E_INVALID_REQUEST,
				       "Cannot specify both Range header and partNumber query "
				       "parameter");
			return;
		}
	}
	/* The system bucket is root's, but an image's owner may read it too. */
	bool sys_reader = s3_is_system_bucket(r->addr.bucket) && !r->caller_root;
	if (!sys_reader && s3_bucket_check(r, &b))
		return;
again:
	rc = s3_obj_load(r, &copy, &o);
	if (sys_reader &&
	    (rc == CAIRN_ENOTFOUND || (rc == 0 && !s3_sysbucket_reader(&o, r->key.user)))) {
		/* Whether another user's image exists is not this caller's to learn. */
		s3_reply_error(r, S3E_ACCESS_DENIED, NULL);
		goto out;
	}
	if (rc < 0) {
		if (rc == CAIRN_ENOTFOUND && !head) {
			struct s3_err_extra ex = {"Key", r->addr.key};
			s3_reply_error_extra(r, S3E_NO_SUCH_KEY, NULL, &ex, 1);
		} else {
			s3_reply_code(r, rc, S3E_NO_SUCH_KEY);
		}
		goto out;
	}
	hash_hex(o.rec.md5, 16, hex);
	if (o.rec.parts)
		snprintf(etag, sizeof(etag), "%s-%u", hex, o.rec.parts);
	else
		snprintf(etag, sizeof(etag), "%s", hex);
	mtime = (time_t)(o.rec.mtime_ns / 1000000000u);
	s3_http_date_format(mtime, date);
	rc = s3_cond_eval(&cond, etag, mtime);
	if (rc == CAIRN_ENOTMODIFIED) {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (resp) {
			char q[52];
			snprintf(q, sizeof(q), "\"%s\"", etag);
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, q);
			MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
		}
		s3_reply_response(r, 304, resp);
		goto out;
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_PRECONDITION_FAILED);
		goto out;
	}
	len = o.rec.size;
	if (pn_str) {
		/* GetObject partNumber: the part's bytes, as a range */
		uint64_t pfirst = 0, plen = 0;
		rc = s3_part_range(&o, pn, &pfirst, &plen);
		if (rc == CAIRN_ERANGE) {
			s3_reply_error(r, S3E_INVALID_PART_NUMBER, NULL);
			goto out;
		}
		if (rc < 0) {
			s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
			goto out;
		}
		start = pfirst;
		len = plen;
		/* a range even for a single-PUT object's part 1, as S3
		 * answers it: 206 with Content-Range (none when empty) */
		partial = plen > 0;
		range.start = pfirst;
		range.end = pfirst + plen - 1;
		rc = 1;
	} else {
		rc = s3_range_parse(s3_req_header(r, "Range"), o.rec.size, &range);
	}
	if (rc == CAIRN_ERANGE) {
		snprintf(r->range_size, sizeof(r->range_size), "%llu",
			 (unsigned long long)o.rec.size);
		struct s3_err_extra ex[2] = {{"RangeRequested", s3_req_header(r, "Range")},
					     {"ActualObjectSize", r->range_size}};
		s3_reply_error_extra(r, S3E_INVALID_RANGE, NULL, ex, 2);
		goto out;
	}
	if (rc == 0) {
		partial = true;
		start = range.start;
		len = range.end - range.start + 1;
	}
	gs = calloc(1, sizeof(*gs));
	if (!gs) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	gs->start = start;
	gs->len = len;
	gs->bytes_out = &r->bytes_out;
	if (!head && len > 0) {
		struct cs_mid mid;
		memcpy(mid.b, o.rec.mid, CS_MID_LEN);
		rc = cs_reader_open(r->srv->pool, &mid, &gs->rd);
		if (rc == 0 && attempt == 0 && FAULT("s3.get_stale")) {
			/* Tests: as if a DELETE had freed the manifest. */
			cs_reader_free(gs->rd);
			gs->rd = NULL;
			rc = CAIRN_ENOTFOUND;
		}
		if (rc == CAIRN_ENOTFOUND && attempt++ == 0) {
			/* Deleted or replaced since the record was read: the
			 * record now names the new manifest, or nothing. */
			free(gs);
			gs = NULL;
			free(copy);
			copy = NULL;
			partial = false;
			start = 0;
			goto again;
		}
		if (rc < 0) {
			free(gs);
			if (rc == CAIRN_ENOTFOUND) {
				struct s3_err_extra ex = {"Key", r->addr.key};
				s3_reply_error_extra(r, S3E_NO_SUCH_KEY, NULL, &ex, 1);
			} else {
				s3_reply_code(r, rc, S3E_NO_SUCH_KEY);
			}
			goto out;
		}
	}
	if (gs->rd && len <= S3_GET_SMALL) {
		/* Small bodies are read now and sent from one buffer: a callback
		 * response would calloc a whole S3_GET_BLOCK (a 1 MiB memset per
		 * request once malloc serves it from the heap). */
		char *body = malloc((size_t)len);
		long n = body ? cs_reader_read(gs->rd, start, body, (size_t)len) : -ENOMEM;
		get_free(gs);
		gs = NULL;
		if (n != (long)len) {
			free(body);
			log_err(TAG, "read of %llu bytes failed: %s", (unsigned long long)len,
				n >= 0 ? "premature end" : cairn_strerror((int)n));
			s3_reply_code(r, n < 0 ? (int)n : CAIRN_ECORRUPT, S3E_NO_SUCH_KEY);
			goto out;
		}
		r->bytes_out += (uint64_t)len;
		resp = MHD_create_response_from_buffer((size_t)len, body, MHD_RESPMEM_MUST_FREE);
		if (!resp)
			free(body);
	} else {
		size_t blk = len < S3_GET_BLOCK ? (size_t)len : S3_GET_BLOCK;
		if (gs->rd && len > S3_GET_PREFETCH_MIN)
			(void)get_prefetch_start(gs); /* else: read in place */
		resp =
		    MHD_create_response_from_callback(len, blk ? blk : 1, get_read, gs, get_free);
		if (!resp)
			get_free(gs);
	}
	if (!resp) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	{
		char q[52];
		snprintf(q, sizeof(q), "\"%s\"", etag);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, q);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	if (partial) {
		char cr[80];
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)range.start,
			 (unsigned long long)range.end, (unsigned long long)o.rec.size);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
	}
	if (pn_str && o.rec.parts) {
		char pc[16];
		snprintf(pc, sizeof(pc), "%u", o.rec.parts);
		MHD_add_response_header(resp, "x-amz-mp-parts-count", pc);
	}
	add_field_headers(resp, &o, r);
	{
		/* Whole-object reads only: a range has no stored checksum. */
		const char *mode = s3_req_header(r, "x-amz-checksum-mode");
		struct s3_cksum ck;
		if (mode && strcasecmp(mode, "ENABLED") == 0 && !partial &&
		    !s3_query_has(&r->q, "partNumber") && s3_obj_checksum(&o, &ck))
			s3_add_checksum_headers(resp, &ck);
	}
	s3_reply_response(r, partial ? 206 : 200, resp);
out:
	free(copy);
}

/* ---- DeleteObject ---- */

struct del_arg {
	uint32_t part;
	const char *bucket, *owner;
	size_t n;
	struct s3_delete_obj *objs; /* keys to delete */
	const int *skip;	    /* per key: non-zero = not to delete */
};

static int del_fn(struct cs_txn *txn, void *arg)
{
	struct del_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct s3_bucket b;
	int rc = s3_bucket_read(t, a->part, a->bucket, &b);

	if (rc < 0)
		return rc;
	if (strcmp(b.owner, a->owner) != 0)
		return CAIRN_EDENIED;
	for (size_t i = 0; i < a->n; i++) {
		struct cs_mid old;
		bool had = false;
		if (a->skip && a->skip[i])
			continue;
		rc = s3_idx_del(t, a->part, a->bucket, a->objs[i].key, a->objs[i].key_len, &old,
				&had);
		if (rc == 0 && had)
			rc = cs_manifest_unref(txn, &old);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void s3_op_delete_object(struct s3_req *r)
{
	struct s3_bucket b;
	struct s3_delete_obj obj = {.key = (char *)r->addr.key, .key_len = r->addr.key_len};
	struct del_arg a = {r->part, r->addr.bucket, r->key.user, 1, &obj, NULL};
	int rc;

	if (s3_bucket_check(r, &b))
		return;
	rc = cs_commit(r->srv->pool, NULL, del_fn, &a);
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_NO_SUCH_BUCKET);
		return;
	}
	/* S3 answers 204 whether or not the key existed. */
	s3_reply_empty(r, 204);
}

/* ---- DeleteObjects ---- */

static void delete_objects_finish(struct s3_req *r)
{
	struct s3_delete_req dr = {0};
	struct s3_xml x;
	int *skip = NULL;
	char *body;
	size_t len;
	int rc = s3_xml_parse_delete(r->body ? r->body : "", r->body_len, &dr);

	if (rc < 0) {
		s3_reply_error(r, rc == -ENOMEM ? S3E_SLOW_DOWN : S3E_MALFORMED_XML, NULL);
		return;
	}
	skip = calloc(dr.n ? dr.n : 1, sizeof(*skip));
	if (!skip) {
		s3_delete_req_free(&dr);
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	for (size_t i = 0; i < dr.n; i++)
		skip[i] = s3_key_check(dr.objs[i].key, dr.objs[i].key_len);
	{
		struct del_arg a = {r->part, r->addr.bucket, r->key.user, dr.n, dr.objs, skip};
		rc = cs_commit(r->srv->pool, NULL, del_fn, &a);
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_NO_SUCH_BUCKET);
		goto out;
	}
	s3_xml_init(&x);
	s3_xml_open(&x, "DeleteResult", S3_XMLNS);
	for (size_t i = 0; i < dr.n; i++) {
		if (skip[i]) {
			enum s3_error e =
			    skip[i] == CAIRN_ETOOBIG ? S3E_KEY_TOO_LONG : S3E_INVALID_ARGUMENT;
			s3_xml_open(&x, "Error", NULL);
			s3_xml_elemn(&x, "Key", dr.objs[i].key, dr.objs[i].key_len);
			s3_xml_elem(&x, "Code", s3_err_code(e));
			s3_xml_elem(&x, "Message", s3_err_info(e)->message);
			s3_xml_close(&x);
			continue;
		}
		if (dr.quiet)
			continue;
		s3_xml_open(&x, "Deleted", NULL);
		s3_xml_elemn(&x, "Key", dr.objs[i].key, dr.objs[i].key_len);
		if (dr.objs[i].version_id)
			s3_xml_elem(&x, "VersionId", dr.objs[i].version_id);
		s3_xml_close(&x);
	}
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	s3_reply_xml(r, 200, body, len);
out:
	free(skip);
	s3_delete_req_free(&dr);
}

void s3_op_delete_objects_start(struct s3_req *r)
{
	struct s3_bucket b;

	if (r->has_cl && r->content_length > S3_DELETE_BODY_MAX) {
		s3_reply_error(r, S3E_MAX_MESSAGE_LENGTH_EXCEEDED, NULL);
		return;
	}
	if (!s3_req_has_body_digest(r)) {
		/* As S3: the body must be protected by Content-MD5 or a
		 * flexible checksum (the body layer verifies either). */
		s3_reply_error(r, S3E_INVALID_REQUEST,
			       "Missing required header for this request: Content-MD5 or "
			       "x-amz-checksum-*");
		return;
	}
	if (s3_bucket_check(r, &b))
		return;
	r->finish = delete_objects_finish;
	r->state = S3_ST_BODY;
}

/* ---- GetObjectTagging ---- */

/* Tags are not stored (PutObjectTagging answers NotImplemented), so every
 * object's tag set is empty. Clients ask for it before copying an object
 * with its properties (awscli's s3 cp between buckets does). */
void s3_op_get_object_tagging(struct s3_req *r)
{
	struct s3_bucket b;
	struct meta_txn *t = NULL;
	struct s3_xml x;
	const void *v;
	size_t vl;
	char *body;
	size_t len;
	int rc;

	if (s3_bucket_check(r, &b))
		return;
	rc = meta_txn_begin(cs_pool_meta(r->srv->pool), false, &t);
	if (rc == 0)
		rc = s3_idx_get(t, r->part, r->addr.bucket, r->addr.key, r->addr.key_len, &v, &vl);
	meta_txn_abort(t);
	if (rc == CAIRN_ENOTFOUND) {
		struct s3_err_extra ex = {"Key", r->addr.key};
		s3_reply_error_extra(r, S3E_NO_SUCH_KEY, NULL, &ex, 1);
		return;
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return;
	}
	s3_xml_init(&x);
	s3_xml_open(&x, "Tagging", S3_XMLNS);
	s3_xml_open(&x, "TagSet", NULL);
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	s3_reply_xml(r, 200, body, len);
}
