/* chunkstore/cs_commit.c - the committer (group commit) and manifests.
 *
 * One committer thread takes every queued request at once, fdatasyncs the
 * union of the unit files their writers dirtied (each file once, many in
 * flight; directories of newly created files fsynced once), then runs each
 * request's callback in a child of ONE LMDB write transaction and commits
 * it. Invariant: a request is answered 0 only after its data was synced and
 * the transaction holding its metadata committed.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "chunkstore/cs_internal.h"
#include "core/fault.h"
#include "core/io.h"
#include "core/log.h"
#include "ring/ring.h"

static const char K_STATS[] = "stats";

/* ---- stripe record cache (one entry, written back on switch) ---- */

struct cs_scache {
	bool valid, dirty;
	uint64_t id;
	uint8_t key[12];
	struct cs_stripe_rec rec;
};

static int cs_scache_flush(struct cs_txn *t, struct cs_scache *sc)
{
	if (!sc->valid || !sc->dirty)
		return 0;
	int rc = meta_put(t->txn, META_T_STRIPES, sc->key, sizeof(sc->key), &sc->rec,
			  sizeof(sc->rec), 0);
	if (rc == 0)
		sc->dirty = false;
	return rc;
}

/* Loads (or creates, when create is true) the record of a stripe. */
static int cs_scache_get(struct cs_txn *t, struct cs_scache *sc, uint64_t id, bool create)
{
	struct cs_pool *pool = t->pool;
	if (sc->valid && sc->id == id)
		return 0;
	int rc = cs_scache_flush(t, sc);
	if (rc < 0)
		return rc;
	sc->valid = false;
	uint32_t part = cs_stripe_part(pool, id);
	cs_key_stripe(sc->key, part, id);
	const void *v;
	size_t vl;
	rc = meta_get(t->txn, META_T_STRIPES, sc->key, sizeof(sc->key), &v, &vl);
	if (rc == 0) {
		if (vl < sizeof(sc->rec))
			return CAIRN_ECORRUPT;
		memcpy(&sc->rec, v, sizeof(sc->rec));
		if (sc->rec.version > CS_STRIPE_VERSION)
			return CAIRN_EFORMAT;
		sc->dirty = false;
	} else if (rc == CAIRN_ENOTFOUND && create) {
		struct cs_stripe_rec *r = &sc->rec;
		memset(r, 0, sizeof(*r));
		r->version = CS_STRIPE_VERSION;
		r->state = CS_STRIPE_OPEN;
		r->k = pool->rec.k;
		r->m = pool->rec.m;
		r->unit_size = pool->rec.unit_size;
		r->created = (uint64_t)time(NULL);
		cs_stripe_devs(pool, id, r->devs);
		sc->dirty = true;
		t->d.stripes++;
	} else {
		if (rc == CAIRN_ENOTFOUND)
			log_err(CS_TAG, "stripe %016llx has no record", (unsigned long long)id);
		return rc == CAIRN_ENOTFOUND ? CAIRN_ECORRUPT : rc;
	}
	sc->valid = true;
	sc->id = id;
	return 0;
}

/* ---- chunk references ---- */

