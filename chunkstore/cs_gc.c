/* chunkstore/cs_gc.c - garbage collection under grace periods.
 *
 * Invariant: nothing is freed that a reader or writer could still reach.
 * A pass works in two halves around one cs_epoch_wait():
 *
 *  1. (a) the committer starts recording, for the whole pass, every chunk
 *     that becomes live and every stripe whose live bytes grow; (b) a
 *     snapshot of the next stripe id and the busy stripes; (c) scans, in
 *     short read transactions: chunks at refcount 0, stripes with no live
 *     bytes (not busy, older than the snapshot), unit files without a stripe
 *     record; (d) AFTER the scans, every manifest at refcount 0 is marked
 *     DOOMED (committed): no reader opens it from then on.
 *  2. cs_epoch_wait(): every reader and writer registered before it has
 *     left, in particular everyone who looked up a candidate while it was
 *     still live.
 *  3. in bounded commits: doomed manifests are deleted; candidate chunks
 *     still at 0 and not recorded live since (1a) lose their index entry;
 *     candidate stripes still at 0 live bytes, not grown since (1a) and not
 *     busy lose their record (pool stripes and physical bytes drop); unit
 *     files of candidates without a record are kept for unlinking.
 *  4. a second grace period, then the unit files are unlinked and their
 *     directories fsynced. A crash before that leaves files without a
 *     record: the next pass's scan (1c) finds them.
 *
 * Why this order is safe:
 *  - a writer only deduplicates against a live chunk (cs_chunk_lookup), so
 *    a candidate (dead at its scan and never live again before step 3) was
 *    looked up, if at all, before the scan: by a writer registered before
 *    the wait. A dead entry that a fresh copy replaces is recorded live.
 *  - a reader opens only a manifest not yet doomed. A manifest referring to
 *    a candidate chunk, or to a chunk in a candidate stripe, was dead at
 *    that scan, so it is doomed in (1d): a reader of it registered before
 *    the mark, i.e. before the wait.
 *  - every record in a stripe not busy at (1b) was appended before (1b), by
 *    a writer registered before the wait; a stripe that gains a live chunk
 *    after (1a) (commit, revival, a moved dead entry) is recorded.
 * Chunk and stripe freeing subtracts nothing from the live counters: a
 * chunk's bytes left them when it died. Physical bytes drop with the
 * stripe record.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/cs_internal.h"
#include "core/fault.h"
#include "core/io.h"
#include "core/log.h"
#include "ring/ring.h"

#define CS_GC_BATCH 4096u	       /* items per transaction */
#define CS_GC_BURST_MANIFESTS 1024u    /* dead manifests that start a pass early */
#define CS_GC_COMPACT_PCT 50u	       /* background compaction: stripes under 50% live */
#define CS_CTR_MASK ((1ull << 48) - 1) /* stripe id: node_id << 48 | counter */

/* ---- hash map ---- */

static uint64_t cs_hmix(const void *key, size_t klen)
{
	uint64_t x = 0;
	memcpy(&x, key, klen < 8 ? klen : 8);
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

int cs_hmap_init(struct cs_hmap *m, size_t klen)
{
	memset(m, 0, sizeof(*m));
	if (klen == 0 || klen > sizeof(m->slots->key))
		return CAIRN_EINVAL;
	m->klen = klen;
	return 0;
}

void cs_hmap_free(struct cs_hmap *m)
{
	if (!m)
		return;
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}

void cs_hmap_clear(struct cs_hmap *m)
{
	if (m->slots)
		memset(m->slots, 0, m->cap * sizeof(*m->slots));
	m->n = 0;
}

static struct cs_hslot *cs_hmap_slot(struct cs_hslot *slots, size_t cap, size_t klen,
				     const void *key)
{
	size_t i = (size_t)cs_hmix(key, klen) & (cap - 1);
	for (;;) {
		struct cs_hslot *s = &slots[i];
		if (!s->used || !memcmp(s->key, key, klen))
			return s;
		i = (i + 1) & (cap - 1);
	}
}

uint64_t *cs_hmap_find(const struct cs_hmap *m, const void *key)
{
	if (!m->cap)
		return NULL;
	struct cs_hslot *s = cs_hmap_slot(m->slots, m->cap, m->klen, key);
	return s->used ? &s->val : NULL;
}

uint64_t *cs_hmap_put(struct cs_hmap *m, const void *key)
{
	if ((m->n + 1) * 10 > m->cap * 7) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct cs_hslot *ns = calloc(cap, sizeof(*ns));
		if (!ns)
			return NULL;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].used)
				*cs_hmap_slot(ns, cap, m->klen, m->slots[i].key) = m->slots[i];
		free(m->slots);
		m->slots = ns;
		m->cap = cap;
	}
	struct cs_hslot *s = cs_hmap_slot(m->slots, m->cap, m->klen, key);
	if (!s->used) {
		s->used = 1;
		memcpy(s->key, key, m->klen);
		s->val = 0;
		m->n++;
	}
	return &s->val;
}

/* ---- busy stripes ---- */

