/* chunkstore/cs_usage.c - what a set of manifests costs (cs_manifest_usage).
 *
 * Invariant used: a chunk's refcount is the number of manifest entries
 * that name it in live manifests (one per entry, whatever the manifest's
 * own refcount). So a chunk is the set's alone exactly when the set's
 * entries naming it are all its references. A manifest given twice is
 * counted once: its entries hold one reference each, not two.
 *
 * Two passes, each in short read transactions (CS_USAGE_BATCH records or
 * chunk lookups per transaction, so no reader pins the map for long on a
 * 10 GiB image): count the entries per fingerprint into a hash map, then
 * read each distinct chunk's record. The figures are a consistent view
 * only when nothing commits meanwhile; callers cache them as estimates.
 * Cost: O(entries) map work, O(distinct chunks) LMDB gets, no device I/O.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chunkstore/cs_internal.h"

#define CS_USAGE_BATCH 256 /* manifest records or chunk gets per read transaction */

/* Adds the entries of up to CS_USAGE_BATCH records of mid from offset *pos
 * on; sets *pos past them and *done at the manifest's end. */
static int usage_entries(struct cs_pool *pool, const struct cs_mid *mid, uint32_t part,
			 uint64_t *pos, bool *done, struct cs_hmap *counts, struct cs_usage *u)
{
	struct meta_txn *txn = NULL;
	struct meta_cursor *cur = NULL;
	uint8_t key[4 + CS_MID_LEN + 8];
	size_t skl = cs_key_ment(key, part, mid, *pos);
	const void *k, *v;
	size_t kl, vl;
	int rc = meta_txn_begin(pool->meta, false, &txn);

	*done = false;
	if (rc < 0)
		return rc;
	rc = meta_cursor_open(txn, META_T_MANIFESTS, &cur);
	if (rc < 0)
		goto out;
	rc = meta_cursor_seek(cur, key, skl, &k, &kl, &v, &vl);
	for (unsigned n = 0; n < CS_USAGE_BATCH; n++) {
		struct cs_ment_rec_hdr rh;
		if (n)
			rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
		if (rc == CAIRN_ENOTFOUND || (rc == 0 && (kl != skl || memcmp(k, key, skl - 8)))) {
			*done = true;
			rc = 0;
			goto out;
		}
		if (rc < 0)
			goto out;
		if (vl < sizeof(rh)) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		memcpy(&rh, v, sizeof(rh));
		if (rh.version > CS_MENT_VERSION) {
			rc = CAIRN_EFORMAT;
			goto out;
		}
		if (rh.count == 0 || rh.count > CS_MENT_PER_REC ||
		    vl != sizeof(rh) + (size_t)rh.count * sizeof(struct cs_ment)) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		uint64_t off = meta_get_be64((const uint8_t *)k + skl - 8);
		for (unsigned i = 0; i < rh.count; i++) {
			struct cs_ment e;
			memcpy(&e, (const uint8_t *)v + sizeof(rh) + i * sizeof(e), sizeof(e));
			off += e.len;
			if (e.flags & CS_MENT_ZERO) {
				u->zero_bytes += e.len;
				continue;
			}
			uint64_t *c = cs_hmap_put(counts, e.fp);
			if (!c) {
				rc = -ENOMEM;
				goto out;
			}
			*c += 1;
		}
		*pos = off; /* the next record starts where this one ends */
	}
out:
	meta_cursor_close(cur);
	meta_txn_abort(txn);
	return rc;
}

/* Adds one manifest: its header (size, inline bytes), then its entries. */
static int usage_manifest(struct cs_pool *pool, const struct cs_mid *mid, struct cs_hmap *counts,
			  struct cs_usage *u)
{
	struct meta_txn *txn = NULL;
	struct cs_mhdr_rec h = {0};
	uint8_t key[4 + CS_MID_LEN];
	uint32_t part = cs_mid_part(pool, mid);
	const void *v;
	size_t vl;
	uint64_t pos = 0;
	bool done = false;
	int rc = meta_txn_begin(pool->meta, false, &txn);

