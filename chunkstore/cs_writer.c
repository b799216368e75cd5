/* chunkstore/cs_writer.c - writers, the chunk worker pool, open stripes.
 *
 * A writer cuts its stream into chunks (the pool's policy: fixed blocks, or
 * FastCDC boundaries found in the caller's bytes) and queues each to the
 * worker pool; at most nbufs chunks of one writer exist at a time
 * (the writer blocks for a free buffer), so memory per writer is bounded.
 *
 * A worker fingerprints a chunk (SHA-256), skips all-zero chunks, looks the
 * fingerprint up in the chunk index (a short read txn), compresses a new
 * chunk (zstd, cs_comp.h policy) and appends it as a record to its own open stripe: data unit u on
 * D[u] plus replicas on D[k..k+m), the same blocks written to all m+1 copies in one io_batch. Only
 * whole 4 KiB blocks are written as records arrive; the partial tail block stays in the worker's
 * staging buffer until a writer that has a record in it finishes (or the unit fills), and is then
 * written zero-padded and the unit's next record starts at the next block. Invariant: no block that
 * may have been synced is ever written again.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/cs_comp.h"
#include "chunkstore/cs_internal.h"
#include "core/fault.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"
#include "ring/ring.h"

/* ---- unit files ---- */

void cs_file_put(struct cs_file *f)
{
	if (!f)
		return;
	if (atomic_fetch_sub(&f->refs, 1) == 1) {
		if (f->fd >= 0)
			io_close(f->fd);
		free(f);
	}
}

static void cs_file_get(struct cs_file *f)
{
	atomic_fetch_add(&f->refs, 1);
}

/* ---- the worker's open stripe ---- */

static int cs_write_copies(struct cs_worker *wk, uint64_t off, uint64_t len)
{
	struct io_req reqs[CS_MAX_FRAGS];
	if (len == 0)
		return 0;
	for (unsigned c = 0; c < wk->ncopies; c++)
		reqs[c] = (struct io_req){.op = IO_WRITE,
					  .fd = wk->ufiles[c]->fd,
					  .buf = wk->stage + off,
					  .len = len,
					  .off = off};
	return io_batch(wk->io, reqs, wk->ncopies);
}

/* Writes the partial tail block (zero padded) and moves the next record to
 * the next block boundary. */
static int cs_flush_tail(struct cs_worker *wk)
{
	if (wk->wr_pos >= wk->pos)
		return 0;
	uint64_t end = cs_align_up(wk->pos, CS_BLOCK);
	memset(wk->stage + wk->pos, 0, end - wk->pos); /* padding: magic 0 */
	int rc = cs_write_copies(wk, wk->wr_pos, end - wk->wr_pos);
	if (rc < 0)
		return rc;
	wk->wr_pos = wk->pos = end;
	return 0;
}

static void cs_unit_release(struct cs_worker *wk)
{
	for (unsigned c = 0; c < wk->ncopies; c++) {
		atomic_store(&wk->ufiles[c]->closed, true);
		cs_file_put(wk->ufiles[c]);
		wk->ufiles[c] = NULL;
	}
	wk->ncopies = 0;
}

/* Hands closed files to the syncer (one reference each). Best effort: a
 * file it never syncs is synced by the commit that needs it. */
static void cs_sync_enqueue(struct cs_pool *pool, struct cs_file **files, unsigned n)
{
	pthread_mutex_lock(&pool->sync_mu);
	if (pool->sync_started && !pool->sync_stop) {
		if (pool->sync_n + n > pool->sync_cap) {
			size_t cap = pool->sync_cap ? pool->sync_cap * 2 : 64;
			while (cap < pool->sync_n + n)
				cap *= 2;
			struct cs_file **nq = realloc(pool->sync_q, cap * sizeof(*nq));
			if (!nq)
				goto out;
			pool->sync_q = nq;
			pool->sync_cap = cap;
		}
		for (unsigned i = 0; i < n; i++) {
			cs_file_get(files[i]);
			pool->sync_q[pool->sync_n++] = files[i];
		}
		pthread_cond_signal(&pool->sync_cv);
	}
out:
	pthread_mutex_unlock(&pool->sync_mu);
}

/* Closes the current unit: its tail goes to disk, the worker lets go, and
 * the syncer makes the unit's files durable while the stream goes on. */
static int cs_unit_close(struct cs_worker *wk)
{
	int rc = 0;
	struct cs_file *done[CS_MAX_FRAGS];
	unsigned n = wk->ncopies;
	if (wk->ncopies)
		rc = cs_flush_tail(wk);
	for (unsigned c = 0; c < n; c++) {
		done[c] = wk->ufiles[c];
		cs_file_get(done[c]);
	}
	cs_unit_release(wk); /* marks them closed */
	if (rc == 0 && n)
		cs_sync_enqueue(wk->pool, done, n);
	for (unsigned c = 0; c < n; c++)
		cs_file_put(done[c]);
	return rc;
}

