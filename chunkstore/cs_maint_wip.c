/* chunkstore/cs_maint_wip.c - PLACEHOLDER maintenance functions (issue 5).
 *
 * Lets branch i5-d (node side: admin jobs, CLI, metrics) build and run
 * while the real cs_fsck/cs_gc (helper C) and cs_scrub/cs_repair (helper
 * B) are written in other branches. The lead deletes this file at merge.
 *
 * cs_fsck and cs_gc walk the manifest headers and the chunk index in one
 * read transaction each and only count (fsck compares the live counts with
 * the pool counters); nothing is freed, fixed, re-read or rebuilt. cs_scrub
 * and cs_repair report nothing. Every one reports progress a few times so a
 * progress display has something to show.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "chunkstore/cs_internal.h"

/* Counts live (refcount > 0) records of the manifest header and chunk
 * tables. O(records) in one read transaction: fine for a placeholder. */
static int wip_walk(struct cs_pool *pool, const char *phase, struct cs_check_report *rep,
		    cs_progress_fn fn, void *arg, uint64_t *live_mhdr, uint64_t *live_chunks)
{
	struct meta_txn *txn = NULL;
	struct meta_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl;
	int rc = meta_txn_begin(cs_pool_meta(pool), false, &txn);
	*live_mhdr = *live_chunks = 0;
	if (rc < 0)
		goto out;
	const enum meta_table tabs[2] = {META_T_MHDR, META_T_CHUNKS};
	for (int i = 0; i < 2; i++) {
		rc = meta_cursor_open(txn, tabs[i], &c);
		if (rc < 0)
			goto out;
		for (rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl); rc == 0;
		     rc = meta_cursor_next(c, &k, &kl, &v, &vl)) {
			rep->checked++;
			if (i == 0 && vl >= sizeof(struct cs_mhdr_rec)) {
				struct cs_mhdr_rec h;
				memcpy(&h, v, sizeof(h));
				*live_mhdr += h.refcount > 0;
			} else if (i == 1 && vl >= sizeof(struct cs_chunk_rec)) {
				struct cs_chunk_rec cr;
				memcpy(&cr, v, sizeof(cr));
				*live_chunks += cr.refcount > 0;
			}
			if (fn && rep->checked % 1024 == 0)
				fn(arg, phase, rep->checked, 0);
		}
		meta_cursor_close(c);
		c = NULL;
		if (rc != CAIRN_ENOTFOUND)
			goto out;
		rc = 0;
	}
	if (fn)
		fn(arg, phase, rep->checked, rep->checked);
out:
	meta_cursor_close(c);
	meta_txn_abort(txn);
	return rc;
}

int cs_fsck(struct cs_pool *pool, bool fix, struct cs_check_report *rep, cs_progress_fn fn,
	    void *arg)
{
	struct cs_stats st;
	uint64_t mh, ch;
	(void)fix;
	memset(rep, 0, sizeof(*rep));
	int rc = wip_walk(pool, "walk (placeholder)", rep, fn, arg, &mh, &ch);
	if (rc < 0)
		return rc;
	rc = cs_pool_stats(pool, &st);
	if (rc < 0)
		return rc;
	if (ch != st.chunks) {
		rep->problems++;
		snprintf(rep->first_problem, sizeof(rep->first_problem),
			 "pool counter says %llu live chunks, the index holds %llu",
			 (unsigned long long)st.chunks, (unsigned long long)ch);
	}
	return 0;
}

int cs_gc(struct cs_pool *pool, struct cs_check_report *rep, cs_progress_fn fn, void *arg)
{
	uint64_t mh, ch;
	memset(rep, 0, sizeof(*rep));
	return wip_walk(pool, "walk (placeholder)", rep, fn, arg, &mh, &ch);
}

/* Reports progress in steps so a caller's display shows a phase, a
 * percentage and a rate; checks nothing. */
static int wip_steps(const char *phase, struct cs_check_report *rep, cs_progress_fn fn, void *arg)
{
	const uint64_t total = 8u << 20;
	memset(rep, 0, sizeof(*rep));
	for (uint64_t done = 0; done <= total; done += total / 4) {
		if (fn)
			fn(arg, phase, done, total);
		if (done < total) {
			struct timespec ts = {0, 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return 0;
}

int cs_scrub(struct cs_pool *pool, struct cs_check_report *rep, cs_progress_fn fn, void *arg)
{
	(void)pool;
	return wip_steps("scrub (placeholder)", rep, fn, arg);
}

int cs_repair(struct cs_pool *pool, struct cs_check_report *rep, cs_progress_fn fn, void *arg)
{
	(void)pool;
	return wip_steps("repair (placeholder)", rep, fn, arg);
}