int cs_stripe_busy_add(struct cs_pool *pool, uint64_t id)
{
	int rc = 0;
	pthread_mutex_lock(&pool->busy_mu);
	if (pool->nbusy == pool->cap_busy) {
		size_t cap = pool->cap_busy ? pool->cap_busy * 2 : 16;
		uint64_t *nb = realloc(pool->busy, cap * sizeof(*nb));
		if (!nb) {
			rc = -ENOMEM;
			goto out;
		}
		pool->busy = nb;
		pool->cap_busy = cap;
	}
	pool->busy[pool->nbusy++] = id;
out:
	pthread_mutex_unlock(&pool->busy_mu);
	return rc;
}

void cs_stripe_busy_del(struct cs_pool *pool, uint64_t id)
{
	pthread_mutex_lock(&pool->busy_mu);
	for (size_t i = 0; i < pool->nbusy; i++)
		if (pool->busy[i] == id) {
			pool->busy[i] = pool->busy[--pool->nbusy];
			break;
		}
	pthread_mutex_unlock(&pool->busy_mu);
}

bool cs_stripe_busy(struct cs_pool *pool, uint64_t id)
{
	bool b = false;
	pthread_mutex_lock(&pool->busy_mu);
	for (size_t i = 0; i < pool->nbusy && !b; i++)
		b = pool->busy[i] == id;
	pthread_mutex_unlock(&pool->busy_mu);
	return b;
}

/* ---- committer hooks ---- */

void cs_gc_note_live(struct cs_pool *pool, const uint8_t fp[CS_FP_LEN], uint64_t stripe_id)
{
	pthread_mutex_lock(&pool->gc_mu);
	if (pool->gc_active && !pool->gc_overflow) {
		uint8_t sk[8];
		memcpy(sk, &stripe_id, 8);
		/* Only candidates need a revival record: the set stays as
		 * small as the dead chunks, however much is written meanwhile. */
		bool want_fp = !pool->gc_cand || cs_hmap_find(pool->gc_cand, fp);
		if (!pool->gc_revived || !pool->gc_touched ||
		    (want_fp && !cs_hmap_put(pool->gc_revived, fp)) ||
		    !cs_hmap_put(pool->gc_touched, sk))
			pool->gc_overflow = true; /* forget nothing: free nothing */
	}
	pthread_mutex_unlock(&pool->gc_mu);
}

void cs_gc_note_dead(struct cs_pool *pool)
{
	if (atomic_fetch_add(&pool->gc_dead, 1) + 1 == CS_GC_BURST_MANIFESTS) {
		pthread_mutex_lock(&pool->gct_mu);
		pool->gct_kick = true;
		pthread_cond_broadcast(&pool->gct_cv);
		pthread_mutex_unlock(&pool->gct_mu);
	}
}

void cs_gc_init(struct cs_pool *pool)
{
	pthread_mutex_init(&pool->busy_mu, NULL);
	pthread_mutex_init(&pool->gc_mu, NULL);
	pthread_mutex_init(&pool->gc_run_mu, NULL);
	pthread_mutex_init(&pool->gct_mu, NULL);
	pthread_cond_init(&pool->gct_cv, NULL);
	/* Without them (no memory) every pass frees nothing: see begin. */
	pool->gc_revived = calloc(1, sizeof(struct cs_hmap));
	pool->gc_touched = calloc(1, sizeof(struct cs_hmap));
	if (pool->gc_revived && cs_hmap_init(pool->gc_revived, CS_FP_LEN) < 0) {
		free(pool->gc_revived);
		pool->gc_revived = NULL;
	}
	if (pool->gc_touched && cs_hmap_init(pool->gc_touched, 8) < 0) {
		free(pool->gc_touched);
		pool->gc_touched = NULL;
	}
	atomic_init(&pool->gc_dead, 0);
}

void cs_gc_destroy(struct cs_pool *pool)
{
	cs_hmap_free(pool->gc_revived);
	cs_hmap_free(pool->gc_touched);
	free(pool->gc_revived);
	free(pool->gc_touched);
	free(pool->busy);
	pthread_mutex_destroy(&pool->busy_mu);
	pthread_mutex_destroy(&pool->gc_mu);
	pthread_mutex_destroy(&pool->gc_run_mu);
	pthread_mutex_destroy(&pool->gct_mu);
	pthread_cond_destroy(&pool->gct_cv);
}

/* ---- a pass ---- */

struct cs_gc_stripe {
	uint64_t id;
	uint32_t part;
	uint8_t k, m;
	uint32_t devs[CS_MAX_FRAGS];
};

struct cs_gc_file {
	uint64_t id;
	char path[CS_PATH_MAX];
	char dir[CS_PATH_MAX];
};

