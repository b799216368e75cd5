/* objstore/s3_format.h - the S3 service's LMDB records (forever).
 *
 * Every record starts with a version byte; readers refuse versions newer
 * than they know with CAIRN_EFORMAT. Integers are little-endian (all
 * supported hosts are; the static asserts pin the layout); records are read
 * with memcpy, never through casts of unaligned map pointers. LMDB keys are
 * big-endian so they sort (meta/meta.h).
 *
 * Tables and keys:
 *   META_T_BUCKETS [part be32][bucket name]            -> s3_bucket_rec + owner + region
 *   META_T_OBJECTS [part be32][bucket name][0][key]    -> s3_obj_rec + fields
 *   META_T_OBJECTS [part be32][bucket name][0][key[0..S3_KEY_INLINE)][0]
 *                                                      -> s3_group_hdr + entries
 *   META_T_USERS   [user name]                         -> s3_user_rec
 *   META_T_USERS   [user name][0][bucket name]         -> s3_owned_rec (owner index)
 *   META_T_KEYS    [access key id]                     -> s3_key_rec + user + secret
 *   META_T_TOKENS  [sha256(token)]                     -> s3_token_rec + user
 * part = cs_name_partition(pool, bucket name). Bucket names, user names and
 * key ids never contain a 0 byte, so [name][0] separates cleanly.
 *
 * Long keys: LMDB keys are limited to 511 bytes, S3 keys to 1024. A key
 * longer than S3_KEY_INLINE bytes lives in a "group" record whose LMDB key is
 * its first S3_KEY_INLINE bytes followed by one 0 byte; the group holds every
 * long key sharing that prefix, sorted, each with its object record. No
 * short key can equal a group's LMDB key (it would be one byte too long), and
 * a group sorts exactly where its keys sort among the short ones, so a range
 * scan stays in key order.
 */
#ifndef CAIRN_OBJSTORE_S3_FORMAT_H
#define CAIRN_OBJSTORE_S3_FORMAT_H

#include <assert.h>
#include <stdint.h>

#define S3_KEY_MAX 1024	  /* bytes of an object key */
#define S3_KEY_INLINE 400 /* longer keys live in group records */
#define S3_BUCKET_MAX 63
#define S3_META_MAX 2048 /* user metadata: names + values */

/* ---- bucket: META_T_BUCKETS ---- */
#define S3_BUCKET_VERSION 1
struct s3_bucket_rec {
	uint8_t version;
	uint8_t flags;	    /* none yet */
	uint8_t owner_len;  /* owner user name bytes that follow */
	uint8_t region_len; /* then the region (LocationConstraint) bytes */
	uint32_t reserved0;
	uint64_t created_ns; /* unix nanoseconds */
	uint8_t reserved[16];
};
static_assert(sizeof(struct s3_bucket_rec) == 32, "s3_bucket_rec layout");

/* ---- object: META_T_OBJECTS ---- */
#define S3_OBJ_VERSION 1
struct s3_obj_rec {
	uint8_t version;
	uint8_t flags;	   /* none yet */
	uint16_t nfields;  /* s3_field entries that follow */
	uint32_t parts;	   /* 0: single PUT, ETag = hex(md5); N: multipart "md5-N" */
	uint64_t size;	   /* logical bytes */
	uint64_t mtime_ns; /* Last-Modified, unix nanoseconds */
	uint8_t md5[16];   /* MD5 of the body (or of the part MD5s) */
	uint8_t mid[16];   /* manifest id (chunkstore) holding the bytes */
	uint8_t reserved[16];
};
static_assert(sizeof(struct s3_obj_rec) == 72, "s3_obj_rec layout");

/* A variable field: header, then nlen name bytes, then vlen value bytes.
 * Readers skip tags they do not know (newer writers may add some). */
enum s3_field_tag {
	S3_F_CONTENT_TYPE = 1,
	S3_F_CONTENT_ENCODING = 2,
	S3_F_CONTENT_DISPOSITION = 3,
	S3_F_CONTENT_LANGUAGE = 4,
	S3_F_CACHE_CONTROL = 5,
	S3_F_EXPIRES = 6,
	S3_F_USER_META = 7, /* name: the lowercase suffix after "x-amz-meta-" */
	S3_F_OWNER = 8,	    /* value: the user who wrote the object */
	/* value: s3_cksum_encode (objstore/s3_cksum.h): algo, type, parts
	 * le16, digest. At most one per record. */
	S3_F_CHECKSUM = 9,
	/* multipart objects: part sizes as runs of (size le64, count le32),
	 * in part order; parts = the sum of the counts (s3_obj_rec.parts).
	 * Uniform part sizes (what clients send) take two runs; more runs
	 * than one field holds continue in further S3_F_PART_SIZES fields,
	 * read in record order. */
	S3_F_PART_SIZES = 10,
};
struct s3_field_hdr {
	uint8_t tag;
	uint8_t reserved;
	uint16_t nlen;
	uint16_t vlen;
};
static_assert(sizeof(struct s3_field_hdr) == 6, "s3_field_hdr layout");

