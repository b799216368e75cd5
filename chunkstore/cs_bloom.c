/* chunkstore/cs_bloom.c - the dedup filter: a blocked Bloom filter over the
 * fingerprints in the chunk index, in front of the worker's LMDB lookup.
 *
 * Invariant: every committed index entry is in the current filter. A new
 * filter is published (bloom_next) before its scan's first snapshot, and the
 * committer adds each group's new entries after that group's LMDB commit, to
 * both filters: an entry committed before the publication is in the scan,
 * one committed after it is added. (A false negative would cost only a
 * duplicate copy: the commit finds the existing entry and references it.)
 * False positives cost one LMDB lookup; deleted chunks become false
 * positives until the next rebuild.
 *
 * Layout: 512-bit blocks (one cache line); a fingerprint (SHA-256, so its
 * bytes are already uniform) picks a block with its first 8 bytes and 7 bits
 * in it with the next 63 bits. Sized at 16 bits per entry for twice the
 * chunks found (about 0.1% false positives), rebuilt at twice the size once
 * full (then about 2.5%). Memory: 2 bytes per chunk x 2, at least 2 MiB.
 *
 * Threads: workers test under the read side of bloom_lk; the committer adds
 * (atomic OR) under the read side too; only the builder thread takes the
 * write side, to publish a new filter or swap it in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunkstore/cs_internal.h"
#include "core/log.h"

#define CS_BLOOM_BITS_PER 16u
#define CS_BLOOM_K 7u
#define CS_BLOOM_MIN (1u << 20) /* entries */
#define CS_BLOOM_SLICE 65536u

struct cs_bloom {
	_Atomic uint64_t *words; /* nblocks x 8 */
	uint64_t nblocks;	 /* a power of two */
	uint64_t cap;		 /* entries it was sized for */
	atomic_uint_fast64_t count, false_pos;
	atomic_bool asked; /* a rebuild was requested for it */
};

static struct cs_bloom *cs_bloom_new(uint64_t cap)
{
	struct cs_bloom *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	uint64_t bits = cap * CS_BLOOM_BITS_PER, nb = 1;
	while (nb * 512 < bits)
		nb <<= 1;
	b->nblocks = nb;
	b->cap = cap;
	b->words = calloc(nb * 8, sizeof(uint64_t));
	if (!b->words) {
		free(b);
		return NULL;
	}
	return b;
}

static void cs_bloom_free(struct cs_bloom *b)
{
	if (!b)
		return;
	free((void *)b->words);
	free(b);
}

static inline _Atomic uint64_t *cs_bloom_block(const struct cs_bloom *b,
					       const uint8_t fp[CS_FP_LEN], uint64_t *bits)
{
	uint64_t h0, h1;
	memcpy(&h0, fp, 8);
	memcpy(&h1, fp + 8, 8);
	*bits = h1;
	return b->words + (h0 & (b->nblocks - 1)) * 8;
}

static void cs_bloom_set(struct cs_bloom *b, const uint8_t fp[CS_FP_LEN])
{
	uint64_t h;
	_Atomic uint64_t *blk = cs_bloom_block(b, fp, &h);
	for (unsigned i = 0; i < CS_BLOOM_K; i++, h >>= 9)
		atomic_fetch_or_explicit(&blk[(h >> 6) & 7], 1ull << (h & 63),
					 memory_order_relaxed);
	atomic_fetch_add_explicit(&b->count, 1, memory_order_relaxed);
}

static bool cs_bloom_test(const struct cs_bloom *b, const uint8_t fp[CS_FP_LEN])
{
	uint64_t h;
	_Atomic uint64_t *blk = cs_bloom_block(b, fp, &h);
	for (unsigned i = 0; i < CS_BLOOM_K; i++, h >>= 9)
		if (!(atomic_load_explicit(&blk[(h >> 6) & 7], memory_order_relaxed) &
		      (1ull << (h & 63))))
			return false;
	return true;
}

static void cs_bloom_request(struct cs_pool *pool)
{
	pthread_mutex_lock(&pool->bloom_mu);
	pool->bloom_want = true;
	pthread_cond_signal(&pool->bloom_cv);
	pthread_mutex_unlock(&pool->bloom_mu);
}

bool cs_bloom_maybe(struct cs_pool *pool, const uint8_t fp[CS_FP_LEN])
{
	bool maybe = true;
	pthread_rwlock_rdlock(&pool->bloom_lk);
	if (pool->bloom)
		maybe = cs_bloom_test(pool->bloom, fp);
	pthread_rwlock_unlock(&pool->bloom_lk);
	atomic_fetch_add(maybe ? &pool->bloom_lookups : &pool->bloom_skips, 1);
	return maybe;
}