struct cs_gc {
	struct cs_pool *pool;
	struct cs_check_report *rep;
	cs_progress_fn fn;
	void *arg;
	/* snapshot (1b) */
	uint64_t wm;	/* stripe counters below this were allocated before it */
	uint64_t *busy; /* busy stripes then */
	size_t nbusy;
	/* candidates */
	uint8_t (*chunks)[4 + CS_FP_LEN];
	size_t nchunks, cap_chunks;
	struct cs_gc_stripe *stripes;
	size_t nstripes, cap_stripes;
	struct cs_gc_file *files;
	size_t nfiles, cap_files;
	uint8_t (*mids)[4 + CS_MID_LEN]; /* doomed manifests' keys */
	size_t nmids, cap_mids;
	struct cs_hmap cand; /* candidate fingerprints */
	/* batch cursors */
	uint8_t resume[64];
	size_t resume_len;
	bool started, end;
	size_t pos; /* index into a candidate array */
	/* results */
	uint64_t n_manifests, n_chunks, n_stripes, n_files, phys_freed;
};

static void cs_gc_progress(struct cs_gc *g, const char *phase, uint64_t done, uint64_t total)
{
	if (g->fn)
		g->fn(g->arg, phase, done, total);
}

static int cs_gc_begin_fn(struct cs_txn *t, void *arg)
{
	(void)arg;
	struct cs_pool *pool = t->pool;
	pthread_mutex_lock(&pool->gc_mu);
	pool->gc_overflow = !pool->gc_revived || !pool->gc_touched;
	if (!pool->gc_overflow) {
		/* freed, not cleared: a big pass does not pin its memory */
		cs_hmap_free(pool->gc_revived);
		cs_hmap_free(pool->gc_touched);
	}
	pool->gc_active = true;
	pthread_mutex_unlock(&pool->gc_mu);
	return 0;
}

static bool cs_gc_was_busy(const struct cs_gc *g, uint64_t id)
{
	if ((id >> 48) != g->pool->rec.node_id || (id & CS_CTR_MASK) >= g->wm)
		return true; /* another node's, or born after the snapshot */
	for (size_t i = 0; i < g->nbusy; i++)
		if (g->busy[i] == id)
			return true;
	return false;
}

/* Walks table tab in read transactions of CS_GC_BATCH records each, calling
 * fn on every record (key and value valid during the call). */
static int cs_gc_scan(struct cs_gc *g, enum meta_table tab, const char *phase,
		      int (*fn)(struct cs_gc *, const uint8_t *, size_t, const void *, size_t))
{
	struct meta_txn *txn = NULL;
	struct meta_cursor *cur = NULL;
	uint8_t last[META_KEY_MAX];
	size_t last_len = 0;
	bool first = true;
	uint64_t done = 0;
	int rc = 0;
	for (;;) {
		rc = meta_txn_begin(g->pool->meta, false, &txn);
		if (rc < 0)
			goto out;
		rc = meta_cursor_open(txn, tab, &cur);
		if (rc < 0)
			goto out;
		const void *k, *v;
		size_t kl, vl;
		rc = meta_cursor_seek(cur, first ? NULL : last, first ? 0 : last_len, &k, &kl, &v,
				      &vl);
		if (rc == 0 && !first && kl == last_len && !memcmp(k, last, kl))
			rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
		first = false;
		unsigned n = 0;
		while (rc == 0 && n < CS_GC_BATCH) {
			rc = fn(g, k, kl, v, vl);
			if (rc < 0)
				goto out;
			memcpy(last, k, kl);
			last_len = kl;
			n++;
			rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
		}
		done += n;
		g->rep->checked += n;
		meta_cursor_close(cur);
		cur = NULL;
		meta_txn_abort(txn);
		txn = NULL;
		cs_gc_progress(g, phase, done, 0);
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			break;
		}
		if (rc < 0)
			goto out;
	}
out:
	meta_cursor_close(cur);
	meta_txn_abort(txn);
	return rc;
}

static int cs_gc_chunk_cb(struct cs_gc *g, const uint8_t *k, size_t kl, const void *v, size_t vl)
{
	struct cs_chunk_rec r;
	if (kl != 4 + CS_FP_LEN || vl < sizeof(r))
		return 0; /* not ours to judge: fsck reports it */
	memcpy(&r, v, sizeof(r));
	if (r.refcount != 0 || r.version > CS_CHUNK_VERSION)
		return 0; /* never free what this build does not understand */
	if (cs_grow((void **)&g->chunks, &g->cap_chunks, g->nchunks, sizeof(*g->chunks)) < 0)
		return -ENOMEM;
	memcpy(g->chunks[g->nchunks++], k, kl);
	return 0;
}

static int cs_gc_stripe_cb(struct cs_gc *g, const uint8_t *k, size_t kl, const void *v, size_t vl)
{
	struct cs_stripe_rec r;
	if (kl != 12 || vl < sizeof(r))
		return 0;
	memcpy(&r, v, sizeof(r));
	uint64_t id = meta_get_be64(k + 4);
	if (r.live_bytes != 0 || r.version > CS_STRIPE_VERSION || cs_gc_was_busy(g, id) ||
	    (unsigned)r.k + r.m > CS_MAX_FRAGS)
		return 0;
	if (cs_grow((void **)&g->stripes, &g->cap_stripes, g->nstripes, sizeof(*g->stripes)) < 0)
		return -ENOMEM;
	struct cs_gc_stripe *s = &g->stripes[g->nstripes++];
	s->id = id;
	s->part = meta_get_be32(k);
	s->k = r.k;
	s->m = r.m;
	memcpy(s->devs, r.devs, sizeof(s->devs));
	return 0;
}

