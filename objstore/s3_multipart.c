/* objstore/s3_multipart.c - multipart uploads: Create, UploadPart(Copy),
 * Complete, Abort, ListParts, ListMultipartUploads, and the sweeper that
 * aborts uploads left behind.
 *
 * Each part is a manifest of its own (written like a PUT body, never kept
 * inline), held by its part record. Complete checks the list against the
 * part records, then, in one commit transaction, joins the parts'
 * manifests with cs_manifest_concat (entries copied, no byte read or
 * written), writes the object record and drops the upload: the object
 * appears whole or not at all, and a racing Complete or Abort finds the
 * upload gone (NoSuchUpload). Part numbers not named in the list lose
 * their manifest there.
 *
 * Checksums: every part gets the upload's algorithm (computed by the body
 * layer when the client sends none; CRC64NVME for uploads created without
 * one, as S3 does), so Complete produces the object's checksum: COMPOSITE
 * = the algorithm over the part digests ("-N"), FULL_OBJECT = the parts'
 * CRCs combined. (An upload created without an algorithm whose parts came
 * with checksums of other algorithms gets none.)
 *
 * A completed upload leaves a marker record (S3_UPLOADF_DONE, no parts) so
 * that a retried Complete gets the first one's answer rather than
 * NoSuchUpload; the expiry sweep removes it like an abandoned upload.
 *
 * Cost: cs_manifest_concat copies one manifest entry per chunk inside the
 * group commit (~22 ms per GiB of object), and other writes of the node
 * wait for that commit: a 100 GiB Complete holds them about 2 s.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/fault.h"
#include "core/hash.h"
#include "core/log.h"
#include "objstore/s3_server_internal.h"
#include "objstore/s3_xml.h"

#define TAG "s3"

#define S3_PART_MIN (5ull << 20)
#define S3_PART_MAX (5ull << 30)
#define S3_PARTS_MAX 10000u
#define S3_UPLOAD_ID_LEN 16
#define S3_UPLOAD_HEX_LEN 32
#define S3_LIST_UPLOADS_SCAN_MAX 100000u /* uploads one listing will sort */
#define S3_EXPIRE_BATCH 64
#define S3_RUNS_PER_FIELD (UINT16_MAX / 12) /* part-size runs in one record field */
#define S3_OBJECT_MAX_MP (5ull << 40)	    /* 5 TiB: S3's largest object */

/* ---- keys and records ---- */

static size_t upload_key(uint8_t *k, uint32_t part, const char *bucket, const uint8_t id[16])
{
	size_t bl = strlen(bucket);
	meta_be32(k, part);
	memcpy(k + 4, bucket, bl);
	k[4 + bl] = 0;
	if (id)
		memcpy(k + 5 + bl, id, S3_UPLOAD_ID_LEN);
	return 5 + bl + (id ? S3_UPLOAD_ID_LEN : 0);
}

static size_t upart_key(uint8_t *k, const uint8_t id[16], uint32_t pn)
{
	memcpy(k, id, S3_UPLOAD_ID_LEN);
	meta_be32(k + S3_UPLOAD_ID_LEN, pn);
	return S3_UPLOAD_ID_LEN + 4;
}

static void id_hex(const uint8_t id[16], char out[S3_UPLOAD_HEX_LEN + 1])
{
	hash_hex(id, S3_UPLOAD_ID_LEN, out);
}