static int cs_chunk_ref(struct cs_txn *t, struct cs_scache *sc, const struct cs_wchunk *c)
{
	struct cs_pool *pool = t->pool;
	uint8_t key[4 + CS_FP_LEN];
	size_t kl = cs_key_chunk(key, cs_chunk_part(pool, c->ment.fp), c->ment.fp);
	struct cs_chunk_rec r;
	const void *v;
	size_t vl;
	int rc;

	if (c->is_new) {
		/* The record is on disk either way: the stripe's fill covers it. */
		rc = cs_scache_get(t, sc, c->stripe_id, true);
		if (rc < 0)
			return rc;
		uint32_t end = (uint32_t)cs_align_up(
		    c->offset + sizeof(struct cs_chunk_hdr) + c->stored_len, CS_REC_ALIGN);
		uint32_t *fill = &sc->rec.fill[c->unit];
		if (end > *fill) {
			uint64_t copies = 1u + sc->rec.m;
			t->d.physical_bytes +=
			    (int64_t)(((*fill ? 0 : CS_UNIT_HDR_SIZE) + end - *fill) * copies);
			*fill = end;
			sc->dirty = true;
		}
	}
	rc = meta_get(t->txn, META_T_CHUNKS, key, kl, &v, &vl);
	if (rc == CAIRN_ENOTFOUND) {
		if (!c->is_new) {
			/* A dedup hit whose entry vanished (GC ran in between). */
			log_warn(CS_TAG, "chunk index entry vanished before commit");
			return CAIRN_ENOTFOUND;
		}
		r = (struct cs_chunk_rec){
		    .version = CS_CHUNK_VERSION,
		    .compression = c->compression,
		    .crc32c = c->crc,
		    .refcount = 1,
		    .stripe_id = c->stripe_id,
		    .unit = c->unit,
		    .offset = c->offset,
		    .stored_len = c->stored_len,
		    .raw_len = c->ment.len,
		};
		/* sc holds this stripe already (is_new) */
		sc->rec.live_bytes += r.stored_len;
		sc->dirty = true;
		t->d.unique_bytes += r.raw_len;
		t->d.stored_bytes += r.stored_len;
		t->d.chunks++;
		cs_gc_note_live(pool, c->ment.fp, c->stripe_id);
		rc = meta_put(t->txn, META_T_CHUNKS, key, kl, &r, sizeof(r), 0);
		if (rc == 0)
			cs_bloom_note(pool, c->ment.fp);
		return rc;
	}
	if (rc < 0)
		return rc;
	if (vl < sizeof(r))
		return CAIRN_ECORRUPT;
	memcpy(&r, v, sizeof(r));
	if (r.version > CS_CHUNK_VERSION)
		return CAIRN_EFORMAT;
	if (r.refcount == 0 && c->is_new) {
		/* Dead, and this writer stored a fresh copy (a dead chunk is a
		 * dedup miss): the entry moves to the fresh copy, so nothing
		 * new ever points into a stripe GC may be freeing. The old
		 * copy's bytes left the live count when it died. */
		r.version = CS_CHUNK_VERSION;
		r.compression = c->compression;
		r.crc32c = c->crc;
		r.stripe_id = c->stripe_id;
		r.unit = c->unit;
		r.offset = c->offset;
		r.stored_len = c->stored_len;
		r.raw_len = c->ment.len;
		sc->rec.live_bytes += r.stored_len; /* sc holds c's stripe (is_new) */
		sc->dirty = true;
		t->d.unique_bytes += r.raw_len;
		t->d.stored_bytes += r.stored_len;
		t->d.chunks++;
		cs_gc_note_live(pool, c->ment.fp, c->stripe_id);
	} else if (r.refcount == 0) {
		/* revived: its bytes are live again */
		rc = cs_scache_get(t, sc, r.stripe_id, false);
		if (rc < 0)
			return rc;
		/* revived in place by a writer that deduplicated against it
		 * while it was live */
		sc->rec.live_bytes += r.stored_len;
		sc->dirty = true;
		t->d.unique_bytes += r.raw_len;
		t->d.stored_bytes += r.stored_len;
		t->d.chunks++;
		cs_gc_note_live(pool, c->ment.fp, r.stripe_id);
	}
	r.refcount++;
	return meta_put(t->txn, META_T_CHUNKS, key, kl, &r, sizeof(r), 0);
}

int cs_chunks_move(struct cs_txn *t, const uint64_t *from, size_t n, uint64_t *moved)
{
	struct cs_pool *pool = t->pool;
	struct cs_writer *w = t->w;
	struct cs_scache dst = {0}, src = {0};
	int rc = 0;
	*moved = 0;
	if (!w || !w->finished || !w->force_new || n > w->nchunks)
		return CAIRN_EINVAL;
	if (w->err)
		return w->err;
	for (size_t i = 0; i < n; i++) {
		const struct cs_wchunk *c = &w->chunks[i];
		if (!c->done || !c->is_new)
			continue;
		/* the copy is on disk either way: its stripe's fill covers it */
		rc = cs_scache_get(t, &dst, c->stripe_id, true);
		if (rc < 0)
			goto out;
		uint32_t end = (uint32_t)cs_align_up(
		    c->offset + sizeof(struct cs_chunk_hdr) + c->stored_len, CS_REC_ALIGN);
		uint32_t *fill = &dst.rec.fill[c->unit];
		if (end > *fill) {
			uint64_t copies = 1u + dst.rec.m;
			t->d.physical_bytes +=
			    (int64_t)(((*fill ? 0 : CS_UNIT_HDR_SIZE) + end - *fill) * copies);
			*fill = end;
			dst.dirty = true;
		}
		uint8_t key[4 + CS_FP_LEN];
		size_t kl = cs_key_chunk(key, cs_chunk_part(pool, c->ment.fp), c->ment.fp);
		const void *v;
		size_t vl;
		struct cs_chunk_rec r;
		rc = meta_get(t->txn, META_T_CHUNKS, key, kl, &v, &vl);
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			goto out;
		if (vl < sizeof(r)) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		memcpy(&r, v, sizeof(r));
		/* moved only if still live where compaction found it */
		if (r.refcount == 0 || r.stripe_id != from[i] || r.raw_len != c->ment.len)
			continue;
		rc = cs_scache_get(t, &src, r.stripe_id, false);
		if (rc < 0)
			goto out;
		src.rec.live_bytes -=
		    src.rec.live_bytes < r.stored_len ? src.rec.live_bytes : r.stored_len;
		src.dirty = true;
		t->d.stored_bytes += (int64_t)c->stored_len - (int64_t)r.stored_len;
		r.compression = c->compression;
		r.crc32c = c->crc;
		r.stripe_id = c->stripe_id;
		r.unit = c->unit;
		r.offset = c->offset;
		r.stored_len = c->stored_len;
		dst.rec.live_bytes += r.stored_len;
		dst.dirty = true;
		cs_gc_note_live(pool, c->ment.fp, c->stripe_id);
		rc = meta_put(t->txn, META_T_CHUNKS, key, kl, &r, sizeof(r), 0);
		if (rc < 0)
			goto out;
		(*moved)++;
	}
	rc = cs_scache_flush(t, &dst);
	if (rc == 0)
		rc = cs_scache_flush(t, &src);
out:
	return rc;
}

