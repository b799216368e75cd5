/* chunkstore/cs_internal.h - private structures shared by the chunk store's
 * .c files (pool, writer/workers, committer, reader). Not for other modules.
 *
 * Threads and ownership:
 *  - struct cs_pool is shared; its mutable parts are guarded as noted.
 *  - a worker (struct cs_worker) owns its open stripe and that stripe's
 *    staging buffer: only the worker thread appends to it (no lock).
 *  - struct cs_file is a unit file shared by the worker that appends to it
 *    and by every writer whose records it holds (refcounted; the fd closes
 *    with the last reference). The committer fdatasyncs it.
 *  - the committer thread is the only LMDB writer once the pool is open.
 */
#ifndef CAIRN_CHUNKSTORE_CS_INTERNAL_H
#define CAIRN_CHUNKSTORE_CS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "chunkstore/chunkstore.h"
#include "chunkstore/cs_cdc.h"
#include "chunkstore/format.h"

#define CS_TAG "chunkstore"
#define CS_STRIPE_ID_BLOCK 1024u /* stripe ids reserved per "next_stripe" update */
#define CS_WORKER_DEPTH 64u
#define CS_WRITE_BATCH (256u << 10) /* bytes of whole blocks per unit write */
#define CS_PATH_MAX 512
#define CS_WRITER_BUFS 16u	   /* chunk buffers per writer (1 MiB at 64 KiB) */
#define CS_SYNC_BATCH 24u	   /* files the syncer likes to take at once (2 stripes' units) */
#define CS_SYNC_GATHER_NS 3000000L /* how long it waits for them */
#define CS_EARLY_SYNC_FILES 48u	   /* a writer syncs closed units early past this */

/* Signed deltas of one request (applied to the pool's counters only when the
 * request's child transaction committed). */
struct cs_stats_delta {
	int64_t logical_bytes, unique_bytes, stored_bytes, physical_bytes;
	int64_t chunks, manifests, stripes;
};

struct cs_file {
	atomic_int refs;
	int fd;
	atomic_bool dir_synced; /* its creation is durable (directory fsynced) */
	atomic_bool closed;	/* no more writes: its worker moved on */
	uint8_t *dir_state;	/* its partition directory's CS_DIR_* byte */
	atomic_bool synced;	/* closed, then data and creation made durable (syncer) */
	char dir[CS_PATH_MAX];
	char path[CS_PATH_MAX];
};

/* One chunk of a writer, as the worker left it. */
struct cs_wchunk {
	struct cs_ment ment; /* flags, len, fp */
	bool is_new;	     /* stored by this writer (else a dedup hit or zero) */
	bool done;
	uint64_t stripe_id;
	uint32_t unit;
	uint32_t offset; /* record offset in the data area */
	uint32_t stored_len;
	uint32_t crc;
	uint8_t compression; /* enum cs_compress of the stored record */
};

/* Where one worker last put a record of a writer (slot owned by that worker). */
struct cs_wlast {
	uint64_t stripe_id; /* 0: this worker holds nothing of the writer */
	uint32_t unit;
	uint64_t end; /* file offset after the record */
	uint64_t gen; /* the worker's abort_gen at this writer's first record */
};

struct cs_writer {
	struct cs_pool *pool;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t size; /* logical bytes */
	uint8_t *cur;  /* chunk being filled (pool->chunk_cap) */
	size_t cur_len;
	struct cs_cdc_state cdc; /* fastcdc: where the stream is in cur */
	/* results, indexed by chunk number; grown by the writer thread under mu */
	struct cs_wchunk *chunks;
	size_t nchunks, cap_chunks;
	/* bounded memory: free chunk buffers */
	uint8_t **freebufs;
	size_t nfree, nbufs, nalloc;
	unsigned inflight;
	unsigned flush_pending;
	int err; /* first error of a chunk task */
	bool finished;
	bool consumed; /* a manifest was created from it */
	bool is_inline;
	bool no_inline; /* cs_writer_set_no_inline */
	/* files the writer's records live in (one ref each); appended by workers */
	struct cs_file **files;
	size_t nfiles, cap_files;
	struct cs_wlast *last;	       /* [pool->nworkers] */
	struct io_ctx *io;	       /* for early syncs; made on first need */
	uint64_t epoch;		       /* cs_epoch_enter ticket */
	bool force_new;		       /* compaction: store every chunk fresh (no dedup) */
	uint8_t domain[CS_DOMAIN_LEN]; /* dedup domain (tenant pools) */
};

