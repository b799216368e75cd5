/* chunkstore/cs_fsck.c - recomputes what the committer keeps incrementally
 * (chunk refcounts, stripe live bytes, the pool counters) from the
 * manifests, and compares.
 *
 * Invariant checked: a chunk's refcount is the number of entries of live
 * manifests (refcount > 0) that name it (cs_manifest_create adds one per
 * entry; more references to a manifest add none); a stripe's live
 * bytes are the stored bytes of its live chunks; the pool counters are the
 * sums (logical bytes: size x refcount of live manifests; physical bytes:
 * the committed fill of every stripe on every copy).
 *
 * The walk reads one snapshot (one read transaction: it pins pages for its
 * duration, but sees the counters exactly as the same commits left them).
 * Memory: a hash map entry (~70 bytes) per chunk named by a live manifest
 * and per stripe holding one. Fixes are differences (recomputed - stored in
 * the snapshot) added to the current values in bounded commits, so commits
 * that landed during the walk are not undone. fsck excludes GC (gc_run_mu).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkstore/cs_internal.h"
#include "core/log.h"

#define CS_FSCK_BATCH 4096u
#define CS_FSCK_SEEN (1ull << 63) /* chunk map: the index has the chunk */
#define CS_FSCK_LOGS 20		  /* problems logged one by one */

struct cs_fix {
	enum meta_table tab;
	uint8_t key[4 + CS_FP_LEN]; /* chunk key, or the 12-byte stripe key */
	size_t klen;
	int64_t delta; /* refcount or live bytes */
};

struct cs_fsck {
	struct cs_pool *pool;
	struct cs_check_report *rep;
	cs_progress_fn fn;
	void *arg;
	struct cs_hmap refs;  /* fp -> expected refcount (| CS_FSCK_SEEN) */
	struct cs_hmap slive; /* stripe id -> expected live bytes */
	struct cs_stats_rec calc;
	struct cs_fix *fixes;
	size_t nfixes, cap_fixes;
	struct cs_stats_delta sdelta;
	size_t pos;
};

static void cs_fsck_problem(struct cs_fsck *f, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cs_fsck_problem(struct cs_fsck *f, bool fatal, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!f->rep->problems)
		snprintf(f->rep->first_problem, sizeof(f->rep->first_problem), "%s", msg);
	f->rep->problems++;
	if (fatal)
		f->rep->unrecoverable++;
	if (f->rep->problems <= CS_FSCK_LOGS)
		log_warn(CS_TAG, "fsck: %s", msg);
}

