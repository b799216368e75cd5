/* chunkstore/format.h - the chunk store's on-disk formats (forever).
 *
 * Every integer in a record or file header is little-endian on disk (all
 * supported hosts are; the static asserts pin the layout). LMDB keys are
 * big-endian (meta/meta.h) so they sort. Each record starts with a version
 * byte; readers refuse versions newer than they know with CAIRN_EFORMAT.
 *
 * Devices: DATA/devices/<dev name>/ holds
 *   stripes/<partition, 4 hex>/<stripe id, 16 hex>.u<i>   data unit i (or
 *   a replica of it while the stripe is open)
 *   stripes/<partition, 4 hex>/<stripe id, 16 hex>.p<j>   parity unit j (sealed)
 * A unit file is a CS_UNIT_HDR_SIZE header block, then the data area: chunk
 * records (struct cs_chunk_hdr + stored payload), each starting at an 8-byte
 * aligned offset. A record whose magic is 0 means "padding to the next 4 KiB
 * boundary" (written where a group commit ended a partial block, so synced
 * blocks are never rewritten). When a stripe is sealed, each data area is
 * zero-filled to unit_size and parity is computed over the k data areas.
 *
 * Placement of a stripe: the "ec" ring's partition of the stripe id gives k+m
 * devices R[0..k+m); the stripe uses D[i] = R[(i + id) mod (k+m)] (rotated,
 * so parity and data spread over the devices even when every partition
 * lists the same devices), and its record keeps D. Sealed: data unit i on D[i], parity j on D[k+j].
 * Open: data unit i on D[i] and replicas on D[k..k+m) (m+1 copies), so any m lost devices lose
 * nothing; sealing replaces those replicas with parity.
 *
 * Parity (sealed stripes): the data area of parity unit j is row k+j of
 * ISA-L's gf_gen_cauchy1_matrix(k+m, k) applied bytewise over GF(2^8) to
 * the k data areas, each taken as its first fill[i] bytes (the stripe
 * record's committed fill) and zeroes beyond; bytes past a unit's fill are
 * dead and never count. The parity area is plen = max fill rounded up to
 * 4 KiB long (past it parity is zero), so a partial stripe costs little. A
 * data unit with fill 0 needs no file (it reads as zeroes). A parity unit's
 * header has kind PARITY, unit j, the stripe's unit_size and created. Unit
 * files rewritten by sealing, scrub or repair hold header + fill (4 KiB
 * rounded) and are replaced through "<name>.tmp" and a rename.
 * META_T_POOL key "seal_unlink" + be64 stripe id: a sealed stripe whose
 * replicas may still exist (removed at the next open).
 */
#ifndef CAIRN_CHUNKSTORE_FORMAT_H
#define CAIRN_CHUNKSTORE_FORMAT_H

#include <assert.h>
#include <stdint.h>

#define CS_FP_LEN 32  /* SHA-256 fingerprint */
#define CS_MID_LEN 16 /* manifest id: random (libuuid) */
#define CS_UNIT_HDR_SIZE 4096u
#define CS_REC_ALIGN 8u
#define CS_BLOCK 4096u
#define CS_MAX_FRAGS 32	   /* k + m limit */
#define CS_MENT_PER_REC 32 /* manifest entries per LMDB record */

/* ---- pool record: META_T_POOL key "pool" ---- */
#define CS_POOL_MAGIC 0x4c4f4f504e524143ull /* "CARNPOOL" */
/* 1: fixed chunks, raw, open stripes only. 2: adds sealed stripes (.p<j>
 * parity), zstd chunks, FastCDC pools and doomed manifests. A build opening
 * a version 1 pool upgrades the record (nothing else changes on disk), so
 * older builds then refuse the pool instead of misreading it. */