enum cs_task_kind { CS_TASK_CHUNK = 1, CS_TASK_FLUSH = 2, CS_TASK_STOP = 3, CS_TASK_CLOSE = 4 };
struct cs_close_wait;
struct cs_task {
	struct cs_task *next;
	enum cs_task_kind kind;
	struct cs_writer *w;
	size_t idx;
	uint8_t *buf;
	size_t len;
	struct cs_close_wait *cw; /* CS_TASK_CLOSE: signalled when done */
	bool has_fp;		  /* cs_writer_put_chunk: the fingerprint is known */
	uint8_t fp[CS_FP_LEN];
};

struct cs_worker {
	struct cs_pool *pool;
	unsigned id;
	pthread_t thread;
	struct io_ctx *io;
	struct cs_task *flush_head, *flush_tail; /* tasks for this worker only */
	/* the open stripe (owned by this thread) */
	uint64_t stripe_id; /* 0: none */
	uint32_t part;
	uint32_t devs[CS_MAX_FRAGS];
	uint32_t unit;			      /* current data unit */
	struct cs_file *ufiles[CS_MAX_FRAGS]; /* copies of the current unit */
	unsigned ncopies;
	uint8_t *stage;		  /* CS_UNIT_HDR_SIZE + unit_size, aligned */
	uint64_t pos;		  /* next record's file offset */
	uint64_t wr_pos;	  /* first block not yet written (aligned) */
	struct ZSTD_CCtx_s *cctx; /* NULL: store raw */
	uint8_t *zbuf;		  /* compressed chunk (pool->chunk_cap) */
	/* bumped whenever the open stripe is dropped after an error: records
	 * still unwritten in it are lost, so a writer that placed records here
	 * before the bump fails at finish */
	uint64_t abort_gen;
};

struct cs_req {
	struct cs_req *next;
	struct cs_writer *w;
	cs_commit_fn fn;
	void *arg;
	int result;
	bool done;
	bool created;	    /* its callback created a manifest from w */
	pthread_cond_t *cv; /* the requester's own: signalled when done */
};

struct cs_txn {
	struct cs_pool *pool;
	struct cs_writer *w;
	struct meta_txn *txn; /* the request's child transaction */
	struct cs_stats_delta d;
	bool created; /* cs_manifest_create succeeded in this request */
};

struct cs_pool {
	char data_dir[CS_PATH_MAX];
	struct meta_env *meta;
	struct ring *ring_ec, *ring_rep;
	struct cs_pool_rec rec;
	struct cs_cdc cdc;  /* CS_CHUNK_FASTCDC pools */
	uint32_t chunk_cap; /* largest chunk: chunk_size (fixed) or chunk_max */
	bool compress;	    /* zstd for new chunks (!opts->no_compress) */
	int zstd_level;
	char (*dev_dirs)[CS_PATH_MAX]; /* by ring device id */
	uint32_t ndev_dirs;
	uint64_t dev_warned; /* bit d % 64: "device d missing" logged (atomic) */
	time_t opened;	     /* when cs_pool_open began */

	/* stripe ids: guarded by id_mu */
	pthread_mutex_t id_mu;
	uint64_t next_stripe, stripe_limit;

	/* partition directories already created: guarded by dir_mu */
	pthread_mutex_t dir_mu;
	uint8_t *dir_made; /* [ndev_dirs << part_power]: CS_DIR_*, atomic */