/* ---- the syncer ---- */

static void *cs_syncer_main(void *arg)
{
	struct cs_pool *pool = arg;
	struct io_ctx *io = NULL;
	struct cs_file **batch = NULL;
	size_t cap = 0;

	if (io_ctx_create(CS_WORKER_DEPTH, &io) < 0)
		io = NULL;
	pthread_mutex_lock(&pool->sync_mu);
	for (;;) {
		if (!pool->sync_n) {
			if (pool->sync_stop)
				break;
			pthread_cond_wait(&pool->sync_cv, &pool->sync_mu);
			continue;
		}
		if (pool->sync_n < CS_SYNC_BATCH && !pool->sync_stop) {
			/* Let a stripe's worth gather: its units share partition
			 * directories, and each directory fsync is a device
			 * flush. */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += CS_SYNC_GATHER_NS;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			while (pool->sync_n < CS_SYNC_BATCH && !pool->sync_stop)
				if (pthread_cond_timedwait(&pool->sync_cv, &pool->sync_mu, &ts) ==
				    ETIMEDOUT)
					break;
		}
		/* take the whole queue: one batch, every sync in flight */
		if (cap < pool->sync_n) {
			struct cs_file **nb = realloc(batch, pool->sync_n * sizeof(*nb));
			if (!nb) {
				pthread_mutex_unlock(&pool->sync_mu);
				usleep(1000);
				pthread_mutex_lock(&pool->sync_mu);
				continue;
			}
			batch = nb;
			cap = pool->sync_n;
		}
		size_t n = pool->sync_n;
		memcpy(batch, pool->sync_q, n * sizeof(*batch));
		pool->sync_n = 0;
		bool stop = pool->sync_stop;
		pthread_mutex_unlock(&pool->sync_mu);
		if (io && !stop) {
			int rc = cs_files_sync(io, batch, n);
			if (rc < 0)
				log_warn(CS_TAG,
					 "background sync of %zu unit files: %s (left to "
					 "the commit)",
					 n, cairn_strerror(rc));
		}
		for (size_t i = 0; i < n; i++)
			cs_file_put(batch[i]);
		pthread_mutex_lock(&pool->sync_mu);
	}
	pthread_mutex_unlock(&pool->sync_mu);
	free(batch);
	io_ctx_free(io);
	return NULL;
}

/* The worker is done with its open stripe: GC may consider it once its
 * writers have left. */
static void cs_stripe_drop(struct cs_worker *wk)
{
	if (wk->stripe_id)
		cs_stripe_busy_del(wk->pool, wk->stripe_id);
	wk->stripe_id = 0;
}

static void cs_stripe_abandon(struct cs_worker *wk)
{
	cs_unit_release(wk);
	if (wk->stripe_id) /* what was committed into it gets sealed */
		cs_seal_enqueue(wk->pool, wk->stripe_id);
	cs_stripe_drop(wk);
	wk->abort_gen++;
}