/* Parses "<16 hex>.u<n>" or ".p<n>". */
static bool cs_unit_name(const char *name, uint64_t *id)
{
	char *end;
	if (strlen(name) < 19 || name[16] != '.' || (name[17] != 'u' && name[17] != 'p'))
		return false;
	for (int i = 0; i < 16; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	*id = strtoull(name, &end, 16);
	if (end != name + 16)
		return false;
	const char *p = name + 18;
	if (!*p)
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* A unit file's temp copy ("<unit>.tmp": sealing, scrub and repair write
 * one, then rename or remove it) older than this process is left by a
 * crash: removed here. Returns true for any .tmp name (never a unit). */
static bool cs_gc_stale_tmp(struct cs_gc *g, const char *dir, const char *name)
{
	size_t nl = strlen(name);
	char base[64], path[CS_PATH_MAX];
	uint64_t id;
	struct stat st;
	if (nl <= 4 || strcmp(name + nl - 4, ".tmp") != 0)
		return false;
	if (nl - 4 >= sizeof(base))
		return true;
	memcpy(base, name, nl - 4);
	base[nl - 4] = '\0';
	if (!cs_unit_name(base, &id) || cs_fmt(path, sizeof(path), "%s/%s", dir, name) < 0 ||
	    stat(path, &st) != 0 || st.st_mtime >= g->pool->opened)
		return true;
	if (unlink(path) == 0) {
		log_info(CS_TAG, "gc: removed %s, left by a crash", path);
		g->rep->checked++;
	}
	return true;
}

/* Unit files of stripes that were neither busy nor newer than the snapshot
 * and have no stripe record now. Cost: a readdir of every partition
 * directory on every device, O(files). */
static int cs_gc_scan_files(struct cs_gc *g)
{
	struct cs_pool *pool = g->pool;
	struct meta_txn *txn = NULL;
	int rc = 0;
	for (uint32_t d = 0; d < pool->ndev_dirs; d++) {
		if (!pool->dev_dirs[d][0])
			continue;
		char sdir[CS_PATH_MAX];
		if (cs_fmt(sdir, sizeof(sdir), "%s/stripes", pool->dev_dirs[d]) < 0)
			continue;
		DIR *top = opendir(sdir);
		if (!top)
			continue; /* a missing device holds nothing to free */
		struct dirent *pe;
		while ((pe = readdir(top))) {
			if (pe->d_name[0] == '.')
				continue;
			char pdir[CS_PATH_MAX];
			if (cs_fmt(pdir, sizeof(pdir), "%s/%s", sdir, pe->d_name) < 0)
				continue;
			DIR *pd = opendir(pdir);
			if (!pd)
				continue;
			struct dirent *fe;
			while ((fe = readdir(pd))) {
				uint64_t id;
				if (cs_gc_stale_tmp(g, pdir, fe->d_name))
					continue;
				if (!cs_unit_name(fe->d_name, &id) || cs_gc_was_busy(g, id))
					continue;
				if (!txn) {
					rc = meta_txn_begin(pool->meta, false, &txn);
					if (rc < 0) {
						closedir(pd);
						closedir(top);
						goto out;
					}
				}
				uint8_t key[12];
				cs_key_stripe(key, cs_stripe_part(pool, id), id);
				const void *v;
				size_t vl;
				rc = meta_get(txn, META_T_STRIPES, key, sizeof(key), &v, &vl);
				if (rc == 0)
					continue; /* has a record: the stripe scan decides */
				if (rc != CAIRN_ENOTFOUND) {
					closedir(pd);
					closedir(top);
					goto out;
				}
				rc = cs_grow((void **)&g->files, &g->cap_files, g->nfiles,
					     sizeof(*g->files));
				if (rc < 0) {
					closedir(pd);
					closedir(top);
					goto out;
				}
				struct cs_gc_file *f = &g->files[g->nfiles];
				f->id = id;
				if (cs_fmt(f->dir, sizeof(f->dir), "%s", pdir) < 0 ||
				    cs_fmt(f->path, sizeof(f->path), "%s/%s", pdir, fe->d_name) < 0)
					continue;
				g->nfiles++;
				g->rep->checked++;
			}
			closedir(pd);
			/* short read transactions: one per partition directory */
			meta_txn_abort(txn);
			txn = NULL;
		}
		closedir(top);
	}
	rc = 0;
out:
	meta_txn_abort(txn);
	return rc;
}

/* (1d): marks up to CS_GC_BATCH manifests at refcount 0 DOOMED, from
 * g->resume on. Keys are gathered first, then written (no writes under an
 * open cursor). */
static int cs_gc_doom_fn(struct cs_txn *t, void *arg)
{
	struct cs_gc *g = arg;
	struct meta_cursor *cur = NULL;
	uint8_t(*keys)[4 + CS_MID_LEN] = NULL;
	size_t nk = 0;
	const void *k, *v;
	size_t kl, vl;
	int rc = meta_cursor_open(t->txn, META_T_MHDR, &cur);
	if (rc < 0)
		return rc;
	keys = malloc(CS_GC_BATCH * sizeof(*keys));
	if (!keys) {
		rc = -ENOMEM;
		goto out;
	}
	rc = meta_cursor_seek(cur, g->started ? g->resume : NULL, g->started ? g->resume_len : 0,
			      &k, &kl, &v, &vl);
	if (rc == 0 && g->started && kl == g->resume_len && !memcmp(k, g->resume, kl))
		rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
	g->started = true;
	unsigned n = 0;
	while (rc == 0 && n < CS_GC_BATCH) {
		struct cs_mhdr_rec h;
		n++;
		if (kl == 4 + CS_MID_LEN && vl >= sizeof(h)) {
			memcpy(&h, v, sizeof(h));
			if (h.refcount == 0 && h.version <= CS_MHDR_VERSION)
				memcpy(keys[nk++], k, kl);
		}
		memcpy(g->resume, k, kl < sizeof(g->resume) ? kl : sizeof(g->resume));
		g->resume_len = kl < sizeof(g->resume) ? kl : sizeof(g->resume);
		rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
	}
	if (rc == CAIRN_ENOTFOUND) {
		g->end = true;
		rc = 0;
	}
	if (rc < 0)
		goto out;
	meta_cursor_close(cur);
	cur = NULL;
	if (g->nmids + nk > g->cap_mids) {
		size_t cap = g->cap_mids ? g->cap_mids : 256;
		while (cap < g->nmids + nk)
			cap *= 2;
		void *nm = realloc(g->mids, cap * sizeof(*g->mids));
		if (!nm) {
			rc = -ENOMEM;
			goto out;
		}
		g->mids = nm;
		g->cap_mids = cap;
	}
	for (size_t i = 0; i < nk; i++) {
		rc = meta_get(t->txn, META_T_MHDR, keys[i], sizeof(keys[i]), &v, &vl);
		if (rc < 0)
			goto out;
		uint8_t *copy = malloc(vl);
		if (!copy) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(copy, v, vl);
		struct cs_mhdr_rec h;
		memcpy(&h, copy, sizeof(h));
		if (h.flags & CS_MHDR_INLINE) {
			/* A reader copies inline bytes at open and never comes
			 * back: no grace needed. Deleting (not rewriting the
			 * bytes with a flag) is also what frees a full map. */
			free(copy);
			rc = meta_del(t->txn, META_T_MHDR, keys[i], sizeof(keys[i]));
			if (rc < 0)
				goto out;
			g->n_manifests++;
			continue;
		}
		if (!(h.flags & CS_MHDR_DOOMED)) {
			h.flags |= CS_MHDR_DOOMED;
			memcpy(copy, &h, sizeof(h));
			rc = meta_put(t->txn, META_T_MHDR, keys[i], sizeof(keys[i]), copy, vl, 0);
		}
		free(copy);
		if (rc < 0)
			goto out;
		/* deleted after the wait; if this commit fails, the pass ends */
		memcpy(g->mids[g->nmids++], keys[i], sizeof(keys[i]));
	}
out:
	meta_cursor_close(cur);
	free(keys);
	return rc;
}

/* (3) doomed manifests: entries first, header last, CS_GC_BATCH records per
 * call; a large manifest spans calls (no reader can reach it any more). */
static int cs_gc_free_mids_fn(struct cs_txn *t, void *arg)
{
	struct cs_gc *g = arg;
	struct meta_cursor *cur = NULL;
	unsigned budget = CS_GC_BATCH;
	int rc = 0;
	while (g->pos < g->nmids && budget) {
		const uint8_t *mk = g->mids[g->pos];
		const void *v;
		size_t vl;
		struct cs_mhdr_rec h;
		rc = meta_get(t->txn, META_T_MHDR, mk, 4 + CS_MID_LEN, &v, &vl);
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			g->pos++;
			continue;
		}
		if (rc < 0)
			goto out;
		if (vl < sizeof(h)) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		memcpy(&h, v, sizeof(h));
		if (h.refcount != 0 || !(h.flags & CS_MHDR_DOOMED)) {
			g->pos++; /* cannot happen (ref refuses dead); keep it */
			continue;
		}
		rc = meta_cursor_open(t->txn, META_T_MANIFESTS, &cur);
		if (rc < 0)
			goto out;
		uint8_t key[4 + CS_MID_LEN + 8];
		memcpy(key, mk, 4 + CS_MID_LEN);
		meta_be64(key + 4 + CS_MID_LEN, 0);
		const void *k;
		size_t kl;
		rc = meta_cursor_seek(cur, key, sizeof(key), &k, &kl, &v, &vl);
		while (rc == 0 && budget && kl == sizeof(key) && !memcmp(k, mk, 4 + CS_MID_LEN)) {
			rc = meta_cursor_del(cur);
			if (rc < 0)
				goto out;
			budget--;
			/* after a delete the cursor sits on the next record */
			rc = meta_cursor_seek(cur, key, sizeof(key), &k, &kl, &v, &vl);
		}
		if (rc < 0 && rc != CAIRN_ENOTFOUND)
			goto out;
		meta_cursor_close(cur);
		cur = NULL;
		rc = 0;
		if (!budget)
			break; /* entries may be left: the header stays until they are gone */
		rc = meta_del(t->txn, META_T_MHDR, mk, 4 + CS_MID_LEN);
		if (rc < 0)
			goto out;
		budget--;
		g->n_manifests++;
		g->pos++;
	}
out:
	meta_cursor_close(cur);
	return rc;
}