/* The index record of a chunk a live manifest names: missing is corruption. */
static int cs_chunk_load(struct cs_txn *t, const uint8_t fp[CS_FP_LEN], uint8_t key[4 + CS_FP_LEN],
			 size_t *kl, struct cs_chunk_rec *r)
{
	const void *v;
	size_t vl;
	int rc;

	*kl = cs_key_chunk(key, cs_chunk_part(t->pool, fp), fp);
	rc = meta_get(t->txn, META_T_CHUNKS, key, *kl, &v, &vl);
	if (rc < 0)
		return rc == CAIRN_ENOTFOUND ? CAIRN_ECORRUPT : rc;
	if (vl < sizeof(*r))
		return CAIRN_ECORRUPT;
	memcpy(r, v, sizeof(*r));
	return 0;
}

static int cs_chunk_unref(struct cs_txn *t, struct cs_scache *sc, const uint8_t fp[CS_FP_LEN])
{
	uint8_t key[4 + CS_FP_LEN];
	size_t kl;
	struct cs_chunk_rec r;
	int rc = cs_chunk_load(t, fp, key, &kl, &r);
	if (rc < 0)
		return rc;
	if (r.refcount == 0) {
		log_err(CS_TAG, "chunk refcount underflow");
		return CAIRN_ECORRUPT;
	}
	if (--r.refcount == 0) {
		/* Stays in the index at 0 until GC. */
		rc = cs_scache_get(t, sc, r.stripe_id, false);
		if (rc < 0)
			return rc;
		sc->rec.live_bytes -=
		    sc->rec.live_bytes < r.stored_len ? sc->rec.live_bytes : r.stored_len;
		sc->dirty = true;
		t->d.unique_bytes -= r.raw_len;
		t->d.stored_bytes -= r.stored_len;
		t->d.chunks--;
	}
	return meta_put(t->txn, META_T_CHUNKS, key, kl, &r, sizeof(r), 0);
}

/* ---- manifests ---- */

struct meta_txn *cs_txn_meta(struct cs_txn *txn)
{
	return txn->txn;
}

int cs_manifest_create(struct cs_txn *t, struct cs_mid *out)
{
	struct cs_pool *pool = t->pool;
	struct cs_writer *w = t->w;
	struct cs_scache sc = {0};
	uint8_t key[4 + CS_MID_LEN + 8];
	uint8_t *val = NULL;
	int rc;

	if (!w || !w->finished || w->consumed)
		return CAIRN_EINVAL;
	if (w->err)
		return w->err;
	uuid_generate_random(out->b);
	uint32_t part = cs_mid_part(pool, out);
	struct cs_mhdr_rec h = {
	    .version = CS_MHDR_VERSION,
	    .refcount = 1,
	    .size = w->size,
	    .created = (uint64_t)time(NULL),
	};
	size_t kl = cs_key_mhdr(key, part, out);
	if (w->is_inline) {
		h.flags = CS_MHDR_INLINE;
		val = malloc(sizeof(h) + w->size + 1);
		if (!val)
			return -ENOMEM;
		memcpy(val, &h, sizeof(h));
		if (w->size)
			memcpy(val + sizeof(h), ((struct cs_task *)w->cur)->buf, w->size);
		rc = meta_put(t->txn, META_T_MHDR, key, kl, val, sizeof(h) + w->size,
			      META_NOOVERWRITE);
		goto done;
	}
	size_t reclen = sizeof(struct cs_ment_rec_hdr) + CS_MENT_PER_REC * sizeof(struct cs_ment);
	val = malloc(reclen);
	if (!val)
		return -ENOMEM;
	uint64_t off = 0;
	for (size_t i = 0; i < w->nchunks; i += CS_MENT_PER_REC) {
		size_t n = w->nchunks - i < CS_MENT_PER_REC ? w->nchunks - i : CS_MENT_PER_REC;
		struct cs_ment_rec_hdr rh = {.version = CS_MENT_VERSION, .count = (uint16_t)n};
		memcpy(val, &rh, sizeof(rh));
		uint64_t first = off;
		for (size_t j = 0; j < n; j++) {
			const struct cs_wchunk *c = &w->chunks[i + j];
			if (!c->done) {
				rc = CAIRN_EINVAL;
				goto out;
			}
			memcpy(val + sizeof(rh) + j * sizeof(struct cs_ment), &c->ment,
			       sizeof(c->ment));
			off += c->ment.len;
			if (!(c->ment.flags & CS_MENT_ZERO)) {
				rc = cs_chunk_ref(t, &sc, c);
				if (rc < 0)
					goto out;
			}
		}
		size_t ekl = cs_key_ment(key, part, out, first);
		rc = meta_put(t->txn, META_T_MANIFESTS, key, ekl, val,
			      sizeof(rh) + n * sizeof(struct cs_ment), 0);
		if (rc < 0)
			goto out;
		h.nrecords++;
	}
	h.nchunks = w->nchunks;
	rc = cs_scache_flush(t, &sc);
	if (rc < 0)
		goto out;
	kl = cs_key_mhdr(key, part, out);
	rc = meta_put(t->txn, META_T_MHDR, key, kl, &h, sizeof(h), META_NOOVERWRITE);
done:
	if (rc == 0) {
		t->d.logical_bytes += (int64_t)w->size;
		t->d.manifests++;
		t->created = true;
	}
out:
	free(val);
	return rc;
}