/* ---- long-key group: META_T_OBJECTS ---- */
#define S3_GROUP_VERSION 1
struct s3_group_hdr {
	uint8_t version;
	uint8_t reserved0;
	uint16_t count; /* entries, sorted by suffix (memcmp, shorter first) */
	uint32_t reserved1;
};
static_assert(sizeof(struct s3_group_hdr) == 8, "s3_group_hdr layout");
/* Entry: header, suffix bytes (the key after its first S3_KEY_INLINE bytes),
 * then rec_len bytes of s3_obj_rec + fields. */
struct s3_group_ent {
	uint16_t suffix_len;
	uint16_t reserved;
	uint32_t rec_len;
};
static_assert(sizeof(struct s3_group_ent) == 8, "s3_group_ent layout");

/* ---- multipart uploads: META_T_UPLOADS, META_T_UPARTS ----
 *   META_T_UPLOADS [part be32][bucket name][0][upload id 16]
 *                                     -> s3_upload_rec + key + fields
 *   META_T_UPARTS  [upload id 16][part number be32] -> s3_upart_rec
 * The upload id is [creation unix ns be64][8 random bytes], shown as 32
 * lowercase hex digits; a bucket's uploads sort by creation. The object key
 * lives in the value (S3 keys outgrow LMDB's key limit), so listing a
 * bucket's uploads reads them all and sorts by key: uploads in progress are
 * few. Fields are the object's to be (content type, user metadata, owner)
 * in the object record's encoding. */
#define S3_UPLOAD_VERSION 1
/* Completed: the record stays (no parts, no fields; created_ns = the
 * completion time) so that a retried Complete is answered as the first
 * one was; the expiry sweep removes it like an abandoned upload. */
#define S3_UPLOADF_DONE 0x1
struct s3_upload_rec {
	uint8_t version;
	uint8_t cksum_algo; /* enum s3_cksum_algo asked at creation; 0: none */
	uint8_t cksum_type; /* enum s3_cksum_type; 0 when no algorithm */
	uint8_t flags;	    /* S3_UPLOADF_* */
	uint16_t key_len;   /* key bytes that follow */
	uint16_t nfields;   /* s3_field entries after the key */
	uint64_t created_ns;
	uint8_t reserved[16];
};
static_assert(sizeof(struct s3_upload_rec) == 32, "s3_upload_rec layout");

#define S3_UPART_VERSION 1
struct s3_upart_rec {
	uint8_t version;
	uint8_t cksum_algo; /* checksum of the part's bytes (FULL_OBJECT), 0: none */
	uint8_t cksum_len;
	uint8_t reserved0;
	uint32_t reserved1;
	uint64_t size;
	uint64_t mtime_ns;
	uint8_t md5[16];
	uint8_t mid[16]; /* the part's manifest (one reference held here) */
	uint8_t cksum[32];
	uint8_t reserved[16];
};
static_assert(sizeof(struct s3_upart_rec) == 104, "s3_upart_rec layout");

/* ---- user: META_T_USERS ---- */
#define S3_USER_VERSION 1
#define S3_USERF_ROOT 0x1
struct s3_user_rec {
	uint8_t version;
	uint8_t flags; /* S3_USERF_* */
	uint16_t reserved0;
	uint32_t reserved1;
	uint64_t created; /* unix seconds */
	uint8_t reserved[16];
};
static_assert(sizeof(struct s3_user_rec) == 32, "s3_user_rec layout");

/* Owner index entry [user][0][bucket]: lets ListBuckets and user deletion
 * find a user's buckets without scanning every partition. */
#define S3_OWNED_VERSION 1
struct s3_owned_rec {
	uint8_t version;
	uint8_t reserved[7];
};
static_assert(sizeof(struct s3_owned_rec) == 8, "s3_owned_rec layout");

/* ---- access key: META_T_KEYS ---- */
#define S3_KEY_VERSION 1
#define S3_KEYF_BOOTSTRAP 0x1 /* the root key set from the environment at start */
struct s3_key_rec {
	uint8_t version;
	uint8_t flags;	    /* S3_KEYF_* */
	uint8_t user_len;   /* user name bytes that follow */
	uint8_t secret_len; /* then the secret (SigV4 needs it in clear) */
	uint32_t reserved0;
	uint64_t created; /* unix seconds */
	uint8_t reserved[16];
};
static_assert(sizeof(struct s3_key_rec) == 32, "s3_key_rec layout");

/* ---- bearer token: META_T_TOKENS [sha256(token) 32] ----
 * The token itself is never stored. Used by the image registry
 * (X-Auth-Token) and the admin API (Authorization: Bearer). */
#define S3_TOKEN_VERSION 1
struct s3_token_rec {
	uint8_t version;
	uint8_t flags;	  /* none yet */
	uint8_t user_len; /* user name bytes that follow */
	uint8_t reserved0;
	uint32_t reserved1;
	uint64_t created_ns;
	uint64_t expires_ns; /* unix nanoseconds; 0: never */
	uint8_t reserved[16];
};
static_assert(sizeof(struct s3_token_rec) == 40, "s3_token_rec layout");

#endif