static bool id_parse(const char *s, uint8_t id[16])
{
	if (!s || strlen(s) != S3_UPLOAD_HEX_LEN)
		return false;
	for (int i = 0; i < S3_UPLOAD_ID_LEN; i++) {
		int hi = s3_hexval((unsigned char)s[2 * i]),
		    lo = s3_hexval((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0 || (s[2 * i] >= 'A' && s[2 * i] <= 'F') ||
		    (s[2 * i + 1] >= 'A' && s[2 * i + 1] <= 'F'))
			return false;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* A decoded upload record; pointers into the value. */
struct upload_view {
	struct s3_upload_rec rec;
	const char *key;
	const uint8_t *fields;
	size_t fields_len;
};

static int upload_parse(const void *v, size_t vl, struct upload_view *out)
{
	if (vl < sizeof(out->rec))
		return CAIRN_ECORRUPT;
	memcpy(&out->rec, v, sizeof(out->rec));
	if (out->rec.version > S3_UPLOAD_VERSION)
		return CAIRN_EFORMAT;
	if (sizeof(out->rec) + out->rec.key_len > vl)
		return CAIRN_ECORRUPT;
	out->key = (const char *)v + sizeof(out->rec);
	out->fields = (const uint8_t *)v + sizeof(out->rec) + out->rec.key_len;
	out->fields_len = vl - sizeof(out->rec) - out->rec.key_len;
	return 0;
}

/* Reads the upload named by the request's uploadId for this bucket and
 * key: CAIRN_ENOTFOUND when it does not exist or names another key. */
static int upload_read(struct meta_txn *t, uint32_t part, const char *bucket, const uint8_t id[16],
		       const char *key, size_t klen, struct upload_view *out, bool allow_done)
{
	uint8_t k[5 + S3_BUCKET_MAX + S3_UPLOAD_ID_LEN];
	const void *v;
	size_t vl;
	int rc = meta_get(t, META_T_UPLOADS, k, upload_key(k, part, bucket, id), &v, &vl);
	if (rc < 0)
		return rc;
	rc = upload_parse(v, vl, out);
	if (rc < 0)
		return rc;
	if (out->rec.key_len != klen || memcmp(out->key, key, klen) != 0)
		return CAIRN_ENOTFOUND;
	/* a completed upload is gone for everything but a retried Complete */
	return (out->rec.flags & S3_UPLOADF_DONE) && !allow_done ? CAIRN_ENOTFOUND : 0;
}

static int upart_parse(const void *v, size_t vl, struct s3_upart_rec *out)
{
	if (vl < sizeof(*out))
		return CAIRN_ECORRUPT;
	memcpy(out, v, sizeof(*out));
	return out->version > S3_UPART_VERSION ? CAIRN_EFORMAT : 0;
}

static void upart_cksum(const struct s3_upart_rec *p, struct s3_cksum *c)
{
	memset(c, 0, sizeof(*c));
	c->algo = p->cksum_algo;
	c->type = S3_CKT_FULL_OBJECT;
	c->len = p->cksum_len <= S3_CKSUM_MAX ? p->cksum_len : S3_CKSUM_MAX;
	memcpy(c->d, p->cksum, c->len);
}

/* Calls fn for every part record of an upload, in part order. */
typedef int (*upart_fn)(const struct s3_upart_rec *p, uint32_t pn, void *arg);
static int uparts_each(struct meta_txn *t, const uint8_t id[16], uint32_t after, upart_fn fn,
		       void *arg)
{
	struct meta_cursor *c = NULL;
	uint8_t k[S3_UPLOAD_ID_LEN + 4];
	const void *kk, *v;
	size_t kl, vl;
	int rc = meta_cursor_open(t, META_T_UPARTS, &c);
	if (rc < 0)
		return rc;
	rc = meta_cursor_seek(c, k, upart_key(k, id, after + 1), &kk, &kl, &v, &vl);
	while (rc == 0) {
		struct s3_upart_rec p;
		if (kl != sizeof(k) || memcmp(kk, id, S3_UPLOAD_ID_LEN) != 0)
			break;
		rc = upart_parse(v, vl, &p);
		if (rc < 0)
			break;
		rc = fn(&p, meta_get_be32((const uint8_t *)kk + S3_UPLOAD_ID_LEN), arg);
		if (rc != 0)
			break;
		rc = meta_cursor_next(c, &kk, &kl, &v, &vl);
	}
	meta_cursor_close(c);
	return rc == CAIRN_ENOTFOUND || rc == 1 ? 0 : rc;
}

/* Drops an upload in a write transaction: every part's manifest except
 * those whose numbers are in keep[] (already consumed), the part records,
 * the upload record. */
struct drop_arg {
	struct cs_txn *txn;
	const uint8_t *keep; /* bitmap by part number, or NULL */
	uint32_t *pns;
	size_t n, cap;
};

static int drop_collect(const struct s3_upart_rec *p, uint32_t pn, void *arg)
{
	struct drop_arg *a = arg;
	if (!a->keep || !(a->keep[pn / 8] & (1u << (pn % 8)))) {
		struct cs_mid mid;
		memcpy(mid.b, p->mid, CS_MID_LEN);
		int rc = cs_manifest_unref(a->txn, &mid);
		if (rc < 0 && rc != CAIRN_ENOTFOUND)
			return rc;
	}
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 64;
		uint32_t *np = realloc(a->pns, nc * sizeof(*np));
		if (!np)
			return -ENOMEM;
		a->pns = np;
		a->cap = nc;
	}
	a->pns[a->n++] = pn;
	return 0;
}

static int upload_drop(struct cs_txn *txn, uint32_t part, const char *bucket, const uint8_t id[16],
		       const uint8_t *keep, const struct upload_view *done)
{
	struct meta_txn *t = cs_txn_meta(txn);
	struct drop_arg a = {.txn = txn, .keep = keep};
	uint8_t k[5 + S3_BUCKET_MAX + S3_UPLOAD_ID_LEN];
	size_t kl = upload_key(k, part, bucket, id);
	int rc = uparts_each(t, id, 0, drop_collect, &a);
	for (size_t i = 0; rc == 0 && i < a.n; i++) {
		uint8_t pk[S3_UPLOAD_ID_LEN + 4];
		rc = meta_del(t, META_T_UPARTS, pk, upart_key(pk, id, a.pns[i]));
	}
	free(a.pns);
	if (rc < 0)
		return rc;
	if (!done)
		return meta_del(t, META_T_UPLOADS, k, kl);
	/* completed: a marker with the key, for a retried Complete */
	struct s3_upload_rec rec = done->rec;
	size_t vl = sizeof(rec) + rec.key_len;
	uint8_t *v = malloc(vl);
	if (!v)
		return -ENOMEM;
	rec.flags |= S3_UPLOADF_DONE;
	rec.nfields = 0;
	rec.created_ns = s3_now_ns();
	memcpy(v, &rec, sizeof(rec));
	memcpy(v + sizeof(rec), done->key, rec.key_len);
	rc = meta_put(t, META_T_UPLOADS, k, kl, v, vl, 0);
	free(v);
	return rc;
}

/* ---- replies ---- */

/* XML element of each checksum algorithm (Complete, ListParts, CopyPart) */
static const char *const cksum_elem[S3_CK_COUNT] = {
    NULL, "ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256"};

static void reply_xml_hdrs(struct s3_req *r, char *body, size_t len, const char *const *hdrs)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/xml");
	for (; hdrs && hdrs[0]; hdrs += 2)
		if (hdrs[1])
			MHD_add_response_header(resp, hdrs[0], hdrs[1]);
	r->bytes_out = len;
	s3_reply_response(r, 200, resp);
}

static bool request_upload_id(struct s3_req *r, uint8_t id[16])
{
	if (!id_parse(s3_query_get(&r->q, "uploadId"), id)) {
		s3_reply_error(r, S3E_NO_SUCH_UPLOAD, NULL);
		return false;
	}
	return true;
}

static void xml_owner(struct s3_xml *x, const char *name, const char *user)
{
	s3_xml_open(x, name, NULL);
	s3_xml_elem(x, "ID", user);
	s3_xml_elem(x, "DisplayName", user);
	s3_xml_close(x);
}

static void xml_key(struct s3_xml *x, bool url, const char *name, const char *s, size_t len)
{
	if (url) {
		char *enc = malloc(3 * len + 1);
		/* '/' stays as it is, as in object listings */
		long n = enc ? s3_uri_encode(s, len, true, enc, 3 * len + 1) : -1;
		if (n >= 0)
			s3_xml_elemn(x, name, enc, (size_t)n);
		free(enc);
		if (n >= 0)
			return;
	}
	s3_xml_elemn(x, name, s, len);
}

static void iso_ns(uint64_t ns, char out[S3_ISO_EXT_LEN + 1])
{
	s3_iso_ext_format((time_t)(ns / 1000000000u), (unsigned)(ns / 1000000u % 1000u), out);
}

/* ---- CreateMultipartUpload ---- */

struct create_arg {
	uint32_t part;
	const char *bucket, *owner;
	uint8_t id[S3_UPLOAD_ID_LEN];
	uint8_t *val;
	size_t vlen;
};

static int create_fn(struct cs_txn *txn, void *arg)
{
	struct create_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct s3_bucket b;
	uint8_t k[5 + S3_BUCKET_MAX + S3_UPLOAD_ID_LEN];
	int rc = s3_bucket_read(t, a->part, a->bucket, &b);
	if (rc < 0)
		return rc;
	if (strcmp(b.owner, a->owner) != 0)
		return CAIRN_EDENIED;
	return meta_put(t, META_T_UPLOADS, k, upload_key(k, a->part, a->bucket, a->id), a->val,
			a->vlen, META_NOOVERWRITE);
}

/* The checksum an upload promises: x-amz-checksum-algorithm and
 * x-amz-checksum-type. Replies and returns non-zero when invalid. */
static int create_cksum(struct s3_req *r, uint8_t *algo, uint8_t *type)
{
	const char *an = s3_req_header(r, "x-amz-checksum-algorithm");
	const char *tn = s3_req_header(r, "x-amz-checksum-type");

	*algo = S3_CK_NONE;
	*type = 0;
	if (an) {
		*algo = (uint8_t)s3_cksum_algo_parse(an);
		if (*algo == S3_CK_NONE) {
			s3_reply_error(
			    r, S3E_INVALID_REQUEST,
			    "Checksum algorithm provided is unsupported. Please try again "
			    "with any of the valid types: [CRC32, CRC32C, CRC64NVME, "
			    "SHA1, SHA256]");
			return 1;
		}
	}
	if (tn) {
		int t = s3_cksum_type_parse(tn);
		if (!t) {
			s3_reply_error(r, S3E_INVALID_REQUEST,
				       "Value for x-amz-checksum-type header is invalid.");
			return 1;
		}
		if (!an) {
			s3_reply_error(r, S3E_INVALID_REQUEST,
				       "The x-amz-checksum-type header can only be used with the "
				       "x-amz-checksum-algorithm header.");
			return 1;
		}
		*type = (uint8_t)t;
	}
	if (*algo == S3_CK_NONE)
		return 0;
	if (!*type)
		*type = *algo == S3_CK_CRC64NVME ? S3_CKT_FULL_OBJECT : S3_CKT_COMPOSITE;
	if (*type == S3_CKT_FULL_OBJECT && (*algo == S3_CK_SHA1 || *algo == S3_CK_SHA256)) {
		s3_reply_error(r, S3E_INVALID_REQUEST,
			       "The FULL_OBJECT checksum type cannot be used with the SHA1 or "
			       "SHA256 checksum algorithm.");
		return 1;
	}
	if (*type == S3_CKT_COMPOSITE && *algo == S3_CK_CRC64NVME) {
		s3_reply_error(r, S3E_INVALID_REQUEST,
			       "The COMPOSITE checksum type cannot be used with the CRC64NVME "
			       "checksum algorithm.");
		return 1;
	}
	return 0;
}

void s3_op_create_multipart(struct s3_req *r)
{
	struct s3_bucket b;
	struct s3_fbuf f = {0};
	struct s3_upload_rec rec = {.version = S3_UPLOAD_VERSION};
	struct create_arg a = {.part = r->part, .bucket = r->addr.bucket, .owner = r->key.user};
	struct s3_xml x;
	char hex[S3_UPLOAD_HEX_LEN + 1], *body;
	size_t len;
	uint64_t now = s3_now_ns();
	int rc;

	if (s3_bucket_check(r, &b))
		return;
	if (create_cksum(r, &rec.cksum_algo, &rec.cksum_type))
		return;
	if (s3_fields_from_request(r, &f))
		goto out;
	rec.key_len = (uint16_t)r->addr.key_len;
	rec.nfields = f.n;
	rec.created_ns = now;
	meta_be64(a.id, now);
	if (RAND_bytes(a.id + 8, 8) != 1) {
		s3_reply_error(r, S3E_INTERNAL_ERROR, NULL);
		goto out;
	}
	a.vlen = sizeof(rec) + r->addr.key_len + f.len;
	a.val = malloc(a.vlen);
	if (!a.val) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	memcpy(a.val, &rec, sizeof(rec));
	memcpy(a.val + sizeof(rec), r->addr.key, r->addr.key_len);
	if (f.len)
		memcpy(a.val + sizeof(rec) + r->addr.key_len, f.p, f.len);
	rc = cs_commit(r->srv->pool, NULL, create_fn, &a);
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_NO_SUCH_BUCKET);
		goto out;
	}
	id_hex(a.id, hex);
	s3_xml_init(&x);
	s3_xml_open(&x, "InitiateMultipartUploadResult", S3_XMLNS);
	s3_xml_elem(&x, "Bucket", r->addr.bucket);
	s3_xml_elemn(&x, "Key", r->addr.key, r->addr.key_len);
	s3_xml_elem(&x, "UploadId", hex);
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	{
		const char *h[] = {
		    "x-amz-checksum-algorithm",
		    rec.cksum_algo ? s3_cksum_name(rec.cksum_algo) : NULL, "x-amz-checksum-type",
		    rec.cksum_algo ? s3_cksum_type_name(rec.cksum_type) : NULL, NULL};
		reply_xml_hdrs(r, body, len, h);
	}
out:
	free(a.val);
	free(f.p);
}

/* ---- UploadPart ---- */

struct part_state {
	struct cs_writer *w;
	uint8_t id[S3_UPLOAD_ID_LEN];
	uint32_t pn;
	uint8_t algo; /* the upload's checksum algorithm */
	int werr;
};

static void part_free(void *arg)
{
	struct part_state *ps = arg;
	if (!ps)
		return;
	cs_writer_free(ps->w);
	free(ps);
}

static int part_body(struct s3_req *r, const void *data, size_t len)
{
	struct part_state *ps = r->op_state;
	return s3_body_to_writer(r, ps->w, &ps->werr, S3_PART_MAX, data, len);
}

struct part_arg {
	uint32_t part;
	const char *bucket, *key;
	size_t klen;
	const uint8_t *id;
	uint32_t pn;
	struct s3_upart_rec rec;
	bool no_upload; /* out: the upload is gone */
};

