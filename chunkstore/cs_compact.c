/* chunkstore/cs_compact.c - compaction: live chunks of stripes whose live
 * ratio is low are copied to fresh stripes, so that GC can free the old
 * ones.
 *
 * Invariant: compaction never frees anything itself. It copies a live
 * chunk through a compaction writer (no dedup: the copy is always stored),
 * and the commit moves the chunk's index entry to the copy only if the
 * entry is still live where compaction read it (cs_chunks_move). Readers
 * that resolved the old location keep reading the old stripe: it loses its
 * last live byte here, and GC frees it with its usual grace period (the
 * readers registered before GC's scan). Writers that deduplicated against
 * the chunk simply add a reference to the entry, wherever it points.
 *
 * Cost: one scan of the stripe records and one of the chunk index per call,
 * and reading + rewriting the live bytes of the chosen stripes. Runs
 * exclusive of GC and fsck. A compressed chunk is expanded and goes through
 * the writer like new data (fingerprinted and compressed again).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chunkstore/cs_comp.h"
#include "chunkstore/cs_internal.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"

#define CS_COMPACT_BATCH 128u	 /* chunks per compaction writer and commit */
#define CS_COMPACT_STRIPES 4096u /* stripes chosen per call */

struct cs_cstripe {
	uint64_t id;
	uint32_t part;
	uint8_t k, m, state;
	uint32_t devs[CS_MAX_FRAGS];
};

struct cs_cchunk {
	uint8_t fp[CS_FP_LEN];
	uint64_t stripe_id;
	uint32_t sidx; /* into stripes */
	uint32_t unit, offset, stored_len, raw_len, crc;
	uint8_t compression;
};

struct cs_compact {
	struct cs_pool *pool;
	unsigned max_live_pct;
	struct cs_cstripe *stripes;
	size_t nstripes, cap_stripes;
	struct cs_hmap sel; /* stripe id -> index + 1 */
	struct cs_cchunk *chunks;
	size_t nchunks, cap_chunks;
	struct io_ctx *io;
	uint8_t *buf; /* aligned read buffer */
	size_t buf_len;
	uint8_t *raw; /* a compressed chunk expanded (chunk_cap bytes) */
	ZSTD_DCtx *dctx;
};

/* Chooses stripes nobody writes whose live bytes are below max_live_pct of
 * their data bytes (and above 0: empty ones are GC's). */
static int cs_compact_select(struct cs_compact *c)
{
	struct meta_txn *txn = NULL;
	struct meta_cursor *cur = NULL;
	const void *k, *v;
	size_t kl, vl;
	int rc = meta_txn_begin(c->pool->meta, false, &txn);
	if (rc < 0)
		return rc;
	rc = meta_cursor_open(txn, META_T_STRIPES, &cur);
	if (rc < 0)
		goto out;
	for (rc = meta_cursor_seek(cur, NULL, 0, &k, &kl, &v, &vl);
	     rc == 0 && c->nstripes < CS_COMPACT_STRIPES;
	     rc = meta_cursor_next(cur, &k, &kl, &v, &vl)) {
		struct cs_stripe_rec r;
		if (kl != 12 || vl < sizeof(r))
			continue;
		memcpy(&r, v, sizeof(r));
		if ((unsigned)r.k + r.m > CS_MAX_FRAGS || r.live_bytes == 0)
			continue;
		uint64_t data = 0;
		for (unsigned i = 0; i < r.k; i++)
			data += r.fill[i];
		if (r.live_bytes * 100 >= data * c->max_live_pct)
			continue;
		uint64_t id = meta_get_be64((const uint8_t *)k + 4);
		if (cs_stripe_busy(c->pool, id))
			continue;
		rc = cs_grow((void **)&c->stripes, &c->cap_stripes, c->nstripes,
			     sizeof(*c->stripes));
		if (rc < 0)
			goto out;
		struct cs_cstripe *s = &c->stripes[c->nstripes];
		s->id = id;
		s->part = meta_get_be32(k);
		s->k = r.k;
		s->m = r.m;
		s->state = r.state;
		memcpy(s->devs, r.devs, sizeof(s->devs));
		uint64_t *slot = cs_hmap_put(&c->sel, &id);
		if (!slot) {
			rc = -ENOMEM;
			goto out;
		}
		*slot = ++c->nstripes;
	}
	if (rc == CAIRN_ENOTFOUND || rc == 0)
		rc = 0;
out:
	meta_cursor_close(cur);
	meta_txn_abort(txn);
	return rc;
}

/* The live chunks of the chosen stripes (one scan of the index, in short
 * read transactions). */
