/* blockstore/bs_io_internal.h - what bs_io.c and bs_io_sync.c share: the
 * per-volume I/O state (fd cache, extent states), replica file helpers and
 * the I/O counters. Not for other files: bs_internal.h is the store's
 * internal contract. Locking rules: bs_io.c's header comment.
 */
#ifndef CAIRN_BLOCKSTORE_BS_IO_INTERNAL_H
#define CAIRN_BLOCKSTORE_BS_IO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blockstore/bs_internal.h"

#define BS_FD_CAP 512	      /* cached fds per volume (dirty or pinned ones may exceed it) */
#define BS_FD_BUCKETS 1024    /* fd cache hash */
#define BS_EXT_BUCKETS 1024   /* extent state hash */
#define BS_BLOCK_LOCKS 256    /* stripes of the 4 KiB read-modify-write lock */
#define BS_REPL_MAX 16	      /* replicas of one extent we handle */
#define BS_IO_MAX (32u << 20) /* bytes of one read or write */
#define BS_WRITE_EXTENTS_MAX (BS_IO_MAX / VOL_EXTENT_SIZE + 1)
#define BS_STATUS_MAX (64ull << 20) /* block status may stop past this */
#define BS_CLEAR_NS 1000000000ull   /* intents are cleared at most once a second */
#define BS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* One cached replica file. */
struct bs_fd {
	struct bs_fd *hnext;	     /* hash chain */
	struct bs_fd *lprev, *lnext; /* LRU, most recent first */
	struct bs_fd *dnext;	     /* dirty list, while dirty */
	uint8_t id[VOL_ID_LEN];
	uint32_t gen, dev;
	uint64_t index;
	int fd;
	unsigned pins; /* users right now: never closed while > 0 */
	bool dirty;    /* written since its last fdatasync */
};

enum bs_intent_state {
	BS_INT_NONE = 0,     /* no record we rely on (there may be a stale one) */
	BS_INT_ARMING = 1,   /* a put is being committed */
	BS_INT_ARMED = 2,    /* the record naming igen is committed */
	BS_INT_CLEARING = 3, /* a delete is being committed */
};

/* One extent of an open volume. */
struct bs_ext {
	struct bs_ext *next;
	uint64_t index;
	pthread_mutex_t mu; /* slow path: map changes of this extent, in order */
	pthread_mutex_t sl; /* the fields below; brief */
	/* Blocks known WRITTEN at depth 0 in the head generation (wgen) of
	 * the view (wepoch, wsize); wver counts removals. */
	bool wvalid;
	uint32_t wgen, wepoch;
	uint64_t wsize, wmask, wver;
	uint8_t istate; /* enum bs_intent_state */
	uint32_t igen;
	unsigned inflight; /* writes between intent check and dirty marking */
	/* A write failed after its bytes may have reached some replicas: the
	 * copies may differ, so the intent stays until the next start's
	 * resync (never cleared while the volume is open). */
	bool ikeep;
	bool ichecked;	   /* the first arm looked for a record left behind */
	uint64_t last_seq; /* sequence of the last such write */
};

struct bs_io_state {
	pthread_mutex_t lock; /* fd cache, dirty list, seq */
	struct bs_fd *fd_hash[BS_FD_BUCKETS];
	struct bs_fd *lru_head, *lru_tail;
	struct bs_fd *dirty;
	unsigned nfds;
	unsigned ndirty; /* entries on the dirty list */
	uint64_t seq;	 /* writes that marked their files dirty */
	pthread_mutex_t flush_mu;
	uint64_t synced_seq;	/* under flush_mu: writes up to it are durable */
	uint64_t last_clear_ns; /* under flush_mu */
	uint64_t clear_seq;	/* under flush_mu: seq when the last clear pass ran */
	pthread_rwlock_t ext_lock;
	struct bs_ext *ext_hash[BS_EXT_BUCKETS];
	pthread_mutex_t blk[BS_BLOCK_LOCKS];
};