	/* workers: the task queue is guarded by wq_mu */
	pthread_mutex_t wq_mu;
	pthread_cond_t wq_cv;
	struct cs_task *wq_head, *wq_tail;
	struct cs_worker *workers;
	unsigned nworkers, nstarted;
	bool workers_stop;

	/* syncer: makes closed unit files durable in the background so that
	 * neither a writer's stream nor its commit waits for them; guarded by
	 * sync_mu */
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_cv;
	struct cs_file **sync_q;
	size_t sync_n, sync_cap;
	bool sync_stop, sync_started;
	pthread_t syncer;

	/* committer */
	pthread_mutex_t cq_mu;
	pthread_cond_t cq_cv; /* committer waits for requests */
	struct cs_req *cq_head, *cq_tail;
	bool cq_stop;
	bool committer_running;
	pthread_t committer;
	struct io_ctx *cio;

	/* counters: written by the committer, read by anyone; guarded by st_mu */
	pthread_mutex_t st_mu;
	struct cs_stats_rec stats;
	atomic_uint_fast64_t read_fallbacks;
	atomic_uint_fast64_t reconstructs; /* chunks rebuilt from parity on read */
	atomic_uint_fast64_t chunks_cut;   /* chunk tasks workers took (idle detection) */

	/* sealer (cs_seal.c): guarded by seal_mu */
	pthread_mutex_t seal_mu;
	pthread_cond_t seal_cv;	     /* work for the sealer */
	pthread_cond_t seal_idle_cv; /* the sealer went idle */
	uint64_t *seal_q;	     /* stripes to seal (or to finish sealing) */
	size_t seal_n, seal_cap;
	uint64_t *seal_held; /* stripes workers are appending to: never sealed */
	size_t seal_nheld, seal_heldcap;
	bool seal_stop, seal_started, seal_busy;
	int seal_err;  /* the sealer cannot work (no io_uring): drains fail with it */
	bool seal_off; /* cs_pool_opts.seal_off: queue nothing, seal nothing */
	pthread_t sealer;

	/* dedup filter (cs_bloom.c): the filters under bloom_lk (see there);
	 * bloom_want under bloom_mu; the pending list is the committer's */
	pthread_rwlock_t bloom_lk;
	struct cs_bloom *bloom, *bloom_next;
	pthread_mutex_t bloom_mu;
	pthread_cond_t bloom_cv;
	pthread_t bloom_thread;
	bool bloom_want, bloom_inited, bloom_started;
	atomic_bool bloom_stop;
	uint64_t bloom_min;
	uint8_t (*bloom_pend)[CS_FP_LEN];
	size_t bloom_npend, bloom_cappend;
	bool bloom_lost; /* a note failed (ENOMEM): rebuild after the commit */
	/* since open: lookups the filter answered "absent", lookups that went
	 * to the index, and of those the ones the index did not have */
	atomic_uint_fast64_t bloom_skips, bloom_lookups, bloom_false, bloom_builds;

	/* grace periods (cs_epoch.c): guarded by ep_mu */
	pthread_mutex_t ep_mu, ep_wait_mu;
	pthread_cond_t ep_cv;
	uint64_t ep_cur;
	uint64_t ep_active[2];

	/* stripes being written (cs_gc.c): guarded by busy_mu */
	pthread_mutex_t busy_mu;
	uint64_t *busy;
	size_t nbusy, cap_busy;

	/* GC (cs_gc.c). gc_mu guards gc_active and the two sets, which the
	 * committer fills while a pass runs. */
	pthread_mutex_t gc_mu;
	bool gc_active;
	bool gc_overflow;	       /* a set could not grow: the pass frees nothing */
	struct cs_hmap *gc_revived;    /* fingerprints that went from 0 (or absent) to live */
	struct cs_hmap *gc_touched;    /* stripes whose live bytes grew */
	const struct cs_hmap *gc_cand; /* once scanned: the only fps worth recording */
	pthread_mutex_t gc_run_mu;     /* one GC pass or fsck at a time */
	/* the background GC thread: guarded by gct_mu */
	pthread_mutex_t gct_mu;
	pthread_cond_t gct_cv;
	bool gct_stop, gct_kick, gct_running;
	int gc_interval; /* seconds; < 0: no thread */
	pthread_t gc_thread;
	atomic_uint_fast64_t gc_dead; /* manifests that died since the last pass */
};