static int cs_unit_open(struct cs_worker *wk)
{
	struct cs_pool *pool = wk->pool;
	const struct cs_pool_rec *pr = &pool->rec;
	int rc = 0;

	wk->ncopies = 0;
	for (unsigned c = 0; c < 1u + pr->m; c++) {
		uint32_t dev = c == 0 ? wk->devs[wk->unit] : wk->devs[pr->k + c - 1];
		struct cs_file *f = calloc(1, sizeof(*f));
		if (!f) {
			rc = -ENOMEM;
			goto out;
		}
		atomic_init(&f->refs, 1);
		atomic_init(&f->dir_synced, false);
		atomic_init(&f->closed, false);
		atomic_init(&f->synced, false);
		f->fd = -1;
		wk->ufiles[wk->ncopies++] = f;
		rc = cs_unit_path(pool, dev, wk->stripe_id, wk->part, wk->unit, f->dir,
				  sizeof(f->dir), f->path, sizeof(f->path));
		if (rc < 0)
			goto out;
		rc = cs_part_dir_make(pool, dev, wk->part, f->dir, &f->dir_state);
		if (rc < 0)
			goto out;
		if (FAULT("cs.unit_create")) {
			rc = -EIO;
			goto out;
		}
		/* Stripe ids never repeat, so an existing file is a bug. */
		f->fd = io_open(f->path, O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0644);
		if (f->fd < 0) {
			rc = f->fd;
			log_err(CS_TAG, "creating %s: %s", f->path, cairn_strerror(rc));
			goto out;
		}
		/* Full size up front: O_DIRECT appends then never extend the
		 * file (no size update per write). Best effort. */
		(void)fallocate(f->fd, 0, 0, (off_t)CS_UNIT_HDR_SIZE + pr->unit_size);
	}
	/* Only the header block is cleared here; record gaps and tail padding
	 * are zeroed as they are made (no 1 MiB memset per unit). */
	memset(wk->stage, 0, CS_UNIT_HDR_SIZE);
	struct cs_unit_hdr h = {
	    .magic = CS_UNIT_MAGIC,
	    .version = CS_UNIT_VERSION,
	    .stripe_id = wk->stripe_id,
	    .unit = wk->unit,
	    .kind = CS_UNIT_DATA,
	    .k = pr->k,
	    .m = pr->m,
	    .unit_size = pr->unit_size,
	    .data_offset = CS_UNIT_HDR_SIZE,
	    .created = (uint64_t)time(NULL),
	};
	memcpy(h.pool_uuid, pr->pool_uuid, sizeof(h.pool_uuid));
	h.hdr_crc = crc32c(0, &h, sizeof(h));
	memcpy(wk->stage, &h, sizeof(h));
	wk->pos = CS_UNIT_HDR_SIZE;
	wk->wr_pos = 0;
out:
	if (rc < 0)
		cs_unit_release(wk);
	return rc;
}

/* Opens a new stripe: a fresh id, its partition's k+m devices from the ec
 * ring (they must be distinct, or two copies would share a file). */
static int cs_stripe_open(struct cs_worker *wk)
{
	struct cs_pool *pool = wk->pool;
	uint32_t n = (uint32_t)pool->rec.k + pool->rec.m;
	uint64_t id;
	int rc = cs_stripe_id_alloc(pool, &id);
	if (rc < 0)
		return rc;
	uint32_t part = cs_stripe_part(pool, id);
	uint32_t devs[CS_MAX_FRAGS];
	cs_stripe_devs(pool, id, devs);
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < i; j++)
			if (devs[i] == devs[j]) {
				log_err(CS_TAG, "ec ring partition %u repeats device %u", part,
					devs[i]);
				cs_stripe_busy_del(pool, id);
				return CAIRN_EDEGRADED;
			}
		wk->devs[i] = devs[i];
	}
	rc = cs_seal_hold(pool, id);
	if (rc < 0) {
		cs_stripe_busy_del(pool, id);
		return rc;
	}
	wk->stripe_id = id; /* busy since cs_stripe_id_alloc */
	wk->part = part;
	wk->unit = 0;
	return cs_unit_open(wk); /* on failure the caller queues and drops it */
}

/* Appends one record (len stored bytes of a raw_len-byte chunk); fills the
 * chunk's location. */
static int cs_append(struct cs_worker *wk, struct cs_writer *w, const uint8_t *payload,
		     uint32_t len, uint32_t raw_len, uint8_t comp, const uint8_t fp[CS_FP_LEN],
		     struct cs_wchunk *out)
{
	struct cs_pool *pool = wk->pool;
	const struct cs_pool_rec *pr = &pool->rec;
	uint64_t rec_len = sizeof(struct cs_chunk_hdr) + len;
	uint64_t area_end = CS_UNIT_HDR_SIZE + (uint64_t)pr->unit_size;
	int rc;

	if (wk->stripe_id && wk->pos + rec_len > area_end) {
		rc = cs_unit_close(wk);
		if (rc < 0) {
			cs_stripe_abandon(wk);
			return rc;
		}
		if (++wk->unit < pr->k) {
			rc = cs_unit_open(wk);
			if (rc < 0) {
				cs_stripe_abandon(wk);
				return rc;
			}
		} else {
			/* All k units full: the sealer takes it (off this
			 * path), a new one takes over. */
			cs_seal_enqueue(pool, wk->stripe_id);
			cs_stripe_drop(wk);
		}
	}
	if (!wk->stripe_id) {
		rc = cs_stripe_open(wk);
		if (rc < 0) {
			if (wk->stripe_id)
				cs_seal_enqueue(pool, wk->stripe_id);
			cs_stripe_drop(wk);
			return rc;
		}
	}