static int cs_mhdr_get(struct meta_txn *txn, struct cs_pool *pool, const struct cs_mid *mid,
		       struct cs_mhdr_rec *h, const void **val, size_t *vlen)
{
	uint8_t key[4 + CS_MID_LEN];
	size_t kl = cs_key_mhdr(key, cs_mid_part(pool, mid), mid);
	const void *v;
	size_t vl;
	int rc = meta_get(txn, META_T_MHDR, key, kl, &v, &vl);
	if (rc < 0)
		return rc;
	if (vl < sizeof(*h))
		return CAIRN_ECORRUPT;
	memcpy(h, v, sizeof(*h));
	if (h->version > CS_MHDR_VERSION)
		return CAIRN_EFORMAT;
	if ((h->flags & CS_MHDR_INLINE) && vl != sizeof(*h) + h->size)
		return CAIRN_ECORRUPT;
	if (h->flags & CS_MHDR_DOOMED) /* GC is removing it */
		return CAIRN_ENOTFOUND;
	if (val)
		*val = v;
	if (vlen)
		*vlen = vl;
	return 0;
}

int cs_manifest_size(struct meta_txn *txn, struct cs_pool *pool, const struct cs_mid *mid,
		     uint64_t *size)
{
	struct cs_mhdr_rec h;
	int rc = cs_mhdr_get(txn, pool, mid, &h, NULL, NULL);
	if (rc == 0)
		*size = h.size;
	return rc;
}

int cs_manifest_ref(struct cs_txn *t, const struct cs_mid *mid)
{
	struct cs_pool *pool = t->pool;
	struct cs_mhdr_rec h;
	const void *v;
	size_t vl;
	int rc = cs_mhdr_get(t->txn, pool, mid, &h, &v, &vl);
	if (rc < 0)
		return rc;
	if (h.refcount == 0) /* dead: its chunk references are gone */
		return CAIRN_ENOTFOUND;
	uint8_t *copy = malloc(vl);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, v, vl);
	h.refcount++;
	memcpy(copy, &h, sizeof(h));
	uint8_t key[4 + CS_MID_LEN];
	size_t kl = cs_key_mhdr(key, cs_mid_part(pool, mid), mid);
	rc = meta_put(t->txn, META_T_MHDR, key, kl, copy, vl, 0);
	free(copy);
	if (rc == 0)
		t->d.logical_bytes += (int64_t)h.size;
	return rc;
}

int cs_manifest_unref(struct cs_txn *t, const struct cs_mid *mid)
{
	struct cs_pool *pool = t->pool;
	struct meta_cursor *cur = NULL;
	struct cs_scache sc = {0};
	struct cs_mhdr_rec h;
	uint8_t key[4 + CS_MID_LEN + 8];
	uint8_t rec[sizeof(struct cs_ment_rec_hdr) + CS_MENT_PER_REC * sizeof(struct cs_ment)];
	const void *v;
	size_t vl;
	uint32_t part = cs_mid_part(pool, mid);
	int rc = cs_mhdr_get(t->txn, pool, mid, &h, &v, &vl);
	if (rc < 0)
		return rc;
	size_t kl = cs_key_mhdr(key, part, mid);
	if (h.refcount == 0)
		return CAIRN_ENOTFOUND;
	/* A manifest at zero keeps its header and entries (refcount 0) so that
	 * readers opened before the last unref still read it; GC removes them
	 * under an epoch that covers every open reader, as it does chunks. */
	uint8_t *copy = malloc(vl);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, v, vl);
	h.refcount--;
	memcpy(copy, &h, sizeof(h));
	rc = meta_put(t->txn, META_T_MHDR, key, kl, copy, vl, 0);
	free(copy);
	if (rc < 0)
		return rc;
	t->d.logical_bytes -= (int64_t)h.size;
	if (h.refcount > 0)
		return 0;
	t->d.logical_bytes += (int64_t)h.size; /* counted once more below */
	rc = meta_cursor_open(t->txn, META_T_MANIFESTS, &cur);
	if (rc < 0)
		return rc;
	size_t pkl = cs_key_ment(key, part, mid, 0);
	size_t plen = pkl - 8; /* [part][mid] prefix */
	bool first = true;
	for (;;) {
		const void *k;
		size_t kl2;
		if (first)
			rc = meta_cursor_seek(cur, key, pkl, &k, &kl2, &v, &vl);
		else
			rc = meta_cursor_next(cur, &k, &kl2, &v, &vl);
		first = false;
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			break;
		}
		if (rc < 0)
			goto out;
		if (kl2 != pkl || memcmp(k, key, plen) != 0)
			break;
		if (vl < sizeof(struct cs_ment_rec_hdr) || vl > sizeof(rec)) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		memcpy(rec, v, vl);
		struct cs_ment_rec_hdr rh;
		memcpy(&rh, rec, sizeof(rh));
		if (rh.version > CS_MENT_VERSION) {
			rc = CAIRN_EFORMAT;
			goto out;
		}
		if (sizeof(rh) + (size_t)rh.count * sizeof(struct cs_ment) != vl) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		for (unsigned j = 0; j < rh.count; j++) {
			struct cs_ment e;
			memcpy(&e, rec + sizeof(rh) + j * sizeof(e), sizeof(e));
			if (e.flags & CS_MENT_ZERO)
				continue;
			rc = cs_chunk_unref(t, &sc, e.fp);
			if (rc < 0)
				goto out;
		}
	}
	rc = cs_scache_flush(t, &sc);
	if (rc == 0) {
		t->d.logical_bytes -= (int64_t)h.size;
		t->d.manifests--;
		cs_gc_note_dead(pool);
	}
