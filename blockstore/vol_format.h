/* blockstore/vol_format.h - the block service's LMDB records (forever).
 *
 * Every record starts with a version byte; readers refuse versions newer
 * than they know with CAIRN_EFORMAT. Integers in values are little-endian
 * (the static asserts pin the layout) and are read with memcpy, never through
 * casts of unaligned map pointers. LMDB keys are big-endian so they sort.
 *
 * Tables and keys (docs/architecture.md, "Block volumes"):
 *   META_T_VOLUMES [part be32][volume name]            -> vol_rec + vol_jump_rec[njumps]
 *   META_T_VOLIDS  [volume id 16]                      -> [part be32][volume name]
 *   META_T_EXTENTS [volume id 16][index be64][gen be32] -> vol_ext_rec
 *   META_T_SNAPS   [volume id 16][gen be32]            -> vol_snap_rec + name
 *   META_T_INTENTS [volume id 16][index be64]          -> vol_intent_rec
 *   META_T_ATTACH  [volume id 16]                      -> vol_attach_rec + host
 * part = cs_name_partition(pool, volume name), chosen by the caller.
 *
 * Generations: the volume record holds the head generation; a snapshot is
 * the view at its generation g (records at or below g on the view's chain).
 * A rollback to a snapshot at s from head h makes head h+1 whose chain goes
 * h+1 -> s: a "jump" {gen h+1, prev s}. Walking a view down from gen v, a
 * reader visits v, then the jump's prev when v has a jump, else v-1. So the
 * dead range (s, h] is skipped by the head and every later view, while
 * snapshots taken inside (s, h] keep seeing their own records.
 */
#ifndef CAIRN_BLOCKSTORE_VOL_FORMAT_H
#define CAIRN_BLOCKSTORE_VOL_FORMAT_H

#include <assert.h>
#include <stdint.h>

#define VOL_BLOCK_SHIFT 16 /* 64 KiB blocks */
#define VOL_BLOCK_SIZE (1u << VOL_BLOCK_SHIFT)
#define VOL_EXTENT_SHIFT 22 /* 4 MiB extents */
#define VOL_EXTENT_SIZE (1u << VOL_EXTENT_SHIFT)
#define VOL_BLOCKS (VOL_EXTENT_SIZE / VOL_BLOCK_SIZE) /* 64: one bit each in a u64 */
static_assert(VOL_BLOCKS == 64, "an extent's maps are one u64 each");

#define VOL_ID_LEN 16
#define VOL_NAME_MAX 128      /* bytes of a volume name */
#define VOL_SNAP_NAME_MAX 128 /* bytes of a snapshot name */
#define VOL_JUMPS_MAX 64      /* rollback jumps held in one volume record */
#define VOL_DEPTH_MAX 16      /* clone chain: a clone of a clone of ... */
#define VOL_GEN_FIRST 1	      /* the head generation of a new volume */

/* ---- volume: META_T_VOLUMES ---- */
#define VOL_REC_VERSION 1
enum vol_state {
	VOL_AVAILABLE = 0,
	VOL_ATTACHED = 1,
	VOL_DELETING = 2,
};
#define VOL_RECF_PARENT 0x1 /* parent_id/parent_gen name a clone's parent */
/* parent_id is a chunk-store manifest id (an image's raw bytes) on which the
 * volume holds one reference: blocks absent through the volume's own chain
 * read the manifest's bytes at the same offset (zero past its end). Never
 * with VOL_RECF_PARENT: a clone of such a volume reads the base through its
 * parent, and a flattened clone takes the base (and a reference) over. */
