/* registry/img_store.c - image records and the in-memory index. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunkstore/chunkstore.h"
#include "core/hash.h"
#include "core/log.h"
#include "meta/meta.h"
#include "registry/img_store.h"

#define TAG "registry"

struct img_store {
	struct cs_pool *pool;
	pthread_rwlock_t lock;
	struct img_entry **v; /* sorted by rec.id */
	size_t n, cap;
	size_t tombstones;
	atomic_uint_fast64_t seq; /* last seq handed out (committer thread) */
	atomic_int writers;	  /* writes between begin and end */
};

/* ---- ids, keys, time ---- */

int img_id_parse(const char *s, uint8_t id[IMG_ID_LEN])
{
	if (!s || strlen(s) != 36)
		return CAIRN_EINVAL;
	char hex[33];
	size_t h = 0;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return CAIRN_EINVAL;
			continue;
		}
		hex[h++] = s[i];
	}
	hex[32] = '\0';
	return hash_unhex(hex, 32, id, IMG_ID_LEN) == 0 ? 0 : CAIRN_EINVAL;
}

void img_id_fmt(const uint8_t id[IMG_ID_LEN], char out[37])
{
	char hex[33];
	hash_hex(id, IMG_ID_LEN, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

void img_key(struct cs_pool *pool, const uint8_t id[IMG_ID_LEN], uint8_t key[IMG_KEY_LEN])
{
	meta_be32(key, cs_name_partition(pool, id, IMG_ID_LEN));
	memcpy(key + 4, id, IMG_ID_LEN);
}

int64_t img_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct cs_pool *img_store_pool(struct img_store *st)
{
	return st->pool;
}

/* ---- codec ---- */

json_t *img_doc_new(void)
{
	return json_pack("{s:n, s:n, s:n, s:n, s:i, s:i, s:b, s:[], s:{}, s:{}}", "name",
			 "disk_format", "container_format", "owner", "min_disk", 0, "min_ram", 0,
			 "os_hidden", 0, "tags", "props", "members");
}

int img_rec_encode(const struct img_rec *r, const json_t *doc, uint8_t **out, size_t *len)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	size_t dl = strlen(text);
	if (dl > IMG_DOC_MAX) {
		free(text);
		return CAIRN_ETOOBIG;
	}
	uint8_t *b = malloc(sizeof(*r) + dl);
	if (!b) {
		free(text);
		return -ENOMEM;
	}
	struct img_rec h = *r;
	h.version = IMG_REC_VERSION;
	h.doc_len = (uint32_t)dl;
	memcpy(b, &h, sizeof(h));
	memcpy(b + sizeof(h), text, dl);
	free(text);
	*out = b;
	*len = sizeof(h) + dl;
	return 0;
}

int img_rec_decode(const void *v, size_t len, struct img_rec *r, json_t **doc)
{
	if (len < 1)
		return CAIRN_ECORRUPT;
	if (((const uint8_t *)v)[0] > IMG_REC_VERSION)
		return CAIRN_EFORMAT;
	if (len < sizeof(*r))
		return CAIRN_ECORRUPT;
	memcpy(r, v, sizeof(*r));
	if (r->doc_len != len - sizeof(*r))
		return CAIRN_ECORRUPT;
	json_error_t jerr;
	json_t *d = json_loadb((const char *)v + sizeof(*r), r->doc_len, 0, &jerr);
	if (!d || !json_is_object(d)) {
		json_decref(d);
		return CAIRN_ECORRUPT;
	}
	*doc = d;
	return 0;
}

/* ---- entries ---- */

static const char *doc_str(const json_t *doc, const char *k)
{
	return json_string_value(json_object_get(doc, k));
}

static struct img_entry *entry_new(const struct img_rec *r, json_t *doc)
{
	struct img_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	atomic_init(&e->refs, 1);
	e->rec = *r;
	e->doc = doc;
	img_id_fmt(r->id, e->id);
	if (doc) {
		e->name = doc_str(doc, "name");
		e->owner = doc_str(doc, "owner");
		e->disk_format = doc_str(doc, "disk_format");
		e->container_format = doc_str(doc, "container_format");
		e->os_hidden = json_is_true(json_object_get(doc, "os_hidden"));
		e->props = json_object_get(doc, "props");
	} else {
		e->deleted = true;
	}
	return e;
}

void img_entry_get(struct img_entry *e)
{
	atomic_fetch_add(&e->refs, 1);
}

void img_entry_put(struct img_entry *e)
{
	if (!e || atomic_fetch_sub(&e->refs, 1) != 1)
		return;
	json_decref(e->doc);
	free(e);
}

/* Index of the first entry with id >= id. Caller holds the lock. */
static size_t find_pos(const struct img_store *st, const uint8_t id[IMG_ID_LEN], bool *found)
{
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(st->v[mid]->rec.id, id, IMG_ID_LEN);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < st->n && memcmp(st->v[lo]->rec.id, id, IMG_ID_LEN) == 0;
	return lo;
}

/* Puts e at its place (replacing the entry of the same id). Write lock held. */
static int index_put(struct img_store *st, struct img_entry *e)
{
	bool found;
	size_t pos = find_pos(st, e->rec.id, &found);
	if (found) {
		struct img_entry *old = st->v[pos];
		if (old->deleted)
			st->tombstones--;
		st->v[pos] = e;
		img_entry_put(old);
	} else {
		if (st->n == st->cap) {
			size_t nc = st->cap ? st->cap * 2 : 256;
			struct img_entry **nv = realloc(st->v, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			st->v = nv;
			st->cap = nc;
		}
		memmove(st->v + pos + 1, st->v + pos, (st->n - pos) * sizeof(*st->v));
		st->v[pos] = e;
		st->n++;
	}
	if (e->deleted)
		st->tombstones++;
	return 0;
}

/* Drops every tombstone (no write in flight could apply an older seq). */
static void drop_tombstones(struct img_store *st)
{
	size_t j = 0;
	for (size_t i = 0; i < st->n; i++) {
		if (st->v[i]->deleted)
			img_entry_put(st->v[i]);
		else
			st->v[j++] = st->v[i];
	}
	st->n = j;
	st->tombstones = 0;
}

struct img_entry *img_store_get(struct img_store *st, const uint8_t id[IMG_ID_LEN])
{
	struct img_entry *e = NULL;
	bool found;
	pthread_rwlock_rdlock(&st->lock);
	size_t pos = find_pos(st, id, &found);
	if (found && !st->v[pos]->deleted) {
		e = st->v[pos];
		img_entry_get(e);
	}
	pthread_rwlock_unlock(&st->lock);
	return e;
}

void img_store_rdlock(struct img_store *st)
{
	pthread_rwlock_rdlock(&st->lock);
}

void img_store_unlock(struct img_store *st)
{
	pthread_rwlock_unlock(&st->lock);
}

size_t img_store_count(struct img_store *st)
{
	return st->n;
}

struct img_entry *img_store_at(struct img_store *st, size_t i)
{
	return st->v[i];
}

void img_store_set_usage(struct img_store *st, const uint8_t id[IMG_ID_LEN], uint64_t seq,
			 uint64_t gen, uint64_t unique_bytes, uint64_t shared_bytes)
{
	bool found;
	pthread_rwlock_rdlock(&st->lock);
	size_t pos = find_pos(st, id, &found);
	if (found && !st->v[pos]->deleted && st->v[pos]->rec.seq == seq) {
		struct img_entry *e = st->v[pos];
		atomic_store(&e->unique_bytes, unique_bytes);
		atomic_store(&e->shared_bytes, shared_bytes);
		atomic_store(&e->usage_gen, gen);
		atomic_store(&e->usage_ns, img_now_ns());
		atomic_store(&e->usage_valid, true);
	}
	pthread_rwlock_unlock(&st->lock);
}

/* Publishes (rec, doc) (doc NULL: a tombstone) when seq is newer than the
 * indexed one. Takes doc's reference either way. Write lock held. */
static void publish_locked(struct img_store *st, const struct img_rec *r, json_t *doc, bool force)
{
	bool found;
	size_t pos = find_pos(st, r->id, &found);
	struct img_entry *old = found ? st->v[pos] : NULL;
	if (old && old->rec.seq >= r->seq && !force) {
		json_decref(doc);
		return;
	}
	struct img_entry *e = entry_new(r, doc);
	if (!e) {
		json_decref(doc);
		log_err(TAG, "out of memory updating the image index");
		return;
	}
	/* The manifests did not change: the usage figures still hold. */
	if (old && !old->deleted && doc && atomic_load(&old->usage_valid) &&
	    (old->rec.flags & (IMG_F_DATA | IMG_F_RAW)) == (r->flags & (IMG_F_DATA | IMG_F_RAW)) &&
	    memcmp(old->rec.mid, r->mid, 16) == 0 &&
	    memcmp(old->rec.raw_mid, r->raw_mid, 16) == 0) {
		atomic_store(&e->unique_bytes, atomic_load(&old->unique_bytes));
		atomic_store(&e->shared_bytes, atomic_load(&old->shared_bytes));
		atomic_store(&e->usage_gen, atomic_load(&old->usage_gen));
		atomic_store(&e->usage_ns, atomic_load(&old->usage_ns));
		atomic_store(&e->usage_valid, true);
	}
	if (index_put(st, e) < 0) {
		img_entry_put(e);
		log_err(TAG, "out of memory updating the image index");
	}
}

/* ---- writes ---- */

void img_store_write_begin(struct img_store *st)
{
	atomic_fetch_add(&st->writers, 1);
}

void img_store_write_end(struct img_store *st)
{
	if (atomic_fetch_sub(&st->writers, 1) != 1 || !st->tombstones)
		return;
	pthread_rwlock_wrlock(&st->lock);
	if (atomic_load(&st->writers) == 0)
		drop_tombstones(st);
	pthread_rwlock_unlock(&st->lock);
}

void img_mut_clear(struct img_mut *m)
{
	json_decref(m->doc);
	m->doc = NULL;
}

int img_store_mut_txn(struct img_store *st, struct cs_txn *txn, struct img_mut *m)
{
	struct meta_txn *mt = cs_txn_meta(txn);
	uint8_t key[IMG_KEY_LEN];
	const void *v;
	size_t vl;
	uint8_t *buf = NULL;
	size_t blen;
	int ret;

	img_mut_clear(m);
	m->remove = false;
	m->why[0] = '\0';
	img_key(st->pool, m->id, key);
	ret = meta_get(mt, META_T_IMAGES, key, sizeof(key), &v, &vl);
	if (ret == 0) {
		if (m->create)
			return CAIRN_EEXISTS;
		ret = img_rec_decode(v, vl, &m->rec, &m->doc);
		if (ret < 0)
			return ret;
	} else if (ret == CAIRN_ENOTFOUND && m->create) {
		int64_t now = m->now_ns ? m->now_ns : img_now_ns();
		memset(&m->rec, 0, sizeof(m->rec));
		m->rec.version = IMG_REC_VERSION;
		m->rec.status = IMG_QUEUED;
		m->rec.visibility = IMG_VIS_SHARED;
		memcpy(m->rec.id, m->id, IMG_ID_LEN);
		m->rec.created_ns = (uint64_t)now;
		m->doc = img_doc_new();
		if (!m->doc)
			return -ENOMEM;
	} else {
		return ret;
	}
	if (m->fn) {
		ret = m->fn(txn, m);
		if (ret < 0)
			return ret;
	}
	/* The committer runs callbacks one at a time in commit order. */
	m->rec.seq = atomic_fetch_add(&st->seq, 1) + 1;
	if (m->remove) {
		ret = meta_del(mt, META_T_IMAGES, key, sizeof(key));
		if (ret < 0)
			return ret;
		m->done = true;
		return 0;
	}
	m->rec.updated_ns = (uint64_t)(m->now_ns ? m->now_ns : img_now_ns());
	ret = img_rec_encode(&m->rec, m->doc, &buf, &blen);
	if (ret < 0)
		return ret;
	ret = meta_put(mt, META_T_IMAGES, key, sizeof(key), buf, blen, 0);
	free(buf);
	if (ret == 0)
		m->done = true;
	return ret;
}

void img_store_mut_apply(struct img_store *st, struct img_mut *m)
{
	if (!m->done)
		return;
	pthread_rwlock_wrlock(&st->lock);
	if (m->remove) {
		publish_locked(st, &m->rec, NULL, false);
	} else {
		json_t *copy = json_deep_copy(m->doc);
		if (copy)
			publish_locked(st, &m->rec, copy, false);
		else
			log_err(TAG, "out of memory updating the image index");
	}
	pthread_rwlock_unlock(&st->lock);
	m->done = false;
}

struct write_arg {
	struct img_store *st;
	struct img_mut *m;
};

static int write_cb(struct cs_txn *txn, void *arg)
{
	struct write_arg *wa = arg;
	wa->m->done = false;
	return img_store_mut_txn(wa->st, txn, wa->m);
}

int img_store_write(struct img_store *st, struct img_mut *m)
{
	struct write_arg wa = {st, m};
	img_store_write_begin(st);
	m->done = false;
	int ret = cs_commit(st->pool, NULL, write_cb, &wa);
	if (ret == 0)
		img_store_mut_apply(st, m);
	m->done = false;
	img_store_write_end(st);
	return ret;
}

int img_store_refresh(struct img_store *st, const uint8_t id[IMG_ID_LEN])
{
	struct meta_txn *t = NULL;
	uint8_t key[IMG_KEY_LEN];
	const void *v;
	size_t vl;
	struct img_rec r;
	json_t *doc = NULL;
	int ret;

	img_key(st->pool, id, key);
	pthread_rwlock_wrlock(&st->lock);
	ret = meta_txn_begin(cs_pool_meta(st->pool), false, &t);
	if (ret < 0)
		goto out;
	ret = meta_get(t, META_T_IMAGES, key, sizeof(key), &v, &vl);
	if (ret == 0) {
		ret = img_rec_decode(v, vl, &r, &doc);
	} else if (ret == CAIRN_ENOTFOUND) {
		memset(&r, 0, sizeof(r));
		memcpy(r.id, id, IMG_ID_LEN);
		ret = 0;
	}
	meta_txn_abort(t);
	if (ret < 0)
		goto out;
	/* Whatever committed is now what the index shows: a newer seq than
	 * any write whose apply is still on its way. */
	r.seq = atomic_load(&st->seq) > r.seq ? atomic_load(&st->seq) : r.seq;
	bool found;
	size_t pos = find_pos(st, id, &found);
	if (found && st->v[pos]->rec.seq > r.seq)
		r.seq = st->v[pos]->rec.seq;
	publish_locked(st, &r, doc, true);
	doc = NULL;
out:
	pthread_rwlock_unlock(&st->lock);
	json_decref(doc);
	return ret;
}

/* ---- open and recovery ---- */

struct recover_arg {
	struct img_store *st;
	uint8_t (*ids)[IMG_ID_LEN];
	size_t n;
	struct img_mut *muts;
};

/* Glance puts an image whose upload failed back to queued: the same for
 * one a crash interrupted. Every manifest the half-done upload held is
 * released in the commit that forgets it. */
static int recover_fn(struct cs_txn *txn, struct img_mut *m)
{
	struct img_rec *r = &m->rec;
	int ret;
	if (r->flags & IMG_F_RAW) {
		ret = cs_manifest_unref(txn, (const struct cs_mid *)r->raw_mid);
		if (ret < 0 && ret != CAIRN_ENOTFOUND)
			return ret;
		r->flags &= ~(uint32_t)IMG_F_RAW;
		memset(r->raw_mid, 0, 16);
	}
	if (r->flags & IMG_F_STAGE) {
		ret = cs_manifest_unref(txn, (const struct cs_mid *)r->stage_mid);
		if (ret < 0 && ret != CAIRN_ENOTFOUND)
			return ret;
		r->flags &= ~(uint32_t)IMG_F_STAGE;
		memset(r->stage_mid, 0, 16);
	}
	if (r->flags & IMG_F_DATA) { /* never set before active; keep it safe */
		ret = cs_manifest_unref(txn, (const struct cs_mid *)r->mid);
		if (ret < 0 && ret != CAIRN_ENOTFOUND)
			return ret;
		r->flags &= ~(uint32_t)IMG_F_DATA;
		memset(r->mid, 0, 16);
	}
	r->flags &= ~(uint32_t)IMG_F_QCOW2;
	r->status = IMG_QUEUED;
	r->claim = 0;
	r->size = 0;
	r->virtual_size = 0;
	memset(r->md5, 0, sizeof(r->md5));
	memset(r->sha512, 0, sizeof(r->sha512));
	return 0;
}

static int recover_cb(struct cs_txn *txn, void *arg)
{
	struct recover_arg *ra = arg;
	for (size_t i = 0; i < ra->n; i++) {
		struct img_mut *m = &ra->muts[i];
		memcpy(m->id, ra->ids[i], IMG_ID_LEN);
		m->fn = recover_fn;
		int ret = img_store_mut_txn(ra->st, txn, m);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static bool needs_recovery(const struct img_rec *r)
{
	return r->status == IMG_SAVING || r->status == IMG_IMPORTING ||
	       (r->status == IMG_UPLOADING && !(r->flags & IMG_F_STAGE));
}

static int load_all(struct img_store *st, uint8_t (**rec_ids)[IMG_ID_LEN], size_t *nrec)
{
	struct meta_txn *t = NULL;
	struct meta_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl;
	uint64_t maxseq = 0;
	uint8_t(*ids)[IMG_ID_LEN] = NULL;
	size_t nids = 0, capids = 0;
	int ret = meta_txn_begin(cs_pool_meta(st->pool), false, &t);
	if (ret < 0)
		return ret;
	ret = meta_cursor_open(t, META_T_IMAGES, &c);
	if (ret < 0)
		goto out;
	for (ret = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl); ret == 0;
	     ret = meta_cursor_next(c, &k, &kl, &v, &vl)) {
		struct img_rec r;
		json_t *doc = NULL;
		ret = img_rec_decode(v, vl, &r, &doc);
		if (ret < 0) {
			log_err(TAG, "an image record cannot be read: %s", cairn_strerror(ret));
			goto out;
		}
		if (r.seq > maxseq)
			maxseq = r.seq;
		if (needs_recovery(&r)) {
			if (nids == capids) {
				size_t nc = capids ? capids * 2 : 16;
				void *ni = realloc(ids, nc * IMG_ID_LEN);
				if (!ni) {
					json_decref(doc);
					ret = -ENOMEM;
					goto out;
				}
				ids = ni;
				capids = nc;
			}
			memcpy(ids[nids++], r.id, IMG_ID_LEN);
		}
		struct img_entry *e = entry_new(&r, doc);
		if (!e) {
			json_decref(doc);
			ret = -ENOMEM;
			goto out;
		}
		/* LMDB order is (partition, id): not id order, so insert. */
		ret = index_put(st, e);
		if (ret < 0) {
			img_entry_put(e);
			goto out;
		}
	}
	if (ret == CAIRN_ENOTFOUND)
		ret = 0;
	atomic_store(&st->seq, maxseq);
out:
	meta_cursor_close(c);
	meta_txn_abort(t);
	if (ret < 0) {
		free(ids);
		return ret;
	}
	*rec_ids = ids;
	*nrec = nids;
	return 0;
}

int img_store_open(struct cs_pool *pool, struct img_store **out)
{
	struct img_store *st = calloc(1, sizeof(*st));
	uint8_t(*ids)[IMG_ID_LEN] = NULL;
	size_t nids = 0;
	int ret;
	if (!st)
		return -ENOMEM;
	st->pool = pool;
	pthread_rwlock_init(&st->lock, NULL);
	ret = load_all(st, &ids, &nids);
	if (ret < 0)
		goto fail;
	if (nids) {
		struct recover_arg ra = {st, ids, nids, calloc(nids, sizeof(struct img_mut))};
		if (!ra.muts) {
			ret = -ENOMEM;
			goto fail;
		}
		ret = cs_commit(pool, NULL, recover_cb, &ra);
		for (size_t i = 0; i < nids; i++) {
			if (ret == 0)
				img_store_mut_apply(st, &ra.muts[i]);
			img_mut_clear(&ra.muts[i]);
		}
		free(ra.muts);
		if (ret < 0) {
			log_err(TAG, "cannot recover interrupted uploads: %s", cairn_strerror(ret));
			goto fail;
		}
		log_warn(TAG, "%zu image(s) left saving or importing by a stop went back to queued",
			 nids);
	}
	free(ids);
	log_info(TAG, "image index loaded: %zu images", st->n);
	*out = st;
	return 0;
fail:
	free(ids);
	img_store_close(st);
	return ret;
}

void img_store_close(struct img_store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		img_entry_put(st->v[i]);
	free(st->v);
	pthread_rwlock_destroy(&st->lock);
	free(st);
}