out:
	meta_cursor_close(cur);
	return rc;
}

/* Adds one reference to a live chunk that a live manifest already names
 * (so it cannot be at zero). */
static int cs_chunk_ref_fp(struct cs_txn *t, const uint8_t fp[CS_FP_LEN])
{
	uint8_t key[4 + CS_FP_LEN];
	size_t kl;
	struct cs_chunk_rec r;
	int rc = cs_chunk_load(t, fp, key, &kl, &r);
	if (rc < 0)
		return rc;
	if (r.version > CS_CHUNK_VERSION)
		return CAIRN_EFORMAT;
	if (r.refcount == 0)
		return CAIRN_ECORRUPT;
	r.refcount++;
	return meta_put(t->txn, META_T_CHUNKS, key, kl, &r, sizeof(r), 0);
}

/* Output side of cs_manifest_concat: entries packed CS_MENT_PER_REC to a
 * record, keyed by the logical offset of each record's first entry. */
struct cs_concat_out {
	struct cs_txn *t;
	uint32_t part;
	const struct cs_mid *mid;
	uint8_t rec[sizeof(struct cs_ment_rec_hdr) + CS_MENT_PER_REC * sizeof(struct cs_ment)];
	unsigned n;
	uint64_t first, off;
	uint32_t nrecords;
	uint64_t nchunks;
};

static int cs_concat_flush(struct cs_concat_out *o)
{
	uint8_t key[4 + CS_MID_LEN + 8];
	struct cs_ment_rec_hdr rh = {.version = CS_MENT_VERSION, .count = (uint16_t)o->n};
	if (!o->n)
		return 0;
	memcpy(o->rec, &rh, sizeof(rh));
	size_t kl = cs_key_ment(key, o->part, o->mid, o->first);
	int rc = meta_put(o->t->txn, META_T_MANIFESTS, key, kl, o->rec,
			  sizeof(rh) + o->n * sizeof(struct cs_ment), META_NOOVERWRITE);
	if (rc == 0) {
		o->nrecords++;
		o->n = 0;
	}
	return rc;
}

static int cs_concat_add(struct cs_concat_out *o, const struct cs_ment *e)
{
	if (o->n == 0)
		o->first = o->off;
	memcpy(o->rec + sizeof(struct cs_ment_rec_hdr) + o->n * sizeof(*e), e, sizeof(*e));
	o->n++;
	o->off += e->len;
	o->nchunks++;
	return o->n == CS_MENT_PER_REC ? cs_concat_flush(o) : 0;
}

/* Copies the entries of one part into o. With transfer, the part's chunk
 * references move to the new manifest; otherwise each chunk gains one. */
static int cs_concat_part(struct cs_concat_out *o, const struct cs_mid *mid, bool transfer)
{
	struct cs_txn *t = o->t;
	uint32_t part = cs_mid_part(t->pool, mid);
	uint8_t key[4 + CS_MID_LEN + 8], rec[sizeof(o->rec)];
	struct meta_cursor *cur = NULL;
	const void *k, *v;
	size_t kl, vl;
	size_t pkl = cs_key_ment(key, part, mid, 0);
	int rc;

	/* Re-seeks past each record read: the loop writes to the same table. */
	for (;;) {
		rc = meta_cursor_open(t->txn, META_T_MANIFESTS, &cur);
		if (rc < 0)
			return rc;
		rc = meta_cursor_seek(cur, key, pkl, &k, &kl, &v, &vl);
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		if (kl != pkl || memcmp(k, key, pkl - 8) != 0)
			break;
		if (vl < sizeof(struct cs_ment_rec_hdr) || vl > sizeof(rec)) {
			rc = CAIRN_ECORRUPT;
			break;
		}
		memcpy(rec, v, vl);
		memcpy(key, k, kl);
		meta_cursor_close(cur);
		cur = NULL;
		struct cs_ment_rec_hdr rh;
		memcpy(&rh, rec, sizeof(rh));
		if (rh.version > CS_MENT_VERSION)
			return CAIRN_EFORMAT;
		if (sizeof(rh) + (size_t)rh.count * sizeof(struct cs_ment) != vl)
			return CAIRN_ECORRUPT;
		for (unsigned j = 0; j < rh.count; j++) {
			struct cs_ment e;
			memcpy(&e, rec + sizeof(rh) + j * sizeof(e), sizeof(e));
			if (!transfer && !(e.flags & CS_MENT_ZERO)) {
				rc = cs_chunk_ref_fp(t, e.fp);
				if (rc < 0)
					return rc;
			}
			rc = cs_concat_add(o, &e);
			if (rc < 0)
				return rc;
		}
		/* next record: the smallest key after this one */
		uint64_t off = meta_get_be64(key + pkl - 8);
		if (off == UINT64_MAX)
			return 0;
		meta_be64(key + pkl - 8, off + 1);
	}
	meta_cursor_close(cur);
	return rc;
}