/* cs_pool.c */
uint32_t cs_stripe_part(const struct cs_pool *pool, uint64_t stripe_id);
uint32_t cs_chunk_part(const struct cs_pool *pool, const uint8_t fp[CS_FP_LEN]);
uint32_t cs_mid_part(const struct cs_pool *pool, const struct cs_mid *mid);
int cs_stripe_id_alloc(struct cs_pool *pool, uint64_t *out) CAIRN_WUR;
/* The devices D[0..k+m) of a stripe: its "ec" ring partition's devices,
 * rotated by the stripe id. Stripe records keep them (readers use those). */
void cs_stripe_devs(const struct cs_pool *pool, uint64_t stripe_id, uint32_t *devs);
/* Path of a unit file of a stripe on device dev. */
int cs_unit_path(const struct cs_pool *pool, uint32_t dev, uint64_t stripe_id, uint32_t part,
		 uint32_t unit, char *dir, size_t dlen, char *path, size_t plen) CAIRN_WUR;
/* Partition directory states (pool->dir_made, atomic bytes). */
#define CS_DIR_UNKNOWN 0
#define CS_DIR_PARENT_PENDING 1 /* exists; its entry in stripes/ not yet fsynced by us */
#define CS_DIR_DURABLE 2
/* A stripe record, checked (version, shape, unit size), in txn. */
int cs_stripe_read(struct meta_txn *txn, const struct cs_pool *pool, uint64_t id,
		   struct cs_stripe_rec *rec) CAIRN_WUR;
/* Grows *arr (elem-byte items, n used) to hold one more: doubling, 256 first. */
int cs_grow(void **arr, size_t *cap, size_t n, size_t elem) CAIRN_WUR;
/* Makes every missing device folder again (cs_repair only). */
int cs_devices_recreate(struct cs_pool *pool) CAIRN_WUR;
/* Makes sure a partition directory exists (never a missing device folder:
 * CAIRN_EDEGRADED); *state points at its state byte
 * (a file in it must fsync the parent while that says PARENT_PENDING). */
int cs_part_dir_make(struct cs_pool *pool, uint32_t dev, uint32_t part, const char *dir,
		     uint8_t **state) CAIRN_WUR;

/* cs_writer.c */
int cs_workers_start(struct cs_pool *pool) CAIRN_WUR;
void cs_workers_stop(struct cs_pool *pool);
void cs_file_put(struct cs_file *f);
/* Syncs files[0..n) not yet marked synced: directories of created ones
 * (and of new partition directories) and fdatasync, all in flight at once.
 * Marks them synced when every one succeeded. */
int cs_files_sync(struct io_ctx *io, struct cs_file **files, size_t n) CAIRN_WUR;

/* Compaction (cs_compact.c): appends buf as one whole chunk (len <=
 * chunk_cap, never re-cut) under its known fingerprint fp (a tenant pool's
 * cannot be recomputed from the bytes alone) and stores it fresh even when the index holds it; the
 * writer is then a compaction writer (no dedup) and makes no manifest. */
int cs_writer_put_chunk(struct cs_writer *w, const void *buf, size_t len,
			const uint8_t fp[CS_FP_LEN]) CAIRN_WUR;

/* cs_epoch.c: grace periods. Every writer and reader is registered from
 * open (before its first metadata read) to free. Something unreachable to
 * newcomers (a doomed manifest, a dead chunk, an unlinked replica) may be
 * freed after cs_epoch_wait() returns: everyone who could have seen it has
 * left. cs_epoch_wait blocks for the longest open reader or writer; never
 * call it from the committer or a worker. */
