/* registry/img_format.h - the image registry's LMDB record (forever).
 *
 * Conventions as objstore/s3_format.h: a version byte first, readers refuse
 * newer versions with CAIRN_EFORMAT, little-endian fixed-width integers read
 * with memcpy, big-endian keys.
 *
 *   META_T_IMAGES [part be32][image id 16] -> img_rec + doc (doc_len bytes)
 * part = cs_name_partition(pool, image id bytes). The image id is the UUID
 * Glance shows (client-chosen or random), as 16 raw bytes.
 *
 * The fixed part holds what the registry acts on (status, visibility,
 * protection, the manifests it holds references on, checksums, sizes); doc
 * is a UTF-8 JSON object (jansson) with the rest of the Glance view:
 *   "name", "disk_format", "container_format", "owner", "min_disk",
 *   "min_ram", "os_hidden", "tags" [..], "props" {name: string} (extra
 *   properties), "members" {member: {"status", "created_at",
 *   "updated_at"}}, "import" {last import method, error}.
 * Unknown doc members are kept as they are by every writer (newer versions
 * may add some).
 *
 * Manifest references: every manifest id in a record with its flag set holds
 * one reference (cs_manifest_ref/unref in the same commit that sets or
 * clears it). The system bucket's object for an image holds its own.
 */
#ifndef CAIRN_REGISTRY_IMG_FORMAT_H
#define CAIRN_REGISTRY_IMG_FORMAT_H

#include <assert.h>
#include <stdint.h>

#define IMG_ID_LEN 16
#define IMG_DOC_MAX (64u * 1024) /* bytes of the JSON doc */

#define IMG_REC_VERSION 1

/* Glance image statuses. */
enum img_status {
	IMG_QUEUED = 0,
	IMG_SAVING = 1,
	IMG_ACTIVE = 2,
	IMG_KILLED = 3,
	IMG_DELETED = 4, /* never stored: deletion removes the record */
	IMG_PENDING_DELETE = 5,
	IMG_DEACTIVATED = 6,
	IMG_UPLOADING = 7, /* staged (glance-direct), not yet imported */
	IMG_IMPORTING = 8,
};

enum img_visibility {
	IMG_VIS_SHARED = 0, /* Glance's default for new images */
	IMG_VIS_PRIVATE = 1,
	IMG_VIS_PUBLIC = 2,
	IMG_VIS_COMMUNITY = 3,
};

#define IMG_F_PROTECTED 0x1
#define IMG_F_DATA 0x2	 /* mid: the image's bytes as uploaded */
#define IMG_F_RAW 0x4	 /* raw_mid: the raw view of a qcow2 image */
#define IMG_F_STAGE 0x8	 /* stage_mid: staged bytes (glance-direct), not yet imported */
#define IMG_F_QCOW2 0x10 /* the data is a qcow2 image (checked at upload) */

struct img_rec {
	uint8_t version;
	uint8_t status;	    /* enum img_status */
	uint8_t visibility; /* enum img_visibility */
	uint8_t reserved0;
	uint32_t flags;	  /* IMG_F_* */
	uint32_t doc_len; /* JSON bytes that follow */
	uint32_t reserved1;
	uint8_t id[IMG_ID_LEN];
	uint8_t mid[16];       /* IMG_F_DATA */
	uint8_t raw_mid[16];   /* IMG_F_RAW */
	uint8_t stage_mid[16]; /* IMG_F_STAGE */
	uint64_t size;	       /* bytes of the data (0 without data) */
	uint64_t virtual_size; /* qcow2 header's size; size for other formats; 0 unknown */
	uint64_t created_ns;   /* unix nanoseconds */
	uint64_t updated_ns;
	uint64_t seq;	    /* bumped by every write of the record */
	uint8_t md5[16];    /* Glance "checksum" */
	uint8_t sha512[64]; /* Glance "os_hash_value" (os_hash_algo sha512) */
	/* The upload or import that holds the image (saving, importing,
	 * uploading without staged data): a fresh nonzero value set by the
	 * claiming commit, 0 at rest. Its commits and its revert act only
	 * while the record still carries its claim, so a stale upload (the
	 * image deleted and re-created, or reverted, meanwhile) never touches
	 * another one's. Records written before the field read 0 here. */
	uint64_t claim;
	uint8_t reserved[24];
};
static_assert(sizeof(struct img_rec) == 232, "img_rec layout");

#define IMG_KEY_LEN (4 + IMG_ID_LEN)

#endif
