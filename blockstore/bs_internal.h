/* blockstore/bs_internal.h - what the block store's files share (not for
 * other modules).
 *
 * bs_store.c: the store, the table of open volumes, commits, paths, the
 *             attachment record helpers.
 * bs_io.c:    handles, read/write/zero/flush/block status, intents, resync.
 * bs_admin.c: volume, snapshot and attachment operations.
 * bs_fsck.c:  bs_fsck.
 *
 * Open volumes. A struct bs_vol exists while a handle or a management call
 * uses the volume (refcounted, found by id). Its gate is a rwlock: I/O holds
 * it shared for the length of one call; a management call that changes the
 * view (snapshot, rollback, resize, detach --force, delete) takes it
 * exclusive (bs_vol_quiesce), which waits for I/O in flight, commits, puts
 * the new record in place and lets I/O go on (bs_vol_resume). I/O reads the
 * record from v under the shared gate, so it always writes into the head
 * generation the latest committed record names.
 */
#ifndef CAIRN_BLOCKSTORE_BS_INTERNAL_H
#define CAIRN_BLOCKSTORE_BS_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blockstore/bs.h"
#include "chunkstore/chunkstore.h"

#define BS_TAG "volume"
#define BS_LEASE_DEFAULT 300

struct bs_io_state; /* bs_io.c's per-volume state: fd cache, dirty files, armed intents */

struct bs_vol {
	struct bs_vol *next; /* store's list, under bs->lock */
	unsigned refs;	     /* under bs->lock */
	uint8_t id[VOL_ID_LEN];
	pthread_rwlock_t gate;
	struct vol v;	      /* the committed record; read under gate (shared) */
	atomic_uint nhandles; /* open handles */
	/* Bumped by detach --force and delete: handles opened under an older
	 * epoch are revoked (their calls fail with -ESHUTDOWN). */
	atomic_uint epoch;
	struct bs_io_state *io; /* owned by bs_io.c (bs_io_vol_init/free) */
	/* Readers of the chain's base manifest that I/O threads borrow (a
	 * cs_reader is single-thread and owns an io_uring): made on demand,
	 * kept up to BS_BASE_READERS, freed with the volume (bs_io.c). An open
	 * reader holds a chunk-store grace epoch (GC and compaction wait for
	 * it), so none lives past BS_BASE_READER_AGE_NS nor stays cached idle
	 * past BS_BASE_READER_IDLE_NS: the store's sweeper frees those. */
	pthread_mutex_t base_mu;
	struct bs_base_rd *base_free;
	unsigned base_nfree;
	/* Open snapshot handles per snapshot generation (bs_snapshot_open):
	 * such a snapshot cannot be deleted. Changed with the gate held
	 * shared, checked with it exclusive, so a check and an open never
	 * interleave. */
	pthread_mutex_t snap_mu;
	struct bs_snap_ref *snap_refs;
	size_t nsnap_refs;
};

#define BS_BASE_READERS 8
#define BS_BASE_READER_AGE_NS 2000000000ull  /* a reader is replaced after 2 s */
#define BS_BASE_READER_IDLE_NS 1000000000ull /* and freed after 1 s unused */
#define BS_SWEEP_MS 500			     /* the sweeper's period */

struct bs_base_rd {
	struct bs_base_rd *next;
	uint8_t mid[VOL_ID_LEN];
	struct cs_reader *r;
	uint64_t born_ns, used_ns; /* CLOCK_MONOTONIC */
};

struct bs_snap_ref {
	uint32_t gen;
	unsigned n;
};

/* Open snapshot handles of vol on the snapshot at gen (all of them when
 * gen is 0). Call with the gate held exclusive. */
unsigned bs_snap_refs(struct bs_vol *vol, uint32_t gen);

struct bs_store {
	struct cs_pool *pool;
	struct meta_env *meta;
	const struct ring *ring; /* the replica ring */
	char data_dir[PATH_MAX];
	uint32_t lease_seconds;
	pthread_mutex_t lock; /* vols */
	struct bs_vol *vols;
	/* The sweeper thread: frees base readers past their age or idle
	 * (bs_io_sweep_readers), so no grace epoch stays held. */
	pthread_t sweeper;
	bool sweeper_running, sweeper_stop;
	pthread_mutex_t sweep_mu;
	pthread_cond_t sweep_cv;
};

/* ---- bs_store.c ---- */

/* Runs fn(txn, arg) in the next group commit (cs_commit with no writer);
 * returns fn's result or the commit's error. */
int bs_commit(struct bs_store *bs, cs_commit_fn fn, void *arg) CAIRN_WUR;
/* The volume partition of a name. */
uint32_t bs_part(struct bs_store *bs, const char *name);
/* The open volume with this id, its record loaded when it was not open
 * (refs + 1), or CAIRN_ENOTFOUND. Release with bs_vol_put. */