	uint64_t at = wk->pos;
	struct cs_chunk_hdr h = {
	    .magic = CS_CHUNK_MAGIC,
	    .version = 1,
	    .compression = comp,
	    .raw_len = raw_len,
	    .stored_len = len,
	    .payload_crc = crc32c(0, payload, len),
	};
	memcpy(h.fp, fp, CS_FP_LEN);
	h.hdr_crc = crc32c(0, &h, sizeof(h));
	memcpy(wk->stage + at, &h, sizeof(h));
	memcpy(wk->stage + at + sizeof(h), payload, len);
	uint64_t end = at + rec_len;
	uint64_t next = cs_align_up(end, CS_REC_ALIGN);
	if (next > area_end)
		next = area_end;
	memset(wk->stage + end, 0, next - end);
	uint64_t full = cs_align_down(end, CS_BLOCK);
	/* Whole blocks go out in batches of CS_WRITE_BATCH (fewer, larger
	 * O_DIRECT writes); a finishing writer flushes what is pending. */
	if (full >= wk->wr_pos + CS_WRITE_BATCH) {
		rc = cs_write_copies(wk, wk->wr_pos, full - wk->wr_pos);
		if (rc < 0) {
			log_err(CS_TAG, "writing stripe %016llx unit %u: %s",
				(unsigned long long)wk->stripe_id, wk->unit, cairn_strerror(rc));
			cs_stripe_abandon(wk);
			return rc;
		}
		wk->wr_pos = full;
	}
	wk->pos = next;

	/* The writer now depends on this unit's files. */
	struct cs_wlast *last = &w->last[wk->id];
	bool new_unit = last->stripe_id != wk->stripe_id || last->unit != wk->unit;
	if (new_unit) {
		pthread_mutex_lock(&w->mu);
		if (w->nfiles + wk->ncopies > w->cap_files) {
			size_t cap = w->cap_files ? w->cap_files * 2 : 16;
			while (cap < w->nfiles + wk->ncopies)
				cap *= 2;
			struct cs_file **nf = realloc(w->files, cap * sizeof(*nf));
			if (!nf) {
				pthread_mutex_unlock(&w->mu);
				return -ENOMEM;
			}
			w->files = nf;
			w->cap_files = cap;
		}
		for (unsigned c = 0; c < wk->ncopies; c++) {
			cs_file_get(wk->ufiles[c]);
			w->files[w->nfiles++] = wk->ufiles[c];
		}
		pthread_mutex_unlock(&w->mu);
	}
	if (!last->stripe_id)
		last->gen = wk->abort_gen;
	last->stripe_id = wk->stripe_id;
	last->unit = wk->unit;
	last->end = end;

	out->is_new = true;
	out->stripe_id = wk->stripe_id;
	out->unit = wk->unit;
	out->offset = (uint32_t)(at - CS_UNIT_HDR_SIZE);
	out->stored_len = len;
	out->compression = comp;
	out->crc = h.payload_crc;
	return 0;
}

/* ---- tasks ---- */

static int cs_chunk_lookup(struct cs_pool *pool, const uint8_t fp[CS_FP_LEN], bool *found)
{
	struct meta_txn *txn = NULL;
	uint8_t key[4 + CS_FP_LEN];
	const void *v;
	size_t vl;
	*found = false;
	if (!cs_bloom_maybe(pool, fp))
		return 0; /* new data: no LMDB read */
	int rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		return rc;
	size_t kl = cs_key_chunk(key, cs_chunk_part(pool, fp), fp);
	rc = meta_get(txn, META_T_CHUNKS, key, kl, &v, &vl);
	if (rc == 0) {
		/* A dead chunk (refcount 0) is a miss: GC may be freeing it, so
		 * the writer stores a fresh copy, and the commit moves the dead
		 * entry there (cs_chunk_ref). A live one stays live at least
		 * until GC's next scan, which waits for this writer. */
		struct cs_chunk_rec r;
		if (vl < sizeof(r)) {
			rc = CAIRN_ECORRUPT;
		} else {
			memcpy(&r, v, sizeof(r));
			*found = r.refcount > 0;
		}
	}
	meta_txn_abort(txn);
	if (rc == CAIRN_ENOTFOUND)
		cs_bloom_false_positive(pool);
	if (rc == 0)
		return 0;
	return rc == CAIRN_ENOTFOUND ? 0 : rc;
}

