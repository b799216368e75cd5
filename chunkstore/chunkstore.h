/* chunkstore/chunkstore.h - the data path under every front end.
 *
 * A pool is the node's devices (DATA/devices/<dev>/), its rings (DATA/ring/) and
 * its metadata (DATA/meta/). Bytes go in through a writer, which cuts them
 * into chunks (the pool's chunking policy), fingerprints them (SHA-256),
 * skips chunks the dedup index already holds and all-zero chunks, and packs
 * new ones into open stripes on the devices (O_DIRECT, io_uring). A manifest
 * (an ordered list of chunks, reference-counted) is created from a finished
 * writer inside a commit; objects, images and clone parents hold manifest
 * ids. The chunk store knows nothing of buckets, volumes or protocols.
 *
 * Durability: cs_commit() returns 0 only after the writer's data is synced
 * and the metadata transaction committed. One committer thread joins data
 * syncs and LMDB transactions of many requests into groups; it is the only
 * path by which metadata writes reach LMDB once the pool is open.
 *
 * Threads: a pool is shared by all threads. A writer or reader is used by one
 * thread at a time. cs_commit() may be called from any thread and blocks.
 * The commit callback runs on the committer thread inside the group's write
 * transaction (in a nested transaction of its own, so its failure undoes only
 * its own changes); it must not block on I/O or call cs_commit().
 */
#ifndef CAIRN_CHUNKSTORE_CHUNKSTORE_H
#define CAIRN_CHUNKSTORE_CHUNKSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkstore/format.h"
#include "core/err.h"
#include "meta/meta.h"

struct ring;

struct cs_pool_opts {
	const char *data_dir; /* DATA: holds meta/, devices/, ring/ */
	/* Used only when the pool is created (first start); later starts read
	 * the pool record and ignore these. 0 = default. */
	uint32_t devices;    /* device folders to create: 6 */
	uint32_t k, m;	     /* 4, 2 */
	uint32_t replicas;   /* replica policy copies: min(3, devices) */
	uint32_t unit_size;  /* 1 MiB */
	uint32_t chunking;   /* CS_CHUNK_FASTCDC (the default) or CS_CHUNK_FIXED */
	uint32_t chunk_size; /* fixed chunking block: 64 KiB */
	uint32_t chunk_avg;  /* fastcdc average (a power of two): 16 KiB */
	uint32_t chunk_min;  /* fastcdc bounds: 4 KiB, 64 KiB */
	uint32_t chunk_max;
	uint32_t inline_max;   /* 4096 */
	uint32_t dedup_domain; /* CS_DEDUP_GLOBAL (the default) or CS_DEDUP_TENANT */
	uint32_t part_power;   /* ring partition power: 10 */
	/* Every start. */
	size_t map_size;	/* LMDB map; 0 = 64 GiB */
	unsigned workers;	/* chunk worker threads; 0 = one per core */
	bool powerloss_sim;	/* core/io power-loss test mode */
	bool no_compress;	/* store new chunks as they are (no zstd) */
	int zstd_level;		/* for new chunks; 0 = CS_ZSTD_LEVEL (3) */
	uint64_t bloom_entries; /* dedup filter capacity at open; 0 = from the index */
	/* Seconds between background GC passes: 0 = 60, < 0 = no background
	 * GC (only cs_gc calls). A burst of deletes also starts a pass. */
	int gc_interval;
	bool seal_off; /* tests: no sealer, stripes stay open (replicated) */
};

struct cs_pool;
struct cs_writer;
struct cs_reader;
struct cs_txn;

struct cs_mid {
	uint8_t b[CS_MID_LEN];
};

enum cs_policy { CS_POLICY_EC = 0, CS_POLICY_REPLICA = 1 };

/* Opens the pool in opts->data_dir, creating it (devices, rings, pool
 * record) on first start. Starts the committer and workers. Creation needs
 * devices >= k + m (CAIRN_EINVAL otherwise); a pool record newer than this
 * build gives CAIRN_EFORMAT. With powerloss_sim the undo log is
 * DATA/powerloss.log; after a simulated crash the caller runs
 * io_powerloss_replay() on it before opening again. */