void cs_bloom_false_positive(struct cs_pool *pool)
{
	bool rebuild = false;
	atomic_fetch_add(&pool->bloom_false, 1);
	pthread_rwlock_rdlock(&pool->bloom_lk);
	/* Deleted chunks (GC) stay in the filter as false positives; when
	 * they pile up, a rebuild drops them. Asked once per filter. */
	if (pool->bloom && !pool->bloom_next &&
	    atomic_fetch_add(&pool->bloom->false_pos, 1) + 1 >= pool->bloom->cap / 16)
		rebuild = !atomic_exchange(&pool->bloom->asked, true);
	pthread_rwlock_unlock(&pool->bloom_lk);
	if (rebuild)
		cs_bloom_request(pool);
}

void cs_bloom_note(struct cs_pool *pool, const uint8_t fp[CS_FP_LEN])
{
	if (pool->bloom_npend == pool->bloom_cappend) {
		size_t cap = pool->bloom_cappend ? pool->bloom_cappend * 2 : 256;
		uint8_t(*n)[CS_FP_LEN] = realloc(pool->bloom_pend, cap * CS_FP_LEN);
		if (!n) {
			/* Not the request's failure: the entry is missed by the
			 * filter until a rebuild, which is asked for at commit. */
			pool->bloom_lost = true;
			return;
		}
		pool->bloom_pend = n;
		pool->bloom_cappend = cap;
	}
	memcpy(pool->bloom_pend[pool->bloom_npend++], fp, CS_FP_LEN);
}

void cs_bloom_commit(struct cs_pool *pool, bool committed)
{
	bool full = false;
	if (committed && pool->bloom_npend) {
		pthread_rwlock_rdlock(&pool->bloom_lk);
		for (size_t i = 0; i < pool->bloom_npend; i++) {
			if (pool->bloom)
				cs_bloom_set(pool->bloom, pool->bloom_pend[i]);
			if (pool->bloom_next)
				cs_bloom_set(pool->bloom_next, pool->bloom_pend[i]);
		}
		full = pool->bloom && !pool->bloom_next &&
		       atomic_load(&pool->bloom->count) > pool->bloom->cap &&
		       !atomic_exchange(&pool->bloom->asked, true);
		pthread_rwlock_unlock(&pool->bloom_lk);
	}
	pool->bloom_npend = 0;
	if (full || (committed && pool->bloom_lost)) {
		pool->bloom_lost = false;
		cs_bloom_request(pool);
	}
}

/* Builds a filter from a scan of the chunk index and swaps it in. */
static int cs_bloom_build(struct cs_pool *pool)
{
	struct timespec t0, t1;
	struct meta_txn *txn = NULL;
	struct meta_cursor *cur = NULL;
	uint64_t n = 0, est;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&pool->st_mu);
	est = pool->stats.chunks;
	pthread_mutex_unlock(&pool->st_mu);
	pthread_rwlock_rdlock(&pool->bloom_lk);
	if (pool->bloom && atomic_load(&pool->bloom->count) > est)
		est = atomic_load(&pool->bloom->count);
	pthread_rwlock_unlock(&pool->bloom_lk);
	uint64_t cap = 2 * est;
	if (cap < pool->bloom_min)
		cap = pool->bloom_min;
	struct cs_bloom *nb = cs_bloom_new(cap);
	if (!nb)
		return -ENOMEM;
	/* Published before the scan's snapshot: whatever commits after the
	 * snapshot was taken is added to it by the committer. */
	pthread_rwlock_wrlock(&pool->bloom_lk);
	pool->bloom_next = nb;
	pthread_rwlock_unlock(&pool->bloom_lk);
	/* The scan runs in slices of CS_BLOOM_SLICE keys, each its own short
	 * read transaction (a long one would pin pages and grow the map). A
	 * chunk committed between slices went to nb through the committer. */
	uint8_t last[4 + CS_FP_LEN];
	size_t lastl = 0;
	for (;;) {
		const void *k, *v;
		size_t kl, vl;
		unsigned in_slice = 0;
		rc = meta_txn_begin(pool->meta, false, &txn);
		if (rc == 0)
			rc = meta_cursor_open(txn, META_T_CHUNKS, &cur);
		if (rc < 0)
			goto out;
		rc = meta_cursor_seek(cur, last, lastl, &k, &kl, &v, &vl);
		if (rc == 0 && lastl && kl == lastl && !memcmp(k, last, lastl))
			rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
		for (; rc == 0 && in_slice < CS_BLOOM_SLICE;
		     rc = meta_cursor_next(cur, &k, &kl, &v, &vl)) {
			if (kl != sizeof(last))
				continue;
			cs_bloom_set(nb, (const uint8_t *)k + 4);
			memcpy(last, k, sizeof(last));
			lastl = sizeof(last);
			n++;
			in_slice++;
		}
		meta_cursor_close(cur);
		meta_txn_abort(txn);
		cur = NULL;
		txn = NULL;
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			break;
		}
		if (rc < 0)
			goto out;
		if (atomic_load(&pool->bloom_stop)) {
			rc = CAIRN_ESHUTDOWN;
			goto out;
		}
	}