void cs_epoch_init(struct cs_pool *pool);
void cs_epoch_destroy(struct cs_pool *pool);
uint64_t cs_epoch_enter(struct cs_pool *pool);
void cs_epoch_exit(struct cs_pool *pool, uint64_t ticket);
void cs_epoch_wait(struct cs_pool *pool);

/* cs_bloom.c: the dedup filter. cs_bloom_start launches the builder
 * thread, whose first build scans the chunk index (until it is in, every
 * lookup goes to LMDB). */
int cs_bloom_start(struct cs_pool *pool, uint64_t min_entries) CAIRN_WUR;
void cs_bloom_stop(struct cs_pool *pool);
/* Workers: false when the fingerprint is certainly not in the index. */
bool cs_bloom_maybe(struct cs_pool *pool, const uint8_t fp[CS_FP_LEN]);
/* Workers: the index did not have a fingerprint the filter let through. */
void cs_bloom_false_positive(struct cs_pool *pool);
/* Committer: a new index entry in the current group (cs_bloom_note), then
 * the group's outcome (cs_bloom_commit adds the noted ones if committed). */
void cs_bloom_note(struct cs_pool *pool, const uint8_t fp[CS_FP_LEN]);
void cs_bloom_commit(struct cs_pool *pool, bool committed);
bool cs_bloom_ready(struct cs_pool *pool);
/* cs_gc.c: stripes in use. Every stripe id is registered busy when it is
 * allocated (cs_stripe_id_alloc, atomically with the allocation) until its
 * worker moves on (full or abandoned). Anyone else who writes a stripe's
 * files (the sealer) registers it with cs_stripe_busy_add and THEN re-reads
 * the stripe record in a fresh transaction: GC frees only stripes that were
 * not busy when it decided, so a record still present after registering
 * cannot be freed until cs_stripe_busy_del. Never hold busy_mu while waiting
 * for anything. */
int cs_stripe_busy_add(struct cs_pool *pool, uint64_t stripe_id) CAIRN_WUR;
void cs_stripe_busy_del(struct cs_pool *pool, uint64_t stripe_id);
bool cs_stripe_busy(struct cs_pool *pool, uint64_t stripe_id);
/* Committer hooks while a GC pass runs: a chunk (fp) became live in stripe
 * stripe_id (insert, revival, or a dead entry moved to a fresh copy), so
 * neither may be freed by this pass. */
void cs_gc_note_live(struct cs_pool *pool, const uint8_t fp[CS_FP_LEN], uint64_t stripe_id);
/* A manifest died (refcount 0): counts towards a burst that starts a pass. */
void cs_gc_note_dead(struct cs_pool *pool);
void cs_gc_init(struct cs_pool *pool);
void cs_gc_destroy(struct cs_pool *pool);
/* Starts the background thread (interval: cs_pool_opts.gc_interval). */
int cs_gc_thread_start(struct cs_pool *pool, int interval) CAIRN_WUR;
void cs_gc_thread_stop(struct cs_pool *pool);
/* A small open-addressing hash map from fixed-length keys (<= 32 bytes;
 * the first 8 bytes should be well mixed, as fingerprints are) to u64
 * values. ~48 bytes per slot, load <= 0.7. Not thread-safe. */
struct cs_hmap {
	size_t klen;
	size_t cap, n; /* slots (a power of 2), used */
	struct cs_hslot *slots;
};
struct cs_hslot {
	uint64_t val;
	uint8_t used;
	uint8_t key[32];
};
int cs_hmap_init(struct cs_hmap *m, size_t klen) CAIRN_WUR;
void cs_hmap_free(struct cs_hmap *m);
void cs_hmap_clear(struct cs_hmap *m);
/* The value of key, or NULL when absent. */
uint64_t *cs_hmap_find(const struct cs_hmap *m, const void *key);
/* The value of key, inserted as 0 when absent; NULL when out of memory. */
uint64_t *cs_hmap_put(struct cs_hmap *m, const void *key);