int cs_manifest_concat(struct cs_txn *t, const struct cs_mid *parts, size_t n, struct cs_mid *out)
{
	struct cs_pool *pool = t->pool;
	struct cs_concat_out o = {.t = t};
	uint8_t key[4 + CS_MID_LEN];
	uint64_t size = 0;
	int rc;

	uuid_generate_random(out->b);
	o.part = cs_mid_part(pool, out);
	o.mid = out;
	for (size_t i = 0; i < n; i++) {
		struct cs_mhdr_rec h;
		const void *v;
		size_t vl;
		rc = cs_mhdr_get(t->txn, pool, &parts[i], &h, &v, &vl);
		if (rc < 0)
			return rc;
		if (h.refcount == 0)
			return CAIRN_ENOTFOUND;
		if (h.flags & CS_MHDR_INLINE)
			return CAIRN_EINVAL;
		/* A part held only by the caller hands its chunk references
		 * over and dies without touching a chunk record; one shared
		 * with others (an object a part was copied from) keeps its
		 * own, so the new manifest takes new ones. */
		bool transfer = h.refcount == 1;
		uint64_t before = o.off;
		rc = cs_concat_part(&o, &parts[i], transfer);
		if (rc < 0)
			return rc;
		if (o.off - before != h.size)
			return CAIRN_ECORRUPT;
		size += h.size;
		/* v is stale after the puts above: read the header again */
		rc = cs_mhdr_get(t->txn, pool, &parts[i], &h, &v, &vl);
		if (rc < 0)
			return rc;
		uint8_t *copy = malloc(vl);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, v, vl);
		h.refcount--;
		memcpy(copy, &h, sizeof(h));
		size_t kl = cs_key_mhdr(key, cs_mid_part(pool, &parts[i]), &parts[i]);
		rc = meta_put(t->txn, META_T_MHDR, key, kl, copy, vl, 0);
		free(copy);
		if (rc < 0)
			return rc;
		t->d.logical_bytes -= (int64_t)h.size;
		if (h.refcount == 0) {
			/* dead with its references gone: GC removes it */
			t->d.manifests--;
			cs_gc_note_dead(pool);
		}
	}
	rc = cs_concat_flush(&o);
	if (rc < 0)
		return rc;
	struct cs_mhdr_rec h = {
	    .version = CS_MHDR_VERSION,
	    .refcount = 1,
	    .size = size,
	    .nrecords = o.nrecords,
	    .nchunks = o.nchunks,
	    .created = (uint64_t)time(NULL),
	};
	size_t kl = cs_key_mhdr(key, o.part, out);
	rc = meta_put(t->txn, META_T_MHDR, key, kl, &h, sizeof(h), META_NOOVERWRITE);
	if (rc == 0) {
		t->d.logical_bytes += (int64_t)size;
		t->d.manifests++;
	}
	return rc;
}

/* ---- the committer ---- */

static int cs_ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return x < y ? -1 : x > y;
}