out:
	meta_cursor_close(cur);
	meta_txn_abort(txn);
	pthread_rwlock_wrlock(&pool->bloom_lk);
	struct cs_bloom *old = NULL;
	if (rc == 0) {
		old = pool->bloom;
		pool->bloom = nb;
	} else {
		old = nb;
	}
	pool->bloom_next = NULL;
	pthread_rwlock_unlock(&pool->bloom_lk);
	cs_bloom_free(old);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (rc == 0) {
		atomic_fetch_add(&pool->bloom_builds, 1);
		log_info(CS_TAG,
			 "dedup filter: %llu chunks scanned in %.3f s, sized for %llu (%llu KiB)",
			 (unsigned long long)n, s, (unsigned long long)cap,
			 (unsigned long long)(nb->nblocks * 64 / 1024));
	} else if (rc != CAIRN_ESHUTDOWN) {
		log_warn(CS_TAG, "dedup filter build: %s (lookups go to the index)",
			 cairn_strerror(rc));
	}
	return rc;
}

static void *cs_bloom_main(void *arg)
{
	struct cs_pool *pool = arg;
	pthread_mutex_lock(&pool->bloom_mu);
	for (;;) {
		if (atomic_load(&pool->bloom_stop))
			break;
		if (!pool->bloom_want) {
			pthread_cond_wait(&pool->bloom_cv, &pool->bloom_mu);
			continue;
		}
		pool->bloom_want = false;
		pthread_mutex_unlock(&pool->bloom_mu);
		/* a failed build leaves the old filter (or none: every lookup
		 * goes to the index); the next request tries again */
		(void)cs_bloom_build(pool);
		pthread_mutex_lock(&pool->bloom_mu);
	}
	pthread_mutex_unlock(&pool->bloom_mu);
	return NULL;
}

int cs_bloom_start(struct cs_pool *pool, uint64_t min_entries)
{
	pthread_rwlock_init(&pool->bloom_lk, NULL);
	pthread_mutex_init(&pool->bloom_mu, NULL);
	pthread_cond_init(&pool->bloom_cv, NULL);
	pool->bloom_inited = true;
	pool->bloom_min = min_entries ? min_entries : CS_BLOOM_MIN;
	pool->bloom_want = true; /* the first build: until it is in, lookups go to LMDB */
	int rc = pthread_create(&pool->bloom_thread, NULL, cs_bloom_main, pool);
	if (rc)
		return -rc;
	pool->bloom_started = true;
	return 0;
}

void cs_bloom_stop(struct cs_pool *pool)
{
	if (!pool->bloom_inited)
		return;
	if (pool->bloom_started) {
		pthread_mutex_lock(&pool->bloom_mu);
		atomic_store(&pool->bloom_stop, true);
		pthread_cond_signal(&pool->bloom_cv);
		pthread_mutex_unlock(&pool->bloom_mu);
		pthread_join(pool->bloom_thread, NULL);
		pool->bloom_started = false;
	}
	cs_bloom_free(pool->bloom);
	cs_bloom_free(pool->bloom_next);
	pool->bloom = pool->bloom_next = NULL;
	free(pool->bloom_pend);
	pool->bloom_pend = NULL;
	pthread_rwlock_destroy(&pool->bloom_lk);
	pthread_mutex_destroy(&pool->bloom_mu);
	pthread_cond_destroy(&pool->bloom_cv);
	pool->bloom_inited = false;
}

bool cs_bloom_ready(struct cs_pool *pool)
{
	pthread_rwlock_rdlock(&pool->bloom_lk);
	bool r = pool->bloom != NULL;
	pthread_rwlock_unlock(&pool->bloom_lk);
	return r;
}