/* cs_seal.c: sealing stripes (k data units + m parity units, ISA-L Cauchy
 * RS), and the erasure-code helpers the reader, scrub and repair share.
 * Parity j of a sealed stripe is row k+j of gf_gen_cauchy1_matrix(k+m, k)
 * applied to the k data areas, each taken as its first fill[i] bytes and
 * zeros beyond (bytes past the committed fill are dead and never count). The
 * parity area is cs_seal_plen() bytes long: beyond it parity is zero. An
 * empty data unit (fill 0) needs no file. */
/* Queues every OPEN stripe of the pool (no worker holds one yet) and starts
 * the sealer thread. Call before the workers start. */
int cs_sealer_start(struct cs_pool *pool) CAIRN_WUR;
/* Stops the sealer after the stripe it is on; call after the workers stop
 * and before the committer stops. Queued stripes are sealed at next open. */
void cs_sealer_stop(struct cs_pool *pool);
/* A worker opened stripe id: the sealer must leave it alone until queued.
 * -ENOMEM: the worker must not use the stripe. */
int cs_seal_hold(struct cs_pool *pool, uint64_t id) CAIRN_WUR;
/* A worker is done with stripe id (full, closed or abandoned): seal it. */
void cs_seal_enqueue(struct cs_pool *pool, uint64_t id);
/* Waits until the sealer is idle with an empty queue. With close_open,
 * first makes every worker close its open stripe (queued for sealing) and
 * queues every OPEN stripe no worker holds. Blocks on cs_epoch_wait (open
 * readers and writers); never call it while holding one. */
int cs_seal_drain(struct cs_pool *pool, bool close_open) CAIRN_WUR;
/* Makes every worker close its open stripe (queued for sealing); the GC
 * thread calls it when no chunk came in for a whole interval, so a quiet
 * pool does not keep its last stripes as m+1 copies. Blocks until done. */
int cs_seal_close_idle(struct cs_pool *pool) CAIRN_WUR;
/* A worker finished a CS_TASK_CLOSE. */
void cs_seal_close_done(struct cs_close_wait *cw);
/* Physical bytes a stripe record accounts for (stats): data units
 * header + fill, times m+1 copies while open; plus m parity units once
 * sealed. */
uint64_t cs_stripe_physical(const struct cs_stripe_rec *s);
/* Parity area length of a sealed stripe: max fill rounded up to 4 KiB. */
uint32_t cs_seal_plen(const struct cs_stripe_rec *s);
/* Path of parity unit j (".p<j>") of a stripe on device dev. */
int cs_parity_path(const struct cs_pool *pool, uint32_t dev, uint64_t stripe_id, uint32_t part,
		   uint32_t j, char *dir, size_t dlen, char *path, size_t plen) CAIRN_WUR;
/* Path of unit idx of a stripe in its sealed layout: data idx < k on
 * D[idx], parity idx - k on D[idx]. */
int cs_sunit_path(const struct cs_pool *pool, const struct cs_stripe_rec *s, uint64_t id,
		  unsigned idx, char *dir, size_t dlen, char *path, size_t plen) CAIRN_WUR;
/* Checks a unit header block: magic, crc, stripe, index, kind, k, m. */
bool cs_unit_hdr_ok(const struct cs_pool *pool, const uint8_t *blk, uint64_t id, unsigned unit,
		    unsigned kind, const struct cs_stripe_rec *s);
/* Fills a unit header block (CS_UNIT_HDR_SIZE bytes, zeroed first). */
void cs_unit_hdr_make(const struct cs_pool *pool, uint8_t *blk, uint64_t id, unsigned unit,
		      unsigned kind, const struct cs_stripe_rec *s);
/* Walks the chunk records of a data area up to fill (CRC of header and
 * payload; magic 0 pads to the next 4 KiB). Returns 0, or CAIRN_ECORRUPT
 * with *bad_off set to where the walk failed. */
int cs_area_verify(const uint8_t *area, uint32_t fill, uint32_t *bad_off) CAIRN_WUR;
/* out[t] = unit targets[t] computed from k source units srcs[0..k) (unit
 * indexes 0..k+m, data then parity), len bytes each. CAIRN_ECORRUPT when
 * the sources are not independent (cannot happen with Cauchy). */