int cs_pool_open(const struct cs_pool_opts *opts, struct cs_pool **out) CAIRN_WUR;
/* Stops threads after in-flight commits finish; NULL is fine. Every writer
 * and reader must be freed first. */
void cs_pool_close(struct cs_pool *pool);

/* The pool's metadata environment, for read transactions (never writes). */
struct meta_env *cs_pool_meta(struct cs_pool *pool);
/* The ring of a policy; valid until the pool closes. */
const struct ring *cs_pool_ring(struct cs_pool *pool, enum cs_policy policy);
/* The metadata partition of a name (bucket, volume, image): keyed hash with
 * the replica ring. */
uint32_t cs_name_partition(struct cs_pool *pool, const void *name, size_t len);
/* The pool's format record (valid until close). */
const struct cs_pool_rec *cs_pool_format(struct cs_pool *pool);

/* ---- writing ---- */

int cs_writer_open(struct cs_pool *pool, struct cs_writer **out) CAIRN_WUR;
/* The writer's dedup domain (format.h): in a CS_DEDUP_TENANT pool its
 * chunks deduplicate only against chunks written in the same domain. Call
 * before the first write; in a global pool it changes nothing. */
void cs_writer_set_domain(struct cs_writer *w, const uint8_t domain[CS_DOMAIN_LEN]);
/* The stream always gets chunk entries, even when it is small enough to be
 * kept inline (multipart parts, which cs_manifest_concat joins). Call
 * before cs_writer_finish. */
void cs_writer_set_no_inline(struct cs_writer *w);
/* Appends bytes (copied). Full chunks are handed to the worker pool; may
 * block while too many chunks of this writer are in flight (bounded memory). */
int cs_writer_write(struct cs_writer *w, const void *buf, size_t len) CAIRN_WUR;
/* Ends the stream: cuts the last chunk and waits for every chunk of this
 * writer to be written (not yet synced: cs_commit syncs). A stream of at most
 * inline_max bytes writes nothing: its bytes go into the manifest header.
 * Returns the first error of any chunk (the writer is then useless). */
int cs_writer_finish(struct cs_writer *w) CAIRN_WUR;
/* Logical bytes written so far. */
uint64_t cs_writer_size(const struct cs_writer *w);
/* Frees the writer. Data of a writer whose manifest was never committed is
 * dead by construction (no chunk index entry points at it). NULL is fine. */
void cs_writer_free(struct cs_writer *w);

/* ---- committing ---- */

typedef int (*cs_commit_fn)(struct cs_txn *txn, void *arg);

/* Syncs w's data (w may be NULL for metadata-only changes), then runs
 * fn(txn, arg) in the next group transaction and waits until that
 * transaction is durable. Returns fn's negative result (its changes undone),
 * a commit error, or 0. w must be finished (else CAIRN_EINVAL); fn may be
 * NULL. Cost: one fdatasync per dirty unit file and one LMDB commit, both
 * shared with every request of the same group. */
int cs_commit(struct cs_pool *pool, struct cs_writer *w, cs_commit_fn fn, void *arg) CAIRN_WUR;

/* Inside a commit callback: the write transaction. */
struct meta_txn *cs_txn_meta(struct cs_txn *txn);
/* Creates a manifest (refcount 1) from the finished writer given to
 * cs_commit, adding chunk references (one per entry). Once the request
 * commits, the writer cannot make another manifest (CAIRN_EINVAL).
 * CAIRN_ENOTFOUND: a deduplicated chunk vanished (GC) before the commit. */
int cs_manifest_create(struct cs_txn *txn, struct cs_mid *out) CAIRN_WUR;
/* A manifest made of others, in order: the bytes of parts[0], then
 * parts[1]... (multipart completion). No data is read or written: entries
 * are copied. It consumes one reference of each part (the caller's): a
 * part held only by that reference hands its chunk references over and
 * dies (GC removes it), one held elsewhere too keeps its own and the chunks
 * gain one. The same manifest may not appear twice unless it holds that
 * many references. Inline manifests cannot be parts (CAIRN_EINVAL): write
 * parts with cs_writer_set_no_inline. Cost: O(entries) LMDB writes of
 * manifest records, plus chunk records for shared parts. */