	if (rc < 0)
		return rc;
	rc = meta_get(txn, META_T_MHDR, key, cs_key_mhdr(key, part, mid), &v, &vl);
	if (rc == 0 && vl < sizeof(h))
		rc = CAIRN_ECORRUPT;
	if (rc == 0) {
		memcpy(&h, v, sizeof(h));
		if (h.version > CS_MHDR_VERSION)
			rc = CAIRN_EFORMAT;
		else if (h.refcount == 0 || (h.flags & CS_MHDR_DOOMED))
			rc = CAIRN_ENOTFOUND; /* dead: it holds no chunk references */
		else if ((h.flags & CS_MHDR_INLINE) && vl != sizeof(h) + h.size)
			rc = CAIRN_ECORRUPT;
	}
	meta_txn_abort(txn);
	if (rc < 0)
		return rc;
	u->logical_bytes += h.size;
	if (h.flags & CS_MHDR_INLINE) {
		/* Its bytes live in its header: nobody else holds them. */
		u->unique_bytes += h.size;
		u->unique_stored += h.size;
		return 0;
	}
	while (!done && rc == 0)
		rc = usage_entries(pool, mid, part, &pos, &done, counts, u);
	return rc;
}

/* Classifies the distinct chunks, CS_USAGE_BATCH lookups per transaction. */
static int usage_chunks(struct cs_pool *pool, const struct cs_hmap *counts, struct cs_usage *u)
{
	size_t i = 0;
	int rc = 0;

	while (i < counts->cap && rc == 0) {
		struct meta_txn *txn = NULL;
		rc = meta_txn_begin(pool->meta, false, &txn);
		if (rc < 0)
			return rc;
		for (unsigned n = 0; i < counts->cap && n < CS_USAGE_BATCH; i++) {
			const struct cs_hslot *s = &counts->slots[i];
			struct cs_chunk_rec cr;
			uint8_t key[4 + CS_FP_LEN];
			const void *v;
			size_t vl;
			if (!s->used)
				continue;
			n++;
			rc = meta_get(txn, META_T_CHUNKS, key,
				      cs_key_chunk(key, cs_chunk_part(pool, s->key), s->key), &v,
				      &vl);
			if (rc == 0 && vl < sizeof(cr))
				rc = CAIRN_ECORRUPT;
			if (rc < 0)
				break;
			memcpy(&cr, v, sizeof(cr));
			if (cr.version > CS_CHUNK_VERSION) {
				rc = CAIRN_EFORMAT;
				break;
			}
			u->chunks++;
			/* More references than the set's entries: someone else
			 * holds it too. Fewer can only be a commit racing the
			 * two passes; count such a chunk as the set's. */
			if (cr.refcount > s->val) {
				u->shared_bytes += cr.raw_len;
			} else {
				u->unique_bytes += cr.raw_len;
				u->unique_stored += cr.stored_len;
			}
		}
		meta_txn_abort(txn);
	}
	return rc;
}

int cs_manifest_usage(struct cs_pool *pool, const struct cs_mid *mids, size_t n,
		      struct cs_usage *out)
{
	struct cs_hmap counts;
	struct cs_usage u = {0};
	int rc = cs_hmap_init(&counts, CS_FP_LEN);

	memset(out, 0, sizeof(*out));
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		bool dup = false;
		/* O(n^2) over the set: n is an image's manifests (one or two). */
		for (size_t j = 0; j < i && !dup; j++)
			dup = memcmp(&mids[i], &mids[j], sizeof(mids[i])) == 0;
		if (!dup)
			rc = usage_manifest(pool, &mids[i], &counts, &u);
	}
	if (rc == 0)
		rc = usage_chunks(pool, &counts, &u);
	cs_hmap_free(&counts);
	if (rc == 0)
		*out = u;
	return rc;
}