#define CS_POOL_VERSION 2
/* CS_CHUNK_FIXED: chunk_size-byte blocks from offset 0 (the last one
 * shorter). CS_CHUNK_FASTCDC: content-defined (chunkstore/cs_cdc.h), with
 * chunk_size the average (a power of two), chunk_min/chunk_max the bounds.
 * FROZEN for FastCDC, or dedup against older data breaks:
 *  - gear table G[0..256): G[i] is the (i+1)-th output of splitmix64
 *    (x += 0x9E3779B97F4A7C15; z = x; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;
 *    z = (z ^ z >> 27) * 0x94D049BB133111EB; z ^ z >> 31) from the seed
 *    x = 0x636169726e434443 ("cairnCDC");
 *  - from a chunk's byte min-64 on, h = (h << 1) + G[byte] (mod 2^64), h = 0
 *    before it; after byte i (chunk length L = i + 1, min <= L <= max) the
 *    chunk ends when the top log2(avg)+2 bits of h are zero (L < avg) or
 *    the top log2(avg)-2 bits are (L >= avg); at L = max it ends anyway.
 * Defaults for new pools: FastCDC avg 16 KiB, min 4 KiB, max 64 KiB. On the
 * VM image set, CDC 16 KiB with per-chunk zstd stores what fixed 4 KiB blocks
 * do (17.7% vs 17.8% of non-zero bytes) with a quarter of the chunks (index
 * and manifest bytes, lookups); 64 KiB CDC leaves 54% unique against 48%. */
enum cs_chunking { CS_CHUNK_FIXED = 1, CS_CHUNK_FASTCDC = 2 };
/* GLOBAL: a chunk's fingerprint is SHA-256(bytes), one dedup index for all.
 * TENANT: SHA-256(domain[16] || bytes), the domain being what the front end
 * names (S3: a hash of the uploading user), so equal bytes of two tenants
 * are two chunks, and an upload's speed tells nobody what others stored. */
enum cs_dedup_domain { CS_DEDUP_GLOBAL = 1, CS_DEDUP_TENANT = 2 };
#define CS_DOMAIN_LEN 16
struct cs_pool_rec {
	uint64_t magic;
	uint8_t version;
	uint8_t chunking;     /* enum cs_chunking; frozen for the pool's life */
	uint8_t dedup_domain; /* enum cs_dedup_domain */
	uint8_t k, m;	      /* erasure code of the "ec" policy */
	uint8_t replicas;     /* copies of the "replica" policy */
	uint8_t reserved0[2];
	uint32_t chunk_size;	       /* fixed: the block size; fastcdc: the average */
	uint32_t chunk_min, chunk_max; /* fastcdc bounds (0 for fixed) */
	uint32_t unit_size;	       /* data area of a unit */
	uint32_t inline_max;	       /* manifests up to this size keep bytes inline */
	uint16_t node_id;	       /* high 16 bits of stripe ids made here */
	uint8_t reserved1[10];	       /* explicit: keeps pool_uuid and created aligned */
	uint8_t pool_uuid[16];
	uint64_t created; /* unix seconds */
	uint8_t reserved2[48];
};
static_assert(sizeof(struct cs_pool_rec) == 120, "cs_pool_rec layout");

/* META_T_POOL key "next_stripe": u64, the next stripe counter (low 48 bits). */

/* META_T_POOL key "stats": pool counters, updated in every group commit so
 * cs_pool_stats() is O(1). Little-endian; recomputable by fsck. */
#define CS_STATS_VERSION 1
struct cs_stats_rec {
	uint8_t version;
	uint8_t reserved[7];
	uint64_t logical_bytes;
	uint64_t unique_bytes;
	uint64_t stored_bytes;
	uint64_t physical_bytes;
	uint64_t chunks;
	uint64_t manifests;
	uint64_t stripes;
	uint64_t commits;
	uint64_t commit_requests;
	uint64_t reserved2[4];
};
static_assert(sizeof(struct cs_stats_rec) == 112, "cs_stats_rec layout");

/* ---- chunk index: META_T_CHUNKS [part be32][fp 32] ---- */
#define CS_CHUNK_VERSION 1
enum cs_compress { CS_COMP_NONE = 0, CS_COMP_ZSTD = 1 };
struct cs_chunk_rec {
	uint8_t version;
	uint8_t compression; /* enum cs_compress */
	uint16_t flags;
	uint32_t crc32c;   /* of the stored payload */
	uint64_t refcount; /* manifests referencing it; 0 = dead, awaiting GC */
	uint64_t stripe_id;
	uint32_t unit;	     /* data unit index within the stripe */
	uint32_t offset;     /* of the record (header) in the unit's data area */
	uint32_t stored_len; /* payload bytes on disk */
	uint32_t raw_len;    /* bytes after decompression */
};
static_assert(sizeof(struct cs_chunk_rec) == 40, "cs_chunk_rec layout");

