/* blockstore/bs.h - block volumes on one node: the replicated extent store,
 * volume I/O, and the management operations the admin API and the NBD
 * server call. Built on vol_map (the extent map in LMDB), the chunk store's
 * committer (every metadata change is a cs_commit, so it joins the node's
 * group transaction) and its replica ring (which devices hold an extent).
 * Never calls objstore/.
 *
 * Data: a written extent generation is one file per replica,
 * DATA/devices/<dev>/extents/<volume id hex>/<gen>.<index>, VOL_EXTENT_SIZE
 * bytes, allocated in full (fallocate) when it is created so a full device
 * answers ENOSPC to the writer before anything changed, written in place
 * with O_DIRECT through the caller's io_ctx. Replica devices: the first
 * `replicas` devices of the replica ring's partition for (volume id,
 * extent index) (bs_extent_devs).
 *
 * Durability (docs/architecture.md, "Block volumes"): a write's extent-map
 * change (a block written for the first time in the head generation) is
 * committed before the write is acknowledged, after its data (and any
 * copy-up) reached the files; a write intent record for the extent is
 * committed before its replica files are first written; bs_flush makes
 * every replica file any handle of the volume dirtied durable before it
 * returns (so a FLUSH on one NBD connection covers writes completed on all
 * of them). BS_FUA does the same for one write's files.
 *
 * Threads: every function may be called from any thread. The I/O calls
 * (bs_read ... bs_flush) take the caller's io_ctx (core/io.h), one per
 * thread; many threads may do I/O on the same handle at once. Management
 * calls wait for I/O in flight on the volume when they change its view
 * (snapshot, rollback, resize, detach --force), and block on a group commit.
 * bs_open starts one sweeper thread (stopped by bs_close) that frees the
 * base-manifest readers volumes cache once idle or old: an open cs_reader
 * holds a chunk-store grace epoch that GC and compaction wait for.
 *
 * Errors: CAIRN_ENOTFOUND (volume, snapshot), CAIRN_EEXISTS (names),
 * CAIRN_EINVAL (arguments), CAIRN_ENOTEMPTY (volume has snapshots), -EBUSY
 * (attached, clones depend on it, attached to another host), -EACCES (bad
 * or missing token, lease expired), -ESHUTDOWN (the attachment was revoked:
 * the handle is dead), -ENOSPC (no room on a replica device),
 * -ENOTSUP (BS_FAST_ZERO that would need data writes), -EIO, and
 * vol_map's / meta's codes.
 */
#ifndef CAIRN_BLOCKSTORE_BS_H
#define CAIRN_BLOCKSTORE_BS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockstore/vol_map.h"
#include "core/err.h"

struct cs_pool;
struct io_ctx;
struct bs_store;
struct bs_handle;

struct bs_opts {
	const char *data_dir;	/* DATA (device folders are DATA/devices/<name>) */
	uint32_t lease_seconds; /* default attachment lease; 0: 300 */
};

/* Opens the block store on an open pool. Before returning, every extent with
 * a write intent is resynced (its gen file copied from the first readable
 * replica to the others, progress logged) and the intents cleared.
 * bs_close: every handle must be closed first; NULL is fine. */
int bs_open(struct cs_pool *pool, const struct bs_opts *opts, struct bs_store **out) CAIRN_WUR;
void bs_close(struct bs_store *bs);

/* ---- volumes ---- */

/* What the API shows of a volume. */
struct bs_vol_info {
	struct vol v; /* the record (state, size, head, parent, QoS) */
	uint32_t nsnaps;
	uint64_t written_bytes; /* bytes in written blocks of the head view's own records */
	bool has_parent;
	char parent_name[VOL_NAME_MAX + 1]; /* the clone's source volume ("" if gone) */
	char parent_snap[VOL_SNAP_NAME_MAX + 1];
	bool attached; /* an attachment record exists (expired or not) */
	char host[VOL_HOST_MAX + 1];
	uint64_t attached_ns, expires_ns;
	uint32_t connections; /* open handles on this node */
	bool has_base;	      /* VOL_RECF_IMAGE somewhere down the chain */
	uint8_t base_mid[16]; /* that manifest */
};

/* name: 1..VOL_NAME_MAX bytes. size: a positive multiple of 512 (else
 * CAIRN_EINVAL), rounded up to whole VOL_BLOCK_SIZE (64 KiB) blocks; the
 * record holds the rounded size. opts may be NULL; replicas 0 means
 * min(3, the replica ring's copies), more than the ring's copies is
 * CAIRN_EINVAL. out (may be NULL) gets the new volume's info. */
int bs_volume_create(struct bs_store *bs, const char *name, uint64_t size,
		     const struct vol_opts *opts, struct bs_vol_info *out) CAIRN_WUR;
/* A constant-time clone of src's snapshot snap named new_name (QoS from
 * opts when non-NULL, else src's; the replica count is always src's). */
int bs_volume_clone(struct bs_store *bs, const char *src, const char *snap, const char *new_name,
		    const struct vol_opts *opts, struct bs_vol_info *out) CAIRN_WUR;