int bs_vol_get(struct bs_store *bs, const uint8_t id[VOL_ID_LEN], struct bs_vol **out) CAIRN_WUR;
void bs_vol_put(struct bs_store *bs, struct bs_vol *vol);
/* Exclusive gate: waits for I/O in flight. */
void bs_vol_quiesce(struct bs_vol *vol);
/* Puts v (when non-NULL) in place as the committed record, then lets I/O in. */
void bs_vol_resume(struct bs_vol *vol, const struct vol *v);

/* Replica devices of an extent: the first `replicas` (at most the ring's
 * replica count) devices of the replica ring's partition for (id, index).
 * Returns how many were written to devs. */
unsigned bs_extent_devs(struct bs_store *bs, const uint8_t id[VOL_ID_LEN], uint64_t index,
			unsigned replicas, uint32_t *devs);
/* DATA/devices/<dev name>; CAIRN_ENOTFOUND for a device not in the ring. */
int bs_dev_dir(struct bs_store *bs, uint32_t dev, char *out, size_t len) CAIRN_WUR;
/* DATA/devices/<dev>/extents/<id hex> and .../<gen>.<index>. */
int bs_vol_dir(struct bs_store *bs, uint32_t dev, const uint8_t id[VOL_ID_LEN], char *out,
	       size_t len) CAIRN_WUR;
int bs_extent_path(struct bs_store *bs, uint32_t dev, const uint8_t id[VOL_ID_LEN], uint32_t gen,
		   uint64_t index, char *out, size_t len) CAIRN_WUR;
/* Removes extents/<id hex> on every device (after the records are gone). */
int bs_vol_remove_files(struct bs_store *bs, const uint8_t id[VOL_ID_LEN]) CAIRN_WUR;

/* The attachment record of a volume: 0, CAIRN_ENOTFOUND. host gets the
 * NUL-terminated host name (VOL_HOST_MAX + 1 bytes) when non-NULL. */
int bs_attach_load(struct meta_txn *t, const uint8_t id[VOL_ID_LEN], struct vol_attach_rec *rec,
		   char *host) CAIRN_WUR;
/* Renews the lease: expires = now + its lease_s (one commit). bs_io.c calls
 * it when the last handle of a volume closes. CAIRN_ENOTFOUND when the
 * attachment is gone. */
int bs_attach_touch(struct bs_store *bs, const uint8_t id[VOL_ID_LEN]) CAIRN_WUR;

/* Tests only: called by a flatten once the clone's blocks are copied, before
 * it quiesces the clone to commit (the clone's I/O still runs). */
extern void (*bs_flatten_test_hook)(const uint8_t id[VOL_ID_LEN], void *arg);
extern void *bs_flatten_test_arg;

/* ---- bs_io.c ---- */

/* The SHA-256 an attachment record keeps of its token: over the token's
 * len characters as given (BS_TOKEN_LEN hex characters). bs_attach stores
 * it, bs_handle_open compares it in constant time. */
void bs_token_hash(const char *token, size_t len, uint8_t out[32]);

int bs_io_vol_init(struct bs_vol *vol) CAIRN_WUR;
/* Closes cached fds; the volume has no handle and no I/O left. */
void bs_io_vol_free(struct bs_vol *vol);
/* Frees the cached base readers of every open volume that are past
 * BS_BASE_READER_AGE_NS or idle past BS_BASE_READER_IDLE_NS (all of them
 * with all). Takes bs->lock. */
void bs_io_sweep_readers(struct bs_store *bs, bool all);
/* Resyncs every extent with a write intent, then clears the intents. */
int bs_io_resync(struct bs_store *bs) CAIRN_WUR;
/* Makes every dirty replica file of vol durable (what bs_flush does), for
 * management calls that need it before a snapshot is taken. */
int bs_io_sync_vol(struct bs_store *bs, struct bs_vol *vol, struct io_ctx *ctx) CAIRN_WUR;
/* Copies the blocks in mask of extent index from (src id, src gen) files
 * to (dst id, dst gen) files on all of dst's replicas (creating them), and
 * makes them durable: flatten and fsck --fix use it. */
int bs_io_copy_blocks(struct bs_store *bs, struct io_ctx *ctx, const uint8_t src_id[VOL_ID_LEN],
		      uint32_t src_gen, unsigned src_replicas, const uint8_t dst_id[VOL_ID_LEN],
		      uint32_t dst_gen, unsigned dst_replicas, uint64_t index,
		      uint64_t mask) CAIRN_WUR;

#endif