static bool cs_gc_revived(struct cs_pool *pool, const uint8_t *fp)
{
	pthread_mutex_lock(&pool->gc_mu);
	bool r =
	    pool->gc_overflow || !pool->gc_active || cs_hmap_find(pool->gc_revived, fp) != NULL;
	pthread_mutex_unlock(&pool->gc_mu);
	return r;
}

static bool cs_gc_touched(struct cs_pool *pool, uint64_t id)
{
	uint8_t sk[8];
	memcpy(sk, &id, 8);
	pthread_mutex_lock(&pool->gc_mu);
	bool r =
	    pool->gc_overflow || !pool->gc_active || cs_hmap_find(pool->gc_touched, sk) != NULL;
	pthread_mutex_unlock(&pool->gc_mu);
	return r;
}

static int cs_gc_free_chunks_fn(struct cs_txn *t, void *arg)
{
	struct cs_gc *g = arg;
	int rc = 0;
	for (unsigned n = 0; g->pos < g->nchunks && n < CS_GC_BATCH; n++, g->pos++) {
		const uint8_t *key = g->chunks[g->pos];
		if (cs_gc_revived(t->pool, key + 4))
			continue;
		const void *v;
		size_t vl;
		struct cs_chunk_rec r;
		rc = meta_get(t->txn, META_T_CHUNKS, key, 4 + CS_FP_LEN, &v, &vl);
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			return rc;
		if (vl < sizeof(r))
			continue;
		memcpy(&r, v, sizeof(r));
		if (r.refcount != 0)
			continue;
		if (FAULT("cs.gc_free_chunk"))
			return -EIO;
		rc = meta_del(t->txn, META_T_CHUNKS, key, 4 + CS_FP_LEN);
		if (rc < 0)
			return rc;
		g->n_chunks++;
		g->rep->freed_bytes += r.stored_len;
	}
	return 0;
}