/* A constant-time volume whose base is a chunk-store manifest (an image's
 * raw bytes, VOL_RECF_IMAGE): one manifest reference is taken in the
 * volume's creating commit and dropped when the volume record goes. Blocks
 * never written read the manifest's bytes (cs_reader), zero past its end;
 * the first write into such a block copies up only that 64 KiB block;
 * block status reports the base's range as data. size 0: the manifest's
 * size rounded up to 64 KiB; a size smaller than the manifest's is
 * CAIRN_EINVAL, any other is rounded up to 64 KiB (it need not be a
 * multiple of 512). CAIRN_ENOTFOUND for an unknown or dead manifest.
 * Cost: one manifest header read and put in one commit, whatever the size.
 * Clones of its snapshots read the base through it; flattening such a
 * clone gives the clone the base and a reference of its own. */
int bs_volume_create_from_manifest(struct bs_store *bs, const char *name, uint64_t size,
				   const uint8_t mid[16], const struct vol_opts *opts,
				   struct bs_vol_info *out) CAIRN_WUR;
int bs_volume_get(struct bs_store *bs, const char *name, struct bs_vol_info *out) CAIRN_WUR;
/* Calls fn per volume in name order (within partition order); a non-zero
 * return stops and is returned. fn runs with no transaction open. */
int bs_volume_list(struct bs_store *bs, int (*fn)(const struct bs_vol_info *vi, void *arg),
		   void *arg) CAIRN_WUR;
/* Refused while attached (-EBUSY), while it has snapshots unless force
 * (CAIRN_ENOTEMPTY), while a clone depends on one of its snapshots or a
 * snapshot handle is open on it (-EBUSY). Removes the records (and drops
 * the base manifest's reference in the same commit), then the extent files
 * (whole extents/<id hex> folders on every device). */
int bs_volume_delete(struct bs_store *bs, const char *name, bool force) CAIRN_WUR;
/* Grows online (attached or not; open handles see the new size, NBD
 * clients on their next connection). Shrinks only with force (CAIRN_EINVAL
 * without), detached (-EBUSY). size is rounded like bs_volume_create's. */
int bs_volume_resize(struct bs_store *bs, const char *name, uint64_t size, bool force) CAIRN_WUR;
/* 0: no limit. Takes effect on open handles at once. */
int bs_volume_set_qos(struct bs_store *bs, const char *name, uint64_t iops_limit,
		      uint64_t bps_limit) CAIRN_WUR;
/* O(1). Refused while attached (-EBUSY), as EBS and RBD require. */
int bs_volume_rollback(struct bs_store *bs, const char *name, const char *snap) CAIRN_WUR;

/* ---- snapshots ---- */

/* O(1); crash-consistent: every write acknowledged before it is in it. */
int bs_snapshot_create(struct bs_store *bs, const char *vol, const char *snap,
		       struct vol_snap *out) CAIRN_WUR;
int bs_snapshot_list(struct bs_store *bs, const char *vol,
		     int (*fn)(const struct vol_snap *s, void *arg), void *arg) CAIRN_WUR;
/* Refused with -EBUSY while a clone depends on it, unless flatten: then
 * every dependent clone first gets its own copy of the blocks it reads
 * through the snapshot (data copied; blocks read from a base manifest are
 * not: the clone takes the base over), and loses its parent. Refused with
 * -EBUSY while a snapshot handle (bs_snapshot_open) is open on it. */
int bs_snapshot_delete(struct bs_store *bs, const char *vol, const char *snap,
		       bool flatten) CAIRN_WUR;
/* Changed byte ranges between snapshots from (NULL: empty volume) and to
 * (NULL: the head); see vol_snapshot_diff. fn runs inside a read
 * transaction: it must not call back into the store (no commits). */
int bs_snapshot_diff(struct bs_store *bs, const char *vol, const char *from, const char *to,
		     int (*fn)(uint64_t off, uint64_t len, bool zero, void *arg),
		     void *arg) CAIRN_WUR;

/* ---- attachments ---- */

#define BS_TOKEN_LEN 32 /* hex characters of an attachment token */

/* Attaches vol to host (1..VOL_HOST_MAX bytes) for lease_s seconds (0: the
 * default) and returns a new random token (the NBD export is
 * "<vol>@<token>"). -EBUSY when another live (unexpired, or with open
 * connections) attachment exists; an expired one with no connections is
 * replaced. Attaching again from the same host replaces the token. */
int bs_attach(struct bs_store *bs, const char *vol, const char *host, uint32_t lease_s,
	      char token[BS_TOKEN_LEN + 1], struct bs_vol_info *out) CAIRN_WUR;
/* Ends the attachment. Refused with -EBUSY while NBD connections are open,
 * unless force: then it is revoked, open handles fail with -ESHUTDOWN from
 * their next call (bs_handle_revoked turns true) and no new one opens with
 * the old token. CAIRN_ENOTFOUND when not attached. */
int bs_detach(struct bs_store *bs, const char *vol, bool force) CAIRN_WUR;

/* ---- I/O handles (the NBD server's) ---- */