int cs_ec_decode(unsigned k, unsigned m, const unsigned *srcs, const unsigned *targets,
		 unsigned ntargets, uint8_t **src, uint8_t **out, size_t len) CAIRN_WUR;
/* Writes a whole unit file atomically: path.tmp, fdatasync, rename, fsync
 * of the directory (made if missing). buf: header block + area, len a
 * multiple of 4 KiB, aligned. */
int cs_unit_write_file(struct cs_pool *pool, struct io_ctx *io, uint32_t dev, uint32_t part,
		       const char *dir, const char *path, const uint8_t *buf, size_t len) CAIRN_WUR;

/* What a degraded read needs of a sealed stripe. */
struct cs_sview {
	uint64_t id;
	uint32_t part;
	struct cs_stripe_rec rec;
};
typedef bool (*cs_chunk_ok_fn)(void *arg, const uint8_t *range);
/* Rebuilds the data-area bytes [off, off+len) (4 KiB aligned) of data unit
 * `unit` of a sealed stripe from the same range of the other units, trying
 * sets of k survivors until ok(arg, out) accepts the result. get_fd (NULL:
 * open/close here) hands out fds owned by the caller; it returns < 0 when a
 * unit file cannot be opened. With extra non-NULL, every other data unit
 * that could not be read there (and holds stored bytes there) is rebuilt
 * too, into extra[j] (io_alloc'd, len bytes, the caller frees with io_free;
 * NULL where not rebuilt): a sequential reader then pays one read of the
 * survivors for all the lost units. Extras are not verified: their chunks
 * are, when used. Returns 0 or CAIRN_ECORRUPT. */
int cs_ec_read_range(struct cs_pool *pool, struct io_ctx *io, const struct cs_sview *sv,
		     unsigned unit, uint64_t off, size_t len, uint8_t *out, uint8_t **extra,
		     int (*get_fd)(void *arg, const char *path), void *fd_arg, cs_chunk_ok_fn ok,
		     void *ok_arg) CAIRN_WUR;

/* cs_commit.c */
/* Inside a commit of compaction writer t->w: for each i < n whose chunk is
 * still live in stripe from[i], moves its index entry to the fresh copy
 * t->w->chunks[i] (live bytes move with it); *moved counts those moved. A
 * copy not used stays as dead bytes in its stripe. */
int cs_chunks_move(struct cs_txn *t, const uint64_t *from, size_t n, uint64_t *moved) CAIRN_WUR;
int cs_committer_start(struct cs_pool *pool) CAIRN_WUR;
void cs_committer_stop(struct cs_pool *pool);

/* Key builders. */
static inline size_t cs_key_chunk(uint8_t *k, uint32_t part, const uint8_t fp[CS_FP_LEN])
{
	meta_be32(k, part);
	for (int i = 0; i < CS_FP_LEN; i++)
		k[4 + i] = fp[i];
	return 4 + CS_FP_LEN;
}
static inline size_t cs_key_stripe(uint8_t *k, uint32_t part, uint64_t id)
{
	meta_be32(k, part);
	meta_be64(k + 4, id);
	return 12;
}
static inline size_t cs_key_mhdr(uint8_t *k, uint32_t part, const struct cs_mid *mid)
{
	meta_be32(k, part);
	for (int i = 0; i < CS_MID_LEN; i++)
		k[4 + i] = mid->b[i];
	return 4 + CS_MID_LEN;
}
static inline size_t cs_key_ment(uint8_t *k, uint32_t part, const struct cs_mid *mid, uint64_t off)
{
	size_t n = cs_key_mhdr(k, part, mid);
	meta_be64(k + n, off);
	return n + 8;
}

/* snprintf that reports truncation: 0 or -ENAMETOOLONG. */
int cs_fmt(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static inline uint64_t cs_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}
static inline uint64_t cs_align_down(uint64_t v, uint64_t a)
{
	return v / a * a;
}

#endif
