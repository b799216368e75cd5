/* blockstore/vol_map.h - volumes, their extent maps, snapshots and clones
 * (metadata only: no extent file is read or written here).
 *
 * Everything runs inside a caller's meta transaction (meta/meta.h): reads in
 * a read or write transaction, changes only in a write transaction, which
 * the caller commits. Any thread that may hold such a transaction may call.
 * A struct vol is a copy (no pointers into the map); functions that change
 * the volume record update the caller's copy too. A copy is stale once
 * another transaction changed the record: reload with vol_get*.
 *
 * Model (blockstore/vol_format.h, docs/architecture.md "Block volumes"):
 * writes go to the head generation; a snapshot freezes the view at the head
 * and moves the head up (O(1)); a clone is a new volume whose absent blocks
 * read its parent's view at the snapshot (O(1)); a rollback adds a jump to
 * the volume record (O(1)). Sizes are multiples of VOL_BLOCK_SIZE.
 *
 * Errors: CAIRN_ENOTFOUND (volume, snapshot), CAIRN_EEXISTS (names),
 * CAIRN_EINVAL (arguments), CAIRN_ENOTEMPTY (snapshots exist), -EBUSY (a
 * clone depends on it, or attached), CAIRN_ETOOBIG (jump or depth limits),
 * CAIRN_EFORMAT / CAIRN_ECORRUPT (records), and meta's codes.
 */
#ifndef CAIRN_BLOCKSTORE_VOL_MAP_H
#define CAIRN_BLOCKSTORE_VOL_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "blockstore/vol_format.h"
#include "core/err.h"

struct meta_txn;

struct vol_jump {
	uint32_t gen;
	uint32_t prev;
};

struct vol {
	uint8_t id[VOL_ID_LEN];
	uint32_t part;
	char name[VOL_NAME_MAX + 1];
	uint64_t size;
	uint32_t extent_size;
	uint32_t gen; /* head */
	uint8_t state;
	uint8_t replicas;
	bool has_parent;
	uint8_t parent_id[VOL_ID_LEN];
	uint32_t parent_gen;
	/* VOL_RECF_IMAGE: blocks absent through v's own views read this
	 * chunk-store manifest (never with has_parent; stored in the record's
	 * parent_id). A clone reads its root's base through its parent. */
	bool has_base;
	uint8_t base_mid[VOL_ID_LEN];
	uint64_t created_ns;
	uint64_t iops_limit;
	uint64_t bps_limit;
	unsigned njumps;
	struct vol_jump jumps[VOL_JUMPS_MAX]; /* ascending gen */
};

struct vol_opts {
	unsigned replicas;   /* 0: 3 */
	uint64_t iops_limit; /* 0: none */
	uint64_t bps_limit;  /* 0: none */
};

struct vol_snap {
	uint32_t gen;
	char name[VOL_SNAP_NAME_MAX + 1];
	uint64_t created_ns;
	uint64_t size;
	uint32_t nclones;
};

/* ---- volumes ---- */
/* Creates an empty volume; out (may be NULL) gets the record, with a new
 * random id. Names: 1..VOL_NAME_MAX bytes, no 0 byte. */
int vol_create(struct meta_txn *t, uint32_t part, const char *name, uint64_t size,
	       const struct vol_opts *opts, struct vol *out) CAIRN_WUR;
/* Gives v (a volume without parent or base) the base manifest mid
 * (VOL_RECF_IMAGE) and writes the record. The caller holds the manifest
 * reference the record stands for (cs_manifest_ref in the same commit).
 * O(1). CAIRN_EINVAL when v has a parent or a base already. */
int vol_set_base(struct meta_txn *t, struct vol *v, const uint8_t mid[VOL_ID_LEN]) CAIRN_WUR;
/* The base manifest v's views read through: v's own, else its clone
 * chain's root's (*has false when none). O(depth) record reads. */
int vol_chain_base(struct meta_txn *t, const struct vol *v, bool *has,
		   uint8_t mid[VOL_ID_LEN]) CAIRN_WUR;