/* Opens "VOLUME@TOKEN": the volume must be attached with that token and the
 * lease unexpired (-EACCES otherwise; CAIRN_ENOTFOUND for no such volume).
 * While a handle is open, the lease is renewed (a lease never expires under
 * an open connection). */
int bs_handle_open(struct bs_store *bs, const char *export_name, struct bs_handle **out) CAIRN_WUR;
void bs_handle_close(struct bs_handle *h);
/* The volume's size now (it can grow while the handle is open). */
uint64_t bs_handle_size(struct bs_handle *h);
const char *bs_handle_volume(const struct bs_handle *h);
/* A read-only handle on a snapshot's view (no attachment, no lease), for
 * capturing a volume as an image: bs_read and bs_block_status work, writes
 * answer -EROFS (bs_flush: 0). The snapshot cannot be deleted while the
 * handle is open (-EBUSY), nor the volume. Size: the snapshot's size. Never
 * revoked (detach --force does not touch it). CAIRN_ENOTFOUND for no such
 * volume or snapshot. Close with bs_handle_close. */
int bs_snapshot_open(struct bs_store *bs, const char *vol, const char *snap,
		     struct bs_handle **out) CAIRN_WUR;

/* Current QoS limits (0: none); they can change while the handle is open. */
void bs_handle_qos(struct bs_handle *h, uint64_t *iops_limit, uint64_t *bps_limit);
/* True once the attachment was revoked (detach --force, delete): close. */
bool bs_handle_revoked(struct bs_handle *h);

#define BS_FUA 0x1	 /* durable on every replica before returning */
#define BS_TRIM 0x2	 /* bs_zero: a discard; partial blocks may be left as they are */
#define BS_FAST_ZERO 0x4 /* bs_zero: fail with -ENOTSUP rather than write data */
#define BS_NO_HOLE 0x8	 /* bs_zero: zero bytes are written, the range stays provisioned */

/* Any offset and length inside the volume (CAIRN_EINVAL past its end; the
 * NBD layer checks first). buf: any alignment (aligned IO_ALIGN buffers
 * avoid a copy). len <= 32 MiB. */
int bs_read(struct bs_handle *h, struct io_ctx *ctx, void *buf, uint64_t off,
	    uint32_t len) CAIRN_WUR;
int bs_write(struct bs_handle *h, struct io_ctx *ctx, const void *buf, uint64_t off, uint32_t len,
	     unsigned flags) CAIRN_WUR;
/* WRITE_ZEROES (flags 0/BS_FUA/BS_FAST_ZERO) or TRIM (BS_TRIM): whole 64 KiB
 * blocks are recorded zero (metadata only, even on clones); partial blocks
 * get zero bytes written (WRITE_ZEROES) or are left alone (TRIM). With
 * BS_NO_HOLE (NBD_CMD_FLAG_NO_HOLE) every byte gets zero bytes written like
 * a write, so block status reports data there; with BS_FAST_ZERO too it is
 * refused (-ENOTSUP). Any length inside the volume. */
int bs_zero(struct bs_handle *h, struct io_ctx *ctx, uint64_t off, uint64_t len,
	    unsigned flags) CAIRN_WUR;
int bs_flush(struct bs_handle *h, struct io_ctx *ctx) CAIRN_WUR;

#define BS_STATE_HOLE 0x1 /* unallocated: no bytes stored (NBD_STATE_HOLE) */
#define BS_STATE_ZERO 0x2 /* reads as zeroes (NBD_STATE_ZERO) */
/* Calls fn for consecutive ranges covering [off, off+len) (or less: it may
 * stop early after at least one range, at an extent boundary past 64 MiB)
 * with flags: written blocks 0, recorded-zero blocks HOLE|ZERO, unwritten
 * blocks (absent through the whole chain) HOLE|ZERO, or, when the chain
 * has a base manifest, 0 for those starting inside the manifest's size and
 * HOLE|ZERO past it. Adjacent ranges of
 * the same flags are merged. A non-zero return of fn stops and is
 * returned. */
int bs_block_status(struct bs_handle *h, uint64_t off, uint64_t len,
		    int (*fn)(uint64_t off, uint64_t len, unsigned flags, void *arg),
		    void *arg) CAIRN_WUR;

/* ---- maintenance ---- */

struct bs_check_report {
	uint64_t volumes, extents, files_checked;
	uint64_t missing_files; /* replica files of written records that are gone */
	uint64_t bad_records;	/* records that do not decode or break invariants */
	uint64_t orphan_dirs;	/* extents/<id> folders of no volume */
	uint64_t intents;	/* write intents outstanding */
	uint64_t fixed;		/* with fix: problems repaired */
};
/* Checks every volume's records (decodable, base manifests, parents and
 * snapshots exist, clone counts right) and that every extent generation with written
 * blocks has its replica files; with fix, copies missing replicas from a
 * readable one (not for volumes with open connections: logged, left for a
 * later run) and removes orphan folders. Returns 0 (see the report) or
 * an error that stopped the walk. */
int bs_fsck(struct bs_store *bs, bool fix, struct bs_check_report *rep) CAIRN_WUR;

#endif