/* Stripes freed here move to the front of g->stripes (g->n_stripes of
 * them) for unlinking. */
static int cs_gc_free_stripes_fn(struct cs_txn *t, void *arg)
{
	struct cs_gc *g = arg;
	int rc = 0;
	for (unsigned n = 0; g->pos < g->nstripes && n < CS_GC_BATCH; n++, g->pos++) {
		struct cs_gc_stripe *s = &g->stripes[g->pos];
		if (cs_gc_touched(t->pool, s->id) || cs_stripe_busy(t->pool, s->id))
			continue;
		uint8_t key[12];
		cs_key_stripe(key, s->part, s->id);
		const void *v;
		size_t vl;
		struct cs_stripe_rec r;
		rc = meta_get(t->txn, META_T_STRIPES, key, sizeof(key), &v, &vl);
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			return rc;
		if (vl < sizeof(r))
			continue;
		memcpy(&r, v, sizeof(r));
		if (r.live_bytes != 0)
			continue;
		rc = meta_del(t->txn, META_T_STRIPES, key, sizeof(key));
		if (rc < 0)
			return rc;
		uint64_t phys = cs_stripe_physical(&r);
		t->d.stripes--;
		t->d.physical_bytes -= (int64_t)phys;
		g->phys_freed += phys;
		s->k = r.k;
		s->m = r.m;
		memcpy(s->devs, r.devs, sizeof(s->devs));
		g->stripes[g->n_stripes++] = *s;
	}
	return 0;
}

/* Runs fn in bounded commits until it has walked its candidates (g->pos
 * reaches n, or g->end for the manifest walk). */
static int cs_gc_batches(struct cs_gc *g, cs_commit_fn fn, const char *phase, size_t n,
			 bool until_end)
{
	g->pos = 0;
	g->started = g->end = false;
	g->resume_len = 0;
	while (until_end ? !g->end : g->pos < n) {
		int rc = cs_commit(g->pool, NULL, fn, g);
		if (rc < 0)
			return rc;
		cs_gc_progress(g, phase, until_end ? 0 : g->pos, until_end ? 0 : n);
	}
	return 0;
}

static int cs_gc_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes the unit files of a freed stripe on all its devices (every name
 * it may have had: .u<i> for data and replicas, .p<j> for parity), and the
 * orphan files; then fsyncs each directory once. */