int cs_manifest_concat(struct cs_txn *txn, const struct cs_mid *parts, size_t n,
		       struct cs_mid *out) CAIRN_WUR;
/* Adds one reference to a manifest (copy, image registration, clone). */
int cs_manifest_ref(struct cs_txn *txn, const struct cs_mid *mid) CAIRN_WUR;
/* Drops one reference. At zero the manifest's chunks each lose a reference
 * (chunks at zero stay on disk until GC), and the manifest itself stays
 * readable with refcount 0 for readers opened before, until GC removes it.
 * O(entries) at zero. Both ref and unref return CAIRN_ENOTFOUND for an
 * unknown or dead manifest. */
int cs_manifest_unref(struct cs_txn *txn, const struct cs_mid *mid) CAIRN_WUR;

/* ---- reading ---- */

/* Manifest facts, in a read transaction the caller holds. CAIRN_ENOTFOUND
 * for an unknown manifest. */
int cs_manifest_size(struct meta_txn *txn, struct cs_pool *pool, const struct cs_mid *mid,
		     uint64_t *size) CAIRN_WUR;

int cs_reader_open(struct cs_pool *pool, const struct cs_mid *mid,
		   struct cs_reader **out) CAIRN_WUR;
uint64_t cs_reader_size(const struct cs_reader *r);
/* Reads up to len bytes at off; returns bytes read (0 at the end) or a
 * negative code (CAIRN_ECORRUPT when no copy verifies). Sequential reads are
 * prefetched. Holds no LMDB transaction between calls.
 * Never short except at the end: returns min(len, size - off), 0 when
 * off >= size. Cost: a manifest range seek per 32 chunks (128 for
 * sequential or large reads), then one batched O_DIRECT read of up to 128
 * chunks or 2 MiB; a read continuing the previous one reads ahead that
 * window, later calls are served from memory. Zero chunks and inline
 * manifests cost no I/O. A reader owns an io_uring and cached unit fds, both
 * made on the first chunk read, and read buffers (~2-4 MiB streaming). */
long cs_reader_read(struct cs_reader *r, uint64_t off, void *buf, size_t len) CAIRN_WUR;
void cs_reader_free(struct cs_reader *r);

/* ---- stats ---- */

struct cs_stats {
	uint64_t logical_bytes;	 /* sum of manifest sizes x refcount */
	uint64_t unique_bytes;	 /* raw bytes of live chunks */
	uint64_t stored_bytes;	 /* stored payload bytes of live chunks */
	uint64_t physical_bytes; /* bytes in unit files on all devices (from
				  * committed fill x copies; uncommitted data
				  * is not counted) */
	uint64_t chunks;	 /* live chunks */
	uint64_t manifests;
	uint64_t stripes;
	uint64_t commits;	  /* group transactions committed */
	uint64_t commit_requests; /* requests they carried */
	/* since open (not persisted): chunk copies that failed to read or
	 * verify and were replaced by another copy */
	uint64_t read_fallbacks;
	/* since open: chunk dedup lookups the in-memory filter answered
	 * "new" (no LMDB read), lookups that read the index, and of those the
	 * filter's false positives (the index did not have the chunk) */
	uint64_t dedup_filter_skips, dedup_index_lookups, dedup_filter_false;
	/* since open: chunks of sealed stripes rebuilt from the other units */
	uint64_t reconstructs;
};
int cs_pool_stats(struct cs_pool *pool, struct cs_stats *out) CAIRN_WUR;

/* What a set of manifests (an image: its bytes and its raw view) costs.
 * A chunk is unique to the set when its refcount equals the number of
 * entries of the set's manifests that name it (nothing else holds it), else
 * shared. Zero chunks cost nothing and are counted in zero_bytes only;
 * inline manifests count as unique (raw and stored). Reads the manifests
 * and chunk records in short read transactions (no device I/O); memory: a
 * hash map of the set's distinct chunks. O(entries). */