int vol_get(struct meta_txn *t, uint32_t part, const char *name, struct vol *out) CAIRN_WUR;
int vol_get_by_id(struct meta_txn *t, const uint8_t id[VOL_ID_LEN], struct vol *out) CAIRN_WUR;
/* Deletes the volume record, its snapshots and extent records (O(records);
 * the extent files are the I/O layer's). Refused with CAIRN_ENOTEMPTY while
 * snapshots exist unless force, with -EBUSY while attached or while a clone's
 * parent is one of its snapshots (force or not). A deleted clone releases
 * its parent snapshot. A volume with a base: the caller drops the
 * manifest's reference in the same transaction (vol_map knows no chunk
 * store). */
int vol_delete(struct meta_txn *t, struct vol *v, bool force) CAIRN_WUR;
/* Grows (O(1)); shrinks only with force (CAIRN_EINVAL otherwise): the
 * blocks cut off are recorded zero at the head, so growing again never
 * shows old bytes (O(extents cut off)). */
int vol_resize(struct meta_txn *t, struct vol *v, uint64_t size, bool force) CAIRN_WUR;

/* Sets the state (enum vol_state) or the QoS limits (0: none) and writes
 * the record (O(1)). */
int vol_set_state(struct meta_txn *t, struct vol *v, enum vol_state state) CAIRN_WUR;
int vol_set_qos(struct meta_txn *t, struct vol *v, uint64_t iops_limit,
		uint64_t bps_limit) CAIRN_WUR;

/* ---- extent map ---- */
enum vol_blk_kind {
	VOL_BLK_UNWRITTEN = 0, /* absent everywhere: reads zeroes */
	VOL_BLK_ZERO = 1,      /* recorded zero: reads zeroes */
	VOL_BLK_WRITTEN = 2,   /* bytes in generation gen of volume ids[depth] */
	/* absent through the whole chain, whose last volume (ids[depth]) has a
	 * base manifest (base_mid): reads the manifest's bytes at the block's
	 * volume offset, zeroes past the manifest's end */
	VOL_BLK_BASE = 3,
};
struct vol_blk {
	uint8_t kind;  /* enum vol_blk_kind */
	uint8_t depth; /* 0: this volume; 1: its parent; ... */
	uint32_t gen;  /* WRITTEN and ZERO: the record that decided */
};
struct vol_resolved {
	struct vol_blk blk[VOL_BLOCKS];
	uint8_t ids[VOL_DEPTH_MAX + 1][VOL_ID_LEN]; /* ids[0] = the volume */
	uint64_t written;			    /* mask of WRITTEN blocks */
	uint64_t zero;				    /* mask of ZERO blocks */
	uint64_t base;				    /* mask of BASE blocks */
	uint8_t base_mid[VOL_ID_LEN];		    /* when base != 0 */
};
/* Resolves every block of extent index at view_gen (the head, a snapshot's
 * generation, or any generation on the volume's history): walks the view's
 * chain newest first, one cursor seek per contiguous generation range, then
 * the parent's view at the clone's snapshot, up to VOL_DEPTH_MAX deep.
 * Blocks no record decides are BASE when the chain's last volume has a
 * base manifest, else UNWRITTEN. Blocks at or past the volume's size
 * resolve as UNWRITTEN. */
int vol_map_resolve(struct meta_txn *t, const struct vol *v, uint32_t view_gen, uint64_t index,
		    struct vol_resolved *out) CAIRN_WUR;

enum vol_write_kind { VOL_WRITE = 0, VOL_ZERO = 1 };
struct vol_write_out {
	uint32_t gen;		   /* the head generation whose files get the bytes */
	uint64_t write;		   /* blocks the I/O layer writes into gen's files */
	uint64_t copyup;	   /* partial blocks whose old bytes (prior) are copied in first */
	uint64_t fill;		   /* partial blocks that read zero before: write zeroes around */
	bool record;		   /* an extent record was created or changed */
	struct vol_resolved prior; /* the head's view of the extent before */
};
/* Records a write of len bytes at byte off of extent index (off + len <=
 * VOL_EXTENT_SIZE, inside the volume). WRITE marks the covered whole blocks
 * present; ZERO marks them zero (on clones too: the parent never shows
 * through again). A partly covered block becomes present in both kinds (a
 * partial ZERO writes zero bytes) and needs either a copy-up of its older
 * bytes (WRITTEN in an older generation or the parent) or a zero fill. A
 * ZERO over blocks that already read zero and have no head record adds
 * nothing (qemu-img zeroing a whole target costs reads, not records). */