/* ---- stripes: META_T_STRIPES [part be32][stripe id be64] ---- */
#define CS_STRIPE_VERSION 1
enum cs_stripe_state { CS_STRIPE_OPEN = 1, CS_STRIPE_SEALED = 2 };
struct cs_stripe_rec {
	uint8_t version;
	uint8_t state; /* enum cs_stripe_state */
	uint8_t k, m;
	uint32_t unit_size;
	uint64_t live_bytes; /* stored bytes of chunks with refcount > 0 */
	uint64_t created;
	uint32_t fill[CS_MAX_FRAGS]; /* bytes used in each data unit's area */
	uint32_t devs[CS_MAX_FRAGS]; /* ring device ids D[0..k+m) */
};
static_assert(sizeof(struct cs_stripe_rec) == 280, "cs_stripe_rec layout");

/* ---- manifest header: META_T_MHDR [part be32][mid 16] ---- */
#define CS_MHDR_VERSION 1
#define CS_MHDR_INLINE 0x1 /* bytes follow the header; no entries */
#define CS_MHDR_DOOMED                                                                             \
	0x2 /* refcount 0 and marked by GC: no new reader may                                      \
	     * open it; deleted after the next grace period */
struct cs_mhdr_rec {
	uint8_t version;
	uint8_t flags;
	uint16_t reserved;
	uint32_t nrecords; /* META_T_MANIFESTS records */
	uint64_t refcount;
	uint64_t size; /* logical bytes */
	uint64_t nchunks;
	uint64_t created;
	/* inline bytes follow when CS_MHDR_INLINE */
};
static_assert(sizeof(struct cs_mhdr_rec) == 40, "cs_mhdr_rec layout");

/* ---- manifest entries: META_T_MANIFESTS [part be32][mid 16][offset be64] ----
 * offset is the logical offset of the record's first chunk. */
#define CS_MENT_VERSION 1
#define CS_MENT_ZERO 0x1 /* all-zero chunk: no data, fp unused */
struct cs_ment {
	uint8_t flags;
	uint8_t reserved[3];
	uint32_t len;
	uint8_t fp[CS_FP_LEN];
};
static_assert(sizeof(struct cs_ment) == 40, "cs_ment layout");
struct cs_ment_rec_hdr {
	uint8_t version;
	uint8_t reserved;
	uint16_t count; /* entries that follow */
};

/* ---- unit file header (first CS_UNIT_HDR_SIZE bytes, rest zero) ---- */
#define CS_UNIT_MAGIC 0x54494e554e524143ull /* "CARNUNIT" */
#define CS_UNIT_VERSION 1
enum cs_unit_kind { CS_UNIT_DATA = 1, CS_UNIT_PARITY = 2 };
struct cs_unit_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_crc; /* crc32c of this struct with hdr_crc = 0 */
	uint64_t stripe_id;
	uint32_t unit; /* data index, or parity index for parity units */
	uint8_t kind;  /* enum cs_unit_kind */
	uint8_t k, m;
	uint8_t reserved0;
	uint32_t unit_size;
	uint32_t data_offset; /* CS_UNIT_HDR_SIZE */
	uint64_t created;
	uint8_t pool_uuid[16];
	uint8_t reserved1[16];
};
static_assert(sizeof(struct cs_unit_hdr) == 80, "cs_unit_hdr layout");

/* ---- chunk record header in a unit's data area ---- */
#define CS_CHUNK_MAGIC 0x4b484343u /* "CCHK" */
struct cs_chunk_hdr {
	uint32_t magic;
	uint8_t version;
	uint8_t compression;
	uint16_t flags;
	uint32_t raw_len;
	uint32_t stored_len;
	uint32_t payload_crc; /* crc32c of the stored payload */
	uint32_t hdr_crc;     /* crc32c of this header with hdr_crc = 0 */
	uint8_t fp[CS_FP_LEN];
	uint64_t reserved;
};
static_assert(sizeof(struct cs_chunk_hdr) == 64, "cs_chunk_hdr layout");

#endif