struct cs_usage {
	uint64_t logical_bytes; /* sum of the manifests' sizes */
	uint64_t zero_bytes;	/* bytes in zero chunks */
	uint64_t unique_bytes;	/* raw bytes of chunks only the set holds */
	uint64_t unique_stored; /* their stored (compressed) bytes */
	uint64_t shared_bytes;	/* raw bytes of chunks others hold too (each distinct chunk once) */
	uint64_t chunks;	/* distinct non-zero chunks */
};
int cs_manifest_usage(struct cs_pool *pool, const struct cs_mid *mids, size_t n,
		      struct cs_usage *out) CAIRN_WUR;

/* ---- maintenance: long operations on an open pool, while it serves ----
 * Each reports progress through fn (may be NULL) from the calling thread:
 * phase names what it is doing, done/total count its unit of work (bytes
 * where it reads or writes data), total 0 = not known yet. Each returns 0
 * when it ran to the end (problems found are in the report, not the return
 * code) or a negative code when it could not run. */
typedef void (*cs_progress_fn)(void *arg, const char *phase, uint64_t done, uint64_t total);

struct cs_check_report {
	uint64_t checked;	 /* items examined (chunks, manifests, units) */
	uint64_t bytes;		 /* data bytes read or written */
	uint64_t problems;	 /* differences or damage found */
	uint64_t fixed;		 /* of those, repaired */
	uint64_t unrecoverable;	 /* of those, beyond repair (data lost) */
	uint64_t freed_bytes;	 /* gc: stored bytes released */
	char first_problem[256]; /* a description of the first problem, "" if none */
};

/* Recomputes chunk refcounts, live bytes and the pool counters from the
 * manifests and compares them with what is stored; with fix, writes the
 * recomputed values. Reads one consistent snapshot (one read transaction
 * for the walk); memory: a hash map of ~70 bytes per chunk and per stripe.
 * Fixes are applied as differences to the current values, so writes that
 * commit during the walk are not undone. Runs exclusive of GC. */
int cs_fsck(struct cs_pool *pool, bool fix, struct cs_check_report *rep, cs_progress_fn fn,
	    void *arg) CAIRN_WUR;
/* Frees manifests and chunks whose refcount is zero, and stripes left with
 * no live chunk, once no reader or writer that could see them remains.
 * Waits for grace periods (cs_epoch_wait), so it must not be called by a
 * thread that holds an open writer or reader (it would wait for itself).
 * One pass at a time per pool (also against cs_fsck); a background thread
 * runs passes every gc_interval seconds. */
int cs_gc(struct cs_pool *pool, struct cs_check_report *rep, cs_progress_fn fn,
	  void *arg) CAIRN_WUR;
/* Copies the live chunks of stripes whose live bytes are under
 * max_live_pct (1..100) of their data bytes into fresh stripes (reads and
 * writes go on meanwhile); the emptied stripes are freed by the next cs_gc.
 * rep->checked: stripes chosen; rep->bytes: bytes rewritten; rep->fixed:
 * chunks moved. Exclusive of
 * cs_gc and cs_fsck. Compressed chunks are expanded and written again. */
int cs_compact(struct cs_pool *pool, unsigned max_live_pct, struct cs_check_report *rep,
	       cs_progress_fn fn, void *arg) CAIRN_WUR;
/* Re-reads every unit of every stripe, verifies every chunk record (and
 * parity of sealed stripes), and rewrites damaged or missing units from the
 * stripe's survivors. */
int cs_scrub(struct cs_pool *pool, struct cs_check_report *rep, cs_progress_fn fn,
	     void *arg) CAIRN_WUR;
/* Rebuilds every unit missing from its device (a lost or replaced device
 * folder) from the stripe's survivors, without re-reading healthy units. */
int cs_repair(struct cs_pool *pool, struct cs_check_report *rep, cs_progress_fn fn,
	      void *arg) CAIRN_WUR;

#endif