static void cs_do_chunk(struct cs_worker *wk, EVP_MD_CTX *md, struct cs_task *t)
{
	struct cs_writer *w = t->w;
	struct cs_wchunk r = {0};
	int rc = 0;

	r.ment.len = (uint32_t)t->len;
	atomic_fetch_add_explicit(&wk->pool->chunks_cut, 1, memory_order_relaxed);
	if (hash_is_zero(t->buf, t->len)) {
		r.ment.flags = CS_MENT_ZERO;
	} else {
		unsigned fl = 0;
		if (!md) {
			rc = -ENOMEM;
			goto out;
		}
		bool tenant = wk->pool->rec.dedup_domain == CS_DEDUP_TENANT;
		if (t->has_fp) {
			memcpy(r.ment.fp, t->fp, CS_FP_LEN);
		} else if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
			   (tenant && EVP_DigestUpdate(md, w->domain, CS_DOMAIN_LEN) != 1) ||
			   EVP_DigestUpdate(md, t->buf, t->len) != 1 ||
			   EVP_DigestFinal_ex(md, r.ment.fp, &fl) != 1 || fl != CS_FP_LEN) {
			rc = -EIO;
			goto out;
		}
		bool found = false;
		if (!w->force_new)
			rc = cs_chunk_lookup(wk->pool, r.ment.fp, &found);
		if (rc < 0 || found)
			goto out;
		if (!wk->io) {
			rc = io_ctx_create(CS_WORKER_DEPTH, &wk->io);
			if (rc < 0) {
				wk->io = NULL;
				goto out;
			}
		}
		/* New data only: dedup hits and zero chunks never pay zstd. */
		const uint8_t *payload = t->buf;
		size_t stored = t->len;
		uint8_t comp = CS_COMP_NONE;
		if (wk->cctx) {
			size_t z =
			    cs_comp_chunk(wk->cctx, wk->pool->zstd_level, t->buf, t->len, wk->zbuf);
			if (z) {
				payload = wk->zbuf;
				stored = z;
				comp = CS_COMP_ZSTD;
			}
		}
		rc = cs_append(wk, w, payload, (uint32_t)stored, (uint32_t)t->len, comp, r.ment.fp,
			       &r);
	}
out:
	r.done = true;
	pthread_mutex_lock(&w->mu);
	w->chunks[t->idx] = r;
	if (rc < 0 && !w->err)
		w->err = rc;
	t->next = NULL;
	/* the task (and its buffer) goes back to the writer's free list */
	w->freebufs[w->nfree++] = (uint8_t *)t;
	w->inflight--;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void cs_do_flush(struct cs_worker *wk, struct cs_task *t)
{
	struct cs_writer *w = t->w;
	const struct cs_wlast *last = &w->last[wk->id];
	int rc = 0;
	if (last->stripe_id && last->stripe_id == wk->stripe_id && last->unit == wk->unit &&
	    wk->ncopies && wk->wr_pos < last->end) {
		rc = cs_flush_tail(wk);
		if (rc < 0)
			cs_stripe_abandon(wk);
	}
	if (rc == 0 && last->stripe_id && last->gen != wk->abort_gen) {
		log_err(CS_TAG, "writer lost unwritten records to a failed stripe write");
		rc = -EIO;
	}
	pthread_mutex_lock(&w->mu);
	if (rc < 0 && !w->err)
		w->err = rc;
	w->flush_pending--;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	free(t);
}

/* Closes the open stripe now (scrub, repair, tests): it is sealed as it
 * is, and the next chunk opens a new one. */
static void cs_do_close(struct cs_worker *wk, struct cs_task *t)
{
	if (wk->stripe_id) {
		if (cs_unit_close(wk) < 0) {
			cs_stripe_abandon(wk);
		} else {
			cs_seal_enqueue(wk->pool, wk->stripe_id);
			cs_stripe_drop(wk);
		}
	}
	cs_seal_close_done(t->cw);
	free(t);
}

static void *cs_worker_main(void *arg)
{
	struct cs_worker *wk = arg;
	struct cs_pool *pool = wk->pool;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	/* Without a context or buffer the worker stores chunks raw: slower to
	 * read back nothing, only more bytes. */
	if (pool->compress) {
		wk->cctx = ZSTD_createCCtx();
		wk->zbuf = malloc(pool->chunk_cap);
		if (!wk->cctx || !wk->zbuf) {
			ZSTD_freeCCtx(wk->cctx);
			wk->cctx = NULL;
		}
	}

	pthread_mutex_lock(&pool->wq_mu);
	for (;;) {
		struct cs_task *t = NULL;
		if (wk->flush_head) {
			t = wk->flush_head;
			wk->flush_head = t->next;
			if (!wk->flush_head)
				wk->flush_tail = NULL;
		} else if (pool->wq_head) {
			t = pool->wq_head;
			pool->wq_head = t->next;
			if (!pool->wq_head)
				pool->wq_tail = NULL;
		} else if (pool->workers_stop) {
			break;
		} else {
			pthread_cond_wait(&pool->wq_cv, &pool->wq_mu);
			continue;
		}
		pthread_mutex_unlock(&pool->wq_mu);
		if (t->kind == CS_TASK_FLUSH)
			cs_do_flush(wk, t);
		else if (t->kind == CS_TASK_CLOSE)
			cs_do_close(wk, t);
		else
			cs_do_chunk(wk, md, t);
		pthread_mutex_lock(&pool->wq_mu);
	}
	pthread_mutex_unlock(&pool->wq_mu);
	(void)cs_unit_close(wk);
	cs_stripe_drop(wk);
	EVP_MD_CTX_free(md);
	ZSTD_freeCCtx(wk->cctx);
	wk->cctx = NULL;
	free(wk->zbuf);
	wk->zbuf = NULL;
	io_ctx_free(wk->io);
	wk->io = NULL;
	return NULL;
}