static int cs_str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cs_files_sync(struct io_ctx *io, struct cs_file **files, size_t n)
{
	/* Directory names: each unsynced file's partition directory, and that
	 * directory's parent (stripes/) while its creation is not durable. */
	char **dirs = malloc((2 * n + 1) * sizeof(*dirs));
	uint8_t **pending = malloc((n + 1) * sizeof(*pending));
	int *fds = malloc((3 * n + 1) * sizeof(*fds));
	bool *was_closed = malloc((n + 1) * sizeof(*was_closed));
	size_t nd = 0, np = 0, nfd = 0, ndirfd = 0;
	int rc = 0;
	if (!dirs || !pending || !fds || !was_closed) {
		rc = -ENOMEM;
		goto out;
	}
	/* Read before the syncs are issued: a file closed later may have had
	 * a last write the sync does not cover. */
	for (size_t i = 0; i < n; i++)
		was_closed[i] = atomic_load(&files[i]->closed);
	for (size_t i = 0; i < n; i++) {
		struct cs_file *f = files[i];
		if (atomic_load(&f->dir_synced))
			continue;
		dirs[nd] = strdup(f->dir);
		if (!dirs[nd]) {
			rc = -ENOMEM;
			goto out;
		}
		nd++;
		if (f->dir_state &&
		    __atomic_load_n(f->dir_state, __ATOMIC_ACQUIRE) == CS_DIR_PARENT_PENDING) {
			char *slash = strrchr(f->dir, '/');
			if (slash && slash != f->dir) {
				dirs[nd] = strndup(f->dir, (size_t)(slash - f->dir));
				if (!dirs[nd]) {
					rc = -ENOMEM;
					goto out;
				}
				nd++;
				pending[np++] = f->dir_state;
			}
		}
	}
	qsort(dirs, nd, sizeof(*dirs), cs_str_cmp);
	/* Every directory and every file is synced in one batch (all in
	 * flight together): the order among them does not matter, only that
	 * all complete before the commit. */
	for (size_t i = 0; i < nd; i++) {
		if (i && !strcmp(dirs[i - 1], dirs[i]))
			continue;
		int fd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			log_err(CS_TAG, "open %s: %s", dirs[i], cairn_strerror(rc));
			goto out;
		}
		fds[nfd++] = fd;
		ndirfd++;
	}
	for (size_t i = 0; i < n; i++)
		if (!atomic_load(&files[i]->synced))
			fds[nfd++] = files[i]->fd;
	if (FAULT("cs.fdatasync")) {
		rc = -EIO;
		goto out;
	}
	for (size_t i = 0; i < nfd; i += CS_WORKER_DEPTH) {
		size_t cnt = nfd - i < CS_WORKER_DEPTH ? nfd - i : CS_WORKER_DEPTH;
		rc = io_fdatasync(io, fds + i, cnt);
		if (rc < 0) {
			log_err(CS_TAG, "fdatasync of %zu unit files and directories: %s", cnt,
				cairn_strerror(rc));
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		atomic_store(&files[i]->dir_synced, true);
		/* Only a closed file stays durable: an open one gets more
		 * records after this sync. */
		if (was_closed[i])
			atomic_store(&files[i]->synced, true);
	}
	for (size_t i = 0; i < np; i++)
		__atomic_store_n(pending[i], CS_DIR_DURABLE, __ATOMIC_RELEASE);
out:
	for (size_t i = 0; i < ndirfd; i++)
		close(fds[i]);
	if (dirs)
		for (size_t i = 0; i < nd; i++)
			free(dirs[i]);
	free(dirs);
	free(pending);
	free(fds);
	free(was_closed);
	return rc;
}