static void cs_gc_unlink(struct cs_gc *g)
{
	struct cs_pool *pool = g->pool;
	char **dirs = NULL;
	size_t nd = 0, capd = 0;
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	for (size_t i = 0; i < g->n_stripes; i++) {
		const struct cs_gc_stripe *s = &g->stripes[i];
		for (unsigned d = 0; d < (unsigned)s->k + s->m; d++) {
			bool any = false;
			for (unsigned u = 0; u < (unsigned)s->k + s->m; u++) {
				if (cs_unit_path(pool, s->devs[d], s->id, s->part, 0, dir,
						 sizeof(dir), path, sizeof(path)) < 0)
					break;
				char *dot = strrchr(path, '.');
				if (!dot)
					break;
				size_t room = sizeof(path) - (size_t)(dot - path);
				if (u < s->k)
					snprintf(dot, room, ".u%u", u);
				else
					snprintf(dot, room, ".p%u", u - s->k);
				if (unlink(path) == 0) {
					any = true;
					g->n_files++;
				} else if (errno != ENOENT) {
					log_warn(CS_TAG, "gc: unlink %s: %s", path,
						 strerror(errno));
				}
			}
			if (any && cs_grow((void **)&dirs, &capd, nd, sizeof(*dirs)) == 0 &&
			    (dirs[nd] = strdup(dir)))
				nd++;
		}
	}
	for (size_t i = 0; i < g->nfiles; i++) {
		if (unlink(g->files[i].path) == 0) {
			g->n_files++;
			if (cs_grow((void **)&dirs, &capd, nd, sizeof(*dirs)) == 0 &&
			    (dirs[nd] = strdup(g->files[i].dir)))
				nd++;
		} else if (errno != ENOENT) {
			log_warn(CS_TAG, "gc: unlink %s: %s", g->files[i].path, strerror(errno));
		}
	}
	if (nd)
		qsort(dirs, nd, sizeof(*dirs), cs_gc_strcmp);
	for (size_t i = 0; i < nd; i++) {
		if (i == 0 || strcmp(dirs[i], dirs[i - 1])) {
			int rc = io_fsync_dir(dirs[i]);
			if (rc < 0)
				log_warn(CS_TAG, "gc: fsync %s: %s", dirs[i], cairn_strerror(rc));
		}
	}
	for (size_t i = 0; i < nd; i++)
		free(dirs[i]);
	free(dirs);
}

static void cs_gc_end(struct cs_pool *pool)
{
	pthread_mutex_lock(&pool->gc_mu);
	pool->gc_active = false;
	pool->gc_cand = NULL;
	pthread_mutex_unlock(&pool->gc_mu);
}

static int cs_gc_pass(struct cs_gc *g)
{
	struct cs_pool *pool = g->pool;
	int rc;

	/* (1a) record revivals from here on, ordered with commits */
	rc = cs_commit(pool, NULL, cs_gc_begin_fn, NULL);
	if (rc < 0)
		return rc;
	/* (1b) the stripes that may still be written */
	pthread_mutex_lock(&pool->id_mu);
	g->wm = pool->next_stripe;
	pthread_mutex_lock(&pool->busy_mu);
	g->busy = malloc((pool->nbusy + 1) * sizeof(*g->busy));
	if (g->busy) {
		if (pool->nbusy)
			memcpy(g->busy, pool->busy, pool->nbusy * sizeof(*g->busy));
		g->nbusy = pool->nbusy;
	}
	pthread_mutex_unlock(&pool->busy_mu);
	pthread_mutex_unlock(&pool->id_mu);
	if (!g->busy)
		return -ENOMEM;
	/* (1c) scans; (1d) doom after them */
	rc = cs_gc_scan(g, META_T_CHUNKS, "scan chunks", cs_gc_chunk_cb);
	if (rc == 0)
		rc = cs_hmap_init(&g->cand, CS_FP_LEN);
	for (size_t i = 0; rc == 0 && i < g->nchunks; i++)
		if (!cs_hmap_put(&g->cand, g->chunks[i] + 4))
			rc = -ENOMEM;
	if (rc == 0) {
		pthread_mutex_lock(&pool->gc_mu);
		pool->gc_cand = &g->cand;
		pthread_mutex_unlock(&pool->gc_mu);
	}
	if (rc == 0)
		rc = cs_gc_scan(g, META_T_STRIPES, "scan stripes", cs_gc_stripe_cb);
	if (rc == 0)
		rc = cs_gc_scan_files(g);
	if (rc < 0)
		return rc;
	rc = cs_gc_batches(g, cs_gc_doom_fn, "mark manifests", 0, true);
	if (rc < 0)
		return rc;
	/* (2) */
	cs_gc_progress(g, "wait for readers and writers", 0, 0);
	cs_epoch_wait(pool);
	/* (3) */
	rc = cs_gc_batches(g, cs_gc_free_mids_fn, "free manifests", g->nmids, false);
	if (rc == 0)
		rc = cs_gc_batches(g, cs_gc_free_chunks_fn, "free chunks", g->nchunks, false);
	if (rc == 0)
		rc = cs_gc_batches(g, cs_gc_free_stripes_fn, "free stripes", g->nstripes, false);
	if (rc < 0)
		return rc;
	/* Orphan files: a record made since the scan would mean a writer
	 * committed into a stripe not busy at (1b): it was registered before
	 * the wait, so it has committed by now and the record shows. */
	struct meta_txn *txn = NULL;
	rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		return rc;
	size_t keep = 0;
	for (size_t i = 0; i < g->nfiles; i++) {
		uint8_t key[12];
		cs_key_stripe(key, cs_stripe_part(pool, g->files[i].id), g->files[i].id);
		const void *v;
		size_t vl;
		int grc = meta_get(txn, META_T_STRIPES, key, sizeof(key), &v, &vl);
		if (grc == CAIRN_ENOTFOUND && !cs_stripe_busy(pool, g->files[i].id))
			g->files[keep++] = g->files[i];
	}
	g->nfiles = keep;
	meta_txn_abort(txn);
	cs_gc_end(pool);
	/* (4) */
	if (g->n_stripes || g->nfiles) {
		cs_gc_progress(g, "unlink", 0, g->n_stripes + g->nfiles);
		cs_epoch_wait(pool);
		cs_gc_unlink(g);
		cs_gc_progress(g, "unlink", g->n_stripes + g->nfiles, g->n_stripes + g->nfiles);
	}
	return 0;
}