int cs_workers_start(struct cs_pool *pool)
{
	size_t stage_len = CS_UNIT_HDR_SIZE + (size_t)pool->rec.unit_size;
	pthread_mutex_init(&pool->sync_mu, NULL);
	pthread_cond_init(&pool->sync_cv, NULL);
	int src = pthread_create(&pool->syncer, NULL, cs_syncer_main, pool);
	if (src)
		return -src;
	pool->sync_started = true;
	pool->workers = calloc(pool->nworkers, sizeof(*pool->workers));
	if (!pool->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct cs_worker *wk = &pool->workers[i];
		wk->pool = pool;
		wk->id = i;
		wk->stage = io_alloc(stage_len);
		if (!wk->stage)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < pool->nworkers; i++) {
		int rc = pthread_create(&pool->workers[i].thread, NULL, cs_worker_main,
					&pool->workers[i]);
		if (rc)
			return -rc;
		pool->nstarted = i + 1;
	}
	return 0;
}

static void cs_syncer_stop(struct cs_pool *pool)
{
	if (!pool->sync_started)
		return;
	pthread_mutex_lock(&pool->sync_mu);
	pool->sync_stop = true;
	pthread_cond_broadcast(&pool->sync_cv);
	pthread_mutex_unlock(&pool->sync_mu);
	pthread_join(pool->syncer, NULL);
	pool->sync_started = false;
	free(pool->sync_q);
	pool->sync_q = NULL;
	pthread_mutex_destroy(&pool->sync_mu);
	pthread_cond_destroy(&pool->sync_cv);
}

void cs_workers_stop(struct cs_pool *pool)
{
	if (!pool->workers) {
		cs_syncer_stop(pool);
		return;
	}
	pthread_mutex_lock(&pool->wq_mu);
	pool->workers_stop = true;
	pthread_cond_broadcast(&pool->wq_cv);
	pthread_mutex_unlock(&pool->wq_mu);
	for (unsigned i = 0; i < pool->nstarted; i++)
		pthread_join(pool->workers[i].thread, NULL);
	for (unsigned i = 0; i < pool->nworkers; i++)
		io_free(pool->workers[i].stage);
	free(pool->workers);
	pool->workers = NULL;
	cs_syncer_stop(pool); /* after the workers: their last closes queue files */
}

/* ---- writer ---- */

int cs_writer_open(struct cs_pool *pool, struct cs_writer **out)
{
	struct cs_writer *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->pool = pool;
	w->epoch = cs_epoch_enter(pool);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	/* Enough chunks in flight that the stream's serial stage (MD5, payload
	 * hash) keeps going while every worker waits on a device write; the
	 * buffers are made only as a stream grows, so small writers pay nothing. */
	w->nbufs = CS_WRITER_BUFS;
	/* Smaller chunks: more of them in flight, about 1 MiB (at most 64). */
	size_t by_size = (1u << 20) / (pool->rec.chunk_size ? pool->rec.chunk_size : 1);
	if (w->nbufs < by_size)
		w->nbufs = by_size < 64 ? by_size : 64;
	if (w->nbufs < 4 * (size_t)pool->nworkers + 4)
		w->nbufs = 4 * (size_t)pool->nworkers + 4;
	w->freebufs = calloc(w->nbufs, sizeof(*w->freebufs));
	w->last = calloc(pool->nworkers, sizeof(*w->last));
	if (!w->freebufs || !w->last) {
		cs_writer_free(w);
		return -ENOMEM;
	}
	*out = w;
	return 0;
}