/* Process-wide counters (exported as cairn_volume_* gauges). */
struct bs_io_counters {
	atomic_uint_fast64_t read_ops, read_bytes, write_ops, write_bytes;
	atomic_uint_fast64_t map_commits; /* extent map commits of writes and zeroes */
	atomic_uint_fast64_t intents_committed, intents_cleared; /* records */
};
extern struct bs_io_counters bs_io_counters;

struct bs_handle {
	struct bs_store *bs;
	struct bs_vol *vol;
	unsigned epoch; /* vol->epoch when opened: another one means revoked */
	char name[VOL_NAME_MAX + 1];
	/* bs_snapshot_open: a read-only view of the snapshot at snap_gen,
	 * snap_size bytes (no attachment; never revoked). */
	bool snap;
	uint32_t snap_gen;
	uint64_t snap_size;
};

/* A byte range of one replica file to read. */
struct piece {
	uint8_t id[VOL_ID_LEN];
	uint64_t index;
	uint32_t gen;
	unsigned nrep; /* replicas of that volume (0: try every ring replica) */
	uint64_t foff;
	uint32_t len;
	uint8_t *dst; /* IO_ALIGN-aligned */
	int ret;
};

uint64_t bs_now_ns(void);  /* CLOCK_REALTIME */
uint64_t bs_mono_ns(void); /* CLOCK_MONOTONIC */
/* Calls fn on every extent state of st (the table read-locked). */
void bs_ext_each(struct bs_io_state *st, void (*fn)(struct bs_ext *e, void *arg), void *arg);
/* Makes every file dirtied before the call durable (bs_flush's work). */
int bs_flush_vol(struct bs_io_state *st, struct io_ctx *ctx) CAIRN_WUR;
/* Deletes, in one commit, the intents whose writes are all durable and
 * that saw no write since the previous pass; without force at most once
 * per BS_CLEAR_NS; with force every durable one (last close). */
int bs_intents_clear(struct bs_store *bs, struct bs_vol *vol, bool force) CAIRN_WUR;
/* META_T_INTENTS key of an extent. */
void bs_intent_key(uint8_t *k, const uint8_t *id, uint64_t index);
/* bs_extent_devs capped at BS_REPL_MAX (devs holds that many); replicas
 * 0: every ring replica. */
static inline unsigned bs_devs(struct bs_store *bs, const uint8_t *id, uint64_t index,
			       unsigned replicas, uint32_t *devs)
{
	return bs_extent_devs(bs, id, index,
			      replicas && replicas < BS_REPL_MAX ? replicas : BS_REPL_MAX, devs);
}
/* A volume's I/O state (also a scratch one for resync and block copies). */
struct bs_io_state *bs_io_state_new(void);
/* Closes the cached fds (name: for the log). NULL is fine. */
void bs_io_state_free(struct bs_io_state *st, const char *name);
/* A pinned cached fd of an existing replica file (-ENOENT: missing). */
int bs_fd_get(struct bs_store *bs, struct bs_io_state *st, const uint8_t *id, uint32_t gen,
	      uint64_t index, uint32_t dev, struct bs_fd **out) CAIRN_WUR;
void bs_fd_unpin(struct bs_io_state *st, struct bs_fd *f);
/* Pins the n replica files of (id, gen, index) on devs; with create, makes
 * missing ones (fallocated in full: ENOSPC here) and syncs their folders.
 * keep: blocks the map already names in gen; a file made anew gets them
 * copied (durably, before it takes its name) from a replica that has its
 * file, -EIO when none has. */
int bs_open_replicas(struct bs_store *bs, struct bs_io_state *st, struct io_ctx *ctx,
		     const uint8_t *id, uint32_t gen, uint64_t index, const uint32_t *devs,
		     unsigned n, bool create, uint64_t keep, struct bs_fd **fds) CAIRN_WUR;
/* Reads every piece from the first replica that answers; -EIO when none. */
int bs_read_pieces(struct bs_store *bs, struct bs_io_state *st, struct io_ctx *ctx, struct piece *p,
		   size_t n) CAIRN_WUR;

#endif