static int cs_compact_collect(struct cs_compact *c)
{
	struct meta_txn *txn = NULL;
	struct meta_cursor *cur = NULL;
	uint8_t last[4 + CS_FP_LEN];
	bool first = true;
	int rc = 0;
	for (;;) {
		const void *k, *v;
		size_t kl, vl;
		rc = meta_txn_begin(c->pool->meta, false, &txn);
		if (rc < 0)
			goto out;
		rc = meta_cursor_open(txn, META_T_CHUNKS, &cur);
		if (rc < 0)
			goto out;
		rc = meta_cursor_seek(cur, first ? NULL : last, first ? 0 : sizeof(last), &k, &kl,
				      &v, &vl);
		if (rc == 0 && !first && kl == sizeof(last) && !memcmp(k, last, kl))
			rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
		first = false;
		for (unsigned n = 0; rc == 0 && n < 4096; n++) {
			struct cs_chunk_rec r;
			if (kl == sizeof(last) && vl >= sizeof(r)) {
				memcpy(last, k, kl);
				memcpy(&r, v, sizeof(r));
				uint64_t *si = cs_hmap_find(&c->sel, &r.stripe_id);
				if (si && r.refcount > 0 &&
				    (r.compression == CS_COMP_ZSTD ||
				     (r.compression == CS_COMP_NONE &&
				      r.raw_len == r.stored_len))) {
					rc = cs_grow((void **)&c->chunks, &c->cap_chunks,
						     c->nchunks, sizeof(*c->chunks));
					if (rc < 0)
						goto out;
					struct cs_cchunk *x = &c->chunks[c->nchunks++];
					memcpy(x->fp, last + 4, CS_FP_LEN);
					x->stripe_id = r.stripe_id;
					x->sidx = (uint32_t)(*si - 1);
					x->unit = r.unit;
					x->offset = r.offset;
					x->stored_len = r.stored_len;
					x->raw_len = r.raw_len;
					x->crc = r.crc32c;
					x->compression = r.compression;
				}
			}
			rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
		}
		meta_cursor_close(cur);
		cur = NULL;
		meta_txn_abort(txn);
		txn = NULL;
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

/* Reads and verifies one chunk from its unit (copy 0, then the replicas of
 * an open stripe). Returns a pointer to the payload inside c->buf. */
static int cs_compact_read(struct cs_compact *c, const struct cs_cchunk *x, const uint8_t **out)
{
	const struct cs_cstripe *s = &c->stripes[x->sidx];
	unsigned ncopies = s->state == CS_STRIPE_OPEN ? 1u + s->m : 1u;
	uint64_t foff = CS_UNIT_HDR_SIZE + (uint64_t)x->offset;
	uint64_t a0 = cs_align_down(foff, CS_BLOCK);
	uint64_t a1 = cs_align_up(foff + sizeof(struct cs_chunk_hdr) + x->stored_len, CS_BLOCK);
	if (x->unit >= s->k || a1 - a0 > c->buf_len)
		return CAIRN_ECORRUPT;
	for (unsigned cp = 0; cp < ncopies; cp++) {
		char dir[CS_PATH_MAX], path[CS_PATH_MAX];
		uint32_t dev = cp == 0 ? s->devs[x->unit] : s->devs[s->k + cp - 1];
		if (cs_unit_path(c->pool, dev, s->id, s->part, x->unit, dir, sizeof(dir), path,
				 sizeof(path)) < 0)
			continue;
		int fd = io_open(path, O_RDONLY | O_DIRECT | O_CLOEXEC, 0);
		if (fd < 0)
			continue;
		long n = io_pread(c->io, fd, c->buf, a1 - a0, a0);
		io_close(fd);
		if (n != (long)(a1 - a0))
			continue;
		struct cs_chunk_hdr h;
		const uint8_t *rec = c->buf + (foff - a0);
		memcpy(&h, rec, sizeof(h));
		uint32_t hc = h.hdr_crc;
		h.hdr_crc = 0;
		if (h.magic != CS_CHUNK_MAGIC || crc32c(0, &h, sizeof(h)) != hc ||
		    h.stored_len != x->stored_len || h.raw_len != x->raw_len ||
		    h.compression != x->compression || memcmp(h.fp, x->fp, CS_FP_LEN))
			continue;
		const uint8_t *p = rec + sizeof(h);
		if (crc32c(0, p, x->stored_len) != x->crc)
			continue;
		if (x->compression == CS_COMP_ZSTD) {
			/* the writer fingerprints and compresses raw bytes again */
			if (cs_comp_expand(c->dctx, p, x->stored_len, c->raw, x->raw_len) < 0)
				continue;
			p = c->raw;
		}
		*out = p;
		return 0;
	}
	log_err(CS_TAG, "compaction: no copy of a chunk in stripe %016" PRIx64 " unit %u verifies",
		s->id, x->unit);
	return CAIRN_ECORRUPT;
}

struct cs_move {
	const uint64_t *from;
	size_t n;
	uint64_t moved;
};

static int cs_move_fn(struct cs_txn *t, void *arg)
{
	struct cs_move *m = arg;
	return cs_chunks_move(t, m->from, m->n, &m->moved);
}

/* Copies chunks [i, i+n) through one compaction writer and commits the
 * moves. */
static int cs_compact_batch(struct cs_compact *c, size_t i, size_t n, uint64_t *moved,
			    uint64_t *bytes)
{
	struct cs_writer *w = NULL;
	uint64_t from[CS_COMPACT_BATCH];
	size_t nput = 0;
	int rc = cs_writer_open(c->pool, &w);
	if (rc < 0)
		return rc;
	for (size_t j = 0; j < n; j++) {
		const struct cs_cchunk *x = &c->chunks[i + j];
		const uint8_t *p;
		if (cs_compact_read(c, x, &p) < 0)
			continue; /* unreadable here: left where it is (scrub's job) */
		rc = cs_writer_put_chunk(w, p, x->raw_len, x->fp);
		if (rc < 0)
			goto out;
		from[nput++] = x->stripe_id;
		*bytes += x->raw_len;
	}
	rc = cs_writer_finish(w);
	if (rc < 0 || nput == 0)
		goto out;
	struct cs_move m = {.from = from, .n = nput};
	rc = cs_commit(c->pool, w, cs_move_fn, &m);
	*moved += m.moved;
out:
	cs_writer_free(w);
	return rc;
}

int cs_compact(struct cs_pool *pool, unsigned max_live_pct, struct cs_check_report *rep,
	       cs_progress_fn fn, void *arg)
{
	struct cs_check_report dummy;
	if (!rep)
		rep = &dummy;
	memset(rep, 0, sizeof(*rep));
	if (max_live_pct == 0 || max_live_pct > 100)
		return CAIRN_EINVAL;
	struct cs_compact c = {.pool = pool, .max_live_pct = max_live_pct};
	uint64_t moved = 0;
	int rc = cs_hmap_init(&c.sel, 8);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&pool->gc_run_mu);
	if (fn)
		fn(arg, "select stripes", 0, 0);
	rc = cs_compact_select(&c);
	if (rc < 0 || c.nstripes == 0)
		goto out;
	rep->checked = c.nstripes;
	if (fn)
		fn(arg, "scan chunks", 0, 0);
	rc = cs_compact_collect(&c);
	if (rc < 0 || c.nchunks == 0)
		goto out;
	c.buf_len = cs_align_up(pool->chunk_cap + sizeof(struct cs_chunk_hdr), CS_BLOCK) + CS_BLOCK;
	c.buf = io_alloc(c.buf_len);
	c.raw = malloc(pool->chunk_cap);
	c.dctx = ZSTD_createDCtx();
	if (!c.buf || !c.raw || !c.dctx) {
		rc = -ENOMEM;
		goto out;
	}
	rc = io_ctx_create(4, &c.io);
	if (rc < 0) {
		c.io = NULL;
		goto out;
	}
	for (size_t i = 0; i < c.nchunks; i += CS_COMPACT_BATCH) {
		size_t n = c.nchunks - i < CS_COMPACT_BATCH ? c.nchunks - i : CS_COMPACT_BATCH;
		rc = cs_compact_batch(&c, i, n, &moved, &rep->bytes);
		if (rc < 0)
			goto out;
		if (fn)
			fn(arg, "move chunks", i + n, c.nchunks);
	}
	rep->fixed = moved;
	log_info(CS_TAG,
		 "compaction: %zu stripes under %u%% live, %" PRIu64
		 " of %zu chunks moved (%" PRIu64 " bytes rewritten)",
		 c.nstripes, max_live_pct, moved, c.nchunks, rep->bytes);
out:
	pthread_mutex_unlock(&pool->gc_run_mu);
	if (rc < 0)
		log_err(CS_TAG, "compaction: %s", cairn_strerror(rc));
	io_ctx_free(c.io);
	io_free(c.buf);
	free(c.raw);
	ZSTD_freeDCtx(c.dctx);
	cs_hmap_free(&c.sel);
	free(c.stripes);
	free(c.chunks);
	return rc;
}