int vol_map_write(struct meta_txn *t, const struct vol *v, uint64_t index, uint32_t off,
		  uint32_t len, enum vol_write_kind kind, struct vol_write_out *out) CAIRN_WUR;

/* ---- snapshots, clones, rollback, diff ---- */
/* O(snapshots of v) for the name check, then one put each for the snapshot
 * and the volume record: head moves up. */
int vol_snapshot_create(struct meta_txn *t, struct vol *v, const char *name,
			struct vol_snap *out) CAIRN_WUR;
int vol_snapshot_get(struct meta_txn *t, const struct vol *v, const char *name,
		     struct vol_snap *out) CAIRN_WUR;
/* Calls fn for each snapshot, oldest first; a non-zero return stops and is
 * returned. */
int vol_snapshot_list(struct meta_txn *t, const struct vol *v,
		      int (*fn)(const struct vol_snap *s, void *arg), void *arg) CAIRN_WUR;
/* Refused with -EBUSY while a clone's parent is the snapshot. Then merges
 * synchronously: every block of the snapshot's records that every remaining
 * view through it (head, later snapshots) hides is dropped, emptied records
 * go. Costs one scan of the volume's extent records plus, per record at the
 * snapshot's generation, one resolve per dependent view. */
int vol_snapshot_delete(struct meta_txn *t, struct vol *v, const char *name) CAIRN_WUR;
/* A new volume new_name in part whose parent is v's snapshot snap_name
 * (O(1): the clone's records, and the snapshot's clone count). */
int vol_clone(struct meta_txn *t, const struct vol *v, const char *snap_name, uint32_t part,
	      const char *new_name, struct vol *out) CAIRN_WUR;
/* O(1): the head moves to a new generation whose view continues at the
 * snapshot's; the size goes back to the snapshot's. Jumps no view uses are
 * dropped; CAIRN_ETOOBIG past VOL_JUMPS_MAX live ones. */
int vol_rollback(struct meta_txn *t, struct vol *v, const char *snap_name) CAIRN_WUR;
/* Calls fn(off, len, zero) for the byte ranges whose contents differ between
 * snapshot from (NULL: an empty volume) and snapshot to (NULL: the head), in
 * ascending order, adjacent blocks of the same kind merged; zero: the range
 * reads zeroes in to. One scan of v's extent records, resolving both views
 * of each extent with a record on either side of the difference (a clone
 * diffed from NULL resolves every extent). */
int vol_snapshot_diff(struct meta_txn *t, const struct vol *v, const char *from, const char *to,
		      int (*fn)(uint64_t off, uint64_t len, bool zero, void *arg),
		      void *arg) CAIRN_WUR;

/* ---- flatten (cutting a clone loose from its parent) ---- */
/* Marks the blocks in present of extent index as written at generation 0
 * of v, merged into any record already there. Generation 0 lies below
 * every generation a view of v walks (volumes start at VOL_GEN_FIRST, and
 * every view's chain ends in the range [0, ...]), so these blocks decide
 * only what no record of v's own decides: exactly the blocks that read
 * through the parent before. The caller has put their bytes in v's gen-0
 * files first (data before metadata). O(1). CAIRN_EINVAL for an empty mask
 * or blocks past the volume's size. */
int vol_map_put_base(struct meta_txn *t, const struct vol *v, uint64_t index,
		     uint64_t present) CAIRN_WUR;
/* The same with zero: blocks in zero (disjoint from present) are recorded
 * zero at generation 0, for a clone that takes its chain's base manifest
 * over, so blocks its parent's view read as zero never show the base. A
 * mask may be empty, not both. */
int vol_map_put_base_zero(struct meta_txn *t, const struct vol *v, uint64_t index, uint64_t present,
			  uint64_t zero) CAIRN_WUR;
/* Cuts a clone loose: its parent snapshot's clone count drops by one and
 * v's record (and the caller's copy) forgets the parent, so blocks no
 * record of v decides read zeroes from then on (or the chain's base, once
 * the caller gives v that base with vol_set_base in the same transaction). Call after
 * vol_map_put_base covered every block the parent's view shows written.
 * O(1). CAIRN_EINVAL when v has no parent; CAIRN_ECORRUPT when the parent
 * or its snapshot is gone. */
int vol_unparent(struct meta_txn *t, struct vol *v) CAIRN_WUR;

#endif