/* Syncs the union of the group's writers' files, each file once. */
static int cs_group_sync(struct cs_pool *pool, struct cs_req *reqs)
{
	size_t n = 0;
	for (struct cs_req *r = reqs; r; r = r->next)
		if (r->w)
			n += r->w->nfiles;
	if (!n)
		return 0;
	struct cs_file **files = malloc(n * sizeof(*files));
	if (!files)
		return -ENOMEM;
	n = 0;
	for (struct cs_req *r = reqs; r; r = r->next)
		if (r->w)
			for (size_t i = 0; i < r->w->nfiles; i++)
				files[n++] = r->w->files[i];
	qsort(files, n, sizeof(*files), cs_ptr_cmp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (!u || files[u - 1] != files[i])
			files[u++] = files[i];
	int rc = cs_files_sync(pool->cio, files, u);
	free(files);
	return rc;
}

static void cs_delta_apply(struct cs_stats_rec *s, const struct cs_stats_delta *d)
{
	s->logical_bytes += (uint64_t)d->logical_bytes;
	s->unique_bytes += (uint64_t)d->unique_bytes;
	s->stored_bytes += (uint64_t)d->stored_bytes;
	s->physical_bytes += (uint64_t)d->physical_bytes;
	s->chunks += (uint64_t)d->chunks;
	s->manifests += (uint64_t)d->manifests;
	s->stripes += (uint64_t)d->stripes;
}
/* Requests that add data (they carry a writer) are refused once live
 * metadata passes CS_META_RESERVE_PCT of the map, so the rest stays for
 * deletes: LMDB copies pages on write, so even a delete needs free pages,
 * and a map filled to the brim could never be emptied again. The free-list
 * walk is paid only when the file's high-water mark is already that high. */
#define CS_META_RESERVE_PCT 90
static bool cs_meta_low_space(struct cs_pool *pool, const struct cs_req *reqs)
{
	uint64_t used, map;
	bool grows = false;
	for (const struct cs_req *r = reqs; r; r = r->next)
		grows |= r->w != NULL;
	if (!grows || meta_usage(pool->meta, &used, &map) < 0 ||
	    used * 100 < map * CS_META_RESERVE_PCT)
		return false;
	if (meta_live_bytes(pool->meta, &used, &map) < 0)
		return false;
	if (used * 100 < map * CS_META_RESERVE_PCT)
		return false;
	log_warn(CS_TAG,
		 "metadata map %" PRIu64 " of %" PRIu64 " MiB live: refusing new data, "
		 "deletes still work (raise [pool] map_size)",
		 used >> 20, map >> 20);
	return true;
}

static void cs_group_run(struct cs_pool *pool, struct cs_req *reqs)
{
	struct meta_txn *txn = NULL;
	struct cs_stats_rec st;
	size_t nreq = 0;
	int rc;

	for (struct cs_req *r = reqs; r; r = r->next)
		nreq++;
	int data_rc = cs_group_sync(pool, reqs);
	pthread_mutex_lock(&pool->st_mu);
	st = pool->stats;
	pthread_mutex_unlock(&pool->st_mu);

	bool low_space = cs_meta_low_space(pool, reqs);
	rc = meta_txn_begin(pool->meta, true, &txn);
	if (rc < 0)
		goto fail_all;
	for (struct cs_req *r = reqs; r; r = r->next) {
		if (r->w && r->w->nfiles && data_rc < 0) {
			r->result = data_rc;
			continue;
		}
		if (r->w && low_space) {
			r->result = CAIRN_ENOSPACE;
			continue;
		}
		struct cs_txn t = {.pool = pool, .w = r->w};
		r->result = meta_txn_begin_child(txn, &t.txn);
		if (r->result < 0)
			continue;
		r->result = r->fn ? r->fn(&t, r->arg) : 0;
		if (r->result < 0) {
			meta_txn_abort(t.txn);
			continue;
		}
		r->result = meta_txn_commit(t.txn);
		if (r->result == 0) {
			cs_delta_apply(&st, &t.d);
			r->created = t.created;
		}
	}
	st.commits++;
	st.commit_requests += nreq;
	rc = meta_put(txn, META_T_POOL, K_STATS, sizeof(K_STATS) - 1, &st, sizeof(st), 0);
	if (rc < 0)
		goto fail_all;
	if (FAULT("cs.commit")) {
		rc = -EIO;
		goto fail_all;
	}
	rc = meta_txn_commit(txn);
	txn = NULL;
	if (rc < 0)
		goto fail_all;
	pthread_mutex_lock(&pool->st_mu);
	pool->stats = st;
	pthread_mutex_unlock(&pool->st_mu);
	cs_bloom_commit(pool, true); /* after the commit: see cs_bloom.c */
	for (struct cs_req *r = reqs; r; r = r->next)
		if (r->result == 0 && r->created)
			r->w->consumed = true;
	return;
fail_all:
	meta_txn_abort(txn);
	cs_bloom_commit(pool, false);
	log_err(CS_TAG, "group commit of %zu requests: %s", nreq, cairn_strerror(rc));
	for (struct cs_req *r = reqs; r; r = r->next)
		if (r->result == 0)
			r->result = rc;
}

static void *cs_committer_main(void *arg)
{
	struct cs_pool *pool = arg;
	pthread_mutex_lock(&pool->cq_mu);
	for (;;) {
		if (!pool->cq_head) {
			if (pool->cq_stop)
				break;
			pthread_cond_wait(&pool->cq_cv, &pool->cq_mu);
			continue;
		}
		struct cs_req *reqs = pool->cq_head;
		pool->cq_head = pool->cq_tail = NULL;
		pthread_mutex_unlock(&pool->cq_mu);
		cs_group_run(pool, reqs);
		pthread_mutex_lock(&pool->cq_mu);
		/* Wake exactly the group's requesters (a broadcast would wake the
		 * next group's too, for nothing). */
		for (struct cs_req *r = reqs, *nx; r; r = nx) {
			nx = r->next;
			pthread_cond_t *cv = r->cv;
			r->done = true;		 /* r may be gone once done is seen */
			pthread_cond_signal(cv); /* cv outlives r: the waiter needs cq_mu */
		}
	}
	pthread_mutex_unlock(&pool->cq_mu);
	return NULL;
}

int cs_committer_start(struct cs_pool *pool)
{
	int rc = pthread_create(&pool->committer, NULL, cs_committer_main, pool);
	if (rc)
		return -rc;
	pool->committer_running = true;
	return 0;
}

void cs_committer_stop(struct cs_pool *pool)
{
	if (!pool->committer_running)
		return;
	pthread_mutex_lock(&pool->cq_mu);
	pool->cq_stop = true;
	pthread_cond_broadcast(&pool->cq_cv);
	pthread_mutex_unlock(&pool->cq_mu);
	pthread_join(pool->committer, NULL);
	pool->committer_running = false;
}

int cs_commit(struct cs_pool *pool, struct cs_writer *w, cs_commit_fn fn, void *arg)
{
	if (w && (!w->finished || w->pool != pool))
		return CAIRN_EINVAL;
	pthread_cond_t cv;
	pthread_cond_init(&cv, NULL);
	struct cs_req req = {.w = w, .fn = fn, .arg = arg, .cv = &cv};
	pthread_mutex_lock(&pool->cq_mu);
	if (pool->cq_stop) {
		pthread_mutex_unlock(&pool->cq_mu);
		pthread_cond_destroy(&cv);
		return CAIRN_ESHUTDOWN;
	}
	if (pool->cq_tail)
		pool->cq_tail->next = &req;
	else
		pool->cq_head = &req;
	pool->cq_tail = &req;
	pthread_cond_signal(&pool->cq_cv);
	while (!req.done)
		pthread_cond_wait(&cv, &pool->cq_mu);
	pthread_mutex_unlock(&pool->cq_mu);
	pthread_cond_destroy(&cv);
	return req.result;
}