static int cs_fsck_add_fix(struct cs_fsck *f, enum meta_table tab, const uint8_t *key, size_t kl,
			   int64_t delta)
{
	if (f->nfixes == f->cap_fixes) {
		size_t cap = f->cap_fixes ? f->cap_fixes * 2 : 64;
		struct cs_fix *nf = realloc(f->fixes, cap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		f->fixes = nf;
		f->cap_fixes = cap;
	}
	struct cs_fix *x = &f->fixes[f->nfixes++];
	x->tab = tab;
	memcpy(x->key, key, kl);
	x->klen = kl;
	x->delta = delta;
	return 0;
}

static void cs_hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The entries of one live manifest: each non-zero entry expects one
 * reference on its chunk. */
static int cs_fsck_entries(struct cs_fsck *f, struct meta_txn *txn, const uint8_t *mkey,
			   const struct cs_mhdr_rec *h)
{
	struct meta_cursor *cur = NULL;
	uint8_t key[4 + CS_MID_LEN + 8];
	char mid[2 * CS_MID_LEN + 1];
	uint64_t size = 0, nchunks = 0;
	const void *k, *v;
	size_t kl, vl;
	cs_hex(mkey + 4, CS_MID_LEN, mid);
	memcpy(key, mkey, 4 + CS_MID_LEN);
	meta_be64(key + 4 + CS_MID_LEN, 0);
	int rc = meta_cursor_open(txn, META_T_MANIFESTS, &cur);
	if (rc < 0)
		return rc;
	rc = meta_cursor_seek(cur, key, sizeof(key), &k, &kl, &v, &vl);
	while (rc == 0 && kl == sizeof(key) && !memcmp(k, mkey, 4 + CS_MID_LEN)) {
		struct cs_ment_rec_hdr rh;
		if (vl < sizeof(rh)) {
			cs_fsck_problem(f, true, "manifest %s: short entry record", mid);
			break;
		}
		memcpy(&rh, v, sizeof(rh));
		if (rh.version > CS_MENT_VERSION ||
		    vl != sizeof(rh) + (size_t)rh.count * sizeof(struct cs_ment)) {
			cs_fsck_problem(f, true, "manifest %s: bad entry record", mid);
			break;
		}
		if (meta_get_be64((const uint8_t *)k + 4 + CS_MID_LEN) != size)
			cs_fsck_problem(f, true,
					"manifest %s: entry record at %" PRIu64 " where %" PRIu64
					" was expected",
					mid, meta_get_be64((const uint8_t *)k + 4 + CS_MID_LEN),
					size);
		for (unsigned i = 0; i < rh.count; i++) {
			struct cs_ment e;
			memcpy(&e, (const uint8_t *)v + sizeof(rh) + i * sizeof(e), sizeof(e));
			size += e.len;
			nchunks++;
			if (e.flags & CS_MENT_ZERO)
				continue;
			uint64_t *c = cs_hmap_put(&f->refs, e.fp);
			if (!c) {
				rc = -ENOMEM;
				goto out;
			}
			*c += 1;
		}
		rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
	}
	if (rc < 0 && rc != CAIRN_ENOTFOUND)
		goto out;
	rc = 0;
	if (size != h->size || nchunks != h->nchunks)
		cs_fsck_problem(f, true,
				"manifest %s: entries cover %" PRIu64 " bytes in %" PRIu64
				" chunks, header says %" PRIu64 " in %" PRIu64,
				mid, size, nchunks, h->size, h->nchunks);
out:
	meta_cursor_close(cur);
	return rc;
}

static int cs_fsck_manifests(struct cs_fsck *f, struct meta_txn *txn)
{
	struct meta_cursor *cur = NULL;
	const void *k, *v;
	size_t kl, vl;
	uint64_t n = 0;
	int rc = meta_cursor_open(txn, META_T_MHDR, &cur);
	if (rc < 0)
		return rc;
	for (rc = meta_cursor_seek(cur, NULL, 0, &k, &kl, &v, &vl); rc == 0;
	     rc = meta_cursor_next(cur, &k, &kl, &v, &vl)) {
		struct cs_mhdr_rec h;
		uint8_t mkey[4 + CS_MID_LEN];
		f->rep->checked++;
		if (++n % CS_FSCK_BATCH == 0 && f->fn)
			f->fn(f->arg, "manifests", n, 0);
		if (kl != sizeof(mkey) || vl < sizeof(h)) {
			cs_fsck_problem(f, true, "manifest header with a bad key or value");
			continue;
		}
		memcpy(mkey, k, kl);
		memcpy(&h, v, sizeof(h));
		if (h.version > CS_MHDR_VERSION) {
			rc = CAIRN_EFORMAT; /* a newer build wrote it */
			goto out;
		}
		if (h.refcount == 0)
			continue; /* dead or doomed: holds no references */
		f->calc.manifests++;
		f->calc.logical_bytes += h.size * h.refcount;
		if (h.flags & CS_MHDR_INLINE)
			continue;
		rc = cs_fsck_entries(f, txn, mkey, &h);
		if (rc < 0)
			goto out;
	}
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
out:
	meta_cursor_close(cur);
	return rc;
}

static int cs_fsck_chunks(struct cs_fsck *f, struct meta_txn *txn)
{
	struct meta_cursor *cur = NULL;
	const void *k, *v;
	size_t kl, vl;
	uint64_t n = 0;
	char fp[2 * CS_FP_LEN + 1];
	int rc = meta_cursor_open(txn, META_T_CHUNKS, &cur);
	if (rc < 0)
		return rc;
	for (rc = meta_cursor_seek(cur, NULL, 0, &k, &kl, &v, &vl); rc == 0;
	     rc = meta_cursor_next(cur, &k, &kl, &v, &vl)) {
		struct cs_chunk_rec r;
		uint8_t key[4 + CS_FP_LEN];
		f->rep->checked++;
		if (++n % CS_FSCK_BATCH == 0 && f->fn)
			f->fn(f->arg, "chunks", n, 0);
		if (kl != sizeof(key) || vl < sizeof(r)) {
			cs_fsck_problem(f, true, "chunk index entry with a bad key or value");
			continue;
		}
		memcpy(key, k, kl);
		memcpy(&r, v, sizeof(r));
		if (r.version > CS_CHUNK_VERSION) {
			rc = CAIRN_EFORMAT; /* a newer build wrote it */
			goto out;
		}
		uint64_t *c = cs_hmap_find(&f->refs, key + 4);
		uint64_t want = c ? *c & ~CS_FSCK_SEEN : 0;
		if (c)
			*c |= CS_FSCK_SEEN;
		if (want != r.refcount) {
			cs_hex(key + 4, CS_FP_LEN, fp);
			cs_fsck_problem(f, false,
					"chunk %s: refcount %" PRIu64 ", manifests name it %" PRIu64
					" times",
					fp, r.refcount, want);
			rc = cs_fsck_add_fix(f, META_T_CHUNKS, key, sizeof(key),
					     (int64_t)want - (int64_t)r.refcount);
			if (rc < 0)
				goto out;
		}
		if (!want)
			continue;
		f->calc.chunks++;
		f->calc.unique_bytes += r.raw_len;
		f->calc.stored_bytes += r.stored_len;
		uint8_t sk[12];
		cs_key_stripe(sk, cs_stripe_part(f->pool, r.stripe_id), r.stripe_id);
		const void *sv;
		size_t svl;
		rc = meta_get(txn, META_T_STRIPES, sk, sizeof(sk), &sv, &svl);
		if (rc == CAIRN_ENOTFOUND) {
			cs_hex(key + 4, CS_FP_LEN, fp);
			cs_fsck_problem(f, true,
					"chunk %s: its stripe %016" PRIx64 " has no record", fp,
					r.stripe_id);
			continue;
		}
		if (rc < 0)
			goto out;
		uint64_t *l = cs_hmap_put(&f->slive, &r.stripe_id);
		if (!l) {
			rc = -ENOMEM;
			goto out;
		}
		*l += r.stored_len;
	}
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
out:
	meta_cursor_close(cur);
	return rc;
}

static int cs_fsck_stripes(struct cs_fsck *f, struct meta_txn *txn)
{
	struct meta_cursor *cur = NULL;
	const void *k, *v;
	size_t kl, vl;
	int rc = meta_cursor_open(txn, META_T_STRIPES, &cur);
	if (rc < 0)
		return rc;
	for (rc = meta_cursor_seek(cur, NULL, 0, &k, &kl, &v, &vl); rc == 0;
	     rc = meta_cursor_next(cur, &k, &kl, &v, &vl)) {
		struct cs_stripe_rec r;
		f->rep->checked++;
		if (kl != 12 || vl < sizeof(r)) {
			cs_fsck_problem(f, true, "stripe record with a bad key or value");
			continue;
		}
		memcpy(&r, v, sizeof(r));
		if (r.version > CS_STRIPE_VERSION) {
			rc = CAIRN_EFORMAT; /* a newer build wrote it */
			goto out;
		}
		uint64_t id = meta_get_be64((const uint8_t *)k + 4);
		uint64_t *l = cs_hmap_find(&f->slive, &id);
		uint64_t want = l ? *l : 0;
		f->calc.stripes++;
		f->calc.physical_bytes += cs_stripe_physical(&r);
		if (want != r.live_bytes) {
			cs_fsck_problem(f, false,
					"stripe %016" PRIx64 ": live bytes %" PRIu64
					", its live chunks hold %" PRIu64,
					id, r.live_bytes, want);
			rc = cs_fsck_add_fix(f, META_T_STRIPES, k, kl,
					     (int64_t)want - (int64_t)r.live_bytes);
			if (rc < 0)
				goto out;
		}
	}
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
out:
	meta_cursor_close(cur);
	return rc;
}

static void cs_fsck_missing(struct cs_fsck *f)
{
	char fp[2 * CS_FP_LEN + 1];
	for (size_t i = 0; i < f->refs.cap; i++) {
		const struct cs_hslot *s = &f->refs.slots[i];
		if (!s->used || (s->val & CS_FSCK_SEEN))
			continue;
		cs_hex(s->key, CS_FP_LEN, fp);
		cs_fsck_problem(f, true,
				"chunk %s: named %" PRIu64
				" times by live manifests, not in the index",
				fp, s->val);
	}
}

static void cs_fsck_counter(struct cs_fsck *f, const char *name, uint64_t stored, uint64_t calc,
			    int64_t *delta)
{
	if (stored == calc)
		return;
	cs_fsck_problem(f, false, "pool counter %s is %" PRIu64 ", recomputed %" PRIu64, name,
			stored, calc);
	*delta = (int64_t)(calc - stored);
}

static int cs_fsck_fix_fn(struct cs_txn *t, void *arg)
{
	struct cs_fsck *f = arg;
	for (unsigned n = 0; f->pos < f->nfixes && n < CS_FSCK_BATCH; n++, f->pos++) {
		const struct cs_fix *x = &f->fixes[f->pos];
		const void *v;
		size_t vl;
		int rc = meta_get(t->txn, x->tab, x->key, x->klen, &v, &vl);
		if (rc == CAIRN_ENOTFOUND)
			continue; /* freed since: nothing to fix */
		if (rc < 0)
			return rc;
		if (x->tab == META_T_CHUNKS) {
			struct cs_chunk_rec r;
			if (vl < sizeof(r))
				continue;
			memcpy(&r, v, sizeof(r));
			int64_t nv = (int64_t)r.refcount + x->delta;
			r.refcount = nv < 0 ? 0 : (uint64_t)nv;
			rc = meta_put(t->txn, x->tab, x->key, x->klen, &r, sizeof(r), 0);
		} else {
			struct cs_stripe_rec r;
			if (vl < sizeof(r))
				continue;
			memcpy(&r, v, sizeof(r));
			int64_t nv = (int64_t)r.live_bytes + x->delta;
			r.live_bytes = nv < 0 ? 0 : (uint64_t)nv;
			rc = meta_put(t->txn, x->tab, x->key, x->klen, &r, sizeof(r), 0);
		}
		if (rc < 0)
			return rc;
	}
	if (f->pos == f->nfixes)
		t->d = f->sdelta; /* the counters, with the last batch */
	return 0;
}

int cs_fsck(struct cs_pool *pool, bool fix, struct cs_check_report *rep, cs_progress_fn fn,
	    void *arg)
{
	struct cs_check_report dummy;
	struct meta_txn *txn = NULL;
	if (!rep)
		rep = &dummy;
	memset(rep, 0, sizeof(*rep));
	struct cs_fsck f = {.pool = pool, .rep = rep, .fn = fn, .arg = arg};
	int rc = cs_hmap_init(&f.refs, CS_FP_LEN);
	if (rc == 0)
		rc = cs_hmap_init(&f.slive, 8);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&pool->gc_run_mu);
	rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		goto out;
	if (fn)
		fn(arg, "manifests", 0, 0);
	rc = cs_fsck_manifests(&f, txn);
	if (rc < 0)
		goto out;
	if (fn)
		fn(arg, "chunks", 0, 0);
	rc = cs_fsck_chunks(&f, txn);
	if (rc < 0)
		goto out;
	cs_fsck_missing(&f);
	if (fn)
		fn(arg, "stripes", 0, 0);
	rc = cs_fsck_stripes(&f, txn);
	if (rc < 0)
		goto out;
	const void *v;
	size_t vl;
	struct cs_stats_rec st = {0};
	rc = meta_get(txn, META_T_POOL, "stats", 5, &v, &vl);
	if (rc == 0)
		memcpy(&st, v, vl < sizeof(st) ? vl : sizeof(st));
	else if (rc != CAIRN_ENOTFOUND)
		goto out;
	meta_txn_abort(txn);
	txn = NULL;
	struct cs_stats_delta *d = &f.sdelta;
	cs_fsck_counter(&f, "logical_bytes", st.logical_bytes, f.calc.logical_bytes,
			&d->logical_bytes);
	cs_fsck_counter(&f, "unique_bytes", st.unique_bytes, f.calc.unique_bytes, &d->unique_bytes);
	cs_fsck_counter(&f, "stored_bytes", st.stored_bytes, f.calc.stored_bytes, &d->stored_bytes);
	cs_fsck_counter(&f, "physical_bytes", st.physical_bytes, f.calc.physical_bytes,
			&d->physical_bytes);
	cs_fsck_counter(&f, "chunks", st.chunks, f.calc.chunks, &d->chunks);
	cs_fsck_counter(&f, "manifests", st.manifests, f.calc.manifests, &d->manifests);
	cs_fsck_counter(&f, "stripes", st.stripes, f.calc.stripes, &d->stripes);
	rc = 0;
	if (fix && rep->problems > rep->unrecoverable) {
		if (fn)
			fn(arg, "fix", 0, f.nfixes);
		do {
			rc = cs_commit(pool, NULL, cs_fsck_fix_fn, &f);
			if (rc < 0)
				goto out;
			if (fn)
				fn(arg, "fix", f.pos, f.nfixes);
		} while (f.pos < f.nfixes);
		rep->fixed = rep->problems - rep->unrecoverable;
		log_info(CS_TAG, "fsck: fixed %" PRIu64 " problems", rep->fixed);
	}
out:
	meta_txn_abort(txn);
	pthread_mutex_unlock(&pool->gc_run_mu);
	cs_hmap_free(&f.refs);
	cs_hmap_free(&f.slive);
	free(f.fixes);
	return rc;
}