/* A task with its chunk buffer right after it. */
static struct cs_task *cs_task_get(struct cs_writer *w)
{
	struct cs_task *t = NULL;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		if (w->nfree) {
			t = (struct cs_task *)w->freebufs[--w->nfree];
			break;
		}
		if (w->nalloc < w->nbufs) {
			/* fewer buffers exist than the bound: make one */
			w->nalloc++;
			pthread_mutex_unlock(&w->mu);
			size_t hdr = cs_align_up(sizeof(struct cs_task), 64);
			t = malloc(hdr + w->pool->chunk_cap);
			if (!t) {
				pthread_mutex_lock(&w->mu);
				w->nalloc--;
				pthread_mutex_unlock(&w->mu);
				return NULL;
			}
			t->buf = (uint8_t *)t + hdr;
			t->has_fp = false;
			return t;
		}
		pthread_cond_wait(&w->cv, &w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	t->has_fp = false;
	return t;
}

static int cs_submit(struct cs_writer *w)
{
	struct cs_pool *pool = w->pool;
	struct cs_task *t = (struct cs_task *)w->cur;
	pthread_mutex_lock(&w->mu);
	if (w->nchunks == w->cap_chunks) {
		size_t cap = w->cap_chunks ? w->cap_chunks * 2 : 64;
		struct cs_wchunk *nc = realloc(w->chunks, cap * sizeof(*nc));
		if (!nc) {
			pthread_mutex_unlock(&w->mu);
			return -ENOMEM;
		}
		w->chunks = nc;
		w->cap_chunks = cap;
	}
	t->idx = w->nchunks;
	memset(&w->chunks[w->nchunks++], 0, sizeof(w->chunks[0]));
	w->inflight++;
	pthread_mutex_unlock(&w->mu);
	t->kind = CS_TASK_CHUNK;
	t->w = w;
	t->len = w->cur_len;
	t->next = NULL;
	w->cur = NULL;
	w->cur_len = 0;
	pthread_mutex_lock(&pool->wq_mu);
	if (pool->wq_tail)
		pool->wq_tail->next = t;
	else
		pool->wq_head = t;
	pool->wq_tail = t;
	pthread_cond_signal(&pool->wq_cv);
	pthread_mutex_unlock(&pool->wq_mu);
	return 0;
}

/* A long writer lets go of the units the syncer has made durable, so its
 * file list (and the final commit's sync) stays bounded. Closed files the
 * syncer has not reached yet are synced here only when they pile up (the
 * syncer is behind): that wait is back pressure on the stream. Syncing
 * early is always safe. */
static int cs_writer_early_sync(struct cs_writer *w)
{
	struct cs_file **drop = NULL, **to_sync = NULL;
	size_t nd = 0, nt = 0;
	int rc = 0;
	pthread_mutex_lock(&w->mu);
	drop = malloc(w->nfiles * sizeof(*drop));
	to_sync = malloc(w->nfiles * sizeof(*to_sync));
	if (drop && to_sync) {
		size_t keep = 0, nclosed = 0;
		for (size_t i = 0; i < w->nfiles; i++)
			if (!atomic_load(&w->files[i]->synced) && atomic_load(&w->files[i]->closed))
				nclosed++;
		bool inline_sync = nclosed >= 2 * CS_EARLY_SYNC_FILES;
		for (size_t i = 0; i < w->nfiles; i++) {
			struct cs_file *f = w->files[i];
			if (atomic_load(&f->synced))
				drop[nd++] = f;
			else if (inline_sync && atomic_load(&f->closed))
				to_sync[nt++] = f;
			else
				w->files[keep++] = f;
		}
		w->nfiles = keep;
	}
	pthread_mutex_unlock(&w->mu);
	if (!drop || !to_sync) {
		free(drop);
		free(to_sync);
		return -ENOMEM;
	}
	if (nt && !w->io) {
		rc = io_ctx_create(CS_WORKER_DEPTH, &w->io);
		if (rc < 0)
			w->io = NULL;
	}
	if (nt && rc == 0)
		rc = cs_files_sync(w->io, to_sync, nt);
	for (size_t i = 0; i < nd; i++)
		cs_file_put(drop[i]);
	for (size_t i = 0; i < nt; i++)
		cs_file_put(to_sync[i]);
	free(drop);
	free(to_sync);
	return rc;
}

/* The writer's first error and file count (workers update both). */
static int cs_writer_state(struct cs_writer *w, size_t *nfiles)
{
	pthread_mutex_lock(&w->mu);
	int err = w->err;
	if (nfiles)
		*nfiles = w->nfiles;
	pthread_mutex_unlock(&w->mu);
	return err;
}

int cs_writer_write(struct cs_writer *w, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	const struct cs_pool *pool = w->pool;
	bool cdc = pool->rec.chunking == CS_CHUNK_FASTCDC;
	int err;
	if (w->finished)
		return CAIRN_EINVAL;
	while (len) {
		size_t nfiles = 0;
		if ((err = cs_writer_state(w, &nfiles)) < 0)
			return err;
		if (nfiles >= CS_EARLY_SYNC_FILES) {
			int rc = cs_writer_early_sync(w);
			if (rc < 0) {
				pthread_mutex_lock(&w->mu);
				if (!w->err)
					w->err = rc;
				pthread_mutex_unlock(&w->mu);
				return rc;
			}
		}
		if (!w->cur) {
			struct cs_task *t = cs_task_get(w);
			if (!t)
				return -ENOMEM;
			w->cur = (uint8_t *)t;
			w->cur_len = 0;
		}
		struct cs_task *t = (struct cs_task *)w->cur;
		size_t n = pool->chunk_cap - w->cur_len;
		if (n > len)
			n = len;
		/* The boundary is found in the caller's bytes, so each byte is
		 * copied once; fastcdc always cuts by chunk_cap (its max). */
		bool cut;
		if (cdc) {
			size_t used;
			cut = cs_cdc_feed(&pool->cdc, &w->cdc, p, n, &used);
			n = used;
		} else {
			cut = w->cur_len + n == pool->chunk_cap;
		}
		memcpy(t->buf + w->cur_len, p, n);
		w->cur_len += n;
		w->size += n;
		p += n;
		len -= n;
		if (cut) {
			int rc = cs_submit(w);
			if (rc < 0)
				return rc;
		}
	}
	return cs_writer_state(w, NULL);
}

void cs_writer_set_domain(struct cs_writer *w, const uint8_t domain[CS_DOMAIN_LEN])
{
	memcpy(w->domain, domain, CS_DOMAIN_LEN);
}

void cs_writer_set_no_inline(struct cs_writer *w)
{
	w->no_inline = true;
}

int cs_writer_put_chunk(struct cs_writer *w, const void *buf, size_t len,
			const uint8_t fp[CS_FP_LEN])
{
	if (w->finished || w->cur_len || len == 0 || len > w->pool->chunk_cap)
		return CAIRN_EINVAL;
	int rc = cs_writer_state(w, NULL);
	if (rc < 0)
		return rc;
	/* the chunk as given: never re-cut (CDC would find other boundaries) */
	struct cs_task *t = cs_task_get(w);
	if (!t)
		return -ENOMEM;
	w->force_new = true;
	memcpy(t->buf, buf, len);
	t->has_fp = true;
	memcpy(t->fp, fp, CS_FP_LEN);
	w->cur = (uint8_t *)t;
	w->cur_len = len;
	w->size += len;
	return cs_submit(w);
}

static void cs_writer_wait_idle(struct cs_writer *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->inflight || w->flush_pending)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

int cs_writer_finish(struct cs_writer *w)
{
	struct cs_pool *pool = w->pool;
	int rc = 0;
	if (w->finished)
		return CAIRN_EINVAL;
	if (w->nchunks == 0 && w->size <= pool->rec.inline_max && !w->no_inline) {
		/* inline: the bytes stay in cur and go into the manifest header */
		w->is_inline = true;
	} else if (w->cur && w->cur_len) {
		rc = cs_submit(w);
	}
	cs_writer_wait_idle(w);
	/* Every worker holding a record of this writer in its tail writes it. */
	for (unsigned i = 0; i < pool->nworkers; i++) {
		if (!w->last[i].stripe_id)
			continue;
		struct cs_task *t = calloc(1, sizeof(*t));
		if (!t) {
			rc = rc ? rc : -ENOMEM;
			continue;
		}
		t->kind = CS_TASK_FLUSH;
		t->w = w;
		pthread_mutex_lock(&w->mu);
		w->flush_pending++;
		pthread_mutex_unlock(&w->mu);
		struct cs_worker *wk = &pool->workers[i];
		pthread_mutex_lock(&pool->wq_mu);
		if (wk->flush_tail)
			wk->flush_tail->next = t;
		else
			wk->flush_head = t;
		wk->flush_tail = t;
		pthread_cond_broadcast(&pool->wq_cv);
		pthread_mutex_unlock(&pool->wq_mu);
	}
	cs_writer_wait_idle(w);
	w->finished = true;
	if (!rc)
		rc = cs_writer_state(w, NULL);
	return rc;
}

uint64_t cs_writer_size(const struct cs_writer *w)
{
	return w->size;
}

void cs_writer_free(struct cs_writer *w)
{
	if (!w)
		return;
	cs_writer_wait_idle(w);
	for (size_t i = 0; i < w->nfiles; i++)
		cs_file_put(w->files[i]);
	free(w->files);
	for (size_t i = 0; i < w->nfree; i++)
		free(w->freebufs[i]);
	free(w->cur);
	free(w->freebufs);
	free(w->chunks);
	free(w->last);
	io_ctx_free(w->io);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	cs_epoch_exit(w->pool, w->epoch);
	free(w);
}
