/* registry/qcow2.h - the qcow2 header checker for uploaded images.
 *
 * Owns the decision "is this upload a qcow2 image that is safe to hand to qemu-img?",
 * made from the image's first bytes (the header cluster: header and header extensions)
 * before any tool opens the file. Refuses what makes a tool read other files (a backing
 * file, an external data file: the class of CVE-2024-32498), what it cannot read without
 * a secret (encryption), what it would repair or refuse itself (dirty, corrupt, unknown
 * incompatible features) and a header that lies (tables misaligned or past the end of
 * the file, an L1 table too small for the virtual size, extensions that overrun the
 * header cluster, sizes past qemu's limits). The format is QEMU's docs/interop/qcow2.txt,
 * versions 2 and 3; every field is big-endian and read byte by byte.
 *
 * Pure: no I/O, no allocation, no global state; any thread may call it. It checks the
 * header cluster only, not the L1/L2/refcount tables themselves (qemu-img check's job).
 */
#ifndef CAIRN_REGISTRY_QCOW2_H
#define CAIRN_REGISTRY_QCOW2_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define QCOW2_MAGIC 0x514649fbU /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_LEN 104
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21	      /* qemu's 2 MiB implementation limit */
#define QCOW2_MAX_VIRTUAL_SIZE (1ULL << 61)   /* 2 EiB: qemu's limit with 2 MiB clusters */
#define QCOW2_MAX_L1_BYTES (32ULL << 20)      /* qemu's QCOW_MAX_L1_SIZE */
#define QCOW2_MAX_REFTABLE_BYTES (8ULL << 20) /* qemu's QCOW_MAX_REFTABLE_SIZE */
#define QCOW2_MAX_SNAPSHOTS 65536	      /* qemu's QCOW_MAX_SNAPSHOTS */

/* incompatible_features bits (version 3). */
#define QCOW2_INCOMPAT_DIRTY (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ULL << 4)
/* compatible_features and autoclear_features bits. */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define QCOW2_AUTOCLEAR_BITMAPS (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)

/* Header extension types. */
#define QCOW2_EXT_END 0x00000000U
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acaU
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857U
#define QCOW2_EXT_BITMAPS 0x23852875U
#define QCOW2_EXT_CRYPTO 0x0537be77U
#define QCOW2_EXT_DATA_FILE 0x44415441U

struct qcow2_info {
	uint32_t version;	/* 2 or 3 */
	uint32_t cluster_bits;	/* 9..21 */
	uint64_t virtual_size;	/* bytes, > 0, a multiple of 512 */
	uint32_t header_length; /* 72 for version 2 */
	uint32_t refcount_order;
	uint32_t compression_type; /* 0 zlib, 1 zstd */
	uint32_t nb_snapshots;
	uint64_t incompatible; /* feature bitmasks as stored (0 for version 2) */
	uint64_t compatible;
	uint64_t autoclear;
	uint64_t need; /* with -ENODATA: give at least this many bytes from offset 0 */
};

/* Checks the first len bytes of an image whose total size is file_size (0: not known;
 * when known, tables past it and headers longer than the file are refused, and a short
 * file gives CAIRN_EINVAL instead of -ENODATA). Returns:
 *   1            a qcow2 image safe to hand to qemu-img; *out filled;
 *   0            not qcow2 (the magic does not match);
 *   CAIRN_EINVAL a qcow2 image that must be refused; a one-line reason in why;
 *   -ENODATA     len is too short to decide; out->need says how many bytes to give
 *                (at most the header cluster, 2 MiB; usually a few hundred bytes).
 * why (whylen bytes, may be NULL/0) is always NUL-terminated when whylen > 0; out must
 * not be NULL and is zeroed first. */
int qcow2_probe(const void *buf, size_t len, uint64_t file_size, struct qcow2_info *out, char *why,
		size_t whylen) CAIRN_WUR;

#endif