static int part_fn(struct cs_txn *txn, void *arg)
{
	struct part_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct upload_view u;
	struct cs_mid mid;
	uint8_t k[S3_UPLOAD_ID_LEN + 4];
	size_t kl = upart_key(k, a->id, a->pn);
	const void *v;
	size_t vl;
	int rc = upload_read(t, a->part, a->bucket, a->id, a->key, a->klen, &u, false);
	if (rc < 0) {
		a->no_upload = rc == CAIRN_ENOTFOUND;
		return rc;
	}
	rc = cs_manifest_create(txn, &mid);
	if (rc < 0)
		return rc;
	memcpy(a->rec.mid, mid.b, CS_MID_LEN);
	rc = meta_get(t, META_T_UPARTS, k, kl, &v, &vl);
	if (rc == 0) {
		/* the part is uploaded again: the last upload wins */
		struct s3_upart_rec old;
		rc = upart_parse(v, vl, &old);
		if (rc < 0)
			return rc;
		struct cs_mid om;
		memcpy(om.b, old.mid, CS_MID_LEN);
		rc = cs_manifest_unref(txn, &om);
		if (rc < 0 && rc != CAIRN_ENOTFOUND)
			return rc;
	} else if (rc != CAIRN_ENOTFOUND) {
		return rc;
	}
	return meta_put(t, META_T_UPARTS, k, kl, &a->rec, sizeof(a->rec), 0);
}

/* Commits a finished part writer and answers with its ETag (and checksum). */
static void part_commit_reply(struct s3_req *r, struct cs_writer *w, const uint8_t id[16],
			      uint32_t pn, const uint8_t md5[16], const struct s3_cksum *ck,
			      bool copy)
{
	struct part_arg a = {
	    .part = r->part,
	    .bucket = r->addr.bucket,
	    .key = r->addr.key,
	    .klen = r->addr.key_len,
	    .id = id,
	    .pn = pn,
	    .rec = {.version = S3_UPART_VERSION,
		    .size = cs_writer_size(w),
		    .mtime_ns = s3_now_ns()},
	};
	char hex[33], etag[40], b64[S3_CKSUM_B64_MAX];
	int rc;

	memcpy(a.rec.md5, md5, 16);
	if (ck && ck->algo) {
		a.rec.cksum_algo = ck->algo;
		a.rec.cksum_len = ck->len;
		memcpy(a.rec.cksum, ck->d, ck->len);
	}
	rc = cs_commit(r->srv->pool, w, part_fn, &a);
	if (rc < 0) {
		if (a.no_upload)
			s3_reply_error(r, S3E_NO_SUCH_UPLOAD, NULL);
		else /* ENOTFOUND here: a deduplicated chunk GC took meanwhile */
			s3_reply_code(r, rc, S3E_SLOW_DOWN);
		return;
	}
	hash_hex(md5, 16, hex);
	snprintf(etag, sizeof(etag), "\"%s\"", hex);
	bool have_ck = ck && ck->algo && s3_cksum_b64(ck, b64, sizeof(b64)) >= 0;
	if (copy) {
		struct s3_xml x;
		char date[S3_ISO_EXT_LEN + 1], *body;
		size_t len;
		iso_ns(a.rec.mtime_ns, date);
		s3_xml_init(&x);
		s3_xml_open(&x, "CopyPartResult", S3_XMLNS);
		s3_xml_elem(&x, "LastModified", date);
		s3_xml_elem(&x, "ETag", etag);
		if (have_ck)
			s3_xml_elem(&x, cksum_elem[ck->algo], b64);
		if (s3_xml_finish(&x, &body, &len) < 0) {
			s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
			return;
		}
		reply_xml_hdrs(r, body, len, NULL);
		return;
	}
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (resp) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
		if (have_ck)
			MHD_add_response_header(resp, s3_cksum_header(ck->algo), b64);
	}
	s3_reply_response(r, 200, resp);
}

static void part_finish(struct s3_req *r)
{
	struct part_state *ps = r->op_state;
	int rc = ps->werr ? ps->werr : cs_writer_finish(ps->w);

	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return;
	}
	if (ps->algo && r->body_cksum.algo != ps->algo) {
		char msg[160];
		snprintf(msg, sizeof(msg),
			 "Checksum Type mismatch occurred, expected checksum Type: %s, actual "
			 "checksum Type: %s",
			 s3_cksum_name(ps->algo),
			 r->body_cksum.algo ? s3_cksum_name(r->body_cksum.algo) : "null");
		s3_reply_error(r, S3E_INVALID_REQUEST, msg);
		return;
	}
	part_commit_reply(r, ps->w, ps->id, ps->pn, r->body_md5,
			  r->body_cksum.algo ? &r->body_cksum : NULL, false);
}

/* partNumber and uploadId of UploadPart(Copy); replies when invalid. */
static int part_params(struct s3_req *r, uint8_t id[16], uint32_t *pn)
{
	const char *s = s3_query_get(&r->q, "partNumber");
	char *end;
	unsigned long v;

	errno = 0;
	v = s ? strtoul(s, &end, 10) : 0;
	if (!s || !*s || *end || errno || v < 1 || v > S3_PARTS_MAX || *s == '-' || *s == '+') {
		s3_reply_error(r, S3E_INVALID_ARGUMENT,
			       "Part number must be an integer between 1 and 10000, inclusive");
		return 1;
	}
	*pn = (uint32_t)v;
	return request_upload_id(r, id) ? 0 : 1;
}

/* Reads the upload for a part request; replies when it is missing. */
static int part_upload(struct s3_req *r, const uint8_t id[16], uint8_t *algo)
{
	struct meta_txn *t = NULL;
	struct upload_view u;
	int rc = meta_txn_begin(cs_pool_meta(r->srv->pool), false, &t);
	if (rc == 0) {
		rc = upload_read(t, r->part, r->addr.bucket, id, r->addr.key, r->addr.key_len, &u,
				 false);
		if (rc == 0)
			*algo = u.rec.cksum_algo;
		meta_txn_abort(t);
	}
	if (rc == CAIRN_ENOTFOUND) {
		s3_reply_error(r, S3E_NO_SUCH_UPLOAD, NULL);
		return 1;
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return 1;
	}
	return 0;
}

static int part_writer(struct s3_req *r, struct cs_writer **w)
{
	int rc = s3_writer_open(r, w);
	if (rc == 0)
		cs_writer_set_no_inline(*w);
	return rc;
}

void s3_op_upload_part_start(struct s3_req *r)
{
	struct s3_bucket b;
	struct part_state *ps;
	uint8_t id[S3_UPLOAD_ID_LEN], algo = 0;
	uint32_t pn;
	int rc;

	if (part_params(r, id, &pn))
		return;
	if (!r->has_cl && !r->chunked) {
		s3_reply_error(r, S3E_MISSING_CONTENT_LENGTH, NULL);
		return;
	}
	if (r->has_cl && r->content_length > S3_PART_MAX) {
		s3_reply_error(r, S3E_ENTITY_TOO_LARGE, NULL);
		return;
	}
	if (s3_bucket_check(r, &b) || part_upload(r, id, &algo))
		return;
	ps = calloc(1, sizeof(*ps));
	if (!ps) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	r->op_state = ps;
	r->op_free = part_free;
	memcpy(ps->id, id, sizeof(id));
	ps->pn = pn;
	ps->algo = algo;
	rc = part_writer(r, &ps->w);
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return;
	}
	r->cksum_default = algo ? (enum s3_cksum_algo)algo : S3_CK_CRC64NVME;
	r->body_fn = part_body;
	r->finish = part_finish;
	r->state = S3_ST_BODY;
}

/* ---- UploadPartCopy ---- */

/* The bytes are read from the source and written as a new part: the
 * chunk store deduplicates them against the source's chunks, so a copy
 * costs reads and index lookups, not space (a range that starts inside a
 * chunk stores at most the chunks until the boundaries meet again). */