#define VOL_RECF_IMAGE 0x2
struct vol_rec {
	uint8_t version;
	uint8_t state;	      /* enum vol_state */
	uint8_t replicas;     /* replica files per extent */
	uint8_t njumps;	      /* vol_jump_rec entries that follow */
	uint32_t extent_size; /* bytes; VOL_EXTENT_SIZE in this version */
	uint8_t id[VOL_ID_LEN];
	uint8_t parent_id[VOL_ID_LEN]; /* when flags & VOL_RECF_PARENT */
	uint64_t size;		       /* bytes, a multiple of VOL_BLOCK_SIZE */
	uint64_t created_ns;	       /* unix nanoseconds */
	uint64_t iops_limit;	       /* 0: none */
	uint64_t bps_limit;	       /* bytes/s; 0: none */
	uint32_t gen;		       /* head generation: writes go here */
	uint32_t parent_gen;	       /* the parent snapshot's generation */
	uint32_t flags;		       /* VOL_RECF_* */
	uint8_t reserved[12];
};
static_assert(sizeof(struct vol_rec) == 96, "vol_rec layout");

/* A rollback made generation gen, whose view continues at prev (not gen-1). */
struct vol_jump_rec {
	uint32_t gen;
	uint32_t prev;
};
static_assert(sizeof(struct vol_jump_rec) == 8, "vol_jump_rec layout");

/* ---- extent: META_T_EXTENTS ---- */
#define VOL_EXT_VERSION 1
/* Bit b of present: block b's bytes are at offset b * VOL_BLOCK_SIZE of this
 * generation's replica files (extents/<vol id hex>/<gen>.<index>). Bit b of
 * zero: block b reads zeroes (TRIM, WRITE_ZEROES), whatever lies below.
 * Neither: absent, the view's next older generation (then the parent)
 * decides. present & zero == 0 always. */
struct vol_ext_rec {
	uint8_t version;
	uint8_t flags; /* none yet */
	uint16_t reserved0;
	uint32_t gen; /* the generation in the key, so files are found from the value */
	uint64_t present;
	uint64_t zero;
	uint64_t reserved1;
};
static_assert(sizeof(struct vol_ext_rec) == 32, "vol_ext_rec layout");

/* ---- snapshot: META_T_SNAPS ---- */
#define VOL_SNAP_VERSION 1
struct vol_snap_rec {
	uint8_t version;
	uint8_t name_len; /* name bytes that follow */
	uint16_t reserved0;
	uint32_t nclones; /* clones whose parent is this snapshot */
	uint64_t created_ns;
	uint64_t size; /* the volume's size when taken */
	uint64_t reserved1;
};
static_assert(sizeof(struct vol_snap_rec) == 32, "vol_snap_rec layout");

/* ---- write intent: META_T_INTENTS ----
 * Committed before the first write to an extent's replica files since the
 * intent was last cleared; cleared (lazily) once a flush made every replica
 * of that generation's file durable. At start every extent with an intent
 * has its gen file copied from the first readable replica to the others, so
 * replicas never disagree about a write that was in flight at a crash. */
#define VOL_INTENT_VERSION 1
struct vol_intent_rec {
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t gen; /* the generation whose replica files were being written */
	uint64_t created_ns;
};
static_assert(sizeof(struct vol_intent_rec) == 16, "vol_intent_rec layout");

/* ---- attachment: META_T_ATTACH ----
 * One writer host per volume. The token itself is never stored: only its
 * SHA-256. The lease ends at expires_ns unless renewed (an open NBD
 * connection renews it); an expired attachment may be taken by another
 * host. The host name (host_len bytes) follows the record. */
#define VOL_ATTACH_VERSION 1
#define VOL_HOST_MAX 255
struct vol_attach_rec {
	uint8_t version;
	uint8_t host_len;
	uint16_t reserved0;
	uint32_t lease_s; /* lease length granted at attach and on renewal */
	uint8_t token_sha256[32];
	uint64_t attached_ns;
	uint64_t expires_ns;
	uint64_t reserved1;
};
static_assert(sizeof(struct vol_attach_rec) == 64, "vol_attach_rec layout");

/* Key lengths. */
#define VOL_EXT_KEY_LEN (VOL_ID_LEN + 8 + 4)
#define VOL_SNAP_KEY_LEN (VOL_ID_LEN + 4)
#define VOL_INTENT_KEY_LEN (VOL_ID_LEN + 8)

#endif