int cs_gc(struct cs_pool *pool, struct cs_check_report *rep, cs_progress_fn fn, void *arg)
{
	struct cs_check_report dummy;
	if (!rep)
		rep = &dummy;
	memset(rep, 0, sizeof(*rep));
	struct cs_gc g = {.pool = pool, .rep = rep, .fn = fn, .arg = arg};
	pthread_mutex_lock(&pool->gc_run_mu);
	atomic_store(&pool->gc_dead, 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = cs_gc_pass(&g);
	cs_gc_end(pool);
	pthread_mutex_unlock(&pool->gc_run_mu);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc < 0)
		log_err(CS_TAG, "gc pass: %s", cairn_strerror(rc));
	else if (g.n_manifests || g.n_chunks || g.n_stripes || g.n_files)
		log_info(CS_TAG,
			 "gc: freed %" PRIu64 " manifests, %" PRIu64 " chunks (%" PRIu64
			 " bytes), %" PRIu64 " stripes (%" PRIu64 " physical bytes), %" PRIu64
			 " unit files in %.3f s",
			 g.n_manifests, g.n_chunks, rep->freed_bytes, g.n_stripes, g.phys_freed,
			 g.n_files,
			 (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	free(g.busy);
	free(g.chunks);
	free(g.stripes);
	free(g.files);
	free(g.mids);
	cs_hmap_free(&g.cand);
	return rc;
}

/* ---- the background thread ---- */

static void *cs_gc_main(void *arg)
{
	struct cs_pool *pool = arg;
	uint64_t prev_cut = UINT64_MAX, closed_at = 0;
	pthread_mutex_lock(&pool->gct_mu);
	while (!pool->gct_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += pool->gc_interval;
		while (!pool->gct_stop && !pool->gct_kick)
			if (pthread_cond_timedwait(&pool->gct_cv, &pool->gct_mu, &ts) == ETIMEDOUT)
				break;
		if (pool->gct_stop)
			break;
		pool->gct_kick = false;
		pthread_mutex_unlock(&pool->gct_mu);
		struct cs_check_report rep;
		/* both log their own errors; what compaction empties, the
		 * next pass frees */
		int rc = cs_gc(pool, &rep, NULL, NULL);
		if (rc == 0)
			rc = cs_compact(pool, CS_GC_COMPACT_PCT, &rep, NULL, NULL);
		/* no chunk for a whole interval: seal what the workers hold */
		uint64_t cut = atomic_load_explicit(&pool->chunks_cut, memory_order_relaxed);
		if (cut == prev_cut && cut != closed_at) {
			rc = cs_seal_close_idle(pool);
			if (rc == 0)
				closed_at = cut;
		}
		prev_cut = cut;
		(void)rc;
		pthread_mutex_lock(&pool->gct_mu);
	}
	pthread_mutex_unlock(&pool->gct_mu);
	return NULL;
}

int cs_gc_thread_start(struct cs_pool *pool, int interval)
{
	pool->gc_interval = interval;
	if (interval < 0)
		return 0;
	int rc = pthread_create(&pool->gc_thread, NULL, cs_gc_main, pool);
	if (rc)
		return -rc;
	pool->gct_running = true;
	return 0;
}

void cs_gc_thread_stop(struct cs_pool *pool)
{
	if (!pool->gct_running)
		return;
	pthread_mutex_lock(&pool->gct_mu);
	pool->gct_stop = true;
	pthread_cond_broadcast(&pool->gct_cv);
	pthread_mutex_unlock(&pool->gct_mu);
	pthread_join(pool->gc_thread, NULL);
	pool->gct_running = false;
}