void s3_op_upload_part_copy(struct s3_req *r)
{
	struct s3_bucket b;
	struct s3_copy_src src = {0};
	struct meta_txn *t = NULL;
	struct s3_objinfo o;
	struct s3_range rng;
	struct cs_mid mid;
	struct cs_writer *w = NULL;
	struct cs_reader *rd = NULL;
	struct s3_cksum_ctx ck = {0};
	struct s3_cksum cks = {0};
	EVP_MD_CTX *md5 = NULL;
	enum s3_error why = S3E_OK;
	uint8_t id[S3_UPLOAD_ID_LEN], algo = 0, digest[16];
	uint8_t *buf = NULL;
	void *rec = NULL;
	const void *v;
	size_t vl;
	uint64_t off, end;
	uint32_t pn;
	unsigned dl = 0;
	bool ck_on = false;
	int rc;

	if (part_params(r, id, &pn) || s3_copy_src_parse(r, &src))
		goto out;
	if (s3_bucket_check(r, &b) || part_upload(r, id, &algo))
		goto out;
	rc = meta_txn_begin(cs_pool_meta(r->srv->pool), false, &t);
	if (rc == 0)
		rc = s3_copy_src_read(t, &src, r->key.user, &v, &vl, &why);
	if (rc == 0) {
		rec = malloc(vl);
		if (rec)
			memcpy(rec, v, vl);
		else
			rc = -ENOMEM;
	}
	meta_txn_abort(t);
	if (rc == 0)
		rc = s3_obj_parse(rec, vl, &o);
	if (rc < 0) {
		if (why != S3E_OK)
			s3_reply_error(r, why, NULL);
		else
			s3_reply_code(r, rc, S3E_NO_SUCH_KEY);
		goto out;
	}
	off = 0;
	end = o.rec.size;
	if (src.range) {
		rc = s3_copy_range_parse(src.range, o.rec.size, &rng);
		if (rc < 0) {
			s3_reply_error(
			    r, S3E_INVALID_ARGUMENT,
			    rc == CAIRN_ERANGE
				? "The x-amz-copy-source-range value must be of the form "
				  "bytes=first-last where first and last are the zero-based "
				  "offsets of the first and last bytes to copy, within the "
				  "source object"
				: "Invalid x-amz-copy-source-range");
			goto out;
		}
		off = rng.start;
		end = rng.end + 1;
	}
	if (end - off > S3_PART_MAX) {
		s3_reply_error(
		    r, S3E_INVALID_REQUEST,
		    "The specified copy source is larger than the maximum allowable size "
		    "for a copy source: 5368709120");
		goto out;
	}
	memcpy(mid.b, o.rec.mid, CS_MID_LEN);
	rc = part_writer(r, &w);
	if (rc == 0 && end > off)
		rc = cs_reader_open(r->srv->pool, &mid, &rd);
	if (rc == 0 && !(buf = malloc(S3_GET_BLOCK)))
		rc = -ENOMEM;
	md5 = EVP_MD_CTX_new();
	if (rc == 0 && (!md5 || EVP_DigestInit_ex(md5, EVP_md5(), NULL) != 1))
		rc = -ENOMEM;
	if (rc == 0) {
		rc = s3_cksum_init(&ck, algo ? (enum s3_cksum_algo)algo : S3_CK_CRC64NVME);
		ck_on = rc == 0;
	}
	while (rc == 0 && off < end) {
		size_t want = end - off < S3_GET_BLOCK ? (size_t)(end - off) : S3_GET_BLOCK;
		long n = cs_reader_read(rd, off, buf, want);
		if (n <= 0) {
			rc = n < 0 ? (int)n : CAIRN_ECORRUPT;
			break;
		}
		if (EVP_DigestUpdate(md5, buf, (size_t)n) != 1) {
			rc = -EIO;
			break;
		}
		s3_cksum_update(&ck, buf, (size_t)n);
		rc = cs_writer_write(w, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (rc == 0)
		rc = cs_writer_finish(w);
	if (rc == 0 && EVP_DigestFinal_ex(md5, digest, &dl) != 1)
		rc = -EIO;
	if (rc == 0) {
		ck_on = false;
		rc = s3_cksum_final(&ck, &cks);
	}
	if (rc < 0) {
		/* a source deleted meanwhile reads as gone */
		s3_reply_code(r, rc, S3E_NO_SUCH_KEY);
		goto out;
	}
	part_commit_reply(r, w, id, pn, digest, &cks, true);
out:
	if (ck_on)
		s3_cksum_ctx_free(&ck);
	EVP_MD_CTX_free(md5);
	free(buf);
	free(rec);
	cs_reader_free(rd);
	cs_writer_free(w);
	s3_copy_src_free(&src);
}

/* ---- CompleteMultipartUpload ---- */

struct complete_arg {
	uint32_t part;
	const char *bucket, *key, *owner;
	size_t klen;
	const uint8_t *id;
	const struct s3_complete_req *cr;
	const struct s3_write_cond *cond;
	const struct s3_cksum *client_full; /* x-amz-checksum-<algo> of the whole object */
	int client_type;		    /* x-amz-checksum-type, 0: not sent */
	uint64_t client_size;		    /* x-amz-mp-object-size */
	bool has_client_size;
	/* out */
	enum s3_error s3e;
	const char *msg;
	char msgbuf[200];
	uint8_t md5[16];
	uint64_t size, mtime_ns;
	struct s3_cksum ck;
};

static int complete_fail(struct complete_arg *a, enum s3_error e, const char *msg)
{
	a->s3e = e;
	a->msg = msg;
	return CAIRN_EINVAL;
}

/* Part sizes as runs of (size le64, count le32). */
static int sizes_add(struct s3_fbuf *runs, uint64_t size)
{
	if (runs->len >= 12) {
		uint64_t last;
		uint32_t cnt;
		memcpy(&last, runs->p + runs->len - 12, 8);
		memcpy(&cnt, runs->p + runs->len - 4, 4);
		if (last == size) {
			cnt++;
			memcpy(runs->p + runs->len - 4, &cnt, 4);
			return 0;
		}
	}
	if (runs->len + 12 > runs->cap) {
		size_t cap = runs->cap ? runs->cap * 2 : 48;
		uint8_t *np = realloc(runs->p, cap);
		if (!np)
			return -ENOMEM;
		runs->p = np;
		runs->cap = cap;
	}
	uint32_t one = 1;
	memcpy(runs->p + runs->len, &size, 8);
	memcpy(runs->p + runs->len + 8, &one, 4);
	runs->len += 12;
	return 0;
}

/* A Complete retried after it succeeded (its reply lost, say) answers as the
 * first one did, as S3 does, instead of NoSuchUpload. The upload record is
 * gone by then; the key's object is this upload's result when it was
 * written after the upload began and its part count and MD5 of part MD5s
 * are those of the parts the request lists. Nothing is written and no
 * write condition is evaluated again: the write they guarded happened.
 * CAIRN_ENOTFOUND when the object is not that result. */
static int complete_replay(struct meta_txn *t, struct complete_arg *a)
{
	const struct s3_complete_req *cr = a->cr;
	struct s3_objinfo o;
	const void *v;
	size_t vl;
	uint8_t md5[16];
	uint64_t created = 0;
	unsigned dl;
	EVP_MD_CTX *ctx = NULL;
	int rc = s3_idx_get(t, a->part, a->bucket, a->key, a->klen, &v, &vl);

	if (rc < 0)
		return rc;
	rc = s3_obj_parse(v, vl, &o);
	if (rc < 0)
		return rc;
	for (int i = 0; i < 8; i++)
		created = created << 8 | a->id[i];
	if (o.rec.parts != cr->n || o.rec.mtime_ns < created)
		return CAIRN_ENOTFOUND;
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	rc = CAIRN_ENOTFOUND;
	for (size_t i = 0; i < cr->n; i++) {
		uint8_t pm[16];
		if (!id_parse(cr->parts[i].etag, pm))
			goto out;
		EVP_DigestUpdate(ctx, pm, sizeof(pm));
	}
	if (EVP_DigestFinal_ex(ctx, md5, &dl) != 1) {
		rc = -EIO;
		goto out;
	}
	if (memcmp(md5, o.rec.md5, sizeof(md5)) != 0)
		goto out;
	memcpy(a->md5, md5, sizeof(md5));
	a->size = o.rec.size;
	a->mtime_ns = o.rec.mtime_ns;
	memset(&a->ck, 0, sizeof(a->ck));
	if (!s3_obj_checksum(&o, &a->ck))
		memset(&a->ck, 0, sizeof(a->ck));
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

static int complete_fn(struct cs_txn *txn, void *arg)
{
	struct complete_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	const struct s3_complete_req *cr = a->cr;
	struct s3_bucket b;
	struct upload_view u;
	struct cs_mid *mids = NULL, mid, old;
	struct s3_cksum *cks = NULL;
	uint64_t *psize = NULL;
	struct s3_fbuf runs = {0};
	uint8_t keep[S3_PARTS_MAX / 8 + 1] = {0};
	uint8_t *rec = NULL, *ucopy = NULL;
	EVP_MD_CTX *md5 = NULL;
	bool had_old = false;
	unsigned dl;
	int rc = s3_bucket_read(t, a->part, a->bucket, &b);

	if (rc < 0)
		return rc;
	if (strcmp(b.owner, a->owner) != 0)
		return CAIRN_EDENIED;
	rc = upload_read(t, a->part, a->bucket, a->id, a->key, a->klen, &u, true);
	if (rc == CAIRN_ENOTFOUND)
		return complete_fail(a, S3E_NO_SUCH_UPLOAD, NULL);
	if (rc < 0)
		return rc;
	if (u.rec.flags & S3_UPLOADF_DONE) {
		/* completed before: a retry of that Complete is answered as it
		 * was, anything else finds no upload */
		rc = complete_replay(t, a);
		return rc == CAIRN_ENOTFOUND ? complete_fail(a, S3E_NO_SUCH_UPLOAD, NULL) : rc;
	}
	rc = s3_write_cond_check(t, a->part, a->bucket, a->key, a->klen, a->cond);
	if (rc == CAIRN_ENOTFOUND) {
		/* If-Match on a key that has no object */
		return complete_fail(a, S3E_NO_SUCH_KEY, NULL);
	}
	if (rc < 0)
		return rc;
	/* values read from LMDB are valid only until the transaction's next
	 * write (dirty pages may be spilled): keep our own copy */
	ucopy = malloc(sizeof(u.rec) + u.rec.key_len + u.fields_len + 1);
	if (!ucopy)
		return -ENOMEM;
	memcpy(ucopy, &u.rec, sizeof(u.rec));
	memcpy(ucopy + sizeof(u.rec), u.key, u.rec.key_len);
	memcpy(ucopy + sizeof(u.rec) + u.rec.key_len, u.fields, u.fields_len);
	u.key = (const char *)ucopy + sizeof(u.rec);
	u.fields = ucopy + sizeof(u.rec) + u.rec.key_len;
	mids = calloc(cr->n, sizeof(*mids));
	cks = calloc(cr->n, sizeof(*cks));
	psize = calloc(cr->n, sizeof(*psize));
	md5 = EVP_MD_CTX_new();
	if (!mids || !cks || !psize || !md5 || EVP_DigestInit_ex(md5, EVP_md5(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	a->size = 0;
	for (size_t i = 0; i < cr->n; i++) {
		const struct s3_complete_part *cp = &cr->parts[i];
		uint8_t k[S3_UPLOAD_ID_LEN + 4];
		struct s3_upart_rec p;
		const void *v;
		size_t vl;
		char hex[33];
		rc = meta_get(t, META_T_UPARTS, k, upart_key(k, a->id, cp->number), &v, &vl);
		if (rc == CAIRN_ENOTFOUND) {
			rc = complete_fail(a, S3E_INVALID_PART, NULL);
			goto out;
		}
		if (rc == 0)
			rc = upart_parse(v, vl, &p);
		if (rc < 0)
			goto out;
		hash_hex(p.md5, 16, hex);
		if (strcmp(hex, cp->etag) != 0) {
			rc = complete_fail(a, S3E_INVALID_PART, NULL);
			goto out;
		}
		if (i + 1 < cr->n && p.size < S3_PART_MIN) {
			snprintf(a->msgbuf, sizeof(a->msgbuf),
				 "Your proposed upload is smaller than the minimum allowed size "
				 "(part %u is %llu bytes; every part but the last must be at least "
				 "5 MiB)",
				 cp->number, (unsigned long long)p.size);
			rc = complete_fail(a, S3E_ENTITY_TOO_SMALL, a->msgbuf);
			goto out;
		}
		upart_cksum(&p, &cks[i]);
		psize[i] = p.size;
		if (cp->cksum_algo[0]) {
			struct s3_cksum sent;
			enum s3_cksum_algo al = s3_cksum_algo_parse(cp->cksum_algo);
			if (al == S3_CK_NONE || al != p.cksum_algo ||
			    s3_cksum_from_b64(al, cp->cksum, strlen(cp->cksum), &sent) < 0 ||
			    !s3_cksum_equal(&sent, &cks[i])) {
				snprintf(a->msgbuf, sizeof(a->msgbuf),
					 "The checksum of part %u does not match the one uploaded",
					 cp->number);
				rc = complete_fail(a, S3E_INVALID_PART, a->msgbuf);
				goto out;
			}
		}
		memcpy(mids[i].b, p.mid, CS_MID_LEN);
		EVP_DigestUpdate(md5, p.md5, 16);
		a->size += p.size;
		rc = sizes_add(&runs, p.size);
		if (rc < 0)
			goto out;
		keep[cp->number / 8] |= (uint8_t)(1u << (cp->number % 8));
	}
	if (EVP_DigestFinal_ex(md5, a->md5, &dl) != 1) {
		rc = -EIO;
		goto out;
	}
	/* the object's checksum, from the parts' */
	memset(&a->ck, 0, sizeof(a->ck));
	enum s3_cksum_algo algo = u.rec.cksum_algo ? u.rec.cksum_algo : S3_CK_CRC64NVME;
	enum s3_cksum_type type = u.rec.cksum_algo ? u.rec.cksum_type : S3_CKT_FULL_OBJECT;
	bool all = true;
	for (size_t i = 0; i < cr->n; i++)
		all &= cks[i].algo == algo;
	if (all && type == S3_CKT_COMPOSITE) {
		rc = s3_cksum_composite(cks, cr->n, &a->ck);
	} else if (all) {
		/* the part sizes were read with the parts above */
		a->ck = cks[0];
		for (size_t i = 1; rc == 0 && i < cr->n; i++)
			rc = s3_cksum_combine(&a->ck, &cks[i], psize[i], &a->ck);
		a->ck.type = S3_CKT_FULL_OBJECT;
	}
	if (rc < 0)
		goto out;
	if (u.rec.cksum_algo && !all) {
		rc = complete_fail(
		    a, S3E_INVALID_REQUEST,
		    "A part of this upload has no checksum of the upload's algorithm");
		goto out;
	}
	if (a->client_type && u.rec.cksum_algo && a->client_type != u.rec.cksum_type) {
		snprintf(a->msgbuf, sizeof(a->msgbuf),
			 "The upload was created using the %s checksum mode. The complete request "
			 "must use the same checksum mode.",
			 s3_cksum_type_name(u.rec.cksum_type));
		rc = complete_fail(a, S3E_INVALID_REQUEST, a->msgbuf);
		goto out;
	}
	if (a->client_full && a->client_full->algo) {
		if (a->client_full->algo != a->ck.algo || a->client_full->type != a->ck.type ||
		    (a->ck.type == S3_CKT_COMPOSITE && a->client_full->parts != a->ck.parts) ||
		    !s3_cksum_equal(a->client_full, &a->ck)) {
			rc = complete_fail(a, S3E_BAD_DIGEST,
					   "The checksum of the object you specified did not match "
					   "what its parts add up to.");
			goto out;
		}
	}
	if (a->has_client_size && a->client_size != a->size) {
		snprintf(
		    a->msgbuf, sizeof(a->msgbuf),
		    "The provided 'x-amz-mp-object-size' header value %llu does not match what "
		    "was computed: %llu",
		    (unsigned long long)a->client_size, (unsigned long long)a->size);
		rc = complete_fail(a, S3E_INVALID_REQUEST, a->msgbuf);
		goto out;
	}
	if (a->size > S3_OBJECT_MAX_MP) {
		rc = complete_fail(a, S3E_ENTITY_TOO_LARGE, NULL);
		goto out;
	}
	rc = cs_manifest_concat(txn, mids, cr->n, &mid);
	if (rc < 0)
		goto out;
	{
		struct s3_obj_rec orec = {
		    .version = S3_OBJ_VERSION,
		    .parts = (uint32_t)cr->n,
		    .size = a->size,
		    .mtime_ns = s3_now_ns(),
		};
		struct s3_fbuf f = {0};
		uint8_t ckv[4 + S3_CKSUM_MAX];
		size_t ckl = a->ck.algo ? s3_cksum_encode(&a->ck, ckv) : 0;
		a->mtime_ns = orec.mtime_ns;
		memcpy(orec.md5, a->md5, 16);
		memcpy(orec.mid, mid.b, CS_MID_LEN);
		if (ckl)
			s3_fbuf_add(&f, S3_F_CHECKSUM, "", 0, (const char *)ckv, ckl);
		/* a field holds up to 5461 runs; more continue in the next */
		for (size_t off = 0; off < runs.len; off += S3_RUNS_PER_FIELD * 12) {
			size_t n = runs.len - off < S3_RUNS_PER_FIELD * 12 ? runs.len - off
									   : S3_RUNS_PER_FIELD * 12;
			s3_fbuf_add(&f, S3_F_PART_SIZES, "", 0, (const char *)runs.p + off, n);
		}
		if (f.err) {
			rc = f.err;
			free(f.p);
			goto out;
		}
		orec.nfields = (uint16_t)(u.rec.nfields + f.n);
		size_t reclen = sizeof(orec) + u.fields_len + f.len;
		rec = malloc(reclen);
		if (!rec) {
			free(f.p);
			rc = -ENOMEM;
			goto out;
		}
		memcpy(rec, &orec, sizeof(orec));
		memcpy(rec + sizeof(orec), u.fields, u.fields_len);
		memcpy(rec + sizeof(orec) + u.fields_len, f.p, f.len);
		free(f.p);
		rc =
		    s3_idx_put(t, a->part, a->bucket, a->key, a->klen, rec, reclen, &old, &had_old);
	}
	if (rc == 0 && had_old)
		rc = cs_manifest_unref(txn, &old);
	if (rc == 0)
		rc = upload_drop(txn, a->part, a->bucket, a->id, keep, &u);
out:
	EVP_MD_CTX_free(md5);
	free(ucopy);
	free(rec);
	free(runs.p);
	free(cks);
	free(psize);
	free(mids);
	return rc;
}

static void complete_finish(struct s3_req *r)
{
	struct s3_complete_req cr = {0};
	struct s3_write_cond cond;
	struct s3_cksum full = {0};
	uint8_t id[S3_UPLOAD_ID_LEN];
	struct complete_arg a = {
	    .part = r->part,
	    .bucket = r->addr.bucket,
	    .key = r->addr.key,
	    .klen = r->addr.key_len,
	    .owner = r->key.user,
	    .id = id,
	    .cond = &cond,
	};
	struct s3_xml x;
	char hex[33], etag[48], b64[S3_CKSUM_B64_MAX], *body, *loc = NULL;
	size_t len;
	int rc;

	if (!request_upload_id(r, id) || s3_write_cond_parse(r, &cond))
		return;
	for (int al = S3_CK_CRC32; al < S3_CK_COUNT; al++) {
		/* the object's checksum as the client computed it: base64, and
		 * "-N" for a composite one */
		const char *v = s3_req_header(r, s3_cksum_header(al));
		const char *dash = v ? strrchr(v, '-') : NULL;
		size_t bl = v ? (dash ? (size_t)(dash - v) : strlen(v)) : 0;
		char *end = NULL;
		unsigned long np = dash ? strtoul(dash + 1, &end, 10) : 0;
		if (!v)
			continue;
		if (s3_cksum_from_b64(al, v, bl, &full) < 0 ||
		    (dash && (!dash[1] || *end || np < 1 || np > S3_PARTS_MAX))) {
			s3_reply_error(r, S3E_INVALID_REQUEST,
				       "Value for x-amz-checksum header is invalid.");
			return;
		}
		full.type = dash ? S3_CKT_COMPOSITE : S3_CKT_FULL_OBJECT;
		full.parts = (uint16_t)np;
		a.client_full = &full;
	}
	{
		const char *ct = s3_req_header(r, "x-amz-checksum-type");
		const char *os = s3_req_header(r, "x-amz-mp-object-size");
		char *end = NULL;
		if (ct && !(a.client_type = s3_cksum_type_parse(ct))) {
			s3_reply_error(r, S3E_INVALID_REQUEST,
				       "Value for x-amz-checksum-type header is invalid.");
			return;
		}
		if (os) {
			errno = 0;
			a.client_size = strtoull(os, &end, 10);
			if (!*os || *end || errno || *os == '-') {
				s3_reply_error(r, S3E_INVALID_ARGUMENT,
					       "Value for x-amz-mp-object-size header is invalid.");
				return;
			}
			a.has_client_size = true;
		}
	}
	rc = s3_xml_parse_complete(r->body ? r->body : "", r->body_len, &cr);
	if (rc < 0) {
		s3_reply_error(r, rc == -ENOMEM ? S3E_SLOW_DOWN : S3E_MALFORMED_XML, NULL);
		return;
	}
	for (size_t i = 0; i < cr.n; i++) {
		if (cr.parts[i].number < 1 || cr.parts[i].number > S3_PARTS_MAX) {
			s3_reply_error(r, S3E_INVALID_PART, NULL);
			goto out;
		}
		if (i && cr.parts[i].number <= cr.parts[i - 1].number) {
			s3_reply_error(r, S3E_INVALID_PART_ORDER, NULL);
			goto out;
		}
	}
	a.cr = &cr;
	rc = cs_commit(r->srv->pool, NULL, complete_fn, &a);
	if (rc < 0) {
		if (a.s3e)
			s3_reply_error(r, a.s3e, a.msg);
		else
			s3_reply_code(r, rc, S3E_NO_SUCH_BUCKET);
		goto out;
	}
	hash_hex(a.md5, 16, hex);
	snprintf(etag, sizeof(etag), "\"%s-%zu\"", hex, cr.n);
	{
		const char *host = s3_req_header(r, "Host");
		size_t ll =
		    (host ? strlen(host) : 9) + strlen(r->addr.bucket) + 3 * r->addr.key_len + 16;
		loc = malloc(ll);
		if (loc) {
			int n = snprintf(loc, ll, "%s://%s/%s/",
					 s3_server_tls(r->srv) ? "https" : "http",
					 host ? host : "localhost", r->addr.bucket);
			if (s3_uri_encode(r->addr.key, r->addr.key_len, true, loc + n,
					  ll - (size_t)n) < 0)
				loc[n] = 0;
		}
	}
	s3_xml_init(&x);
	s3_xml_open(&x, "CompleteMultipartUploadResult", S3_XMLNS);
	s3_xml_elem(&x, "Location", loc ? loc : "");
	s3_xml_elem(&x, "Bucket", r->addr.bucket);
	s3_xml_elemn(&x, "Key", r->addr.key, r->addr.key_len);
	s3_xml_elem(&x, "ETag", etag);
	bool have_ck = a.ck.algo && s3_cksum_b64(&a.ck, b64, sizeof(b64)) >= 0;
	if (have_ck) {
		s3_xml_elem(&x, cksum_elem[a.ck.algo], b64);
		s3_xml_elem(&x, "ChecksumType", s3_cksum_type_name(a.ck.type));
	}
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	reply_xml_hdrs(r, body, len, NULL);
out:
	free(loc);
	s3_complete_req_free(&cr);
}

void s3_op_complete_multipart_start(struct s3_req *r)
{
	struct s3_bucket b;

	if (r->has_cl && r->content_length > S3_COMPLETE_BODY_MAX) {
		s3_reply_error(r, S3E_MAX_MESSAGE_LENGTH_EXCEEDED, NULL);
		return;
	}
	if (s3_bucket_check(r, &b))
		return;
	r->cksum_headers_are_object = true;
	r->finish = complete_finish;
	r->state = S3_ST_BODY;
}

/* ---- AbortMultipartUpload ---- */

struct abort_arg {
	uint32_t part;
	const char *bucket, *key;
	size_t klen;
	const uint8_t *id;
	bool no_upload;
};

static int abort_fn(struct cs_txn *txn, void *arg)
{
	struct abort_arg *a = arg;
	struct upload_view u;
	int rc =
	    upload_read(cs_txn_meta(txn), a->part, a->bucket, a->id, a->key, a->klen, &u, false);
	if (rc < 0) {
		a->no_upload = rc == CAIRN_ENOTFOUND;
		return rc;
	}
	return upload_drop(txn, a->part, a->bucket, a->id, NULL, NULL);
}

void s3_op_abort_multipart(struct s3_req *r)
{
	struct s3_bucket b;
	uint8_t id[S3_UPLOAD_ID_LEN];
	struct abort_arg a = {r->part, r->addr.bucket, r->addr.key, r->addr.key_len, id, false};
	int rc;

	if (!request_upload_id(r, id) || s3_bucket_check(r, &b))
		return;
	rc = cs_commit(r->srv->pool, NULL, abort_fn, &a);
	if (rc < 0 && a.no_upload) {
		s3_reply_error(r, S3E_NO_SUCH_UPLOAD, NULL);
		return;
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_NO_SUCH_BUCKET);
		return;
	}
	s3_reply_empty(r, 204);
}

/* ---- ListParts ---- */

struct lp_arg {
	struct s3_xml *x;
	long max, n;
	uint32_t last;
	bool truncated;
};

static int lp_part(const struct s3_upart_rec *p, uint32_t pn, void *arg)
{
	struct lp_arg *a = arg;
	char date[S3_ISO_EXT_LEN + 1], hex[33], etag[40], b64[S3_CKSUM_B64_MAX];
	struct s3_cksum ck;

	if (a->n == a->max) {
		/* max-parts=0 asks for no parts, not for an endless walk */
		a->truncated = a->max > 0;
		return 1;
	}
	s3_xml_open(a->x, "Part", NULL);
	s3_xml_elem_u64(a->x, "PartNumber", pn);
	iso_ns(p->mtime_ns, date);
	s3_xml_elem(a->x, "LastModified", date);
	hash_hex(p->md5, 16, hex);
	snprintf(etag, sizeof(etag), "\"%s\"", hex);
	s3_xml_elem(a->x, "ETag", etag);
	s3_xml_elem_u64(a->x, "Size", p->size);
	upart_cksum(p, &ck);
	if (ck.algo && s3_cksum_b64(&ck, b64, sizeof(b64)) >= 0) {
		s3_xml_elem(a->x, cksum_elem[ck.algo], b64);
	}
	s3_xml_close(a->x);
	a->n++;
	a->last = pn;
	return 0;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

void s3_op_list_parts(struct s3_req *r)
{
	struct s3_bucket b;
	struct meta_txn *t = NULL;
	struct upload_view u;
	struct s3_xml x;
	uint8_t id[S3_UPLOAD_ID_LEN];
	const char *mp = s3_query_get(&r->q, "max-parts");
	const char *pm = s3_query_get(&r->q, "part-number-marker");
	long max = 1000, marker = 0;
	char hex[S3_UPLOAD_HEX_LEN + 1], *body;
	size_t len;
	int rc;

	if (mp && !parse_long(mp, 0, INT32_MAX, &max)) {
		s3_reply_error(r, S3E_INVALID_ARGUMENT,
			       "Provided max-parts not an integer or within integer range");
		return;
	}
	if (pm && !parse_long(pm, 0, INT32_MAX, &marker)) {
		s3_reply_error(
		    r, S3E_INVALID_ARGUMENT,
		    "Provided part-number-marker not an integer or within integer range");
		return;
	}
	if (max > 1000)
		max = 1000;
	if (!request_upload_id(r, id) || s3_bucket_check(r, &b))
		return;
	rc = meta_txn_begin(cs_pool_meta(r->srv->pool), false, &t);
	if (rc == 0)
		rc = upload_read(t, r->part, r->addr.bucket, id, r->addr.key, r->addr.key_len, &u,
				 false);
	if (rc < 0) {
		meta_txn_abort(t);
		if (rc == CAIRN_ENOTFOUND)
			s3_reply_error(r, S3E_NO_SUCH_UPLOAD, NULL);
		else
			s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return;
	}
	/* only a bucket's owner writes to it, so it initiated the upload */
	const char *owner = b.owner;
	id_hex(id, hex);
	s3_xml_init(&x);
	s3_xml_open(&x, "ListPartsResult", S3_XMLNS);
	s3_xml_elem(&x, "Bucket", r->addr.bucket);
	s3_xml_elemn(&x, "Key", r->addr.key, r->addr.key_len);
	s3_xml_elem(&x, "UploadId", hex);
	xml_owner(&x, "Initiator", owner);
	xml_owner(&x, "Owner", owner);
	s3_xml_elem(&x, "StorageClass", "STANDARD");
	s3_xml_elem_u64(&x, "PartNumberMarker", (uint64_t)marker);
	if (u.rec.cksum_algo) {
		s3_xml_elem(&x, "ChecksumAlgorithm", s3_cksum_name(u.rec.cksum_algo));
		s3_xml_elem(&x, "ChecksumType", s3_cksum_type_name(u.rec.cksum_type));
	}
	struct lp_arg a = {.x = &x, .max = max, .last = (uint32_t)marker};
	rc = marker >= (long)S3_PARTS_MAX ? 0 : uparts_each(t, id, (uint32_t)marker, lp_part, &a);
	meta_txn_abort(t);
	if (rc < 0) {
		s3_xml_free(&x);
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		return;
	}
	s3_xml_elem_u64(&x, "NextPartNumberMarker", a.last);
	s3_xml_elem_u64(&x, "MaxParts", (uint64_t)max);
	s3_xml_elem_bool(&x, "IsTruncated", a.truncated);
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		return;
	}
	reply_xml_hdrs(r, body, len, NULL);
}

/* ---- ListMultipartUploads ---- */

struct lu_ent {
	char *key; /* NUL-terminated copy */
	size_t klen;
	uint8_t id[S3_UPLOAD_ID_LEN];
	uint64_t created_ns;
	uint8_t algo, type;
	char *prefix; /* a common prefix (folded keys): not NULL */
};

static int lu_cmp(const void *pa, const void *pb)
{
	const struct lu_ent *a = pa, *b = pb;
	size_t n = a->klen < b->klen ? a->klen : b->klen;
	int c = memcmp(a->key, b->key, n);
	if (c)
		return c;
	if (a->klen != b->klen)
		return a->klen < b->klen ? -1 : 1;
	return memcmp(a->id, b->id, S3_UPLOAD_ID_LEN);
}

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	size_t n = al < bl ? al : bl;
	int c = memcmp(a, b, n);
	return c ? c : (al > bl) - (al < bl);
}

void s3_op_list_uploads(struct s3_req *r)
{
	struct s3_bucket b;
	struct meta_txn *t = NULL;
	struct meta_cursor *c = NULL;
	struct lu_ent *ents = NULL;
	size_t n = 0, cap = 0;
	struct s3_xml x;
	const char *prefix = s3_query_get(&r->q, "prefix");
	const char *delim = s3_query_get(&r->q, "delimiter");
	const char *km = s3_query_get(&r->q, "key-marker");
	const char *um = s3_query_get(&r->q, "upload-id-marker");
	const char *mu = s3_query_get(&r->q, "max-uploads");
	const char *enc = s3_query_get(&r->q, "encoding-type");
	uint8_t umid[S3_UPLOAD_ID_LEN];
	bool have_um = false, url = false;
	long max = 1000;
	uint8_t k[5 + S3_BUCKET_MAX];
	const void *kk, *v;
	size_t kl, vl, plen;
	char *body;
	size_t len;
	int rc;

	if (mu && !parse_long(mu, 0, INT32_MAX, &max)) {
		s3_reply_error(r, S3E_INVALID_ARGUMENT,
			       "Provided max-uploads not an integer or within integer range");
		return;
	}
	if (max > 1000)
		max = 1000;
	if (enc) {
		if (strcmp(enc, "url") != 0) {
			s3_reply_error(r, S3E_INVALID_ARGUMENT,
				       "Invalid Encoding Method specified in Request");
			return;
		}
		url = true;
	}
	if (!prefix)
		prefix = "";
	if (delim && !delim[0])
		delim = NULL;
	if (!km)
		km = "";
	if (km[0] && um && um[0])
		have_um = id_parse(um, umid);
	if (s3_bucket_check(r, &b))
		return;
	plen = upload_key(k, r->part, r->addr.bucket, NULL);
	rc = meta_txn_begin(cs_pool_meta(r->srv->pool), false, &t);
	if (rc == 0)
		rc = meta_cursor_open(t, META_T_UPLOADS, &c);
	if (rc == 0)
		rc = meta_cursor_seek(c, k, plen, &kk, &kl, &v, &vl);
	while (rc == 0) {
		struct upload_view u;
		if (kl != plen + S3_UPLOAD_ID_LEN || memcmp(kk, k, plen) != 0)
			break;
		rc = upload_parse(v, vl, &u);
		if (rc < 0)
			break;
		size_t pl = strlen(prefix);
		if (!(u.rec.flags & S3_UPLOADF_DONE) && u.rec.key_len >= pl &&
		    memcmp(u.key, prefix, pl) == 0) {
			int mc = key_cmp(u.key, u.rec.key_len, km, strlen(km));
			bool after = mc > 0 || (mc == 0 && have_um &&
						memcmp((const uint8_t *)kk + plen, umid,
						       S3_UPLOAD_ID_LEN) > 0);
			if (!km[0] || after) {
				if (n >= S3_LIST_UPLOADS_SCAN_MAX) {
					rc = CAIRN_ETOOBIG;
					break;
				}
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 64;
					struct lu_ent *ne = realloc(ents, nc * sizeof(*ne));
					if (!ne) {
						rc = -ENOMEM;
						break;
					}
					ents = ne;
					cap = nc;
				}
				struct lu_ent *e = &ents[n];
				memset(e, 0, sizeof(*e));
				e->key = malloc(u.rec.key_len + 1);
				if (!e->key) {
					rc = -ENOMEM;
					break;
				}
				memcpy(e->key, u.key, u.rec.key_len);
				e->key[u.rec.key_len] = 0;
				e->klen = u.rec.key_len;
				memcpy(e->id, (const uint8_t *)kk + plen, S3_UPLOAD_ID_LEN);
				e->created_ns = u.rec.created_ns;
				e->algo = u.rec.cksum_algo;
				e->type = u.rec.cksum_type;
				n++;
			}
		}
		rc = meta_cursor_next(c, &kk, &kl, &v, &vl);
	}
	meta_cursor_close(c);
	meta_txn_abort(t);
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
	if (rc == CAIRN_ETOOBIG) {
		s3_reply_error(r, S3E_SLOW_DOWN,
			       "More than 100000 multipart uploads in progress match this listing; "
			       "narrow it with a prefix or key-marker, or abort some");
		goto out;
	}
	if (rc < 0) {
		s3_reply_code(r, rc, S3E_INTERNAL_ERROR);
		goto out;
	}
	if (n)
		qsort(ents, n, sizeof(*ents), lu_cmp);
	s3_xml_init(&x);
	s3_xml_open(&x, "ListMultipartUploadsResult", S3_XMLNS);
	s3_xml_elem(&x, "Bucket", r->addr.bucket);
	xml_key(&x, url, "KeyMarker", km, strlen(km));
	s3_xml_elem(&x, "UploadIdMarker", have_um ? um : "");
	/* emit in order, folding keys under the delimiter */
	{
		size_t out_n = 0, i = 0, pl = strlen(prefix);
		const char *last_cp = NULL;
		size_t last_cp_len = 0;
		bool truncated = false;
		struct lu_ent *last = NULL;
		char **cps = NULL;
		size_t ncp = 0;
		for (; i < n; i++) {
			struct lu_ent *e = &ents[i];
			const char *d = delim ? (const char *)memmem(e->key + pl, e->klen - pl,
								     delim, strlen(delim))
					      : NULL;
			if (d) {
				size_t cl = (size_t)(d - e->key) + strlen(delim);
				if (last_cp && cl == last_cp_len &&
				    memcmp(last_cp, e->key, cl) == 0)
					continue;
				/* a prefix the key-marker is inside of was listed already */
				if (km[0] && key_cmp(e->key, cl, km, strlen(km)) <= 0 &&
				    strncmp(km, e->key, cl) == 0)
					continue;
				if ((long)out_n == max) {
					truncated = max > 0;
					break;
				}
				char **np = realloc(cps, (ncp + 1) * sizeof(*np));
				if (!np) {
					rc = -ENOMEM;
					break;
				}
				cps = np;
				cps[ncp++] = e->key;
				e->prefix = e->key;
				last_cp = e->key;
				last_cp_len = cl;
				e->klen = cl; /* for NextKeyMarker */
				last = e;
				out_n++;
				continue;
			}
			if ((long)out_n == max) {
				truncated = max > 0;
				break;
			}
			last = e;
			out_n++;
		}
		if (truncated && last) {
			char hex[S3_UPLOAD_HEX_LEN + 1];
			xml_key(&x, url, "NextKeyMarker", last->key, last->klen);
			id_hex(last->id, hex);
			s3_xml_elem(&x, "NextUploadIdMarker", last->prefix ? "" : hex);
		}
		if (delim)
			xml_key(&x, url, "Delimiter", delim, strlen(delim));
		xml_key(&x, url, "Prefix", prefix, pl);
		s3_xml_elem_u64(&x, "MaxUploads", (uint64_t)max);
		s3_xml_elem_bool(&x, "IsTruncated", truncated);
		if (url)
			s3_xml_elem(&x, "EncodingType", "url");
		for (size_t j = 0; j < i && j < n; j++) {
			struct lu_ent *e = &ents[j];
			char hex[S3_UPLOAD_HEX_LEN + 1], date[S3_ISO_EXT_LEN + 1];
			if (e->prefix ||
			    (delim && memmem(e->key + pl, e->klen - pl, delim, strlen(delim))))
				continue;
			s3_xml_open(&x, "Upload", NULL);
			xml_key(&x, url, "Key", e->key, e->klen);
			id_hex(e->id, hex);
			s3_xml_elem(&x, "UploadId", hex);
			xml_owner(&x, "Initiator", b.owner);
			xml_owner(&x, "Owner", b.owner);
			s3_xml_elem(&x, "StorageClass", "STANDARD");
			iso_ns(e->created_ns, date);
			s3_xml_elem(&x, "Initiated", date);
			if (e->algo) {
				s3_xml_elem(&x, "ChecksumAlgorithm", s3_cksum_name(e->algo));
				s3_xml_elem(&x, "ChecksumType", s3_cksum_type_name(e->type));
			}
			s3_xml_close(&x);
		}
		for (size_t j = 0; j < i && j < n; j++) {
			struct lu_ent *e = &ents[j];
			if (!e->prefix)
				continue;
			s3_xml_open(&x, "CommonPrefixes", NULL);
			xml_key(&x, url, "Prefix", e->key, e->klen);
			s3_xml_close(&x);
		}
		free(cps);
	}
	if (rc < 0) {
		s3_xml_free(&x);
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	reply_xml_hdrs(r, body, len, NULL);
out:
	for (size_t i = 0; i < n; i++)
		free(ents[i].key);
	free(ents);
}

/* ---- expiry of abandoned uploads ---- */

struct expire_ent {
	uint32_t part;
	char bucket[S3_BUCKET_MAX + 1];
	uint8_t id[S3_UPLOAD_ID_LEN];
};

struct expire_arg {
	struct expire_ent *e;
	size_t n;
	size_t done;
};

static int expire_fn(struct cs_txn *txn, void *arg)
{
	struct expire_arg *a = arg;
	for (size_t i = 0; i < a->n; i++) {
		uint8_t k[5 + S3_BUCKET_MAX + S3_UPLOAD_ID_LEN];
		const void *v;
		size_t vl;
		/* gone already (completed or aborted since the scan) */
		if (meta_get(cs_txn_meta(txn), META_T_UPLOADS, k,
			     upload_key(k, a->e[i].part, a->e[i].bucket, a->e[i].id), &v,
			     &vl) == CAIRN_ENOTFOUND)
			continue;
		int rc = upload_drop(txn, a->e[i].part, a->e[i].bucket, a->e[i].id, NULL, NULL);
		if (rc < 0)
			return rc;
		a->done++;
	}
	return 0;
}

long s3_multipart_expire(struct cs_pool *pool, uint64_t max_age_ns)
{
	uint64_t now = s3_now_ns();
	uint8_t resume[4 + S3_BUCKET_MAX + 1 + S3_UPLOAD_ID_LEN] = {0};
	size_t resume_len = 0;
	long total = 0;

	for (;;) {
		struct expire_ent ents[S3_EXPIRE_BATCH];
		struct expire_arg a = {.e = ents};
		struct meta_txn *t = NULL;
		struct meta_cursor *c = NULL;
		const void *kk, *v;
		size_t kl, vl;
		bool more = false;
		int rc = meta_txn_begin(cs_pool_meta(pool), false, &t);
		if (rc == 0)
			rc = meta_cursor_open(t, META_T_UPLOADS, &c);
		if (rc == 0)
			rc = meta_cursor_seek(c, resume, resume_len, &kk, &kl, &v, &vl);
		while (rc == 0) {
			struct upload_view u;
			if (resume_len && kl == resume_len && memcmp(kk, resume, kl) == 0) {
				rc = meta_cursor_next(c, &kk, &kl, &v, &vl);
				continue;
			}
			if (kl < 4 + 1 + 1 + S3_UPLOAD_ID_LEN || kl > sizeof(resume) ||
			    upload_parse(v, vl, &u) < 0) {
				rc = meta_cursor_next(c, &kk, &kl, &v, &vl);
				continue;
			}
			memcpy(resume, kk, kl);
			resume_len = kl;
			if (u.rec.created_ns + max_age_ns <= now) {
				struct expire_ent *e = &ents[a.n++];
				size_t bl = kl - 4 - 1 - S3_UPLOAD_ID_LEN;
				e->part = meta_get_be32(kk);
				memcpy(e->bucket, (const uint8_t *)kk + 4, bl);
				e->bucket[bl] = 0;
				memcpy(e->id, (const uint8_t *)kk + kl - S3_UPLOAD_ID_LEN,
				       S3_UPLOAD_ID_LEN);
				if (a.n == S3_EXPIRE_BATCH) {
					more = true;
					break;
				}
			}
			rc = meta_cursor_next(c, &kk, &kl, &v, &vl);
		}
		meta_cursor_close(c);
		meta_txn_abort(t);
		if (rc < 0 && rc != CAIRN_ENOTFOUND)
			return rc;
		if (a.n) {
			rc = cs_commit(pool, NULL, expire_fn, &a);
			if (rc < 0)
				return rc;
			total += (long)a.done;
		}
		if (!more)
			break;
	}
	if (total)
		log_info(TAG, "aborted %ld multipart upload(s) older than %llu s", total,
			 (unsigned long long)(max_age_ns / 1000000000u));
	return total;
}

int s3_multipart_drop_bucket(struct cs_txn *txn, uint32_t part, const char *bucket)
{
	struct meta_txn *t = cs_txn_meta(txn);
	uint8_t k[5 + S3_BUCKET_MAX + S3_UPLOAD_ID_LEN];
	size_t plen = upload_key(k, part, bucket, NULL);
	int rc;

	/* one upload at a time: upload_drop writes to the table scanned */
	for (;;) {
		struct meta_cursor *c = NULL;
		const void *kk, *v;
		size_t kl, vl;
		uint8_t id[S3_UPLOAD_ID_LEN];
		rc = meta_cursor_open(t, META_T_UPLOADS, &c);
		if (rc < 0)
			return rc;
		rc = meta_cursor_seek(c, k, plen, &kk, &kl, &v, &vl);
		if (rc == 0 && (kl != plen + S3_UPLOAD_ID_LEN || memcmp(kk, k, plen) != 0))
			rc = CAIRN_ENOTFOUND;
		if (rc == 0)
			memcpy(id, (const uint8_t *)kk + plen, S3_UPLOAD_ID_LEN);
		meta_cursor_close(c);
		if (rc == CAIRN_ENOTFOUND)
			return 0;
		if (rc < 0)
			return rc;
		rc = upload_drop(txn, part, bucket, id, NULL, NULL);
		if (rc < 0)
			return rc;
	}
}

/* ---- part ranges of multipart objects (GetObject partNumber) ---- */

void s3_part_runs_init(struct s3_runs_iter *it, const struct s3_objinfo *o)
{
	memset(it, 0, sizeof(*it));
	it->p = o->fields;
	it->end = o->fields + o->fields_len;
}

int s3_part_runs_next(struct s3_runs_iter *it, uint64_t *size, uint32_t *count)
{
	while (it->off >= it->vl) {
		uint8_t tag;
		const char *name;
		size_t nl;
		int rc = s3_field_next(&it->p, it->end, &tag, &name, &nl, &it->v, &it->vl);
		if (rc <= 0)
			return rc;
		it->off = 0;
		if (tag != S3_F_PART_SIZES)
			it->vl = 0;
		else if (it->vl % 12)
			return CAIRN_ECORRUPT;
	}
	memcpy(size, it->v + it->off, 8);
	memcpy(count, it->v + it->off + 8, 4);
	it->off += 12;
	return 1;
}

int s3_part_range(const struct s3_objinfo *o, uint32_t pn, uint64_t *first, uint64_t *len)
{
	struct s3_runs_iter it;
	uint64_t off = 0, size;
	uint32_t seen = 0, cnt;
	int rc;

	if (!o->rec.parts) {
		if (pn != 1)
			return CAIRN_ERANGE;
		*first = 0;
		*len = o->rec.size;
		return 0;
	}
	if (pn > o->rec.parts)
		return CAIRN_ERANGE;
	s3_part_runs_init(&it, o);
	while ((rc = s3_part_runs_next(&it, &size, &cnt)) == 1) {
		if (pn <= seen + cnt) {
			*first = off + (uint64_t)(pn - seen - 1) * size;
			*len = size;
			return 0;
		}
		seen += cnt;
		off += (uint64_t)cnt * size;
	}
	return rc < 0 ? rc : CAIRN_ECORRUPT;
}
